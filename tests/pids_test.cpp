// pids: hierarchical counts, forks refused at a limit with EAGAIN and counted where the kernel
// counts them, moves past the limit, the files' formats and errors, and the kernel as the oracle.
#include "support.hpp"

#include <containers/pids.hpp>

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdint>
#include <string>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace containers;

namespace {
struct no_fiber {
    static std::uint64_t get() noexcept { return 0; }
};
using LH = hierarchy<logical_task_traits<std::uint64_t, no_fiber>, 4>;
using LC = LH::container;
using lpids = basic_pids<LH>;

struct tree {
    LH h;
    subsystem_handle<lpids, LH> p;
    LC* a = nullptr;
    LC* b = nullptr;  // a child of a
    tree() {
        REQUIRE_FALSE(h.register_subsystem(p));
        REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
        REQUIRE_FALSE(h.mkdir(*a, "b", &b));
    }
    std::string read(std::string const& path) {
        std::string out;
        REQUIRE_FALSE(fs::read(h, path, out));
        return out;
    }
    int write(std::string const& path, std::string const& value) { return fs::write(h, path, value).value(); }
};

// Refuses the fork of task 13.
struct veto : subsystem_tag {
    static constexpr std::string_view name = "veto";
    struct state {};
    std::error_code can_fork(state&, LC&, std::uint64_t, std::uint64_t child) {
        return child == 13 ? std::make_error_code(std::errc::operation_not_permitted) : std::error_code{};
    }
};

std::error_code attach_one(LH& h, std::uint64_t id, LC& c) {
    std::uint64_t const ids[] = {id};
    return h.attach(ids, c);
}
}  // namespace

TEST_CASE("pids counts the tasks of a container and its descendants", "[pids]") {
    tree t;
    REQUIRE_FALSE(attach_one(t.h, 1, *t.b));
    REQUIRE_FALSE(attach_one(t.h, 2, *t.a));
    REQUIRE_FALSE(t.h.fork(1, 3));  // into b, the parent's container
    CHECK(lpids::current(*t.b) == 2);
    CHECK(lpids::current(*t.a) == 3);
    CHECK(lpids::current(t.h.top()) == 0);  // the top counts nothing, as the kernel's root
    CHECK(t.read("/a/pids.current") == "3\n");
    REQUIRE_FALSE(attach_one(t.h, 1, t.h.top()));
    CHECK(lpids::current(*t.a) == 2);
    CHECK(lpids::current(*t.b) == 1);
    REQUIRE_FALSE(t.h.exit(3));
    CHECK(lpids::current(*t.b) == 0);
    CHECK(lpids::current(*t.a) == 1);
    CHECK(t.read("/a/pids.peak") == "3\n");
    CHECK(t.read("/a/b/pids.peak") == "2\n");
    REQUIRE_FALSE(attach_one(t.h, 2, t.h.top()));
    CHECK(t.read("/a/pids.current") == "0\n");
}

TEST_CASE("a fork past a limit anywhere above fails with EAGAIN and changes nothing", "[pids][fork]") {
    tree t;
    REQUIRE(t.write("/a/pids.max", "2") == 0);
    REQUIRE_FALSE(attach_one(t.h, 1, *t.b));
    REQUIRE_FALSE(t.h.fork(1, 2));
    std::error_code const ec = t.h.fork(1, 3);
    CHECK(ec == std::errc::resource_unavailable_try_again);
    CHECK(lpids::current(*t.a) == 2);
    CHECK(lpids::current(*t.b) == 2);
    CHECK(t.h.task_count() == 2);  // the child never joined
    // Counted in the container the fork came into (b), not where the limit is, as on the kernel's
    // v1 hierarchy; b's peak saw the charge that a's limit then refused (the kernel's watermark).
    CHECK(t.read("/a/b/pids.events") == "max 1\n");
    CHECK(t.read("/a/pids.events") == "max 0\n");
    CHECK(t.read("/a/b/pids.peak") == "3\n");
    CHECK(t.read("/a/pids.peak") == "2\n");
    // A fork into the top, or into a container outside a, is not limited by a.
    REQUIRE_FALSE(t.h.fork(99, 4));
    // After a task leaves, the fork goes through.
    REQUIRE_FALSE(t.h.exit(2));
    CHECK_FALSE(t.h.fork(1, 3));
    CHECK(lpids::current(*t.a) == 2);
}

TEST_CASE("a limit of 0 refuses every fork; moving tasks in is never refused", "[pids][fork][attach]") {
    tree t;
    REQUIRE(t.write("/a/b/pids.max", "0") == 0);
    CHECK(t.read("/a/b/pids.max") == "0\n");
    REQUIRE_FALSE(attach_one(t.h, 1, *t.b));  // the kernel charges migrations without a check
    REQUIRE_FALSE(attach_one(t.h, 2, *t.b));
    CHECK(lpids::current(*t.b) == 2);
    CHECK(t.h.fork(1, 3) == std::errc::resource_unavailable_try_again);
    CHECK(lpids::events(*t.b) == 1);
}

TEST_CASE("a later subsystem's fork veto gives pids' charge back", "[pids][fork]") {
    LH h;
    subsystem_handle<lpids, LH> p;
    subsystem_handle<veto, LH> v;
    REQUIRE_FALSE(h.register_subsystem(p));
    REQUIRE_FALSE(h.register_subsystem(v));
    LC* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(attach_one(h, 1, *a));
    CHECK(h.fork(1, 13) == std::errc::operation_not_permitted);
    CHECK(lpids::current(*a) == 1);
    CHECK(lpids::events(*a) == 0);  // not a limit's refusal
    CHECK_FALSE(h.fork(1, 14));
    CHECK(lpids::current(*a) == 2);
}

TEST_CASE("pids.max takes what the kernel takes", "[pids][files]") {
    tree t;
    CHECK(t.read("/a/pids.max") == "max\n");
    struct row {
        std::string value;
        int error;
        std::string after;
    };
    auto const r = GENERATE(row{"10", 0, "10\n"}, row{" 5 \n", 0, "5\n"}, row{"0x10", 0, "16\n"}, row{"010", 0, "8\n"},
                            row{"max", 0, "max\n"}, row{" max ", 0, "max\n"}, row{"4194304", 0, "4194304\n"},
                            row{"4194305", EINVAL, "max\n"}, row{"-1", EINVAL, "max\n"}, row{"MAX", EINVAL, "max\n"},
                            row{"abc", EINVAL, "max\n"}, row{"99999999999999999999", ERANGE, "max\n"},
                            row{"", 0, "max\n"});
    CAPTURE(r.value);
    CHECK(t.write("/a/pids.max", r.value) == r.error);
    CHECK(t.read("/a/pids.max") == r.after);
}

TEST_CASE("pids files exist below the top only, and the counters are read-only", "[pids][files]") {
    tree t;
    std::string out;
    for (char const* f : {"pids.max", "pids.current", "pids.peak", "pids.events"}) {
        CAPTURE(f);
        CHECK(fs::read(t.h, std::string("/") + f, out) == std::errc::no_such_file_or_directory);
        CHECK(fs::read(t.h, std::string("/a/") + f, out).value() == 0);
    }
    for (char const* f : {"pids.current", "pids.peak", "pids.events"}) {
        CAPTURE(f);
        CHECK(t.write(std::string("/a/") + f, "0") == EINVAL);
    }
    CHECK(lpids::set_limit(t.h.top(), 1) == std::errc::invalid_argument);
    CHECK(lpids::set_limit(*t.a, -1) == std::errc::invalid_argument);
    CHECK(lpids::set_limit(*t.a, lpids::max_limit + 1) == std::errc::invalid_argument);
    CHECK_FALSE(lpids::set_limit(*t.a, 7));
    CHECK(lpids::limit(*t.a) == 7);
    CHECK(t.read("/a/pids.max") == "7\n");
}

// ---- the kernel as the oracle ---------------------------------------------------------------------

namespace {
// A shell that joins `procs` (a cgroup.procs file) and then tries to fork. A fresh exec, so that
// the process is one thread whatever the test binary runs (a sanitizer's threads would count).
// Returns its exit status: 0 when the fork worked, 3 when it could not join, and dash's 2 after
// "Cannot fork".
int shell_forks_in(std::string const& procs) {
    pid_t const pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int const null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) ::dup2(null, STDERR_FILENO);  // "Cannot fork" is the expected answer
        ::execl("/bin/sh", "sh", "-c", "echo $$ > \"$1\" || exit 3; /bin/true; exit 0", "sh", procs.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
}  // namespace

TEST_CASE("pids answers as the kernel's pids controller", "[pids][kernel]") {
    auto scratch = test::kernel_scratch::make("/sys/fs/cgroup/pids");
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 pids hierarchy is not mounted writable at /sys/fs/cgroup/pids");
    std::string const k = scratch->path();
    REQUIRE(::mkdir((k + "/b").c_str(), 0755) == 0);
    tree t;
    // The same writes, the same answers.
    for (std::string v : {"10", " 5 \n", "0x10", "max", "4194304", "4194305", "-1", "MAX", "99999999999999999999", "1"}) {
        CAPTURE(v);
        test::outcome const kw = test::kernel_op(k, "write", "/pids.max", v);
        test::outcome const lw = test::library_op(t.h, "write", "/a/pids.max", v);
        CHECK(kw.error == lw.error);
        CHECK(test::kernel_op(k, "read", "/pids.max", "") == test::library_op(t.h, "read", "/a/pids.max", ""));
    }
    // a (and the kernel's scratch) now has pids.max 1; a fork from a process in b is refused.
    CHECK(shell_forks_in(k + "/b/cgroup.procs") == 2);  // the shell's fork got EAGAIN
    REQUIRE_FALSE(attach_one(t.h, 1, *t.b));
    CHECK(t.h.fork(1, 2) == std::errc::resource_unavailable_try_again);
    REQUIRE_FALSE(t.h.exit(1));  // as the kernel's process, which has exited
    for (char const* f : {"/pids.events", "/b/pids.events", "/pids.peak", "/b/pids.peak", "/pids.current", "/b/pids.current"}) {
        CAPTURE(f);
        CHECK(test::kernel_op(k, "read", f, "").content == test::library_op(t.h, "read", std::string("/a") + f, "").content);
    }
}
