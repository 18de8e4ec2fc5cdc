// A subsystem declared `final` keeps its hooks: they were once detected by deriving from the
// subsystem, which a final class forbids, so every hook silently read as absent.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

using namespace containers;

namespace {

struct worker_one {
    static std::uint64_t get() noexcept { return 1; }
};
using LH = hierarchy<logical_task_traits<std::uint64_t, worker_one>, 2>;
using LC = LH::container;

struct gate final : subsystem_tag {
    static constexpr std::string_view name = "gate";
    struct state {
        bool closed = false;
        int created = 0;
        int attached = 0;
    };
    std::vector<std::string> seen;
    std::error_code create(state& s, LC&) {
        ++s.created;
        return {};
    }
    std::error_code can_attach(state& s, LC&, task_set<LC>) {
        return s.closed ? std::make_error_code(std::errc::operation_not_permitted) : std::error_code{};
    }
    void attach(state& s, LC&, task_set<LC> t) noexcept { s.attached += static_cast<int>(t.size()); }
    // Generic hooks: a template cannot be named by &S::X, only called.
    template <class Ctr>
    void fork(state&, Ctr& c, std::uint64_t p, std::uint64_t ch) noexcept {
        seen.push_back("fork:" + c.owner().path(c) + ":" + std::to_string(p) + ">" + std::to_string(ch));
    }
    template <class Ctr>
    void exit(state&, Ctr& c, std::uint64_t t) noexcept {
        seen.push_back("exit:" + c.owner().path(c) + ":" + std::to_string(t));
    }
};

}  // namespace

TEST_CASE("a final subsystem's can_attach veto takes effect", "[final][hooks][attach]") {
    LH h;
    subsystem_handle<gate, LH> g;
    REQUIRE_FALSE(h.register_subsystem(g));
    LC* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    CHECK(g.state(*a).created == 1);
    REQUIRE_FALSE(h.attach(std::uint64_t{7}, *a));
    CHECK(g.state(*a).attached == 1);
    LC* b = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "b", &b));
    g.state(*b).closed = true;
    CHECK(h.attach(std::uint64_t{7}, *b) == std::errc::operation_not_permitted);
    CHECK(&h.container_of(7) == a);
    CHECK(g.state(*b).attached == 0);
}

TEST_CASE("a final subsystem's template hooks run", "[final][hooks]") {
    LH h;
    subsystem_handle<gate, LH> g;
    REQUIRE_FALSE(h.register_subsystem(g));
    LC* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.attach(std::uint64_t{7}, *a));
    REQUIRE_FALSE(h.fork(7, 8));
    REQUIRE_FALSE(h.exit(8));
    CHECK(g.subsystem().seen == std::vector<std::string>{"fork:/a:7>8", "exit:/a:8"});
}
