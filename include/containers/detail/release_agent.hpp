// Delivers notify_on_release events off the caller's critical path, as the kernel's usermode
// helper does: the hierarchy queues the released container's path under its manage lock, and a
// thread of the queue's own calls the agent function and starts the agent program.
//
// What it promises, and why:
// - Queueing never throws and never blocks on the agent (push is called inside the noexcept
//   rmdir, exit and attach). The event and its path are one allocation made with nothrow new;
//   when it fails the release is dropped and counted (dropped()), as the kernel loses the
//   notification when its own allocation fails. When the worker thread cannot be started
//   (RLIMIT_NPROC, a pids limit, memory) the event stays queued and the next push or flush tries
//   again. The thread is made with pthread_create, which returns an errno, so that this holds
//   with -fno-exceptions too; detail::sys::may_create_thread() lets tests fail it.
// - The program is started clean, as the kernel's helper (a child of kthreadd) is: only fds 0-2,
//   on /dev/null; cwd "/" (a relative program path resolves against it); umask 022; default
//   signal mask and dispositions; nice 0 and SCHED_OTHER where allowed; a session of its own; and
//   the affinity that the process's main thread (tid == pid) had when the queue was created, not
//   that of whichever thread made the worker. cwd and umask are the worker's own (it unshares
//   its fs attributes, CLONE_FS), so nothing else in the process changes; where unshare is
//   refused (a seccomp filter), cwd is still "/" (a spawn file action) but the umask is the
//   process's.
// - The worker waits for the exec only (UMH_WAIT_EXEC), never for the program's exit: programs
//   run concurrently and are reaped by pid (waitpid on each child, never -1, so no other child of
//   the process is taken), polling with a backoff while any is running.
// - The shared state lives in a heap block that the worker keeps alive. stop() (the hierarchy's
//   destructor) waits until what was queued has been delivered to the agent function (which may
//   still use the hierarchy), never for a program; the worker then reaps its programs and exits
//   on its own, detached. An agent that destroys its own hierarchy calls stop() on the worker:
//   it returns at once and drops what is queued behind the current event (counted).
// - An agent function that throws is caught (where exceptions exist) and counted in failed(),
//   as are programs that cannot be started.
#pragma once

#include "owned_mutex.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include <cerrno>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "condition.hpp"
#include "function.hpp"
#include "rcu.hpp"
#include "syscalls.hpp"

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define CONTAINERS_SPAWN_CLOSEFROM 1
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define CONTAINERS_SPAWN_CHDIR 1
#endif

namespace containers::detail {

/// Whether the calling thread may set the release agent through the release_agent file, by the
/// kernel's rule since the fix for CVE-2022-0492: CAP_SYS_ADMIN in its effective set, and the
/// initial user namespace. Capabilities are per thread: this asks about the caller's.
[[nodiscard]] inline bool may_set_release_agent() noexcept {
    // The capget(2) ABI, spelled here so that this header needs neither libcap nor
    // <linux/capability.h> (which clashes with libcap's header).
    struct cap_header {
        std::uint32_t version;
        int pid;
    };
    struct cap_data {
        std::uint32_t effective, permitted, inheritable;
    };
    constexpr std::uint32_t version_3 = 0x20080522;
    constexpr unsigned cap_sys_admin = 21;
    cap_header hdr{version_3, 0};
    cap_data data[2]{};
    if (::syscall(SYS_capget, &hdr, data) != 0) return false;
    if ((data[cap_sys_admin / 32].effective & (1u << (cap_sys_admin % 32))) == 0) return false;
    // The initial user namespace has a fixed inode (PROC_USER_INIT_INO); without /proc, the
    // capability alone decides.
    char link[64];
    ssize_t const n = ::readlink("/proc/thread-self/ns/user", link, sizeof link - 1);
    if (n <= 0) return true;
    link[n] = '\0';
    return std::strcmp(link, "user:[4026531837]") == 0;
}

/// The release thread's block, while that thread runs (to tell an agent's call from another's).
inline thread_local void const* release_worker_of_this_thread = nullptr;

class release_queue {
public:
    using agent_type = std::function<void(std::string const& path)>;
    /// The longest program path kept; longer ones are truncated, as the kernel's PATH_MAX buffer.
    static constexpr std::size_t max_program = 4095;

    /// Throws std::bad_alloc (terminates without exceptions) if the shared block cannot be made.
    release_queue() : b_(new block) {}
    release_queue(release_queue const&) = delete;
    release_queue& operator=(release_queue const&) = delete;
    ~release_queue() {
        stop();
        unref(*b_);
    }

    /// Effects: stops taking events; from any thread but the worker, waits until every event
    ///   queued so far has been delivered (agent function returned, program started), never for a
    ///   program's exit. On the worker (an agent destroying its hierarchy) returns at once and
    ///   drops the events queued behind the current one. Events that cannot be delivered because
    ///   the worker cannot be started are dropped. Dropped events count in dropped(). The agent
    ///   function is released. Idempotent.
    /// Locking: takes the queue's lock; waits for the agent function of queued events.
    void stop() noexcept {
        block& b = *b_;
        std::shared_ptr<agent_type const> agent;
        event* lost = nullptr;
        {
            no_freeze nf;  // the freezer never parks a thread holding the queue lock
            std::unique_lock g(b.mutex);
            b.stopping = true;
            b.changed.notify_all();
            bool const on_worker = release_worker_of_this_thread == &b;
            if (!on_worker && b.head != nullptr && !b.running) (void)start_locked(b);  // a last try
            if (on_worker || (b.head != nullptr && !b.running)) {
                lost = std::exchange(b.head, nullptr);
                b.tail = nullptr;
                std::uint64_t n = 0;
                for (event* e = lost; e != nullptr; e = e->next) ++n;
                b.finished += n;
                b.dropped.fetch_add(n, std::memory_order_relaxed);
            } else {
                b.changed.wait(g, [&] { return b.finished == b.queued; });
            }
            agent = std::move(b.agent);
            b.armed.store(false, std::memory_order_release);
        }
        b.changed.notify_all();
        free_list(lost);
        // `agent` (the function, and what it captured) is destroyed here, outside the lock.
    }

    /// Sets the agent function (empty: none). Throws std::bad_alloc if it cannot be stored.
    /// Locking: takes the queue's lock; may be called from the agent.
    void set_agent(agent_type agent) {
        std::shared_ptr<agent_type const> p;
        if (agent) p = std::make_shared<agent_type const>(std::move(agent));
        block& b = *b_;
        {
            no_freeze nf;
            std::lock_guard g(b.mutex);
            if (b.stopping) return;
            b.agent.swap(p);
            b.armed.store(b.agent != nullptr || b.program[0] != '\0', std::memory_order_release);
        }
        // The previous function is destroyed here, outside the lock.
    }

    /// Whether an agent function or program is set. Lock-free.
    [[nodiscard]] bool has_agent() const noexcept { return b_->armed.load(std::memory_order_acquire); }

    /// Sets the program (empty: none), truncated to max_program bytes and at a NUL. No allocation.
    /// Locking: takes the queue's lock.
    void set_program(std::string_view path) noexcept {
        block& b = *b_;
        path = path.substr(0, std::min(max_program, path.find('\0')));
        no_freeze nf;
        std::lock_guard g(b.mutex);
        if (b.stopping) return;
        if (!path.empty()) std::memcpy(b.program, path.data(), path.size());  // an empty view may hold no pointer
        b.program[path.size()] = '\0';
        b.armed.store(b.agent != nullptr || b.program[0] != '\0', std::memory_order_release);
    }
    /// Throws std::bad_alloc.
    [[nodiscard]] std::string program() const {
        block& b = *b_;
        no_freeze nf;
        std::lock_guard g(b.mutex);
        return std::string(b.program);
    }

    /// Effects: queues a release whose path is `len` bytes, written by `fill(char* out) noexcept`
    ///   (called without the queue's lock, before the event is visible); starts the worker if it
    ///   is not running. Nothing happens without an agent or once stopped. Without memory for the
    ///   event it is dropped and counted; when the worker cannot be started the event stays
    ///   queued and the next push or flush tries again.
    /// Locking: takes the queue's lock, briefly; never waits for the agent.
    template <class Fill>
    void push(std::size_t len, Fill&& fill) noexcept {
        static_assert(noexcept(fill(static_cast<char*>(nullptr))), "the path writer must be noexcept");
        block& b = *b_;
        if (!b.armed.load(std::memory_order_acquire)) return;
        void* mem = ::operator new(sizeof(event) + len + 1, std::nothrow);
        if (mem == nullptr) {
            b.dropped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        event* e = ::new (mem) event{};
        fill(e->path());
        e->path()[len] = '\0';
        e->len = len;
        {
            no_freeze nf;
            std::lock_guard g(b.mutex);
            if (!b.stopping && b.armed.load(std::memory_order_relaxed)) {
                (b.tail != nullptr ? b.tail->next : b.head) = e;
                b.tail = e;
                e = nullptr;
                ++b.queued;
                if (!b.running) (void)start_locked(b);  // on failure, kept for the next try
            }
        }
        b.changed.notify_all();
        free_list(e);
    }

    /// Effects: waits until every event queued before the call has been delivered (the agent
    ///   function returned and the program was started, not exited). On the worker, returns at
    ///   once: delivery is in order, so what was queued before the current event is delivered,
    ///   and waiting for what comes after would wait on itself.
    /// Returns: 0, or the errno of a failed start of the worker (EAGAIN...); the events stay
    ///   queued.
    /// Locking: takes the queue's lock and waits on it.
    [[nodiscard]] int flush() noexcept {
        block& b = *b_;
        if (release_worker_of_this_thread == &b) return 0;
        no_freeze nf;
        std::unique_lock g(b.mutex);
        std::uint64_t const target = b.queued;
        while (b.finished < target) {
            if (!b.running) {
                if (int const e = start_locked(b)) return e;
            }
            b.changed.wait(g);
        }
        return 0;
    }

    /// Releases lost for want of memory, or dropped by stop(). Lock-free.
    [[nodiscard]] std::uint64_t dropped() const noexcept { return b_->dropped.load(std::memory_order_relaxed); }
    /// Deliveries that failed: the agent function threw, or the program could not be started.
    [[nodiscard]] std::uint64_t failed() const noexcept { return b_->failed.load(std::memory_order_relaxed); }

private:
    // One release, with its path after it; once its program runs, the child to reap.
    struct event {
        event* next = nullptr;
        pid_t pid = 0;
        std::size_t len = 0;
        char* path() noexcept { return reinterpret_cast<char*>(this + 1); }
    };

    // Shared by the queue and its worker; freed by whichever lets go last.
    struct block {
        block() noexcept {
            // The main thread's affinity now, before this hierarchy has pinned anything; where the
            // main thread is gone, the creating thread's.
            have_affinity = sys::sched_getaffinity(::getpid(), sizeof affinity, &affinity) == 0 ||
                            sys::sched_getaffinity(0, sizeof affinity, &affinity) == 0;
        }
        mutable std::mutex mutex;
        condition changed;                             // signalled under or after `mutex`
        std::atomic<int> refs{1};                       // the queue's, plus one while the worker runs
        std::atomic<bool> armed{false};                 // agent or program set; stored under `mutex`
        std::atomic<std::uint64_t> dropped{0};
        std::atomic<std::uint64_t> failed{0};
        std::shared_ptr<agent_type const> agent;        // mutex
        char program[max_program + 1] = {};             // mutex
        event* head = nullptr;                          // mutex: queued, oldest first
        event* tail = nullptr;                          // mutex
        std::uint64_t queued = 0;                       // mutex: events ever queued
        std::uint64_t finished = 0;                     // mutex: of those, delivered or dropped
        bool running = false;                           // mutex: the worker started and has not left
        bool stopping = false;                          // mutex
        cpu_set_t affinity{};                           // immutable
        bool have_affinity = false;                     // immutable
        // The worker's alone:
        event* children = nullptr;                      // programs started and not reaped
        char spawn_program[max_program + 1] = {};
        std::string scratch;                            // the path as the agent function takes it
    };

    static void free_list(event* e) noexcept {
        while (e != nullptr) {
            event* next = e->next;
            e->~event();
            ::operator delete(static_cast<void*>(e));
            e = next;
        }
    }

    static void unref(block& b) noexcept {
        if (b.refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            free_list(b.head);
            free_list(b.children);
            delete &b;
        }
    }

    // Lock held. Starts the worker, detached, with every signal blocked (so that no handler of
    // the process runs on it); 0 or an errno.
    static int start_locked(block& b) noexcept {
        if (int const e = sys::may_create_thread()) return e;
        sigset_t all;
        sigset_t old;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_t attr;
        int e = ::pthread_attr_init(&attr);
        if (e == 0) {
            (void)::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            b.refs.fetch_add(1, std::memory_order_relaxed);
            pthread_t t;
            e = ::pthread_create(&t, &attr, &worker_main, &b);
            if (e != 0) b.refs.fetch_sub(1, std::memory_order_relaxed);
            ::pthread_attr_destroy(&attr);
        }
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
        if (e == 0) b.running = true;
        return e;
    }

    // The worker's own attributes, which its programs inherit. Best effort, and outside the
    // system-call seam on purpose: they run on the worker, asynchronously to any public
    // operation, and failing them changes what a program inherits, not what the library does.
    static void prepare_worker(block& b) noexcept {
        if (::unshare(CLONE_FS) == 0) {  // cwd and umask become this thread's alone
            (void)!::chdir("/");
            ::umask(022);
        }
        if (::sched_getscheduler(0) != SCHED_OTHER) {
            sched_param p{};
            (void)::sched_setscheduler(0, SCHED_OTHER, &p);
        }
        (void)::setpriority(PRIO_PROCESS, 0, 0);  // this thread (Linux); lowering needs privilege
        if (b.have_affinity) (void)::sched_setaffinity(0, sizeof b.affinity, &b.affinity);
    }

    static void* worker_main(void* arg) noexcept {
        block& b = *static_cast<block*>(arg);
        release_worker_of_this_thread = &b;
        // teardown() waits for this thread, possibly from inside a read section: an agent that
        // calls back into the hierarchy must not wait for a grace period here.
        defer_grace_periods const defer;
        prepare_worker(b);
        long poll_ms = 1;
        no_freeze nf;
        std::unique_lock g(b.mutex);
        for (;;) {
            if (b.children != nullptr) reap(b);
            if (event* e = b.head) {
                b.head = e->next;
                if (b.head == nullptr) b.tail = nullptr;
                e->next = nullptr;
                std::shared_ptr<agent_type const> agent = b.agent;
                std::size_t const n = std::strlen(b.program);
                std::memcpy(b.spawn_program, b.program, n + 1);
                g.unlock();
                deliver(b, *e, agent.get());
                agent.reset();  // the last owner may be this thread, after stop(): outside the lock
                g.lock();
                ++b.finished;
                if (e->pid > 0) {
                    e->next = b.children;
                    b.children = e;
                    poll_ms = 1;
                } else {
                    free_list(e);
                }
                b.changed.notify_all();
                continue;
            }
            if (b.children == nullptr) {
                if (b.stopping) break;
                b.changed.wait(g);
            } else {
                // Programs are running: look again after a while (no SIGCHLD is ours to take).
                b.changed.wait_for_ms(g, poll_ms);
                poll_ms = std::min(poll_ms * 2, 250L);
            }
        }
        b.running = false;
        b.changed.notify_all();
        g.unlock();
        release_worker_of_this_thread = nullptr;
        unref(b);
        return nullptr;
    }

    // Worker. Reaps the programs that have exited, by pid; a child that another waiter took
    // (ECHILD) is forgotten.
    static void reap(block& b) noexcept {
        event** link = &b.children;
        while (event* e = *link) {
            int status = 0;
            pid_t r = ::waitpid(e->pid, &status, WNOHANG);
            while (r < 0 && errno == EINTR) r = ::waitpid(e->pid, &status, WNOHANG);
            if (r == 0) {
                link = &e->next;
                continue;
            }
            *link = e->next;
            e->next = nullptr;
            free_list(e);
        }
    }

    // Worker, without the lock: the function, then the program.
    static void deliver(block& b, event& e, agent_type const* agent) noexcept {
        if (agent != nullptr && *agent) {
#if defined(__cpp_exceptions)
            bool have_path = true;
            try {
                b.scratch.assign(e.path(), e.len);
            } catch (...) {
                have_path = false;
                b.dropped.fetch_add(1, std::memory_order_relaxed);
            }
            if (have_path) {
                try {
                    (*agent)(b.scratch);
                } catch (...) {
                    b.failed.fetch_add(1, std::memory_order_relaxed);
                }
            }
#else
            b.scratch.assign(e.path(), e.len);
            (*agent)(b.scratch);
#endif
        }
        if (b.spawn_program[0] != '\0') {
            e.pid = spawn(b, e);
            if (e.pid <= 0) b.failed.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // Worker. Starts the program as the kernel's helper would (see the header comment); the pid,
    // or 0.
    static pid_t spawn(block& b, event& e) noexcept {
        posix_spawn_file_actions_t actions;
        posix_spawnattr_t attr;
        if (::posix_spawn_file_actions_init(&actions) != 0) return 0;
        if (::posix_spawnattr_init(&attr) != 0) {
            ::posix_spawn_file_actions_destroy(&actions);
            return 0;
        }
        bool ok = true;
        for (int fd = 0; fd < 3; ++fd) {
            ok = ok && ::posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) == 0;
        }
#if defined(CONTAINERS_SPAWN_CLOSEFROM)
        ok = ok && ::posix_spawn_file_actions_addclosefrom_np(&actions, 3) == 0;
#else
        // Without closefrom: close what is open now (an fd opened meanwhile by another thread
        // without O_CLOEXEC can still leak).
        if (DIR* d = ::opendir("/proc/self/fd")) {
            int const own = ::dirfd(d);
            while (dirent* ent = ::readdir(d)) {
                int const fd = std::atoi(ent->d_name);
                if (fd > 2 && fd != own) ok = ok && ::posix_spawn_file_actions_addclose(&actions, fd) == 0;
            }
            ::closedir(d);
        }
#endif
#if defined(CONTAINERS_SPAWN_CHDIR)
        ok = ok && ::posix_spawn_file_actions_addchdir_np(&actions, "/") == 0;
#endif
        sigset_t none;
        sigset_t all;
        ::sigemptyset(&none);
        // Every bit, not sigfillset: glibc's leaves out its internal signals (32, 33), and its
        // posix_spawn then sets them to SIG_IGN in the child, which the program would inherit.
        std::memset(&all, 0xff, sizeof all);
        ok = ok && ::posix_spawnattr_setsigmask(&attr, &none) == 0 && ::posix_spawnattr_setsigdefault(&attr, &all) == 0;
        short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
#if defined(POSIX_SPAWN_SETSID)
        flags |= POSIX_SPAWN_SETSID;
#endif
        ok = ok && ::posix_spawnattr_setflags(&attr, flags) == 0;

        // Affinity and nice are per thread and inherited by the child: give the worker the
        // original ones for the spawn, then put back the affinity it had (a cpuset may own it).
        cpu_set_t had;
        bool restore = false;
        if (b.have_affinity && ::sched_getaffinity(0, sizeof had, &had) == 0 && !CPU_EQUAL(&had, &b.affinity)) {
            restore = ::sched_setaffinity(0, sizeof b.affinity, &b.affinity) == 0;
        }
        (void)::setpriority(PRIO_PROCESS, 0, 0);

        char* argv[] = {b.spawn_program, e.path(), nullptr};
        char env_home[] = "HOME=/";
        char env_path[] = "PATH=/sbin:/bin:/usr/sbin:/usr/bin";
        char* envp[] = {env_home, env_path, nullptr};
        pid_t pid = 0;
        int const err = ok ? sys::posix_spawn(&pid, b.spawn_program, &actions, &attr, argv, envp) : ENOMEM;
        if (restore) (void)::sched_setaffinity(0, sizeof had, &had);
        ::posix_spawnattr_destroy(&attr);
        ::posix_spawn_file_actions_destroy(&actions);
        return err == 0 ? pid : 0;
    }

    block* const b_;  // immutable; shared with the worker
};

}  // namespace containers::detail
