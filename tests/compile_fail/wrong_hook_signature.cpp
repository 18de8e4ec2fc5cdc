// Must not compile: can_attach is present but takes the wrong parameters. The build-failure test
// expects the library's sentence about can_attach, not a silent "hook absent".
#include <containers/hierarchy.hpp>

struct typo : containers::subsystem_tag {
    static constexpr std::string_view name = "typo";
    struct state {};
    std::error_code can_attach(state&, containers::hierarchy<>::container&) { return {}; }
};

int main() {
    containers::hierarchy<> h;
    containers::subsystem_handle<typo, containers::hierarchy<>> handle;
    return h.register_subsystem(handle) ? 1 : 0;
}
