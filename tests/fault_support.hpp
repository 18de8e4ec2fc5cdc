// Fault injection for tests: a hook on the library's system-call seam (detail/syscalls.hpp) that
// fails the Nth call made by the arming thread, and helpers that read the real affinity of a
// thread without going through the seam (so that checking never counts as a call).
//
// The hook counts only calls made on the thread that armed it, so that helper threads of the
// library (the release agent's) and of the test do not make a walk nondeterministic.
#pragma once

#include <containers/cpumask.hpp>
#include <containers/detail/syscalls.hpp>

#include <atomic>
#include <cerrno>
#include <string>

#include <sched.h>

namespace test::faults {

namespace sys = containers::detail::sys;

/// Fails the `fail_at`th seam call (0-based) of the arming thread with `error`, or, with a
/// `only` call kind, the `fail_at`th call of that kind. Counts every call while armed.
/// One at a time; restores the previous hook on destruction.
class syscall_fault {
public:
    explicit syscall_fault(long fail_at, int error = EINVAL, int only = -1) noexcept {
        count_ = 0;
        fail_at_ = fail_at;
        error_ = error;
        only_ = only;
        armed_on_this_thread = true;
        previous_ = sys::set_fault_hook(&hook);
    }
    ~syscall_fault() {
        sys::set_fault_hook(previous_);
        armed_on_this_thread = false;
    }
    syscall_fault(syscall_fault const&) = delete;
    syscall_fault& operator=(syscall_fault const&) = delete;

    /// How many calls (of the kind, if one was named) the arming thread made so far.
    [[nodiscard]] long calls() const noexcept { return count_.load(); }
    /// Whether the failure was injected (the operation reached call number fail_at).
    [[nodiscard]] bool hit() const noexcept { return count_.load() > fail_at_.load(); }

private:
    static int hook(sys::call c) noexcept {
        if (!armed_on_this_thread) return 0;
        if (only_.load() >= 0 && static_cast<int>(c) != only_.load()) return 0;
        long const n = count_.fetch_add(1);
        return n == fail_at_.load() ? error_.load() : 0;
    }

    static inline std::atomic<long> count_{0};
    static inline std::atomic<long> fail_at_{-1};
    static inline std::atomic<int> error_{0};
    static inline std::atomic<int> only_{-1};
    static inline constinit thread_local bool armed_on_this_thread = false;
    sys::fault_hook previous_ = nullptr;
};

/// The real affinity of thread `tid` (0: the caller), read directly, never through the seam.
inline containers::cpumask real_affinity(pid_t tid) {
    cpu_set_t set[16];  // 16384 CPUs
    CPU_ZERO_S(sizeof set, set);
    if (::sched_getaffinity(tid, sizeof set, set) != 0) return {};
    return containers::cpumask::from_cpu_set(set, sizeof set);
}

/// Sets the real affinity of thread `tid` directly.
inline bool set_real_affinity(pid_t tid, containers::cpumask const& m) {
    return ::sched_setaffinity(tid, m.affinity_bytes(), m.affinity_data()) == 0;
}

/// Restores the calling thread's affinity at scope exit.
struct affinity_restorer {
    pid_t tid = 0;
    containers::cpumask saved = real_affinity(tid);
    ~affinity_restorer() { (void)set_real_affinity(tid, saved); }
};

}  // namespace test::faults
