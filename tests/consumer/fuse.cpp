// Links containers::fuse: a mount on a directory that does not exist fails with ENOENT, and
// mounts nothing (no /dev/fuse needed).
#include <containers/containers.hpp>
#include <containers/fuse.hpp>

#include <cerrno>

int main() {
    containers::hierarchy<> h;
    std::error_code ec;
    containers::fuse::mounted m = containers::fuse::mount(h, "/nonexistent/containers-consumer", {}, ec);
    return ec.value() == ENOENT && !m.active() ? 0 : 1;
}
