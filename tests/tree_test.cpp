// The tree: names and their errors, creation and removal, counts, paths, lookup and views.
#include "support.hpp"

#include <containers/views.hpp>

#include <catch2/catch.hpp>

#include <range/v3/algorithm/equal.hpp>
#include <range/v3/range/conversion.hpp>
#include <range/v3/view/transform.hpp>

#include <string>
#include <vector>

using namespace containers;
using test::C;
using test::H;

namespace {
using test::errc_of;

std::vector<std::string> names(auto&& range) {
    std::vector<std::string> out;
    for (C const& c : range) out.emplace_back(c.name());
    return out;
}
}  // namespace

TEST_CASE("a new hierarchy holds only its top container", "[tree]") {
    H h;
    CHECK(h.size() == 1);
    CHECK(h.top().is_top());
    CHECK(h.top().parent() == nullptr);
    CHECK(h.top().name().empty());
    CHECK(h.path(h.top()) == "/");
    CHECK_FALSE(h.top().removed());
    CHECK(errc_of(h.rmdir(h.top())) == std::errc::device_or_resource_busy);
    CHECK(h.size() == 1);
}

TEST_CASE("names follow the kernel's rules, each with its errno", "[tree][names]") {
    H h;
    auto [name, expected] = GENERATE(table<std::string, std::errc>({
        {"", std::errc::no_such_file_or_directory},
        {".", std::errc::file_exists},
        {"..", std::errc::file_exists},
        {"a/b", std::errc::no_such_file_or_directory},
        {"a\nb", std::errc::invalid_argument},
        {std::string("a\0b", 3), std::errc::invalid_argument},
        {std::string(4096, 'x'), std::errc::filename_too_long},
        {"tasks", std::errc::file_exists},
        {"cgroup.procs", std::errc::file_exists},
        {"notify_on_release", std::errc::file_exists},
        {"cgroup.clone_children", std::errc::file_exists},
        {"release_agent", std::errc::file_exists},
    }));
    CAPTURE(name);
    C* c = nullptr;
    CHECK(errc_of(h.mkdir(h.top(), name, &c)) == expected);
    CHECK(c == nullptr);
    CHECK(h.size() == 1);
}

TEST_CASE("names the kernel accepts are accepted", "[tree][names]") {
    H h;
    auto name = GENERATE(std::string("a b"), std::string("tab\there"), std::string("\x01"), std::string("é"),
                         std::string("a:b"), std::string(4095, 'y'), std::string("cpuset.cpus"));
    C* c = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), name, &c));
    CHECK(c->name() == name);
    CHECK(h.path(*c) == "/" + name);
}

TEST_CASE("release_agent is a file only in the top container", "[tree][names]") {
    H h;
    C* a = nullptr;
    C* b = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    CHECK_FALSE(h.mkdir(*a, "release_agent", &b));
    CHECK(errc_of(h.mkdir(*a, "tasks")) == std::errc::file_exists);
}

TEST_CASE("creating and removing children keeps the count and the links", "[tree]") {
    H h;
    C* a = nullptr;
    C* b = nullptr;
    C* ab = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.mkdir(h.top(), "b", &b));
    REQUIRE_FALSE(h.mkdir(*a, "ab", &ab));
    CHECK(h.size() == 4);
    CHECK(ab->parent() == a);
    CHECK(ab->depth() == 2);
    CHECK(h.path(*ab) == "/a/ab");
    CHECK(errc_of(h.mkdir(h.top(), "a")) == std::errc::file_exists);

    SECTION("a container with children cannot be removed") {
        CHECK(errc_of(h.rmdir(*a)) == std::errc::device_or_resource_busy);
        CHECK(h.size() == 4);
        CHECK_FALSE(a->removed());
    }
    SECTION("removal is leaf first, and a removed container says so") {
        REQUIRE_FALSE(h.rmdir(*ab));
        CHECK(ab->removed());  // still readable: reclaimed only after a grace period
        CHECK(h.size() == 3);
        CHECK(errc_of(h.rmdir(*ab)) == std::errc::no_such_file_or_directory);
        CHECK(errc_of(h.mkdir(*ab, "x")) == std::errc::no_such_file_or_directory);
        REQUIRE_FALSE(h.rmdir(*a));
        CHECK(h.size() == 2);
        C* again = nullptr;
        REQUIRE_FALSE(h.mkdir(h.top(), "a", &again));  // the name is free again
        CHECK(h.size() == 3);
    }
}

TEST_CASE("lookup resolves absolute paths", "[tree][path]") {
    H h;
    C* a = nullptr;
    C* ab = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.mkdir(*a, "b c", &ab));
    C* found = nullptr;
    CHECK_FALSE(h.lookup("/", found));
    CHECK(found == &h.top());
    CHECK_FALSE(h.lookup("/a/b c", found));
    CHECK(found == ab);
    CHECK_FALSE(h.lookup("//a//b c/", found));
    CHECK(found == ab);
    CHECK_FALSE(h.lookup("/a/b c/..", found));
    CHECK(found == a);
    CHECK(errc_of(h.lookup("/a/missing", found)) == std::errc::no_such_file_or_directory);
    CHECK(errc_of(h.lookup("a", found)) == std::errc::invalid_argument);
    CHECK(errc_of(h.lookup("", found)) == std::errc::no_such_file_or_directory);
    CHECK(found == a);  // unchanged by failures
}

TEST_CASE("views list children, descendants in pre-order, and ancestors", "[tree][views]") {
    H h;
    C* a = nullptr;
    C* b = nullptr;
    C* a1 = nullptr;
    C* a2 = nullptr;
    C* a11 = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "b", &b));
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.mkdir(*a, "a2", &a2));
    REQUIRE_FALSE(h.mkdir(*a, "a1", &a1));
    REQUIRE_FALSE(h.mkdir(*a1, "a11", &a11));
    auto lock = h.manage_lock();
    CHECK(names(views::children(h.top())) == std::vector<std::string>{"a", "b"});
    CHECK(names(views::descendants(h.top())) == std::vector<std::string>{"a", "a1", "a11", "a2", "b"});
    CHECK(names(views::subtree(*a)) == std::vector<std::string>{"a", "a1", "a11", "a2"});
    CHECK(names(views::descendants(*a1)) == std::vector<std::string>{"a11"});
    CHECK(names(views::descendants(*b)).empty());
    CHECK(names(views::ancestors(*a11)) == std::vector<std::string>{"a1", "a", ""});
    CHECK(names(views::ancestors(h.top())).empty());
}

TEST_CASE("a depth of 100 000 works without recursion", "[tree][views][deep]") {
    H h;
    C* c = &h.top();
    constexpr std::size_t depth = 100'000;
    for (std::size_t i = 0; i < depth; ++i) REQUIRE_FALSE(h.mkdir(*c, "d", &c));
    CHECK(c->depth() == depth);
    CHECK(h.size() == depth + 1);
    CHECK(h.path(*c).size() == 2 * depth);
    std::size_t n = 0;
    {
        auto lock = h.manage_lock();
        for (C const& d : views::descendants(h.top())) n += d.name() == "d";
        CHECK(ranges::distance(views::ancestors(*c)) == static_cast<std::ptrdiff_t>(depth));
    }
    CHECK(n == depth);
    C* found = nullptr;
    CHECK_FALSE(h.lookup(h.path(*c), found));
    CHECK(found == c);
    // The hierarchy's destructor frees the chain iteratively as well.
}
