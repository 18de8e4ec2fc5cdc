// Runs one test case alone in a fresh copy of the test binary, so that a test of abort,
// deadlock or process-wide state (umask, cwd, uid, limits) fails instead of killing or hanging
// the suite, and so that the child never inherits this process's threads (fork in a threaded
// process is a hazard of its own, and ThreadSanitizer refuses threads after it).
//
//   TEST_CASE("...", "[...]") {
//       if (!test::isolated::in_child()) {
//           test::isolated::require_passes("...");  // the same name; no commas in it
//           return;
//       }
//       ... the risky part, with REQUIRE/CHECK as usual ...
//   }
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace test::isolated {

/// Whether this process is the fresh copy started by run().
inline bool in_child() { return std::getenv("CONTAINERS_ISOLATED") != nullptr; }

struct result {
    bool started = false;
    bool timed_out = false;
    int status = 0;  // as waitpid reports it
    std::string output;
};

/// Runs test case `name` in a fresh copy of this binary; kills it after `seconds`.
inline result run(std::string const& name, int seconds = 30) {
    result r;
    char out_template[] = "/tmp/containers-isolated-XXXXXX";
    int const out = ::mkstemp(out_template);
    if (out < 0) return r;
    ::unlink(out_template);
    char exe[4096];
    ssize_t const n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return r;
    exe[n] = '\0';
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, out, 1);
    ::posix_spawn_file_actions_adddup2(&actions, out, 2);
    ::setenv("CONTAINERS_ISOLATED", "1", 1);
    std::string spec = name;
    char* argv[] = {exe, spec.data(), nullptr};
    pid_t pid = 0;
    int const e = ::posix_spawn(&pid, exe, &actions, nullptr, argv, environ);
    ::unsetenv("CONTAINERS_ISOLATED");
    ::posix_spawn_file_actions_destroy(&actions);
    if (e != 0) {
        ::close(out);
        return r;
    }
    r.started = true;
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    for (;;) {
        pid_t const w = ::waitpid(pid, &r.status, WNOHANG);
        if (w == pid) break;
        if (std::chrono::steady_clock::now() > deadline) {
            r.timed_out = true;
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &r.status, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::lseek(out, 0, SEEK_SET);
    char buf[4096];
    ssize_t got = 0;
    while ((got = ::read(out, buf, sizeof buf)) > 0) r.output.append(buf, static_cast<std::size_t>(got));
    ::close(out);
    return r;
}

/// Runs `name` alone and requires that it passed: exited with 0, within the bound.
inline void require_passes(std::string const& name, int seconds = 30) {
    result const r = run(name, seconds);
    INFO("the isolated run said:\n" << r.output);
    REQUIRE(r.started);
    CHECK_FALSE(r.timed_out);
    if (WIFSIGNALED(r.status)) FAIL_CHECK("killed by signal " << WTERMSIG(r.status));
    CHECK(WIFEXITED(r.status));
    CHECK(WEXITSTATUS(r.status) == 0);
    CHECK(r.output.find("1 test case") != std::string::npos);  // the name matched exactly one
}

}  // namespace test::isolated
