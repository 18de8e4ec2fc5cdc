// containers::fuse: libfuse3's high-level (path) API over containers::fuse::operations.
// See include/containers/fuse.hpp for what is served and how.
#define FUSE_USE_VERSION 312
#include <containers/fuse.hpp>

#include <fuse3/fuse.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>
#include <mutex>
#include <map>
#include <set>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace containers::fuse::detail {

struct session {
    std::unique_ptr<operations> ops;
    options opt;
    std::string dir;
    timespec mounted_at{};
    dev_t dev = 0;
    // Snapshots of reading opens not yet released: freed at the end where an aborted connection
    // never sends their release.
    std::mutex open_mutex;
    std::set<void*> open_files;  // the mount's device: its minor number names the connection in fusectl
    // Modes and owners that differ from the defaults (chmod, chown, mkdir by another user), keyed
    // by the container's serial and the file's name ("" for the directory itself).
    struct attributes {
        mode_t mode = 0;  // permission bits
        uid_t uid = 0;
        gid_t gid = 0;
    };
    std::mutex attr_mutex;
    std::map<std::pair<std::uint64_t, std::string>, attributes> attrs;
    // The owner of a group's files, where a caller other than root made the group.
    std::map<std::uint64_t, std::pair<uid_t, gid_t>> made_by;
    // The path of each group with an entry above (a group's path never changes: the library
    // does not rename), so that the entries of groups the program removed itself, not through
    // the mount, are found and dropped: swept whenever their number reaches sweep_at, which is
    // then twice the number left. Guarded by attr_mutex.
    std::map<std::uint64_t, std::string> kept_at;
    std::size_t sweep_at = min_sweep;
    static constexpr std::size_t min_sweep = 16;
    struct ::fuse* f = nullptr;
    std::thread loop;
};

namespace {

session& self() noexcept { return *static_cast<session*>(::fuse_get_context()->private_data); }

int fail(std::error_code ec) noexcept { return ec ? -ec.value() : 0; }

// The snapshot a reading open takes (kernfs fills a seq file's buffer once, then serves reads
// from it).
struct open_file {
    std::string content;
};

void* on_init(fuse_conn_info*, fuse_config* cfg) {
    // Nothing cached: each lookup and getattr asks the hierarchy, which the host changes too.
    cfg->entry_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->direct_io = 1;  // one write(2) is one write request; reads bypass the page cache (size 0)
    cfg->kernel_cache = 0;
    return ::fuse_get_context()->private_data;
}

// A path's last component: the key of a file's attributes in its directory ("" for a directory).
std::string file_key(char const* path, node const& n) {
    if (n.directory) return {};
    std::string_view const p(path);
    return std::string(p.substr(p.rfind('/') + 1));
}

// The path of a node's group: the node's for a directory, its parent's for a file.
std::string group_path(char const* path, node const& n) {
    std::string_view const p(path);
    if (n.directory) return std::string(p);
    std::size_t const slash = p.rfind('/');
    return slash == 0 || slash == std::string_view::npos ? std::string("/") : std::string(p.substr(0, slash));
}

// Records that the mount keeps something for the group `serial` at `dir`; true where a sweep is
// due. attr_mutex held.
bool keep(session& s, std::uint64_t serial, std::string dir) {
    s.kept_at.try_emplace(serial, std::move(dir));
    return s.kept_at.size() >= s.sweep_at;
}

// Drops what the mount keeps for group `serial`. attr_mutex held.
void forget(session& s, std::uint64_t serial) noexcept {
    s.made_by.erase(serial);
    s.attrs.erase(s.attrs.lower_bound({serial, std::string()}), s.attrs.lower_bound({serial + 1, std::string()}));
    s.kept_at.erase(serial);
}

// Drops what the mount keeps for groups that are gone (removed by the program: the mount sees
// no rmdir then). A serial is never reused, so a group found gone stays gone.
void sweep(session& s) noexcept {
    try {
        std::vector<std::pair<std::uint64_t, std::string>> groups;
        {
            std::lock_guard g(s.attr_mutex);
            groups.assign(s.kept_at.begin(), s.kept_at.end());
        }
        std::vector<std::uint64_t> gone;
        for (auto const& [serial, path] : groups) {
            node n;
            std::error_code const ec = s.ops->stat(path, n);
            if (ec == std::errc::no_such_file_or_directory || (!ec && n.serial != serial)) gone.push_back(serial);
        }
        std::lock_guard g(s.attr_mutex);
        for (std::uint64_t serial : gone) forget(s, serial);
        s.sweep_at = std::max(session::min_sweep, 2 * s.kept_at.size());
    } catch (...) {
        // No memory for the sweep: the entries stay until the next one.
    }
}

// The mode and owner a node shows: the kernel's defaults, then what the mount keeps for it.
session::attributes attributes_of(session& s, char const* path, node const& n) {
    session::attributes a;
    a.uid = s.opt.uid;
    a.gid = s.opt.gid;
    if (n.directory) {
        a.mode = std::strcmp(path, "/") == 0 ? (s.opt.top_mode & 07777) : 0755;
    } else {
        // As kernfs: S_IRUGO where there is a read handler, S_IWUSR where there is a write one.
        a.mode = (n.readable ? 0444 : 0) | (n.writable ? 0200 : 0);
    }
    std::lock_guard g(s.attr_mutex);
    if (auto m = s.made_by.find(n.serial); m != s.made_by.end()) {
        a.uid = m->second.first;
        a.gid = m->second.second;
    }
    if (auto it = s.attrs.find({n.serial, file_key(path, n)}); it != s.attrs.end()) a = it->second;
    return a;
}

int on_getattr(char const* path, struct stat* st, fuse_file_info*) {
    session& s = self();
    node n;
    if (std::error_code ec = s.ops->stat(path, n)) return fail(ec);
    session::attributes a;
    try {
        a = attributes_of(s, path, n);
    } catch (...) {
        return -ENOMEM;
    }
    std::memset(st, 0, sizeof *st);
    st->st_uid = a.uid;
    st->st_gid = a.gid;
    st->st_atim = st->st_mtim = st->st_ctim = s.mounted_at;
    st->st_mode = (n.directory ? S_IFDIR : S_IFREG) | a.mode;
    st->st_nlink = n.directory ? 2 : 1;
    return 0;
}

// chmod and chown, as kernfs keeps them (the kernel has checked the caller: default_permissions).
template <class Change>
int change_attributes(char const* path, Change change) {
    session& s = self();
    node n;
    if (std::error_code ec = s.ops->stat(path, n)) return fail(ec);
    bool due = false;
    try {
        session::attributes a = attributes_of(s, path, n);
        change(a);
        std::string dir = group_path(path, n);
        std::string key = file_key(path, n);
        std::lock_guard g(s.attr_mutex);
        due = keep(s, n.serial, std::move(dir));  // first: a group without its path would never be swept
        s.attrs[{n.serial, std::move(key)}] = a;
    } catch (...) {
        return -ENOMEM;
    }
    if (due) sweep(s);
    return 0;
}

int on_chmod(char const* path, mode_t mode, fuse_file_info*) {
    return change_attributes(path, [&](session::attributes& a) { a.mode = mode & 07777; });
}

int on_chown(char const* path, uid_t uid, gid_t gid, fuse_file_info*) {
    return change_attributes(path, [&](session::attributes& a) {
        if (uid != static_cast<uid_t>(-1)) a.uid = uid;
        if (gid != static_cast<gid_t>(-1)) a.gid = gid;
    });
}

int on_readdir(char const* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*, fuse_readdir_flags) {
    std::vector<std::string> names;
    if (std::error_code ec = self().ops->list(path, names)) return fail(ec);
    fill(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    fill(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    for (auto const& n : names) {
        if (fill(buf, n.c_str(), nullptr, 0, static_cast<fuse_fill_dir_flags>(0)) != 0) return -ENOMEM;
    }
    return 0;
}

int on_mkdir(char const* path, mode_t mode) {
    session& s = self();
    if (std::error_code ec = s.ops->mkdir(path)) return fail(ec);
    // As cgroup_mkdir: the mode asked for (the kernel applied the umask), and a caller other than
    // root owns the group and its files (cgroup_kn_set_ugid).
    fuse_context const* c = ::fuse_get_context();
    node n;
    if ((mode & 07777) == 0755 && c->uid == 0 && c->gid == 0) return 0;
    if (s.ops->stat(path, n)) return 0;  // removed meanwhile
    bool due = false;
    try {
        uid_t const uid = c->uid == 0 && c->gid == 0 ? s.opt.uid : c->uid;
        gid_t const gid = c->uid == 0 && c->gid == 0 ? s.opt.gid : c->gid;
        std::string dir = group_path(path, n);
        std::lock_guard g(s.attr_mutex);
        if (uid == s.opt.uid && gid == s.opt.gid && (mode & 07777) == 0755) return 0;
        due = keep(s, n.serial, std::move(dir));
        if (uid != s.opt.uid || gid != s.opt.gid) s.made_by[n.serial] = {uid, gid};
        if ((mode & 07777) != 0755) s.attrs[{n.serial, std::string()}] = {static_cast<mode_t>(mode & 07777), uid, gid};
    } catch (...) {
        // The group exists; it shows the default mode and owner.
    }
    if (due) sweep(s);
    return 0;
}

int on_rmdir(char const* path) {
    session& s = self();
    node n;
    bool const known = !s.ops->stat(path, n) && n.directory;
    if (std::error_code ec = s.ops->rmdir(path)) return fail(ec);
    if (known) {  // what the mount kept for the group goes with it
        std::lock_guard g(s.attr_mutex);
        forget(s, n.serial);
    }
    return 0;
}

int on_open(char const* path, fuse_file_info* fi) {
    session& s = self();
    node n;
    if (std::error_code ec = s.ops->stat(path, n)) return fail(ec);
    if (n.directory) return -EISDIR;
    // As on cgroupfs, the modes are the only gate (checked by the kernel for non-root callers,
    // default_permissions): root may open a read-only file for writing, and its write answers
    // EINVAL, as the path interface does for a file without a write handler.
    bool const reads = (fi->flags & O_ACCMODE) != O_WRONLY;
    fi->direct_io = 1;
    fi->fh = 0;
    if (reads && n.readable) {
        auto* f = new (std::nothrow) open_file;
        if (f == nullptr) return -ENOMEM;
        std::error_code ec;
        try {
            ec = s.ops->read(path, f->content);
        } catch (...) {
            ec = std::make_error_code(std::errc::not_enough_memory);
        }
        if (ec) {
            delete f;
            return fail(ec);
        }
        try {
            std::lock_guard g(s.open_mutex);
            s.open_files.insert(f);
        } catch (...) {
            delete f;
            return -ENOMEM;
        }
        fi->fh = reinterpret_cast<std::uint64_t>(f);
    }
    return 0;
}

int on_read(char const*, char* buf, size_t size, off_t off, fuse_file_info* fi) {
    auto* f = reinterpret_cast<open_file*>(fi->fh);
    if (f == nullptr) return -EINVAL;  // a file without a read handler
    if (off < 0) return -EINVAL;
    auto const at = static_cast<std::size_t>(off);
    if (at >= f->content.size()) return 0;
    std::size_t const n = std::min(size, f->content.size() - at);
    std::memcpy(buf, f->content.data() + at, n);
    return static_cast<int>(n);
}

int on_write(char const* path, char const* buf, size_t size, off_t, fuse_file_info*) {
    // The writer, not the thread serving it: the kernel checks the writer's credentials (those
    // of the write request; the kernel takes the opener's, the same but for a passed descriptor).
    fuse_context const* c = ::fuse_get_context();
    fs::caller const who{c->uid, c->gid, c->pid};
    if (std::error_code ec = self().ops->write(path, std::string_view(buf, size), who)) return fail(ec);
    return static_cast<int>(size);
}

int on_release(char const*, fuse_file_info* fi) {
    auto* f = reinterpret_cast<open_file*>(fi->fh);
    if (f != nullptr) {
        session& s = self();
        std::lock_guard g(s.open_mutex);
        s.open_files.erase(f);
    }
    delete f;
    fi->fh = 0;
    return 0;
}

int on_truncate(char const* path, off_t, fuse_file_info*) {
    // kernfs accepts a truncation (O_TRUNC on `echo >`) and changes nothing.
    node n;
    if (std::error_code ec = self().ops->stat(path, n)) return fail(ec);
    return n.directory ? -EISDIR : 0;
}

int on_utimens(char const* path, timespec const*, fuse_file_info*) {
    node n;  // `touch` of an existing file succeeds on cgroupfs; the times are not kept here
    return fail(self().ops->stat(path, n));
}

// The kernel's answers on cgroupfs: no new files (open with O_CREAT: EACCES), nothing removed,
// linked or made but directories.
int on_create(char const*, mode_t, fuse_file_info*) { return -EACCES; }
int on_mknod(char const*, mode_t, dev_t) { return -EPERM; }
int on_unlink(char const*) { return -EPERM; }
int on_symlink(char const*, char const*) { return -EPERM; }
int on_link(char const*, char const*) { return -EPERM; }

int on_rename(char const* from, char const* to, unsigned int flags) {
    // kernfs_iop_rename takes no flags; then cgroup1_rename: EINVAL for a new name with a
    // newline, ENOTDIR for a file, EIO across parents; then kernfs_rename: EEXIST where the name
    // is taken. Renaming a group in place, which the kernel allows, the library does not offer
    // (a container's name is immutable: lock-free readers compare and print it): EPERM.
    if (flags != 0) return -EINVAL;
    std::string_view const a(from), b(to);
    if (b.substr(b.rfind('/') + 1).find('\n') != std::string_view::npos) return -EINVAL;
    node n;
    if (std::error_code ec = self().ops->stat(from, n)) return fail(ec);
    if (!n.directory) return -ENOTDIR;
    if (a.substr(0, a.rfind('/')) != b.substr(0, b.rfind('/'))) return -EIO;
    if (!self().ops->stat(to, n)) return -EEXIST;
    return -EPERM;
}

fuse_operations make_operations() noexcept {
    fuse_operations o{};
    o.init = on_init;
    o.getattr = on_getattr;
    o.readdir = on_readdir;
    o.mkdir = on_mkdir;
    o.rmdir = on_rmdir;
    o.open = on_open;
    o.read = on_read;
    o.write = on_write;
    o.release = on_release;
    o.truncate = on_truncate;
    o.utimens = on_utimens;
    o.create = on_create;
    o.mknod = on_mknod;
    o.unlink = on_unlink;
    o.symlink = on_symlink;
    o.link = on_link;
    o.rename = on_rename;
    o.chmod = on_chmod;
    o.chown = on_chown;
    return o;
}

struct ::fuse* make_fuse(session& s, bool auto_unmount) noexcept {
    static fuse_operations const ops = make_operations();
    fuse_args args = FUSE_ARGS_INIT(0, nullptr);
    std::string opts = "default_permissions,fsname=containers,subtype=containers";
    if (s.opt.allow_other) opts += ",allow_other";
    if (auto_unmount) opts += ",auto_unmount";
    bool ok = ::fuse_opt_add_arg(&args, "containers") == 0 && ::fuse_opt_add_arg(&args, "-o") == 0 &&
              ::fuse_opt_add_arg(&args, opts.c_str()) == 0 && (!s.opt.debug || ::fuse_opt_add_arg(&args, "-d") == 0);
    struct ::fuse* f = ok ? ::fuse_new(&args, &ops, sizeof ops, &s) : nullptr;
    ::fuse_opt_free_args(&args);
    if (f == nullptr) return nullptr;
    if (::fuse_mount(f, s.dir.c_str()) != 0) {
        ::fuse_destroy(f);
        return nullptr;
    }
    return f;
}

// Detaches the mount from outside the session (as `umount -l` or `fusermount3 -u -z` would), so
// that the kernel ends the connection and the serving threads' reads of /dev/fuse answer ENODEV.
// (fuse_unmount would close the descriptor those threads are still reading.)
void detach(session const& s) noexcept {
    if (::geteuid() == 0) {
        // MNT_FORCE aborts the connection (fuse_umount_begin): requests still waiting, from a
        // process that keeps a file open, answer ENOTCONN rather than hold the threads forever.
        (void)::umount2(s.dir.c_str(), MNT_FORCE | MNT_DETACH);
    } else {
        char const* argv[] = {"fusermount3", "-u", "-q", "-z", "--", s.dir.c_str(), nullptr};
        pid_t pid = 0;
        if (::posix_spawnp(&pid, "fusermount3", nullptr, nullptr, const_cast<char**>(argv), environ) == 0) {
            int status = 0;
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
        }
    }
    // A file still open on the detached mount would keep the connection (and the threads) alive:
    // abort the connection where the fuse control filesystem is mounted.
    if (s.dev != 0) {
        char abort[96];
        std::snprintf(abort, sizeof abort, "/sys/fs/fuse/connections/%u/abort", minor(s.dev));
        int fd = ::open(abort, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            (void)!::write(fd, "1", 1);
            ::close(fd);
        }
    }
}

}  // namespace

std::size_t groups_kept(session& s) noexcept {
    std::lock_guard g(s.attr_mutex);
    return s.kept_at.size();
}

void session_deleter::operator()(session* s) const noexcept {
    if (s == nullptr) return;
    if (s->f != nullptr) {
        // Detached first: fuse_exit before would leave requests (ours included) unanswered.
        detach(*s);
        ::fuse_exit(s->f);
        if (s->loop.joinable()) s->loop.join();
        ::fuse_unmount(s->f);  // the connection has ended: closes the descriptor, nothing else
        ::fuse_destroy(s->f);
    }
    for (void* f : s->open_files) delete static_cast<open_file*>(f);
    delete s;
}

std::unique_ptr<session, session_deleter> start(std::unique_ptr<operations> ops, std::string const& dir,
                                                options const& o, std::error_code& ec) noexcept {
    ec.clear();
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) {
        ec = containers::detail::errno_code(errno);
        return nullptr;
    }
    if (!S_ISDIR(st.st_mode)) {
        ec = containers::detail::errno_code(ENOTDIR);
        return nullptr;
    }
    if (::access("/dev/fuse", R_OK | W_OK) != 0) {
        ec = containers::detail::errno_code(errno == ENOENT ? ENODEV : errno);
        return nullptr;
    }
    std::unique_ptr<session, session_deleter> s(new (std::nothrow) session);
    if (s == nullptr) {
        ec = containers::detail::errno_code(ENOMEM);
        return nullptr;
    }
    s->ops = std::move(ops);
    s->opt = o;
    try {
        char* real = ::realpath(dir.c_str(), nullptr);  // the unmount must name it from any cwd
        s->dir = real != nullptr ? real : dir;
        std::free(real);
    } catch (...) {
        ec = containers::detail::errno_code(ENOMEM);
        return nullptr;
    }
    ::clock_gettime(CLOCK_REALTIME, &s->mounted_at);
    s->f = make_fuse(*s, o.auto_unmount);
    if (s->f == nullptr && o.auto_unmount) s->f = make_fuse(*s, false);  // no fusermount3 helper
    if (s->f == nullptr) {
        ec = containers::detail::errno_code(EPERM);
        return nullptr;
    }
    try {
        s->loop = std::thread([f = s->f] {
            fuse_loop_config* cfg = ::fuse_loop_cfg_create();
            if (cfg == nullptr) return;
            ::fuse_loop_mt(f, cfg);
            ::fuse_loop_cfg_destroy(cfg);
        });
    } catch (...) {
        ec = containers::detail::errno_code(EAGAIN);
        return nullptr;  // the deleter unmounts
    }
    struct stat mounted;
    if (::stat(s->dir.c_str(), &mounted) == 0) s->dev = mounted.st_dev;  // served by the loop just started
    return s;
}

}  // namespace containers::fuse::detail
