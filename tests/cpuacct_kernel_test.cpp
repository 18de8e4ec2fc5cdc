// cpuacct against the kernel's own, under a scratch directory of /sys/fs/cgroup/cpuacct: the same
// script gives the same answers, and the same threads, members of a kernel group and of a library
// group at once, are charged the same time.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>

using namespace containers;
using test::C;
using test::H;

namespace {
constexpr char const* cpuacct_root = "/sys/fs/cgroup/cpuacct";
constexpr std::uint64_t ms = 1'000'000;

std::uint64_t kernel_u64(std::string const& dir, char const* file) {
    test::outcome const o = test::kernel_op(dir, "read", std::string("/") + file, "");
    REQUIRE(o.error == 0);
    return std::strtoull(o.content.c_str(), nullptr, 10);
}

void kernel_join(std::string const& dir, pid_t tid) { REQUIRE(test::kernel_op(dir, "write", "/tasks", std::to_string(tid)).error == 0); }

double relative(std::uint64_t a, std::uint64_t b) {
    return std::abs(static_cast<double>(a) - static_cast<double>(b)) / static_cast<double>(std::max<std::uint64_t>(b, 1));
}
}  // namespace

TEST_CASE("cpuacct's files answer a script as the kernel's do", "[cpuacct][kernel]") {
    auto scratch = test::kernel_scratch::make(cpuacct_root);
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 cpuacct hierarchy is not mounted writable at /sys/fs/cgroup/cpuacct");
    H h;
    subsystem_handle<cpuacct, H> ca;
    REQUIRE_FALSE(h.register_subsystem(ca));
    struct step {
        char const* op;
        char const* path;
        char const* value;
    };
    // Reads of an idle group only: a busy one's numbers are compared in the accuracy test.
    step const script[] = {
        {"mkdir", "/g", ""},
        {"read", "/g/cpuacct.usage", ""},
        {"read", "/g/cpuacct.usage_user", ""},
        {"read", "/g/cpuacct.usage_sys", ""},
        {"read", "/g/cpuacct.stat", ""},
        {"write", "/g/cpuacct.usage", "0"},
        {"write", "/g/cpuacct.usage", "0\n"},
        {"write", "/g/cpuacct.usage", "00"},
        {"write", "/g/cpuacct.usage", "0x0"},
        {"write", "/g/cpuacct.usage", "+0"},
        {"write", "/g/cpuacct.usage", ""},
        {"write", "/g/cpuacct.usage", "1"},
        {"write", "/g/cpuacct.usage", "1\n"},
        {"write", "/g/cpuacct.usage", " 0"},
        {"write", "/g/cpuacct.usage", "0 "},
        {"write", "/g/cpuacct.usage", "-0"},
        {"write", "/g/cpuacct.usage", "-1"},
        {"write", "/g/cpuacct.usage", "abc"},
        {"write", "/g/cpuacct.usage", "0x"},
        {"write", "/g/cpuacct.usage", "18446744073709551615"},
        {"write", "/g/cpuacct.usage", "18446744073709551616"},
        {"write", "/g/cpuacct.usage_user", "0"},
        {"write", "/g/cpuacct.usage_sys", "0"},
        {"write", "/g/cpuacct.stat", "0"},
        {"read", "/g/cpuacct.usage", ""},
        {"mkdir", "/g/cpuacct.usage", ""},
        {"rmdir", "/g", ""},
        {"read", "/g/cpuacct.usage", ""},
    };
    for (step const& s : script) {
        CAPTURE(s.op, s.path, s.value);
        test::outcome const kernel = test::kernel_op(scratch->path(), s.op, s.path, s.value);
        test::outcome const library = test::library_op(h, s.op, s.path, s.value);
        CHECK(library == kernel);
    }
}

TEST_CASE("the same threads are charged the same time by the kernel's cpuacct and the library's", "[cpuacct][kernel][accuracy]") {
    auto scratch = test::kernel_scratch::make(cpuacct_root);
    if (!scratch) CONTAINERS_SKIP("the cgroup v1 cpuacct hierarchy is not mounted writable at /sys/fs/cgroup/cpuacct");
    std::string const kp = scratch->path() + "/p";
    std::string const kc = kp + "/c";
    REQUIRE(test::kernel_op(scratch->path(), "mkdir", "/p", "").error == 0);
    REQUIRE(test::kernel_op(scratch->path(), "mkdir", "/p/c", "").error == 0);
    H h;
    subsystem_handle<cpuacct, H> ca;
    REQUIRE_FALSE(h.register_subsystem(ca));
    C* p = nullptr;
    C* c = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "p", &p));
    REQUIRE_FALSE(h.mkdir(*p, "c", &c));
    cpuacct& acct = ca.subsystem();

    // Declared after the scratch directory: the threads end (and leave the kernel's group)
    // before the directory is removed.
    test::worker w1;
    test::worker w2;
    // Both join both groups while they wait, using no CPU: the two accounts start together.
    for (test::worker* w : {&w1, &w2}) {
        kernel_join(kc, w->tid());
        REQUIRE_FALSE(h.attach(w->tid(), *c));
    }
    // Busy at once, competing for the CPUs with each other and with whatever else runs.
    w1.start([] { test::burn(300 * ms); });
    w2.start([] {
        test::burn(200 * ms);
        // Some system time too: small reads of /proc.
        for (int i = 0; i < 2000; ++i) (void)test::task_state(::getpid());
    });
    w1.wait();
    w2.wait();

    std::uint64_t const kernel = kernel_u64(kc, "cpuacct.usage");
    std::uint64_t const library = acct.usage(*c);
    std::fprintf(stderr, "cpuacct accuracy: kernel %llu ns, library %llu ns, difference %.4f%%\n", static_cast<unsigned long long>(kernel),
                 static_cast<unsigned long long>(library), 100 * relative(library, kernel));
    CHECK(kernel >= 500 * ms);
    CHECK(relative(library, kernel) < 0.02);
    CHECK(relative(acct.usage(*p), kernel_u64(kp, "cpuacct.usage")) < 0.02);

    // User and system time. The kernel's usage_user and usage_sys are its raw tick samples (HZ),
    // which miss time on a virtual machine; the library's come from each thread's utime and
    // stime, which the kernel has already scaled to the thread's run time. So the absolute
    // numbers differ; what must agree is the split, and cpuacct.stat, which both scale to usage.
    std::uint64_t const ku = kernel_u64(kc, "cpuacct.usage_user");
    std::uint64_t const ks = kernel_u64(kc, "cpuacct.usage_sys");
    std::uint64_t const lu = acct.usage_user(*c);
    std::uint64_t const ls = acct.usage_sys(*c);
    std::string const kstat = test::kernel_op(kc, "read", "/cpuacct.stat", "").content;
    std::string lstat;
    REQUIRE_FALSE(fs::read(h, "/p/c/cpuacct.stat", lstat));
    std::fprintf(stderr, "cpuacct user/sys: kernel %llu/%llu ns, library %llu/%llu ns; stat: kernel {%s} library {%s}\n",
                 static_cast<unsigned long long>(ku), static_cast<unsigned long long>(ks), static_cast<unsigned long long>(lu),
                 static_cast<unsigned long long>(ls), kstat.c_str(), lstat.c_str());
    REQUIRE(ku + ks > 0);
    REQUIRE(lu + ls > 0);
    double const kernel_user_share = static_cast<double>(ku) / static_cast<double>(ku + ks);
    double const library_user_share = static_cast<double>(lu) / static_cast<double>(lu + ls);
    CHECK(std::abs(kernel_user_share - library_user_share) < 0.15);
    unsigned long long kuser = 0, ksys = 0, luser = 0, lsys = 0;
    REQUIRE(std::sscanf(kstat.c_str(), "user %llu\nsystem %llu\n", &kuser, &ksys) == 2);
    REQUIRE(std::sscanf(lstat.c_str(), "user %llu\nsystem %llu\n", &luser, &lsys) == 2);
    double const ticks = static_cast<double>(kuser + ksys);
    CHECK(std::abs(static_cast<double>(kuser) - static_cast<double>(luser)) <= 0.15 * ticks + 3);
    CHECK(std::abs(static_cast<double>(ksys) - static_cast<double>(lsys)) <= 0.15 * ticks + 3);
    CHECK(std::abs(static_cast<double>(kuser + ksys) - static_cast<double>(luser + lsys)) <= 0.02 * ticks + 2);

    // A reset of the parent: both restart it and keep the child's.
    REQUIRE(test::kernel_op(kp, "write", "/cpuacct.usage", "0").error == 0);
    REQUIRE_FALSE(acct.reset(*p));
    CHECK(kernel_u64(kp, "cpuacct.usage") < 5 * ms);
    CHECK(acct.usage(*p) < 5 * ms);
    CHECK(relative(acct.usage(*c), kernel_u64(kc, "cpuacct.usage")) < 0.02);
    for (test::worker* w : {&w1, &w2}) REQUIRE_FALSE(h.exit(w->tid()));
}
