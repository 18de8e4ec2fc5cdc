// std::function and std::hash without the rest of <functional>.
//
// In C++20, <functional> also brings the searchers, and with them <unordered_map> and much of
// <algorithm>: about an eighth of a second of compile time in every program that includes the
// hierarchy, for two class templates. libstdc++ keeps each in a header of its own; elsewhere this
// falls back to <functional>.
#pragma once

#if __has_include(<bits/std_function.h>) && __has_include(<bits/functional_hash.h>)
#include <bits/functional_hash.h>  // IWYU pragma: export (std::hash)
#include <bits/std_function.h>     // IWYU pragma: export (std::function)
#else
#include <functional>              // IWYU pragma: export
#endif
