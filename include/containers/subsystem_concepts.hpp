// What a subsystem is, checked at compile time.
//
// A subsystem opts in by deriving from subsystem_tag, names itself (`static constexpr
// std::string_view name`), and declares its per-container state type (`using state = ...`,
// default-initializable, with a noexcept destructor). Every hook is optional; an absent hook is a
// no-op. A hook that is present must have exactly the signature below, or registration fails to
// compile with a sentence naming the hook: a typo never reads as "absent". In each signature `C`
// is the hierarchy's container type, `task_set<C>` a span of {id, from} entries, one per task that
// moves, and `id` the hierarchy's id_type. "manage", "callback": the lock held when the hook runs.
//
//   std::error_code create(state&, C&)                   may fail or throw; manage lock held
//   void destroy(state&, C&) noexcept                    manage lock held
//   std::error_code can_attach(state&, C&, task_set)     may fail or throw; manage lock held
//   void cancel_attach(state&, C&, task_set) noexcept    manage lock held
//   void attach(state&, C&, task_set) noexcept           manage and callback locks held
//   void post_attach(state&, C&, task_set) noexcept      manage lock held, callback lock dropped
//   std::error_code populate(state&, C&)                 may fail or throw; manage lock held
//   std::error_code can_fork(state&, C&, id parent, id child)
//                                                        may fail or throw; manage lock held
//   void cancel_fork(state&, C&, id parent, id child) noexcept   manage lock held
//   void fork(state&, C&, id parent, id child) noexcept  manage and callback locks held
//   void exit(state&, C&, id task) noexcept              manage and callback locks held
//
// The state passed is the subsystem's state in the container passed (the destination, for the
// attach hooks; the container the child joins, for the fork hooks). Hooks must not call the
// hierarchy's locking operations; they may read and navigate the tree, since the manage lock is
// held. A throw from a fallible hook is a failure like a returned error (detail/errors.hpp).
//
// How a hook is found. For a class that is not final, a member of the hook's name of any kind
// (function, template, overload set, static or data member, private, inherited) counts as the
// hook, and must then have the hook's signature. A final class cannot be derived from to look
// names up, so there the name counts when `&S::X` is valid (one public member function, static
// function or data member), or when S's X can be called with the hook's arguments, or with 0 to 5
// arguments of any type (templates and overload sets, with a wrong signature too). What a final
// class can still hide: a private or protected X, and an X that no call of up to 5 arguments
// reaches (a template whose parameters cannot be deduced).
//
// Every rule has a sentence: registration, and detail::check_subsystem<S, C>() for generic code of
// one's own, fail with `static assertion failed: <the rule>` and no cascade of further errors.
#pragma once

#include <concepts>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace containers {

/// Base that a subsystem derives from to say that it is one.
struct subsystem_tag {};

/// One task of an attach: its id and the container it leaves.
template <class C>
struct task_move {
    typename C::id_type id;
    C* from;
};

/// The tasks of one attach operation, all moving into the same container.
template <class C>
using task_set = std::span<task_move<C> const>;

namespace detail {

// A type that is not there: what state_t<S> names for a type without `state`, so that code
// naming the state of a bad subsystem fails at the rule's sentence, not at every mention.
struct no_state_declared;
template <class S>
struct state_type {
    using type = no_state_declared;
};
template <class S>
    requires requires { typename S::state; }
struct state_type<S> {
    using type = typename S::state;
};

// An argument of any type: converts to an lvalue of whatever a parameter asks for, and deduces
// as itself for a template parameter. For call probes only (never evaluated).
struct any_arg {
    template <class T>
    operator T&() const noexcept;
};

// "Does S name a member X, of any kind?" See the header comment. Not final: naming X in a class
// that derives from both S and a probe holding an X is ambiguous exactly when S has an X.
// Final: `&S::X`, then a call with the hook's own arguments (`A...`), then calls of 0 to 5
// arguments of any type; the disjunction stops at the first that holds.
#define CONTAINERS_DETAIL_NAMES_MEMBER(X, ...)                                                      \
    struct names_##X##_probe {                                                                      \
        int X;                                                                                      \
    };                                                                                              \
    template <class S>                                                                              \
    struct names_##X##_mixin : S, names_##X##_probe {};                                             \
    template <class S, class... A>                                                                  \
    concept calls_##X##_with = requires(S& s, A&... a) { s.X(a...); };                             \
    template <class S>                                                                              \
    concept derived_names_##X = std::is_class_v<S> && !std::is_final_v<S> &&                       \
                                !requires { &names_##X##_mixin<S>::X; };                            \
    template <class S, class C>                                                                     \
    concept final_names_##X = std::is_class_v<S> && std::is_final_v<S> &&                          \
        (requires { &S::X; } || calls_##X##_with<S, __VA_ARGS__> || calls_##X##_with<S> ||          \
         calls_##X##_with<S, any_arg> || calls_##X##_with<S, any_arg, any_arg> ||                   \
         calls_##X##_with<S, any_arg, any_arg, any_arg> ||                                          \
         calls_##X##_with<S, any_arg, any_arg, any_arg, any_arg> ||                                 \
         calls_##X##_with<S, any_arg, any_arg, any_arg, any_arg, any_arg>);                         \
    template <class S, class C>                                                                     \
    concept names_##X = derived_names_##X<S> || final_names_##X<S, C>;

#define CONTAINERS_DETAIL_STATE typename state_type<S>::type, C
#define CONTAINERS_DETAIL_TASKS typename state_type<S>::type, C, task_set<C> const
#define CONTAINERS_DETAIL_ID typename state_type<S>::type, C, typename C::id_type
#define CONTAINERS_DETAIL_IDS typename state_type<S>::type, C, typename C::id_type, typename C::id_type
CONTAINERS_DETAIL_NAMES_MEMBER(create, CONTAINERS_DETAIL_STATE)
CONTAINERS_DETAIL_NAMES_MEMBER(destroy, CONTAINERS_DETAIL_STATE)
CONTAINERS_DETAIL_NAMES_MEMBER(can_attach, CONTAINERS_DETAIL_TASKS)
CONTAINERS_DETAIL_NAMES_MEMBER(cancel_attach, CONTAINERS_DETAIL_TASKS)
CONTAINERS_DETAIL_NAMES_MEMBER(attach, CONTAINERS_DETAIL_TASKS)
CONTAINERS_DETAIL_NAMES_MEMBER(post_attach, CONTAINERS_DETAIL_TASKS)
CONTAINERS_DETAIL_NAMES_MEMBER(populate, CONTAINERS_DETAIL_STATE)
CONTAINERS_DETAIL_NAMES_MEMBER(can_fork, CONTAINERS_DETAIL_IDS)
CONTAINERS_DETAIL_NAMES_MEMBER(cancel_fork, CONTAINERS_DETAIL_IDS)
CONTAINERS_DETAIL_NAMES_MEMBER(fork, CONTAINERS_DETAIL_IDS)
CONTAINERS_DETAIL_NAMES_MEMBER(exit, CONTAINERS_DETAIL_ID)
#undef CONTAINERS_DETAIL_STATE
#undef CONTAINERS_DETAIL_TASKS
#undef CONTAINERS_DETAIL_ID
#undef CONTAINERS_DETAIL_IDS
#undef CONTAINERS_DETAIL_NAMES_MEMBER

// The rules of Subsystem, one concept each, each safe to ask of any type (a rule about the state
// is false, not an error, when there is no state), so that each failure has its own sentence.
template <class S>
concept opts_in = std::is_class_v<S> && std::derived_from<S, subsystem_tag>;
template <class S>
concept declares_name = requires {
    { S::name } -> std::convertible_to<std::string_view>;
};
template <class S>
concept declares_state = requires { typename S::state; };
template <class S>
concept state_default_initializable = declares_state<S> && std::default_initializable<typename S::state>;
template <class S>
concept state_nothrow_destructible = declares_state<S> && std::is_nothrow_destructible_v<typename S::state>;

}  // namespace detail

/// The state type of S (S::state); for a type without one, an incomplete placeholder.
template <class S>
using state_t = typename detail::state_type<S>::type;

/// The opt-in and the required members.
template <class S>
concept Subsystem = detail::opts_in<S> && detail::declares_name<S> && detail::declares_state<S> &&
                    detail::state_default_initializable<S> && detail::state_nothrow_destructible<S>;

// One named concept per hook: "S has the hook, with the right signature".
template <class S, class C>
concept HasCreate = requires(S& s, typename S::state& st, C& c) {
    { s.create(st, c) } -> std::same_as<std::error_code>;
};
template <class S, class C>
concept HasDestroy = requires(S& s, typename S::state& st, C& c) {
    { s.destroy(st, c) } noexcept -> std::same_as<void>;
};
template <class S, class C>
concept HasCanAttach = requires(S& s, typename S::state& st, C& c, task_set<C> t) {
    { s.can_attach(st, c, t) } -> std::same_as<std::error_code>;
};
template <class S, class C>
concept HasCancelAttach = requires(S& s, typename S::state& st, C& c, task_set<C> t) {
    { s.cancel_attach(st, c, t) } noexcept -> std::same_as<void>;
};
template <class S, class C>
concept HasAttach = requires(S& s, typename S::state& st, C& c, task_set<C> t) {
    { s.attach(st, c, t) } noexcept -> std::same_as<void>;
};
template <class S, class C>
concept HasPostAttach = requires(S& s, typename S::state& st, C& c, task_set<C> t) {
    { s.post_attach(st, c, t) } noexcept -> std::same_as<void>;
};
template <class S, class C>
concept HasPopulate = requires(S& s, typename S::state& st, C& c) {
    { s.populate(st, c) } -> std::same_as<std::error_code>;
};
template <class S, class C>
concept HasCanFork = requires(S& s, typename S::state& st, C& c, typename C::id_type id) {
    { s.can_fork(st, c, id, id) } -> std::same_as<std::error_code>;
};
template <class S, class C>
concept HasCancelFork = requires(S& s, typename S::state& st, C& c, typename C::id_type id) {
    { s.cancel_fork(st, c, id, id) } noexcept -> std::same_as<void>;
};
template <class S, class C>
concept HasFork = requires(S& s, typename S::state& st, C& c, typename C::id_type id) {
    { s.fork(st, c, id, id) } noexcept -> std::same_as<void>;
};
template <class S, class C>
concept HasExit = requires(S& s, typename S::state& st, C& c, typename C::id_type id) {
    { s.exit(st, c, id) } noexcept -> std::same_as<void>;
};

/// A subsystem whose every present hook fits containers of type C.
template <class S, class C>
concept SubsystemFor = Subsystem<S> &&
    (!detail::names_create<S, C> || HasCreate<S, C>) &&
    (!detail::names_destroy<S, C> || HasDestroy<S, C>) &&
    (!detail::names_can_attach<S, C> || HasCanAttach<S, C>) &&
    (!detail::names_cancel_attach<S, C> || HasCancelAttach<S, C>) &&
    (!detail::names_attach<S, C> || HasAttach<S, C>) &&
    (!detail::names_post_attach<S, C> || HasPostAttach<S, C>) &&
    (!detail::names_populate<S, C> || HasPopulate<S, C>) &&
    (!detail::names_can_fork<S, C> || HasCanFork<S, C>) &&
    (!detail::names_cancel_fork<S, C> || HasCancelFork<S, C>) &&
    (!detail::names_fork<S, C> || HasFork<S, C>) &&
    (!detail::names_exit<S, C> || HasExit<S, C>);

namespace detail {

// A rule's truth as a plain value: a static_assert on it prints the sentence alone, without the
// compiler's explanation of the concept.
template <bool B>
inline constexpr bool rule = B;

/// SubsystemFor<S, C>, rule by rule: each broken rule is a static_assert with its sentence, and
/// the result is false (for `if constexpr`, so that nothing further is instantiated). Hook rules
/// are checked only once the required members are right, so that one mistake is one sentence.
/// Registration calls it; generic code of one's own may `static_assert(check_subsystem<S, C>())`.
template <class S, class C>
constexpr bool check_subsystem() {
    static_assert(rule<opts_in<S>>, "a subsystem must be a class deriving from containers::subsystem_tag");
    static_assert(rule<declares_name<S>>, "a subsystem needs `static constexpr std::string_view name`");
    static_assert(rule<declares_state<S>>, "a subsystem needs `using state = ...` (its per-container state type)");
    static_assert(rule<!declares_state<S> || state_nothrow_destructible<S>>, "S::state's destructor must be noexcept");
    // (std::default_initializable includes a noexcept destructor: one sentence for one mistake.)
    static_assert(rule<!state_nothrow_destructible<S> || state_default_initializable<S>>,
                  "S::state must be default-initializable");
    if constexpr (!Subsystem<S>) {
        return false;
    } else {
        static_assert(rule<!names_create<S, C> || HasCreate<S, C>>,
                      "S::create must be std::error_code(S::state&, container&)");
        static_assert(rule<!names_destroy<S, C> || HasDestroy<S, C>>,
                      "S::destroy must be void(S::state&, container&) noexcept");
        static_assert(rule<!names_can_attach<S, C> || HasCanAttach<S, C>>,
                      "S::can_attach must be std::error_code(S::state&, container&, task_set<container>)");
        static_assert(rule<!names_cancel_attach<S, C> || HasCancelAttach<S, C>>,
                      "S::cancel_attach must be void(S::state&, container&, task_set<container>) noexcept");
        static_assert(rule<!names_attach<S, C> || HasAttach<S, C>>,
                      "S::attach must be void(S::state&, container&, task_set<container>) noexcept");
        static_assert(rule<!names_post_attach<S, C> || HasPostAttach<S, C>>,
                      "S::post_attach must be void(S::state&, container&, task_set<container>) noexcept");
        static_assert(rule<!names_populate<S, C> || HasPopulate<S, C>>,
                      "S::populate must be std::error_code(S::state&, container&)");
        static_assert(rule<!names_can_fork<S, C> || HasCanFork<S, C>>,
                      "S::can_fork must be std::error_code(S::state&, container&, id_type parent, id_type child)");
        static_assert(rule<!names_cancel_fork<S, C> || HasCancelFork<S, C>>,
                      "S::cancel_fork must be void(S::state&, container&, id_type parent, id_type child) noexcept");
        static_assert(rule<!names_fork<S, C> || HasFork<S, C>>,
                      "S::fork must be void(S::state&, container&, id_type parent, id_type child) noexcept");
        static_assert(rule<!names_exit<S, C> || HasExit<S, C>>,
                      "S::exit must be void(S::state&, container&, id_type task) noexcept");
        return SubsystemFor<S, C>;
    }
}

}  // namespace detail
}  // namespace containers
