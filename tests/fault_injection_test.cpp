// The fault-injection walk: every public operation, with its Nth allocation failed and, separately,
// its Nth system call through the seam failed, for every N until the operation completes with no
// failure injected. After a failed operation the hierarchy (every file of every container, read
// through the path interface) and the real affinity of every thread and process involved must be
// exactly as before; after one that succeeded anyway, every thread must run where its cpuset says.
//
// This is a binary of its own because it replaces the global operator new and delete (every
// form) with counting ones. Only allocations and system calls made on the thread that runs the
// operation count, so that the library's helper threads keep the walk deterministic.
#include "fault_support.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <new>

#include <csignal>
#include <sys/prctl.h>
#include <unistd.h>

// The replaceable operators here allocate with malloc and free with free, which is their point;
// g++ inlines them into the standard library at -O1 and above and then warns that free() meets
// operator new (-Wmismatched-new-delete, a false positive for replaced operators).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {

constinit thread_local bool alloc_armed = false;
constinit thread_local long alloc_count = 0;
constinit thread_local long alloc_fail_at = -1;

bool fail_this_allocation() noexcept {
    if (!alloc_armed) return false;
    return alloc_count++ == alloc_fail_at;
}

void* allocate(std::size_t n, std::size_t align) noexcept {
    if (n == 0) n = 1;
    if (align <= alignof(std::max_align_t)) return std::malloc(n);
    void* p = nullptr;
    return ::posix_memalign(&p, std::max(align, sizeof(void*)), n) == 0 ? p : nullptr;
}

/// Fails the `fail_at`th allocation (0-based) made on this thread while it lives.
class alloc_fault {
public:
    explicit alloc_fault(long fail_at) noexcept {
        alloc_count = 0;
        alloc_fail_at = fail_at;
        alloc_armed = true;
    }
    ~alloc_fault() { alloc_armed = false; }
    alloc_fault(alloc_fault const&) = delete;
    alloc_fault& operator=(alloc_fault const&) = delete;
    [[nodiscard]] bool hit() const noexcept { return alloc_count > alloc_fail_at; }
};

}  // namespace

// Every replaceable form of the global allocation functions.
void* operator new(std::size_t n) {
    if (fail_this_allocation()) throw std::bad_alloc();
    if (void* p = allocate(n, 0)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, std::nothrow_t const&) noexcept { return fail_this_allocation() ? nullptr : allocate(n, 0); }
void* operator new[](std::size_t n, std::nothrow_t const&) noexcept { return ::operator new(n, std::nothrow); }
void* operator new(std::size_t n, std::align_val_t a) {
    if (fail_this_allocation()) throw std::bad_alloc();
    if (void* p = allocate(n, static_cast<std::size_t>(a))) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
void* operator new(std::size_t n, std::align_val_t a, std::nothrow_t const&) noexcept {
    return fail_this_allocation() ? nullptr : allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, std::nothrow_t const&) noexcept { return ::operator new(n, a, std::nothrow); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::nothrow_t const&) noexcept { std::free(p); }
void operator delete[](void* p, std::nothrow_t const&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, std::nothrow_t const&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, std::nothrow_t const&) noexcept { std::free(p); }

using namespace containers;
using test::C;
using test::H;
using test::faults::real_affinity;
using test::faults::set_real_affinity;
using test::faults::syscall_fault;

namespace {

// The threads and the process that the scenarios place, with the affinity each had at the start.
struct actors {
    std::vector<std::unique_ptr<test::parked_thread>> threads;  // 0, 1, 2 are placed; 3 is forked
    pid_t process = 0;                                            // a child process, for cgroup.procs
    std::vector<std::pair<pid_t, cpumask>> saved;
    actors() {
        for (int i = 0; i < 4; ++i) threads.push_back(std::make_unique<test::parked_thread>());
        process = ::fork();
        if (process == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives a walk that aborts
            for (;;) ::pause();
        }
        for (auto const& t : threads) saved.emplace_back(t->tid(), real_affinity(t->tid()));
        saved.emplace_back(process, real_affinity(process));
    }
    ~actors() {
        restore();
        test::kill_and_reap(process);
    }
    void restore() const {
        for (auto const& [id, m] : saved) (void)set_real_affinity(id, m);
    }
    pid_t tid(std::size_t i) const { return threads[i]->tid(); }
};

// The machine's CPUs that this process may use: the scenarios need two.
struct cpu_pair {
    std::size_t a = cpumask::npos, b = cpumask::npos;
    cpu_pair() {
        cpumask const mine = real_affinity(0);
        a = mine.first();
        if (a != cpumask::npos) b = mine.next(a + 1);
    }
    std::string both() const { return std::to_string(a) + "," + std::to_string(b); }
};

struct world {
    H h;
    subsystem_handle<cpuset, H> cs;
};

// Every file of every container, with its content, through the path interface.
void dump_dir(H& h, std::string const& dir, std::string& out) {
    std::vector<std::string> names;
    REQUIRE_FALSE(fs::list(h, dir, names));
    for (std::string const& n : names) {
        std::string const p = (dir == "/" ? "" : dir) + "/" + n;
        std::string content;
        std::error_code ec = fs::read(h, p, content);
        if (ec.value() == EISDIR) {
            out += p + "/\n";
            dump_dir(h, p, out);
        } else {
            out += p + "=" + (ec ? "error " + std::to_string(ec.value()) : content) + "|";
        }
    }
}

struct picture {
    std::string files;
    std::string affinities;
    bool operator==(picture const&) const = default;
};

picture take_picture(world& w, actors const& a) {
    picture p;
    dump_dir(w.h, "/", p.files);
    for (auto const& [id, m] : a.saved) p.affinities += std::to_string(id) + ":" + real_affinity(id).to_list() + " ";
    return p;
}

// After an operation that succeeded: each placed thread runs on its cpuset's effective CPUs (no
// scenario makes a request but request_affinity, which is checked on its own).
void check_affinities_follow(world& w, actors const& a, std::string const& name) {
    for (std::size_t i = 0; i < a.threads.size(); ++i) {
        pid_t const tid = a.tid(i);
        if (w.h.find_task(tid) == nullptr) continue;
        std::string eff;
        REQUIRE_FALSE(fs::read(w.h, w.h.path(w.h.container_of(tid)) + (w.h.container_of(tid).is_top() ? "" : "/") + "cpuset.effective_cpus", eff));
        INFO(name << ": thread " << i << " in " << w.h.path(w.h.container_of(tid)));
        CHECK(real_affinity(tid).to_list() + "\n" == eff);
    }
}

struct scenario {
    std::string name;
    std::function<void(world&, actors&)> setup;
    std::function<std::error_code(world&, actors&)> op;
    bool register_cpuset = true;
    bool affinity_follows = true;  // false: the fork hook is best effort, as the kernel's
};

enum class fault_kind { allocation, syscall };

// Runs `s` with the Nth fault of `kind` for N = 0, 1, ... until the operation completes with no
// fault injected. Returns how many operations were failed on the way.
long walk(scenario const& s, actors& a, fault_kind kind) {
    // What the operation answers with no fault: success, or an error of its own (EACCES for the
    // top cpuset's masks) that must then change nothing either.
    std::error_code expected;
    {
        a.restore();
        world w;
        if (s.register_cpuset) REQUIRE_FALSE(w.h.register_subsystem(w.cs));
        s.setup(w, a);
        expected = s.op(w, a);
        w.h.flush_release_agent();
    }
    long failures = 0;
    for (long n = 0;; ++n) {
        INFO(s.name << (kind == fault_kind::allocation ? ": allocation " : ": system call ") << n);
        REQUIRE(n < 5000);  // an operation that never completes would be a defect of its own
        a.restore();
        auto w = std::make_unique<world>();
        if (s.register_cpuset) REQUIRE_FALSE(w->h.register_subsystem(w->cs));
        s.setup(*w, a);
        picture const before = take_picture(*w, a);
        std::error_code ec;
        bool hit = false;
        if (kind == fault_kind::allocation) {
            alloc_fault f(n);
            ec = s.op(*w, a);
            hit = f.hit();
        } else {
            syscall_fault f(n, EINVAL);
            ec = s.op(*w, a);
            hit = f.hit();
        }
        if (!hit) {
            CHECK(ec == expected);  // no fault: the answer it gives without injection
            if (!ec && s.affinity_follows) check_affinities_follow(*w, a, s.name);
            w->h.flush_release_agent();
            if (std::getenv("CONTAINERS_FAULT_VERBOSE") != nullptr) {
                std::fprintf(stderr, "%s: %s: %ld steps, %ld failed\n", s.name.c_str(),
                             kind == fault_kind::allocation ? "allocations" : "system calls", n, failures);
            }
            return failures;
        }
        if (ec) {
            ++failures;
            INFO("failed with " << ec.message());
            picture const after = take_picture(*w, a);
            CHECK(after.files == before.files);
            CHECK(after.affinities == before.affinities);
        } else if (s.affinity_follows) {
            check_affinities_follow(*w, a, s.name);
        }
        w->h.flush_release_agent();
    }
}

C& at(world& w, std::string_view path) {
    C* c = nullptr;
    REQUIRE_FALSE(w.h.lookup(path, c));
    return *c;
}

// /a (CPU b) holds thread 0 and has a child /a/b; /c (both CPUs) holds thread 2; thread 1 is not
// placed; notify_on_release is set on /a and /c with an agent, so that exits and moves release.
void base_setup(world& w, actors& a, cpu_pair const& cpus) {
    H& h = w.h;
    h.set_release_agent([](std::string const&) {});
    REQUIRE_FALSE(fs::write(h, "/cgroup.clone_children", "1"));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    REQUIRE_FALSE(fs::write(h, "/a/cpuset.cpus", std::to_string(cpus.b)));
    REQUIRE_FALSE(fs::write(h, "/a/cpuset.mems", "0"));
    REQUIRE_FALSE(fs::mkdir(h, "/a/b"));
    REQUIRE_FALSE(fs::mkdir(h, "/c"));
    REQUIRE_FALSE(fs::write(h, "/c/cpuset.cpus", cpus.both()));
    REQUIRE_FALSE(fs::write(h, "/c/cpuset.mems", "0"));
    REQUIRE_FALSE(fs::write(h, "/a/notify_on_release", "1"));
    REQUIRE_FALSE(fs::write(h, "/c/notify_on_release", "1"));
    REQUIRE_FALSE(fs::write(h, "/a/tasks", std::to_string(a.tid(0))));
    REQUIRE_FALSE(fs::write(h, "/c/tasks", std::to_string(a.tid(2))));
}

std::vector<scenario> scenarios(actors& a, cpu_pair const& cpus) {
    auto base = [cpus](world& w, actors& ac) { base_setup(w, ac, cpus); };
    std::vector<scenario> v;
    v.push_back({"mkdir /a/x", base, [](world& w, actors&) { return fs::mkdir(w.h, "/a/x"); }});
    v.push_back({"rmdir /a/b", base, [](world& w, actors&) { return fs::rmdir(w.h, "/a/b"); }});
    v.push_back({"attach one task (write /a/tasks)", base,
                 [](world& w, actors& ac) { return fs::write(w.h, "/a/tasks", std::to_string(ac.tid(1))); }});
    v.push_back({"attach three tasks to /c", base, [](world& w, actors& ac) {
                     pid_t const ids[] = {ac.tid(1), ac.tid(0), ac.tid(3)};
                     return w.h.attach(ids, at(w, "/c"));
                 }});
    v.push_back({"attach three tasks to /a", base, [](world& w, actors& ac) {
                     pid_t const ids[] = {ac.tid(1), ac.tid(2), ac.tid(3)};
                     return w.h.attach(ids, at(w, "/a"));
                 }});
    v.push_back({"attach a process (write /a/cgroup.procs)", base,
                 [](world& w, actors& ac) { return fs::write(w.h, "/a/cgroup.procs", std::to_string(ac.process)); }});
    v.push_back({"fork", base, [](world& w, actors& ac) { return w.h.fork(ac.tid(0), ac.tid(3)); }, true, false});
    v.push_back({"exit (the last task of /c, which releases it)", base, [](world& w, actors& ac) { return w.h.exit(ac.tid(2)); }});
    v.push_back({"register_subsystem", [](world&, actors&) {},
                 [](world& w, actors&) { return w.h.register_subsystem(w.cs); }, false});
    v.push_back({"set_cpus", base, [cpus](world& w, actors&) {
                     return w.cs.subsystem().set_cpus(at(w, "/c"), cpumask::range(cpus.b, cpus.b));
                 }});
    v.push_back({"set_mems", base, [](world& w, actors&) {
                     return w.cs.subsystem().set_mems(at(w, "/a/b"), cpumask::range(0, 0));
                 }});
    v.push_back({"request_affinity", base,
                 [cpus](world& w, actors& ac) {
                     return w.cs.subsystem().request_affinity(w.h, ac.tid(2), cpumask::range(cpus.a, cpus.a));
                 },
                 true, false});
    v.push_back({"set_topology (CPU b goes offline: /a's task moves to the top)", base, [cpus](world& w, actors&) {
                     topology t = w.cs.subsystem().machine();
                     t.online_cpus = cpumask::range(cpus.a, cpus.a);
                     return w.cs.subsystem().set_topology(w.h, std::move(t));
                 }});
    // Every file of the top container and of /a: read, and written with a value that changes it.
    std::map<std::string, std::string> const values = {
        {"tasks", "T1"},
        {"cgroup.procs", "P"},
        {"notify_on_release", "0"},
        {"cgroup.clone_children", "0"},
        {"release_agent", "/bin/true"},
        {"cpuset.cpus", cpus.both()},
        {"cpuset.mems", "0"},
        {"cpuset.cpu_exclusive", "1"},
        {"cpuset.mem_exclusive", "1"},
        {"cpuset.mem_hardwall", "1"},
        {"cpuset.memory_migrate", "1"},
        {"cpuset.memory_spread_page", "1"},
        {"cpuset.memory_spread_slab", "1"},
        {"cpuset.sched_load_balance", "0"},
        {"cpuset.memory_pressure_enabled", "1"},
        {"cpuset.sched_relax_domain_level", "1"},
    };
    world probe;
    REQUIRE_FALSE(probe.h.register_subsystem(probe.cs));
    base_setup(probe, a, cpus);
    for (std::string dir : {"/", "/a"}) {
        std::vector<std::string> names;
        REQUIRE_FALSE(fs::list(probe.h, dir, names));
        for (std::string const& n : names) {
            std::string const path = (dir == "/" ? "" : dir) + "/" + n;
            std::string ignored;
            if (fs::read(probe.h, path, ignored).value() == EISDIR) continue;  // a child
            v.push_back({"read " + path, base, [path](world& w, actors&) {
                             std::string out;
                             return fs::read(w.h, path, out);
                         }});
            auto it = values.find(n);
            if (it == values.end()) continue;  // read-only
            std::string value = it->second;
            v.push_back({"write " + path, base, [path, value](world& w, actors& ac) {
                             std::string v2 = value == "T1" ? std::to_string(ac.tid(1)) : value == "P" ? std::to_string(ac.process) : value;
                             return fs::write(w.h, path, v2);
                         }});
        }
    }
    probe.h.flush_release_agent();
    return v;
}

}  // namespace

TEST_CASE("every public operation survives its Nth allocation failing, for every N, and a failure changes nothing",
          "[faults][allocation]") {
    cpu_pair const cpus;
    if (cpus.b == cpumask::npos) CONTAINERS_SKIP("needs two CPUs");
    actors a;
    long total = 0;
    for (scenario const& s : scenarios(a, cpus)) total += walk(s, a, fault_kind::allocation);
    CHECK(total > 0);
}

TEST_CASE("every public operation survives its Nth system call failing, for every N, and a failure changes nothing",
          "[faults][syscall]") {
    cpu_pair const cpus;
    if (cpus.b == cpumask::npos) CONTAINERS_SKIP("needs two CPUs");
    actors a;
    long total = 0;
    for (scenario const& s : scenarios(a, cpus)) total += walk(s, a, fault_kind::syscall);
    CHECK(total > 0);
}

TEST_CASE("parse_list and parse_hex return ENOMEM when memory runs out, and leave the mask as it was",
          "[faults][cpumask]") {
    cpumask const before = cpumask::range(3, 3);
    for (long n = 0;; ++n) {
        REQUIRE(n < 100);
        cpumask m = before;
        cpumask h = before;
        std::error_code list_ec, hex_ec;
        bool hit = false;
        {
            alloc_fault f(n);
            list_ec = cpumask::parse_list("0-4000:3/7", 8192, m);
            hit = f.hit();
        }
        {
            alloc_fault f(n);
            hex_ec = cpumask::parse_hex("1,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001", 1024, h);
            hit = hit || f.hit();
        }
        if (!hit) {
            CHECK_FALSE(list_ec);
            CHECK_FALSE(hex_ec);
            break;
        }
        if (list_ec) {
            CHECK(list_ec.value() == ENOMEM);
            CHECK(m == before);
        }
        if (hex_ec) {
            CHECK(hex_ec.value() == ENOMEM);
            CHECK(h == before);
        }
    }
}
