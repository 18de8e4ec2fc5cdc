// What attaching to a cpuset costs in system calls, and that the shortcuts keep its rules: a thread
// moved from a cpuset below the top has the affinity the library gave it, so it is not read back
// (and a veto still restores it); a thread met before carries what its identity saw about
// PF_NO_SETAFFINITY, so that a kernel thread is still refused.
#include "fault_support.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

using namespace containers;
using test::C;
using test::H;
using test::faults::real_affinity;
using test::faults::syscall_fault;
namespace sys = containers::detail::sys;

namespace {
using test::errc_of;

C& make_cpuset(H& h, std::string const& path, std::string const& cpus) {
    REQUIRE_FALSE(fs::mkdir(h, path));
    REQUIRE_FALSE(fs::write(h, path + "/cpuset.cpus", cpus));
    REQUIRE_FALSE(fs::write(h, path + "/cpuset.mems", "0"));
    C* c = nullptr;
    REQUIRE_FALSE(h.lookup(path, c));
    return *c;
}
}  // namespace

TEST_CASE("a thread moved between cpusets is not asked its affinity and a veto still restores it",
          "[cpuset][attach][faults]") {
    cpumask const mine = real_affinity(0);
    std::size_t const x = mine.first();
    std::size_t const y = x == cpumask::npos ? cpumask::npos : mine.next(x + 1);
    if (y == cpumask::npos) CONTAINERS_SKIP("needs two CPUs");
    test::journal log;  // outlives the hierarchy, whose teardown still logs
    test::parked_thread t;
    cpumask const saved = real_affinity(t.tid());
    {
        H h;
        subsystem_handle<cpuset, H> cs;
        subsystem_handle<test::recorder<0>, H> rec;
        REQUIRE_FALSE(h.register_subsystem(cs));
        REQUIRE_FALSE(h.register_subsystem(rec, log));
        rec.subsystem().fail_can_attach = "veto";
        std::string const both = std::to_string(x) + "," + std::to_string(y);
        C& a = make_cpuset(h, "/a", std::to_string(x));
        C& b = make_cpuset(h, "/b", both);
        C& veto = make_cpuset(h, "/veto", std::to_string(y));
        cpumask const in_b = cpumask::range(x, x) | cpumask::range(y, y);
        REQUIRE_FALSE(h.attach(t.tid(), a));  // from the top: its affinity is read once
        CHECK(real_affinity(t.tid()) == cpumask::range(x, x));
        {
            syscall_fault counting(-1, 0, static_cast<int>(sys::call::sched_getaffinity));  // counts, fails nothing
            REQUIRE_FALSE(h.attach(t.tid(), b));
            CHECK(real_affinity(t.tid()) == in_b);
            CHECK(errc_of(h.attach(t.tid(), veto)) == std::errc::invalid_argument);
            CHECK(counting.calls() == 0);
        }
        CHECK(real_affinity(t.tid()) == in_b);  // as in /b, where the veto left it
        CHECK(&h.container_of(t.tid()) == &b);
    }
    (void)test::faults::set_real_affinity(t.tid(), saved);
}

TEST_CASE("a kernel thread the hierarchy already knows is still refused with EINVAL and identities record the flag",
          "[cpuset][attach][identity]") {
    pid_t kthread = 0;
    for (pid_t pid = 2; pid < 64 && kthread == 0; ++pid) {
        if (containers::detail::no_setaffinity(pid)) kthread = pid;
    }
    if (kthread == 0) CONTAINERS_SKIP("no kernel thread with PF_NO_SETAFFINITY is visible");
    thread_identity k;
    REQUIRE_FALSE(thread_task_traits::identify(kthread, k));
    CHECK_FALSE(k.may_set_affinity());
    H h;
    subsystem_handle<cpuset, H> cs;
    REQUIRE_FALSE(h.register_subsystem(cs));
    std::string top_cpus;
    REQUIRE_FALSE(fs::read(h, "/cpuset.cpus", top_cpus));
    C& dest = make_cpuset(h, "/k", top_cpus);
    REQUIRE_FALSE(fs::write(h, "/tasks", std::to_string(kthread)));  // known, in the top cpuset
    REQUIRE(h.find_task(kthread) != nullptr);
    cpumask const before = real_affinity(kthread);
    syscall_fault counting(-1, 0, static_cast<int>(sys::call::sched_setaffinity));  // counts, fails nothing
    CHECK(errc_of(h.attach(kthread, dest)) == std::errc::invalid_argument);
    CHECK(counting.calls() == 0);
    CHECK(real_affinity(kthread) == before);
}
