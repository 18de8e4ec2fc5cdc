// Control files: what a container shows as files, cgroup v1 style.
//
// A cftype is a file's name and its handlers. Core files ("tasks", "cgroup.procs",
// "notify_on_release", "cgroup.clone_children", and in the top container "release_agent" and
// "cgroup.sane_behavior") exist in every hierarchy; a subsystem adds its own, named with its
// prefix ("cpuset.cpus"), either from its populate hook with hierarchy::add_file, or as data: a
// static member function template `template <class C> static R const& files()` returning a range
// of cftype<C> that lives as long as the program, added to every container after populate. Handlers see the raw
// text of one write(2) and produce the whole content of a read, trailing newline included, so
// that the path interface (control_files.hpp) answers as cgroupfs does.
//
// Locking, as the kernel runs cgroup handlers under cgroup_mutex: a file whose `lock` is
// `locking::manage` has its handlers run by the path interface with the hierarchy's manage lock
// held and its container checked live (a removed container gives ENODEV, the handler never
// runs). Such a handler must not call operations that take the manage lock (debug builds assert);
// it calls their *_locked forms. Work that must run without the lock (a notification) goes in
// `after_write`. subsystem_files<S, C> builds such files with typed access: handlers receive the
// subsystem, its state in the container, and the container. A raw cftype defaults to
// `locking::none`: its handlers run as they always did, without the lock, taking it themselves.
#pragma once

#include <cassert>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "detail/errors.hpp"
#include "detail/function.hpp"

namespace containers {

template <class C>
struct cftype {
    enum class where { everywhere, top_only, not_top };
    std::string_view name;  // must outlive the hierarchy (a literal, or owned by the subsystem)
    where scope = where::everywhere;
    /// Appends the file's content to `out`. Absent: the file cannot be read (EINVAL).
    std::function<std::error_code(C&, std::string& out)> read;
    /// Takes the bytes of one write. Absent: the file cannot be written (EINVAL).
    std::function<std::error_code(C&, std::string_view value)> write;
    /// Which lock the path interface holds around read and write (see the top of this header).
    enum class locking { none, manage };
    locking lock = locking::none;
    /// Runs after a successful write once the manage lock is released (the container is still
    /// valid, perhaps removed meanwhile): for what must not run under the lock, such as telling
    /// listeners. Optional; an exception it throws is ignored (the write took effect).
    std::function<void(C&)> after_write;
    /// The largest write taken, in bytes (more is E2BIG); 0 for a page, as kernfs gives every
    /// cgroup file without a max_write_len of its own.
    std::size_t max_write_len = 0;

    [[nodiscard]] bool shown_in(C const& c) const noexcept {
        return scope == where::everywhere || (scope == where::top_only) == c.is_top();
    }
};

/// Parsing as the kernel's kstrto* helpers do: an optional sign where allowed, a base prefix
/// ("0x", "0") with base 0, digits, then at most one newline; nothing else, not even spaces.
namespace parse {

[[nodiscard]] inline std::error_code u64(std::string_view s, std::uint64_t& out) noexcept {
    if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
    if (s.starts_with('+')) s.remove_prefix(1);
    unsigned base = 10;
    if (s.size() > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    } else if (s.size() > 1 && s[0] == '0') {
        base = 8;
        s.remove_prefix(1);
    }
    if (s.empty()) return detail::errno_code(EINVAL);
    std::uint64_t v = 0;
    for (char ch : s) {
        unsigned d;
        if (ch >= '0' && ch <= '9') d = static_cast<unsigned>(ch - '0');
        else if (ch >= 'a' && ch <= 'f') d = static_cast<unsigned>(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') d = static_cast<unsigned>(ch - 'A' + 10);
        else return detail::errno_code(EINVAL);
        if (d >= base) return detail::errno_code(EINVAL);
        if (v > (UINT64_MAX - d) / base) return detail::errno_code(ERANGE);
        v = v * base + d;
    }
    out = v;
    return {};
}

[[nodiscard]] inline std::error_code s64(std::string_view s, std::int64_t& out) noexcept {
    bool const negative = s.starts_with('-');
    if (negative) s.remove_prefix(1);
    // kstrtoll: after a minus sign the digits follow at once ("-+1" is EINVAL); "+" alone is
    // kstrtoull's.
    if (negative && s.starts_with('+')) return detail::errno_code(EINVAL);
    std::uint64_t v = 0;
    if (std::error_code ec = u64(s, v)) return ec;
    if (negative ? v > std::uint64_t{1} << 63 : v > (std::uint64_t{1} << 63) - 1) return detail::errno_code(ERANGE);
    out = negative ? static_cast<std::int64_t>(0 - v) : static_cast<std::int64_t>(v);
    return {};
}

/// The kernel's strstrip(): white space off both ends, as its isspace() sees it (0xa0, Latin-1's
/// no-break space, included).
[[nodiscard]] inline std::string_view strip(std::string_view s) noexcept {
    constexpr std::string_view space = " \t\n\v\f\r\xa0";
    std::size_t const b = s.find_first_not_of(space);
    if (b == std::string_view::npos) return {};
    return s.substr(b, s.find_last_not_of(space) - b + 1);
}

}  // namespace parse

namespace parse {
[[nodiscard]] inline std::error_code number(std::string_view s, std::uint64_t& out) noexcept { return u64(s, out); }
[[nodiscard]] inline std::error_code number(std::string_view s, std::int64_t& out) noexcept { return s64(s, out); }
}  // namespace parse

/// A file holding a number of type T (std::uint64_t or std::int64_t), read as "N\n", written as
/// the kernel parses u64 and s64 files. Without `set` the file is read-only.
template <class C, class T>
cftype<C> number_file(std::string_view name, std::function<T(C&)> get, std::function<std::error_code(C&, T)> set = {}) {
    cftype<C> f;
    f.name = name;
    f.read = [get](C& c, std::string& out) {
        out += std::to_string(get(c));
        out += '\n';
        return std::error_code{};
    };
    if (set) {
        f.write = [set](C& c, std::string_view v) {
            T n = 0;
            if (std::error_code ec = parse::number(v, n)) return ec;
            return set(c, n);
        };
    }
    return f;
}

template <class C>
cftype<C> u64_file(std::string_view name, std::function<std::uint64_t(C&)> get,
                   std::function<std::error_code(C&, std::uint64_t)> set = {}) {
    return number_file<C, std::uint64_t>(name, std::move(get), std::move(set));
}

template <class C>
cftype<C> s64_file(std::string_view name, std::function<std::int64_t(C&)> get,
                   std::function<std::error_code(C&, std::int64_t)> set = {}) {
    return number_file<C, std::int64_t>(name, std::move(get), std::move(set));
}

/// A 0/1 flag: any non-zero number written sets it, as in cgroup v1.
template <class C>
cftype<C> flag_file(std::string_view name, std::function<bool(C&)> get, std::function<std::error_code(C&, bool)> set = {}) {
    std::function<std::error_code(C&, std::uint64_t)> set_u64;
    if (set) set_u64 = [set](C& c, std::uint64_t v) { return set(c, v != 0); };
    return u64_file<C>(name, [get](C& c) { return std::uint64_t{get(c) ? 1u : 0u}; }, set_u64);
}

/// Files of subsystem S (registered in the hierarchy of container type C) with typed access:
/// each handler receives `S&` (the registered instance), `S::state&` (its state in the
/// container) and the container. The files run under the manage lock (locking::manage): the
/// path interface takes it and checks the container live (ENODEV) before a handler runs, so a
/// handler reads and changes its state without races, and calls only the *_locked forms of
/// operations that lock. Writes parse as number_file and flag_file do.
template <class S, class C>
struct subsystem_files {
    using state = typename S::state;
    using reader = std::function<std::error_code(S&, state&, C&, std::string& out)>;
    using writer = std::function<std::error_code(S&, state&, C&, std::string_view value)>;
    template <class T>
    using getter = std::function<std::error_code(S&, state&, C&, T& out)>;
    template <class T>
    using setter = std::function<std::error_code(S&, state&, C&, T value)>;

    /// A file with typed raw handlers; without `write` it is read-only, without `read` write-only.
    static cftype<C> file(std::string_view name, reader read, writer write = {}) {
        cftype<C> f;
        f.name = name;
        f.lock = cftype<C>::locking::manage;
        if (read) f.read = [read](C& c, std::string& out) { return read(subsystem_of(c), state_of(c), c, out); };
        if (write) f.write = [write](C& c, std::string_view v) { return write(subsystem_of(c), state_of(c), c, v); };
        return f;
    }

    /// A number file (std::uint64_t or std::int64_t), read as "N\n", written as number_file parses.
    template <class T>
    static cftype<C> number(std::string_view name, getter<T> get, setter<T> set = {}) {
        std::function<std::error_code(C&, T)> raw;
        if (set) raw = [set](C& c, T v) { return set(subsystem_of(c), state_of(c), c, v); };
        cftype<C> f = number_file<C, T>(name, std::function<T(C&)>{}, raw);
        return typed(std::move(f), get, [get](C& c, std::string& out) {
            T v{};
            if (std::error_code ec = get(subsystem_of(c), state_of(c), c, v)) return ec;
            out += std::to_string(v);
            out += '\n';
            return std::error_code{};
        });
    }

    /// A 0/1 flag, written as flag_file parses (any non-zero number sets it).
    static cftype<C> flag(std::string_view name, getter<bool> get, setter<bool> set = {}) {
        std::function<std::error_code(C&, bool)> raw;
        if (set) raw = [set](C& c, bool on) { return set(subsystem_of(c), state_of(c), c, on); };
        cftype<C> f = flag_file<C>(name, std::function<bool(C&)>{}, raw);
        return typed(std::move(f), get, [get](C& c, std::string& out) {
            bool v = false;
            if (std::error_code ec = get(subsystem_of(c), state_of(c), c, v)) return ec;
            out += v ? "1\n" : "0\n";
            return std::error_code{};
        });
    }

private:
    static S& subsystem_of(C& c) noexcept {
        assert(c.owner().manage_lock_held() && "containers: a subsystem_files handler runs under the manage lock");
        return *c.owner().template subsystem<S>();
    }
    static state& state_of(C& c) noexcept { return c.owner().template state_of<S>(c); }
    // Without a getter the file cannot be read (EINVAL), as a raw cftype without read.
    template <class Get, class Read>
    static cftype<C> typed(cftype<C> f, Get const& get, Read read) {
        f.lock = cftype<C>::locking::manage;
        f.read = {};
        if (get) f.read = std::move(read);
        return f;
    }
};

}  // namespace containers
