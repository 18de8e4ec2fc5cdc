// The hierarchy core against its peers, measured in the same run: the kernel's cgroup v1 cpuset
// hierarchy (under a directory this program creates and removes) and the floors (a thread_local
// pointer read). After the runs it prints each target as a ratio.
#include <containers/containers.hpp>

#include "bench_support.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {
using namespace bench;

using H = containers::hierarchy<>;
using C = H::container;

// ---- the kernel's side -------------------------------------------------------------------------

kernel_scratch* scratch = nullptr;

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

void move_task_kernel(benchmark::State& state) { move_between_kernel_cgroups(state, *scratch, "a", "b"); }

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

// A grace period with no reader inside a section, next to its floor: the one membarrier
// system call that it makes.
void grace_period_library(benchmark::State& state) {
    for (auto _ : state) containers::detail::synchronize();
}
BENCHMARK(grace_period_library)->Name("grace_period/library");
void grace_period_floor(benchmark::State& state) {
    if (::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0) return state.SkipWithError("no membarrier");
    for (auto _ : state) benchmark::DoNotOptimize(::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0));
}
BENCHMARK(grace_period_floor)->Name("grace_period/membarrier_floor");

// ---- the report ------------------------------------------------------------------------------

// The kernel's side runs last: cgroupfs leaves deferred work (RCU callbacks, css release)
// that would otherwise burn CPU under the library's measurements.
BENCHMARK(create_remove_kernel)->Name("create_remove/kernel");
BENCHMARK(move_task_kernel)->Name("move_task/kernel");

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
        {"grace period, no reader inside", "grace_period/library", "grace_period/membarrier_floor", "(for reference)", 1e9, 0, 0},
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
