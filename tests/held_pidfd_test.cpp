// The pidfd a task's identity holds: a thread of this process placed by tid keeps one open, so that
// telling whether it still runs costs one poll(2); the fd is closed when the task leaves, threads
// of this process hold no more than a quarter of RLIMIT_NOFILE, and past that the identity still
// tells a thread from a later one with its tid.
#include "isolated.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

using namespace containers;
using test::C;
using test::H;

namespace {

// How many file descriptors this process has open.
int open_fds() {
    DIR* d = ::opendir("/proc/self/fd");
    REQUIRE(d != nullptr);
    int n = 0;
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
    return n;
}

// The next id the kernel hands out will be `id` if nothing else forks first (root only).
bool set_last_pid(pid_t id) {
    int fd = ::open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
    if (fd < 0) return false;
    std::string const s = std::to_string(id - 1);
    bool const ok = ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
    ::close(fd);
    return ok;
}

}  // namespace

TEST_CASE("a thread of this process placed by tid holds one pidfd that is closed when it leaves: no fd leak over 10 000 cycles",
          "[tasks][identity][fd]") {
    test::parked_thread t;
    pid_t const tid = t.tid();
    int const at_start = open_fds();
    {
        H h;
        C* a = nullptr;
        C* b = nullptr;
        REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
        REQUIRE_FALSE(h.mkdir(h.top(), "b", &b));
        int const with_h = open_fds();
        REQUIRE_FALSE(h.attach(tid, *a));
        REQUIRE(h.find_task(tid) != nullptr);
        CHECK(h.find_task(tid)->identity().pidfd() >= 0);
        CHECK(open_fds() == with_h + 1);
        REQUIRE_FALSE(h.attach(tid, *b));  // a move opens nothing more
        CHECK(open_fds() == with_h + 1);
        REQUIRE_FALSE(h.exit(tid));
        int failures = 0;
        for (int i = 0; i < 10000; ++i) {
            if (h.attach(tid, i % 2 != 0 ? *a : *b) || h.exit(tid)) ++failures;
        }
        CHECK(failures == 0);
        // Records are freed in batches after a grace period: at most one batch is waiting.
        CHECK(open_fds() <= with_h + static_cast<int>(H::reclaim_batch));
    }
    CHECK(open_fds() == at_start);
    CHECK(thread_identity::held_own_pidfds() == 0);
}

TEST_CASE("threads of this process that exit without telling the hierarchy leave no fd behind once reaped",
          "[tasks][identity][fd]") {
    int const at_start = open_fds();
    {
        H h;
        C* a = nullptr;
        REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
        for (int round = 0; round < 20; ++round) {
            std::vector<std::unique_ptr<test::parked_thread>> threads;
            for (int i = 0; i < 10; ++i) {
                threads.push_back(std::make_unique<test::parked_thread>());
                REQUIRE_FALSE(h.attach(threads.back()->tid(), *a));
            }
            threads.clear();  // they exit
            std::vector<pid_t> listed;
            REQUIRE_FALSE(h.task_ids(*a, listed));  // reaps them
            CHECK(listed.empty());
        }
    }
    CHECK(open_fds() == at_start);
}

TEST_CASE("a held pidfd tells that a thread of this process exited and that a new thread with its tid is another",
          "[tasks][identity][fd]") {
    thread_identity k;
    pid_t tid = 0;
    {
        test::parked_thread t;
        tid = t.tid();
        REQUIRE_FALSE(thread_task_traits::identify(tid, k));
        CHECK(k.pidfd() >= 0);
        CHECK(k.may_set_affinity());
        CHECK(thread_task_traits::alive(tid, k));
    }
    CHECK_FALSE(thread_task_traits::alive(tid, k));  // exited and joined
    if (::geteuid() != 0 || ::access("/proc/sys/kernel/ns_last_pid", W_OK) != 0) CONTAINERS_SKIP("needs root to choose the next tid");
    std::string const old_dir = "/proc/self/task/" + std::to_string(tid);
    for (int i = 0; i < 1000 && ::access(old_dir.c_str(), F_OK) == 0; ++i) ::usleep(1000);
    std::atomic<int> outcome{0};  // 1: got the tid and checked
    bool alive_seen = true;
    for (int tries = 0; tries < 200 && outcome.load() == 0; ++tries) {
        if (!set_last_pid(tid)) break;
        if (tries > 0) ::usleep(1000);
        std::thread([&] {
            if (thread_task_traits::self() != tid) return;
            alive_seen = thread_task_traits::alive(tid, k);
            outcome = 1;
        }).join();
    }
    if (outcome.load() != 1) CONTAINERS_SKIP("another task took tid " << tid << " first");
    CHECK_FALSE(alive_seen);
}

TEST_CASE("the main thread identified by tid holds a pidfd and is alive", "[tasks][identity][fd]") {
    thread_identity k;
    REQUIRE_FALSE(thread_task_traits::identify(::getpid(), k));
    CHECK(k.pidfd() >= 0);
    CHECK(thread_task_traits::alive(::getpid(), k));
}

TEST_CASE("past a quarter of RLIMIT_NOFILE threads of this process hold no pidfd and are still told apart",
          "[tasks][identity][fd]") {
    if (!test::isolated::in_child()) {
        test::isolated::require_passes("past a quarter of RLIMIT_NOFILE threads of this process hold no pidfd and are still told apart");
        return;
    }
    rlimit rl;
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = 64;  // a budget of 16
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &rl) == 0);
    REQUIRE(thread_identity::held_own_pidfds() == 0);
    std::vector<std::unique_ptr<test::parked_thread>> threads;
    for (int i = 0; i < 24; ++i) threads.push_back(std::make_unique<test::parked_thread>());
    int const at_start = open_fds();
    {
        H h;
        C* a = nullptr;
        REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
        int const with_h = open_fds();
        for (auto const& t : threads) REQUIRE_FALSE(h.attach(t->tid(), *a));
        CHECK(thread_identity::held_own_pidfds() == 16);
        CHECK(open_fds() == with_h + 16);
        pid_t const last = threads.back()->tid();
        REQUIRE(h.find_task(last) != nullptr);
        CHECK(h.find_task(last)->identity().pidfd() < 0);
        CHECK(h.find_task(last)->alive());
        threads.back()->join();
        std::string const dir = "/proc/self/task/" + std::to_string(last);
        for (int i = 0; i < 1000 && ::access(dir.c_str(), F_OK) == 0; ++i) ::usleep(1000);
        threads.front()->join();
        std::vector<pid_t> listed;
        REQUIRE_FALSE(h.task_ids(*a, listed));
        CHECK(listed.size() == 22);
        CHECK(std::find(listed.begin(), listed.end(), last) == listed.end());
        CHECK(std::find(listed.begin(), listed.end(), threads.front()->tid()) == listed.end());
    }
    CHECK(thread_identity::held_own_pidfds() == 0);
    CHECK(open_fds() == at_start);
}
