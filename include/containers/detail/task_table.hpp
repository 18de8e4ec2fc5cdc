// The index from task id to task record that the read path uses: an open-addressing hash table
// whose slots readers load without locks, inside a read section. Writers change it under the
// hierarchy's manage lock. Erasure leaves a tombstone so that a racing reader's probe is not cut
// short; growth builds a new table, publishes it, and retires the old one after a grace period.
#pragma once

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <new>

#include "function.hpp"
#include "rcu.hpp"

namespace containers::detail {

/// Rec must expose `id` (immutable once indexed).
template <class Id, class Rec>
class task_table {
public:
    task_table() noexcept = default;
    task_table(task_table const&) = delete;
    task_table& operator=(task_table const&) = delete;
    ~task_table() { free_table(table_.load(std::memory_order_relaxed)); }

    /// Lock-free; call inside a read section (or under the manage lock).
    [[nodiscard]] Rec* find(Id const& id) const noexcept {
        table const* t = table_.load(std::memory_order_acquire);
        if (t == nullptr) return nullptr;
        for (std::size_t i = slot_of(id, t->mask);; i = (i + 1) & t->mask) {
            Rec* r = t->slots[i].load(std::memory_order_acquire);
            if (r == nullptr) return nullptr;
            if (r != tombstone() && r->id == id) return r;
        }
    }

    /// Makes room for `extra` more records so that insert cannot fail. Manage lock held.
    /// Returns false (and changes nothing) when memory runs out. An outgrown table is put on
    /// `retired` for reclamation after a grace period.
    [[nodiscard]] bool reserve(std::size_t extra, retired_node*& retired) noexcept {
        table* t = table_.load(std::memory_order_relaxed);
        std::size_t const cap = t == nullptr ? 0 : t->mask + 1;
        if ((used_ + extra) * 4 <= cap * 3) return true;
        std::size_t want = 16;
        while (want < (live_ + extra) * 2) want *= 2;  // at most half full after growth
        table* n = alloc_table(want);
        if (n == nullptr) return false;
        if (t != nullptr) {
            for (std::size_t i = 0; i <= t->mask; ++i) {
                Rec* r = t->slots[i].load(std::memory_order_relaxed);
                if (r != nullptr && r != tombstone()) place(n, r);
            }
            t->node.next = retired;
            retired = &t->node;
        }
        table_.store(n, std::memory_order_release);
        used_ = live_;
        return true;
    }

    /// Manage lock held; after reserve.
    void insert(Rec* r) noexcept {
        table* t = table_.load(std::memory_order_relaxed);
        assert(t != nullptr && (used_ + 1) * 4 <= (t->mask + 1) * 3);
        if (!place(t, r)) ++used_;
        ++live_;
    }

    /// Manage lock held.
    void erase(Rec* r) noexcept {
        table* t = table_.load(std::memory_order_relaxed);
        for (std::size_t i = slot_of(r->id, t->mask);; i = (i + 1) & t->mask) {
            Rec* s = t->slots[i].load(std::memory_order_relaxed);
            assert(s != nullptr && "containers: erasing a task that is not indexed");
            if (s == r) {
                t->slots[i].store(tombstone(), std::memory_order_release);
                --live_;
                return;
            }
        }
    }

    [[nodiscard]] std::size_t size() const noexcept { return live_; }

    /// Every indexed record, in no order. Manage lock held.
    template <class F>
    void for_each(F&& f) const noexcept {
        table const* t = table_.load(std::memory_order_relaxed);
        if (t == nullptr) return;
        for (std::size_t i = 0; i <= t->mask; ++i) {
            Rec* r = t->slots[i].load(std::memory_order_relaxed);
            if (r != nullptr && r != tombstone()) f(r);
        }
    }

    /// Bytes of index per slot, for the memory report.
    static constexpr std::size_t slot_bytes = sizeof(std::atomic<Rec*>);

private:
    struct table {
        retired_node node;
        std::size_t mask;
        std::atomic<Rec*>* slots;
    };

    static Rec* tombstone() noexcept { return reinterpret_cast<Rec*>(alignof(Rec)); }

    static std::size_t slot_of(Id const& id, std::size_t mask) noexcept {
        // Fibonacci hashing spreads the dense ids that threads get.
        return (static_cast<std::uint64_t>(std::hash<Id>{}(id)) * 0x9E3779B97F4A7C15ull >> 17) & mask;
    }

    // Returns true when it reused a tombstone.
    static bool place(table* t, Rec* r) noexcept {
        for (std::size_t i = slot_of(r->id, t->mask);; i = (i + 1) & t->mask) {
            Rec* s = t->slots[i].load(std::memory_order_relaxed);
            if (s == nullptr || s == tombstone()) {
                t->slots[i].store(r, std::memory_order_release);
                return s != nullptr;
            }
        }
    }

    static table* alloc_table(std::size_t cap) noexcept {
        void* raw = ::operator new(sizeof(table) + cap * sizeof(std::atomic<Rec*>), std::nothrow);
        if (raw == nullptr) return nullptr;
        auto* t = new (raw) table;
        t->mask = cap - 1;
        t->slots = reinterpret_cast<std::atomic<Rec*>*>(static_cast<char*>(raw) + sizeof(table));
        for (std::size_t i = 0; i < cap; ++i) new (&t->slots[i]) std::atomic<Rec*>(nullptr);
        t->node.reclaim = [](retired_node* n) noexcept {
            free_table(reinterpret_cast<table*>(reinterpret_cast<char*>(n) - offsetof(table, node)));
        };
        return t;
    }

    static void free_table(table* t) noexcept {
        if (t == nullptr) return;
        t->~table();
        ::operator delete(static_cast<void*>(t));
    }

    std::atomic<table*> table_{nullptr};  // read lock-free, replaced under the manage lock
    std::size_t live_ = 0;                // guarded by the manage lock
    std::size_t used_ = 0;                // live records plus tombstones; manage lock
};

}  // namespace containers::detail
