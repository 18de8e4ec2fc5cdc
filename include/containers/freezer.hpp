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
//   mutex of the program), as with the kernel's freezer. The library's own locks are the
//   exception: the handler never parks a thread that holds or waits for one of the hierarchy's
//   locks (which thawing needs) or is inside a read_section (which a grace period waits for);
//   such a thread parks when it has released its last hierarchy lock and left its read_section
//   (or when the group's state is read again, which re-sends the signal to threads not yet
//   frozen, or at try_to_freeze()).
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
// - The thaw path takes the manage lock and allocates nothing.
//
// Logical tasks (traits that are not thread_bound) are not stopped by the library: the runtime
// asks may_run(h, id) (lock-free) before it resumes a task, and does not resume a task of a
// freezing group. Such a group reads FROZEN as soon as it is freezing: the library cannot see a
// task that the runtime is running at that moment.
//
// Locking: the typed operations take the manage lock; the files are subsystem_files, whose
// handlers the path interface runs under it and which call the *_locked forms; the hooks run
// with it (attach and fork with the callback lock too). Per-task records are guarded by the manage lock;
// each group's `freezing` flag is also published for lock-free reads.
#pragma once

#include <atomic>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
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
    // The futex word: (generation << 1) | frozen. Written under the owning freezer's manage
    // lock; read by the thread's handler.
    std::atomic<std::uint32_t> word{0};
    // The word the thread is parked on, 0 when it is not parked. Written by the thread only.
    std::atomic<std::uint32_t> parked{0};
    // Signals sent and not yet fully handled: the cell is reused only at 0.
    std::atomic<std::uint32_t> pending{0};
    pid_t tid = 0;                 // pool mutex
    std::uint32_t next_free = 0;   // pool mutex: index + 1 of the next cell in its list, 0 ends it
};

inline constexpr std::uint32_t chunk_cells = 1024;
inline constexpr std::uint32_t max_chunks = 1024;  // a million threads frozen at once

struct pool_type {
    std::atomic<cell*> chunks[max_chunks]{};  // published once, never freed (reachable to the end)
    std::mutex mutex;                         // guards the lists and `used`
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
// it back. No allocation.
inline void release(std::uint32_t index) noexcept {
    cell* c = find(index);
    std::uint32_t const w = c->word.load(std::memory_order_relaxed);
    c->word.store(((w >> 1) + 1) << 1, std::memory_order_seq_cst);
    wake(c->word);
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

// Waits while the cell's word is `expect`. Async-signal-safe.
inline void park(cell& c, std::uint32_t expect) noexcept {
    c.parked.store(expect, std::memory_order_seq_cst);
    while (c.word.load(std::memory_order_seq_cst) == expect) {
        (void)::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&c.word), FUTEX_WAIT_PRIVATE, expect, nullptr, nullptr, 0);
    }
    c.parked.store(0, std::memory_order_seq_cst);
}

// A freeze the handler could not honour at once (the thread held a hierarchy lock or was in a
// read section): index + 1 and generation, paid when the thread is free.
inline constinit thread_local std::uint32_t tls_owed_index = 0;
inline constinit thread_local std::uint32_t tls_owed_gen = 0;

inline bool may_park_now() noexcept { return detail::tls_owned_locks == 0 && !detail::in_read_section(); }

inline void pay_owed() noexcept;

inline void owe(std::uint32_t index, std::uint32_t gen) noexcept {
    tls_owed_gen = gen;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    tls_owed_index = index + 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    detail::tls_after_last_unlock = &pay_owed;
}

// Parks (or owes) for the cell `index` if it is still frozen in generation `gen`.
inline void honour(std::uint32_t index, std::uint32_t gen) noexcept {
    cell* c = find(index);
    if (c == nullptr) return;
    std::uint32_t const expect = (gen << 1) | 1u;
    if (c->word.load(std::memory_order_seq_cst) != expect) return;
    if (!may_park_now()) {
        owe(index, gen);
        return;
    }
    park(*c, expect);
}

inline void pay_owed() noexcept {
    std::uint32_t const index = tls_owed_index;
    if (index == 0) return;
    std::uint32_t const gen = tls_owed_gen;
    tls_owed_index = 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    honour(index - 1, gen);
}

inline void handler(int, siginfo_t* si, void*) noexcept {
    int const saved = errno;
    if (si->si_code == SI_QUEUE && si->si_pid == ::getpid()) {
        auto const v = reinterpret_cast<std::uintptr_t>(si->si_value.sival_ptr);
        auto const index = static_cast<std::uint32_t>(v >> 32);
        if (cell* c = find(index)) {
            honour(index, static_cast<std::uint32_t>(v & 0x7fffffffu));
            c->pending.fetch_sub(1, std::memory_order_seq_cst);  // last: the cell may be reused now
        }
    }
    errno = saved;
}

// Installs the handler for `signo`, once per process. EINVAL (not a signal a process may catch),
// EBUSY (another freezer of this process uses another signal, or a foreign handler holds it).
inline std::error_code install(int signo) noexcept {
    if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP) return errno_code(EINVAL);
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
        bool self_freezing = false;          // manage lock
        bool parent_freezing = false;        // manage lock
        std::atomic<bool> freezing{false};   // self or parent; written under the manage and
                                             // callback locks, read lock-free
    };

    /// The default signal: SIGRTMIN + 6 (glibc keeps the first real-time signals for itself and
    /// hands out SIGRTMIN and up; the offset leaves room for a program's own).
    static int default_signal() noexcept { return SIGRTMIN + 6; }

    /// `signo`: the signal that stops threads (ignored for logical tasks). Registration fails
    /// with EBUSY where it clashes (see the header's comment), EINVAL where it cannot be caught.
    explicit basic_freezer(int signo = default_signal()) noexcept : signo_(signo) {}
    ~basic_freezer() {
        for (auto const& [id, index] : cells_) detail::freezing::release(index);  // nobody stays frozen
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
            if constexpr (thread_bound) return detail::freezing::install(signo_);
            return {};
        }
        s.parent_freezing = state_of(*c.parent()).freezing.load(std::memory_order_relaxed);
        s.freezing.store(s.parent_freezing, std::memory_order_relaxed);
        return {};
    }

    /// Into a freezing group: every moving thread gets its gate now, so that attach cannot fail.
    /// ENOMEM. Manage lock held.
    std::error_code can_attach(state& s, container&, task_set<container> tasks) noexcept {
        if constexpr (thread_bound) {
            if (!s.freezing.load(std::memory_order_relaxed)) return {};
            for (auto const& t : tasks) {
                if (std::error_code ec = ensure_cell(t.id)) return ec;
            }
        }
        return {};
    }

    /// Each task takes its new group's state: frozen in a freezing group, thawed otherwise (the
    /// kernel's freezer_attach). Manage and callback locks held.
    void attach(state& s, container&, task_set<container> tasks) noexcept {
        bool const freeze = s.freezing.load(std::memory_order_relaxed);
        for (auto const& t : tasks) set_task(t.id, freeze);
    }

    /// A child forked into a freezing group is frozen (freezer_fork). Best effort where no gate
    /// can be allocated: it is then frozen by the next read of its group's state. Manage and
    /// callback locks held.
    void fork(state& s, container&, id_type, id_type child) noexcept {
        if (!s.freezing.load(std::memory_order_relaxed)) return;
        if constexpr (thread_bound) {
            if (ensure_cell(child)) return;
        }
        set_task(child, true);
    }

    /// A task that leaves the hierarchy is thawed and its gate given back. Manage and callback
    /// locks held.
    void exit(state&, container&, id_type task) noexcept {
        if constexpr (thread_bound) {
            auto it = cells_.find(task);
            if (it == cells_.end()) return;
            detail::freezing::release(it->second);
            cells_.erase(it);
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
    /// Locking: takes the manage lock, and the callback lock at the moment of change.
    /// Complexity: O(containers and tasks below `c`), one signal per thread that freezes.
    [[nodiscard]] std::error_code set_state(container& c, freezer_state to) noexcept {
        auto lock = c.owner().manage_lock();
        return set_state_locked(c, to);
    }
    /// set_state with the manage lock held (asserted): what freezer.state's handler calls.
    [[nodiscard]] std::error_code set_state_locked(container& c, freezer_state to) noexcept {
        assert(c.owner().manage_lock_held());
        if (to == freezer_state::freezing || c.is_top()) return detail::errno_code(EINVAL);
        bool const freeze = to == freezer_state::frozen;
        H& h = c.owner();
        if (c.removed()) return detail::errno_code(ENODEV);
        if constexpr (thread_bound) {
            if (freeze) {  // phase one: every gate that the change needs
                for (container& d : detail::subtree_walk(c, true)) {
                    for (auto const& t : detail::tree_access::tasks(d)) {
                        if (std::error_code ec = ensure_cell(t.id)) return ec;
                    }
                }
            }
        }
        auto cb = h.callback_lock();
        apply(c, freeze, true);
        for (container& d : detail::subtree_walk(c, false)) {
            apply(d, state_of(*d.parent()).freezing.load(std::memory_order_relaxed), false);
        }
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
        return state_of(c).self_freezing;
    }
    [[nodiscard]] bool parent_freezing(container& c) noexcept {
        auto lock = c.owner().manage_lock();
        return state_of(c).parent_freezing;
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
                index = it->second;
                w = detail::freezing::find(index)->word.load(std::memory_order_seq_cst);
            }
            if (detail::freezing::is_frozen(w)) detail::freezing::honour(index, w >> 1);
        }
    }

private:
    static state& state_of(container const& c) noexcept { return c.owner().template state_of<basic_freezer>(c); }

    static std::error_code get_flag_locked(container& c, bool state::*flag, bool& out) noexcept {
        assert(c.owner().manage_lock_held());
        if (c.removed()) return detail::errno_code(ENODEV);
        out = state_of(c).*flag;
        return {};
    }

    // A gate for thread `tid`. Manage lock held.
    std::error_code ensure_cell(id_type tid) noexcept {
        if (cells_.find(tid) != cells_.end()) return {};
        std::uint32_t index = 0;
        if (std::error_code ec = detail::freezing::acquire(tid, index)) return ec;
        if (std::error_code ec = detail::guarded_call([&] {
                cells_.emplace(tid, index);
                return std::error_code{};
            })) {
            detail::freezing::release(index);
            return ec;
        }
        return {};
    }

    // Freezes or thaws one task. Threads: the gate must exist to freeze (ensure_cell); a thread
    // whose id no longer names the task recorded is not signalled. Manage lock held.
    void set_task(id_type id, bool freeze) noexcept {
        if constexpr (thread_bound) {
            auto it = cells_.find(id);
            if (it == cells_.end()) return;  // never frozen, nothing to thaw
            detail::freezing::cell* c = detail::freezing::find(it->second);
            std::uint32_t const w = c->word.load(std::memory_order_relaxed);
            if (detail::freezing::is_frozen(w) == freeze) return;
            c->word.store(freeze ? (w | 1u) : (w & ~1u), std::memory_order_seq_cst);
            if (!freeze) {
                detail::freezing::wake(c->word);
                return;
            }
            if (self_task(id)) {
                // Signalled now, the handler would find the hierarchy's lock held: owe it, and
                // the thread parks when it releases its last lock.
                detail::freezing::owe(it->second, w >> 1);
                return;
            }
            if (owner_->task_identity_ok(id)) (void)detail::freezing::send(it->second, id);
        } else {
            (void)id;
            (void)freeze;
        }
    }

    static bool self_task(id_type id) noexcept { return id == H::traits_type::self(); }

    // freezer_apply_state: `self` is the flag changed (self_freezing, else parent_freezing).
    void apply(container& c, bool freeze, bool self_flag) noexcept {
        state& s = state_of(c);
        bool const was = s.freezing.load(std::memory_order_relaxed);
        (self_flag ? s.self_freezing : s.parent_freezing) = freeze;
        bool const now = s.self_freezing || s.parent_freezing;
        s.freezing.store(now, std::memory_order_release);
        if (was == now) return;
        for (auto const& t : detail::tree_access::tasks(c)) set_task(t.id, now);
    }

    freezer_state state_locked(container& c) noexcept {
        if (!state_of(c).freezing.load(std::memory_order_relaxed)) return freezer_state::thawed;
        bool all = true;
        if constexpr (thread_bound) {
            for (container& d : detail::subtree_walk(c, true)) {
                for (auto const& t : detail::tree_access::tasks(d)) {
                    if (task_frozen(t)) continue;
                    all = false;
                }
            }
        }
        return all ? freezer_state::frozen : freezer_state::freezing;
    }

    // Whether one thread counts as frozen; if not, nudges it. Manage lock held.
    template <class T>
    bool task_frozen(T const& t) noexcept {
        auto it = cells_.find(t.id);
        if (it == cells_.end()) {
            (void)ensure_cell(t.id);  // a fork that found no memory for a gate
            it = cells_.find(t.id);
            if (it == cells_.end()) return !t.alive();
            set_task(t.id, true);
        }
        if (detail::freezing::parked(it->second)) return true;
        if (!t.alive()) return true;  // exited: it will be reaped, and runs no more
        detail::freezing::cell* c = detail::freezing::find(it->second);
        std::uint32_t const w = c->word.load(std::memory_order_relaxed);
        if (!detail::freezing::is_frozen(w)) {
            set_task(t.id, true);
        } else if (!self_task(t.id) && c->pending.load(std::memory_order_seq_cst) == 0) {
            (void)detail::freezing::send(it->second, t.id);
        }
        return false;
    }

    int const signo_;
    H* owner_ = nullptr;                                    // set by the top container's create
    std::unordered_map<id_type, std::uint32_t> cells_;      // manage lock: task -> its gate
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
