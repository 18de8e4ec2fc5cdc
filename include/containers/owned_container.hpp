// An owning handle for a container: the container goes when the handle goes.
//
// The hierarchy's own API hands out `container*`, which the tree owns and which stays until
// someone calls rmdir. Code that makes a group for the length of a job (a request, a test, a
// pool's lifetime) wants the group removed on every way out of its scope, including early
// returns; owned_container<H> is that: made by create() (mkdir), movable, not copyable, and its
// destructor removes the container, after moving the container's tasks to the parent when the
// policy says so. Removal can fail (children left, tasks left, a veto): the destructor cannot
// report it and leaves the container in the tree; remove() reports it and keeps ownership.
//
// Rules: the handle must not outlive its hierarchy, and while a handle owns a container nobody
// else may remove it (rmdir, fs::rmdir): the handle would be left holding freed memory. To give
// the container back to the raw API, call release().
#pragma once

#include <string_view>
#include <system_error>
#include <utility>

namespace containers {

/// What an owned container does with its tasks when it is removed.
enum class removal {
    /// As rmdir: a container that still has tasks is not removed (EBUSY).
    require_empty,
    /// The tasks move to the parent first (an attach, with its hooks and vetoes), in the same
    /// step as the removal (hierarchy::rmdir_moving_tasks).
    move_tasks_to_parent,
};

template <class H>
class owned_container {
public:
    using hierarchy_type = H;
    using container = typename H::container;

    /// An empty handle: owns nothing.
    owned_container() noexcept = default;

    /// Effects: creates the child `name` of `parent` (hierarchy::mkdir) and makes `out` own it,
    ///   removed with `policy` when `out` goes. What `out` owned before is removed first as its
    ///   destructor would (only once the creation has succeeded).
    /// Errors: those of mkdir (ENOENT, EEXIST, EINVAL, ENAMETOOLONG, ENOMEM, a create hook's
    ///   error); `out` is then unchanged.
    /// Locking: takes the manage lock (mkdir), then that of removal for what `out` owned.
    [[nodiscard]] static std::error_code create(H& h, container& parent, std::string_view name, owned_container& out,
                                                removal policy = removal::require_empty) noexcept {
        container* c = nullptr;
        if (std::error_code ec = h.mkdir(parent, name, &c)) return ec;
        out = owned_container(c, policy);
        return {};
    }

    owned_container(owned_container const&) = delete;
    owned_container& operator=(owned_container const&) = delete;
    owned_container(owned_container&& o) noexcept : c_(std::exchange(o.c_, nullptr)), policy_(o.policy_) {}
    /// Removes what this handle owned (as the destructor does), then takes over `o`'s container.
    owned_container& operator=(owned_container&& o) noexcept {
        if (this != &o) {
            (void)remove();
            c_ = std::exchange(o.c_, nullptr);  // if removal failed, the container stays unowned
            policy_ = o.policy_;
        }
        return *this;
    }

    /// Effects: remove(); on failure the container stays in the tree, unowned, as after
    ///   release(), and the error is dropped: with removal::require_empty, a container with tasks
    ///   or children stays with them; with removal::move_tasks_to_parent, a container with
    ///   children stays with its tasks, and a veto of the move (a can_attach of the parent)
    ///   leaves every task where it was and the container too; ENOMEM likewise. The hierarchy
    ///   then owns it as any container (rmdir, path lookups, its own destruction).
    /// Locking: takes the manage lock; must not be destroyed while holding it, or in a hook.
    ~owned_container() { (void)remove(); }

    /// Effects: removes the container (rmdir, or rmdir_moving_tasks with
    ///   removal::move_tasks_to_parent); on success the handle is empty. On failure nothing
    ///   changes and the handle still owns the container, so the caller may fix the cause and
    ///   call again, or release() it. An empty handle: nothing to do, no error.
    /// Errors: EBUSY (children remain; with require_empty, tasks too), ENOMEM, a can_attach veto
    ///   (move_tasks_to_parent).
    /// Locking: takes the manage lock, and the callback lock to move tasks and to unlink.
    [[nodiscard]] std::error_code remove() noexcept {
        if (c_ == nullptr) return {};
        H& h = c_->owner();
        std::error_code const ec = policy_ == removal::move_tasks_to_parent ? h.rmdir_moving_tasks(*c_) : h.rmdir(*c_);
        if (!ec) c_ = nullptr;
        return ec;
    }

    /// Gives the container back to the raw API: the handle is empty and removes nothing.
    [[nodiscard]] container* release() noexcept { return std::exchange(c_, nullptr); }

    [[nodiscard]] container* get() const noexcept { return c_; }
    [[nodiscard]] container& operator*() const noexcept { return *c_; }
    [[nodiscard]] container* operator->() const noexcept { return c_; }
    [[nodiscard]] explicit operator bool() const noexcept { return c_ != nullptr; }
    [[nodiscard]] removal policy() const noexcept { return policy_; }
    /// Changes what removal does with the tasks.
    void set_policy(removal p) noexcept { policy_ = p; }

private:
    owned_container(container* c, removal p) noexcept : c_(c), policy_(p) {}
    container* c_ = nullptr;                          // owned: removed by remove() and the destructor
    removal policy_ = removal::require_empty;
};

}  // namespace containers
