// freezer: stop the tasks of a group and let them go again, as the kernel's cgroup v1 freezer
// (kernel/cgroup/legacy_freezer.c, Documentation/admin-guide/cgroup-v1/freezer-subsystem.rst).
//
// Files, in every container but the top one, with the kernel's formats and errors:
// freezer.state ("THAWED", "FREEZING" or "FROZEN"; a write takes "FROZEN" or "THAWED", white
// space around it ignored, anything else EINVAL), freezer.self_freezing and
// freezer.parent_freezing (read-only, 0 or 1). Freezing a group freezes every group below it
// (parent_freezing); a group is FREEZING until every task in it and below it is frozen, then
// FROZEN; thawing a group whose ancestor is frozen changes self_freezing only. A task that joins
// a freezing group (attach or fork) is frozen; one that moves to a group that is not freezing,
// or leaves the hierarchy, is thawed. A move is never refused, as in the kernel.
//
// The effect on threads is real, for threads of this process: like a garbage collector's
// stop-the-world (Boehm GC's pthread_stop_world, the suspend signal of HotSpot's old
// safepoints), the freezer sends the thread a real-time signal whose handler waits on a futex
// until the thread is thawed. Meanwhile the thread does not run: its CPU clock stops and /proc
// shows it sleeping (S). It counts as frozen once its handler is waiting, so a group is FROZEN
// when every thread acknowledged. Limits, said plainly:
// - A thread frozen while it holds a lock blocks every thread that needs that lock (malloc's, a
//   lock of libc's such as stdio's or the dynamic loader's, a mutex of the program), as with the
//   kernel's freezer: a thread of the same hierarchy that waits for it while holding the manage
//   lock blocks every other operation that takes the manage lock (mkdir, attach, file reads and
//   writes, a freeze, get_state) until the thaw. The thaw itself never waits for such a thread:
//   the typed set_state(c, thawed) takes only the freezer's gate lock, which is never held across
//   an allocation, a lock of libc's or a park. A write of "THAWED" to freezer.state through the
//   path interface (fs::write) runs its handler under the manage lock and may allocate before it
//   gets there: it can wait behind a frozen thread; thaw with the typed call, from a thread that
//   needs nothing a frozen thread may hold.
//   The library's own locks are never held by a parked thread: the handler never parks a thread
//   that holds or waits for one of the hierarchy's locks, the gate lock or another mutex of the
//   library (cell pool, thread-binding registry, cpuset's topology and domains, the fmeter),
//   or is inside a read_section (which a grace period waits for), or has begun to exit (its exit
//   reports pin hierarchies that their destructor waits for); such a thread parks when it has
//   released its last such lock and left its read_section (or when the group's state is read
//   again, which re-sends the signal to threads not yet frozen, or at try_to_freeze()); an
//   exiting thread never parks, and counts as frozen once it is gone.
//   A thread that moves itself into a freezing group, or freezes its own group, is therefore
//   frozen when the call returns, as the kernel freezes a writer on its return to user space.
// - A thread blocked in a system call is frozen when the signal interrupts it (the handler is
//   installed with SA_RESTART, so a restartable call resumes after the thaw, others fail with
//   EINTR as for any signal) or when the call returns.
// - A thread that blocks the signal (the release agent's thread does) is never frozen: its group
//   stays FREEZING, as the kernel's does for a task that does not enter the refrigerator.
// - Threads of other processes are not frozen: SIGSTOP would stop their whole process and can
//   be undone by anyone's SIGCONT, which is not the freezer's meaning. They may be in a frozen
//   group; the group then reads FREEZING, honestly.
// - The signal is SIGRTMIN + 6 unless the constructor is given another; registration fails with
//   EBUSY when another handler is installed for it, or when another freezer of this process
//   uses a different one. One signal per process.
// - A thread in frozen groups of two hierarchies whose handler must put off both freezes (it
//   holds a lock) keeps one: the other is paid at the next read of its group's state, which
//   sends the signal again. Each such read also interrupts, with EINTR, a non-restartable call
//   of a thread that owes a freeze.
// - The handler reads thread_locals of the library; where the library is used from a shared
//   object loaded with dlopen, the first access from a thread may allocate (the dynamic TLS
//   model): use it from the program or a library it links.
//
// Logical tasks (traits that are not thread_bound) are not stopped by the library: the runtime
// asks may_run(h, id) (lock-free) before it resumes a task, and does not resume a task of a
// freezing group. Such a group reads FROZEN as soon as it is freezing: the library cannot see a
// task that the runtime is running at that moment.
//
// Locking: the typed operations take the manage lock, except the thaw (see set_state); the files
// are subsystem_files, whose handlers the path interface runs under it and which call the
// *_locked forms; the hooks run with it (attach and fork with the callback lock too). The gate
// lock, innermost, guards the flags and the gate words; per-task records change under both;
// each group's `freezing` flag is also published for lock-free reads.
#pragma once

#include <atomic>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cftype.hpp"
#include "detail/errors.hpp"
#include "detail/owned_mutex.hpp"
#include "detail/rcu.hpp"
#include "detail/tree_walk.hpp"
#include "hierarchy.hpp"
#include "subsystem_concepts.hpp"

namespace containers {

enum class freezer_state { thawed, freezing, frozen };

namespace detail::freezing {

// One thread's gate. Cells live in a process-wide pool and are never freed, only reused, so that
// a signal handler that runs late (a signal queued before the cell was given back) touches valid
// memory; the generation in the cell's word and in the signal tells it that the cell is no
// longer its own.
struct cell {
    // The futex word: (generation << 1) | frozen. Written under the owning freezer's gate lock
    // (or by release, once the cell has left its freezer); read by the thread's handler. Every
    // freeze and every release starts a new generation, so that a handler, a park or a reader of
    // `parked` that works from an older word never matches the current one.
    std::atomic<std::uint32_t> word{0};
    // The word the thread is parked on, 0 when it is not parked. Written by the thread only,
    // cleared with a compare-exchange from the word it stored.
    std::atomic<std::uint32_t> parked{0};
    // Signals sent and not yet fully handled, plus threads inside honour() for this cell (the
    // handler's and the owed paths alike): the cell is reused only at 0.
    std::atomic<std::uint32_t> pending{0};
    pid_t tid = 0;                 // pool mutex
    std::uint32_t next_free = 0;   // pool mutex: index + 1 of the next cell in its list, 0 ends it
};

// The signal's value carries the cell's index in its upper 32 bits and the generation in the lower.
static_assert(sizeof(void*) >= 8, "containers: the freezer packs a cell index and a generation into a 64-bit sigval");

inline constexpr std::uint32_t chunk_cells = 1024;
inline constexpr std::uint32_t gen_mask = 0x7fffffffu;  // generations wrap at 31 bits
inline constexpr std::uint32_t max_chunks = 1024;  // a million threads frozen at once

struct pool_type {
    std::atomic<cell*> chunks[max_chunks]{};  // published once, never freed (reachable to the end)
    std::mutex mutex;                         // guards the lists and `used`; taken in no_freeze
    std::uint32_t used = 0;                   // cells handed out at least once
    std::uint32_t free_head = 0;              // index + 1
    std::uint32_t draining_head = 0;          // given back, a signal still in flight
    std::atomic<int> signo{0};                // the process's freezer signal, 0 before the first
};
inline constinit pool_type pool{};

// Async-signal-safe: two loads.
inline cell* find(std::uint32_t index) noexcept {
    if (index / chunk_cells >= max_chunks) return nullptr;
    cell* chunk = pool.chunks[index / chunk_cells].load(std::memory_order_acquire);
    return chunk == nullptr ? nullptr : &chunk[index % chunk_cells];
}

// A cell for thread `tid`, thawed. ENOMEM when the pool cannot grow.
inline std::error_code acquire(pid_t tid, std::uint32_t& out) noexcept {
    no_freeze nf;
    std::lock_guard g(pool.mutex);
    // Cells whose last signal has been handled can be used again.
    for (std::uint32_t* link = &pool.draining_head; *link != 0;) {
        cell* c = find(*link - 1);
        // A signal left pending on a thread that has exited is never handled: the kernel
        // dropped it with the thread. No freezer sends to a draining cell, so nothing races.
        if (c->pending.load(std::memory_order_acquire) != 0 && ::syscall(SYS_tgkill, ::getpid(), c->tid, 0) != 0 && errno == ESRCH) {
            c->pending.store(0, std::memory_order_relaxed);
        }
        if (c->pending.load(std::memory_order_acquire) == 0) {
            std::uint32_t const index = *link - 1;
            *link = c->next_free;
            c->next_free = pool.free_head;
            pool.free_head = index + 1;
        } else {
            link = &c->next_free;
        }
    }
    std::uint32_t index;
    if (pool.free_head != 0) {
        index = pool.free_head - 1;
        pool.free_head = find(index)->next_free;
    } else {
        index = pool.used;
        if (index / chunk_cells >= max_chunks) return errno_code(ENOMEM);
        std::atomic<cell*>& slot = pool.chunks[index / chunk_cells];
        if (slot.load(std::memory_order_relaxed) == nullptr) {
            cell* chunk = new (std::nothrow) cell[chunk_cells];
            if (chunk == nullptr) return errno_code(ENOMEM);
            slot.store(chunk, std::memory_order_release);
        }
        ++pool.used;
    }
    cell* c = find(index);
    c->tid = tid;
    c->next_free = 0;
    out = index;
    return {};
}

inline void wake(std::atomic<std::uint32_t>& word) noexcept {
    (void)::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

// Thaws the cell into a new generation (a late handler of the old one leaves at once) and gives
// it back. No allocation. The cell must have left its freezer's map (no gate writes it any more).
inline void release(std::uint32_t index) noexcept {
    cell* c = find(index);
    std::uint32_t const w = c->word.load(std::memory_order_relaxed);
    c->word.store((((w >> 1) + 1) & gen_mask) << 1, std::memory_order_seq_cst);
    wake(c->word);
    no_freeze nf;
    std::lock_guard g(pool.mutex);
    c->next_free = pool.draining_head;  // tid kept: acquire asks whether that thread still exists
    pool.draining_head = index + 1;
}

inline bool is_frozen(std::uint32_t w) noexcept { return (w & 1u) != 0; }

// Whether the thread of `index` is parked on its current, frozen word.
inline bool parked(std::uint32_t index) noexcept {
    cell* c = find(index);
    std::uint32_t const w = c->word.load(std::memory_order_seq_cst);
    return is_frozen(w) && c->parked.load(std::memory_order_seq_cst) == w;
}

// Sends the freeze signal for `index` to thread `tid` of this process. 0, or ESRCH (no such
// thread here: gone, or of another process), EAGAIN (the signal queue is full).
inline int send(std::uint32_t index, pid_t tid) noexcept {
    cell* c = find(index);
    std::uint32_t const w = c->word.load(std::memory_order_relaxed);
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    int const signo = pool.signo.load(std::memory_order_relaxed);
    info.si_signo = signo;
    info.si_code = SI_QUEUE;
    info.si_pid = ::getpid();
    info.si_uid = ::getuid();
    info.si_value.sival_ptr = reinterpret_cast<void*>((static_cast<std::uintptr_t>(index) << 32) | (w >> 1));
    c->pending.fetch_add(1, std::memory_order_seq_cst);
    if (::syscall(SYS_rt_tgsigqueueinfo, ::getpid(), tid, signo, &info) != 0) {
        int const e = errno;
        c->pending.fetch_sub(1, std::memory_order_seq_cst);
        return e;
    }
    return 0;
}

// Waits while the cell's word is `expect`. Async-signal-safe. The caller holds a `pending`
// reference on the cell, so that it is not handed to another thread meanwhile.
inline void park(cell& c, std::uint32_t expect) noexcept {
    c.parked.store(expect, std::memory_order_seq_cst);
    while (c.word.load(std::memory_order_seq_cst) == expect) {
        (void)::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&c.word), FUTEX_WAIT_PRIVATE, expect, nullptr, nullptr, 0);
    }
    std::uint32_t mine = expect;  // a later park (a nested handler's) may have stored its own
    c.parked.compare_exchange_strong(mine, 0, std::memory_order_seq_cst);
}

// A freeze the handler could not honour at once (the thread held a lock or was in a read
// section): ((index + 1) << 32) | generation, 0 when none, paid when the thread is free. One
// slot: a second debt (another freezer's, on a thread in two frozen groups of two hierarchies)
// replaces the first; the replaced one is paid at the next read of its group's state, which
// sends the signal again to a thread that is neither parked nor has one in flight. Taken with an
// exchange, so that a handler that runs while it is being paid never loses its own.
inline constinit thread_local std::atomic<std::uint64_t> tls_owed{0};

inline bool may_park_now() noexcept {
    return detail::tls_owned_locks.load(std::memory_order_relaxed) == 0 && !detail::in_read_section() &&
           !detail::tls_exiting.load(std::memory_order_relaxed);
}

inline void pay_owed() noexcept;

inline void owe(std::uint32_t index, std::uint32_t gen) noexcept {
    if (detail::tls_exiting.load(std::memory_order_relaxed)) return;  // never parks again
    tls_owed.store((static_cast<std::uint64_t>(index) + 1) << 32 | gen, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    detail::tls_after_last_unlock.store(&pay_owed, std::memory_order_relaxed);
}

// Parks (or owes) for the cell `index` if it is still frozen in generation `gen`. Holds a
// `pending` reference throughout, so that the cell is not reused while this thread may still
// store into its `parked`.
inline void honour(std::uint32_t index, std::uint32_t gen) noexcept {
    cell* c = find(index);
    if (c == nullptr) return;
    std::uint32_t const expect = (gen << 1) | 1u;
    c->pending.fetch_add(1, std::memory_order_seq_cst);
    if (c->word.load(std::memory_order_seq_cst) == expect) {
        if (may_park_now()) {
            park(*c, expect);
        } else {
            owe(index, gen);
        }
    }
    c->pending.fetch_sub(1, std::memory_order_seq_cst);
}

inline void pay_owed() noexcept {
    std::uint64_t const debt = tls_owed.exchange(0, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (debt == 0) return;
    honour(static_cast<std::uint32_t>((debt >> 32) - 1), static_cast<std::uint32_t>(debt));
}

inline void handler(int, siginfo_t* si, void*) noexcept {
    int const saved = errno;
    if (si->si_code == SI_QUEUE && si->si_pid == ::getpid()) {
        auto const v = reinterpret_cast<std::uintptr_t>(si->si_value.sival_ptr);
        auto const index = static_cast<std::uint32_t>(v >> 32);
        if (cell* c = find(index)) {
            honour(index, static_cast<std::uint32_t>(v & gen_mask));
            c->pending.fetch_sub(1, std::memory_order_seq_cst);  // last: the cell may be reused now
        }
    }
    errno = saved;
}

// Installs the handler for `signo`, once per process. EINVAL (not a real-time signal: a standard
// one does not queue, so a second freeze sent while one is pending would be lost and the group
// would stay FREEZING), EBUSY (another freezer of this process uses another signal, or a foreign
// handler holds it).
inline std::error_code install(int signo) noexcept {
    if (signo < SIGRTMIN || signo > SIGRTMAX) return errno_code(EINVAL);
    no_freeze nf;
    std::lock_guard g(pool.mutex);
    int const have = pool.signo.load(std::memory_order_relaxed);
    if (have != 0) return have == signo ? std::error_code{} : errno_code(EBUSY);
    struct sigaction old;
    if (::sigaction(signo, nullptr, &old) != 0) return errno_code(errno);
    bool const foreign = (old.sa_flags & SA_SIGINFO) != 0 ? old.sa_sigaction != nullptr
                                                          : old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN;
    if (foreign) return errno_code(EBUSY);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = &handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(signo, &sa, nullptr) != 0) return errno_code(errno);
    pool.signo.store(signo, std::memory_order_relaxed);
    return {};
}

}  // namespace detail::freezing

template <class H>
class basic_freezer : public subsystem_tag {
public:
    using hierarchy_type = H;
    using container = typename H::container;
    using id_type = typename H::id_type;
    static constexpr std::string_view name = "freezer";
    static constexpr bool thread_bound = H::traits_type::thread_bound;

    struct state {
        std::atomic<bool> self_freezing{false};    // written under the gate lock, read with it
        std::atomic<bool> parent_freezing{false};  // or the manage lock (a freeze holds both)
        std::atomic<bool> freezing{false};         // self or parent; written under the gate lock,
                                                   // read lock-free
        state* up = nullptr;                       // immutable: the parent's state (none at the top)
        state* next = nullptr;                     // gate lock: every linked group's state
        state* prev = nullptr;                     // gate lock
        bool linked = false;                       // gate lock: from create to destroy
    };

    /// The default signal: SIGRTMIN + 6 (glibc keeps the first real-time signals for itself and
    /// hands out SIGRTMIN and up; the offset leaves room for a program's own).
    static int default_signal() noexcept { return SIGRTMIN + 6; }

    /// `signo`: the signal that stops threads (ignored for logical tasks). Registration fails
    /// with EBUSY where it clashes (see the header's comment), EINVAL where it is not a real-time
    /// signal (SIGRTMIN..SIGRTMAX).
    explicit basic_freezer(int signo = default_signal()) noexcept : signo_(signo) {}
    ~basic_freezer() {
        for (auto const& [id, e] : cells_) detail::freezing::release(e.index);  // nobody stays frozen
    }
    basic_freezer(basic_freezer const&) = delete;
    basic_freezer& operator=(basic_freezer const&) = delete;

    [[nodiscard]] int signal() const noexcept { return signo_; }

    // ---- hooks ---------------------------------------------------------------------------------

    /// The top container installs the signal handler; a child starts freezing if its parent is
    /// (the kernel's freezer_css_online). Manage lock held.
    std::error_code create(state& s, container& c) noexcept {
        if (c.is_top()) {
            owner_ = &c.owner();
            if constexpr (thread_bound) {
                if (std::error_code ec = detail::freezing::install(signo_)) return ec;
            }
        } else {
            s.up = &state_of(*c.parent());
        }
        std::lock_guard g(gate_);
        s.next = all_;
        if (all_ != nullptr) all_->prev = &s;
        all_ = &s;
        s.linked = true;
        bool const p = s.up != nullptr && s.up->freezing.load(std::memory_order_relaxed);
        s.parent_freezing.store(p, std::memory_order_relaxed);
        s.freezing.store(p, std::memory_order_relaxed);
        return {};
    }

    /// The group leaves the freezer's list (a thaw walks that list, not the tree). Manage lock
    /// held.
    void destroy(state& s, container&) noexcept {
        std::lock_guard g(gate_);
        if (!s.linked) return;
        (s.prev != nullptr ? s.prev->next : all_) = s.next;
        if (s.next != nullptr) s.next->prev = s.prev;
        s.linked = false;
        for (auto& [id, e] : cells_) {
            if (e.group == &s) e.group = nullptr;  // only at teardown: a removed group is empty
        }
    }

    /// Into a freezing group: every moving thread gets its gate now, so that attach cannot fail.
    /// ENOMEM. Manage lock held.
    std::error_code can_attach(state& s, container&, task_set<container> tasks) noexcept {
        if constexpr (thread_bound) {
            if (!s.freezing.load(std::memory_order_relaxed)) return {};
            for (auto const& t : tasks) {
                if (std::error_code ec = ensure_cell(t.id, t.from != nullptr ? &state_of(*t.from) : nullptr)) return ec;
            }
        }
        return {};
    }

    /// Each task takes its new group's state: frozen in a freezing group, thawed otherwise (the
    /// kernel's freezer_attach). Manage and callback locks held.
    void attach(state& s, container&, task_set<container> tasks) noexcept {
        if constexpr (thread_bound) {
            bool const freeze = s.freezing.load(std::memory_order_relaxed);
            std::lock_guard g(gate_);
            for (auto const& t : tasks) {
                auto it = cells_.find(t.id);
                if (it == cells_.end()) continue;  // never frozen, nothing to thaw
                it->second.group = &s;
                set_task(t.id, it->second, freeze);
            }
        } else {
            (void)s;
            (void)tasks;
        }
    }

    /// A child forked into a freezing group is frozen (freezer_fork). Best effort where no gate
    /// can be allocated: it is then frozen by the next read of its group's state. Manage and
    /// callback locks held.
    void fork(state& s, container&, id_type, id_type child) noexcept {
        if (!s.freezing.load(std::memory_order_relaxed)) return;
        if constexpr (thread_bound) {
            if (ensure_cell(child, &s)) return;
            std::lock_guard g(gate_);
            auto it = cells_.find(child);
            set_task(child, it->second, true);
        } else {
            (void)child;
        }
    }

    /// A task that leaves the hierarchy is thawed and its gate given back. Manage and callback
    /// locks held.
    void exit(state&, container&, id_type task) noexcept {
        if constexpr (thread_bound) {
            typename cell_map::node_type gone;  // freed after the gate lock
            {
                std::lock_guard g(gate_);
                auto it = cells_.find(task);
                if (it == cells_.end()) return;
                gone = cells_.extract(it);
            }
            detail::freezing::release(gone.mapped().index);
        } else {
            (void)task;
        }
    }

    template <class C>
    static std::vector<cftype<C>> const& files();

    // ---- typed operations ----------------------------------------------------------------------

    /// Effects: freezes (freezer_state::frozen) or thaws (freezer_state::thawed) `c` and, through
    ///   parent_freezing, everything below it, as a write of freezer.state. Thawing a group whose
    ///   ancestor is freezing only clears self_freezing. Threads are sent the signal under the
    ///   lock; the calling thread, if it is among them, is frozen when this returns.
    /// Errors: EINVAL (freezer_state::freezing, or the top container, which has no
    ///   freezer.state), ENODEV (removed), ENOMEM (no gate for a thread: nothing changed).
    /// Locking: a freeze takes the manage lock, then the callback lock and the gate lock at the
    ///   moment of change. A thaw takes only the freezer's gate lock, which nothing holds across
    ///   an allocation or a lock of libc's and which no thread holds while parked: it completes
    ///   while a thread that holds the manage lock waits for malloc's lock behind a frozen thread.
    ///   `c` must stay valid for the call (an owned_container, a read_section, or the manage lock).
    /// Complexity: a freeze O(containers and tasks below `c`); both O(groups and gated threads of
    ///   the hierarchy) under the gate lock; one signal per thread that freezes.
    [[nodiscard]] std::error_code set_state(container& c, freezer_state to) noexcept {
        if (to == freezer_state::thawed) return thaw(c);
        auto lock = c.owner().manage_lock();
        return set_state_locked(c, to);
    }
    /// set_state with the manage lock held (asserted): what freezer.state's handler calls.
    [[nodiscard]] std::error_code set_state_locked(container& c, freezer_state to) noexcept {
        assert(c.owner().manage_lock_held());
        if (to == freezer_state::freezing || c.is_top()) return detail::errno_code(EINVAL);
        if (to == freezer_state::thawed) return thaw(c);
        H& h = c.owner();
        if (c.removed()) return detail::errno_code(ENODEV);
        if constexpr (thread_bound) {
            // Phase one: every gate that the change needs (this allocates: not under the gate).
            for (container& d : detail::subtree_walk(c, true)) {
                for (auto const& t : detail::tree_access::tasks(d)) {
                    if (std::error_code ec = ensure_cell(t.id, &state_of(d))) return ec;
                }
            }
        }
        auto cb = h.callback_lock();
        std::lock_guard g(gate_);
        state_of(c).self_freezing.store(true, std::memory_order_relaxed);
        sync_locked(true);
        return {};
    }

    /// Effects: the state freezer.state shows: THAWED when `c` is not freezing; FROZEN when every
    ///   task in it and below it is frozen (for threads: waiting in the handler, or gone); else
    ///   FREEZING, and the signal is sent again to each thread of this process not yet frozen
    ///   that has none in flight. The top container is always THAWED.
    /// Locking: takes the manage lock. Complexity: O(containers and tasks below `c`).
    [[nodiscard]] freezer_state get_state(container& c) noexcept {
        H& h = c.owner();
        auto lock = h.manage_lock();
        return state_locked(c);
    }

    /// freezer.self_freezing and freezer.parent_freezing. Take the manage lock.
    [[nodiscard]] bool self_freezing(container& c) noexcept {
        auto lock = c.owner().manage_lock();
        return state_of(c).self_freezing.load(std::memory_order_relaxed);
    }
    [[nodiscard]] bool parent_freezing(container& c) noexcept {
        auto lock = c.owner().manage_lock();
        return state_of(c).parent_freezing.load(std::memory_order_relaxed);
    }

    // ---- one getter per file, as cpuset's -------------------------------------------------------
    //
    // The forms the files call (set_state_locked above is freezer.state's setter): the file and
    // the typed call answer alike. Errors: ENODEV (`c` removed). Locking: the plain forms take the
    // manage lock, the *_locked forms require it (asserted).

    /// freezer.state, as get_state(c).
    [[nodiscard]] std::error_code get_state(container& c, freezer_state& out) noexcept {
        auto lock = c.owner().manage_lock();
        return get_state_locked(c, out);
    }
    [[nodiscard]] std::error_code get_state_locked(container& c, freezer_state& out) noexcept {
        assert(c.owner().manage_lock_held());
        if (c.removed()) return detail::errno_code(ENODEV);
        out = state_locked(c);
        return {};
    }
    /// freezer.self_freezing and freezer.parent_freezing.
    [[nodiscard]] std::error_code get_self_freezing(container& c, bool& out) noexcept {
        auto lock = c.owner().manage_lock();
        return get_self_freezing_locked(c, out);
    }
    [[nodiscard]] std::error_code get_parent_freezing(container& c, bool& out) noexcept {
        auto lock = c.owner().manage_lock();
        return get_parent_freezing_locked(c, out);
    }
    [[nodiscard]] std::error_code get_self_freezing_locked(container& c, bool& out) noexcept {
        return get_flag_locked(c, &state::self_freezing, out);
    }
    [[nodiscard]] std::error_code get_parent_freezing_locked(container& c, bool& out) noexcept {
        return get_flag_locked(c, &state::parent_freezing, out);
    }

    /// Whether `c` is freezing (self or an ancestor). Lock-free: for a runtime's scheduler.
    [[nodiscard]] static bool freezing(container const& c) noexcept {
        return state_of(c).freezing.load(std::memory_order_acquire);
    }

    /// Whether the runtime may resume task `id` now: false while its group is freezing. For
    /// logical tasks, which the library cannot stop. Lock-free; call inside a read_section.
    [[nodiscard]] static bool may_run(H& h, id_type id) noexcept { return !freezing(h.container_of(id)); }

    /// Effects: a cooperative freezing point: the calling thread parks here if its group is
    ///   freezing (and pays a freeze that its handler had to put off). It must hold no lock of
    ///   the hierarchy and be outside any read_section; otherwise it returns at once.
    /// Locking: takes the manage lock briefly.
    void try_to_freeze(H& h) noexcept {
        if (!detail::freezing::may_park_now()) return;
        detail::freezing::pay_owed();
        if constexpr (thread_bound) {
            std::uint32_t index = 0;
            std::uint32_t w = 0;
            {
                auto lock = h.manage_lock();
                auto it = cells_.find(H::traits_type::self());
                if (it == cells_.end()) return;
                index = it->second.index;
                w = detail::freezing::find(index)->word.load(std::memory_order_seq_cst);
            }
            if (detail::freezing::is_frozen(w)) detail::freezing::honour(index, w >> 1);
        }
    }

private:
    // A thread's gate and the group it is in (nullptr: not known yet; counts as not freezing).
    struct gate_entry {
        std::uint32_t index = 0;
        state* group = nullptr;
    };
    // A node-based map, so that an entry is made (allocated) before the gate lock is taken and
    // linked under it, and unlinked under it and freed after.
    using cell_map = std::map<id_type, gate_entry>;

    static state& state_of(container const& c) noexcept { return c.owner().template state_of<basic_freezer>(c); }

    static std::error_code get_flag_locked(container& c, std::atomic<bool> state::*flag, bool& out) noexcept {
        assert(c.owner().manage_lock_held());
        if (c.removed()) return detail::errno_code(ENODEV);
        out = (state_of(c).*flag).load(std::memory_order_relaxed);
        return {};
    }

    // The thaw: the gate lock only, no allocation, no manage lock.
    std::error_code thaw(container& c) noexcept {
        if (c.is_top()) return detail::errno_code(EINVAL);
        state& s = state_of(c);
        std::lock_guard g(gate_);
        if (!s.linked) return detail::errno_code(ENODEV);
        s.self_freezing.store(false, std::memory_order_relaxed);
        sync_locked(false);
        return {};
    }

    // Recomputes every group's parent_freezing and freezing from the self_freezing flags above
    // it, then brings every gated thread to its group's state (`freeze`: freeze those that
    // should be frozen too, which needs the manage lock; else thaw only). Gate lock held.
    void sync_locked(bool freeze) noexcept {
        for (state* s = all_; s != nullptr; s = s->next) {
            bool p = false;
            for (state* a = s->up; a != nullptr && !p; a = a->up) p = a->self_freezing.load(std::memory_order_relaxed);
            s->parent_freezing.store(p, std::memory_order_relaxed);
            s->freezing.store(p || s->self_freezing.load(std::memory_order_relaxed), std::memory_order_release);
        }
        if constexpr (thread_bound) {
            for (auto& [id, e] : cells_) {
                bool const want = e.group != nullptr && e.group->freezing.load(std::memory_order_relaxed);
                if (want && !freeze) continue;
                set_task(id, e, want);
            }
        }
    }

    // A gate for thread `tid` in group `group` (recorded, when given, for an existing gate too).
    // Manage lock held; takes the gate lock only to link the entry made before it.
    std::error_code ensure_cell(id_type tid, state* group) noexcept {
        if (auto it = cells_.find(tid); it != cells_.end()) {
            if (group != nullptr && it->second.group != group) {
                std::lock_guard g(gate_);
                it->second.group = group;
            }
            return {};
        }
        std::uint32_t index = 0;
        if (std::error_code ec = detail::freezing::acquire(tid, index)) return ec;
        cell_map made;
        if (std::error_code ec = detail::guarded_call([&] {
                made.emplace(tid, gate_entry{index, group});
                return std::error_code{};
            })) {
            detail::freezing::release(index);
            return ec;
        }
        std::lock_guard g(gate_);
        cells_.insert(made.extract(made.begin()));
        return {};
    }

    // Freezes or thaws one gated thread. To freeze, the manage lock is held too (a thread whose
    // id no longer names the task recorded is not signalled). Gate lock held: no allocation.
    void set_task(id_type id, gate_entry const& e, bool freeze) noexcept {
        detail::freezing::cell* c = detail::freezing::find(e.index);
        std::uint32_t const w = c->word.load(std::memory_order_relaxed);
        if (detail::freezing::is_frozen(w) == freeze) return;
        if (!freeze) {
            c->word.store(w & ~1u, std::memory_order_seq_cst);
            detail::freezing::wake(c->word);
            return;
        }
        std::uint32_t const gen = ((w >> 1) + 1) & detail::freezing::gen_mask;  // a new generation per freeze
        c->word.store((gen << 1) | 1u, std::memory_order_seq_cst);
        if (self_task(id)) {
            // Signalled now, the handler would find the hierarchy's lock held: owe it, and
            // the thread parks when it releases its last lock.
            detail::freezing::owe(e.index, gen);
            return;
        }
        if (owner_->task_identity_ok(id)) (void)detail::freezing::send(e.index, id);
    }

    static bool self_task(id_type id) noexcept { return id == H::traits_type::self(); }

    freezer_state state_locked(container& c) noexcept {
        if (!state_of(c).freezing.load(std::memory_order_relaxed)) return freezer_state::thawed;
        bool all = true;
        if constexpr (thread_bound) {
            for (container& d : detail::subtree_walk(c, true)) {
                for (auto const& t : detail::tree_access::tasks(d)) {
                    if (task_frozen(t, state_of(d))) continue;
                    all = false;
                }
            }
        }
        return all ? freezer_state::frozen : freezer_state::freezing;
    }

    // Whether one thread counts as frozen; if not, nudges it. Manage lock held.
    template <class T>
    bool task_frozen(T const& t, state& group) noexcept {
        if (!group.freezing.load(std::memory_order_relaxed)) return false;  // thawed meanwhile
        (void)ensure_cell(t.id, &group);  // a fork that found no memory for a gate
        auto it = cells_.find(t.id);
        if (it == cells_.end()) return !t.alive();
        if (detail::freezing::parked(it->second.index)) return true;
        if (!t.alive()) return true;  // exited: it will be reaped, and runs no more
        std::lock_guard g(gate_);
        detail::freezing::cell* c = detail::freezing::find(it->second.index);
        std::uint32_t const w = c->word.load(std::memory_order_relaxed);
        if (!group.freezing.load(std::memory_order_relaxed)) return false;
        if (!detail::freezing::is_frozen(w)) {
            set_task(t.id, it->second, true);
        } else if (!self_task(t.id) && c->pending.load(std::memory_order_seq_cst) == 0) {
            (void)detail::freezing::send(it->second.index, t.id);
        }
        return false;
    }

    int const signo_;
    H* owner_ = nullptr;              // set by the top container's create
    detail::owned_mutex gate_;        // the cell words, the flags, all_, the entries' groups;
                                      // innermost; never held across an allocation or a park
    cell_map cells_;                  // changed under the manage lock and gate_, read with either
    state* all_ = nullptr;            // gate_: every linked group's state
};

// Every handler calls the typed *_locked form of its file, under the manage lock that the path
// interface holds (subsystem_files).
template <class H>
template <class C>
std::vector<cftype<C>> const& basic_freezer<H>::files() {
    static std::vector<cftype<C>> const all = [] {
        using fz = basic_freezer<H>;
        using typed = subsystem_files<fz, C>;
        std::vector<cftype<C>> v;
        cftype<C> st = typed::file(
            "freezer.state",
            [](fz& f, state&, C& c, std::string& out) {
                static constexpr std::string_view names[] = {"THAWED\n", "FREEZING\n", "FROZEN\n"};
                freezer_state now{};
                if (std::error_code ec = f.get_state_locked(c, now)) return ec;
                out += names[static_cast<int>(now)];
                return std::error_code{};
            },
            [](fz& f, state&, C& c, std::string_view value) {
                value = parse::strip(value);
                if (value == "FROZEN") return f.set_state_locked(c, freezer_state::frozen);
                if (value == "THAWED") return f.set_state_locked(c, freezer_state::thawed);
                return detail::errno_code(EINVAL);
            });
        st.scope = cftype<C>::where::not_top;
        v.push_back(st);
        cftype<C> self_f = typed::flag("freezer.self_freezing", [](fz& f, state&, C& c, bool& out) { return f.get_self_freezing_locked(c, out); });
        self_f.scope = cftype<C>::where::not_top;
        v.push_back(self_f);
        cftype<C> parent_f =
            typed::flag("freezer.parent_freezing", [](fz& f, state&, C& c, bool& out) { return f.get_parent_freezing_locked(c, out); });
        parent_f.scope = cftype<C>::where::not_top;
        v.push_back(parent_f);
        return v;
    }();
    return all;
}

/// The freezer subsystem for the default hierarchy of threads.
using freezer = basic_freezer<hierarchy<>>;

}  // namespace containers
