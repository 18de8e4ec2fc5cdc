// The machine's CPUs and memory nodes, as the cpuset subsystem sees them.
//
// from_system() reads sysfs once (online and possible CPUs, online nodes) and the calling
// thread's affinity (what the process may use, through the system-call seam); custom() builds any topology, up to thousands of
// CPUs and many nodes, for tests and for modelling hotplug with cpuset::set_topology.
#pragma once

#include <cerrno>
#include <cstddef>
#include <string_view>

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include "cpumask.hpp"
#include "detail/syscalls.hpp"

namespace containers {

struct topology {
    cpumask online_cpus;            // CPUs that can run tasks
    cpumask online_nodes;           // memory nodes that have memory
    cpumask allowed_cpus;           // what this process may use (its affinity when read)
    std::size_t possible_cpus = 1;  // nr_cpu_ids: the width of CPU masks in the kernel's formats
    std::size_t possible_nodes = 1; // nr_node_ids
    /// The highest cpuset.sched_relax_domain_level accepted (the kernel's sched_domain_level_max
    /// + 1). User space cannot read it; 2 is what the 2-CPU development machines accept.
    int relax_domain_level_max = 2;

    static topology custom(cpumask cpus, cpumask nodes, std::size_t possible_cpus = 0, std::size_t possible_nodes = 0) {
        topology t;
        t.possible_cpus = possible_cpus != 0 ? possible_cpus : std::max<std::size_t>(cpus.extent(), 1);
        t.possible_nodes = possible_nodes != 0 ? possible_nodes : std::max<std::size_t>(nodes.extent(), 1);
        t.allowed_cpus = cpus;
        t.online_cpus = std::move(cpus);
        t.online_nodes = std::move(nodes);
        return t;
    }

    static topology from_system() {
        topology t;
        t.online_cpus = read_list("/sys/devices/system/cpu/online", "0");
        t.possible_cpus = std::max<std::size_t>(read_list("/sys/devices/system/cpu/possible", "0").extent(), 1);
        t.online_nodes = read_list("/sys/devices/system/node/has_memory", "");
        if (t.online_nodes.empty()) t.online_nodes = read_list("/sys/devices/system/node/online", "0");
        t.possible_nodes = std::max<std::size_t>(read_list("/sys/devices/system/node/possible", "0").extent(), 1);
        auto set = cpumask::range(0, t.possible_cpus - 1).to_cpu_set();
        if (set.set && detail::sys::sched_getaffinity(0, set.bytes, set.set.get()) == 0) {
            t.allowed_cpus = cpumask::from_cpu_set(set.set.get(), set.bytes);
        } else {
            t.allowed_cpus = t.online_cpus;
        }
        return t;
    }

    /// The kernel's NR_CPUS, the compile-time bound that sizes cpuset.cpus's write limit:
    /// sysfs's kernel_max + 1, read once; 8192 where it cannot be read.
    static std::size_t kernel_nr_cpus() {
        static std::size_t const n = read_list("/sys/devices/system/cpu/kernel_max", "8191").extent();
        return n;
    }

private:
    // The first line of a small sysfs file, parsed as a list; `fallback` where it cannot be read
    // or parsed. open/read into a stack buffer: sysfs lists are at most a page.
    static cpumask read_list(char const* path, char const* fallback) {
        char buf[4096];
        std::string_view s = fallback;
        int fd;
        do fd = ::open(path, O_RDONLY | O_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        if (fd >= 0) {
            ssize_t n;
            do n = ::read(fd, buf, sizeof buf);
            while (n < 0 && errno == EINTR);
            ::close(fd);
            if (n > 0) {
                s = std::string_view(buf, static_cast<std::size_t>(n));
                s = s.substr(0, s.find('\n'));
            }
        }
        cpumask m;
        if (cpumask::parse_list(s, 1u << 20, m)) (void)cpumask::parse_list(fallback, 1u << 20, m);
        return m;
    }
};

}  // namespace containers
