// can_fork / cancel_fork: a fork can be vetoed, as the kernel's pids controller vetoes clone.
// Every can_fork runs first, in registration order; a veto (an error or a throw) runs cancel_fork
// for the subsystems that agreed, in reverse, and leaves the hierarchy as it was.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

using namespace containers;

namespace {

struct one_worker {
    static std::uint64_t get() noexcept { return 1; }
};
using LH = hierarchy<logical_task_traits<std::uint64_t, one_worker>, 4>;
using LC = LH::container;

std::vector<std::string> journal;

enum class veto { none, error, system_error, other_exception };

/// Records its fork hooks, with the locks held, and vetoes on demand.
template <int N>
struct forker : subsystem_tag {
    static constexpr std::string_view name = N == 0 ? "f0" : N == 1 ? "f1" : "f2";
    struct state {};
    veto mode = veto::none;

    static std::string tag(char const* hook, LC const& c, std::uint64_t p, std::uint64_t ch) {
        return std::string(name) + ":" + hook + ":" + c.owner().path(c) + ":" + std::to_string(p) + ">" + std::to_string(ch) +
               (c.owner().manage_lock_held() ? ":m" : "") + (c.owner().callback_lock_held() ? ":cb" : "");
    }
    std::error_code can_fork(state&, LC& c, std::uint64_t p, std::uint64_t ch) {
        journal.push_back(tag("can_fork", c, p, ch));
        switch (mode) {
            case veto::none: return {};
            case veto::error: return std::make_error_code(std::errc::resource_unavailable_try_again);
            case veto::system_error: throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
            case veto::other_exception: throw std::runtime_error("no");
        }
        return {};
    }
    void cancel_fork(state&, LC& c, std::uint64_t p, std::uint64_t ch) noexcept { journal.push_back(tag("cancel_fork", c, p, ch)); }
    void fork(state&, LC& c, std::uint64_t p, std::uint64_t ch) noexcept { journal.push_back(tag("fork", c, p, ch)); }
};

/// A pids-like limit: can_fork charges the child to its container, cancel_fork and exit uncharge.
struct pid_cap : subsystem_tag {
    static constexpr std::string_view name = "pids";
    struct state {
        int count = 0;
        int max = 1 << 30;
    };
    std::error_code can_fork(state& s, LC&, std::uint64_t, std::uint64_t) {
        if (s.count >= s.max) return std::make_error_code(std::errc::resource_unavailable_try_again);
        ++s.count;
        return {};
    }
    void cancel_fork(state& s, LC&, std::uint64_t, std::uint64_t) noexcept { --s.count; }
    void exit(state& s, LC&, std::uint64_t) noexcept { --s.count; }
};

struct three {
    LH h;
    subsystem_handle<forker<0>, LH> f0;
    subsystem_handle<forker<1>, LH> f1;
    subsystem_handle<forker<2>, LH> f2;
    LC* g = nullptr;
    three() {
        REQUIRE_FALSE(h.register_subsystem(f0));
        REQUIRE_FALSE(h.register_subsystem(f1));
        REQUIRE_FALSE(h.register_subsystem(f2));
        REQUIRE_FALSE(h.mkdir(h.top(), "g", &g));
        REQUIRE_FALSE(h.attach(std::uint64_t{10}, *g));
        journal.clear();
    }
    void set(int i, veto v) {
        if (i == 0) f0.subsystem().mode = v;
        if (i == 1) f1.subsystem().mode = v;
        if (i == 2) f2.subsystem().mode = v;
    }
    std::vector<std::uint64_t> ids(LC& c) {
        std::vector<std::uint64_t> out;
        REQUIRE_FALSE(h.task_ids(c, out));
        return out;
    }
};

}  // namespace

TEST_CASE("can_fork runs for every subsystem, in order, under the manage lock, before fork hooks", "[fork][hooks]") {
    three t;
    REQUIRE_FALSE(t.h.fork(10, 11));
    CHECK(journal == std::vector<std::string>{
                         "f0:can_fork:/g:10>11:m", "f1:can_fork:/g:10>11:m", "f2:can_fork:/g:10>11:m",
                         "f0:fork:/g:10>11:m:cb", "f1:fork:/g:10>11:m:cb", "f2:fork:/g:10>11:m:cb"});
    CHECK(&t.h.container_of(11) == t.g);
}

TEST_CASE("a can_fork veto leaves the hierarchy as it was and returns the veto", "[fork][hooks][rollback]") {
    three t;
    t.set(1, veto::error);
    std::size_t const tasks = t.h.task_count();
    CHECK(t.h.fork(10, 11) == std::errc::resource_unavailable_try_again);
    CHECK(journal == std::vector<std::string>{"f0:can_fork:/g:10>11:m", "f1:can_fork:/g:10>11:m", "f0:cancel_fork:/g:10>11:m"});
    CHECK(t.h.find_task(11) == nullptr);
    CHECK(&t.h.container_of(11) == &t.h.top());
    CHECK(t.h.task_count() == tasks);
    CHECK(t.ids(*t.g) == std::vector<std::uint64_t>{10});
    CHECK(t.ids(t.h.top()).empty());
    // Nothing was left behind: the same fork goes through once the veto is lifted.
    t.set(1, veto::none);
    journal.clear();
    REQUIRE_FALSE(t.h.fork(10, 11));
    CHECK(&t.h.container_of(11) == t.g);
    CHECK(journal.size() == 6);
}

TEST_CASE("a veto at each position undoes exactly the subsystems before it, in reverse", "[fork][hooks][rollback]") {
    auto const mode = GENERATE(veto::error, veto::system_error, veto::other_exception);
    int const at = GENERATE(0, 1, 2);
    three t;
    t.set(at, mode);
    std::error_code const ec = t.h.fork(10, 11);
    CHECK(ec == (mode == veto::other_exception ? std::errc::operation_canceled : std::errc::resource_unavailable_try_again));
    std::vector<std::string> expected;
    for (int i = 0; i <= at; ++i) expected.push_back("f" + std::to_string(i) + ":can_fork:/g:10>11:m");
    for (int i = at; i-- > 0;) expected.push_back("f" + std::to_string(i) + ":cancel_fork:/g:10>11:m");
    CHECK(journal == expected);
    CHECK(t.h.find_task(11) == nullptr);
    CHECK(t.h.task_count() == 1);
}

TEST_CASE("a pids-like limit refuses the fork past it and keeps its count through cancels", "[fork][hooks]") {
    LH h;
    subsystem_handle<pid_cap, LH> p;
    subsystem_handle<forker<0>, LH> after;  // registered after pids: its veto cancels pids' charge
    REQUIRE_FALSE(h.register_subsystem(p));
    REQUIRE_FALSE(h.register_subsystem(after));
    LC* g = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "g", &g));
    REQUIRE_FALSE(h.attach(std::uint64_t{1}, *g));
    p.state(*g).count = 1;  // the task attached; this subsystem counts forks only
    p.state(*g).max = 3;
    REQUIRE_FALSE(h.fork(1, 2));
    CHECK(p.state(*g).count == 2);
    after.subsystem().mode = veto::error;
    CHECK(h.fork(1, 3) == std::errc::resource_unavailable_try_again);
    CHECK(p.state(*g).count == 2);  // charged, then cancelled
    after.subsystem().mode = veto::none;
    REQUIRE_FALSE(h.fork(2, 3));
    CHECK(p.state(*g).count == 3);
    CHECK(h.fork(1, 4) == std::errc::resource_unavailable_try_again);  // the limit
    CHECK(h.find_task(4) == nullptr);
    REQUIRE_FALSE(h.exit(3));
    CHECK(p.state(*g).count == 2);
    REQUIRE_FALSE(h.fork(1, 4));
    CHECK(&h.container_of(4) == g);
}
