// pids: a limit on the number of tasks in a container and its descendants, as the kernel's cgroup
// v1 pids controller (kernel/cgroup/pids.c).
//
// Each container below the top counts the tasks in it and in its descendants (`pids.current`).
// A fork into a container fails with EAGAIN when that container or any ancestor below the top
// would go past its `pids.max`; the refusal is counted in `pids.events` ("max N") of the container
// the fork came into, as the kernel counts it on a v1 hierarchy. Moving tasks in is never refused,
// even past the limit: the kernel charges migrations without checking (a limit bounds forks, not
// membership). `pids.peak` is the highest count seen; like the kernel's watermark, a refused fork
// may raise it in the containers below the one whose limit refused it. The top container has none
// of these files and counts nothing, as the kernel's root.
//
// Threads: the hierarchy does not see a clone(2) that bypasses it, so the limit holds for tasks
// that join through hierarchy::fork (cgsh's `fork`), which a runtime calls before it starts a
// task: a thread pool calls it for each worker it wants, and an EAGAIN caps the group's
// concurrency (examples/worker_cap.cpp). Logical tasks: the same, through the runtime's own fork.
//
// Locking: counts and limits are atomics. Hooks run under the manage lock, so that a fork's
// check and charge are one step with respect to every other fork and move; the files and the
// typed accessors read lock-free and set the limit with one store, as the kernel does.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "cftype.hpp"
#include "detail/errors.hpp"
#include "hierarchy.hpp"
#include "subsystem_concepts.hpp"

namespace containers {

template <class H>
class basic_pids : public subsystem_tag {
public:
    using hierarchy_type = H;
    using container = typename H::container;
    using id_type = typename H::id_type;
    static constexpr std::string_view name = "pids";
    /// The value that reads "max": the kernel's PIDS_MAX, PID_MAX_LIMIT + 1. Limits from 0 to
    /// max_limit - 1 are written as numbers; max_limit itself only as "max".
    static constexpr std::int64_t max_limit = 4 * 1024 * 1024 + 1;

    struct state {
        std::atomic<std::int64_t> current{0};       // tasks here and below; changed under the manage lock
        std::atomic<std::int64_t> limit{max_limit}; // pids.max; one store
        std::atomic<std::int64_t> peak{0};          // highest `current` seen; under the manage lock
        std::atomic<std::int64_t> events{0};        // forks into this container refused; manage lock
    };

    // ---- hooks ----------------------------------------------------------------------------------

    /// Charges every ancestor up to the top, checking each limit; a refusal undoes the charges
    /// already made and counts an event in `c`.
    std::error_code can_fork(state& s, container& c, id_type, id_type) noexcept {
        for (container* p = &c; p->parent() != nullptr; p = p->parent()) {
            state& ps = state_of(*p);
            std::int64_t const now = ps.current.fetch_add(1, std::memory_order_relaxed) + 1;
            if (now > ps.limit.load(std::memory_order_relaxed)) {
                for (container* q = &c; q != p->parent(); q = q->parent()) {
                    state_of(*q).current.fetch_sub(1, std::memory_order_relaxed);
                }
                s.events.fetch_add(1, std::memory_order_relaxed);
                return detail::errno_code(EAGAIN);
            }
            raise_peak(ps, now);
        }
        return {};
    }
    void cancel_fork(state&, container& c, id_type, id_type) noexcept { charge(c, -1); }

    /// Moves are charged at the commit point, where nothing can fail: no cancel is needed.
    void attach(state&, container& c, task_set<container> tasks) noexcept {
        for (auto const& t : tasks) {
            charge(c, 1);
            charge(*t.from, -1);
        }
    }

    void exit(state&, container& c, id_type) noexcept { charge(c, -1); }

    // ---- typed access (what the files show and take) ---------------------------------------------

    /// pids.current of `c`: its tasks and its descendants'. Lock-free. 0 for the top container.
    [[nodiscard]] static std::int64_t current(container const& c) noexcept {
        return state_of(c).current.load(std::memory_order_relaxed);
    }
    /// pids.peak of `c`. Lock-free.
    [[nodiscard]] static std::int64_t peak(container const& c) noexcept { return state_of(c).peak.load(std::memory_order_relaxed); }
    /// The "max" count of pids.events: forks into `c` refused by a limit. Lock-free.
    [[nodiscard]] static std::int64_t events(container const& c) noexcept {
        return state_of(c).events.load(std::memory_order_relaxed);
    }
    /// pids.max of `c`: max_limit where there is none. Lock-free.
    [[nodiscard]] static std::int64_t limit(container const& c) noexcept { return state_of(c).limit.load(std::memory_order_relaxed); }

    /// Effects: sets pids.max of `c` (max_limit: none). Tasks already there stay, even past it.
    /// Errors: EINVAL (negative, past max_limit, or the top container, which has no limit),
    ///   ENODEV (`c` removed).
    /// Locking: none; one atomic store, as the kernel's pids_max_write.
    [[nodiscard]] static std::error_code set_limit(container& c, std::int64_t limit) noexcept {
        if (c.parent() == nullptr || limit < 0 || limit > max_limit) return detail::errno_code(EINVAL);
        if (c.removed()) return detail::errno_code(ENODEV);
        state_of(c).limit.store(limit, std::memory_order_relaxed);
        return {};
    }

    /// Parses what pids.max takes: white space around "max" or a number in the kstrtoll format.
    /// Errors: EINVAL (anything else, negative, or max_limit and past written as a number),
    ///   ERANGE (past 64 bits).
    [[nodiscard]] static std::error_code parse_limit(std::string_view text, std::int64_t& out) noexcept {
        text = parse::strip(text);
        if (text == "max") {
            out = max_limit;
            return {};
        }
        std::int64_t v = 0;
        if (std::error_code ec = parse::s64(text, v)) return ec;
        if (v < 0 || v >= max_limit) return detail::errno_code(EINVAL);
        out = v;
        return {};
    }

    /// The files, as data: added to every container but the top after populate.
    template <class C>
    static std::vector<cftype<C>> const& files() {
        static std::vector<cftype<C>> const all = [] {
            using where = typename cftype<C>::where;
            std::vector<cftype<C>> v;
            cftype<C> max;
            max.name = "pids.max";
            max.scope = where::not_top;
            max.read = [](C& c, std::string& out) {
                std::int64_t const n = limit(c);
                out += n == max_limit ? std::string("max") : std::to_string(n);
                out += '\n';
                return std::error_code{};
            };
            max.write = [](C& c, std::string_view text) {
                std::int64_t n = 0;
                if (std::error_code ec = parse_limit(text, n)) return ec;
                return set_limit(c, n);
            };
            v.push_back(std::move(max));
            auto counter = [](std::string_view name, std::int64_t (*get)(container const&)) {
                cftype<C> f = s64_file<C>(name, [get](C& c) { return get(c); });
                f.scope = where::not_top;
                return f;
            };
            v.push_back(counter("pids.current", &current));
            v.push_back(counter("pids.peak", &peak));
            cftype<C> ev;
            ev.name = "pids.events";
            ev.scope = where::not_top;
            ev.read = [](C& c, std::string& out) {
                out += "max " + std::to_string(events(c)) + "\n";
                return std::error_code{};
            };
            v.push_back(std::move(ev));
            return v;
        }();
        return all;
    }

private:
    static state& state_of(container const& c) noexcept { return c.owner().template state_of<basic_pids>(c); }

    static void raise_peak(state& s, std::int64_t now) noexcept {
        if (now > s.peak.load(std::memory_order_relaxed)) s.peak.store(now, std::memory_order_relaxed);
    }

    // Adds `n` to `c` and each ancestor below the top, as the kernel's pids_charge/pids_uncharge.
    static void charge(container& c, std::int64_t n) noexcept {
        for (container* p = &c; p->parent() != nullptr; p = p->parent()) {
            state& ps = state_of(*p);
            std::int64_t const now = ps.current.fetch_add(n, std::memory_order_relaxed) + n;
            if (n > 0) raise_peak(ps, now);
        }
    }
};

/// The pids subsystem for the default hierarchy of threads.
using pids = basic_pids<hierarchy<>>;

}  // namespace containers
