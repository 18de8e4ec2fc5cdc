// The path interface: a hierarchy seen as cgroupfs sees it, by path, with its control files.
//
// fs::mkdir, fs::rmdir, fs::read, fs::write and fs::list take absolute paths ("/", "/a/b",
// "/a/b/tasks") and return the errno that the kernel's cgroup v1 filesystem returns to root for
// the same operation: ENOENT, EEXIST, ENOTDIR, EISDIR, EBUSY, EINVAL, ESRCH, ERANGE, E2BIG, ...
// A write takes the bytes of one write(2); a read returns the whole content as the kernel
// formats it. The core files of cgroup v1 are provided here; subsystems add theirs with
// hierarchy::add_file from their populate hook.
#pragma once

#include <algorithm>
#include <cerrno>
#include <concepts>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <dirent.h>
#include <unistd.h>

#include "cftype.hpp"
#include "detail/errors.hpp"
#include "detail/rcu.hpp"
#include "hierarchy.hpp"
#include "detail/tree_walk.hpp"

namespace containers::fs {

/// Who makes a path operation, where that is not the calling thread but a process it serves (a
/// FUSE request's sender): what the kernel would check of the writer. Without one, the calling
/// thread is the writer, with the process's own credentials.
struct caller {
    uid_t uid = 0;  ///< effective user id (FUSE gives the fsuid, which follows it)
    gid_t gid = 0;
    pid_t pid = 0;  ///< the writing thread: the task that "0" names in tasks and cgroup.procs
};

namespace detail {
using containers::detail::errno_code;

/// The writer of the fs::write running on this thread, where it was given one; null otherwise.
inline constinit thread_local caller const* tls_caller = nullptr;

/// The kernel's permission to move task `id` (for cgroup.procs, its thread group's leader), as
/// __cgroup1_procs_write checks it, for a writer given to fs::write. Without one, the task
/// traits' validate checks the calling process when the hierarchy first meets the task.
template <class H>
std::error_code may_attach(typename H::id_type id) noexcept {
    if constexpr (requires { H::traits_type::may_attach_as(uid_t{}, id); }) {
        if (caller const* who = tls_caller) return H::traits_type::may_attach_as(who->uid, id);
    }
    return {};
}

/// The largest write the kernel takes in one piece (a page); more is E2BIG.
inline constexpr std::size_t max_write = 4096;

/// Thread group of a thread, from /proc; 0 where it is gone.
inline pid_t tgid_of(pid_t tid) noexcept {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(tid));
    std::FILE* f = std::fopen(path, "re");
    if (f == nullptr) return 0;
    char line[256];
    int tgid = 0;
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::sscanf(line, "Tgid: %d", &tgid) == 1) break;
    }
    std::fclose(f);
    return static_cast<pid_t>(tgid);
}

/// Threads of a process, from /proc; empty where it is gone.
inline std::vector<pid_t> threads_of(pid_t pid) {
    std::vector<pid_t> out;
    std::string const dir = "/proc/" + std::to_string(pid) + "/task";
    // Closed however the loop ends: push_back may throw bad_alloc (reported as ENOMEM).
    struct closer {
        void operator()(DIR* d) const noexcept { ::closedir(d); }
    };
    if (std::unique_ptr<DIR, closer> d{::opendir(dir.c_str())}) {
        while (dirent* e = ::readdir(d.get())) {
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9') out.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
        }
    }
    return out;
}

/// Whether every live thread of process `pid` is in `c`: those the hierarchy knows are there, and
/// none it does not know is alive (a thread started since the last listing would be). Inside a
/// read section (the records are read lock-free).
template <class H>
bool group_settled(typename H::container const& c, pid_t pid) {
    for (pid_t tid : threads_of(pid)) {
        if (auto const* t = c.owner().find_task(tid)) {
            if (&t->container() != &c) return false;
        } else if (H::traits_type::alive(tid)) {
            return false;
        }
    }
    return true;
}

/// The id written to tasks or cgroup.procs, parsed as kstrtoint(strstrip(buf)) does; 0 means the
/// writer itself. The kernel answers EINVAL for every parse failure here, overflow included.
template <class H>
std::error_code parse_id(std::string_view value, typename H::id_type& out) noexcept {
    std::int64_t v = 0;
    if (parse::s64(parse::strip(value), v) || v < 0 || v > INT32_MAX) return errno_code(EINVAL);
    if (v != 0) {
        out = static_cast<typename H::id_type>(v);
    } else if (tls_caller != nullptr && tls_caller->pid > 0 && H::traits_type::thread_bound) {
        out = static_cast<typename H::id_type>(tls_caller->pid);  // the writer, not the thread serving it
    } else {
        out = H::traits_type::self();
    }
    return {};
}

/// One id per line, ascending, no duplicates.
template <class Id>
std::error_code append_ids(std::string& out, std::vector<Id> ids) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (Id id : ids) {
        out += std::to_string(id);
        out += '\n';
    }
    return {};
}

/// The core files of every cgroup v1 hierarchy (task ids are integers there).
template <class H>
    requires std::integral<typename H::id_type>
std::vector<cftype<typename H::container>> const& core_files() {
    using C = typename H::container;
    static std::vector<cftype<C>> const files = [] {
        std::vector<cftype<C>> v;
        cftype<C> tasks;
        tasks.name = "tasks";
        tasks.read = [](C& c, std::string& out) {
            std::vector<typename H::id_type> ids;
            if (std::error_code ec = c.owner().task_ids(c, ids)) return ec;
            return append_ids(out, std::move(ids));
        };
        tasks.write = [](C& c, std::string_view value) {
            typename H::id_type id{};
            if (std::error_code ec = parse_id<H>(value, id)) return ec;
            if (std::error_code ec = may_attach<H>(id)) return ec;
            return c.owner().attach(id, c);
        };
        v.push_back(tasks);

        cftype<C> procs;
        procs.name = "cgroup.procs";
        procs.read = [](C& c, std::string& out) {
            std::vector<typename H::id_type> ids;
            if (std::error_code ec = c.owner().task_ids(c, ids)) return ec;
            if constexpr (H::traits_type::thread_bound) {
                for (auto& id : ids) id = tgid_of(id);
                std::erase(ids, 0);
            }
            return append_ids(out, std::move(ids));
        };
        procs.write = [](C& c, std::string_view value) {
            typename H::id_type id{};
            if (std::error_code ec = parse_id<H>(value, id)) return ec;
            if constexpr (H::traits_type::thread_bound) {
                // The kernel checks the writer against the group's leader.
                pid_t const leader = tls_caller != nullptr ? tgid_of(id) : id;
                if (leader == 0) return errno_code(ESRCH);
                if (std::error_code ec = may_attach<H>(leader)) return ec;
                // The kernel moves the group under its threadgroup lock: no thread starts or ends
                // meanwhile, so the write never fails because one did. Here a thread that ended
                // after the listing is skipped (attach_thread_group); one that ends later, while
                // a subsystem acts on it (ESRCH from a hook), makes the move start over; and the
                // group is listed again until every live thread in it is in `c` (threads started
                // meanwhile are picked up). A bounded number of rounds.
                std::error_code last;
                for (int round = 0; round < 64; ++round) {
                    std::vector<pid_t> threads = threads_of(id);
                    if (threads.empty()) return errno_code(ESRCH);  // the process has gone
                    last = c.owner().attach_thread_group(threads, c);
                    if (last == std::errc::no_such_process) continue;
                    if (last) return last;
                    // The group has moved: a re-listing that runs out of memory counts as settled
                    // rather than reporting a failure for a write that took effect.
                    bool settled = true;
                    (void)containers::detail::guarded_call([&] {
                        settled = group_settled<H>(c, id);
                        return std::error_code{};
                    });
                    if (settled) return last;
                }
                return last;
            } else {
                if (std::error_code ec = may_attach<H>(id)) return ec;
                return c.owner().attach(id, c);
            }
        };
        v.push_back(procs);

        v.push_back(flag_file<C>(
            "notify_on_release", [](C& c) { return c.notify_on_release(); },
            [](C& c, bool on) { return c.owner().set_notify_on_release(c, on); }));
        v.push_back(flag_file<C>(
            "cgroup.clone_children", [](C& c) { return c.clone_children(); },
            [](C& c, bool on) { return c.owner().set_clone_children(c, on); }));

        cftype<C> agent;
        agent.name = "release_agent";
        agent.scope = cftype<C>::where::top_only;
        agent.read = [](C& c, std::string& out) {
            out += c.owner().release_agent_program();
            out += '\n';
            return std::error_code{};
        };
        agent.write = [](C& c, std::string_view value) {
            // Since the fix for CVE-2022-0492 the kernel takes the agent only from a writer with
            // CAP_SYS_ADMIN in the initial user namespace (the C++ setter is the host's choice).
            if (!containers::detail::may_set_release_agent()) return errno_code(EPERM);
            c.owner().set_release_agent_program(parse::strip(value));
            return std::error_code{};
        };
        v.push_back(agent);

        cftype<C> sane;
        sane.name = "cgroup.sane_behavior";
        sane.scope = cftype<C>::where::top_only;
        sane.read = [](C&, std::string& out) {
            out += "0\n";
            return std::error_code{};
        };
        v.push_back(sane);
        return v;
    }();
    return files;
}

template <class C>
cftype<C> const* find_file(std::vector<cftype<C>> const& core, C& c, std::string_view name) noexcept {
    for (cftype<C> const& f : core) {
        if (f.name == name && f.shown_in(c)) return &f;
    }
    for (cftype<C> const* f : c.added_files()) {
        if (f->name == name) return f;
    }
    return nullptr;
}

/// What a path names: a container, or a file in one.
template <class H>
struct target {
    typename H::container* dir = nullptr;
    cftype<typename H::container> const* file = nullptr;
};

inline bool split_last(std::string_view path, std::string_view& parent, std::string_view& last) noexcept {
    // For mkdir: the parent's path and the new name.
    while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    std::size_t const slash = path.rfind('/');
    if (slash == std::string_view::npos) return false;
    parent = slash == 0 ? std::string_view("/") : path.substr(0, slash);
    last = path.substr(slash + 1);
    return true;
}

/// Resolves `path` inside a read section (which keeps the result valid). ENOTDIR where a file
/// is used as a directory, ENOENT where nothing has that name.
template <class H>
std::error_code resolve(H& h, std::string_view path, target<H>& out) noexcept {
    std::string_view rest;
    if (std::error_code ec = h.walk(path, out.dir, rest)) return ec;  // ENOENT (empty), EINVAL (relative)
    if (rest.empty()) return {};
    // What remains must be one file name, with nothing after it but a trailing slash.
    std::size_t const slash = rest.find('/');
    std::string_view const name = rest.substr(0, slash);
    out.file = find_file(core_files<H>(), *out.dir, name);
    if (out.file == nullptr) return errno_code(ENOENT);
    if (slash != std::string_view::npos) return errno_code(ENOTDIR);  // a file used as a directory
    return {};
}

/// Resolves a path that must name a file of a live container (EISDIR for a container).
template <class H>
std::error_code resolve_file(H& h, std::string_view path, target<H>& t) noexcept {
    if (std::error_code ec = resolve(h, path, t)) return ec;
    if (t.file == nullptr) return errno_code(EISDIR);
    if (t.dir->removed()) return errno_code(ENODEV);
    return {};
}

/// Runs a handler of `t.file` as its `lock` says: for locking::manage, with the manage lock held
/// and the container checked live (ENODEV once removed: the kernel's cgroup_kn_lock_live). Inside
/// the caller's read section, which keeps `t.dir` valid between the lookup and the lock.
template <class H, class F>
std::error_code run_handler(H& h, target<H> const& t, F&& handler) noexcept {
    if (t.file->lock == cftype<typename H::container>::locking::manage) {
        auto lock = h.manage_lock();
        if (t.dir->removed()) return errno_code(ENODEV);
        return containers::detail::guarded_call(handler);
    }
    return containers::detail::guarded_call(handler);
}

}  // namespace detail

/// Creates the container at `path`. Errors as mkdir(2) on cgroupfs: ENOENT (no parent, or empty
/// name), ENOTDIR (parent is a file), EEXIST, EINVAL (newline in the name), plus what the hooks say.
template <class H>
[[nodiscard]] std::error_code mkdir(H& h, std::string_view path) noexcept {
    std::string_view parent, name;
    if (path.empty()) return detail::errno_code(ENOENT);
    if (path.front() != '/') return detail::errno_code(EINVAL);
    if (!detail::split_last(path, parent, name) || name.empty()) return detail::errno_code(EEXIST);  // "/"
    read_section rs;
    detail::target<H> t;
    if (std::error_code ec = detail::resolve(h, parent, t)) return ec;
    if (t.file != nullptr) return detail::errno_code(ENOTDIR);
    return h.mkdir(*t.dir, name);
}

/// Removes the container at `path`. Errors as rmdir(2) on cgroupfs: ENOENT, ENOTDIR (a file),
/// EBUSY (children, tasks, or the top container); and as the VFS answers before cgroupfs sees
/// the call, once the parent resolves: EINVAL when the last component is "." ("/a/." or "/a/./"),
/// ENOTEMPTY when it is "..". Nothing is removed then.
template <class H>
[[nodiscard]] std::error_code rmdir(H& h, std::string_view path) noexcept {
    read_section rs;
    detail::target<H> t;
    std::string_view parent, last;
    if (!path.empty() && path.front() == '/' && detail::split_last(path, parent, last) && (last == "." || last == "..")) {
        if (std::error_code ec = detail::resolve(h, parent, t)) return ec;
        if (t.file != nullptr) return detail::errno_code(ENOTDIR);
        return detail::errno_code(last == "." ? EINVAL : ENOTEMPTY);
    }
    if (std::error_code ec = detail::resolve(h, path, t)) return ec;
    if (t.file != nullptr) return detail::errno_code(ENOTDIR);
    return h.rmdir(*t.dir);
}

/// Reads the whole content of the file at `path` into `out` (replacing it).
/// Errors: ENOENT, ENOTDIR, EISDIR (a container), EINVAL (a file that cannot be read), ENODEV
/// (its container was removed meanwhile), or the handler's.
/// Locking: a file of locking::manage (every subsystem_files file, cpuset's) is read with the
///   manage lock held and its container checked live; a raw cftype's handler runs unlocked.
template <class H>
[[nodiscard]] std::error_code read(H& h, std::string_view path, std::string& out) noexcept {
    read_section rs;
    detail::target<H> t;
    if (std::error_code ec = detail::resolve_file(h, path, t)) return ec;
    if (!t.file->read) return detail::errno_code(EINVAL);
    std::string content;
    if (std::error_code ec = detail::run_handler(h, t, [&] { return t.file->read(*t.dir, content); })) return ec;
    out = std::move(content);
    return {};
}

/// How a write opens its file: as open(2) with O_WRONLY, or with O_WRONLY | O_CREAT | O_TRUNC
/// as a shell's `echo VALUE > PATH` does (cgroupfs creates nothing, so only the errors differ).
enum class open_mode { write_only, create };

namespace detail {
/// fs::write, by `who` (null: the calling thread).
template <class H>
std::error_code write_as(H& h, std::string_view path, std::string_view value, caller const* who, open_mode mode) noexcept {
    // tasks and cgroup.procs find the writer here (the kernel's handlers: in of->file).
    struct scope {
        caller const* outer = tls_caller;
        explicit scope(caller const* w) noexcept { tls_caller = w; }
        ~scope() { tls_caller = outer; }
    } const writer(who);
    read_section rs;
    target<H> t;
    if (mode == open_mode::create && !path.empty() && path.front() == '/') {
        // The VFS answers before cgroupfs: once the directories on the way resolve, O_CREAT of a
        // name ending in '/' is EISDIR whatever it names, and a missing name is refused by the
        // directory's permission to create (EACCES: cgroupfs has no ->create).
        std::string_view trimmed = path;
        while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.remove_suffix(1);
        std::string_view parent, last;
        if (split_last(trimmed, parent, last) && !last.empty()) {
            target<H> dir;
            if (std::error_code ec = resolve(h, parent, dir)) return ec;
            if (dir.file != nullptr) return errno_code(ENOTDIR);
            if (trimmed.size() != path.size()) return errno_code(EISDIR);
            if (last != "." && last != ".." && resolve(h, trimmed, t) == std::errc::no_such_file_or_directory) {
                return errno_code(EACCES);
            }
            t = {};
        }
    }
    if (std::error_code ec = resolve_file(h, path, t)) return ec;
    std::size_t const limit = t.file->max_write_len != 0 ? t.file->max_write_len : max_write;
    if (value.size() > limit) return errno_code(E2BIG);
    if (value.empty()) return {};
    if (!t.file->write) return errno_code(EINVAL);
    // The kernel hands handlers a NUL-terminated copy: text after a NUL byte is not seen.
    value = value.substr(0, value.find('\0'));
    if (std::error_code ec = run_handler(h, t, [&] { return t.file->write(*t.dir, value); })) return ec;
    if (t.file->after_write) {
        (void)containers::detail::guarded_call([&] {
            t.file->after_write(*t.dir);
            return std::error_code{};
        });
    }
    return {};
}
}  // namespace detail

/// Writes `value` to the file at `path`, as one write(2) of those bytes would, after opening it
/// as `mode` says.
/// Errors, in the kernel's order: from the open, ENOENT, ENOTDIR, EISDIR (a container; with
///   `create` also a path ending in '/'), and with `create` EACCES where a live container has no
///   file of that name (cgroupfs has no create operation: release_agent and the other top-only
///   files below the top, for one); then, as kernfs and cgroup_file_write check, E2BIG (over the
///   file's max_write_len, a page unless the file says otherwise), success for an empty write,
///   EINVAL (a file that cannot be written, or a malformed value), ENODEV, or the handler's.
/// Locking: a file of locking::manage (every subsystem_files file, cpuset's) is written with the
///   manage lock held and its container checked live, as the kernel writes under cgroup_mutex;
///   its after_write runs once the lock is released. A raw cftype's handler runs unlocked.
template <class H>
[[nodiscard]] std::error_code write(H& h, std::string_view path, std::string_view value, open_mode mode = open_mode::write_only) noexcept {
    return detail::write_as(h, path, value, nullptr, mode);
}

/// As write above, for a writer other than the calling thread (`who`, a FUSE request's sender),
/// checked as the kernel checks the writer: in tasks and cgroup.procs, "0" names `who.pid`, and
/// moving a task needs `who.uid` to be root's or the task's real or saved user id (for
/// cgroup.procs, its thread group leader's), else EACCES, as __cgroup1_procs_write answers
/// (where the task traits know user ids: thread_task_traits). The calling process's own
/// permission still applies when the hierarchy first meets a task.
template <class H>
[[nodiscard]] std::error_code write(H& h, std::string_view path, std::string_view value, caller const& who,
                                    open_mode mode = open_mode::write_only) noexcept {
    return detail::write_as(h, path, value, &who, mode);
}

/// The names in the container at `path`: its children, then its files, each group sorted.
/// Errors: ENOENT, ENOTDIR (a file), ENOMEM.
template <class H>
[[nodiscard]] std::error_code list(H& h, std::string_view path, std::vector<std::string>& out) noexcept {
    read_section rs;
    detail::target<H> t;
    if (std::error_code ec = detail::resolve(h, path, t)) return ec;
    if (t.file != nullptr) return detail::errno_code(ENOTDIR);
    return containers::detail::guarded_call([&] {
        std::vector<std::string> names;
        {
            auto lock = h.manage_lock();
            if (t.dir->removed()) return detail::errno_code(ENOENT);
            for (auto& child : containers::detail::tree_access::children(*t.dir)) names.emplace_back(child.name());
        }
        std::vector<std::string> files;
        for (auto const& f : detail::core_files<H>()) {
            if (f.shown_in(*t.dir)) files.emplace_back(f.name);
        }
        for (auto const* f : t.dir->added_files()) files.emplace_back(f->name);
        std::sort(files.begin(), files.end());
        names.insert(names.end(), files.begin(), files.end());
        out = std::move(names);
        return std::error_code{};
    });
}

}  // namespace containers::fs
