// Must not compile: can_fork returns bool. Expected: the sentence about can_fork, no other error.
#include <containers/hierarchy.hpp>

struct pids : containers::subsystem_tag {
    static constexpr std::string_view name = "pids";
    struct state {};
    bool can_fork(state&, containers::hierarchy<>::container&, pid_t, pid_t) { return true; }
};

int main() {
    containers::hierarchy<> h;
    containers::subsystem_handle<pids, containers::hierarchy<>> handle;
    return h.register_subsystem(handle) ? 1 : 0;
}
