// Two translation units that both instantiate the library and share a hierarchy: a link error or
// a second copy of a thread-local or of the process-wide registries would show here.
#include <containers/containers.hpp>

#include <cstdio>

using H = containers::hierarchy<>;
bool attach_here(H& h, H::container& c);

int main() {
    H h;
    H::container* a = nullptr;
    if (h.mkdir(h.top(), "a", &a)) return 1;
    if (!attach_here(h, *a)) return 2;
    containers::read_section rs;
    if (&h.current() != a) return 3;  // bound in the other unit, read here
    std::puts("ok");
    return 0;
}
