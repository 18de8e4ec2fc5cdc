// Walking the tree without range-v3: a container's children and tasks as its intrusive
// containers, and a pre-order walk of a subtree as a plain forward range. The library's own
// headers use these, so that range-v3 is compiled only by programs that include views.hpp.
//
// Like the views, these are valid while the links they follow do not change: hold the manage lock.
#pragma once

#include <cstddef>
#include <iterator>

#include "../container.hpp"

namespace containers::detail {

struct tree_access {
    template <class C>
    static auto& children(C& c) noexcept { return c.children_; }
    template <class C>
    static auto& tasks(C& c) noexcept { return c.tasks_; }
    // The next container after `c` in a pre-order walk of the subtree rooted at `root`:
    // first child, else next sibling, else the next sibling of the nearest ancestor that has one.
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

/// The containers of a subtree in pre-order (parents before children, siblings in name order),
/// its root first or not. No recursion and no stack: any depth works.
template <class C>
class subtree_walk {
public:
    class iterator {
    public:
        using iterator_concept = std::forward_iterator_tag;
        using iterator_category = std::forward_iterator_tag;
        using value_type = C;
        using difference_type = std::ptrdiff_t;
        using pointer = C*;
        using reference = C&;

        iterator() = default;
        iterator(C* cur, C const* root) noexcept : cur_(cur), root_(root) {}
        C& operator*() const noexcept { return *cur_; }
        C* operator->() const noexcept { return cur_; }
        iterator& operator++() noexcept {
            cur_ = tree_access::next_preorder(cur_, root_);
            return *this;
        }
        iterator operator++(int) noexcept {
            iterator old = *this;
            ++*this;
            return old;
        }
        friend bool operator==(iterator const& a, iterator const& b) noexcept { return a.cur_ == b.cur_; }

    private:
        C* cur_ = nullptr;
        C const* root_ = nullptr;
    };

    subtree_walk() = default;
    subtree_walk(C& root, bool include_root) noexcept : root_(&root), include_root_(include_root) {}
    [[nodiscard]] iterator begin() const noexcept {
        iterator it(root_, root_);
        if (!include_root_) ++it;
        return it;
    }
    [[nodiscard]] iterator end() const noexcept { return {}; }

private:
    C* root_ = nullptr;
    bool include_root_ = false;
};

}  // namespace containers::detail
