// Subsystems: registration rules, typed state, and the order and rollback of every hook.
#include "support.hpp"

#include <catch2/catch.hpp>

using namespace containers;
using test::C;
using test::H;
using test::journal;
using test::recorder;

namespace {
using test::errc_of;
using strings = std::vector<std::string>;

struct counter : subsystem_tag {
    static constexpr std::string_view name = "counter";
    struct state {
        int n = 0;
    };
};
template <int N>
struct slot_filler : subsystem_tag {
    static constexpr std::string_view name = "filler";
    struct state {};
};
}  // namespace

TEST_CASE("registration gives each subsystem a slot and typed state", "[subsystem][registration]") {
    journal j;  // outlives the hierarchy, whose teardown runs destroy hooks
    H h;
    subsystem_handle<recorder<0>, H> r0;
    subsystem_handle<counter, H> cnt;
    REQUIRE_FALSE(h.register_subsystem(r0, j));
    REQUIRE_FALSE(h.register_subsystem(cnt));
    CHECK(r0.id() == 0);
    CHECK(cnt.id() == 1);
    CHECK(h.subsystem_count() == 2);
    CHECK(h.subsystem_name(0) == "rec0");
    CHECK(h.subsystem<counter>() == &cnt.subsystem());
    CHECK(h.subsystem<recorder<1>>() == nullptr);
    // create, then populate, ran on the top container during registration
    CHECK(j.events == strings{"rec0:create:/", "rec0:populate:/"});
    CHECK(r0.state(h.top()).where == "/");
    CHECK(&h.state_of<recorder<0>>(h.top()) == &r0.state(h.top()));
    h.state_of<counter>(h.top()).n = 7;
    CHECK(cnt.state(h.top()).n == 7);

    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    CHECK(r0.state(*a).creations == 1);
    CHECK(cnt.state(*a).n == 0);  // a fresh state per container

    SECTION("EBUSY once a container other than the top one exists") {
        subsystem_handle<recorder<1>, H> r1;
        CHECK(errc_of(h.register_subsystem(r1, j)) == std::errc::device_or_resource_busy);
        CHECK_FALSE(r1);
        CHECK(h.subsystem_count() == 2);
    }
    SECTION("registration is allowed again once the children are gone") {
        REQUIRE_FALSE(h.rmdir(*a));
        subsystem_handle<recorder<1>, H> r1;
        CHECK_FALSE(h.register_subsystem(r1, j));
    }
}

TEST_CASE("EEXIST for a subsystem registered twice, ENOSPC when every slot is used", "[subsystem][registration]") {
    hierarchy<thread_task_traits, 3> h;
    using H3 = hierarchy<thread_task_traits, 3>;
    subsystem_handle<slot_filler<0>, H3> f0;
    subsystem_handle<slot_filler<1>, H3> f1;
    subsystem_handle<slot_filler<2>, H3> f2;
    subsystem_handle<slot_filler<3>, H3> f3;
    REQUIRE_FALSE(h.register_subsystem(f0));
    CHECK(errc_of(h.register_subsystem(f0)) == std::errc::file_exists);
    REQUIRE_FALSE(h.register_subsystem(f1));
    REQUIRE_FALSE(h.register_subsystem(f2));
    CHECK(errc_of(h.register_subsystem(f3)) == std::errc::no_space_on_device);
    CHECK_FALSE(f3);
    CHECK(h.subsystem_count() == 3);
}

TEST_CASE("hooks can fail registration on the top container, with rollback", "[subsystem][registration][rollback]") {
    bool const throws = GENERATE(false, true);
    CAPTURE(throws);
    journal j;
    H h;
    struct fail_top_create : recorder<0> {
        explicit fail_top_create(journal& jj, bool t) : recorder<0>(jj) {
            fail_create = "";
            throw_instead = t;
        }
    };
    // A failure configured for the empty name hits the top container.
    subsystem_handle<fail_top_create, H> bad;
    auto ec = h.register_subsystem(bad, j, throws);
    CHECK(errc_of(ec) == (throws ? std::errc::operation_canceled : std::errc::invalid_argument));
    CHECK_FALSE(bad);
    CHECK(h.subsystem_count() == 0);
    CHECK(j.events == strings{"rec0:create:/"});

    struct fail_top_populate : recorder<1> {
        explicit fail_top_populate(journal& jj, bool t) : recorder<1>(jj) {
            fail_populate = "";
            throw_instead = t;
        }
    };
    j.clear();
    subsystem_handle<fail_top_populate, H> bad2;
    CHECK(h.register_subsystem(bad2, j, throws));
    CHECK(h.subsystem_count() == 0);
    CHECK(j.events == strings{"rec1:create:/", "rec1:populate:/", "rec1:destroy:/"});

    // The slot is free again.
    subsystem_handle<counter, H> ok;
    REQUIRE_FALSE(h.register_subsystem(ok));
    CHECK(ok.id() == 0);
}

namespace {
struct three {
    journal j;  // outlives the hierarchy, whose teardown runs destroy hooks
    H h;
    subsystem_handle<recorder<0>, H> r0;
    subsystem_handle<recorder<1>, H> r1;
    subsystem_handle<recorder<2>, H> r2;
    three() {
        REQUIRE_FALSE(h.register_subsystem(r0, j));
        REQUIRE_FALSE(h.register_subsystem(r1, j));
        REQUIRE_FALSE(h.register_subsystem(r2, j));
        j.clear();
    }
};
}  // namespace

TEST_CASE("create runs in registration order, then populate; removal destroys in reverse", "[subsystem][hooks]") {
    three t;
    C* a = nullptr;
    REQUIRE_FALSE(t.h.mkdir(t.h.top(), "a", &a));
    CHECK(t.j.events == strings{"rec0:create:/a", "rec1:create:/a", "rec2:create:/a",
                                "rec0:populate:/a", "rec1:populate:/a", "rec2:populate:/a"});
    t.j.clear();
    REQUIRE_FALSE(t.h.rmdir(*a));
    CHECK(t.j.events == strings{"rec2:destroy:/a", "rec1:destroy:/a", "rec0:destroy:/a"});
}

TEST_CASE("a failed create destroys those already created, in reverse, and the container never appears",
          "[subsystem][hooks][rollback]") {
    three t;
    bool const throws = GENERATE(false, true);
    t.r2.subsystem().fail_create = "a";
    t.r2.subsystem().throw_instead = throws;
    C* a = nullptr;
    auto ec = t.h.mkdir(t.h.top(), "a", &a);
    CHECK(errc_of(ec) == (throws ? std::errc::operation_canceled : std::errc::invalid_argument));
    CHECK(a == nullptr);
    CHECK(t.h.size() == 1);
    C* found = nullptr;
    CHECK(t.h.lookup("/a", found));
    CHECK(t.j.events == strings{"rec0:create:/a", "rec1:create:/a", "rec2:create:/a", "rec1:destroy:/a", "rec0:destroy:/a"});
}

TEST_CASE("a failed populate destroys every created state and the container never appears", "[subsystem][hooks][rollback]") {
    three t;
    t.r1.subsystem().fail_populate = "a";
    t.r1.subsystem().error = std::errc::not_enough_memory;
    CHECK(errc_of(t.h.mkdir(t.h.top(), "a")) == std::errc::not_enough_memory);
    CHECK(t.h.size() == 1);
    CHECK(t.j.events == strings{"rec0:create:/a", "rec1:create:/a", "rec2:create:/a", "rec0:populate:/a",
                                "rec1:populate:/a", "rec2:destroy:/a", "rec1:destroy:/a", "rec0:destroy:/a"});
}

TEST_CASE("attach runs every can_attach, then attach under the callback lock, then post_attach without it",
          "[subsystem][hooks][attach]") {
    three t;
    C* a = nullptr;
    REQUIRE_FALSE(t.h.mkdir(t.h.top(), "a", &a));
    t.j.clear();
    test::parked_thread th;
    std::string const id = std::to_string(th.tid());
    REQUIRE_FALSE(t.h.attach(th.tid(), *a));
    std::string const set = id + "</";
    CHECK(t.j.events == strings{"rec0:can_attach:/a:" + set, "rec1:can_attach:/a:" + set, "rec2:can_attach:/a:" + set,
                                "rec0:attach:/a:" + set + ":cb", "rec1:attach:/a:" + set + ":cb", "rec2:attach:/a:" + set + ":cb",
                                "rec0:post_attach:/a:" + set + ":nocb", "rec1:post_attach:/a:" + set + ":nocb",
                                "rec2:post_attach:/a:" + set + ":nocb"});
    t.j.clear();
    SECTION("attaching a task to the container it is in runs no hook") {
        REQUIRE_FALSE(t.h.attach(th.tid(), *a));
        CHECK(t.j.events.empty());
    }
    SECTION("post_attach sees the old container") {
        C* b = nullptr;
        REQUIRE_FALSE(t.h.mkdir(t.h.top(), "b", &b));
        t.j.clear();
        REQUIRE_FALSE(t.h.attach(th.tid(), *b));
        CHECK(t.j.events.back() == "rec2:post_attach:/b:" + id + "</a:nocb");
    }
}

TEST_CASE("a can_attach veto cancels those that agreed, in reverse, and changes nothing", "[subsystem][hooks][rollback]") {
    three t;
    bool const throws = GENERATE(false, true);
    C* a = nullptr;
    C* b = nullptr;
    REQUIRE_FALSE(t.h.mkdir(t.h.top(), "a", &a));
    REQUIRE_FALSE(t.h.mkdir(t.h.top(), "b", &b));
    test::parked_thread th1;
    test::parked_thread th2;
    REQUIRE_FALSE(t.h.attach(th1.tid(), *a));
    t.j.clear();
    t.r2.subsystem().fail_can_attach = "b";
    t.r2.subsystem().throw_instead = throws;
    pid_t const both[] = {th1.tid(), th2.tid()};
    auto ec = t.h.attach(both, *b);
    CHECK(errc_of(ec) == (throws ? std::errc::operation_canceled : std::errc::invalid_argument));
    REQUIRE(t.j.events.size() == 5);
    CHECK(t.j.events[2].starts_with("rec2:can_attach:/b:"));
    CHECK(t.j.events[3].starts_with("rec1:cancel_attach:/b:"));
    CHECK(t.j.events[4].starts_with("rec0:cancel_attach:/b:"));
    // Nothing moved, and the new task was not recorded.
    CHECK(&t.h.container_of(th1.tid()) == a);
    CHECK(t.h.find_task(th2.tid()) == nullptr);
    CHECK(a->task_count() == 1);
    CHECK(b->task_count() == 0);
    CHECK(t.h.task_count() == 1);
}

TEST_CASE("fork and exit hooks run in the task's container", "[subsystem][hooks][tasks]") {
    three t;
    C* a = nullptr;
    REQUIRE_FALSE(t.h.mkdir(t.h.top(), "a", &a));
    test::parked_thread parent;
    test::parked_thread child;
    REQUIRE_FALSE(t.h.attach(parent.tid(), *a));
    t.j.clear();
    REQUIRE_FALSE(t.h.fork(parent.tid(), child.tid()));
    std::string const pc = std::to_string(parent.tid()) + ">" + std::to_string(child.tid());
    CHECK(t.j.events == strings{"rec0:fork:/a:" + pc, "rec1:fork:/a:" + pc, "rec2:fork:/a:" + pc});
    t.j.clear();
    REQUIRE_FALSE(t.h.exit(child.tid()));
    std::string const c = std::to_string(child.tid());
    CHECK(t.j.events == strings{"rec0:exit:/a:" + c, "rec1:exit:/a:" + c, "rec2:exit:/a:" + c});
}
