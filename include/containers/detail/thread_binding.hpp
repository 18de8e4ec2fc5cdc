// Thread-local bindings from a hierarchy to the current thread's task record.
//
// With thread-bound task traits, a thread that attaches itself gets its record cached in
// thread-local storage, so that reading its container is two dependent loads, and gets a
// thread-exit hook that detaches it from every hierarchy it joined. Hierarchies are named by a
// serial that is never reused, so a binding left behind by a destroyed hierarchy can never be
// mistaken for a live one; the registry maps serials of live hierarchies to their owners.
#pragma once

#include <algorithm>
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

/// Direct-mapped cache: a hierarchy with serial s uses slot s % fast_bindings.
inline constexpr std::size_t fast_bindings = 16;
inline constinit thread_local binding tls_fast_bindings[fast_bindings] = {};

class binding_owner {
public:
    /// Called on the exiting thread, with the registry locked, for each task it had bound.
    virtual void thread_exited(void* task) noexcept = 0;

protected:
    ~binding_owner() = default;
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
    void leave(std::uint64_t serial) noexcept {
        std::lock_guard g(mutex_);
        std::erase_if(owners_, [serial](auto const& p) { return p.first == serial; });
    }
    [[nodiscard]] bool live(std::uint64_t serial) noexcept {
        std::lock_guard g(mutex_);
        return std::any_of(owners_.begin(), owners_.end(), [serial](auto const& p) { return p.first == serial; });
    }
    void thread_exited(binding b) noexcept {
        std::lock_guard g(mutex_);
        for (auto const& [serial, owner] : owners_) {
            if (serial == b.serial) {
                owner->thread_exited(b.task);
                return;
            }
        }
    }

private:
    std::mutex mutex_;
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
        for (binding& b : tls_fast_bindings) {
            if (b.serial != 0) all.push_back(std::exchange(b, binding{}));
        }
        for (binding const& b : all) binding_registry::instance().thread_exited(b);
    }
};

inline thread_bindings& this_thread_bindings() noexcept {
    thread_local thread_bindings b;
    return b;
}

[[nodiscard]] inline void* find_binding(std::uint64_t serial) noexcept {
    binding const& fast = tls_fast_bindings[serial % fast_bindings];
    if (fast.serial == serial) return fast.task;
    for (binding const& b : this_thread_bindings().overflow) {
        if (b.serial == serial) return b.task;
    }
    return nullptr;
}

inline void bind_this_thread(std::uint64_t serial, void* task) {
    // Construct the reader record before the bindings, so that the bindings' destructor, which
    // runs first at thread exit, can still use the read path.
    (void)this_thread_reader();
    thread_bindings& all = this_thread_bindings();
    binding& fast = tls_fast_bindings[serial % fast_bindings];
    if (fast.serial == 0 || fast.serial == serial || !binding_registry::instance().live(fast.serial)) {
        fast = {serial, task};
        return;
    }
    for (binding& b : all.overflow) {
        if (b.serial == serial) {
            b.task = task;
            return;
        }
    }
    all.overflow.push_back({serial, task});
}

inline void unbind_this_thread(std::uint64_t serial) noexcept {
    binding& fast = tls_fast_bindings[serial % fast_bindings];
    if (fast.serial == serial) {
        fast = {};
        return;
    }
    std::erase_if(this_thread_bindings().overflow, [serial](binding const& b) { return b.serial == serial; });
}

}  // namespace containers::detail
