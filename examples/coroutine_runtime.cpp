// Logical tasks: a small runtime of C++20 coroutines whose groups are cpusets.
//
// The tasks are not threads: the hierarchy is parameterised by logical_task_traits, with task ids
// the runtime hands out and "the running task" being whatever its worker is resuming. Each worker
// thread is pinned to one CPU; a worker resumes a task only if the task's group's cpuset holds
// its CPU, so the group decides which workers may run its tasks. The integration points a runtime
// author needs, each marked below:
//   (1) attach at spawn, (2) fork inheritance, (3) exit at completion,
//   (4) reading a task's group on the hot path (lock-free, inside a read_section),
//   (5) moving a task between groups, effective at its next scheduling point,
//   (6) the cpuset refresh point: before resuming a task, the worker takes on the memory nodes of
//       the task's group (one comparison when they have not changed),
//   (7) the freezer: a worker does not resume a task whose group is freezing (may_run, lock-free),
//   (8) cpu weights: a stride scheduler picks the group with the least pass, each group's stride
//       being 1 / its effective weight (read lock-free), so that groups with cpu.shares 1024 and
//       4096 get CPU time 1:4.
#include <containers/containers.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <sched.h>
#include <string>
#include <time.h>
#include <thread>
#include <vector>

namespace ct = containers;

namespace {

thread_local std::uint64_t running = 0;  // the task this worker is resuming (0: none)
struct current_task {
    static std::uint64_t get() noexcept { return running; }
};
using hierarchy = ct::hierarchy<ct::logical_task_traits<std::uint64_t, current_task>>;
using cpuset = ct::basic_cpuset<hierarchy>;
using freezer = ct::basic_freezer<hierarchy>;
using cpu_weights = ct::basic_cpu<hierarchy>;

// A coroutine task: suspends at every scheduling point, records where each slice ran.
struct task {
    struct promise_type {
        std::uint64_t id = 0;
        task get_return_object() { return task{std::coroutine_handle<promise_type>::from_promise(*this)}; }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_always final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept {}
    };
    std::coroutine_handle<promise_type> handle;
};

class runtime {
public:
    runtime(hierarchy& h, std::vector<std::size_t> cpus) : h_(h), cpus_(std::move(cpus)) {}

    // (1) attach at spawn: a new task joins a group before it first runs.
    std::uint64_t spawn(task t, hierarchy::container& group) {
        std::uint64_t const id = next_id_++;
        t.handle.promise().id = id;
        if (std::error_code ec = h_.attach(id, group)) std::fprintf(stderr, "attach %llu: %s\n", (unsigned long long)id, ec.message().c_str());
        push(t.handle);
        return id;
    }
    // (2) fork inheritance: a task's child starts in its parent's group.
    std::uint64_t spawn_child(task t) {
        std::uint64_t const id = next_id_++;
        t.handle.promise().id = id;
        if (std::error_code ec = h_.fork(running, id)) std::fprintf(stderr, "fork: %s\n", ec.message().c_str());
        push(t.handle);
        return id;
    }

    /// Runs until every task finished (or the time is up), printing progress.
    void run(std::chrono::milliseconds budget) {
        stop_ = false;
        std::vector<std::thread> workers;
        for (std::size_t cpu : cpus_) workers.emplace_back([this, cpu] { work(cpu); });
        auto const deadline = std::chrono::steady_clock::now() + budget;
        while (!idle() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(40));
            std::printf(".");
            std::fflush(stdout);
        }
        stop_ = true;
        for (auto& w : workers) w.join();
    }

    bool idle() {
        std::lock_guard g(m_);
        return queue_.empty() && active_ == 0;
    }

private:
    void push(std::coroutine_handle<task::promise_type> h) {
        std::lock_guard g(m_);
        queue_.push_back(h);
    }

    void work(std::size_t cpu) {
        auto pin = ct::cpumask::range(cpu, cpu);
        ::sched_setaffinity(0, pin.affinity_bytes(), pin.affinity_data());  // this worker is CPU `cpu`
        while (!stop_) {
            std::coroutine_handle<task::promise_type> next;
            {
                std::lock_guard g(m_);
                for (auto it = queue_.begin(); it != queue_.end(); ++it) {
                    // (4) the task's group, read lock-free: may this worker run it?
                    ct::read_section rs;
                    hierarchy::container& group = h_.container_of(it->promise().id);
                    if (h_.state_of<cpuset>(group).published.load(std::memory_order_acquire)->cpus.test(cpu) &&
                        freezer::may_run(h_, it->promise().id)) {  // (7)
                        next = *it;
                        queue_.erase(it);
                        ++active_;
                        break;
                    }
                }
            }
            if (!next) {
                std::this_thread::yield();
                continue;
            }
            running = next.promise().id;
            if (std::error_code ec = cpuset::refresh(h_)) refresh_errors_++;  // (6)
            next.resume();  // runs until the task's next scheduling point
            running = 0;
            if (next.done()) {
                (void)h_.exit(next.promise().id);  // (3) exit at completion
                next.destroy();
            } else {
                push(next);
            }
            std::lock_guard g(m_);
            --active_;
        }
    }

    hierarchy& h_;
    std::vector<std::size_t> cpus_;
    std::atomic<std::uint64_t> next_id_{1};
    std::atomic<bool> stop_{false};
    std::mutex m_;
    std::deque<std::coroutine_handle<task::promise_type>> queue_;
    int active_ = 0;

public:
    std::atomic<int> refresh_errors_{0};
};

std::mutex log_mutex;
std::map<std::string, std::vector<int>> slices;  // task name -> CPU of each slice

task worker_task(std::string name, int steps, std::atomic<int>* progress) {
    for (int i = 0; i < steps; ++i) {
        {
            std::lock_guard g(log_mutex);
            slices[name].push_back(sched_getcpu());
        }
        ++*progress;
        auto const until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
        while (std::chrono::steady_clock::now() < until) {
        }
        co_await std::suspend_always{};  // a scheduling point
    }
}

task parent_task(runtime* rt, std::atomic<int>* progress) {
    rt->spawn_child(worker_task("child", 20, progress));  // inherits this task's group
    for (int i = 0; i < 5; ++i) {
        {
            std::lock_guard g(log_mutex);
            slices["parent"].push_back(sched_getcpu());
        }
        co_await std::suspend_always{};
    }
}

std::uint64_t thread_cpu_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// A task that burns 200 us of CPU per slice, forever.
task busy_task() {
    for (;;) {
        std::uint64_t const until = thread_cpu_ns() + 200'000;
        while (thread_cpu_ns() < until) {
        }
        co_await std::suspend_always{};
    }
}

// (8) Stride scheduling over groups: each round resumes one task of the group with the least pass,
// then advances that group's pass by its stride, 1 / effective weight. Deterministic: the slice
// counts depend only on the weights. Returns each group's slices and CPU time.
struct weighted_group {
    hierarchy::container* group;
    std::deque<std::coroutine_handle<task::promise_type>> ready;
    double pass = 0;
    int slices = 0;
    std::uint64_t cpu_ns = 0;
};
void run_by_weight(std::vector<weighted_group>& groups, int rounds) {
    for (int r = 0; r < rounds; ++r) {
        weighted_group* next = nullptr;
        for (auto& g : groups) {
            if (!g.ready.empty() && (next == nullptr || g.pass < next->pass)) next = &g;
        }
        if (next == nullptr) return;
        double const weight = cpu_weights::effective_weight(*next->group);  // lock-free
        auto h = next->ready.front();
        next->ready.pop_front();
        running = h.promise().id;
        std::uint64_t const t0 = thread_cpu_ns();
        h.resume();
        next->cpu_ns += thread_cpu_ns() - t0;
        running = 0;
        next->ready.push_back(h);
        next->slices++;
        next->pass += 1.0 / weight;
    }
}

std::string cpus_of(std::vector<int> const& v, std::size_t from, std::size_t to) {
    std::map<int, int> counts;
    for (std::size_t i = from; i < std::min(to, v.size()); ++i) counts[v[i]]++;
    std::string out;
    for (auto [cpu, n] : counts) out += "cpu" + std::to_string(cpu) + ":" + std::to_string(n) + " ";
    return out.empty() ? "-" : out;
}

}  // namespace

int main() {
    hierarchy h;
    ct::subsystem_handle<cpuset, hierarchy> cs;
    if (std::error_code ec = h.register_subsystem(cs)) return std::fprintf(stderr, "cpuset: %s\n", ec.message().c_str()), 1;
    ct::subsystem_handle<freezer, hierarchy> fz;
    if (std::error_code ec = h.register_subsystem(fz)) return std::fprintf(stderr, "freezer: %s\n", ec.message().c_str()), 1;
    ct::subsystem_handle<cpu_weights, hierarchy> cu;
    if (std::error_code ec = h.register_subsystem(cu)) return std::fprintf(stderr, "cpu: %s\n", ec.message().c_str()), 1;
    ct::cpumask const online = cs.subsystem().machine().online_cpus & cs.subsystem().machine().allowed_cpus;
    std::vector<std::size_t> cpus(online.begin(), online.end());
    std::size_t const left_cpu = cpus.front();
    std::size_t const right_cpu = cpus.back();
    std::string const mems = cs.subsystem().machine().online_nodes.to_list();
    for (auto [name, cpu] : {std::pair{"/left", left_cpu}, std::pair{"/right", right_cpu}}) {
        if (ct::fs::mkdir(h, name) || ct::fs::write(h, std::string(name) + "/cpuset.cpus", std::to_string(cpu)) ||
            ct::fs::write(h, std::string(name) + "/cpuset.mems", mems)) {
            return std::fprintf(stderr, "cannot configure %s\n", name), 1;
        }
    }
    hierarchy::container* left = nullptr;
    hierarchy::container* right = nullptr;
    (void)h.lookup("/left", left);
    (void)h.lookup("/right", right);
    std::printf("workers on CPUs %s; group left = cpu%zu, group right = cpu%zu\n", online.to_list().c_str(), left_cpu, right_cpu);

    runtime rt(h, cpus);
    std::atomic<int> progress{0};
    std::uint64_t const mover = rt.spawn(worker_task("mover", 40, &progress), *left);
    rt.spawn(worker_task("stayer", 40, &progress), *right);
    rt.spawn(parent_task(&rt, &progress), *left);

    // (5) Halfway through, move "mover" to the right group: its next slice runs there.
    // (7) Then freeze the right group for 50 ms: at most the slice already running ends.
    std::atomic<bool> finished{false};
    std::size_t ran_frozen = 0;
    std::thread driver([&] {
        while (progress < 20 && !finished) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (std::error_code ec = h.attach(mover, *right)) std::fprintf(stderr, "move: %s\n", ec.message().c_str());
        {
            std::lock_guard g(log_mutex);
            slices["mover (moved here)"].push_back(static_cast<int>(slices["mover"].size()));
        }
        auto right_slices = [] {
            std::lock_guard g(log_mutex);
            return slices["stayer"].size() + slices["mover"].size();
        };
        if (std::error_code ec = ct::fs::write(h, "/right/freezer.state", "FROZEN")) std::fprintf(stderr, "freeze: %s\n", ec.message().c_str());
        std::size_t const at_freeze = right_slices();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ran_frozen = right_slices() - at_freeze;
        if (std::error_code ec = ct::fs::write(h, "/right/freezer.state", "THAWED")) std::fprintf(stderr, "thaw: %s\n", ec.message().c_str());
    });
    std::printf("running ");
    rt.run(std::chrono::seconds(5));
    finished = true;
    driver.join();
    std::printf(" %d slices\n\n", progress.load());

    std::lock_guard g(log_mutex);
    std::size_t const moved_at = static_cast<std::size_t>(slices["mover (moved here)"].at(0));
    std::vector<int> const& mv = slices["mover"];
    std::printf("  %-8s  %-6s  %s\n", "task", "group", "slices ran on");
    std::printf("  %-8s  %-6s  %s\n", "mover", "left", cpus_of(mv, 0, moved_at).c_str());
    std::printf("  %-8s  %-6s  %s  (after the move, from its next scheduling point)\n", "", "right", cpus_of(mv, moved_at + 1, mv.size()).c_str());
    std::printf("  %-8s  %-6s  %s\n", "stayer", "right", cpus_of(slices["stayer"], 0, 1000).c_str());
    std::printf("  %-8s  %-6s  %s\n", "parent", "left", cpus_of(slices["parent"], 0, 1000).c_str());
    std::printf("  %-8s  %-6s  %s  (forked by parent: inherits its group)\n", "child", "left", cpus_of(slices["child"], 0, 1000).c_str());
    std::printf("\nslices of the right group logged while it was frozen for 50 ms: %zu (at most the one already resumed)\n", ran_frozen);
    std::printf("\ntasks still known to the hierarchy: %zu (each exited at completion); memory policy refreshes failed: %d\n",
                h.task_count(), rt.refresh_errors_.load());

    // The example checks itself.
    bool ok = h.task_count() == 0 && rt.refresh_errors_ == 0 && ran_frozen <= 1;  // one slice may have been resumed just before
    for (std::size_t i = 0; i < mv.size(); ++i) {
        if (i < moved_at) ok = ok && mv[i] == static_cast<int>(left_cpu);
        if (i > moved_at) ok = ok && mv[i] == static_cast<int>(right_cpu);
    }
    for (int c : slices["stayer"]) ok = ok && c == static_cast<int>(right_cpu);
    for (int c : slices["child"]) ok = ok && c == static_cast<int>(left_cpu);
    if (!ok) std::puts("UNEXPECTED: a task ran outside its group's CPUs, or did not finish");

    // (8) Two groups by cpu.shares, two tasks each, scheduled by weight on this thread.
    std::vector<weighted_group> groups;
    std::uint64_t next_id = 1000;
    for (auto [name, shares] : {std::pair{"/light", "1024"}, std::pair{"/heavy", "4096"}}) {
        hierarchy::container* grp = nullptr;
        if (ct::fs::mkdir(h, name) || ct::fs::write(h, std::string(name) + "/cpuset.cpus", std::to_string(left_cpu)) ||
            ct::fs::write(h, std::string(name) + "/cpuset.mems", mems) || ct::fs::write(h, std::string(name) + "/cpu.shares", shares) ||
            h.lookup(name, grp)) {
            return std::fprintf(stderr, "cannot configure %s\n", name), 1;
        }
        weighted_group wg{grp, {}};
        for (int i = 0; i < 2; ++i) {
            task t = busy_task();
            t.handle.promise().id = next_id;
            if (std::error_code ec = h.attach(next_id++, *grp)) return std::fprintf(stderr, "attach: %s\n", ec.message().c_str()), 1;
            wg.ready.push_back(t.handle);
        }
        groups.push_back(std::move(wg));
    }
    run_by_weight(groups, 1000);
    double const ratio = static_cast<double>(groups[1].cpu_ns) / static_cast<double>(groups[0].cpu_ns);
    bool const by_weight = ratio > 4.0 * 0.95 && ratio < 4.0 * 1.05;
    std::printf("\nweighted: light (cpu.shares 1024, weight %.0f) ran %d slices, heavy (cpu.shares 4096, weight %.0f) ran %d\n",
                cpu_weights::effective_weight(*groups[0].group), groups[0].slices, cpu_weights::effective_weight(*groups[1].group), groups[1].slices);
    std::printf("CPU time heavy:light within 5%% of 4: %s\n", by_weight ? "yes" : "no");
    for (auto& wg : groups) {
        for (auto t : wg.ready) {
            (void)h.exit(t.promise().id);
            t.destroy();
        }
    }
    ok = ok && by_weight;
    return ok ? 0 : 1;
}
