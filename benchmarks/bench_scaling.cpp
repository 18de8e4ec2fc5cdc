// How the costs grow: with the number of containers (to 1 000 000), of tasks (to 100 000), with
// depth (to 10 000), with the number of registered subsystems (0 to 8), and the memory per
// container and per task as the allocator counts it. Results go to the console
// and, with --benchmark_out, to a CSV file that scripts/run-benchmarks plots.
#include "bench_support.hpp"

#include <malloc.h>

namespace {
using namespace bench;

struct fiber {
    static std::uint64_t get() noexcept { return 0; }
};
using LH = containers::hierarchy<containers::logical_task_traits<std::uint64_t, fiber>, 8>;
using LC = LH::container;

// Bytes the allocator has handed out (resident size would hide reuse of freed memory).
long resident_bytes() { return static_cast<long>(::mallinfo2().uordblks); }

// ---- containers: create + remove one more beside N siblings -------------------------------------

void containers_create_remove(benchmark::State& state) {
    LH h;
    auto const n = static_cast<std::size_t>(state.range(0));
    long const before = resident_bytes();
    LC* c = nullptr;
    for (std::size_t i = 0; i < n; ++i) (void)h.mkdir(h.top(), std::to_string(i));  // (g++ 12 -O3 warns on "c" + ...)
    long const after = resident_bytes();
    for (auto _ : state) {
        if (h.mkdir(h.top(), "probe", &c) || h.rmdir(*c)) state.SkipWithError("mkdir/rmdir failed");
    }
    // A label, not a counter: Google Benchmark's CSV wants every counter in every run.
    if (n >= 10000) state.SetLabel(std::to_string((after - before) / static_cast<long>(n)) + " bytes/container");
}
BENCHMARK(containers_create_remove)->Name("scaling/containers")->RangeMultiplier(10)->Range(1, 1'000'000)->Unit(benchmark::kNanosecond);

// ---- tasks: move one task while N are known -------------------------------------------------------

void tasks_move(benchmark::State& state) {
    LH h;
    LC* a = nullptr;
    LC* b = nullptr;
    (void)h.mkdir(h.top(), "a", &a);
    (void)h.mkdir(h.top(), "b", &b);
    auto const n = static_cast<std::uint64_t>(state.range(0));
    long const before = resident_bytes();
    for (std::uint64_t id = 1; id <= n; ++id) (void)h.attach(id, *a);
    long const after = resident_bytes();
    bool to_b = true;
    for (auto _ : state) {
        if (h.attach(n / 2 + 1, to_b ? *b : *a)) state.SkipWithError("attach failed");
        to_b = !to_b;
    }
    if (n >= 10000) state.SetLabel(std::to_string((after - before) / static_cast<long>(n)) + " bytes/task");
}
BENCHMARK(tasks_move)->Name("scaling/tasks")->RangeMultiplier(10)->Range(1, 100'000);

// ---- depth: path lookup and path() at depth D ---------------------------------------------------

void depth_lookup(benchmark::State& state) {
    LH h;
    LC* c = &h.top();
    for (long i = 0; i < state.range(0); ++i) (void)h.mkdir(*c, "d", &c);
    std::string const path = h.path(*c);
    for (auto _ : state) {
        LC* found = nullptr;
        if (h.lookup(path, found) || found != c) state.SkipWithError("lookup failed");
    }
}
BENCHMARK(depth_lookup)->Name("scaling/depth_lookup")->RangeMultiplier(10)->Range(1, 10'000);

void depth_current(benchmark::State& state) {
    // Reading a task's container does not depend on depth: checked here.
    LH h;
    LC* c = &h.top();
    for (long i = 0; i < state.range(0); ++i) (void)h.mkdir(*c, "d", &c);
    (void)h.attach(7, *c);
    containers::read_section rs;
    for (auto _ : state) benchmark::DoNotOptimize(&h.container_of(7));
}
BENCHMARK(depth_current)->Name("scaling/depth_container_of")->RangeMultiplier(10)->Range(1, 10'000);

// ---- subsystems: moving a task with 0 to 8 subsystems that have every hook ----------------------

template <int N>
struct hooked : containers::subsystem_tag {
    static constexpr std::string_view name = "hooked";
    struct state {
        long joined = 0;
    };
    std::error_code create(state&, LC&) { return {}; }
    void destroy(state&, LC&) noexcept {}
    std::error_code can_attach(state&, LC&, containers::task_set<LC>) { return {}; }
    void cancel_attach(state&, LC&, containers::task_set<LC>) noexcept {}
    void attach(state& s, LC&, containers::task_set<LC> t) noexcept { s.joined += static_cast<long>(t.size()); }
    void post_attach(state&, LC&, containers::task_set<LC>) noexcept {}
};

// Registers hooked<0> .. hooked<k-1>.
template <int I = 0>
void register_first(LH& h, int k) {
    if constexpr (I < 8) {
        if (I >= k) return;
        containers::subsystem_handle<hooked<I>, LH> handle;
        (void)h.register_subsystem(handle);
        register_first<I + 1>(h, k);
    }
}

void subsystems_move(benchmark::State& state) {
    LH h;
    register_first(h, static_cast<int>(state.range(0)));
    LC* a = nullptr;
    LC* b = nullptr;
    (void)h.mkdir(h.top(), "a", &a);
    (void)h.mkdir(h.top(), "b", &b);
    (void)h.attach(1, *a);
    bool to_b = true;
    for (auto _ : state) {
        if (h.attach(1, to_b ? *b : *a)) state.SkipWithError("attach failed");
        to_b = !to_b;
    }
    if (h.subsystem_count() != static_cast<std::size_t>(state.range(0))) state.SkipWithError("registration failed");
}
BENCHMARK(subsystems_move)->Name("scaling/subsystems")->DenseRange(0, 8);

}  // namespace

BENCHMARK_MAIN();
