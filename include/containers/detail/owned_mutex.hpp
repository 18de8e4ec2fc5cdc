// A mutex that knows its owner, so that debug builds can assert "held by me" the way the kernel's
// lockdep_assert_held does, and catch a hook that calls back into a locking operation.
#pragma once

#include <atomic>
#include <cassert>
#include <mutex>
#include <pthread.h>

namespace containers::detail {

// How many owned_mutexes (and no_freeze sections) the calling thread holds or waits for, counted
// before the wait and after the release, so that a signal handler that sees 0 knows the thread
// holds none (the freezer's handler must not park a thread holding a lock that thawing, or any
// other library path, needs). A handler that finds it non-zero, or the thread inside a
// read_section, may leave a function to run when the thread is free of both: at its last unlock,
// or at the end of its read_section (the function checks which, and may leave itself again).
// Written by the owning thread only, read by its signal handler: atomics with relaxed access
// (no read-modify-write needed), ordered against the handler with signal fences.
// The handler reads thread_locals: in a library loaded with dlopen, the first access to a
// thread_local of a thread may allocate (the dynamic TLS model), which a handler must not do; link
// the library into the program (or its first-loaded objects) where the freezer is used.
inline constinit thread_local std::atomic<unsigned> tls_owned_locks{0};
using after_unlock_fn = void (*)() noexcept;
inline constinit thread_local std::atomic<after_unlock_fn> tls_after_last_unlock{nullptr};
// Set when the thread has begun to exit (before the hierarchies' exit reports): never parked again.
inline constinit thread_local std::atomic<bool> tls_exiting{false};

inline void enter_no_freeze() noexcept {
    tls_owned_locks.store(tls_owned_locks.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
}
void leave_no_freeze() noexcept;

class owned_mutex {
public:
    void lock() noexcept {
        assert(!held_by_me() && "containers: lock taken twice by one thread (a hook called a locking operation?)");
        enter_no_freeze();
        mutex_.lock();
        owner_.store(::pthread_self(), std::memory_order_relaxed);
    }
    void unlock() noexcept {
        owner_.store(pthread_t{}, std::memory_order_relaxed);
        mutex_.unlock();
        leave_no_freeze();
    }
    static void run_after_last_unlock() noexcept {
        if (tls_owned_locks.load(std::memory_order_relaxed) != 0) return;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        after_unlock_fn const f = tls_after_last_unlock.exchange(nullptr, std::memory_order_relaxed);
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

inline void leave_no_freeze() noexcept {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    unsigned const n = tls_owned_locks.load(std::memory_order_relaxed) - 1;
    tls_owned_locks.store(n, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the count, then the handler's note
    if (n == 0 && tls_after_last_unlock.load(std::memory_order_relaxed) != nullptr) [[unlikely]] owned_mutex::run_after_last_unlock();
}

/// A section in which the freezer never parks the calling thread: around every library-internal
/// mutex that is not an owned_mutex (declare it before the lock, so that it ends after the
/// unlock). A thread parked while holding such a mutex would block every path that takes it,
/// some of them under a hierarchy's locks.
class no_freeze {
public:
    no_freeze() noexcept { enter_no_freeze(); }
    ~no_freeze() { leave_no_freeze(); }
    no_freeze(no_freeze const&) = delete;
    no_freeze& operator=(no_freeze const&) = delete;
};

}  // namespace containers::detail
