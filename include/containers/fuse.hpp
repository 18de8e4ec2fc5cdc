// A hierarchy as a real filesystem: cgroupfs for the host process, served with FUSE (libfuse3).
//
// This header does not include libfuse; the serving part is compiled in the optional target
// containers::fuse (built where pkg-config finds fuse3). Link it to use mount():
//
//     containers::hierarchy<> h;
//     std::error_code ec;
//     containers::fuse::mounted m = containers::fuse::mount(h, "/run/app/cgroup", {}, ec);
//     // a shell may now `ls`, `cat`, `echo $tid > tasks`, `mkdir`, `rmdir` there
//
// Every operation is the path interface (control_files.hpp) underneath, from threads of the
// host process: mkdir, rmdir, readdir (fs::list), open+read (one fs::read per open, a snapshot
// of the file as kernfs takes for seq files), write (one write(2) is one fs::write by the
// writing process, fs::caller: "0" in tasks names the writer, and moving a task obeys the
// kernel's rule for the writer's user id; its errno is what the writer sees). Files show the kernel's modes (0644 writable, 0444 read-only), size 0;
// directories 0755, the top one options::top_mode (0555, as on cgroupfs), owned by options::uid
// and gid; a group made through the mount by a caller other than root belongs to that caller,
// files included, as cgroupfs does (cgroup_kn_set_ugid). chmod and chown change a node's mode and
// owner as on kernfs: kept by the mount, per node (by its container's serial, so never inherited
// by a later group of the same name), until the group is removed (a group the program removes
// itself is dropped at the next sweep, see mounted::groups_kept) or the mount ends; the kernel enforces them for callers other than root (default_permissions). unlink,
// create, mknod, symlink and link are refused with the kernel's errnos; O_TRUNC is accepted.
// rename answers with cgroup1_rename's errnos (ENOTDIR for a file, EIO across parents, EEXIST,
// EINVAL), except that renaming a group in place, which the kernel does, is EPERM: a container's
// name is immutable (lock-free readers compare and print it).
//
// Crash recovery: with options::auto_unmount (the default) a fusermount3 helper unmounts when
// the host process dies. Without it, or where the helper is absent, a dead host leaves the
// directory answering ENOTCONN: `fusermount3 -u DIR` (or `umount -l DIR` as root) removes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <sys/types.h>
#include <unistd.h>

#include "control_files.hpp"
#include "detail/errors.hpp"

namespace containers::fuse {

/// How the mount looks and who may use it.
struct options {
    uid_t uid = ::geteuid();   ///< owner of every directory and file shown
    gid_t gid = ::getegid();
    mode_t top_mode = 0555;    ///< the top directory's permission bits (cgroupfs shows 0555)
    bool allow_other = false;  ///< let other users in (for a non-root host, needs user_allow_other in /etc/fuse.conf)
    bool auto_unmount = true;  ///< unmount when the host process dies (through fusermount3); falls back to a plain mount
    bool debug = false;        ///< libfuse's request log on standard error
};

/// What a path names, for getattr.
struct node {
    bool directory = false;
    bool readable = false;  ///< a file with a read handler
    bool writable = false;  ///< a file with a write handler
    std::uint64_t serial = 0;  ///< the directory's basic_container::serial (a file's: its directory's)
};

/// The path operations a mount serves; mount() adapts a hierarchy to them. Called concurrently
/// from libfuse's threads.
class operations {
public:
    virtual ~operations() = default;
    virtual std::error_code stat(std::string_view path, node& out) noexcept = 0;
    virtual std::error_code mkdir(std::string_view path) noexcept = 0;
    virtual std::error_code rmdir(std::string_view path) noexcept = 0;
    virtual std::error_code read(std::string_view path, std::string& out) noexcept = 0;
    /// `who`: the writing process, checked as the kernel checks the writer (fs::write).
    virtual std::error_code write(std::string_view path, std::string_view value, fs::caller const& who) noexcept = 0;
    virtual std::error_code list(std::string_view path, std::vector<std::string>& out) noexcept = 0;
};

namespace detail {
struct session;
struct session_deleter {
    void operator()(session* s) const noexcept;
};

template <class H>
class hierarchy_operations final : public operations {
public:
    explicit hierarchy_operations(H& h) noexcept : h_(h) {}
    std::error_code stat(std::string_view path, node& out) noexcept override {
        read_section rs;
        fs::detail::target<H> t;
        if (std::error_code ec = fs::detail::resolve(h_, path, t)) return ec;
        if (t.dir->removed()) return containers::detail::errno_code(ENOENT);
        out.directory = t.file == nullptr;
        out.readable = t.file != nullptr && static_cast<bool>(t.file->read);
        out.writable = t.file != nullptr && static_cast<bool>(t.file->write);
        out.serial = t.dir->serial();
        return {};
    }
    std::error_code mkdir(std::string_view path) noexcept override { return fs::mkdir(h_, path); }
    std::error_code rmdir(std::string_view path) noexcept override { return fs::rmdir(h_, path); }
    std::error_code read(std::string_view path, std::string& out) noexcept override { return fs::read(h_, path, out); }
    std::error_code write(std::string_view path, std::string_view value, fs::caller const& who) noexcept override {
        return fs::write(h_, path, value, who);
    }
    std::error_code list(std::string_view path, std::vector<std::string>& out) noexcept override {
        return fs::list(h_, path, out);
    }

private:
    H& h_;
};

/// The number of groups the session keeps a mode or owner for (mounted::groups_kept).
std::size_t groups_kept(session& s) noexcept;

/// Mounts `ops` at `dir` and starts serving (defined in the containers::fuse library).
std::unique_ptr<session, session_deleter> start(std::unique_ptr<operations> ops, std::string const& dir,
                                                options const& o, std::error_code& ec) noexcept;
}  // namespace detail

/// A served mount; unmounts (lazily) and joins its threads when destroyed or unmount() is called.
class mounted {
public:
    mounted() noexcept = default;
    explicit mounted(std::unique_ptr<detail::session, detail::session_deleter> s) noexcept : s_(std::move(s)) {}
    mounted(mounted&&) noexcept = default;
    mounted& operator=(mounted&& o) noexcept {
        if (this != &o) {
            unmount();
            s_ = std::move(o.s_);
        }
        return *this;
    }
    ~mounted() { unmount(); }

    /// Effects: detaches the mount (MNT_DETACH, or fusermount3 -u -z for a non-root host), stops
    /// serving and joins the serving threads. A process that still has a file open on the
    /// detached mount gets ENOTCONN from then on. Idempotent.
    void unmount() noexcept { s_.reset(); }
    [[nodiscard]] bool active() const noexcept { return s_ != nullptr; }
    /// The number of groups for which the mount keeps a mode or owner (chmod, chown, mkdir by
    /// another user); 0 when not active. A group removed through the mount is dropped at once;
    /// one the program removes itself, at the next sweep: the count stays below twice the
    /// groups still there, or 16. For tests and monitoring.
    [[nodiscard]] std::size_t groups_kept() const noexcept { return s_ ? detail::groups_kept(*s_) : 0; }

private:
    std::unique_ptr<detail::session, detail::session_deleter> s_;
};

/// Serves `h` at the existing directory `dir` until the returned handle is destroyed. `h` must
/// outlive the handle.
/// Errors: ENOENT/ENOTDIR (dir), EPERM/EACCES (mounting not permitted), ENODEV (no /dev/fuse),
/// ENOMEM, or EIO where libfuse fails without saying why. Nothing is mounted then.
/// Locking: none held; served operations take the hierarchy's locks as the path interface does.
template <class H>
[[nodiscard]] mounted mount(H& h, std::string_view dir, options const& o, std::error_code& ec) noexcept {
    std::unique_ptr<operations> ops;
    std::string path;
    ec = containers::detail::guarded_call([&] {
        ops = std::make_unique<detail::hierarchy_operations<H>>(h);
        path.assign(dir);
        return std::error_code{};
    });
    if (ec) return {};
    return mounted(detail::start(std::move(ops), path, o, ec));
}

}  // namespace containers::fuse
