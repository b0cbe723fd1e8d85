/*
 * work_queue.cc - a bounded work queue in C++ on <stm.hpp>: producers
 * block while it is full, workers while it is empty, and close() lets the
 * workers drain it and stop.  Jobs are owned by std::unique_ptr; the
 * queue holds them in between (no raw new, no lock, no condition
 * variable, no lost wake-up).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Run by make check: 3 producers queue 3000 jobs, 3 workers run them;
 * exits 0 iff every job ran exactly once and the queue never held more
 * than its capacity.
 */
#include <stm.hpp>

#include <array>
#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace
{

struct job {
    int id;
    std::string name;
    job(int i, std::string n) : id(i), name(std::move(n)) {}
};

/* Capacity N.  The slots hold the jobs' pointers; a job belongs to the
 * queue from the commit of push() to the commit of pop(). */
template <class T, std::size_t N> class bounded_queue
{
  public:
    bounded_queue() = default;
    bounded_queue(const bounded_queue &) = delete;
    bounded_queue &operator=(const bounded_queue &) = delete;
    ~bounded_queue()
    {
        /* whatever was never taken */
        while (auto left = try_pop())
            ;
    }

    /* Blocks while full; false (the item is handed back untouched) once
     * closed. */
    bool push(std::unique_ptr<T> &item)
    {
        T *p = item.get();
        bool queued = stm::atomically([&](stm::tx &t) {
            if (t.read(closed_))
                return false;
            std::size_t n = t.read(count_);
            if (n == N)
                t.retry(); /* until a pop changes count_ (or close) */
            t.write(slots_[(t.read(head_) + n) % N], p);
            t.write(count_, n + 1);
            return true;
        });
        if (queued)
            (void)item.release(); /* committed: the queue owns it now */
        return queued;
    }

    /* Blocks while empty; an empty pointer once closed and drained. */
    std::unique_ptr<T> pop()
    {
        return std::unique_ptr<T>(stm::atomically([&](stm::tx &t) -> T * {
            std::size_t n = t.read(count_);
            if (n == 0) {
                if (t.read(closed_))
                    return nullptr;
                t.retry();
            }
            return take(t, n);
        }));
    }

    std::unique_ptr<T> try_pop()
    {
        return std::unique_ptr<T>(stm::atomically([&](stm::tx &t) -> T * {
            std::size_t n = t.read(count_);
            return n == 0 ? nullptr : take(t, n);
        }));
    }

    void close()
    {
        stm::atomically([&](stm::tx &t) { t.write(closed_, true); });
    }

    std::size_t size() const
    {
        return count_.peek();
    }

  private:
    T *take(stm::tx &t, std::size_t n)
    {
        std::size_t h = t.read(head_);
        T *p = t.read(slots_[h]);
        t.write(slots_[h], static_cast<T *>(nullptr));
        t.write(head_, (h + 1) % N);
        t.write(count_, n - 1);
        return p;
    }

    stm::tvar<std::size_t> head_{0}, count_{0};
    stm::tvar<bool> closed_{false};
    std::array<stm::tvar<T *>, N> slots_;
};

} // namespace

int main()
{
    constexpr int producers = 3, workers = 3, per_producer = 1000;
    constexpr std::size_t capacity = 16;
    bounded_queue<job, capacity> q;
    std::vector<std::atomic<int>> ran(producers * per_producer);
    std::atomic<std::size_t> max_seen{0};
    std::atomic<long> by_worker[workers] = {};

    std::vector<std::thread> ts;
    for (int p = 0; p < producers; p++)
        ts.emplace_back([&, p] {
            for (int i = 0; i < per_producer; i++) {
                int id = p * per_producer + i;
                auto j = std::make_unique<job>(id, "job-" + std::to_string(id));
                if (!q.push(j))
                    std::abort(); /* not closed yet */
                std::size_t n = q.size();
                std::size_t m = max_seen.load();
                while (n > m && !max_seen.compare_exchange_weak(m, n))
                    ;
            }
        });
    std::vector<std::thread> ws;
    for (int w = 0; w < workers; w++)
        ws.emplace_back([&, w] {
            while (auto j = q.pop()) { /* RAII: the job is freed here */
                if (j->name != "job-" + std::to_string(j->id))
                    std::abort();
                ran[j->id]++;
                by_worker[w]++;
            }
        });
    for (auto &t : ts)
        t.join();
    q.close();
    for (auto &t : ws)
        t.join();

    int bad = 0;
    for (auto &r : ran)
        bad += r.load() != 1;
    long total = 0;
    for (auto &b : by_worker)
        total += b.load();
    auto late = std::make_unique<job>(-1, "late");
    bool refused = !q.push(late) && late != nullptr; /* closed: handed back */
    std::printf("work_queue: %ld jobs run by %d workers (%ld, %ld, %ld); capacity %zu, "
                "most seen queued %zu; a push after close() %s\n",
                total, workers, by_worker[0].load(), by_worker[1].load(), by_worker[2].load(),
                capacity, max_seen.load(), refused ? "was refused" : "WAS TAKEN");
    bool ok = bad == 0 && total == producers * per_producer && max_seen.load() <= capacity &&
              refused && q.size() == 0;
    std::printf("work_queue: %s\n", ok ? "ok" : "FAILED");
    stm_shutdown();
    return ok ? 0 : 1;
}
