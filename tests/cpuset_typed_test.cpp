// cpuset's typed setters and getters, one per file: each answers as writing (reading) the file
// does, because the file's handler calls it. Every case is run both ways on two identical trees
// and the errno and every file of every cpuset afterwards must agree.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <functional>

using namespace containers;

namespace {
using test::errc_of;
using test::list;

struct running_fiber {
    static std::uint32_t get() noexcept { return 1; }
};
using LH = hierarchy<logical_task_traits<std::uint32_t, running_fiber>>;
using LC = LH::container;
using lcpuset = basic_cpuset<LH>;

// 64 CPUs, 4 nodes: /a (0-7, node 0) with /a/b (0-3, node 0, task 5), and /c (8-15, nodes 0-1).
struct tree {
    std::int64_t now = 1000;
    LH h;
    subsystem_handle<lcpuset, LH> cs;
    LC* a = nullptr;
    LC* b = nullptr;
    LC* c = nullptr;
    tree() {
        REQUIRE_FALSE(h.register_subsystem(cs, topology::custom(list("0-63"), list("0-3"), 128, 8), [this] { return now; }));
        for (auto [dir, cpus, mems] : {std::tuple{"/a", "0-7", "0"}, {"/a/b", "0-3", "0"}, {"/c", "8-15", "0-1"}}) {
            REQUIRE_FALSE(fs::mkdir(h, dir));
            REQUIRE_FALSE(fs::write(h, std::string(dir) + "/cpuset.cpus", cpus));
            REQUIRE_FALSE(fs::write(h, std::string(dir) + "/cpuset.mems", mems));
        }
        REQUIRE_FALSE(h.lookup("/a", a));
        REQUIRE_FALSE(h.lookup("/a/b", b));
        REQUIRE_FALSE(h.lookup("/c", c));
        REQUIRE_FALSE(h.attach(5u, *b));
    }
    LC& at(std::string const& path) { return path.empty() ? h.top() : path == "/a" ? *a : path == "/a/b" ? *b : *c; }
    lcpuset& s() { return cs.subsystem(); }
    // Every cpuset file of every container, "path/file=content".
    std::string dump() {
        std::string out;
        for (std::string p : {"", "/a", "/a/b", "/c"}) {
            for (auto const& f : lcpuset::files<LC>()) {
                if (!f.shown_in(at(p))) continue;
                std::string content;
                std::error_code ec = fs::read(h, p + "/" + std::string(f.name), content);
                out += p + "/" + std::string(f.name) + "=" + (ec ? ec.message() : content);
            }
        }
        return out;
    }
};

using typed_call = std::function<std::error_code(tree&)>;
using prep_step = std::pair<std::string, std::string>;  // file path, value

// Writing `value` to `path` on one tree and `call` on another give the same errno and trees.
void agree(std::string const& path, std::string const& value, typed_call const& call, std::errc expected,
           std::vector<prep_step> const& prep = {}) {
    INFO(path << " <- " << value);
    tree by_file, by_call;
    for (auto const& [p, v] : prep) {
        REQUIRE_FALSE(fs::write(by_file.h, p, v));
        REQUIRE_FALSE(fs::write(by_call.h, p, v));
    }
    std::error_code const from_file = fs::write(by_file.h, path, value);
    std::error_code const from_call = call(by_call);
    CHECK(errc_of(from_file) == expected);
    CHECK(from_call == from_file);
    CHECK(by_call.dump() == by_file.dump());
}
}  // namespace

TEST_CASE("set_cpus and set_mems answer as cpuset.cpus and cpuset.mems", "[cpuset][typed]") {
    agree("/a/cpuset.cpus", "0-9", [](tree& t) { return t.s().set_cpus(*t.a, list("0-9")); }, std::errc{});
    agree("/a/cpuset.cpus", "0-1", [](tree& t) { return t.s().set_cpus(*t.a, list("0-1")); }, std::errc::device_or_resource_busy);
    agree("/a/b/cpuset.cpus", "0-9", [](tree& t) { return t.s().set_cpus(*t.b, list("0-9")); }, std::errc::permission_denied);
    agree("/a/b/cpuset.cpus", "\n", [](tree& t) { return t.s().set_cpus(*t.b, cpumask{}); }, std::errc::no_space_on_device);
    agree("/cpuset.cpus", "0-3", [](tree& t) { return t.s().set_cpus(t.h.top(), list("0-3")); }, std::errc::permission_denied);
    agree("/c/cpuset.cpus", "8-64", [](tree& t) { return t.s().set_cpus(*t.c, list("8-64")); }, std::errc::invalid_argument);
    agree("/c/cpuset.mems", "1", [](tree& t) { return t.s().set_mems(*t.c, list("1")); }, std::errc{});
    agree("/c/cpuset.mems", "7", [](tree& t) { return t.s().set_mems(*t.c, list("7")); }, std::errc::invalid_argument);
}

TEST_CASE("the exclusive flags' setters answer as their files", "[cpuset][typed]") {
    agree("/a/cpuset.cpu_exclusive", "1", [](tree& t) { return t.s().set_cpu_exclusive(*t.a, true); }, std::errc{});
    agree("/a/b/cpuset.cpu_exclusive", "1", [](tree& t) { return t.s().set_cpu_exclusive(*t.b, true); }, std::errc::permission_denied);
    agree("/a/cpuset.cpu_exclusive", "0", [](tree& t) { return t.s().set_cpu_exclusive(*t.a, false); },
          std::errc::device_or_resource_busy, {{"/a/cpuset.cpu_exclusive", "1"}, {"/a/b/cpuset.cpu_exclusive", "1"}});
    agree("/c/cpuset.cpus", "7-8", [](tree& t) { return t.s().set_cpus(*t.c, list("7-8")); }, std::errc::invalid_argument,
          {{"/a/cpuset.cpu_exclusive", "1"}});
    agree("/a/cpuset.mem_exclusive", "1", [](tree& t) { return t.s().set_mem_exclusive(*t.a, true); }, std::errc::invalid_argument);
    agree("/a/cpuset.mem_exclusive", "1", [](tree& t) { return t.s().set_mem_exclusive(*t.a, true); }, std::errc{},
          {{"/c/cpuset.mems", "1"}});
    agree("/a/cpuset.mem_exclusive", "0", [](tree& t) { return t.s().set_mem_exclusive(*t.a, false); },
          std::errc::device_or_resource_busy, {{"/c/cpuset.mems", "1"}, {"/a/cpuset.mem_exclusive", "1"}, {"/a/b/cpuset.mem_exclusive", "1"}});
}

TEST_CASE("the plain flags' setters answer as their files, any non-zero number setting them", "[cpuset][typed]") {
    using setter = std::error_code (lcpuset::*)(LC&, bool) noexcept;
    for (auto [file, set] : {std::pair<char const*, setter>{"cpuset.mem_hardwall", &lcpuset::set_mem_hardwall},
                             {"cpuset.memory_migrate", &lcpuset::set_memory_migrate},
                             {"cpuset.memory_spread_page", &lcpuset::set_memory_spread_page},
                             {"cpuset.memory_spread_slab", &lcpuset::set_memory_spread_slab},
                             {"cpuset.sched_load_balance", &lcpuset::set_sched_load_balance}}) {
        std::string const path = std::string("/a/") + file;
        agree(path, "1", [set = set](tree& t) { return (t.s().*set)(*t.a, true); }, std::errc{});
        agree(path, "0x10\n", [set = set](tree& t) { return (t.s().*set)(*t.a, true); }, std::errc{});
        agree(path, "0", [set = set](tree& t) { return (t.s().*set)(*t.a, false); }, std::errc{});
        // The kernel's flag is an int: only the low 32 bits of the u64 written count.
        agree(path, "4294967296", [set = set](tree& t) { return (t.s().*set)(*t.a, false); }, std::errc{},
              {{path, "1"}});
    }
    agree("/a/cpuset.cpu_exclusive", "4294967297", [](tree& t) { return t.s().set_cpu_exclusive(*t.a, true); }, std::errc{});
    agree("/cpuset.memory_pressure_enabled", "1", [](tree& t) { return t.s().set_memory_pressure_enabled(t.h, true); }, std::errc{});
    agree("/cpuset.memory_pressure_enabled", "4294967296", [](tree& t) { return t.s().set_memory_pressure_enabled(t.h, true); },
          std::errc{});  // this one takes the whole u64
}

TEST_CASE("set_sched_relax_domain_level answers as its file", "[cpuset][typed]") {
    agree("/a/cpuset.sched_relax_domain_level", "2", [](tree& t) { return t.s().set_sched_relax_domain_level(*t.a, 2); }, std::errc{});
    agree("/a/cpuset.sched_relax_domain_level", "-1", [](tree& t) { return t.s().set_sched_relax_domain_level(*t.a, -1); }, std::errc{},
          {{"/a/cpuset.sched_relax_domain_level", "1"}});
    agree("/a/cpuset.sched_relax_domain_level", "-2", [](tree& t) { return t.s().set_sched_relax_domain_level(*t.a, -2); },
          std::errc::invalid_argument);
    agree("/a/cpuset.sched_relax_domain_level", "3", [](tree& t) { return t.s().set_sched_relax_domain_level(*t.a, 3); },
          std::errc::invalid_argument);
}

TEST_CASE("every typed getter reads what the file shows", "[cpuset][typed]") {
    tree t;
    REQUIRE_FALSE(fs::write(t.h, "/a/cpuset.mem_hardwall", "1"));
    REQUIRE_FALSE(fs::write(t.h, "/a/cpuset.sched_relax_domain_level", "1"));
    REQUIRE_FALSE(fs::write(t.h, "/a/b/cpuset.memory_spread_page", "1"));
    REQUIRE_FALSE(fs::write(t.h, "/cpuset.memory_pressure_enabled", "1"));
    t.s().memory_pressure_event(t.h, 5);
    t.now += 2;
    using mask_get = std::error_code (lcpuset::*)(LC&, cpumask&) noexcept;
    using flag_get = std::error_code (lcpuset::*)(LC&, bool&) noexcept;
    for (std::string p : {"", "/a", "/a/b", "/c"}) {
        INFO(p);
        LC& c = t.at(p);
        auto file = [&](char const* name) {
            std::string out;
            REQUIRE_FALSE(fs::read(t.h, p + "/" + name, out));
            return out;
        };
        for (auto [name, get] : {std::pair<char const*, mask_get>{"cpuset.cpus", &lcpuset::get_cpus},
                                 {"cpuset.mems", &lcpuset::get_mems},
                                 {"cpuset.effective_cpus", &lcpuset::get_effective_cpus},
                                 {"cpuset.effective_mems", &lcpuset::get_effective_mems}}) {
            cpumask m;
            REQUIRE_FALSE((t.s().*get)(c, m));
            CHECK(m.to_list() + "\n" == file(name));
        }
        for (auto [name, get] : {std::pair<char const*, flag_get>{"cpuset.cpu_exclusive", &lcpuset::get_cpu_exclusive},
                                 {"cpuset.mem_exclusive", &lcpuset::get_mem_exclusive},
                                 {"cpuset.mem_hardwall", &lcpuset::get_mem_hardwall},
                                 {"cpuset.memory_migrate", &lcpuset::get_memory_migrate},
                                 {"cpuset.memory_spread_page", &lcpuset::get_memory_spread_page},
                                 {"cpuset.memory_spread_slab", &lcpuset::get_memory_spread_slab},
                                 {"cpuset.sched_load_balance", &lcpuset::get_sched_load_balance}}) {
            bool on = false;
            REQUIRE_FALSE((t.s().*get)(c, on));
            CHECK((on ? "1\n" : "0\n") == file(name));
        }
        std::int64_t level = 0;
        REQUIRE_FALSE(t.s().get_sched_relax_domain_level(c, level));
        CHECK(std::to_string(level) + "\n" == file("cpuset.sched_relax_domain_level"));
        std::uint64_t pressure = 0;
        REQUIRE_FALSE(t.s().get_memory_pressure(c, pressure));
        CHECK(std::to_string(pressure) + "\n" == file("cpuset.memory_pressure"));
        if (p == "/a/b") CHECK(pressure > 0);
    }
    bool enabled = false;
    REQUIRE_FALSE(t.s().get_memory_pressure_enabled(t.h, enabled));
    CHECK(enabled);
}

TEST_CASE("typed setters and getters of a removed cpuset give ENODEV and change nothing", "[cpuset][typed]") {
    tree t;
    read_section rs;  // keeps the removed container's memory
    REQUIRE_FALSE(t.h.rmdir(*t.c));
    lcpuset& s = t.s();
    LC& c = *t.c;
    cpumask m;
    bool on = false;
    std::int64_t level = 0;
    std::uint64_t pressure = 0;
    for (std::error_code ec : {s.set_cpus(c, list("8")), s.set_mems(c, list("0")), s.set_cpu_exclusive(c, true),
                               s.set_mem_exclusive(c, true), s.set_mem_hardwall(c, true), s.set_memory_migrate(c, true),
                               s.set_memory_spread_page(c, true), s.set_memory_spread_slab(c, true),
                               s.set_sched_load_balance(c, false), s.set_sched_relax_domain_level(c, 1), s.get_cpus(c, m),
                               s.get_mems(c, m), s.get_effective_cpus(c, m), s.get_effective_mems(c, m),
                               s.get_cpu_exclusive(c, on), s.get_mem_hardwall(c, on), s.get_sched_load_balance(c, on),
                               s.get_sched_relax_domain_level(c, level), s.get_memory_pressure(c, pressure)}) {
        CHECK(errc_of(ec) == std::errc::no_such_device);
    }
    auto lock = t.h.manage_lock();
    CHECK(t.h.state_of<lcpuset>(c).cpus == list("8-15"));
    CHECK_FALSE(t.h.state_of<lcpuset>(c).mem_hardwall);
    CHECK(t.h.state_of<lcpuset>(c).sched_load_balance);
}

TEST_CASE("the *_locked setters need the manage lock and a handler under it may call them", "[cpuset][typed][lock]") {
    tree t;
    {
        auto lock = t.h.manage_lock();
        CHECK_FALSE(t.s().set_cpus_locked(*t.c, list("8-9")));
        CHECK_FALSE(t.s().set_mem_hardwall_locked(*t.c, true));
        CHECK(errc_of(t.s().set_sched_relax_domain_level_locked(*t.c, 9)) == std::errc::invalid_argument);
    }
    std::string out;
    REQUIRE_FALSE(fs::read(t.h, "/c/cpuset.cpus", out));
    CHECK(out == "8-9\n");
    REQUIRE_FALSE(fs::read(t.h, "/c/cpuset.mem_hardwall", out));
    CHECK(out == "1\n");
}
