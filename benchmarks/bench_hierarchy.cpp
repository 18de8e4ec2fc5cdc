// The hierarchy core against its peers, measured in the same run: the kernel's cgroup v1 cpuset
// hierarchy (under a directory this program creates and removes) and the floors (a thread_local
// pointer read). After the runs it prints each target as a ratio.
#include <containers/containers.hpp>

#include <benchmark/benchmark.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace {

using H = containers::hierarchy<>;
using C = H::container;

// ---- the kernel's side -------------------------------------------------------------------------

constexpr char const* cpuset_root = "/sys/fs/cgroup/cpuset";

bool write_file(std::string const& path, std::string const& value) {
    int fd = ::open(path.c_str(), O_WRONLY);
    if (fd < 0) return false;
    bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
    ::close(fd);
    return ok;
}
std::string read_file(std::string const& path) {
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
        // Tasks go back to the root before the directories can go.
        for (char const* child : {"/a", "/b", ""}) {
            std::string tasks = read_file(dir + child + "/tasks");
            for (std::size_t pos = 0; pos < tasks.size();) {
                std::size_t end = tasks.find('\n', pos);
                write_file(std::string(cpuset_root) + "/tasks", tasks.substr(pos, end - pos));
                pos = end == std::string::npos ? tasks.size() : end + 1;
            }
        }
        ::rmdir((dir + "/a").c_str());
        ::rmdir((dir + "/b").c_str());
        ::rmdir((dir + "/c").c_str());
        ::rmdir(dir.c_str());
    }
};
kernel_scratch* scratch = nullptr;

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

// ---- create + remove -------------------------------------------------------------------------

void create_remove_library(benchmark::State& state) {
    H h;
    for (auto _ : state) {
        C* c = nullptr;
        if (h.mkdir(h.top(), "c", &c) || h.rmdir(*c)) state.SkipWithError("mkdir/rmdir failed");
    }
}
BENCHMARK(create_remove_library)->Name("create_remove/library");

void create_remove_kernel(benchmark::State& state) {
    if (!scratch->ok) return state.SkipWithError("/sys/fs/cgroup/cpuset is not writable");
    std::string const path = scratch->dir + "/c";
    for (auto _ : state) {
        if (::mkdir(path.c_str(), 0755) != 0 || ::rmdir(path.c_str()) != 0) state.SkipWithError(std::strerror(errno));
    }
}
BENCHMARK(create_remove_kernel)->Name("create_remove/kernel");

// ---- moving a task between two containers ------------------------------------------------------

void move_task_library(benchmark::State& state) {
    H h;
    idle_thread t;
    C* a = nullptr;
    C* b = nullptr;
    if (h.mkdir(h.top(), "a", &a) || h.mkdir(h.top(), "b", &b) || h.attach(t.tid, *a)) return state.SkipWithError("setup");
    bool to_b = true;
    for (auto _ : state) {
        if (h.attach(t.tid, to_b ? *b : *a)) state.SkipWithError("attach failed");
        to_b = !to_b;
    }
}
BENCHMARK(move_task_library)->Name("move_task/library");

void move_task_kernel(benchmark::State& state) {
    if (!scratch->ok) return state.SkipWithError("/sys/fs/cgroup/cpuset is not writable");
    idle_thread t;
    std::string const id = std::to_string(t.tid);
    std::string const files[] = {scratch->dir + "/a/tasks", scratch->dir + "/b/tasks"};
    int fds[2] = {::open(files[0].c_str(), O_WRONLY), ::open(files[1].c_str(), O_WRONLY)};
    bool to_b = true;
    for (auto _ : state) {
        if (::write(fds[to_b], id.data(), id.size()) < 0) state.SkipWithError(std::strerror(errno));
        to_b = !to_b;
    }
    ::close(fds[0]);
    ::close(fds[1]);
    write_file(std::string(cpuset_root) + "/tasks", id);
}
BENCHMARK(move_task_kernel)->Name("move_task/kernel");

// ---- the read path ---------------------------------------------------------------------------

H* shared_hierarchy = nullptr;
C* shared_group = nullptr;
thread_local C* tls_pointer = nullptr;

void current_library(benchmark::State& state) {
    if (shared_hierarchy->attach_self(*shared_group)) return state.SkipWithError("attach_self failed");
    containers::read_section rs;  // as a runtime holds one across its scheduling loop
    for (auto _ : state) {
        benchmark::DoNotOptimize(&shared_hierarchy->current());
        benchmark::ClobberMemory();  // reload every time, as the floor below does
    }
    (void)shared_hierarchy->exit(containers::thread_task_traits::self());
}
void self_task_library(benchmark::State& state) {
    if (shared_hierarchy->attach_self(*shared_group)) return state.SkipWithError("attach_self failed");
    H::task const* self = shared_hierarchy->self_task();  // stable for the thread's life
    for (auto _ : state) {
        benchmark::DoNotOptimize(&self->container());
        benchmark::ClobberMemory();
    }
    (void)shared_hierarchy->exit(containers::thread_task_traits::self());
}

void current_library_with_section(benchmark::State& state) {
    if (shared_hierarchy->attach_self(*shared_group)) return state.SkipWithError("attach_self failed");
    for (auto _ : state) {
        containers::read_section rs;
        benchmark::DoNotOptimize(&shared_hierarchy->current());
        benchmark::ClobberMemory();
    }
    (void)shared_hierarchy->exit(containers::thread_task_traits::self());
}


void current_floor(benchmark::State& state) {
    tls_pointer = shared_group;
    for (auto _ : state) {
        benchmark::DoNotOptimize(tls_pointer);
        benchmark::ClobberMemory();
    }
}


void container_of_library(benchmark::State& state) {
    idle_thread t;
    if (shared_hierarchy->attach(t.tid, *shared_group)) return state.SkipWithError("attach failed");
    containers::read_section rs;
    for (auto _ : state) {
        benchmark::DoNotOptimize(&shared_hierarchy->container_of(t.tid));
        benchmark::ClobberMemory();
    }
    (void)shared_hierarchy->exit(t.tid);
}
BENCHMARK(container_of_library)->Name("container_of/library");

// ---- the report ------------------------------------------------------------------------------

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

void print_rows(ratio_reporter const& r, std::vector<row> const& rows) {
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

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    kernel_scratch ks;
    scratch = &ks;
    H shared;
    C* group = nullptr;
    if (shared.mkdir(shared.top(), "readers", &group)) return 1;
    shared_hierarchy = &shared;
    shared_group = group;

    // Reader threads from 1 up to the cores this machine has (16 on the device machine).
    for (int t = 1; t <= static_cast<int>(std::thread::hardware_concurrency()) && t <= 16; t *= 2) {
        benchmark::RegisterBenchmark("current/thread_local_floor", current_floor)->Threads(t)->UseRealTime();
        benchmark::RegisterBenchmark("current/library", current_library)->Threads(t)->UseRealTime();
        benchmark::RegisterBenchmark("self_task_container/library", self_task_library)->Threads(t)->UseRealTime();
        benchmark::RegisterBenchmark("current_in_own_section/library", current_library_with_section)->Threads(t)->UseRealTime();
    }
    ratio_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);

    unsigned const cores = std::thread::hardware_concurrency();
    std::string const one = "/real_time/threads:1";
    std::vector<row> rows{
        {"create + remove, no subsystems", "create_remove/library", "create_remove/kernel", "<= 300 ns, kernel >= 150x", 300, 0, 150},
        {"move a task, no subsystems", "move_task/library", "move_task/kernel", "<= 150 ns", 150, 0, 0},
        {"current(), 1 thread", "current/library" + one, "current/thread_local_floor" + one, "<= 2 ns, <= 2x floor", 2, 2, 0, true},
        {"self_task()->container(), 1 thread", "self_task_container/library" + one, "current/thread_local_floor" + one,
         "(for reference)", 1e9, 0, 0, true},
        {"read_section + current(), 1 thread", "current_in_own_section/library" + one, "current/thread_local_floor" + one,
         "(for reference)", 1e9, 0, 0, true},
        {"container_of(tid), another thread", "container_of/library", "current/thread_local_floor" + one, "(for reference)", 1e9, 0,
         0, true},
    };
    for (unsigned t = 2; t <= cores; t *= 2) {
        std::string const n = "/real_time/threads:" + std::to_string(t);
        rows.push_back({"current() per thread, " + std::to_string(t) + " reader threads (peer: 1 thread)", "current/library" + n,
                        "current/library" + one, "flat: <= 1.2x of 1 thread", 1e9, 1.2, 0, true});
        rows.push_back({"thread_local floor per thread, " + std::to_string(t) + " threads (peer: 1 thread)",
                        "current/thread_local_floor" + n, "current/thread_local_floor" + one, "(how the machine scales)", 1e9, 0, 0,
                        true});
    }
    print_rows(reporter, rows);
    std::printf("\nmemory: a container %zu bytes + its name; a task %zu bytes + %zu-%zu bytes of index; %u cores\n",
                H::container_bytes(0), H::task_bytes(), std::size_t{2} * 8, std::size_t{4} * 8, cores);
    std::printf("(reader threads measured up to the %u cores of this machine)\n", cores);
    benchmark::Shutdown();
    return 0;
}
