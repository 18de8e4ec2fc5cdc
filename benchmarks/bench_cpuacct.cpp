// The cpuacct subsystem against the kernel's cgroup v1 cpuacct, in the same run (under a directory
// of /sys/fs/cgroup/cpuacct this program creates and removes): reading cpuacct.usage of a group
// with N threads, and moving a thread, with and without the subsystem. Prints ratios at the end,
// in CPU time: on the shared 2-core VM the wall clock is dominated by other load.
#include "bench_support.hpp"

#include <atomic>
#include <memory>

namespace {
using namespace bench;
using H = containers::hierarchy<>;
using C = H::container;
namespace fs = containers::fs;

constexpr char const* cpuacct_root = "/sys/fs/cgroup/cpuacct";

// A scratch directory of ours in the kernel's cpuacct hierarchy; children on demand. Threads go
// back to the root and the directories are removed at exit, children first.
struct cpuacct_scratch {
    std::string dir;
    bool ok = false;
    std::vector<std::string> children;
    cpuacct_scratch() {
        if (::access((std::string(cpuacct_root) + "/tasks").c_str(), W_OK) != 0) return;
        dir = std::string(cpuacct_root) + "/containers-bench-" + std::to_string(::getpid());
        ok = ::mkdir(dir.c_str(), 0755) == 0;
    }
    bool child(std::string const& name) {
        if (!ok) return false;
        if (::mkdir((dir + "/" + name).c_str(), 0755) != 0) return errno == EEXIST;  // a repetition
        children.push_back(dir + "/" + name);
        return true;
    }
    ~cpuacct_scratch() {
        if (dir.empty()) return;
        children.push_back(dir);
        for (std::string const& sub : children) {
            std::string tasks = read_file(sub + "/tasks");
            for (std::size_t pos = 0; pos < tasks.size();) {
                std::size_t end = tasks.find('\n', pos);
                write_file(std::string(cpuacct_root) + "/tasks", tasks.substr(pos, end - pos));
                pos = end == std::string::npos ? tasks.size() : end + 1;
            }
            ::rmdir(sub.c_str());
        }
    }
};

cpuacct_scratch* scratch = nullptr;
H* hier = nullptr;       // with cpuacct
H* bare = nullptr;       // without subsystems

// ---- reading cpuacct.usage of a group with N threads ---------------------------------------------

struct group_of_threads {
    std::vector<std::unique_ptr<idle_thread>> threads;
    explicit group_of_threads(long n) {
        for (long i = 0; i < n; ++i) threads.push_back(std::make_unique<idle_thread>());
    }
};

void read_usage_library(benchmark::State& state) {
    group_of_threads g(state.range(0));
    std::string const path = "/r" + std::to_string(state.range(0));
    C* c = nullptr;
    (void)fs::mkdir(*hier, path);  // EEXIST in a repetition
    if (hier->lookup(path, c)) return state.SkipWithError("setup");
    for (auto& t : g.threads) (void)hier->attach(t->tid, *c);
    containers::cpuacct& ca = *hier->subsystem<containers::cpuacct>();
    for (auto _ : state) benchmark::DoNotOptimize(ca.usage(*c));
    for (auto& t : g.threads) (void)hier->exit(t->tid);
}
BENCHMARK(read_usage_library)->Name("read_usage/library")->Arg(1)->Arg(16)->Arg(64);

void read_usage_library_path(benchmark::State& state) {
    group_of_threads g(state.range(0));
    std::string const path = "/p" + std::to_string(state.range(0));
    C* c = nullptr;
    (void)fs::mkdir(*hier, path);  // EEXIST in a repetition
    if (hier->lookup(path, c)) return state.SkipWithError("setup");
    for (auto& t : g.threads) (void)hier->attach(t->tid, *c);
    std::string out;
    for (auto _ : state) {
        out.clear();
        if (fs::read(*hier, path + "/cpuacct.usage", out)) state.SkipWithError("read failed");
    }
    for (auto& t : g.threads) (void)hier->exit(t->tid);
}
BENCHMARK(read_usage_library_path)->Name("read_usage/library_path")->Arg(1)->Arg(16)->Arg(64);

void read_usage_kernel(benchmark::State& state) {
    std::string const name = "k" + std::to_string(state.range(0));
    if (!scratch->child(name)) return state.SkipWithError("/sys/fs/cgroup/cpuacct is not writable");
    group_of_threads g(state.range(0));
    std::string const dir = scratch->dir + "/" + name;
    for (auto& t : g.threads) write_file(dir + "/tasks", std::to_string(t->tid));
    int fd = ::open((dir + "/cpuacct.usage").c_str(), O_RDONLY);
    char buf[64];
    for (auto _ : state) {
        if (::pread(fd, buf, sizeof buf, 0) <= 0) state.SkipWithError(std::strerror(errno));
    }
    ::close(fd);
    for (auto& t : g.threads) write_file(std::string(cpuacct_root) + "/tasks", std::to_string(t->tid));
}

// ---- moving a thread -----------------------------------------------------------------------------

void move(benchmark::State& state, H& h) {
    idle_thread t;
    C* a = nullptr;
    C* b = nullptr;
    if (h.lookup("/a", a) || h.lookup("/b", b)) return state.SkipWithError("setup");
    bool to_b = true;
    for (auto _ : state) {
        if (h.attach(t.tid, to_b ? *b : *a)) state.SkipWithError("attach failed");
        to_b = !to_b;
    }
    (void)h.exit(t.tid);
}
void move_cpuacct(benchmark::State& state) { move(state, *hier); }
BENCHMARK(move_cpuacct)->Name("move/library_cpuacct");
void move_bare(benchmark::State& state) { move(state, *bare); }
BENCHMARK(move_bare)->Name("move/library_no_subsystem");

// A thread that runs all the time: each move finds new run time, so cpuacct reads its user and
// system time too (/proc/TID/task/TID/stat). CPU time is the benchmark thread's own.
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

void move_busy(benchmark::State& state, H& h) {
    busy_thread t;
    C* a = nullptr;
    C* b = nullptr;
    if (h.lookup("/a", a) || h.lookup("/b", b)) return state.SkipWithError("setup");
    bool to_b = true;
    for (auto _ : state) {
        if (h.attach(t.tid, to_b ? *b : *a)) state.SkipWithError("attach failed");
        to_b = !to_b;
    }
    (void)h.exit(t.tid);
}
void move_busy_cpuacct(benchmark::State& state) { move_busy(state, *hier); }
BENCHMARK(move_busy_cpuacct)->Name("move_running/library_cpuacct");
void move_busy_bare(benchmark::State& state) { move_busy(state, *bare); }
BENCHMARK(move_busy_bare)->Name("move_running/library_no_subsystem");

void move_kernel(benchmark::State& state) {
    if (!scratch->ok) return state.SkipWithError("/sys/fs/cgroup/cpuacct is not writable");
    idle_thread t;
    std::string const id = std::to_string(t.tid);
    int fds[2] = {::open((scratch->dir + "/ka/tasks").c_str(), O_WRONLY), ::open((scratch->dir + "/kb/tasks").c_str(), O_WRONLY)};
    bool to_b = true;
    for (auto _ : state) {
        if (::write(fds[to_b], id.data(), id.size()) < 0) state.SkipWithError(std::strerror(errno));
        to_b = !to_b;
    }
    ::close(fds[0]);
    ::close(fds[1]);
    write_file(std::string(cpuacct_root) + "/tasks", id);
}

// The kernel's side runs last: cgroupfs leaves deferred work behind.
BENCHMARK(read_usage_kernel)->Name("read_usage/kernel")->Arg(1)->Arg(16)->Arg(64);
BENCHMARK(move_kernel)->Name("move/kernel_cpuacct");

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    cpuacct_scratch ks;
    scratch = &ks;
    if (ks.ok) ks.ok = ks.child("ka") && ks.child("kb");
    H h;
    containers::subsystem_handle<containers::cpuacct, H> ca;
    if (h.register_subsystem(ca)) return 1;
    hier = &h;
    H plain;
    bare = &plain;
    for (H* x : {&h, &plain}) {
        if (fs::mkdir(*x, "/a") || fs::mkdir(*x, "/b")) return 1;
    }

    ratio_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);

    std::vector<row> rows;
    for (int n : {1, 16, 64}) {
        std::string const s = "/" + std::to_string(n);
        rows.push_back({"read cpuacct.usage, " + std::to_string(n) + " threads (typed)", "read_usage/library" + s, "read_usage/kernel" + s,
                        "(reference: one clock read per thread)", 1e9, 0, 0, true});
        rows.push_back({"read cpuacct.usage, " + std::to_string(n) + " threads (by path)", "read_usage/library_path" + s,
                        "read_usage/kernel" + s, "(reference)", 1e9, 0, 0, true});
    }
    rows.push_back({"move an idle thread, with cpuacct", "move/library_cpuacct", "move/library_no_subsystem", "(the added cost of cpuacct)", 1e9, 0, 0, true});
    rows.push_back({"move a running thread, with cpuacct", "move_running/library_cpuacct", "move_running/library_no_subsystem",
                    "(the added cost of cpuacct)", 1e9, 0, 0, true});
    rows.push_back({"move an idle thread, with cpuacct (kernel)", "move/library_cpuacct", "move/kernel_cpuacct", "(the kernel's tasks file)", 1e9, 0, 0, true});
    print_rows(reporter, rows);
    benchmark::Shutdown();
    return 0;
}
