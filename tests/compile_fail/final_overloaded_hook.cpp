// Must not compile: a final subsystem whose attach is an overload set, none of whose members is
// the hook (the first misses noexcept). `&S::attach` cannot name an overload set; the call probe
// must still see it, and the sentence about attach must appear, and no other error.
#include <containers/hierarchy.hpp>

using C = containers::hierarchy<>::container;
struct sealed final : containers::subsystem_tag {
    static constexpr std::string_view name = "sealed";
    struct state {};
    void attach(state&, C&, containers::task_set<C>) {}
    void attach(int) noexcept {}
};

int main() {
    containers::hierarchy<> h;
    containers::subsystem_handle<sealed, containers::hierarchy<>> handle;
    return h.register_subsystem(handle) ? 1 : 0;
}
