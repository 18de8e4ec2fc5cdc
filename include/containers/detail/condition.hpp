// A condition variable for std::mutex on pthread_cond_t, waiting on CLOCK_MONOTONIC.
//
// std::condition_variable would do, but its header brings <chrono> (and with C++20 much of the
// time-zone machinery) into every program that includes the hierarchy: about a fifth of the
// header's compile time. The library needs three operations; here they are, on the primitive
// that std::condition_variable itself wraps.
#pragma once

#include <cerrno>
#include <ctime>
#include <mutex>
#include <pthread.h>

namespace containers::detail {

class condition {
public:
    condition() noexcept { init(); }
    condition(condition const&) = delete;
    condition& operator=(condition const&) = delete;
    ~condition() { ::pthread_cond_destroy(&cond_); }

    void notify_all() noexcept { ::pthread_cond_broadcast(&cond_); }

    void wait(std::unique_lock<std::mutex>& lock) noexcept {
        ::pthread_cond_wait(&cond_, lock.mutex()->native_handle());
    }
    template <class Predicate>
    void wait(std::unique_lock<std::mutex>& lock, Predicate done) {
        while (!done()) wait(lock);
    }
    /// Waits at most `ms` milliseconds (less on a notification or a spurious wake-up).
    void wait_for_ms(std::unique_lock<std::mutex>& lock, long ms) noexcept {
        timespec t{};
        ::clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_sec += ms / 1000;
        t.tv_nsec += (ms % 1000) * 1000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec += 1;
            t.tv_nsec -= 1000000000L;
        }
        ::pthread_cond_timedwait(&cond_, lock.mutex()->native_handle(), &t);
    }
    /// In a fork child: the threads that waited do not exist there; start afresh.
    void reset_after_fork() noexcept { init(); }

private:
    void init() noexcept {
        pthread_condattr_t a;
        ::pthread_condattr_init(&a);
        ::pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        ::pthread_cond_init(&cond_, &a);
        ::pthread_condattr_destroy(&a);
    }

    pthread_cond_t cond_;
};

}  // namespace containers::detail
