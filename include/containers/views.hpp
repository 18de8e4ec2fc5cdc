// range-v3 views over a hierarchy: children, descendants (pre-order), ancestors and tasks.
//
// The views walk intrusive links, so they are valid while those links do not change: hold the
// hierarchy's manage lock (debug builds assert it; ancestors need none, since parents are
// immutable). Descendants are
// walked without recursion or an explicit stack (detail/tree_walk.hpp), so any depth works. This is
// the only header that includes range-v3, and the umbrella header does not include it: a program
// that wants the views includes <containers/views.hpp>.
#pragma once

#include <cassert>
#include <cstddef>
#include <iterator>

#include <range/v3/view/facade.hpp>
#include <range/v3/view/subrange.hpp>
#include <range/v3/view/transform.hpp>

#include "container.hpp"
#include "detail/tree_walk.hpp"

namespace containers {

namespace detail {
template <class C>
class ancestors_view : public ranges::view_facade<ancestors_view<C>, ranges::unknown> {
    friend ranges::range_access;
    C* first_ = nullptr;

    struct cursor {
        C* cur = nullptr;
        C& read() const noexcept { return *cur; }
        void next() noexcept { cur = cur->parent(); }
        bool equal(ranges::default_sentinel_t) const noexcept { return cur == nullptr; }
        bool equal(cursor const& o) const noexcept { return cur == o.cur; }
    };
    cursor begin_cursor() const noexcept { return {first_}; }

public:
    ancestors_view() = default;
    explicit ancestors_view(C& c) noexcept : first_(c.parent()) {}
};

template <class C>
[[nodiscard]] auto subtree_range(C& root, bool include_root) noexcept {
    subtree_walk<C> const w(root, include_root);
    return ranges::subrange(w.begin(), w.end());
}
}  // namespace detail

namespace views {

/// The children of `c`, in name order.
template <class C>
[[nodiscard]] auto children(C& c) noexcept {
    assert(c.owner().manage_lock_held() && "containers: views need the manage lock");
    auto& set = detail::tree_access::children(c);
    return ranges::subrange(set.begin(), set.end());
}

/// Every container below `c`, in pre-order (parents before children, siblings in name order).
template <class C>
[[nodiscard]] auto descendants(C& c) noexcept {
    assert(c.owner().manage_lock_held() && "containers: views need the manage lock");
    return detail::subtree_range(c, false);
}

/// `c` itself, then every container below it, in pre-order.
template <class C>
[[nodiscard]] auto subtree(C& c) noexcept {
    assert(c.owner().manage_lock_held() && "containers: views need the manage lock");
    return detail::subtree_range(c, true);
}

/// The parent of `c`, its parent, and so on up to the top container.
template <class C>
[[nodiscard]] auto ancestors(C& c) noexcept { return detail::ancestors_view<C>(c); }

/// The task records in `c`, in the order they joined it.
template <class C>
[[nodiscard]] auto tasks(C& c) noexcept {
    assert(c.owner().manage_lock_held() && "containers: views need the manage lock");
    auto& list = detail::tree_access::tasks(c);
    return ranges::subrange(list.begin(), list.end());
}

/// The ids of the tasks in `c`, in the order they joined it.
template <class C>
[[nodiscard]] auto task_ids(C& c) noexcept {
    return tasks(c) | ranges::views::transform([](auto const& t) { return t.id; });
}

}  // namespace views
}  // namespace containers
