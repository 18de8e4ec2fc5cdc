// The one seam through which the library makes the system calls whose failure it must survive.
//
// Every call here checks a process-wide fault hook first, so that tests can make the Nth call
// fail with EINVAL, EPERM, ESRCH, EINTR, EAGAIN... and check that the operation that made it
// reports the error and changes nothing (fmt routes its system calls through one place for the
// same reason). Without a hook installed the cost is one relaxed load. EINTR is retried here, so
// callers never see it. Each wrapper returns 0 or an errno value, never -1 with errno set.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>

#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

namespace containers::detail::sys {

/// The calls the seam covers.
enum class call {
    sched_setaffinity,
    sched_getaffinity,
    set_mempolicy,
    migrate_pages,
    posix_spawn,
    pidfd_open,
    pidfd_send_signal,
    thread_create,  // starting a helper thread of the library's own
    setpriority,    // PRIO_PROCESS of one thread (the cpu subsystem's nice values)
};

/// Returns 0 to let the call through, or an errno value to fail it with (the real call is then
/// not made). Must be async-signal-safe and must not call back into the library.
using fault_hook = int (*)(call) noexcept;

inline std::atomic<fault_hook> fault{nullptr};

/// Installs a hook (nullptr removes it); returns the previous one.
inline fault_hook set_fault_hook(fault_hook h) noexcept { return fault.exchange(h, std::memory_order_acq_rel); }

/// 0, or the errno that an installed hook injects for `c`.
[[nodiscard]] inline int injected(call c) noexcept {
    fault_hook const h = fault.load(std::memory_order_acquire);
    return h == nullptr ? 0 : h(c);
}

// Runs `f` (a call returning -1 and setting errno on failure) after the hook, retrying EINTR.
template <class F>
[[nodiscard]] int checked(call c, F&& f) noexcept {
    for (;;) {
        int e = injected(c);
        if (e == 0) {
            if (f() != -1) return 0;
            e = errno;
        }
        if (e != EINTR) return e;
    }
}

[[nodiscard]] inline int sched_setaffinity(pid_t tid, std::size_t bytes, cpu_set_t const* set) noexcept {
    return checked(call::sched_setaffinity, [&] { return ::sched_setaffinity(tid, bytes, set); });
}

[[nodiscard]] inline int sched_getaffinity(pid_t tid, std::size_t bytes, cpu_set_t* set) noexcept {
    return checked(call::sched_getaffinity, [&] { return ::sched_getaffinity(tid, bytes, set); });
}

[[nodiscard]] inline int set_mempolicy(int mode, unsigned long const* nodes, unsigned long maxnode) noexcept {
    return checked(call::set_mempolicy, [&] { return static_cast<int>(::syscall(SYS_set_mempolicy, mode, nodes, maxnode)); });
}

[[nodiscard]] inline int migrate_pages(pid_t pid, unsigned long maxnode, unsigned long const* from, unsigned long const* to) noexcept {
    return checked(call::migrate_pages, [&] { return ::syscall(SYS_migrate_pages, pid, maxnode, from, to) < 0 ? -1 : 0; });
}

/// posix_spawn returns its error instead of setting errno.
[[nodiscard]] inline int posix_spawn(pid_t* pid, char const* path, posix_spawn_file_actions_t const* actions,
                                     posix_spawnattr_t const* attr, char* const argv[], char* const envp[]) noexcept {
    return checked(call::posix_spawn, [&] {
        int const e = ::posix_spawn(pid, path, actions, attr, argv, envp);
        if (e == 0) return 0;
        errno = e;
        return -1;
    });
}

/// A pidfd for `pid` (a process, or with PIDFD_THREAD a thread on kernels that have it) in `fd`.
[[nodiscard]] inline int pidfd_open(pid_t pid, unsigned flags, int& fd) noexcept {
    return checked(call::pidfd_open, [&] {
        long const r = ::syscall(SYS_pidfd_open, pid, flags);
        if (r >= 0) fd = static_cast<int>(r);
        return r < 0 ? -1 : 0;
    });
}

[[nodiscard]] inline int pidfd_send_signal(int pidfd, int sig) noexcept {
    return checked(call::pidfd_send_signal, [&] { return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0)); });
}

[[nodiscard]] inline int setpriority(pid_t tid, int nice) noexcept {
    return checked(call::setpriority, [&] { return ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice); });
}

/// Whether a helper thread of the library's own may be started now (the seam for thread
/// creation: std::thread itself reports failure only by throwing).
[[nodiscard]] inline int may_create_thread() noexcept { return injected(call::thread_create); }

}  // namespace containers::detail::sys
