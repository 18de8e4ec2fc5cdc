// freezer against the kernel's: the same script of mkdir, read and write under a scratch
// directory of /sys/fs/cgroup/freezer and in the library gives the same errno and content, step
// by step; then the same transitions with one task in each (a sleeping child process in the
// kernel's group, a parked thread of ours in the library's).
#include "support.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace containers;
using test::C;
using test::H;

namespace {

constexpr char const* freezer_root = "/sys/fs/cgroup/freezer";

struct step {
    char const* op;
    char const* path;
    char const* value;
};

// Reads a state until it is not FREEZING (bounded): both freezers take a moment to freeze a task.
template <class Op>
test::outcome settled(Op op) {
    test::outcome o = op();
    for (int i = 0; i < 5000 && o.content == "FREEZING\n"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        o = op();
    }
    return o;
}

}  // namespace

TEST_CASE("freezer files, writes and transitions match the kernel's", "[freezer][kernel]") {
    auto scratch = test::kernel_scratch::make(freezer_root);
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 freezer hierarchy is not mounted writable at /sys/fs/cgroup/freezer");
    H h;
    subsystem_handle<freezer, H> fz;
    REQUIRE_FALSE(h.register_subsystem(fz));

    // The root has no freezer files.
    for (char const* f : {"/freezer.state", "/freezer.self_freezing", "/freezer.parent_freezing"}) {
        CAPTURE(f);
        test::outcome const k = test::kernel_op(freezer_root, "read", f, "");
        CHECK(test::library_op(h, "read", f, "") == k);
        CHECK(test::library_op(h, "write", f, "FROZEN").error == test::kernel_op(freezer_root, "write", f, "FROZEN").error);
    }

    std::vector<step> const script = {
        {"mkdir", "/a", ""},
        {"read", "/a/freezer.state", ""},
        {"read", "/a/freezer.self_freezing", ""},
        {"read", "/a/freezer.parent_freezing", ""},
        {"write", "/a/freezer.state", "FREEZING"},
        {"write", "/a/freezer.state", "frozen"},
        {"write", "/a/freezer.state", "FROZEN\n\n"},
        {"write", "/a/freezer.state", "FROZENX"},
        {"write", "/a/freezer.state", "FRO ZEN"},
        {"write", "/a/freezer.state", "\n"},
        {"write", "/a/freezer.state", ""},
        {"write", "/a/freezer.state", "1"},
        {"write", "/a/freezer.self_freezing", "1"},
        {"write", "/a/freezer.parent_freezing", "0"},
        {"read", "/a/freezer.state", ""},
        {"write", "/a/freezer.state", " FROZEN "},
        {"read", "/a/freezer.state", ""},
        {"read", "/a/freezer.self_freezing", ""},
        {"mkdir", "/a/b", ""},
        {"read", "/a/b/freezer.state", ""},
        {"read", "/a/b/freezer.self_freezing", ""},
        {"read", "/a/b/freezer.parent_freezing", ""},
        {"write", "/a/b/freezer.state", "THAWED"},
        {"read", "/a/b/freezer.state", ""},
        {"write", "/a/b/freezer.state", "FROZEN"},
        {"write", "/a/freezer.state", "THAWED"},
        {"read", "/a/freezer.state", ""},
        {"read", "/a/b/freezer.state", ""},
        {"read", "/a/b/freezer.self_freezing", ""},
        {"read", "/a/b/freezer.parent_freezing", ""},
        {"mkdir", "/a/b/c", ""},
        {"read", "/a/b/c/freezer.state", ""},
        {"read", "/a/b/c/freezer.parent_freezing", ""},
        {"write", "/a/freezer.state", "FROZEN"},
        {"write", "/a/b/freezer.state", "THAWED"},
        {"read", "/a/b/freezer.state", ""},
        {"read", "/a/b/c/freezer.state", ""},
        {"rmdir", "/a/b/c", ""},
        {"rmdir", "/a/b", ""},
        {"write", "/a/freezer.state", "THAWED\n"},
        {"read", "/a/freezer.state", ""},
        {"rmdir", "/a", ""},
    };
    for (step const& s : script) {
        CAPTURE(s.op, s.path, s.value);
        CHECK(test::library_op(h, s.op, s.path, s.value) == test::kernel_op(scratch->path(), s.op, s.path, s.value));
    }
}

TEST_CASE("freezer transitions with a task in the group match the kernel's", "[freezer][kernel][threads]") {
    // Declared in this order so that, even when a check fails, the scratch directory goes first
    // (moving the child out thaws it) before the child is killed, and the hierarchy (its freezer
    // thaws every thread) before our thread is joined.
    pid_t const sleeper = test::spawn_sleeper();
    struct guard {
        pid_t pid;
        ~guard() { test::kill_and_reap(pid); }
    } g{sleeper};
    test::parked_thread ours;
    auto scratch = test::kernel_scratch::make(freezer_root);
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 freezer hierarchy is not mounted writable at /sys/fs/cgroup/freezer");
    H h;
    subsystem_handle<freezer, H> fz;
    REQUIRE_FALSE(h.register_subsystem(fz));
    std::string const k = scratch->path();

    for (char const* d : {"/f", "/f/sub", "/t"}) {
        REQUIRE(test::kernel_op(k, "mkdir", d, "").error == 0);
        REQUIRE_FALSE(fs::mkdir(h, d));
    }
    auto both = [&](char const* op, std::string const& path, std::string const& value) {
        CAPTURE(op, path, value);
        test::outcome const ko = test::kernel_op(k, op, path, value);
        test::outcome const lo = test::library_op(h, op, path, value);
        CHECK(lo == ko);
    };
    auto state = [&](std::string const& dir) {
        CAPTURE(dir);
        test::outcome const ko = settled([&] { return test::kernel_op(k, "read", dir + "/freezer.state", ""); });
        test::outcome const lo = settled([&] { return test::library_op(h, "read", dir + "/freezer.state", ""); });
        CHECK(lo == ko);
        return lo.content;
    };
    auto move = [&](std::string const& dir) {
        REQUIRE(test::kernel_op(k, "write", dir + "/tasks", std::to_string(sleeper)).error == 0);
        REQUIRE_FALSE(fs::write(h, dir + "/tasks", std::to_string(ours.tid())));
    };

    move("/f");
    both("write", "/f/freezer.state", "FROZEN");
    CHECK(state("/f") == "FROZEN\n");
    CHECK(test::task_state(sleeper) != 'R');
    move("/t");  // out of the frozen group: thawed, and the group stays FROZEN
    CHECK(state("/t") == "THAWED\n");
    CHECK(state("/f") == "FROZEN\n");
    move("/f/sub");  // into a group frozen by its parent
    CHECK(state("/f/sub") == "FROZEN\n");
    CHECK(state("/f") == "FROZEN\n");
    both("write", "/f/sub/freezer.state", "THAWED");
    CHECK(state("/f/sub") == "FROZEN\n");
    both("write", "/f/freezer.state", "THAWED");
    CHECK(state("/f") == "THAWED\n");
    CHECK(state("/f/sub") == "THAWED\n");
    move("/t");
    both("rmdir", "/f/sub", "");
    both("rmdir", "/f", "");
}
