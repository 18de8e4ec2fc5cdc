// How a hook is found (subsystem_concepts.hpp): every kind of member named like a hook counts as
// the hook, in final classes too, so that a wrong signature is a compile error and never reads as
// "absent". Each kind is checked twice: in a class that is not final (found by deriving from it)
// and in a final one (found by taking its address, or by calling it).
#include "support.hpp"

#include <catch2/catch.hpp>

using namespace containers;
using test::C;

namespace {

struct base : subsystem_tag {
    static constexpr std::string_view name = "probe";
    struct state {};
};

// Right signatures, in every form a hook may take.
struct plain_ok final : base {
    void exit(state&, C&, pid_t) noexcept {}
};
struct template_ok final : base {
    template <class Ctr>
    void attach(state&, Ctr&, task_set<Ctr>) noexcept {}
};
struct overloads_ok final : base {
    void exit(state&, C&, pid_t) noexcept {}
    void exit(int) noexcept {}
};
struct static_ok final : base {
    static std::error_code can_fork(state&, C&, pid_t, pid_t) { return {}; }
};
struct hooks_in_base : base {
    void cancel_fork(state&, C&, pid_t, pid_t) noexcept {}
};
struct inherited_ok final : hooks_in_base {};

// Wrong signatures, in every form: each must be seen, and refused.
#define CONTAINERS_TEST_PAIR(X, ...)              \
    struct X : base { __VA_ARGS__ };              \
    struct X##_final final : base { __VA_ARGS__ };
CONTAINERS_TEST_PAIR(plain_wrong, void exit(state&, C&, pid_t) {})  // not noexcept
CONTAINERS_TEST_PAIR(template_wrong, template <class Ctr> void attach(state&, Ctr&, task_set<Ctr>) {})
CONTAINERS_TEST_PAIR(template_wrong_arity, template <class Ctr> std::error_code can_attach(state&, Ctr&) { return {}; })
CONTAINERS_TEST_PAIR(overloads_wrong, void fork(state&, C&, pid_t) noexcept {} void fork(int) noexcept {})
CONTAINERS_TEST_PAIR(static_wrong, static int create(state&, C&) { return 0; })
CONTAINERS_TEST_PAIR(data_member, int destroy = 0;)
CONTAINERS_TEST_PAIR(wrong_can_fork, bool can_fork(state&, C&, pid_t, pid_t) { return true; })
CONTAINERS_TEST_PAIR(wrong_cancel_fork, void cancel_fork(state&, C&, pid_t, pid_t) {})
#undef CONTAINERS_TEST_PAIR
struct inherited_wrong final : plain_wrong {};

// Private members: seen (and refused) in a class that is not final; a final class can hide them.
class private_hook : public base {
    void exit(state&, C&, pid_t) noexcept {}
};
class private_hook_final final : public base {
    void exit(state&, C&, pid_t) noexcept {}
};

struct no_state : subsystem_tag {
    [[maybe_unused]] static constexpr std::string_view name = "x";
};
struct throwing_state : base {
    struct state {
        ~state() noexcept(false) {}
    };
};

}  // namespace

TEST_CASE("a final class's hooks are found in every form that has the right signature", "[concepts][final]") {
    STATIC_REQUIRE(detail::names_exit<plain_ok, C>);
    STATIC_REQUIRE(HasExit<plain_ok, C>);
    STATIC_REQUIRE(detail::names_attach<template_ok, C>);
    STATIC_REQUIRE(SubsystemFor<template_ok, C>);
    STATIC_REQUIRE(detail::names_exit<overloads_ok, C>);
    STATIC_REQUIRE(SubsystemFor<overloads_ok, C>);
    STATIC_REQUIRE(detail::names_can_fork<static_ok, C>);
    STATIC_REQUIRE(SubsystemFor<static_ok, C>);
    STATIC_REQUIRE(detail::names_cancel_fork<inherited_ok, C>);
    STATIC_REQUIRE(SubsystemFor<inherited_ok, C>);
    // and nothing is found where there is nothing
    STATIC_REQUIRE_FALSE(detail::names_create<plain_ok, C>);
    STATIC_REQUIRE_FALSE(detail::names_fork<template_ok, C>);
}

TEST_CASE("a hook with a wrong signature is seen and refused, final or not", "[concepts][final]") {
    STATIC_REQUIRE(detail::names_exit<plain_wrong, C>);
    STATIC_REQUIRE(detail::names_exit<plain_wrong_final, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<plain_wrong, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<plain_wrong_final, C>);
    STATIC_REQUIRE(detail::names_attach<template_wrong_final, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<template_wrong, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<template_wrong_final, C>);
    STATIC_REQUIRE(detail::names_can_attach<template_wrong_arity_final, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<template_wrong_arity, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<template_wrong_arity_final, C>);
    STATIC_REQUIRE(detail::names_fork<overloads_wrong_final, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<overloads_wrong, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<overloads_wrong_final, C>);
    STATIC_REQUIRE(detail::names_create<static_wrong_final, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<static_wrong, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<static_wrong_final, C>);
    STATIC_REQUIRE(detail::names_destroy<data_member_final, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<data_member, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<data_member_final, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<wrong_can_fork, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<wrong_can_fork_final, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<wrong_cancel_fork, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<wrong_cancel_fork_final, C>);
    STATIC_REQUIRE(detail::names_exit<inherited_wrong, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<inherited_wrong, C>);
}

TEST_CASE("a private hook is refused where it can be seen; a final class can hide it", "[concepts][final]") {
    STATIC_REQUIRE(detail::names_exit<private_hook, C>);
    STATIC_REQUIRE_FALSE(SubsystemFor<private_hook, C>);
    // The documented limit: without deriving, a private member is invisible. It is never called
    // either (the library cannot reach it), so the subsystem behaves as written without it.
    STATIC_REQUIRE_FALSE(detail::names_exit<private_hook_final, C>);
}

TEST_CASE("each rule of Subsystem is a concept of its own", "[concepts]") {
    STATIC_REQUIRE_FALSE(detail::declares_state<no_state>);
    STATIC_REQUIRE_FALSE(detail::state_default_initializable<no_state>);
    STATIC_REQUIRE_FALSE(detail::state_nothrow_destructible<throwing_state>);
    STATIC_REQUIRE_FALSE(Subsystem<throwing_state>);
    STATIC_REQUIRE(detail::check_subsystem<base, C>());
}
