// Shared by the benchmarks: the kernel's side (a scratch directory of our own in one of its v1
// hierarchies), threads to move around (idle or busy), a move through the kernel's tasks files
// and through the library, and a reporter that prints each target as a ratio at the end of a run.
#pragma once

#include <containers/containers.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace bench {

inline constexpr char const* cpuset_root = "/sys/fs/cgroup/cpuset";

inline bool write_file(std::string const& path, std::string const& value) {
    int fd = ::open(path.c_str(), O_WRONLY);
    if (fd < 0) return false;
    bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
    ::close(fd);
    return ok;
}
inline std::string read_file(std::string const& path) {
    char buf[4096];
    int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return {};
    ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string{};
}

/// Moves `tid` by writing it into a tasks file (the kernel's `echo TID > tasks`).
inline bool write_tid(std::string const& tasks_file, pid_t tid) { return write_file(tasks_file, std::to_string(tid)); }

// A scratch directory of ours in one of the kernel's v1 hierarchies (`root`), named
// containers-bench-PID, with children on demand (`a` and `b`, that tasks
// can join, unless other names are given). In a cpuset hierarchy every child gets the root's CPUs
// and nodes unless told otherwise. The destructor thaws every directory of a freezer hierarchy,
// sends the tasks back to the root and removes the directories, deepest first; it touches
// nothing outside `dir`.
struct kernel_scratch {
    std::string root;
    std::string dir;
    bool ok = false;

    explicit kernel_scratch(std::string root_dir = cpuset_root, std::vector<std::string> const& kids = {"a", "b"}) : root(std::move(root_dir)) {
        if (::access((root + "/tasks").c_str(), W_OK) != 0) return;
        dir = root + "/containers-bench-" + std::to_string(::getpid());
        if (::mkdir(dir.c_str(), 0755) != 0) {
            dir.clear();
            return;
        }
        ok = !is_cpuset() || configure(dir, "", "");
        for (std::string const& k : kids) ok = ok && child(k);
    }
    kernel_scratch(kernel_scratch const&) = delete;
    kernel_scratch& operator=(kernel_scratch const&) = delete;
    ~kernel_scratch() {
        if (!dir.empty()) remove_tree(root, dir);
    }

    /// Removes `dir` (in the hierarchy mounted at `root`) and everything below it: thaws every
    /// directory of a freezer hierarchy, sends the tasks back to `root`, removes the directories
    /// deepest first.
    static void remove_tree(std::string const& root, std::string const& dir) {
        std::vector<std::string> dirs;  // post-order: children before their parent
        collect(dir, dirs);
        if (::access((dir + "/freezer.state").c_str(), W_OK) == 0) {
            for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) write_file(*it + "/freezer.state", "THAWED");
        }
        for (std::string const& sub : dirs) {
            std::string tasks = read_file(sub + "/tasks");
            for (std::size_t pos = 0; pos < tasks.size();) {
                std::size_t end = tasks.find('\n', pos);
                write_file(root + "/tasks", tasks.substr(pos, end - pos));
                pos = end == std::string::npos ? tasks.size() : end + 1;
            }
            ::rmdir(sub.c_str());
        }
    }

    [[nodiscard]] std::string path(std::string const& name) const { return dir + "/" + name; }
    [[nodiscard]] bool is_cpuset() const { return ::access((root + "/cpuset.cpus").c_str(), F_OK) == 0; }

    /// A child directory (one that exists already, from an earlier repetition, will do). In a
    /// cpuset hierarchy it gets `cpus` and `mems` (empty strings: the root's).
    bool child(std::string const& name, std::string const& cpus = "", std::string const& mems = "") const {
        if (!ok) return false;
        std::string const p = path(name);
        if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return false;
        return !is_cpuset() || configure(p, cpus, mems);
    }

    /// Sends `tid` back to the root of the hierarchy.
    void to_root(pid_t tid) const { write_tid(root + "/tasks", tid); }

private:
    bool configure(std::string const& p, std::string const& cpus, std::string const& mems) const {
        return write_file(p + "/cpuset.cpus", cpus.empty() ? read_file(root + "/cpuset.cpus") : cpus) &&
               write_file(p + "/cpuset.mems", mems.empty() ? read_file(root + "/cpuset.mems") : mems);
    }
    static void collect(std::string const& d, std::vector<std::string>& out) {
        if (DIR* h = ::opendir(d.c_str())) {
            std::vector<std::string> subs;
            while (dirent* e = ::readdir(h)) {
                if (e->d_type == DT_DIR && e->d_name[0] != '.') subs.push_back(d + "/" + e->d_name);
            }
            ::closedir(h);
            for (std::string const& s : subs) collect(s, out);
        }
        out.push_back(d);
    }
};

// A thread that does nothing until the program ends: the task that benchmarks move.
struct idle_thread {
    std::mutex m;
    std::condition_variable cv;
    pid_t tid = 0;
    bool done = false;
    std::thread t{[this] {
        std::unique_lock g(m);
        tid = containers::thread_task_traits::self();
        cv.notify_all();
        cv.wait(g, [this] { return done; });
    }};
    idle_thread() {
        std::unique_lock g(m);
        cv.wait(g, [this] { return tid != 0; });
    }
    ~idle_thread() {
        {
            std::lock_guard g(m);
            done = true;
        }
        cv.notify_all();
        t.join();
    }
};

// N idle threads.
struct idle_threads {
    std::vector<std::unique_ptr<idle_thread>> threads;
    explicit idle_threads(long n) {
        for (long i = 0; i < n; ++i) threads.push_back(std::make_unique<idle_thread>());
    }
};

// A thread that runs all the time (a busy loop) until destroyed.
struct busy_thread {
    std::atomic<bool> stop{false};
    std::atomic<pid_t> tid{0};
    std::thread t{[this] {
        tid = containers::thread_task_traits::self();
        volatile unsigned long sink = 0;
        while (!stop.load(std::memory_order_relaxed)) sink = sink + 1;
    }};
    busy_thread() {
        while (tid.load() == 0) std::this_thread::yield();
    }
    ~busy_thread() {
        stop = true;
        t.join();
    }
};

/// The kernel's way of moving a task: the tid of an idle thread written (write(2) on files kept
/// open) alternately into two cgroups' tasks files (children `a` and `b` of the scratch
/// directory); the task goes back to the root afterwards.
inline void move_between_kernel_cgroups(benchmark::State& state, kernel_scratch const& scratch, char const* a, char const* b) {
    if (!scratch.ok) return state.SkipWithError((scratch.root + " is not writable").c_str());
    idle_thread t;
    std::string const id = std::to_string(t.tid);
    int fds[2] = {::open(scratch.path(std::string(a) + "/tasks").c_str(), O_WRONLY), ::open(scratch.path(std::string(b) + "/tasks").c_str(), O_WRONLY)};
    bool to_b = true;
    for (auto _ : state) {
        if (::write(fds[to_b], id.data(), id.size()) < 0) state.SkipWithError(std::strerror(errno));
        to_b = !to_b;
    }
    ::close(fds[0]);
    ::close(fds[1]);
    scratch.to_root(t.tid);
}

/// The library's way: `tid` attached alternately to the groups at paths `a` and `b` of `h`; the
/// task leaves the hierarchy afterwards.
template <class H>
void move_between_library_groups(benchmark::State& state, H& h, std::string const& a, std::string const& b, pid_t tid) {
    typename H::container* ca = nullptr;
    typename H::container* cb = nullptr;
    if (h.lookup(a, ca) || h.lookup(b, cb)) return state.SkipWithError("setup");
    bool to_b = true;
    for (auto _ : state) {
        if (h.attach(tid, to_b ? *cb : *ca)) state.SkipWithError("attach failed");
        to_b = !to_b;
    }
    (void)h.exit(tid);
}

// Keeps each benchmark's time per iteration (ns; the median where runs are repeated) while
// printing as usual.
class ratio_reporter : public benchmark::ConsoleReporter {
public:
    std::map<std::string, double> ns;      // wall time per iteration
    std::map<std::string, double> cpu_ns;  // CPU time per iteration (summed over threads)
    std::map<std::string, double> counters;  // "run name:counter name" -> the counter's value
    void ReportRuns(std::vector<Run> const& runs) override {
        for (Run const& r : runs) {
            if (r.error_occurred) continue;
            if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
            ns[r.run_name.str()] = r.GetAdjustedRealTime();
            cpu_ns[r.run_name.str()] = r.GetAdjustedCPUTime();
            for (auto const& [name, c] : r.counters) counters[r.run_name.str() + ":" + name] = c.value;
        }
        ConsoleReporter::ReportRuns(runs);
    }
};

struct row {
    std::string what;
    std::string lib;
    std::string peer;
    char const* target;
    double max_ns;          // the library's time must be at most this
    double max_over_peer;   // and at most this multiple of the peer's (0: no such bound)
    double min_peer_over;   // and the peer at least this multiple of the library's (0: none)
    bool cpu = false;       // compare CPU time rather than wall time: at a few nanoseconds the wall
                            // clock of this virtual machine is dominated by time stolen by its host
};

inline void print_rows(ratio_reporter const& r, std::vector<row> const& rows) {
    std::printf("\n| operation | library ns | peer | peer ns | peer / library | target | verdict |\n|---|---:|---|---:|---:|---|---|\n");
    for (row const& w : rows) {
        auto const& times = w.cpu ? r.cpu_ns : r.ns;
        auto l = times.find(w.lib);
        auto p = times.find(w.peer);
        if (l == times.end()) continue;
        double const lib_ns = l->second;
        bool const have_peer = p != times.end();
        double const ratio = have_peer ? lib_ns / p->second : 0;
        bool met = lib_ns <= w.max_ns;
        if (w.max_over_peer > 0) met = met && have_peer && ratio <= w.max_over_peer;
        if (w.min_peer_over > 0) met = met && have_peer && 1 / ratio >= w.min_peer_over;
        char peer_ns[32] = "not measured";
        char speedup[32] = "-";
        if (have_peer) {
            std::snprintf(peer_ns, sizeof peer_ns, "%.2f", p->second);
            std::snprintf(speedup, sizeof speedup, "%.2fx", 1 / ratio);
        }
        std::printf("| %s | %.2f%s | %s | %s | %s | %s | %s |\n", w.what.c_str(), lib_ns, w.cpu ? " (cpu)" : "", w.peer.c_str(), peer_ns, speedup,
                    w.target, met ? "met" : "NOT met");
    }
}

}  // namespace bench
