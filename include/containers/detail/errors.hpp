// Error codes as the kernel returns them, and the guard that turns a throwing hook into one.
//
// Every fallible operation of the library reports an errno value in std::generic_category(), so
// that callers compare against std::errc and print strerror text. Hooks written by users may
// throw where exceptions are enabled; the library itself never throws and compiles with
// -fno-exceptions.
#pragma once

#include <cerrno>
#include <new>
#include <system_error>
#include <utility>

namespace containers::detail {

[[nodiscard]] inline std::error_code errno_code(int e) noexcept {
    return {e, std::generic_category()};
}

/// Calls a fallible hook. A thrown std::system_error keeps its code, std::bad_alloc becomes ENOMEM
/// and anything else ECANCELED; each counts as a failure with the usual rollback.
template <class F>
[[nodiscard]] std::error_code guarded_call(F&& f) noexcept {
#if defined(__cpp_exceptions)
    try {
        return std::forward<F>(f)();
    } catch (std::system_error const& e) {
        return e.code() ? e.code() : errno_code(ECANCELED);
    } catch (std::bad_alloc const&) {
        return errno_code(ENOMEM);
    } catch (...) {
        return errno_code(ECANCELED);
    }
#else
    return std::forward<F>(f)();
#endif
}

}  // namespace containers::detail
