// Masks of CPUs or memory nodes, of any size, with the kernel's text formats.
//
// A cpumask is a growable bitset (a machine with 4096 or more CPUs is as welcome as one with 2,
// and up to 256 bits need no allocation),
// with the set algebra a cpuset needs (union, intersection, difference, subset), iteration over
// the set bits, and conversion to and from the dynamically sized cpu_set_t that
// sched_setaffinity takes. parse_list and to_list speak the kernel's list format ("0-3,8",
// "0-15:2/4", "N" for the last bit), parse_hex and to_hex its mask format ("ff,ffffffff"), with
// the errors the kernel returns for each malformed input: EINVAL for syntax, ERANGE for a bit
// beyond the limit, EOVERFLOW for a number that does not fit 32 bits.
//
// Allocation: masks beyond 256 bits allocate. The operators and `set` report a failure as
// std::bad_alloc (or abort, built without exceptions), as the standard containers do; the
// library's own paths use the noexcept forms (try_set, assign, parse_list, parse_hex), which
// return ENOMEM and leave the mask as it was.
#pragma once

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <sched.h>

#include "detail/errors.hpp"

namespace containers {

namespace detail {
// What a throwing allocation does where exceptions are off.
[[noreturn]] inline void bad_alloc() {
#if defined(__cpp_exceptions)
    throw std::bad_alloc();
#else
    std::abort();
#endif
}
}  // namespace detail

class cpumask {
public:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    cpumask() = default;
    /// The bits first..last, inclusive.
    static cpumask range(std::size_t first, std::size_t last) {
        cpumask m;
        for (std::size_t i = first; i <= last; ++i) m.set(i);
        return m;
    }

    void set(std::size_t bit) {
        if (try_set(bit)) detail::bad_alloc();
    }
    /// Sets `bit`. Errors: ENOMEM (the mask is unchanged).
    [[nodiscard]] std::error_code try_set(std::size_t bit) noexcept {
        if (bit / 64 >= words_.size() && !words_.try_resize(bit / 64 + 1)) return detail::errno_code(ENOMEM);
        words_[bit / 64] |= std::uint64_t{1} << (bit % 64);
        return {};
    }
    /// Effects: makes this mask a copy of `o`. Errors: ENOMEM (this mask is unchanged).
    [[nodiscard]] std::error_code assign(cpumask const& o) noexcept {
        return words_.try_assign(o.words_) ? std::error_code{} : detail::errno_code(ENOMEM);
    }
    void reset(std::size_t bit) noexcept {
        if (bit / 64 < words_.size()) words_[bit / 64] &= ~(std::uint64_t{1} << (bit % 64));
        trim();
    }
    [[nodiscard]] bool test(std::size_t bit) const noexcept {
        return bit / 64 < words_.size() && (words_[bit / 64] >> (bit % 64) & 1) != 0;
    }
    void clear() noexcept { words_.clear(); }
    [[nodiscard]] bool empty() const noexcept { return words_.empty(); }
    [[nodiscard]] std::size_t count() const noexcept {
        std::size_t n = 0;
        for (std::uint64_t w : words_) n += static_cast<std::size_t>(std::popcount(w));
        return n;
    }
    /// The lowest set bit at or after `from`, or npos.
    [[nodiscard]] std::size_t next(std::size_t from = 0) const noexcept {
        for (std::size_t w = from / 64; w < words_.size(); ++w) {
            std::uint64_t bits = words_[w];
            if (w == from / 64) bits &= ~std::uint64_t{0} << (from % 64);
            if (bits != 0) return w * 64 + static_cast<std::size_t>(std::countr_zero(bits));
        }
        return npos;
    }
    [[nodiscard]] std::size_t first() const noexcept { return next(0); }
    /// One past the highest set bit (0 when empty).
    [[nodiscard]] std::size_t extent() const noexcept {
        if (words_.empty()) return 0;
        return (words_.size() - 1) * 64 + 64 - static_cast<std::size_t>(std::countl_zero(words_.back()));
    }

    cpumask& operator|=(cpumask const& o) {
        if (o.words_.size() > words_.size()) words_.resize(o.words_.size());
        for (std::size_t i = 0; i < o.words_.size(); ++i) words_[i] |= o.words_[i];
        return *this;
    }
    cpumask& operator&=(cpumask const& o) noexcept {
        words_.resize(std::min(words_.size(), o.words_.size()));
        for (std::size_t i = 0; i < words_.size(); ++i) words_[i] &= o.words_[i];
        trim();
        return *this;
    }
    /// Difference: the bits of this mask that are not in `o`.
    cpumask& operator-=(cpumask const& o) noexcept {
        for (std::size_t i = 0; i < std::min(words_.size(), o.words_.size()); ++i) words_[i] &= ~o.words_[i];
        trim();
        return *this;
    }
    friend cpumask operator|(cpumask a, cpumask const& b) { return a |= b; }
    friend cpumask operator&(cpumask a, cpumask const& b) noexcept { return a &= b; }
    friend cpumask operator-(cpumask a, cpumask const& b) noexcept { return a -= b; }
    friend bool operator==(cpumask const& a, cpumask const& b) noexcept {
        return std::equal(a.words_.begin(), a.words_.end(), b.words_.begin(), b.words_.end());
    }

    [[nodiscard]] bool subset_of(cpumask const& o) const noexcept {
        for (std::size_t i = 0; i < words_.size(); ++i) {
            if ((words_[i] & ~(i < o.words_.size() ? o.words_[i] : 0)) != 0) return false;
        }
        return true;
    }
    [[nodiscard]] bool intersects(cpumask const& o) const noexcept {
        for (std::size_t i = 0; i < std::min(words_.size(), o.words_.size()); ++i) {
            if ((words_[i] & o.words_[i]) != 0) return true;
        }
        return false;
    }

    /// Iteration over the set bits, in ascending order.
    class iterator {
    public:
        using value_type = std::size_t;
        using difference_type = std::ptrdiff_t;
        using iterator_category = std::forward_iterator_tag;
        iterator() = default;
        iterator(cpumask const* m, std::size_t bit) noexcept : mask_(m), bit_(bit) {}
        std::size_t operator*() const noexcept { return bit_; }
        iterator& operator++() noexcept {
            bit_ = mask_->next(bit_ + 1);
            return *this;
        }
        iterator operator++(int) noexcept {
            iterator t = *this;
            ++*this;
            return t;
        }
        friend bool operator==(iterator const& a, iterator const& b) noexcept { return a.bit_ == b.bit_; }

    private:
        cpumask const* mask_ = nullptr;
        std::size_t bit_ = npos;
    };
    [[nodiscard]] iterator begin() const noexcept { return {this, first()}; }
    [[nodiscard]] iterator end() const noexcept { return {this, npos}; }

    /// A cpu_set_t of `bits` CPUs (at least the mask's extent), allocated with CPU_ALLOC, and its
    /// size in bytes for sched_setaffinity.
    struct cpu_set {
        struct deleter {
            void operator()(cpu_set_t* p) const noexcept { CPU_FREE(p); }
        };
        std::unique_ptr<cpu_set_t, deleter> set;
        std::size_t bytes = 0;
    };
    [[nodiscard]] cpu_set to_cpu_set(std::size_t bits = 0) const {
        bits = std::max({bits, extent(), std::size_t{1}});
        cpu_set out{std::unique_ptr<cpu_set_t, cpu_set::deleter>(CPU_ALLOC(static_cast<int>(bits))), CPU_ALLOC_SIZE(static_cast<int>(bits))};
        if (!out.set) return out;
        CPU_ZERO_S(out.bytes, out.set.get());
        for (std::size_t cpu : *this) CPU_SET_S(cpu, out.bytes, out.set.get());
        return out;
    }
    [[nodiscard]] static cpumask from_cpu_set(cpu_set_t const* set, std::size_t bytes) {
        cpumask m;
        for (std::size_t cpu = 0; cpu < bytes * 8; ++cpu) {
            if (CPU_ISSET_S(cpu, bytes, set)) m.set(cpu);
        }
        return m;
    }

    /// The bits as a cpu_set_t for sched_setaffinity, without copying: the kernel reads the
    /// `affinity_bytes()` bytes and takes the CPUs beyond them as unset.
    [[nodiscard]] cpu_set_t const* affinity_data() const noexcept {
        static std::uint64_t const none = 0;
        return reinterpret_cast<cpu_set_t const*>(words_.empty() ? &none : words_.data());
    }
    [[nodiscard]] std::size_t affinity_bytes() const noexcept { return std::max<std::size_t>(1, words_.size()) * 8; }

    /// The bits as the kernel's unsigned long arrays (set_mempolicy, mbind), `nbits` wide.
    [[nodiscard]] std::vector<unsigned long> to_ulongs(std::size_t nbits) const {
        constexpr std::size_t per = sizeof(unsigned long) * 8;
        std::vector<unsigned long> out(std::max<std::size_t>(1, (std::max(nbits, extent()) + per - 1) / per), 0);
        for (std::size_t b : *this) out[b / per] |= 1ul << (b % per);
        return out;
    }

    /// The kernel's list format without a newline: "0-3,8"; empty for an empty mask.
    [[nodiscard]] std::string to_list() const {
        std::string out;
        for (std::size_t b = first(); b != npos;) {
            std::size_t e = b;
            while (test(e + 1)) ++e;
            if (!out.empty()) out += ',';
            out += std::to_string(b);
            if (e > b) out += '-' + std::to_string(e);
            b = next(e + 1);
        }
        return out;
    }

    /// Parses the kernel's list format, as bitmap_parselist does for a mask of `nbits` bits:
    /// regions "A", "A-B", "all" (any case), optionally with ":USED/GROUP" ("N" is the last
    /// bit), separated by commas and white space (0xa0 and newlines included); the text ends at
    /// a NUL, or at a newline right after a region without a pattern. EINVAL for malformed text or an empty or
    /// inverted region, ERANGE for a bit at or beyond `nbits`, EOVERFLOW for a number beyond 32
    /// bits, ENOMEM when memory runs out. On error `out` is unchanged.
    [[nodiscard]] static std::error_code parse_list(std::string_view s, std::size_t nbits, cpumask& out) noexcept;

    /// The kernel's mask format for `nbits` bits: 32-bit groups in hex, most significant first,
    /// separated by commas; the first group as wide as the bits it holds ("3" for 2 bits).
    [[nodiscard]] std::string to_hex(std::size_t nbits) const {
        std::size_t const groups = std::max<std::size_t>(1, (nbits + 31) / 32);
        std::size_t const first_bits = nbits % 32 == 0 ? 32 : nbits % 32;
        std::string out;
        static constexpr char digits[] = "0123456789abcdef";
        for (std::size_t g = groups; g-- > 0;) {
            std::uint32_t const v = static_cast<std::uint32_t>(
                g / 2 < words_.size() ? words_[g / 2] >> (g % 2 * 32) : 0);
            std::size_t const width = g == groups - 1 ? (first_bits + 3) / 4 : 8;
            for (std::size_t d = width; d-- > 0;) out += digits[v >> (d * 4) & 0xf];
            if (g != 0) out += ',';
        }
        return out;
    }

    /// Parses the kernel's mask format (as bitmap_parse): comma-separated hex groups of up to 32
    /// bits, most significant first, ending at a newline. EINVAL for malformed text, EOVERFLOW
    /// for set bits at or beyond `nbits`, ENOMEM when memory runs out. On error `out` is unchanged.
    [[nodiscard]] static std::error_code parse_hex(std::string_view s, std::size_t nbits, cpumask& out) noexcept;

private:
    void trim() noexcept {
        while (!words_.empty() && words_.back() == 0) words_.pop_back();
    }

    // Words of bits, without trailing zero words so that == compares sets. Up to 256 bits live
    // inline: most machines' masks, copied on every configuration change, then cost no allocation.
    class word_storage {
    public:
        word_storage() noexcept = default;
        word_storage(word_storage const& o) {
            if (!try_assign(o)) detail::bad_alloc();
        }
        word_storage& operator=(word_storage const& o) {
            if (!try_assign(o)) detail::bad_alloc();
            return *this;
        }
        word_storage(word_storage&& o) noexcept { take(o); }
        word_storage& operator=(word_storage&& o) noexcept {
            if (this != &o) take(o);
            return *this;
        }

        [[nodiscard]] std::size_t size() const noexcept { return size_; }
        [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
        [[nodiscard]] std::uint64_t* data() noexcept { return heap_ ? heap_.get() : inline_; }
        [[nodiscard]] std::uint64_t const* data() const noexcept { return heap_ ? heap_.get() : inline_; }
        std::uint64_t& operator[](std::size_t i) noexcept { return data()[i]; }
        std::uint64_t operator[](std::size_t i) const noexcept { return data()[i]; }
        [[nodiscard]] std::uint64_t back() const noexcept { return data()[size_ - 1]; }
        std::uint64_t const* begin() const noexcept { return data(); }
        std::uint64_t const* end() const noexcept { return data() + size_; }
        void clear() noexcept { size_ = 0; }
        void pop_back() noexcept { --size_; }
        /// Grows (new words are zero) or shrinks.
        void resize(std::size_t n) {
            if (!try_resize(n)) detail::bad_alloc();
        }
        /// The same; false (and nothing changed) when memory runs out.
        [[nodiscard]] bool try_resize(std::size_t n) noexcept {
            if (n > capacity_) {
                std::size_t cap = capacity_ * 2;
                while (cap < n) cap *= 2;
                std::unique_ptr<std::uint64_t[]> bigger(new (std::nothrow) std::uint64_t[cap]);
                if (!bigger) return false;
                std::copy(data(), data() + size_, bigger.get());
                heap_ = std::move(bigger);
                capacity_ = cap;
            }
            std::uint64_t* d = data();
            for (std::size_t i = size_; i < n; ++i) d[i] = 0;  // a loop: masks are a few words
            size_ = n;
            return true;
        }
        /// Copies `o`; false (and nothing changed) when memory runs out.
        [[nodiscard]] bool try_assign(word_storage const& o) noexcept {
            if (this == &o) return true;
            if (o.size_ > capacity_ && !try_resize(o.size_)) return false;
            std::uint64_t* d = data();
            std::uint64_t const* from = o.data();
            for (std::size_t i = 0; i < o.size_; ++i) d[i] = from[i];
            size_ = o.size_;
            return true;
        }

    private:
        void take(word_storage& o) noexcept {
            heap_ = std::move(o.heap_);  // ours is freed; o's, if any, is stolen
            capacity_ = heap_ ? o.capacity_ : inline_words;
            if (!heap_) std::copy(o.inline_, o.inline_ + o.size_, inline_);
            size_ = o.size_;
            o.size_ = 0;
            o.capacity_ = inline_words;
        }

        static constexpr std::size_t inline_words = 4;
        std::size_t size_ = 0;
        std::size_t capacity_ = inline_words;
        std::uint64_t inline_[inline_words] = {};
        std::unique_ptr<std::uint64_t[]> heap_;
    };
    word_storage words_;
};

namespace detail {

// The kernel's isspace() (lib/ctype.c): the ASCII white space and 0xa0, Latin-1's no-break space.
inline bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == '\xa0';
}
inline bool list_end_of_str(char c) noexcept { return c == '\0' || c == '\n'; }
inline bool list_end_of_region(char c) noexcept { return is_space(c) || c == ',' || list_end_of_str(c); }

// A decimal number, or "N" for the last bit, as bitmap_getnum: an unsigned int. Advances `i`.
inline std::error_code list_number(std::string_view s, std::size_t& i, std::uint32_t last_bit, std::uint32_t& out) noexcept {
    if (i < s.size() && s[i] == 'N') {
        ++i;
        out = last_bit;
        return {};
    }
    std::size_t const start = i;
    std::uint64_t v = 0;
    bool overflow = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + static_cast<std::uint64_t>(s[i++] - '0');
        if (v > 0xffffffffu) overflow = true;
    }
    if (i == start) return errno_code(EINVAL);
    if (overflow) return errno_code(EOVERFLOW);
    out = static_cast<std::uint32_t>(v);
    return {};
}

}  // namespace detail

// The walk of lib/bitmap-str.c's bitmap_parselist (Linux 6.18): separators (white space, 0xa0
// and newlines included, and commas) are skipped before each region; the list ends at a NUL, or
// at a newline right after a region without a pattern ("0\n1" is {0}, but "0,\n1" and
// "0-1:1/2\n1" go on). The region's numbers are unsigned ints, so "4294967295" (whose group,
// end + 1, wraps to 0) is EINVAL, not ERANGE.
inline std::error_code cpumask::parse_list(std::string_view s, std::size_t nbits, cpumask& out) noexcept {
    s = s.substr(0, s.find('\0'));
    cpumask m;
    std::uint32_t const last = static_cast<std::uint32_t>(nbits - 1);  // nbits == 0: wraps, as the kernel's
    std::size_t i = 0;
    auto at = [&](std::size_t k) { return k < s.size() ? s[k] : '\0'; };
    auto is_all = [&] {
        return s.size() - i >= 3 && (s[i] | 0x20) == 'a' && (s[i + 1] | 0x20) == 'l' && (s[i + 2] | 0x20) == 'l';
    };
    for (;;) {
        while (i < s.size() && (detail::is_space(s[i]) || s[i] == ',')) ++i;
        if (detail::list_end_of_str(at(i))) break;
        std::uint32_t start = 0, end = 0, used = 0, group = 0;
        bool pattern = false, last_region = false;
        if (is_all()) {  // "all", in any case: every bit, with an optional pattern
            i += 3;
            end = last;
        } else {
            if (std::error_code ec = detail::list_number(s, i, last, start)) return ec;
            end = start;
            if (!detail::list_end_of_region(at(i))) {
                if (at(i) != '-') return detail::errno_code(EINVAL);
                ++i;
                if (std::error_code ec = detail::list_number(s, i, last, end)) return ec;
            }
        }
        // A pattern may follow "A-B" or "all" (after a lone "A" the region has ended here).
        if (!detail::list_end_of_region(at(i))) {
            if (at(i) != ':') return detail::errno_code(EINVAL);
            ++i;
            if (std::error_code ec = detail::list_number(s, i, last, used)) return ec;
            if (at(i) != '/') return detail::errno_code(EINVAL);
            ++i;
            if (std::error_code ec = detail::list_number(s, i, last, group)) return ec;
            pattern = true;
        } else {
            last_region = detail::list_end_of_str(at(i));
        }
        if (!pattern) used = group = end + 1;  // unsigned int arithmetic: wraps at 2^32
        if (start > end || group == 0 || used > group) return detail::errno_code(EINVAL);
        if (end >= nbits) return detail::errno_code(ERANGE);
        for (std::uint64_t b = start; b <= end; ++b) {
            if ((b - start) % group < used) {
                if (std::error_code ec = m.try_set(static_cast<std::size_t>(b))) return ec;
            }
        }
        if (last_region) break;
    }
    out = std::move(m);
    return {};
}

inline std::error_code cpumask::parse_hex(std::string_view s, std::size_t nbits, cpumask& out) noexcept {
    s = s.substr(0, s.find('\n'));
    if (s.empty()) return detail::errno_code(EINVAL);
    // Two passes over the text, so that no list of groups is allocated: the first checks the
    // syntax and counts the groups (most significant first), the second sets the bits.
    auto scan = [&](auto&& group) -> std::error_code {
        std::size_t i = 0;
        for (std::size_t g = 0;; ++g) {
            std::size_t const start = i;
            std::uint64_t v = 0;
            while (i < s.size() && std::isxdigit(static_cast<unsigned char>(s[i]))) {
                char const c = s[i++];
                v = v * 16 + static_cast<std::uint64_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
                if (v > 0xffffffffu) return detail::errno_code(EOVERFLOW);
            }
            if (i == start) return detail::errno_code(EINVAL);
            if (std::error_code ec = group(g, static_cast<std::uint32_t>(v))) return ec;
            if (i == s.size()) return {};
            if (s[i] != ',') return detail::errno_code(EINVAL);
            ++i;
        }
    };
    std::size_t ngroups = 0;
    if (std::error_code ec = scan([&](std::size_t, std::uint32_t) {
            ++ngroups;
            return std::error_code{};
        })) {
        return ec;
    }
    cpumask m;
    if (std::error_code ec = scan([&](std::size_t g, std::uint32_t v) -> std::error_code {
            std::size_t const base = (ngroups - 1 - g) * 32;
            for (std::size_t b = 0; b < 32; ++b) {
                if ((v >> b & 1) == 0) continue;
                if (base + b >= nbits) return detail::errno_code(EOVERFLOW);
                if (std::error_code set_ec = m.try_set(base + b)) return set_ec;
            }
            return {};
        })) {
        return ec;
    }
    out = std::move(m);
    return {};
}

/// Node masks have the same shape and formats.
using nodemask = cpumask;

}  // namespace containers
