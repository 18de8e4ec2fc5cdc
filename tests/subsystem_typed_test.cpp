// pids', cpuacct's and freezer's typed setters and getters, one per file: each answers as writing
// (reading) the file does. As cpuset_typed_test: every case runs both ways on two identical trees
// of logical tasks, and the errno and every file of every container afterwards must agree.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <functional>

using namespace containers;

namespace {
using test::errc_of;

struct running_fiber {
    static std::uint32_t get() noexcept { return 1; }
};
using LH = hierarchy<logical_task_traits<std::uint32_t, running_fiber>>;
using LC = LH::container;
using lpids = basic_pids<LH>;
using lcpuacct = basic_cpuacct<LH>;
using lfreezer = basic_freezer<LH>;

// /a (pids.max 3) with /a/b (tasks 5 and 7), and /c (task 6), each task charged CPU time.
struct tree {
    LH h;
    subsystem_handle<lpids, LH> pid;
    subsystem_handle<lcpuacct, LH> ca;
    subsystem_handle<lfreezer, LH> fz;
    LC* a = nullptr;
    LC* b = nullptr;
    LC* c = nullptr;
    tree() {
        REQUIRE_FALSE(h.register_subsystem(pid));
        REQUIRE_FALSE(h.register_subsystem(ca));
        REQUIRE_FALSE(h.register_subsystem(fz));
        for (char const* dir : {"/a", "/a/b", "/c"}) REQUIRE_FALSE(fs::mkdir(h, dir));
        REQUIRE_FALSE(h.lookup("/a", a));
        REQUIRE_FALSE(h.lookup("/a/b", b));
        REQUIRE_FALSE(h.lookup("/c", c));
        REQUIRE_FALSE(fs::write(h, "/a/pids.max", "3"));
        REQUIRE_FALSE(h.attach(5u, *b));
        REQUIRE_FALSE(h.fork(5u, 7u));
        REQUIRE_FALSE(h.attach(6u, *c));
        ca.subsystem().charge(h, 5u, 30'000'000, 20'000'000);
        ca.subsystem().charge(h, 7u, 1'000, 0);
        ca.subsystem().charge(h, 6u, 0, 40'000'000);
    }
    LC& at(std::string const& path) { return path.empty() ? h.top() : path == "/a" ? *a : path == "/a/b" ? *b : *c; }
    // Every file of the three subsystems in every container, "path/file=content".
    std::string dump() {
        std::string out;
        auto add = [&](std::string const& p, auto const& files) {
            for (auto const& f : files) {
                if (!f.shown_in(at(p))) continue;
                std::string content;
                std::error_code ec = fs::read(h, p + "/" + std::string(f.name), content);
                out += p + "/" + std::string(f.name) + "=" + (ec ? ec.message() : content);
            }
        };
        for (std::string p : {"", "/a", "/a/b", "/c"}) {
            add(p, lpids::files<LC>());
            add(p, lcpuacct::files<LC>());
            add(p, lfreezer::files<LC>());
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

TEST_CASE("set_limit answers as pids.max", "[pids][typed]") {
    agree("/a/pids.max", "2", [](tree& t) { return lpids::set_limit(*t.a, 2); }, std::errc{});
    agree("/a/pids.max", "0", [](tree& t) { return lpids::set_limit(*t.a, 0); }, std::errc{});  // tasks stay past it
    agree("/a/b/pids.max", "max", [](tree& t) { return lpids::set_limit(*t.b, lpids::max_limit); }, std::errc{},
          {{"/a/b/pids.max", "1"}});
    agree("/c/pids.max", "4194304", [](tree& t) { return lpids::set_limit(*t.c, lpids::max_limit - 1); }, std::errc{});
    agree("/c/pids.max", "-1", [](tree& t) { return lpids::set_limit(*t.c, -1); }, std::errc::invalid_argument);
}

TEST_CASE("set_usage and reset answer as writing cpuacct.usage", "[cpuacct][typed]") {
    agree("/a/cpuacct.usage", "0", [](tree& t) { return t.ca.subsystem().set_usage(*t.a, 0); }, std::errc{});
    agree("/a/b/cpuacct.usage", "0\n", [](tree& t) { return t.ca.subsystem().reset(*t.b); }, std::errc{});
    agree("/c/cpuacct.usage", "5", [](tree& t) { return t.ca.subsystem().set_usage(*t.c, 5); }, std::errc::invalid_argument);
    // The top container takes a reset and keeps its counters, as the kernel's root.
    agree("/cpuacct.usage", "0", [](tree& t) { return t.ca.subsystem().set_usage(t.h.top(), 0); }, std::errc{});
    agree("/cpuacct.usage", "1", [](tree& t) { return t.ca.subsystem().set_usage(t.h.top(), 1); }, std::errc::invalid_argument);
}

TEST_CASE("set_state answers as writing freezer.state", "[freezer][typed]") {
    auto set = [](LC* tree::*c, freezer_state to) { return [c, to](tree& t) { return t.fz.subsystem().set_state(*(t.*c), to); }; };
    agree("/a/freezer.state", "FROZEN", set(&tree::a, freezer_state::frozen), std::errc{});
    agree("/a/b/freezer.state", "THAWED\n", set(&tree::b, freezer_state::thawed), std::errc{}, {{"/a/freezer.state", "FROZEN"}});
    agree("/a/freezer.state", " THAWED ", set(&tree::a, freezer_state::thawed), std::errc{},
          {{"/a/freezer.state", "FROZEN"}, {"/a/b/freezer.state", "FROZEN"}});
    agree("/c/freezer.state", "FREEZING", set(&tree::c, freezer_state::freezing), std::errc::invalid_argument);
}

TEST_CASE("every typed getter of pids, cpuacct and freezer reads what the file shows", "[pids][cpuacct][freezer][typed]") {
    tree t;
    REQUIRE_FALSE(fs::write(t.h, "/a/freezer.state", "FROZEN"));
    REQUIRE_FALSE(fs::write(t.h, "/a/b/freezer.state", "FROZEN"));
    REQUIRE_FALSE(fs::write(t.h, "/a/pids.max", "2"));
    CHECK(t.h.fork(5u, 8u) == std::errc::resource_unavailable_try_again);  // an event in /a/b
    lcpuacct& ca = t.ca.subsystem();
    lfreezer& fz = t.fz.subsystem();
    for (std::string p : {"", "/a", "/a/b", "/c"}) {
        INFO(p);
        LC& c = t.at(p);
        auto file = [&](char const* name) {
            std::string out;
            REQUIRE_FALSE(fs::read(t.h, p + "/" + name, out));
            return out;
        };
        auto line = [](auto n) { return std::to_string(n) + "\n"; };
        std::uint64_t ns = 0;
        REQUIRE_FALSE(ca.get_usage(c, ns));
        CHECK(line(ns) == file("cpuacct.usage"));
        CHECK(ns == ca.usage(c));
        REQUIRE_FALSE(ca.get_usage_user(c, ns));
        CHECK(line(ns) == file("cpuacct.usage_user"));
        REQUIRE_FALSE(ca.get_usage_sys(c, ns));
        CHECK(line(ns) == file("cpuacct.usage_sys"));
        lcpuacct::cpu_stat st;
        REQUIRE_FALSE(ca.get_stat(c, st));
        CHECK("user " + std::to_string(st.user) + "\nsystem " + std::to_string(st.system) + "\n" == file("cpuacct.stat"));
        CHECK(st == ca.stat(c));
        if (c.is_top()) continue;  // pids and freezer have no files there
        CHECK((lpids::limit(c) == lpids::max_limit ? std::string("max\n") : line(lpids::limit(c))) == file("pids.max"));
        CHECK(line(lpids::current(c)) == file("pids.current"));
        CHECK(line(lpids::peak(c)) == file("pids.peak"));
        CHECK("max " + line(lpids::events(c)) == file("pids.events"));
        freezer_state now{};
        REQUIRE_FALSE(fz.get_state(c, now));
        CHECK(now == fz.get_state(c));
        CHECK((now == freezer_state::frozen ? "FROZEN\n" : now == freezer_state::thawed ? "THAWED\n" : "FREEZING\n") ==
              file("freezer.state"));
        bool on = false;
        REQUIRE_FALSE(fz.get_self_freezing(c, on));
        CHECK((on ? "1\n" : "0\n") == file("freezer.self_freezing"));
        CHECK(on == fz.self_freezing(c));
        REQUIRE_FALSE(fz.get_parent_freezing(c, on));
        CHECK((on ? "1\n" : "0\n") == file("freezer.parent_freezing"));
        CHECK(on == fz.parent_freezing(c));
    }
    CHECK(lpids::events(*t.b) == 1);
    CHECK(ca.usage(*t.a) == 50'001'000);
    CHECK(fz.get_state(*t.c) == freezer_state::thawed);
}

TEST_CASE("typed setters and getters of a removed container give ENODEV and change nothing", "[pids][cpuacct][freezer][typed]") {
    tree t;
    read_section rs;  // keeps the removed container's memory
    REQUIRE_FALSE(t.h.exit(6u));
    REQUIRE_FALSE(t.h.rmdir(*t.c));
    lcpuacct& ca = t.ca.subsystem();
    lfreezer& fz = t.fz.subsystem();
    LC& c = *t.c;
    std::uint64_t ns = 0;
    lcpuacct::cpu_stat st;
    freezer_state now{};
    bool on = false;
    for (std::error_code ec : {lpids::set_limit(c, 1), ca.set_usage(c, 0), ca.reset(c), ca.get_usage(c, ns), ca.get_usage_user(c, ns),
                               ca.get_usage_sys(c, ns), ca.get_stat(c, st), fz.set_state(c, freezer_state::frozen),
                               fz.get_state(c, now), fz.get_self_freezing(c, on), fz.get_parent_freezing(c, on)}) {
        CHECK(errc_of(ec) == std::errc::no_such_device);
    }
    auto lock = t.h.manage_lock();
    CHECK(t.h.state_of<lpids>(c).limit == lpids::max_limit);
    CHECK(t.h.state_of<lcpuacct>(c).usage == 40'000'000);
    CHECK_FALSE(t.h.state_of<lfreezer>(c).self_freezing);
}

TEST_CASE("the *_locked forms of cpuacct and freezer need the manage lock and a handler under it may call them",
          "[cpuacct][freezer][typed][lock]") {
    tree t;
    {
        auto lock = t.h.manage_lock();
        CHECK_FALSE(t.ca.subsystem().set_usage_locked(*t.c, 0));
        CHECK(errc_of(t.ca.subsystem().set_usage_locked(*t.c, 2)) == std::errc::invalid_argument);
        CHECK_FALSE(t.fz.subsystem().set_state_locked(*t.c, freezer_state::frozen));
        freezer_state now{};
        REQUIRE_FALSE(t.fz.subsystem().get_state_locked(*t.c, now));
        CHECK(now == freezer_state::frozen);
    }
    std::string out;
    REQUIRE_FALSE(fs::read(t.h, "/c/cpuacct.usage", out));
    CHECK(out == "0\n");
    REQUIRE_FALSE(fs::read(t.h, "/c/freezer.state", out));
    CHECK(out == "FROZEN\n");
    for (auto const& f : lcpuacct::files<LC>()) CHECK(f.lock == cftype<LC>::locking::manage);
    for (auto const& f : lfreezer::files<LC>()) CHECK(f.lock == cftype<LC>::locking::manage);
}
