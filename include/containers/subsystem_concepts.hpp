// What a subsystem is, checked at compile time.
//
// A subsystem opts in by deriving from subsystem_tag, names itself (`static constexpr
// std::string_view name`), and declares its per-container state type (`using state = ...`). Every
// hook is optional; an absent hook is a no-op. A hook that is present must have exactly the
// signature below, or registration fails to compile with a sentence naming the hook: a typo never
// reads as "absent". In each signature `C` is the hierarchy's container type and `task_set<C>` a
// span of {id, from} entries, one per task that moves.
//
//   std::error_code create(state&, C&)                 may fail or throw; manage lock held
//   void destroy(state&, C&) noexcept                  manage lock held
//   std::error_code can_attach(state&, C&, task_set)   may fail or throw; manage lock held
//   void cancel_attach(state&, C&, task_set) noexcept  manage lock held
//   void attach(state&, C&, task_set) noexcept         manage and callback locks held
//   void post_attach(state&, C&, task_set) noexcept    manage lock held, callback lock dropped
//   std::error_code populate(state&, C&)               may fail or throw; manage lock held
//   void fork(state&, C&, id parent, id child) noexcept  manage and callback locks held
//   void exit(state&, C&, id task) noexcept            manage and callback locks held
//
// The state passed is the subsystem's state in the container passed (the destination, for the
// attach hooks). Hooks must not call the hierarchy's locking operations; they may read and
// navigate the tree, since the manage lock is held.
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

// "Does S declare a member called X, of any kind?" If it does, naming X in a class that derives
// from both S and a probe holding an X is ambiguous. This catches templates and overloads, which
// a signature check alone would read as absent.
#define CONTAINERS_DETAIL_NAMES_MEMBER(X)                                             \
    struct names_##X##_probe {                                                        \
        int X;                                                                        \
    };                                                                                \
    template <class S>                                                                \
    struct names_##X##_mixin : S, names_##X##_probe {};                               \
    template <class S>                                                                \
    concept names_##X = std::is_class_v<S> && !std::is_final_v<S> &&                 \
                        !requires { &names_##X##_mixin<S>::X; };

CONTAINERS_DETAIL_NAMES_MEMBER(create)
CONTAINERS_DETAIL_NAMES_MEMBER(destroy)
CONTAINERS_DETAIL_NAMES_MEMBER(can_attach)
CONTAINERS_DETAIL_NAMES_MEMBER(cancel_attach)
CONTAINERS_DETAIL_NAMES_MEMBER(attach)
CONTAINERS_DETAIL_NAMES_MEMBER(post_attach)
CONTAINERS_DETAIL_NAMES_MEMBER(populate)
CONTAINERS_DETAIL_NAMES_MEMBER(fork)
CONTAINERS_DETAIL_NAMES_MEMBER(exit)

#undef CONTAINERS_DETAIL_NAMES_MEMBER

}  // namespace detail

/// The opt-in and the two required members.
template <class S>
concept Subsystem = std::is_class_v<S> && std::derived_from<S, subsystem_tag> && requires {
    { S::name } -> std::convertible_to<std::string_view>;
    typename S::state;
} && std::default_initializable<typename S::state> && std::is_nothrow_destructible_v<typename S::state>;

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
    (!detail::names_create<S> || HasCreate<S, C>) &&
    (!detail::names_destroy<S> || HasDestroy<S, C>) &&
    (!detail::names_can_attach<S> || HasCanAttach<S, C>) &&
    (!detail::names_cancel_attach<S> || HasCancelAttach<S, C>) &&
    (!detail::names_attach<S> || HasAttach<S, C>) &&
    (!detail::names_post_attach<S> || HasPostAttach<S, C>) &&
    (!detail::names_populate<S> || HasPopulate<S, C>) &&
    (!detail::names_fork<S> || HasFork<S, C>) &&
    (!detail::names_exit<S> || HasExit<S, C>);

namespace detail {

/// Registration calls this so that a bad hook is reported as a sentence, hook by hook.
template <class S, class C>
constexpr bool check_subsystem() {
    static_assert(std::derived_from<S, subsystem_tag>,
                  "a subsystem must derive from containers::subsystem_tag");
    static_assert(requires { { S::name } -> std::convertible_to<std::string_view>; },
                  "a subsystem needs `static constexpr std::string_view name`");
    static_assert(requires { typename S::state; }, "a subsystem needs `using state = ...`");
    static_assert(!names_create<S> || HasCreate<S, C>,
                  "S::create must be std::error_code(S::state&, container&)");
    static_assert(!names_destroy<S> || HasDestroy<S, C>,
                  "S::destroy must be void(S::state&, container&) noexcept");
    static_assert(!names_can_attach<S> || HasCanAttach<S, C>,
                  "S::can_attach must be std::error_code(S::state&, container&, task_set<container>)");
    static_assert(!names_cancel_attach<S> || HasCancelAttach<S, C>,
                  "S::cancel_attach must be void(S::state&, container&, task_set<container>) noexcept");
    static_assert(!names_attach<S> || HasAttach<S, C>,
                  "S::attach must be void(S::state&, container&, task_set<container>) noexcept");
    static_assert(!names_post_attach<S> || HasPostAttach<S, C>,
                  "S::post_attach must be void(S::state&, container&, task_set<container>) noexcept");
    static_assert(!names_populate<S> || HasPopulate<S, C>,
                  "S::populate must be std::error_code(S::state&, container&)");
    static_assert(!names_fork<S> || HasFork<S, C>,
                  "S::fork must be void(S::state&, container&, id_type parent, id_type child) noexcept");
    static_assert(!names_exit<S> || HasExit<S, C>,
                  "S::exit must be void(S::state&, container&, id_type task) noexcept");
    return true;
}

}  // namespace detail
}  // namespace containers
