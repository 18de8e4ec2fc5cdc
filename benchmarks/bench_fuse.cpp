// The mount (containers::fuse) against the kernel's cgroupfs, as a shell's commands reach them:
// `cat notify_on_release` as open/read/close, and `echo $tid > tasks` as open/write/close, the
// tid moving between two groups (a and b) so that each write is a move. The same operations
// through the path interface, in-process, for reference. Prints the ratios at the end.
#include "bench_support.hpp"

#include <containers/fuse.hpp>

#include <cstdlib>

using namespace bench;
namespace fs = containers::fs;
using H = containers::hierarchy<>;

namespace {

kernel_scratch* scratch = nullptr;
std::string mount_dir;
H* hier = nullptr;

void cat_file(benchmark::State& state, std::string const& path) {
    char buf[4096];
    for (auto _ : state) {
        int fd = ::open(path.c_str(), O_RDONLY);
        if (fd < 0 || ::read(fd, buf, sizeof buf) <= 0) state.SkipWithError(std::strerror(errno));
        ::close(fd);
    }
}

void echo_tasks(benchmark::State& state, std::string const& a, std::string const& b) {
    idle_thread t;
    std::string const id = std::to_string(t.tid) + "\n";
    std::string const paths[2] = {a + "/tasks", b + "/tasks"};
    bool to_b = true;
    for (auto _ : state) {
        int fd = ::open(paths[to_b].c_str(), O_WRONLY | O_TRUNC);
        if (fd < 0 || ::write(fd, id.data(), id.size()) < 0) state.SkipWithError(std::strerror(errno));
        ::close(fd);
        to_b = !to_b;
    }
}

void cat_fuse(benchmark::State& state) { cat_file(state, mount_dir + "/a/notify_on_release"); }
void cat_kernel(benchmark::State& state) {
    if (!scratch->ok) return state.SkipWithError("/sys/fs/cgroup/cpuset is not writable");
    cat_file(state, scratch->dir + "/a/notify_on_release");
}
void cat_path(benchmark::State& state) {
    std::string out;
    for (auto _ : state) {
        if (fs::read(*hier, "/a/notify_on_release", out)) state.SkipWithError("read");
        benchmark::DoNotOptimize(out);
    }
}
void echo_fuse(benchmark::State& state) { echo_tasks(state, mount_dir + "/a", mount_dir + "/b"); }
void echo_kernel(benchmark::State& state) {
    if (!scratch->ok) return state.SkipWithError("/sys/fs/cgroup/cpuset is not writable");
    echo_tasks(state, scratch->dir + "/a", scratch->dir + "/b");
    // idle_thread has ended; its tid left the kernel's groups with it.
}
void echo_path(benchmark::State& state) {
    idle_thread t;
    std::string const id = std::to_string(t.tid) + "\n";
    bool to_b = true;
    for (auto _ : state) {
        if (fs::write(*hier, to_b ? "/b/tasks" : "/a/tasks", id)) state.SkipWithError("write");
        to_b = !to_b;
    }
    (void)fs::write(*hier, "/tasks", id);
}

BENCHMARK(cat_fuse)->Name("cat/fuse");
BENCHMARK(cat_path)->Name("cat/path_interface");
BENCHMARK(echo_fuse)->Name("echo_tasks/fuse");
BENCHMARK(echo_path)->Name("echo_tasks/path_interface");
BENCHMARK(cat_kernel)->Name("cat/kernel");
BENCHMARK(echo_kernel)->Name("echo_tasks/kernel");

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    auto saved = containers::cpumask::range(0, 4095).to_cpu_set();
    ::sched_getaffinity(0, saved.bytes, saved.set.get());

    kernel_scratch ks;
    scratch = &ks;
    H h;
    containers::subsystem_handle<containers::cpuset, H> cs;
    if (h.register_subsystem(cs)) return 1;
    hier = &h;
    std::string const cpus = cs.state(h.top()).cpus.to_list();
    std::string const mems = cs.state(h.top()).mems.to_list();
    for (char const* name : {"/a", "/b"}) {
        if (fs::mkdir(h, name) || fs::write(h, std::string(name) + "/cpuset.cpus", cpus) ||
            fs::write(h, std::string(name) + "/cpuset.mems", mems)) {
            return 1;
        }
    }
    char tmpl[] = "/tmp/containers-bench-fuse-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return 1;
    mount_dir = tmpl;
    std::error_code ec;
    int rc = 0;
    {
        containers::fuse::mounted m = containers::fuse::mount(h, mount_dir, {}, ec);
        if (ec) {
            std::fprintf(stderr, "bench_fuse: cannot mount at %s: %s\n", mount_dir.c_str(), ec.message().c_str());
            rc = 1;
        } else {
            ratio_reporter reporter;
            benchmark::RunSpecifiedBenchmarks(&reporter);
            std::vector<row> rows{
                {"cat notify_on_release (open/read/close), mount", "cat/fuse", "cat/kernel", "(kernel cgroupfs; for reference)", 1e9, 0, 0},
                {"cat notify_on_release, path interface in-process", "cat/path_interface", "cat/fuse", "(the mount's own cost)", 1e9, 0, 0},
                {"echo tid > tasks (open/write/close, a move), mount", "echo_tasks/fuse", "echo_tasks/kernel", "(kernel cgroupfs; for reference)", 1e9, 0, 0},
                {"echo tid > tasks, path interface in-process", "echo_tasks/path_interface", "echo_tasks/fuse", "(the mount's own cost)", 1e9, 0, 0},
            };
            print_rows(reporter, rows);
        }
    }
    ::rmdir(mount_dir.c_str());
    ::sched_setaffinity(0, saved.bytes, saved.set.get());
    benchmark::Shutdown();
    return rc;
}
