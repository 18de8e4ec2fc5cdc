// Tasks: attach by id, all-or-nothing batches, fork and exit, threads that attach themselves and
// exit, threads of other processes, and the read path.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

using namespace containers;
using test::C;
using test::H;

namespace {
using test::errc_of;

pid_t unused_tid() {
    // pid_max bounds every id the kernel hands out.
    return 4'194'304 + 7;
}
}  // namespace

TEST_CASE("a task is in the top container until attached elsewhere", "[tasks]") {
    H h;
    test::parked_thread th;
    CHECK(&h.container_of(th.tid()) == &h.top());
    CHECK(h.find_task(th.tid()) == nullptr);
    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.attach(th.tid(), *a));
    CHECK(&h.container_of(th.tid()) == a);
    CHECK(&h.find_task(th.tid())->container() == a);
    CHECK(a->task_count() == 1);
    CHECK(h.task_count() == 1);
    REQUIRE_FALSE(h.attach(th.tid(), h.top()));
    CHECK(&h.container_of(th.tid()) == &h.top());
    CHECK(a->task_count() == 0);
    CHECK(h.top().task_count() == 1);
}

TEST_CASE("attach reports ESRCH for ids that name no thread and changes nothing", "[tasks][errors]") {
    H h;
    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    pid_t const bad = GENERATE(0, -1, unused_tid());
    CHECK(errc_of(h.attach(bad, *a)) == std::errc::no_such_process);
    CHECK(h.task_count() == 0);
    CHECK(a->task_count() == 0);
}

TEST_CASE("attach into a removed container is ENODEV", "[tasks][errors]") {
    H h;
    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.rmdir(*a));
    test::parked_thread th;
    read_section rs;  // keeps the removed container readable
    CHECK(errc_of(h.attach(th.tid(), *a)) == std::errc::no_such_device);
    CHECK(h.task_count() == 0);
}

TEST_CASE("attaching several tasks is all-or-nothing", "[tasks][batch]") {
    H h;
    C* a = nullptr;
    C* b = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.mkdir(h.top(), "b", &b));
    test::parked_thread t1;
    test::parked_thread t2;
    test::parked_thread t3;
    REQUIRE_FALSE(h.attach(t1.tid(), *a));

    SECTION("one bad id leaves every task where it was") {
        pid_t const ids[] = {t1.tid(), t2.tid(), unused_tid(), t3.tid()};
        CHECK(errc_of(h.attach(ids, *b)) == std::errc::no_such_process);
        CHECK(&h.container_of(t1.tid()) == a);
        CHECK(h.find_task(t2.tid()) == nullptr);
        CHECK(h.find_task(t3.tid()) == nullptr);
        CHECK(b->task_count() == 0);
        CHECK(h.task_count() == 1);
    }
    SECTION("a good batch moves every task, once each") {
        pid_t const ids[] = {t3.tid(), t1.tid(), t2.tid(), t1.tid()};
        REQUIRE_FALSE(h.attach(ids, *b));
        CHECK(b->task_count() == 3);
        CHECK(a->task_count() == 0);
        std::vector<pid_t> listed;
        REQUIRE_FALSE(h.task_ids(*b, listed));
        std::vector<pid_t> expected{t1.tid(), t2.tid(), t3.tid()};
        std::sort(expected.begin(), expected.end());
        CHECK(listed == expected);
    }
    SECTION("an empty batch is a no-op") {
        REQUIRE_FALSE(h.attach(std::span<pid_t const>{}, *b));
        CHECK(b->task_count() == 0);
    }
}

TEST_CASE("a container with tasks cannot be removed until they leave", "[tasks][tree]") {
    H h;
    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    test::parked_thread th;
    REQUIRE_FALSE(h.attach(th.tid(), *a));
    CHECK(errc_of(h.rmdir(*a)) == std::errc::device_or_resource_busy);
    REQUIRE_FALSE(h.exit(th.tid()));
    CHECK(errc_of(h.exit(th.tid())) == std::errc::no_such_process);
    CHECK(h.task_count() == 0);
    CHECK_FALSE(h.rmdir(*a));
}

TEST_CASE("fork puts the child in its parent's container", "[tasks][fork]") {
    H h;
    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    test::parked_thread parent;
    test::parked_thread child;
    test::parked_thread orphan;
    REQUIRE_FALSE(h.attach(parent.tid(), *a));
    REQUIRE_FALSE(h.fork(parent.tid(), child.tid()));
    CHECK(&h.container_of(child.tid()) == a);
    CHECK(errc_of(h.fork(parent.tid(), child.tid())) == std::errc::file_exists);
    CHECK(errc_of(h.fork(parent.tid(), unused_tid())) == std::errc::no_such_process);
    // A parent the hierarchy does not know is in the top container.
    REQUIRE_FALSE(h.fork(unused_tid(), orphan.tid()));
    CHECK(&h.container_of(orphan.tid()) == &h.top());
    CHECK(h.task_count() == 3);
}

TEST_CASE("a thread that attaches itself reads its container and leaves when it exits", "[tasks][self]") {
    H h;
    C* a = nullptr;
    C* b = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.mkdir(h.top(), "b", &b));
    std::error_code first;
    std::error_code second;
    C* seen_first = nullptr;
    C* seen_second = nullptr;
    pid_t tid = 0;
    std::thread th([&] {
        tid = thread_task_traits::self();
        read_section rs;
        first = h.attach_self(*a);
        seen_first = &h.current();
        second = h.attach(tid, *b);  // by id: the same task
        seen_second = &h.current();
    });
    th.join();
    CHECK_FALSE(first);
    CHECK_FALSE(second);
    CHECK(seen_first == a);
    CHECK(seen_second == b);
    // The thread has exited: it was detached, and nothing of it is left.
    CHECK(h.find_task(tid) == nullptr);
    CHECK(h.task_count() == 0);
    CHECK(b->task_count() == 0);
    CHECK_FALSE(h.rmdir(*b));
}

TEST_CASE("a running thread that attached itself can only be exited by itself", "[tasks][self]") {
    H h;
    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    std::error_code own_exit;
    test::parked_thread th([&] { CHECK_FALSE(h.attach_self(*a)); });
    CHECK(errc_of(h.exit(th.tid())) == std::errc::device_or_resource_busy);
    CHECK(&h.container_of(th.tid()) == a);
    test::parked_thread leaver([&] {
        CHECK_FALSE(h.attach_self(*a));
        own_exit = h.exit(thread_task_traits::self());
    });
    CHECK_FALSE(own_exit);
    CHECK(h.find_task(leaver.tid()) == nullptr);
    CHECK(a->task_count() == 1);
}

TEST_CASE("the current thread's container, with and without attaching itself", "[tasks][read]") {
    H h;
    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    read_section rs;
    CHECK(&h.current() == &h.top());
    // Attached by id from another thread: found by lookup instead of the thread-local cache.
    test::parked_thread helper;
    pid_t const me = thread_task_traits::self();
    std::thread([&] { CHECK_FALSE(h.attach(me, *a)); }).join();
    CHECK(&h.current() == a);
    REQUIRE_FALSE(h.exit(me));
    CHECK(&h.current() == &h.top());
}

TEST_CASE("several hierarchies coexist, each with its own view of a thread", "[tasks][read]") {
    std::vector<std::unique_ptr<H>> hs;
    for (int i = 0; i < 20; ++i) hs.push_back(std::make_unique<H>());  // more than the thread-local cache holds
    std::vector<C*> mine;
    for (auto& h : hs) {
        C* c = nullptr;
        REQUIRE_FALSE(h->mkdir(h->top(), test::named("g", mine.size()), &c));
        mine.push_back(c);
    }
    std::thread([&] {
        for (std::size_t i = 0; i < hs.size(); ++i) CHECK_FALSE(hs[i]->attach_self(*mine[i]));
        {
            read_section rs;
            for (std::size_t i = 0; i < hs.size(); ++i) CHECK(&hs[i]->current() == mine[i]);
        }
        hs[3].reset();  // a hierarchy destroyed while a thread is bound to it
    }).join();
    for (std::size_t i = 0; i < hs.size(); ++i) {
        if (hs[i]) CHECK(hs[i]->task_count() == 0);
    }
}

TEST_CASE("a thread of another process can be attached, and does not linger after it exits", "[tasks][process]") {
    H h;
    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    pid_t const child = test::spawn_sleeper();
    REQUIRE(child > 0);
    REQUIRE_FALSE(h.attach(child, *a));
    std::vector<pid_t> listed;
    REQUIRE_FALSE(h.task_ids(*a, listed));
    CHECK(listed == std::vector<pid_t>{child});
    CHECK(errc_of(h.rmdir(*a)) == std::errc::device_or_resource_busy);
    test::kill_and_reap(child);
    // It exited without telling the hierarchy: listing reaps it, and so does rmdir.
    SECTION("listing") {
        REQUIRE_FALSE(h.task_ids(*a, listed));
        CHECK(listed.empty());
        CHECK(h.task_count() == 0);
    }
    SECTION("removal") { CHECK_FALSE(h.rmdir(*a)); }
}

TEST_CASE("a thread of this process attached by id is reaped after it exits", "[tasks][process]") {
    H h;
    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    pid_t tid = 0;
    {
        test::parked_thread th;
        tid = th.tid();
        REQUIRE_FALSE(h.attach(tid, *a));
    }
    CHECK(h.reap(*a) == 1);
    CHECK(h.find_task(tid) == nullptr);
}

TEST_CASE("attaching another user's task is EACCES unless the writer is root or matches its real or saved uid", "[tasks][errors][process]") {
    if (::geteuid() != 0) CONTAINERS_SKIP("needs root to drop to another user");
    // The kernel's rule (cgroup v1, __cgroup1_procs_write): the writer's euid is root, or the
    // target's real or saved uid. Not sched_setaffinity's, which compares effective ids.
    pid_t const victim = test::spawn_sleeper();  // owned by root
    REQUIRE(victim > 0);
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t const saved_nobody = ::fork();  // real and effective root, saved uid nobody
    if (saved_nobody == 0) {
        if (::setresuid(0, 0, 65534) != 0) ::_exit(2);
        (void)!::write(ready[1], "x", 1);
        for (;;) ::pause();
    }
    REQUIRE(saved_nobody > 0);
    ::close(ready[1]);  // so that a child that died before writing gives end of file, not a hang
    char c;
    bool const up = ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
    if (!up) {
        test::kill_and_reap(victim);
        test::kill_and_reap(saved_nobody);
    }
    REQUIRE(up);
    pid_t const checker = ::fork();
    if (checker == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
        H h;
        C* a = nullptr;
        if (h.mkdir(h.top(), "a", &a)) ::_exit(3);
        std::error_code const refused = h.attach(victim, *a);
        if (refused != std::errc::permission_denied || h.task_count() != 0) ::_exit(4);
        std::error_code const allowed = h.attach(saved_nobody, *a);
        ::_exit(!allowed && h.task_count() == 1 ? 0 : 5);
    }
    int status = 0;
    ::waitpid(checker, &status, 0);
    test::kill_and_reap(victim);
    test::kill_and_reap(saved_nobody);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
