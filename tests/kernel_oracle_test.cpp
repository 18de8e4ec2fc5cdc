// The kernel as the oracle: the same names and operations against /sys/fs/cgroup/cpuset (under a
// directory of our own) and against the library must give the same errno, case by case.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace containers;
using test::C;
using test::H;

namespace {
int kernel_mkdir(std::string const& dir, std::string const& name) {
    std::string const p = dir + "/" + name;
    if (::mkdir(p.c_str(), 0755) != 0) return errno;
    ::rmdir(p.c_str());
    return 0;
}
}  // namespace

TEST_CASE("mkdir names give the kernel's errors", "[tree][names][kernel]") {
    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 cpuset hierarchy is not mounted writable at /sys/fs/cgroup/cpuset");
    H h;
    C* sub = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "sub", &sub));
    REQUIRE(::mkdir((scratch->path() + "/taken").c_str(), 0755) == 0);
    REQUIRE_FALSE(h.mkdir(*sub, "taken"));
    // (The empty name is left out: "dir/" names dir itself, so the kernel cannot be asked.)
    auto const name = GENERATE(std::string("."), std::string(".."), std::string("a\nb"),
                               std::string("taken"), std::string("tasks"), std::string("cgroup.procs"),
                               std::string("notify_on_release"), std::string("cgroup.clone_children"),
                               std::string("release_agent"), std::string("a b"), std::string("\x01\x7f"),
                               std::string(300, 'x'), std::string(4000, 'x'), std::string(5000, 'x'), std::string("a/b"));
    CAPTURE(name.size(), name.substr(0, 20));
    int const kernel = kernel_mkdir(scratch->path(), name);
    std::error_code const lib = h.mkdir(*sub, name);
    CHECK(lib.value() == kernel);
    if (!lib) REQUIRE_FALSE(h.rmdir(*[&] { C* c = nullptr; REQUIRE_FALSE(h.lookup("/sub/" + name, c)); return c; }()));
}

TEST_CASE("removal and attach errors match the kernel's", "[tree][tasks][kernel]") {
    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 cpuset hierarchy is not mounted writable at /sys/fs/cgroup/cpuset");
    std::string const k = scratch->path();
    H h;
    C* sub = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "sub", &sub));

    // rmdir of a container with a child: EBUSY on both.
    REQUIRE(::mkdir((k + "/p").c_str(), 0755) == 0);
    REQUIRE(::mkdir((k + "/p/c").c_str(), 0755) == 0);
    C* p = nullptr;
    C* c = nullptr;
    REQUIRE_FALSE(h.mkdir(*sub, "p", &p));
    REQUIRE_FALSE(h.mkdir(*p, "c", &c));
    errno = 0;
    CHECK(::rmdir((k + "/p").c_str()) == -1);
    CHECK(h.rmdir(*p).value() == errno);

    // Removing twice: ENOENT on both; mkdir below a removed one: ENOENT on both.
    REQUIRE(::rmdir((k + "/p/c").c_str()) == 0);
    REQUIRE_FALSE(h.rmdir(*c));
    errno = 0;
    CHECK(::rmdir((k + "/p/c").c_str()) == -1);
    read_section rs;
    CHECK(h.rmdir(*c).value() == errno);
    errno = 0;
    CHECK(::mkdir((k + "/p/c/x").c_str(), 0755) == -1);
    CHECK(h.mkdir(*c, "x").value() == errno);

    // Attaching a tid that does not exist: ESRCH on both.
    pid_t const missing = 4'194'304 + 7;
    int fd = ::open((k + "/tasks").c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    std::string const s = std::to_string(missing);
    errno = 0;
    CHECK(::write(fd, s.data(), s.size()) == -1);
    int const kernel = errno;
    ::close(fd);
    CHECK(h.attach(missing, *sub).value() == kernel);
}

TEST_CASE("zombies are accepted, not listed, and do not keep a container busy, as on the kernel", "[tasks][zombie][kernel]") {
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer starts a thread of its own in every forked child, so the child that exits
    // is a group leader whose group lives on for a moment, which the kernel still lists.
    CONTAINERS_SKIP("a forked child is not a single thread under ThreadSanitizer");
#endif
    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 cpuset hierarchy is not mounted writable at /sys/fs/cgroup/cpuset");
    std::string const k = scratch->path();
    H h;
    // The same operation on both sides must give the same errno and the same content.
    auto both = [&](char const* op, std::string const& path, std::string const& value = {}) {
        CAPTURE(op, path, value);
        test::outcome const kernel = test::kernel_op(k, op, path, value);
        test::outcome const library = test::library_op(h, op, path, value);
        CHECK(library.error == kernel.error);
        CHECK(library.content == kernel.content);
        return kernel;
    };
    both("mkdir", "/z");
    REQUIRE(test::kernel_op(k, "write", "/z/cpuset.cpus", test::kernel_op(k, "read", "/cpuset.cpus", "").content).error == 0);
    REQUIRE(test::kernel_op(k, "write", "/z/cpuset.mems", test::kernel_op(k, "read", "/cpuset.mems", "").content).error == 0);

    SECTION("a zombie written to tasks and cgroup.procs") {
        pid_t const z = ::fork();
        if (z == 0) ::_exit(0);
        while (test::task_state(z) != 'Z') ::usleep(1000);
        both("write", "/z/tasks", std::to_string(z));
        both("write", "/z/cgroup.procs", std::to_string(z));
        both("read", "/z/tasks");
        both("read", "/z/cgroup.procs");
        both("rmdir", "/z");
        test::kill_and_reap(z);
    }
    SECTION("a member that becomes a zombie") {
        int go[2];
        REQUIRE(::pipe(go) == 0);
        pid_t const child = ::fork();
        if (child == 0) {
            char c;
            ::close(go[1]);
            (void)!::read(go[0], &c, 1);
            ::_exit(0);
        }
        ::close(go[0]);
        both("write", "/z/tasks", std::to_string(child));
        CHECK(both("read", "/z/tasks").content == std::to_string(child) + "\n");
        (void)!::write(go[1], "x", 1);
        ::close(go[1]);
        while (test::task_state(child) != 'Z') ::usleep(1000);
        both("read", "/z/tasks");
        both("read", "/z/cgroup.procs");
        both("rmdir", "/z");
        test::kill_and_reap(child);
    }
}

TEST_CASE("attaching another user's task is refused with the kernel's errno", "[tasks][errors][kernel]") {
    if (::geteuid() != 0) CONTAINERS_SKIP("needs root to drop to another user");
    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 cpuset hierarchy is not mounted writable at /sys/fs/cgroup/cpuset");
    std::string const tasks = scratch->path() + "/tasks";
    // The writer will be nobody: let it open our scratch directory's tasks file, as a delegation
    // would, so that what remains is the kernel's check of the target.
    REQUIRE(::chown(tasks.c_str(), 65534, 65534) == 0);
    pid_t const root_owned = test::spawn_sleeper();
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t const nobody_owned = ::fork();
    if (nobody_owned == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
        (void)!::write(ready[1], "x", 1);  // the target is nobody's from here on
        for (;;) ::pause();
    }
    REQUIRE(root_owned > 0);
    REQUIRE(nobody_owned > 0);
    ::close(ready[1]);  // so that a child that died before writing gives end of file, not a hang
    char c;
    bool const up = ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
    if (!up) {
        test::kill_and_reap(root_owned);
        test::kill_and_reap(nobody_owned);
    }
    REQUIRE(up);
    pid_t const checker = ::fork();
    if (checker == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
        H h;
        C* a = nullptr;
        if (h.mkdir(h.top(), "a", &a)) ::_exit(101);
        int mismatches = 0;
        int k = 0;
        for (pid_t target : {root_owned, nobody_owned}) {
            int const fd = ::open(tasks.c_str(), O_WRONLY);
            if (fd < 0) ::_exit(102);
            std::string const s = std::to_string(target);
            int const kernel = ::write(fd, s.data(), s.size()) < 0 ? errno : 0;
            ::close(fd);
            int const library = h.attach(target, *a).value();
            if (kernel != library || kernel != (target == root_owned ? EACCES : 0)) mismatches |= 1 << k;
            ++k;
        }
        ::_exit(mismatches);
    }
    int status = 0;
    ::waitpid(checker, &status, 0);
    test::kill_and_reap(root_owned);
    test::kill_and_reap(nobody_owned);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // bit 0: the root-owned target, bit 1: the nobody-owned one
}

TEST_CASE("a scratch directory that a killed test left behind is swept by the next one", "[kernel][support]") {
    std::string const root = "/sys/fs/cgroup/cpuset";
    if (::access((root + "/tasks").c_str(), W_OK) != 0) CONTAINERS_SKIP("/sys/fs/cgroup/cpuset is not writable");
    pid_t const dead = test::spawn_sleeper();
    test::kill_and_reap(dead);  // a pid no process has now (unless reused at once: then nothing is swept)
    std::string const left = root + "/containers-test-" + std::to_string(dead) + "-1";
    std::string const alive = root + "/containers-test-" + std::to_string(::getpid()) + "-swept-not";
    // Another test process's kernel_scratch may sweep `left` at any moment (that is the point):
    // whoever sweeps it, it must be gone after ours.
    REQUIRE(::mkdir(left.c_str(), 0755) == 0);
    (void)::mkdir((left + "/child").c_str(), 0755);
    REQUIRE(::mkdir(alive.c_str(), 0755) == 0);
    auto scratch = test::kernel_scratch::make(root);
    REQUIRE(scratch);
    bool const swept = ::access(left.c_str(), F_OK) != 0;
    bool const kept = ::access(alive.c_str(), F_OK) == 0;
    ::rmdir((left + "/child").c_str());
    ::rmdir(left.c_str());
    ::rmdir(alive.c_str());
    if (::kill(dead, 0) == 0) CONTAINERS_SKIP("pid " << dead << " was reused at once");
    CHECK(swept);
    CHECK(kept);  // a live process's directory is its own
}
