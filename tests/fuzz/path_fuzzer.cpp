// libFuzzer harness for the path interface: each input is a sequence of operations (mkdir,
// rmdir, read, write, list, attach, fork, exit, a cpuacct charge, a typed setter of pids, cpuacct
// or freezer, a cpu charge) on a small space of paths and values, run against one hierarchy of
// logical tasks with cpuacct, pids, freezer and cpu registered; after each, the invariants are
// checked: the tree is consistent with the count, every task is in exactly one live container,
// the index agrees, pids.current is the number of tasks of each subtree, a group is freezing
// exactly when it or an ancestor was frozen (so a child of a FROZEN group reads FROZEN) and its
// tasks may not run, cpuacct's usage is user + system time, every file of pids, cpuacct and
// freezer reads what its typed getter returns, and cpu's settings are within the kernel's limits,
// each quota within its nearest limited ancestor's, and a group weighs something exactly when its
// subtree has a task.
// Build: clang++-14 -fsanitize=fuzzer,address,undefined (CONTAINERS_BUILD_FUZZERS=ON).
#include <containers/containers.hpp>
#include <containers/pids.hpp>
#include <containers/views.hpp>

#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <string>
#include <vector>

namespace {

struct running {
    static std::int32_t get() noexcept { return 1; }
};
using H = containers::hierarchy<containers::logical_task_traits<std::int32_t, running>, 4>;
using C = H::container;
using pids = containers::basic_pids<H>;
using F = containers::basic_freezer<H>;
using CPU = containers::basic_cpu<H>;

struct input {
    std::uint8_t const* data;
    std::size_t size;
    std::uint8_t byte() noexcept {
        if (size == 0) return 0;
        --size;
        return *data++;
    }
    std::string bytes(std::size_t n) {
        std::string s;
        while (n-- > 0 && size > 0) s += static_cast<char>(byte());
        return s;
    }
};

std::string component(input& in) {
    static char const* const names[] = {"a", "b", "c", "tasks", "cgroup.procs", "notify_on_release",
                                        "cgroup.clone_children", "release_agent", ".", "..", "", "x\ny",
                                        "cpuacct.usage", "cpuacct.usage_user", "cpuacct.usage_sys", "cpuacct.stat",
                                        "pids.max", "pids.current", "pids.peak", "pids.events",
                                        "freezer.state", "freezer.self_freezing", "freezer.parent_freezing",
                                        "cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us", "cpu.stat"};
    std::uint8_t const b = in.byte();
    if (b < 240) return names[b % std::size(names)];
    return in.bytes(b % 8);  // raw bytes now and then
}

std::string path(input& in) {
    std::string p;
    std::uint8_t const depth = in.byte() % 4;
    for (std::uint8_t i = 0; i <= depth; ++i) p += "/" + component(in);
    if (in.byte() % 16 == 0) p += "/";
    return p;
}

std::string value(input& in) {
    static char const* const values[] = {"0",   "1",       "1\n",     " 2 ",   "0x10",     "-1",       "abc",
                                         "",    "3",       "7\n",     "max",   "4194305",  "18446744073709551616",
                                         "FROZEN", "THAWED\n", "FREEZING", "1000", "50000", "262145", "100000"};
    std::uint8_t const b = in.byte();
    if (b < 200) return values[b % std::size(values)];
    return in.bytes(b % 32);
}

void check(H& h) {
    auto lock = h.manage_lock();
    std::size_t containers = 0;
    std::size_t tasks = 0;
    for (C& c : containers::views::subtree(h.top())) {
        ++containers;
        // pids counts every task of the subtree below the top, whatever failed on the way.
        std::int64_t below = 0;
        for (C& d : containers::views::subtree(c)) below += static_cast<std::int64_t>(d.task_count());
        if (pids::current(c) != (c.is_top() ? 0 : below)) std::abort();
        if (pids::peak(c) < pids::current(c)) std::abort();
        if (c.removed()) std::abort();
        // freezer: a group is freezing exactly when it or an ancestor was frozen.
        F::state const& st = h.state_of<F>(c);
        bool const parent = !c.is_top() && F::freezing(*c.parent());
        if (st.parent_freezing != parent || F::freezing(c) != (st.self_freezing || st.parent_freezing)) std::abort();
        if (!c.is_top() && c.parent()->removed()) std::abort();
        // cpuacct: logical tasks are charged user + system, so usage is their sum everywhere.
        auto const& acct = h.state_of<containers::basic_cpuacct<H>>(c);
        if (acct.usage != acct.user + acct.sys) std::abort();
        if (pids::limit(c) < 0 || pids::limit(c) > pids::max_limit) std::abort();
        // cpu: the kernel's limits hold; a quota fits the nearest limited ancestor's; a group
        // weighs something exactly when a task is in its subtree.
        CPU& cpu = *h.subsystem<CPU>();
        std::uint64_t shares = 0, period = 0, burst = 0;
        std::int64_t quota = 0;
        if (cpu.get_shares_locked(c, shares) || cpu.get_period_us_locked(c, period) || cpu.get_quota_us_locked(c, quota) ||
            cpu.get_burst_us_locked(c, burst)) {
            std::abort();
        }
        if (shares < 2 || shares > 262144 || period < 1000 || period > 1000000) std::abort();
        if (quota != -1 && (quota < 1000 || quota > (std::int64_t{1} << 44) - 1 || burst > static_cast<std::uint64_t>(quota))) std::abort();
        if (quota != -1) {
            for (C* p = c.parent(); p != nullptr && !p->is_top(); p = p->parent()) {
                std::int64_t pq = 0;
                std::uint64_t pp = 0;
                if (cpu.get_quota_us_locked(*p, pq) || cpu.get_period_us_locked(*p, pp)) std::abort();
                if (pq == -1) continue;
                // The kernel's 2^20 fixed point of quota/period, where it does not wrap (below 2^44 ns).
                auto ratio = [](std::int64_t q, std::uint64_t per) {
                    return (static_cast<unsigned __int128>(q) * 1000 << 20) / (per * 1000);
                };
                if (quota < 17'000'000 && pq < 17'000'000 && ratio(quota, period) > ratio(pq, pp)) std::abort();
                break;
            }
        }
        if (!c.is_top() && (CPU::effective_weight(c) > 0) != (below > 0)) std::abort();
        for (auto const& t : containers::views::tasks(c)) {
            ++tasks;
            if (&t.container() != &c || h.find_task(t.id) != &t) std::abort();
            if (F::may_run(h, t.id) == F::freezing(c)) std::abort();
        }
    }
    if (containers != h.size() || tasks != h.task_count()) std::abort();
}

// Every file of pids, cpuacct and freezer reads what its typed getter returns, and a child of a
// FROZEN group reads FROZEN. Without the manage lock (the file handlers and getters take it).
void check_files(H& h, containers::basic_cpuacct<H>& ca, F& fz) {
    std::vector<C*> all;
    {
        auto lock = h.manage_lock();
        for (C& c : containers::views::subtree(h.top())) all.push_back(&c);
    }
    auto file = [&](C& c, char const* name) {
        std::string out;
        if (containers::fs::read(h, h.path(c) + (c.is_top() ? "" : "/") + name, out)) std::abort();
        return out;
    };
    auto line = [](auto n) { return std::to_string(n) + "\n"; };
    for (C* c : all) {
        std::uint64_t ns = 0;
        if (ca.get_usage(*c, ns) || file(*c, "cpuacct.usage") != line(ns)) std::abort();
        if (ca.get_usage_user(*c, ns) || file(*c, "cpuacct.usage_user") != line(ns)) std::abort();
        if (ca.get_usage_sys(*c, ns) || file(*c, "cpuacct.usage_sys") != line(ns)) std::abort();
        containers::basic_cpuacct<H>::cpu_stat st;
        if (ca.get_stat(*c, st) || file(*c, "cpuacct.stat") != "user " + std::to_string(st.user) + "\nsystem " + line(st.system)) {
            std::abort();
        }
        if (c->is_top()) continue;
        std::int64_t const max = pids::limit(*c);
        if (file(*c, "pids.max") != (max == pids::max_limit ? std::string("max\n") : line(max))) std::abort();
        if (file(*c, "pids.current") != line(pids::current(*c)) || file(*c, "pids.peak") != line(pids::peak(*c))) std::abort();
        if (file(*c, "pids.events") != "max " + line(pids::events(*c))) std::abort();
        containers::freezer_state now{};
        bool self = false, parent = false;
        if (fz.get_state(*c, now) || fz.get_self_freezing(*c, self) || fz.get_parent_freezing(*c, parent)) std::abort();
        static constexpr char const* names[] = {"THAWED\n", "FREEZING\n", "FROZEN\n"};
        if (file(*c, "freezer.state") != names[static_cast<int>(now)]) std::abort();
        if (file(*c, "freezer.self_freezing") != line(int{self}) || file(*c, "freezer.parent_freezing") != line(int{parent})) std::abort();
        // Logical tasks: a group is FROZEN as soon as it is freezing, and THAWED otherwise.
        if (now != (self || parent ? containers::freezer_state::frozen : containers::freezer_state::thawed)) std::abort();
        if (!c->parent()->is_top() && fz.get_state(*c->parent()) == containers::freezer_state::frozen && now != containers::freezer_state::frozen) {
            std::abort();
        }
    }
}

// A typed setter on the container at a path, with a value from a small space of edges.
void typed_set(H& h, input& in, containers::basic_cpuacct<H>& ca, F& fz) {
    static constexpr std::int64_t limits[] = {-1, 0, 1, 2, 3, pids::max_limit - 1, pids::max_limit, pids::max_limit + 1, INT64_MIN};
    containers::read_section rs;
    C* c = nullptr;
    if (h.lookup(path(in), c)) return;
    std::uint8_t const b = in.byte();
    switch (b % 3) {
        case 0: (void)pids::set_limit(*c, limits[in.byte() % std::size(limits)]); break;
        case 1: (void)ca.set_usage(*c, in.byte() % 2 == 0 ? 0 : in.byte()); break;
        case 2: (void)fz.set_state(*c, static_cast<containers::freezer_state>(in.byte() % 3)); break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    H h;
    containers::subsystem_handle<containers::basic_cpuacct<H>, H> cpuacct;
    if (h.register_subsystem(cpuacct)) std::abort();
    containers::subsystem_handle<pids, H> pids_handle;
    if (h.register_subsystem(pids_handle)) std::abort();
    containers::subsystem_handle<F, H> fz;
    if (h.register_subsystem(fz)) std::abort();
    containers::subsystem_handle<CPU, H> cpu;
    if (h.register_subsystem(cpu)) std::abort();
    input in{data, size};
    std::string out;
    std::vector<std::string> names;
    while (in.size > 0) {
        switch (in.byte() % 11) {
            case 0: (void)containers::fs::mkdir(h, path(in)); break;
            case 1: (void)containers::fs::rmdir(h, path(in)); break;
            case 2: (void)containers::fs::read(h, path(in), out); break;
            case 3: {
                std::string const p = path(in);
                (void)containers::fs::write(h, p, value(in));
                break;
            }
            case 4: (void)containers::fs::list(h, path(in), names); break;
            case 5: {
                std::string const p = path(in) + "/tasks";
                (void)containers::fs::write(h, p, std::to_string(in.byte() % 8));
                break;
            }
            case 6: (void)h.fork(in.byte() % 8, in.byte() % 16); break;
            case 7: (void)h.exit(in.byte() % 16); break;
            case 8: cpuacct.subsystem().charge(h, in.byte() % 16, in.byte(), in.byte()); break;
            case 9: typed_set(h, in, cpuacct.subsystem(), fz.subsystem()); break;
            case 10: (void)cpu.subsystem().charge(h, in.byte() % 16, std::uint64_t{in.byte()} * 100'000); break;
        }
        check(h);
        check_files(h, cpuacct.subsystem(), fz.subsystem());
    }
    return 0;
}
