// freezer against the kernel's: the same script of mkdir, read and write under a scratch
// directory of /sys/fs/cgroup/freezer and in the library gives the same errno and content, step
// by step (empty writes included, which a shell cannot make). The transitions with a task in the
// group (a sleeping process in the kernel's, a thread of the host in the library's) are
// tests/conformance/freezer.sh.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <string>
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
