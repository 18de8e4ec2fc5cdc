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
        return static_cast<bool>(agent_);
    }

    void push(std::string path) {
        {
            std::lock_guard g(mutex_);
            if (!agent_ || stopping_) return;
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
            delivering_ = true;
            g.unlock();
            if (agent) agent(path);
            g.lock();
            delivering_ = false;
            changed_.notify_all();
        }
    }

    std::mutex mutex_;
    std::condition_variable changed_;
    agent_type agent_;                 // guarded by mutex_
    std::deque<std::string> pending_;  // guarded by mutex_
    bool delivering_ = false;          // guarded by mutex_
    bool stopping_ = false;            // guarded by mutex_
    std::thread worker_;               // started under mutex_, joined by the destructor
};

}  // namespace containers::detail
