// The identity of tasks: the hierarchy tracks a task, not the number that names it. A pid or tid
// that is reused after its task exited names an unrelated task, which must be neither listed nor
// acted on; a zombie is not alive; a process that creates and ends threads while its cgroup.procs
// is written is moved as a whole, as the kernel's threadgroup lock makes it.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace containers;
using test::C;
using test::H;

namespace {
using test::errc_of;


// A child that has exited and is not reaped: a zombie until kill_and_reap (or waitpid).
pid_t spawn_zombie() {
    pid_t const pid = ::fork();
    if (pid == 0) ::_exit(0);
    while (test::task_state(pid) != 'Z') ::usleep(1000);
    return pid;
}

// A child that runs until a byte arrives on its pipe, then exits (and stays a zombie until reaped).
struct signalled_child {
    pid_t pid = -1;
    int go = -1;
    signalled_child() {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        pid = ::fork();
        if (pid == 0) {
            char c;
            ::close(fds[1]);
            (void)!::read(fds[0], &c, 1);
            ::_exit(0);
        }
        ::close(fds[0]);
        go = fds[1];
    }
    void exit_now() {
        (void)!::write(go, "x", 1);
        while (test::task_state(pid) != 'Z') ::usleep(1000);
    }
    ~signalled_child() {
        ::close(go);
        test::kill_and_reap(pid);
    }
};

using test::cpus_of;

using test::set_last_pid;
using test::spawn_sleeper_as;

using cpuset_handle = subsystem_handle<cpuset, H>;
}  // namespace

TEST_CASE("a process whose pid was reused is not listed and not re-pinned", "[tasks][identity]") {
    if (::geteuid() != 0 || ::access("/proc/sys/kernel/ns_last_pid", W_OK) != 0) CONTAINERS_SKIP("needs root to choose the next pid");
    std::vector<int> const mine = cpus_of(0);
    if (mine.size() < 2) CONTAINERS_SKIP("needs two CPUs");
    std::string const first = std::to_string(mine[0]), second = std::to_string(mine[1]);
    H h;
    cpuset_handle cs;
    REQUIRE_FALSE(h.register_subsystem(cs));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    REQUIRE_FALSE(fs::write(h, "/a/cpuset.cpus", second));
    REQUIRE_FALSE(fs::write(h, "/a/cpuset.mems", "0"));
    pid_t const old = test::spawn_sleeper();
    REQUIRE_FALSE(fs::write(h, "/a/tasks", std::to_string(old)));
    CHECK(cpus_of(old) == std::vector<int>{mine[1]});
    test::kill_and_reap(old);
    pid_t const unrelated = spawn_sleeper_as(old);
    if (unrelated < 0) CONTAINERS_SKIP("another process took pid " << old << " first");
    std::vector<int> const before = cpus_of(unrelated);
    REQUIRE(before == mine);
    SECTION("a cpuset.cpus write before anything looks at the tasks leaves it alone") {
        CHECK_FALSE(fs::write(h, "/a/cpuset.cpus", first));
        CHECK(cpus_of(unrelated) == before);
    }
    SECTION("it is not listed") {
        std::string listed;
        REQUIRE_FALSE(fs::read(h, "/a/tasks", listed));
        CHECK(listed.empty());
        REQUIRE_FALSE(fs::read(h, "/a/cgroup.procs", listed));
        CHECK(listed.empty());
        CHECK_FALSE(fs::write(h, "/a/cpuset.cpus", first));
        CHECK(cpus_of(unrelated) == before);
    }
    SECTION("it does not keep the container busy") { CHECK_FALSE(fs::rmdir(h, "/a")); }
    SECTION("attaching the new process by the same number attaches it afresh") {
        REQUIRE_FALSE(fs::write(h, "/a/tasks", std::to_string(unrelated)));
        CHECK(cpus_of(unrelated) == std::vector<int>{mine[1]});
        std::string listed;
        REQUIRE_FALSE(fs::read(h, "/a/tasks", listed));
        CHECK(listed == std::to_string(unrelated) + "\n");
    }
    test::kill_and_reap(unrelated);
}

TEST_CASE("a thread whose tid was reused starts afresh, without the old thread's requested affinity", "[tasks][identity]") {
    if (::geteuid() != 0 || ::access("/proc/sys/kernel/ns_last_pid", W_OK) != 0) CONTAINERS_SKIP("needs root to choose the next tid");
    std::vector<int> const mine = cpus_of(0);
    if (mine.size() < 2) CONTAINERS_SKIP("needs two CPUs");
    std::string const both = std::to_string(mine[0]) + "," + std::to_string(mine[1]);
    H h;
    cpuset_handle cs;
    REQUIRE_FALSE(h.register_subsystem(cs));
    for (char const* d : {"/a", "/b"}) {
        REQUIRE_FALSE(fs::mkdir(h, d));
        REQUIRE_FALSE(fs::write(h, std::string(d) + "/cpuset.cpus", both));
        REQUIRE_FALSE(fs::write(h, std::string(d) + "/cpuset.mems", "0"));
    }
    pid_t tid = 0;
    {
        test::parked_thread old;  // attached by id: nothing tells the hierarchy when it exits
        tid = old.tid();
        REQUIRE_FALSE(fs::write(h, "/a/tasks", std::to_string(tid)));
        cpumask one;
        REQUIRE_FALSE(one.try_set(static_cast<std::size_t>(mine[1])));
        REQUIRE_FALSE(cs.subsystem().request_affinity(h, tid, one));
        CHECK(cpus_of(tid) == std::vector<int>{mine[1]});
    }
    // A new thread of this process with the old one's tid, once the old one is gone for good.
    std::string const old_dir = "/proc/self/task/" + std::to_string(tid);
    for (int i = 0; i < 1000 && ::access(old_dir.c_str(), F_OK) == 0; ++i) ::usleep(1000);
    std::atomic<int> outcome{0};  // 1: got the tid and checked, 2: gave up
    std::vector<int> seen;
    for (int tries = 0; tries < 50 && outcome.load() == 0; ++tries) {
        if (!set_last_pid(tid)) break;
        if (tries > 0) ::usleep(1000);
        std::thread([&] {
            if (thread_task_traits::self() != tid) return;
            if (fs::write(h, "/b/tasks", "0")) return;
            seen = cpus_of(0);
            outcome = 1;
        }).join();
    }
    if (outcome.load() != 1) CONTAINERS_SKIP("another task took tid " << tid << " first");
    CHECK(seen == std::vector<int>{mine[0], mine[1]});
}

TEST_CASE("a zombie is accepted on write, is not listed, and does not keep its container busy", "[tasks][zombie]") {
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer starts a thread of its own in every forked child, so the child that exits
    // is a group leader whose group lives on for a moment, which the kernel still lists.
    CONTAINERS_SKIP("a forked child is not a single thread under ThreadSanitizer");
#endif
    H h;
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    std::string listed;
    SECTION("a zombie written to tasks or cgroup.procs") {
        pid_t const z = spawn_zombie();
        CHECK_FALSE(fs::write(h, "/a/tasks", std::to_string(z)));
        CHECK_FALSE(fs::write(h, "/a/cgroup.procs", std::to_string(z)));
        REQUIRE_FALSE(fs::read(h, "/a/tasks", listed));
        CHECK(listed.empty());
        REQUIRE_FALSE(fs::read(h, "/a/cgroup.procs", listed));
        CHECK(listed.empty());
        CHECK(h.find_task(z) == nullptr);
        CHECK_FALSE(fs::rmdir(h, "/a"));
        test::kill_and_reap(z);
    }
    SECTION("a member that becomes a zombie") {
        signalled_child child;
        REQUIRE_FALSE(fs::write(h, "/a/tasks", std::to_string(child.pid)));
        REQUIRE_FALSE(fs::read(h, "/a/tasks", listed));
        CHECK(listed == std::to_string(child.pid) + "\n");
        CHECK(errc_of(fs::rmdir(h, "/a")) == std::errc::device_or_resource_busy);
        child.exit_now();
        SECTION("is not listed") {
            REQUIRE_FALSE(fs::read(h, "/a/tasks", listed));
            CHECK(listed.empty());
        }
        SECTION("and rmdir succeeds") { CHECK_FALSE(fs::rmdir(h, "/a")); }
    }
}

TEST_CASE("writing cgroup.procs of a process that creates and ends threads always succeeds", "[files][procs]") {
    H h;
    cpuset_handle cs;
    bool const with_cpuset = GENERATE(false, true);  // cpuset acts on each thread while it moves
    CAPTURE(with_cpuset);
    if (with_cpuset) REQUIRE_FALSE(h.register_subsystem(cs));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    REQUIRE_FALSE(fs::mkdir(h, "/b"));
    if (with_cpuset) {
        std::string cpus, mems;
        REQUIRE_FALSE(fs::read(h, "/cpuset.cpus", cpus));
        REQUIRE_FALSE(fs::read(h, "/cpuset.mems", mems));
        for (char const* d : {"/a", "/b"}) {
            REQUIRE_FALSE(fs::write(h, std::string(d) + "/cpuset.cpus", cpus));
            REQUIRE_FALSE(fs::write(h, std::string(d) + "/cpuset.mems", mems));
        }
    }
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t const churn = ::fork();
    if (churn == 0) {
        (void)!::write(ready[1], "x", 1);
        for (;;) {
            std::vector<std::thread> v;
            for (int i = 0; i < 8; ++i) v.emplace_back([i] { ::usleep(static_cast<useconds_t>(50 * i)); });
            for (auto& t : v) t.join();
        }
    }
    char c;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);
    ::close(ready[1]);
    int failures = 0;
    std::error_code last;
    for (int i = 0; i < 1000; ++i) {
        if (std::error_code ec = fs::write(h, i % 2 ? "/a/cgroup.procs" : "/b/cgroup.procs", std::to_string(churn))) {
            ++failures;
            last = ec;
        }
    }
    // The process is where the last write (the 1000th, to /a) put it.
    C& where = h.container_of(churn);
    test::kill_and_reap(churn);
    CAPTURE(last.message());
    CHECK(failures == 0);
    CHECK(where.name() == "a");
}

TEST_CASE("a process's main thread that exited while another thread runs is not listed", "[tasks][zombie]") {
    // Its leader is a zombie that waits for the group (and a thread pidfd of it does not poll
    // readable); the kernel no longer lists it.
    int go[2];
    REQUIRE(::pipe(go) == 0);
    pid_t const child = ::fork();
    if (child == 0) {
        std::thread([] {
            for (;;) ::pause();
        }).detach();
        char c;
        (void)!::read(go[0], &c, 1);
        ::syscall(SYS_exit, 0);  // this thread only
    }
    ::close(go[0]);
    H h;
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    REQUIRE_FALSE(fs::write(h, "/a/tasks", std::to_string(child)));
    (void)!::write(go[1], "x", 1);
    ::close(go[1]);
    while (test::task_state(child) != 'Z') ::usleep(1000);
    std::string listed;
    REQUIRE_FALSE(fs::read(h, "/a/tasks", listed));
    CHECK(listed.empty());
    CHECK_FALSE(fs::rmdir(h, "/a"));
    test::kill_and_reap(child);
}

namespace {
struct no_fiber {
    static std::uint64_t get() noexcept { return 1; }
};
// Traits that name an identity type but get identify's signature wrong.
struct bad_identity_traits : thread_task_traits {
    static int identify(id_type, identity_type&) noexcept { return 0; }
};
}  // namespace

TEST_CASE("thread tasks carry an identity, logical tasks none and pay nothing for it", "[tasks][identity][concepts]") {
    using logical = logical_task_traits<std::uint64_t, no_fiber>;
    STATIC_REQUIRE(TaskIdentity<thread_task_traits>);
    STATIC_REQUIRE_FALSE(HasTaskIdentity<logical>);
    STATIC_REQUIRE(std::is_same_v<task_identity_t<logical>, containers::detail::no_identity>);
    STATIC_REQUIRE(HasTaskIdentity<bad_identity_traits>);
    STATIC_REQUIRE_FALSE(TaskIdentity<bad_identity_traits>);  // hierarchy<bad_identity_traits> fails with a sentence
    STATIC_REQUIRE(std::is_nothrow_move_constructible_v<thread_identity>);
    STATIC_REQUIRE(std::is_empty_v<containers::detail::no_identity>);  // [[no_unique_address]] in the record
}
