// The flagship example: a thread pool whose workers belong to groups of a hierarchy, so that the
// groups decide, for real, where the work runs (cpuset), what it cost (cpuacct) and whether it
// runs at all (freezer).
//
// Two groups, "latency" and "batch", each with its own workers and queue. Each worker attaches
// itself to its group's container once; from then on:
// - cpuset: it runs only on its group's CPUs. The program prints where the workers really ran
//   (sched_getcpu counts), gives the batch group other CPUs while the pool is busy, and prints it
//   again: the workers moved, without being told.
// - cpuacct: each group's cpuacct.usage is the CPU time its workers used (their thread clocks).
// - freezer: batch is frozen while both groups have work queued. For 200 ms its jobs and its CPU
//   time stand still while latency's go on; thawed, it finishes its work.
#include <containers/containers.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <sched.h>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace ct = containers;
using hierarchy = ct::hierarchy<>;
using container = hierarchy::container;

namespace {

// Work runs before the batch group's CPUs change (0), while they change (1), after (2), or in the
// freezing phase (3). A job's CPU is counted for phase 0 or 2 only when the phase was the same
// before and after it was sampled.
std::atomic<int> phase{0};

struct worker_stats {
    std::mutex m;
    pid_t tid = 0;
    std::map<int, long> cpus_seen[2];  // sched_getcpu() counts, per phase
};

// A group of the pool: a container of the hierarchy and the workers serving its queue. Every job
// is the same (spin), so the queue is a count: in the freezing phase a worker allocates nothing,
// and so holds no lock of malloc's when it is frozen (a frozen thread blocks whoever needs its
// locks, as with the kernel's freezer).
class group {
public:
    group(hierarchy& h, std::string name, int workers) : h_(h), name_(std::move(name)), stats_(static_cast<std::size_t>(workers)) {
        if (std::error_code ec = ct::fs::mkdir(h_, "/" + name_)) std::fprintf(stderr, "mkdir %s: %s\n", name_.c_str(), ec.message().c_str());
        if (std::error_code ec = h_.lookup("/" + name_, container_)) std::fprintf(stderr, "lookup: %s\n", ec.message().c_str());
    }
    ~group() { stop(); }

    // The group's control files, as cgroupfs would show them.
    std::error_code write(std::string const& file, std::string const& value) { return ct::fs::write(h_, "/" + name_ + "/" + file, value); }
    std::string read(std::string const& file) const {
        std::string out;
        (void)ct::fs::read(h_, "/" + name_ + "/" + file, out);
        if (!out.empty() && out.back() == '\n') out.pop_back();
        return out;
    }
    double cpu_seconds() const { return std::stod(read("cpuacct.usage")) / 1e9; }

    void start() {
        for (std::size_t i = 0; i < stats_.size(); ++i) threads_.emplace_back([this, i] { work(stats_[i]); });
    }
    void submit(int jobs) {
        {
            std::lock_guard g(m_);
            queued_ += jobs;
        }
        cv_.notify_all();
    }
    void wait_idle() {
        std::unique_lock g(m_);
        idle_.wait(g, [this] { return queued_ == 0 && busy_ == 0; });
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
    long jobs_done() const { return done_.load(); }

private:
    static void spin() {  // a job: about a millisecond of arithmetic
        auto const until = std::chrono::steady_clock::now() + std::chrono::microseconds(800);
        volatile unsigned long x = 0;
        while (std::chrono::steady_clock::now() < until) x = x * 6364136223846793005ul + 1;
    }

    // A worker joins its group once; from then on the group's subsystems act on it.
    void work(worker_stats& st) {
        {
            std::lock_guard g(st.m);
            st.tid = ct::thread_task_traits::self();
        }
        if (std::error_code ec = h_.attach_self(*container_)) std::fprintf(stderr, "attach: %s\n", ec.message().c_str());
        for (;;) {
            {
                std::unique_lock g(m_);
                cv_.wait(g, [this] { return stopping_ || queued_ > 0; });
                if (queued_ == 0) return;
                --queued_;
                ++busy_;
            }
            spin();
            int const before = phase.load();
            int const cpu = sched_getcpu();
            int const after = phase.load();
            if (before == after && (after == 0 || after == 2)) {
                std::lock_guard g(st.m);
                st.cpus_seen[after / 2][cpu]++;
            }
            done_.fetch_add(1);
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
    int queued_ = 0;
    int busy_ = 0;
    bool stopping_ = false;
    std::atomic<long> done_{0};
};

void print_table(char const* title, std::vector<group*> const& groups, int p) {
    std::printf("\n%s\n", title);
    std::printf("  %-8s  %-7s  %-9s  %-28s  %s\n", "group", "cpus", "worker", "ran on (sched_getcpu counts)", "cpuacct.usage");
    std::printf("  %-8s  %-7s  %-9s  %-28s  %s\n", "--------", "-------", "---------", "----------------------------", "-------------");
    for (group* g : groups) {
        char usage[32];
        std::snprintf(usage, sizeof usage, "%.3f s", g->cpu_seconds());
        bool first = true;
        for (worker_stats& st : g->stats()) {
            std::lock_guard lock(st.m);
            std::string ran;
            for (auto const& [cpu, n] : st.cpus_seen[p]) ran += "cpu" + std::to_string(cpu) + ":" + std::to_string(n) + " ";
            char line[256];
            std::snprintf(line, sizeof line, "  %-8s  %-7s  %-9d  %-28s  %s", first ? g->name().c_str() : "",
                          first ? g->read("cpuset.cpus").c_str() : "", st.tid, ran.empty() ? "-" : ran.c_str(), first ? usage : "");
            std::string text = line;
            text.erase(text.find_last_not_of(' ') + 1);
            std::puts(text.c_str());
            first = false;
        }
    }
}

// Each phase starts with both groups' CPU time at zero (writing 0 to cpuacct.usage resets it).
void run_phase(char const* what, group& latency, group& batch, int jobs, std::function<void()> midway = {}) {
    for (group* g : {&latency, &batch}) (void)g->write("cpuacct.usage", "0");
    std::printf("%s: %d jobs per group ", what, jobs);
    std::fflush(stdout);
    latency.submit(jobs);
    batch.submit(jobs);
    for (int done = 0; done < 10; ++done) {  // progress while the queues drain
        std::this_thread::sleep_for(std::chrono::milliseconds(jobs / 10 + 1));
        if (midway && done == 2) midway();
        std::printf(".");
        std::fflush(stdout);
    }
    latency.wait_idle();
    batch.wait_idle();
    std::printf(" done\n");
}

// Freezes batch while both groups have work, and measures what each group did while it was
// frozen. True when batch stood still and latency did not.
bool freeze_batch(group& latency, group& batch, int jobs) {
    phase = 3;
    std::printf("\nphase 3: %d jobs per group, batch frozen for 200 ms while they run\n", jobs);
    latency.submit(jobs);
    batch.submit(jobs);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (std::error_code ec = batch.write("freezer.state", "FROZEN")) {
        std::fprintf(stderr, "freeze: %s\n", ec.message().c_str());
        return false;
    }
    // FREEZING until every worker has stopped; each read nudges those that have not yet.
    for (int i = 0; i < 500 && batch.read("freezer.state") != "FROZEN"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::string const state = batch.read("freezer.state");
    long done[2] = {latency.jobs_done(), batch.jobs_done()};
    double cpu[2] = {latency.cpu_seconds(), batch.cpu_seconds()};
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (auto [i, g] : {std::pair{0, &latency}, std::pair{1, &batch}}) {
        done[i] = g->jobs_done() - done[i];
        cpu[i] = g->cpu_seconds() - cpu[i];
    }
    std::printf("  %-8s  %-13s  %-23s  %s\n", "group", "freezer.state", "jobs done in the 200 ms", "cpuacct.usage grew by");
    std::printf("  %-8s  %-13s  %-23s  %s\n", "--------", "-------------", "-----------------------", "---------------------");
    std::printf("  %-8s  %-13s  %-23ld  %.3f s\n", "latency", latency.read("freezer.state").c_str(), done[0], cpu[0]);
    std::printf("  %-8s  %-13s  %-23ld  %.3f s\n", "batch", state.c_str(), done[1], cpu[1]);
    (void)batch.write("freezer.state", "THAWED");
    latency.wait_idle();
    batch.wait_idle();
    std::printf("batch thawed (%s): it finished its jobs, %ld in all.\n", batch.read("freezer.state").c_str(), batch.jobs_done());
    // Stopped means stopped: not one job, and under a millisecond of CPU (entering the wait).
    return state == "FROZEN" && done[1] == 0 && cpu[1] < 0.001 && done[0] > 0;
}

}  // namespace

int main() {
    hierarchy h;
    ct::subsystem_handle<ct::cpuset, hierarchy> cs;
    ct::subsystem_handle<ct::cpuacct, hierarchy> ca;
    ct::subsystem_handle<ct::freezer, hierarchy> fz;
    for (std::error_code ec : {h.register_subsystem(cs), h.register_subsystem(ca), h.register_subsystem(fz)}) {
        if (ec) return std::fprintf(stderr, "register: %s\n", ec.message().c_str()), 1;
    }
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
        if (std::error_code ec = g->write("cpuset.cpus", m->to_list()); ec || (ec = g->write("cpuset.mems", mems))) {
            return std::fprintf(stderr, "configure %s: %s\n", g->name().c_str(), ec.message().c_str()), 1;
        }
    }
    latency.start();
    batch.start();

    run_phase("phase 1", latency, batch, 300);
    print_table("Before: each group's workers ran only on its CPUs", {&latency, &batch}, 0);

    // While the pool is busy, the batch group gets the latency group's CPUs instead of its own.
    std::string const new_batch = lat_cpus.to_list();
    run_phase("phase 2", latency, batch, 300, [&] {
        phase = 1;
        if (std::error_code ec = batch.write("cpuset.cpus", new_batch)) std::fprintf(stderr, "\nmove batch: %s\n", ec.message().c_str());
        phase = 2;
        std::printf("[batch -> cpus %s]", new_batch.c_str());
    });
    print_table("After batch's cpuset.cpus changed mid-run: its workers moved, unasked", {&latency, &batch}, 1);

    bool const froze = freeze_batch(latency, batch, 300);

    // The example checks itself: no work ran outside its group's CPUs, in either phase, and the
    // frozen group did nothing while frozen.
    bool ok = froze;
    if (!froze) std::puts("\nUNEXPECTED: batch did not stand still while frozen");
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
