// The nodes of a hierarchy: containers and the task records that sit in them.
//
// A container is a node of the tree: immutable identity (parent, name, depth), intrusive links to
// its children (an ordered set, so that lookup by name is logarithmic) and to its tasks, and one
// type-erased state slot per subsystem. A task record names one task and points at its container.
// Both are created and linked by the hierarchy; users hold references, never ownership.
//
// Protection of each field is stated beside it. "manage lock" is the hierarchy's manage lock;
// fields read on the lock-free path are atomics, stored under the callback lock.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <string_view>
#include <utility>

#include <memory>
#include <vector>

#include <boost/intrusive/list.hpp>
#include <boost/intrusive/set.hpp>

#include "cftype.hpp"
#include "detail/rcu.hpp"
#include "task_traits.hpp"

namespace containers {

template <TaskTraits Traits, std::size_t Slots>
class hierarchy;

namespace detail {
struct tree_access;
// The last container serial handed out (basic_container::serial), for every hierarchy.
inline std::atomic<std::uint64_t> container_serials{0};
#ifdef NDEBUG
using link_mode = boost::intrusive::link_mode<boost::intrusive::normal_link>;
#else
using link_mode = boost::intrusive::link_mode<boost::intrusive::safe_link>;
#endif
}  // namespace detail

template <TaskTraits Traits, std::size_t Slots>
class basic_container;
template <class S, class H>
class subsystem_handle;

/// One task as the hierarchy knows it.
template <TaskTraits Traits, std::size_t Slots>
class basic_task : private detail::retired_node {  // the node is used once, after exit
public:
    using id_type = typename Traits::id_type;
    using container_type = basic_container<Traits, Slots>;
    using identity_type = task_identity_t<Traits>;

    id_type const id;  // immutable

    /// What names this very task (task_traits.hpp), recorded when the hierarchy first met the
    /// task; empty for a thread that attached itself. Immutable.
    [[nodiscard]] identity_type const& identity() const noexcept { return identity_; }

    /// Whether this record still names a live task, the one it was made for: false once the task
    /// has exited (a zombie included) or its id names another task now. A thread bound to its
    /// record is alive (it leaves when it exits). Subsystems check it right before a system call
    /// on the task, so that a reused id never makes them act on an unrelated one.
    /// Locking: the manage lock held. Complexity: no system call for a bound thread; otherwise
    /// the traits' check (thread_task_traits: one poll(2) on the pidfd its identity holds, a few
    /// calls where it holds none; see thread_task_traits::alive).
    [[nodiscard]] bool alive() const noexcept {
        if (bound_) return true;
        if constexpr (HasTaskIdentity<Traits>) {
            return Traits::alive(id, identity_);
        } else {
            return Traits::alive(id);
        }
    }

    /// The task's container. Lock-free; the result stays valid inside a read section.
    [[nodiscard]] container_type& container() const noexcept { return *container_.load(std::memory_order_acquire); }

    basic_task(basic_task const&) = delete;
    basic_task& operator=(basic_task const&) = delete;

private:
    friend class hierarchy<Traits, Slots>;
    friend class basic_container<Traits, Slots>;
    friend struct detail::tree_access;

    basic_task(id_type i, container_type* c, identity_type k = {}) noexcept : id(i), container_(c), identity_(std::move(k)) {}
    ~basic_task() = default;

    std::atomic<container_type*> container_;                       // read lock-free; stored under the callback lock
    boost::intrusive::list_member_hook<detail::link_mode> node_;  // in container()->tasks_; manage lock
    bool bound_ = false;                                           // bound to its thread's TLS; manage lock
    std::atomic<void*>* tls_container_ = nullptr;                  // its thread's cached container cell, if
                                                                   // bound in the fast cache; manage lock
    [[no_unique_address]] identity_type identity_;                 // immutable; released with the record
};

/// A node of the hierarchy.
template <TaskTraits Traits, std::size_t Slots>
class basic_container : private detail::retired_node {  // the node is used once, after removal
public:
    using id_type = typename Traits::id_type;
    using task_type = basic_task<Traits, Slots>;
    using hierarchy_type = hierarchy<Traits, Slots>;

    /// The parent, or nullptr for the top container. Immutable.
    [[nodiscard]] basic_container* parent() const noexcept { return parent_; }
    /// The name; empty for the top container. Immutable.
    [[nodiscard]] std::string_view name() const noexcept { return {reinterpret_cast<char const*>(this + 1), name_size_}; }
    /// 0 for the top container. Immutable.
    [[nodiscard]] std::size_t depth() const noexcept { return depth_; }
    [[nodiscard]] bool is_top() const noexcept { return parent_ == nullptr; }
    /// True once removed; a removed container stays readable until no reader can see it.
    [[nodiscard]] bool removed() const noexcept { return removed_.load(std::memory_order_acquire); }
    [[nodiscard]] bool notify_on_release() const noexcept { return notify_on_release_.load(std::memory_order_relaxed); }
    /// cgroup.clone_children: a subsystem's create hook copies its parent's configuration into a
    /// new child when the parent has this set (cpuset copies cpus and mems).
    [[nodiscard]] bool clone_children() const noexcept { return clone_children_.load(std::memory_order_relaxed); }
    /// The files that subsystems added to this container in populate (core files not included).
    /// Set before the container is visible; immutable afterwards.
    [[nodiscard]] std::span<cftype<basic_container> const* const> added_files() const noexcept {
        if (!files_) return {};
        return {files_->data(), files_->size()};
    }
    /// The hierarchy this container belongs to. Immutable.
    [[nodiscard]] hierarchy_type& owner() const noexcept { return *owner_; }
    /// A number that no other container of this process has had or will have (its address may be
    /// reused once it is freed; this is not): for keeping facts about a container outside it, as
    /// containers::fuse keeps chmod's modes. Immutable.
    [[nodiscard]] std::uint64_t serial() const noexcept { return serial_; }

    /// Counts; manage lock held (or a quiescent hierarchy).
    [[nodiscard]] std::size_t task_count() const noexcept { return tasks_.size(); }
    [[nodiscard]] std::size_t child_count() const noexcept { return children_.size(); }

    basic_container(basic_container const&) = delete;
    basic_container& operator=(basic_container const&) = delete;

private:
    friend class hierarchy<Traits, Slots>;
    friend struct detail::tree_access;
    template <class S, class H>
    friend class subsystem_handle;

    struct by_name {
        bool operator()(basic_container const& a, basic_container const& b) const noexcept { return a.name() < b.name(); }
        bool operator()(std::string_view a, basic_container const& b) const noexcept { return a < b.name(); }
        bool operator()(basic_container const& a, std::string_view b) const noexcept { return a.name() < b; }
    };
    using sibling_hook = boost::intrusive::set_member_hook<detail::link_mode>;
    sibling_hook sibling_;  // in parent_->children_; manage lock

    using children_set = boost::intrusive::set<
        basic_container, boost::intrusive::member_hook<basic_container, sibling_hook, &basic_container::sibling_>,
        boost::intrusive::compare<by_name>, boost::intrusive::constant_time_size<true>>;
    using task_list = boost::intrusive::list<
        task_type, boost::intrusive::member_hook<task_type, boost::intrusive::list_member_hook<detail::link_mode>, &task_type::node_>,
        boost::intrusive::constant_time_size<true>>;

    basic_container(hierarchy_type* owner, basic_container* parent, std::string_view name) noexcept
        : owner_(owner),
          parent_(parent),
          depth_(parent == nullptr ? 0 : parent->depth_ + 1),
          name_size_(name.size()),
          serial_(detail::container_serials.fetch_add(1, std::memory_order_relaxed) + 1) {
        if (!name.empty()) std::memcpy(reinterpret_cast<char*>(this + 1), name.data(), name.size());
        if (parent != nullptr) {
            notify_on_release_.store(parent->notify_on_release(), std::memory_order_relaxed);
            clone_children_.store(parent->clone_children(), std::memory_order_relaxed);
        }
    }
    ~basic_container() = default;

    /// The name is stored right after the object, so that a container is one allocation.
    static basic_container* make(hierarchy_type* owner, basic_container* parent, std::string_view name) noexcept {
        void* raw = ::operator new(sizeof(basic_container) + name.size(), std::align_val_t{alignof(basic_container)}, std::nothrow);
        return raw == nullptr ? nullptr : new (raw) basic_container(owner, parent, name);
    }
    static void free(basic_container* c) noexcept {
        c->~basic_container();
        ::operator delete(static_cast<void*>(c), std::align_val_t{alignof(basic_container)});
    }

    hierarchy_type* const owner_;                          // immutable
    basic_container* const parent_;                        // immutable
    std::size_t const depth_;                              // immutable
    std::size_t const name_size_;                          // immutable; the bytes follow the object
    std::uint64_t const serial_;                           // immutable
    std::atomic<bool> removed_{false};                     // stored under the callback lock
    std::atomic<bool> notify_on_release_{false};           // stored under the manage lock
    std::atomic<bool> clone_children_{false};              // stored under the manage lock
    std::unique_ptr<std::vector<cftype<basic_container> const*>> files_;  // see added_files()
    children_set children_;                                // manage lock
    task_list tasks_;                                      // manage lock
    std::array<std::atomic<void*>, Slots> states_{};       // set before the container is visible (the
                                                           // top's: at registration); freed after a grace period
};

}  // namespace containers
