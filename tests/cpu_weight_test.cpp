// cpu: the weight model, nice values applied to real threads and given back, CPU time shared by
// weight on one CPU, and the cooperative quota (checkpoint). Measured on CPU time, never wall time
// alone.
#include "support.hpp"
#include "fault_support.hpp"

#include <containers/cpu.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>
#include <linux/capability.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/resource.h>
#include <time.h>

using namespace containers;

namespace {
struct no_fiber {
    static std::uint64_t get() noexcept { return 0; }
};
using LH = hierarchy<logical_task_traits<std::uint64_t, no_fiber>, 4>;
using LC = LH::container;
using lcpu = basic_cpu<LH>;

std::error_code attach_one(LH& h, std::uint64_t id, LC& c) {
    std::uint64_t const ids[] = {id};
    return h.attach(ids, c);
}

int nice_of(pid_t tid) {
    errno = 0;
    return ::getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
}

// Runs `f` on a fresh thread and gives it the thread's tid first.
struct thread_group_fixture {
    test::H h;
    subsystem_handle<containers::cpu_controller, test::H> handle;
    test::C* a = nullptr;
    test::C* b = nullptr;
    thread_group_fixture() {
        REQUIRE_FALSE(h.register_subsystem(handle));
        REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
        REQUIRE_FALSE(h.mkdir(h.top(), "b", &b));
    }
};
}  // namespace

TEST_CASE("the effective weight follows the kernel's group shares, flattened", "[cpu][weight]") {
    LH h;
    subsystem_handle<lcpu, LH> p;
    REQUIRE_FALSE(h.register_subsystem(p));
    LC *a = nullptr, *b = nullptr, *c = nullptr, *idle = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.mkdir(h.top(), "b", &b));
    REQUIRE_FALSE(h.mkdir(*a, "c", &c));
    REQUIRE_FALSE(h.mkdir(h.top(), "idle", &idle));
    REQUIRE_FALSE(p.subsystem().set_shares(*b, 4096));
    REQUIRE_FALSE(attach_one(h, 1, *a));
    REQUIRE_FALSE(attach_one(h, 2, *b));
    CHECK(lcpu::effective_weight(*a) == 1024.0);  // a group below the top weighs its shares
    CHECK(lcpu::effective_weight(*b) == 4096.0);
    CHECK(lcpu::task_weight(*b) == 4096.0);
    CHECK(lcpu::effective_weight(*idle) == 0.0);  // no task below: not on any run queue
    CHECK(lcpu::effective_weight(h.top()) == 5120.0);
    // A busy child competes with its parent's own task: half each at equal weight.
    REQUIRE_FALSE(attach_one(h, 3, *c));
    CHECK(lcpu::effective_weight(*c) == 512.0);
    CHECK(lcpu::task_weight(*a) == 512.0);
    // Two tasks in b share its weight; a task in the top weighs 1024 as at nice 0.
    REQUIRE_FALSE(h.fork(2, 4));
    CHECK(lcpu::task_weight(*b) == 2048.0);
    REQUIRE_FALSE(h.fork(99, 5));  // a child of a task the hierarchy does not know: in the top
    CHECK(lcpu::task_weight(h.top()) == 1024.0);
    CHECK(lcpu::effective_weight(*b) == 4096.0);
    REQUIRE_FALSE(h.exit(3));
    CHECK(lcpu::effective_weight(*c) == 0.0);
    CHECK(lcpu::task_weight(*a) == 1024.0);
    CHECK(lcpu::nice_for_weight(1024) == 0);
    CHECK(lcpu::nice_for_weight(4096) == -6);  // 3906, the nearest entry
    CHECK(lcpu::nice_for_weight(1) == 19);
    CHECK(lcpu::nice_for_weight(1e9) == -20);
}

TEST_CASE("threads get the nice of their weight and their own back when they leave", "[cpu][nice]") {
    thread_group_fixture f;
    test::parked_thread t1([] { (void)::setpriority(PRIO_PROCESS, 0, 3); });  // its own nice: 3
    test::parked_thread t2;
    REQUIRE(nice_of(t1.tid()) == 3);
    REQUIRE_FALSE(fs::write(f.h, "/b/cpu.shares", "4096"));
    REQUIRE_FALSE(f.h.attach(t1.tid(), *f.a));
    REQUIRE_FALSE(f.h.attach(t2.tid(), *f.b));
    CHECK(nice_of(t1.tid()) == 0);
    CHECK(nice_of(t2.tid()) == -6);
    REQUIRE_FALSE(fs::write(f.h, "/b/cpu.shares", "1024"));
    CHECK(nice_of(t2.tid()) == 0);
    REQUIRE_FALSE(fs::write(f.h, "/a/cpu.shares", "256"));
    CHECK(nice_of(t1.tid()) == 6);  // 272
    // Back to the top: its own nice again, as the kernel's root would leave it.
    REQUIRE_FALSE(f.h.attach(t1.tid(), f.h.top()));
    CHECK(nice_of(t1.tid()) == 3);
    REQUIRE_FALSE(f.h.attach(t1.tid(), *f.b));  // two threads in b: 512 each
    CHECK(nice_of(t1.tid()) == 3);              // 526
    CHECK(nice_of(t2.tid()) == 3);
    // Leaving the hierarchy alive gives the original back, to each.
    REQUIRE_FALSE(f.h.exit(t1.tid()));
    CHECK(nice_of(t1.tid()) == 3);
    CHECK(nice_of(t2.tid()) == 0);  // alone in b again
    REQUIRE_FALSE(f.h.exit(t2.tid()));
    CHECK(nice_of(t2.tid()) == 0);
    CHECK(f.handle.subsystem().nice_failures() == 0);
}

TEST_CASE("a thread in a group gets its nice back when the hierarchy goes", "[cpu][nice]") {
    test::parked_thread t([] { (void)::setpriority(PRIO_PROCESS, 0, 2); });
    {
        thread_group_fixture f;
        REQUIRE_FALSE(fs::write(f.h, "/b/cpu.shares", "4096"));
        REQUIRE_FALSE(f.h.attach(t.tid(), *f.b));
        CHECK(nice_of(t.tid()) == -6);
    }
    CHECK(nice_of(t.tid()) == 2);
}

namespace {
// Clears (or sets back) CAP_SYS_NICE in the calling thread's effective set: capabilities are per
// thread, so only this thread loses the privilege.
bool set_cap_sys_nice(bool on) {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capget, &hdr, data) != 0) return false;
    if (on) data[0].effective |= 1u << CAP_SYS_NICE;
    else data[0].effective &= ~(1u << CAP_SYS_NICE);
    return ::syscall(SYS_capset, &hdr, data) == 0;
}
}  // namespace

TEST_CASE("a shares write whose nice cannot be applied fails and changes nothing", "[cpu][nice][rollback]") {
    if (::geteuid() != 0) CONTAINERS_SKIP("needs root (CAP_SYS_NICE to drop)");
    test::H h;
    subsystem_handle<containers::cpu_controller, test::H> handle;
    REQUIRE_FALSE(h.register_subsystem(handle));
    test::C *p = nullptr, *x = nullptr, *y = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "p", &p));
    REQUIRE_FALSE(h.mkdir(*p, "x", &x));
    REQUIRE_FALSE(h.mkdir(*p, "y", &y));
    REQUIRE_FALSE(fs::write(h, "/p/y/cpu.shares", "2048"));
    test::parked_thread t0, t1, t2;
    REQUIRE_FALSE(h.attach(t0.tid(), *p));
    REQUIRE_FALSE(h.attach(t1.tid(), *x));
    REQUIRE_FALSE(h.attach(t2.tid(), *y));
    // D(p) = 1024 + 1024 + 2048: t0 and t1 weigh 256 (nice 6), t2 512 (nice 3).
    REQUIRE(nice_of(t0.tid()) == 6);
    REQUIRE(nice_of(t1.tid()) == 6);
    REQUIRE(nice_of(t2.tid()) == 3);
    // p at 4096 would give t0 and t1 nice 0 and t2 nice -3: lowerings, which need CAP_SYS_NICE
    // (RLIMIT_NICE is 0 here). A writer without it is refused at the first.
    std::error_code refused, refused_mixed;
    test::worker w;
    w.run_there([&] {
        if (!set_cap_sys_nice(false)) return;
        refused = fs::write(h, "/p/cpu.shares", "4096");
        // x at 4096 would raise t0 (6 -> 9) and t2 (3 -> 6) and lower t1 (6 -> 3). The lowering is
        // tried first: raisings made before it could not be put back without the privilege.
        refused_mixed = fs::write(h, "/p/x/cpu.shares", "4096");
        (void)set_cap_sys_nice(true);
    });
    CHECK(refused_mixed == std::errc::permission_denied);
    CHECK(refused == std::errc::permission_denied);
    std::string out;
    REQUIRE_FALSE(fs::read(h, "/p/cpu.shares", out));
    CHECK(out == "1024\n");
    REQUIRE_FALSE(fs::read(h, "/p/x/cpu.shares", out));
    CHECK(out == "1024\n");
    CHECK(nice_of(t0.tid()) == 6);  // as before both writes
    CHECK(nice_of(t1.tid()) == 6);
    CHECK(nice_of(t2.tid()) == 3);
    CHECK(containers::cpu_controller::task_weight(*y) == 512.0);
    // With the privilege, the same write goes through.
    CHECK_FALSE(fs::write(h, "/p/cpu.shares", "4096"));
    CHECK(nice_of(t0.tid()) == 0);
    CHECK(nice_of(t2.tid()) == -3);
    for (pid_t t : {t0.tid(), t1.tid(), t2.tid()}) REQUIRE_FALSE(h.exit(t));
    CHECK(nice_of(t2.tid()) == 0);
}

TEST_CASE("a refused nice in the middle of a shares write puts back those already changed", "[cpu][nice][rollback][faults]") {
    test::H h;
    subsystem_handle<containers::cpu_controller, test::H> handle;
    REQUIRE_FALSE(h.register_subsystem(handle));
    test::C *p = nullptr, *x = nullptr, *y = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "p", &p));
    REQUIRE_FALSE(h.mkdir(*p, "x", &x));
    REQUIRE_FALSE(h.mkdir(*p, "y", &y));
    REQUIRE_FALSE(fs::write(h, "/p/y/cpu.shares", "2048"));
    test::parked_thread t0, t1, t2;
    REQUIRE_FALSE(h.attach(t0.tid(), *p));
    REQUIRE_FALSE(h.attach(t1.tid(), *x));
    REQUIRE_FALSE(h.attach(t2.tid(), *y));
    for (int error : {EPERM, EACCES, ESRCH}) {
        CAPTURE(error);
        std::error_code ec;
        {
            // t0 and t1 (6 -> 0) go through, t2 (3 -> -3) is refused; then t1 and t0 are put back.
            test::faults::syscall_fault f(2, error, static_cast<int>(containers::detail::sys::call::setpriority));
            ec = fs::write(h, "/p/cpu.shares", "4096");
            CHECK(f.calls() == 5);
        }
        CHECK(ec.value() == error);
        CHECK(nice_of(t0.tid()) == 6);
        CHECK(nice_of(t1.tid()) == 6);
        CHECK(nice_of(t2.tid()) == 3);
        CHECK(containers::cpu_controller::effective_weight(*p) == 1024.0);
        std::string out;
        REQUIRE_FALSE(fs::read(h, "/p/cpu.shares", out));
        CHECK(out == "1024\n");
    }
    // Where nothing may fail (an exit), a refusal is counted and the rest goes on.
    {
        test::faults::syscall_fault f(0, EPERM, static_cast<int>(containers::detail::sys::call::setpriority));
        REQUIRE_FALSE(h.exit(t2.tid()));  // its own nice back: refused
    }
    CHECK(handle.subsystem().nice_failures() == 1);
    CHECK(nice_of(t2.tid()) == 3);
    REQUIRE(::setpriority(PRIO_PROCESS, static_cast<id_t>(t2.tid()), 0) == 0);
    for (pid_t t : {t0.tid(), t1.tid()}) REQUIRE_FALSE(h.exit(t));
}

namespace {
void pin_to(pid_t tid, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    REQUIRE(::sched_setaffinity(tid, sizeof set, &set) == 0);
}

std::uint64_t cpu_ns_of(clockid_t clock) {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}
}  // namespace

TEST_CASE("two busy threads on one CPU share it 1:4 by their groups' shares", "[cpu][nice][measured]") {
    thread_group_fixture f;
    REQUIRE_FALSE(fs::write(f.h, "/a/cpu.shares", "1024"));
    REQUIRE_FALSE(fs::write(f.h, "/b/cpu.shares", "4096"));
    int const cpu = sched_getcpu();
    std::atomic<bool> stop{false};
    std::atomic<int> ready{0};
    std::atomic<pid_t> tids[2] = {0, 0};
    std::atomic<clockid_t> clocks[2];
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
        threads.emplace_back([&, i] {
            tids[i] = thread_task_traits::self();
            clockid_t c{};
            ::pthread_getcpuclockid(::pthread_self(), &c);
            clocks[i] = c;
            ++ready;
            while (!stop.load(std::memory_order_relaxed)) {
            }
        });
    }
    while (ready < 2) std::this_thread::yield();
    cpu_set_t saved[2];
    for (int i = 0; i < 2; ++i) REQUIRE(::sched_getaffinity(tids[i], sizeof saved[i], &saved[i]) == 0);
    for (int i = 0; i < 2; ++i) pin_to(tids[i], cpu);
    REQUIRE_FALSE(f.h.attach(tids[0], *f.a));
    REQUIRE_FALSE(f.h.attach(tids[1], *f.b));
    CHECK(nice_of(tids[0]) == 0);
    CHECK(nice_of(tids[1]) == -6);
    // Until the two together have used 1.5 s of CPU (they share one CPU, with whatever else runs).
    std::uint64_t const s0 = cpu_ns_of(clocks[0]), s1 = cpu_ns_of(clocks[1]);
    std::uint64_t d0 = 0, d1 = 0;
    while (d0 + d1 < 1'500'000'000u) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        d0 = cpu_ns_of(clocks[0]) - s0;
        d1 = cpu_ns_of(clocks[1]) - s1;
    }
    stop = true;
    for (auto& t : threads) {
        // Leave the hierarchy (original nice back), then the original affinity; then end.
        (void)f.h.exit(tids[&t - threads.data()]);
    }
    for (int i = 0; i < 2; ++i) {
        CHECK(nice_of(tids[i]) == 0);
        CHECK(::sched_setaffinity(tids[i], sizeof saved[i], &saved[i]) == 0);
    }
    for (auto& t : threads) t.join();
    double const ratio = static_cast<double>(d1) / static_cast<double>(d0);
    WARN("CPU time b:a = " << ratio << " (shares 4096:1024; nice -6:0 gives 3906:1024 = 3.81)");
    CHECK(ratio > 4.0 * 0.85);
    CHECK(ratio < 4.0 * 1.15);
}

TEST_CASE("a thread that calls checkpoint keeps to its group's quota", "[cpu][quota][measured]") {
    thread_group_fixture f;
    REQUIRE_FALSE(fs::write(f.h, "/a/cpu.cfs_quota_us", "20000"));  // 20% of a CPU, period 100 ms
    std::uint64_t used = 0, wall = 0, slept = 0;
    test::worker w;
    w.run_there([&] {
        REQUIRE_FALSE(f.h.attach_self(*f.a));
        std::uint64_t const c0 = test::thread_cpu_ns();
        std::uint64_t const w0 = cpu_ns_of(CLOCK_MONOTONIC);
        // Busy for 1 s of wall time, checking in every 1 ms of CPU.
        while (cpu_ns_of(CLOCK_MONOTONIC) - w0 < 1'000'000'000u) {
            (void)test::burn(1'000'000);
            slept += f.handle.subsystem().checkpoint(f.h);
        }
        used = test::thread_cpu_ns() - c0;
        wall = cpu_ns_of(CLOCK_MONOTONIC) - w0;
        REQUIRE_FALSE(f.h.exit(thread_task_traits::self()));
    });
    double const share = static_cast<double>(used) / static_cast<double>(wall);
    WARN("CPU share with quota 20000/100000: " << share << ", slept " << slept / 1'000'000 << " ms");
    CHECK(share > 0.10);
    CHECK(share < 0.30);
    std::string stat;
    REQUIRE_FALSE(fs::read(f.h, "/a/cpu.stat", stat));
    containers::cpu_controller::cpu_stat st;
    {
        auto lock = f.h.manage_lock();
        REQUIRE_FALSE(f.handle.subsystem().get_stat_locked(*f.a, st));
    }
    CHECK(st.nr_periods >= 5);
    CHECK(st.nr_throttled >= 5);
    CHECK(st.throttled_time > 0);
    CHECK(st.nr_throttled <= st.nr_periods);
    CHECK(stat.starts_with("nr_periods " + std::to_string(st.nr_periods) + "\nnr_throttled " + std::to_string(st.nr_throttled)));
}

TEST_CASE("charge tells a runtime until when a logical task's group is throttled", "[cpu][quota]") {
    LH h;
    subsystem_handle<lcpu, LH> p;
    REQUIRE_FALSE(h.register_subsystem(p));
    LC *a = nullptr, *b = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.mkdir(*a, "b", &b));
    REQUIRE_FALSE(attach_one(h, 1, *b));
    REQUIRE_FALSE(p.subsystem().set_quota_us(*a, 10000));  // 10 ms per 100 ms, on the parent
    CHECK(p.subsystem().charge(h, 1, 4'000'000) == 0);
    CHECK(p.subsystem().charge(h, 1, 4'000'000) == 0);
    std::uint64_t const until = p.subsystem().charge(h, 1, 4'000'000);  // 12 ms > 10 ms
    CHECK(until > 0);
    lcpu::cpu_stat st;
    REQUIRE_FALSE(p.subsystem().get_stat(*a, st));
    CHECK(st.nr_throttled == 1);
    CHECK(st.nr_periods == 1);
    REQUIRE_FALSE(p.subsystem().get_stat(*b, st));
    CHECK(st.nr_throttled == 0);  // b has no quota of its own
    CHECK(p.subsystem().charge(h, 99, 1'000'000'000) == 0);  // a task of the top: never throttled
}
