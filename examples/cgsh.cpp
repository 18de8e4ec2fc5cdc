// cgsh: a shell's view of an in-process hierarchy, with the same commands and answers as a shell
// in /sys/fs/cgroup/cpuset.
//
//   cgsh [--porcelain] [SCRIPT | -c 'COMMANDS']     (standard input when neither is given)
//   cgsh --mount DIR [--subsystems LIST] [--allow-other]
//                        serve the hierarchy at DIR as a filesystem until interrupted (FUSE
//                        builds); with LIST (comma-separated, e.g. "pids"), only those subsystems,
//                        as in one of the kernel's v1 hierarchies; --allow-other lets other users in
//
// Commands, one per line, '#' starts a comment:
//   mkdir PATH | rmdir PATH | echo [-n] VALUE... > PATH | cat PATH | ls [PATH]
//   spawn NAME          a thread of cgsh that sleeps until cgsh exits; $NAME is its tid
//   fork PARENT CHILD   tell the hierarchy that task PARENT forked task CHILD
//   exit TID            the task has exited
//   affinity TID        the task's real CPU affinity, as a list
//   help                the commands, one line each
// Every argument is a bare word or a double-quoted string with the escapes \\ \" \n \t \r \xHH.
// Each line runs as soon as it is read, so another program can drive cgsh through pipes. A failed
// command says what was wrong on standard error ("cgsh: mkdir /a: File exists", "cgsh: unknown
// command 'mkdri'"), prefixed by its line number ("cgsh: 3: ...") unless standard input is a
// terminal, where cgsh prompts ("cgsh> " on standard error) instead; the exit status is 1 if any
// command failed. With --porcelain, each command prints exactly one line on standard output: "ok",
// "ok OUTPUT" (the backslash and every byte that is not printable ASCII escaped: \n \t \r, else
// \xHH), or "err ENAME"; a failure also prints "cgsh: LINE: ENAME (message)" on standard error.
#include <containers/containers.hpp>
#if CONTAINERS_HAVE_FUSE
#include <containers/fuse.hpp>
#include <csignal>
#endif

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sched.h>
#include <sstream>
#include <string_view>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using hierarchy = containers::hierarchy<>;
namespace fs = containers::fs;

std::error_code err(int e) { return {e, std::generic_category()}; }

// EINVAL, with what was wrong in words for the human mode.
std::error_code invalid(std::string& why, std::string text) {
    why = std::move(text);
    return err(EINVAL);
}

// One line per command, for `help` and for the usage errors.
struct command_help {
    std::string_view name, usage, what;
};
constexpr command_help commands[] = {
    {"mkdir", "mkdir PATH", "create a container"},
    {"rmdir", "rmdir PATH", "remove an empty container"},
    {"echo", "echo [-n] VALUE... > PATH", "write VALUE (and a newline, unless -n) to a control file"},
    {"cat", "cat PATH", "print a control file"},
    {"ls", "ls [PATH]", "list a container's children, then its files"},
    {"spawn", "spawn NAME", "start a thread that sleeps until cgsh exits; $NAME is its tid"},
    {"fork", "fork PARENT CHILD", "tell the hierarchy that task PARENT forked task CHILD"},
    {"exit", "exit TID", "tell the hierarchy that task TID has exited"},
    {"affinity", "affinity TID", "print a task's real CPU affinity"},
    {"help", "help", "print this list"},
};

std::string help_text() {
    std::string out;
    for (auto const& c : commands) {
        std::string line(c.usage);
        line.resize(std::max<std::size_t>(line.size() + 2, 27), ' ');
        out += line;
        out += c.what;
        out += '\n';
    }
    return out;
}

std::error_code usage_error(std::string const& cmd, std::string& why) {
    for (auto const& c : commands) {
        if (c.name == cmd) return invalid(why, "usage: " + std::string(c.usage));
    }
    return invalid(why, "unknown command '" + cmd + "'");
}

// Threads started by `spawn`, sleeping until cgsh exits.
class sleepers {
public:
    ~sleepers() {
        {
            std::lock_guard g(mutex_);
            done_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t.join();
    }
    pid_t spawn() {
        std::unique_lock g(mutex_);
        pid_t tid = 0;
        threads_.emplace_back([this, &tid] {
            std::unique_lock lock(mutex_);
            tid = containers::thread_task_traits::self();
            wake_.notify_all();
            wake_.wait(lock, [this] { return done_; });
        });
        wake_.wait(g, [&] { return tid != 0; });
        return tid;
    }

private:
    std::mutex mutex_;
    std::condition_variable wake_;
    bool done_ = false;
    std::vector<std::thread> threads_;
};

// Splits a line into words: bare words, or double-quoted strings with C escapes. '#' outside
// quotes starts a comment. EINVAL for an unterminated string or a bad escape, said in `why`.
std::error_code split(std::string const& line, std::vector<std::string>& words, std::vector<bool>& quoted, std::string& why) {
    std::size_t i = 0;
    while (i < line.size()) {
        char const c = line[i];
        if (c == ' ' || c == '\t' || c == '\r') {
            ++i;
            continue;
        }
        if (c == '#') break;
        std::string w;
        if (c == '"') {
            ++i;
            for (;;) {
                if (i >= line.size()) return invalid(why, "unterminated string");
                char ch = line[i++];
                if (ch == '"') break;
                if (ch != '\\') {
                    w += ch;
                    continue;
                }
                if (i >= line.size()) return invalid(why, "unterminated string");
                char e = line[i++];
                switch (e) {
                    case '\\': w += '\\'; break;
                    case '"': w += '"'; break;
                    case 'n': w += '\n'; break;
                    case 't': w += '\t'; break;
                    case 'r': w += '\r'; break;
                    case 'x': {
                        if (i + 2 > line.size() || !std::isxdigit(static_cast<unsigned char>(line[i])) ||
                            !std::isxdigit(static_cast<unsigned char>(line[i + 1]))) {
                            return invalid(why, "\\x needs two hex digits");
                        }
                        w += static_cast<char>(std::stoi(line.substr(i, 2), nullptr, 16));
                        i += 2;
                        break;
                    }
                    default: return invalid(why, std::string("unknown escape '\\") + e + "'");
                }
            }
            words.push_back(w);
            quoted.push_back(true);
        } else {
            while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') w += line[i++];
            words.push_back(w);
            quoted.push_back(false);
        }
    }
    return {};
}

std::string cpu_list(cpu_set_t const& set) {
    std::string out;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &set)) continue;
        int last = cpu;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) ++last;
        if (!out.empty()) out += ',';
        out += std::to_string(cpu);
        if (last > cpu) out += '-' + std::to_string(last);
        cpu = last;
    }
    return out + "\n";
}

class shell {
public:
    // Every subsystem the library ships is registered, or those named in `only` (a comma-separated
    // list, for a mount that mirrors one of the kernel's single-subsystem hierarchies).
    explicit shell(std::string const& only = {}) {
        auto wanted = [&](std::string_view name) {
            if (only.empty()) return true;
            std::string const list = "," + only + ",";
            return list.find("," + std::string(name) + ",") != std::string::npos;
        };
        if (wanted("cpuset")) add<containers::cpuset>();
        if (wanted("cpuacct")) add<containers::cpuacct>();
        if (wanted("pids")) add<containers::pids>();
        if (wanted("freezer")) add<containers::freezer>();
        if (wanted("cpu")) add<containers::cpu_controller>();
    }

    hierarchy& tree() noexcept { return h_; }
    [[nodiscard]] bool has(std::string_view name) const {
        return std::find(registered_.begin(), registered_.end(), name) != registered_.end();
    }

    // Runs one line. Output goes to `out`; on failure `why` says what was wrong, in words.
    std::error_code run(std::string const& line, std::string& out, bool& is_command, std::string& why) {
        std::vector<std::string> w;
        std::vector<bool> quoted;
        is_command = false;
        std::error_code ec = split(line, w, quoted, why);
        if (!ec && w.empty()) return {};
        is_command = true;
        if (ec) return ec;
        for (std::size_t i = 0; i < w.size(); ++i) {
            if (quoted[i] || w[i].size() < 2 || w[i][0] != '$') continue;
            auto it = names_.find(w[i].substr(1));
            if (it == names_.end()) return invalid(why, "unset variable " + w[i]);
            w[i] = std::to_string(it->second);
        }
        std::string const& cmd = w[0];
        // The failure of an operation on `what`, as "mkdir /a: File exists".
        auto failed = [&](std::string const& what, std::error_code e) {
            if (e) why = cmd + " " + what + ": " + e.message();
            return e;
        };
        if (cmd == "mkdir" && w.size() == 2) return failed(w[1], fs::mkdir(h_, w[1]));
        if (cmd == "rmdir" && w.size() == 2) return failed(w[1], fs::rmdir(h_, w[1]));
        if (cmd == "cat" && w.size() == 2) return failed(w[1], fs::read(h_, w[1], out));
        if (cmd == "ls" && w.size() <= 2) {
            std::string const path = w.size() == 2 ? w[1] : "/";
            std::vector<std::string> names;
            if (std::error_code e = fs::list(h_, path, names)) return failed(path, e);
            for (auto const& n : names) out += n + "\n";
            return {};
        }
        if (cmd == "echo") return echo(w, quoted, why);
        if (cmd == "spawn" && w.size() == 2) {
            names_[w[1]] = sleepers_.spawn();
            return {};
        }
        if (cmd == "help" && w.size() == 1) {
            out = help_text();
            return {};
        }
        pid_t a = 0, b = 0;
        if (cmd == "fork" && w.size() == 3) {
            if (!number(w[1], a, why) || !number(w[2], b, why)) return err(EINVAL);
            return failed(w[1] + " " + w[2], h_.fork(a, b));
        }
        if (cmd == "exit" && w.size() == 2) {
            if (!number(w[1], a, why)) return err(EINVAL);
            return failed(w[1], h_.exit(a));
        }
        if (cmd == "affinity" && w.size() == 2) {
            if (!number(w[1], a, why)) return err(EINVAL);
            cpu_set_t set;
            if (::sched_getaffinity(a, sizeof set, &set) != 0) return failed(w[1], err(errno));
            out = cpu_list(set);
            return {};
        }
        return usage_error(cmd, why);  // unknown command or wrong number of arguments
    }

private:
    template <class S>
    void add() {
        containers::subsystem_handle<S, hierarchy> handle;
        if (std::error_code ec = h_.register_subsystem(handle)) {
            std::fprintf(stderr, "cgsh: %s: %s\n", std::string(S::name).c_str(), ec.message().c_str());
        } else {
            registered_.emplace_back(S::name);
        }
    }

    static bool number(std::string const& s, pid_t& out, std::string& why) {
        std::uint64_t v = 0;
        if (containers::parse::u64(s, v) || v > 0x7fffffff) {
            why = "not a task id: '" + s + "'";
            return false;
        }
        out = static_cast<pid_t>(v);
        return true;
    }

    std::error_code echo(std::vector<std::string> const& w, std::vector<bool> const& quoted, std::string& why) {
        std::size_t i = 1;
        bool newline = true;
        if (i < w.size() && w[i] == "-n" && !quoted[i]) {
            newline = false;
            ++i;
        }
        std::size_t redirect = w.size();
        for (std::size_t k = i; k < w.size(); ++k) {
            if (w[k] == ">" && !quoted[k]) redirect = k;
        }
        if (redirect + 2 != w.size()) return usage_error("echo", why);  // exactly "> PATH" at the end
        std::string value;
        for (std::size_t k = i; k < redirect; ++k) value += (k == i ? "" : " ") + w[k];
        if (newline) value += '\n';
        std::error_code ec = fs::write(h_, w[redirect + 1], value, fs::open_mode::create);  // as a shell opens it
        if (ec) why = "echo > " + w[redirect + 1] + ": " + ec.message();
        return ec;
    }

    hierarchy h_;
    sleepers sleepers_;  // destroyed first: the spawned threads end before the hierarchy does
    std::map<std::string, pid_t> names_;
    std::vector<std::string_view> registered_;
};

// One answer is one line for any reader: the backslash and every byte that is not printable
// ASCII are escaped, \n \t \r by name and the rest as \xHH, as the parser reads them back. That
// covers the control bytes, DEL, and the bytes of multi-byte characters, some of which readers
// take as line breaks (U+0085, U+2028 and U+2029 for Python's splitlines, for instance).
std::string escape(std::string const& s) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (char c : s) {
        auto const b = static_cast<unsigned char>(c);
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c == '\\') out += "\\\\";
        else if (b < 0x20 || b >= 0x7f) {
            out += "\\x";
            out += hex[b >> 4];
            out += hex[b & 0xf];
        } else {
            out += c;
        }
    }
    return out;
}

char const* errno_name(int e) {
    char const* n = ::strerrorname_np(e);
    return n != nullptr ? n : "EUNKNOWN";
}

int usage() {
    std::fputs("usage: cgsh [--porcelain] [SCRIPT | -c 'COMMANDS'] | cgsh --mount DIR [--subsystems LIST] [--allow-other]\n",
               stderr);
    return 2;
}

// Serves a hierarchy with the subsystems in `only` (all when empty) at `dir` until SIGINT or
// SIGTERM.
int serve(char const* dir, std::string const& only, bool allow_other) {
#if CONTAINERS_HAVE_FUSE
    // Blocked before any thread starts, so that libfuse's threads leave the signals to sigwait.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    shell sh(only);
    for (std::size_t at = 0; at < only.size();) {  // every subsystem asked for, or none served
        std::size_t const comma = std::min(only.find(',', at), only.size());
        std::string const name = only.substr(at, comma - at);
        if (!sh.has(name)) {
            std::fprintf(stderr, "cgsh: --subsystems: no subsystem '%s'\n", name.c_str());
            return 2;
        }
        at = comma + 1;
    }
    containers::fuse::options o;
    o.allow_other = allow_other;
    std::error_code ec;
    containers::fuse::mounted m = containers::fuse::mount(sh.tree(), dir, o, ec);
    if (ec) {
        std::fprintf(stderr, "cgsh: mount %s: %s\n", dir, ec.message().c_str());
        return 1;
    }
    std::fprintf(stderr, "cgsh: serving at %s until interrupted\n", dir);
    int sig = 0;
    ::sigwait(&stop, &sig);
    return 0;  // m unmounts
#else
    (void)only;
    (void)allow_other;
    std::fprintf(stderr, "cgsh: --mount %s: built without FUSE (libfuse3)\n", dir);
    return 2;
#endif
}

}  // namespace

int main(int argc, char** argv) {
    bool porcelain = false;
    std::unique_ptr<std::istream> owned;
    std::istream* in = &std::cin;
    for (int i = 1; i < argc; ++i) {
        std::string const a = argv[i];
        if (a == "--mount" && argc >= 3 && i == 1) {
            std::string only;
            bool allow_other = false;
            for (int k = 3; k < argc; ++k) {
                std::string const o = argv[k];
                if (o == "--subsystems" && k + 1 < argc && only.empty()) only = argv[++k];
                else if (o == "--allow-other") allow_other = true;
                else return usage();
            }
            return serve(argv[2], only, allow_other);
        } else if (a == "--porcelain") {
            porcelain = true;
        } else if (a == "-c" && i + 1 < argc) {
            owned = std::make_unique<std::istringstream>(argv[++i]);
            in = owned.get();
        } else if (a == "-h" || a == "--help") {
            return usage() - 2;
        } else if (!a.empty() && a[0] != '-' && !owned) {
            owned = std::make_unique<std::ifstream>(a);
            if (!*owned) {
                std::fprintf(stderr, "cgsh: %s: %s\n", a.c_str(), std::strerror(errno));
                return 2;
            }
            in = owned.get();
        } else {
            return usage();
        }
    }
    // A person at a terminal gets a prompt, and errors without line numbers.
    bool const interactive = in == &std::cin && ::isatty(STDIN_FILENO) == 1 && !porcelain;
    shell sh;
    bool failed = false;
    std::string line;
    auto prompt = [&] {
        if (!interactive) return;
        std::fputs("cgsh> ", stderr);
        std::fflush(stderr);
    };
    prompt();
    for (long number = 1; std::getline(*in, line); ++number) {
        std::string out, why;
        bool is_command = false;
        std::error_code ec = sh.run(line, out, is_command, why);
        if (is_command && ec) {
            failed = true;
            if (porcelain) {
                std::fprintf(stderr, "cgsh: %ld: %s (%s)\n", number, errno_name(ec.value()), ec.message().c_str());
                std::printf("err %s\n", errno_name(ec.value()));
            } else {
                if (why.empty()) why = ec.message();
                if (interactive) std::fprintf(stderr, "cgsh: %s\n", why.c_str());
                else std::fprintf(stderr, "cgsh: %ld: %s\n", number, why.c_str());
            }
        } else if (is_command && porcelain) {
            std::printf(out.empty() ? "ok\n" : "ok %s\n", escape(out).c_str());
        } else {
            std::fputs(out.c_str(), stdout);
        }
        std::fflush(stdout);
        std::fflush(stderr);
        prompt();
    }
    if (interactive) std::fputs("\n", stderr);
    return failed ? 1 : 0;
}
