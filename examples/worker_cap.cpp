// A thread pool whose tenants each have a concurrency cap: pids.max of the tenant's group.
//
// Each tenant has a dispatcher thread in its group. To add a worker, the dispatcher starts a
// thread and asks the hierarchy to fork it into the group (hierarchy::fork, the dispatcher as
// parent); pids refuses with EAGAIN once the group holds pids.max tasks, and the thread ends
// without running anything. The jobs are then shared by the workers that were admitted. Raising
// pids.max at run time admits more.
#include <containers/containers.hpp>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace ct = containers;
using hierarchy = ct::hierarchy<>;
using container = hierarchy::container;

namespace {

struct tenant {
    std::string name;
    container* group = nullptr;
    std::atomic<int> next_job{0};
    int jobs = 0;
    std::atomic<int> done{0};
    std::atomic<bool> go{false};  // set once every worker asked for has been admitted or refused
    std::vector<std::thread> workers;
    int admitted = 0;
    int refused = 0;
};

// The dispatcher's side of adding one worker: start the thread, fork it into the group, and tell
// it whether it was admitted. The worker runs jobs only if it was.
void add_worker(hierarchy& h, tenant& t, pid_t dispatcher) {
    auto tid = std::make_shared<std::atomic<pid_t>>(0);
    auto verdict = std::make_shared<std::atomic<int>>(-1);  // -1: not yet; 0: admitted; else errno
    t.workers.emplace_back([&h, &t, tid, verdict] {
        tid->store(::gettid());
        tid->notify_one();
        verdict->wait(-1);
        if (verdict->load() != 0) return;  // refused: this thread never counts against the cap
        t.go.wait(false);
        for (int j; (j = t.next_job.fetch_add(1)) < t.jobs;) {
            volatile unsigned x = 0;
            for (unsigned i = 0; i < 200000; ++i) x = x + i;  // a job
            t.done.fetch_add(1);
        }
        (void)h.exit(::gettid());  // leave the group: its slot is free again
    });
    tid->wait(0);
    std::error_code const ec = h.fork(dispatcher, tid->load());
    (ec ? t.refused : t.admitted) += 1;
    verdict->store(ec.value());
    verdict->notify_one();
}

}  // namespace

int main() {
    hierarchy h;
    ct::subsystem_handle<ct::pids, hierarchy> pids;
    if (std::error_code ec = h.register_subsystem(pids)) {
        std::fprintf(stderr, "pids: %s\n", ec.message().c_str());
        return 1;
    }
    // Each cap counts the dispatcher too: "interactive" runs 2 workers at most, "batch" 4.
    tenant tenants[2];
    tenants[0].name = "interactive";
    tenants[1].name = "batch";
    int const caps[2] = {3, 5};
    for (int i = 0; i < 2; ++i) {
        tenant& t = tenants[i];
        t.jobs = 400;
        if (std::error_code ec = h.mkdir(h.top(), t.name, &t.group)) {
            std::fprintf(stderr, "mkdir %s: %s\n", t.name.c_str(), ec.message().c_str());
            return 1;
        }
        if (std::error_code ec = ct::fs::write(h, "/" + t.name + "/pids.max", std::to_string(caps[i]))) {
            std::fprintf(stderr, "pids.max: %s\n", ec.message().c_str());
            return 1;
        }
    }

    std::vector<std::thread> dispatchers;
    for (tenant& t : tenants) {
        dispatchers.emplace_back([&h, &t] {
            if (std::error_code ec = h.attach_self(*t.group)) {
                std::fprintf(stderr, "attach: %s\n", ec.message().c_str());
                std::abort();
            }
            for (int i = 0; i < 6; ++i) add_worker(h, t, ::gettid());  // asks for 6 workers
            t.go.store(true);
            t.go.notify_all();
            for (std::thread& w : t.workers) w.join();
        });
    }
    for (std::thread& d : dispatchers) d.join();

    bool ok = true;
    std::printf("%-12s %8s %9s %8s %12s %10s\n", "tenant", "pids.max", "admitted", "refused", "pids.events", "jobs done");
    for (int i = 0; i < 2; ++i) {
        tenant& t = tenants[i];
        std::string events;
        (void)ct::fs::read(h, "/" + t.name + "/pids.events", events);
        events.pop_back();
        std::printf("%-12s %8d %9d %8d %12s %10d\n", t.name.c_str(), caps[i], t.admitted, t.refused, events.c_str(), t.done.load());
        // The cap held: the dispatcher plus (cap - 1) workers, the others refused and counted.
        ok = ok && t.admitted == caps[i] - 1 && t.refused == 6 - t.admitted && t.done.load() == t.jobs &&
             events == "max " + std::to_string(t.refused);
    }
    if (!ok) std::fprintf(stderr, "worker_cap: a cap did not hold\n");
    return ok ? 0 : 1;
}
