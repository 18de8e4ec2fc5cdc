// freezer: the real effect on threads of this process. A frozen thread does not run (its CPU
// clock stops, /proc shows it sleeping) until it is thawed; moves in and out; threads that exit
// while frozen or while being frozen; churn for the sanitizers.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <functional>
#include <pthread.h>
#include <thread>
#include <vector>

using namespace containers;
using test::C;
using test::H;

namespace {

// Waits (bounded) until `done` holds; false if it never did.
bool eventually(std::function<bool()> const& done) {
    for (int i = 0; i < 20000; ++i) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
}

// A thread that spins until told to stop, without system calls.
class busy_thread {
public:
    busy_thread() {
        thread_ = std::thread([this] {
            tid_.store(thread_task_traits::self());
            while (!stop_.load(std::memory_order_relaxed)) spins_.fetch_add(1, std::memory_order_relaxed);
        });
        while (tid_.load() == 0) std::this_thread::yield();
        REQUIRE(::pthread_getcpuclockid(thread_.native_handle(), &clock_) == 0);
    }
    ~busy_thread() { join(); }
    void join() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    pid_t tid() const { return tid_.load(); }
    // CPU time consumed, ns.
    long long cpu_ns() const {
        timespec ts{};
        REQUIRE(::clock_gettime(clock_, &ts) == 0);
        return static_cast<long long>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
    }
    std::uint64_t spins() const { return spins_.load(std::memory_order_relaxed); }

private:
    std::atomic<pid_t> tid_{0};
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> spins_{0};
    clockid_t clock_{};
    std::thread thread_;
};

struct fixture {
    H h;
    subsystem_handle<freezer, H> fz;
    C* cold = nullptr;
    C* warm = nullptr;
    fixture() {
        REQUIRE_FALSE(h.register_subsystem(fz));
        REQUIRE_FALSE(h.mkdir(h.top(), "cold", &cold));
        REQUIRE_FALSE(h.mkdir(h.top(), "warm", &warm));
    }
    freezer& f() { return fz.subsystem(); }
    bool frozen(C& c) { return f().get_state(c) == freezer_state::frozen; }
};

}  // namespace

TEST_CASE("a frozen busy thread stops running and sleeps until it is thawed", "[freezer][threads]") {
    busy_thread t;  // first: the fixture's freezer thaws it before it is joined, even on failure
    fixture x;
    REQUIRE_FALSE(x.h.attach(t.tid(), *x.cold));
    REQUIRE_FALSE(x.f().set_state(*x.cold, freezer_state::frozen));
    REQUIRE(eventually([&] { return x.frozen(*x.cold); }));
    CHECK(x.f().get_state(*x.cold) == freezer_state::frozen);
    CHECK(test::thread_state(t.tid()) == 'S');
    long long const before = t.cpu_ns();
    std::uint64_t const spins = t.spins();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(t.cpu_ns() - before < 1'000'000);  // not a speed: a stopped clock (1 ms for the wake-up path)
    CHECK(t.spins() == spins);
    REQUIRE_FALSE(x.f().set_state(*x.cold, freezer_state::thawed));
    CHECK(x.f().get_state(*x.cold) == freezer_state::thawed);
    REQUIRE(eventually([&] { return t.cpu_ns() - before > 50'000'000 && t.spins() > spins; }));
}

TEST_CASE("a thread moved into a frozen group is frozen, and thawed when moved out", "[freezer][threads][attach]") {
    busy_thread t;  // first: the fixture's freezer thaws it before it is joined, even on failure
    fixture x;
    REQUIRE_FALSE(x.f().set_state(*x.cold, freezer_state::frozen));
    REQUIRE_FALSE(x.h.attach(t.tid(), *x.cold));
    REQUIRE(eventually([&] { return x.frozen(*x.cold); }));
    std::uint64_t const spins = t.spins();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(t.spins() == spins);
    REQUIRE_FALSE(x.h.attach(t.tid(), *x.warm));
    CHECK(x.f().get_state(*x.cold) == freezer_state::frozen);  // empty now
    REQUIRE(eventually([&] { return t.spins() > spins; }));
    // Into a child of a frozen group: frozen through parent_freezing.
    C* child = nullptr;
    REQUIRE_FALSE(x.h.mkdir(*x.cold, "child", &child));
    REQUIRE_FALSE(x.h.attach(t.tid(), *child));
    REQUIRE(eventually([&] { return x.frozen(*x.cold) && x.frozen(*child); }));
    CHECK(test::thread_state(t.tid()) == 'S');
    // Leaving the hierarchy thaws it.
    REQUIRE_FALSE(x.h.exit(t.tid()));
    std::uint64_t const later = t.spins();
    REQUIRE(eventually([&] { return t.spins() > later; }));
}

TEST_CASE("a group stays FREEZING while a thread cannot be frozen, and becomes FROZEN when it exits", "[freezer][threads][exit]") {
    busy_thread runs;  // freezes at once
    fixture x;
    std::atomic<pid_t> tid{0};
    std::atomic<bool> go{false};
    std::thread blocker([&] {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, x.f().signal());
        ::pthread_sigmask(SIG_BLOCK, &s, nullptr);  // as the release agent's thread does
        tid = thread_task_traits::self();
        while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    REQUIRE(eventually([&] { return tid != 0; }));
    pid_t const ids[] = {runs.tid(), tid.load()};
    REQUIRE_FALSE(x.h.attach(std::span<pid_t const>(ids), *x.cold));
    REQUIRE_FALSE(x.f().set_state(*x.cold, freezer_state::frozen));
    REQUIRE(eventually([&] { return test::thread_state(runs.tid()) == 'S'; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(x.f().get_state(*x.cold) == freezer_state::freezing);
    std::string out;
    REQUIRE_FALSE(fs::read(x.h, "/cold/freezer.state", out));
    CHECK(out == "FREEZING\n");
    go = true;
    blocker.join();  // it exits with the signal pending: it never ran the handler
    REQUIRE(eventually([&] { return x.frozen(*x.cold); }));
    REQUIRE_FALSE(x.f().set_state(*x.cold, freezer_state::thawed));
}

TEST_CASE("a thread that freezes its own group, or joins a frozen one, is frozen when the call returns", "[freezer][threads][self]") {
    fixture x;
    std::atomic<int> step{0};
    std::atomic<pid_t> tid{0};
    std::error_code write_ec, attach_ec;
    std::thread self([&] {
        tid = thread_task_traits::self();
        REQUIRE_FALSE(x.h.attach_self(*x.cold));
        write_ec = fs::write(x.h, "/cold/freezer.state", "FROZEN");  // parks on return
        step = 1;
        attach_ec = x.h.attach_self(*x.warm);  // warm is frozen by now: parks again on return
        step = 2;
    });
    REQUIRE(eventually([&] { return tid != 0 && x.frozen(*x.cold); }));
    CHECK(step == 0);
    CHECK(test::thread_state(tid) == 'S');
    REQUIRE_FALSE(x.f().set_state(*x.warm, freezer_state::frozen));
    REQUIRE_FALSE(x.f().set_state(*x.cold, freezer_state::thawed));
    REQUIRE(eventually([&] { return step >= 1 && x.frozen(*x.warm) && &x.h.container_of(tid) == x.warm; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(step == 1);
    REQUIRE_FALSE(x.f().set_state(*x.warm, freezer_state::thawed));
    self.join();
    CHECK_FALSE(write_ec);
    CHECK_FALSE(attach_ec);
    CHECK(step == 2);
}

TEST_CASE("freezing and thawing while threads join, leave and exit keeps every thread accounted for", "[freezer][threads][stress]") {
    busy_thread other;
    fixture x;
    constexpr int rounds = 200;
    std::atomic<bool> stop{false};
    std::atomic<int> lived{0};
    std::vector<std::thread> churn;
    for (int w = 0; w < 3; ++w) {
        churn.emplace_back([&, w] {
            while (!stop) {
                std::thread t([&, w] {
                    C& to = w % 2 == 0 ? *x.cold : *x.warm;
                    (void)x.h.attach_self(to);
                    volatile int sink = 0;
                    for (int i = 0; i < 20000; ++i) sink = sink + 1;
                    if (w == 2) (void)x.h.attach_self(*x.warm);
                    x.f().try_to_freeze(x.h);
                    ++lived;
                });
                t.join();
            }
        });
    }
    REQUIRE_FALSE(x.h.attach(other.tid(), *x.cold));
    bool in_cold = true;
    // At least `rounds` changes, and on until the churn has completed some threads (bounded).
    for (int i = 0; i < rounds || (lived < 30 && i < 100 * rounds); ++i) {
        if (i >= rounds) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        C& c = i % 3 == 0 ? *x.warm : *x.cold;
        REQUIRE_FALSE(x.f().set_state(c, i % 2 == 0 ? freezer_state::frozen : freezer_state::thawed));
        if (x.f().get_state(*x.cold) == freezer_state::frozen && in_cold) {
            CHECK(test::thread_state(other.tid()) == 'S');  // FROZEN means parked: nothing of it runs
        }
        if (i % 10 == 0) {
            in_cold = i % 20 != 0;
            REQUIRE_FALSE(x.h.attach(other.tid(), in_cold ? *x.cold : *x.warm));
        }
    }
    REQUIRE_FALSE(x.f().set_state(*x.cold, freezer_state::thawed));
    REQUIRE_FALSE(x.f().set_state(*x.warm, freezer_state::thawed));
    stop = true;
    for (auto& t : churn) t.join();
    CHECK(lived >= 30);
    CHECK(x.f().get_state(*x.cold) == freezer_state::thawed);
    std::uint64_t const spins = other.spins();
    REQUIRE(eventually([&] { return other.spins() > spins; }));
}

TEST_CASE("a thread is not frozen while it holds a hierarchy lock or is inside a read section, but as soon as it leaves",
          "[freezer][threads][locks]") {
    fixture x;
    H other;  // its lock is the one held: parking the holder would block every user of `other`
    std::atomic<int> phase{0};  // 1: holds the lock; 2: let it go; 3: in a read section; 4: leave it
    std::atomic<int> done{0};
    std::atomic<int> noted{0};  // the round in which the handler ran and left its note
    std::atomic<pid_t> tid{0};
    auto note = [&](int round) {
        while (phase == round) {
            if (detail::tls_after_last_unlock.load(std::memory_order_relaxed) != nullptr) noted = round;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    };
    std::thread t([&] {
        tid = thread_task_traits::self();
        while (phase != 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        {
            auto lock = other.manage_lock();
            done = 1;
            note(1);
        }  // parks here, at its last unlock
        done = 2;
        while (phase != 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        {
            read_section rs;
            done = 3;
            note(3);
        }  // and here, leaving the section
        done = 4;
    });
    REQUIRE(eventually([&] { return tid != 0; }));
    REQUIRE_FALSE(x.h.attach(tid.load(), *x.cold));
    for (int round : {1, 3}) {
        CAPTURE(round);
        phase = round;
        REQUIRE(eventually([&] { return done == round; }));
        REQUIRE_FALSE(x.f().set_state(*x.cold, freezer_state::frozen));
        CHECK(eventually([&] { return noted == round; }));  // the signal came and the handler ran
        CHECK(x.f().get_state(*x.cold) == freezer_state::freezing);  // but it did not park
        phase = round + 1;
        REQUIRE(eventually([&] { return x.frozen(*x.cold); }));
        CHECK(done == round);
        REQUIRE_FALSE(x.f().set_state(*x.cold, freezer_state::thawed));
        REQUIRE(eventually([&] { return done == round + 1; }));
    }
    t.join();
}
