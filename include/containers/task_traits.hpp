// What a task is. A hierarchy is parameterised by task traits: the type that identifies a task,
// how to tell whether an id names a task the caller may place, whether it still runs, and which
// task is running now, and (optionally) how to tell a task from a later one that reuses its id.
// The default, thread_task_traits, makes tasks Linux threads named by tid and records a pidfd and
// start time for each; a runtime of fibers or coroutines plugs in its own (logical_task_traits is
// a ready one).
#pragma once

#include <atomic>
#include <cerrno>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "detail/errors.hpp"
#include "detail/function.hpp"
#include "detail/syscalls.hpp"

namespace containers {

/// Task traits:
/// - `id_type`: a regular, totally ordered, hashable value naming a task;
/// - `validate(id)`: ESRCH when no such task exists, EACCES (or EPERM) when the caller may not
///   place it;
/// - `alive(id)`: false once the task has gone, so that tasks which exit without telling the
///   hierarchy do not linger (checked when a container's tasks are listed or it is removed);
/// - `self()`: the running task;
/// - `thread_bound`: true when a task is an OS thread, so that the hierarchy can cache the
///   current thread's task in thread-local storage and detach it automatically at thread exit.
template <class T>
concept TaskTraits = requires {
    typename T::id_type;
    { T::thread_bound } -> std::convertible_to<bool>;
} && std::regular<typename T::id_type> && std::totally_ordered<typename T::id_type> && requires(typename T::id_type id) {
    { std::hash<typename T::id_type>{}(id) } -> std::convertible_to<std::size_t>;
    { T::validate(id) } noexcept -> std::same_as<std::error_code>;
    { T::alive(id) } noexcept -> std::same_as<bool>;
    { T::self() } noexcept -> std::same_as<typename T::id_type>;
};

/// Task traits whose ids can be reused (a tid after its thread exited) say how one task is told
/// apart from a later one with the same id, by opting in with `identity_type`:
/// - `identity_type`: default-constructible ("nothing recorded") and nothrow-movable; the
///   hierarchy keeps one in each task record, from attach (or fork) until the record is freed;
/// - `identify(id, identity&)`: records what names task `id` now; ESRCH when there is none;
/// - `alive(id, identity const&)`: false once that task has exited (a zombie included) or `id`
///   names another task; with nothing recorded, as `alive(id)`.
/// The hierarchy checks it wherever it would otherwise trust the id: listing, removal, attach
/// of a known id, fork, and (through hierarchy::task_identity_ok) before a subsystem's system
/// call on the task.
template <class T>
concept HasTaskIdentity = requires { typename T::identity_type; };

template <class T>
concept TaskIdentity = HasTaskIdentity<T> && std::default_initializable<typename T::identity_type> &&
    std::is_nothrow_move_constructible_v<typename T::identity_type> &&
    requires(typename T::id_type id, typename T::identity_type& k, typename T::identity_type const& ck) {
        { T::identify(id, k) } noexcept -> std::same_as<std::error_code>;
        { T::alive(id, ck) } noexcept -> std::same_as<bool>;
    };

namespace detail {
struct no_identity {};
template <class T>
struct identity_of {
    using type = no_identity;
};
template <HasTaskIdentity T>
struct identity_of<T> {
    static_assert(TaskIdentity<T>,
                  "Traits with identity_type need std::error_code identify(id_type, identity_type&) noexcept and "
                  "bool alive(id_type, identity_type const&) noexcept, and a default-constructible, nothrow-movable "
                  "identity_type");
    using type = typename T::identity_type;
};
}  // namespace detail

/// What the hierarchy records for a task so that a later task with the same id is not taken for
/// it: the task's identity if its traits have one, else nothing.
template <class T>
using task_identity_t = typename detail::identity_of<T>::type;

/// What names one Linux thread for as long as it lives, whatever later reuses its tid: a pidfd
/// held open (a thread pidfd, PIDFD_THREAD, since Linux 6.9; before that a process pidfd for a
/// thread-group leader of another process), which polls readable once that thread has exited,
/// so that checking it costs one poll(2). Threads of this process hold one while fewer than a
/// quarter of the soft RLIMIT_NOFILE are so held (a runtime may place thousands: the library must
/// not take the fds its host needs); beyond that they keep the inode number of their pidfd where
/// pidfds live in pidfs (Linux 6.9: unique per task, never reused), which needs no fd kept open
/// but a pidfd opened and compared at each check. For every thread its start time (field 22 of
/// its /proc stat, clock ticks after boot), the last resort, which cannot tell apart two threads
/// started within the same tick; and whether it carried PF_NO_SETAFFINITY when it was met.
/// Move-only; owns the pidfd.
class thread_identity {
public:
    thread_identity() noexcept = default;
    thread_identity(thread_identity&& o) noexcept
        : pidfd_(std::exchange(o.pidfd_, -1)), thread_fd_(o.thread_fd_), leader_(o.leader_), counted_(std::exchange(o.counted_, false)),
          flags_(std::exchange(o.flags_, flags_unknown)), ino_(std::exchange(o.ino_, 0)), start_(std::exchange(o.start_, 0)) {}
    thread_identity& operator=(thread_identity&& o) noexcept {
        if (this != &o) {
            reset();
            pidfd_ = std::exchange(o.pidfd_, -1);
            thread_fd_ = o.thread_fd_;
            leader_ = o.leader_;
            counted_ = std::exchange(o.counted_, false);
            flags_ = std::exchange(o.flags_, flags_unknown);
            ino_ = std::exchange(o.ino_, 0);
            start_ = std::exchange(o.start_, 0);
        }
        return *this;
    }
    ~thread_identity() { reset(); }

    /// True when nothing is recorded (a thread that attached itself needs nothing: it leaves the
    /// hierarchy when it exits).
    [[nodiscard]] bool empty() const noexcept { return pidfd_ < 0 && start_ == 0; }
    [[nodiscard]] int pidfd() const noexcept { return pidfd_; }
    [[nodiscard]] unsigned long long start_time() const noexcept { return start_; }
    /// True when the thread was seen, when it was met, without PF_NO_SETAFFINITY (the flag of
    /// per-CPU kernel threads and the like, set when such a thread is created), so that its
    /// affinity may be changed without reading its /proc stat again; false when it carried the
    /// flag or nothing was recorded.
    [[nodiscard]] bool may_set_affinity() const noexcept { return flags_ == flags_clear; }

    /// How many pidfds of threads of this process identities hold now (see the class comment).
    [[nodiscard]] static std::size_t held_own_pidfds() noexcept { return held_own_.load(std::memory_order_relaxed); }

private:
    friend struct thread_task_traits;
    void reset() noexcept {
        if (pidfd_ >= 0) ::close(pidfd_);
        if (counted_) held_own_.fetch_sub(1, std::memory_order_relaxed);
        pidfd_ = -1;
        counted_ = false;
    }
    static constexpr unsigned char flags_unknown = 0, flags_clear = 1, flags_no_setaffinity = 2;
    static inline std::atomic<std::size_t> held_own_{0};  // pidfds of this process's threads held

    int pidfd_ = -1;                // -1: none (no pidfd support, no fd left, over the budget, or a non-leader before 6.9)
    bool thread_fd_ = false;        // the pidfd is a thread pidfd (it polls readable when this thread exits)
    bool leader_ = true;            // may lead its thread group (a leader that exits before its other
                                    // threads is a zombie whose thread pidfd does not poll readable)
    bool counted_ = false;          // the pidfd is one of held_own_
    unsigned char flags_ = flags_unknown;  // PF_NO_SETAFFINITY when met
    unsigned long long ino_ = 0;    // its thread pidfd's pidfs inode; 0: not recorded
    unsigned long long start_ = 0;  // 0: not recorded
};

/// Tasks are Linux threads of any process, identified by tid.
struct thread_task_traits {
    using id_type = pid_t;
    using identity_type = thread_identity;
    static constexpr bool thread_bound = true;

    /// ESRCH for a tid that names no thread (or is not positive). EACCES where the kernel's
    /// cgroup v1 refuses the writer (__cgroup1_procs_write): a thread of another process whose
    /// real and saved user ids both differ from the caller's effective id, unless that is root.
    /// A zombie is valid: the kernel accepts its id (and then moves nothing). ENOMEM where /proc
    /// cannot be read for want of memory or file descriptors.
    static std::error_code validate(id_type tid) noexcept {
        stat_fields f;
        if (tid <= 0) return detail::errno_code(ESRCH);
        if (int e = read_stat(tid, f)) return detail::errno_code(e);
        if (int e = may_attach(tid)) return detail::errno_code(e);
        return {};
    }
    /// Whether a writer whose effective user id is `euid` may move thread `tid`, by the kernel's
    /// rule for cgroup v1 (__cgroup1_procs_write): `euid` is root's, or the thread's real or saved
    /// user id. For a writer other than the calling process (a FUSE request's sender).
    /// Errors: EACCES (not permitted), ESRCH (not positive; for a writer other than root, no such
    ///   thread), ENOMEM.
    static std::error_code may_attach_as(uid_t euid, id_type tid) noexcept {
        if (tid <= 0) return detail::errno_code(ESRCH);
        if (int e = may_attach_uid(euid, tid)) return detail::errno_code(e);
        return {};
    }

    /// False once the thread has exited: gone, or a zombie (state Z or X), which the kernel no
    /// longer lists. Where /proc cannot be read (no fd left), true: a task is never dropped on a
    /// guess.
    static bool alive(id_type tid) noexcept {
        stat_fields f;
        if (tid <= 0) return false;
        int const e = read_stat(tid, f);
        return e == 0 ? f.state != 'Z' && f.state != 'X' : e != ESRCH;
    }

    /// Effects: records what names thread `tid` now (see thread_identity): its start time and
    ///   PF_NO_SETAFFINITY flag, and a pidfd held open (for a thread of this process only within
    ///   the budget; beyond it, the pidfd's inode). Where no pidfd can be had (no fd left, an old
    ///   kernel and a thread that does not lead its group) the start time alone tells threads
    ///   apart.
    /// Errors: ESRCH (no such thread, or not positive), ENOMEM (/proc unreadable for want of
    ///   memory or file descriptors).
    static std::error_code identify(id_type tid, identity_type& out) noexcept {
        if (tid <= 0) return detail::errno_code(ESRCH);
        identity_type k;
        stat_fields f;
        char path[64];
        std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
        int e = read_stat_at(path, f);
        bool const ours = e == 0;
        if (e != 0 && e != ESRCH) return detail::errno_code(e);
        int fd = -1;
        int pe = detail::sys::pidfd_open(tid, pidfd_thread, fd);
        bool const thread_fd = pe == 0;
        if (pe == EINVAL && !ours) pe = detail::sys::pidfd_open(tid, 0, fd);  // before 6.9: leaders only
        if (pe == ESRCH) return detail::errno_code(ESRCH);
        if (pe == 0) {
            if (thread_fd) k.ino_ = pidfs_inode(fd);
            if (ours && !(thread_fd && claim_own_pidfd())) {
                ::close(fd);  // over the budget: the inode is checked instead
            } else {
                k.pidfd_ = fd;
                k.thread_fd_ = thread_fd;
                k.counted_ = ours;
            }
        }
        if (ours) {
            k.leader_ = tid == ::getpid();
        } else if (thread_fd) {
            // A process pidfd can be had for a group leader only (EINVAL for another thread).
            long const r = ::syscall(SYS_pidfd_open, tid, 0u);
            if (r >= 0) ::close(static_cast<int>(r));
            k.leader_ = !(r < 0 && errno == EINVAL);
        }
        if (!ours) e = read_stat(tid, f);
        if (e != 0) return detail::errno_code(e);
        k.start_ = f.start != 0 ? f.start : 1;  // recorded, even for a thread started at boot
        k.flags_ = (f.flags & pf_no_setaffinity) != 0 ? identity_type::flags_no_setaffinity : identity_type::flags_clear;
        out = std::move(k);
        return {};
    }
    /// False once the thread that `k` names has exited (a zombie included), or `tid` names
    /// another thread now; as alive(tid) when `k` is empty. With a thread pidfd held: one poll(2)
    /// (and a read of its /proc stat where the thread may lead its group, whose zombie does not
    /// poll readable). For a thread of this process over the budget: a thread pidfd opened, its
    /// inode compared, polled and closed. Else a read of its /proc stat (true where that cannot
    /// be read for want of fds: a task is never dropped on a guess).
    static bool alive(id_type tid, identity_type const& k) noexcept {
        if (k.empty()) return alive(tid);
        if (k.pidfd_ >= 0) {
            pollfd p{k.pidfd_, POLLIN, 0};
            int r;
            do r = ::poll(&p, 1, 0);
            while (r < 0 && errno == EINTR);
            if (r > 0) return false;  // the task has exited (or has been reaped)
            if (k.thread_fd_) {
                // A live thread pidfd names this very thread, but it does not poll readable for a
                // group leader that is a zombie while its other threads exit (delay_group_leader),
                // which the kernel no longer lists: its state says.
                if (r == 0 && !k.leader_) return true;
                stat_fields f;
                int const e = read_stat(tid, f);
                return e == 0 ? f.state != 'Z' && f.state != 'X' : e != ESRCH;
            }
        }
        if (k.ino_ != 0) {  // a thread pidfd opened now must be the same task's
            int fd = -1;
            int const e = detail::sys::pidfd_open(tid, pidfd_thread, fd);
            if (e == ESRCH) return false;
            if (e == 0) {
                bool const same = pidfs_inode(fd) == k.ino_;
                pollfd p{fd, POLLIN, 0};
                int r = 0;
                if (same) {
                    do r = ::poll(&p, 1, 0);
                    while (r < 0 && errno == EINTR);
                }
                ::close(fd);
                if (!same || r != 0) return false;
                if (!k.leader_) return true;
                // Our main thread, exited while others run, is a zombie that polls unreadable.
                stat_fields f;
                return read_stat(tid, f) != 0 || (f.state != 'Z' && f.state != 'X');
            }
        }
        stat_fields f;
        int const e = read_stat(tid, f);
        if (e != 0) return e != ESRCH;
        return (f.start == k.start_ || (f.start == 0 && k.start_ == 1)) && f.state != 'Z' && f.state != 'X';
    }

    /// The calling thread's tid, cached per thread (a fork child's copy is reset).
    /// Async-signal-safe: no lazy initialisation, one system call the first time.
    static id_type self() noexcept {
        if (cached_tid == 0) cached_tid = static_cast<id_type>(::syscall(SYS_gettid));
        return cached_tid;
    }

private:
    static inline constinit thread_local id_type cached_tid = 0;
    // Installed at program start, not on first use: self() may first run in a signal handler,
    // where a function-local static's guard (a lock) must not be taken.
    struct reset_in_fork_child {
        reset_in_fork_child() noexcept { (void)::pthread_atfork(nullptr, nullptr, [] { cached_tid = 0; }); }
    };
    static inline reset_in_fork_child const reset_at_start_{};
    static constexpr unsigned pidfd_thread = O_EXCL;  // PIDFD_THREAD (Linux 6.9), absent from older headers

    // The inode of a pidfd where pidfds live in pidfs (unique per task); 0 elsewhere (before
    // Linux 6.9 every pidfd shares one anonymous inode).
    static unsigned long long pidfs_inode(int pidfd) noexcept {
        constexpr long pidfs_magic = 0x50494446;  // PID_FS_MAGIC
        static std::atomic<int> is_pidfs{-1};      // asked once: the kernel does not change
        int known = is_pidfs.load(std::memory_order_relaxed);
        if (known < 0) {
            struct statfs fsb;
            if (::fstatfs(pidfd, &fsb) != 0) return 0;
            known = static_cast<long>(fsb.f_type) == pidfs_magic ? 1 : 0;
            is_pidfs.store(known, std::memory_order_relaxed);
        }
        struct stat st;
        if (known == 0 || ::fstat(pidfd, &st) != 0) return 0;
        return static_cast<unsigned long long>(st.st_ino);
    }

    static constexpr unsigned long pf_no_setaffinity = 0x04000000;  // PF_NO_SETAFFINITY

    // A thread's state (field 3), flags (field 9) and start time (field 22).
    struct stat_fields {
        char state = 0;
        unsigned long flags = 0;
        unsigned long long start = 0;
    };

    // Claims one of the pidfds that threads of this process may hold (a quarter of the soft
    // RLIMIT_NOFILE). False when they are all taken.
    static bool claim_own_pidfd() noexcept {
        rlimit rl;
        std::size_t budget = 256;
        if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) budget = rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX : static_cast<std::size_t>(rl.rlim_cur / 4);
        std::atomic<std::size_t>& held = identity_type::held_own_;
        std::size_t n = held.load(std::memory_order_relaxed);
        do {
            if (n >= budget) return false;
        } while (!held.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
        return true;
    }

    // The stat fields of thread `tid`, from /proc/TID/task/TID/stat (which names the thread
    // itself, whichever process it is in). 0, ESRCH where it is gone, or ENOMEM where the file
    // cannot be read for another reason (no fd left).
    static int read_stat(id_type tid, stat_fields& out) noexcept {
        char path[64];
        std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", static_cast<int>(tid), static_cast<int>(tid));
        return read_stat_at(path, out);
    }
    static int read_stat_at(char const* path, stat_fields& out) noexcept {
        int fd;
        do fd = ::open(path, O_RDONLY | O_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        if (fd < 0) return errno == ENOENT || errno == ESRCH ? ESRCH : ENOMEM;
        char buf[1024];
        ssize_t n;
        do n = ::read(fd, buf, sizeof buf - 1);
        while (n < 0 && errno == EINTR);
        ::close(fd);
        if (n <= 0) return ESRCH;  // the task went between open and read
        buf[n] = 0;
        char const* p = std::strrchr(buf, ')');  // the name may hold ')' and spaces
        if (p == nullptr || p[1] != ' ') return ESRCH;
        out.state = p[2];
        p += 3;                                     // the space before field 4
        for (int field = 4; field < 22; ++field) {  // to the space before field 22
            if (field == 9) out.flags = std::strtoul(p + 1, nullptr, 10);
            p = std::strchr(p + 1, ' ');
            if (p == nullptr) return ESRCH;
        }
        out.start = std::strtoull(p + 1, nullptr, 10);
        return 0;
    }

    // 0, EACCES (see validate), ESRCH (gone) or ENOMEM.
    static int may_attach(id_type tid) noexcept {
        char path[64];
        std::snprintf(path, sizeof path, "/proc/self/task/%d", static_cast<int>(tid));
        if (::access(path, F_OK) == 0) return 0;  // a thread of this process
        return may_attach_uid(::geteuid(), tid);
    }

    // may_attach for a writer of effective user id `me`, without the shortcut for the calling
    // process's own threads.
    static int may_attach_uid(uid_t me, id_type tid) noexcept {
        char path[64];
        if (me == 0) return 0;
        std::snprintf(path, sizeof path, "/proc/%d/task/%d/status", static_cast<int>(tid), static_cast<int>(tid));
        std::FILE* f = std::fopen(path, "re");
        if (f == nullptr) return errno == ENOENT || errno == ESRCH ? ESRCH : ENOMEM;
        char line[256];
        long real = -1, effective = -1, saved = -1;
        bool found = false;
        while (!found && std::fgets(line, sizeof line, f) != nullptr) {
            found = std::sscanf(line, "Uid: %ld %ld %ld", &real, &effective, &saved) == 3;
        }
        std::fclose(f);
        if (!found) return ESRCH;
        return static_cast<long>(me) == real || static_cast<long>(me) == saved ? 0 : EACCES;
    }
};

/// Tasks are user-level objects (fibers, coroutines) named by an id that the runtime hands out.
/// `Current` is a callable type whose static `get()` returns the running task's id.
template <class Id, class Current>
struct logical_task_traits {
    using id_type = Id;
    static constexpr bool thread_bound = false;
    static std::error_code validate(id_type) noexcept { return {}; }
    static bool alive(id_type) noexcept { return true; }
    static id_type self() noexcept { return Current::get(); }
};

}  // namespace containers
