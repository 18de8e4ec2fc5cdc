// Read-copy-update for the lock-free read path: readers announce themselves in thread-local
// memory only, writers wait for a grace period before they free what readers may still see.
//
// The scheme is liburcu's "memb" flavour with 64-bit epochs. A reader's outermost read_section
// copies the global epoch into its own thread-local counter and ends by storing zero there (a
// release store): no shared cache line is written and nothing blocks. synchronize() advances the
// epoch, runs membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) so that every running thread of the
// process has passed a full barrier, then waits until each registered reader is outside any
// section or inside one that began after the advance. Where membarrier is unavailable, readers
// fall back to a full fence after announcing themselves. Epochs are 64-bit and never wrap, so
// one phase suffices.
//
// Objects to free are retired onto an intrusive list (retired_node) and reclaimed in batches after
// a grace period, never under the hierarchy's locks, so that a reader that takes a lock inside a
// section cannot deadlock a writer.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>
#include <mutex>
#include <thread>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define CONTAINERS_DETAIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CONTAINERS_DETAIL_TSAN 1
#endif
#endif

namespace containers::detail {

/// A full barrier. ThreadSanitizer does not model fences (GCC refuses them under -Werror=tsan),
/// so there a sequentially consistent read-modify-write stands in; it orders as much on x86.
inline void full_fence(std::atomic<std::uint64_t>& scratch) noexcept {
#ifdef CONTAINERS_DETAIL_TSAN
    scratch.fetch_add(0, std::memory_order_seq_cst);
#else
    (void)scratch;
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

/// A node that an object embeds so that it can be freed after a grace period without allocating.
struct retired_node {
    retired_node* next = nullptr;
    void (*reclaim)(retired_node*) noexcept = nullptr;
};

/// Reclaims a chain of retired nodes; call only after a grace period.
inline void reclaim_chain(retired_node* n) noexcept {
    while (n != nullptr) {
        retired_node* next = n->next;
        n->reclaim(n);
        n = next;
    }
}

struct rcu_reader {
    std::atomic<std::uint64_t> epoch{0};  // 0 outside a section; written only by its own thread
    unsigned nesting = 0;                  // thread-private
    rcu_reader* prev = nullptr;            // guarded by rcu_domain::registry_
    rcu_reader* next = nullptr;            // guarded by rcu_domain::registry_
};

class rcu_domain {
public:
    /// The process-wide domain. Never destroyed, so that threads exiting after main() returns
    /// can still unregister.
    static rcu_domain& instance() noexcept {
        static rcu_domain* const d = new rcu_domain;
        return *d;
    }

    [[nodiscard]] std::uint64_t epoch() const noexcept { return epoch_.load(std::memory_order_relaxed); }
    [[nodiscard]] bool readers_fence() const noexcept { return readers_fence_; }

    void enroll(rcu_reader& r) noexcept {
        std::lock_guard g(registry_);
        r.next = head_;
        if (head_ != nullptr) head_->prev = &r;
        head_ = &r;
    }
    void leave(rcu_reader& r) noexcept {
        std::lock_guard g(registry_);
        if (r.prev != nullptr) r.prev->next = r.next; else head_ = r.next;
        if (r.next != nullptr) r.next->prev = r.prev;
        r.prev = r.next = nullptr;
    }

    /// Waits until every read section that began before the call has ended.
    void synchronize() noexcept {
        std::lock_guard gp(grace_);
        std::uint64_t const target = epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
        heavy_barrier();
        std::lock_guard g(registry_);
        for (rcu_reader* r = head_; r != nullptr; r = r->next) {
            for (unsigned spins = 0;; ++spins) {
                std::uint64_t const e = r->epoch.load(std::memory_order_acquire);
                if (e == 0 || e >= target) break;
                if (spins > 64) std::this_thread::yield();
            }
        }
    }

private:
    rcu_domain() noexcept {
        expedited_ = ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
        readers_fence_ = !expedited_;
    }
    void heavy_barrier() noexcept {
        if (!expedited_ || ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
            full_fence(epoch_);
        }
    }

    std::atomic<std::uint64_t> epoch_{1};
    bool expedited_ = false;
    bool readers_fence_ = true;  // immutable after construction
    std::mutex grace_;           // serialises grace periods
    std::mutex registry_;        // guards the reader list
    rcu_reader* head_ = nullptr;
};

/// The calling thread's reader record, enrolled on first use and removed at thread exit.
struct rcu_thread_reader {
    rcu_reader reader;
    rcu_thread_reader() noexcept { rcu_domain::instance().enroll(reader); }
    ~rcu_thread_reader() { rcu_domain::instance().leave(reader); }
    rcu_thread_reader(rcu_thread_reader const&) = delete;
    rcu_thread_reader& operator=(rcu_thread_reader const&) = delete;
};

inline rcu_reader& this_thread_reader() noexcept {
    thread_local rcu_thread_reader r;
    return r.reader;
}

inline void rcu_read_lock() noexcept {
    rcu_reader& r = this_thread_reader();
    if (r.nesting++ == 0) {
        rcu_domain& d = rcu_domain::instance();
        if (d.readers_fence()) {
            r.epoch.exchange(d.epoch(), std::memory_order_seq_cst);  // store, then a full barrier
        } else {
            r.epoch.store(d.epoch(), std::memory_order_relaxed);
            std::atomic_signal_fence(std::memory_order_seq_cst);  // membarrier in synchronize() does the rest
        }
    }
}

inline void rcu_read_unlock() noexcept {
    rcu_reader& r = this_thread_reader();
    assert(r.nesting > 0 && "containers: read_section ended twice");
    if (--r.nesting == 0) r.epoch.store(0, std::memory_order_release);
}

[[nodiscard]] inline bool in_read_section() noexcept { return this_thread_reader().nesting > 0; }

}  // namespace containers::detail

namespace containers {

/// RAII read-side section. Inside one, container and task pointers obtained from the read path
/// stay valid even if a concurrent writer moves the task and removes the container. Sections
/// nest, cost two thread-local stores, never block and write no shared memory.
class read_section {
public:
    read_section() noexcept { detail::rcu_read_lock(); }
    ~read_section() { detail::rcu_read_unlock(); }
    read_section(read_section const&) = delete;
    read_section& operator=(read_section const&) = delete;
};

}  // namespace containers
