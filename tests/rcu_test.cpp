// The read path's promises (detail/rcu.hpp, detail/thread_binding.hpp): readers never block, a
// grace period waits for every section that began before it (in signal handlers, thread-local
// destructors and threads that exit inside a section included), and nothing deadlocks with the
// hierarchy's locks, teardown or fork(). Scenarios that could hang or abort run in a child
// process (bounded.hpp), so that a regression fails the test instead of the suite.
#include "bounded.hpp"
#include "support.hpp"

#include <catch2/catch.hpp>

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>

#include <array>
#include <csignal>
#include <memory>

using namespace containers;
using test::C;
using test::H;

namespace {

void pause_ms(int n) { std::this_thread::sleep_for(std::chrono::milliseconds(n)); }

template <class Pred>
void wait_until(Pred p) {
    while (!p()) pause_ms(1);
}

// ---- a torture harness in the manner of liburcu's tests: objects that a writer retires and
// "frees" (bumps a generation) after a grace period, and readers that check that the object they
// hold does not change generation while their section lasts.

struct node {
    std::atomic<std::uint64_t> generation{0};
};

struct torture {
    static constexpr std::size_t pool_size = 64;
    std::array<node, pool_size> pool;
    std::atomic<node*> shared{&pool[0]};
    std::atomic<std::uint64_t> violations{0};
    std::atomic<std::uint64_t> sections{0};
    std::atomic<std::uint64_t> handler_sections{0};
    std::atomic<std::uint64_t> grace_periods{0};

    // One read: hold the current object for a little while and check it was not freed meanwhile.
    void read_once(int spin) noexcept {
        read_section rs;
        node* p = shared.load(std::memory_order_acquire);
        std::uint64_t const g = p->generation.load(std::memory_order_acquire);
        for (int i = 0; i < spin; ++i) std::atomic_signal_fence(std::memory_order_seq_cst);
        {
            read_section nested;  // nesting inside the section changes nothing
            if (p->generation.load(std::memory_order_acquire) != g) violations.fetch_add(1, std::memory_order_relaxed);
        }
        if (p->generation.load(std::memory_order_acquire) != g) violations.fetch_add(1, std::memory_order_relaxed);
    }

    // The writer: publish another object, wait for a grace period, then "free" the old one.
    void write_rounds(int rounds) noexcept {
        std::size_t next = 1;
        for (int r = 0; r < rounds; ++r) {
            node* fresh = &pool[next++ % pool_size];
            if (fresh == shared.load(std::memory_order_relaxed)) fresh = &pool[next++ % pool_size];
            node* old = shared.exchange(fresh, std::memory_order_acq_rel);
            detail::synchronize();
            old->generation.fetch_add(1, std::memory_order_release);
            grace_periods.fetch_add(1, std::memory_order_relaxed);
        }
    }
};

torture* g_torture = nullptr;

void torture_handler(int) {
    int const saved = errno;
    g_torture->read_once(2000);
    g_torture->handler_sections.fetch_add(1, std::memory_order_relaxed);
    errno = saved;
}

// A timer that sends SIGUSR1 to one thread every `period_ns`.
class thread_timer {
public:
    thread_timer(pid_t tid, long period_ns) {
        sigevent sev{};
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = SIGUSR1;
        sev._sigev_un._tid = tid;
        if (::timer_create(CLOCK_MONOTONIC, &sev, &timer_) != 0) return;
        armed_ = true;
        itimerspec its{{0, period_ns}, {0, period_ns}};
        ::timer_settime(timer_, 0, &its, nullptr);
    }
    ~thread_timer() {
        if (armed_) ::timer_delete(timer_);
    }
    thread_timer(thread_timer const&) = delete;
    thread_timer& operator=(thread_timer const&) = delete;

private:
    timer_t timer_{};
    bool armed_ = false;
};

}  // namespace

TEST_CASE("a fresh thread's first read section and its exit never wait for a grace period", "[rcu][deadlock]") {
    auto r = test::run_bounded([] {
        std::atomic<int> phase{0};
        std::thread reader([&] {
            read_section rs;
            phase = 1;
            wait_until([&] { return phase.load() == 3; });  // ends only after the fresh thread ran
        });
        wait_until([&] { return phase.load() == 1; });
        std::thread writer([&] {
            phase = 2;
            detail::synchronize();  // waits for `reader`
        });
        wait_until([&] { return phase.load() == 2; });
        pause_ms(20);  // let the writer start waiting
        std::thread fresh([] {
            read_section rs;  // its first section: claims a record while a grace period waits
        });
        fresh.join();  // and it has exited: its record went back while the grace period waits
        phase = 3;
        reader.join();
        writer.join();
        return 0;
    });
    CHECK_FALSE(r.hung);
    CHECK(r.ok());
}

TEST_CASE("a reader that takes the manage lock in its section, a grace period and a thread attaching itself do not deadlock",
          "[rcu][deadlock]") {
    auto r = test::run_bounded([] {
        H h;
        C* c = nullptr;
        if (h.mkdir(h.top(), "c", &c)) return 2;
        std::atomic<int> phase{0};
        std::thread reader([&] {
            read_section rs;
            phase = 1;
            wait_until([&] { return phase.load() >= 2; });
            pause_ms(300);  // meanwhile a fresh thread attaches itself
            std::vector<pid_t> ids;
            (void)h.task_ids(*c, ids);  // the manage lock, inside the section (as every fs:: call)
        });
        wait_until([&] { return phase.load() == 1; });
        std::thread writer([&] {
            H* other = new H;
            phase = 2;
            delete other;  // a grace period: waits for `reader`
        });
        wait_until([&] { return phase.load() == 2; });
        pause_ms(10);
        std::thread attacher([&] {
            if (h.attach_self(*c)) std::abort();  // first use of the read path under the manage lock
            (void)h.exit(thread_task_traits::self());
        });
        attacher.join();
        reader.join();
        writer.join();
        return 0;
    });
    CHECK_FALSE(r.hung);
    CHECK(r.ok());
}

TEST_CASE("destroying a hierarchy inside a read section while a thread that attached itself exits", "[rcu][deadlock][teardown]") {
    auto r = test::run_bounded([] {
        auto* h = new H;
        for (std::size_t i = 0; i + 1 < H::reclaim_batch; ++i) {  // one removal short of a reclaim batch
            C* c = nullptr;
            if (h->mkdir(h->top(), "x", &c) || h->rmdir(*c)) return 2;
        }
        C* g = nullptr;
        if (h->mkdir(h->top(), "g", &g)) return 2;
        std::atomic<int> phase{0};
        std::thread exiting([&] {
            if (h->attach_self(*g)) std::abort();
            phase = 1;
            wait_until([&] { return phase.load() == 2; });
            // Exits: the automatic detach retires the batch's last record while pinned.
        });
        wait_until([&] { return phase.load() == 1; });
        std::thread destroyer([&] {
            read_section rs;  // the caller also reads another hierarchy, say
            phase = 2;
            pause_ms(100);
            delete h;
        });
        exiting.join();
        destroyer.join();
        return 0;
    });
    CHECK_FALSE(r.hung);
    CHECK(r.ok());
}

TEST_CASE("a thread that exits inside a read section does not block grace periods for good", "[rcu][deadlock][exit]") {
    auto r = test::run_bounded([] {
        std::atomic<int> phase{0};
        std::thread exiting([&] {
            detail::rcu_read_lock();  // what a read_section leaves behind when nothing unwinds it
            phase = 1;
            wait_until([&] { return phase.load() == 2; });
            pause_ms(50);
            ::pthread_exit(nullptr);
        });
        wait_until([&] { return phase.load() == 1; });
        std::thread writer([&] {
            phase = 2;
            detail::synchronize();  // returns once the thread is gone
        });
        exiting.join();
        writer.join();
        detail::synchronize();  // and later grace periods do not wait for it either
        return 0;
    });
    CHECK_FALSE(r.hung);
    CHECK(r.ok());
}

namespace {
torture* g_tls_torture = nullptr;
std::atomic<int> g_tls_phase{0};
std::atomic<bool> g_tls_freed_while_reading{false};

// A thread-local whose destructor reads inside a section, after the thread's other
// thread-locals (the read path's included) may have gone.
struct reads_at_exit {
    bool armed = false;
    ~reads_at_exit() {
        if (!armed) return;
        read_section rs;
        node* p = g_tls_torture->shared.load(std::memory_order_acquire);
        std::uint64_t const g = p->generation.load(std::memory_order_acquire);
        g_tls_phase = 1;
        wait_until([] { return g_tls_phase.load() == 2; });
        pause_ms(100);  // a grace period that ignored this section would have ended by now
        if (p->generation.load(std::memory_order_acquire) != g) g_tls_freed_while_reading = true;
    }
};
thread_local reads_at_exit t_reads_at_exit;
}  // namespace

TEST_CASE("a read section in a thread-local destructor is protected", "[rcu][exit]") {
    torture t;
    g_tls_torture = &t;
    g_tls_phase = 0;
    g_tls_freed_while_reading = false;
    std::thread exiting([] {
        t_reads_at_exit.armed = true;  // constructed before the thread's first section
        { read_section rs; }
    });
    wait_until([] { return g_tls_phase.load() == 1; });
    g_tls_phase = 2;
    t.write_rounds(1);  // retires the object the destructor holds
    exiting.join();
    CHECK_FALSE(g_tls_freed_while_reading.load());
}

TEST_CASE("signal handlers that open read sections at any point are protected", "[rcu][signals][torture]") {
    torture t;
    g_torture = &t;
    struct sigaction sa{};
    sa.sa_handler = torture_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction old{};
    REQUIRE(::sigaction(SIGUSR1, &sa, &old) == 0);

    // A fixed number of grace periods; the readers read (and take signals) until they are over.
    constexpr int readers = 2;
    constexpr int rounds = 3000;
    std::atomic<bool> go{false}, over{false};
    std::vector<std::thread> threads;
    std::atomic<pid_t> tids[readers] = {};
    for (int k = 0; k < readers; ++k) {
        threads.emplace_back([&, k] {
            tids[k] = thread_task_traits::self();
            while (!go.load()) std::this_thread::yield();
            for (int i = 0; !over.load(std::memory_order_relaxed); ++i) {
                t.read_once(i % 8);
                t.sections.fetch_add(1, std::memory_order_relaxed);
            }
        });
    }
    for (auto& tid : tids) wait_until([&] { return tid.load() != 0; });
    {
        thread_timer t0(tids[0], 20'000), t1(tids[1], 20'000);  // a signal every 20 us to each reader
        go = true;
        t.write_rounds(rounds);
        // On a loaded machine the readers may not have run at all during those rounds: go on
        // until signal handlers have read during grace periods (bounded; the checks below fail
        // if they never do).
        for (int extra = 0; t.handler_sections.load() < 100 && extra < 200'000; ++extra) t.write_rounds(1);
        over = true;
    }
    for (auto& th : threads) th.join();
    ::sigaction(SIGUSR1, &old, nullptr);
    INFO(t.sections.load() << " sections, " << t.handler_sections.load() << " in signal handlers, " << t.grace_periods.load()
                           << " grace periods");
    CHECK(t.handler_sections.load() > 0);
    CHECK(t.grace_periods.load() > 0);
    CHECK(t.violations.load() == 0);
}

TEST_CASE("readers in churning threads, some exiting inside a section, with concurrent grace periods", "[rcu][torture][exit]") {
    torture t;
    constexpr int generations = 200;
    constexpr int threads_per_generation = 4;
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        while (!stop.load()) t.write_rounds(1);
    });
    for (int gen = 0; gen < generations; ++gen) {
        std::vector<std::thread> threads;
        for (int k = 0; k < threads_per_generation; ++k) {
            threads.emplace_back([&t, gen, k] {
                for (int i = 0; i < 50; ++i) t.read_once(i % 16);
                if ((gen + k) % 3 == 0) {
                    detail::rcu_read_lock();
                    ::pthread_exit(nullptr);  // leaves with a section open
                }
            });
        }
        for (auto& th : threads) th.join();
    }
    stop = true;
    writer.join();
    detail::synchronize();  // nothing left open blocks a grace period
    CHECK(t.violations.load() == 0);
    CHECK(t.grace_periods.load() > 0);
}

TEST_CASE("grace periods with fences instead of membarrier protect readers too", "[rcu][torture][fallback]") {
    auto r = test::run_bounded([] {
        // A child of this single-threaded moment may switch modes: no reader runs yet.
        detail::rcu::global.mode.store(detail::rcu::mode_fence, std::memory_order_relaxed);
        torture t;
        std::atomic<bool> stop{false};
        std::vector<std::thread> readers;
        for (int k = 0; k < 2; ++k) {
            readers.emplace_back([&] {
                while (!stop.load(std::memory_order_relaxed)) t.read_once(64);
            });
        }
        t.write_rounds(5000);
        stop = true;
        for (auto& th : readers) th.join();
        return t.violations.load() == 0 ? 0 : 1;
    });
    CHECK_FALSE(r.hung);
    CHECK(r.ok());
}

TEST_CASE("a fork child can run grace periods although other threads were inside sections", "[rcu][fork]") {
    std::atomic<bool> in{false}, stop{false};
    std::thread reader([&] {
        read_section rs;
        in = true;
        wait_until([&] { return stop.load(); });
    });
    wait_until([&] { return in.load(); });
    auto r = test::run_bounded([] {
        auto* h = new H;
        C* c = nullptr;
        if (h->mkdir(h->top(), "a", &c) || h->rmdir(*c)) return 2;
        delete h;  // a grace period: the reader's record does not exist in the child
        detail::synchronize();
        return 0;
    });
    stop = true;
    reader.join();
    CHECK_FALSE(r.hung);
    CHECK(r.ok());
}

TEST_CASE("a fork child does not inherit the forking thread's bindings", "[rcu][fork][tasks]") {
    H h;
    C* c = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "b", &c));
    REQUIRE_FALSE(h.attach_self(*c));  // the forking thread is bound
    // Another thread holds the manage lock at fork time.
    std::atomic<bool> held{false}, release{false};
    std::thread holder([&] {
        auto lock = h.manage_lock();
        held = true;
        wait_until([&] { return release.load(); });
    });
    wait_until([&] { return held.load(); });
    auto r = test::run_bounded([&] {
        // The child's thread is a new task: in no container of an inherited hierarchy; and its
        // exit (std::exit runs thread-exit work) must not take the inherited, locked manage lock.
        std::exit(&h.current() == &h.top() ? 0 : 1);
        return 1;
    });
    release = true;
    holder.join();
    CHECK(&h.current() == c);
    REQUIRE_FALSE(h.exit(thread_task_traits::self()));
    CHECK_FALSE(r.hung);
    CHECK(r.ok());
}

TEST_CASE("a release agent that moves a thread during teardown never writes into another hierarchy's cache slot",
          "[rcu][bindings][teardown][release]") {
    // Serials are consecutive here, so `c_side` uses the same thread-local cache slot as `a`.
    auto* a = new H;
    std::vector<std::unique_ptr<H>> fillers;
    for (std::size_t i = 1; i < detail::fast_bindings; ++i) fillers.push_back(std::make_unique<H>());
    auto* c_side = new H;
    C *g = nullptr, *x = nullptr, *r = nullptr, *tmp = nullptr, *mine = nullptr;
    REQUIRE_FALSE(a->mkdir(a->top(), "g", &g));
    REQUIRE_FALSE(a->mkdir(a->top(), "x", &x));
    REQUIRE_FALSE(a->mkdir(a->top(), "r", &r));
    REQUIRE_FALSE(a->set_notify_on_release(*r, true));
    REQUIRE_FALSE(a->mkdir(*r, "tmp", &tmp));
    REQUIRE_FALSE(c_side->mkdir(c_side->top(), "c", &mine));
    std::atomic<pid_t> tid{0};
    std::atomic<int> step{0};
    std::atomic<bool> agent_moved{false};
    a->set_release_agent([&](std::string const&) {
        wait_until([&] { return step.load() >= 1; });  // teardown has begun
        pause_ms(200);                                  // and the thread has bound itself to c_side
        agent_moved = !a->attach(tid.load(), *x);       // an agent that reorganises its hierarchy
    });
    C* seen = nullptr;
    std::thread t([&] {
        if (a->attach_self(*g)) std::abort();
        tid = thread_task_traits::self();
        wait_until([&] { return step.load() >= 1; });
        pause_ms(50);
        if (c_side->attach_self(*mine)) std::abort();
        wait_until([&] { return step.load() >= 2; });
        read_section rs;
        seen = &c_side->current();
    });
    wait_until([&] { return tid.load() != 0; });
    REQUIRE_FALSE(a->rmdir(*tmp));  // /r is released: the agent is queued
    step = 1;
    delete a;
    step = 2;
    t.join();
    CHECK(agent_moved.load());
    CHECK(seen == mine);
    fillers.clear();
    delete c_side;
}

TEST_CASE("a release agent that removes containers while its hierarchy is destroyed inside a read section does not deadlock",
          "[rcu][deadlock][teardown][release]") {
    auto r = test::run_bounded([] {
        auto* h = new H;
        for (std::size_t i = 0; i + 2 < H::reclaim_batch; ++i) {  // the agent's rmdir completes a reclaim batch
            C* c = nullptr;
            if (h->mkdir(h->top(), "x", &c) || h->rmdir(*c)) return 2;
        }
        C *rel = nullptr, *tmp = nullptr;
        if (h->mkdir(h->top(), "r", &rel) || h->set_notify_on_release(*rel, true) || h->mkdir(*rel, "tmp", &tmp)) return 3;
        std::atomic<bool> in_section{false};
        std::atomic<bool> removed{false};
        h->set_release_agent([&](std::string const& path) {
            wait_until([&] { return in_section.load(); });
            pause_ms(50);
            C* c = nullptr;
            if (!h->lookup(path, c)) removed = !h->rmdir(*c);  // the usual agent: remove what was released
        });
        if (h->rmdir(*tmp)) return 4;
        {
            read_section rs;  // reading another hierarchy, say
            in_section = true;
            delete h;  // waits for the agent, which must not wait for this section
        }
        return removed.load() ? 0 : 5;
    });
    CHECK_FALSE(r.hung);
    CHECK(r.ok());
}

TEST_CASE("a fork child made while the membarrier mode was being decided can run grace periods", "[rcu][fork]") {
    auto r = test::run_bounded([] {
        // In this single-threaded child, pretend another thread is deciding, then fork again.
        detail::rcu::global.mode.store(detail::rcu::mode_deciding, std::memory_order_relaxed);
        auto grandchild = test::run_bounded([] {
            detail::synchronize();
            return 0;
        });
        return grandchild.ok() ? 0 : 1;
    });
    CHECK_FALSE(r.hung);
    CHECK(r.ok());
}

TEST_CASE("in a fork child, a new binding never shares a cache slot that an inherited hierarchy still writes",
          "[rcu][fork][bindings]") {
    auto r = test::run_bounded([] {
        auto* inherited = new H;
        C *g = nullptr, *x = nullptr;
        if (inherited->mkdir(inherited->top(), "g", &g) || inherited->mkdir(inherited->top(), "x", &x)) return 2;
        if (inherited->attach_self(*g)) return 3;  // this (single-threaded) process binds itself
        pid_t const parent = thread_task_traits::self();
        auto child = test::run_bounded([&] {
            std::vector<std::unique_ptr<H>> fillers;
            for (std::size_t i = 1; i < detail::fast_bindings; ++i) fillers.push_back(std::make_unique<H>());
            auto* own = new H;  // the same cache slot as `inherited`
            C* mine = nullptr;
            if (own->mkdir(own->top(), "mine", &mine) || own->attach_self(*mine)) return 4;
            if (inherited->attach(parent, *x)) return 5;  // moves the parent's record: stores into its slot
            read_section rs;
            return &own->current() == mine ? 0 : 1;
        });
        (void)inherited->exit(parent);
        return child.ok() ? 0 : 1;
    });
    CHECK_FALSE(r.hung);
    CHECK(r.ok());
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
TEST_CASE("a thread without a reader record that exits inside a section does not block grace periods", "[rcu][exit]") {
    auto r = test::run_bounded([] {
        for (auto& rec : detail::rcu::global.first.readers) rec.claimed.store(true);  // as if 63 threads held them
        std::atomic<int> phase{0};
        std::atomic<bool> anonymous{false};
        std::thread t([&] {
            wait_until([&] { return phase.load() == 1; });
            detail::rcu_read_lock();  // no record to claim, no memory for more: an anonymous section
            anonymous = detail::rcu::tls_anonymous_nesting != 0;
            phase = 2;
            wait_until([&] { return phase.load() == 3; });
            ::pthread_exit(nullptr);
        });
        rlimit saved{};
        ::getrlimit(RLIMIT_AS, &saved);
        rlimit const none{1, saved.rlim_max};  // every new mapping fails
        ::setrlimit(RLIMIT_AS, &none);
        phase = 1;
        wait_until([&] { return phase.load() == 2; });
        ::setrlimit(RLIMIT_AS, &saved);
        phase = 3;
        t.join();
        detail::synchronize();
        return anonymous.load() ? 0 : 2;
    });
    CHECK_FALSE(r.hung);
    CHECK(r.exit_code == 0);
}
#endif

TEST_CASE("a signal handler that interrupts a thread's first section never leaks a reader record", "[rcu][signals]") {
    struct sigaction sa{};
    sa.sa_handler = [](int) { read_section rs; };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction old{};
    REQUIRE(::sigaction(SIGUSR1, &sa, &old) == 0);
    auto claimed = [] {
        int n = 0;
        detail::rcu::for_each_reader([&](detail::rcu::reader& rec) { n += rec.claimed.load() ? 1 : 0; });
        return n;
    };
    { read_section rs; }  // this thread's own record
    int const before = claimed();
    for (int i = 0; i < 500; ++i) {  // the window is a few instructions: this finds it in some runs, not all
        std::atomic<pid_t> tid{0};
        std::atomic<bool> go{false}, done{false}, quiet{false};
        std::thread t([&] {
            tid = static_cast<pid_t>(::syscall(SYS_gettid));
            while (!go.load()) {
                // spin: a sleep that signals keep interrupting may never end
            }
            { read_section rs; }  // the first section: claims a record while signals arrive
            done = true;
            wait_until([&] { return quiet.load(); });  // signals still in flight arrive before the exit
        });
        wait_until([&] { return tid.load() != 0; });
        go = true;
        while (!done.load()) {
            ::syscall(SYS_tgkill, ::getpid(), tid.load(), SIGUSR1);
            ::sched_yield();  // on a busy machine, let the thread run between signals
        }
        quiet = true;
        t.join();
    }
    ::sigaction(SIGUSR1, &old, nullptr);
    CHECK(claimed() == before);
}
