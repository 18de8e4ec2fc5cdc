// Control-file handlers with typed access (subsystem_files): they receive the subsystem, its
// state and the container, and run under the hierarchy's manage lock with the container live,
// as the kernel runs cgroup handlers under cgroup_mutex; a removed container gives ENODEV and
// its handler never runs. A raw cftype keeps running as before. Races with rmdir and with other
// writers are run here so that TSan and ASan see them.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace containers;
using test::C;
using test::H;

namespace {
using test::errc_of;

// A subsystem whose files count what their handlers saw.
struct meter : subsystem_tag {
    static constexpr std::string_view name = "meter";
    struct state {
        std::uint64_t value = 0;  // guarded by the manage lock: written by the handler only
        std::uint64_t writes = 0;
    };
    std::atomic<int> unlocked_calls{0};  // a handler ran without the manage lock
    std::atomic<int> removed_calls{0};   // a handler ran on a removed container
    std::atomic<int> wrong_state{0};     // the state passed is not the container's
    std::atomic<int> calls{0};

    void saw(meter& self, state& st, C& c) {
        ++self.calls;
        if (!c.owner().manage_lock_held()) ++self.unlocked_calls;
        if (c.removed()) ++self.removed_calls;
        if (&c.owner().state_of<meter>(c) != &st) ++self.wrong_state;
    }

    template <class Ctr>
    static std::vector<cftype<Ctr>> const& files() {
        using typed = subsystem_files<meter, Ctr>;
        static std::vector<cftype<Ctr>> const f{
            typed::template number<std::uint64_t>(
                "meter.value",
                [](meter& m, state& st, Ctr& c, std::uint64_t& out) {
                    m.saw(m, st, c);
                    out = st.value;
                    return std::error_code{};
                },
                [](meter& m, state& st, Ctr& c, std::uint64_t v) {
                    m.saw(m, st, c);
                    if (v > 1000) return std::make_error_code(std::errc::invalid_argument);
                    // A read-modify-write that two unlocked writers would race on.
                    st.value = v;
                    st.writes = st.writes + 1;
                    return std::error_code{};
                }),
            typed::flag(
                "meter.odd", [](meter& m, state& st, Ctr& c, bool& out) {
                    m.saw(m, st, c);
                    out = st.value % 2 == 1;
                    return std::error_code{};
                }),
            typed::file("meter.raw",
                        [](meter& m, state& st, Ctr& c, std::string& out) {
                            m.saw(m, st, c);
                            out += std::to_string(st.writes) + "\n";
                            return std::error_code{};
                        },
                        [](meter& m, state& st, Ctr& c, std::string_view v) {
                            m.saw(m, st, c);
                            if (v == "reset\n") st.writes = 0;
                            return std::error_code{};
                        }),
        };
        return f;
    }
};
// A raw cftype, written as before subsystem_files existed.
struct raw : subsystem_tag {
    static constexpr std::string_view name = "raw";
    struct state {};
    static inline bool held = true;
    template <class Ctr>
    static std::vector<cftype<Ctr>> const& files() {
        static std::vector<cftype<Ctr>> const f{[] {
            cftype<Ctr> r;
            r.name = "raw.locks";
            r.write = [](Ctr& c, std::string_view) {
                held = c.owner().manage_lock_held();
                // A raw handler may take the lock itself, as handlers written before did.
                auto lock = c.owner().manage_lock();
                return std::error_code{};
            };
            return r;
        }()};
        return f;
    }
};
}  // namespace

TEST_CASE("a typed file's handlers get the subsystem and its state, under the manage lock", "[files][lock]") {
    H h;
    subsystem_handle<meter, H> m;
    REQUIRE_FALSE(h.register_subsystem(m));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    C* a = nullptr;
    REQUIRE_FALSE(h.lookup("/a", a));
    REQUIRE_FALSE(fs::write(h, "/a/meter.value", "7\n"));
    CHECK(m.state(*a).value == 7);
    CHECK(m.state(h.top()).value == 0);
    std::string out;
    REQUIRE_FALSE(fs::read(h, "/a/meter.value", out));
    CHECK(out == "7\n");
    REQUIRE_FALSE(fs::read(h, "/a/meter.odd", out));
    CHECK(out == "1\n");
    REQUIRE_FALSE(fs::read(h, "/a/meter.raw", out));
    CHECK(out == "1\n");
    REQUIRE_FALSE(fs::write(h, "/a/meter.raw", "reset\n"));
    REQUIRE_FALSE(fs::read(h, "/a/meter.raw", out));
    CHECK(out == "0\n");
    // Parsing and errors as number_file and flag_file: a malformed value never reaches the handler.
    int const before = m.subsystem().calls.load();
    CHECK(errc_of(fs::write(h, "/a/meter.value", "x")) == std::errc::invalid_argument);
    CHECK(m.subsystem().calls.load() == before);
    CHECK(errc_of(fs::write(h, "/a/meter.value", "1001")) == std::errc::invalid_argument);
    CHECK(errc_of(fs::write(h, "/a/meter.odd", "1")) == std::errc::invalid_argument);  // read-only
    CHECK(m.subsystem().calls.load() > 0);
    CHECK(m.subsystem().unlocked_calls.load() == 0);
    CHECK(m.subsystem().wrong_state.load() == 0);
    CHECK_FALSE(h.manage_lock_held());  // released after the handler
}

TEST_CASE("a typed file of a removed container gives ENODEV without running its handler", "[files][lock]") {
    H h;
    subsystem_handle<meter, H> m;
    REQUIRE_FALSE(h.register_subsystem(m));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    read_section rs;  // keeps the removed container's memory while we hold a resolved target
    fs::detail::target<H> t;
    REQUIRE_FALSE(fs::detail::resolve_file(h, "/a/meter.value", t));
    REQUIRE_FALSE(h.rmdir(*t.dir));  // removed between the lookup and the handler
    int const before = m.subsystem().calls.load();
    std::string out;
    CHECK(errc_of(fs::detail::run_handler(h, t, [&] { return t.file->read(*t.dir, out); })) == std::errc::no_such_device);
    CHECK(errc_of(fs::detail::run_handler(h, t, [&] { return t.file->write(*t.dir, "3"); })) == std::errc::no_such_device);
    CHECK(m.subsystem().calls.load() == before);
}

TEST_CASE("typed file handlers racing with rmdir and with each other never see a removed container", "[files][lock][race]") {
    H h;
    subsystem_handle<meter, H> m;
    REQUIRE_FALSE(h.register_subsystem(m));
    constexpr int rounds = 300;
    std::atomic<bool> done{false};
    std::atomic<int> unexpected{0};
    auto hammer = [&](bool writer) {
        std::string out;
        while (!done.load()) {
            std::error_code ec = writer ? fs::write(h, "/a/meter.value", "5") : fs::read(h, "/a/meter.value", out);
            if (ec && ec != std::errc::no_such_device && ec != std::errc::no_such_file_or_directory) ++unexpected;
        }
    };
    std::thread w1(hammer, true), w2(hammer, true), r(hammer, false);
    for (int i = 0; i < rounds; ++i) {
        std::error_code made = fs::mkdir(h, "/a");
        if (made) ++unexpected;
        std::this_thread::yield();
        if (fs::rmdir(h, "/a")) ++unexpected;
    }
    done = true;
    w1.join();
    w2.join();
    r.join();
    CHECK(unexpected.load() == 0);
    CHECK(m.subsystem().removed_calls.load() == 0);
    CHECK(m.subsystem().unlocked_calls.load() == 0);
}

TEST_CASE("two writers of a typed file do not race: each write is one step under the lock", "[files][lock][race]") {
    H h;
    subsystem_handle<meter, H> m;
    REQUIRE_FALSE(h.register_subsystem(m));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    constexpr int per_thread = 2000;
    auto writer = [&] {
        for (int i = 0; i < per_thread; ++i) REQUIRE_FALSE(fs::write(h, "/a/meter.value", "1"));
    };
    std::thread t1(writer), t2(writer);
    t1.join();
    t2.join();
    C* a = nullptr;
    REQUIRE_FALSE(h.lookup("/a", a));
    auto lock = h.manage_lock();
    CHECK(m.state(*a).writes == 2 * per_thread);  // no lost update
}

TEST_CASE("cpuset's file handlers run under the manage lock and answer ENODEV once removed", "[files][lock][cpuset]") {
    H h;
    subsystem_handle<cpuset, H> cs;
    REQUIRE_FALSE(h.register_subsystem(cs));
    REQUIRE_FALSE(fs::mkdir(h, "/a"));
    read_section rs;
    fs::detail::target<H> t;
    REQUIRE_FALSE(fs::detail::resolve_file(h, "/a/cpuset.mem_hardwall", t));
    CHECK(t.file->lock == cftype<C>::locking::manage);
    REQUIRE_FALSE(h.rmdir(*t.dir));
    CHECK(errc_of(fs::detail::run_handler(h, t, [&] { return t.file->write(*t.dir, "1"); })) == std::errc::no_such_device);
    // Every cpuset file is a locked one.
    for (auto const& f : cpuset::files<C>()) CHECK(f.lock == cftype<C>::locking::manage);
}

TEST_CASE("a raw cftype's handlers still run without the lock, as before", "[files][lock]") {
    H h;
    subsystem_handle<raw, H> r;
    REQUIRE_FALSE(h.register_subsystem(r));
    REQUIRE_FALSE(fs::write(h, "/raw.locks", "1"));
    CHECK_FALSE(raw::held);
}
