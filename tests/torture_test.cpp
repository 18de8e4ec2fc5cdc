// A torture test in the manner of liburcu's: everything that touches the read path at once, for a
// fixed number of rounds (not a time), run in every CI configuration, ThreadSanitizer and
// AddressSanitizer included. Each round: readers that attached themselves and are moved by another
// thread through containers that are then removed (more than a reclaim batch per round, so memory
// is freed while they read), whose threads take signals whose handlers read their container too;
// threads that attach themselves and exit, some with a read section left open; a fork child that
// runs a hierarchy of its own; containers released to an agent that reads back; and at the end
// the hierarchy torn down, every other round from inside a read section. A reader that saw a
// freed container fails under AddressSanitizer, or reads a name that is not one of ours.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <csignal>

using namespace containers;
using test::C;
using test::H;

namespace {

std::atomic<H*> g_hierarchy{nullptr};
std::atomic<long> g_handler_reads{0};
std::atomic<long> g_bad_names{0};

// The names this test gives containers: "g0".."g3", "t", "rel", or the top's empty name.
bool one_of_ours(C const& c) noexcept {
    std::string_view const n = c.name();
    return n.empty() || n == "t" || n == "rel" || (n.size() == 2 && n[0] == 'g' && n[1] >= '0' && n[1] <= '3') ||
           (n.size() == 2 && n[0] == 'm' && n[1] >= '0' && n[1] <= '9');
}

void reading_handler(int) {
    int const saved = errno;
    read_section rs;
    if (H* h = g_hierarchy.load(std::memory_order_acquire)) {
        if (!one_of_ours(h->current())) g_bad_names.fetch_add(1, std::memory_order_relaxed);
        g_handler_reads.fetch_add(1, std::memory_order_relaxed);
    }
    errno = saved;
}

// Fork a child that runs a hierarchy of its own; false when it failed or hung (killed).
bool fork_child_runs_own_hierarchy() {
    std::fflush(nullptr);
    pid_t const pid = ::fork();
    if (pid == 0) {
        auto* own = new H;
        C* c = nullptr;
        int rc = own->mkdir(own->top(), "child", &c) ? 1 : 0;
        if (rc == 0 && own->rmdir(*c)) rc = 1;
        delete own;
        ::_exit(rc);
    }
    if (pid < 0) return false;
    for (int i = 0; i < 20'000; ++i) {  // a deadlock detector (20 s), not a speed requirement
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return false;
}

}  // namespace

TEST_CASE("torture: signals, forks, exits inside sections, teardown and release agents, for a fixed number of rounds",
          "[stress][torture]") {
    constexpr int rounds = 6;
    constexpr int groups = 4;
    constexpr int reads_per_reader = 20'000;
    constexpr int moves = static_cast<int>(H::reclaim_batch) + 64;  // removals per round: a batch is freed mid-round
    constexpr int self_attachers = 24;
    constexpr int releases = 40;
    constexpr int forks = 2;

    struct sigaction sa{};
    sa.sa_handler = reading_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction old{};
    REQUIRE(::sigaction(SIGUSR2, &sa, &old) == 0);

    // Catch2 2.x assertions are not thread-safe: the threads count failures and keep the line of
    // the first, which the test reports.
    std::atomic<int> failures{0};
    std::atomic<int> first_failed_line{0};
    auto expect_at = [&](bool ok, int line) {
        if (ok) return;
        int none = 0;
        first_failed_line.compare_exchange_strong(none, line);
        failures++;
    };
#define expect(ok) expect_at((ok), __LINE__)
    long released_total = 0;
    for (int round = 0; round < rounds; ++round) {
        auto* h = new H;
        std::vector<C*> fixed;
        for (int i = 0; i < groups; ++i) {
            C* c = nullptr;
            REQUIRE_FALSE(h->mkdir(h->top(), "g" + std::to_string(i), &c));
            fixed.push_back(c);
        }
        C* rel = nullptr;
        REQUIRE_FALSE(h->mkdir(h->top(), "rel", &rel));
        REQUIRE_FALSE(h->set_notify_on_release(*rel, true));
        std::atomic<long> released{0};
        h->set_release_agent([&released, h](std::string const& path) {
            read_section rs;  // the agent reads back into its hierarchy
            C* c = nullptr;
            if (path == "/rel" && !h->lookup(path, c)) released.fetch_add(1);
        });
        g_hierarchy.store(h, std::memory_order_release);

        std::vector<std::unique_ptr<test::parked_thread>> workers;
        for (int i = 0; i < groups; ++i) {
            workers.push_back(std::make_unique<test::parked_thread>());
            REQUIRE_FALSE(h->attach(workers.back()->tid(), *fixed[i]));
        }
        std::vector<std::thread> threads;
        std::atomic<pid_t> reader_tids[2] = {};
        std::atomic<int> readers_done{0};
        std::atomic<bool> mover_done{false};
        for (int r = 0; r < 2; ++r) {
            threads.emplace_back([&, r] {
                expect(!h->attach_self(*fixed[r]));
                reader_tids[r] = thread_task_traits::self();
                sigevent sev{};
                sev.sigev_notify = SIGEV_THREAD_ID;
                sev.sigev_signo = SIGUSR2;
                sev._sigev_un._tid = thread_task_traits::self();
                timer_t timer{};
                bool const armed = ::timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0;
                if (armed) {
                    itimerspec its{{0, 50'000}, {0, 50'000}};
                    ::timer_settime(timer, 0, &its, nullptr);
                }
                for (int i = 0; i < reads_per_reader; ++i) {
                    read_section rs;
                    for (auto const& w : workers) {
                        C& c = h->container_of(w->tid());
                        expect(!c.removed() && c.parent() == &h->top());
                    }
                    C& mine = h->current();  // moved by the mover, possibly removed meanwhile
                    expect(one_of_ours(mine) && mine.depth() == 1);
                }
                if (armed) ::timer_delete(timer);
                readers_done.fetch_add(1);
                while (!mover_done.load()) std::this_thread::yield();  // stay movable until the mover stops
            });
        }
        threads.emplace_back([&] {  // the mover: readers through containers it then removes
            for (auto& tid : reader_tids) {
                while (tid.load() == 0) std::this_thread::yield();
            }
            pid_t const ids[] = {reader_tids[0].load(), reader_tids[1].load()};
            for (int i = 0; i < moves || readers_done.load() < 2; ++i) {
                C* m = nullptr;
                if (h->mkdir(h->top(), test::named("m", i % 10), &m)) {
                    expect(false);
                    continue;
                }
                expect(!h->attach(ids, *m));
                expect(!h->attach(ids[0], *fixed[0]));
                expect(!h->attach(ids[1], *fixed[1]));
                expect(!h->rmdir(*m));
            }
            mover_done = true;
        });
        threads.emplace_back([&, round] {  // self-attachers, a third of them exiting inside a section
            for (int i = 0; i < self_attachers; ++i) {
                std::thread([&, i, round] {
                    expect(!h->attach_self(*fixed[i % groups]));
                    {
                        read_section rs;
                        expect(&h->current() == fixed[i % groups]);
                    }
                    if ((i + round) % 3 == 0) {
                        detail::rcu_read_lock();
                        ::pthread_exit(nullptr);
                    }
                }).join();
            }
        });
        threads.emplace_back([&] {  // containers released to the agent
            for (int i = 0; i < releases; ++i) {
                C* t = nullptr;
                expect(!h->mkdir(*rel, "t", &t));
                expect(!h->rmdir(*t));
            }
        });
        for (auto& t : threads) t.join();
        (void)h->flush_release_agent();
        // Forks while other threads are inside read sections (and bound to the hierarchy). Not
        // while other threads allocate: the sanitizers' allocators are not fork-safe (a child
        // can inherit their lock held), which is theirs to fix, not this library's.
        {
            std::atomic<int> inside{0};
            std::atomic<bool> release{false};
            std::vector<std::thread> holders;
            for (int k = 0; k < 2; ++k) {
                holders.emplace_back([&, k] {
                    expect(!h->attach_self(*fixed[k]));
                    read_section rs;
                    inside.fetch_add(1);
                    while (!release.load()) std::this_thread::yield();
                });
            }
            while (inside.load() < 2) std::this_thread::yield();
            for (int i = 0; i < forks; ++i) expect(fork_child_runs_own_hierarchy());
            release = true;
            for (auto& t : holders) t.join();
        }
        released_total += released.load();
        g_hierarchy.store(nullptr, std::memory_order_release);
        {
            auto lock = h->manage_lock();
            expect(h->task_count() == static_cast<std::size_t>(groups));  // the self-attachers and readers left
        }
        workers.clear();
        if (round % 2 == 0) {
            read_section rs;  // teardown from inside a section (another hierarchy being read)
            delete h;
        } else {
            delete h;
        }
    }
    ::sigaction(SIGUSR2, &old, nullptr);
#undef expect
    INFO(g_handler_reads.load() << " reads in signal handlers, " << released_total << " releases delivered; first failed check at line "
                                << first_failed_line.load());
    CHECK(failures.load() == 0);
    CHECK(g_bad_names.load() == 0);
    CHECK(released_total > 0);
    CHECK(g_handler_reads.load() > 0);
}
