// A mutex that knows its owner, so that debug builds can assert "held by me" the way the kernel's
// lockdep_assert_held does, and catch a hook that calls back into a locking operation.
#pragma once

#include <atomic>
#include <cassert>
#include <mutex>
#include <pthread.h>

namespace containers::detail {

class owned_mutex {
public:
    void lock() noexcept {
        assert(!held_by_me() && "containers: lock taken twice by one thread (a hook called a locking operation?)");
        mutex_.lock();
        owner_.store(::pthread_self(), std::memory_order_relaxed);
    }
    void unlock() noexcept {
        owner_.store(pthread_t{}, std::memory_order_relaxed);
        mutex_.unlock();
    }
    [[nodiscard]] bool held_by_me() const noexcept {
        return ::pthread_equal(owner_.load(std::memory_order_relaxed), ::pthread_self()) != 0;
    }

private:
    std::mutex mutex_;
    std::atomic<pthread_t> owner_{};  // pthread_t{} (0 on Linux) when free
};

}  // namespace containers::detail
