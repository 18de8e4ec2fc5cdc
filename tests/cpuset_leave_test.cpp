// A thread that leaves a hierarchy is not left pinned by it: hierarchy::exit of a live thread
// (of this process or another), a thread that detaches itself, and the hierarchy destroyed while
// threads are attached all give the thread the affinity the kernel's root cpuset would, the top
// cpuset's CPUs or the CPUs the thread requested. Real threads, checked with sched_getaffinity;
// a task whose id was reused is never touched.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <sched.h>
#include <unistd.h>

using namespace containers;
using test::H;

namespace {
using test::cpus_of;

void set_cpus_of(pid_t tid, std::vector<int> const& cpus) {
    cpu_set_t s;
    CPU_ZERO(&s);
    for (int c : cpus) CPU_SET(c, &s);
    REQUIRE(::sched_setaffinity(tid, sizeof s, &s) == 0);
}

// The top cpuset's effective CPUs, as a list of numbers.
std::vector<int> top_cpus(H& h) {
    std::vector<int> out;
    for (std::size_t c : h.state_of<cpuset>(h.top()).effective_cpus) out.push_back(static_cast<int>(c));
    return out;
}

// A hierarchy with a cpuset /a on the second of this thread's CPUs. The calling thread's
// affinity is restored at scope exit.
struct one_cpu_child {
    std::vector<int> mine = cpus_of(0);
    std::unique_ptr<H> h = std::make_unique<H>();
    subsystem_handle<cpuset, H> cs;
    bool ok = false;
    H::container* a = nullptr;
    one_cpu_child() {
        if (mine.size() < 2) return;
        REQUIRE_FALSE(h->register_subsystem(cs));
        REQUIRE_FALSE(fs::mkdir(*h, "/a"));
        REQUIRE_FALSE(fs::write(*h, "/a/cpuset.cpus", std::to_string(mine[1])));
        REQUIRE_FALSE(fs::write(*h, "/a/cpuset.mems", "0"));
        REQUIRE_FALSE(h->lookup("/a", a));
        ok = true;
    }
    ~one_cpu_child() {
        cpu_set_t s;
        CPU_ZERO(&s);
        for (int c : mine) CPU_SET(c, &s);
        ::sched_setaffinity(0, sizeof s, &s);
    }
};
}  // namespace

TEST_CASE("a live thread that exits the hierarchy gets the top cpuset's CPUs back", "[cpuset][leave]") {
    one_cpu_child f;
    if (!f.ok) CONTAINERS_SKIP("needs two CPUs");
    test::parked_thread t;
    REQUIRE_FALSE(fs::write(*f.h, "/a/tasks", std::to_string(t.tid())));
    REQUIRE(cpus_of(t.tid()) == std::vector<int>{f.mine[1]});
    REQUIRE_FALSE(f.h->exit(t.tid()));
    CHECK(cpus_of(t.tid()) == top_cpus(*f.h));
}

TEST_CASE("a thread that exits the hierarchy gets back the CPUs it requested", "[cpuset][leave]") {
    one_cpu_child f;
    if (!f.ok) CONTAINERS_SKIP("needs two CPUs");
    test::parked_thread t;
    REQUIRE_FALSE(fs::write(*f.h, "/a/tasks", std::to_string(t.tid())));
    cpumask first;
    REQUIRE_FALSE(first.try_set(static_cast<std::size_t>(f.mine[0])));
    REQUIRE_FALSE(f.cs.subsystem().request_affinity(*f.h, t.tid(), first));
    REQUIRE(cpus_of(t.tid()) == std::vector<int>{f.mine[1]});  // outside /a: /a's CPUs
    REQUIRE_FALSE(f.h->exit(t.tid()));
    CHECK(cpus_of(t.tid()) == std::vector<int>{f.mine[0]});
}

TEST_CASE("a thread that detaches itself from the hierarchy gets the top cpuset's CPUs back", "[cpuset][leave]") {
    one_cpu_child f;
    if (!f.ok) CONTAINERS_SKIP("needs two CPUs");
    std::vector<int> inside, after;
    std::error_code attached, left;
    std::thread([&] {
        attached = f.h->attach_self(*f.a);
        inside = cpus_of(0);
        left = f.h->exit(thread_task_traits::self());
        after = cpus_of(0);
    }).join();
    REQUIRE_FALSE(attached);
    REQUIRE_FALSE(left);
    CHECK(inside == std::vector<int>{f.mine[1]});
    CHECK(after == top_cpus(*f.h));
}

TEST_CASE("destroying a hierarchy gives its attached threads the top cpuset's CPUs back", "[cpuset][leave]") {
    one_cpu_child f;
    if (!f.ok) CONTAINERS_SKIP("needs two CPUs");
    std::vector<int> const top = top_cpus(*f.h);
    H* h = f.h.get();
    H::container* a = f.a;
    test::parked_thread by_id;
    test::parked_thread bound([h, a] { (void)h->attach_self(*a); });
    REQUIRE_FALSE(fs::write(*h, "/a/tasks", std::to_string(by_id.tid())));
    REQUIRE(cpus_of(by_id.tid()) == std::vector<int>{f.mine[1]});
    REQUIRE(cpus_of(bound.tid()) == std::vector<int>{f.mine[1]});
    REQUIRE(&h->container_of(bound.tid()) != &h->top());
    f.h.reset();
    CHECK(cpus_of(by_id.tid()) == top);
    CHECK(cpus_of(bound.tid()) == top);
}

TEST_CASE("a thread of another process that exits the hierarchy gets the top cpuset's CPUs back", "[cpuset][leave]") {
    one_cpu_child f;
    if (!f.ok) CONTAINERS_SKIP("needs two CPUs");
    pid_t const child = test::spawn_sleeper();
    REQUIRE(child > 0);
    std::vector<int> inside, after;
    std::error_code written = fs::write(*f.h, "/a/tasks", std::to_string(child));
    inside = cpus_of(child);
    std::error_code left = f.h->exit(child);
    after = cpus_of(child);
    test::kill_and_reap(child);
    REQUIRE_FALSE(written);
    REQUIRE_FALSE(left);
    CHECK(inside == std::vector<int>{f.mine[1]});
    CHECK(after == top_cpus(*f.h));
}

TEST_CASE("exiting a task whose pid was reused leaves the new process's affinity alone", "[cpuset][leave][identity]") {
    if (::geteuid() != 0 || ::access("/proc/sys/kernel/ns_last_pid", W_OK) != 0) CONTAINERS_SKIP("needs root to choose the next pid");
    one_cpu_child f;
    if (!f.ok) CONTAINERS_SKIP("needs two CPUs");
    pid_t const old = test::spawn_sleeper();
    REQUIRE_FALSE(fs::write(*f.h, "/a/tasks", std::to_string(old)));
    test::kill_and_reap(old);
    pid_t const unrelated = test::spawn_sleeper_as(old);
    if (unrelated < 0) CONTAINERS_SKIP("another process took pid " << old << " first");
    set_cpus_of(unrelated, {f.mine[0]});  // neither /a's CPUs nor the top's
    std::error_code const left = f.h->exit(old);
    std::vector<int> const after = cpus_of(unrelated);
    test::kill_and_reap(unrelated);
    CHECK_FALSE(left);
    CHECK(after == std::vector<int>{f.mine[0]});
}
