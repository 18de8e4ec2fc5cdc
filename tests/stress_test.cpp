// Concurrency: readers on the lock-free path while tasks move, containers come and go, and
// threads attach themselves and exit. Run under ThreadSanitizer and AddressSanitizer in CI: a
// reader that saw freed memory, or a race on a field, fails there.
#include "support.hpp"

#include <containers/views.hpp>

#include <catch2/catch.hpp>

#include <random>

using namespace containers;
using test::C;
using test::H;

namespace {
// Every task is in exactly one container, every count agrees with the lists.
void check_invariants(H& h) {
    auto lock = h.manage_lock();
    std::size_t containers_seen = 0;
    std::size_t tasks_seen = 0;
    for (C& c : views::subtree(h.top())) {
        ++containers_seen;
        CHECK_FALSE(c.removed());
        for (auto const& t : views::tasks(c)) {
            ++tasks_seen;
            CHECK(&t.container() == &c);
            CHECK(h.find_task(t.id) == &t);
        }
    }
    CHECK(containers_seen == h.size());
    CHECK(tasks_seen == h.task_count());
}
}  // namespace

TEST_CASE("readers, movers, creators and exiting threads at once", "[stress][concurrency]") {
    H h;
    constexpr int groups = 6;
    constexpr int rounds = 3000;
    std::vector<C*> fixed;
    for (int i = 0; i < groups; ++i) {
        C* c = nullptr;
        REQUIRE_FALSE(h.mkdir(h.top(), "fixed" + std::to_string(i), &c));
        fixed.push_back(c);
    }
    std::vector<std::unique_ptr<test::parked_thread>> workers;
    for (int i = 0; i < 4; ++i) workers.push_back(std::make_unique<test::parked_thread>());
    std::vector<pid_t> ids;
    for (auto& w : workers) ids.push_back(w->tid());

    // Catch2 2.x assertions are not thread-safe: the threads count failures, the test checks them.
    std::atomic<int> failures{0};
    auto expect = [&](bool ok) {
        if (!ok) failures++;
    };
    std::atomic<bool> stop{false};
    std::atomic<long> reads{0};
    std::vector<std::thread> threads;

    // Readers: the container of each worker, and their own, must be a live-or-removed container.
    for (int r = 0; r < 2; ++r) {
        threads.emplace_back([&] {
            long n = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                read_section rs;
                for (pid_t id : ids) {
                    C& c = h.container_of(id);
                    n += static_cast<long>(c.name().size()) + (c.removed() ? 1 : 0);
                    n += static_cast<long>(h.path(c).size());
                }
                n += static_cast<long>(h.current().depth());
            }
            reads += n;
        });
    }
    // Movers: workers between fixed and transient containers found by path.
    threads.emplace_back([&] {
        std::mt19937 rng(1);
        for (int i = 0; i < rounds; ++i) {
            read_section rs;  // keeps a looked-up container valid until attach has seen it
            C* dest = nullptr;
            std::string const path = "/t" + std::to_string(rng() % 8) + "/leaf";
            if (rng() % 2 == 0 || h.lookup(path, dest)) dest = fixed[rng() % groups];
            pid_t const some[] = {ids[rng() % ids.size()], ids[rng() % ids.size()]};
            std::error_code ec = h.attach(some, *dest);
            expect(!ec || ec == std::errc::no_such_device);
        }
    });
    // Creators: transient containers with a child, removed again once empty.
    threads.emplace_back([&] {
        std::mt19937 rng(2);
        for (int i = 0; i < rounds; ++i) {
            std::string const name = test::named("t", rng() % 8);
            C* t = nullptr;
            read_section rs;
            if (!h.mkdir(h.top(), name, &t)) {
                C* leaf = nullptr;
                expect(!h.mkdir(*t, "leaf", &leaf));
                std::this_thread::yield();
                // Move any worker that went there back out, then remove both.
                std::vector<pid_t> there;
                expect(!h.task_ids(*leaf, there));
                if (!there.empty()) expect(!h.attach(there, *fixed[0]));
                std::error_code ec = h.rmdir(*leaf);
                while (ec == std::errc::device_or_resource_busy) {  // a mover got in meanwhile
                    expect(!h.task_ids(*leaf, there));
                    if (!there.empty()) expect(!h.attach(there, *fixed[0]));
                    ec = h.rmdir(*leaf);
                }
                expect(!ec);
                expect(!h.rmdir(*t));
            }
        }
    });
    // Short-lived threads that attach themselves and exit.
    threads.emplace_back([&] {
        for (int i = 0; i < 200; ++i) {
            std::thread([&, i] {
                expect(!h.attach_self(*fixed[i % groups]));
                read_section rs;
                expect(&h.current() == fixed[i % groups]);
            }).join();
        }
    });

    for (std::size_t i = 2; i < threads.size(); ++i) threads[i].join();
    stop = true;
    threads[0].join();
    threads[1].join();
    CHECK(failures.load() == 0);
    CHECK(reads.load() > 0);
    check_invariants(h);
    CHECK(h.size() == 1 + groups);
    CHECK(h.task_count() == ids.size());  // every self-attached thread left when it exited
}
