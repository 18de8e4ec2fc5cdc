// The flagship example: a thread pool whose workers belong to groups of a hierarchy, each group a
// cpuset, so that where work runs is decided by the group, for real.
//
// Two groups, "latency" and "batch", each with its own workers and queue. Work submitted to a
// group runs on that group's workers, which attached themselves to the group's container and so
// run only on its CPUs. The program prints, per group: its CPUs, its workers, where the workers
// really ran (sched_getcpu counts) and the CPU time they used (per-thread CPU clocks). Then, while
// the pool is busy, it gives the batch group other CPUs and prints the table again: the workers
// moved, without being told.
#include <containers/containers.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <pthread.h>
#include <sched.h>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace ct = containers;
using hierarchy = ct::hierarchy<>;
using container = hierarchy::container;

namespace {

// Work runs before the batch group's CPUs change (0), while they change (1), or after (2). A job
// is counted for a phase only when the phase was the same before and after its CPU was sampled.
std::atomic<int> phase{0};

struct worker_stats {
    std::mutex m;
    pid_t tid = 0;
    std::map<int, long> cpus_seen[2];  // sched_getcpu() counts, per phase
    double cpu_seconds[2] = {0, 0};    // this thread's CPU clock, per phase
};

// A group of the pool: a container of the hierarchy (a cpuset) and the workers serving its queue.
class group {
public:
    group(hierarchy& h, std::string name, int workers) : h_(h), name_(std::move(name)), stats_(static_cast<std::size_t>(workers)) {
        if (std::error_code ec = ct::fs::mkdir(h_, "/" + name_)) std::fprintf(stderr, "mkdir %s: %s\n", name_.c_str(), ec.message().c_str());
        if (std::error_code ec = h_.lookup("/" + name_, container_)) std::fprintf(stderr, "lookup: %s\n", ec.message().c_str());
    }
    ~group() { stop(); }

    std::error_code set_cpus(std::string const& list) { return ct::fs::write(h_, "/" + name_ + "/cpuset.cpus", list); }
    std::error_code set_mems(std::string const& list) { return ct::fs::write(h_, "/" + name_ + "/cpuset.mems", list); }
    std::string cpus() const {
        std::string out;
        (void)ct::fs::read(h_, "/" + name_ + "/cpuset.cpus", out);
        if (!out.empty() && out.back() == '\n') out.pop_back();
        return out;
    }

    void start() {
        for (std::size_t i = 0; i < stats_.size(); ++i) threads_.emplace_back([this, i] { work(stats_[i]); });
    }
    void submit(std::function<void()> job) {
        {
            std::lock_guard g(m_);
            queue_.push_back(std::move(job));
        }
        cv_.notify_one();
    }
    void wait_idle() {
        std::unique_lock g(m_);
        idle_.wait(g, [this] { return queue_.empty() && busy_ == 0; });
    }
    void stop() {
        {
            std::lock_guard g(m_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
        threads_.clear();
    }
    std::string const& name() const { return name_; }
    std::deque<worker_stats>& stats() { return stats_; }

private:
    // A worker joins its group once; from then on the group's cpuset decides where it runs.
    void work(worker_stats& st) {
        {
            std::lock_guard g(st.m);
            st.tid = ct::thread_task_traits::self();
        }
        if (std::error_code ec = h_.attach_self(*container_)) std::fprintf(stderr, "attach: %s\n", ec.message().c_str());
        timespec last{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &last);
        int last_phase = 0;
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock g(m_);
                cv_.wait(g, [this] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) return;
                job = std::move(queue_.front());
                queue_.pop_front();
                ++busy_;
            }
            job();
            int const before = phase.load();
            int const cpu = sched_getcpu();
            int const after = phase.load();
            int const p = after == 0 ? 0 : 1;
            timespec now{};
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
            {
                std::lock_guard g(st.m);
                if (before == after && after != 1) st.cpus_seen[p][cpu]++;
                st.cpu_seconds[last_phase] += double(now.tv_sec - last.tv_sec) + double(now.tv_nsec - last.tv_nsec) / 1e9;
            }
            last = now;
            last_phase = p;
            {
                std::lock_guard g(m_);
                --busy_;
            }
            idle_.notify_all();
        }
    }

    hierarchy& h_;
    std::string name_;
    container* container_ = nullptr;
    std::deque<worker_stats> stats_;  // stable addresses for the workers
    std::vector<std::thread> threads_;
    std::mutex m_;
    std::condition_variable cv_;
    std::condition_variable idle_;
    std::deque<std::function<void()>> queue_;
    int busy_ = 0;
    bool stopping_ = false;
};

// About a millisecond of arithmetic: the work items.
void spin() {
    auto const until = std::chrono::steady_clock::now() + std::chrono::microseconds(800);
    volatile unsigned long x = 0;
    while (std::chrono::steady_clock::now() < until) x = x * 6364136223846793005ul + 1;
}

void print_table(char const* title, std::vector<group*> const& groups, int p) {
    std::printf("\n%s\n", title);
    std::printf("  %-8s  %-7s  %-9s  %-28s  %s\n", "group", "cpus", "worker", "ran on (sched_getcpu counts)", "cpu time");
    std::printf("  %-8s  %-7s  %-9s  %-28s  %s\n", "--------", "-------", "---------", "----------------------------", "--------");
    for (group* g : groups) {
        bool first = true;
        for (worker_stats& st : g->stats()) {
            std::lock_guard lock(st.m);
            std::string ran;
            for (auto const& [cpu, n] : st.cpus_seen[p]) ran += "cpu" + std::to_string(cpu) + ":" + std::to_string(n) + " ";
            std::printf("  %-8s  %-7s  %-9d  %-28s  %.3f s\n", first ? g->name().c_str() : "", first ? g->cpus().c_str() : "", st.tid,
                        ran.empty() ? "-" : ran.c_str(), st.cpu_seconds[p]);
            first = false;
        }
    }
}

void run_phase(char const* what, group& latency, group& batch, int jobs, std::function<void(int)> midway = {}) {
    std::printf("%s: %d jobs per group ", what, jobs);
    std::fflush(stdout);
    for (int i = 0; i < jobs; ++i) {
        latency.submit(spin);
        batch.submit(spin);
    }
    for (int done = 0; done < 10; ++done) {  // progress while the queues drain
        std::this_thread::sleep_for(std::chrono::milliseconds(jobs / 10 + 1));
        if (midway && done == 2) midway(done);
        std::printf(".");
        std::fflush(stdout);
    }
    latency.wait_idle();
    batch.wait_idle();
    std::printf(" done\n");
}

}  // namespace

int main() {
    hierarchy h;
    ct::subsystem_handle<ct::cpuset, hierarchy> cs;
    if (std::error_code ec = h.register_subsystem(cs)) return std::fprintf(stderr, "cpuset: %s\n", ec.message().c_str()), 1;
    ct::cpumask const cpus = cs.subsystem().machine().online_cpus & cs.subsystem().machine().allowed_cpus;
    std::string const mems = cs.subsystem().machine().online_nodes.to_list();

    // Split the machine: the first quarter of the CPUs (at least one) for latency, the rest for
    // batch; on a one-CPU machine both share it.
    std::vector<std::size_t> ids(cpus.begin(), cpus.end());
    std::size_t const split = std::max<std::size_t>(1, ids.size() / 4);
    ct::cpumask lat_cpus, batch_cpus;
    for (std::size_t i = 0; i < ids.size(); ++i) (i < split ? lat_cpus : batch_cpus).set(ids[i]);
    if (batch_cpus.empty()) batch_cpus = lat_cpus;
    std::printf("machine: %zu CPUs online and allowed (%s); latency gets %s, batch gets %s\n", ids.size(), cpus.to_list().c_str(),
                lat_cpus.to_list().c_str(), batch_cpus.to_list().c_str());

    group latency(h, "latency", 2);
    group batch(h, "batch", 2);
    for (auto [g, m] : {std::pair{&latency, &lat_cpus}, std::pair{&batch, &batch_cpus}}) {
        if (std::error_code ec = g->set_cpus(m->to_list()); ec || (ec = g->set_mems(mems))) {
            return std::fprintf(stderr, "configure %s: %s\n", g->name().c_str(), ec.message().c_str()), 1;
        }
    }
    latency.start();
    batch.start();

    run_phase("phase 1", latency, batch, 300);
    print_table("Before: each group's workers ran only on its CPUs", {&latency, &batch}, 0);

    // While the pool is busy, the batch group gets the latency group's CPUs instead of its own.
    std::string const new_batch = lat_cpus.to_list();
    run_phase("phase 2", latency, batch, 300, [&](int) {
        phase = 1;
        if (std::error_code ec = batch.set_cpus(new_batch)) std::fprintf(stderr, "\nmove batch: %s\n", ec.message().c_str());
        phase = 2;
        std::printf("[batch -> cpus %s]", new_batch.c_str());
    });
    print_table("After batch's cpuset.cpus changed mid-run: its workers moved, unasked", {&latency, &batch}, 1);

    // The example checks itself: no work ran outside its group's CPUs, in either phase.
    bool ok = true;
    for (auto [g, p, allowed] : {std::tuple{&latency, 0, &lat_cpus}, std::tuple{&batch, 0, &batch_cpus}, std::tuple{&latency, 1, &lat_cpus},
                                 std::tuple{&batch, 1, &lat_cpus}}) {
        for (worker_stats& st : g->stats()) {
            std::lock_guard lock(st.m);
            for (auto const& [cpu, n] : st.cpus_seen[p]) {
                if (allowed->test(static_cast<std::size_t>(cpu))) continue;
                std::printf("  %s worker %d ran %ld jobs on cpu%d in phase %d\n", g->name().c_str(), st.tid, n, cpu, p + 1);
                ok = false;
            }
        }
    }
    if (!ok) {
        std::puts("\nUNEXPECTED: some work ran outside its group's CPUs");
        return 1;
    }

    latency.stop();
    batch.stop();
    std::printf("\n%zu containers; every worker left its group when it exited (%zu tasks known).\n", h.size(), h.task_count());
    return 0;
}
