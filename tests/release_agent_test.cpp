// The release agent as the kernel runs it: who may set it, what the program inherits, that
// programs run concurrently and are reaped asynchronously, and that a failing thread creation, a
// throwing agent, an agent that flushes or one that destroys its own hierarchy are survived.
// What could abort, hang or change process-wide state runs alone in a fresh copy of this binary
// (isolated.hpp).
#include "isolated.hpp"
#include "support.hpp"

#include <containers/detail/syscalls.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace containers;
using test::C;
using test::H;

namespace {

using namespace std::chrono_literals;

// Waits up to 20 s for `pred`; a generous bound that only a hang exceeds.
template <class Pred>
bool eventually(Pred pred) {
    auto const deadline = std::chrono::steady_clock::now() + 20s;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

std::string slurp(std::string const& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// A scratch directory with agent scripts in it, removed with everything in it.
struct scratch_dir {
    std::string path;
    bool owned = true;
    explicit scratch_dir(char const* existing) : path(existing), owned(false) {}
    scratch_dir() {
        char t[] = "/tmp/containers-agent-XXXXXX";
        REQUIRE(::mkdtemp(t) != nullptr);
        path = t;
    }
    ~scratch_dir() {
        if (!owned) return;
        if (DIR* d = ::opendir(path.c_str())) {
            while (dirent* e = ::readdir(d)) {
                std::string const n = e->d_name;
                if (n != "." && n != "..") ::unlink((path + "/" + n).c_str());
            }
            ::closedir(d);
        }
        ::rmdir(path.c_str());
    }
    // A script that writes its pid to pid.<basename of its argument>, then sleeps as itself.
    std::string sleeper(std::string const& name = "agent") const {
        std::string const script = path + "/" + name;
        std::FILE* f = std::fopen(script.c_str(), "w");
        REQUIRE(f != nullptr);
        std::fprintf(f, "#!/bin/sh\necho $$ > \"%s/pid.$(basename \"$1\")\"\nexec sleep 1000\n", path.c_str());
        std::fclose(f);
        REQUIRE(::chmod(script.c_str(), 0755) == 0);
        return script;
    }
    // The pid that the sleeper released for `leaf` wrote, or 0.
    pid_t pid_of(std::string const& leaf) const {
        std::string const s = slurp(path + "/pid." + leaf);
        if (s.empty() || s.back() != '\n') return 0;
        return static_cast<pid_t>(std::atoi(s.c_str()));
    }
};

// Releases `/name` through the path interface: a flagged container that loses its last child.
void release(H& h, std::string const& name) {
    std::string const p = "/" + name;
    REQUIRE_FALSE(fs::mkdir(h, p));
    REQUIRE_FALSE(fs::write(h, p + "/notify_on_release", "1"));
    REQUIRE_FALSE(fs::mkdir(h, p + "/child"));
    REQUIRE_FALSE(fs::rmdir(h, p + "/child"));
}

std::string status_field(pid_t pid, std::string const& key) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + ":", 0) == 0) {
            std::string v = line.substr(key.size() + 1);
            v.erase(0, v.find_first_not_of(" \t"));
            return v;
        }
    }
    return "";
}

// Field 19 of /proc/pid/stat (after the parenthesised name).
long nice_of(pid_t pid) {
    std::string const s = slurp("/proc/" + std::to_string(pid) + "/stat");
    std::istringstream in(s.substr(s.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 19; ++i) in >> field;
    return std::atol(field.c_str());
}

char state_of(pid_t pid) {
    std::string const s = slurp("/proc/" + std::to_string(pid) + "/stat");
    std::size_t const close = s.rfind(')');
    return close == std::string::npos || close + 2 >= s.size() ? '?' : s[close + 2];
}

// A program that is running, or exited and not yet reaped.
bool exists(pid_t pid) { return ::kill(pid, 0) == 0; }

std::atomic<bool> fail_thread_creation{false};
int thread_creation_hook(detail::sys::call c) noexcept {
    return c == detail::sys::call::thread_create && fail_thread_creation.load() ? EAGAIN : 0;
}

struct hook_guard {
    explicit hook_guard(detail::sys::fault_hook h) { previous = detail::sys::set_fault_hook(h); }
    ~hook_guard() { detail::sys::set_fault_hook(previous); }
    detail::sys::fault_hook previous;
};

struct path_log {
    std::mutex m;
    std::vector<std::string> paths;
    void add(std::string const& p) {
        std::lock_guard g(m);
        paths.push_back(p);
    }
    std::vector<std::string> get() {
        std::lock_guard g(m);
        return paths;
    }
};

}  // namespace

// ---- 13: thread creation and allocation ------------------------------------------------------

TEST_CASE("releases stay queued while the release thread cannot be started and are delivered once it can", "[release][faults]") {
    path_log log;
    H h;
    h.set_release_agent([&](std::string const& p) { log.add(p); });
    hook_guard hook(&thread_creation_hook);
    fail_thread_creation = true;
    release(h, "first");  // rmdir is noexcept: it must not terminate
    CHECK(h.flush_release_agent() == std::errc::resource_unavailable_try_again);
    CHECK(log.get().empty());
    release(h, "second");  // the next push tries again, and fails again
    CHECK(h.flush_release_agent() == std::errc::resource_unavailable_try_again);

    fail_thread_creation = false;
    release(h, "third");  // this push starts the thread: everything is delivered, in order
    CHECK_FALSE(h.flush_release_agent());
    CHECK(log.get() == std::vector<std::string>{"/first", "/second", "/third"});
    CHECK(h.dropped_releases() == 0);

    // And a flush alone retries too.
    fail_thread_creation = true;
    H h2;
    h2.set_release_agent([&](std::string const& p) { log.add(p); });
    release(h2, "fourth");
    fail_thread_creation = false;
    CHECK_FALSE(h2.flush_release_agent());
    CHECK(log.get().back() == "/fourth");
}

TEST_CASE("rmdir survives a release thread that RLIMIT_NPROC forbids", "[release][faults]") {
    if (!test::isolated::in_child()) {
        if (::geteuid() != 0) CONTAINERS_SKIP("needs root to become nobody under RLIMIT_NPROC");
        test::isolated::require_passes("rmdir survives a release thread that RLIMIT_NPROC forbids");
        return;
    }
    H h;
    std::atomic<int> calls{0};
    h.set_release_agent([&](std::string const&) { calls++; });
    REQUIRE_FALSE(fs::mkdir(h, "/p"));
    REQUIRE_FALSE(fs::write(h, "/p/notify_on_release", "1"));
    REQUIRE_FALSE(fs::mkdir(h, "/p/q"));
    rlimit had{};
    REQUIRE(::getrlimit(RLIMIT_NPROC, &had) == 0);
    rlimit const one{1, had.rlim_max};  // a soft limit, which nobody may raise again below
    REQUIRE(::setrlimit(RLIMIT_NPROC, &one) == 0);
    REQUIRE(::setgid(65534) == 0);
    REQUIRE(::setuid(65534) == 0);
    ::prctl(PR_SET_DUMPABLE, 1);  // /proc/self stays readable (LeakSanitizer needs it at exit)
    CHECK_FALSE(fs::rmdir(h, "/p/q"));  // the release cannot start its thread: queued, no abort
    CHECK(h.flush_release_agent() == std::errc::resource_unavailable_try_again);
    CHECK(calls == 0);
    REQUIRE(::setrlimit(RLIMIT_NPROC, &had) == 0);
    CHECK_FALSE(h.flush_release_agent());  // tries again, and delivers
    CHECK(calls == 1);
    CHECK_FALSE(fs::rmdir(h, "/p"));
}

// ---- 17: privilege ---------------------------------------------------------------------------

namespace {
struct cap_header {
    std::uint32_t version;
    int pid;
};
struct cap_data {
    std::uint32_t effective, permitted, inheritable;
};
constexpr std::uint32_t cap_sys_admin_bit = 1u << 21;

// Drops or raises CAP_SYS_ADMIN in the calling thread's effective set (capabilities are per
// thread in Linux, so only this thread changes).
bool set_effective_sys_admin(bool on) {
    cap_header hdr{0x20080522, 0};
    cap_data d[2]{};
    if (::syscall(SYS_capget, &hdr, d) != 0) return false;
    if (on) d[0].effective |= cap_sys_admin_bit;
    else d[0].effective &= ~cap_sys_admin_bit;
    return ::syscall(SYS_capset, &hdr, d) == 0;
}
bool has_sys_admin() {
    cap_header hdr{0x20080522, 0};
    cap_data d[2]{};
    return ::syscall(SYS_capget, &hdr, d) == 0 && (d[0].effective & cap_sys_admin_bit) != 0;
}
}  // namespace

TEST_CASE("writing an empty or blank release_agent clears the program", "[release]") {
    // Found by the path fuzzer under UBSan: a blank value strips to an empty view with no data.
    test::H h;
    h.set_release_agent_program("/bin/true");
    for (char const* blank : {"\n", " ", "\t \n"}) {
        REQUIRE_FALSE(containers::fs::write(h, "/release_agent", blank));
        CHECK(h.release_agent_program().empty());
        h.set_release_agent_program("/bin/true");
    }
    h.set_release_agent_program("");
    CHECK(h.release_agent_program().empty());
}

TEST_CASE("writing release_agent through the path interface needs CAP_SYS_ADMIN", "[release][security]") {
    H h;
    std::string out;
    // A thread of its own drops the capability, so that nothing else in the process changes.
    std::thread([&] {
        if (has_sys_admin()) REQUIRE(set_effective_sys_admin(false));
        CHECK(fs::write(h, "/release_agent", "/bin/true") == std::errc::operation_not_permitted);
        CHECK(h.release_agent_program().empty());
        // The host's own choice through the C++ API needs no privilege.
        h.set_release_agent_program("/bin/false");
        CHECK(h.release_agent_program() == "/bin/false");
    }).join();
    if (!has_sys_admin()) return;
    CHECK_FALSE(fs::write(h, "/release_agent", "/bin/true\n"));
    REQUIRE_FALSE(fs::read(h, "/release_agent", out));
    CHECK(out == "/bin/true\n");
}

TEST_CASE("nobody may not write release_agent", "[release][security]") {
    if (!test::isolated::in_child()) {
        if (::geteuid() != 0) CONTAINERS_SKIP("needs root to become nobody");
        test::isolated::require_passes("nobody may not write release_agent");
        return;
    }
    H h;
    REQUIRE(::setgid(65534) == 0);
    REQUIRE(::setuid(65534) == 0);
    ::prctl(PR_SET_DUMPABLE, 1);  // /proc/self stays readable (LeakSanitizer needs it at exit)
    CHECK(fs::write(h, "/release_agent", "/tmp/evil") == std::errc::operation_not_permitted);
    CHECK(h.release_agent_program().empty());
}

// ---- 18: what the program inherits -------------------------------------------------------------

TEST_CASE("the agent program starts clean whatever the releasing thread had", "[release][spawn]") {
    if (!test::isolated::in_child()) {
        test::isolated::require_passes("the agent program starts clean whatever the releasing thread had");
        return;
    }
    scratch_dir dir;
    std::string const script = dir.sleeper();
    H h;  // records the process's affinity now, before anything is pinned
    cpu_set_t original;
    REQUIRE(::sched_getaffinity(0, sizeof original, &original) == 0);
    std::string const original_list = status_field(::getpid(), "Cpus_allowed_list");

    // Everything the kernel's helper never passes on, set in the process and in the thread that
    // releases (and so creates the release thread).
    ::umask(0);
    REQUIRE(::chdir(dir.path.c_str()) == 0);
    int const leaked = ::open("/dev/zero", O_RDONLY);  // no O_CLOEXEC
    REQUIRE(leaked > 2);
    ::signal(SIGUSR2, SIG_IGN);
    REQUIRE(fs::write(h, "/release_agent", script) == std::error_code{});
    std::thread([&] {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGTERM);
        sigaddset(&s, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &s, nullptr);
        (void)::setpriority(PRIO_PROCESS, 0, 10);  // this thread
        int first = -1;
        for (int cpu = 0; cpu < CPU_SETSIZE && first < 0; ++cpu) {
            if (CPU_ISSET(cpu, &original)) first = cpu;
        }
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(first, &one);
        (void)::sched_setaffinity(0, sizeof one, &one);
        release(h, "clean");
    }).join();

    REQUIRE(eventually([&] { return dir.pid_of("clean") != 0; }));
    pid_t const pid = dir.pid_of("clean");
    REQUIRE(eventually([&] { return slurp("/proc/" + std::to_string(pid) + "/cmdline").rfind("sleep", 0) == 0; }));

    auto const fds_of = [](pid_t p) {
        std::set<std::string> fds;
        if (DIR* d = ::opendir(("/proc/" + std::to_string(p) + "/fd").c_str())) {
            while (dirent* e = ::readdir(d)) {
                std::string const n = e->d_name;
                if (n == "." || n == "..") continue;
                char target[256] = {};
                (void)!::readlink(("/proc/" + std::to_string(p) + "/fd/" + n).c_str(), target, sizeof target - 1);
                fds.insert(n + "->" + target);
            }
            ::closedir(d);
        }
        return fds;
    };
    std::set<std::string> const clean{"0->/dev/null", "1->/dev/null", "2->/dev/null"};
    std::set<std::string> fds;
    // The dynamic loader of sleep may still hold a file of its own for a moment.
    (void)eventually([&] { return (fds = fds_of(pid)) == clean; });
    CHECK(fds == clean);
    char cwd[256] = {};
    (void)!::readlink(("/proc/" + std::to_string(pid) + "/cwd").c_str(), cwd, sizeof cwd - 1);
    CHECK(std::string(cwd) == "/");
    CHECK(status_field(pid, "Umask") == "0022");
    CHECK(status_field(pid, "SigBlk") == "0000000000000000");
    CHECK(status_field(pid, "SigIgn") == "0000000000000000");
    CHECK(status_field(pid, "Cpus_allowed_list") == original_list);
    CHECK(nice_of(pid) == 0);
    CHECK(::getsid(pid) == pid);  // a session of its own, as a child of kthreadd is in none of ours
    ::kill(pid, SIGKILL);

    // A relative program resolves against "/", as the kernel's, not against our cwd.
    REQUIRE(script[0] == '/');
    REQUIRE_FALSE(fs::write(h, "/release_agent", script.substr(1)));
    release(h, "relative");
    CHECK_FALSE(h.flush_release_agent());
    CHECK(h.failed_releases() == 0);
    REQUIRE(eventually([&] { return dir.pid_of("relative") != 0; }));
    ::kill(dir.pid_of("relative"), SIGKILL);
    ::close(leaked);
}

// ---- 19: no waiting for programs -------------------------------------------------------------

TEST_CASE("agent programs run concurrently and the destructor does not wait for them", "[release][spawn]") {
    scratch_dir dir;
    std::string const script = dir.sleeper();
    // A child of our own, which the release thread must not reap.
    pid_t const ours = ::fork();
    REQUIRE(ours >= 0);
    if (ours == 0) {
        ::pause();
        ::_exit(0);
    }
    auto* h = new H;
    h->set_release_agent_program(script);
    release(*h, "one");
    release(*h, "two");  // not behind "one", which never exits by itself
    bool const both = eventually([&] { return dir.pid_of("one") != 0 && dir.pid_of("two") != 0; });
    CHECK(both);

    // The destructor returns while both programs still run.
    std::atomic<bool> destroyed{false};
    std::thread destroyer([&] {
        delete h;
        destroyed = true;
    });
    bool const returned = eventually([&] { return destroyed.load(); });
    CHECK(returned);
    pid_t const one = dir.pid_of("one");
    pid_t const two = dir.pid_of("two");
    if (returned) {
        CHECK((one != 0 && exists(one) && state_of(one) != 'Z'));
        CHECK((two != 0 && exists(two) && state_of(two) != 'Z'));
    }
    // Let every program go, also one started late, so that even a waiting destructor returns.
    while (!destroyed) {
        for (char const* leaf : {"one", "two"}) {
            if (pid_t const p = dir.pid_of(leaf)) ::kill(p, SIGKILL);
        }
        std::this_thread::sleep_for(5ms);
    }
    destroyer.join();
    if (one != 0) ::kill(one, SIGKILL);
    if (two != 0) ::kill(two, SIGKILL);
    // Reaped by the release thread after the hierarchy is gone, by pid: ours is left to us.
    CHECK(eventually([&] { return (one == 0 || !exists(one)) && (two == 0 || !exists(two)); }));
    ::kill(ours, SIGKILL);
    int status = 0;
    CHECK(::waitpid(ours, &status, 0) == ours);
}

TEST_CASE("a process whose agent program never exits still exits", "[release][spawn]") {
    if (!test::isolated::in_child()) {
        scratch_dir dir;
        ::setenv("CONTAINERS_AGENT_DIR", dir.path.c_str(), 1);
        test::isolated::require_passes("a process whose agent program never exits still exits");
        ::unsetenv("CONTAINERS_AGENT_DIR");
        if (pid_t const p = dir.pid_of("forever")) ::kill(p, SIGKILL);
        return;
    }
    // The hierarchy lives until the process exits (a static, as cgsh's lives until main returns);
    // the directory is the parent's, which removes it.
    static scratch_dir* const dir = new scratch_dir(std::getenv("CONTAINERS_AGENT_DIR"));
    static H h;
    h.set_release_agent_program(dir->sleeper());
    release(h, "forever");
    REQUIRE(eventually([&] { return dir->pid_of("forever") != 0; }));
    CHECK(exists(dir->pid_of("forever")));
}

// ---- 20: agents that throw, flush or destroy -------------------------------------------------

TEST_CASE("an agent that throws does not abort the process and is counted", "[release][faults]") {
    if (!test::isolated::in_child()) {
        test::isolated::require_passes("an agent that throws does not abort the process and is counted");
        return;
    }
    H h;
    path_log log;
    h.set_release_agent([&](std::string const& p) {
        log.add(p);
        if (p == "/bad") throw std::runtime_error("agent failed");
    });
    release(h, "bad");
    release(h, "good");
    CHECK_FALSE(h.flush_release_agent());
    CHECK(log.get() == std::vector<std::string>{"/bad", "/good"});
    CHECK(h.failed_releases() == 1);
}

TEST_CASE("an agent that flushes does not deadlock", "[release][faults]") {
    if (!test::isolated::in_child()) {
        test::isolated::require_passes("an agent that flushes does not deadlock");
        return;
    }
    H h;
    std::atomic<int> flushed{0};
    h.set_release_agent([&](std::string const&) {
        if (!h.flush_release_agent()) flushed++;
    });
    release(h, "a");
    release(h, "b");
    CHECK_FALSE(h.flush_release_agent());
    CHECK(flushed == 2);
}

TEST_CASE("an agent that destroys its own hierarchy does not abort", "[release][faults]") {
    if (!test::isolated::in_child()) {
        test::isolated::require_passes("an agent that destroys its own hierarchy does not abort");
        return;
    }
    auto* h = new H;
    std::atomic<bool> done{false};
    std::atomic<int> calls{0};
    h->set_release_agent([&](std::string const&) {
        calls++;
        delete h;  // "the last group is gone: shut down"
        done = true;
    });
    C* c = nullptr;
    REQUIRE_FALSE(h->mkdir(h->top(), "job", &c));
    REQUIRE_FALSE(h->set_notify_on_release(*c, true));
    // The release comes from a thread that leaves the group by exiting.
    std::thread([&] { REQUIRE_FALSE(h->attach_self(*c)); }).join();
    CHECK(eventually([&] { return done.load(); }));
    CHECK(calls == 1);
}

TEST_CASE("an agent that destroys its hierarchy drops the releases queued behind it", "[release][faults]") {
    if (!test::isolated::in_child()) {
        test::isolated::require_passes("an agent that destroys its hierarchy drops the releases queued behind it");
        return;
    }
    auto* h = new H;
    std::atomic<bool> go{false};
    std::atomic<bool> done{false};
    std::atomic<int> calls{0};
    h->set_release_agent([&](std::string const&) {
        calls++;
        while (!go) std::this_thread::sleep_for(1ms);  // the second release is queued meanwhile
        delete h;
        done = true;
    });
    release(*h, "first");
    release(*h, "second");
    go = true;
    CHECK(eventually([&] { return done.load(); }));
    std::this_thread::sleep_for(50ms);
    CHECK(calls == 1);  // the second event's agent never ran on a destroyed hierarchy
}
