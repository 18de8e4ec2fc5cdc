// What a task is. A hierarchy is parameterised by task traits: the type that identifies a task,
// how to tell whether an id names a task the caller may place, whether it still runs, and which
// task is running now. The default, thread_task_traits, makes tasks Linux threads named by tid;
// a runtime of fibers or coroutines plugs in its own (logical_task_traits is a ready one).
#pragma once

#include <cerrno>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <system_error>

#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "detail/errors.hpp"

namespace containers {

/// Task traits:
/// - `id_type`: a regular, totally ordered, hashable value naming a task;
/// - `validate(id)`: ESRCH when no such task exists, EPERM when the caller may not place it;
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

/// Tasks are Linux threads of any process, identified by tid.
struct thread_task_traits {
    using id_type = pid_t;
    static constexpr bool thread_bound = true;

    /// ESRCH for a tid that names no thread (or is not positive), EPERM where the caller may not
    /// set the thread's affinity: the kernel's rule for sched_setaffinity is a matching user id
    /// (the caller's effective id against the target's real or effective id) or CAP_SYS_NICE.
    static std::error_code validate(id_type tid) noexcept {
        if (tid <= 0 || !alive(tid)) return detail::errno_code(ESRCH);
        if (may_set_affinity(tid)) return {};
        return detail::errno_code(alive(tid) ? EPERM : ESRCH);
    }
    static bool alive(id_type tid) noexcept {
        unsigned long mask[64];  // room for 4096 CPUs, the largest kernels' NR_CPUS
        return ::sched_getaffinity(tid, sizeof mask, reinterpret_cast<cpu_set_t*>(mask)) == 0 || errno != ESRCH;
    }
    /// The calling thread's tid, cached per thread (a fork child's copy is reset).
    static id_type self() noexcept {
        if (cached_tid == 0) {
            static bool const reset_in_child = ::pthread_atfork(nullptr, nullptr, [] { cached_tid = 0; }) == 0;
            (void)reset_in_child;
            cached_tid = static_cast<id_type>(::syscall(SYS_gettid));
        }
        return cached_tid;
    }

private:
    static inline constinit thread_local id_type cached_tid = 0;

    static bool may_set_affinity(id_type tid) noexcept {
        char path[64];
        std::snprintf(path, sizeof path, "/proc/self/task/%d", static_cast<int>(tid));
        if (::access(path, F_OK) == 0) return true;  // a thread of this process
        __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct caps[2]{};
        if (::syscall(SYS_capget, &hdr, caps) == 0 && (caps[0].effective & (1u << CAP_SYS_NICE)) != 0) return true;
        std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(tid));
        std::FILE* f = std::fopen(path, "re");
        if (f == nullptr) return false;
        char line[256];
        long real = -1, effective = -1;
        while (std::fgets(line, sizeof line, f) != nullptr) {
            if (std::sscanf(line, "Uid: %ld %ld", &real, &effective) == 2) break;
        }
        std::fclose(f);
        long const me = static_cast<long>(::geteuid());
        return me == real || me == effective;
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
