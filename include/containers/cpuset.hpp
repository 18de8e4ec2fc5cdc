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
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cftype.hpp"
#include "cpumask.hpp"
#include "detail/errors.hpp"
#include "detail/rcu.hpp"
#include "hierarchy.hpp"
#include "subsystem_concepts.hpp"
#include "topology.hpp"
#include "views.hpp"

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
        std::lock_guard g(mutex_);
        update(now_seconds);
        count_ = std::min(max_count, count_ + scale);
    }
    [[nodiscard]] int rate(std::int64_t now_seconds) noexcept {
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
                              return std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::steady_clock::now().time_since_epoch())
                                  .count();
                          })
        : topology_(std::move(t)), clock_(std::move(clock)) {}

    [[nodiscard]] topology const& machine() const noexcept { return topology_; }
    /// How many times memory_migrate asked the kernel to move a task's pages (migrate_pages
    /// calls; the kernel moves what it can, as it does for cgroup v1).
    [[nodiscard]] std::uint64_t page_migrations() const noexcept { return migrations_.load(std::memory_order_relaxed); }

    // ---- hooks ---------------------------------------------------------------------------------

    std::error_code create(state& s, container& c) {
        if (c.is_top()) {
            s.cpus = topology_.online_cpus;
            s.mems = topology_.online_nodes;
            s.cpu_exclusive = s.mem_exclusive = true;  // as the kernel's top cpuset reads
        } else {
            state const& p = state_of(*c.parent());
            s.spread_page = p.spread_page;
            s.spread_slab = p.spread_slab;
            // cgroup.clone_children copies the parent's CPUs and nodes, unless a sibling is
            // exclusive (the copy could only collide with it).
            if (c.parent()->clone_children() && !any_exclusive_child(*c.parent())) {
                s.cpus = p.cpus;
                s.mems = p.mems;
            }
        }
        (void)recompute(s, c.is_top() ? nullptr : &state_of(*c.parent()));  // a new state replaces nothing
        return {};
    }

    std::error_code can_attach(state& s, container&, task_set<container>) {
        if (s.effective_cpus.empty() || s.effective_mems.empty()) return detail::errno_code(ENOSPC);
        return {};
    }

    void attach(state& s, container&, task_set<container> tasks) noexcept {
        for (auto const& t : tasks) {
            apply_affinity(t.id, s);
            if (s.memory_migrate) migrate_pages(t.id, state_of(*t.from).effective_mems, s.effective_mems);
        }
    }

    void fork(state& s, container&, id_type, id_type child) noexcept { apply_affinity(child, s); }

    void exit(state&, container&, id_type task) noexcept { requested_.erase(task); }

    /// The files, as data: added to every container after populate.
    template <class C>
    static std::vector<cftype<C>> const& files();

    // ---- queries and requests ------------------------------------------------------------------

    /// The calling thread's effective CPUs. Lock-free; call inside a read_section.
    [[nodiscard]] static cpumask const& current_cpus(H& h) noexcept {
        return h.template state_of<basic_cpuset>(h.current()).published.load(std::memory_order_acquire)->cpus;
    }

    /// The CPUs and nodes task `id` may use: its cpuset's effective masks, or, where those have
    /// no online CPU (node), the nearest ancestor's that has one; never empty.
    [[nodiscard]] cpumask allowed_cpus(H& h, id_type id) { return allowed(h, id, &state::effective_cpus, topology_.online_cpus); }
    [[nodiscard]] cpumask allowed_nodes(H& h, id_type id) { return allowed(h, id, &state::effective_mems, topology_.online_nodes); }

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
        std::lock_guard g(domains_mutex_);
        has_domains_callback_.store(static_cast<bool>(callback), std::memory_order_release);
        domains_callback_ = std::move(callback);
    }

    /// The typed face of writing cpuset.cpus and cpuset.mems, for runtimes that configure
    /// cpusets without text: the same validation and errors, no parsing, no path lookup.
    [[nodiscard]] std::error_code set_cpus(container& c, cpumask const& cpus) { return set_mask(c, cpus, true); }
    [[nodiscard]] std::error_code set_mems(container& c, cpumask const& mems) { return set_mask(c, mems, false); }

    /// Task `id` asks for `cpus` (as sched_setaffinity through the library): remembered, and
    /// applied within its cpuset (the intersection, or the cpuset's CPUs where that is empty), now
    /// and after every change. Errors: EINVAL (empty, or no such CPU online).
    [[nodiscard]] std::error_code request_affinity(H& h, id_type id, cpumask cpus) {
        auto lock = h.manage_lock();
        if (cpus.empty() || !cpus.intersects(topology_.online_cpus)) return detail::errno_code(EINVAL);
        auto cb_lock = h.callback_lock();
        requested_[id] = std::move(cpus);
        apply_affinity(id, state_of(h.container_of(id)));
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
            if (std::error_code ec = detail::guarded_call([&] {
                    words = snap->mems.to_ulongs(1024);
                    return std::error_code{};
                })) {
                return ec;
            }
            if (::syscall(SYS_set_mempolicy, 2 /* MPOL_BIND */, words.data(), words.size() * sizeof(unsigned long) * 8 + 1) != 0) {
                return detail::errno_code(errno);
            }
        }
        applied = snap->generation;
        return {};
    }

    /// Hotplug: the machine now has `t`'s CPUs and nodes online. Every cpuset keeps only what is
    /// online (as cgroup v1 does); one left without CPUs or nodes hands its tasks to its nearest
    /// ancestor that has both.
    void set_topology(H& h, topology t) {
        std::vector<std::pair<std::vector<id_type>, container*>> moves;
        {
            auto lock = h.manage_lock();
            topology_ = std::move(t);
            for (container& c : views::subtree(h.top())) {
                state& s = state_of(c);
                auto cb_lock = h.callback_lock();
                if (c.is_top()) {
                    s.cpus = topology_.online_cpus;
                    s.mems = topology_.online_nodes;
                } else {
                    s.cpus &= topology_.online_cpus;
                    s.mems &= topology_.online_nodes;
                }
                publish(h, s, c.is_top() ? nullptr : &state_of(*c.parent()));
                if (c.task_count() == 0) continue;
                if (s.effective_cpus.empty() || s.effective_mems.empty()) {
                    container* to = c.parent();
                    while (!to->is_top() && (state_of(*to).effective_cpus.empty() || state_of(*to).effective_mems.empty())) to = to->parent();
                    std::vector<id_type> ids;
                    for (auto const& task : views::tasks(c)) ids.push_back(task.id);
                    moves.emplace_back(std::move(ids), to);
                } else {
                    for (auto const& task : views::tasks(c)) apply_affinity(task.id, s);
                }
            }
        }
        for (auto& [ids, to] : moves) (void)h.attach(ids, *to);
    }

private:
    static basic_cpuset& self(container& c) noexcept { return *c.owner().template subsystem<basic_cpuset>(); }
    static state& state_of(container const& c) noexcept { return c.owner().template state_of<basic_cpuset>(c); }

    // The nearest cpuset from the task's up whose `field` has something online (guarantee_online_*).
    cpumask allowed(H& h, id_type id, cpumask state::*field, cpumask const& online) {
        auto lock = h.manage_lock();
        for (container* c = &h.container_of(id); c != nullptr; c = c->parent()) {
            cpumask m = state_of(*c).*field & online;
            if (!m.empty()) return m;
        }
        return online;
    }

    static bool any_exclusive_child(container& parent) {
        for (container& ch : views::children(parent)) {
            if (state_of(ch).cpu_exclusive || state_of(ch).mem_exclusive) return true;
        }
        return false;
    }

    // Effective masks: the requested ones within the parent's effective ones, the online ones
    // and, for CPUs, what the process may use. Publishes a snapshot; returns the one it replaced.
    [[nodiscard]] snapshot* recompute(state& s, state const* parent) {
        s.effective_cpus = s.cpus & topology_.online_cpus & topology_.allowed_cpus;
        s.effective_mems = s.mems & topology_.online_nodes;
        if (parent != nullptr) {
            s.effective_cpus &= parent->effective_cpus;
            s.effective_mems &= parent->effective_mems;
        }
        auto* snap = new snapshot;
        snap->cpus = s.effective_cpus;
        snap->mems = s.effective_mems;
        snap->generation = next_generation_.fetch_add(1, std::memory_order_relaxed) + 1;
        snap->reclaim = [](detail::retired_node* n) noexcept { delete static_cast<snapshot*>(n); };
        return const_cast<snapshot*>(s.published.exchange(snap, std::memory_order_acq_rel));
    }

    // Recomputes and publishes; the snapshot replaced goes after a grace period.
    void publish(H& h, state& s, state const* parent) {
        if (snapshot* old = recompute(s, parent)) h.retire(*old);
    }

    // memory_migrate: the kernel moves a task's pages to its cpuset's nodes when it joins and when
    // the nodes change. User space can do as much with migrate_pages(2), which moves the pages of
    // the task's whole process that sit on `from` (and not on `to`) to `to`; a thread of a
    // process that shares its memory moves its siblings' pages too, as the kernel does.
    void migrate_pages(id_type id, cpumask const& from, cpumask const& to) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            if (from.empty() || to.empty() || from == to) return;
            constexpr std::size_t bits = 1024;
            unsigned long old_nodes[bits / (8 * sizeof(unsigned long))] = {};
            unsigned long new_nodes[bits / (8 * sizeof(unsigned long))] = {};
            for (std::size_t n : from) if (n < bits) old_nodes[n / (8 * sizeof(unsigned long))] |= 1ul << (n % (8 * sizeof(unsigned long)));
            for (std::size_t n : to) if (n < bits) new_nodes[n / (8 * sizeof(unsigned long))] |= 1ul << (n % (8 * sizeof(unsigned long)));
            (void)::syscall(SYS_migrate_pages, id, bits + 1, old_nodes, new_nodes);  // best effort, as the kernel's
            migrations_.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // The affinity a thread gets in a cpuset: its own request within the cpuset's effective CPUs,
    // or those CPUs where the intersection is empty; a cpuset without CPUs leaves it unchanged.
    void apply_affinity(id_type id, state const& s) noexcept {
        if constexpr (H::traits_type::thread_bound) {
            snapshot const* snap = s.published.load(std::memory_order_acquire);
            if (snap == nullptr || snap->cpus.empty()) return;
            if (!requested_.empty()) {
                if (auto it = requested_.find(id); it != requested_.end()) {
                    cpumask const mine = it->second & snap->cpus;
                    if (!mine.empty()) {
                        (void)::sched_setaffinity(id, mine.affinity_bytes(), mine.affinity_data());
                        return;
                    }
                }
            }
            (void)::sched_setaffinity(id, snap->cpus.affinity_bytes(), snap->cpus.affinity_data());
        }
    }

    std::vector<cpumask> domains_locked(H& h) {
        std::vector<cpumask> found;
        if (state_of(h.top()).sched_load_balance) {
            found.push_back(state_of(h.top()).effective_cpus);
            return found;
        }
        // Pre-order, not entering the subtree below a balancing cpuset.
        container const* top = &h.top();
        for (container* c = detail::tree_access::next_preorder(&h.top(), top); c != nullptr;) {
            state const& s = state_of(*c);
            if (s.sched_load_balance && !s.effective_cpus.empty()) found.push_back(s.effective_cpus);
            c = s.sched_load_balance ? detail::tree_access::next_skipping_children(c, top) : detail::tree_access::next_preorder(c, top);
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

    // After a change that may move domain boundaries: tell the callback, outside the locks.
    static void notify_domains(container& c) {
        H& h = c.owner();
        basic_cpuset& cs = self(c);
        if (!cs.has_domains_callback_.load(std::memory_order_acquire)) return;  // nobody listens
        std::vector<cpumask> now = cs.sched_domains(h);
        std::function<void(std::vector<cpumask> const&)> callback;
        {
            std::lock_guard g(cs.domains_mutex_);
            if (now == cs.last_domains_) return;
            cs.last_domains_ = now;
            callback = cs.domains_callback_;
        }
        if (callback) callback(now);
    }

    // What validation looks at: a change is tried on a copy of this.
    struct config {
        cpumask cpus;
        cpumask mems;
        bool cpu_exclusive = false;
        bool mem_exclusive = false;
    };
    static config config_of(state const& s) { return {s.cpus, s.mems, s.cpu_exclusive, s.mem_exclusive}; }

    // Validation of a change to `c` whose result would be `trial`, in the kernel's order.
    std::error_code validate(container& c, state const& cur, config const& trial) {
        auto subset = [](auto const& p, auto const& q) {
            return p.cpus.subset_of(q.cpus) && p.mems.subset_of(q.mems) && p.cpu_exclusive <= q.cpu_exclusive &&
                   p.mem_exclusive <= q.mem_exclusive;
        };
        for (container& ch : views::children(c)) {
            if (!subset(state_of(ch), trial)) return detail::errno_code(EBUSY);
        }
        if (c.is_top()) return {};
        container& parent = *c.parent();
        if (!subset(trial, state_of(parent))) return detail::errno_code(EACCES);
        bool populated = false;
        for (container& d : views::subtree(c)) populated = populated || d.task_count() != 0;
        if (populated && ((!cur.cpus.empty() && trial.cpus.empty()) || (!cur.mems.empty() && trial.mems.empty()))) {
            return detail::errno_code(ENOSPC);
        }
        for (container& sib : views::children(parent)) {
            if (&sib == &c) continue;
            state const& o = state_of(sib);
            if ((trial.cpu_exclusive || o.cpu_exclusive) && trial.cpus.intersects(o.cpus)) return detail::errno_code(EINVAL);
            if ((trial.mem_exclusive || o.mem_exclusive) && trial.mems.intersects(o.mems)) return detail::errno_code(EINVAL);
        }
        return {};
    }


    // A change to `c`: `edit` adjusts a trial copy; validation, then commit and re-application.
    template <class Edit>
    static std::error_code change(container& c, Edit edit) {
        basic_cpuset& cs = self(c);
        bool cpus_changed = false;
        if (std::error_code ec = cs.change_locked(c, edit, cpus_changed)) return ec;
        if (cpus_changed) notify_domains(c);
        return {};
    }

    template <class Edit>
    std::error_code change_locked(container& c, Edit& edit, bool& cpus_changed) {
        H& h = c.owner();
        auto lock = h.manage_lock();
        if (c.removed()) return detail::errno_code(ENODEV);
        state& s = state_of(c);
        config trial = config_of(s);
        if (std::error_code ec = edit(trial)) return ec;
        if (trial.cpus == s.cpus && trial.mems == s.mems && trial.cpu_exclusive == s.cpu_exclusive &&
            trial.mem_exclusive == s.mem_exclusive) {
            return {};
        }
        if (std::error_code ec = validate(c, s, trial)) return ec;
        auto cb_lock = h.callback_lock();
        cpus_changed = trial.cpus != s.cpus;
        cpumask const old_mems = s.effective_mems;
        s.cpus = std::move(trial.cpus);
        s.mems = std::move(trial.mems);
        s.cpu_exclusive = trial.cpu_exclusive;
        s.mem_exclusive = trial.mem_exclusive;
        publish(h, s, c.is_top() ? nullptr : &state_of(*c.parent()));
        if (cpus_changed) {
            for (auto const& task : views::tasks(c)) apply_affinity(task.id, s);
        }
        if (s.memory_migrate && old_mems != s.effective_mems) {
            for (auto const& task : views::tasks(c)) migrate_pages(task.id, old_mems, s.effective_mems);
        }
        return {};
    }

    static std::error_code write_mask(container& c, std::string_view value, bool cpus) {
        if (c.is_top()) return detail::errno_code(EACCES);  // the top cpuset follows the machine
        basic_cpuset& cs = self(c);
        value = parse::strip(value);
        cpumask m;
        std::size_t const bits = cpus ? cs.topology_.possible_cpus : std::max<std::size_t>(1024, cs.topology_.possible_nodes);
        if (!value.empty()) {
            if (std::error_code ec = cpumask::parse_list(value, bits, m)) return ec;
        }
        return cs.set_mask(c, m, cpus);
    }

    std::error_code set_mask(container& c, cpumask const& m, bool cpus) {
        if (c.is_top()) return detail::errno_code(EACCES);
        std::size_t const bits = cpus ? topology_.possible_cpus : std::max<std::size_t>(1024, topology_.possible_nodes);
        if (m.extent() > bits) return detail::errno_code(ERANGE);
        return change(c, [&](config& trial) -> std::error_code {
            cpumask const& top = cpus ? state_of(c.owner().top()).cpus : state_of(c.owner().top()).mems;
            if (!m.subset_of(top)) return detail::errno_code(EINVAL);  // not online
            (cpus ? trial.cpus : trial.mems) = m;
            return {};
        });
    }

    topology topology_;                                 // manage lock
    std::function<std::int64_t()> clock_;               // immutable
    std::unordered_map<id_type, cpumask> requested_;    // manage lock
    std::mutex domains_mutex_;                          // guards the two below
    std::function<void(std::vector<cpumask> const&)> domains_callback_;
    std::vector<cpumask> last_domains_;
    std::atomic<bool> has_domains_callback_{false};
    std::atomic<std::uint64_t> migrations_{0};
    static inline std::atomic<std::uint64_t> next_generation_{0};
};

template <class H>
template <class C>
std::vector<cftype<C>> const& basic_cpuset<H>::files() {
    static std::vector<cftype<C>> const all = [] {
        using cs = basic_cpuset<H>;
        std::vector<cftype<C>> v;
        auto list_file = [](std::string_view n, cpumask state::*field, bool writable_cpus, bool writable) {
            cftype<C> f;
            f.name = n;
            f.read = [field](C& c, std::string& out) {
                auto lock = c.owner().manage_lock();
                out += (cs::state_of(c).*field).to_list();
                out += '\n';
                return std::error_code{};
            };
            if (writable) f.write = [writable_cpus](C& c, std::string_view value) { return cs::write_mask(c, value, writable_cpus); };
            return f;
        };
        v.push_back(list_file("cpuset.cpus", &state::cpus, true, true));
        v.push_back(list_file("cpuset.mems", &state::mems, false, true));
        v.push_back(list_file("cpuset.effective_cpus", &state::effective_cpus, true, false));
        v.push_back(list_file("cpuset.effective_mems", &state::effective_mems, false, false));

        // Flags that validation looks at go through change(); the others are set directly.
        auto exclusive_flag = [](std::string_view n, bool state::*field, bool config::*trial_field) {
            return flag_file<C>(
                n,
                [field](C& c) {
                    auto lock = c.owner().manage_lock();
                    return cs::state_of(c).*field;
                },
                [trial_field](C& c, bool on) {
                    return cs::change(c, [&](config& t) {
                        t.*trial_field = on;
                        return std::error_code{};
                    });
                });
        };
        auto plain_flag = [](std::string_view n, bool state::*field) {
            return flag_file<C>(
                n,
                [field](C& c) {
                    auto lock = c.owner().manage_lock();
                    return cs::state_of(c).*field;
                },
                [field](C& c, bool on) {
                    auto lock = c.owner().manage_lock();
                    if (c.removed()) return detail::errno_code(ENODEV);
                    cs::state_of(c).*field = on;
                    return std::error_code{};
                });
        };
        v.push_back(exclusive_flag("cpuset.cpu_exclusive", &state::cpu_exclusive, &config::cpu_exclusive));
        v.push_back(exclusive_flag("cpuset.mem_exclusive", &state::mem_exclusive, &config::mem_exclusive));
        v.push_back(plain_flag("cpuset.mem_hardwall", &state::mem_hardwall));
        v.push_back(plain_flag("cpuset.memory_migrate", &state::memory_migrate));
        v.push_back(plain_flag("cpuset.memory_spread_page", &state::spread_page));
        v.push_back(plain_flag("cpuset.memory_spread_slab", &state::spread_slab));
        cftype<C> balance = plain_flag("cpuset.sched_load_balance", &state::sched_load_balance);
        balance.write = [plain = balance.write](C& c, std::string_view value) {
            std::error_code ec = plain(c, value);
            if (!ec) cs::notify_domains(c);
            return ec;
        };
        v.push_back(balance);
        cftype<C> enabled = plain_flag("cpuset.memory_pressure_enabled", &state::memory_pressure_enabled);
        enabled.scope = cftype<C>::where::top_only;
        v.push_back(enabled);
        v.push_back(u64_file<C>("cpuset.memory_pressure", [](C& c) {
            return static_cast<std::uint64_t>(cs::state_of(c).pressure.rate(cs::self(c).clock_()));
        }));
        v.push_back(s64_file<C>(
            "cpuset.sched_relax_domain_level",
            [](C& c) {
                auto lock = c.owner().manage_lock();
                return cs::state_of(c).relax_domain_level;
            },
            [](C& c, std::int64_t level) {
                auto lock = c.owner().manage_lock();
                if (c.removed()) return detail::errno_code(ENODEV);
                if (level < -1 || level > cs::self(c).topology_.relax_domain_level_max) return detail::errno_code(EINVAL);
                cs::state_of(c).relax_domain_level = level;
                return std::error_code{};
            }));
        return v;
    }();
    return all;
}

/// The cpuset subsystem for the default hierarchy of threads.
using cpuset = basic_cpuset<hierarchy<>>;

}  // namespace containers
