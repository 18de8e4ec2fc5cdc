#include "support.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ctime>
#include <sched.h>
#include <system_error>
#include <unistd.h>

namespace test {

namespace {

void copy_file(std::string const& from, std::string const& to) {
    char buf[4096];
    int in = ::open(from.c_str(), O_RDONLY);
    if (in < 0) return;
    ssize_t n = ::read(in, buf, sizeof buf);
    ::close(in);
    if (n <= 0) return;
    int out = ::open(to.c_str(), O_WRONLY);
    if (out < 0) return;
    (void)!::write(out, buf, static_cast<size_t>(n));
    ::close(out);
}

// Moves every task back to the parent and removes the tree, deepest first.
void remove_tree(std::string const& dir, std::string const& parent_tasks) {
    if (DIR* d = ::opendir(dir.c_str())) {
        std::vector<std::string> subdirs;
        while (dirent* e = ::readdir(d)) {
            std::string n = e->d_name;
            if (n != "." && n != ".." && e->d_type == DT_DIR) subdirs.push_back(dir + "/" + n);
        }
        ::closedir(d);
        for (auto const& s : subdirs) remove_tree(s, dir + "/tasks");
    }
    if (int fd = ::open((dir + "/freezer.state").c_str(), O_WRONLY); fd >= 0) {  // frozen tasks move on frozen
        (void)!::write(fd, "THAWED", 6);
        ::close(fd);
    }
    if (FILE* f = std::fopen((dir + "/tasks").c_str(), "re")) {
        int tid;
        while (std::fscanf(f, "%d", &tid) == 1) {
            int out = ::open(parent_tasks.c_str(), O_WRONLY);
            if (out >= 0) {
                std::string s = std::to_string(tid);
                (void)!::write(out, s.data(), s.size());
                ::close(out);
            }
        }
        std::fclose(f);
    }
    ::rmdir(dir.c_str());
}
// Removes the scratch directories that test processes which no longer exist left below `root`
// (a test killed by its timeout or a signal runs no destructor): ours are named
// containers-test-PID-N, and a PID that no process has is free to sweep.
void sweep_dead_scratch(std::string const& root) {
    std::string const prefix = "containers-test-";
    std::vector<std::string> stale;
    if (DIR* d = ::opendir(root.c_str())) {
        while (dirent* e = ::readdir(d)) {
            std::string_view n = e->d_name;
            if (e->d_type != DT_DIR || !n.starts_with(prefix)) continue;
            char* end = nullptr;
            long pid = std::strtol(e->d_name + prefix.size(), &end, 10);
            if (pid <= 0 || *end != '-') continue;
            if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(root + "/" + e->d_name);
        }
        ::closedir(d);
    }
    for (auto const& dir : stale) remove_tree(dir, root + "/tasks");
}
}  // namespace

std::optional<kernel_scratch> kernel_scratch::make(std::string const& root) {
    if (::access((root + "/tasks").c_str(), W_OK) != 0) return std::nullopt;
    sweep_dead_scratch(root);
    std::string p = root + "/containers-test-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand());
    if (::mkdir(p.c_str(), 0755) != 0) return std::nullopt;
    // A new cpuset starts empty; give it the parent's CPUs and nodes so that tasks may join.
    if (::access((root + "/cpuset.cpus").c_str(), F_OK) == 0) {
        copy_file(root + "/cpuset.cpus", p + "/cpuset.cpus");
        copy_file(root + "/cpuset.mems", p + "/cpuset.mems");
    }
    return kernel_scratch(p, root);
}

kernel_scratch::~kernel_scratch() {
    if (!path_.empty()) remove_tree(path_, root_ + "/tasks");
}

outcome kernel_op(std::string const& root, std::string const& op, std::string const& path, std::string const& value) {
    std::string const p = root + path;
    outcome o;
    if (op == "mkdir") {
        if (::mkdir(p.c_str(), 0755) != 0) o.error = errno;
    } else if (op == "rmdir") {
        if (::rmdir(p.c_str()) != 0) o.error = errno;
    } else if (op == "read") {
        int fd = ::open(p.c_str(), O_RDONLY);
        if (fd < 0) return {errno, {}};
        char buf[65536];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) o.error = errno;
        else o.content.assign(buf, static_cast<std::size_t>(n));
        ::close(fd);
    } else {
        int fd = ::open(p.c_str(), O_WRONLY);
        if (fd < 0) return {errno, {}};
        if (::write(fd, value.data(), value.size()) < 0) o.error = errno;
        ::close(fd);
    }
    return o;
}

containers::cpumask list(std::string_view s, std::size_t nbits) {
    containers::cpumask m;
    if (s.empty()) return m;
    if (auto ec = containers::cpumask::parse_list(s, nbits, m))
        throw std::system_error(ec, "test::list(\"" + std::string(s) + "\")");
    return m;
}

std::vector<int> cpus_of(pid_t tid) {
    cpu_set_t s;
    CPU_ZERO(&s);
    std::vector<int> out;
    if (::sched_getaffinity(tid, sizeof s, &s) != 0) return out;
    for (int i = 0; i < CPU_SETSIZE; ++i)
        if (CPU_ISSET(i, &s)) out.push_back(i);
    return out;
}

std::uint64_t thread_cpu_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t burn(std::uint64_t ns) {
    std::uint64_t const start = thread_cpu_ns();
    std::uint64_t now = start;
    volatile std::uint64_t sink = 0;
    while (now - start < ns) {
        for (int i = 0; i < 10000; ++i) sink = sink + static_cast<std::uint64_t>(i);
        now = thread_cpu_ns();
    }
    return now - start;
}

worker::worker() : thread_([this] { run(); }) {
    std::unique_lock g(m_);
    cv_.wait(g, [this] { return tid_ != 0; });
}

worker::~worker() {
    {
        std::lock_guard g(m_);
        quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void worker::start(std::function<void()> f) {
    wait();
    std::lock_guard g(m_);
    job_ = std::move(f);
    cv_.notify_all();
}

void worker::wait() {
    std::unique_lock g(m_);
    cv_.wait(g, [this] { return !job_; });
}

void worker::run() {
    std::unique_lock g(m_);
    tid_ = containers::thread_task_traits::self();
    cv_.notify_all();
    for (;;) {
        cv_.wait(g, [this] { return quit_ || static_cast<bool>(job_); });
        if (quit_ && !job_) return;
        g.unlock();
        job_();
        g.lock();
        job_ = nullptr;
        cv_.notify_all();
    }
}

namespace {
// Field 3 of a /proc stat file: after the last ')', since the name may hold anything.
char state_in(char const* path) {
    std::FILE* f = std::fopen(path, "re");
    if (f == nullptr) return 0;
    char buf[512];
    std::size_t const n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    char const* close = std::strrchr(buf, ')');
    return close != nullptr && close[1] == ' ' ? close[2] : 0;
}
}  // namespace

char task_state(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    return state_in(path);
}

char thread_state(pid_t tid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
    return state_in(path);
}

pid_t spawn_sleeper() {
    pid_t pid = ::fork();
    if (pid == 0) {
        for (;;) ::pause();
    }
    return pid;
}

void kill_and_reap(pid_t pid) {
    ::kill(pid, SIGKILL);
    int st;
    ::waitpid(pid, &st, 0);
}

bool set_last_pid(pid_t id) {
    int fd = ::open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::string const s = std::to_string(id - 1);
    bool const ok = ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
    ::close(fd);
    return ok;
}

pid_t spawn_sleeper_as(pid_t want) {
    for (int tries = 0; tries < 50; ++tries) {
        if (!set_last_pid(want)) return -1;
        pid_t const p = spawn_sleeper();
        if (p == want) return p;
        kill_and_reap(p);
    }
    return -1;
}

}  // namespace test
