// CPU and node masks: the algebra, sizes beyond 4096, cpu_set_t conversion against the real
// affinity syscalls, and the kernel's list and hex formats, checked against /proc and against
// the kernel's own parser (cpuset.cpus in a scratch cpuset).
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace containers;

namespace {
using test::errc_of;

cpumask list(std::string_view s, std::size_t nbits = 4096) {
    cpumask m;
    REQUIRE_FALSE(cpumask::parse_list(s, nbits, m));
    return m;
}

// A field of /proc/self/task/TID/status, without the label and the newline.
std::string status_field(std::string const& name) {
    std::ifstream f("/proc/self/task/" + std::to_string(thread_task_traits::self()) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.starts_with(name + ":")) {
            std::size_t const v = line.find_first_not_of(" \t", name.size() + 1);
            return v == std::string::npos ? "" : line.substr(v);
        }
    }
    return {};
}

// The number of possible CPUs (nr_cpu_ids): the kernel formats and parses masks with this many bits.
std::size_t possible_cpus() {
    std::ifstream f("/sys/devices/system/cpu/possible");
    std::string s;
    std::getline(f, s);
    cpumask m;
    REQUIRE_FALSE(cpumask::parse_list(s, 1 << 20, m));
    return m.extent();
}
}  // namespace

TEST_CASE("masks form a set algebra of any size", "[cpumask]") {
    cpumask a = list("0-3,8");
    cpumask b = list("2-9");
    CHECK((a | b) == list("0-9"));
    CHECK((a & b) == list("2-3,8"));
    CHECK((a - b) == list("0-1"));
    CHECK((b - a) == list("4-7,9"));
    CHECK(list("2-3").subset_of(a));
    CHECK_FALSE(a.subset_of(b));
    CHECK(cpumask{}.subset_of(a));
    CHECK(a.intersects(b));
    CHECK_FALSE(list("0-1").intersects(list("2")));
    CHECK(a.count() == 5);
    CHECK(std::vector<std::size_t>(a.begin(), a.end()) == std::vector<std::size_t>{0, 1, 2, 3, 8});
    cpumask big = list("0,4095,8191", 8192);
    CHECK(big.count() == 3);
    CHECK(big.extent() == 8192);
    CHECK(big.to_list() == "0,4095,8191");
    big.reset(8191);
    CHECK(big == list("0,4095"));
    CHECK((big - big).empty());
    CHECK((big - big) == cpumask{});  // no trailing zero words left behind
}

TEST_CASE("the list format parses and prints as the kernel's", "[cpumask][parse]") {
    auto [text, expected] = GENERATE(table<std::string, std::string>({
        {"0", "0"},          {"0-1", "0-1"},     {"0,1", "0-1"},          {"0 , 1", "0-1"},  {" 0-1 ", "0-1"},
        {"0-1\n", "0-1"},    {"\n", ""},         {"", ""},                {"0-1:1/2", "0"},  {"0-N", "0-3"},
        {"N", "3"},          {"0,,1", "0-1"},    {",0", "0"},             {"0\n1", "0"},     {"0\t1", "0-1"},
        {"1,0", "0-1"},      {"00", "0"},        {"0-3:1/2", "0,2"},      {"1-3:2/3", "1-2"},
    }));
    CAPTURE(text);
    cpumask m;
    REQUIRE_FALSE(cpumask::parse_list(text, 4, m));
    CHECK(m.to_list() == expected);
}

TEST_CASE("malformed lists get the kernel's errors and change nothing", "[cpumask][parse]") {
    auto [text, expected] = GENERATE(table<std::string, std::errc>({
        {"1-0", std::errc::invalid_argument},
        {"4", std::errc::result_out_of_range},
        {"0-4", std::errc::result_out_of_range},
        {"99999999999", std::errc::value_too_large},
        {"0-1:2/1", std::errc::invalid_argument},
        {"0-1:0/0", std::errc::invalid_argument},
        {"0-1:1/0", std::errc::invalid_argument},
        {"a", std::errc::invalid_argument},
        {"0-", std::errc::invalid_argument},
        {"-1", std::errc::invalid_argument},
        {"0--1", std::errc::invalid_argument},
        {"0-1:1", std::errc::invalid_argument},
        {"0 -1", std::errc::invalid_argument},
        {"0x1", std::errc::invalid_argument},
    }));
    CAPTURE(text);
    cpumask m = list("2");
    CHECK(errc_of(cpumask::parse_list(text, 4, m)) == expected);
    CHECK(m == list("2"));
}

TEST_CASE("the hex format parses and prints as the kernel's", "[cpumask][parse]") {
    CHECK(list("0-1").to_hex(2) == "3");
    CHECK(list("0-1").to_hex(8) == "03");
    CHECK(list("0,33").to_hex(64) == "00000002,00000001");
    CHECK(list("0,33").to_hex(40) == "02,00000001");
    cpumask m;
    REQUIRE_FALSE(cpumask::parse_hex("2,00000001\n", 64, m));
    CHECK(m == list("0,33"));
    CHECK(errc_of(cpumask::parse_hex("zz", 64, m)) == std::errc::invalid_argument);
    CHECK(errc_of(cpumask::parse_hex("100000000", 64, m)) == std::errc::value_too_large);
    CHECK(errc_of(cpumask::parse_hex("4", 2, m)) == std::errc::value_too_large);
    CHECK(m == list("0,33"));
}

TEST_CASE("parsing and copying into a mask are noexcept and report ENOMEM instead of throwing", "[cpumask][faults]") {
    cpumask m;
    STATIC_REQUIRE(noexcept(cpumask::parse_list("0", 1, m)));
    STATIC_REQUIRE(noexcept(cpumask::parse_hex("1", 1, m)));
    STATIC_REQUIRE(noexcept(m.assign(m)));
    STATIC_REQUIRE(noexcept(m.try_set(0)));
    // Large masks (beyond the inline 256 bits) through the noexcept forms.
    REQUIRE_FALSE(m.try_set(5000));
    cpumask copy;
    REQUIRE_FALSE(copy.assign(m));
    CHECK(copy == m);
    REQUIRE_FALSE(cpumask::parse_hex("1,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000", 512, m));
    CHECK(m == list("256"));
}

TEST_CASE("masks convert to and from the real affinity, as /proc shows it", "[cpumask][syscall]") {
    cpu_set_t raw;
    REQUIRE(::sched_getaffinity(0, sizeof raw, &raw) == 0);
    cpumask const mine = cpumask::from_cpu_set(&raw, sizeof raw);
    REQUIRE_FALSE(mine.empty());
    CHECK(mine.to_list() == status_field("Cpus_allowed_list"));
    CHECK(mine.to_hex(possible_cpus()) == status_field("Cpus_allowed"));

    // Pin to the first allowed CPU through a dynamically sized set, check, and restore.
    cpumask const one = cpumask::range(mine.first(), mine.first());
    auto set = one.to_cpu_set(4096);
    REQUIRE(set.set);
    CHECK(set.bytes == CPU_ALLOC_SIZE(4096));
    REQUIRE(::sched_setaffinity(0, set.bytes, set.set.get()) == 0);
    CHECK(status_field("Cpus_allowed_list") == one.to_list());
    auto back = mine.to_cpu_set();
    REQUIRE(::sched_setaffinity(0, back.bytes, back.set.get()) == 0);
    CHECK(status_field("Cpus_allowed_list") == mine.to_list());
}

TEST_CASE("lists parse as the kernel's own parser does (cpuset.cpus)", "[cpumask][parse][kernel]") {
    auto scratch = test::kernel_scratch::make();
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 cpuset hierarchy is not mounted writable at /sys/fs/cgroup/cpuset");
    std::string const file = scratch->path() + "/cpuset.cpus";
    std::size_t const nbits = possible_cpus();
    cpumask parent;
    {
        std::ifstream f(file);
        std::string s;
        std::getline(f, s);
        REQUIRE_FALSE(cpumask::parse_list(s, nbits, parent));
    }
    auto text = GENERATE(std::string("0"), std::string("1-0"), std::string("0,,0"), std::string(" 0 "), std::string("N"),
                         std::string("0-N"), std::string("0-N:1/2"), std::string("0-1:2/1"), std::string("a"), std::string("0-"),
                         std::string("-1"), std::string("0x1"), std::string("99999999999"), std::string("4095"),
                         std::string("0\n1"), std::string("0\t0"), std::string("\n"), std::string("00"), std::string("0 -1"));
    CAPTURE(text);
    int kernel = 0;
    int fd = ::open(file.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    if (::write(fd, text.data(), text.size()) < 0) kernel = errno;
    ::close(fd);
    cpumask m;
    std::error_code lib = cpumask::parse_list(text, nbits, m);
    // Beyond parsing, the kernel asks that the CPUs be within the parent's (EINVAL otherwise).
    if (!lib && !m.subset_of(parent)) lib = std::make_error_code(std::errc::invalid_argument);
    CHECK(lib.value() == kernel);
    if (!lib) {
        std::ifstream f(file);
        std::string s;
        std::getline(f, s);
        CHECK(s == m.to_list());
    }
}
