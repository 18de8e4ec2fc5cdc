// A hierarchy of containers: the tree, its tasks, its subsystems and its locks.
//
// This is the user-space form of the 2006 "generic containers" patch. A hierarchy has a top
// container that always exists; children are created by name; every task is in exactly one
// container (a task the hierarchy has never been told about is in the top one). Subsystems are
// registered before the first child exists and get a slot in every container.
//
// Locking, as in the seed:
// - The manage lock is held around everything that changes the tree or membership: mkdir, rmdir,
//   attach, fork, exit, registration. Subsystem hooks run with it held and must not call back
//   into these operations (debug builds assert).
// - The callback lock nests inside the manage lock and is held at the moment of change: linking
//   and unlinking containers, moving tasks (the attach, fork and exit hooks run under it; the
//   fallible hooks and their undo hooks, create, destroy, populate, can_attach, cancel_attach,
//   post_attach, can_fork and cancel_fork, run under the manage lock alone). Code that only
//   needs a stable snapshot of what attach changes takes the callback lock alone.
// - The read path takes neither. current(), container_of() and task::container() load atomics
//   and, for a thread that attached itself, a thread-local pointer: they never block and write no
//   shared memory. Inside a read_section, a container so obtained stays valid even if the task
//   moves and the container is removed concurrently: removed containers and exited task records
//   are freed only after an RCU grace period (detail/rcu.hpp), outside both locks.
//
// Every fallible operation is noexcept and returns a std::error_code holding the errno value the
// kernel's cgroupfs returns for the same operation; a failed operation changes nothing.
#pragma once

#include <algorithm>
#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "container.hpp"
#include "detail/errors.hpp"
#include "detail/owned_mutex.hpp"
#include "detail/rcu.hpp"
#include "detail/release_agent.hpp"
#include "detail/task_table.hpp"
#include "detail/thread_binding.hpp"
#include "subsystem_concepts.hpp"
#include "task_traits.hpp"

namespace containers {

namespace detail {
template <class T>
inline constexpr char type_key_v = 0;
// Names that a core control file already holds in every container (and in the top one), so
// that mkdir refuses them with EEXIST as cgroupfs does.
inline constexpr std::string_view core_files[] = {"tasks", "cgroup.procs", "notify_on_release", "cgroup.clone_children"};
inline constexpr std::string_view top_files[] = {"release_agent", "cgroup.sane_behavior"};
}  // namespace detail

/// What registration returns: the subsystem's slot, and typed access to its state.
template <class S, class H>
class subsystem_handle {
public:
    subsystem_handle() noexcept = default;
    [[nodiscard]] explicit operator bool() const noexcept { return subsystem_ != nullptr; }
    [[nodiscard]] std::size_t id() const noexcept { return id_; }
    [[nodiscard]] S& subsystem() const noexcept { return *subsystem_; }
    /// The subsystem's state in `c`. Lock-free; valid while `c` is.
    [[nodiscard]] state_t<S>& state(typename H::container const& c) const noexcept {
        return *static_cast<state_t<S>*>(c.states_[id_].load(std::memory_order_acquire));
    }

private:
    friend H;
    subsystem_handle(std::size_t id, S* s) noexcept : id_(id), subsystem_(s) {}
    std::size_t id_ = 0;
    S* subsystem_ = nullptr;
};

template <TaskTraits Traits = thread_task_traits, std::size_t Slots = 8>
class hierarchy final : private detail::binding_owner {
    static_assert(Slots > 0, "a hierarchy needs at least one subsystem slot");

public:
    using traits_type = Traits;
    using id_type = typename Traits::id_type;
    using container = basic_container<Traits, Slots>;
    using task = basic_task<Traits, Slots>;
    static constexpr std::size_t max_subsystems = Slots;
    /// Removed containers and exited tasks are freed in batches of this many, after one grace period.
    static constexpr std::size_t reclaim_batch = 256;

    hierarchy() : serial_(detail::binding_registry::instance().enroll(this)) {
        top_ = container::make(this, nullptr, {});
        if (top_ == nullptr) std::abort();
    }
    hierarchy(hierarchy const&) = delete;
    hierarchy& operator=(hierarchy const&) = delete;
    ~hierarchy() { teardown(); }

    // ---- tree ---------------------------------------------------------------------------------

    /// The top container; it always exists and cannot be removed.
    [[nodiscard]] container& top() const noexcept { return *top_; }
    /// The number of containers, the top one included. Lock-free.
    [[nodiscard]] std::size_t size() const noexcept { return count_.load(std::memory_order_relaxed); }

    /// Effects: creates a child `name` of `parent`; create hooks run in registration order, then
    ///   populate hooks; on any failure, destroy runs for the subsystems already created, in
    ///   reverse, and the container never appears. The child inherits notify_on_release.
    /// Errors: ENOENT (empty name, name with '/', parent removed), EEXIST (".", "..", a child or
    ///   control file of that name), EINVAL (newline or NUL in the name), ENAMETOOLONG (4096 bytes
    ///   or more), ENOMEM, or what a hook returned.
    /// Locking: takes the manage lock, and the callback lock to link the child.
    /// Complexity: O(log children) plus the hooks.
    [[nodiscard]] std::error_code mkdir(container& parent, std::string_view name, container** out = nullptr) noexcept {
        if (std::error_code ec = check_name(name)) return ec;
        write_guard g(*this);
        if (parent.removed()) return detail::errno_code(ENOENT);
        if (is_core_file(parent, name) || parent.children_.find(name, typename container::by_name{}) != parent.children_.end()) {
            return detail::errno_code(EEXIST);
        }
        container* c = container::make(this, &parent, name);
        if (c == nullptr) return detail::errno_code(ENOMEM);
        if (std::error_code ec = create_states(*c)) {
            container::free(c);
            return ec;
        }
        {
            std::lock_guard cb(callback_);
            parent.children_.insert_unique(*c);
            count_.fetch_add(1, std::memory_order_relaxed);
        }
        if (out != nullptr) *out = c;
        return {};
    }

    /// Effects: removes `c`; destroy hooks run in reverse registration order. The memory is freed
    ///   once no reader can still see it. Tasks of `c` that are no longer alive are reaped first.
    ///   A parent with notify_on_release that is left with no child and no task is released.
    /// Errors: EBUSY (the top container, or children or tasks remain), ENOENT (already removed).
    /// Locking: takes the manage lock, and the callback lock to unlink.
    [[nodiscard]] std::error_code rmdir(container& c) noexcept {
        write_guard g(*this);
        return rmdir_locked(c);
    }

    /// Effects: as rmdir, after moving every task of `c` to its parent, in one step under the
    ///   manage lock: a task attached to `c` concurrently is either moved or refused (ENODEV).
    ///   The move is an attach (can_attach, attach, post_attach hooks; a task that ended
    ///   meanwhile is skipped) and all or nothing: on a veto `c` and its tasks stay as they were.
    ///   With notify_on_release, `c` is released as its last task leaves, as when they are moved
    ///   one by one before an rmdir. For owned_container (owned_container.hpp).
    /// Errors: as rmdir (EBUSY: the top container, or children remain), ENOMEM, or a can_attach
    ///   veto of the parent's subsystems.
    /// Locking: takes the manage lock, and the callback lock to move and to unlink.
    [[nodiscard]] std::error_code rmdir_moving_tasks(container& c) noexcept {
        write_guard g(*this);
        if (c.removed()) return detail::errno_code(ENOENT);
        if (c.is_top() || !c.children_.empty()) return detail::errno_code(EBUSY);
        if (!c.tasks_.empty()) reap_locked(c);
        if (std::size_t const n = c.tasks_.size()) {
            std::unique_ptr<id_type[]> ids(new (std::nothrow) id_type[n]);
            if (!ids) return detail::errno_code(ENOMEM);
            std::size_t i = 0;
            for (task const& t : c.tasks_) ids[i++] = t.id;
            if (std::error_code ec = attach_ids_locked(std::span<id_type const>(ids.get(), n), *c.parent_, true)) return ec;
        }
        return rmdir_locked(c);
    }

private:
    std::error_code rmdir_locked(container& c) noexcept {
        assert(manage_.held_by_me());
        if (c.removed()) return detail::errno_code(ENOENT);
        if (c.is_top() || !c.children_.empty()) return detail::errno_code(EBUSY);
        if (!c.tasks_.empty()) reap_locked(c);
        if (!c.tasks_.empty()) return detail::errno_code(EBUSY);
        container& parent = *c.parent_;
        {
            std::lock_guard cb(callback_);
            parent.children_.erase(parent.children_.iterator_to(c));
            c.removed_.store(true, std::memory_order_release);
            count_.fetch_sub(1, std::memory_order_relaxed);
        }
        for (std::size_t i = nsubsys_; i-- > 0;) {
            if (ops_[i].destroy) ops_[i].destroy(ops_[i].subsystem, c.states_[i].load(std::memory_order_relaxed), c);
        }
        retire(c);
        check_release(parent);
        return {};
    }

public:

    /// The path of `c`: "/" for the top container, else "/a/b". Names and parents are immutable,
    /// so no lock is needed while `c` is valid. Iterative: any depth works.
    [[nodiscard]] std::string path(container const& c) const {
        if (c.is_top()) return "/";
        std::string out(path_size(c), '/');
        write_path(c, out.data());
        return out;
    }

    /// Effects: finds the container at an absolute path ("/", "/a/b", "/a/b/"; repeated slashes
    ///   are one, "." and ".." as in file paths).
    /// Errors: EINVAL (not absolute), ENOENT (no such container).
    /// Locking: takes the manage lock. The result stays valid until it is removed.
    [[nodiscard]] std::error_code lookup(std::string_view p, container*& out) noexcept {
        container* c = nullptr;
        std::string_view rest;
        if (std::error_code ec = walk(p, c, rest)) return ec;
        if (!rest.empty()) return detail::errno_code(ENOENT);
        out = c;
        return {};
    }

    /// Effects: follows an absolute path as far as containers go: `deepest` is the last container
    ///   on it, `rest` what remains from the first component that names no child (empty when the
    ///   whole path is a container). One pass, for the path interface's files.
    /// Errors: EINVAL (not absolute), ENOENT (empty). Locking: takes the manage lock.
    [[nodiscard]] std::error_code walk(std::string_view p, container*& deepest, std::string_view& rest) noexcept {
        if (p.empty() || p.front() != '/') return detail::errno_code(p.empty() ? ENOENT : EINVAL);
        std::lock_guard g(manage_);
        container* c = top_;
        while (!p.empty()) {
            std::size_t const start = p.find_first_not_of('/');
            if (start == std::string_view::npos) {
                p = {};  // only slashes left
                break;
            }
            p.remove_prefix(start);
            std::size_t const end = std::min(p.find('/'), p.size());
            std::string_view const part = p.substr(0, end);
            if (part == "..") {
                if (c->parent_ != nullptr) c = c->parent_;
            } else if (part != ".") {
                auto it = c->children_.find(part, typename container::by_name{});
                if (it == c->children_.end()) break;
                c = &*it;
            }
            p.remove_prefix(end);
        }
        deepest = c;
        rest = p;
        return {};
    }

    // ---- notify_on_release ---------------------------------------------------------------------

    /// Errors: ENODEV (removed). Locking: takes the manage lock.
    [[nodiscard]] std::error_code set_notify_on_release(container& c, bool on) noexcept {
        std::lock_guard g(manage_);
        if (c.removed()) return detail::errno_code(ENODEV);
        c.notify_on_release_.store(on, std::memory_order_relaxed);
        return {};
    }

    /// Errors: ENODEV (removed). Locking: takes the manage lock.
    [[nodiscard]] std::error_code set_clone_children(container& c, bool on) noexcept {
        std::lock_guard g(manage_);
        if (c.removed()) return detail::errno_code(ENODEV);
        c.clone_children_.store(on, std::memory_order_relaxed);
        return {};
    }

    /// Effects: `agent` is called with each released container's path, in release order, on a
    ///   thread of the hierarchy's own (never the caller's) that has every signal blocked. An
    ///   empty function stops notifications. The agent may call back into the hierarchy, flush
    ///   (which then returns at once) or destroy it (the releases queued behind are then dropped
    ///   and counted in dropped_releases()). An exception it throws is caught and counted in
    ///   failed_releases().
    /// Errors: throws std::bad_alloc when the function cannot be stored (not noexcept).
    /// Locking: takes the release queue's lock only.
    void set_release_agent(std::function<void(std::string const&)> agent) { releases_.set_agent(std::move(agent)); }
    /// Effects: sets the program that the kernel's usermode helper would run (the top container's
    ///   release_agent file; empty: none; truncated to 4095 bytes, as the kernel does). This is
    ///   the host's explicit choice and needs no privilege; fs::write of release_agent needs
    ///   CAP_SYS_ADMIN, as the kernel's file. For each release the program is started directly
    ///   (no shell) with the path as its only argument, HOME=/ and a PATH, fds 0-2 on /dev/null
    ///   and no other fd, cwd "/" (a relative program resolves against it), umask 022, default
    ///   signal mask and dispositions, nice 0 where allowed, a session of its own, and the CPU
    ///   affinity that the process's main thread had when the hierarchy was created. The release
    ///   thread waits for the exec only (the kernel's UMH_WAIT_EXEC) and reaps the program by its
    ///   pid when it exits; programs run concurrently, and none delays the destructor.
    /// Errors: none. Locking: takes the release queue's lock only.
    void set_release_agent_program(std::string_view path) noexcept { releases_.set_program(path); }
    /// Throws std::bad_alloc. Locking: takes the release queue's lock only.
    [[nodiscard]] std::string release_agent_program() { return releases_.program(); }
    /// Effects: waits until every release queued before the call has been delivered: the agent
    ///   function returned and the program was started (not exited). Called by the agent (on the
    ///   release thread) it returns at once: releases are delivered in order, so those queued
    ///   before the current one are delivered already, and waiting for later ones would wait on
    ///   itself. Starts the release thread if an earlier attempt failed.
    /// Errors: EAGAIN (or what thread creation returned) when the release thread cannot be
    ///   started; the releases stay queued for the next release or flush to try again.
    /// Locking: takes the release queue's lock and waits on it; call it without the manage lock.
    std::error_code flush_release_agent() noexcept {
        int const e = releases_.flush();
        return e == 0 ? std::error_code{} : detail::errno_code(e);
    }
    /// Releases lost: no memory for the event (as the kernel, which loses the notification when
    ///   its allocation fails), or queued behind an agent that destroyed the hierarchy. Lock-free.
    [[nodiscard]] std::uint64_t dropped_releases() const noexcept { return releases_.dropped(); }
    /// Deliveries that failed: the agent function threw, or the program could not be started
    ///   (ENOENT, EACCES...). Lock-free.
    [[nodiscard]] std::uint64_t failed_releases() const noexcept { return releases_.failed(); }

    // ---- subsystems ----------------------------------------------------------------------------

    /// Effects: constructs S from `args` in the next free slot, creates its state in the top
    ///   container (create, then populate); on failure undoes both and registers nothing.
    /// Errors: EBUSY (a container other than the top one exists), ENOSPC (every slot is used),
    ///   EEXIST (S is already registered), ENOMEM, or what a hook returned.
    /// Locking: takes the manage lock.
    /// A type that is not a SubsystemFor<S, container> fails to compile with one sentence per
    /// broken rule (subsystem_concepts.hpp), and nothing else.
    template <class S, class... Args>
    [[nodiscard]] std::error_code register_subsystem(subsystem_handle<S, hierarchy>& out, Args&&... args) noexcept {
        if constexpr (detail::check_subsystem<S, container>()) {
            return register_checked(out, std::forward<Args>(args)...);
        } else {
            return detail::errno_code(EINVAL);  // not reached: check_subsystem did not compile
        }
    }

private:
    template <class S, class... Args>
    std::error_code register_checked(subsystem_handle<S, hierarchy>& out, Args&&... args) noexcept {
        write_guard g(*this);
        if (size() > 1) return detail::errno_code(EBUSY);
        if (find_slot(&detail::type_key_v<S>) != Slots) return detail::errno_code(EEXIST);
        if (nsubsys_ == Slots) return detail::errno_code(ENOSPC);
        S* s = nullptr;
        if (std::error_code ec = detail::guarded_call([&] {
                s = new (std::nothrow) S(std::forward<Args>(args)...);
                return s == nullptr ? detail::errno_code(ENOMEM) : std::error_code{};
            })) {
            return ec;
        }
        std::size_t const id = nsubsys_;
        ops_[id] = make_ops<S>(s);
        void* st = ops_[id].new_state();
        if (st == nullptr) {
            ops_[id].delete_subsystem(s);
            ops_[id] = {};
            return detail::errno_code(ENOMEM);
        }
        top_->states_[id].store(st, std::memory_order_release);
        std::error_code ec = ops_[id].create ? ops_[id].create(s, st, *top_) : std::error_code{};
        bool const created = !ec;
        std::size_t const files_before = top_->files_ ? top_->files_->size() : 0;
        if (!ec && ops_[id].populate) ec = ops_[id].populate(s, st, *top_);
        if (!ec && ops_[id].add_files) ec = ops_[id].add_files(*this, *top_);
        if (ec && created && ops_[id].destroy) ops_[id].destroy(s, st, *top_);
        if (ec) {
            if (top_->files_) top_->files_->resize(files_before);  // the files it added go too
            top_->states_[id].store(nullptr, std::memory_order_relaxed);
            ops_[id].delete_state(st);
            ops_[id].delete_subsystem(s);
            ops_[id] = {};
            return ec;
        }
        ++nsubsys_;
        out = subsystem_handle<S, hierarchy>(id, s);
        return {};
    }

public:

    /// The registered instance of S, or nullptr. Lock-free once registration is over.
    template <Subsystem S>
    [[nodiscard]] S* subsystem() const noexcept {
        std::size_t const i = find_slot(&detail::type_key_v<S>);
        return i == Slots ? nullptr : static_cast<S*>(ops_[i].subsystem);
    }
    /// S's state in `c`. Requires S registered (asserted). Lock-free; valid while `c` is.
    template <Subsystem S>
    [[nodiscard]] typename S::state& state_of(container const& c) const noexcept {
        std::size_t const i = find_slot(&detail::type_key_v<S>);
        assert(i != Slots && "containers: state_of<S> for a subsystem that is not registered");
        return *static_cast<typename S::state*>(c.states_[i].load(std::memory_order_acquire));
    }
    [[nodiscard]] std::size_t subsystem_count() const noexcept { return nsubsys_; }

    /// Effects: adds a control file to `c`; call from a populate hook (the manage lock is held and
    ///   `c` is not yet visible). The cftype must outlive the hierarchy.
    /// Errors: EEXIST (a file or child of that name), ENOMEM.
    [[nodiscard]] std::error_code add_file(container& c, cftype<container> const& file) noexcept {
        assert(manage_.held_by_me() && "containers: add_file belongs in a populate hook");
        if (is_core_file(c, file.name) || c.children_.find(file.name, typename container::by_name{}) != c.children_.end()) {
            return detail::errno_code(EEXIST);
        }
        return detail::guarded_call([&] {
            if (!c.files_) c.files_ = std::make_unique<std::vector<cftype<container> const*>>();
            c.files_->push_back(&file);
            return std::error_code{};
        });
    }
    [[nodiscard]] std::string_view subsystem_name(std::size_t id) const noexcept { return id < nsubsys_ ? ops_[id].name : std::string_view{}; }

    // ---- tasks ---------------------------------------------------------------------------------

    /// Effects: moves every task in `ids` into `dest`, all or nothing: every can_attach runs first
    ///   and a veto undoes the subsystems that agreed (cancel_attach, in reverse) and changes
    ///   nothing; then, under the callback lock, the tasks move and attach runs; then post_attach,
    ///   and release checks for the containers left. A task new to the hierarchy comes from the
    ///   top container. Tasks already in `dest`, and repeated ids, are skipped. The calling
    ///   thread attaching itself gets the thread-local fast path and is detached at thread exit.
    ///   Tasks are tracked, not ids (task_traits.hpp, TaskIdentity): a known id whose task has
    ///   exited or whose id now names another task leaves first, as exit would (its exit hooks
    ///   drop per-task state), and the id is then met afresh. A task that exists but is exiting
    ///   (a zombie) is accepted and not moved, as the kernel skips exiting tasks.
    /// Errors: ENODEV (dest removed), ESRCH / EACCES (from the task traits: no such task, or not
    ///   the caller's to place), ENOMEM, or a can_attach veto.
    /// Locking: takes the manage lock, and the callback lock at the moment of change.
    /// Complexity: O(n log n) for n ids, plus the hooks; for a known task, no system call if it
    ///   attached itself, else its identity check (a poll(2) on its pidfd, or a few calls).
    [[nodiscard]] std::error_code attach(std::span<id_type const> ids, container& dest) noexcept {
        return attach_ids(ids, dest, false);
    }
    /// Effects: as attach, for the threads of one thread group as listed a moment ago: an id that
    ///   names no task any more (a thread that ended since the listing) is skipped instead of
    ///   failing the whole move with ESRCH. cgroup.procs uses it (the kernel holds the group's
    ///   threadgroup lock instead, so that no thread ends or starts meanwhile).
    /// Errors, Locking, Complexity: as attach, without ESRCH.
    [[nodiscard]] std::error_code attach_thread_group(std::span<id_type const> ids, container& dest) noexcept {
        return attach_ids(ids, dest, true);
    }
    /// Effects and errors: as attach, for a subsystem's own operation that already holds
    ///   manage_lock() and must move tasks without dropping it (cpuset's hotplug). Attaching one
    ///   task that the hierarchy knows allocates nothing here.
    /// Locking: the manage lock must be held by the caller (asserted); takes the callback lock.
    [[nodiscard]] std::error_code attach_locked(std::span<id_type const> ids, container& dest) noexcept {
        return attach_ids_locked(ids, dest, false);
    }
    [[nodiscard]] std::error_code attach(id_type id, container& dest) noexcept { return attach(std::span<id_type const>(&id, 1), dest); }
    /// The calling task attaches itself.
    [[nodiscard]] std::error_code attach_self(container& dest) noexcept { return attach(Traits::self(), dest); }

    /// Effects: `child` starts in `parent`'s container (the top one if the hierarchy does not know
    ///   `parent`, or knew an earlier task of that id). Every can_fork runs first, in registration
    ///   order, with that container; a veto (an error or a throw) runs cancel_fork for the
    ///   subsystems that agreed, in reverse, and changes nothing: the child is not added and no
    ///   fork hook runs. Then the child is added and fork hooks run under the callback lock. A
    ///   known record of `child` or `parent` whose task has gone (exited, or its id reused) leaves
    ///   first, as exit would (also on a veto). A child that has already exited (a zombie) is
    ///   accepted and not placed, and no hook runs.
    /// Errors: EEXIST (child already known and alive), ESRCH / EACCES (from the traits), ENOMEM,
    ///   or a can_fork veto.
    /// Locking: takes the manage lock (can_fork, cancel_fork), and the callback lock (fork).
    [[nodiscard]] std::error_code fork(id_type parent, id_type child) noexcept {
        write_guard g(*this);
        if (task* old = tasks_.find(child)) {
            if (task_alive(*old)) return detail::errno_code(EEXIST);
            remove_task(*old);
        }
        identity_type k;
        bool exiting = false;
        if (std::error_code ec = meet(child, k, exiting)) return ec;
        if (exiting) return {};
        task* p = tasks_.find(parent);
        if (p != nullptr && !task_alive(*p)) {
            remove_task(*p);
            p = nullptr;
        }
        container& c = p == nullptr ? *top_ : *p->container_.load(std::memory_order_relaxed);
        task* t = new (std::nothrow) task(child, &c, std::move(k));
        if (t == nullptr || !tasks_.reserve(1, retired_)) {
            delete t;
            return detail::errno_code(ENOMEM);
        }
        for (std::size_t i = 0; i < nsubsys_; ++i) {
            subsys_ops const& o = ops_[i];
            if (!o.can_fork) continue;
            if (std::error_code ec = o.can_fork(o.subsystem, c.states_[i].load(std::memory_order_relaxed), c, parent, child)) {
                for (std::size_t j = i; j-- > 0;) {
                    if (ops_[j].cancel_fork) ops_[j].cancel_fork(ops_[j].subsystem, c.states_[j].load(std::memory_order_relaxed), c, parent, child);
                }
                delete t;
                return ec;
            }
        }
        // Commit point: nothing below can fail.
        std::lock_guard cb(callback_);
        c.tasks_.push_back(*t);
        tasks_.insert(t);
        ntasks_.fetch_add(1, std::memory_order_relaxed);
        for (std::size_t i = 0; i < nsubsys_; ++i) {
            if (ops_[i].fork) ops_[i].fork(ops_[i].subsystem, c.states_[i].load(std::memory_order_relaxed), c, parent, child);
        }
        return {};
    }

    /// Effects: the task leaves the hierarchy; exit hooks run under the callback lock; its
    ///   container is released if that was its last task. When the task still runs and is the
    ///   task recorded (identity checked: a reused id is not it), the hooks see
    ///   task_leaves_alive() true and give back what they imposed on it (cpuset: the top
    ///   cpuset's CPUs, or the CPUs the task requested, as the kernel's root would).
    /// Errors: ESRCH (unknown task), EBUSY (a thread that attached itself and still runs: it
    ///   leaves by itself when it exits, or by calling exit with its own id).
    /// Locking: takes the manage lock and the callback lock.
    [[nodiscard]] std::error_code exit(id_type id) noexcept {
        write_guard g(*this);
        task* t = tasks_.find(id);
        if (t == nullptr) return detail::errno_code(ESRCH);
        if (t->bound_) {
            if (!(id == Traits::self())) return detail::errno_code(EBUSY);
            detail::unbind_this_thread(serial_);
            t->tls_container_ = nullptr;
            remove_task(*t, true);  // the calling thread itself: it runs
            return {};
        }
        remove_task(*t, task_alive(*t));
        return {};
    }

    /// Effects: removes from `c` every task that is no longer alive (threads that exited without
    ///   telling the hierarchy, zombies, and records whose id now names another task), as exit
    ///   would. Returns how many left.
    /// Locking: takes the manage lock.
    std::size_t reap(container& c) noexcept {
        write_guard g(*this);
        return reap_locked(c);
    }

    /// Effects: reaps `c`, then stores the ids of its tasks in ascending order.
    /// Errors: ENODEV (removed), ENOMEM. Locking: takes the manage lock.
    [[nodiscard]] std::error_code task_ids(container& c, std::vector<id_type>& out) noexcept {
        write_guard g(*this);
        if (c.removed()) return detail::errno_code(ENODEV);
        reap_locked(c);
        std::unique_ptr<id_type[]> ids(new (std::nothrow) id_type[c.tasks_.size() + 1]);
        if (!ids) return detail::errno_code(ENOMEM);
        std::size_t n = 0;
        for (task const& t : c.tasks_) ids[n++] = t.id;
        std::sort(ids.get(), ids.get() + n);
        // assign allocates before it changes `out`: ENOMEM leaves it as it was.
        return detail::guarded_call([&] {
            out.assign(ids.get(), ids.get() + n);
            return std::error_code{};
        });
    }

    /// The number of tasks the hierarchy knows. Lock-free, approximate under concurrent change.
    [[nodiscard]] std::size_t task_count() const noexcept { return ntasks_.load(std::memory_order_relaxed); }

    /// Effects: whether `id` still names the task that the hierarchy recorded under it: false
    ///   once that task has exited (a zombie included) or the id has been reused by another task.
    ///   For subsystems, right before a system call on the task (cpuset checks it before
    ///   sched_setaffinity), so that a reused id never makes them act on an unrelated task. An
    ///   id the hierarchy has no record of is judged by the traits' alive(id). Changes nothing:
    ///   the record is reaped by the next listing, removal or attach.
    /// Locking: the manage lock held (hooks run with it; asserted).
    /// Complexity: no system call for a thread that attached itself; otherwise the traits'
    ///   check (see thread_task_traits::alive: one to four system calls).
    /// Inside an exit hook: whether the task leaving still runs and is the task the hierarchy
    ///   recorded (hierarchy::exit of a live task, or the hierarchy destroyed while it is
    ///   attached), rather than one that has exited or whose id names another task now. A
    ///   subsystem undoes what it did to the task only then.
    /// Locking: the manage lock held (asserted). Complexity: one load.
    [[nodiscard]] bool task_leaves_alive() const noexcept {
        assert(manage_.held_by_me());
        return leaving_alive_;
    }

    [[nodiscard]] bool task_identity_ok(id_type id) const noexcept {
        assert(manage_.held_by_me());
        task const* t = tasks_.find(id);
        return t != nullptr ? task_alive(*t) : Traits::alive(id);
    }

    // ---- read path -----------------------------------------------------------------------------

    /// The calling task's container. Never blocks, writes no shared memory. Call inside a
    /// read_section (or with the manage lock held) to use the result while tasks move and
    /// containers are removed concurrently. Two dependent loads for a thread that attached
    /// itself; a lookup by id otherwise.
    [[nodiscard]] container& current() const noexcept {
        if constexpr (Traits::thread_bound) {
            detail::fast_binding const& b = detail::fast_slot(serial_);
            if (b.serial == serial_) [[likely]] {
                return *static_cast<container*>(b.container.load(std::memory_order_acquire));
            }
        }
        return current_slow();
    }

    /// The calling task's record, or nullptr if the hierarchy does not know it. For a thread that
    /// attached itself the record stays valid until the thread exits (or exits itself from the
    /// hierarchy), so a runtime can keep it and read `->container()`: one load on the hot path.
    [[nodiscard]] task* self_task() const noexcept {
        if constexpr (Traits::thread_bound) {
            if (void* t = detail::find_binding(serial_)) return static_cast<task*>(t);
        }
        return tasks_.find(Traits::self());
    }

    /// The container of task `id`; the top one for a task the hierarchy does not know. Never
    /// blocks, writes no shared memory; same validity rule as current().
    [[nodiscard]] container& container_of(id_type id) const noexcept {
        task const* t = tasks_.find(id);
        return t == nullptr ? *top_ : *t->container_.load(std::memory_order_acquire);
    }
    /// The record of task `id`, or nullptr. Same rules as container_of().
    [[nodiscard]] task* find_task(id_type id) const noexcept { return tasks_.find(id); }

    /// For subsystems: frees `n` (its reclaim function) once no reader can still see it, after a
    /// grace period and outside the locks. Manage lock held.
    void retire(detail::retired_node& n) noexcept {
        assert(manage_.held_by_me());
        push_retired(n);
    }

    // ---- locks ---------------------------------------------------------------------------------

    using lock_type = detail::owned_mutex;
    class write_guard;
    /// Holds the manage lock: nothing in the tree or its membership changes meanwhile. Do not
    /// call the hierarchy's operations while holding it. On release it frees, after a grace
    /// period, what subsystems retired meanwhile (as every operation does).
    [[nodiscard]] write_guard manage_lock() noexcept { return write_guard(*this); }
    /// Holds the callback lock: no task moves and no container is linked or unlinked meanwhile.
    [[nodiscard]] std::unique_lock<lock_type> callback_lock() noexcept { return std::unique_lock(callback_); }
    [[nodiscard]] bool manage_lock_held() const noexcept { return manage_.held_by_me(); }
    [[nodiscard]] bool callback_lock_held() const noexcept { return callback_.held_by_me(); }

    /// Bytes that one container (with its name inline) and one task record take, for reports.
    [[nodiscard]] static constexpr std::size_t container_bytes(std::size_t name_size) noexcept { return sizeof(container) + name_size; }
    [[nodiscard]] static constexpr std::size_t task_bytes() noexcept { return sizeof(task); }

private:
    friend struct detail::tree_access;

    // Type-erased table of one subsystem's hooks; an absent hook is a null pointer.
    struct subsys_ops {
        void* subsystem = nullptr;
        void const* type_key = nullptr;
        std::string_view name;
        void* (*new_state)() noexcept = nullptr;
        void (*delete_state)(void*) noexcept = nullptr;
        void (*delete_subsystem)(void*) noexcept = nullptr;
        std::error_code (*create)(void*, void*, container&) noexcept = nullptr;
        void (*destroy)(void*, void*, container&) noexcept = nullptr;
        std::error_code (*can_attach)(void*, void*, container&, task_set<container>) noexcept = nullptr;
        void (*cancel_attach)(void*, void*, container&, task_set<container>) noexcept = nullptr;
        void (*attach)(void*, void*, container&, task_set<container>) noexcept = nullptr;
        void (*post_attach)(void*, void*, container&, task_set<container>) noexcept = nullptr;
        std::error_code (*populate)(void*, void*, container&) noexcept = nullptr;
        std::error_code (*can_fork)(void*, void*, container&, id_type, id_type) noexcept = nullptr;
        void (*cancel_fork)(void*, void*, container&, id_type, id_type) noexcept = nullptr;
        void (*fork)(void*, void*, container&, id_type, id_type) noexcept = nullptr;
        void (*exit)(void*, void*, container&, id_type) noexcept = nullptr;
        std::error_code (*add_files)(hierarchy&, container&) noexcept = nullptr;  // files declared as data
    };

    template <class S>
    static subsys_ops make_ops(S* s) noexcept {
        using St = typename S::state;
        subsys_ops o;
        o.subsystem = s;
        o.type_key = &detail::type_key_v<S>;
        o.name = S::name;
        o.new_state = []() noexcept -> void* {
            St* p = nullptr;
            (void)detail::guarded_call([&] {
                p = new (std::nothrow) St();
                return std::error_code{};
            });
            return p;
        };
        o.delete_state = [](void* p) noexcept { delete static_cast<St*>(p); };
        o.delete_subsystem = [](void* p) noexcept { delete static_cast<S*>(p); };
        if constexpr (detail::names_create<S, container>) {
            o.create = [](void* ss, void* st, container& c) noexcept {
                return detail::guarded_call([&] { return static_cast<S*>(ss)->create(*static_cast<St*>(st), c); });
            };
        }
        if constexpr (detail::names_destroy<S, container>) {
            o.destroy = [](void* ss, void* st, container& c) noexcept { static_cast<S*>(ss)->destroy(*static_cast<St*>(st), c); };
        }
        if constexpr (detail::names_can_attach<S, container>) {
            o.can_attach = [](void* ss, void* st, container& c, task_set<container> t) noexcept {
                return detail::guarded_call([&] { return static_cast<S*>(ss)->can_attach(*static_cast<St*>(st), c, t); });
            };
        }
        if constexpr (detail::names_cancel_attach<S, container>) {
            o.cancel_attach = [](void* ss, void* st, container& c, task_set<container> t) noexcept {
                static_cast<S*>(ss)->cancel_attach(*static_cast<St*>(st), c, t);
            };
        }
        if constexpr (detail::names_attach<S, container>) {
            o.attach = [](void* ss, void* st, container& c, task_set<container> t) noexcept {
                static_cast<S*>(ss)->attach(*static_cast<St*>(st), c, t);
            };
        }
        if constexpr (detail::names_post_attach<S, container>) {
            o.post_attach = [](void* ss, void* st, container& c, task_set<container> t) noexcept {
                static_cast<S*>(ss)->post_attach(*static_cast<St*>(st), c, t);
            };
        }
        if constexpr (detail::names_populate<S, container>) {
            o.populate = [](void* ss, void* st, container& c) noexcept {
                return detail::guarded_call([&] { return static_cast<S*>(ss)->populate(*static_cast<St*>(st), c); });
            };
        }
        if constexpr (detail::names_can_fork<S, container>) {
            o.can_fork = [](void* ss, void* st, container& c, id_type p, id_type ch) noexcept {
                return detail::guarded_call([&] { return static_cast<S*>(ss)->can_fork(*static_cast<St*>(st), c, p, ch); });
            };
        }
        if constexpr (detail::names_cancel_fork<S, container>) {
            o.cancel_fork = [](void* ss, void* st, container& c, id_type p, id_type ch) noexcept {
                static_cast<S*>(ss)->cancel_fork(*static_cast<St*>(st), c, p, ch);
            };
        }
        if constexpr (detail::names_fork<S, container>) {
            o.fork = [](void* ss, void* st, container& c, id_type p, id_type ch) noexcept {
                static_cast<S*>(ss)->fork(*static_cast<St*>(st), c, p, ch);
            };
        }
        if constexpr (requires { S::template files<container>(); }) {
            o.add_files = [](hierarchy& h, container& c) noexcept {
                for (cftype<container> const& f : S::template files<container>()) {
                    if (f.shown_in(c)) {
                        if (std::error_code ec = h.add_file(c, f)) return ec;
                    }
                }
                return std::error_code{};
            };
        }
        if constexpr (detail::names_exit<S, container>) {
            o.exit = [](void* ss, void* st, container& c, id_type t) noexcept { static_cast<S*>(ss)->exit(*static_cast<St*>(st), c, t); };
        }
        return o;
    }

public:
    // Holds the manage lock; on release, frees a full batch of retired objects after a grace
    // period, outside the lock. Never where the thread may not wait for one (inside a read
    // section, which would wait on itself, or on a thread that others wait for from inside one:
    // detail::defer_grace_periods): the batch is then left for a later operation.
    class write_guard {
    public:
        explicit write_guard(hierarchy& h) noexcept : h_(h) { h_.manage_.lock(); }
        ~write_guard() {
            detail::retired_node* batch = nullptr;
            if (h_.nretired_ >= reclaim_batch && detail::may_wait_for_grace_period()) {
                batch = std::exchange(h_.retired_, nullptr);
                h_.nretired_ = 0;
            }
            h_.manage_.unlock();
            if (batch != nullptr) {
                detail::synchronize();
                detail::reclaim_chain(batch);
            }
        }
        write_guard(write_guard const&) = delete;
        write_guard& operator=(write_guard const&) = delete;

    private:
        hierarchy& h_;
    };

private:

    // The moves and fresh records of one attach, in caller-provided storage.
    struct batch {
        task_move<container>* moves;
        task** fresh;
        std::size_t nmoves = 0;
        std::size_t nfresh = 0;
        void add_move(task_move<container> m) noexcept { moves[nmoves++] = m; }
        void add_fresh(task* t) noexcept { fresh[nfresh++] = t; }
    };

    static std::error_code check_name(std::string_view name) noexcept {
        if (name.empty() || name.find('/') != std::string_view::npos) return detail::errno_code(ENOENT);
        if (name.size() >= 4096) return detail::errno_code(ENAMETOOLONG);
        if (name == "." || name == "..") return detail::errno_code(EEXIST);
        if (name.find('\n') != std::string_view::npos || name.find('\0') != std::string_view::npos) return detail::errno_code(EINVAL);
        return {};
    }

    bool is_core_file(container const& parent, std::string_view name) const noexcept {
        for (std::string_view f : detail::core_files) if (f == name) return true;
        if (parent.is_top()) for (std::string_view f : detail::top_files) if (f == name) return true;
        for (cftype<container> const* f : parent.added_files()) if (f->name == name) return true;
        return false;
    }

    std::size_t find_slot(void const* key) const noexcept {
        for (std::size_t i = 0; i < nsubsys_; ++i) if (ops_[i].type_key == key) return i;
        return Slots;
    }

    // Creates every subsystem's state in `c`, then populates; undoes in reverse on failure.
    std::error_code create_states(container& c) noexcept {
        assert(manage_.held_by_me());
        std::size_t created = 0;
        std::error_code ec;
        for (; created < nsubsys_; ++created) {
            subsys_ops const& o = ops_[created];
            void* st = o.new_state();
            if (st == nullptr) {
                ec = detail::errno_code(ENOMEM);
                break;
            }
            c.states_[created].store(st, std::memory_order_relaxed);
            if (o.create) ec = o.create(o.subsystem, st, c);
            if (ec) {
                c.states_[created].store(nullptr, std::memory_order_relaxed);
                o.delete_state(st);
                break;
            }
        }
        for (std::size_t i = 0; !ec && i < nsubsys_; ++i) {
            if (ops_[i].populate) ec = ops_[i].populate(ops_[i].subsystem, c.states_[i].load(std::memory_order_relaxed), c);
            if (!ec && ops_[i].add_files) ec = ops_[i].add_files(*this, c);
        }
        if (ec) {
            for (std::size_t i = created; i-- > 0;) {
                void* st = c.states_[i].exchange(nullptr, std::memory_order_relaxed);
                if (ops_[i].destroy) ops_[i].destroy(ops_[i].subsystem, st, c);
                ops_[i].delete_state(st);
            }
        }
        return ec;
    }

    // attach and attach_thread_group; `skip_gone`: an id that names no task is skipped.
    std::error_code attach_ids(std::span<id_type const> ids, container& dest, bool skip_gone) noexcept {
        write_guard g(*this);
        return attach_ids_locked(ids, dest, skip_gone);
    }
    std::error_code attach_ids_locked(std::span<id_type const> ids, container& dest, bool skip_gone) noexcept {
        assert(manage_.held_by_me());
        if (dest.removed()) return detail::errno_code(ENODEV);
        if (ids.size() == 1) {  // the common case, without allocation
            task_move<container> move;
            task* fresh = nullptr;
            batch one{&move, &fresh};
            if (std::error_code ec = gather(ids[0], dest, one, skip_gone)) return ec;
            return commit(dest, one);
        }
        std::unique_ptr<id_type[]> sorted(new (std::nothrow) id_type[ids.size()]);
        std::unique_ptr<task_move<container>[]> moves(new (std::nothrow) task_move<container>[ids.size()]);
        std::unique_ptr<task*[]> fresh(new (std::nothrow) task*[ids.size()]);
        if (!ids.empty() && (!sorted || !moves || !fresh)) return detail::errno_code(ENOMEM);
        std::copy(ids.begin(), ids.end(), sorted.get());
        std::sort(sorted.get(), sorted.get() + ids.size());
        std::size_t const n = static_cast<std::size_t>(std::unique(sorted.get(), sorted.get() + ids.size()) - sorted.get());
        batch b{moves.get(), fresh.get()};
        for (std::size_t i = 0; i < n; ++i) {
            if (std::error_code ec = gather(sorted[i], dest, b, skip_gone)) {
                for (std::size_t k = 0; k < b.nfresh; ++k) free_task(b.fresh[k]);
                return ec;
            }
        }
        return commit(dest, b);
    }

    // Finds or prepares the record of one task for an attach into `dest`. A record whose task
    // has gone (exited, or its id reused) leaves first, through the exit hooks, and the id is
    // met afresh: identity recorded, then validated, then checked again, so that the identity
    // and the validation are of the same task (a live task keeps its id).
    std::error_code gather(id_type id, container& dest, batch& b, bool skip_gone) noexcept {
        assert(manage_.held_by_me());
        if (task* t = tasks_.find(id)) {
            if (task_alive(*t)) {
                container* from = t->container_.load(std::memory_order_relaxed);
                if (from != &dest) b.add_move({id, from});
                return {};
            }
            remove_task(*t);
        }
        identity_type k;
        bool exiting = false;
        if (std::error_code ec = meet(id, k, exiting)) return skip_gone && ec == std::errc::no_such_process ? std::error_code{} : ec;
        if (exiting) return {};  // accepted, not moved: the kernel skips exiting tasks (PF_EXITING)
        task* t = new (std::nothrow) task(id, top_, std::move(k));
        if (t == nullptr) return detail::errno_code(ENOMEM);
        b.add_fresh(t);
        if (&dest != top_) b.add_move({id, top_});
        return {};
    }

    std::error_code commit(container& dest, batch& b) noexcept {
        assert(manage_.held_by_me());
        auto drop_fresh = [&] {
            for (std::size_t k = 0; k < b.nfresh; ++k) free_task(b.fresh[k]);
        };
        if (!tasks_.reserve(b.nfresh, retired_)) {
            drop_fresh();
            return detail::errno_code(ENOMEM);
        }
        task_set<container> const set(b.moves, b.nmoves);
        if (!set.empty()) {
            for (std::size_t i = 0; i < nsubsys_; ++i) {
                subsys_ops const& o = ops_[i];
                if (!o.can_attach) continue;
                if (std::error_code ec = o.can_attach(o.subsystem, dest.states_[i].load(std::memory_order_relaxed), dest, set)) {
                    for (std::size_t k = i; k-- > 0;) {
                        if (ops_[k].cancel_attach) ops_[k].cancel_attach(ops_[k].subsystem, dest.states_[k].load(std::memory_order_relaxed), dest, set);
                    }
                    drop_fresh();
                    return ec;
                }
            }
        }
        // Commit point: nothing below can fail.
        {
            std::lock_guard cb(callback_);
            for (std::size_t k = 0; k < b.nfresh; ++k) {
                top_->tasks_.push_back(*b.fresh[k]);
                tasks_.insert(b.fresh[k]);
            }
            ntasks_.fetch_add(b.nfresh, std::memory_order_relaxed);
            for (task_move<container> const& m : set) {
                task* t = tasks_.find(m.id);
                m.from->tasks_.erase(m.from->tasks_.iterator_to(*t));
                dest.tasks_.push_back(*t);
                t->container_.store(&dest, std::memory_order_release);
                if (t->tls_container_ != nullptr) t->tls_container_->store(&dest, std::memory_order_release);
            }
            for (std::size_t i = 0; !set.empty() && i < nsubsys_; ++i) {
                if (ops_[i].attach) ops_[i].attach(ops_[i].subsystem, dest.states_[i].load(std::memory_order_relaxed), dest, set);
            }
        }
        for (std::size_t i = 0; !set.empty() && i < nsubsys_; ++i) {
            if (ops_[i].post_attach) ops_[i].post_attach(ops_[i].subsystem, dest.states_[i].load(std::memory_order_relaxed), dest, set);
        }
        for (task_move<container> const& m : set) check_release(*m.from);
        if constexpr (Traits::thread_bound) bind_if_self(set, b);
        return {};
    }

    // A thread that attached itself gets its record cached in thread-local storage and a hook
    // that detaches it when it exits.
    void bind_if_self(task_set<container> set, batch const& b) noexcept {
        id_type const me = Traits::self();
        bool mine = std::any_of(set.begin(), set.end(), [&](task_move<container> const& m) { return m.id == me; });
        for (std::size_t k = 0; !mine && k < b.nfresh; ++k) mine = b.fresh[k]->id == me;
        if (!mine) return;
        task* t = tasks_.find(me);
        if (t->bound_) return;
        std::lock_guard cb(callback_);  // orders the cached cell with later moves
        detail::bind_result const r = detail::bind_this_thread(serial_, t, t->container_.load(std::memory_order_relaxed));
        t->tls_container_ = r.cell;
        t->bound_ = r.bound;  // unbound (no memory): reads use the task table, exit is noticed by reaping
    }

    using identity_type = task_identity_t<Traits>;

    // Whether a record still names a live task, the one it was made for. A thread bound to its
    // record leaves when it exits, so it is alive while bound; otherwise the traits check the
    // identity recorded when the hierarchy met the task (or, without identities, the id).
    // Manage lock held.
    bool task_alive(task const& t) const noexcept { return t.alive(); }

    // Meets a task the hierarchy has no record of: records its identity (not for the calling
    // thread, which is bound to its record and leaves at exit), validates it, and tells whether
    // it is already exiting. Identity first: while the task lives its id cannot name another, so
    // a validation followed by a live check is of the recorded task. Manage lock held.
    std::error_code meet(id_type id, identity_type& k, bool& exiting) noexcept {
        bool const self = Traits::thread_bound && id == Traits::self();
        if constexpr (HasTaskIdentity<Traits>) {
            if (!self) {
                if (std::error_code ec = Traits::identify(id, k)) return ec;
            }
        }
        if (std::error_code ec = Traits::validate(id)) return ec;
        if constexpr (HasTaskIdentity<Traits>) {
            exiting = !self && !Traits::alive(id, k);
        } else {
            exiting = !self && !Traits::alive(id);
        }
        return {};
    }

    // Every way a task leaves (exit, reap, thread exit, a record found stale) comes here, so that
    // the exit hooks drop what subsystems keep per task (the cpuset's requested affinity) before
    // the id can be met again.
    // `leaves_alive`: the task still runs (identity checked by the caller); see task_leaves_alive.
    void remove_task(task& t, bool leaves_alive = false) noexcept {
        assert(manage_.held_by_me());
        container& c = *t.container_.load(std::memory_order_relaxed);
        {
            std::lock_guard cb(callback_);
            c.tasks_.erase(c.tasks_.iterator_to(t));
            tasks_.erase(&t);
            ntasks_.fetch_sub(1, std::memory_order_relaxed);
            run_exit_hooks(c, t.id, leaves_alive);
        }
        detail::retired_node& n = t;
        n.reclaim = [](detail::retired_node* node) noexcept { free_task(static_cast<task*>(node)); };
        push_retired(n);
        check_release(c);
    }

    // Manage and callback locks held.
    void run_exit_hooks(container& c, id_type id, bool leaves_alive) noexcept {
        leaving_alive_ = leaves_alive;
        for (std::size_t i = 0; i < nsubsys_; ++i) {
            if (ops_[i].exit) ops_[i].exit(ops_[i].subsystem, c.states_[i].load(std::memory_order_relaxed), c, id);
        }
        leaving_alive_ = false;
    }

    std::size_t reap_locked(container& c) noexcept {
        std::size_t n = 0;
        for (auto it = c.tasks_.begin(); it != c.tasks_.end();) {
            task& t = *it++;
            if (!task_alive(t)) {
                remove_task(t);
                ++n;
            }
        }
        return n;
    }

    // Manage lock held: notify_on_release fires when a flagged container has no task and no child.
    void check_release(container& c) noexcept {
        assert(manage_.held_by_me());
        if (c.is_top() || c.removed() || !c.notify_on_release()) return;
        if (!c.tasks_.empty() || !c.children_.empty()) return;
        if (!releases_.has_agent()) return;
        // The path is written into the event itself, which push allocates without throwing: a
        // release without memory is dropped and counted, never an exception out of noexcept.
        releases_.push(path_size(c), [&c](char* out) noexcept { write_path(c, out); });
    }

    // The length of a non-top container's path ("/a/b"), and the path written into `out`, which
    // has room for it. Iterative: any depth. Names and parents are immutable.
    static std::size_t path_size(container const& c) noexcept {
        std::size_t len = 0;
        for (container const* p = &c; !p->is_top(); p = p->parent_) len += p->name().size() + 1;
        return len;
    }
    static void write_path(container const& c, char* out) noexcept {
        std::size_t end = path_size(c);
        for (container const* p = &c; !p->is_top(); p = p->parent_) {
            end -= p->name().size();
            std::memcpy(out + end, p->name().data(), p->name().size());
            out[--end] = '/';
        }
    }

    void retire(container& c) noexcept {
        detail::retired_node& n = c;
        n.reclaim = [](detail::retired_node* node) noexcept {
            container* dead = static_cast<container*>(node);
            hierarchy& h = *dead->owner_;
            for (std::size_t i = 0; i < h.nsubsys_; ++i) {
                if (void* st = dead->states_[i].load(std::memory_order_relaxed)) h.ops_[i].delete_state(st);
            }
            container::free(dead);
        };
        push_retired(n);
    }

    static void free_task(task* t) noexcept { delete t; }

    void push_retired(detail::retired_node& n) noexcept {
        n.next = retired_;
        retired_ = &n;
        ++nretired_;
    }

    // Out of line, so that current()'s fast path needs no stack frame.
    [[gnu::noinline, gnu::cold]] container& current_slow() const noexcept {
        if constexpr (Traits::thread_bound) {
            if (void* t = detail::find_binding(serial_)) return *static_cast<task*>(t)->container_.load(std::memory_order_acquire);
        }
        return container_of(Traits::self());
    }

    // Called on an exiting thread that had attached itself.
    // It runs pinned by the binding registry, which teardown() waits for, possibly from inside a
    // read section: it must not wait for a grace period, so it leaves its batch to the next
    // operation.
    void thread_exited(void* p) noexcept override {
        detail::defer_grace_periods defer;
        write_guard g(*this);
        auto* t = static_cast<task*>(p);
        t->bound_ = false;
        t->tls_container_ = nullptr;
        remove_task(*t);
    }

    // Frees everything. Callers must have stopped using the hierarchy; threads still bound to it
    // find its serial gone at exit and do nothing.
    void teardown() noexcept {
        // The agent may call back into the hierarchy (and bind threads to it): let it finish
        // while the serial is still live, so that no thread's cache slot for this hierarchy is
        // handed to another one while this one can still store into it.
        releases_.stop();
        detail::binding_registry::instance().leave(serial_, this);
        {
            std::lock_guard g(manage_);
            // Tasks first, then containers bottom-up, without recursion. A task that still runs
            // leaves as through exit(): its exit hooks give back what they imposed on it (the
            // cpuset's affinity), so that no thread stays pinned by a hierarchy that is gone.
            bool const exit_hooks = std::any_of(ops_.begin(), ops_.begin() + static_cast<std::ptrdiff_t>(nsubsys_),
                                                [](subsys_ops const& o) { return o.exit != nullptr; });
            tasks_.for_each([&](task* t) {
                container& c = *t->container_.load(std::memory_order_relaxed);
                c.tasks_.erase(c.tasks_.iterator_to(*t));
                if (exit_hooks && task_alive(*t)) {
                    std::lock_guard cb(callback_);
                    run_exit_hooks(c, t->id, true);
                }
                delete t;
            });
            container* c = top_;
            while (c != nullptr) {
                if (!c->children_.empty()) {
                    c = &*c->children_.begin();
                    continue;
                }
                container* parent = c->parent_;
                if (parent != nullptr) parent->children_.erase(parent->children_.iterator_to(*c));
                for (std::size_t i = nsubsys_; i-- > 0;) {
                    void* st = c->states_[i].load(std::memory_order_relaxed);
                    if (st == nullptr) continue;
                    if (ops_[i].destroy) ops_[i].destroy(ops_[i].subsystem, st, *c);
                    ops_[i].delete_state(st);
                    c->states_[i].store(nullptr, std::memory_order_relaxed);
                }
                container::free(c);
                c = parent;
            }
            top_ = nullptr;
        }
        // The grace period covers readers that looked at retired objects just before. Where the
        // caller may not wait for one (inside a read section, or on a thread others wait for),
        // the objects go at once: the contract is that nobody uses a hierarchy being destroyed,
        // and that includes readers on other threads still inside sections that read it.
        if (detail::may_wait_for_grace_period()) detail::synchronize();
        detail::reclaim_chain(std::exchange(retired_, nullptr));
        for (std::size_t i = nsubsys_; i-- > 0;) ops_[i].delete_subsystem(ops_[i].subsystem);
    }

    std::uint64_t const serial_;                                   // immutable
    container* top_ = nullptr;                                     // immutable until teardown
    std::atomic<std::size_t> count_{1};                            // stored under the callback lock
    std::atomic<std::size_t> ntasks_{0};                           // stored under the callback lock
    mutable lock_type manage_;
    mutable lock_type callback_;
    std::array<subsys_ops, Slots> ops_{};                          // appended under the manage lock before any child exists
    std::size_t nsubsys_ = 0;                                      // manage lock; fixed once a child exists
    detail::task_table<id_type, task> tasks_;                      // read lock-free; changed under the manage lock
    detail::retired_node* retired_ = nullptr;                      // manage lock
    std::size_t nretired_ = 0;                                     // manage lock
    bool leaving_alive_ = false;                                   // manage lock: see task_leaves_alive
    detail::release_queue releases_;                               // its own lock
};

}  // namespace containers
