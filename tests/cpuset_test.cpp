// cpuset: real affinities on this machine's CPUs (checked with sched_getaffinity and
// /proc/self/task/TID/status), and, on injected topologies of many CPUs and nodes with logical
// tasks, every validation rule, clone_children, the queries, memory_pressure and hotplug.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

using namespace containers;
using test::C;
using test::H;

namespace {
using test::errc_of;
using test::list;

cpumask affinity_of(pid_t tid) {
    auto set = cpumask::range(0, 4095).to_cpu_set();
    REQUIRE(::sched_getaffinity(tid, set.bytes, set.set.get()) == 0);
    return cpumask::from_cpu_set(set.set.get(), set.bytes);
}

std::string proc_cpus_allowed_list(pid_t tid) {
    std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.starts_with("Cpus_allowed_list:")) return line.substr(line.find_first_not_of(" \t", 18));
    }
    return {};
}

// Restores the calling thread's affinity at scope exit, so that the suite is not left pinned.
struct affinity_guard {
    cpumask saved = affinity_of(0);
    ~affinity_guard() {
        auto set = saved.to_cpu_set();
        ::sched_setaffinity(0, set.bytes, set.set.get());
    }
};

std::string read(auto& h, std::string_view path) {
    std::string out;
    REQUIRE_FALSE(fs::read(h, path, out));
    return out;
}

// Logical tasks and an injected machine: 64 CPUs (0-63 online), 4 nodes.
struct running_fiber {
    static inline std::uint32_t id = 1;
    static std::uint32_t get() noexcept { return id; }
};
using LH = hierarchy<logical_task_traits<std::uint32_t, running_fiber>>;
using lcpuset = basic_cpuset<LH>;

struct injected {
    std::int64_t now = 1000;
    LH h;
    subsystem_handle<lcpuset, LH> cs;
    explicit injected(cpumask cpus = list("0-63"), cpumask nodes = list("0-3")) {
        topology t = topology::custom(std::move(cpus), std::move(nodes), 128, 8);
        REQUIRE_FALSE(h.register_subsystem(cs, t, [this] { return now; }));
        REQUIRE_FALSE(fs::write(h, "/cgroup.clone_children", "1"));
    }
};
}  // namespace

TEST_CASE("a cpuset's files read as cgroup v1's, with its defaults", "[cpuset][files]") {
    injected m;
    CHECK(read(m.h, "/cpuset.cpus") == "0-63\n");
    CHECK(read(m.h, "/cpuset.mems") == "0-3\n");
    CHECK(read(m.h, "/cpuset.cpu_exclusive") == "1\n");
    CHECK(read(m.h, "/cpuset.memory_pressure_enabled") == "0\n");
    REQUIRE_FALSE(fs::write(m.h, "/cgroup.clone_children", "0"));
    REQUIRE_FALSE(fs::mkdir(m.h, "/a"));
    CHECK(read(m.h, "/a/cpuset.cpus") == "\n");
    CHECK(read(m.h, "/a/cpuset.mems") == "\n");
    CHECK(read(m.h, "/a/cpuset.effective_cpus") == "\n");
    CHECK(read(m.h, "/a/cpuset.sched_load_balance") == "1\n");
    CHECK(read(m.h, "/a/cpuset.sched_relax_domain_level") == "-1\n");
    CHECK(read(m.h, "/a/cpuset.memory_pressure") == "0\n");
    std::string out;
    CHECK(errc_of(fs::read(m.h, "/a/cpuset.memory_pressure_enabled", out)) == std::errc::no_such_file_or_directory);
    CHECK(errc_of(fs::write(m.h, "/a/cpuset.effective_cpus", "1")) == std::errc::invalid_argument);
    CHECK(errc_of(fs::write(m.h, "/a/cpuset.memory_pressure", "1")) == std::errc::invalid_argument);
    CHECK(errc_of(fs::write(m.h, "/cpuset.cpus", "0")) == std::errc::permission_denied);
}

TEST_CASE("cpuset rules give the kernel's errors", "[cpuset][rules]") {
    injected m;
    REQUIRE_FALSE(fs::mkdir(m.h, "/a"));
    REQUIRE_FALSE(fs::mkdir(m.h, "/b"));
    REQUIRE_FALSE(fs::write(m.h, "/a/cpuset.cpus", "0-7"));
    REQUIRE_FALSE(fs::write(m.h, "/b/cpuset.cpus", "8-15"));
    REQUIRE_FALSE(fs::mkdir(m.h, "/a/x"));  // clone_children: 0-7 and 0-3
    CHECK(read(m.h, "/a/x/cpuset.cpus") == "0-7\n");

    SECTION("a child stays within its parent: EACCES") {
        CHECK(errc_of(fs::write(m.h, "/a/x/cpuset.cpus", "8")) == std::errc::permission_denied);
        CHECK(errc_of(fs::write(m.h, "/a/x/cpuset.mems", "0-3")) == std::errc(0));
    }
    SECTION("a parent cannot shrink below a child: EBUSY") {
        CHECK(errc_of(fs::write(m.h, "/a/cpuset.cpus", "0-3")) == std::errc::device_or_resource_busy);
        CHECK(read(m.h, "/a/cpuset.cpus") == "0-7\n");
    }
    SECTION("CPUs that are not online, or beyond the possible ones") {
        CHECK(errc_of(fs::write(m.h, "/a/cpuset.cpus", "64")) == std::errc::invalid_argument);
        CHECK(errc_of(fs::write(m.h, "/a/cpuset.cpus", "128")) == std::errc::result_out_of_range);
        CHECK(errc_of(fs::write(m.h, "/a/cpuset.mems", "5")) == std::errc::invalid_argument);
        CHECK(errc_of(fs::write(m.h, "/a/cpuset.cpus", "1-0")) == std::errc::invalid_argument);
    }
    SECTION("exclusive siblings never overlap: EINVAL") {
        REQUIRE_FALSE(fs::write(m.h, "/a/cpuset.cpu_exclusive", "1"));
        CHECK(errc_of(fs::write(m.h, "/b/cpuset.cpus", "7-15")) == std::errc::invalid_argument);
        CHECK(errc_of(fs::write(m.h, "/a/x/cpuset.cpu_exclusive", "1")) == std::errc(0));
        CHECK(errc_of(fs::write(m.h, "/a/cpuset.cpu_exclusive", "0")) == std::errc::device_or_resource_busy);
        REQUIRE_FALSE(fs::write(m.h, "/b/cpuset.mems", "1"));
        CHECK(errc_of(fs::write(m.h, "/b/cpuset.mem_exclusive", "1")) == std::errc::invalid_argument);  // a has 0-3
        CHECK(read(m.h, "/b/cpuset.mem_exclusive") == "0\n");
        CHECK(errc_of(fs::write(m.h, "/a/cpuset.mems", "0")) == std::errc::device_or_resource_busy);  // x has 0-3
    }
    SECTION("an exclusive child needs an exclusive parent: EACCES") {
        CHECK(errc_of(fs::write(m.h, "/a/x/cpuset.cpu_exclusive", "1")) == std::errc::permission_denied);
    }
    SECTION("a cpuset with tasks cannot be emptied, an empty one cannot be joined: ENOSPC") {
        REQUIRE_FALSE(fs::write(m.h, "/a/x/tasks", "7"));
        CHECK(errc_of(fs::write(m.h, "/a/x/cpuset.cpus", "\n")) == std::errc::no_space_on_device);
        CHECK(errc_of(fs::write(m.h, "/a/cpuset.mems", "")) == std::errc(0));  // an empty write changes nothing
        CHECK(errc_of(fs::write(m.h, "/a/x/cpuset.mems", "\n")) == std::errc::no_space_on_device);
        REQUIRE_FALSE(fs::mkdir(m.h, "/empty"));
        REQUIRE_FALSE(fs::write(m.h, "/empty/cpuset.cpus", "\n"));
        CHECK(errc_of(fs::write(m.h, "/empty/tasks", "8")) == std::errc::no_space_on_device);
        CHECK(m.h.find_task(8) == nullptr);
    }
    SECTION("sched_relax_domain_level is -1 up to the machine's maximum") {
        CHECK(errc_of(fs::write(m.h, "/a/cpuset.sched_relax_domain_level", "-2")) == std::errc::invalid_argument);
        CHECK(errc_of(fs::write(m.h, "/a/cpuset.sched_relax_domain_level", "3")) == std::errc::invalid_argument);
        REQUIRE_FALSE(fs::write(m.h, "/a/cpuset.sched_relax_domain_level", "2"));
        CHECK(read(m.h, "/a/cpuset.sched_relax_domain_level") == "2\n");
    }
}

TEST_CASE("clone_children copies cpus and mems unless a sibling is exclusive", "[cpuset][clone]") {
    injected m;
    REQUIRE_FALSE(fs::mkdir(m.h, "/a"));
    CHECK(read(m.h, "/a/cpuset.cpus") == "0-63\n");
    CHECK(read(m.h, "/a/cpuset.mems") == "0-3\n");
    REQUIRE_FALSE(fs::write(m.h, "/a/cpuset.cpus", "0-3"));
    REQUIRE_FALSE(fs::write(m.h, "/a/cpuset.cpu_exclusive", "1"));
    REQUIRE_FALSE(fs::mkdir(m.h, "/b"));
    CHECK(read(m.h, "/b/cpuset.cpus") == "\n");
    REQUIRE_FALSE(fs::write(m.h, "/a/cgroup.clone_children", "0"));
    REQUIRE_FALSE(fs::mkdir(m.h, "/a/c"));
    CHECK(read(m.h, "/a/c/cpuset.cpus") == "\n");
}

TEST_CASE("queries: allowed CPUs and nodes, hardwall, exclusive overlap, spreading", "[cpuset][queries]") {
    injected m;
    lcpuset& cs = m.cs.subsystem();
    REQUIRE_FALSE(fs::mkdir(m.h, "/a"));
    REQUIRE_FALSE(fs::write(m.h, "/a/cpuset.cpus", "4-7"));
    REQUIRE_FALSE(fs::write(m.h, "/a/cpuset.mems", "1-2"));
    REQUIRE_FALSE(fs::mkdir(m.h, "/a/b"));
    REQUIRE_FALSE(fs::write(m.h, "/a/b/cpuset.mems", "2"));
    REQUIRE_FALSE(fs::write(m.h, "/a/b/tasks", "5"));
    REQUIRE_FALSE(fs::write(m.h, "/a/tasks", "6"));
    CHECK(cs.allowed_cpus(m.h, 5) == list("4-7"));
    CHECK(cs.allowed_nodes(m.h, 5) == list("2"));
    CHECK(cs.allowed_cpus(m.h, 99) == list("0-63"));  // unknown task: the top cpuset
    CHECK(cs.node_allowed(m.h, 5, 2, true));
    CHECK_FALSE(cs.node_allowed(m.h, 5, 1, true));
    CHECK(cs.node_allowed(m.h, 5, 1, false));  // the top cpuset is the nearest hardwall ancestor
    REQUIRE_FALSE(fs::write(m.h, "/a/cpuset.mem_hardwall", "1"));
    CHECK(cs.node_allowed(m.h, 5, 1, false));
    CHECK_FALSE(cs.node_allowed(m.h, 5, 3, false));
    CHECK(cs.exclusive_nodes_overlap(m.h, 5, 6));  // both see the top cpuset's nodes
    REQUIRE_FALSE(fs::write(m.h, "/a/cpuset.mem_exclusive", "1"));
    REQUIRE_FALSE(fs::mkdir(m.h, "/c"));  // not cloned: a sibling is exclusive
    CHECK(read(m.h, "/c/cpuset.cpus") == "\n");
    REQUIRE_FALSE(fs::write(m.h, "/c/cpuset.cpus", "20-23"));
    REQUIRE_FALSE(fs::write(m.h, "/c/cpuset.mems", "3"));
    REQUIRE_FALSE(fs::write(m.h, "/c/cpuset.mem_exclusive", "1"));
    REQUIRE_FALSE(fs::write(m.h, "/c/tasks", "9"));
    CHECK_FALSE(cs.exclusive_nodes_overlap(m.h, 5, 9));
    CHECK(cs.exclusive_nodes_overlap(m.h, 5, 6));
    CHECK_FALSE(cs.spread_page(m.h, 5));
    REQUIRE_FALSE(fs::write(m.h, "/a/cpuset.memory_spread_page", "1"));
    REQUIRE_FALSE(fs::mkdir(m.h, "/a/d"));  // inherits the spread flags
    REQUIRE_FALSE(fs::write(m.h, "/a/d/tasks", "11"));
    CHECK(cs.spread_page(m.h, 6));
    CHECK(cs.spread_page(m.h, 11));
    CHECK_FALSE(cs.spread_slab(m.h, 11));
}

TEST_CASE("memory_pressure is the kernel's fmeter, counted only when enabled", "[cpuset][pressure]") {
    injected m;
    lcpuset& cs = m.cs.subsystem();
    REQUIRE_FALSE(fs::mkdir(m.h, "/a"));
    REQUIRE_FALSE(fs::write(m.h, "/a/tasks", "3"));
    cs.memory_pressure_event(m.h, 3);
    m.now += 1;
    CHECK(read(m.h, "/a/cpuset.memory_pressure") == "0\n");  // not enabled: not counted
    REQUIRE_FALSE(fs::write(m.h, "/cpuset.memory_pressure_enabled", "1"));
    for (int i = 0; i < 10; ++i) cs.memory_pressure_event(m.h, 3);
    m.now += 1;
    // One tick: val = 933 * 0 / 1000 + (1000 - 933) * 10000 / 1000 = 670.
    CHECK(read(m.h, "/a/cpuset.memory_pressure") == "670\n");
    m.now += 10;
    // Ten more ticks decay it by 0.933 each, with integer arithmetic as in the kernel.
    int v = 670;
    for (int i = 0; i < 10; ++i) v = 933 * v / 1000;
    CHECK(read(m.h, "/a/cpuset.memory_pressure") == std::to_string(v) + "\n");
    CHECK(v > 330);
    CHECK(v < 340);  // about half after 10 s
}

TEST_CASE("hotplug: a cpuset left without online CPUs hands its tasks to its nearest ancestor that has some",
          "[cpuset][hotplug]") {
    injected m;
    lcpuset& cs = m.cs.subsystem();
    REQUIRE_FALSE(fs::mkdir(m.h, "/a"));
    REQUIRE_FALSE(fs::write(m.h, "/a/cpuset.cpus", "8-15"));
    REQUIRE_FALSE(fs::mkdir(m.h, "/a/b"));
    REQUIRE_FALSE(fs::write(m.h, "/a/b/cpuset.cpus", "12-15"));
    REQUIRE_FALSE(fs::write(m.h, "/a/b/tasks", "21"));
    REQUIRE_FALSE(fs::write(m.h, "/a/tasks", "22"));
    REQUIRE_FALSE(cs.set_topology(m.h, topology::custom(list("0-11,16-63"), list("0-3"), 128, 8)));
    CHECK(read(m.h, "/cpuset.cpus") == "0-11,16-63\n");
    CHECK(read(m.h, "/a/cpuset.cpus") == "8-11\n");
    CHECK(read(m.h, "/a/b/cpuset.cpus") == "\n");
    CHECK(m.h.container_of(21).name() == "a");  // moved up
    CHECK(m.h.container_of(22).name() == "a");
    REQUIRE_FALSE(cs.set_topology(m.h, topology::custom(list("0-7,16-63"), list("0-3"), 128, 8)));
    CHECK(m.h.container_of(21).is_top());
    CHECK(m.h.container_of(22).is_top());
}

TEST_CASE("threads attached to a cpuset really run only on its CPUs", "[cpuset][syscall]") {
    H h;
    subsystem_handle<cpuset, H> cs;
    REQUIRE_FALSE(h.register_subsystem(cs));
    cpumask const online = cs.subsystem().machine().online_cpus & cs.subsystem().machine().allowed_cpus;
    REQUIRE_FALSE(online.empty());
    std::size_t const first = online.first();
    std::size_t const last = online.extent() - 1;
    REQUIRE_FALSE(fs::write(h, "/cgroup.clone_children", "1"));
    REQUIRE_FALSE(fs::mkdir(h, "/pinned"));
    REQUIRE_FALSE(fs::write(h, "/pinned/cpuset.cpus", std::to_string(last)));
    test::parked_thread t;
    REQUIRE_FALSE(fs::write(h, "/pinned/tasks", std::to_string(t.tid())));
    CHECK(affinity_of(t.tid()) == cpumask::range(last, last));
    CHECK(proc_cpus_allowed_list(t.tid()) == std::to_string(last));

    // Changing the CPUs re-applies them at once.
    REQUIRE_FALSE(fs::write(h, "/pinned/cpuset.cpus", std::to_string(first)));
    CHECK(affinity_of(t.tid()) == cpumask::range(first, first));
    CHECK(proc_cpus_allowed_list(t.tid()) == std::to_string(first));

    // The thread's own request is kept within its cpuset, as kernels since 6.2 do.
    REQUIRE_FALSE(fs::write(h, "/pinned/cpuset.cpus", online.to_list()));
    CHECK(affinity_of(t.tid()) == online);
    REQUIRE_FALSE(cs.subsystem().request_affinity(h, t.tid(), cpumask::range(last, last)));
    CHECK(affinity_of(t.tid()) == cpumask::range(last, last));
    if (first != last) {
        REQUIRE_FALSE(fs::write(h, "/pinned/cpuset.cpus", std::to_string(first)));  // no overlap: the cpuset's CPUs
        CHECK(affinity_of(t.tid()) == cpumask::range(first, first));
        REQUIRE_FALSE(fs::write(h, "/pinned/cpuset.cpus", online.to_list()));  // the request again
        CHECK(affinity_of(t.tid()) == cpumask::range(last, last));
    }
    CHECK(errc_of(cs.subsystem().request_affinity(h, t.tid(), cpumask{})) == std::errc::invalid_argument);

    // Back in the top cpuset, the thread may run everywhere its request allows.
    REQUIRE_FALSE(fs::write(h, "/tasks", std::to_string(t.tid())));
    CHECK(proc_cpus_allowed_list(t.tid()) == std::to_string(last));
}

TEST_CASE("the current thread reads its effective CPUs lock-free and refreshes its memory policy", "[cpuset][syscall]") {
    affinity_guard restore;
    H h;
    subsystem_handle<cpuset, H> cs;
    REQUIRE_FALSE(h.register_subsystem(cs));
    REQUIRE_FALSE(fs::write(h, "/cgroup.clone_children", "1"));
    REQUIRE_FALSE(fs::mkdir(h, "/mine"));
    cpumask const online = cs.subsystem().machine().online_cpus & cs.subsystem().machine().allowed_cpus;
    std::size_t const last = online.extent() - 1;
    REQUIRE_FALSE(fs::write(h, "/mine/cpuset.cpus", std::to_string(last)));
    std::thread([&] {
        C* mine = nullptr;
        CHECK_FALSE(h.lookup("/mine", mine));
        CHECK_FALSE(h.attach_self(*mine));
        {
            read_section rs;
            CHECK(cpuset::current_cpus(h) == cpumask::range(last, last));
        }
        CHECK(affinity_of(0) == cpumask::range(last, last));
        // The memory policy: MPOL_BIND to the cpuset's nodes after a refresh, then restored.
        CHECK_FALSE(cpuset::refresh(h));
        int mode = -1;
        unsigned long nodes[16] = {};
        CHECK(::syscall(SYS_get_mempolicy, &mode, nodes, sizeof nodes * 8, nullptr, 0) == 0);
        CHECK(mode == 2);  // MPOL_BIND
        CHECK(cpumask::from_cpu_set(reinterpret_cast<cpu_set_t*>(nodes), sizeof nodes) == cs.subsystem().machine().online_nodes);
        CHECK_FALSE(cpuset::refresh(h));  // nothing changed: one comparison
        ::syscall(SYS_set_mempolicy, 0 /* MPOL_DEFAULT */, nullptr, 0);
    }).join();
}

TEST_CASE("a cpuset script gives the same results on the kernel and on the library", "[cpuset][kernel]") {
    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 cpuset hierarchy is not mounted writable at /sys/fs/cgroup/cpuset");
    std::string const k = scratch->path();
    auto kernel = [&](char const* op, std::string const& path, std::string const& value) { return test::kernel_op(k, op, path, value); };
    // The library's top cpuset is exclusive, as the kernel's root is; make the scratch one so too.
    if (kernel("write", "/cpuset.cpu_exclusive", "1").error != 0 || kernel("write", "/cpuset.mem_exclusive", "1").error != 0) {
        CONTAINERS_SKIP("the scratch cpuset cannot be made exclusive here (an exclusive sibling overlaps)");
    }
    REQUIRE(kernel("write", "/cgroup.clone_children", "1").error == 0);
    H h;
    subsystem_handle<cpuset, H> cs;
    REQUIRE_FALSE(h.register_subsystem(cs));
    REQUIRE_FALSE(fs::write(h, "/cgroup.clone_children", "1"));
    auto library = [&](char const* op, std::string const& path, std::string const& value) { return test::library_op(h, op, path, value); };
    test::parked_thread t;
    std::string const tid = std::to_string(t.tid());
    struct step {
        char const* op;
        std::string path;
        std::string value;
    };
    std::vector<step> const script{
        {"read", "/cpuset.cpus", ""},
        {"read", "/cpuset.mems", ""},
        {"read", "/cpuset.cpu_exclusive", ""},
        {"mkdir", "/a", ""},
        {"mkdir", "/b", ""},
        {"read", "/a/cpuset.cpus", ""},
        {"read", "/a/cpuset.mems", ""},
        {"write", "/a/cpuset.cpus", "0"},
        {"write", "/b/cpuset.cpus", "1"},
        {"mkdir", "/a/x", ""},
        {"read", "/a/x/cpuset.cpus", ""},
        {"write", "/a/x/cpuset.cpus", "1"},
        {"write", "/a/cpuset.cpus", "1"},
        {"write", "/a/cpuset.cpus", "0-1"},
        {"write", "/a/cpuset.cpus", " 0 \n"},
        {"write", "/a/cpuset.cpus", "0-1:1/2"},
        {"read", "/a/cpuset.cpus", ""},
        {"write", "/a/cpuset.cpus", "2"},
        {"write", "/a/cpuset.cpus", "99999999999"},
        {"write", "/a/cpuset.cpus", "1-0"},
        {"write", "/a/cpuset.cpu_exclusive", "1"},
        {"write", "/b/cpuset.cpus", "0-1"},
        {"write", "/a/x/cpuset.cpu_exclusive", "1"},
        {"write", "/a/cpuset.cpu_exclusive", "0"},
        {"write", "/a/x/cpuset.cpu_exclusive", "0"},
        {"write", "/a/cpuset.mems", "1"},
        {"write", "/a/cpuset.mems", "5"},
        {"write", "/a/cpuset.mems", "0"},
        {"read", "/a/cpuset.effective_cpus", ""},
        {"read", "/a/cpuset.effective_mems", ""},
        {"write", "/a/cpuset.effective_cpus", "0"},
        {"write", "/a/cpuset.sched_relax_domain_level", "-2"},
        {"write", "/a/cpuset.sched_relax_domain_level", "2"},
        {"read", "/a/cpuset.sched_relax_domain_level", ""},
        {"write", "/a/cpuset.sched_relax_domain_level", "3"},
        {"write", "/a/cpuset.sched_relax_domain_level", "abc"},
        {"write", "/a/cpuset.sched_load_balance", "0"},
        {"read", "/a/cpuset.sched_load_balance", ""},
        {"write", "/a/cpuset.memory_migrate", "1"},
        {"read", "/a/cpuset.memory_migrate", ""},
        {"write", "/a/cpuset.mem_hardwall", "1"},
        {"read", "/a/cpuset.mem_hardwall", ""},
        {"write", "/a/cpuset.memory_spread_page", "1"},
        {"write", "/a/cpuset.memory_spread_slab", "1"},
        {"mkdir", "/a/y", ""},
        {"read", "/a/y/cpuset.memory_spread_page", ""},
        {"read", "/a/y/cpuset.memory_spread_slab", ""},
        {"read", "/a/y/cpuset.mem_hardwall", ""},
        {"read", "/a/cpuset.memory_pressure", ""},
        {"write", "/a/cpuset.memory_pressure", "1"},
        {"read", "/a/cpuset.memory_pressure_enabled", ""},
        {"write", "/a/x/tasks", tid},
        {"read", "/a/x/tasks", ""},
        {"write", "/a/x/cpuset.cpus", "\n"},
        {"write", "/a/x/cpuset.mems", "\n"},
        {"write", "/a/cpuset.cpus", ""},
        {"mkdir", "/e", ""},
        {"read", "/e/cpuset.cpus", ""},
        {"write", "/e/tasks", tid},
        {"write", "/tasks", tid},
        {"write", "/a/x/cpuset.cpus", "\n"},
        {"read", "/a/x/cpuset.cpus", ""},
        {"rmdir", "/a/x", ""},
        {"rmdir", "/a/y", ""},
        {"rmdir", "/a", ""},
        {"rmdir", "/b", ""},
        {"rmdir", "/e", ""},
    };
    int index = 0;
    for (step const& s : script) {
        CAPTURE(index++, s.op, s.path, s.value);
        auto const want = kernel(s.op, s.path, s.value);
        auto const got = library(s.op, s.path, s.value);
        CHECK(got.error == want.error);
        CHECK(got.content == want.content);
        if (s.path == "/a/x/tasks" && s.op == std::string_view("write")) {
            // Both put the thread on the same CPUs.
            CHECK(proc_cpus_allowed_list(t.tid()) == "0");
        }
    }
}

TEST_CASE("the typed setters validate as the files do", "[cpuset][rules]") {
    injected m;
    lcpuset& cs = m.cs.subsystem();
    REQUIRE_FALSE(fs::mkdir(m.h, "/a"));
    LH::container* a = nullptr;
    REQUIRE_FALSE(m.h.lookup("/a", a));
    REQUIRE_FALSE(cs.set_cpus(*a, list("2-5")));
    CHECK(read(m.h, "/a/cpuset.cpus") == "2-5\n");
    CHECK(errc_of(cs.set_cpus(*a, list("64"))) == std::errc::invalid_argument);
    CHECK(errc_of(cs.set_cpus(*a, list("200"))) == std::errc::result_out_of_range);
    CHECK(errc_of(cs.set_cpus(m.h.top(), list("1"))) == std::errc::permission_denied);
    REQUIRE_FALSE(cs.set_mems(*a, list("1")));
    CHECK(read(m.h, "/a/cpuset.mems") == "1\n");
    CHECK(errc_of(cs.set_mems(*a, list("6"))) == std::errc::invalid_argument);
}

TEST_CASE("scheduling domains follow sched_load_balance, and a callback hears of changes", "[cpuset][domains]") {
    injected m;
    lcpuset& cs = m.cs.subsystem();
    std::vector<std::vector<cpumask>> heard;
    cs.on_sched_domains_changed([&](std::vector<cpumask> const& d) { heard.push_back(d); });
    CHECK(cs.sched_domains(m.h) == std::vector<cpumask>{list("0-63")});
    REQUIRE_FALSE(fs::write(m.h, "/cgroup.clone_children", "0"));
    for (auto [name, cpus] : {std::pair{"/rt", "0-3"}, std::pair{"/batch", "4-31"}, std::pair{"/batch2", "16-47"}, std::pair{"/iso", "48-63"}}) {
        REQUIRE_FALSE(fs::mkdir(m.h, name));
        REQUIRE_FALSE(fs::write(m.h, std::string(name) + "/cpuset.cpus", cpus));
    }
    REQUIRE_FALSE(fs::write(m.h, "/iso/cpuset.sched_load_balance", "0"));
    REQUIRE_FALSE(fs::mkdir(m.h, "/iso/inner"));
    REQUIRE_FALSE(fs::write(m.h, "/iso/inner/cpuset.cpus", "60-63"));
    heard.clear();
    REQUIRE_FALSE(fs::write(m.h, "/cpuset.sched_load_balance", "0"));
    // rt alone; batch and batch2 overlap and merge; iso does not balance, but its child does.
    std::vector<cpumask> const expected{list("0-3"), list("4-47"), list("60-63")};
    CHECK(cs.sched_domains(m.h) == expected);
    REQUIRE(heard.size() == 1);
    CHECK(heard[0] == expected);
    REQUIRE_FALSE(fs::write(m.h, "/batch2/cpuset.cpus", "32-47"));
    CHECK(cs.sched_domains(m.h) == std::vector<cpumask>{list("0-3"), list("4-31"), list("32-47"), list("60-63")});
    CHECK(heard.size() == 2);
    REQUIRE_FALSE(fs::write(m.h, "/cpuset.sched_load_balance", "1"));
    CHECK(cs.sched_domains(m.h) == std::vector<cpumask>{list("0-63")});
    CHECK(heard.size() == 3);
}

TEST_CASE("memory_migrate moves a task's pages when it joins and when the nodes change", "[cpuset][nodes]") {
    // Two nodes, so that there is somewhere to move to; the CPUs are the machine's own.
    topology real = topology::from_system();
    cpumask const cpus = real.online_cpus & real.allowed_cpus;
    H h;
    subsystem_handle<cpuset, H> cs;
    REQUIRE_FALSE(h.register_subsystem(cs, topology::custom(cpus, list("0-1"), real.possible_cpus, 2)));
    for (auto [name, mems] : {std::pair{"/a", "0"}, std::pair{"/b", "1"}}) {
        REQUIRE_FALSE(fs::mkdir(h, name));
        REQUIRE_FALSE(fs::write(h, std::string(name) + "/cpuset.cpus", cpus.to_list()));
        REQUIRE_FALSE(fs::write(h, std::string(name) + "/cpuset.mems", mems));
    }
    test::parked_thread t;
    std::string const tid = std::to_string(t.tid());
    REQUIRE_FALSE(fs::write(h, "/a/tasks", tid));
    REQUIRE_FALSE(fs::write(h, "/b/tasks", tid));
    CHECK(cs.subsystem().page_migrations() == 0);  // b does not migrate
    REQUIRE_FALSE(fs::write(h, "/b/cpuset.memory_migrate", "1"));
    REQUIRE_FALSE(fs::write(h, "/a/tasks", tid));
    CHECK(cs.subsystem().page_migrations() == 0);  // a does not either
    REQUIRE_FALSE(fs::write(h, "/b/tasks", tid));
    CHECK(cs.subsystem().page_migrations() == 1);  // joining b: from node 0 to node 1
    REQUIRE_FALSE(fs::write(h, "/b/cpuset.mems", "0-1"));
    CHECK(cs.subsystem().page_migrations() == 2);  // b's nodes changed
    REQUIRE_FALSE(fs::write(h, "/b/cpuset.mems", "0-1"));
    CHECK(cs.subsystem().page_migrations() == 2);  // unchanged: nothing to move
}
