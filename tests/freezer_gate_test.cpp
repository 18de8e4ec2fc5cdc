// freezer: what a frozen thread may hold and what the thaw may not need. A thaw completes while
// a thread that holds the manage lock waits for a lock of libc's held by a frozen thread; a
// thread inside a library-internal mutex section is not parked until it leaves it; each freeze is a
// new generation of a thread's gate, and a thread parked on it holds a reference.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>

using namespace containers;
using test::C;
using test::H;

namespace {

// Polls `done` every millisecond for up to `ms`.
bool within(int ms, std::function<bool()> const& done) {
    for (int i = 0; i < ms; ++i) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
}

// Runs `f` on leaving the scope, a failed REQUIRE included (releases and joins a test's thread).
class finally {
public:
    explicit finally(std::function<void()> f) : f_(std::move(f)) {}
    ~finally() { f_(); }
    finally(finally const&) = delete;
    finally& operator=(finally const&) = delete;

private:
    std::function<void()> f_;
};

// Runs `body` in a forked child that is killed by SIGALRM after `seconds`: a deadlock there ends
// as a failure here instead of hanging the test. The child's exit status, or 128 + the signal.
int in_child_with_deadline(int seconds, std::function<int()> const& body) {
    std::fflush(nullptr);
    pid_t const pid = ::fork();
    if (pid == 0) {
        ::signal(SIGALRM, SIG_DFL);
        ::alarm(static_cast<unsigned>(seconds));
        ::_exit(body());
    }
    REQUIRE(pid > 0);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) REQUIRE(errno == EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("a thaw completes while a thread holding the manage lock waits for a libc lock held by a frozen thread",
          "[freezer][threads][thaw]") {
    // The child: T holds a FILE's lock (as a thread inside malloc holds its arena's) and is
    // frozen; W takes the manage lock (as mkdir does) and then waits for that FILE's lock. The
    // thaw must not need the manage lock. 0: thawed and everyone finished; 128 + SIGALRM: the
    // thaw waited forever.
    int const rc = in_child_with_deadline(10, [] {
        H h;
        subsystem_handle<freezer, H> fz;
        C* cold = nullptr;
        if (h.register_subsystem(fz) || h.mkdir(h.top(), "cold", &cold)) return 1;
        std::FILE* f = std::fopen("/dev/null", "w");
        if (f == nullptr) return 1;
        std::atomic<pid_t> tid{0};
        std::atomic<int> step{0};
        std::atomic<bool> stop{false};
        std::thread t([&] {
            ::flockfile(f);
            tid = thread_task_traits::self();
            while (!stop.load(std::memory_order_relaxed)) {
            }
            ::funlockfile(f);
        });
        while (tid == 0) std::this_thread::yield();
        if (h.attach(tid.load(), *cold)) return 1;
        if (fz.subsystem().set_state(*cold, freezer_state::frozen)) return 1;
        if (!within(5000, [&] { return fz.subsystem().get_state(*cold) == freezer_state::frozen; })) return 2;
        std::thread w([&] {
            auto lock = h.manage_lock();
            step = 1;
            ::flockfile(f);  // waits for the frozen thread, holding the manage lock
            ::funlockfile(f);
            step = 2;
        });
        while (step == 0) std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (fz.subsystem().set_state(*cold, freezer_state::thawed)) return 3;  // waited forever before the gate lock
        stop = true;
        t.join();
        w.join();
        std::fclose(f);
        return step == 2 && fz.subsystem().get_state(*cold) == freezer_state::thawed ? 0 : 4;
    });
    CHECK(rc == 0);
    CHECK(rc != 128 + SIGALRM);  // the deadlock, said plainly
}

TEST_CASE("a thread inside a library-internal mutex section is not frozen until it leaves it", "[freezer][threads][locks]") {
    H h;
    subsystem_handle<freezer, H> fz;
    C* cold = nullptr;
    REQUIRE_FALSE(h.register_subsystem(fz));
    REQUIRE_FALSE(h.mkdir(h.top(), "cold", &cold));
    std::atomic<int> phase{0};  // 1: inside the section; 2: the handler left its note; 3: leave
    std::atomic<bool> left{false};
    std::atomic<pid_t> tid{0};
    std::thread t([&] {
        tid = thread_task_traits::self();
        {
            detail::no_freeze section;  // as around the cell pool's, the registry's, cpuset's mutexes
            phase = 1;
            // The signal came and the handler put the park off (it left a note to pay on leaving).
            while (detail::tls_after_last_unlock.load(std::memory_order_relaxed) == nullptr && phase != 3) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            if (phase != 3) phase = 2;
            while (phase != 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }  // parks here
        left = true;
    });
    finally release([&] {
        phase = 3;
        (void)fz.subsystem().set_state(*cold, freezer_state::thawed);
        t.join();
    });
    REQUIRE(within(20000, [&] { return tid != 0; }));
    REQUIRE_FALSE(h.attach(tid.load(), *cold));
    REQUIRE(within(20000, [&] { return phase == 1; }));
    REQUIRE_FALSE(fz.subsystem().set_state(*cold, freezer_state::frozen));
    bool const noted = within(20000, [&] { return phase == 2; });
    CHECK(noted);
    CHECK(fz.subsystem().get_state(*cold) == freezer_state::freezing);  // not parked inside
    phase = 3;
    CHECK(within(20000, [&] { return fz.subsystem().get_state(*cold) == freezer_state::frozen; }));
    CHECK_FALSE(left);
    REQUIRE_FALSE(fz.subsystem().set_state(*cold, freezer_state::thawed));
    REQUIRE(within(20000, [&] { return left.load(); }));
}

namespace {

// The pool index of the frozen gate of thread `tid` (the freezer's map is private), or -1.
long frozen_gate_of(pid_t tid) {
    std::lock_guard g(detail::freezing::pool.mutex);
    for (std::uint32_t i = 0; i < detail::freezing::pool.used; ++i) {
        detail::freezing::cell* c = detail::freezing::find(i);
        if (c->tid == tid && detail::freezing::is_frozen(c->word.load())) return i;
    }
    return -1;
}

}  // namespace

TEST_CASE("each freeze starts a new generation of a thread's gate, and a thread parked after putting it off holds its gate",
          "[freezer][threads][gate]") {
    H h;
    subsystem_handle<freezer, H> fz;
    C* cold = nullptr;
    REQUIRE_FALSE(h.register_subsystem(fz));
    REQUIRE_FALSE(h.mkdir(h.top(), "cold", &cold));
    std::atomic<int> phase{0};  // 1: it is in a read section; 2: leave it (and park)
    std::atomic<bool> left{false};
    std::atomic<pid_t> tid{0};
    std::thread t([&] {
        tid = thread_task_traits::self();
        {
            read_section rs;
            phase = 1;
            while (phase != 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }  // pays the freeze it owes: parks here
        left = true;
    });
    finally release([&] {
        phase = 2;
        (void)fz.subsystem().set_state(*cold, freezer_state::thawed);
        t.join();
    });
    REQUIRE(within(20000, [&] { return phase == 1; }));
    REQUIRE_FALSE(h.attach(tid.load(), *cold));
    REQUIRE_FALSE(fz.subsystem().set_state(*cold, freezer_state::frozen));
    long const index = frozen_gate_of(tid);
    REQUIRE(index >= 0);
    detail::freezing::cell* c = detail::freezing::find(static_cast<std::uint32_t>(index));
    std::uint32_t const first = c->word.load();
    // A thaw and a freeze again: a park (or a reader of `parked`) from the first freeze must not
    // match the second, so the words differ.
    REQUIRE_FALSE(fz.subsystem().set_state(*cold, freezer_state::thawed));
    REQUIRE_FALSE(fz.subsystem().set_state(*cold, freezer_state::frozen));
    CHECK(c->word.load() != first);
    CHECK(detail::freezing::is_frozen(c->word.load()));
    // The handler found it in a read section: it owes the freeze, and pays it on leaving. Parked
    // that way it holds a reference on its gate, so that the gate is not handed to another thread
    // while it may still write to it.
    REQUIRE(within(20000, [&] { return c->pending.load() == 0; }));  // both signals handled: owed
    phase = 2;
    // (No state read before it parks: a read would send the signal again.)
    REQUIRE(within(20000, [&] { return c->parked.load() == c->word.load(); }));
    CHECK(c->pending.load() == 1);
    CHECK(fz.subsystem().get_state(*cold) == freezer_state::frozen);
    CHECK_FALSE(left);
    REQUIRE_FALSE(fz.subsystem().set_state(*cold, freezer_state::thawed));
    REQUIRE(within(20000, [&] { return left.load(); }));
}
