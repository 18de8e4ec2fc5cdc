// cpu: the files' formats, defaults, limits and errors, the typed accessors behind them, the
// hierarchical quota rule, and the kernel's cpu controller as the oracle for the same writes.
#include "support.hpp"

#include <containers/cpu.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>
#include <sys/stat.h>

using namespace containers;

namespace {
struct no_fiber {
    static std::uint64_t get() noexcept { return 0; }
};
using LH = hierarchy<logical_task_traits<std::uint64_t, no_fiber>, 4>;
using LC = LH::container;
using lcpu = basic_cpu<LH>;

struct tree {
    LH h;
    subsystem_handle<lcpu, LH> p;
    LC* a = nullptr;
    LC* b = nullptr;  // a child of a
    tree() {
        REQUIRE_FALSE(h.register_subsystem(p));
        REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
        REQUIRE_FALSE(h.mkdir(*a, "b", &b));
    }
    std::string read(std::string const& path) {
        std::string out;
        REQUIRE_FALSE(fs::read(h, path, out));
        return out;
    }
    int write(std::string const& path, std::string const& value) { return fs::write(h, path, value).value(); }
};

struct row {
    std::string file;
    std::string value;
    int error;
    std::string after;
};

// The kernel's answers, measured on 6.18 in a fresh group (each row after the ones before it).
// cpu.stat first: once a quota is set the kernel's period timer counts nr_periods on its own.
std::vector<row> const rows = {
    {"cpu.stat", "0", EINVAL, "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n"},
    {"cpu.stat", "", 0, "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n"},
    {"cpu.shares", "1024", 0, "1024\n"},
    {"cpu.shares", "0", 0, "2\n"},
    {"cpu.shares", "1", 0, "2\n"},
    {"cpu.shares", "3", 0, "3\n"},
    {"cpu.shares", "262144", 0, "262144\n"},
    {"cpu.shares", "262145", 0, "262144\n"},
    {"cpu.shares", "18446744073709551615", 0, "262144\n"},
    {"cpu.shares", "18446744073709551616", ERANGE, "262144\n"},
    {"cpu.shares", "-1", EINVAL, "262144\n"},
    {"cpu.shares", "abc", EINVAL, "262144\n"},
    {"cpu.shares", " 5", EINVAL, "262144\n"},
    {"cpu.shares", "5 ", EINVAL, "262144\n"},
    {"cpu.shares", "5\n", 0, "5\n"},
    {"cpu.shares", "0x10", 0, "16\n"},
    {"cpu.shares", "010", 0, "8\n"},
    {"cpu.shares", "+5", 0, "5\n"},
    {"cpu.shares", "", 0, "5\n"},
    {"cpu.shares", "1024", 0, "1024\n"},
    {"cpu.cfs_period_us", "999", EINVAL, "100000\n"},
    {"cpu.cfs_period_us", "1000", 0, "1000\n"},
    {"cpu.cfs_period_us", "1000000", 0, "1000000\n"},
    {"cpu.cfs_period_us", "1000001", EINVAL, "1000000\n"},
    {"cpu.cfs_period_us", "0", EINVAL, "1000000\n"},
    {"cpu.cfs_period_us", "-1", EINVAL, "1000000\n"},
    {"cpu.cfs_period_us", "0x3e8", 0, "1000\n"},
    {"cpu.cfs_period_us", "100000", 0, "100000\n"},
    {"cpu.cfs_quota_us", "0", EINVAL, "-1\n"},
    {"cpu.cfs_quota_us", "999", EINVAL, "-1\n"},
    {"cpu.cfs_quota_us", "1000", 0, "1000\n"},
    {"cpu.cfs_quota_us", "-1", 0, "-1\n"},
    {"cpu.cfs_quota_us", "-5", 0, "-1\n"},
    {"cpu.cfs_quota_us", "-9223372036854775808", 0, "-1\n"},
    {"cpu.cfs_quota_us", "17592186044415", 0, "17592186044415\n"},
    {"cpu.cfs_quota_us", "17592186044416", EINVAL, "17592186044415\n"},
    {"cpu.cfs_quota_us", "9223372036854775808", ERANGE, "17592186044415\n"},
    {"cpu.cfs_quota_us", " 5000", EINVAL, "17592186044415\n"},
    {"cpu.cfs_burst_us", "1", EINVAL, "0\n"},  // quota + burst past 2^44 - 1
    {"cpu.cfs_quota_us", "50000", 0, "50000\n"},
    {"cpu.cfs_burst_us", "50000", 0, "50000\n"},
    {"cpu.cfs_burst_us", "50001", EINVAL, "50000\n"},
    {"cpu.cfs_quota_us", "40000", EINVAL, "50000\n"},  // below the burst
    {"cpu.cfs_burst_us", "-1", EINVAL, "50000\n"},
    {"cpu.cfs_burst_us", "0", 0, "0\n"},
    {"cpu.cfs_quota_us", "-1", 0, "-1\n"},
    {"cpu.cfs_burst_us", "18446744073709551", 0, "18446744073709551\n"},
    {"cpu.cfs_burst_us", "18446744073709552", EINVAL, "18446744073709551\n"},
    {"cpu.cfs_burst_us", "0", 0, "0\n"},
};

// The hierarchical rule, on a group and its child (paths relative to the group).
std::vector<row> const nested = {
    {"cpu.cfs_quota_us", "50000", 0, "50000\n"},
    {"c/cpu.cfs_quota_us", "60000", EINVAL, "-1\n"},
    {"c/cpu.cfs_quota_us", "50000", 0, "50000\n"},
    {"c/cpu.cfs_quota_us", "40000", 0, "40000\n"},
    {"cpu.cfs_quota_us", "30000", EINVAL, "50000\n"},  // the child would exceed it
    {"c/cpu.cfs_period_us", "50000", EINVAL, "100000\n"},
    {"c/cpu.cfs_period_us", "200000", 0, "200000\n"},
    {"c/cpu.cfs_quota_us", "100000", 0, "100000\n"},
    {"c/cpu.cfs_quota_us", "100001", EINVAL, "100000\n"},
    {"cpu.cfs_quota_us", "-1", 0, "-1\n"},
    {"c/cpu.cfs_quota_us", "100001", 0, "100001\n"},
    {"cpu.cfs_quota_us", "50000", EINVAL, "-1\n"},
    {"c/cpu.cfs_quota_us", "-1", 0, "-1\n"},
    {"cpu.cfs_quota_us", "50000", 0, "50000\n"},
    {"cpu.cfs_quota_us", "-1", 0, "-1\n"},
};
}  // namespace

TEST_CASE("cpu files take what the kernel takes", "[cpu][files]") {
    tree t;
    CHECK(t.read("/a/cpu.shares") == "1024\n");
    CHECK(t.read("/a/cpu.cfs_period_us") == "100000\n");
    CHECK(t.read("/a/cpu.cfs_quota_us") == "-1\n");
    CHECK(t.read("/a/cpu.cfs_burst_us") == "0\n");
    for (row const& r : rows) {
        CAPTURE(r.file, r.value);
        CHECK(t.write("/a/" + r.file, r.value) == r.error);
        CHECK(t.read("/a/" + r.file) == r.after);
    }
}

TEST_CASE("a cpu quota may not exceed the nearest limited ancestor's", "[cpu][files]") {
    tree t;
    for (row const& r : nested) {
        std::string const file = r.file.starts_with("c/") ? "/a/b/" + r.file.substr(2) : "/a/" + r.file;
        CAPTURE(file, r.value);
        CHECK(t.write(file, r.value) == r.error);
        CHECK(t.read(file) == r.after);
    }
}

TEST_CASE("the top cpu group reads the defaults and refuses every write", "[cpu][files]") {
    tree t;
    CHECK(t.read("/cpu.shares") == "1024\n");
    CHECK(t.read("/cpu.cfs_quota_us") == "-1\n");
    CHECK(t.read("/cpu.cfs_period_us") == "100000\n");
    CHECK(t.read("/cpu.cfs_burst_us") == "0\n");
    CHECK(t.write("/cpu.shares", "2048") == EINVAL);
    CHECK(t.write("/cpu.shares", "18446744073709551616") == ERANGE);  // parsed first
    CHECK(t.write("/cpu.cfs_quota_us", "50000") == EINVAL);
    CHECK(t.write("/cpu.cfs_period_us", "50000") == EINVAL);
    CHECK(t.write("/cpu.cfs_burst_us", "0") == EINVAL);
    CHECK(t.read("/cpu.shares") == "1024\n");
}

TEST_CASE("cpu's typed setters and getters are the files' own", "[cpu][typed]") {
    tree t;
    lcpu& s = t.p.subsystem();
    CHECK_FALSE(s.set_shares(*t.a, 1));
    std::uint64_t u = 0;
    CHECK_FALSE(s.get_shares(*t.a, u));
    CHECK(u == 2);
    CHECK_FALSE(s.set_shares(*t.a, UINT64_MAX));
    CHECK(t.read("/a/cpu.shares") == "262144\n");
    CHECK(s.set_shares(t.h.top(), 10) == std::errc::invalid_argument);
    CHECK(s.set_period_us(*t.a, 999) == std::errc::invalid_argument);
    CHECK_FALSE(s.set_period_us(*t.a, 5000));
    CHECK_FALSE(s.get_period_us(*t.a, u));
    CHECK(u == 5000);
    CHECK(s.set_quota_us(*t.a, 0) == std::errc::invalid_argument);
    CHECK_FALSE(s.set_quota_us(*t.a, -7));
    std::int64_t q = 0;
    CHECK_FALSE(s.get_quota_us(*t.a, q));
    CHECK(q == -1);
    CHECK_FALSE(s.set_quota_us(*t.a, 2500));
    CHECK(t.read("/a/cpu.cfs_quota_us") == "2500\n");
    CHECK_FALSE(s.set_period_us(*t.b, 200000));
    CHECK(s.set_quota_us(*t.b, 200000) == std::errc::invalid_argument);  // 1.0 > 0.5
    CHECK_FALSE(s.set_quota_us(*t.b, 100000));
    CHECK(s.set_burst_us(*t.a, 2501) == std::errc::invalid_argument);
    CHECK_FALSE(s.set_burst_us(*t.a, 2500));
    CHECK_FALSE(s.get_burst_us(*t.a, u));
    CHECK(u == 2500);
    lcpu::cpu_stat st;
    CHECK_FALSE(s.get_stat(*t.a, st));
    CHECK(st == lcpu::cpu_stat{});
    // A removed container answers ENODEV.
    LC* gone = nullptr;
    REQUIRE_FALSE(t.h.mkdir(t.h.top(), "gone", &gone));
    {
        read_section rs;
        REQUIRE_FALSE(t.h.rmdir(*gone));
        CHECK(s.set_shares(*gone, 5) == std::errc::no_such_device);
        CHECK(s.get_shares(*gone, u) == std::errc::no_such_device);
    }
}

TEST_CASE("cpu answers as the kernel's cpu controller", "[cpu][kernel]") {
    auto scratch = test::kernel_scratch::make("/sys/fs/cgroup/cpu");
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 cpu hierarchy is not mounted writable at /sys/fs/cgroup/cpu");
    std::string const k = scratch->path();
    REQUIRE(::mkdir((k + "/c").c_str(), 0755) == 0);
    tree t;
    auto same = [&](row const& r, std::string const& kfile, std::string const& lfile) {
        CAPTURE(kfile, r.value);
        test::outcome const kw = test::kernel_op(k, "write", kfile, r.value);
        test::outcome const lw = test::library_op(t.h, "write", lfile, r.value);
        CHECK(kw.error == lw.error);
        CHECK(kw.error == r.error);  // the table above is the kernel's
        test::outcome const kr = test::kernel_op(k, "read", kfile, "");
        CHECK(kr == test::library_op(t.h, "read", lfile, ""));
    };
    for (row const& r : rows) same(r, "/" + r.file, "/a/" + r.file);
    for (row const& r : nested) {
        bool const child = r.file.starts_with("c/");
        std::string const f = child ? r.file.substr(2) : r.file;
        same(r, child ? "/c/" + f : "/" + f, child ? "/a/b/" + f : "/a/" + f);
    }
}
