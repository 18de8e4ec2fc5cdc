// Must not compile: a final subsystem whose can_attach forgets the task set. A final class
// cannot be derived from, which once hid every hook it had; the sentence about can_attach must
// appear, and no other error.
#include <containers/hierarchy.hpp>

struct sealed final : containers::subsystem_tag {
    static constexpr std::string_view name = "sealed";
    struct state {};
    std::error_code can_attach(state&, containers::hierarchy<>::container&) { return {}; }
};

int main() {
    containers::hierarchy<> h;
    containers::subsystem_handle<sealed, containers::hierarchy<>> handle;
    return h.register_subsystem(handle) ? 1 : 0;
}
