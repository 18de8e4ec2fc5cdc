// Kernel parity, case by case: the same write (or fork) on the kernel's cgroup v1 cpuset hierarchy,
// under a scratch directory of our own, and on the library, must give the same errno and leave
// the same content. Where the kernel cannot be asked, the library's answers are checked against
// what the running kernel (6.18) was seen to answer. The cases come from the kernel's source:
// fs/namei.c and fs/kernfs (opening with O_CREAT), lib/bitmap-str.c (lists), kernfs's
// atomic_write_len and cpuset-v1.c's max_write_len (sizes), lib/kstrtox.c and cpuset-v1.c's
// cpuset_update_flag(int) (numbers), and cpuset_fork (a child's affinity).
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <sched.h>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace containers;
using test::C;
using test::H;

namespace {

using test::errc_of;

constexpr char const* no_kernel = "the cgroup v1 cpuset hierarchy is not mounted writable at /sys/fs/cgroup/cpuset";

// One write as a shell's `echo -n VALUE > PATH` does it: open with O_CREAT | O_TRUNC.
int kernel_echo(std::string const& path, std::string const& value) {
    int const fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return errno;
    int const e = ::write(fd, value.data(), value.size()) < 0 ? errno : 0;
    ::close(fd);
    return e;
}

cpumask affinity(pid_t tid) {
    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(::sched_getaffinity(tid, sizeof set, &set) == 0);
    return cpumask::from_cpu_set(&set, sizeof set);
}

// A hierarchy with the cpuset subsystem, and in it /sub with all the top's CPUs and nodes.
struct library_side {
    H h;
    subsystem_handle<cpuset, H> cs;
    library_side() {
        REQUIRE_FALSE(h.register_subsystem(cs));
        REQUIRE_FALSE(fs::mkdir(h, "/sub"));
        std::string cpus, mems;
        REQUIRE_FALSE(fs::read(h, "/cpuset.cpus", cpus));
        REQUIRE_FALSE(fs::read(h, "/cpuset.mems", mems));
        REQUIRE_FALSE(fs::write(h, "/sub/cpuset.cpus", cpus));
        REQUIRE_FALSE(fs::write(h, "/sub/cpuset.mems", mems));
    }
};

std::size_t kernel_nr_cpus() {
    std::ifstream f("/sys/devices/system/cpu/kernel_max");
    std::size_t max = 0;
    REQUIRE(f >> max);
    return max + 1;
}

}  // namespace

TEST_CASE("echo > a missing or top-only file below the top gives the kernel's errno", "[files][kernel][parity]") {
    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP(no_kernel);
    REQUIRE(::mkdir((scratch->path() + "/sub").c_str(), 0755) == 0);
    library_side lib;
    // Kernel: <scratch>/sub is two levels below its root; library: /sub is one below its top.
    // Below the top on both, so the top-only files are missing on both.
    auto const path = GENERATE(as<std::string>{}, "/sub/nofile", "/sub/release_agent", "/sub/cgroup.sane_behavior",
                               "/sub/cpuset.memory_pressure_enabled", "/sub/notify_on_release", "/sub/tasks/",
                               "/sub/missing/", "/sub/", "/sub", "/sub/.", "/sub/tasks/x", "/missing/x",
                               "/sub/release_agent/x", "/sub/nofile/", "/sub/cpuset.effective_cpus");
    CAPTURE(path);
    int const kernel = kernel_echo(scratch->path() + path, "1\n");
    CHECK(fs::write(lib.h, path, "1\n", fs::open_mode::create).value() == kernel);
    // Without O_CREAT, as a program opening the file for writing does.
    test::outcome const plain = test::kernel_op(scratch->path(), "write", path, "1\n");
    CHECK(test::library_op(lib.h, "write", path, "1\n").error == plain.error);
}

TEST_CASE("echo > a missing file gives EACCES as the kernel's VFS does", "[files][parity]") {
    // What Linux 6.18 answered (the test above asks it where it is mounted).
    library_side lib;
    CHECK(errc_of(fs::write(lib.h, "/sub/release_agent", "x", fs::open_mode::create)) == std::errc::permission_denied);
    CHECK(errc_of(fs::write(lib.h, "/sub/nofile", "x", fs::open_mode::create)) == std::errc::permission_denied);
    CHECK(errc_of(fs::write(lib.h, "/sub/nofile", "x")) == std::errc::no_such_file_or_directory);
    CHECK(errc_of(fs::write(lib.h, "/sub/tasks/", "x", fs::open_mode::create)) == std::errc::is_a_directory);
    CHECK(errc_of(fs::write(lib.h, "/sub/tasks/", "x")) == std::errc::not_a_directory);
    CHECK(errc_of(fs::write(lib.h, "/nodir/x", "x", fs::open_mode::create)) == std::errc::no_such_file_or_directory);
    CHECK_FALSE(fs::write(lib.h, "/sub/notify_on_release", "1\n", fs::open_mode::create));
}

namespace {
std::vector<std::string> const list_cases{
    "all", "ALL", "All", "all:1/2", "all:0/2", "alla", "all-1", "all,0", "N", "n", "0-N", "N-N", "N-0", "0-N:1/N",
    "0-1:1/2", "0-N:1/2", "0-1:0/2", "0-1:2/1", "0-1:1/0", "0-1:1", "0-1:", "0-1:1/", "0-1/2", "0:1/2", "N:1/2",
    "1-1:1/1", "0-1:1/2:1", "0-0:0/1", "1-0", "00", "01", "0001", "2", "255", "256", "4294967295", "4294967296",
    "4294967297", "18446744073709551615", "18446744073709551616", "99999999999999999999999",
    "4294967295-4294967295", "0-4294967295", "0-4294967296", "0-4294967294:1/4294967295", "1-4294967295:1/2",
    "0-1:4294967296/4294967297", "0-1:1/4294967296", "0\xa0" "1", "\xa0" "0", "0\xa0", "0\xa0\n1", "0\x85" "1",
    "0\x1c" "1", "0\n1", "0\n", "1\n0", "0,\n1", "0 \n1", "0-1:1/2\n1", "\n0", "\n\n0", "0\n\n", "0-1\n:1/2",
    "0,,1", "0,", ",0", ",", "0 ,1", "0, 1", "0 - 1", "0- 1", "0 -1", "  0-1  ", "0\t1", "0 1", "0\r", "0\v",
    "0\f", " ", "\n", "0-1,N", "+1", "-1", "0x1", "a", "0-", "-", std::string("0\0garbage", 9),
    std::string("0,\0" "1", 4)};
}  // namespace

TEST_CASE("cpuset.cpus parses every list as the kernel's bitmap_parselist", "[cpuset][cpumask][kernel][parity]") {
    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP(no_kernel);
    std::string const k = scratch->path();
    library_side lib;
    test::outcome const kernel_cpus = test::kernel_op(k, "read", "/cpuset.cpus", "");
    std::string lib_cpus;
    REQUIRE_FALSE(fs::read(lib.h, "/sub/cpuset.cpus", lib_cpus));
    if (kernel_cpus.content != lib_cpus) CONTAINERS_SKIP("this process may not use every CPU of the cpuset hierarchy's top");
    REQUIRE(::mkdir((k + "/sub").c_str(), 0755) == 0);
    REQUIRE(test::kernel_op(k, "write", "/sub/cpuset.mems", test::kernel_op(k, "read", "/cpuset.mems", "").content).error == 0);
    int index = 0;
    for (std::string const& value : list_cases) {
        CAPTURE(index++, value);
        REQUIRE(test::kernel_op(k, "write", "/sub/cpuset.cpus", "0").error == 0);
        REQUIRE_FALSE(fs::write(lib.h, "/sub/cpuset.cpus", "0"));
        CHECK(test::library_op(lib.h, "write", "/sub/cpuset.cpus", value).error == test::kernel_op(k, "write", "/sub/cpuset.cpus", value).error);
        CHECK(test::library_op(lib.h, "read", "/sub/cpuset.cpus", "") == test::kernel_op(k, "read", "/sub/cpuset.cpus", ""));
    }
    // cpuset.mems: the node-mask width (MAX_NUMNODES) bounds the numbers, online nodes the rest.
    for (std::string const value : {"0", "1", "1023", "1024", "N", "all", "4294967296", "0\xa0"}) {
        CAPTURE(value);
        REQUIRE(test::kernel_op(k, "write", "/sub/cpuset.mems", "0").error == 0);
        REQUIRE_FALSE(fs::write(lib.h, "/sub/cpuset.mems", "0"));
        CHECK(test::library_op(lib.h, "write", "/sub/cpuset.mems", value).error == test::kernel_op(k, "write", "/sub/cpuset.mems", value).error);
        CHECK(test::library_op(lib.h, "read", "/sub/cpuset.mems", "") == test::kernel_op(k, "read", "/sub/cpuset.mems", ""));
    }
}

TEST_CASE("lists parse as bitmap_parselist: all, 0xa0, newlines after separators, unsigned int regions", "[cpumask][parity]") {
    // What Linux 6.18 answered for a 4-bit mask (the test above asks it where it is mounted).
    auto parse = [](std::string_view s, cpumask& m) { return cpumask::parse_list(s, 4, m); };
    cpumask m;
    REQUIRE_FALSE(parse("all", m));
    CHECK(m.to_list() == "0-3");
    REQUIRE_FALSE(parse("ALL:1/2", m));
    CHECK(m.to_list() == "0,2");
    CHECK(errc_of(parse("alla", m)) == std::errc::invalid_argument);
    CHECK(errc_of(parse("all-1", m)) == std::errc::invalid_argument);
    REQUIRE_FALSE(parse("0\xa0" "2", m));
    CHECK(m.to_list() == "0,2");
    REQUIRE_FALSE(parse("0\n2", m));  // a newline right after a region ends the list
    CHECK(m.to_list() == "0");
    REQUIRE_FALSE(parse("0,\n2", m));  // after a separator it is one more separator
    CHECK(m.to_list() == "0,2");
    REQUIRE_FALSE(parse("0-1:1/2\n3", m));  // and after a pattern too
    CHECK(m.to_list() == "0,3");
    CHECK(errc_of(parse("4294967295", m)) == std::errc::invalid_argument);  // end + 1 wraps to 0
    CHECK(errc_of(parse("0-4294967295", m)) == std::errc::invalid_argument);
    CHECK(errc_of(parse("4294967294", m)) == std::errc::result_out_of_range);
    CHECK(errc_of(parse("4294967296", m)) == std::errc::value_too_large);
    CHECK(m.to_list() == "0,3");  // unchanged by the failures
}

TEST_CASE("each file takes writes up to its own limit, and read-only files answer in the kernel's order", "[files][kernel][parity]") {
    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP(no_kernel);
    std::string const k = scratch->path();
    REQUIRE(::mkdir((k + "/sub").c_str(), 0755) == 0);
    REQUIRE(test::kernel_op(k, "write", "/sub/cpuset.cpus", "0").error == 0);
    REQUIRE(test::kernel_op(k, "write", "/sub/cpuset.mems", "0").error == 0);
    library_side lib;
    REQUIRE_FALSE(fs::write(lib.h, "/sub/cpuset.cpus", "0"));
    REQUIRE_FALSE(fs::write(lib.h, "/sub/cpuset.mems", "0"));
    std::size_t const cpus_limit = 100 + 6 * kernel_nr_cpus();  // cpuset-v1.c: 100 + 6 * NR_CPUS
    std::size_t const mems_limit = 100 + 6 * 1024;              // 100 + 6 * MAX_NUMNODES (x86-64)
    std::vector<std::size_t> sizes{0, 1, 4095, 4096, 4097, 70000};
    for (std::size_t n : {cpus_limit, mems_limit}) sizes.insert(sizes.end(), {n - 1, n, n + 1});
    // Valid content of every size where the file can be written: "0" and then separators, or
    // leading zeros; spaces for tasks (EINVAL), whatever for the read-only files.
    struct file {
        char const* name;
        char pad;
        bool lead_zero;
    };
    for (file const f : {file{"cpuset.cpus", ' ', true}, file{"cpuset.mems", ' ', true}, file{"notify_on_release", '0', false},
                         file{"cpuset.cpu_exclusive", '0', false}, file{"cpuset.sched_relax_domain_level", '0', false},
                         file{"tasks", ' ', false}, file{"cgroup.procs", ' ', false}, file{"cpuset.effective_cpus", '0', false},
                         file{"cpuset.effective_mems", ' ', false}, file{"cpuset.memory_pressure", '0', false}}) {
        for (std::size_t n : sizes) {
            std::string value(n, f.pad);
            if (f.lead_zero && n > 0) value[0] = '0';
            std::string const path = std::string("/sub/") + f.name;
            CAPTURE(f.name, n);
            CHECK(test::library_op(lib.h, "write", path, value).error == test::kernel_op(k, "write", path, value).error);
        }
    }
}

TEST_CASE("write limits without the kernel: cpus and mems have their own, read-only files say E2BIG first", "[files][parity]") {
    library_side lib;
    std::string const big(5000, '0');
    CHECK(errc_of(fs::write(lib.h, "/sub/cpuset.effective_cpus", big)) == std::errc::argument_list_too_long);
    CHECK_FALSE(fs::write(lib.h, "/sub/cpuset.effective_cpus", ""));  // cgroup_file_write: 0 bytes, done
    CHECK(errc_of(fs::write(lib.h, "/sub/cpuset.effective_cpus", "0")) == std::errc::invalid_argument);
    std::string mems(5000, ' ');
    mems[0] = '0';
    CHECK_FALSE(fs::write(lib.h, "/sub/cpuset.mems", mems));  // 100 + 6 * 1024 bytes allowed
    CHECK(errc_of(fs::write(lib.h, "/sub/cpuset.mems", mems + std::string(1245, ' '))) == std::errc::argument_list_too_long);
}

TEST_CASE("flag files keep the kernel's field types: int for cpuset flags, u64 for the core ones", "[cpuset][files][kernel][parity]") {
    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP(no_kernel);
    std::string const k = scratch->path();
    library_side lib;
    // The scratch directory itself (a child of the kernel's root) against /sub (a child of the
    // library's top), both with all CPUs and nodes: exclusive flags are allowed on both.
    std::vector<std::string> const values{"1", "2", "4294967296", "4294967297", "0x100000000", "18446744073709551615",
                                          "18446744073709551616", "-1", "-0", "+1", "+0", "-+1", "+-1", " 1", "1 ",
                                          "1\n", "1\n\n", "010", "08", "0x", "0X1", "\t1", "1\t", "1\xa0", "\xa0" "1"};
    for (char const* name : {"cpuset.cpu_exclusive", "cpuset.mem_exclusive", "cpuset.mem_hardwall", "cpuset.memory_migrate",
                             "cpuset.memory_spread_page", "cpuset.memory_spread_slab", "cpuset.sched_load_balance",
                             "notify_on_release", "cgroup.clone_children"}) {
        std::string const f = std::string("/") + name;
        if (int const e = test::kernel_op(k, "write", f, "1").error) {
            // An exclusive flag is refused while a sibling of the scratch directory (another
            // program's cpuset) shares its CPUs or nodes: the kernel cannot be asked here.
            WARN(name << " cannot be set in the kernel's scratch cpuset (errno " << e << "): not compared");
            continue;
        }
        for (std::string const& v : values) {
            CAPTURE(name, v);
            REQUIRE(test::kernel_op(k, "write", f, "0").error == 0);
            REQUIRE_FALSE(fs::write(lib.h, "/sub" + f, "0"));
            CHECK(test::library_op(lib.h, "write", "/sub" + f, v).error == test::kernel_op(k, "write", f, v).error);
            CHECK(test::library_op(lib.h, "read", "/sub" + f, "") == test::kernel_op(k, "read", f, ""));
        }
    }
    // An s64 read into an int, range-checked first: nothing past 32 bits wraps into range.
    for (std::string const v : {"-1", "0", "1", "2", "3", "5", "-2", "-0", "+1", "-+1", "+-1", "--1", "0x1", "-0x1",
                                "4294967295", "4294967296", "4294967297", "-4294967297", "9223372036854775807",
                                "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
                                "18446744073709551615", " 1", "1\n", "\xa0" "1"}) {
        CAPTURE(v);
        REQUIRE(test::kernel_op(k, "write", "/cpuset.sched_relax_domain_level", "-1").error == 0);
        REQUIRE_FALSE(fs::write(lib.h, "/sub/cpuset.sched_relax_domain_level", "-1"));
        CHECK(test::library_op(lib.h, "write", "/sub/cpuset.sched_relax_domain_level", v).error ==
              test::kernel_op(k, "write", "/cpuset.sched_relax_domain_level", v).error);
        CHECK(test::library_op(lib.h, "read", "/sub/cpuset.sched_relax_domain_level", "") ==
              test::kernel_op(k, "read", "/cpuset.sched_relax_domain_level", ""));
    }
}

TEST_CASE("flag files without the kernel: 2^32 clears a cpuset flag, sets notify_on_release", "[cpuset][files][parity]") {
    library_side lib;
    std::string out;
    REQUIRE_FALSE(fs::write(lib.h, "/sub/cpuset.mem_hardwall", "4294967296"));
    REQUIRE_FALSE(fs::read(lib.h, "/sub/cpuset.mem_hardwall", out));
    CHECK(out == "0\n");
    REQUIRE_FALSE(fs::write(lib.h, "/sub/cpuset.mem_hardwall", "4294967297"));
    REQUIRE_FALSE(fs::read(lib.h, "/sub/cpuset.mem_hardwall", out));
    CHECK(out == "1\n");
    REQUIRE_FALSE(fs::write(lib.h, "/sub/cpuset.cpu_exclusive", "0x100000000"));
    REQUIRE_FALSE(fs::read(lib.h, "/sub/cpuset.cpu_exclusive", out));
    CHECK(out == "0\n");
    REQUIRE_FALSE(fs::write(lib.h, "/sub/notify_on_release", "4294967296"));
    REQUIRE_FALSE(fs::read(lib.h, "/sub/notify_on_release", out));
    CHECK(out == "1\n");
    REQUIRE_FALSE(fs::write(lib.h, "/cpuset.memory_pressure_enabled", "4294967296"));  // !!val of the u64
    REQUIRE_FALSE(fs::read(lib.h, "/cpuset.memory_pressure_enabled", out));
    CHECK(out == "1\n");
    CHECK(errc_of(fs::write(lib.h, "/sub/cpuset.sched_relax_domain_level", "-+1")) == std::errc::invalid_argument);
    // strstrip() takes 0xa0 as space: "0" is the writer, whose affinity is put back afterwards.
    cpumask const saved = affinity(0);
    CHECK_FALSE(fs::write(lib.h, "/sub/tasks", "\xa0" "0\xa0"));
    CHECK(::sched_setaffinity(0, saved.affinity_bytes(), saved.affinity_data()) == 0);
}

namespace {
// What a child thread's affinity is right after its parent (in a cpuset of all the CPUs, with its
// own wish for the last one) creates it, and after the cpuset's CPUs go to the first one and back.
struct fork_result {
    cpumask at_fork, after_change;
};


// The parent's steps return 0 or an errno: they run on a thread of their own, where Catch's
// assertions may not be used.
template <class Place, class Wish, class Forked, class SetCpus>
fork_result fork_with_wish(Place place, Wish wish, Forked forked, SetCpus set_cpus, cpumask const& all) {
    std::unique_ptr<test::parked_thread> child;
    int errors[3] = {-1, -1, -1};
    std::thread parent([&] {
        pid_t const self = thread_task_traits::self();
        if ((errors[0] = place(self)) != 0 || (errors[1] = wish(self)) != 0) return;
        child = std::make_unique<test::parked_thread>();
        errors[2] = forked(self, child->tid());
    });
    parent.join();
    CHECK(errors[0] == 0);
    CHECK(errors[1] == 0);
    CHECK(errors[2] == 0);
    REQUIRE(child);
    fork_result r;
    r.at_fork = affinity(child->tid());
    set_cpus(cpumask::range(all.first(), all.first()));
    set_cpus(all);
    r.after_change = affinity(child->tid());
    child->join();
    return r;
}
}  // namespace

TEST_CASE("a forked thread starts with its parent's affinity and wish, not its cpuset's CPUs, as on the kernel", "[cpuset][fork][kernel][parity]") {
    library_side lib;
    cpumask const all = lib.cs.subsystem().machine().online_cpus & lib.cs.subsystem().machine().allowed_cpus;
    if (all.count() < 2) CONTAINERS_SKIP("needs two CPUs this process may use");
    cpumask const last = cpumask::range(all.extent() - 1, all.extent() - 1);
    REQUIRE_FALSE(fs::write(lib.h, "/sub/cpuset.cpus", all.to_list()));
    C* sub = nullptr;
    REQUIRE_FALSE(lib.h.lookup("/sub", sub));
    auto lib_set = [&](cpumask const& m) { REQUIRE_FALSE(lib.cs.subsystem().set_cpus(*sub, m)); };
    auto lib_place = [&](pid_t self) { return lib.h.attach(self, *sub).value(); };
    auto lib_fork = [&](pid_t parent, pid_t child) { return lib.h.fork(parent, child).value(); };
    auto set_affinity = [&](pid_t) { return ::sched_setaffinity(0, last.affinity_bytes(), last.affinity_data()) == 0 ? 0 : errno; };

    // The library's own record of the wish (request_affinity, which the kernel's sched_setaffinity is).
    fork_result const requested = fork_with_wish(
        lib_place, [&](pid_t self) { return lib.cs.subsystem().request_affinity(lib.h, self, last).value(); }, lib_fork, lib_set, all);
    CHECK(requested.at_fork == last);
    CHECK(requested.after_change == last);
    // A wish the library never saw: the child still starts with the parent's current mask.
    fork_result const direct = fork_with_wish(lib_place, set_affinity, lib_fork, lib_set, all);
    CHECK(direct.at_fork == last);

    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP(no_kernel);
    std::string const k = scratch->path();
    if (test::kernel_op(k, "write", "/cpuset.cpus", all.to_list()).error != 0) CONTAINERS_SKIP("the kernel's cpuset cannot hold every CPU we may use");
    fork_result const kernel = fork_with_wish(
        [&](pid_t self) { return test::kernel_op(k, "write", "/tasks", std::to_string(self)).error; }, set_affinity,
        [](pid_t, pid_t) { return 0; }, [&](cpumask const& m) { REQUIRE(test::kernel_op(k, "write", "/cpuset.cpus", m.to_list()).error == 0); },
        all);
    CHECK(requested.at_fork == kernel.at_fork);
    CHECK(requested.after_change == kernel.after_change);
    CHECK(direct.at_fork == kernel.at_fork);
}
