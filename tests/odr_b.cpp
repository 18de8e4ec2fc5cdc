#include <containers/containers.hpp>

using H = containers::hierarchy<>;

bool attach_here(H& h, H::container& c) {
    if (h.attach_self(c)) return false;
    containers::read_section rs;
    return &h.current() == &c;
}
