// Thread-local bindings from a hierarchy to the current thread's task record.
//
// With thread-bound task traits, a thread that attaches itself gets its record and its container
// cached in thread-local storage, so that reading its container is one load after a check, and a
// thread-exit hook that detaches it from every hierarchy it joined. Hierarchies are named by a
// serial that is never reused, so a binding left behind by a destroyed hierarchy can never be
// mistaken for a live one; the registry maps serials of live hierarchies to their owners.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "rcu.hpp"

namespace containers::detail {

struct binding {
    std::uint64_t serial = 0;
    void* task = nullptr;
};

/// Direct-mapped cache: the hierarchy with serial s uses slot s % fast_bindings (hashing its
/// address instead measured slower). Besides the task, a slot holds the task's container, which
/// the hierarchy stores here (under its callback lock) whenever the task moves, so that reading
/// it is one load beside the serial check.
struct fast_binding {
    std::uint64_t serial = 0;          // written by the owning thread only
    void* task = nullptr;              // written by the owning thread only
    std::atomic<void*> container{};    // stored by the hierarchy, loaded by the owning thread
};
inline constexpr std::size_t fast_bindings = 16;
inline constinit thread_local fast_binding tls_fast_bindings[fast_bindings] = {};

class binding_owner {
public:
    /// Called on the exiting thread for each task it had bound; the registry's lock is not held,
    /// but the owner is pinned, so that it cannot be destroyed meanwhile.
    virtual void thread_exited(void* task) noexcept = 0;

protected:
    ~binding_owner() = default;

private:
    friend class binding_registry;
    int pins_ = 0;  // guarded by the registry's mutex
};

class binding_registry {
public:
    static binding_registry& instance() noexcept {
        static binding_registry* const r = new binding_registry;  // outlives every thread
        return *r;
    }

    std::uint64_t enroll(binding_owner* owner) {
        std::lock_guard g(mutex_);
        std::uint64_t const serial = next_++;
        owners_.emplace_back(serial, owner);
        return serial;
    }
    /// Unregisters, then waits until no exiting thread is still reporting to `owner`.
    void leave(std::uint64_t serial, binding_owner* owner) noexcept {
        std::unique_lock g(mutex_);
        std::erase_if(owners_, [serial](auto const& p) { return p.first == serial; });
        unpinned_.wait(g, [owner] { return owner->pins_ == 0; });
    }
    [[nodiscard]] bool live(std::uint64_t serial) noexcept {
        std::lock_guard g(mutex_);
        return std::any_of(owners_.begin(), owners_.end(), [serial](auto const& p) { return p.first == serial; });
    }
    // The owner's hook runs without the registry's lock, so that the lock order is always
    // "a hierarchy's manage lock, then the registry", never the reverse.
    void thread_exited(binding b) noexcept {
        binding_owner* owner = nullptr;
        {
            std::lock_guard g(mutex_);
            for (auto const& [serial, o] : owners_) {
                if (serial == b.serial) owner = o;
            }
            if (owner == nullptr) return;
            ++owner->pins_;
        }
        owner->thread_exited(b.task);
        {
            std::lock_guard g(mutex_);
            --owner->pins_;
        }
        unpinned_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable unpinned_;
    std::uint64_t next_ = 1;
    std::vector<std::pair<std::uint64_t, binding_owner*>> owners_;  // guarded by mutex_
};

/// Bindings that did not fit the cache, and the destructor that reports them all at thread exit.
struct thread_bindings {
    std::vector<binding> overflow;
    thread_bindings() = default;
    thread_bindings(thread_bindings const&) = delete;
    thread_bindings& operator=(thread_bindings const&) = delete;
    ~thread_bindings() {
        std::vector<binding> all;
        all.swap(overflow);
        for (fast_binding& b : tls_fast_bindings) {
            if (b.serial != 0) all.push_back({std::exchange(b.serial, 0), std::exchange(b.task, nullptr)});
        }
        for (binding const& b : all) binding_registry::instance().thread_exited(b);
    }
};

inline thread_bindings& this_thread_bindings() noexcept {
    thread_local thread_bindings b;
    return b;
}

/// The calling thread's cache slot for the hierarchy with this serial.
[[nodiscard]] inline fast_binding& fast_slot(std::uint64_t serial) noexcept { return tls_fast_bindings[serial % fast_bindings]; }

[[nodiscard]] inline void* find_binding(std::uint64_t serial) noexcept {
    fast_binding const& fast = fast_slot(serial);
    if (fast.serial == serial) return fast.task;
    for (binding const& b : this_thread_bindings().overflow) {
        if (b.serial == serial) return b.task;
    }
    return nullptr;
}

/// Binds the calling thread's task of hierarchy `serial`. Returns the cell that the hierarchy
/// must keep up to date with the task's container, or nullptr where the binding did not fit the
/// cache (reads then go through the task). Call under the hierarchy's callback lock.
inline std::atomic<void*>* bind_this_thread(std::uint64_t serial, void* task, void* container) {
    // Construct the reader record before the bindings, so that the bindings' destructor, which
    // runs first at thread exit, can still use the read path.
    (void)this_thread_reader();
    thread_bindings& all = this_thread_bindings();
    fast_binding& fast = fast_slot(serial);
    if (fast.serial == 0 || fast.serial == serial || !binding_registry::instance().live(fast.serial)) {
        fast.container.store(container, std::memory_order_relaxed);
        fast.task = task;
        fast.serial = serial;
        return &fast.container;
    }
    for (binding& b : all.overflow) {
        if (b.serial == serial) {
            b.task = task;
            return nullptr;
        }
    }
    all.overflow.push_back({serial, task});
    return nullptr;
}

inline void unbind_this_thread(std::uint64_t serial) noexcept {
    fast_binding& fast = fast_slot(serial);
    if (fast.serial == serial) {
        fast.serial = 0;
        fast.task = nullptr;
        return;
    }
    std::erase_if(this_thread_bindings().overflow, [serial](binding const& b) { return b.serial == serial; });
}

}  // namespace containers::detail
