// Allocation failure on the release path: rmdir, exit and attach are noexcept and must survive a
// release whose event cannot be allocated. This binary replaces the global operator new (so it is
// a binary of its own) with one that fails every allocation of the calling thread while armed.
#include "isolated.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

// The replaceable operators here allocate with malloc and free with free, which is their point;
// g++ inlines them into the standard library at -O1 and above and then warns that free() meets
// operator new (-Wmismatched-new-delete, a false positive for replaced operators).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
thread_local bool fail_allocations = false;

// Arms the failure for the calling thread only (the release thread keeps its memory).
struct out_of_memory {
    out_of_memory() { fail_allocations = true; }
    ~out_of_memory() { fail_allocations = false; }
    out_of_memory(out_of_memory const&) = delete;
    out_of_memory& operator=(out_of_memory const&) = delete;
};
}  // namespace

void* operator new(std::size_t n) {
    if (fail_allocations) throw std::bad_alloc();
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
// The nothrow forms too (the library's own), so that every form pairs with the deletes below.
void* operator new(std::size_t n, std::nothrow_t const&) noexcept {
    if (fail_allocations) return nullptr;
    return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, std::nothrow_t const& t) noexcept { return ::operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using namespace containers;
using test::C;
using test::H;

TEST_CASE("a release without memory for its event is dropped and counted and rmdir exit and attach succeed", "[release][faults]") {
    if (!test::isolated::in_child()) {
        test::isolated::require_passes("a release without memory for its event is dropped and counted and rmdir exit and attach succeed");
        return;
    }
    H h;
    std::atomic<int> calls{0};
    h.set_release_agent([&](std::string const&) { calls++; });
    C* a = nullptr;
    C* b = nullptr;
    C* warm = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a-flagged-container-with-a-long-name", &a));
    REQUIRE_FALSE(h.set_notify_on_release(*a, true));
    REQUIRE_FALSE(h.mkdir(*a, "b", &b));
    REQUIRE_FALSE(h.mkdir(h.top(), "warm", &warm));
    test::parked_thread th;
    // Once without failures, so that the thread's own first-use state exists.
    REQUIRE_FALSE(h.attach(th.tid(), *warm));
    REQUIRE_FALSE(h.attach(th.tid(), h.top()));
    REQUIRE_FALSE(h.flush_release_agent());

    {
        out_of_memory oom;
        CHECK_FALSE(h.rmdir(*b));  // releases a: no memory for the event
    }
    CHECK(h.dropped_releases() == 1);

    REQUIRE_FALSE(h.attach(th.tid(), *a));
    {
        out_of_memory oom;
        CHECK_FALSE(h.attach(th.tid(), *warm));  // a loses its last task
    }
    CHECK(h.dropped_releases() == 2);

    REQUIRE_FALSE(h.attach(th.tid(), *a));
    {
        out_of_memory oom;
        CHECK_FALSE(h.exit(th.tid()));
    }
    CHECK(h.dropped_releases() == 3);

    CHECK_FALSE(h.flush_release_agent());
    CHECK(calls == 0);
    CHECK(h.size() == 3);  // the tree is as the operations left it: a and warm below the top
}
