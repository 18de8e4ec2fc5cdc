// The cost each subsystem adds, next to the kernel's controller for the same operation, in the
// same run. For each subsystem (a library hierarchy with only that subsystem, and the kernel's v1
// hierarchy of that controller under a scratch directory this program creates and removes):
// - moving an idle thread between two sibling groups: against the same move in a library
//   hierarchy with no subsystem (the added cost) and against the kernel's `echo TID > tasks`
//   (write(2) of the tid into the two groups' tasks files);
// - create + remove of a group: the library's mkdir/rmdir (typed and by path) against the
//   kernel's mkdir(2) + rmdir(2);
// and for the freezer, freezing a group of N threads of this process until it reads FROZEN and
// thawing it until every thread has run again, against the kernel's freezer doing the same to
// the same kind of threads. Prints the ratios at the end. The cpu subsystem is measured too where
// <containers/cpu.hpp> exists.
//
// The kernel's freezer stops only worker threads moved into the scratch group, never the
// benchmark's own thread, and every group is thawed before it is removed. A watchdog process
// thaws and removes the scratch directories if this program dies with threads frozen (a frozen
// thread cannot die until thawed, so the process would otherwise hang, unkillable).
#include "bench_support.hpp"

#if __has_include(<containers/cpu.hpp>)
#include <containers/cpu.hpp>
#define BENCH_HAVE_CPU 1
#endif

#include <climits>
#include <cstdlib>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

namespace {
using namespace bench;
using H = containers::hierarchy<>;
using C = H::container;
namespace fs = containers::fs;

// The kernel's hierarchies measured, in the order of add<>() in main.
constexpr char const* hierarchies[] = {"cpuset", "pids", "cpuacct", "freezer", "cpu"};

// ---- what is measured, per subsystem ------------------------------------------------------------

// One subsystem: a library hierarchy with only it, and the kernel's hierarchy of the same name.
struct subject {
    std::string name;
    H h;
    std::unique_ptr<kernel_scratch> ks;
};
std::vector<std::unique_ptr<subject>> subjects;
H* bare = nullptr;  // no subsystem: the floor of every library figure

bool make_groups(H& h, std::vector<std::string> const& copy_from_top) {
    for (char const* g : {"/a", "/b"}) {
        if (fs::mkdir(h, g)) return false;
        for (std::string const& f : copy_from_top) {
            std::string v;
            if (fs::read(h, "/" + f, v) || fs::write(h, g + ("/" + f), v)) return false;
        }
    }
    return true;
}

/// Adds subsystem S, named `name` (the kernel's hierarchy /sys/fs/cgroup/<name>); the files in
/// `copy_from_top` are copied from the top group into each child so that tasks can join it
/// (cpuset's CPUs and nodes).
template <class S>
bool add(char const* name, std::vector<std::string> const& copy_from_top = {}) {
    auto s = std::make_unique<subject>();
    s->name = name;
    containers::subsystem_handle<S, H> handle;
    if (s->h.register_subsystem(handle) || !make_groups(s->h, copy_from_top)) {
        std::fprintf(stderr, "bench_subsystems: cannot set up the library's %s\n", name);
        return false;
    }
    s->ks = std::make_unique<kernel_scratch>(std::string("/sys/fs/cgroup/") + name);
    subjects.push_back(std::move(s));
    return true;
}

void move_library(benchmark::State& state, H& h) {
    idle_thread t;
    move_between_library_groups(state, h, "/a", "/b", t.tid);
}

void create_remove_library(benchmark::State& state, H& h) {
    for (auto _ : state) {
        C* c = nullptr;
        if (h.mkdir(h.top(), "c", &c) || h.rmdir(*c)) state.SkipWithError("mkdir/rmdir failed");
    }
}

void create_remove_library_path(benchmark::State& state, H& h) {
    for (auto _ : state) {
        if (fs::mkdir(h, "/c") || fs::rmdir(h, "/c")) state.SkipWithError("mkdir/rmdir failed");
    }
}

void create_remove_kernel(benchmark::State& state, kernel_scratch const& ks) {
    if (!ks.ok) return state.SkipWithError((ks.root + " is not writable").c_str());
    std::string const path = ks.path("c");
    for (auto _ : state) {
        if (::mkdir(path.c_str(), 0755) != 0 || ::rmdir(path.c_str()) != 0) state.SkipWithError(std::strerror(errno));
    }
}

// ---- freezing and thawing N threads -------------------------------------------------------------

long futex(std::atomic<std::uint32_t>& word, int op, std::uint32_t val) {
    return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), op, val, nullptr, nullptr, 0);
}

// N threads that wait on a futex and acknowledge each new epoch: "running" means every one of
// them has run user code since the epoch was posted. They hold no lock while they wait, so
// freezing them blocks nobody.
struct responders {
    std::atomic<std::uint32_t> epoch{0};
    std::atomic<int> acks{0};
    std::atomic<bool> stop{false};
    std::vector<pid_t> tids;
    std::vector<std::thread> threads;
    std::atomic<int> started{0};
    explicit responders(int n) : tids(static_cast<std::size_t>(n)) {
        for (int i = 0; i < n; ++i) {
            threads.emplace_back([this, i] {
                tids[static_cast<std::size_t>(i)] = containers::thread_task_traits::self();
                std::uint32_t seen = epoch.load();
                started.fetch_add(1);
                while (!stop.load()) {
                    futex(epoch, FUTEX_WAIT_PRIVATE, seen);
                    std::uint32_t const e = epoch.load();
                    if (e != seen) {
                        seen = e;
                        acks.fetch_add(1);
                    }
                }
            });
        }
        while (started.load() < n) std::this_thread::yield();
    }
    /// Posts a new epoch and waits until every thread has acknowledged it.
    void ping() {
        acks.store(0);
        epoch.fetch_add(1);
        futex(epoch, FUTEX_WAKE_PRIVATE, INT_MAX);
        while (acks.load() < static_cast<int>(threads.size())) ::sched_yield();
    }
    ~responders() {
        stop = true;
        epoch.fetch_add(1);
        futex(epoch, FUTEX_WAKE_PRIVATE, INT_MAX);
        for (std::thread& t : threads) t.join();
    }
};

std::uint64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// One iteration: freeze until the group reads FROZEN, then thaw until every thread has run. The
// two halves are also reported apart, as the counters freeze_ns and thaw_ns.
template <class Freeze, class Frozen, class Thaw>
void freeze_thaw_loop(benchmark::State& state, responders& r, Freeze freeze, Frozen frozen, Thaw thaw) {
    double freeze_ns = 0;
    double thaw_ns = 0;
    for (auto _ : state) {
        std::uint64_t const t0 = now_ns();
        if (!freeze()) return state.SkipWithError("freeze failed");
        while (!frozen()) ::sched_yield();
        std::uint64_t const t1 = now_ns();
        if (!thaw()) return state.SkipWithError("thaw failed");
        r.ping();
        std::uint64_t const t2 = now_ns();
        freeze_ns += static_cast<double>(t1 - t0);
        thaw_ns += static_cast<double>(t2 - t1);
    }
    state.counters["freeze_ns"] = benchmark::Counter(freeze_ns, benchmark::Counter::kAvgIterations);
    state.counters["thaw_ns"] = benchmark::Counter(thaw_ns, benchmark::Counter::kAvgIterations);
}

H* freezer_h = nullptr;
kernel_scratch* freezer_ks = nullptr;

void freeze_thaw_library(benchmark::State& state) {
    auto n = static_cast<int>(state.range(0));
    containers::freezer& fz = *freezer_h->subsystem<containers::freezer>();
    std::string const path = "/f" + std::to_string(n);
    (void)fs::mkdir(*freezer_h, path);  // EEXIST in a repetition
    C* c = nullptr;
    if (freezer_h->lookup(path, c)) return state.SkipWithError("setup");
    responders r(n);
    for (pid_t t : r.tids) {
        if (freezer_h->attach(t, *c)) return state.SkipWithError("attach failed");
    }
    freeze_thaw_loop(
        state, r, [&] { return !fz.set_state(*c, containers::freezer_state::frozen); },
        [&] { return fz.get_state(*c) == containers::freezer_state::frozen; },
        [&] { return !fz.set_state(*c, containers::freezer_state::thawed); });
    (void)fz.set_state(*c, containers::freezer_state::thawed);  // after an error
    for (pid_t t : r.tids) (void)freezer_h->exit(t);
}

void freeze_thaw_library_path(benchmark::State& state) {
    auto n = static_cast<int>(state.range(0));
    std::string const path = "/p" + std::to_string(n);
    (void)fs::mkdir(*freezer_h, path);
    C* c = nullptr;
    if (freezer_h->lookup(path, c)) return state.SkipWithError("setup");
    responders r(n);
    for (pid_t t : r.tids) {
        if (freezer_h->attach(t, *c)) return state.SkipWithError("attach failed");
    }
    std::string const file = path + "/freezer.state";
    std::string out;
    freeze_thaw_loop(
        state, r, [&] { return !fs::write(*freezer_h, file, "FROZEN"); },
        [&] {
            out.clear();
            return !fs::read(*freezer_h, file, out) && out == "FROZEN\n";
        },
        [&] { return !fs::write(*freezer_h, file, "THAWED"); });
    (void)fs::write(*freezer_h, file, "THAWED");
    for (pid_t t : r.tids) (void)freezer_h->exit(t);
}

// Thaws a kernel freezer group when it goes out of scope, whatever happened.
struct kernel_thaw_guard {
    std::string state_file;
    ~kernel_thaw_guard() { write_file(state_file, "THAWED"); }
};

// `warm`: another (empty) scratch group stays frozen meanwhile. Each freezing group counts in the
// kernel's static key freezer_active (legacy_freezer.c, freezer_apply_state), whose code is
// patched into the kernel's text on every CPU when the count goes from 0 to 1 and back; with a
// group held frozen, our freeze and thaw do not pay that. Which case a program meets depends on
// the rest of the system (and other programs on this machine may hold a group frozen meanwhile).
void freeze_thaw_kernel(benchmark::State& state, bool warm) {
    kernel_scratch const& ks = *freezer_ks;
    if (!ks.ok) return state.SkipWithError("/sys/fs/cgroup/freezer is not writable");
    auto n = static_cast<int>(state.range(0));
    std::string const name = (warm ? "w" : "f") + std::to_string(n);
    if (!ks.child(name) || (warm && !ks.child("held"))) return state.SkipWithError("mkdir failed");
    kernel_thaw_guard held{warm ? ks.path("held") + "/freezer.state" : std::string("/dev/null")};
    if (warm && !write_file(held.state_file, "FROZEN")) return state.SkipWithError(std::strerror(errno));
    responders r(n);
    {
        kernel_thaw_guard guard{ks.path(name) + "/freezer.state"};
        for (pid_t t : r.tids) {
            if (!write_tid(ks.path(name) + "/tasks", t)) return state.SkipWithError(std::strerror(errno));
        }
        int fd = ::open(guard.state_file.c_str(), O_RDWR);
        if (fd < 0) return state.SkipWithError(std::strerror(errno));
        char buf[32];
        freeze_thaw_loop(
            state, r, [&] { return ::pwrite(fd, "FROZEN", 6, 0) == 6; },
            [&] { return ::pread(fd, buf, sizeof buf, 0) == 7 && std::memcmp(buf, "FROZEN\n", 7) == 0; },
            [&] { return ::pwrite(fd, "THAWED", 6, 0) == 6; });
        ::close(fd);
    }
    for (pid_t t : r.tids) ks.to_root(t);
}

// The common floor of every thaw: posting an epoch and waiting for N threads to run.
void wake_floor(benchmark::State& state) {
    responders r(static_cast<int>(state.range(0)));
    for (auto _ : state) r.ping();
}

// ---- the watchdog ------------------------------------------------------------------------------

// A child process, forked before any thread exists, that waits for this program to end. When it
// ends (normally, or killed while the kernel's freezer holds some of its threads: then the main
// thread is a zombie and the frozen threads keep the process alive, unkillable), the child thaws
// every directory under our scratch directory of each hierarchy in `roots`, waits for the tasks to
// leave and removes the directories. After a normal end they are gone already and it does nothing.
struct watchdog {
    pid_t pid = -1;
    int fd = -1;
    explicit watchdog(std::vector<std::string> const& roots) {
        int p[2];
        if (::pipe(p) != 0) return;
        pid_t const parent = ::getpid();
        pid = ::fork();
        if (pid == 0) {
            ::close(p[1]);
            for (;;) {
                pollfd pfd{p[0], POLLIN, 0};
                if (::poll(&pfd, 1, 200) > 0) break;  // a word or end of file: the program is done
                std::string const st = read_file("/proc/" + std::to_string(parent) + "/stat");
                std::size_t const close_paren = st.rfind(')');
                if (close_paren == std::string::npos || close_paren + 2 >= st.size() || st[close_paren + 2] == 'Z' ||
                    st[close_paren + 2] == 'X') {
                    break;
                }
            }
            for (std::string const& root : roots) {
                std::string const dir = root + "/containers-bench-" + std::to_string(parent);
                for (int attempt = 0; attempt < 50 && ::access(dir.c_str(), F_OK) == 0; ++attempt) {
                    kernel_scratch::remove_tree(root, dir);
                    if (::access(dir.c_str(), F_OK) == 0) ::usleep(100000);  // killed threads still leaving
                }
            }
            ::_exit(0);
        }
        ::close(p[0]);
        fd = p[1];
    }
    ~watchdog() {
        if (fd >= 0) {
            (void)::write(fd, "q", 1);
            ::close(fd);
        }
        if (pid > 0) ::waitpid(pid, nullptr, 0);
    }
};

// ---- the table ---------------------------------------------------------------------------------

std::string ratio_text(double a, double b) {
    if (a < 0 || b <= 0) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3gx", a / b);
    return buf;
}

void print_table(ratio_reporter const& r, bool cpu) {
    auto const& t = cpu ? r.cpu_ns : r.ns;
    auto get = [&](std::string const& k) { auto it = t.find(k); return it == t.end() ? -1.0 : it->second; };
    auto cell = [](double v) { return v < 0 ? std::string("-") : std::to_string(static_cast<long long>(v + 0.5)); };
    auto ratio = ratio_text;
    std::printf("\n%s time, ns per operation; ratios library / bare and library / kernel (below 1: the library is faster)\n",
                cpu ? "CPU" : "Wall");
    std::printf("\n| subsystem | operation | library | bare (no subsystem) | library / bare | kernel | library / kernel |\n"
                "|---|---|---:|---:|---:|---:|---:|\n");
    for (auto const& s : subjects) {
        struct {
            char const* what;
            std::string lib, bare;
        } const ops[] = {{"move a thread", "move/" + s->name + "/library", "move/none/library"},
                         {"create + remove (typed)", "create_remove/" + s->name + "/library", "create_remove/none/library"},
                         {"create + remove (by path)", "create_remove/" + s->name + "/library_path", "create_remove/none/library_path"}};
        for (auto const& op : ops) {
            double const lib = get(op.lib);
            double const b = get(op.bare);
            std::string const kernel_name = op.lib.substr(0, op.lib.rfind('/')) + "/kernel";
            double const k = get(kernel_name);
            std::printf("| %s | %s | %s | %s | %s | %s | %s |\n", s->name.c_str(), op.what, cell(lib).c_str(), cell(b).c_str(),
                        ratio(lib, b).c_str(), cell(k).c_str(), ratio(lib, k).c_str());
        }
    }
}

void print_freezer_table(ratio_reporter const& r) {
    auto counter = [&](std::string const& k) { auto it = r.counters.find(k); return it == r.counters.end() ? -1.0 : it->second; };
    auto wall = [&](std::string const& k) { auto it = r.ns.find(k); return it == r.ns.end() ? -1.0 : it->second; };
    auto cell = [](double x) { return x < 0 ? std::string("-") : std::to_string(static_cast<long long>(x + 0.5)); };
    std::printf("\nfreezer: freeze until FROZEN, thaw until every thread ran again (wall ns). Kernel: alone, and with another group\n"
                "held frozen. Floor: waking N waiting threads, which every thaw includes.\n");
    std::printf("\n| threads | step | library | library by path | kernel | library / kernel | kernel, another frozen | library / that | floor |\n"
                "|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int n : {1, 8, 64}) {
        std::string const sfx = "/" + std::to_string(n) + "/real_time";
        for (char const* step : {"freeze_ns", "thaw_ns", "both"}) {
            bool const both = std::strcmp(step, "both") == 0;
            auto v = [&](std::string const& name) { return both ? wall(name + sfx) : counter(name + sfx + ":" + step); };
            double const lib = v("freeze_thaw/library");
            double const k = v("freeze_thaw/kernel");
            double const kw = v("freeze_thaw/kernel_another_frozen");
            double const floor = std::strcmp(step, "freeze_ns") == 0 ? -1 : wall("freeze_thaw/wake_floor" + sfx);
            std::printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", n,
                        both ? "freeze + thaw" : (step[0] == 'f' ? "freeze until FROZEN" : "thaw until running"), cell(lib).c_str(),
                        cell(v("freeze_thaw/library_path")).c_str(), cell(k).c_str(), ratio_text(lib, k).c_str(), cell(kw).c_str(),
                        ratio_text(lib, kw).c_str(), cell(floor).c_str());
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    // Before any thread exists: the watchdog of the scratch directories.
    std::vector<std::string> roots;
    for (char const* name : hierarchies) roots.push_back(std::string("/sys/fs/cgroup/") + name);
    watchdog dog(roots);
    struct clear_subjects {
        ~clear_subjects() { subjects.clear(); }  // the scratch directories go before the watchdog is told
    } clear_at_exit;

    H no_subsystem;
    bare = &no_subsystem;
    if (!make_groups(no_subsystem, {})) return 1;
    bool ok = add<containers::cpuset>(hierarchies[0], {"cpuset.cpus", "cpuset.mems"}) && add<containers::pids>(hierarchies[1]) &&
              add<containers::cpuacct>(hierarchies[2]) && add<containers::freezer>(hierarchies[3]);
#ifdef BENCH_HAVE_CPU
    ok = ok && add<containers::basic_cpu<H>>(hierarchies[4]);
#endif
    if (!ok) return 1;
    for (auto const& s : subjects) {
        if (s->name == "freezer") {
            freezer_h = &s->h;
            freezer_ks = s->ks.get();
        }
    }

    // The library's side first, the kernel's last: cgroupfs leaves deferred work behind.
    benchmark::RegisterBenchmark("move/none/library", [](benchmark::State& st) { move_library(st, *bare); });
    benchmark::RegisterBenchmark("create_remove/none/library", [](benchmark::State& st) { create_remove_library(st, *bare); });
    benchmark::RegisterBenchmark("create_remove/none/library_path", [](benchmark::State& st) { create_remove_library_path(st, *bare); });
    for (auto const& s : subjects) {
        subject* p = s.get();
        benchmark::RegisterBenchmark(("move/" + p->name + "/library").c_str(), [p](benchmark::State& st) { move_library(st, p->h); });
        benchmark::RegisterBenchmark(("create_remove/" + p->name + "/library").c_str(),
                                     [p](benchmark::State& st) { create_remove_library(st, p->h); });
        benchmark::RegisterBenchmark(("create_remove/" + p->name + "/library_path").c_str(),
                                     [p](benchmark::State& st) { create_remove_library_path(st, p->h); });
    }
    benchmark::RegisterBenchmark("freeze_thaw/wake_floor", wake_floor)->Arg(1)->Arg(8)->Arg(64)->UseRealTime();
    benchmark::RegisterBenchmark("freeze_thaw/library", freeze_thaw_library)->Arg(1)->Arg(8)->Arg(64)->UseRealTime();
    benchmark::RegisterBenchmark("freeze_thaw/library_path", freeze_thaw_library_path)->Arg(1)->Arg(8)->Arg(64)->UseRealTime();
    for (auto const& s : subjects) {
        subject* p = s.get();
        benchmark::RegisterBenchmark(("move/" + p->name + "/kernel").c_str(),
                                     [p](benchmark::State& st) { move_between_kernel_cgroups(st, *p->ks, "a", "b"); });
        benchmark::RegisterBenchmark(("create_remove/" + p->name + "/kernel").c_str(),
                                     [p](benchmark::State& st) { create_remove_kernel(st, *p->ks); });
    }
    benchmark::RegisterBenchmark("freeze_thaw/kernel", [](benchmark::State& st) { freeze_thaw_kernel(st, false); })
        ->Arg(1)->Arg(8)->Arg(64)->UseRealTime();
    benchmark::RegisterBenchmark("freeze_thaw/kernel_another_frozen", [](benchmark::State& st) { freeze_thaw_kernel(st, true); })
        ->Arg(1)->Arg(8)->Arg(64)->UseRealTime();

    ratio_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    print_table(reporter, false);
    print_table(reporter, true);
    print_freezer_table(reporter);
    double load[3] = {0, 0, 0};
    if (::getloadavg(load, 3) == 3) std::printf("\n(load average at the end: %.2f %.2f %.2f; %u CPUs)\n", load[0], load[1], load[2], std::thread::hardware_concurrency());
    benchmark::Shutdown();
    return 0;
}
