// Must not compile: no `state`. Expected: the sentence about state, and no other error.
#include <containers/hierarchy.hpp>

struct no_state : containers::subsystem_tag {
    static constexpr std::string_view name = "no_state";
};

int main() {
    containers::hierarchy<> h;
    containers::subsystem_handle<no_state, containers::hierarchy<>> handle;
    return h.register_subsystem(handle) ? 1 : 0;
}
