// Must not compile: the state's destructor may throw. Expected: the sentence, and no other error.
#include <containers/hierarchy.hpp>

struct throwing_state : containers::subsystem_tag {
    static constexpr std::string_view name = "throwing_state";
    struct state {
        ~state() noexcept(false) {}
    };
};

int main() {
    containers::hierarchy<> h;
    containers::subsystem_handle<throwing_state, containers::hierarchy<>> handle;
    return h.register_subsystem(handle) ? 1 : 0;
}
