// Must not compile: no `name`. Expected: the sentence about name, and no other error.
#include <containers/hierarchy.hpp>

struct no_name : containers::subsystem_tag {
    struct state {};
};

int main() {
    containers::hierarchy<> h;
    containers::subsystem_handle<no_name, containers::hierarchy<>> handle;
    return h.register_subsystem(handle) ? 1 : 0;
}
