// notify_on_release: inheritance, both triggers, and delivery off the caller's thread.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <sys/stat.h>
#include <unistd.h>

using namespace containers;
using test::C;
using test::H;

namespace {
struct agent_log {
    std::mutex m;
    std::vector<std::string> paths;
    std::vector<std::thread::id> threads;
    std::vector<std::string> take() {
        std::lock_guard g(m);
        return std::exchange(paths, {});
    }
};
}  // namespace

TEST_CASE("new containers inherit notify_on_release from their parent", "[release]") {
    H h;
    C* a = nullptr;
    C* a1 = nullptr;
    C* b = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "b", &b));
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.set_notify_on_release(*a, true));
    REQUIRE_FALSE(h.mkdir(*a, "a1", &a1));
    CHECK(a->notify_on_release());
    CHECK(a1->notify_on_release());
    CHECK_FALSE(b->notify_on_release());
    REQUIRE_FALSE(h.rmdir(*b));
    read_section rs;
    CHECK(h.set_notify_on_release(*b, true) == std::errc::no_such_device);
}

TEST_CASE("a flagged container that loses its last task or child is released, off the caller's thread", "[release]") {
    H h;
    agent_log log;
    h.set_release_agent([&](std::string const& p) {
        std::lock_guard g(log.m);
        log.paths.push_back(p);
        log.threads.push_back(std::this_thread::get_id());
    });
    C* a = nullptr;
    C* a1 = nullptr;
    C* quiet = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.mkdir(h.top(), "quiet", &quiet));
    REQUIRE_FALSE(h.set_notify_on_release(*a, true));
    REQUIRE_FALSE(h.mkdir(*a, "a1", &a1));
    test::parked_thread th;

    REQUIRE_FALSE(h.attach(th.tid(), *a1));
    REQUIRE_FALSE(h.attach(th.tid(), *quiet));  // a1 loses its last task
    h.flush_release_agent();
    CHECK(log.take() == std::vector<std::string>{"/a/a1"});

    REQUIRE_FALSE(h.attach(th.tid(), *a));
    REQUIRE_FALSE(h.rmdir(*a1));  // a loses its last child but still has a task: not released
    h.flush_release_agent();
    CHECK(log.take().empty());

    REQUIRE_FALSE(h.exit(th.tid()));  // now a has neither
    h.flush_release_agent();
    CHECK(log.take() == std::vector<std::string>{"/a"});

    REQUIRE_FALSE(h.attach(th.tid(), *quiet));
    REQUIRE_FALSE(h.attach(th.tid(), h.top()));  // quiet is not flagged
    h.flush_release_agent();
    CHECK(log.take().empty());
    std::lock_guard g(log.m);
    for (auto id : log.threads) CHECK(id != std::this_thread::get_id());
}

TEST_CASE("without an agent nothing is queued, and the agent may call back into the hierarchy", "[release]") {
    H h;
    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "a", &a));
    REQUIRE_FALSE(h.set_notify_on_release(*a, true));
    test::parked_thread th;
    REQUIRE_FALSE(h.attach(th.tid(), *a));
    REQUIRE_FALSE(h.attach(th.tid(), h.top()));
    h.flush_release_agent();

    // The kernel's usual agent removes the released container; ours may do the same.
    std::atomic<int> removed{0};
    h.set_release_agent([&](std::string const& p) {
        C* c = nullptr;
        if (!h.lookup(p, c) && !h.rmdir(*c)) removed++;
    });
    REQUIRE_FALSE(h.attach(th.tid(), *a));
    REQUIRE_FALSE(h.attach(th.tid(), h.top()));
    h.flush_release_agent();
    CHECK(removed == 1);
    CHECK(h.size() == 1);
}

TEST_CASE("the release agent program runs with the released container's path", "[release]") {
    char dir_template[] = "/tmp/containers-agent-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    std::string const dir = dir_template;
    std::string const script = dir + "/agent";
    std::string const log = dir + "/log";
    {
        std::FILE* f = std::fopen(script.c_str(), "w");
        REQUIRE(f != nullptr);
        std::fprintf(f, "#!/bin/sh\nprintf '%%s\\n' \"$1\" >> %s\n", log.c_str());
        std::fclose(f);
        REQUIRE(::chmod(script.c_str(), 0755) == 0);
    }
    H h;
    h.set_release_agent_program(script);
    CHECK(h.release_agent_program() == script);
    C* a = nullptr;
    REQUIRE_FALSE(h.mkdir(h.top(), "gone soon", &a));
    REQUIRE_FALSE(h.set_notify_on_release(*a, true));
    test::parked_thread th;
    REQUIRE_FALSE(h.attach(th.tid(), *a));
    REQUIRE_FALSE(h.exit(th.tid()));
    CHECK_FALSE(h.flush_release_agent());  // returns once the program has started, not exited
    std::string content;
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (content.empty() || content.back() != '\n') {
        if (std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        content.clear();
        if (std::FILE* f = std::fopen(log.c_str(), "r")) {
            char buf[256];
            while (std::fgets(buf, sizeof buf, f) != nullptr) content += buf;
            std::fclose(f);
        }
    }
    CHECK(content == "/gone soon\n");
    CHECK(h.failed_releases() == 0);
    ::unlink(log.c_str());
    ::unlink(script.c_str());
    ::rmdir(dir.c_str());
}
