// Must not compile: cancel_fork is not noexcept. Expected: the sentence about cancel_fork, and no
// other error.
#include <containers/hierarchy.hpp>

struct pids : containers::subsystem_tag {
    static constexpr std::string_view name = "pids";
    struct state {};
    void cancel_fork(state&, containers::hierarchy<>::container&, pid_t, pid_t) {}
};

int main() {
    containers::hierarchy<> h;
    containers::subsystem_handle<pids, containers::hierarchy<>> handle;
    return h.register_subsystem(handle) ? 1 : 0;
}
