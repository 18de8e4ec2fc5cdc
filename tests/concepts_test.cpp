// The Subsystem and TaskTraits concepts, positive and negative, checked at compile time.
#include "support.hpp"

#include <catch2/catch.hpp>

using namespace containers;
using test::C;

namespace {
struct minimal : subsystem_tag {
    static constexpr std::string_view name = "minimal";
    struct state {};
};
struct no_tag {
    [[maybe_unused]] static constexpr std::string_view name = "no_tag";
    struct state {};
};
struct no_state : subsystem_tag {
    static constexpr std::string_view name = "no_state";
};
struct no_name : subsystem_tag {
    struct state {};
};
struct generic_hooks : minimal {
    template <class Ctr>
    std::error_code create(state&, Ctr&) { return {}; }
    template <class Ctr>
    void attach(state&, Ctr&, task_set<Ctr>) noexcept {}
};
struct attach_may_throw : minimal {
    void attach(state&, C&, task_set<C>) {}  // missing noexcept
};
struct create_returns_int : minimal {
    int create(state&, C&) { return 0; }
};
struct typo_in_params : minimal {
    std::error_code can_attach(state&, C&) { return {}; }  // forgot the task set
};
struct overloaded_exit : minimal {
    void exit(state&, C&, int, int) noexcept {}
};
struct data_member_named_like_a_hook : minimal {
    int destroy = 0;
};
struct final_subsystem final : subsystem_tag {
    static constexpr std::string_view name = "final";
    struct state {};
};
struct pids_like : minimal {
    std::error_code can_fork(state&, C&, pid_t, pid_t) { return {}; }
    void cancel_fork(state&, C&, pid_t, pid_t) noexcept {}
};
struct can_fork_noexcept_missing_cancel : minimal {
    std::error_code can_fork(state&, C&, pid_t, pid_t) noexcept { return {}; }  // cancel_fork is optional
};
struct can_fork_one_id : minimal {
    std::error_code can_fork(state&, C&, pid_t) { return {}; }
};

struct fiber_clock {
    static std::uint64_t get() noexcept { return 1; }
};
struct not_traits {
    using id_type = int;
};
}  // namespace

TEST_CASE("the Subsystem concept needs the tag, a name and a state", "[concepts]") {
    STATIC_REQUIRE(Subsystem<minimal>);
    STATIC_REQUIRE(SubsystemFor<minimal, C>);
    STATIC_REQUIRE(Subsystem<test::recorder<0>>);
    STATIC_REQUIRE(SubsystemFor<test::recorder<0>, C>);
    STATIC_REQUIRE(Subsystem<final_subsystem>);
    STATIC_REQUIRE_FALSE(Subsystem<no_tag>);
    STATIC_REQUIRE_FALSE(Subsystem<no_state>);
    STATIC_REQUIRE_FALSE(Subsystem<no_name>);
    STATIC_REQUIRE_FALSE(Subsystem<int>);
}

TEST_CASE("each hook is detected by name and checked by signature", "[concepts]") {
    STATIC_REQUIRE(HasCreate<test::recorder<0>, C>);
    STATIC_REQUIRE(HasCanAttach<test::recorder<0>, C>);
    STATIC_REQUIRE(HasPostAttach<test::recorder<0>, C>);
    STATIC_REQUIRE_FALSE(HasCreate<minimal, C>);
    STATIC_REQUIRE(detail::names_create<generic_hooks, C>);
    STATIC_REQUIRE(SubsystemFor<generic_hooks, C>);
    STATIC_REQUIRE_FALSE(detail::names_create<minimal, C>);
    // A hook present with the wrong signature is never read as absent.
    STATIC_REQUIRE(detail::names_attach<attach_may_throw, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<attach_may_throw, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<create_returns_int, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<typo_in_params, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<overloaded_exit, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<data_member_named_like_a_hook, C>);
}

TEST_CASE("can_fork and cancel_fork are checked like the other hooks", "[concepts][fork]") {
    STATIC_REQUIRE(HasCanFork<pids_like, C>);
    STATIC_REQUIRE(HasCancelFork<pids_like, C>);
    STATIC_REQUIRE(SubsystemFor<pids_like, C>);
    STATIC_REQUIRE(SubsystemFor<can_fork_noexcept_missing_cancel, C>);
    STATIC_REQUIRE(detail::names_can_fork<can_fork_one_id, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<can_fork_one_id, C>);
    STATIC_REQUIRE_FALSE(HasCancelFork<minimal, C>);
}

TEST_CASE("the TaskTraits concept accepts threads and logical tasks", "[concepts]") {
    STATIC_REQUIRE(TaskTraits<thread_task_traits>);
    STATIC_REQUIRE(TaskTraits<logical_task_traits<std::uint64_t, fiber_clock>>);
    STATIC_REQUIRE_FALSE(TaskTraits<not_traits>);
    STATIC_REQUIRE_FALSE(TaskTraits<int>);
}

TEST_CASE("a hierarchy of logical tasks works without threads", "[concepts][tasks]") {
    using traits = logical_task_traits<std::uint64_t, fiber_clock>;
    hierarchy<traits, 2> h;
    hierarchy<traits, 2>::container* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    std::uint64_t const ids[] = {5, 1, 5, 3};
    REQUIRE_FALSE(h.attach(ids, *a));
    CHECK(h.task_count() == 3);
    CHECK(&h.container_of(3) == a);
    CHECK(&h.container_of(42) == &h.top());  // unknown tasks are in the top container
    REQUIRE_FALSE(h.attach(1, h.top()));
    {
        read_section rs;
        CHECK(&h.current() == &h.top());  // fiber_clock says task 1 runs
    }
    std::vector<std::uint64_t> listed;
    REQUIRE_FALSE(h.task_ids(*a, listed));
    CHECK(listed == std::vector<std::uint64_t>{3, 5});
}
