// A torture test in the manner of liburcu's: everything that touches the read path at once, for a
// fixed number of rounds (not a time), run in every CI configuration, ThreadSanitizer and
// AddressSanitizer included. Each round: readers whose threads take signals whose handlers read
// too; threads that attach themselves and exit, some with a read section left open; a fork child
// that runs a hierarchy of its own; containers released to an agent that reads back; and at the
// end the hierarchy torn down, every other round from inside a read section.
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

void reading_handler(int) {
    int const saved = errno;
    read_section rs;
    if (H* h = g_hierarchy.load(std::memory_order_acquire)) {
        C& c = h->current();
        if (c.depth() < 1000) g_handler_reads.fetch_add(1, std::memory_order_relaxed);
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
    constexpr int rounds = 8;
    constexpr int groups = 4;
    constexpr int reads_per_reader = 20'000;
    constexpr int self_attachers = 24;
    constexpr int releases = 40;
    constexpr int forks = 2;

    struct sigaction sa{};
    sa.sa_handler = reading_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction old{};
    REQUIRE(::sigaction(SIGUSR2, &sa, &old) == 0);

    std::atomic<int> failures{0};
    auto expect = [&](bool ok) {
        if (!ok) failures++;
    };
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
        for (int r = 0; r < 2; ++r) {
            threads.emplace_back([&] {
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
                    expect(&h->current() == &h->top());
                }
                if (armed) ::timer_delete(timer);
            });
        }
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
        threads.emplace_back([&] {
            for (int i = 0; i < forks; ++i) expect(fork_child_runs_own_hierarchy());
        });
        for (auto& t : threads) t.join();
        h->flush_release_agent();
        released_total += released.load();
        g_hierarchy.store(nullptr, std::memory_order_release);
        {
            auto lock = h->manage_lock();
            expect(h->task_count() == static_cast<std::size_t>(groups));  // the self-attachers left
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
    INFO(g_handler_reads.load() << " reads in signal handlers, " << released_total << " releases delivered");
    CHECK(failures.load() == 0);
    CHECK(released_total > 0);
    CHECK(g_handler_reads.load() > 0);
}
