/*
 * stm.hpp - libstm for C++17: transactions as lambdas, typed TVars, and a
 * restart that unwinds (every destructor in a restarted body runs).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Header-only, on top of the C API (<stm.h>; link with -lstm).
 *
 *     stm::tvar<long> balance{100};
 *     long left = stm::atomically([&](stm::tx &t) {
 *         std::string note = "withdraw";        // destroyed on a restart too
 *         long b = t.read(balance);
 *         if (b < 10)
 *             t.retry();                        // wait until it changes
 *         t.write(balance, b - 10);
 *         return b - 10;
 *     });
 *
 * RULES
 *
 * - A body (the lambda given to stm::atomically) may run several times;
 *   only its last run commits.  Like a C body it must have no side effects
 *   but through TVars and the hooks (after_commit, on_abort, defer).
 * - A conflict, t.retry() or t.abort() ends the attempt by throwing an
 *   internal exception from the call (stm::tx's members), which unwinds
 *   the body, running the destructors of every object in it, and is caught
 *   by stm::atomically, which then does what the C library would (run the
 *   body again, wait, return).  Do not swallow it: a catch (...) in a body
 *   must rethrow.  (One that does not is harmless but wasteful: every later
 *   call throws again, and the attempt ends when the body returns.)
 *   Destructors that run while a body unwinds must not use the
 *   transaction.
 * - Any other exception thrown by the body discards the attempt (nothing
 *   it wrote commits; its on_abort hooks run) and propagates out of
 *   stm::atomically.
 * - stm::atomically inside a body joins the enclosing transaction (flat
 *   nesting), as in C.
 * - A stm::tx is valid only inside the body it was given to.
 *
 * Errors: t.abort(code) makes stm::atomically throw stm::aborted (code());
 * a lack of memory throws std::bad_alloc; the library's other errors
 * (-EDEADLK: a retry that nothing can wake, a Waiter that cannot be made)
 * throw stm::error.
 *
 * Cost: a read and a write cost what stm_read() and stm_write() cost
 * (stm_read_x(), stm_write_x()); stm::atomically adds a few stores and a
 * thread-local load to stm_atomically() (bench/micro_cxx compares them).
 */
#ifndef STM_HPP
#define STM_HPP

#include <stm.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace stm
{

/** stm::atomically's error for a library error (a negative errno value). */
class error : public std::runtime_error
{
  public:
    explicit error(int code)
        : std::runtime_error(std::string("libstm: ") + stm_strerror(code)), code_(code)
    {
    }
    int code() const noexcept
    {
        return code_;
    }

  private:
    int code_;
};

/** stm::atomically's error when the body called t.abort(code). */
class aborted : public std::runtime_error
{
  public:
    explicit aborted(int code)
        : std::runtime_error("libstm: transaction aborted with code " + std::to_string(code)),
          code_(code)
    {
    }
    int code() const noexcept
    {
        return code_;
    }

  private:
    int code_;
};

class tx;
template <class T> class tvar;

namespace detail
{

/* Thrown when the attempt is over; caught by stm::atomically's trampoline
 * (or a branch's).  Not derived from std::exception, so that handlers
 * for that do not take it. */
struct restart {
};

[[noreturn]] __attribute__((noinline, cold)) inline void unwind()
{
    throw restart{};
}

/* The transaction this thread runs under stm::atomically, for nesting. */
inline thread_local stm_tx *current = nullptr;

/* Whether the body called t.abort() (stm::atomically tells aborted from
 * the library's errors by it). */
inline thread_local bool body_aborted = false;

/* Abort code for "the body threw": stm::atomically rethrows the exception
 * it kept (the code only keeps stm_abort's contract). */
constexpr int thrown = -ECANCELED;

template <class T> constexpr bool word_sized()
{
    return std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(intptr_t);
}

template <class T> inline intptr_t to_word(const T &x) noexcept
{
    if constexpr (std::is_integral_v<T> || std::is_enum_v<T>) {
        return static_cast<intptr_t>(x);
    } else if constexpr (std::is_pointer_v<T>) {
        return reinterpret_cast<intptr_t>(x);
    } else {
        intptr_t w = 0;
        std::memcpy(&w, &x, sizeof x);
        return w;
    }
}

template <class T> inline T from_word(intptr_t w) noexcept
{
    if constexpr (std::is_integral_v<T> || std::is_enum_v<T>) {
        return static_cast<T>(w);
    } else if constexpr (std::is_pointer_v<T>) {
        return reinterpret_cast<T>(w);
    } else {
        T x;
        std::memcpy(&x, &w, sizeof x);
        return x;
    }
}

/* Run `fn(stm_tx *)`, which calls C functions only, under stm_protect(). */
template <class Fn> inline int protect(stm_tx *t, Fn &fn) noexcept
{
    return stm_protect(
        t, [](stm_tx *c, void *a) { (*static_cast<Fn *>(a))(c); }, &fn);
}

/* A callable on the heap for a hook: run (and free), or only free. */
struct hook_base {
    virtual ~hook_base() = default;
    virtual void run() = 0;
};
template <class F> struct hook final : hook_base {
    F f;
    explicit hook(F &&x) : f(std::move(x)) {}
    void run() override
    {
        f();
    }
};
inline void hook_run(void *p) noexcept
{
    std::unique_ptr<hook_base> h(static_cast<hook_base *>(p));
    /* hooks run outside the transaction: a stm::atomically in one is a
     * new transaction (after_commit) or starts none (on_abort hooks run
     * once the attempt is over, but while the C call is still on the
     * stack) */
    stm_tx *saved = current;
    current = nullptr;
    try {
        h->run();
    } catch (...) {
        current = saved;
        std::terminate(); /* a hook has nowhere to throw to */
    }
    current = saved;
}
inline void hook_free(void *p) noexcept
{
    delete static_cast<hook_base *>(p);
}

} // namespace detail

/** The handle a body gets: reads, writes, retry, abort, time, hooks. */
class tx
{
  public:
    explicit tx(stm_tx *t) noexcept : t_(t) {}
    tx(const tx &) = delete;
    tx &operator=(const tx &) = delete;

    /** The value of `v` in this transaction. */
    template <class T> T read(const tvar<T> &v)
    {
        intptr_t w;
        int r = stm_read_x(t_, const_cast<stm_tvar *>(v.handle()), &w);
        if (__builtin_expect(r != 0, 0))
            over(r);
        return detail::from_word<T>(w);
    }

    /** Write `x` to `v` (visible to others once the transaction commits). */
    template <class T, class U> void write(tvar<T> &v, U &&x)
    {
        int r = stm_write_x(t_, v.handle(), detail::to_word<T>(static_cast<T>(std::forward<U>(x))));
        if (__builtin_expect(r != 0, 0))
            over(r);
    }

    /** Abandon the attempt; run the body again once a TVar it read changes
     * (or the alternative of the enclosing stm::or_else). */
    [[noreturn]] void retry()
    {
        over(stm_retry_x(t_));
    }

    /** Discard the transaction: stm::atomically throws stm::aborted(code). */
    [[noreturn]] void abort(int code)
    {
        detail::body_aborted = true;
        over(stm_abort_x(t_, code));
    }

    /** The attempt's now (stm_tx_now) and whether `deadline` has come
     * (stm_elapsed: if not, a retry wakes by then at the latest). */
    int64_t now()
    {
        int64_t n = 0;
        call([&](stm_tx *c) { n = stm_tx_now(c); });
        return n;
    }
    bool elapsed(int64_t deadline)
    {
        bool e = false;
        call([&](stm_tx *c) { e = stm_elapsed(c, deadline); });
        return e;
    }

    /** Run `f()` after the transaction commits (not if it does not). */
    template <class F> void after_commit(F &&f)
    {
        hook2(std::forward<F>(f), stm_after_commit, true);
    }
    /** Run `f()` if this attempt is discarded (restart, retry, abort). */
    template <class F> void on_abort(F &&f)
    {
        hook2(std::forward<F>(f), stm_on_abort, false);
    }
    /** Run `f()` on the dispatcher (stm_dispatch_fd) after the commit. */
    template <class F> void defer(F &&f)
    {
        hook2(std::forward<F>(f), stm_defer, true);
    }

    /** Call C functions on the handle (`fn(stm_tx *)`, which must not
     * throw) so that a restart inside them unwinds. */
    template <class Fn> void call(Fn &&fn)
    {
        int r = detail::protect(t_, fn);
        if (__builtin_expect(r != 0, 0))
            over(r);
    }

    /** The C handle, for the C API (prefer call()). */
    stm_tx *c_handle() const noexcept
    {
        return t_;
    }
    /** Non-zero (an STM_PENDING_* reason) once a call through this handle
     * found the attempt over. */
    int pending() const noexcept
    {
        return pend_;
    }

    /** The attempt is over for `reason` (from a C call's report): unwind. */
    [[noreturn]] void over(int reason)
    {
        pend_ = reason;
        detail::unwind();
    }

  private:
    /* register the hook `reg` for a heap copy of f, and its release for
     * the other outcome (on_abort when run_on_commit, else after_commit) */
    template <class F>
    void hook2(F &&f, void (*reg)(stm_tx *, void (*)(void *), void *), bool run_on_commit)
    {
        using H = detail::hook<std::decay_t<F>>;
        auto h = std::make_unique<H>(std::decay_t<F>(std::forward<F>(f)));
        detail::hook_base *p = h.get();
        bool owned = false;
        auto both = [&](stm_tx *c) {
            /* an on_abort hook first: once it is registered the library
             * owns p (a discarded attempt runs it; a failure to register
             * the second one discards the attempt) */
            if (run_on_commit) {
                stm_on_abort(c, detail::hook_free, p);
                owned = true;
                reg(c, detail::hook_run, p);
            } else {
                stm_on_abort(c, detail::hook_run, p);
                owned = true;
                stm_after_commit(c, detail::hook_free, p);
            }
        };
        int rc = detail::protect(t_, both);
        if (owned)
            (void)h.release();
        if (rc != 0)
            over(rc);
    }

    stm_tx *t_;
    int pend_ = 0;
};

/**
 * A TVar holding a T: trivially copyable and at most a word (int, long,
 * pointers, enums, small structs).  For bigger values hold a pointer to
 * an immutable block (a std::shared_ptr's target, or stm_alloc'ed memory
 * replaced and stm_free'd in transactions).  Embedded: it holds the
 * stm_tvar itself (16 bytes), so it may live in any object.  Not
 * copyable or movable (transactions refer to it by address).
 */
template <class T> class tvar
{
    static_assert(detail::word_sized<T>(),
                  "stm::tvar<T>: T must be trivially copyable and fit in an intptr_t");

  public:
    tvar() noexcept : tvar(T{}) {}
    explicit tvar(T initial) noexcept
    {
        stm_tvar_init(&v_, detail::to_word(initial));
    }
    ~tvar()
    {
        stm_tvar_destroy(&v_);
    }
    tvar(const tvar &) = delete;
    tvar &operator=(const tvar &) = delete;

    /** The committed value, outside a transaction (stm_tvar_peek). */
    T peek() const noexcept
    {
        return detail::from_word<T>(stm_tvar_peek(const_cast<stm_tvar *>(&v_)));
    }
    /** Set the value outside a transaction (stm_tvar_poke): 0 or -errno. */
    int poke(T x) noexcept
    {
        return stm_tvar_poke(&v_, detail::to_word(x));
    }

    stm_tvar *handle() noexcept
    {
        return &v_;
    }
    const stm_tvar *handle() const noexcept
    {
        return &v_;
    }

  private:
    stm_tvar v_;
};

/* ---- running bodies ------------------------------------------------------ */

/* What stm::atomically hands to stm_atomically: the body and its result. */
template <class R> struct detail_result {
    std::optional<R> result;
    template <class F> void set(F &f, tx &t)
    {
        result.emplace(f(t));
    }
};
template <> struct detail_result<void> {
    template <class F> void set(F &f, tx &t)
    {
        f(t);
    }
};

template <class F, class R> struct detail_body : detail_result<R> {
    F &f;
    std::exception_ptr thrown;
    explicit detail_body(F &fn) : f(fn) {}

    /* One attempt; returns with no C++ frame left above it. */
    static int run(stm_tx *c, void *arg) noexcept
    {
        detail::current = c;
        if (static_cast<detail_body *>(arg)->attempt(c) != 0)
            stm_resume(c); /* the body has unwound: do the jump */
        return 0;
    }

    int attempt(stm_tx *c) noexcept
    {
        /* (`thrown` and body_aborted are set only on the way to the end
         * of the transaction, so they need no reset per attempt; `result`
         * is overwritten by the attempt that returns) */
        tx t(c);
        try {
            this->set(f, t);
            return t.pending(); /* a swallowed restart ends here */
        } catch (detail::restart &) {
            return stm_pending(c);
        } catch (...) {
            if (int r = stm_pending(c))
                return r; /* the attempt was over anyway */
            thrown = std::current_exception();
        }
        /* the body threw: discard the attempt */
        return stm_abort_x(c, detail::thrown);
    }
};

/* Turn stm_atomically's result into a value or an exception. */
template <class B> [[noreturn]] inline void finish(int rc, B &b)
{
    bool by_body = std::exchange(detail::body_aborted, false);
    if (b.thrown)
        std::rethrow_exception(b.thrown);
    if (by_body)
        throw aborted(rc);
    if (rc == -ENOMEM)
        throw std::bad_alloc();
    throw error(rc);
}

/**
 * Run `f(stm::tx &)` as one atomic transaction and return what it
 * returned (from the attempt that committed).  See RULES above.  Inside a
 * body: joins the enclosing transaction.
 */
template <class F> auto atomically(F &&f) -> std::invoke_result_t<F &, tx &>
{
    using R = std::invoke_result_t<F &, tx &>;
    if (detail::current != nullptr) {
        tx t(detail::current);
        return f(t);
    }
    detail_body<F, R> b(f);
    int rc = stm_atomically(&detail_body<F, R>::run, &b);
    detail::current = nullptr;
    if (__builtin_expect(rc != 0 || b.thrown != nullptr, 0))
        finish(rc, b);
    if constexpr (!std::is_void_v<R>)
        return std::move(*b.result);
}

/* stm_or_else's two branch functions around C++ callables. */
template <class F1, class F2, class R> struct detail_or_else {
    F1 &f1;
    F2 &f2;
    std::optional<std::conditional_t<std::is_void_v<R>, char, R>> result;
    std::exception_ptr thrown;

    template <int N> static int branch(stm_tx *c, void *arg) noexcept
    {
        auto *o = static_cast<detail_or_else *>(arg);
        tx t(c);
        try {
            if constexpr (std::is_void_v<R>) {
                if constexpr (N == 1)
                    o->f1(t);
                else
                    o->f2(t);
                o->result.emplace('\0');
            } else {
                if constexpr (N == 1)
                    o->result.emplace(o->f1(t));
                else
                    o->result.emplace(o->f2(t));
            }
        } catch (detail::restart &) {
            /* return: stm_or_else takes a retry aimed at it, and passes
             * any other jump outward */
        } catch (...) {
            if (stm_pending(c) == 0)
                o->thrown = std::current_exception();
        }
        return 0;
    }
};

/**
 * stm::or_else(t, first, second): run `first(t)`; if it retries, undo it
 * and run `second(t)` instead (stm_or_else).  Returns the value of the
 * branch that returned.  An exception other than a retry goes out of
 * or_else as from any function (the branch is not undone on its own; the
 * transaction is, if the exception leaves the body).
 */
template <class F1, class F2>
auto or_else(tx &t, F1 &&first, F2 &&second) -> std::invoke_result_t<F1 &, tx &>
{
    using R = std::invoke_result_t<F1 &, tx &>;
    static_assert(std::is_same_v<R, std::invoke_result_t<F2 &, tx &>>,
                  "stm::or_else: both branches must return the same type");
    detail_or_else<F1, F2, R> o{first, second, std::nullopt, nullptr};
    stm_tx *c = t.c_handle();
    struct args {
        detail_or_else<F1, F2, R> *o;
    };
    auto call = [&](stm_tx *h) {
        (void)stm_or_else(h, &detail_or_else<F1, F2, R>::template branch<1>,
                          &detail_or_else<F1, F2, R>::template branch<2>, &o);
    };
    int r = detail::protect(c, call); /* a jump that passed the branches */
    if (__builtin_expect(r != 0, 0))
        t.over(r);
    if (o.thrown)
        std::rethrow_exception(o.thrown);
    if constexpr (!std::is_void_v<R>)
        return std::move(*o.result);
}

/** stm::elapsed(t, deadline): t.elapsed(deadline). */
inline bool elapsed(tx &t, int64_t deadline)
{
    return t.elapsed(deadline);
}

/**
 * A watcher whose function and callback are C++ callables: `fn(stm::tx &)`
 * returns an intptr_t (read TVars, time); `cb(stm::tx &, intptr_t)` runs
 * with it in the same transaction (stm_watch_new).  Made active by
 * stm::watcher::start in a transaction of its own; stopped (and its
 * callables freed) by stop() or the destructor.  An exception thrown by
 * fn or cb vetoes that run like stm_abort(tx, -ECANCELED).  Not copyable.
 */
class watcher
{
  public:
    watcher() = default;
    watcher(const watcher &) = delete;
    watcher &operator=(const watcher &) = delete;
    watcher(watcher &&o) noexcept : w_(std::exchange(o.w_, nullptr)), impl_(std::move(o.impl_)) {}
    watcher &operator=(watcher &&o) noexcept
    {
        if (this != &o) {
            stop();
            w_ = std::exchange(o.w_, nullptr);
            impl_ = std::move(o.impl_);
        }
        return *this;
    }
    ~watcher()
    {
        stop();
    }

    /** Start watching: the first run happens now.  Throws std::bad_alloc,
     * or stm::error (-ELOOP, or the veto's code) if it fails. */
    template <class Fn, class Cb> static watcher start(Fn &&fn, Cb &&cb, unsigned flags = 0)
    {
        using I = impl<std::decay_t<Fn>, std::decay_t<Cb>>;
        watcher w;
        auto p = std::make_unique<I>(std::forward<Fn>(fn), std::forward<Cb>(cb));
        stm_watch *h = stm_atomically_watch(&I::run_fn, &I::run_cb, p.get(), flags);
        if (h == nullptr) {
            int e = errno;
            if (e == ENOMEM)
                throw std::bad_alloc();
            throw error(-e);
        }
        w.w_ = h;
        w.impl_ = std::move(p);
        return w;
    }

    /** Stop it (in a transaction of its own); a no-op if not active. */
    void stop() noexcept
    {
        if (w_ == nullptr)
            return;
        stm_watch *h = std::exchange(w_, nullptr);
        stm_tx *saved = detail::current;
        detail::current = nullptr;
        stm_atomically(
            [](stm_tx *c, void *a) -> int {
                stm_unwatch(c, static_cast<stm_watch *>(a));
                return 0;
            },
            h);
        detail::current = saved;
        impl_.reset(); /* no run of it is going on once the stop returned */
    }

    explicit operator bool() const noexcept
    {
        return w_ != nullptr;
    }

  private:
    struct impl_base {
        virtual ~impl_base() = default;
    };
    template <class Fn, class Cb> struct impl final : impl_base {
        Fn fn;
        Cb cb;
        template <class A, class B>
        impl(A &&a, B &&b) : fn(std::forward<A>(a)), cb(std::forward<B>(b))
        {
        }

        /* A watcher's fn and cb are called by the library inside a
         * commit, with only C frames up to the jump's target: once the
         * C++ frames are gone, stm_resume does the jump. */
        static intptr_t run_fn(stm_tx *c, void *arg) noexcept
        {
            intptr_t v = 0;
            if (call_fn(c, arg, &v) != 0)
                stm_resume(c);
            return v;
        }
        static int call_fn(stm_tx *c, void *arg, intptr_t *v) noexcept
        {
            tx t(c);
            try {
                *v = static_cast<impl *>(arg)->fn(t);
                return t.pending();
            } catch (detail::restart &) {
                return stm_pending(c);
            } catch (...) {
                if (int r = stm_pending(c))
                    return r;
            }
            return stm_abort_x(c, -ECANCELED);
        }
        static void run_cb(stm_tx *c, intptr_t v, void *arg) noexcept
        {
            if (call_cb(c, v, arg) != 0)
                stm_resume(c);
        }
        static int call_cb(stm_tx *c, intptr_t v, void *arg) noexcept
        {
            tx t(c);
            try {
                static_cast<impl *>(arg)->cb(t, v);
                return t.pending();
            } catch (detail::restart &) {
                return stm_pending(c);
            } catch (...) {
                if (int r = stm_pending(c))
                    return r;
            }
            return stm_abort_x(c, -ECANCELED);
        }
    };

    stm_watch *w_ = nullptr;
    std::unique_ptr<impl_base> impl_;
};

} // namespace stm

#endif /* STM_HPP */
