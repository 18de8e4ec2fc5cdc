// Read-copy-update for the lock-free read path: readers announce themselves in memory of their
// own, writers wait for a grace period before they free what readers may still see.
//
// What it offers. read_section is a nestable RAII section. Entering and leaving one never blocks,
// never allocates (after a thread's first section), takes no lock and writes no shared cache line.
// It is async-signal-safe: a signal handler may open a section at any point of the interrupted
// code, including inside that thread's own section or while it is entering or leaving one, and
// as the very first section of a thread (see "First use" below). A section may stay open across
// thread exit (pthread_exit, which unwinds nothing under -fno-exceptions): the thread's record
// is released when the thread is gone. synchronize() waits until every section that began before
// it has ended; it holds no lock while it waits, so nothing a reader might wait for is held by a
// waiting writer. Removed objects are retired onto an intrusive list (retired_node) and reclaimed
// in batches after a grace period, never under the hierarchy's locks.
//
// The algorithm (liburcu's "memb" flavour, with the differences listed below). Each thread owns
// one record whose whole state is one 64-bit word, ctr = (epoch << 16) | nesting. The global word
// gp holds the current epoch with a nesting of one.
//   read_lock:   v = ctr;  if nesting(v) != 0: ctr = v + 1                        (nested)
//                          else: g = gp (acquire); ctr = g; barrier B_r           (outermost)
//   read_unlock: v = ctr;  ctr = v - 1 (release)
//   synchronize: target = gp += 1 epoch (seq_cst); barrier B_w;
//                for each record r: wait while nesting(r.ctr) != 0 and epoch(r.ctr) < target
//                (acquire loads)
// B_r/B_w are membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) on the writer and a compiler barrier on
// the reader where the kernel has it (registered at start-up), and a full fence on both sides
// otherwise.
// Proof sketch. A writer unlinks object X (a release store), then calls synchronize() and frees X
// after it returns. Take any reader section S that loads the pointer to X.
//  (a) S's outermost lock stored ctr before B_w took effect on S's thread: then the writer's scan,
//      which follows B_w, sees S's ctr with nesting != 0, or a later value of it. The epoch S
//      stored was loaded from gp; if it is below target the writer waits until S stores a word
//      with nesting 0 (read_unlock's release store), and its acquire load of that word orders
//      every load of S before the free. If it is at or above target, S loaded gp (acquire) from
//      the writer's increment or later, which comes after the unlink in the writer's program
//      order: S's loads happen after the unlink and cannot return X.
//  (b) Otherwise S's ctr store, and so every load of S, comes after B_w on S's thread; B_w
//      follows the unlink, so S sees the new pointer, not X.
// With fences instead of membarrier, (a)/(b) is the usual store-buffering argument: the reader
// stores ctr, fences, loads the pointer; the writer stores the pointer, fences (the seq_cst
// increment and B_w), loads ctr; two seq_cst fences forbid both loads from missing both stores.
// Nesting changes one word with one store; a signal that interrupts read_lock or read_unlock
// between its load and its store runs whole sections that restore the word before returning, so
// the interrupted store is still right. Epochs are compared modulo 2^48: a reader can be behind
// the global epoch only by the number of grace periods that started while it was inside one
// section, and each of those waits for it, so a wrap cannot confuse the comparison.
//
// Where we differ from liburcu's memb flavour, and why:
// - Registration is implicit and lock-free: records live in blocks that are never freed (the
//   first one static, later ones from mmap, which a signal handler may call); a thread claims one
//   with a CAS on first use and gives it back at thread exit through a pthread key destructor.
//   liburcu's memb flavour asks each thread to call rcu_register_thread, under a mutex that its
//   grace period also takes (and drops while it sleeps); its "bp" flavour registers implicitly
//   from an mmapped arena, as we do, but under that mutex with signals blocked. An embedded
//   library cannot ask its host to register every thread, and a mutex on first use would make a
//   fresh thread's first section wait for a grace period and would be unsafe in a signal handler.
// - One pass with 64-bit words instead of liburcu's two-phase flip with a one-bit phase: our
//   epochs do not wrap in practice (see above), so a reader that is already in a newer section
//   is never waited for and one scan suffices.
// - No grace-period mutex: concurrent synchronize() calls are independent and each is correct on
//   its own; nothing is held while waiting. liburcu batches waiters behind rcu_gp_lock and uses
//   futexes to sleep; we spin briefly, then yield, then sleep, which suits rare writers.
// - No trailing barrier after the scan: our loads of reader words are acquire loads paired with
//   the readers' release stores, where liburcu uses plain loads and a final smp_mb_master().
// - fork(): a pthread_atfork child handler frees the records of every thread that does not exist
//   in the child (with whatever sections they had open) and re-registers membarrier, as
//   liburcu's urcu_memb_after_fork_child re-initialises its registry.
// First use. A thread's first section claims a record: a scan of the static block and, when every
// record there is taken, an mmap. Both are async-signal-safe. The pthread key that releases the
// record at thread exit is created at program start; the per-thread pthread_setspecific is a
// store into the thread's descriptor in glibc for the first 32 keys (ours is created at start,
// so it is one of them). Where no record can be had (mmap fails), the section counts in one shared
// counter that synchronize() also waits for: slower, still correct.
// Membarrier. The mode is decided once, before the first grace period: if registration fails,
// readers fence. If MEMBARRIER_CMD_PRIVATE_EXPEDITED fails after registration succeeded, readers
// that skipped their fence cannot be trusted, so the process aborts with a message instead of
// freeing memory that a reader may still use.
#pragma once

#include <atomic>
#include <cassert>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "owned_mutex.hpp"

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

/// Writes a message and aborts: for a broken invariant that no error code can report.
[[noreturn]] inline void fatal(char const* message) noexcept {
    ssize_t const n = ::write(STDERR_FILENO, message, std::strlen(message));
    (void)n;
    std::abort();
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

namespace rcu {

inline constexpr unsigned nest_bits = 16;
inline constexpr std::uint64_t nest_mask = (std::uint64_t{1} << nest_bits) - 1;
inline constexpr std::uint64_t epoch_unit = std::uint64_t{1} << nest_bits;
inline constexpr std::uint64_t epoch_mask = (std::uint64_t{1} << (64 - nest_bits)) - 1;

/// One reader's record, alone on its cache line.
struct alignas(64) reader {
    std::atomic<std::uint64_t> ctr{0};     // (epoch << nest_bits) | nesting; stored by its thread only,
                                           // and by the exit and fork hooks once that thread is gone
    std::atomic<bool> claimed{false};      // a thread owns it; CAS to claim, store to release
};

struct reader_block {
    static constexpr std::size_t size = 63;
    reader readers[size];
    reader_block* next = nullptr;  // immutable once the block is published
};

enum mode_value : int { mode_undecided = 0, mode_deciding = 1, mode_membarrier = 2, mode_fence = 3 };

/// Process-wide state; constant-initialised, so that it exists before any code runs and is
/// never destroyed (threads exiting after main() returns still release their records).
struct domain {
    std::atomic<std::uint64_t> gp{epoch_unit | 1};   // current epoch, nesting one
    std::atomic<int> mode{mode_undecided};           // monotonic: undecided, deciding, then final
    std::atomic<std::uint64_t> fence_scratch{0};     // for full_fence under TSan
    std::atomic<reader_block*> more{nullptr};        // mmapped blocks, pushed with a CAS
    std::atomic<std::uint64_t> anonymous{0};         // sections of threads that have no record
    std::atomic<int> setup{0};                       // 0, 1 in progress, 2 done
    pthread_key_t key{};                             // written once, before setup reads 2
    reader_block first{};                            // the static block
    std::atomic<void (*)() noexcept> before_exit{nullptr};  // run at thread exit before the record goes
    std::atomic<void (*)() noexcept> fork_child{nullptr};   // run in a fork child after the reset
};

inline constinit domain global{};
// The calling thread's record. Atomic because a signal handler may claim one while the thread
// itself is between claiming and publishing (claim() publishes with a CAS).
inline constinit thread_local std::atomic<reader*> tls_reader{nullptr};
inline constinit thread_local unsigned tls_anonymous_nesting = 0;
// Non-zero while the thread may not wait for a grace period although it is outside any section:
// something that waits for this thread may itself be inside one (see defer_grace_periods).
inline constinit thread_local unsigned tls_grace_periods_deferred = 0;

/// The value the pthread key holds for a thread that has no record but has been in an anonymous
/// section: its exit must still end that section.
inline void* anonymous_sentinel() noexcept { return &global.anonymous; }

/// Calls f on every record, in the static block and in every mmapped one.
template <class F>
void for_each_reader(F&& f) noexcept {
    for (reader& r : global.first.readers) f(r);
    for (reader_block* b = global.more.load(std::memory_order_acquire); b != nullptr; b = b->next) {
        for (reader& r : b->readers) f(r);
    }
}

inline void release_reader(reader& r) noexcept {
    r.ctr.store(0, std::memory_order_release);  // whatever it had open ended with its thread
    r.claimed.store(false, std::memory_order_release);
}

// Thread exit (the pthread key's destructor): after C++ thread_local destructors, which may still
// open sections, have run.
inline void on_thread_exit(void* p) noexcept {
    // From here on the thread is never parked (the freezer): its exit reports pin hierarchies
    // that another thread may be waiting to destroy. It counts as frozen once it is gone.
    tls_exiting.store(true, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (auto hook = global.before_exit.load(std::memory_order_acquire)) hook();
    if (tls_anonymous_nesting != 0) {  // it exited inside an anonymous section
        tls_anonymous_nesting = 0;
        global.anonymous.fetch_sub(1, std::memory_order_release);
    }
    if (p == anonymous_sentinel()) return;
    reader* expected = static_cast<reader*>(p);
    tls_reader.compare_exchange_strong(expected, nullptr, std::memory_order_relaxed);
    release_reader(*static_cast<reader*>(p));
}

inline void fork_child() noexcept {
    // Only the forking thread exists in the child: every other record belongs to a thread that
    // will never end its sections.
    reader const* mine = tls_reader.load(std::memory_order_relaxed);
    for_each_reader([mine](reader& r) {
        if (&r != mine) release_reader(r);
    });
    global.anonymous.store(tls_anonymous_nesting != 0 ? 1 : 0, std::memory_order_relaxed);
    // One thread, no reader to race: the mode may change here. A fork during another thread's
    // decision leaves it undecided (no thread would finish it); a registration that the child
    // lost is made again, or readers fence from now on.
    int const mode = global.mode.load(std::memory_order_relaxed);
    if (mode == mode_deciding) global.mode.store(mode_undecided, std::memory_order_relaxed);
    if (mode == mode_membarrier && ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0) {
        global.mode.store(mode_fence, std::memory_order_relaxed);
    }
    if (auto hook = global.fork_child.load(std::memory_order_acquire)) hook();
}

/// Creates the pthread key and the fork handler, once. Runs at program start (below); a thread
/// started by another static initializer may get here first, and then waits for the winner.
/// The membarrier mode, decided once (readers fence until then).
[[nodiscard]] inline int decided_mode() noexcept {
    int m = global.mode.load(std::memory_order_acquire);
    if (m == mode_membarrier || m == mode_fence) return m;
    int expected = mode_undecided;
    if (global.mode.compare_exchange_strong(expected, mode_deciding, std::memory_order_acq_rel)) {
        bool const ok = ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
        global.mode.store(ok ? mode_membarrier : mode_fence, std::memory_order_release);
    }
    while ((m = global.mode.load(std::memory_order_acquire)) == mode_deciding) ::sched_yield();
    return m;
}

/// Creates the pthread key and the fork handler, and decides the membarrier mode, once. Runs at
/// program start (below), while the process is normally single-threaded, so that registering
/// membarrier is cheap and no fork can happen in the middle of it; a thread started by another
/// static initializer may get here first, and then waits for the winner.
inline void setup() noexcept {
    int expected = 0;
    if (global.setup.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        if (::pthread_key_create(&global.key, on_thread_exit) != 0) fatal("containers: no pthread key for the RCU reader records\n");
        if (::pthread_atfork(nullptr, nullptr, fork_child) != 0) fatal("containers: cannot install the RCU fork handler\n");
        (void)decided_mode();
        global.setup.store(2, std::memory_order_release);
        return;
    }
    while (global.setup.load(std::memory_order_acquire) != 2) ::sched_yield();
}

struct setup_at_start {
    setup_at_start() noexcept { setup(); }
};
inline setup_at_start const run_setup_at_start{};

// A new block from mmap, with its first record claimed, pushed onto the list.
inline reader* grow() noexcept {
    void* raw = ::mmap(nullptr, sizeof(reader_block), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    auto* b = new (raw) reader_block;
    b->readers[0].claimed.store(true, std::memory_order_relaxed);
    reader_block* head = global.more.load(std::memory_order_relaxed);
    do {
        b->next = head;
    } while (!global.more.compare_exchange_weak(head, b, std::memory_order_release, std::memory_order_relaxed));
    return &b->readers[0];
}

/// The calling thread's first section: claims a record. Lock-free and async-signal-safe.
// A signal handler may interrupt this at any point and claim a record of its own: the first
// to publish into tls_reader wins, the other gives its record back.
[[gnu::noinline, gnu::cold]] inline reader* claim() noexcept {
    reader* mine = nullptr;
    for_each_reader([&](reader& r) {
        if (mine == nullptr && !r.claimed.load(std::memory_order_relaxed) &&
            !r.claimed.exchange(true, std::memory_order_acq_rel)) {
            mine = &r;
        }
    });
    if (mine == nullptr) mine = grow();
    if (mine == nullptr) return nullptr;
    if (global.setup.load(std::memory_order_acquire) != 2) setup();
    reader* published = nullptr;
    if (!tls_reader.compare_exchange_strong(published, mine, std::memory_order_relaxed)) {
        release_reader(*mine);  // a handler published one meanwhile
        return published;
    }
    if (::pthread_setspecific(global.key, mine) != 0) {
        tls_reader.store(nullptr, std::memory_order_relaxed);  // no exit hook: it could never be given back
        release_reader(*mine);
        return nullptr;
    }
    return mine;
}

[[nodiscard]] inline bool began_after(std::uint64_t ctr, std::uint64_t target) noexcept {
    std::uint64_t const ahead = ((ctr >> nest_bits) - (target >> nest_bits)) & epoch_mask;
    return ahead < (epoch_mask >> 1);
}

inline void backoff(unsigned& spins) noexcept {
    if (++spins < 100) return;
    if (spins < 200) {
        ::sched_yield();
        return;
    }
    timespec const pause{0, 200'000};  // a reader is in a long section: don't burn its CPU
    ::nanosleep(&pause, nullptr);
}

}  // namespace rcu

[[nodiscard]] inline bool in_read_section() noexcept {
    rcu::reader const* r = rcu::tls_reader.load(std::memory_order_relaxed);
    return rcu::tls_anonymous_nesting != 0 || (r != nullptr && (r->ctr.load(std::memory_order_relaxed) & rcu::nest_mask) != 0);
}

/// Whether the calling thread may wait for a grace period now: outside any section, and not a
/// thread that something inside a section may be waiting for (defer_grace_periods).
[[nodiscard]] inline bool may_wait_for_grace_period() noexcept {
    return rcu::tls_grace_periods_deferred == 0 && !in_read_section();
}

/// While one exists, the calling thread defers its grace periods (reclamation waits for a later
/// operation). For threads that others wait for, possibly from inside a read section: an exiting
/// thread reporting its bindings to a hierarchy being destroyed, a release agent's worker that
/// teardown waits for.
class defer_grace_periods {
public:
    defer_grace_periods() noexcept { ++rcu::tls_grace_periods_deferred; }
    ~defer_grace_periods() { --rcu::tls_grace_periods_deferred; }
    defer_grace_periods(defer_grace_periods const&) = delete;
    defer_grace_periods& operator=(defer_grace_periods const&) = delete;
};

inline void rcu_read_lock() noexcept {
    rcu::reader* r = rcu::tls_reader.load(std::memory_order_relaxed);
    if (r == nullptr || rcu::tls_anonymous_nesting != 0) [[unlikely]] {
        if (rcu::tls_anonymous_nesting == 0) r = rcu::claim();
        if (r == nullptr || rcu::tls_anonymous_nesting != 0) {
            // Count first, then nest: a signal between the two opens a section of its own. The
            // key's sentinel makes thread exit end an anonymous section left open.
            if (rcu::tls_anonymous_nesting == 0) {
                if (::pthread_getspecific(rcu::global.key) == nullptr) (void)::pthread_setspecific(rcu::global.key, rcu::anonymous_sentinel());
                rcu::global.anonymous.fetch_add(1, std::memory_order_seq_cst);
                full_fence(rcu::global.fence_scratch);
            }
            std::atomic_signal_fence(std::memory_order_seq_cst);
            ++rcu::tls_anonymous_nesting;
            return;
        }
    }
    // Release stores: a writer that reads a later value of this word (a newer epoch) and so does
    // not wait, still synchronizes with this thread's earlier sections.
    std::uint64_t const v = r->ctr.load(std::memory_order_relaxed);
    bool const membarrier = rcu::global.mode.load(std::memory_order_relaxed) == rcu::mode_membarrier;
    if ((v & rcu::nest_mask) != 0) {
        assert((v & rcu::nest_mask) != rcu::nest_mask && "containers: read sections nested too deep");
        r->ctr.store(v + 1, std::memory_order_release);
        // With fences, a signal handler's nested section may begin before the interrupted
        // outermost one fenced: fence here too (fence mode is the slow path anyway).
        if (!membarrier) full_fence(r->ctr);
        return;
    }
    std::uint64_t const g = rcu::global.gp.load(std::memory_order_acquire);
    r->ctr.store(g, std::memory_order_release);
    if (membarrier) {
        std::atomic_signal_fence(std::memory_order_seq_cst);  // membarrier in synchronize() does the rest
    } else {
        full_fence(r->ctr);
    }
}

inline void rcu_read_unlock() noexcept {
    rcu::reader* r = rcu::tls_reader.load(std::memory_order_relaxed);
    if (rcu::tls_anonymous_nesting != 0) {
        bool const outermost = --rcu::tls_anonymous_nesting == 0;
        std::atomic_signal_fence(std::memory_order_seq_cst);
        if (outermost) rcu::global.anonymous.fetch_sub(1, std::memory_order_release);
        return;
    }
    assert(r != nullptr && "containers: read_section ended on a thread that has none");
    std::uint64_t const v = r->ctr.load(std::memory_order_relaxed);
    assert((v & rcu::nest_mask) != 0 && "containers: read_section ended twice");
    r->ctr.store(v - 1, std::memory_order_release);
}

/// Waits until every read section that began before the call has ended. Must not be called
/// inside a read section (it would wait for itself; asserted). Holds no lock.
inline void synchronize() noexcept {
    assert(!in_read_section() && "containers: synchronize() inside a read section waits for itself");
    int const mode = rcu::decided_mode();
    std::uint64_t const target = rcu::global.gp.fetch_add(rcu::epoch_unit, std::memory_order_seq_cst) + rcu::epoch_unit;
    if (mode == rcu::mode_membarrier) {
        if (::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
            fatal("containers: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration; "
                  "readers cannot be trusted, aborting\n");
        }
    } else {
        full_fence(rcu::global.fence_scratch);
    }
    rcu::for_each_reader([target](rcu::reader& r) {
        for (unsigned spins = 0;; rcu::backoff(spins)) {
            std::uint64_t const v = r.ctr.load(std::memory_order_acquire);
            if ((v & rcu::nest_mask) == 0 || rcu::began_after(v, target)) break;
        }
    });
    for (unsigned spins = 0; rcu::global.anonymous.load(std::memory_order_acquire) != 0; rcu::backoff(spins)) {
    }
}

}  // namespace containers::detail

namespace containers {

/// RAII read-side section. Inside one, container and task pointers obtained from the read path
/// stay valid even if a concurrent writer moves the task and removes the container. Sections
/// nest, never block, write no shared memory and are async-signal-safe (detail/rcu.hpp).
class read_section {
public:
    read_section() noexcept { detail::rcu_read_lock(); }
    ~read_section() {
        detail::rcu_read_unlock();
        std::atomic_signal_fence(std::memory_order_seq_cst);  // the section's end, then the note
        // Work a signal handler put off until the thread left its sections (the freezer's park).
        if (detail::tls_after_last_unlock.load(std::memory_order_relaxed) != nullptr) [[unlikely]] detail::owned_mutex::run_after_last_unlock();
    }
    read_section(read_section const&) = delete;
    read_section& operator=(read_section const&) = delete;
};

}  // namespace containers
