// cpuacct: CPU time accounting per container, as the kernel's cgroup v1 cpuacct controller shows it.
//
// Files (kernel/sched/cpuacct.c): cpuacct.usage (ns, hierarchical: a container's usage includes
// its descendants'; writing 0 resets it, any other number is EINVAL, overflow ERANGE, and in the
// top container a reset is accepted and does nothing, as the kernel refuses to reset the global
// counters), cpuacct.usage_user and cpuacct.usage_sys (ns, read-only), cpuacct.stat ("user N\n
// system N\n" in USER_HZ ticks, the total split in the user/system proportion as the kernel's
// cputime_adjust does, so that the two add up to usage). A reset zeroes usage, usage_user and
// usage_sys of that container alone: its ancestors and descendants keep theirs.
//
// Left out, on purpose: cpuacct.usage_percpu, usage_percpu_user, usage_percpu_sys and usage_all.
// The kernel charges each slice of a thread's run time to the CPU it ran on; user space sees
// only a thread's total (its CPU clock, /proc/TID/schedstat) and the CPU it ran on last (field 39
// of /proc/TID/stat), never the split. Any per-CPU figure would be a guess that sampling makes
// less wrong but never right, so these files do not exist (ENOENT) rather than show one.
//
// How time is charged, for threads (thread_task_traits): a thread's time belongs to the container
// it was in while it ran. The subsystem keeps, per thread, the thread's CPU time when it was last
// charged (its baseline). When the thread moves, exits, or a container in the path to it is read
// or reset, the time since the baseline is read and charged to its container and every ancestor
// (as the kernel's cpuacct_charge walks up), and the baseline advances. Reading a container's
// usage therefore reads one clock per thread in its subtree. The clocks:
// - run time (usage): the thread's CPU clock (clock_gettime on its per-thread clock id: exact,
//   nanoseconds, the kernel's sum_exec_runtime, the same number the kernel's cpuacct adds up) for
//   threads of this process; /proc/TID/schedstat (the same quantity, updated by the kernel at
//   ticks and switches) for threads of other processes;
// - user and system time (usage_user, usage_sys, stat): utime and stime of /proc/TID/stat, in
//   USER_HZ ticks, so these have a 10 ms resolution per thread and charge interval (the kernel's
//   own cpuacct.usage_user is tick-sampled too, at its HZ).
// A thread forked into a container (hierarchy::fork) is charged from its birth (baseline 0). A
// thread the subsystem first meets at an attach is charged from that moment; time it spent
// before, in the top container unknown to the hierarchy, is nobody's. A thread that exits is
// charged at its exit hook when it runs on the thread itself (a thread that attached itself) or
// while the thread can still be read; a thread that ended unseen (found dead by a reap) loses
// the time since its last charge, which the last read or move bounds. A thread id is identified
// by its start time (field 22 of /proc/TID/stat) whenever stat is read, and a clock that went
// backwards is never charged, so a reused id does not charge another thread's time.
//
// Logical tasks (a runtime's coroutines): there is no clock to read; the runtime reports the
// time each task ran with charge(), and the same files show it.
//
// Locking: every operation takes the hierarchy's manage lock (the hooks run with it held, the
// files are subsystem_files whose handlers the path interface runs under it and which call the
// *_locked forms); the counters and the per-thread baselines are guarded by it. Reading does
// system calls under the manage lock, one per thread of the subtree (two more for stat).
#pragma once

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "cftype.hpp"
#include "detail/errors.hpp"
#include "hierarchy.hpp"
#include "subsystem_concepts.hpp"
#include "task_traits.hpp"
#include "detail/tree_walk.hpp"

namespace containers {

namespace detail {

/// USER_HZ: the unit of /proc/TID/stat's utime and stime and of cpuacct.stat.
inline std::uint64_t user_hz() noexcept {
    static std::uint64_t const hz = [] {
        long const v = ::sysconf(_SC_CLK_TCK);
        return v > 0 ? static_cast<std::uint64_t>(v) : std::uint64_t{100};
    }();
    return hz;
}

/// Reads a small /proc file into `buf` (NUL-terminated); false if it cannot be read.
inline bool read_proc(char const* path, char* buf, std::size_t size) noexcept {
    int const fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n;
    do n = ::read(fd, buf, size - 1);
    while (n < 0 && errno == EINTR);
    ::close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    return true;
}

/// The CPU time of thread `tid` in nanoseconds (the kernel's sum_exec_runtime): the per-thread
/// clock of a thread of this process, the caller included (exact), or the first
/// field of /proc/TID/task/TID/schedstat. False when the thread cannot be read (gone).
inline bool thread_runtime_ns(pid_t tid, std::uint64_t& out) noexcept {
    timespec ts{};
    // The kernel's MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED): (~tid << 3) | per-thread | sched.
    auto const id = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6u);
    if (::clock_gettime(id, &ts) == 0) {  // the calling thread's own too: no gettid needed
        out = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
        return true;
    }
    // EINVAL: a thread of another process (the kernel allows thread clocks within the thread
    // group only), or one that has gone.
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", static_cast<int>(tid), static_cast<int>(tid));
    char buf[128];
    if (!read_proc(path, buf, sizeof buf)) return false;
    char* end = nullptr;
    unsigned long long const v = std::strtoull(buf, &end, 10);
    if (end == buf) return false;
    out = v;
    return true;
}

/// Thread `tid`'s user and system time in USER_HZ ticks and its start time (fields 14, 15 and
/// 22 of /proc/TID/task/TID/stat). False when the thread cannot be read.
inline bool thread_ticks(pid_t tid, std::uint64_t& user, std::uint64_t& sys, std::uint64_t& start) noexcept {
    char path[64];
    // Not /proc/TID/stat: for a thread that does not lead its group, that sums the whole group.
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", static_cast<int>(tid), static_cast<int>(tid));
    char buf[1024];
    if (!read_proc(path, buf, sizeof buf)) return false;
    // The name is in parentheses and may hold anything: fields count from the last ')'.
    char const* p = std::strrchr(buf, ')');
    if (p == nullptr) return false;
    ++p;  // " S ppid ...": field 3 starts after the next space
    std::uint64_t fields[3] = {};
    int const wanted[3] = {14, 15, 22};
    int got = 0;
    for (int field = 2; field < 22 && got < 3;) {
        p = std::strchr(p, ' ');
        if (p == nullptr) return false;
        ++p;
        ++field;
        if (field == wanted[got]) fields[got++] = std::strtoull(p, nullptr, 10);
    }
    if (got != 3) return false;
    user = fields[0];
    sys = fields[1];
    start = fields[2];
    return true;
}

}  // namespace detail

template <class H>
class basic_cpuacct : public subsystem_tag {
public:
    using hierarchy_type = H;
    using container = typename H::container;
    using id_type = typename H::id_type;
    static constexpr std::string_view name = "cpuacct";

    struct state {
        // All guarded by the manage lock. Charged to this container and every ancestor, zeroed
        // by a reset of this container only.
        std::uint64_t usage = 0;  // ns of run time
        std::uint64_t user = 0;   // ns of user time (USER_HZ resolution)
        std::uint64_t sys = 0;    // ns of system time (USER_HZ resolution)
    };

    /// cpuacct.stat: user and system time in USER_HZ ticks, adding up to usage.
    struct cpu_stat {
        std::uint64_t user = 0;
        std::uint64_t system = 0;
        bool operator==(cpu_stat const&) const = default;
    };

    // ---- hooks ---------------------------------------------------------------------------------

    /// Makes room for the baselines of threads met for the first time, so that attach cannot
    /// fail. Errors: ENOMEM (nothing changed). Manage lock held.
    std::error_code can_attach(state&, container&, task_set<container> tasks) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            std::error_code ec = containers::detail::guarded_call([&] {
                for (auto const& t : tasks) {
                    auto [it, fresh] = records_.try_emplace(t.id);
                    if (fresh) it->second.fresh = true;
                }
                return std::error_code{};
            });
            if (ec) drop_fresh(tasks);
            return ec;
        } else {
            (void)tasks;
            return {};
        }
    }

    /// Another subsystem vetoed: the baselines made by can_attach go. Manage lock held.
    void cancel_attach(state&, container&, task_set<container> tasks) noexcept {
        if constexpr (H::traits_type::thread_bound) drop_fresh(tasks);
        else (void)tasks;
    }

    /// The commit: each thread's time since its baseline is charged to the container it leaves
    /// (and its ancestors), and its baseline becomes now. Manage and callback locks held.
    void attach(state&, container&, task_set<container> tasks) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            for (auto const& t : tasks) {
                auto it = records_.find(t.id);
                if (it == records_.end()) continue;  // cannot happen: can_attach made it
                record& r = it->second;
                bool const known = !r.fresh && !r.gone;
                if (!known) r = record{};  // first met (or its clock was lost): charged from now
                settle(r, t.id, *t.from, true, known);
            }
        } else {
            (void)tasks;
        }
    }

    /// A forked thread is charged from its birth (baseline 0) to the container it starts in.
    /// Best effort: without memory for its baseline it is charged from its next attach.
    /// Manage and callback locks held.
    void fork(state&, container&, id_type, id_type child) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            (void)containers::detail::guarded_call([&] {
                record& r = records_[child];
                r = record{};
                r.valid = r.ticks_valid = true;  // zero: all of its time is the container's
                return std::error_code{};
            });
        } else {
            (void)child;
        }
    }

    /// The thread's last stretch is charged where it ran, if it can still be read, and its
    /// baseline goes. Manage and callback locks held.
    void exit(state&, container& c, id_type task) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            auto it = records_.find(task);
            if (it == records_.end()) return;
            settle(it->second, task, c, true, true);
            records_.erase(it);
        } else {
            (void)c;
            (void)task;
        }
    }

    /// The files, as data: added to every container after populate.
    template <class C>
    static std::vector<cftype<C>> const& files();

    // ---- typed access --------------------------------------------------------------------------

    /// Effects: charges the time since their baselines of the threads in `c`'s subtree, then
    ///   returns the nanoseconds of CPU time charged to `c` and its descendants since `c` was
    ///   created or last reset (cpuacct.usage).
    /// Locking: takes the manage lock. Complexity: one clock read per thread of the subtree.
    [[nodiscard]] std::uint64_t usage(container& c) noexcept {
        auto lock = c.owner().manage_lock();
        flush(c, false);
        return state_of(c).usage;
    }
    /// As usage(), for user time (cpuacct.usage_user; USER_HZ resolution per thread). Complexity:
    /// a read of /proc/TID/stat per thread.
    [[nodiscard]] std::uint64_t usage_user(container& c) noexcept {
        auto lock = c.owner().manage_lock();
        flush(c, true);
        return state_of(c).user;
    }
    /// As usage(), for system time (cpuacct.usage_sys).
    [[nodiscard]] std::uint64_t usage_sys(container& c) noexcept {
        auto lock = c.owner().manage_lock();
        flush(c, true);
        return state_of(c).sys;
    }
    /// cpuacct.stat: usage split in the user/system proportion, in USER_HZ ticks.
    [[nodiscard]] cpu_stat stat(container& c) noexcept {
        auto lock = c.owner().manage_lock();
        flush(c, true);
        return split(state_of(c));
    }

    /// Effects: zeroes `c`'s usage, user and system time (not its ancestors' or descendants');
    ///   time its threads ran before is charged first, so that it stays with the ancestors. In
    ///   the top container, nothing (the kernel does not reset the global counters).
    /// Errors: ENODEV (removed). Locking: takes the manage lock.
    [[nodiscard]] std::error_code reset(container& c) noexcept {
        auto lock = c.owner().manage_lock();
        return reset_locked(c);
    }

    // ---- one setter and one getter per file ----------------------------------------------------
    //
    // Each file's handler calls the *_locked form, under the manage lock that the path interface
    // holds (subsystem_files): the file and the typed call answer alike, with the same errno.
    // Errors (all): ENODEV (`c` removed); set_usage: EINVAL (a value other than 0).
    // Locking: the plain forms take the manage lock; the *_locked forms require it (asserted).
    // Complexity: as usage() (get_usage) and usage_user() (the others).

    /// cpuacct.usage: writing 0 resets `c` (reset()), any other value is EINVAL, as the kernel's
    ///   cpuusage_write.
    [[nodiscard]] std::error_code set_usage(container& c, std::uint64_t value) noexcept {
        auto lock = c.owner().manage_lock();
        return set_usage_locked(c, value);
    }
    [[nodiscard]] std::error_code set_usage_locked(container& c, std::uint64_t value) noexcept {
        assert(c.owner().manage_lock_held());
        if (c.removed()) return containers::detail::errno_code(ENODEV);
        if (value != 0) return containers::detail::errno_code(EINVAL);
        return reset_locked(c);
    }
    [[nodiscard]] std::error_code reset_locked(container& c) noexcept {
        assert(c.owner().manage_lock_held());
        if (c.removed()) return containers::detail::errno_code(ENODEV);
        if (c.is_top()) return {};
        flush(c, true);
        state_of(c) = state{};
        return {};
    }
    /// cpuacct.usage, cpuacct.usage_user, cpuacct.usage_sys (ns) and cpuacct.stat (USER_HZ).
    [[nodiscard]] std::error_code get_usage(container& c, std::uint64_t& out) noexcept {
        auto lock = c.owner().manage_lock();
        return get_usage_locked(c, out);
    }
    [[nodiscard]] std::error_code get_usage_user(container& c, std::uint64_t& out) noexcept {
        auto lock = c.owner().manage_lock();
        return get_usage_user_locked(c, out);
    }
    [[nodiscard]] std::error_code get_usage_sys(container& c, std::uint64_t& out) noexcept {
        auto lock = c.owner().manage_lock();
        return get_usage_sys_locked(c, out);
    }
    [[nodiscard]] std::error_code get_stat(container& c, cpu_stat& out) noexcept {
        auto lock = c.owner().manage_lock();
        return get_stat_locked(c, out);
    }
    [[nodiscard]] std::error_code get_usage_locked(container& c, std::uint64_t& out) noexcept {
        return get_locked(c, false, [&](state const& s) { out = s.usage; });
    }
    [[nodiscard]] std::error_code get_usage_user_locked(container& c, std::uint64_t& out) noexcept {
        return get_locked(c, true, [&](state const& s) { out = s.user; });
    }
    [[nodiscard]] std::error_code get_usage_sys_locked(container& c, std::uint64_t& out) noexcept {
        return get_locked(c, true, [&](state const& s) { out = s.sys; });
    }
    [[nodiscard]] std::error_code get_stat_locked(container& c, cpu_stat& out) noexcept {
        return get_locked(c, true, [&](state const& s) { out = split(s); });
    }

    /// Effects: for logical tasks, which have no clock the library could read: the runtime
    ///   reports that task `id` ran `user_ns` in user code and `sys_ns` in system calls (or only
    ///   a total as user_ns); the time is charged to its container and every ancestor.
    /// Errors: none (an unknown task is in the top container). Locking: takes the manage lock.
    void charge(H& h, id_type id, std::uint64_t user_ns, std::uint64_t sys_ns) noexcept
        requires(!H::traits_type::thread_bound)
    {
        auto lock = h.manage_lock();
        add(h.container_of(id), user_ns + sys_ns, user_ns, sys_ns);
    }

private:
    // A thread's CPU time when it was last charged. Guarded by the manage lock.
    struct record {
        std::uint64_t ns = 0;     // run time, ns
        std::uint64_t user = 0;   // utime, USER_HZ ticks
        std::uint64_t sys = 0;    // stime, USER_HZ ticks
        std::uint64_t start = 0;  // start time (field 22 of stat): who the id named; 0 unknown
        std::uint64_t ticks_at = 0; // run time when user and sys were read
        bool valid = false;       // ns is a baseline
        bool ticks_valid = false; // user, sys are a baseline
        bool fresh = false;       // made by a can_attach that has not committed yet
        bool gone = false;        // could not be read once: the thread has ended, and its id
                                  // may name another one later; never charged again
    };

    // Charges the subtree up to now (user and system time too with `ticks`), then reads `c`'s
    // counters. Manage lock held.
    template <class F>
    std::error_code get_locked(container& c, bool ticks, F read) noexcept {
        assert(c.owner().manage_lock_held());
        if (c.removed()) return containers::detail::errno_code(ENODEV);
        flush(c, ticks);
        read(state_of(c));
        return {};
    }
    static state& state_of(container const& c) noexcept { return c.owner().template state_of<basic_cpuacct>(c); }

    static void add(container& c, std::uint64_t ns, std::uint64_t user_ns, std::uint64_t sys_ns) noexcept {
        for (container* p = &c; p != nullptr; p = p->parent()) {
            state& s = state_of(*p);
            s.usage += ns;
            s.user += user_ns;
            s.sys += sys_ns;
        }
    }

    static cpu_stat split(state const& s) noexcept {
        // As the kernel's cputime_adjust: the run time, split in the sampled proportion.
        std::uint64_t user = s.usage;
        std::uint64_t sys = 0;
        if (s.sys != 0 && s.user == 0) {
            sys = s.usage;
            user = 0;
        } else if (s.sys != 0) {
            sys = static_cast<std::uint64_t>(static_cast<long double>(s.usage) * static_cast<long double>(s.sys) /
                                             static_cast<long double>(s.user + s.sys));
            user = s.usage - sys;
        }
        std::uint64_t const tick = 1'000'000'000u / detail::user_hz();
        return {user / tick, sys / tick};
    }

    // Reads thread `tid` and charges what it ran since its baseline to `c` and its ancestors
    // (when `charge`), then makes now its baseline. With `ticks`, user and system time too.
    void settle(record& r, pid_t tid, container& c, bool ticks, bool charge) noexcept {
        if (r.gone) return;
        std::uint64_t now = 0;
        if (!detail::thread_runtime_ns(tid, now)) {
            r.gone = true;
            return;
        }
        // A thread that has not run since its last charge has no new user or system time
        // either (both only grow while it runs): stat need not be read. An idle thread moves at
        // the cost of one clock read.
        if (ticks && r.valid && r.ticks_valid && now == r.ns && now == r.ticks_at) return;
        std::uint64_t user_ns = 0;
        std::uint64_t sys_ns = 0;
        if (ticks) {
            std::uint64_t u = 0, s = 0, start = 0;
            if (!detail::thread_ticks(tid, u, s, start) || (r.start != 0 && start != r.start)) {
                // Gone, or the id names another thread now: the one recorded has ended, with
                // the time since its last charge. Nothing is charged; the hierarchy will reap it.
                r.gone = true;
                return;
            }
            if (charge && r.ticks_valid && u >= r.user && s >= r.sys) {
                std::uint64_t const tick = 1'000'000'000u / detail::user_hz();
                user_ns = (u - r.user) * tick;
                sys_ns = (s - r.sys) * tick;
            }
            r.user = u;
            r.sys = s;
            r.start = start;
            r.ticks_at = now;
            r.ticks_valid = true;
        }
        std::uint64_t const ns = charge && r.valid && now >= r.ns ? now - r.ns : 0;
        r.ns = now;
        r.valid = true;
        if (ns != 0 || user_ns != 0 || sys_ns != 0) add(c, ns, user_ns, sys_ns);
    }

    // Charges every thread of `c`'s subtree up to now. Manage lock held.
    void flush(container& c, bool ticks) noexcept {
        assert(c.owner().manage_lock_held());
        if constexpr (H::traits_type::thread_bound) {
            if (records_.empty()) return;
            for (container& d : detail::subtree_walk(c, true)) {
                for (auto const& t : detail::tree_access::tasks(d)) {
                    auto it = records_.find(t.id);
                    if (it != records_.end()) settle(it->second, t.id, d, ticks, true);
                }
            }
        } else {
            (void)c;
            (void)ticks;
        }
    }

    void drop_fresh(task_set<container> tasks) noexcept {
        for (auto const& t : tasks) {
            auto it = records_.find(t.id);
            if (it != records_.end() && it->second.fresh) records_.erase(it);
        }
    }

    std::unordered_map<id_type, record> records_;  // manage lock: threads only
};

// Every handler calls the typed *_locked form of its file, under the manage lock that the path
// interface holds (subsystem_files).
template <class H>
template <class C>
std::vector<cftype<C>> const& basic_cpuacct<H>::files() {
    static std::vector<cftype<C>> const all = [] {
        using ca = basic_cpuacct<H>;
        using typed = subsystem_files<ca, C>;
        using get_ns = std::error_code (ca::*)(container&, std::uint64_t&) noexcept;
        auto ns_get = [](get_ns get) {
            return [get](ca& s, state&, C& c, std::uint64_t& out) { return (s.*get)(c, out); };
        };
        std::vector<cftype<C>> v;
        v.push_back(typed::template number<std::uint64_t>("cpuacct.usage", ns_get(&ca::get_usage_locked),
                                                          [](ca& s, state&, C& c, std::uint64_t value) { return s.set_usage_locked(c, value); }));
        v.push_back(typed::template number<std::uint64_t>("cpuacct.usage_user", ns_get(&ca::get_usage_user_locked)));
        v.push_back(typed::template number<std::uint64_t>("cpuacct.usage_sys", ns_get(&ca::get_usage_sys_locked)));
        v.push_back(typed::file("cpuacct.stat", [](ca& s, state&, C& c, std::string& out) {
            cpu_stat st;
            if (std::error_code ec = s.get_stat_locked(c, st)) return ec;
            out += "user " + std::to_string(st.user) + "\nsystem " + std::to_string(st.system) + "\n";
            return std::error_code{};
        }));
        return v;
    }();
    return all;
}

/// The cpuacct subsystem for the default hierarchy of threads.
using cpuacct = basic_cpuacct<hierarchy<>>;

}  // namespace containers
