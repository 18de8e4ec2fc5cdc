// Thread-local bindings from a hierarchy to the current thread's task record.
//
// With thread-bound task traits, a thread that attaches itself gets its record and its container
// cached in thread-local storage, so that reading its container is one load after a check, and a
// thread-exit hook that detaches it from every hierarchy it joined. Hierarchies are named by a
// serial that is never reused, so a binding left behind by a destroyed hierarchy can never be
// mistaken for a live one; the registry maps serials of live hierarchies to their owners.
//
// Everything the read path touches here is constant-initialised thread-local storage: no lazy
// construction, no allocation, no lock (find_binding is async-signal-safe). Binding (under the
// hierarchy's callback lock) may allocate for bindings beyond the cache; where it cannot, the
// thread is simply not bound and its reads go through the task table.
//
// Thread exit: the RCU layer's pthread key destructor calls report_thread_exit(), after every C++
// thread_local destructor has run (glibc runs those first), so that a destructor that reads its
// container still finds its binding, and before the thread's reader record is released, so that
// the hierarchies' exit hooks can still open read sections.
//
// fork(): the child's only thread is a new task that no hierarchy has been told about, so its
// bindings (copied from the parent's thread) are dropped without reporting, and the registry's
// lock is held across fork() so that the child inherits it unlocked. A dropped cache slot keeps
// its old serial as a tombstone for as long as that hierarchy lives: the hierarchy's record of
// the parent's thread still points at the slot and may store into it (when that record is moved
// in the child), so the slot is not handed to another hierarchy meanwhile.
//
// A signal handler may read the bindings at any point of the owning thread's updates: writes are
// ordered with signal fences so that it sees a slot's task and container before its serial, and
// an overflow entry before the count that includes it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include <pthread.h>

#include "condition.hpp"
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
    std::uint64_t serial = 0;          // written by the owning thread only; tombstone bit: see above
    void* task = nullptr;              // written by the owning thread only
    std::atomic<void*> container{};    // stored by the hierarchy, loaded by the owning thread
};
inline constexpr std::size_t fast_bindings = 16;
inline constexpr std::uint64_t tombstone_bit = std::uint64_t{1} << 63;  // serials never get there
inline constinit thread_local fast_binding tls_fast_bindings[fast_bindings] = {};

/// Bindings that did not fit the cache: an array that only the owning thread touches.
struct overflow_bindings {
    binding* items = nullptr;
    std::size_t size = 0;
    std::size_t capacity = 0;
};
inline constinit thread_local overflow_bindings tls_overflow = {};

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
        no_freeze nf;  // every section of mutex_: a thread parked holding it would block the others
        std::lock_guard g(mutex_);
        std::uint64_t const serial = next_++;
        owners_.emplace_back(serial, owner);
        return serial;
    }
    /// Unregisters, then waits until no exiting thread is still reporting to `owner`. The thread
    /// that reports never waits for a grace period while pinned (a hierarchy's thread_exited
    /// frees nothing), so this wait ends even when the caller is inside a read section.
    void leave(std::uint64_t serial, binding_owner* owner) noexcept {
        no_freeze nf;
        std::unique_lock g(mutex_);
        std::erase_if(owners_, [serial](auto const& p) { return p.first == serial; });
        unpinned_.wait(g, [owner] { return owner->pins_ == 0; });
    }
    [[nodiscard]] bool live(std::uint64_t serial) noexcept {
        no_freeze nf;
        std::lock_guard g(mutex_);
        return std::any_of(owners_.begin(), owners_.end(), [serial](auto const& p) { return p.first == serial; });
    }
    // The owner's hook runs without the registry's lock, so that the lock order is always
    // "a hierarchy's manage lock, then the registry", never the reverse.
    void thread_exited(binding b) noexcept {
        binding_owner* owner = nullptr;
        {
            no_freeze nf;
            std::lock_guard g(mutex_);
            for (auto const& [serial, o] : owners_) {
                if (serial == b.serial) owner = o;
            }
            if (owner == nullptr) return;
            ++owner->pins_;
        }
        owner->thread_exited(b.task);
        {
            no_freeze nf;
            std::lock_guard g(mutex_);
            --owner->pins_;
        }
        unpinned_.notify_all();
    }

private:
    binding_registry() noexcept {
        if (::pthread_atfork(before_fork, after_fork_parent, after_fork_child) != 0) {
            fatal("containers: cannot install the thread-binding fork handler\n");
        }
    }
    // The no-freeze section spans fork(): entered before the lock, left after the unlock.
    static void before_fork() noexcept {
        enter_no_freeze();
        instance().mutex_.lock();
    }
    static void after_fork_parent() noexcept {
        instance().mutex_.unlock();
        leave_no_freeze();
    }
    static void after_fork_child() noexcept {
        binding_registry& r = instance();
        // The threads that held pins, or waited for them, do not exist here.
        for (auto const& p : r.owners_) p.second->pins_ = 0;
        r.unpinned_.reset_after_fork();
        r.mutex_.unlock();
        leave_no_freeze();
    }

    std::mutex mutex_;
    condition unpinned_;
    std::uint64_t next_ = 1;
    std::vector<std::pair<std::uint64_t, binding_owner*>> owners_;  // guarded by mutex_
};

// Empties the overflow array, count first, so that a signal handler never reads a freed array.
inline overflow_bindings take_overflow() noexcept {
    overflow_bindings o = tls_overflow;
    tls_overflow.size = 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    tls_overflow.items = nullptr;
    tls_overflow.capacity = 0;
    return o;
}

/// At thread exit: reports every binding to its hierarchy and forgets it.
inline void report_thread_exit() noexcept {
    for (fast_binding& b : tls_fast_bindings) {
        if (b.serial == 0) continue;
        binding const gone{b.serial, b.task};
        b.serial = 0;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        b.task = nullptr;
        if ((gone.serial & tombstone_bit) == 0) binding_registry::instance().thread_exited(gone);
    }
    // Reporting may run hooks that bind again (rarely): take the array first, then report.
    overflow_bindings const o = take_overflow();
    for (std::size_t i = 0; i < o.size; ++i) binding_registry::instance().thread_exited(o.items[i]);
    ::operator delete(o.items, std::nothrow);
}

/// In a fork child: the thread is a new task. Its slots become tombstones (see above).
inline void forget_bindings_in_fork_child() noexcept {
    for (fast_binding& b : tls_fast_bindings) {
        if (b.serial != 0) b.serial |= tombstone_bit;
    }
    ::operator delete(take_overflow().items, std::nothrow);
}

/// The calling thread's cache slot for the hierarchy with this serial.
[[nodiscard]] inline fast_binding& fast_slot(std::uint64_t serial) noexcept { return tls_fast_bindings[serial % fast_bindings]; }

/// The calling thread's task of hierarchy `serial`, or nullptr. Async-signal-safe.
[[nodiscard]] inline void* find_binding(std::uint64_t serial) noexcept {
    fast_binding const& fast = fast_slot(serial);
    if (fast.serial == serial) return fast.task;
    overflow_bindings const& o = tls_overflow;
    for (std::size_t i = 0; i < o.size; ++i) {
        if (o.items[i].serial == serial) return o.items[i].task;
    }
    return nullptr;
}

/// Outcome of bind_this_thread.
struct bind_result {
    bool bound = false;                        // false: no memory; reads go through the task table
    std::atomic<void*>* cell = nullptr;        // the cached container cell, if in the fast cache
};

/// Binds the calling thread's task of hierarchy `serial`. Call under the hierarchy's callback
/// lock. The thread-exit hook is armed by claiming the thread's reader record first.
[[nodiscard]] inline bind_result bind_this_thread(std::uint64_t serial, void* task, void* container) noexcept {
    if (rcu::tls_reader.load(std::memory_order_relaxed) == nullptr && rcu::claim() == nullptr) return {};  // no exit hook possible
    rcu::global.before_exit.store(report_thread_exit, std::memory_order_release);
    rcu::global.fork_child.store(forget_bindings_in_fork_child, std::memory_order_release);
    fast_binding& fast = fast_slot(serial);
    std::uint64_t const occupant = fast.serial & ~tombstone_bit;
    if (fast.serial == 0 || fast.serial == serial || !binding_registry::instance().live(occupant)) {
        fast.serial = 0;  // never a matching serial beside another hierarchy's task
        std::atomic_signal_fence(std::memory_order_seq_cst);
        fast.container.store(container, std::memory_order_relaxed);
        fast.task = task;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        fast.serial = serial;
        return {true, &fast.container};
    }
    overflow_bindings& o = tls_overflow;
    for (std::size_t i = 0; i < o.size; ++i) {
        if (o.items[i].serial == serial) {
            o.items[i].task = task;
            return {true, nullptr};
        }
    }
    if (o.size == o.capacity) {
        std::size_t const cap = o.capacity == 0 ? 4 : o.capacity * 2;
        auto* items = static_cast<binding*>(::operator new(cap * sizeof(binding), std::nothrow));
        if (items == nullptr) return {};
        std::copy(o.items, o.items + o.size, items);
        binding* const old = o.items;
        o.items = items;  // the copy holds every counted entry
        std::atomic_signal_fence(std::memory_order_seq_cst);
        ::operator delete(old, std::nothrow);
        o.capacity = cap;
    }
    o.items[o.size] = {serial, task};
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the entry, then the count
    ++o.size;
    return {true, nullptr};
}

inline void unbind_this_thread(std::uint64_t serial) noexcept {
    fast_binding& fast = fast_slot(serial);
    if (fast.serial == serial) {
        fast.serial = 0;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        fast.task = nullptr;
        return;
    }
    overflow_bindings& o = tls_overflow;
    for (std::size_t i = 0; i < o.size; ++i) {
        if (o.items[i].serial == serial) {
            // Overwrite with the last entry (serial last), then drop the count: a handler in
            // between sees no match or the last entry twice, never a torn one.
            binding const last = o.items[o.size - 1];
            o.items[i].serial = 0;
            std::atomic_signal_fence(std::memory_order_seq_cst);
            o.items[i].task = last.task;
            std::atomic_signal_fence(std::memory_order_seq_cst);
            o.items[i].serial = last.serial;
            std::atomic_signal_fence(std::memory_order_seq_cst);
            --o.size;
            return;
        }
    }
}

}  // namespace containers::detail
