#include <containers/containers.hpp>

int main() {
    containers::hierarchy<> h;
    containers::hierarchy<>::container* c = nullptr;
    if (h.mkdir(h.top(), "consumer", &c)) return 1;
    return h.path(*c) == "/consumer" ? 0 : 2;
}
