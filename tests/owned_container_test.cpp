// owned_container: a container removed when its handle goes, with its tasks moved to the parent
// if asked; what happens on each way removal can fail; handles destroyed concurrently with
// attaches.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace containers;
using test::C;
using test::H;
using owned = owned_container<H>;

namespace {

bool exists(H& h, std::string const& path) {
    C* c = nullptr;
    return !h.lookup(path, c);
}

std::vector<pid_t> ids_in(H& h, C& c) {
    std::vector<pid_t> out;
    REQUIRE_FALSE(h.task_ids(c, out));
    return out;
}

}  // namespace

TEST_CASE("an owned container is movable, not copyable", "[owned]") {
    STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<owned>);
    STATIC_REQUIRE_FALSE(std::is_copy_assignable_v<owned>);
    STATIC_REQUIRE(std::is_nothrow_move_constructible_v<owned>);
    STATIC_REQUIRE(std::is_nothrow_move_assignable_v<owned>);
    STATIC_REQUIRE(std::is_nothrow_destructible_v<owned>);
}

TEST_CASE("an owned container is removed when its handle goes", "[owned]") {
    H h;
    {
        owned g;
        CHECK_FALSE(g);
        REQUIRE_FALSE(owned::create(h, h.top(), "job", g));
        REQUIRE(g);
        CHECK(h.path(*g) == "/job");
        CHECK(g->parent() == &h.top());
        CHECK(h.size() == 2);
    }
    CHECK_FALSE(exists(h, "/job"));
    CHECK(h.size() == 1);
}

TEST_CASE("a failed creation leaves the handle as it was", "[owned]") {
    H h;
    owned g;
    REQUIRE_FALSE(owned::create(h, h.top(), "a", g));
    C* const a = g.get();
    CHECK(owned::create(h, h.top(), "a", g) == std::errc::file_exists);
    CHECK(owned::create(h, h.top(), "", g) == std::errc::no_such_file_or_directory);
    CHECK(owned::create(h, h.top(), "x\ny", g) == std::errc::invalid_argument);
    CHECK(g.get() == a);
    CHECK(h.size() == 2);
    owned empty;
    CHECK(owned::create(h, h.top(), "a", empty) == std::errc::file_exists);
    CHECK_FALSE(empty);
}

TEST_CASE("moving a handle moves ownership; assigning over one removes what it owned", "[owned]") {
    H h;
    owned a;
    REQUIRE_FALSE(owned::create(h, h.top(), "a", a, removal::move_tasks_to_parent));
    owned b(std::move(a));
    CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move): a moved-from handle is empty
    CHECK(h.path(*b) == "/a");
    CHECK(b.policy() == removal::move_tasks_to_parent);
    owned c;
    REQUIRE_FALSE(owned::create(h, h.top(), "c", c));
    c = std::move(b);
    CHECK_FALSE(exists(h, "/c"));
    CHECK(exists(h, "/a"));
    owned& alias = c;
    c = std::move(alias);  // self-move keeps it
    CHECK(exists(h, "/a"));
    // Creating into a handle that owns something removes the old one once the new one exists.
    REQUIRE_FALSE(owned::create(h, h.top(), "d", c));
    CHECK_FALSE(exists(h, "/a"));
    CHECK(h.path(*c) == "/d");
}

TEST_CASE("release gives the container back to the raw API", "[owned]") {
    H h;
    C* raw = nullptr;
    {
        owned g;
        REQUIRE_FALSE(owned::create(h, h.top(), "kept", g));
        raw = g.release();
        CHECK_FALSE(g);
        CHECK_FALSE(g.remove());  // empty: nothing to do
    }
    REQUIRE(exists(h, "/kept"));
    CHECK_FALSE(h.rmdir(*raw));
}

TEST_CASE("require_empty: a container with tasks is not removed, by remove() or the destructor", "[owned][rollback]") {
    H h;
    test::parked_thread w;
    C* left = nullptr;
    {
        owned g;
        REQUIRE_FALSE(owned::create(h, h.top(), "busy", g));
        REQUIRE_FALSE(h.attach(w.tid(), *g));
        CHECK(g.remove() == std::errc::device_or_resource_busy);
        REQUIRE(g);  // still owned after a failed remove()
        CHECK(&h.container_of(w.tid()) == g.get());
        left = g.get();
    }
    // The destructor could not remove it: it stays in the tree, with its task, unowned.
    REQUIRE(exists(h, "/busy"));
    CHECK(&h.container_of(w.tid()) == left);
    REQUIRE_FALSE(h.attach(w.tid(), h.top()));
    CHECK_FALSE(h.rmdir(*left));
}

TEST_CASE("a container with children is not removed, whatever the policy", "[owned][rollback]") {
    auto const policy = GENERATE(removal::require_empty, removal::move_tasks_to_parent);
    H h;
    test::parked_thread w;
    C* child = nullptr;
    {
        owned g;
        REQUIRE_FALSE(owned::create(h, h.top(), "parent", g, policy));
        REQUIRE_FALSE(h.mkdir(*g, "child", &child));
        REQUIRE_FALSE(h.attach(w.tid(), *g));
        CHECK(g.remove() == std::errc::device_or_resource_busy);
        CHECK(&h.container_of(w.tid()) == g.get());  // the tasks were not moved either
        REQUIRE(g);
    }
    REQUIRE(exists(h, "/parent/child"));
    C* p = child->parent();
    CHECK(ids_in(h, *p) == std::vector<pid_t>{w.tid()});
    REQUIRE_FALSE(h.rmdir(*child));
    REQUIRE_FALSE(h.rmdir_moving_tasks(*p));
    CHECK(&h.container_of(w.tid()) == &h.top());
}

TEST_CASE("move_tasks_to_parent moves the tasks through attach, then removes", "[owned]") {
    test::journal log;  // outlives the hierarchy, whose teardown runs destroy hooks
    H h;
    subsystem_handle<test::recorder<0>, H> rec;
    REQUIRE_FALSE(h.register_subsystem(rec, log));
    C* p = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "p", &p));
    test::parked_thread w1, w2;
    {
        owned g;
        REQUIRE_FALSE(owned::create(h, *p, "c", g, removal::move_tasks_to_parent));
        pid_t const both[] = {w1.tid(), w2.tid()};
        REQUIRE_FALSE(h.attach(both, *g));
        log.clear();
        CHECK_FALSE(g.remove());
        CHECK_FALSE(g);
    }
    CHECK_FALSE(exists(h, "/p/c"));
    CHECK(&h.container_of(w1.tid()) == p);
    CHECK(&h.container_of(w2.tid()) == p);
    REQUIRE(log.events.size() == 4);
    CHECK(log.events[0].rfind("rec0:can_attach:/p:", 0) == 0);
    CHECK(log.events[1].rfind("rec0:attach:/p:", 0) == 0);
    CHECK(log.events[2].rfind("rec0:post_attach:/p:", 0) == 0);
    CHECK(log.events[3] == "rec0:destroy:/p/c");
}

TEST_CASE("a veto of the move leaves the tasks and the container, by remove() or the destructor", "[owned][rollback]") {
    bool const explicit_remove = GENERATE(true, false);
    test::journal log;  // outlives the hierarchy, whose teardown runs destroy hooks
    H h;
    subsystem_handle<test::recorder<0>, H> rec;
    REQUIRE_FALSE(h.register_subsystem(rec, log));
    rec.subsystem().fail_can_attach = "p";
    rec.subsystem().error = std::errc::operation_not_permitted;
    C* p = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "p", &p));
    test::parked_thread w;
    C* c = nullptr;
    {
        owned g;
        REQUIRE_FALSE(owned::create(h, *p, "c", g, removal::move_tasks_to_parent));
        REQUIRE_FALSE(h.attach(w.tid(), *g));
        c = g.get();
        if (explicit_remove) {
            CHECK(g.remove() == std::errc::operation_not_permitted);
            CHECK(g.get() == c);
        }
    }
    REQUIRE(exists(h, "/p/c"));
    CHECK(&h.container_of(w.tid()) == c);
    CHECK(ids_in(h, *c) == std::vector<pid_t>{w.tid()});
    rec.subsystem().fail_can_attach.reset();
    CHECK_FALSE(h.rmdir_moving_tasks(*c));
    CHECK(&h.container_of(w.tid()) == p);
}

TEST_CASE("handles destroyed in several threads while tasks attach to their containers", "[owned][concurrency]") {
    H h;
    constexpr int owners = 3;
    constexpr int rounds = 300;
    std::vector<std::unique_ptr<test::parked_thread>> workers;
    for (int i = 0; i < 4; ++i) workers.push_back(std::make_unique<test::parked_thread>());
    std::vector<pid_t> ids;
    for (auto& w : workers) ids.push_back(w->tid());

    // Handles made here and destroyed on the owner threads, as well as their own.
    std::vector<owned> handed(owners);
    for (int k = 0; k < owners; ++k) {
        REQUIRE_FALSE(owned::create(h, h.top(), "handed" + std::to_string(k), handed[static_cast<std::size_t>(k)],
                                    removal::move_tasks_to_parent));
    }
    // Catch2 2.x assertions are not thread-safe: the threads count failures, the test checks them.
    std::atomic<int> failures{0};
    std::atomic<int> removals{0};
    std::atomic<int> moved_in{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int k = 0; k < owners; ++k) {
        threads.emplace_back([&, k, mine = std::move(handed[static_cast<std::size_t>(k)])]() mutable {
            for (int i = 0; i < rounds; ++i) {
                owned g;
                std::string name = test::named("o", k);  // appended: "o" + std::string trips g++ 12 -O2
                name += '_';
                name += std::to_string(i % 4);
                if (owned::create(h, h.top(), name, g, removal::move_tasks_to_parent)) {
                    failures++;
                    continue;
                }
                std::this_thread::yield();
                if (i % 2 == 0) {
                    if (g.remove()) failures++;  // never EBUSY: tasks that came meanwhile are moved
                    removals++;
                }  // else the destructor removes it
            }
            // The handed handle goes here, on this thread, once some task has been attached into
            // an owned container (a handed one stays until then), so that the move is exercised.
            while (moved_in.load() == 0) std::this_thread::yield();
            mine = owned();
        });
    }
    std::thread attacher([&] {
        std::mt19937 rng(7);
        while (!stop.load(std::memory_order_relaxed)) {
            read_section rs;  // keeps a looked-up container valid until attach has seen it
            C* dest = nullptr;
            std::string const path = rng() % 4 == 0 ? "/handed" + std::to_string(rng() % owners)
                                                    : "/o" + std::to_string(rng() % owners) + "_" + std::to_string(rng() % 4);
            if (h.lookup(path, dest)) continue;
            pid_t const some[] = {ids[rng() % ids.size()], ids[rng() % ids.size()]};
            std::error_code const ec = h.attach(some, *dest);
            if (!ec) moved_in++;
            else if (ec != std::errc::no_such_device) failures++;
        }
    });
    for (auto& t : threads) t.join();
    stop = true;
    attacher.join();
    CHECK(failures.load() == 0);
    CHECK(removals.load() == owners * rounds / 2);
    CHECK(h.size() == 1);
    for (pid_t id : ids) CHECK(&h.container_of(id) == &h.top());
    CHECK(moved_in.load() > 0);
}
