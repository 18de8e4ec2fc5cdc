// cpu: CPU shares and bandwidth per container, as the kernel's cgroup v1 cpu controller shows them
// (kernel/sched/core.c, cpu_legacy_files), with a real effect on threads through nice values.
//
// Files, in every container (the top one included, as the kernel's root), with the kernel's
// formats, defaults and errors (checked on 6.18):
// - cpu.shares (default 1024): a u64; 0 and 1 read back as 2, anything above 262144 becomes
//   262144; a malformed number EINVAL, past 64 bits ERANGE; in the top container EINVAL (the
//   kernel cannot change the root's weight).
// - cpu.cfs_period_us (default 100000): 1000 to 1000000, else EINVAL.
// - cpu.cfs_quota_us (default -1, no limit): an s64; any negative value becomes -1; 1000 to
//   2^44 - 1, else EINVAL (past 64 bits ERANGE). A quota must fit its hierarchy, as the kernel's
//   tg_cfs_schedulable_down checks on cgroup v1: each container's quota/period (2^20 fixed point,
//   computed as the kernel computes it, wrap-around included) may not exceed the nearest limited
//   ancestor's, or the write that would break that (of the container or of an ancestor) is EINVAL.
// - cpu.cfs_burst_us (default 0): a u64; at most the quota (with a quota), quota + burst at most
//   2^44 - 1, and at most 2^64 / 1000 - 1, else EINVAL.
// - cpu.stat (read-only; writing is EINVAL): nr_periods, nr_throttled, throttled_time (ns),
//   nr_bursts, burst_time (ns).
// Period, quota and burst of the top container cannot be written (EINVAL), as the kernel's root.
// Left out: cpu.idle, cpu.rt_period_us, cpu.rt_runtime_us and cpu.stat.local (SCHED_IDLE groups,
// real-time group bandwidth and per-group local throttling have no user-space model here).
//
// Weights, for threads (thread_task_traits): CFS gives a group on its parent's run queue the
// weight of its shares, against each thread queued there directly at its nice weight (1024 at
// nice 0). The library flattens that tree into one nice value per thread, from the kernel's
// sched_prio_to_weight table:
//   D(g) = 1024 * (tasks directly in g) + sum of shares(c) over g's children c with a task in
//          their subtree (the entities competing on g's run queue);
//   W(top) = D(top); W(c) = W(g) * shares(c) / D(g) for such a child c, 0 for an empty subtree;
//   a task's weight in g = W(g) * 1024 / D(g) (W(g) / tasks when g has no busy child);
//   nice = the table entry nearest that weight (on a log scale), -20 to 19.
// So a group directly below the top weighs exactly its shares, as in the kernel's root run queue,
// and a task of the top container weighs 1024: the top container is the kernel's root, and its
// threads keep their own nice. Weights are recomputed and nice values applied
// (setpriority(PRIO_PROCESS, tid, nice)) whenever they change: after an attach (post_attach), a
// fork, an exit, and a shares write. A thread keeps the nice it had when it first joined
// (its original) and gets it back when it moves to the top container or leaves the hierarchy
// alive (task_leaves_alive: identity checked, a reused id is never touched), as cpuset gives
// affinity back. The mapping is an approximation: adjacent nice values differ by about 25%, so
// one thread's weight is within about 12% of the model's; and it competes with every other thread
// of the machine at the same absolute nice, which the kernel's groups would shield it from.
// Privilege: lowering a nice below the original needs CAP_SYS_NICE (or RLIMIT_NICE); changing
// another user's thread needs CAP_SYS_NICE. A shares write (set_shares, the file) applies the new
// nices all or nothing: on the first refusal the nices already changed are put back, the shares
// stay as they were, and the write fails with setpriority's errno (EACCES or EPERM) — unlike the
// kernel, which never fails it, because the library's promise is that a failed write changed
// nothing. Lowerings are applied before raisings, so that putting back means raising, which a
// thread's own user may always do (for another user's thread without CAP_SYS_NICE, putting back
// can fail too; it is then counted in nice_failures()). Attach, fork and exit cannot fail on account of a nice (the kernel's cannot either):
// there a nice that cannot be applied is left as it is and counted (nice_failures()). Threads of
// other processes are treated like our own (setpriority takes any tid, given the privilege).
//
// Quota: user space cannot stop another thread's execution at a quota boundary without its
// cooperation (a signal-based stop is what the freezer does, and is too coarse and too costly
// for every period). So bandwidth is enforced cooperatively: a thread calls checkpoint(h) in its
// loop; checkpoint charges the thread's CPU time since its last checkpoint to its container and
// every ancestor with a quota, refilling each one's runtime at every period boundary (unused
// runtime carried up to burst, as the kernel's cfs burst; an overrun carried as debt, so that the
// long-run rate is the quota), and when any of them has run out, sleeps (clock_nanosleep) until
// the end of that period, counting nr_periods (periods in which the group ran), nr_throttled
// and throttled_time (the group's throttled wall time in the period) in cpu.stat, and nr_bursts
// and burst_time when a period used burst. A thread that never calls checkpoint is never
// throttled. Time before a thread's first checkpoint in a container, and before a quota change,
// is not charged.
//
// Logical tasks (a runtime's coroutines): no nice values and no clock. The runtime's scheduler
// reads effective_weight(c) and task_weight(c) (lock-free) to schedule by weight (the coroutine
// example runs stride scheduling on them), and reports run time with charge(h, id, ns), which
// returns until when the task's group is throttled (0: it may run).
//
// Locking: the files, the typed accessors, checkpoint and charge take the manage lock (the file
// handlers run under it); the hooks run with it. Configuration, counters and per-thread records
// are guarded by it; the weights are also published as atomics for lock-free readers.
// Complexity: weights are recomputed over the whole tree, O(containers + tasks), after every
// attach, fork, exit and shares write, plus a setpriority (and an identity check) per thread whose
// nice changes; checkpoint and charge walk the task's ancestors.
#pragma once

#include <atomic>
#include <cassert>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <sys/resource.h>
#include <time.h>

#include "cftype.hpp"
#include "detail/errors.hpp"
#include "detail/syscalls.hpp"
#include "detail/tree_walk.hpp"
#include "hierarchy.hpp"
#include "subsystem_concepts.hpp"

namespace containers {

namespace detail {

/// The kernel's sched_prio_to_weight: the CFS weight of nice -20 .. 19.
inline constexpr int nice_weights[40] = {88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916,
                                         9548,  7620,  6100,  4904,  3906,  3121,  2501,  1991,  1586,  1277,
                                         1024,  820,   655,   526,   423,   335,   272,   215,   172,   137,
                                         110,   87,    70,    56,    45,    36,    29,    23,    18,    15};

/// The nice whose weight is nearest `w` on a log scale (weights are geometric, about 1.25 apart).
inline int nice_for_weight(double w) noexcept {
    if (!(w > 0)) return 19;
    int best = 0;
    double best_d = 1e300;
    for (int i = 0; i < 40; ++i) {
        double const d = std::fabs(std::log(w / nice_weights[i]));
        if (d < best_d) {
            best_d = d;
            best = i;
        }
    }
    return best - 20;
}

inline std::uint64_t clock_ns(clockid_t id) noexcept {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace detail

template <class H>
class basic_cpu : public subsystem_tag {
public:
    using hierarchy_type = H;
    using container = typename H::container;
    using id_type = typename H::id_type;
    static constexpr std::string_view name = "cpu";

    static constexpr std::uint64_t min_shares = 2;           // the kernel's MIN_SHARES
    static constexpr std::uint64_t max_shares = 1u << 18;    // MAX_SHARES
    static constexpr std::uint64_t default_shares = 1024;
    static constexpr std::uint64_t min_period_us = 1000;     // min_cfs_quota_period
    static constexpr std::uint64_t max_period_us = 1000000;  // max_cfs_quota_period
    static constexpr std::uint64_t default_period_us = 100000;
    static constexpr std::int64_t no_quota = -1;
    static constexpr std::int64_t max_quota_us = (std::int64_t{1} << 44) - 1;  // max_bw_runtime_us
    static constexpr std::uint64_t max_burst_us = UINT64_MAX / 1000;            // must survive * 1000

    /// cpu.stat.
    struct cpu_stat {
        std::uint64_t nr_periods = 0;
        std::uint64_t nr_throttled = 0;
        std::uint64_t throttled_time = 0;  // ns
        std::uint64_t nr_bursts = 0;
        std::uint64_t burst_time = 0;      // ns
        bool operator==(cpu_stat const&) const = default;
    };

    struct state {
        // Configuration: manage lock.
        std::uint64_t shares = default_shares;
        std::uint64_t period_us = default_period_us;
        std::int64_t quota_us = no_quota;
        std::uint64_t burst_us = 0;
        // Weights: computed under the manage lock, published for lock-free readers.
        std::size_t subtree_tasks = 0;  // manage lock, scratch of reweigh
        double denominator = 0;         // manage lock: D(g)
        std::atomic<double> weight{0};       // W(g)
        std::atomic<double> task_weight{0};  // a task's weight in g
        // Bandwidth: manage lock.
        std::uint64_t period_start = 0;  // monotonic ns; 0: no period running
        std::int64_t runtime = 0;        // ns left in this period (negative: debt)
        std::uint64_t used = 0;          // ns charged in this period
        bool throttled = false;          // throttled in this period already
        cpu_stat stat;
        std::uint64_t hier_scratch = 0;  // manage lock: scratch of schedulable()
    };

    // ---- hooks ---------------------------------------------------------------------------------

    /// Records each thread met for the first time with its original nice (getpriority), so that
    /// attach cannot fail. Errors: ENOMEM, getpriority's (ESRCH); nothing changed. Manage lock held.
    std::error_code can_attach(state&, container&, task_set<container> tasks) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            std::error_code ec = containers::detail::guarded_call([&] {
                for (auto const& t : tasks) {
                    auto [it, fresh] = records_.try_emplace(t.id);
                    if (!fresh) continue;
                    it->second.fresh = true;
                    int nice = 0;
                    if (std::error_code e = get_nice(t.id, nice)) return e;
                    it->second.original = it->second.applied = nice;
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
    void cancel_attach(state&, container&, task_set<container> tasks) noexcept {
        if constexpr (H::traits_type::thread_bound) drop_fresh(tasks);
        else (void)tasks;
    }

    /// The commit: records kept; a thread that moved to the top gets its original nice back; the
    /// checkpoint baseline restarts. Manage lock held (callback lock dropped). Best effort.
    void post_attach(state&, container& c, task_set<container> tasks) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            for (auto const& t : tasks) {
                auto it = records_.find(t.id);
                if (it == records_.end()) continue;
                it->second.fresh = false;
                it->second.baseline = false;
                if (c.is_top()) restore(it->second, t.id);
            }
        } else {
            (void)tasks;
        }
        reweigh(c.owner(), false);
    }

    /// A child starts with its parent's nice (the kernel copies it at clone); its original is the
    /// parent's original. Best effort. Manage and callback locks held.
    void fork(state&, container& c, id_type parent, id_type child) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            (void)containers::detail::guarded_call([&] {
                record r;
                int nice = 0;
                if (get_nice(child, nice)) return std::error_code{};
                r.applied = nice;
                auto p = records_.find(parent);
                r.original = p != records_.end() ? p->second.original : nice;
                records_.insert_or_assign(child, r);
                return std::error_code{};
            });
        } else {
            (void)parent;
            (void)child;
        }
        reweigh(c.owner(), false);
    }

    /// A thread that leaves alive gets its original nice back. Manage and callback locks held.
    void exit(state&, container& c, id_type task) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            auto it = records_.find(task);
            if (it != records_.end()) {
                if (c.owner().task_leaves_alive()) restore(it->second, task);
                records_.erase(it);
            }
        } else {
            (void)task;
        }
        reweigh(c.owner(), false);
    }

    /// The files, as data: added to every container after populate.
    template <class C>
    static std::vector<cftype<C>> const& files();

    // ---- typed access to every file --------------------------------------------------------------
    //
    // The file handlers call the *_locked forms (manage lock held, asserted); the plain forms take
    // the manage lock. Errors (all): ENODEV (`c` removed); each setter: its file's own (see the top
    // of this header). On error nothing has changed.

    /// cpu.shares: the value is clamped to [min_shares, max_shares] as the kernel does; threads'
    /// nice values follow, all or nothing. Errors: EINVAL (the top container), EACCES / EPERM
    /// (setpriority refused a thread's new nice).
    [[nodiscard]] std::error_code set_shares(container& c, std::uint64_t shares) noexcept {
        return locked(c, [&] { return set_shares_locked(c, shares); });
    }
    [[nodiscard]] std::error_code set_shares_locked(container& c, std::uint64_t shares) noexcept {
        if (std::error_code ec = check_locked(c)) return ec;
        if (c.is_top()) return containers::detail::errno_code(EINVAL);
        shares = shares < min_shares ? min_shares : shares > max_shares ? max_shares : shares;
        state& s = state_of(c);
        std::uint64_t const old = s.shares;
        if (old == shares) return {};
        s.shares = shares;
        if (std::error_code ec = reweigh(c.owner(), true)) {
            s.shares = old;
            reweigh(c.owner(), false);  // the weights as they were; the nices were put back
            return ec;
        }
        return {};
    }
    [[nodiscard]] std::error_code get_shares(container& c, std::uint64_t& out) noexcept {
        return locked(c, [&] { return get_shares_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_shares_locked(container& c, std::uint64_t& out) noexcept {
        return get_locked(c, [&](state const& s) { out = s.shares; });
    }

    /// cpu.cfs_period_us. Errors: EINVAL (outside 1000..1000000, the top container, or breaking
    /// the hierarchy's quota rule).
    [[nodiscard]] std::error_code set_period_us(container& c, std::uint64_t period) noexcept {
        return locked(c, [&] { return set_period_us_locked(c, period); });
    }
    [[nodiscard]] std::error_code set_period_us_locked(container& c, std::uint64_t period) noexcept {
        if (std::error_code ec = check_locked(c)) return ec;
        state const& s = state_of(c);
        return set_bandwidth_locked(c, period, s.quota_us, s.burst_us);
    }
    [[nodiscard]] std::error_code get_period_us(container& c, std::uint64_t& out) noexcept {
        return locked(c, [&] { return get_period_us_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_period_us_locked(container& c, std::uint64_t& out) noexcept {
        return get_locked(c, [&](state const& s) { out = s.period_us; });
    }

    /// cpu.cfs_quota_us; a negative value means no quota (reads -1). Errors: EINVAL (0 to 999,
    /// above max_quota_us, below the burst, the top container, or breaking the hierarchy's rule).
    [[nodiscard]] std::error_code set_quota_us(container& c, std::int64_t quota) noexcept {
        return locked(c, [&] { return set_quota_us_locked(c, quota); });
    }
    [[nodiscard]] std::error_code set_quota_us_locked(container& c, std::int64_t quota) noexcept {
        if (std::error_code ec = check_locked(c)) return ec;
        state const& s = state_of(c);
        return set_bandwidth_locked(c, s.period_us, quota < 0 ? no_quota : quota, s.burst_us);
    }
    [[nodiscard]] std::error_code get_quota_us(container& c, std::int64_t& out) noexcept {
        return locked(c, [&] { return get_quota_us_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_quota_us_locked(container& c, std::int64_t& out) noexcept {
        return get_locked(c, [&](state const& s) { out = s.quota_us; });
    }

    /// cpu.cfs_burst_us. Errors: EINVAL (above the quota, quota + burst above max_quota_us, above
    /// max_burst_us, or the top container).
    [[nodiscard]] std::error_code set_burst_us(container& c, std::uint64_t burst) noexcept {
        return locked(c, [&] { return set_burst_us_locked(c, burst); });
    }
    [[nodiscard]] std::error_code set_burst_us_locked(container& c, std::uint64_t burst) noexcept {
        if (std::error_code ec = check_locked(c)) return ec;
        state const& s = state_of(c);
        return set_bandwidth_locked(c, s.period_us, s.quota_us, burst);
    }
    [[nodiscard]] std::error_code get_burst_us(container& c, std::uint64_t& out) noexcept {
        return locked(c, [&] { return get_burst_us_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_burst_us_locked(container& c, std::uint64_t& out) noexcept {
        return get_locked(c, [&](state const& s) { out = s.burst_us; });
    }

    /// cpu.stat.
    [[nodiscard]] std::error_code get_stat(container& c, cpu_stat& out) noexcept {
        return locked(c, [&] { return get_stat_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_stat_locked(container& c, cpu_stat& out) noexcept {
        return get_locked(c, [&](state const& s) { out = s.stat; });
    }

    // ---- weights, for a runtime's scheduler ---------------------------------------------------

    /// W(c): the share of the hierarchy's CPU time that `c`'s subtree gets, in nice-0 units (see
    /// the top of this header); 0 while its subtree has no task. Lock-free (a snapshot that the
    /// hooks and shares writes update).
    [[nodiscard]] static double effective_weight(container const& c) noexcept {
        return state_of(c).weight.load(std::memory_order_relaxed);
    }
    /// The weight of one task directly in `c` (W(c) * 1024 / D(c)); 0 while `c` has no task.
    /// Lock-free.
    [[nodiscard]] static double task_weight(container const& c) noexcept {
        return state_of(c).task_weight.load(std::memory_order_relaxed);
    }
    /// The nice value the model gives a thread of weight `w` (the kernel's table, nearest entry).
    [[nodiscard]] static int nice_for_weight(double w) noexcept { return detail::nice_for_weight(w); }
    /// setpriority failures met where nothing could fail (attach, fork, exit); manage lock or not.
    [[nodiscard]] std::uint64_t nice_failures() const noexcept { return nice_failures_.load(std::memory_order_relaxed); }

    // ---- quota: the cooperative check -----------------------------------------------------------

    /// Effects: the calling thread's CPU time since its last checkpoint (in its present container)
    ///   is charged to its container and every ancestor with a quota; if one of them has spent
    ///   its runtime for the current period, the thread sleeps until that period ends (the
    ///   latest such end), and cpu.stat counts the throttle. Returns the nanoseconds slept.
    ///   A thread in the top container, or that the hierarchy does not know, is never throttled.
    /// Locking: takes the manage lock, and sleeps after releasing it. Thread tasks only.
    std::uint64_t checkpoint(H& h) noexcept
        requires(H::traits_type::thread_bound)
    {
        std::uint64_t until = 0;
        {
            auto lock = h.manage_lock();
            id_type const self = H::traits_type::self();
            auto it = records_.find(self);
            if (it == records_.end()) return 0;
            record& r = it->second;
            std::uint64_t const cpu_now = detail::clock_ns(CLOCK_THREAD_CPUTIME_ID);
            std::uint64_t const gen = generation_;
            bool const charge_it = r.baseline && r.generation == gen && cpu_now >= r.cpu;
            std::uint64_t const delta = charge_it ? cpu_now - r.cpu : 0;
            r.cpu = cpu_now;
            r.baseline = true;
            r.generation = gen;
            until = charge_locked(h.container_of(self), delta, detail::clock_ns(CLOCK_MONOTONIC));
        }
        if (until == 0) return 0;
        std::uint64_t const start = detail::clock_ns(CLOCK_MONOTONIC);
        timespec ts{static_cast<time_t>(until / 1'000'000'000u), static_cast<long>(until % 1'000'000'000u)};
        while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        }
        std::uint64_t const end = detail::clock_ns(CLOCK_MONOTONIC);
        return end > start ? end - start : 0;
    }

    /// Effects: for logical tasks: task `id` ran `ns`; charged as checkpoint charges. Returns the
    ///   CLOCK_MONOTONIC time (ns) until which the task's group is throttled, 0 if it may run on.
    ///   The runtime does not resume the task's group's tasks before then.
    /// Locking: takes the manage lock.
    std::uint64_t charge(H& h, id_type id, std::uint64_t ns) noexcept {
        auto lock = h.manage_lock();
        return charge_locked(h.container_of(id), ns, detail::clock_ns(CLOCK_MONOTONIC));
    }

private:
    struct record {  // one thread: manage lock
        int original = 0;     // its nice when it first joined
        int applied = 0;      // its nice now, as far as the library knows
        int previous = 0;     // before the change being tried (reweigh, all or nothing)
        bool changed = false; // changed by the change being tried
        bool fresh = false;   // made by a can_attach not committed yet
        bool baseline = false;         // cpu holds its CPU clock at its last checkpoint
        std::uint64_t cpu = 0;
        std::uint64_t generation = 0;  // generation_ at its last checkpoint
    };

    static basic_cpu& self(container& c) noexcept { return *c.owner().template subsystem<basic_cpu>(); }
    static state& state_of(container const& c) noexcept { return c.owner().template state_of<basic_cpu>(c); }

    template <class F>
    static std::error_code locked(container& c, F f) noexcept {
        auto lock = c.owner().manage_lock();
        return f();
    }
    static std::error_code check_locked(container& c) noexcept {
        assert(c.owner().manage_lock_held());
        if (c.removed()) return containers::detail::errno_code(ENODEV);
        return {};
    }
    template <class F>
    static std::error_code get_locked(container& c, F f) noexcept {
        if (std::error_code ec = check_locked(c)) return ec;
        f(state_of(c));
        return {};
    }

    static std::error_code get_nice(id_type tid, int& out) noexcept {
        errno = 0;
        int const n = ::getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
        if (n == -1 && errno != 0) return containers::detail::errno_code(errno);
        out = n;
        return {};
    }
    static std::error_code set_nice(id_type tid, int nice) noexcept {
        if (int e = detail::sys::setpriority(static_cast<pid_t>(tid), nice)) return containers::detail::errno_code(e);
        return {};
    }

    void drop_fresh(task_set<container> tasks) noexcept {
        for (auto const& t : tasks) {
            auto it = records_.find(t.id);
            if (it != records_.end() && it->second.fresh) records_.erase(it);
        }
    }

    void restore(record& r, id_type tid) noexcept {
        if (r.applied == r.original) return;
        if (set_nice(tid, r.original)) nice_failures_.fetch_add(1, std::memory_order_relaxed);
        else r.applied = r.original;
    }

    // Recomputes every container's weights (see the top of this header) and, for threads, applies
    // the nices that changed. With `all_or_nothing`, the first refusal puts back the nices changed
    // so far and is returned; otherwise refusals are counted and the walk goes on. Manage lock held.
    std::error_code reweigh(H& h, bool all_or_nothing) noexcept {
        assert(h.manage_lock_held());
        container& top = h.top();
        for (container& g : detail::subtree_walk(top, true)) state_of(g).subtree_tasks = 0;
        for (container& g : detail::subtree_walk(top, true)) {
            std::size_t const n = g.task_count();
            if (n == 0) continue;
            for (container* p = &g; p != nullptr; p = p->parent()) state_of(*p).subtree_tasks += n;
        }
        for (container& g : detail::subtree_walk(top, true)) {
            state& s = state_of(g);
            double d = 1024.0 * static_cast<double>(g.task_count());
            for (container& ch : detail::tree_access::children(g)) {
                if (state_of(ch).subtree_tasks != 0) d += static_cast<double>(state_of(ch).shares);
            }
            s.denominator = d;
            double const w = g.is_top() ? d : s.weight.load(std::memory_order_relaxed);
            if (g.is_top()) s.weight.store(w, std::memory_order_relaxed);
            s.task_weight.store(g.task_count() != 0 && d > 0 ? w * 1024.0 / d : 0.0, std::memory_order_relaxed);
            for (container& ch : detail::tree_access::children(g)) {
                state& cs = state_of(ch);
                cs.weight.store(cs.subtree_tasks != 0 && d > 0 ? w * static_cast<double>(cs.shares) / d : 0.0, std::memory_order_relaxed);
            }
        }
        if constexpr (H::traits_type::thread_bound) {
            // Lowerings first (the ones that need privilege), then raisings: a refusal among the
            // lowerings is undone by raising back, which a thread's own user may always do.
            std::error_code failure;
            for (int pass = 0; pass < 2 && !failure; ++pass) {
                for (container& g : detail::subtree_walk(top, false)) {
                    if (g.task_count() == 0) continue;
                    int const nice = detail::nice_for_weight(state_of(g).task_weight.load(std::memory_order_relaxed));
                    for (auto const& t : detail::tree_access::tasks(g)) {
                        auto it = records_.find(t.id);
                        if (it == records_.end() || it->second.applied == nice || (nice < it->second.applied) != (pass == 0)) continue;
                        record& r = it->second;
                        if (!t.alive()) continue;  // exited, or its id reused: never renice another thread
                        if (std::error_code ec = set_nice(t.id, nice)) {
                            if (!all_or_nothing) {
                                nice_failures_.fetch_add(1, std::memory_order_relaxed);
                                continue;
                            }
                            failure = ec;
                            break;
                        }
                        r.previous = r.applied;
                        r.changed = true;
                        r.applied = nice;
                    }
                    if (failure) break;
                }
            }
            for (auto& [tid, r] : records_) {
                if (!r.changed) continue;
                r.changed = false;
                if (!failure) continue;
                if (set_nice(tid, r.previous)) nice_failures_.fetch_add(1, std::memory_order_relaxed);
                else r.applied = r.previous;
            }
            return failure;
        } else {
            (void)all_or_nothing;
            return {};
        }
    }

    // The kernel's to_ratio on nanoseconds, u64 wrap-around included (normalize_cfs_quota).
    static std::uint64_t ratio(std::uint64_t period_us, std::int64_t quota_us) noexcept {
        if (quota_us < 0) return UINT64_MAX;
        std::uint64_t const period = period_us * 1000u;
        std::uint64_t const quota = static_cast<std::uint64_t>(quota_us) * 1000u;
        return (quota << 20) / period;
    }

    // Whether every container's quota fits its nearest limited ancestor's once `c` has
    // (period, quota): tg_cfs_schedulable_down over the whole tree, cgroup v1 rules.
    static bool schedulable(H& h, container& c, std::uint64_t period, std::int64_t quota) noexcept {
        for (container& g : detail::subtree_walk(h.top(), true)) {
            state& s = state_of(g);
            std::uint64_t q = UINT64_MAX;  // RUNTIME_INF
            if (!g.is_top()) {
                q = &g == &c ? ratio(period, quota) : ratio(s.period_us, s.quota_us);
                std::uint64_t const parent = state_of(*g.parent()).hier_scratch;
                if (q == UINT64_MAX) q = parent;
                else if (parent != UINT64_MAX && q > parent) return false;
            }
            s.hier_scratch = q;
        }
        return true;
    }

    std::error_code set_bandwidth_locked(container& c, std::uint64_t period, std::int64_t quota, std::uint64_t burst) noexcept {
        auto einval = [] { return containers::detail::errno_code(EINVAL); };
        if (c.is_top()) return einval();
        if (period > max_burst_us || burst > max_burst_us) return einval();
        if (period < min_period_us || (quota != no_quota && quota < static_cast<std::int64_t>(min_period_us))) return einval();
        if (period > max_period_us) return einval();
        if (quota != no_quota && quota > max_quota_us) return einval();
        if (quota != no_quota && (burst > static_cast<std::uint64_t>(quota) ||
                                  burst + static_cast<std::uint64_t>(quota) > static_cast<std::uint64_t>(max_quota_us))) {
            return einval();
        }
        if (!schedulable(c.owner(), c, period, quota)) return einval();
        state& s = state_of(c);
        s.period_us = period;
        s.quota_us = quota;
        s.burst_us = burst;
        s.period_start = 0;  // a new period starts at the next charge, with a full quota
        s.runtime = 0;
        s.used = 0;
        s.throttled = false;
        ++generation_;
        return {};
    }

    // Charges `ns` at monotonic time `now` to `c` and its limited ancestors; returns the end of
    // the latest period in which one of them is out of runtime, or 0. Manage lock held.
    std::uint64_t charge_locked(container& c, std::uint64_t ns, std::uint64_t now) noexcept {
        std::uint64_t until = 0;
        for (container* g = &c; g != nullptr && !g->is_top(); g = g->parent()) {
            state& s = state_of(*g);
            if (s.quota_us == no_quota) continue;
            std::uint64_t const period = s.period_us * 1000u;
            auto const quota = static_cast<std::int64_t>(s.quota_us) * 1000;
            auto const burst = static_cast<std::int64_t>(s.burst_us) * 1000;
            if (s.period_start == 0) {
                s.period_start = now;
                s.runtime = quota;
                s.used = 0;
                s.throttled = false;
                s.stat.nr_periods++;
            } else if (now >= s.period_start + period) {
                // The period ended: what it used beyond the quota came from the burst.
                if (burst > 0 && s.used > static_cast<std::uint64_t>(quota)) {
                    s.stat.nr_bursts++;
                    s.stat.burst_time += std::min<std::uint64_t>(s.used - static_cast<std::uint64_t>(quota), static_cast<std::uint64_t>(burst));
                }
                std::uint64_t const periods = (now - s.period_start) / period;
                s.period_start += periods * period;
                // Each period adds a quota; unused runtime carries up to the burst; debt carries.
                std::int64_t const cap = quota + burst;
                if (s.runtime < cap) {
                    auto const need = static_cast<std::uint64_t>(cap - s.runtime);
                    auto const q = static_cast<std::uint64_t>(quota);
                    s.runtime = periods > need / q ? cap : s.runtime + static_cast<std::int64_t>(periods * q);
                }
                s.used = 0;
                s.throttled = false;
                s.stat.nr_periods++;
            }
            s.runtime -= static_cast<std::int64_t>(ns);
            s.used += ns;
            if (s.runtime <= 0) {
                std::uint64_t const end = s.period_start + period;
                if (!s.throttled) {
                    s.throttled = true;
                    s.stat.nr_throttled++;
                    s.stat.throttled_time += end > now ? end - now : 0;
                }
                until = std::max(until, end);
            }
        }
        return until;
    }

    std::unordered_map<id_type, record> records_;  // manage lock: threads only
    std::uint64_t generation_ = 1;                  // manage lock: bumped by every bandwidth change
    std::atomic<std::uint64_t> nice_failures_{0};
};

template <class H>
template <class C>
std::vector<cftype<C>> const& basic_cpu<H>::files() {
    static std::vector<cftype<C>> const all = [] {
        using cs = basic_cpu<H>;
        using typed = subsystem_files<cs, C>;
        std::vector<cftype<C>> v;
        // cpu_shares_write_u64 and the cfs writers take kstrtoull / kstrtoll numbers, as number_file.
        v.push_back(typed::template number<std::uint64_t>(
            "cpu.shares", [](cs& s, state&, C& c, std::uint64_t& out) { return s.get_shares_locked(c, out); },
            [](cs& s, state&, C& c, std::uint64_t value) { return s.set_shares_locked(c, value); }));
        v.push_back(typed::template number<std::uint64_t>(
            "cpu.cfs_period_us", [](cs& s, state&, C& c, std::uint64_t& out) { return s.get_period_us_locked(c, out); },
            [](cs& s, state&, C& c, std::uint64_t value) { return s.set_period_us_locked(c, value); }));
        v.push_back(typed::template number<std::int64_t>(
            "cpu.cfs_quota_us", [](cs& s, state&, C& c, std::int64_t& out) { return s.get_quota_us_locked(c, out); },
            [](cs& s, state&, C& c, std::int64_t value) { return s.set_quota_us_locked(c, value); }));
        v.push_back(typed::template number<std::uint64_t>(
            "cpu.cfs_burst_us", [](cs& s, state&, C& c, std::uint64_t& out) { return s.get_burst_us_locked(c, out); },
            [](cs& s, state&, C& c, std::uint64_t value) { return s.set_burst_us_locked(c, value); }));
        v.push_back(typed::file("cpu.stat", [](cs& s, state&, C& c, std::string& out) {
            cpu_stat st;
            if (std::error_code ec = s.get_stat_locked(c, st)) return ec;
            out += "nr_periods " + std::to_string(st.nr_periods) + "\nnr_throttled " + std::to_string(st.nr_throttled) +
                   "\nthrottled_time " + std::to_string(st.throttled_time) + "\nnr_bursts " + std::to_string(st.nr_bursts) +
                   "\nburst_time " + std::to_string(st.burst_time) + "\n";
            return std::error_code{};
        }));
        return v;
    }();
    return all;
}

/// The cpu subsystem for the default hierarchy of threads (not named `cpu`, which code in this
/// namespace uses for CPU numbers).
using cpu_controller = basic_cpu<hierarchy<>>;

}  // namespace containers
