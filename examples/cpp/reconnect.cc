/*
 * reconnect.cc - a TCP client that reconnects with exponential back-off,
 * in C++ on <stm.hpp>.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The client's state (link state, when the next attempt is due, the
 * current delay, what happened so far) lives in stm::tvars.  The client
 * thread waits for the next attempt with a transaction that retries until
 * t.elapsed(due) (the library wakes it at the deadline, or at once if the
 * state changes, e.g. on stop), connects outside any transaction (real
 * I/O does not belong in one), and records the outcome in another:
 * refused -> due = now + delay, delay doubled up to a cap; connected ->
 * UP, delay reset.  Sockets are RAII (unique_fd); nothing is new'd.
 *
 * The server is the main thread, on 127.0.0.1: down at first; it comes up
 * once at least 3 attempts were refused (it learns that by waiting in a
 * transaction on the client's TVars), takes the connection and drops it,
 * goes down; comes up again after 2 more refusals, and then stops the
 * client.  One line per attempt; exits 0 iff every wait lasted at least
 * its delay (strict: real time), the delays doubled up to the cap, and
 * the delay was reset after each connection.
 */
#include <stm.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace
{

/* A file descriptor that closes itself. */
class unique_fd
{
  public:
    unique_fd() = default;
    explicit unique_fd(int fd) : fd_(fd) {}
    unique_fd(unique_fd &&o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    unique_fd &operator=(unique_fd &&o) noexcept
    {
        reset(std::exchange(o.fd_, -1));
        return *this;
    }
    ~unique_fd()
    {
        reset();
    }
    void reset(int fd = -1)
    {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = fd;
    }
    int get() const
    {
        return fd_;
    }
    explicit operator bool() const
    {
        return fd_ >= 0;
    }

  private:
    int fd_ = -1;
};

sockaddr_in loopback(uint16_t port)
{
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

unique_fd listen_on(uint16_t port)
{
    unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = loopback(port);
    if (!s || ::bind(s.get(), reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
        ::listen(s.get(), 4) != 0)
        throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
    return s;
}

/* A free port: bound, read back, closed (so connecting is refused). */
uint16_t free_port()
{
    unique_fd s = listen_on(0);
    sockaddr_in a{};
    socklen_t n = sizeof a;
    ::getsockname(s.get(), reinterpret_cast<sockaddr *>(&a), &n);
    return ntohs(a.sin_port);
}

enum class link { down, up, stopped };

struct attempt {
    int64_t at;       /* when it was made (stm_now) */
    bool connected;   /* else refused */
    int64_t waited;   /* since the previous outcome */
    int64_t expected; /* the delay it was scheduled with */
};

class client
{
  public:
    static constexpr int64_t base = STM_MSEC(10), cap = STM_MSEC(40);

    explicit client(uint16_t port) : port_(port) {}

    /* The client thread's loop. */
    void run()
    {
        int64_t since = stm_now();
        for (;;) {
            /* wait until the next attempt is due (or stop) */
            int64_t expected = 0;
            bool go = stm::atomically([&](stm::tx &t) {
                if (t.read(stop_))
                    return false;
                if (!t.elapsed(t.read(due_)))
                    t.retry(); /* woken at due_, or when stop_ is set */
                expected = t.read(scheduled_);
                return true;
            });
            if (!go)
                break;
            int64_t at = stm_now();
            unique_fd conn = connect_once();
            bool ok = static_cast<bool>(conn);
            log_.push_back({at, ok, at - since, expected});
            std::printf("attempt %zu at %3lld ms: %s (waited %lld ms, delay %lld ms)\n",
                        log_.size(), static_cast<long long>((at - start_) / STM_MSEC(1)),
                        ok ? "connected" : "refused",
                        static_cast<long long>((at - since) / STM_MSEC(1)),
                        static_cast<long long>(expected / STM_MSEC(1)));
            if (!ok) {
                stm::atomically([&](stm::tx &t) {
                    int64_t d = t.read(delay_);
                    t.write(due_, at + d);
                    t.write(scheduled_, d);
                    t.write(delay_, std::min(2 * d, cap));
                    t.write(refused_, t.read(refused_) + 1);
                });
                since = at;
                continue;
            }
            stm::atomically([&](stm::tx &t) {
                t.write(state_, link::up);
                t.write(delay_, base); /* reset after a connection */
                t.write(connects_, t.read(connects_) + 1);
            });
            /* use the connection until the server drops it */
            char buf[64];
            while (::read(conn.get(), buf, sizeof buf) > 0)
                ;
            int64_t now = stm_now();
            stm::atomically([&](stm::tx &t) {
                t.write(state_, link::down);
                t.write(due_, now + base);
                t.write(scheduled_, base);
                t.write(delay_, std::min(2 * base, cap));
            });
            since = now;
        }
        stm::atomically([&](stm::tx &t) { t.write(state_, link::stopped); });
    }

    /* The server's view: wait (in a transaction) until `n` refusals. */
    void wait_refused(int n)
    {
        stm::atomically([&](stm::tx &t) {
            if (t.read(refused_) < n)
                t.retry();
        });
    }
    int refused() const
    {
        return refused_.peek();
    }
    void stop()
    {
        stm::atomically([&](stm::tx &t) { t.write(stop_, true); });
    }
    const std::vector<attempt> &log() const
    {
        return log_;
    }

  private:
    unique_fd connect_once()
    {
        unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a = loopback(port_);
        if (!s || ::connect(s.get(), reinterpret_cast<sockaddr *>(&a), sizeof a) != 0)
            return unique_fd();
        return s;
    }

    uint16_t port_;
    int64_t start_ = stm_now();
    stm::tvar<link> state_{link::down};
    stm::tvar<bool> stop_{false};
    stm::tvar<int64_t> due_{0}, scheduled_{0}, delay_{base};
    stm::tvar<int> refused_{0}, connects_{0};
    std::vector<attempt> log_; /* the client thread's own */
};

/* The server comes up, takes one connection, drops it and goes down. */
void serve_once(uint16_t port)
{
    unique_fd l = listen_on(port);
    unique_fd c(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
    l.reset(); /* down again before the client sees the drop */
}

} // namespace

int main()
{
    uint16_t port = free_port();
    client cl(port);
    std::thread th([&] { cl.run(); });

    cl.wait_refused(3);
    serve_once(port); /* the next attempt connects */
    int r1 = cl.refused();
    cl.wait_refused(r1 + 2);
    unique_fd l = listen_on(port);
    unique_fd c(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
    cl.stop();
    c.reset(); /* the client sees the drop, then the stop */
    th.join();

    /* check the schedule against the rule: a refusal schedules the
     * current delay and doubles it up to the cap; a connection resets it
     * (the attempt after a drop comes after `base`) */
    int bad = 0, connects = 0;
    int64_t want = 0, delay = client::base;
    for (std::size_t i = 0; i < cl.log().size(); i++) {
        const attempt &a = cl.log()[i];
        if (a.expected != want) {
            std::printf("FAIL: attempt %zu was scheduled after %lld ms, not %lld\n", i + 1,
                        static_cast<long long>(a.expected / STM_MSEC(1)),
                        static_cast<long long>(want / STM_MSEC(1)));
            bad++;
        }
        if (a.waited < a.expected) { /* strict: never early */
            std::printf("FAIL: attempt %zu came %lld ns early\n", i + 1,
                        static_cast<long long>(a.expected - a.waited));
            bad++;
        }
        if (a.waited > a.expected + STM_SEC(5)) { /* loose */
            std::printf("FAIL: attempt %zu came far too late\n", i + 1);
            bad++;
        }
        if (a.connected) {
            connects++;
            want = client::base;
            delay = std::min(2 * client::base, client::cap);
        } else {
            want = delay;
            delay = std::min(2 * delay, client::cap);
        }
    }
    bool ok = bad == 0 && connects == 2 && cl.log().size() >= 7;
    std::printf("reconnect: %zu attempts, %d connections: %s\n", cl.log().size(), connects,
                ok ? "ok" : "FAILED");
    stm_shutdown();
    return ok ? 0 : 1;
}
