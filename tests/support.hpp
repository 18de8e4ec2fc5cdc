// Shared test fixtures: a recording subsystem whose hooks log what they see and fail on demand,
// threads that wait to be told to exit, and a scratch directory in the kernel's cpuset hierarchy.
#pragma once

#include <containers/containers.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace test {

using H = containers::hierarchy<>;
using C = H::container;

/// What the hooks of every recorder saw, in order: "name:hook:path[:ids]".
struct journal {
    std::vector<std::string> events;
    void add(std::string e) { events.push_back(std::move(e)); }
    void clear() { events.clear(); }
};

/// The errc of a library error_code (they all carry errno values), for CHECK(errc_of(ec) == ...).
inline std::errc errc_of(std::error_code ec) { return static_cast<std::errc>(ec.value()); }

/// The cpumask of a kernel list string ("0-3,8"; "" is the empty mask), over 65536 bits unless told;
/// a list the parser refuses throws, which fails the test that asked.
containers::cpumask list(std::string_view s, std::size_t nbits = 1 << 16);

/// The CPUs thread `tid` (0: the caller) may run on, in order, from sched_getaffinity; empty if it
/// cannot be asked.
std::vector<int> cpus_of(pid_t tid);

/// `prefix` followed by `n` in decimal ("t3"). Tests build names with this, not with
/// `"t" + std::to_string(n)`: g++ 12 at -O2 inlines that operator+ (a string inserted at the front
/// of a temporary) into a bogus -Wstringop-overflow / -Wrestrict warning on its _M_replace (GCC
/// PR 105329 and its duplicates), which the Release build with tests, and CI with -Werror, must not show.
template <class N>
std::string named(std::string_view prefix, N n) {
    std::string s(prefix);
    s += std::to_string(n);
    return s;
}

inline std::string ids_of(containers::task_set<C> t) {
    std::string s;
    for (auto const& m : t) {  // appended piece by piece: "x" + std::string trips g++ 12, see test::named
        if (!s.empty()) s += ',';
        s += std::to_string(m.id);
        s += '<';
        s += m.from->owner().path(*m.from);
    }
    return s;
}

/// A subsystem that records its hooks and can be told to fail in one of them.
template <int N>
struct recorder : containers::subsystem_tag {
    static constexpr std::string_view name = N == 0 ? "rec0" : N == 1 ? "rec1" : "rec2";
    struct state {
        int creations = 0;
        std::string where;
    };

    journal* log;
    std::optional<std::string> fail_create;      // container name whose create fails ("" = the top one)
    std::optional<std::string> fail_populate;
    std::optional<std::string> fail_can_attach;  // destination name that vetoes
    bool throw_instead = false;   // fail by throwing rather than returning
    std::errc error = std::errc::invalid_argument;

    explicit recorder(journal& j) : log(&j) {}

    std::error_code fail(char const* hook) const {
        if (throw_instead) throw std::runtime_error(hook);
        return std::make_error_code(error);
    }
    std::string tag(char const* hook, C const& c) const { return std::string(name) + ":" + hook + ":" + c.owner().path(c); }

    std::error_code create(state& s, C& c) {
        log->add(tag("create", c));
        if (c.name() == fail_create) return fail("create");
        s.creations++;
        s.where = c.owner().path(c);
        return {};
    }
    void destroy(state&, C& c) noexcept { log->add(tag("destroy", c)); }
    std::error_code populate(state&, C& c) {
        log->add(tag("populate", c));
        if (c.name() == fail_populate) return fail("populate");
        return {};
    }
    std::error_code can_attach(state&, C& c, containers::task_set<C> t) {
        log->add(tag("can_attach", c) + ":" + ids_of(t));
        if (c.name() == fail_can_attach) return fail("can_attach");
        return {};
    }
    void cancel_attach(state&, C& c, containers::task_set<C> t) noexcept { log->add(tag("cancel_attach", c) + ":" + ids_of(t)); }
    void attach(state&, C& c, containers::task_set<C> t) noexcept {
        log->add(tag("attach", c) + ":" + ids_of(t) + (c.owner().callback_lock_held() ? ":cb" : ":nocb"));
    }
    void post_attach(state&, C& c, containers::task_set<C> t) noexcept {
        log->add(tag("post_attach", c) + ":" + ids_of(t) + (c.owner().callback_lock_held() ? ":cb" : ":nocb"));
    }
    void fork(state&, C& c, pid_t parent, pid_t child) noexcept {
        log->add(tag("fork", c) + ":" + std::to_string(parent) + ">" + std::to_string(child));
    }
    void exit(state&, C& c, pid_t t) noexcept { log->add(tag("exit", c) + ":" + std::to_string(t)); }
};

/// A thread that reports its tid, runs `body` (if any), then waits until released.
class parked_thread {
public:
    template <class F>
    explicit parked_thread(F body) {
        thread_ = std::thread([this, body]() mutable {
            {
                std::lock_guard g(mutex_);
                tid_ = containers::thread_task_traits::self();
            }
            body();
            std::unique_lock g(mutex_);
            started_ = true;
            changed_.notify_all();
            changed_.wait(g, [this] { return released_; });
        });
        std::unique_lock g(mutex_);
        changed_.wait(g, [this] { return started_; });
    }
    parked_thread() : parked_thread([] {}) {}
    ~parked_thread() { join(); }
    parked_thread(parked_thread const&) = delete;
    parked_thread& operator=(parked_thread const&) = delete;

    [[nodiscard]] pid_t tid() const {
        std::lock_guard g(mutex_);
        return tid_;
    }
    void join() {
        {
            std::lock_guard g(mutex_);
            released_ = true;
        }
        changed_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    pid_t tid_ = 0;
    bool started_ = false;
    bool released_ = false;
    std::thread thread_;
};

/// The calling thread's CPU time in nanoseconds.
std::uint64_t thread_cpu_ns();
/// Spins until the calling thread has used `ns` more CPU time; returns what it used.
std::uint64_t burn(std::uint64_t ns);

/// A thread that runs jobs it is given and waits, using no CPU, in between; its tid is known
/// while it lives.
class worker {
public:
    worker();
    ~worker();
    worker(worker const&) = delete;
    worker& operator=(worker const&) = delete;
    [[nodiscard]] pid_t tid() const { return tid_; }
    /// Starts `f` on the worker (after the previous job).
    void start(std::function<void()> f);
    /// Waits until the job started last has returned.
    void wait();
    /// start(f) then wait().
    void run_there(std::function<void()> f) {
        start(std::move(f));
        wait();
    }

private:
    void run();
    std::mutex m_;
    std::condition_variable cv_;
    std::function<void()> job_;
    pid_t tid_ = 0;
    bool quit_ = false;
    std::thread thread_;
};

/// A directory of our own under one of the kernel's cgroup v1 hierarchies (the cpuset one unless
/// `root` names another, such as "/sys/fs/cgroup/cpuacct"), removed (with everything below it,
/// its tasks moved back to `root`) at scope exit. In a cpuset hierarchy it gets its parent's CPUs
/// and nodes, so that tasks may join. Empty optional where the hierarchy is not mounted writable.
class kernel_scratch {
public:
    static std::optional<kernel_scratch> make(std::string const& root = "/sys/fs/cgroup/cpuset");
    ~kernel_scratch();
    kernel_scratch(kernel_scratch&& o) noexcept : path_(std::move(o.path_)), root_(std::move(o.root_)) { o.path_.clear(); }
    kernel_scratch(kernel_scratch const&) = delete;
    kernel_scratch& operator=(kernel_scratch const&) = delete;
    [[nodiscard]] std::string const& path() const { return path_; }

private:
    kernel_scratch(std::string p, std::string root) : path_(std::move(p)), root_(std::move(root)) {}
    std::string path_;
    std::string root_;
};

/// The result of one operation of a conformance script: the errno (0 for success) and, for a
/// read, the content.
struct outcome {
    int error = 0;
    std::string content;
    bool operator==(outcome const&) const = default;
};

/// Runs mkdir, rmdir, read or write on the kernel's cgroupfs, below `root`.
outcome kernel_op(std::string const& root, std::string const& op, std::string const& path, std::string const& value);

/// The same operation through the library's path interface.
template <class Hier>
outcome library_op(Hier& h, std::string const& op, std::string const& path, std::string const& value) {
    outcome o;
    std::error_code ec;
    if (op == "mkdir") ec = containers::fs::mkdir(h, path);
    else if (op == "rmdir") ec = containers::fs::rmdir(h, path);
    else if (op == "read") ec = containers::fs::read(h, path, o.content);
    else ec = containers::fs::write(h, path, value);
    o.error = ec.value();
    return o;
}

/// The state letter of a task (field 3 of /proc/PID/stat: R, S, Z...); 0 where it is gone.
char task_state(pid_t pid);
/// The same for a thread of this process (/proc/self/task/TID/stat).
char thread_state(pid_t tid);

/// Creates a pid that runs until killed (a child process), and reaps it.
pid_t spawn_sleeper();
void kill_and_reap(pid_t pid);

/// The next id the kernel hands out will be `id` if nothing else forks first (root only:
/// /proc/sys/kernel/ns_last_pid). False where it cannot be set.
bool set_last_pid(pid_t id);
/// A sleeping child with pid `want`, or -1 where another process took the pid first.
pid_t spawn_sleeper_as(pid_t want);

}  // namespace test

// Catch2 2.x has no SKIP: say so on the console (CTest reports the test as skipped, see
// SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt) and leave the test.
#define CONTAINERS_SKIP(msg)            \
    do {                                \
        WARN("SKIPPED: " << msg);       \
        return;                         \
    } while (false)
