// freezer: the files, the state machine across the tree, and logical tasks.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <csignal>
#include <cstdint>

using namespace containers;
using test::C;
using test::H;

namespace {

C& make(H& h, std::string const& path) {
    REQUIRE_FALSE(fs::mkdir(h, path));
    C* c = nullptr;
    REQUIRE_FALSE(h.lookup(path, c));
    return *c;
}

std::string read(H& h, std::string const& path) {
    std::string out;
    REQUIRE_FALSE(fs::read(h, path, out));
    return out;
}

}  // namespace

TEST_CASE("freezer files: the top has none, a child starts THAWED, writes take FROZEN or THAWED only", "[freezer][files]") {
    H h;
    subsystem_handle<freezer, H> fz;
    REQUIRE_FALSE(h.register_subsystem(fz));
    std::string out;
    CHECK(fs::read(h, "/freezer.state", out) == std::errc::no_such_file_or_directory);
    CHECK(fs::read(h, "/freezer.self_freezing", out) == std::errc::no_such_file_or_directory);
    CHECK(fs::read(h, "/freezer.parent_freezing", out) == std::errc::no_such_file_or_directory);
    make(h, "/a");
    CHECK(read(h, "/a/freezer.state") == "THAWED\n");
    CHECK(read(h, "/a/freezer.self_freezing") == "0\n");
    CHECK(read(h, "/a/freezer.parent_freezing") == "0\n");
    for (char const* bad : {"FREEZING", "frozen", "FROZENX", "FRO ZEN", "1", " \n"}) {
        CAPTURE(bad);
        CHECK(fs::write(h, "/a/freezer.state", bad) == std::errc::invalid_argument);
    }
    CHECK(fs::write(h, "/a/freezer.self_freezing", "1") == std::errc::invalid_argument);
    CHECK(read(h, "/a/freezer.state") == "THAWED\n");
    CHECK_FALSE(fs::write(h, "/a/freezer.state", " FROZEN\n"));
    CHECK(read(h, "/a/freezer.state") == "FROZEN\n");  // no task: frozen at once
    CHECK(read(h, "/a/freezer.self_freezing") == "1\n");
    CHECK_FALSE(fs::write(h, "/a/freezer.state", "FROZEN"));  // again: no change
    CHECK_FALSE(fs::write(h, "/a/freezer.state", "\tTHAWED "));
    CHECK(read(h, "/a/freezer.state") == "THAWED\n");

    // The typed operations: the same rules.
    C* a = nullptr;
    REQUIRE_FALSE(h.lookup("/a", a));
    CHECK(fz.subsystem().set_state(*a, freezer_state::freezing) == std::errc::invalid_argument);
    CHECK(fz.subsystem().set_state(h.top(), freezer_state::frozen) == std::errc::invalid_argument);
    CHECK(fz.subsystem().get_state(h.top()) == freezer_state::thawed);
    REQUIRE_FALSE(fz.subsystem().set_state(*a, freezer_state::frozen));
    CHECK(fz.subsystem().get_state(*a) == freezer_state::frozen);
    CHECK(freezer::freezing(*a));
    REQUIRE_FALSE(h.rmdir(*a));  // a frozen, empty group can be removed, as in the kernel
}

TEST_CASE("freezing a group freezes its descendants; thawing a child of a frozen group does not thaw it", "[freezer][hierarchy]") {
    H h;
    subsystem_handle<freezer, H> fz;
    REQUIRE_FALSE(h.register_subsystem(fz));
    C& a = make(h, "/a");
    C& b = make(h, "/a/b");
    C& c = make(h, "/a/b/c");
    C& other = make(h, "/other");
    freezer& f = fz.subsystem();

    REQUIRE_FALSE(f.set_state(a, freezer_state::frozen));
    for (C* x : {&b, &c}) {
        CHECK(f.get_state(*x) == freezer_state::frozen);
        CHECK_FALSE(f.self_freezing(*x));
        CHECK(f.parent_freezing(*x));
    }
    CHECK(f.get_state(other) == freezer_state::thawed);
    C& late = make(h, "/a/b/late");  // created under a frozen group: frozen too
    CHECK(read(h, "/a/b/late/freezer.state") == "FROZEN\n");
    CHECK(read(h, "/a/b/late/freezer.parent_freezing") == "1\n");

    REQUIRE_FALSE(f.set_state(b, freezer_state::thawed));  // only self_freezing, which was clear
    CHECK(f.get_state(b) == freezer_state::frozen);
    REQUIRE_FALSE(f.set_state(b, freezer_state::frozen));
    REQUIRE_FALSE(f.set_state(a, freezer_state::thawed));  // b stays frozen by itself, and so c
    CHECK(f.get_state(a) == freezer_state::thawed);
    CHECK(f.get_state(b) == freezer_state::frozen);
    CHECK(f.self_freezing(b));
    CHECK_FALSE(f.parent_freezing(b));
    CHECK(f.get_state(c) == freezer_state::frozen);
    CHECK(f.parent_freezing(c));
    REQUIRE_FALSE(f.set_state(b, freezer_state::thawed));
    for (C* x : {&a, &b, &c, &late}) {
        CHECK(f.get_state(*x) == freezer_state::thawed);
        CHECK_FALSE(freezer::freezing(*x));
    }
}

namespace {
std::uint64_t logical_running = 0;
struct logical_current {
    static std::uint64_t get() noexcept { return logical_running; }
};
using LH = hierarchy<logical_task_traits<std::uint64_t, logical_current>, 4>;
using lfreezer = basic_freezer<LH>;
}  // namespace

TEST_CASE("logical tasks learn from may_run that they may not be resumed", "[freezer][logical]") {
    LH h;
    subsystem_handle<lfreezer, LH> fz;
    REQUIRE_FALSE(h.register_subsystem(fz));
    LH::container* g = nullptr;
    LH::container* free = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "g", &g));
    REQUIRE_FALSE(h.mkdir(h.top(), "free", &free));
    REQUIRE_FALSE(h.attach(1, *g));
    REQUIRE_FALSE(h.attach(2, *free));
    auto may_run = [&](std::uint64_t id) {
        read_section rs;
        return lfreezer::may_run(h, id);
    };
    CHECK(may_run(1));
    REQUIRE_FALSE(fs::write(h, "/g/freezer.state", "FROZEN"));
    CHECK_FALSE(may_run(1));
    CHECK(may_run(2));
    CHECK(fz.subsystem().get_state(*g) == freezer_state::frozen);  // the library cannot see more
    REQUIRE_FALSE(h.attach(2, *g));  // a move into a frozen group is never refused
    CHECK_FALSE(may_run(2));
    REQUIRE_FALSE(h.attach(1, *free));  // and out of it, the task may run again
    CHECK(may_run(1));
    REQUIRE_FALSE(h.fork(2, 3));  // a child forked in a frozen group is frozen
    CHECK_FALSE(may_run(3));
    REQUIRE_FALSE(fs::write(h, "/g/freezer.state", "THAWED"));
    CHECK(may_run(2));
    CHECK(may_run(3));
}

TEST_CASE("the freezer's signal is checked at registration", "[freezer][signal]") {
    H h;
    subsystem_handle<freezer, H> fz;
    REQUIRE_FALSE(h.register_subsystem(fz));  // the process's signal: the default
    CHECK(fz.subsystem().signal() == freezer::default_signal());
    H other;
    subsystem_handle<freezer, H> same;
    CHECK_FALSE(other.register_subsystem(same));  // another freezer may share it
    H third;
    subsystem_handle<freezer, H> clash;
    CHECK(third.register_subsystem(clash, freezer::default_signal() + 1) == std::errc::device_or_resource_busy);
    CHECK_FALSE(clash);
    H fourth;
    CHECK(fourth.register_subsystem(clash, SIGKILL) == std::errc::invalid_argument);
    // A standard signal does not queue: a second freeze sent while one is pending would be lost.
    CHECK(fourth.register_subsystem(clash, SIGUSR1) == std::errc::invalid_argument);
    CHECK(fourth.register_subsystem(clash, SIGRTMAX + 1) == std::errc::invalid_argument);
    CHECK_FALSE(clash);
}
