// cpuset: the reference subsystem. Threads attached to a cpuset run only on its CPUs, for real.
//
// Behaviour is the kernel's cgroup v1 cpuset (Documentation/admin-guide/cgroup-v1/cpusets.rst):
// the same files with the same defaults, formats and errno (EBUSY when a child would no longer
// fit, EACCES when a cpuset would leave its parent, EINVAL for exclusive siblings that overlap or
// CPUs and nodes that are not online, ENOSPC when a cpuset with tasks would be emptied or an
// empty one is joined). Its effect is real: attach sets each thread's affinity with
// sched_setaffinity to the cpuset's effective CPUs (intersected with the thread's own request,
// as kernels since 6.2 keep it), and changing a cpuset's CPUs re-applies the affinity of its
// tasks at once.
//
// Memory nodes: a thread can only set its own memory policy, so a thread applies its cpuset's
// nodes (set_mempolicy MPOL_BIND) at refresh points, the seed's scheme with a generation check
// that costs one comparison when nothing changed (refresh()). With memory_migrate set, a task's
// pages follow its cpuset's nodes with migrate_pages(2) when it joins and when the nodes change:
// as far as user space can, that is the process's pages, for any of its threads.
//
// Locking: file handlers and topology changes take the hierarchy's manage lock, and its callback
// lock at the moment of change. The effective masks are published as immutable snapshots that the
// read path loads without locks (inside a read_section); replaced snapshots are freed after a
// grace period.
//
// Failure: a change is a two-phase commit. Everything that can fail comes first: the new
// snapshot is allocated, then each affected thread gets its new affinity while its old one is
// kept; a failure (ENOMEM, or the errno of sched_setaffinity: EBUSY for a SCHED_DEADLINE thread
// whose bandwidth does not fit, EINVAL for a thread that may not change affinity, ESRCH, EPERM)
// puts the affinities already changed back, in reverse, and nothing else has changed. Then the
// masks and the snapshot are committed, which cannot fail. Attach follows the same rule across
// the hierarchy's hooks: can_attach applies the affinities, cancel_attach restores them, attach
// only records. System calls go through detail/syscalls.hpp, so that tests can fail any of them.
#pragma once

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#include <mutex>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cftype.hpp"
#include "cpumask.hpp"
#include "detail/errors.hpp"
#include "detail/function.hpp"
#include "detail/owned_mutex.hpp"
#include "detail/rcu.hpp"
#include "detail/syscalls.hpp"
#include "detail/tree_walk.hpp"
#include "hierarchy.hpp"
#include "subsystem_concepts.hpp"
#include "topology.hpp"

namespace containers {

/// The kernel's memory_pressure meter (kernel/cgroup/cpuset-v1.c, fmeter): a first-order filter
/// with a 10 s half-life, in events per second times 1000, ticked once a second.
class fmeter {
public:
    static constexpr int coef = 933;  // coefficient for a 10 s half-life
    static constexpr int max_ticks = 99;
    static constexpr int max_count = 1'000'000;
    static constexpr int scale = 1000;

    void mark_event(std::int64_t now_seconds) noexcept {
        containers::detail::no_freeze nf;  // never parked holding it (the freezer)
        std::lock_guard g(mutex_);
        update(now_seconds);
        count_ = std::min(max_count, count_ + scale);
    }
    [[nodiscard]] int rate(std::int64_t now_seconds) noexcept {
        containers::detail::no_freeze nf;  // never parked holding it (the freezer)
        std::lock_guard g(mutex_);
        update(now_seconds);
        return value_;
    }

private:
    void update(std::int64_t now) noexcept {
        std::int64_t ticks = now - time_;
        if (ticks == 0) return;
        ticks = std::min<std::int64_t>(max_ticks, ticks);
        while (ticks-- > 0) value_ = (coef * value_) / scale;
        time_ = now;
        value_ += ((scale - coef) * count_) / scale;
        count_ = 0;
    }

    std::mutex mutex_;
    int count_ = 0;
    int value_ = 0;
    std::int64_t time_ = 0;
};

namespace detail {

/// The size of the kernel's CPU masks in bytes (cpumask_size(): what sched_getaffinity copies).
/// Probed once; 512 (4096 CPUs) if the probe fails.
inline std::size_t kernel_mask_bytes() noexcept {
    static std::size_t const bytes = [] {
        static unsigned long probe[1024];  // 65536 CPUs
        long const r = ::syscall(SYS_sched_getaffinity, 0, sizeof probe, probe);
        return r > 0 ? static_cast<std::size_t>(r) : std::size_t{512};
    }();
    return bytes;
}

/// Whether thread `tid` may not change its affinity (PF_NO_SETAFFINITY in /proc/TID/stat: per-CPU
/// kernel threads and the like), as the kernel's task_can_attach checks. Reads with open/read
/// into a stack buffer: no allocation. A thread that cannot be read is not predicted to fail.
inline bool no_setaffinity(pid_t tid) noexcept {
    constexpr unsigned long pf_no_setaffinity = 0x04000000;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(tid));
    int const fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[1024];
    ssize_t const n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    // The name is in parentheses and may hold anything: fields count from the last ')'.
    char const* p = std::strrchr(buf, ')');
    if (p == nullptr) return false;
    // After ')': state (3), ppid, pgrp, session, tty_nr, tpgid, flags (9).
    for (int field = 2; field < 9; ++field) {
        p = std::strchr(p + 1, ' ');
        if (p == nullptr) return false;
    }
    unsigned long const flags = std::strtoul(p + 1, nullptr, 10);
    return (flags & pf_no_setaffinity) != 0;
}

/// The affinities one change applied, with the masks they replaced, so that a failure can put
/// them back in reverse. Storage is reserved before the first system call; apply and undo never
/// allocate. Guarded by whatever guards the change (the hierarchy's manage lock).
class affinity_log {
public:
    affinity_log() noexcept = default;
    affinity_log(affinity_log const&) = delete;
    affinity_log& operator=(affinity_log const&) = delete;

    /// Room for `n` more entries. Errors: ENOMEM (nothing changed).
    [[nodiscard]] std::error_code reserve(std::size_t n) noexcept {
        std::size_t const want = size_ + n;
        if (want <= capacity_) return {};
        std::size_t const bytes = kernel_mask_bytes();
        std::unique_ptr<entry[]> e(new (std::nothrow) entry[want]);
        std::unique_ptr<unsigned long[]> m(new (std::nothrow) unsigned long[want * bytes / sizeof(unsigned long)]);
        if (!e || !m) return errno_code(ENOMEM);
        for (std::size_t i = 0; i < size_; ++i) e[i] = entries_[i];
        if (size_ != 0) std::memcpy(m.get(), masks_.get(), size_ * bytes);
        entries_ = std::move(e);
        masks_ = std::move(m);
        capacity_ = want;
        return {};
    }

    /// Gives thread `tid` the affinity `to`, remembering the one it had (no call when they are
    /// the same). Requires reserved room. Errors: the errno of sched_getaffinity or
    /// sched_setaffinity (nothing changed for this thread).
    [[nodiscard]] std::error_code apply(pid_t tid, cpumask const& to) noexcept {
        assert(size_ < capacity_);
        std::size_t const bytes = kernel_mask_bytes();
        auto* old = reinterpret_cast<cpu_set_t*>(reinterpret_cast<unsigned char*>(masks_.get()) + size_ * bytes);
        if (int e = sys::sched_getaffinity(tid, bytes, old)) return errno_code(e);
        if (same(old, bytes, to)) return {};
        if (int e = sys::sched_setaffinity(tid, to.affinity_bytes(), to.affinity_data())) return errno_code(e);
        entries_[size_++] = {tid};
        return {};
    }

    /// The same for a thread whose affinity the caller knows to be `from` (a member of a cpuset,
    /// placed by the library): no sched_getaffinity, so a change costs one call per thread.
    [[nodiscard]] std::error_code apply(pid_t tid, cpumask const& to, cpumask const& from) noexcept {
        assert(size_ < capacity_);
        if (from == to) return {};
        std::size_t const bytes = kernel_mask_bytes();
        auto* old = reinterpret_cast<unsigned char*>(masks_.get()) + size_ * bytes;
        std::memset(old, 0, bytes);
        std::memcpy(old, from.affinity_data(), std::min(bytes, from.affinity_bytes()));
        if (int e = sys::sched_setaffinity(tid, to.affinity_bytes(), to.affinity_data())) return errno_code(e);
        entries_[size_++] = {tid};
        return {};
    }

    /// Restores every remembered affinity, last first, and forgets them. Best effort: a thread
    /// that exited meanwhile has nothing to restore.
    void undo() noexcept {
        std::size_t const bytes = kernel_mask_bytes();
        while (size_ > 0) {
            --size_;
            auto* old = reinterpret_cast<cpu_set_t*>(reinterpret_cast<unsigned char*>(masks_.get()) + size_ * bytes);
            (void)sys::sched_setaffinity(entries_[size_].tid, bytes, old);
        }
    }
    /// Keeps the new affinities: forgets the old ones.
    void commit() noexcept { size_ = 0; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

private:
    struct entry {
        pid_t tid = 0;
    };
    static bool same(cpu_set_t const* old, std::size_t bytes, cpumask const& to) noexcept {
        auto const* a = reinterpret_cast<unsigned char const*>(old);
        auto const* b = reinterpret_cast<unsigned char const*>(to.affinity_data());
        std::size_t const nb = to.affinity_bytes();
        for (std::size_t i = 0; i < std::max(bytes, nb); ++i) {
            unsigned char const x = i < bytes ? a[i] : 0;
            unsigned char const y = i < nb ? b[i] : 0;
            if (x != y) return false;
        }
        return true;
    }

    std::unique_ptr<entry[]> entries_;
    std::unique_ptr<unsigned long[]> masks_;  // capacity_ masks of kernel_mask_bytes() each
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

}  // namespace detail

template <class H>
class basic_cpuset : public subsystem_tag {
public:
    using hierarchy_type = H;
    using container = typename H::container;
    using id_type = typename H::id_type;
    static constexpr std::string_view name = "cpuset";

    /// What readers see without locks: the effective masks, immutable once published.
    struct snapshot : detail::retired_node {
        cpumask cpus;
        cpumask mems;
        std::uint64_t generation = 0;  // unique per snapshot, for refresh()
    };

    struct state {
        // All guarded by the manage lock; the effective masks are also published.
        cpumask cpus, mems;                      // cpuset.cpus, cpuset.mems as written
        cpumask effective_cpus, effective_mems;  // within the parent's, online, and allowed
        bool cpu_exclusive = false;
        bool mem_exclusive = false;
        bool mem_hardwall = false;
        bool memory_migrate = false;
        bool spread_page = false;
        bool spread_slab = false;
        bool sched_load_balance = true;
        bool memory_pressure_enabled = false;    // meaningful in the top cpuset only
        std::int64_t relax_domain_level = -1;
        fmeter pressure;
        std::atomic<snapshot const*> published{nullptr};  // read lock-free; freed after a grace period

        state() = default;
        state(state const&) = delete;
        state& operator=(state const&) = delete;
        ~state() { delete published.load(std::memory_order_relaxed); }
    };

    explicit basic_cpuset(topology t = topology::from_system(),
                          std::function<std::int64_t()> clock = [] {
                              timespec t{};
                              ::clock_gettime(CLOCK_MONOTONIC, &t);
                              return static_cast<std::int64_t>(t.tv_sec);
                          })
        : topology_(std::move(t)), clock_(std::move(clock)) {}

    /// A copy of the machine as the cpuset sees it now. Takes a lock of the cpuset's own
    /// (set_topology may replace it concurrently); may allocate (masks beyond 256 bits).
    [[nodiscard]] topology machine() const {
        containers::detail::no_freeze nf;  // never parked holding it (the freezer)
        std::lock_guard g(topology_mutex_);
        return topology_;
    }
    /// How many times memory_migrate asked the kernel to move a task's pages (migrate_pages
    /// calls; the kernel moves what it can, as it does for cgroup v1).
    [[nodiscard]] std::uint64_t page_migrations() const noexcept { return migrations_.load(std::memory_order_relaxed); }

    // ---- hooks ---------------------------------------------------------------------------------

    std::error_code create(state& s, container& c) noexcept {
        if (c.is_top()) {
            if (std::error_code ec = s.cpus.assign(topology_.online_cpus)) return ec;
            if (std::error_code ec = s.mems.assign(topology_.online_nodes)) return ec;
            s.cpu_exclusive = s.mem_exclusive = true;  // as the kernel's top cpuset reads
        } else {
            state const& p = state_of(*c.parent());
            s.spread_page = p.spread_page;
            s.spread_slab = p.spread_slab;
            // cgroup.clone_children copies the parent's CPUs and nodes, unless a sibling is
            // exclusive (the copy could only collide with it).
            if (c.parent()->clone_children() && !any_exclusive_child(*c.parent())) {
                if (std::error_code ec = s.cpus.assign(p.cpus)) return ec;
                if (std::error_code ec = s.mems.assign(p.mems)) return ec;
            }
        }
        prepared next;
        if (std::error_code ec = prepare(s.cpus, s.mems, c.is_top() ? nullptr : &state_of(*c.parent()), topology_, next)) return ec;
        (void)install(s, next);  // a new state replaces no snapshot
        return {};
    }

    /// The first phase of attach: ENOSPC for a cpuset without CPUs or nodes; for threads, EINVAL
    /// for one that may not change affinity (PF_NO_SETAFFINITY, as the kernel's task_can_attach),
    /// then each thread gets its new affinity, its old one kept for cancel_attach. A failure on
    /// one thread restores those before it and returns the errno (EBUSY for a SCHED_DEADLINE
    /// thread whose bandwidth would not fit, as the kernel refuses it), or ENOMEM.
    /// Manage lock held.
    std::error_code can_attach(state& s, container& c, task_set<container> tasks) noexcept {
        if (s.effective_cpus.empty() || s.effective_mems.empty()) return containers::detail::errno_code(ENOSPC);
        if constexpr (H::traits_type::thread_bound) {
            if (hotplug_move_) return {};  // set_topology applied the affinities already
            H const& h = c.owner();
            for (auto const& t : tasks) {
                if (!known_settable(h, t.id) && detail::no_setaffinity(t.id)) return containers::detail::errno_code(EINVAL);
            }
            if (std::error_code ec = pending_.reserve(tasks.size())) return ec;
            for (auto const& t : tasks) {
                // From a cpuset below the top the library placed the thread: its affinity is
                // known and not read back (as set_cpus assumes; a thread that changed it behind
                // the library's back gets its cpuset's back on a veto), from the top it is read.
                std::error_code ec = t.from->is_top() ? apply_affinity(pending_, t.id, s.effective_cpus)
                                                      : apply_affinity(pending_, t.id, s.effective_cpus, state_of(*t.from).effective_cpus);
                if (ec) {
                    pending_.undo();
                    return ec;
                }
            }
        }
        return {};
    }

    /// Another subsystem vetoed: the threads get their old affinities back, last first.
    /// Manage lock held.
    void cancel_attach(state&, container&, task_set<container>) noexcept { pending_.undo(); }

    /// The commit point: the affinities stay; with memory_migrate, pages follow (best effort, as
    /// the kernel's cpuset_migrate_mm). Manage and callback locks held.
    void attach(state& s, container&, task_set<container> tasks) noexcept {
        pending_.commit();
        if (!s.memory_migrate) return;
        for (auto const& t : tasks) migrate_pages(t.id, state_of(*t.from).effective_mems, s.effective_mems);
    }

    /// A child starts as the kernel's cpuset_fork starts it: with its parent's current affinity
    /// (the parent's own sched_setaffinity wish included), not its cpuset's CPUs, and with the
    /// parent's request remembered as its own (as dup_user_cpus_ptr copies it), so that later
    /// changes of the cpuset apply that wish to both. Best effort, as the kernel's, which cannot
    /// fail either: where the parent cannot be read (gone, or not a thread) the child gets what
    /// its request and the cpuset give. Manage and callback locks held.
    void fork(state& s, container&, id_type parent, id_type child) noexcept {
        (void)containers::detail::guarded_call([&] {
            if (auto it = requested_.find(parent); it != requested_.end()) {
                cpumask wish = it->second;
                requested_.insert_or_assign(child, std::move(wish));
            }
            return std::error_code{};
        });
        if constexpr (H::traits_type::thread_bound) {
            cpumask target;
            (void)containers::detail::guarded_call([&] {
                auto set = cpumask::range(0, std::max<std::size_t>(topology_.possible_cpus, 1) - 1).to_cpu_set();
                if (set.set && detail::sys::sched_getaffinity(parent, set.bytes, set.set.get()) == 0) {
                    target = cpumask::from_cpu_set(set.set.get(), set.bytes) & s.effective_cpus;
                }
                return std::error_code{};
            });
            if (target.empty() && target_of(child, s.effective_cpus, target)) return;
            if (!target.empty()) (void)detail::sys::sched_setaffinity(child, target.affinity_bytes(), target.affinity_data());
        }
    }

    /// A task leaves the hierarchy (exit, or the hierarchy destroyed while it is attached). One
    /// that still runs (task_leaves_alive: identity checked, so a reused id is never touched) and
    /// leaves a cpuset below the top one gets the affinity that the kernel's root cpuset would
    /// give it: the CPUs it requested (request_affinity) within the top cpuset's, or the top
    /// cpuset's CPUs. Best effort, as exit cannot fail. Manage and callback locks held.
    void exit(state&, container& c, id_type task) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            if (!c.is_top() && c.owner().task_leaves_alive()) {
                cpumask target;
                if (!target_of(task, state_of(c.owner().top()).effective_cpus, target) && !target.empty()) {
                    (void)detail::sys::sched_setaffinity(task, target.affinity_bytes(), target.affinity_data());
                }
            }
        }
        requested_.erase(task);
    }

    /// The files, as data: added to every container after populate.
    template <class C>
    static std::vector<cftype<C>> const& files();

    // ---- queries and requests ------------------------------------------------------------------

    /// The calling thread's effective CPUs. Lock-free; call inside a read_section.
    [[nodiscard]] static cpumask const& current_cpus(H& h) noexcept {
        return h.template state_of<basic_cpuset>(h.current()).published.load(std::memory_order_acquire)->cpus;
    }

    /// The CPUs and nodes task `id` may use: its cpuset's effective masks, or, where those have
    /// no online CPU (node), the nearest ancestor's that has one; never empty (set_topology
    /// keeps at least one CPU and one node online). Takes the manage lock.
    [[nodiscard]] cpumask allowed_cpus(H& h, id_type id) { return allowed(h, id, &state::effective_cpus, &topology::online_cpus); }
    [[nodiscard]] cpumask allowed_nodes(H& h, id_type id) { return allowed(h, id, &state::effective_mems, &topology::online_nodes); }

    /// Whether task `id` may allocate on `node` (the kernel's cpuset_node_allowed): yes in its own
    /// nodes; for a hardwall request no elsewhere; otherwise yes in the nodes of its nearest
    /// ancestor that is mem_exclusive or mem_hardwall (or the top one).
    [[nodiscard]] bool node_allowed(H& h, id_type id, std::size_t node, bool hardwall_request) {
        auto lock = h.manage_lock();
        container* c = &h.container_of(id);
        if (state_of(*c).effective_mems.test(node)) return true;
        if (hardwall_request) return false;
        while (!c->is_top() && !state_of(*c).mem_exclusive && !state_of(*c).mem_hardwall) c = c->parent();
        return state_of(*c).effective_mems.test(node);
    }

    /// Whether the nodes of the nearest mem_exclusive ancestors of two tasks overlap (the seed's
    /// cpuset_excl_nodes_overlap).
    [[nodiscard]] bool exclusive_nodes_overlap(H& h, id_type a, id_type b) {
        auto lock = h.manage_lock();
        auto exclusive_of = [&](id_type id) -> cpumask const& {
            container* c = &h.container_of(id);
            while (!c->is_top() && !state_of(*c).mem_exclusive) c = c->parent();
            return state_of(*c).effective_mems;
        };
        return exclusive_of(a).intersects(exclusive_of(b));
    }

    [[nodiscard]] bool spread_page(H& h, id_type id) {
        auto lock = h.manage_lock();
        return state_of(h.container_of(id)).spread_page;
    }
    [[nodiscard]] bool spread_slab(H& h, id_type id) {
        auto lock = h.manage_lock();
        return state_of(h.container_of(id)).spread_slab;
    }

    /// The embedding runtime reports that task `id` met memory pressure (the kernel calls this
    /// from direct reclaim); counted only while the top cpuset's memory_pressure_enabled is set.
    void memory_pressure_event(H& h, id_type id) {
        auto lock = h.manage_lock();
        if (!state_of(h.top()).memory_pressure_enabled) return;
        state_of(h.container_of(id)).pressure.mark_event(clock_());
    }

    /// The partition of CPUs into scheduling domains that cpuset.sched_load_balance induces (the
    /// kernel's generate_sched_domains for cgroup v1): one domain of all the top cpuset's CPUs
    /// while it balances; otherwise the CPUs of the highest balancing cpusets, overlapping ones
    /// merged; CPUs in no balancing cpuset are in no domain. A work-stealing scheduler keeps one
    /// queue per domain. Takes the manage lock.
    [[nodiscard]] std::vector<cpumask> sched_domains(H& h) {
        auto lock = h.manage_lock();
        return domains_locked(h);
    }
    /// Called, without the hierarchy's locks, with the new partition whenever it changes.
    void on_sched_domains_changed(std::function<void(std::vector<cpumask> const&)> callback) {
        containers::detail::no_freeze nf;  // never parked holding it (the freezer)
        std::lock_guard g(domains_mutex_);
        has_domains_callback_.store(static_cast<bool>(callback), std::memory_order_release);
        domains_callback_ = std::move(callback);
    }

    /// The typed face of writing cpuset.cpus and cpuset.mems, for runtimes that configure
    /// cpusets without text: the same validation and errors, no parsing, no path lookup.
    /// Effects: `c`'s requested CPUs (nodes) become `m`; its effective masks are recomputed and
    ///   published, and its threads get their new affinity, all or nothing.
    /// Errors: EACCES (the top cpuset, or not within the parent's), EBUSY (a child would not
    ///   fit), EINVAL (not online, or overlapping an exclusive sibling), ENOSPC (emptying a
    ///   cpuset with tasks), ERANGE (beyond the possible CPUs), ENODEV (removed), ENOMEM, or the
    ///   errno of sched_setaffinity for one of its threads. On error nothing has changed: masks,
    ///   snapshot and every thread's affinity are as before.
    /// Locking: takes the manage lock, and the callback lock to commit.
    [[nodiscard]] std::error_code set_cpus(container& c, cpumask const& cpus) noexcept { return set_mask(c, cpus, true); }
    [[nodiscard]] std::error_code set_mems(container& c, cpumask const& mems) noexcept { return set_mask(c, mems, false); }

    // ---- typed access to every file --------------------------------------------------------------
    //
    // One setter and one getter per cpuset file; the file's handler calls the *_locked form, so
    // the file and the typed call validate alike and return the same errno. On error nothing has
    // changed.
    // Errors (all): ENODEV (`c` removed); getters of masks: ENOMEM; each setter: its file's own.
    // Locking: the plain forms take the manage lock (set_cpus, set_mems and set_sched_load_balance
    //   also tell on_sched_domains_changed listeners after releasing it);
    //   the *_locked forms require it held (asserted), for handlers that run under it (the path
    //   interface runs cpuset's handlers so), and tell no listener: call notify_sched_domains
    //   after releasing the lock.

    /// set_cpus and set_mems with the manage lock held.
    [[nodiscard]] std::error_code set_cpus_locked(container& c, cpumask const& cpus) noexcept { return set_mask_locked(c, cpus, true); }
    [[nodiscard]] std::error_code set_mems_locked(container& c, cpumask const& mems) noexcept { return set_mask_locked(c, mems, false); }
    /// cpuset.cpus, cpuset.mems as written; cpuset.effective_cpus, cpuset.effective_mems.
    [[nodiscard]] std::error_code get_cpus(container& c, cpumask& out) noexcept { return locked(c, [&] { return get_cpus_locked(c, out); }); }
    [[nodiscard]] std::error_code get_mems(container& c, cpumask& out) noexcept { return locked(c, [&] { return get_mems_locked(c, out); }); }
    [[nodiscard]] std::error_code get_effective_cpus(container& c, cpumask& out) noexcept {
        return locked(c, [&] { return get_effective_cpus_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_effective_mems(container& c, cpumask& out) noexcept {
        return locked(c, [&] { return get_effective_mems_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_cpus_locked(container& c, cpumask& out) noexcept { return get_locked(c, &state::cpus, out); }
    [[nodiscard]] std::error_code get_mems_locked(container& c, cpumask& out) noexcept { return get_locked(c, &state::mems, out); }
    [[nodiscard]] std::error_code get_effective_cpus_locked(container& c, cpumask& out) noexcept {
        return get_locked(c, &state::effective_cpus, out);
    }
    [[nodiscard]] std::error_code get_effective_mems_locked(container& c, cpumask& out) noexcept {
        return get_locked(c, &state::effective_mems, out);
    }

    /// cpuset.cpu_exclusive, cpuset.mem_exclusive. Errors of the setters: EBUSY (turning it off
    ///   while a child has it), EACCES (on while the parent has it off), EINVAL (on while a
    ///   sibling's CPUs (nodes) overlap).
    [[nodiscard]] std::error_code set_cpu_exclusive(container& c, bool on) noexcept {
        return change(c, [&](config& t) {
            t.cpu_exclusive = on;
            return std::error_code{};
        });
    }
    [[nodiscard]] std::error_code set_mem_exclusive(container& c, bool on) noexcept {
        return change(c, [&](config& t) {
            t.mem_exclusive = on;
            return std::error_code{};
        });
    }
    [[nodiscard]] std::error_code set_cpu_exclusive_locked(container& c, bool on) noexcept { return set_exclusive_locked(c, &config::cpu_exclusive, on); }
    [[nodiscard]] std::error_code set_mem_exclusive_locked(container& c, bool on) noexcept { return set_exclusive_locked(c, &config::mem_exclusive, on); }
    [[nodiscard]] std::error_code get_cpu_exclusive(container& c, bool& out) noexcept { return locked(c, [&] { return get_cpu_exclusive_locked(c, out); }); }
    [[nodiscard]] std::error_code get_mem_exclusive(container& c, bool& out) noexcept { return locked(c, [&] { return get_mem_exclusive_locked(c, out); }); }
    [[nodiscard]] std::error_code get_cpu_exclusive_locked(container& c, bool& out) noexcept { return get_locked(c, &state::cpu_exclusive, out); }
    [[nodiscard]] std::error_code get_mem_exclusive_locked(container& c, bool& out) noexcept { return get_locked(c, &state::mem_exclusive, out); }

    /// cpuset.mem_hardwall, cpuset.memory_migrate, cpuset.memory_spread_page,
    /// cpuset.memory_spread_slab, cpuset.sched_load_balance: no error but ENODEV.
    [[nodiscard]] std::error_code set_mem_hardwall(container& c, bool on) noexcept { return locked(c, [&] { return set_mem_hardwall_locked(c, on); }); }
    [[nodiscard]] std::error_code set_memory_migrate(container& c, bool on) noexcept { return locked(c, [&] { return set_memory_migrate_locked(c, on); }); }
    [[nodiscard]] std::error_code set_memory_spread_page(container& c, bool on) noexcept {
        return locked(c, [&] { return set_memory_spread_page_locked(c, on); });
    }
    [[nodiscard]] std::error_code set_memory_spread_slab(container& c, bool on) noexcept {
        return locked(c, [&] { return set_memory_spread_slab_locked(c, on); });
    }
    [[nodiscard]] std::error_code set_sched_load_balance(container& c, bool on) noexcept {
        if (std::error_code ec = locked(c, [&] { return set_sched_load_balance_locked(c, on); })) return ec;
        notify_domains(c);
        return {};
    }
    [[nodiscard]] std::error_code set_mem_hardwall_locked(container& c, bool on) noexcept { return set_plain_locked(c, &state::mem_hardwall, on); }
    [[nodiscard]] std::error_code set_memory_migrate_locked(container& c, bool on) noexcept { return set_plain_locked(c, &state::memory_migrate, on); }
    [[nodiscard]] std::error_code set_memory_spread_page_locked(container& c, bool on) noexcept { return set_plain_locked(c, &state::spread_page, on); }
    [[nodiscard]] std::error_code set_memory_spread_slab_locked(container& c, bool on) noexcept { return set_plain_locked(c, &state::spread_slab, on); }
    [[nodiscard]] std::error_code set_sched_load_balance_locked(container& c, bool on) noexcept {
        return set_plain_locked(c, &state::sched_load_balance, on);
    }
    [[nodiscard]] std::error_code get_mem_hardwall(container& c, bool& out) noexcept { return locked(c, [&] { return get_mem_hardwall_locked(c, out); }); }
    [[nodiscard]] std::error_code get_memory_migrate(container& c, bool& out) noexcept { return locked(c, [&] { return get_memory_migrate_locked(c, out); }); }
    [[nodiscard]] std::error_code get_memory_spread_page(container& c, bool& out) noexcept {
        return locked(c, [&] { return get_memory_spread_page_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_memory_spread_slab(container& c, bool& out) noexcept {
        return locked(c, [&] { return get_memory_spread_slab_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_sched_load_balance(container& c, bool& out) noexcept {
        return locked(c, [&] { return get_sched_load_balance_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_mem_hardwall_locked(container& c, bool& out) noexcept { return get_locked(c, &state::mem_hardwall, out); }
    [[nodiscard]] std::error_code get_memory_migrate_locked(container& c, bool& out) noexcept { return get_locked(c, &state::memory_migrate, out); }
    [[nodiscard]] std::error_code get_memory_spread_page_locked(container& c, bool& out) noexcept { return get_locked(c, &state::spread_page, out); }
    [[nodiscard]] std::error_code get_memory_spread_slab_locked(container& c, bool& out) noexcept { return get_locked(c, &state::spread_slab, out); }
    [[nodiscard]] std::error_code get_sched_load_balance_locked(container& c, bool& out) noexcept {
        return get_locked(c, &state::sched_load_balance, out);
    }

    /// cpuset.sched_relax_domain_level. Errors of the setter: EINVAL (below -1 or above the
    ///   machine's relax_domain_level_max).
    [[nodiscard]] std::error_code set_sched_relax_domain_level(container& c, std::int64_t level) noexcept {
        return locked(c, [&] { return set_sched_relax_domain_level_locked(c, level); });
    }
    [[nodiscard]] std::error_code set_sched_relax_domain_level_locked(container& c, std::int64_t level) noexcept {
        assert(c.owner().manage_lock_held());
        if (c.removed()) return containers::detail::errno_code(ENODEV);
        if (level < -1 || level > topology_.relax_domain_level_max) return containers::detail::errno_code(EINVAL);
        state_of(c).relax_domain_level = level;
        return {};
    }
    [[nodiscard]] std::error_code get_sched_relax_domain_level(container& c, std::int64_t& out) noexcept {
        return locked(c, [&] { return get_sched_relax_domain_level_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_sched_relax_domain_level_locked(container& c, std::int64_t& out) noexcept {
        return get_locked(c, &state::relax_domain_level, out);
    }

    /// cpuset.memory_pressure_enabled, a file of the top cpuset only: set on `h`'s top cpuset.
    [[nodiscard]] std::error_code set_memory_pressure_enabled(H& h, bool on) noexcept {
        return locked(h.top(), [&] { return set_memory_pressure_enabled_locked(h, on); });
    }
    [[nodiscard]] std::error_code set_memory_pressure_enabled_locked(H& h, bool on) noexcept {
        return set_plain_locked(h.top(), &state::memory_pressure_enabled, on);
    }
    [[nodiscard]] std::error_code get_memory_pressure_enabled(H& h, bool& out) noexcept {
        return locked(h.top(), [&] { return get_memory_pressure_enabled_locked(h, out); });
    }
    [[nodiscard]] std::error_code get_memory_pressure_enabled_locked(H& h, bool& out) noexcept {
        return get_locked(h.top(), &state::memory_pressure_enabled, out);
    }

    /// cpuset.memory_pressure (read-only): the rate of memory_pressure_event()s in `c`, per
    ///   second times 1000, filtered as the kernel's fmeter.
    [[nodiscard]] std::error_code get_memory_pressure(container& c, std::uint64_t& out) noexcept {
        return locked(c, [&] { return get_memory_pressure_locked(c, out); });
    }
    [[nodiscard]] std::error_code get_memory_pressure_locked(container& c, std::uint64_t& out) noexcept {
        assert(c.owner().manage_lock_held());
        if (c.removed()) return containers::detail::errno_code(ENODEV);
        return containers::detail::guarded_call([&] {  // the clock is the embedder's function
            out = static_cast<std::uint64_t>(state_of(c).pressure.rate(clock_()));
            return std::error_code{};
        });
    }

    /// Tells on_sched_domains_changed listeners the partition if it changed since they last
    ///   heard: after a *_locked change, once the manage lock is released. Call it without the
    ///   hierarchy's locks; takes the manage lock (when a listener exists).
    void notify_sched_domains(H& h) noexcept { notify_domains(h.top()); }

    /// Effects: task `id` asks for `cpus` (as sched_setaffinity through the library): remembered,
    ///   and applied within its cpuset (the intersection, or the cpuset's CPUs where that is
    ///   empty), now and after every change.
    /// Errors: EINVAL (empty, or no such CPU online), ENOMEM, or the errno of sched_setaffinity;
    ///   on error the request and the affinity are as before.
    /// Locking: takes the manage lock, and the callback lock to record the request.
    [[nodiscard]] std::error_code request_affinity(H& h, id_type id, cpumask const& cpus) noexcept {
        auto lock = h.manage_lock();
        if (cpus.empty() || !cpus.intersects(topology_.online_cpus)) return containers::detail::errno_code(EINVAL);
        cpumask wanted;
        if (std::error_code ec = wanted.assign(cpus)) return ec;
        // The record is made first, so that nothing can fail once the affinity has changed.
        auto cb_lock = h.callback_lock();
        typename std::unordered_map<id_type, cpumask>::iterator it;
        bool inserted = false;
        if (std::error_code ec = containers::detail::guarded_call([&] {
                std::tie(it, inserted) = requested_.try_emplace(id);
                return std::error_code{};
            })) {
            return ec;
        }
        std::swap(it->second, wanted);  // `wanted` now holds the previous request, if any
        if constexpr (H::traits_type::thread_bound) {
            cpumask target;
            std::error_code ec = target_of(id, state_of(h.container_of(id)).effective_cpus, target);
            if (!ec && !target.empty()) {
                if (int e = detail::sys::sched_setaffinity(id, target.affinity_bytes(), target.affinity_data())) ec = containers::detail::errno_code(e);
            }
            if (ec) {
                if (inserted) requested_.erase(it);
                else std::swap(it->second, wanted);
                return ec;
            }
        }
        return {};
    }

    /// Applies the calling thread's cpuset nodes to its memory policy if they changed since its
    /// last refresh: one comparison otherwise. Call at task boundaries. Thread tasks only.
    [[nodiscard]] static std::error_code refresh(H& h) noexcept {
        read_section rs;
        snapshot const* snap = h.template state_of<basic_cpuset>(h.current()).published.load(std::memory_order_acquire);
        thread_local std::uint64_t applied = 0;
        if (snap->generation == applied) return {};
        if (!snap->mems.empty()) {
            std::vector<unsigned long> words;
            if (std::error_code ec = containers::detail::guarded_call([&] {
                    words = snap->mems.to_ulongs(1024);
                    return std::error_code{};
                })) {
                return ec;
            }
            if (int e = detail::sys::set_mempolicy(2 /* MPOL_BIND */, words.data(), words.size() * sizeof(unsigned long) * 8 + 1)) {
                return containers::detail::errno_code(e);
            }
        }
        applied = snap->generation;
        return {};
    }

    /// Hotplug: the machine now has `t`'s CPUs and nodes online.
    /// Effects: every cpuset keeps only what is online (as cgroup v1 does); the tasks of one left
    ///   without CPUs or nodes move to its nearest ancestor that has both, and every thread whose
    ///   CPUs change gets its new affinity. Deciding and moving happen under one hold of the
    ///   manage lock: nothing can empty or remove the destination in between. All or nothing:
    ///   on error the topology, the masks, the tasks' places and their affinities are as before.
    /// Errors: EBUSY (no CPU or no node would be online: the kernel never takes the last one
    ///   offline), ENOMEM, the errno of sched_setaffinity for one of the threads; and, after the
    ///   commit, the veto of another subsystem against moving a task out of an emptied cpuset
    ///   (the new masks stay, that task stays where it was with its ancestor's affinity, and the
    ///   first such error is returned).
    /// Locking: takes the manage lock, and the callback lock to commit.
    [[nodiscard]] std::error_code set_topology(H& h, topology t) noexcept {
        if ((t.online_cpus & t.allowed_cpus).empty() || t.online_nodes.empty()) return containers::detail::errno_code(EBUSY);
        std::error_code result;
        {
            auto lock = h.manage_lock();
            hotplug plan;
            if (std::error_code ec = plan_hotplug(h, t, plan)) return ec;
            // Phase two: the affinities, undone on failure.
            detail::affinity_log log;
            if (std::error_code ec = apply_hotplug_affinities(h, plan, log)) return ec;
            // Commit: nothing below fails, but another subsystem's veto of a move.
            {
                auto cb_lock = h.callback_lock();
                for (std::size_t i = 0; i < plan.n; ++i) {
                    state& s = state_of(*plan.nodes[i].c);
                    s.cpus = std::move(plan.nodes[i].cpus);
                    s.mems = std::move(plan.nodes[i].mems);
                    if (snapshot* old = install(s, plan.nodes[i].next)) h.retire(*old);
                }
                containers::detail::no_freeze nf;  // never parked holding it (the freezer)
                std::lock_guard g(topology_mutex_);
                topology_ = std::move(t);
            }
            log.commit();
            hotplug_move_ = true;
            for (std::size_t i = 0; i < plan.nmoves; ++i) {
                std::error_code ec = h.attach_locked(std::span<id_type const>(&plan.moves[i].id, 1), *plan.moves[i].to);
                if (ec && !result) result = ec;
            }
            hotplug_move_ = false;
        }
        notify_domains(h.top());
        return result;
    }

private:
    static basic_cpuset& self(container& c) noexcept { return *c.owner().template subsystem<basic_cpuset>(); }
    static state& state_of(container const& c) noexcept { return c.owner().template state_of<basic_cpuset>(c); }

    // The nearest cpuset from the task's up whose `field` has something online (guarantee_online_*).
    cpumask allowed(H& h, id_type id, cpumask state::*field, cpumask topology::*online) {
        auto lock = h.manage_lock();
        cpumask const& on = topology_.*online;
        for (container* c = &h.container_of(id); c != nullptr; c = c->parent()) {
            cpumask m = state_of(*c).*field & on;
            if (!m.empty()) return m;
        }
        return on;  // never empty: set_topology refuses a machine without CPUs or nodes
    }

    static bool any_exclusive_child(container& parent) noexcept {
        for (container& ch : detail::tree_access::children(parent)) {
            if (state_of(ch).cpu_exclusive || state_of(ch).mem_exclusive) return true;
        }
        return false;
    }

    // The effective masks of a cpuset and the snapshot that publishes them, made before anything
    // changes so that the commit cannot fail.
    struct prepared {
        cpumask effective_cpus, effective_mems;
        std::unique_ptr<snapshot> snap;
    };

    // Effective masks: the requested ones within the parent's effective ones, the online ones
    // and, for CPUs, what the process may use. Manage lock held. Errors: ENOMEM.
    static std::error_code prepare(cpumask const& cpus, cpumask const& mems, state const* parent, topology const& t,
                                   prepared& out) noexcept {
        return prepare(cpus, mems, parent ? &parent->effective_cpus : nullptr, parent ? &parent->effective_mems : nullptr, t, out);
    }
    static std::error_code prepare(cpumask const& cpus, cpumask const& mems, cpumask const* parent_cpus, cpumask const* parent_mems,
                                   topology const& t, prepared& out) noexcept {
        if (std::error_code ec = out.effective_cpus.assign(cpus)) return ec;
        if (std::error_code ec = out.effective_mems.assign(mems)) return ec;
        out.effective_cpus &= t.online_cpus;
        out.effective_cpus &= t.allowed_cpus;
        out.effective_mems &= t.online_nodes;
        if (parent_cpus != nullptr) {
            out.effective_cpus &= *parent_cpus;
            out.effective_mems &= *parent_mems;
        }
        out.snap.reset(new (std::nothrow) snapshot);
        if (!out.snap) return containers::detail::errno_code(ENOMEM);
        if (std::error_code ec = out.snap->cpus.assign(out.effective_cpus)) return ec;
        if (std::error_code ec = out.snap->mems.assign(out.effective_mems)) return ec;
        out.snap->generation = next_generation_.fetch_add(1, std::memory_order_relaxed) + 1;
        out.snap->reclaim = [](containers::detail::retired_node* n) noexcept { delete static_cast<snapshot*>(n); };
        return {};
    }

    // The commit of prepared masks: cannot fail. Returns the snapshot replaced, for retirement.
    [[nodiscard]] static snapshot* install(state& s, prepared& p) noexcept {
        s.effective_cpus = std::move(p.effective_cpus);
        s.effective_mems = std::move(p.effective_mems);
        return const_cast<snapshot*>(s.published.exchange(p.snap.release(), std::memory_order_acq_rel));
    }

    // memory_migrate: the kernel moves a task's pages to its cpuset's nodes when it joins and when
    // the nodes change. User space can do as much with migrate_pages(2), which moves the pages of
    // the task's whole process that sit on `from` (and not on `to`) to `to`; a thread of a
    // process that shares its memory moves its siblings' pages too, as the kernel does. Best
    // effort, as the kernel's: its failure is not the change's.
    void migrate_pages(id_type id, cpumask const& from, cpumask const& to) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            if (from.empty() || to.empty() || from == to) return;
            constexpr std::size_t bits = 1024;
            unsigned long old_nodes[bits / (8 * sizeof(unsigned long))] = {};
            unsigned long new_nodes[bits / (8 * sizeof(unsigned long))] = {};
            for (std::size_t n : from) if (n < bits) old_nodes[n / (8 * sizeof(unsigned long))] |= 1ul << (n % (8 * sizeof(unsigned long)));
            for (std::size_t n : to) if (n < bits) new_nodes[n / (8 * sizeof(unsigned long))] |= 1ul << (n % (8 * sizeof(unsigned long)));
            (void)detail::sys::migrate_pages(id, bits + 1, old_nodes, new_nodes);
            migrations_.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // Whether thread `id` is known to carry no PF_NO_SETAFFINITY without reading /proc: the
    // calling thread (it runs user code: no kernel thread), or a known task whose identity saw
    // the flag clear when it was met (the kernel sets it when such a thread is created). A task
    // new to the hierarchy is not yet in its table: it is read. Manage lock held.
    static bool known_settable(H const& h, id_type id) noexcept {
        if (id == H::traits_type::self()) return true;
        if constexpr (requires(typename H::task const& t) {
                          { t.identity().may_set_affinity() } noexcept -> std::same_as<bool>;
                      }) {
            auto const* t = h.find_task(id);
            return t != nullptr && t->identity().may_set_affinity();
        } else {
            return false;
        }
    }

    // The affinity a thread gets in a cpuset whose effective CPUs are `cpus`: its own request
    // within them, or them where the intersection is empty; empty (leave it alone) when the
    // cpuset has no CPUs. Manage lock held. Errors: ENOMEM.
    std::error_code target_of(id_type id, cpumask const& cpus, cpumask& out) const noexcept {
        if (std::error_code ec = out.assign(cpus)) return ec;
        if (cpus.empty() || requested_.empty()) return {};
        if (auto it = requested_.find(id); it != requested_.end() && it->second.intersects(cpus)) {
            if (std::error_code ec = out.assign(it->second)) return ec;
            out &= cpus;
        }
        return {};
    }

    // Gives thread `id` its affinity in a cpuset whose effective CPUs are `cpus`, remembered in
    // `log` (which has room). Manage lock held.
    std::error_code apply_affinity(detail::affinity_log& log, id_type id, cpumask const& cpus) noexcept {
        cpumask target;
        if (std::error_code ec = target_of(id, cpus, target)) return ec;
        if (target.empty()) return {};
        return log.apply(id, target);
    }
    // The same for a thread that the library placed in a cpuset whose effective CPUs are
    // `old_cpus`: its affinity is known, so it is not read back.
    std::error_code apply_affinity(detail::affinity_log& log, id_type id, cpumask const& cpus, cpumask const& old_cpus) noexcept {
        cpumask target, old;
        if (std::error_code ec = target_of(id, cpus, target)) return ec;
        if (std::error_code ec = target_of(id, old_cpus, old)) return ec;
        if (target.empty()) return {};
        if (old.empty()) return log.apply(id, target);  // it was left alone: read it
        return log.apply(id, target, old);
    }

    // What set_topology decides before it changes anything.
    struct hotplug {
        struct node {
            container* c = nullptr;
            container* to = nullptr;  // where its tasks go when it is left empty, else nullptr
            std::size_t to_index = 0; // that container's node
            cpumask cpus, mems;       // the new requested masks
            prepared next;
        };
        struct move {
            id_type id;
            container* to;
        };
        std::unique_ptr<node[]> nodes;
        std::unique_ptr<move[]> moves;
        std::size_t n = 0;
        std::size_t nmoves = 0;
    };

    // Manage lock held. Errors: ENOMEM.
    std::error_code plan_hotplug(H& h, topology const& t, hotplug& plan) noexcept {
        std::size_t count = 0, max_depth = 0, ntasks = 0;
        for (container& c : detail::subtree_walk(h.top(), true)) {
            ++count;
            max_depth = std::max(max_depth, c.depth());
        }
        plan.nodes.reset(new (std::nothrow) typename hotplug::node[count]);
        std::unique_ptr<std::size_t[]> at_depth(new (std::nothrow) std::size_t[max_depth + 1]);
        if (!plan.nodes || !at_depth) return containers::detail::errno_code(ENOMEM);
        // Pre-order: a node's parent is the last node seen one level up.
        for (container& c : detail::subtree_walk(h.top(), true)) {
            auto& nd = plan.nodes[plan.n];
            nd.c = &c;
            at_depth[c.depth()] = plan.n++;
            state const& s = state_of(c);
            if (std::error_code ec = nd.cpus.assign(c.is_top() ? t.online_cpus : s.cpus)) return ec;
            if (std::error_code ec = nd.mems.assign(c.is_top() ? t.online_nodes : s.mems)) return ec;
            if (!c.is_top()) {
                nd.cpus &= t.online_cpus;
                nd.mems &= t.online_nodes;
            }
            auto const* parent = c.is_top() ? nullptr : &plan.nodes[at_depth[c.depth() - 1]];
            if (std::error_code ec = prepare(nd.cpus, nd.mems, parent ? &parent->next.effective_cpus : nullptr,
                                             parent ? &parent->next.effective_mems : nullptr, t, nd.next)) {
                return ec;
            }
            if (c.task_count() != 0 && (nd.next.effective_cpus.empty() || nd.next.effective_mems.empty())) {
                // The nearest ancestor with both; the top one has both (checked by the caller).
                for (std::size_t d = c.depth(); d-- > 0;) {
                    auto const& a = plan.nodes[at_depth[d]];
                    if (!a.next.effective_cpus.empty() && !a.next.effective_mems.empty()) {
                        nd.to = a.c;
                        nd.to_index = at_depth[d];
                        break;
                    }
                }
                assert(nd.to != nullptr);
                ntasks += c.task_count();
            }
        }
        plan.moves.reset(new (std::nothrow) typename hotplug::move[ntasks + 1]);
        if (!plan.moves) return containers::detail::errno_code(ENOMEM);
        for (std::size_t i = 0; i < plan.n; ++i) {
            if (plan.nodes[i].to == nullptr) continue;
            for (auto const& task : detail::tree_access::tasks(*plan.nodes[i].c)) plan.moves[plan.nmoves++] = {task.id, plan.nodes[i].to};
        }
        return {};
    }

    // Phase two of set_topology: every thread whose CPUs change gets its new affinity (a thread
    // that moves, its destination's). On failure the log is undone. Manage lock held.
    std::error_code apply_hotplug_affinities(H&, hotplug& plan, detail::affinity_log& log) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            std::size_t n = 0;
            for (std::size_t i = 0; i < plan.n; ++i) n += plan.nodes[i].c->task_count();
            if (std::error_code ec = log.reserve(n)) return ec;
            for (std::size_t i = 0; i < plan.n; ++i) {
                auto const& nd = plan.nodes[i];
                if (nd.c->task_count() == 0) continue;
                cpumask const& old_cpus = state_of(*nd.c).effective_cpus;
                cpumask const& cpus = nd.to != nullptr ? plan.nodes[nd.to_index].next.effective_cpus : nd.next.effective_cpus;
                if (cpus == old_cpus) continue;
                for (auto const& task : detail::tree_access::tasks(*nd.c)) {
                    if (!task.alive()) continue;  // exited, or its id reused: never re-pin another task
                    if (std::error_code ec = apply_affinity(log, task.id, cpus, old_cpus)) {
                        log.undo();
                        return ec;
                    }
                }
            }
        }
        return {};
    }

    std::vector<cpumask> domains_locked(H& h) {
        std::vector<cpumask> found;
        if (state_of(h.top()).sched_load_balance) {
            found.push_back(state_of(h.top()).effective_cpus);
            return found;
        }
        // Pre-order, not entering the subtree below a balancing cpuset.
        container const* top = &h.top();
        for (container* c = containers::detail::tree_access::next_preorder(&h.top(), top); c != nullptr;) {
            state const& s = state_of(*c);
            if (s.sched_load_balance && !s.effective_cpus.empty()) found.push_back(s.effective_cpus);
            c = s.sched_load_balance ? containers::detail::tree_access::next_skipping_children(c, top)
                                     : containers::detail::tree_access::next_preorder(c, top);
        }
        // Merge overlapping sets until none overlap.
        for (bool merged = true; merged;) {
            merged = false;
            for (std::size_t i = 0; i < found.size() && !merged; ++i) {
                for (std::size_t j = i + 1; j < found.size(); ++j) {
                    if (found[i].intersects(found[j])) {
                        found[i] |= found[j];
                        found.erase(found.begin() + static_cast<std::ptrdiff_t>(j));
                        merged = true;
                        break;
                    }
                }
            }
        }
        std::sort(found.begin(), found.end(), [](cpumask const& a, cpumask const& b) { return a.first() < b.first(); });
        return found;
    }

    // After a change that may move domain boundaries: tell the callback, outside the locks. The
    // change is already made: when memory runs out here the callback hears of it with the next
    // change instead.
    static void notify_domains(container& c) noexcept {
        H& h = c.owner();
        basic_cpuset& cs = self(c);
        if (!cs.has_domains_callback_.load(std::memory_order_acquire)) return;  // nobody listens
        (void)containers::detail::guarded_call([&] {
            std::vector<cpumask> now = cs.sched_domains(h);
            std::function<void(std::vector<cpumask> const&)> callback;
            {
                containers::detail::no_freeze nf;  // never parked holding it (the freezer)
                std::lock_guard g(cs.domains_mutex_);
                if (now == cs.last_domains_) return std::error_code{};
                cs.last_domains_ = now;
                callback = cs.domains_callback_;
            }
            if (callback) callback(now);
            return std::error_code{};
        });
    }

    // What validation looks at: a change is tried on a copy of this.
    struct config {
        cpumask cpus;
        cpumask mems;
        bool cpu_exclusive = false;
        bool mem_exclusive = false;
    };
    static std::error_code config_of(state const& s, config& out) noexcept {
        if (std::error_code ec = out.cpus.assign(s.cpus)) return ec;
        if (std::error_code ec = out.mems.assign(s.mems)) return ec;
        out.cpu_exclusive = s.cpu_exclusive;
        out.mem_exclusive = s.mem_exclusive;
        return {};
    }

    // Validation of a change to `c` whose result would be `trial`, in the kernel's order.
    std::error_code validate(container& c, state const& cur, config const& trial) noexcept {
        auto subset = [](auto const& p, auto const& q) {
            return p.cpus.subset_of(q.cpus) && p.mems.subset_of(q.mems) && p.cpu_exclusive <= q.cpu_exclusive &&
                   p.mem_exclusive <= q.mem_exclusive;
        };
        for (container& ch : detail::tree_access::children(c)) {
            if (!subset(state_of(ch), trial)) return containers::detail::errno_code(EBUSY);
        }
        if (c.is_top()) return {};
        container& parent = *c.parent();
        if (!subset(trial, state_of(parent))) return containers::detail::errno_code(EACCES);
        bool populated = false;
        for (container& d : detail::subtree_walk(c, true)) populated = populated || d.task_count() != 0;
        if (populated && ((!cur.cpus.empty() && trial.cpus.empty()) || (!cur.mems.empty() && trial.mems.empty()))) {
            return containers::detail::errno_code(ENOSPC);
        }
        for (container& sib : detail::tree_access::children(parent)) {
            if (&sib == &c) continue;
            state const& o = state_of(sib);
            if ((trial.cpu_exclusive || o.cpu_exclusive) && trial.cpus.intersects(o.cpus)) return containers::detail::errno_code(EINVAL);
            if ((trial.mem_exclusive || o.mem_exclusive) && trial.mems.intersects(o.mems)) return containers::detail::errno_code(EINVAL);
        }
        return {};
    }

    // A change to `c`: `edit` adjusts a trial copy; validation, then the two-phase commit.
    // `edit` under the manage lock; sched-domain listeners are told after it is released.
    template <class Edit>
    std::error_code change(container& c, Edit edit) noexcept {
        bool cpus_changed = false;
        {
            auto lock = c.owner().manage_lock();
            if (std::error_code ec = change_locked(c, edit, cpus_changed)) return ec;
        }
        if (cpus_changed) notify_domains(c);
        return {};
    }

    // Manage lock held (asserted).
    template <class Edit>
    std::error_code change_locked(container& c, Edit& edit, bool& cpus_changed) noexcept {
        H& h = c.owner();
        assert(h.manage_lock_held());
        if (c.removed()) return containers::detail::errno_code(ENODEV);
        state& s = state_of(c);
        config trial;
        if (std::error_code ec = config_of(s, trial)) return ec;
        if (std::error_code ec = edit(trial)) return ec;
        if (trial.cpus == s.cpus && trial.mems == s.mems && trial.cpu_exclusive == s.cpu_exclusive &&
            trial.mem_exclusive == s.mem_exclusive) {
            return {};
        }
        if (std::error_code ec = validate(c, s, trial)) return ec;
        // Phase one: everything that can fail, nothing visible yet.
        prepared next;
        if (std::error_code ec = prepare(trial.cpus, trial.mems, c.is_top() ? nullptr : &state_of(*c.parent()), topology_, next)) return ec;
        detail::affinity_log log;
        if constexpr (H::traits_type::thread_bound) {
            if (next.effective_cpus != s.effective_cpus && c.task_count() != 0) {
                if (std::error_code ec = log.reserve(c.task_count())) return ec;
                for (auto const& task : detail::tree_access::tasks(c)) {
                    if (!task.alive()) continue;  // exited, or its id reused: never re-pin another task
                    if (std::error_code ec = apply_affinity(log, task.id, next.effective_cpus, s.effective_cpus)) {
                        log.undo();
                        return ec;
                    }
                }
            }
        }
        // Phase two, the commit: cannot fail.
        auto cb_lock = h.callback_lock();
        log.commit();
        cpus_changed = trial.cpus != s.cpus;
        cpumask const& old_mems = s.effective_mems;
        bool const migrate = s.memory_migrate && old_mems != next.effective_mems;
        if (migrate) {
            for (auto const& task : detail::tree_access::tasks(c)) migrate_pages(task.id, old_mems, next.effective_mems);
        }
        s.cpus = std::move(trial.cpus);
        s.mems = std::move(trial.mems);
        s.cpu_exclusive = trial.cpu_exclusive;
        s.mem_exclusive = trial.mem_exclusive;
        if (snapshot* old = install(s, next)) h.retire(*old);
        return {};
    }

    // The write handler of cpuset.cpus and cpuset.mems. Manage lock held: the topology is stable.
    std::error_code write_mask_locked(container& c, std::string_view value, bool cpus) noexcept {
        if (c.is_top()) return containers::detail::errno_code(EACCES);  // the top cpuset follows the machine
        value = parse::strip(value);
        cpumask m;
        if (!value.empty()) {
            if (std::error_code ec = cpumask::parse_list(value, mask_bits(topology_, cpus), m)) return ec;
        }
        return set_mask_locked(c, m, cpus);
    }

    static std::size_t mask_bits(topology const& t, bool cpus) noexcept {
        return cpus ? t.possible_cpus : std::max<std::size_t>(1024, t.possible_nodes);
    }

    std::error_code set_mask(container& c, cpumask const& m, bool cpus) noexcept {
        bool cpus_changed = false;
        {
            auto lock = c.owner().manage_lock();
            if (std::error_code ec = set_mask_locked(c, m, cpus, &cpus_changed)) return ec;
        }
        if (cpus_changed) notify_domains(c);
        return {};
    }
    std::error_code set_mask_locked(container& c, cpumask const& m, bool cpus, bool* cpus_changed = nullptr) noexcept {
        if (c.is_top()) return containers::detail::errno_code(EACCES);
        bool changed = false;
        auto edit = [&](config& trial) -> std::error_code {
            // Under the manage lock: the topology is stable here.
            if (m.extent() > mask_bits(topology_, cpus)) return containers::detail::errno_code(ERANGE);
            cpumask const& top = cpus ? state_of(c.owner().top()).cpus : state_of(c.owner().top()).mems;
            if (!m.subset_of(top)) return containers::detail::errno_code(EINVAL);  // not online
            return (cpus ? trial.cpus : trial.mems).assign(m);
        };
        std::error_code const ec = change_locked(c, edit, changed);
        if (cpus_changed != nullptr) *cpus_changed = changed;
        return ec;
    }

    // The typed flags: validation through change_locked for the exclusive ones, which siblings
    // and children constrain; the others are set directly. Manage lock held.
    std::error_code set_exclusive_locked(container& c, bool config::*field, bool on) noexcept {
        bool cpus_changed = false;
        auto edit = [&](config& trial) {
            trial.*field = on;
            return std::error_code{};
        };
        return change_locked(c, edit, cpus_changed);
    }
    static std::error_code set_plain_locked(container& c, bool state::*field, bool on) noexcept {
        assert(c.owner().manage_lock_held());
        if (c.removed()) return containers::detail::errno_code(ENODEV);
        state_of(c).*field = on;
        return {};
    }
    template <class T>
    static std::error_code get_locked(container& c, T state::*field, T& out) noexcept {
        assert(c.owner().manage_lock_held());
        if (c.removed()) return containers::detail::errno_code(ENODEV);
        if constexpr (std::is_same_v<T, cpumask>) {
            return out.assign(state_of(c).*field);
        } else {
            out = state_of(c).*field;
            return {};
        }
    }
    // The unlocked forms: take the manage lock around a *_locked one.
    template <class F>
    static std::error_code locked(container& c, F f) noexcept {
        auto lock = c.owner().manage_lock();
        return f();
    }

    topology topology_;                                 // written under the manage lock and
                                                        // topology_mutex_; read under either
    mutable std::mutex topology_mutex_;                 // see topology_; nests inside the callback lock
    std::function<std::int64_t()> clock_;               // immutable
    std::unordered_map<id_type, cpumask> requested_;    // manage lock
    detail::affinity_log pending_;                      // manage lock: the attach between can_attach
                                                        // and attach or cancel_attach
    bool hotplug_move_ = false;                         // manage lock: set_topology is moving tasks
    std::mutex domains_mutex_;                          // guards the two below
    std::function<void(std::vector<cpumask> const&)> domains_callback_;
    std::vector<cpumask> last_domains_;
    std::atomic<bool> has_domains_callback_{false};
    std::atomic<std::uint64_t> migrations_{0};
    static inline std::atomic<std::uint64_t> next_generation_{0};
};

// Every handler calls the typed *_locked form of its file, under the manage lock that the path
// interface holds (subsystem_files): one implementation of each file's validation and errno.
template <class H>
template <class C>
std::vector<cftype<C>> const& basic_cpuset<H>::files() {
    static std::vector<cftype<C>> const all = [] {
        using cs = basic_cpuset<H>;
        using typed = subsystem_files<cs, C>;
        using mask_get = std::error_code (cs::*)(container&, cpumask&) noexcept;
        using flag_get = std::error_code (cs::*)(container&, bool&) noexcept;
        using flag_set = std::error_code (cs::*)(container&, bool) noexcept;
        std::vector<cftype<C>> v;
        auto tell_domains = [](C& c) { notify_domains(c); };
        auto list_file = [&](std::string_view n, mask_get get, bool cpus, bool writable) {
            typename typed::writer write;
            if (writable) write = [cpus](cs& s, state&, C& c, std::string_view value) { return s.write_mask_locked(c, value, cpus); };
            cftype<C> f = typed::file(
                n,
                [get](cs& s, state&, C& c, std::string& out) {
                    cpumask m;
                    if (std::error_code ec = (s.*get)(c, m)) return ec;
                    out += m.to_list();
                    out += '\n';
                    return std::error_code{};
                },
                write);
            if (writable && cpus) f.after_write = tell_domains;
            return f;
        };
        // The kernel's max_write_len (cpuset-v1.c): 100 + 6 * NR_CPUS bytes for cpus, read from
        // kernel_max (NR_CPUS - 1), and 100 + 6 * MAX_NUMNODES for mems, the node-mask width
        // used here (mask_bits: 1024, x86-64's MAX_NUMNODES).
        v.push_back(list_file("cpuset.cpus", &cs::get_cpus_locked, true, true));
        v.back().max_write_len = 100 + 6 * topology::kernel_nr_cpus();
        v.push_back(list_file("cpuset.mems", &cs::get_mems_locked, false, true));
        v.back().max_write_len = 100 + 6 * mask_bits(topology{}, false);
        v.push_back(list_file("cpuset.effective_cpus", &cs::get_effective_cpus_locked, true, false));
        v.push_back(list_file("cpuset.effective_mems", &cs::get_effective_mems_locked, false, false));

        // cpuset_write_u64 hands the u64 to cpuset_update_flag(..., int turning_on): only its low
        // 32 bits count, so 4294967296 clears a flag (notify_on_release and
        // memory_pressure_enabled take the whole u64). The typed setter gets the resulting bool.
        auto flag = [](std::string_view n, flag_get get, flag_set set) {
            return typed::template number<std::uint64_t>(
                n,
                [get](cs& s, state&, C& c, std::uint64_t& out) {
                    bool on = false;
                    if (std::error_code ec = (s.*get)(c, on)) return ec;
                    out = on ? 1 : 0;
                    return std::error_code{};
                },
                [set](cs& s, state&, C& c, std::uint64_t written) { return (s.*set)(c, static_cast<std::uint32_t>(written) != 0); });
        };
        v.push_back(flag("cpuset.cpu_exclusive", &cs::get_cpu_exclusive_locked, &cs::set_cpu_exclusive_locked));
        v.push_back(flag("cpuset.mem_exclusive", &cs::get_mem_exclusive_locked, &cs::set_mem_exclusive_locked));
        v.push_back(flag("cpuset.mem_hardwall", &cs::get_mem_hardwall_locked, &cs::set_mem_hardwall_locked));
        v.push_back(flag("cpuset.memory_migrate", &cs::get_memory_migrate_locked, &cs::set_memory_migrate_locked));
        v.push_back(flag("cpuset.memory_spread_page", &cs::get_memory_spread_page_locked, &cs::set_memory_spread_page_locked));
        v.push_back(flag("cpuset.memory_spread_slab", &cs::get_memory_spread_slab_locked, &cs::set_memory_spread_slab_locked));
        cftype<C> balance = flag("cpuset.sched_load_balance", &cs::get_sched_load_balance_locked, &cs::set_sched_load_balance_locked);
        balance.after_write = tell_domains;
        v.push_back(balance);
        cftype<C> enabled = typed::template number<std::uint64_t>(
            "cpuset.memory_pressure_enabled",
            [](cs& s, state&, C& c, std::uint64_t& out) {
                bool on = false;
                if (std::error_code ec = s.get_memory_pressure_enabled_locked(c.owner(), on)) return ec;
                out = on ? 1 : 0;
                return std::error_code{};
            },
            [](cs& s, state&, C& c, std::uint64_t written) { return s.set_memory_pressure_enabled_locked(c.owner(), written != 0); });
        enabled.scope = cftype<C>::where::top_only;
        v.push_back(enabled);
        v.push_back(typed::template number<std::uint64_t>(
            "cpuset.memory_pressure", [](cs& s, state&, C& c, std::uint64_t& out) { return s.get_memory_pressure_locked(c, out); }));
        v.push_back(typed::template number<std::int64_t>(
            "cpuset.sched_relax_domain_level",
            [](cs& s, state&, C& c, std::int64_t& out) { return s.get_sched_relax_domain_level_locked(c, out); },
            [](cs& s, state&, C& c, std::int64_t level) { return s.set_sched_relax_domain_level_locked(c, level); }));
        return v;
    }();
    return all;
}

/// The cpuset subsystem for the default hierarchy of threads.
using cpuset = basic_cpuset<hierarchy<>>;

}  // namespace containers
