// cpuacct without the kernel: the files and their errors, where time is charged (before and after
// a move, at exit, at fork), hierarchy and reset, and logical tasks charged by their runtime.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <thread>

using namespace containers;
using test::C;
using test::H;

namespace {

using test::burn;
using test::worker;

struct fixture {
    H h;
    subsystem_handle<cpuacct, H> ca;
    C* a = nullptr;
    C* b = nullptr;
    C* ab = nullptr;
    fixture() {
        REQUIRE_FALSE(h.register_subsystem(ca));
        REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
        REQUIRE_FALSE(h.mkdir(h.top(), "b", &b));
        REQUIRE_FALSE(h.mkdir(*a, "b", &ab));
    }
    cpuacct& acct() { return ca.subsystem(); }
};

constexpr std::uint64_t ms = 1'000'000;

}  // namespace

TEST_CASE("cpuacct shows the kernel's files, without the per-CPU ones", "[cpuacct][files]") {
    fixture f;
    std::vector<std::string> names;
    REQUIRE_FALSE(fs::list(f.h, "/a", names));
    for (char const* n : {"cpuacct.usage", "cpuacct.usage_user", "cpuacct.usage_sys", "cpuacct.stat"}) {
        CAPTURE(n);
        CHECK(std::find(names.begin(), names.end(), n) != names.end());
    }
    std::string out;
    CHECK(fs::read(f.h, "/a/cpuacct.usage_percpu", out) == std::errc::no_such_file_or_directory);
    CHECK(fs::read(f.h, "/a/cpuacct.usage_all", out) == std::errc::no_such_file_or_directory);
    out.clear();
    REQUIRE_FALSE(fs::read(f.h, "/a/cpuacct.usage", out));
    CHECK(out == "0\n");
    out.clear();
    REQUIRE_FALSE(fs::read(f.h, "/a/cpuacct.stat", out));
    CHECK(out == "user 0\nsystem 0\n");
}

TEST_CASE("cpuacct.usage takes only 0, as the kernel parses it", "[cpuacct][files][errors]") {
    fixture f;
    CHECK_FALSE(fs::write(f.h, "/a/cpuacct.usage", "0"));
    CHECK_FALSE(fs::write(f.h, "/a/cpuacct.usage", "0\n"));
    CHECK_FALSE(fs::write(f.h, "/a/cpuacct.usage", "0x0"));
    CHECK_FALSE(fs::write(f.h, "/a/cpuacct.usage", "+0"));
    CHECK_FALSE(fs::write(f.h, "/a/cpuacct.usage", ""));  // an empty write(2) is a no-op
    CHECK(fs::write(f.h, "/a/cpuacct.usage", "1") == std::errc::invalid_argument);
    CHECK(fs::write(f.h, "/a/cpuacct.usage", " 0") == std::errc::invalid_argument);
    CHECK(fs::write(f.h, "/a/cpuacct.usage", "-0") == std::errc::invalid_argument);
    CHECK(fs::write(f.h, "/a/cpuacct.usage", "abc") == std::errc::invalid_argument);
    CHECK(fs::write(f.h, "/a/cpuacct.usage", "18446744073709551616") == std::errc::result_out_of_range);
    for (char const* ro : {"/a/cpuacct.usage_user", "/a/cpuacct.usage_sys", "/a/cpuacct.stat"}) {
        CAPTURE(ro);
        CHECK(fs::write(f.h, ro, "0") == std::errc::invalid_argument);
    }
    CHECK_FALSE(fs::write(f.h, "/cpuacct.usage", "0"));  // the top: accepted, and nothing happens
}

TEST_CASE("a thread's time is charged to the container it ran in, not the one it moved to", "[cpuacct][threads]") {
    fixture f;
    worker w;
    REQUIRE_FALSE(f.h.attach(w.tid(), *f.a));
    std::uint64_t in_a = 0;
    w.run_there([&] { in_a = burn(30 * ms); });
    REQUIRE_FALSE(f.h.attach(w.tid(), *f.b));
    std::uint64_t const a_after_move = f.acct().usage(*f.a);
    // Everything the thread measured itself, plus the little it ran to park and wake.
    CHECK(a_after_move >= in_a);
    CHECK(a_after_move < in_a + 10 * ms);
    std::uint64_t in_b = 0;
    w.run_there([&] { in_b = burn(30 * ms); });
    CHECK(f.acct().usage(*f.a) == a_after_move);  // nothing more in a
    std::uint64_t const b_usage = f.acct().usage(*f.b);
    CHECK(b_usage >= in_b);
    CHECK(b_usage < in_b + 10 * ms);
    CHECK(f.acct().usage(f.h.top()) >= a_after_move + b_usage);
    REQUIRE_FALSE(f.h.exit(w.tid()));
}

TEST_CASE("a container's usage includes its descendants', and a reset is its own", "[cpuacct][hierarchy]") {
    fixture f;
    worker w;
    REQUIRE_FALSE(f.h.attach(w.tid(), *f.ab));
    std::uint64_t burnt = 0;
    w.run_there([&] { burnt = burn(20 * ms); });
    std::uint64_t const child = f.acct().usage(*f.ab);
    std::uint64_t const parent = f.acct().usage(*f.a);
    CHECK(child >= burnt);
    CHECK(parent >= child);
    CHECK(f.acct().usage(*f.b) == 0);

    // Resetting the parent: its count restarts, the child's stays.
    REQUIRE_FALSE(fs::write(f.h, "/a/cpuacct.usage", "0"));
    CHECK(f.acct().usage(*f.a) < 2 * ms);
    CHECK(f.acct().usage(*f.ab) >= child);
    w.run_there([&] { burnt = burn(20 * ms); });
    CHECK(f.acct().usage(*f.a) >= burnt);
    CHECK(f.acct().usage(*f.ab) >= child + burnt);
    // The top cannot be reset.
    std::uint64_t const top = f.acct().usage(f.h.top());
    REQUIRE_FALSE(f.acct().reset(f.h.top()));
    CHECK(f.acct().usage(f.h.top()) >= top);
    REQUIRE_FALSE(f.h.exit(w.tid()));
}

TEST_CASE("user and system time split the usage as cpuacct.stat shows it", "[cpuacct][stat]") {
    fixture f;
    worker w;
    REQUIRE_FALSE(f.h.attach(w.tid(), *f.a));
    std::uint64_t burnt = 0;
    w.run_there([&] { burnt = burn(150 * ms); });  // user time, mostly
    std::uint64_t const user = f.acct().usage_user(*f.a);
    std::uint64_t const sys = f.acct().usage_sys(*f.a);
    // USER_HZ resolution: the burn shows in user time within a few ticks.
    CHECK(user + sys >= burnt - 30 * ms);
    CHECK(user > sys);
    auto const st = f.acct().stat(*f.a);
    std::uint64_t const usage = f.acct().usage(*f.a);
    std::uint64_t const tick = 1'000'000'000 / static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
    // The split adds up to the usage (each part rounded down to a tick).
    CHECK((st.user + st.system) * tick <= usage);
    CHECK((st.user + st.system + 2) * tick >= burnt);
    CHECK(st.user >= st.system);
    std::string out;
    REQUIRE_FALSE(fs::read(f.h, "/a/cpuacct.stat", out));
    CHECK(out.starts_with("user "));
    CHECK(out.find("\nsystem ") != std::string::npos);
    REQUIRE_FALSE(f.h.exit(w.tid()));
}

TEST_CASE("a thread that exits is charged for its last stretch", "[cpuacct][threads][exit]") {
    fixture f;
    std::uint64_t burnt = 0;
    bool attached = false;
    std::thread t([&] {
        attached = !f.h.attach_self(*f.a);
        burnt = burn(20 * ms);
    });  // it leaves the hierarchy on its own way out, through the exit hook
    t.join();
    REQUIRE(attached);
    CHECK(f.h.task_count() == 0);
    CHECK(f.acct().usage(*f.a) >= burnt);
}

TEST_CASE("a thread forked into a container is charged from its birth", "[cpuacct][threads][fork]") {
    fixture f;
    worker parent;
    REQUIRE_FALSE(f.h.attach(parent.tid(), *f.a));
    std::uint64_t const before = f.acct().usage(*f.a);
    // The child has run a little (its start-up) before the hierarchy hears of the fork.
    worker child;
    std::uint64_t burnt = 0;
    child.run_there([&] { burnt = burn(10 * ms); });
    REQUIRE_FALSE(f.h.fork(parent.tid(), child.tid()));
    CHECK(f.acct().usage(*f.a) >= before + burnt);
    REQUIRE_FALSE(f.h.exit(child.tid()));
    REQUIRE_FALSE(f.h.exit(parent.tid()));
}

TEST_CASE("a vetoed attach charges nothing and keeps no baseline", "[cpuacct][attach][rollback]") {
    test::journal j;
    H h;
    subsystem_handle<cpuacct, H> ca;
    subsystem_handle<test::recorder<0>, H> rec;
    REQUIRE_FALSE(h.register_subsystem(ca));
    REQUIRE_FALSE(h.register_subsystem(rec, j));
    rec.subsystem().fail_can_attach = "no";
    C* a = nullptr;
    C* no = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.mkdir(h.top(), "no", &no));
    worker w;
    REQUIRE_FALSE(h.attach(w.tid(), *a));
    std::uint64_t burnt = 0;
    w.run_there([&] { burnt = burn(10 * ms); });
    CHECK(h.attach(w.tid(), *no) == std::errc::invalid_argument);
    // Still in a, and a still gets the time: the veto did not move the baseline away.
    w.run_there([&] { burnt += burn(10 * ms); });
    CHECK(ca.subsystem().usage(*a) >= burnt);
    CHECK(ca.subsystem().usage(*no) == 0);
    REQUIRE_FALSE(h.exit(w.tid()));
}

namespace {
struct current_task {
    static std::int32_t get() noexcept { return 1; }
};
using LH = hierarchy<logical_task_traits<std::int32_t, current_task>>;
}  // namespace

TEST_CASE("logical tasks are charged by their runtime, hierarchically", "[cpuacct][logical]") {
    LH h;
    subsystem_handle<basic_cpuacct<LH>, LH> ca;
    REQUIRE_FALSE(h.register_subsystem(ca));
    LH::container* a = nullptr;
    LH::container* ab = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.mkdir(*a, "b", &ab));
    REQUIRE_FALSE(h.attach(7, *ab));
    ca.subsystem().charge(h, 7, 3'000, 1'000);
    CHECK(ca.subsystem().usage(*ab) == 4'000);
    CHECK(ca.subsystem().usage(*a) == 4'000);
    CHECK(ca.subsystem().usage(h.top()) == 4'000);
    CHECK(ca.subsystem().usage_user(*a) == 3'000);
    CHECK(ca.subsystem().usage_sys(*a) == 1'000);
    REQUIRE_FALSE(h.attach(7, *a));
    ca.subsystem().charge(h, 7, 0, 5'000);
    CHECK(ca.subsystem().usage(*ab) == 4'000);
    CHECK(ca.subsystem().usage(*a) == 9'000);
    std::string out;
    REQUIRE_FALSE(fs::read(h, "/a/cpuacct.usage", out));
    CHECK(out == "9000\n");
    REQUIRE_FALSE(fs::write(h, "/a/cpuacct.usage", "0"));
    CHECK(ca.subsystem().usage(*a) == 0);
    CHECK(ca.subsystem().usage(*ab) == 4'000);
    CHECK(ca.subsystem().usage(h.top()) == 9'000);
    REQUIRE_FALSE(h.rmdir(*ab));
    CHECK(ca.subsystem().reset(*ab) == std::errc::no_such_device);
}

TEST_CASE("time is charged once while threads move and others read", "[cpuacct][threads][concurrency]") {
    fixture f;
    test::worker w1;
    test::worker w2;
    REQUIRE_FALSE(f.h.attach(w1.tid(), *f.a));
    REQUIRE_FALSE(f.h.attach(w2.tid(), *f.b));
    std::uint64_t burnt1 = 0;
    std::uint64_t burnt2 = 0;
    w1.start([&] { burnt1 = burn(150 * ms); });
    w2.start([&] { burnt2 = burn(150 * ms); });
    std::atomic<bool> move_failed{false};
    std::thread mover([&] {
        C* const places[] = {f.a, f.b, f.ab, &f.h.top()};
        for (int i = 0; i < 400; ++i) {
            if (f.h.attach(w1.tid(), *places[i % 4]) || f.h.attach(w2.tid(), *places[(i + 1) % 4])) move_failed = true;
        }
    });
    std::uint64_t last_top = 0;
    std::uint64_t last_a = 0;
    bool monotonic = true;
    for (int i = 0; i < 400; ++i) {
        std::uint64_t const top = f.acct().usage(f.h.top());
        std::uint64_t const a = f.acct().usage(*f.a);
        monotonic = monotonic && top >= last_top && a >= last_a;
        last_top = top;
        last_a = a;
    }
    mover.join();
    w1.wait();
    w2.wait();
    CHECK_FALSE(move_failed);
    CHECK(monotonic);
    // Everything the threads burnt, charged once: not less, and not more than the little they
    // ran around their burns.
    std::uint64_t const top = f.acct().usage(f.h.top());
    CHECK(top >= burnt1 + burnt2);
    CHECK(top < burnt1 + burnt2 + 20 * ms);
    CHECK(top >= f.acct().usage(*f.a) + f.acct().usage(*f.b));
    REQUIRE_FALSE(f.h.exit(w1.tid()));
    REQUIRE_FALSE(f.h.exit(w2.tid()));
}

TEST_CASE("a thread of another process is charged from /proc, its clock being out of reach", "[cpuacct][threads][process]") {
    fixture f;
    int go[2];
    int done[2];
    REQUIRE(::pipe(go) == 0);
    REQUIRE(::pipe(done) == 0);
    pid_t const child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // The child burns when told, reports what its own clock measured, then waits to be killed.
        char c;
        if (::read(go[0], &c, 1) != 1) ::_exit(1);
        std::uint64_t const burnt = burn(40 * ms);
        if (::write(done[1], &burnt, sizeof burnt) != sizeof burnt) ::_exit(1);
        for (;;) ::pause();
    }
    REQUIRE_FALSE(f.h.attach(child, *f.a));
    REQUIRE(::write(go[1], "x", 1) == 1);
    std::uint64_t burnt = 0;
    REQUIRE(::read(done[0], &burnt, sizeof burnt) == sizeof burnt);
    std::uint64_t const usage = f.acct().usage(*f.a);
    std::uint64_t const user = f.acct().usage_user(*f.a);
    std::uint64_t const system = f.acct().usage_sys(*f.a);
    test::kill_and_reap(child);
    for (int fd : {go[0], go[1], done[0], done[1]}) ::close(fd);
    CHECK(usage >= burnt);
    CHECK(usage < burnt + 10 * ms);
    // The split comes from the tick-sampled utime and stime of /proc/TID/stat: on a loaded machine
    // every tick that found the child may have found it in a system call, so only their sum is sure.
    CHECK(user + system > 0);
    CHECK(user <= usage);
    // Gone now: its record is reaped with nothing more charged.
    CHECK(f.h.reap(*f.a) == 1);
    CHECK(f.acct().usage(*f.a) == usage);
}
