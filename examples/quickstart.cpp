// Quick start: a hierarchy with one small subsystem, threads that join groups, and the read path.
//
// The subsystem counts the tasks that ever joined each container and vetoes joins to a container
// marked closed; the example prints the tree with what every thread reads as its own container.
#include <containers/containers.hpp>
#include <containers/views.hpp>  // range-v3 views: not in the umbrella header

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace ct = containers;
using hierarchy = ct::hierarchy<>;  // tasks are Linux threads, 8 subsystem slots
using container = hierarchy::container;

// A subsystem: a tag, a name, a per-container state, and the hooks it needs.
struct admission : ct::subsystem_tag {
    static constexpr std::string_view name = "admission";
    struct state {
        bool closed = false;
        int joined = 0;
    };
    std::error_code can_attach(state& s, container&, ct::task_set<container>) {
        return s.closed ? std::make_error_code(std::errc::operation_not_permitted) : std::error_code{};
    }
    void attach(state& s, container&, ct::task_set<container> tasks) noexcept { s.joined += static_cast<int>(tasks.size()); }
};

int main() {
    hierarchy h;
    ct::subsystem_handle<admission, hierarchy> adm;
    if (auto ec = h.register_subsystem(adm)) return std::fprintf(stderr, "register: %s\n", ec.message().c_str()), 1;

    container* latency = nullptr;
    container* batch = nullptr;
    container* sealed = nullptr;
    if (h.mkdir(h.top(), "latency", &latency) || h.mkdir(h.top(), "batch", &batch) || h.mkdir(*batch, "sealed", &sealed)) return 1;
    adm.state(*sealed).closed = true;

    std::vector<std::thread> threads;
    std::vector<std::string> lines(4);
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&, i] {
            container& want = i % 2 == 0 ? *latency : *batch;
            std::error_code ec = h.attach_self(want);
            std::error_code veto = h.attach_self(*sealed);  // refused by the subsystem
            ct::read_section rs;                             // lock-free read of our own container
            lines[static_cast<std::size_t>(i)] = "thread " + std::to_string(i) + ": attach " + (ec ? ec.message() : "ok") +
                                                 ", into sealed: " + veto.message() + ", now in " + h.path(h.current());
        });
    }
    for (auto& t : threads) t.join();
    for (auto const& l : lines) std::puts(l.c_str());

    std::puts("\ncontainer           joined  tasks now");
    auto lock = h.manage_lock();
    for (container& c : ct::views::subtree(h.top())) {
        std::printf("%-18s  %6d  %9zu\n", h.path(c).c_str(), adm.state(c).joined, c.task_count());
    }
    std::printf("\n%zu containers; threads left their groups when they exited.\n", h.size());
    return 0;
}
