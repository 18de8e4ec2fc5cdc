// Control files and the path interface: number parsing as the kernel's, the core files, files a
// subsystem adds in populate, and a conformance script run against the kernel's cgroupfs and the
// library, operation by operation.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace containers;
using test::C;
using test::H;

namespace {
using test::errc_of;

struct knob : subsystem_tag {
    static constexpr std::string_view name = "knob";
    struct state {
        std::uint64_t level = 3;
    };
    subsystem_handle<knob, H>* self = nullptr;
    cftype<C> level_file = u64_file<C>(
        "knob.level", [this](C& c) { return self->state(c).level; },
        [this](C& c, std::uint64_t v) {
            if (v > 10) return std::make_error_code(std::errc::invalid_argument);
            self->state(c).level = v;
            return std::error_code{};
        });
    explicit knob(subsystem_handle<knob, H>* s) : self(s) {}
    std::error_code populate(state&, C& c) { return c.owner().add_file(c, level_file); }
};
}  // namespace

TEST_CASE("numbers parse as the kernel's kstrtoull", "[files][parse]") {
    std::uint64_t v = 0;
    CHECK_FALSE(parse::u64("17", v));
    CHECK(v == 17);
    CHECK_FALSE(parse::u64("17\n", v));
    CHECK_FALSE(parse::u64("0x1f", v));
    CHECK(v == 31);
    CHECK_FALSE(parse::u64("010", v));
    CHECK(v == 8);
    CHECK_FALSE(parse::u64("18446744073709551615", v));
    CHECK(v == UINT64_MAX);
    auto bad = GENERATE(std::string(""), std::string(" 1"), std::string("1 "), std::string("1\n\n"), std::string("-1"),
                        std::string("abc"), std::string("0x"), std::string("08"), std::string("\n"));
    CAPTURE(bad);
    CHECK(errc_of(parse::u64(bad, v)) == std::errc::invalid_argument);
    CHECK(errc_of(parse::u64("18446744073709551616", v)) == std::errc::result_out_of_range);
    std::int64_t s = 0;
    CHECK_FALSE(parse::s64("-9223372036854775808", s));
    CHECK(s == INT64_MIN);
    CHECK(errc_of(parse::s64("9223372036854775808", s)) == std::errc::result_out_of_range);
    CHECK(parse::strip(" \t 12 \n") == "12");
}

TEST_CASE("the core files read and write as cgroup v1's", "[files]") {
    H h;
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    std::string out;
    REQUIRE_FALSE(fs::read(h, "/a/notify_on_release", out));
    CHECK(out == "0\n");
    REQUIRE_FALSE(fs::write(h, "/a/notify_on_release", "7\n"));
    REQUIRE_FALSE(fs::read(h, "/a/notify_on_release", out));
    CHECK(out == "1\n");
    CHECK(errc_of(fs::write(h, "/a/notify_on_release", " 0")) == std::errc::invalid_argument);
    REQUIRE_FALSE(fs::read(h, "/a/notify_on_release", out));
    CHECK(out == "1\n");  // a refused write changed nothing
    REQUIRE_FALSE(fs::read(h, "/release_agent", out));
    CHECK(out == "\n");
    REQUIRE_FALSE(fs::write(h, "/release_agent", "  /bin/true \n"));
    REQUIRE_FALSE(fs::read(h, "/release_agent", out));
    CHECK(out == "/bin/true\n");
    CHECK(errc_of(fs::read(h, "/a/release_agent", out)) == std::errc::no_such_file_or_directory);
    REQUIRE_FALSE(fs::read(h, "/cgroup.sane_behavior", out));
    CHECK(out == "0\n");
    CHECK(errc_of(fs::write(h, "/cgroup.sane_behavior", "1")) == std::errc::invalid_argument);
    CHECK(errc_of(fs::write(h, "/a/notify_on_release", std::string(4097, '1'))) == std::errc::argument_list_too_long);

    test::parked_thread th;
    std::string const tid = std::to_string(th.tid());
    REQUIRE_FALSE(fs::write(h, "/a/tasks", " " + tid + "\n"));
    REQUIRE_FALSE(fs::read(h, "/a/tasks", out));
    CHECK(out == tid + "\n");
    REQUIRE_FALSE(fs::read(h, "/a/cgroup.procs", out));
    CHECK(out == std::to_string(::getpid()) + "\n");
    CHECK(errc_of(fs::rmdir(h, "/a")) == std::errc::device_or_resource_busy);

    std::vector<std::string> names;
    REQUIRE_FALSE(fs::list(h, "/", names));
    CHECK(names == std::vector<std::string>{"a", "cgroup.clone_children", "cgroup.procs", "cgroup.sane_behavior",
                                            "notify_on_release", "release_agent", "tasks"});
    REQUIRE_FALSE(fs::list(h, "/a", names));
    CHECK(names == std::vector<std::string>{"cgroup.clone_children", "cgroup.procs", "notify_on_release", "tasks"});
    CHECK(errc_of(fs::list(h, "/a/tasks", names)) == std::errc::not_a_directory);
}

TEST_CASE("writing a process id to cgroup.procs moves all its threads at once", "[files][tasks]") {
    H h;
    REQUIRE_FALSE(fs::mkdir(h, "/g"));
    test::parked_thread t1;
    test::parked_thread t2;
    REQUIRE_FALSE(fs::write(h, "/g/cgroup.procs", std::to_string(::getpid())));
    C& g = h.container_of(t1.tid());
    CHECK(g.name() == "g");
    CHECK(&h.container_of(t2.tid()) == &g);
    CHECK(&h.container_of(thread_task_traits::self()) == &g);
    REQUIRE_FALSE(fs::write(h, "/tasks", "0"));  // 0: the writer itself
    CHECK(h.container_of(thread_task_traits::self()).is_top());
    CHECK(errc_of(fs::write(h, "/g/cgroup.procs", "999999999")) == std::errc::no_such_process);
}

TEST_CASE("a subsystem adds its files in populate, in every container", "[files][subsystem]") {
    H h;
    subsystem_handle<knob, H> k;
    REQUIRE_FALSE(h.register_subsystem(k, &k));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    std::string out;
    REQUIRE_FALSE(fs::read(h, "/a/knob.level", out));
    CHECK(out == "3\n");
    REQUIRE_FALSE(fs::write(h, "/a/knob.level", "9"));
    CHECK(errc_of(fs::write(h, "/a/knob.level", "11")) == std::errc::invalid_argument);
    REQUIRE_FALSE(fs::read(h, "/a/knob.level", out));
    CHECK(out == "9\n");
    REQUIRE_FALSE(fs::read(h, "/knob.level", out));
    CHECK(out == "3\n");
    CHECK(errc_of(fs::mkdir(h, "/a/knob.level")) == std::errc::file_exists);
}

TEST_CASE("path errors are the kernel's", "[files][errors]") {
    H h;
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    std::string out;
    CHECK(errc_of(fs::read(h, "/a", out)) == std::errc::is_a_directory);
    CHECK(errc_of(fs::read(h, "/a/missing", out)) == std::errc::no_such_file_or_directory);
    CHECK(errc_of(fs::read(h, "/a/tasks/x", out)) == std::errc::not_a_directory);
    CHECK(errc_of(fs::write(h, "/a", "1")) == std::errc::is_a_directory);
    CHECK(errc_of(fs::mkdir(h, "/a/tasks/x")) == std::errc::not_a_directory);
    CHECK(errc_of(fs::mkdir(h, "/missing/x")) == std::errc::no_such_file_or_directory);
    CHECK(errc_of(fs::mkdir(h, "/")) == std::errc::file_exists);
    CHECK(errc_of(fs::rmdir(h, "/a/tasks")) == std::errc::not_a_directory);
    CHECK(errc_of(fs::rmdir(h, "/")) == std::errc::device_or_resource_busy);
    CHECK(errc_of(fs::read(h, "relative", out)) == std::errc::invalid_argument);
}

TEST_CASE("rmdir of a path whose last component is . or .. removes nothing, as the kernel's VFS answers", "[files][errors]") {
    H h;
    REQUIRE_FALSE(fs::mkdir(h, "/q"));
    REQUIRE_FALSE(fs::mkdir(h, "/q/b"));
    CHECK(errc_of(fs::rmdir(h, "/q/b/.")) == std::errc::invalid_argument);
    CHECK(errc_of(fs::rmdir(h, "/q/b/./")) == std::errc::invalid_argument);
    CHECK(errc_of(fs::rmdir(h, "/q/b/..")) == std::errc::directory_not_empty);
    CHECK(errc_of(fs::rmdir(h, "/q/..")) == std::errc::directory_not_empty);
    CHECK(errc_of(fs::rmdir(h, "/.")) == std::errc::invalid_argument);
    CHECK(errc_of(fs::rmdir(h, "/q/tasks/.")) == std::errc::not_a_directory);
    CHECK(errc_of(fs::rmdir(h, "/missing/..")) == std::errc::no_such_file_or_directory);
    C* b = nullptr;
    CHECK_FALSE(h.lookup("/q/b", b));
    CHECK(h.size() == 3);
    CHECK_FALSE(fs::rmdir(h, "/q/b/../b"));  // "." and ".." inside the path still walk
    CHECK(h.size() == 2);
}

TEST_CASE("a script of operations gives the same results on the kernel and on the library", "[files][kernel]") {
    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 cpuset hierarchy is not mounted writable at /sys/fs/cgroup/cpuset");
    H h;
    test::parked_thread th;
    std::string const tid = std::to_string(th.tid());
    std::string const pid = std::to_string(::getpid());
    // New kernel cpusets start without CPUs, and tasks cannot join them; clone_children gives
    // them their parent's. The library has no cpuset yet, so nothing else differs.
    REQUIRE(test::kernel_op(scratch->path(), "write", "/cgroup.clone_children", "1").error == 0);
    REQUIRE_FALSE(fs::write(h, "/cgroup.clone_children", "1"));

    struct step {
        char const* op;
        std::string path;
        std::string value;
    };
    std::vector<step> const script{
        {"mkdir", "/a", ""},
        {"mkdir", "/a", ""},
        {"mkdir", "/a/b", ""},
        {"mkdir", "/x/y", ""},
        {"mkdir", "/a/tasks/z", ""},
        {"mkdir", "/a/b\nc", ""},
        {"mkdir", "/a/.", ""},
        {"mkdir", "/a/cgroup.procs", ""},
        {"rmdir", "/a/b/.", ""},
        {"rmdir", "/a/b/./", ""},
        {"rmdir", "/a/b/..", ""},
        {"rmdir", "/a/..", ""},
        {"rmdir", "/a/tasks/.", ""},
        {"rmdir", "/a/tasks/..", ""},
        {"rmdir", "/nope/.", ""},
        {"read", "/a/b/notify_on_release", ""},
        {"read", "/a", ""},
        {"read", "/a/missing", ""},
        {"read", "/a/tasks/x", ""},
        {"write", "/a", "1"},
        {"write", "/a/missing", "1"},
        {"read", "/a/notify_on_release", ""},
        {"write", "/a/notify_on_release", "1"},
        {"read", "/a/notify_on_release", ""},
        {"write", "/a/notify_on_release", "0"},
        {"write", "/a/notify_on_release", "2"},
        {"read", "/a/notify_on_release", ""},
        {"write", "/a/notify_on_release", "abc"},
        {"write", "/a/notify_on_release", " 1"},
        {"write", "/a/notify_on_release", "1 "},
        {"write", "/a/notify_on_release", "0\n"},
        {"write", "/a/notify_on_release", "1\n\n"},
        {"write", "/a/notify_on_release", "-1"},
        {"write", "/a/notify_on_release", "0x1"},
        {"write", "/a/notify_on_release", "08"},
        {"write", "/a/notify_on_release", "18446744073709551616"},
        {"write", "/a/notify_on_release", std::string("0\0garbage", 9)},
        {"read", "/a/notify_on_release", ""},
        {"write", "/a/notify_on_release", ""},
        {"write", "/a/notify_on_release", std::string(4096, '0')},
        {"write", "/a/notify_on_release", std::string(4097, '0')},
        {"read", "/a/notify_on_release", ""},
        {"read", "/a/cgroup.clone_children", ""},
        {"write", "/a/cgroup.clone_children", "0"},
        {"read", "/a/cgroup.clone_children", ""},
        {"mkdir", "/a/c", ""},
        {"read", "/a/c/cgroup.clone_children", ""},
        {"read", "/a/c/notify_on_release", ""},
        {"read", "/a/tasks", ""},
        {"write", "/a/tasks", "abc"},
        {"write", "/a/tasks", "1 2"},
        {"write", "/a/tasks", "-5"},
        {"write", "/a/tasks", " \n"},
        {"write", "/a/tasks", "99999999"},
        {"write", "/a/tasks", "4294967297"},
        {"write", "/a/tasks", tid},
        {"read", "/a/tasks", ""},
        {"read", "/a/cgroup.procs", ""},
        {"rmdir", "/a", ""},
        {"write", "/a/b/tasks", " " + tid + "\n"},
        {"read", "/a/tasks", ""},
        {"read", "/a/b/tasks", ""},
        {"rmdir", "/a/b", ""},
        {"write", "/a/cgroup.procs", "abc"},
        {"write", "/a/cgroup.procs", "99999999"},
        {"write", "/tasks", tid},
        {"read", "/a/b/tasks", ""},
        {"rmdir", "/a/tasks", ""},
        {"rmdir", "/nope", ""},
        {"rmdir", "/a/b", ""},
        {"rmdir", "/a/b", ""},
        {"read", "/a/b/tasks", ""},
        {"rmdir", "/a/c", ""},
        {"rmdir", "/a", ""},
    };
    int index = 0;
    for (step const& s : script) {
        CAPTURE(index++, s.op, s.path, s.value.substr(0, 24));
        test::outcome const kernel = test::kernel_op(scratch->path(), s.op, s.path, s.value);
        test::outcome const library = test::library_op(h, s.op, s.path, s.value);
        CHECK(library.error == kernel.error);
        CHECK(library.content == kernel.content);
    }
    // Root-only files, read from the kernel's real root (never written).
    for (char const* f : {"/cgroup.sane_behavior"}) {
        CHECK(test::library_op(h, "read", f, "") == test::kernel_op("/sys/fs/cgroup/cpuset", "read", f, ""));
    }
}

namespace {
struct limits : subsystem_tag {
    static constexpr std::string_view name = "limits";
    struct state {
        std::int64_t nice = 0;
    };
    static inline subsystem_handle<limits, H> handle;
    // Files declared as data, added to every container after populate.
    template <class Ctr>
    static std::vector<cftype<Ctr>> const& files() {
        static std::vector<cftype<Ctr>> const f{
            s64_file<Ctr>(
                "limits.nice", [](Ctr& c) { return handle.state(c).nice; },
                [](Ctr& c, std::int64_t v) {
                    handle.state(c).nice = v;
                    return std::error_code{};
                }),
            [] {
                cftype<Ctr> top;
                top.name = "limits.top_only";
                top.scope = cftype<Ctr>::where::top_only;
                top.read = [](Ctr&, std::string& out) {
                    out += "top\n";
                    return std::error_code{};
                };
                return top;
            }(),
        };
        return f;
    }
};
}  // namespace

TEST_CASE("a subsystem can declare its files as data", "[files][subsystem]") {
    H h;
    REQUIRE_FALSE(h.register_subsystem(limits::handle));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    REQUIRE_FALSE(fs::write(h, "/a/limits.nice", "-5\n"));
    std::string out;
    REQUIRE_FALSE(fs::read(h, "/a/limits.nice", out));
    CHECK(out == "-5\n");
    REQUIRE_FALSE(fs::read(h, "/limits.top_only", out));
    CHECK(out == "top\n");
    CHECK(fs::read(h, "/a/limits.top_only", out) == std::errc::no_such_file_or_directory);
    std::vector<std::string> names;
    REQUIRE_FALSE(fs::list(h, "/a", names));
    CHECK(names == std::vector<std::string>{"cgroup.clone_children", "cgroup.procs", "limits.nice", "notify_on_release", "tasks"});
}
