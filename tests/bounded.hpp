// Runs a scenario that might deadlock or abort in a child process, so that a regression fails the
// test instead of hanging or killing the whole suite.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

namespace test {

/// How a bounded child ended.
struct child_result {
    bool hung = false;     // still running after the limit: killed
    int exit_code = -1;    // when it exited
    int signal = 0;        // when a signal ended it (SIGABRT from std::terminate, say)
    [[nodiscard]] bool ok() const noexcept { return !hung && signal == 0 && exit_code == 0; }
};

/// Forks; the child runs `body` and exits with what it returns (0: passed). The limit is a
/// deadlock detector, far above what the scenario needs, not a speed requirement.
inline child_result run_bounded(std::function<int()> const& body, int limit_seconds = 30) {
    std::fflush(nullptr);  // the child must not write the parent's buffered output again
    pid_t const pid = ::fork();
    if (pid == 0) ::_exit(body());
    child_result r;
    if (pid < 0) return r;
    auto const deadline = std::chrono::steady_clock::now() + std::chrono::seconds(limit_seconds);
    for (;;) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
            if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
            return r;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            r.hung = true;
            return r;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

}  // namespace test
