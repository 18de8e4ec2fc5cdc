// Delivers notify_on_release events off the caller's critical path: the hierarchy queues the
// released container's path under its manage lock, and a thread of its own calls the agent.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include <cerrno>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

namespace containers::detail {

class release_queue {
public:
    using agent_type = std::function<void(std::string const& path)>;

    release_queue() = default;
    release_queue(release_queue const&) = delete;
    release_queue& operator=(release_queue const&) = delete;
    ~release_queue() { stop(); }

    /// Delivers what is queued, then stops the worker; later pushes are dropped.
    void stop() {
        {
            std::lock_guard g(mutex_);
            stopping_ = true;
        }
        changed_.notify_all();
        if (worker_.joinable()) worker_.join();
    }

    void set_agent(agent_type agent) {
        std::lock_guard g(mutex_);
        agent_ = std::move(agent);
    }
    [[nodiscard]] bool has_agent() {
        std::lock_guard g(mutex_);
        return static_cast<bool>(agent_) || !program_.empty();
    }

    void set_program(std::string path) {
        std::lock_guard g(mutex_);
        program_ = std::move(path);
    }
    [[nodiscard]] std::string program() {
        std::lock_guard g(mutex_);
        return program_;
    }

    void push(std::string path) {
        {
            std::lock_guard g(mutex_);
            if ((!agent_ && program_.empty()) || stopping_) return;
            pending_.push_back(std::move(path));
            if (!worker_.joinable()) worker_ = std::thread([this] { run(); });
        }
        changed_.notify_all();
    }

    /// Returns once every event queued so far has been delivered.
    void flush() {
        std::unique_lock g(mutex_);
        changed_.wait(g, [this] { return pending_.empty() && !delivering_; });
    }

private:
    void run() {
        std::unique_lock g(mutex_);
        for (;;) {
            changed_.wait(g, [this] { return stopping_ || !pending_.empty(); });
            if (pending_.empty()) return;  // stopping, and everything was delivered
            std::string path = std::move(pending_.front());
            pending_.pop_front();
            agent_type agent = agent_;
            std::string program = program_;
            delivering_ = true;
            g.unlock();
            if (agent) agent(path);
            if (!program.empty()) run_program(program, path);
            g.lock();
            delivering_ = false;
            changed_.notify_all();
        }
    }

    // As the kernel's usermode helper: the program with the path as its only argument, standard
    // streams on /dev/null, and a minimal environment.
    static void run_program(std::string const& program, std::string const& path) {
        posix_spawn_file_actions_t actions;
        if (::posix_spawn_file_actions_init(&actions) != 0) return;
        for (int fd = 0; fd < 3; ++fd) ::posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
        char* argv[] = {const_cast<char*>(program.c_str()), const_cast<char*>(path.c_str()), nullptr};
        char env_home[] = "HOME=/";
        char env_path[] = "PATH=/sbin:/bin:/usr/sbin:/usr/bin";
        char* envp[] = {env_home, env_path, nullptr};
        pid_t pid = 0;
        if (::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, envp) == 0) {
            int status = 0;
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
        }
        ::posix_spawn_file_actions_destroy(&actions);
    }

    std::mutex mutex_;
    std::condition_variable changed_;
    std::string program_;              // guarded by mutex_
    agent_type agent_;                 // guarded by mutex_
    std::deque<std::string> pending_;  // guarded by mutex_
    bool delivering_ = false;          // guarded by mutex_
    bool stopping_ = false;            // guarded by mutex_
    std::thread worker_;               // started under mutex_, joined by the destructor
};

}  // namespace containers::detail
