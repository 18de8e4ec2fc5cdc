// The umbrella header: everything the library offers but the range-v3 views (views.hpp), which
// cost more to compile than the rest together. The library's own headers never include it.
#pragma once

#include "cftype.hpp"               // IWYU pragma: export
#include "cpu.hpp"                  // IWYU pragma: export
#include "cpuacct.hpp"              // IWYU pragma: export
#include "cpumask.hpp"              // IWYU pragma: export
#include "cpuset.hpp"               // IWYU pragma: export
#include "container.hpp"            // IWYU pragma: export
#include "control_files.hpp"        // IWYU pragma: export
#include "freezer.hpp"              // IWYU pragma: export
#include "detail/rcu.hpp"           // IWYU pragma: export (read_section)
#include "hierarchy.hpp"            // IWYU pragma: export
#include "owned_container.hpp"      // IWYU pragma: export
#include "pids.hpp"                 // IWYU pragma: export
#include "subsystem_concepts.hpp"   // IWYU pragma: export
#include "task_traits.hpp"          // IWYU pragma: export
#include "topology.hpp"             // IWYU pragma: export
// views.hpp (range-v3) is not included here: include <containers/views.hpp> where views are used.
