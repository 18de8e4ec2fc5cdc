// range-v3 views over a hierarchy: children, descendants (pre-order), ancestors and tasks.
//
// The views walk intrusive links, so they are valid while those links do not change: hold the
// hierarchy's manage lock (debug builds assert it; ancestors need none, since parents are
// immutable). Descendants are
// walked without recursion or an explicit stack (first child, else next sibling, else the next
// sibling of the nearest ancestor that has one), so any depth works. This is the only header that
// includes range-v3.
#pragma once

#include <cassert>
#include <cstddef>
#include <iterator>

#include <range/v3/view/facade.hpp>
#include <range/v3/view/subrange.hpp>
#include <range/v3/view/transform.hpp>

#include "container.hpp"

namespace containers {

namespace detail {
struct tree_access {
    template <class C>
    static auto& children(C& c) noexcept { return c.children_; }
    template <class C>
    static auto& tasks(C& c) noexcept { return c.tasks_; }
    // The next container after `c` in a pre-order walk of the subtree rooted at `root`.
    template <class C>
    static C* next_preorder(C* c, C const* root) noexcept {
        if (!c->children_.empty()) return &*c->children_.begin();
        return next_skipping_children(c, root);
    }
    // The same, but without entering `c`'s own subtree.
    template <class C>
    static C* next_skipping_children(C* c, C const* root) noexcept {
        while (c != root) {
            C* parent = c->parent();
            auto it = parent->children_.iterator_to(*c);
            if (++it != parent->children_.end()) return &*it;
            c = parent;
        }
        return nullptr;
    }
};

template <class C>
class descendants_view : public ranges::view_facade<descendants_view<C>, ranges::unknown> {
    friend ranges::range_access;
    C* root_ = nullptr;
    bool include_root_ = false;

    struct cursor {
        C* cur = nullptr;
        C const* root = nullptr;
        C& read() const noexcept { return *cur; }
        void next() noexcept { cur = tree_access::next_preorder(cur, root); }
        bool equal(ranges::default_sentinel_t) const noexcept { return cur == nullptr; }
        bool equal(cursor const& o) const noexcept { return cur == o.cur; }
    };
    cursor begin_cursor() const noexcept {
        cursor c{root_, root_};
        if (!include_root_) c.next();
        return c;
    }

public:
    descendants_view() = default;
    descendants_view(C& root, bool include_root) noexcept : root_(&root), include_root_(include_root) {}
};

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
    return detail::descendants_view<C>(c, false);
}

/// `c` itself, then every container below it, in pre-order.
template <class C>
[[nodiscard]] auto subtree(C& c) noexcept {
    assert(c.owner().manage_lock_held() && "containers: views need the manage lock");
    return detail::descendants_view<C>(c, true);
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
