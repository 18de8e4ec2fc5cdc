// Must not compile: the type does not opt in (no subsystem_tag base). Expected: the sentence
// about subsystem_tag, and no other error.
#include <containers/hierarchy.hpp>

struct not_derived {
    static constexpr std::string_view name = "not_derived";
    struct state {};
};

int main() {
    containers::hierarchy<> h;
    containers::subsystem_handle<not_derived, containers::hierarchy<>> handle;
    return h.register_subsystem(handle) ? 1 : 0;
}
