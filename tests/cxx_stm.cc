/*
 * cxx_stm.cc - include/stm.hpp: restarts and retries unwind (every
 * constructor matched by a destructor across thousands of forced
 * conflicts and retries, two threads), exceptions discard the attempt and
 * leave every TVar unchanged, or_else, hooks, watchers, elapsed, nesting,
 * and a bounded queue under a producer/consumer stress.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A plain program (tests/cxx.mk): each check prints FAIL on failure; the
 * last line is "N passed, M failed" and the exit status is 0 only if M is 0.
 */
#include <stm.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace
{

int passed, failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            std::printf("FAIL: %s:%d: %s\n", __FILE__, __LINE__, #cond);                           \
        }                                                                                          \
    } while (0)

/* Counts its live instances; holds heap memory, as real objects do (so
 * ASan sees a leak if a destructor is skipped). */
std::atomic<long> made{0}, unmade{0};
struct counted {
    std::string s;
    explicit counted(const char *x) : s(x)
    {
        made++;
    }
    counted(const counted &o) : s(o.s)
    {
        made++;
    }
    ~counted()
    {
        unmade++;
    }
};
long live()
{
    return made.load() - unmade.load();
}

/* Wait until `cond` holds (generous bound): true if it did. */
template <class C> bool wait_for(C cond)
{
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!cond()) {
        if (std::chrono::steady_clock::now() > end)
            return false;
        std::this_thread::yield();
    }
    return true;
}

/* ---- forced conflicts: every round's first attempt loses ---------------- */

void test_conflicts_unwind()
{
    const int rounds = 3000;
    stm::tvar<long> x{0}, y{0};
    std::atomic<int> request{0}, done{0};
    std::atomic<bool> stop{false};
    /* the other thread: commits to x and y when asked */
    std::thread other([&] {
        for (int seen = 0; !stop.load();) {
            if (request.load() == seen) {
                std::this_thread::yield();
                continue;
            }
            seen = request.load();
            stm::atomically([&](stm::tx &t) {
                t.write(x, t.read(x) + 1);
                t.write(y, t.read(y) + 1);
            });
            done.store(seen);
        }
    });
    long base = live();
    long attempts = 0, forced = 0;
    for (int i = 1; i <= rounds; i++) {
        bool first = true;
        long sum = stm::atomically([&](stm::tx &t) {
            attempts++;
            counted guard("held across reads");           // must be destroyed
            std::vector<counted> v(3, counted("vector")); // 4 objects
            auto p = std::make_unique<counted>("unique"); // heap
            long a = t.read(x);
            if (first) {
                first = false;
                request.store(i); /* x and y change under this attempt */
                if (!wait_for([&] { return done.load() == i; }))
                    std::abort();
                forced++;
            }
            long b = t.read(y); /* newer than the snapshot, x moved: restart */
            t.write(x, a);
            return a + b + static_cast<long>(v.size()) - 3;
        });
        (void)sum;
    }
    stop.store(true);
    other.join();
    CHECK(forced == rounds);
    CHECK(attempts >= 2L * rounds); /* every forced conflict restarted */
    CHECK(live() == base);          /* every constructor matched */
    CHECK(x.peek() == rounds && y.peek() == rounds);
    std::printf("conflicts: %ld attempts for %d transactions, %ld objects made, live %ld\n",
                attempts, rounds, made.load(), live() - base);
}

/* ---- retries unwind too ------------------------------------------------- */

void test_retries_unwind()
{
    const int rounds = 2000;
    stm::tvar<int> turn{0};
    long base = live();
    std::atomic<long> retried{0};
    /* ping-pong: each thread waits (retry) for its turn, holding objects */
    auto player = [&](int me) {
        for (int i = 0; i < rounds; i++)
            stm::atomically([&](stm::tx &t) {
                counted c("across retry");
                std::string s(100, 'x');
                if (t.read(turn) != me) {
                    retried++;
                    t.retry();
                }
                t.write(turn, 1 - me);
            });
    };
    std::thread a(player, 0), b(player, 1);
    a.join();
    b.join();
    CHECK(live() == base);
    CHECK(retried.load() > 0);
    std::printf("retries: %ld retried attempts\n", retried.load());
}

/* ---- free contention: two threads, one counter ---------------------------- */

void test_contention()
{
    const long n = 20000;
    stm::tvar<long> c{0};
    long base = live();
    std::atomic<long> attempts{0};
    auto inc = [&] {
        for (long i = 0; i < n; i++)
            stm::atomically([&](stm::tx &t) {
                attempts++;
                counted k("k");
                long v = t.read(c);
                std::vector<int> pad(8, 1);
                t.write(c, v + pad[0]);
            });
    };
    std::thread a(inc), b(inc);
    a.join();
    b.join();
    CHECK(c.peek() == 2 * n);
    CHECK(live() == base);
    std::printf("contention: %ld attempts for %ld transactions\n", attempts.load(), 2 * n);
}

/* ---- exceptions ------------------------------------------------------------ */

void test_exceptions()
{
    stm::tvar<int> a{1}, b{2};
    long base = live();
    std::atomic<int> aborts{0}, commits{0};
    bool caught = false;
    try {
        stm::atomically([&](stm::tx &t) {
            counted c("in the throwing body");
            t.write(a, 100);
            t.write(b, t.read(a) + 1);
            t.on_abort([&] { aborts++; });
            t.after_commit([&] { commits++; });
            throw std::runtime_error("boom");
        });
    } catch (const std::runtime_error &e) {
        caught = std::string(e.what()) == "boom";
    }
    CHECK(caught);
    CHECK(a.peek() == 1 && b.peek() == 2); /* unchanged */
    CHECK(aborts.load() == 1 && commits.load() == 0);
    CHECK(live() == base);

    /* a non-std exception type, from a nested stm::atomically */
    int thrown = 0;
    try {
        stm::atomically([&](stm::tx &t) {
            t.write(a, 5);
            stm::atomically([&](stm::tx &u) {
                u.write(b, 6);
                throw 42;
            });
        });
    } catch (int v) {
        thrown = v;
    }
    CHECK(thrown == 42);
    CHECK(a.peek() == 1 && b.peek() == 2);

    /* t.abort(code): stm::aborted, nothing written */
    int code = 0;
    try {
        stm::atomically([&](stm::tx &t) {
            t.write(a, 7);
            t.abort(33);
        });
    } catch (const stm::aborted &e) {
        code = e.code();
    }
    CHECK(code == 33);
    CHECK(a.peek() == 1);

    /* an exception caught inside the body: the transaction goes on */
    int r = stm::atomically([&](stm::tx &t) {
        try {
            t.write(a, 8);
            throw std::logic_error("inner");
        } catch (const std::logic_error &) {
        }
        return t.read(a);
    });
    CHECK(r == 8 && a.peek() == 8);

    /* a retry with nothing to wait on: stm::error(-EDEADLK) */
    int err = 0;
    try {
        stm::atomically([&](stm::tx &t) { t.retry(); });
    } catch (const stm::error &e) {
        err = e.code();
    }
    CHECK(err == -EDEADLK);
}

/* ---- or_else, elapsed, hooks, nesting -------------------------------------- */

void test_or_else()
{
    stm::tvar<int> a{0}, b{0};
    long base = live();
    int r = stm::atomically([&](stm::tx &t) {
        return stm::or_else(
            t,
            [&](stm::tx &u) {
                counted c("first branch");
                u.write(a, 1);
                u.retry(); /* undoes the write to a */
                return 1;
            },
            [&](stm::tx &u) {
                u.write(b, 2);
                return 2;
            });
    });
    CHECK(r == 2 && a.peek() == 0 && b.peek() == 2);
    CHECK(live() == base);

    /* an exception out of a branch leaves or_else and the body */
    bool caught = false;
    try {
        stm::atomically([&](stm::tx &t) {
            t.write(a, 9);
            stm::or_else(
                t, [&](stm::tx &) -> int { throw std::runtime_error("branch"); },
                [&](stm::tx &) { return 0; });
        });
    } catch (const std::runtime_error &) {
        caught = true;
    }
    CHECK(caught && a.peek() == 0);

    /* both retry: the whole transaction waits, until a changes */
    std::thread setter([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        a.poke(5);
    });
    int got = stm::atomically([&](stm::tx &t) {
        return stm::or_else(
            t,
            [&](stm::tx &u) {
                if (u.read(a) == 0)
                    u.retry();
                return u.read(a);
            },
            [&](stm::tx &u) -> int { u.retry(); });
    });
    setter.join();
    CHECK(got == 5);
}

void test_time_and_hooks()
{
    int64_t now = stm_now();
    bool past = stm::atomically([&](stm::tx &t) { return stm::elapsed(t, now - 1); });
    bool future = stm::atomically([&](stm::tx &t) { return t.elapsed(now + STM_SEC(3600)); });
    CHECK(past && !future);

    /* a retry with a deadline wakes at it (lower bound strict) */
    int64_t start = stm_now();
    int64_t deadline = start + STM_MSEC(30);
    stm::atomically([&](stm::tx &t) {
        if (!t.elapsed(deadline))
            t.retry();
    });
    CHECK(stm_now() >= deadline);

    /* hooks run once, after the commit, with their captures */
    std::vector<std::string> log;
    stm::tvar<int> v{0};
    stm::atomically([&](stm::tx &t) {
        t.write(v, 1);
        std::string word = "committed";
        t.after_commit([&log, word] { log.push_back(word); });
    });
    CHECK(log.size() == 1 && log[0] == "committed");

    /* nested: joins */
    int n = stm::atomically([&](stm::tx &t) {
        t.write(v, 2);
        return stm::atomically([&](stm::tx &u) { return u.read(v); });
    });
    CHECK(n == 2);
}

void test_watcher()
{
    stm::tvar<int> level{0};
    std::mutex m;
    std::vector<intptr_t> seen;
    {
        auto w = stm::watcher::start(
            [&](stm::tx &t) { return static_cast<intptr_t>(t.read(level) / 10); },
            [&](stm::tx &, intptr_t v) {
                std::lock_guard<std::mutex> g(m);
                seen.push_back(v);
            },
            STM_WATCH_CHANGES_ONLY);
        CHECK(static_cast<bool>(w));
        for (int i = 1; i <= 35; i++)
            stm::atomically([&](stm::tx &t) { t.write(level, i); });
        w.stop();
        stm::atomically([&](stm::tx &t) { t.write(level, 99); });
    }
    std::lock_guard<std::mutex> g(m);
    CHECK((seen == std::vector<intptr_t>{0, 1, 2, 3}));
}

/* ---- a bounded queue (producer/consumer stress) -------------------------- */

template <std::size_t N> class bounded_queue
{
  public:
    void push(long x)
    {
        stm::atomically([&](stm::tx &t) {
            std::size_t n = t.read(count_);
            if (n == N)
                t.retry();
            std::size_t tail = (t.read(head_) + n) % N;
            t.write(slots_[tail], x);
            t.write(count_, n + 1);
        });
    }
    long pop()
    {
        return stm::atomically([&](stm::tx &t) {
            std::size_t n = t.read(count_);
            if (n == 0)
                t.retry();
            std::size_t h = t.read(head_);
            long x = t.read(slots_[h]);
            t.write(head_, (h + 1) % N);
            t.write(count_, n - 1);
            return x;
        });
    }

  private:
    stm::tvar<std::size_t> head_{0}, count_{0};
    stm::tvar<long> slots_[N];
};

void test_queue_stress()
{
    const long per = 5000;
    const int producers = 2, consumers = 2;
    bounded_queue<8> q;
    std::atomic<long> sum{0}, got{0};
    std::vector<std::atomic<int>> hits(producers * per);
    std::vector<std::thread> ts;
    for (int p = 0; p < producers; p++)
        ts.emplace_back([&, p] {
            for (long i = 0; i < per; i++)
                q.push(p * per + i);
        });
    for (int c = 0; c < consumers; c++)
        ts.emplace_back([&] {
            for (long i = 0; i < per * producers / consumers; i++) {
                long x = q.pop();
                hits[x]++;
                sum += x;
                got++;
            }
        });
    for (auto &t : ts)
        t.join();
    long n = producers * per;
    CHECK(got.load() == n);
    CHECK(sum.load() == n * (n - 1) / 2);
    bool once = true;
    for (auto &h : hits)
        once = once && h.load() == 1;
    CHECK(once);
}

} // namespace

int main()
{
    test_conflicts_unwind();
    test_retries_unwind();
    test_contention();
    test_exceptions();
    test_or_else();
    test_time_and_hooks();
    test_watcher();
    test_queue_stress();
    CHECK(live() == 0);
    stm_shutdown();
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
