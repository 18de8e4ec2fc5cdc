// Shared by the benchmarks: the kernel's side (a scratch cpuset directory of our own), an idle
// thread to move around, and a reporter that prints each target as a ratio at the end of a run.
#pragma once

#include <containers/containers.hpp>

#include <benchmark/benchmark.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
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

// A scratch directory of ours in the kernel's hierarchy, with two children that tasks can join.
struct kernel_scratch {
    std::string dir;
    bool ok = false;
    kernel_scratch() {
        if (::access((std::string(cpuset_root) + "/tasks").c_str(), W_OK) != 0) return;
        dir = std::string(cpuset_root) + "/containers-bench-" + std::to_string(::getpid());
        if (::mkdir(dir.c_str(), 0755) != 0) return;
        std::string const cpus = read_file(std::string(cpuset_root) + "/cpuset.cpus");
        std::string const mems = read_file(std::string(cpuset_root) + "/cpuset.mems");
        ok = write_file(dir + "/cpuset.cpus", cpus) && write_file(dir + "/cpuset.mems", mems);
        for (char const* child : {"/a", "/b"}) {
            ok = ok && ::mkdir((dir + child).c_str(), 0755) == 0 && write_file(dir + child + "/cpuset.cpus", cpus) &&
                 write_file(dir + child + "/cpuset.mems", mems);
        }
    }
    ~kernel_scratch() {
        if (dir.empty()) return;
        // Tasks go back to the root before the directories can go; children first.
        std::vector<std::string> dirs;
        if (DIR* d = ::opendir(dir.c_str())) {
            while (dirent* e = ::readdir(d)) {
                if (e->d_type == DT_DIR && e->d_name[0] != '.') dirs.push_back(dir + "/" + e->d_name);
            }
            ::closedir(d);
        }
        dirs.push_back(dir);
        for (std::string const& sub : dirs) {
            std::string tasks = read_file(sub + "/tasks");
            for (std::size_t pos = 0; pos < tasks.size();) {
                std::size_t end = tasks.find('\n', pos);
                write_file(std::string(cpuset_root) + "/tasks", tasks.substr(pos, end - pos));
                pos = end == std::string::npos ? tasks.size() : end + 1;
            }
            ::rmdir(sub.c_str());
        }
    }
    /// A child cpuset with the given CPUs and nodes (empty strings: none).
    bool child(char const* name, std::string const& cpus, std::string const& mems) const {
        std::string const p = dir + "/" + name;
        return ok && ::mkdir(p.c_str(), 0755) == 0 && (cpus.empty() || write_file(p + "/cpuset.cpus", cpus)) &&
               (mems.empty() || write_file(p + "/cpuset.mems", mems));
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

/// The kernel's way of moving a task: its tid written alternately into two cgroups' tasks files
/// (children `a` and `b` of the scratch directory); the task goes back to the root afterwards.
inline void move_between_kernel_cgroups(benchmark::State& state, kernel_scratch const& scratch, char const* a, char const* b) {
    if (!scratch.ok) return state.SkipWithError("/sys/fs/cgroup/cpuset is not writable");
    idle_thread t;
    std::string const id = std::to_string(t.tid);
    int fds[2] = {::open((scratch.dir + "/" + a + "/tasks").c_str(), O_WRONLY), ::open((scratch.dir + "/" + b + "/tasks").c_str(), O_WRONLY)};
    bool to_b = true;
    for (auto _ : state) {
        if (::write(fds[to_b], id.data(), id.size()) < 0) state.SkipWithError(std::strerror(errno));
        to_b = !to_b;
    }
    ::close(fds[0]);
    ::close(fds[1]);
    write_file(std::string(cpuset_root) + "/tasks", id);
}

// Keeps each benchmark's time per iteration (ns; the median where runs are repeated) while
// printing as usual.
class ratio_reporter : public benchmark::ConsoleReporter {
public:
    std::map<std::string, double> ns;      // wall time per iteration
    std::map<std::string, double> cpu_ns;  // CPU time per iteration (summed over threads)
    void ReportRuns(std::vector<Run> const& runs) override {
        for (Run const& r : runs) {
            if (r.error_occurred) continue;
            if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
            ns[r.run_name.str()] = r.GetAdjustedRealTime();
            cpu_ns[r.run_name.str()] = r.GetAdjustedCPUTime();
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
