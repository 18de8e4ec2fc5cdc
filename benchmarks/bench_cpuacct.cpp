// The cpuacct subsystem against the kernel's cgroup v1 cpuacct, in the same run (under a directory
// of /sys/fs/cgroup/cpuacct this program creates and removes): reading cpuacct.usage of a group
// with N threads, and moving a thread, with and without the subsystem. Prints ratios at the end,
// in CPU time: on the shared 2-core VM the wall clock is dominated by other load.
#include "bench_support.hpp"

namespace {
using namespace bench;
using H = containers::hierarchy<>;
using C = H::container;
namespace fs = containers::fs;

constexpr char const* cpuacct_root = "/sys/fs/cgroup/cpuacct";

kernel_scratch* scratch = nullptr;
H* hier = nullptr;       // with cpuacct
H* bare = nullptr;       // without subsystems

// ---- reading cpuacct.usage of a group with N threads ---------------------------------------------

void read_usage_library(benchmark::State& state) {
    idle_threads g(state.range(0));
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
    idle_threads g(state.range(0));
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
    idle_threads g(state.range(0));
    std::string const dir = scratch->dir + "/" + name;
    for (auto& t : g.threads) write_tid(dir + "/tasks", t->tid);
    int fd = ::open((dir + "/cpuacct.usage").c_str(), O_RDONLY);
    char buf[64];
    for (auto _ : state) {
        if (::pread(fd, buf, sizeof buf, 0) <= 0) state.SkipWithError(std::strerror(errno));
    }
    ::close(fd);
    for (auto& t : g.threads) scratch->to_root(t->tid);
}

// ---- moving a thread -----------------------------------------------------------------------------

void move(benchmark::State& state, H& h) {
    idle_thread t;
    move_between_library_groups(state, h, "/a", "/b", t.tid);
}
void move_cpuacct(benchmark::State& state) { move(state, *hier); }
BENCHMARK(move_cpuacct)->Name("move/library_cpuacct");
void move_bare(benchmark::State& state) { move(state, *bare); }
BENCHMARK(move_bare)->Name("move/library_no_subsystem");

// A thread that runs all the time: each move finds new run time, so cpuacct reads its user and
// system time too (/proc/TID/task/TID/stat). CPU time is the benchmark thread's own.
void move_busy(benchmark::State& state, H& h) {
    busy_thread t;
    move_between_library_groups(state, h, "/a", "/b", t.tid);
}
void move_busy_cpuacct(benchmark::State& state) { move_busy(state, *hier); }
BENCHMARK(move_busy_cpuacct)->Name("move_running/library_cpuacct");
void move_busy_bare(benchmark::State& state) { move_busy(state, *bare); }
BENCHMARK(move_busy_bare)->Name("move_running/library_no_subsystem");

void move_kernel(benchmark::State& state) { move_between_kernel_cgroups(state, *scratch, "ka", "kb"); }

// The kernel's side runs last: cgroupfs leaves deferred work behind.
BENCHMARK(read_usage_kernel)->Name("read_usage/kernel")->Arg(1)->Arg(16)->Arg(64);
BENCHMARK(move_kernel)->Name("move/kernel_cpuacct");

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    kernel_scratch ks(cpuacct_root, {"ka", "kb"});
    scratch = &ks;
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
