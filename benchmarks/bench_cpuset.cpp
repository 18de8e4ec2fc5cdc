// The cpuset subsystem against its peers, in the same run: the kernel's cgroup v1 cpuset (under a
// directory this program creates and removes) and bare sched_setaffinity calls, the floor of any
// affinity change. Prints each target as a ratio at the end.
#include "bench_support.hpp"

namespace {
using namespace bench;
using H = containers::hierarchy<>;
using C = H::container;
namespace fs = containers::fs;

kernel_scratch* scratch = nullptr;
H* hier = nullptr;
containers::cpumask online;
std::size_t cpu_a = 0;  // two CPUs to alternate between (the same one on a 1-CPU machine)
std::size_t cpu_b = 0;

std::string const& cpu_text(bool b) {
    static std::string const a_text = std::to_string(cpu_a);
    static std::string const b_text = std::to_string(cpu_b);
    return b ? b_text : a_text;
}

// ---- attach with a real affinity change ----------------------------------------------------------

void attach_library(benchmark::State& state) {
    idle_thread t;
    move_between_library_groups(state, *hier, "/a", "/b", t.tid);
}
BENCHMARK(attach_library)->Name("attach_with_affinity/library");

void setaffinity_floor(benchmark::State& state) {
    idle_thread t;
    auto sa = containers::cpumask::range(cpu_a, cpu_a).to_cpu_set();
    auto sb = containers::cpumask::range(cpu_b, cpu_b).to_cpu_set();
    bool to_b = true;
    for (auto _ : state) {
        auto const& s = to_b ? sb : sa;
        if (::sched_setaffinity(t.tid, s.bytes, s.set.get()) != 0) state.SkipWithError("sched_setaffinity failed");
        to_b = !to_b;
    }
}
BENCHMARK(setaffinity_floor)->Name("attach_with_affinity/sched_setaffinity");

void attach_kernel(benchmark::State& state) { move_between_kernel_cgroups(state, *scratch, "ka", "kb"); }

// ---- create + configure + remove -----------------------------------------------------------------

void lifecycle_library(benchmark::State& state) {
    std::string const mems = hier->state_of<containers::cpuset>(hier->top()).mems.to_list();
    for (auto _ : state) {
        if (fs::mkdir(*hier, "/c") || fs::write(*hier, "/c/cpuset.cpus", cpu_text(true)) || fs::write(*hier, "/c/cpuset.mems", mems) ||
            fs::rmdir(*hier, "/c")) {
            state.SkipWithError("lifecycle failed");
        }
    }
}
BENCHMARK(lifecycle_library)->Name("create_configure_remove/library_path");

void lifecycle_typed(benchmark::State& state) {
    containers::cpuset& cs = *hier->subsystem<containers::cpuset>();
    containers::cpumask const cpus = containers::cpumask::range(cpu_b, cpu_b);
    containers::cpumask const mems = cs.machine().online_nodes;
    for (auto _ : state) {
        C* c = nullptr;
        if (hier->mkdir(hier->top(), "c", &c) || cs.set_cpus(*c, cpus) || cs.set_mems(*c, mems) || hier->rmdir(*c)) {
            state.SkipWithError("lifecycle failed");
        }
    }
}
BENCHMARK(lifecycle_typed)->Name("create_configure_remove/library");

void lifecycle_kernel(benchmark::State& state) {
    if (!scratch->ok) return state.SkipWithError("/sys/fs/cgroup/cpuset is not writable");
    std::string const dir = scratch->dir + "/kc";
    std::string const mems = read_file(std::string(cpuset_root) + "/cpuset.mems");
    for (auto _ : state) {
        if (::mkdir(dir.c_str(), 0755) != 0 || !write_file(dir + "/cpuset.cpus", cpu_text(true)) ||
            !write_file(dir + "/cpuset.mems", mems) || ::rmdir(dir.c_str()) != 0) {
            state.SkipWithError(std::strerror(errno));
        }
    }
}

// ---- writing cpus of an empty cpuset ------------------------------------------------------------

void write_cpus_library(benchmark::State& state) {
    bool b = true;
    for (auto _ : state) {
        if (fs::write(*hier, "/e/cpuset.cpus", cpu_text(b))) state.SkipWithError("write failed");
        b = !b;
    }
}
BENCHMARK(write_cpus_library)->Name("write_cpus_empty/library_path");

void set_cpus_library(benchmark::State& state) {
    C* e = nullptr;
    if (hier->lookup("/e", e)) return state.SkipWithError("setup");
    containers::cpuset& cs = *hier->subsystem<containers::cpuset>();
    containers::cpumask const masks[2] = {containers::cpumask::range(cpu_a, cpu_a), containers::cpumask::range(cpu_b, cpu_b)};
    bool b = true;
    for (auto _ : state) {
        if (cs.set_cpus(*e, masks[b])) state.SkipWithError("set_cpus failed");
        b = !b;
    }
}
BENCHMARK(set_cpus_library)->Name("write_cpus_empty/library");

void write_cpus_kernel(benchmark::State& state) {
    if (!scratch->ok) return state.SkipWithError("/sys/fs/cgroup/cpuset is not writable");
    int fd = ::open((scratch->dir + "/ke/cpuset.cpus").c_str(), O_WRONLY);
    bool b = true;
    for (auto _ : state) {
        std::string const& v = cpu_text(b);
        if (::pwrite(fd, v.data(), v.size(), 0) < 0) state.SkipWithError(std::strerror(errno));
        b = !b;
    }
    ::close(fd);
}

// ---- changing the CPUs of a cpuset that holds N tasks ---------------------------------------------

void change_cpus_library(benchmark::State& state) {
    idle_threads g(state.range(0));
    auto& threads = g.threads;
    std::string const path = "/n" + std::to_string(state.range(0));
    (void)fs::mkdir(*hier, path);
    if (fs::write(*hier, path + "/cpuset.cpus", online.to_list()) ||
        fs::write(*hier, path + "/cpuset.mems", hier->state_of<containers::cpuset>(hier->top()).mems.to_list())) {
        return state.SkipWithError("setup");
    }
    for (auto& t : threads) (void)fs::write(*hier, path + "/tasks", std::to_string(t->tid));
    C* c = nullptr;
    if (hier->lookup(path, c)) return state.SkipWithError("setup");
    containers::cpuset& cs = *hier->subsystem<containers::cpuset>();
    containers::cpumask const masks[2] = {containers::cpumask::range(cpu_a, cpu_a), containers::cpumask::range(cpu_b, cpu_b)};
    bool b = true;
    for (auto _ : state) {
        if (cs.set_cpus(*c, masks[b])) state.SkipWithError("set_cpus failed");
        b = !b;
    }
    for (auto& t : threads) (void)hier->exit(t->tid);
}
BENCHMARK(change_cpus_library)->Name("change_cpus_with_tasks/library")->Arg(1)->Arg(4)->Arg(16);

void change_cpus_floor(benchmark::State& state) {
    idle_threads g(state.range(0));
    auto& threads = g.threads;
    auto sa = containers::cpumask::range(cpu_a, cpu_a).to_cpu_set();
    auto sb = containers::cpumask::range(cpu_b, cpu_b).to_cpu_set();
    bool b = true;
    for (auto _ : state) {
        auto const& s = b ? sb : sa;
        for (auto& t : threads) (void)::sched_setaffinity(t->tid, s.bytes, s.set.get());
        b = !b;
    }
}
BENCHMARK(change_cpus_floor)->Name("change_cpus_with_tasks/sched_setaffinity")->Arg(1)->Arg(4)->Arg(16);

// ---- reading the current thread's effective CPUs --------------------------------------------------

void current_cpus_library(benchmark::State& state) {
    C* a = nullptr;
    if (hier->lookup("/a", a) || hier->attach_self(*a)) return state.SkipWithError("attach_self failed");
    containers::read_section rs;
    for (auto _ : state) {
        benchmark::DoNotOptimize(&containers::cpuset::current_cpus(*hier));
        benchmark::ClobberMemory();
    }
    (void)hier->exit(containers::thread_task_traits::self());
}
BENCHMARK(current_cpus_library)->Name("current_cpus/library");

thread_local containers::cpumask const* tls_mask = nullptr;
void current_cpus_floor(benchmark::State& state) {
    tls_mask = &online;
    for (auto _ : state) {
        benchmark::DoNotOptimize(tls_mask);
        benchmark::ClobberMemory();
    }
}
BENCHMARK(current_cpus_floor)->Name("current_cpus/thread_local_floor");

// The kernel's side runs last: cgroupfs leaves deferred work (RCU callbacks, css release)
// that would otherwise burn CPU under the library's measurements.
BENCHMARK(attach_kernel)->Name("attach_with_affinity/kernel");
BENCHMARK(lifecycle_kernel)->Name("create_configure_remove/kernel");
BENCHMARK(write_cpus_kernel)->Name("write_cpus_empty/kernel");

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    // Benchmarks move this process's threads; keep the main thread's affinity to restore it.
    auto saved = containers::cpumask::range(0, 4095).to_cpu_set();
    ::sched_getaffinity(0, saved.bytes, saved.set.get());

    kernel_scratch ks;
    scratch = &ks;
    H h;
    containers::subsystem_handle<containers::cpuset, H> cs;
    if (h.register_subsystem(cs)) return 1;
    hier = &h;
    online = cs.subsystem().machine().online_cpus & cs.subsystem().machine().allowed_cpus;
    cpu_a = online.first();
    cpu_b = online.extent() - 1;
    std::string const mems = cs.state(h.top()).mems.to_list();
    for (auto const& [name, cpu] : {std::pair{"/a", cpu_a}, std::pair{"/b", cpu_b}, std::pair{"/e", cpu_a}}) {
        if (fs::mkdir(h, name) || fs::write(h, std::string(name) + "/cpuset.cpus", std::to_string(cpu)) ||
            fs::write(h, std::string(name) + "/cpuset.mems", mems)) {
            return 1;
        }
    }
    if (ks.ok) {
        std::string const kmems = read_file(std::string(cpuset_root) + "/cpuset.mems");
        ks.ok = ks.child("ka", std::to_string(cpu_a), kmems) && ks.child("kb", std::to_string(cpu_b), kmems) &&
                ks.child("ke", std::to_string(cpu_a), kmems);
    }

    ratio_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);

    std::vector<row> rows{
        {"attach with a real affinity change", "attach_with_affinity/library", "attach_with_affinity/sched_setaffinity",
         "<= 1.3x one bare sched_setaffinity", 1e9, 1.3, 0},
        {"attach with a real affinity change (kernel)", "attach_with_affinity/library", "attach_with_affinity/kernel",
         "(the kernel's tasks file)", 1e9, 0, 0},
        {"create + configure(cpus, mems) + remove (typed)", "create_configure_remove/library", "create_configure_remove/kernel",
         "<= 1 us, kernel >= 100x", 1000, 0, 100},
        {"create + configure(cpus, mems) + remove (by path)", "create_configure_remove/library_path",
         "create_configure_remove/kernel", "(for reference)", 1e9, 0, 0},
        {"write cpus of an empty cpuset (set_cpus)", "write_cpus_empty/library", "write_cpus_empty/kernel", "<= 300 ns", 300, 0, 0},
        {"write cpus of an empty cpuset (by path, text)", "write_cpus_empty/library_path", "write_cpus_empty/kernel", "(for reference)",
         1e9, 0, 0},
        {"read the current thread's effective CPUs", "current_cpus/library", "current_cpus/thread_local_floor", "<= 3 ns", 3, 0, 0,
         true},
    };
    for (int n : {1, 4, 16}) {
        std::string const suffix = "/" + std::to_string(n);
        rows.push_back({"change cpus of a cpuset with " + std::to_string(n) + " tasks", "change_cpus_with_tasks/library" + suffix,
                        "change_cpus_with_tasks/sched_setaffinity" + suffix, "<= 1.3x N bare sched_setaffinity", 1e9, 1.3, 0});
    }
    print_rows(reporter, rows);
    std::printf("\n(CPUs alternated: %zu and %zu; %zu online)\n", cpu_a, cpu_b, online.count());
    ::sched_setaffinity(0, saved.bytes, saved.set.get());
    benchmark::Shutdown();
    return 0;
}
