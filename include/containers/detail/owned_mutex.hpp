// A mutex that knows its owner, so that debug builds can assert "held by me" the way the kernel's
// lockdep_assert_held does, and catch a hook that calls back into a locking operation.
#pragma once

#include <atomic>
#include <cassert>
#include <mutex>
#include <pthread.h>

namespace containers::detail {

// How many owned_mutexes the calling thread holds or waits for, counted before the wait and
// after the release, so that a signal handler that sees 0 knows the thread holds none (the
// freezer's handler must not park a thread holding a lock that thawing needs). A handler that
// finds it non-zero, or the thread inside a read_section, may leave a function to run when the
// thread is free of both: at its last unlock, or at the end of its read_section (the function
// checks which, and may leave itself again).
inline constinit thread_local unsigned tls_owned_locks = 0;
using after_unlock_fn = void (*)() noexcept;
inline constinit thread_local after_unlock_fn tls_after_last_unlock = nullptr;

class owned_mutex {
public:
    void lock() noexcept {
        assert(!held_by_me() && "containers: lock taken twice by one thread (a hook called a locking operation?)");
        ++tls_owned_locks;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        mutex_.lock();
        owner_.store(::pthread_self(), std::memory_order_relaxed);
    }
    void unlock() noexcept {
        owner_.store(pthread_t{}, std::memory_order_relaxed);
        mutex_.unlock();
        std::atomic_signal_fence(std::memory_order_seq_cst);
        if (--tls_owned_locks == 0 && tls_after_last_unlock != nullptr) [[unlikely]] run_after_last_unlock();
    }
    static void run_after_last_unlock() noexcept {
        if (tls_owned_locks != 0) return;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        after_unlock_fn const f = tls_after_last_unlock;
        tls_after_last_unlock = nullptr;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        if (f != nullptr) f();
    }
    [[nodiscard]] bool held_by_me() const noexcept {
        return ::pthread_equal(owner_.load(std::memory_order_relaxed), ::pthread_self()) != 0;
    }

private:
    std::mutex mutex_;
    std::atomic<pthread_t> owner_{};  // pthread_t{} (0 on Linux) when free
};

}  // namespace containers::detail
