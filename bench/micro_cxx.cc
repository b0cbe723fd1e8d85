/*
 * micro_cxx.cc - the cost of include/stm.hpp: one read and one write
 * (b = a + 1) through stm::atomically and stm::tx, against the same
 * transaction through the C API (stm_atomically, stm_read, stm_write),
 * in the same run.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Usage: micro_cxx [-n OPS] [-r ROUNDS] [-c c|cxx|both]
 * The two cases are interleaved (C, C++, C, C++, ...) so that a noisy
 * machine hits both alike; per case the median and minimum ns per
 * transaction over the rounds, then their ratio.  For a number that does
 * not depend on the machine's load, count instructions instead:
 *   valgrind --tool=callgrind bench/micro_cxx -c c   -n 1000000 -r 1
 *   valgrind --tool=callgrind bench/micro_cxx -c cxx -n 1000000 -r 1
 */
#include <stm.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace
{

stm_tvar ca = STM_TVAR_INIT(0), cb = STM_TVAR_INIT(0);

int body_1r1w(stm_tx *tx, void *)
{
    stm_write(tx, &cb, stm_read(tx, &ca) + 1);
    return 0;
}

int64_t now_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

int64_t run_c(long ops)
{
    int64_t t0 = now_ns();
    for (long i = 0; i < ops; i++)
        if (stm_atomically(body_1r1w, nullptr) != 0)
            std::abort();
    return now_ns() - t0;
}

int64_t run_cxx(long ops, stm::tvar<long> &a, stm::tvar<long> &b)
{
    int64_t t0 = now_ns();
    for (long i = 0; i < ops; i++)
        stm::atomically([&](stm::tx &t) { t.write(b, t.read(a) + 1); });
    return now_ns() - t0;
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

} // namespace

int main(int argc, char **argv)
{
    long ops = 200000;
    int rounds = 15;
    const char *which = "both";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "-n"))
            ops = std::atol(argv[i + 1]);
        else if (!std::strcmp(argv[i], "-r"))
            rounds = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "-c"))
            which = argv[i + 1];
        else {
            std::fprintf(stderr, "usage: micro_cxx [-n OPS] [-r ROUNDS] [-c c|cxx|both]\n");
            return 2;
        }
    }
    bool do_c = std::strcmp(which, "cxx") != 0, do_cxx = std::strcmp(which, "c") != 0;
    stm::tvar<long> a{0}, b{0};
    run_c(1000); /* warm up: the thread's descriptor, the logs */
    run_cxx(1000, a, b);
    std::vector<double> tc, tx;
    for (int r = 0; r < rounds; r++) {
        if (do_c)
            tc.push_back(static_cast<double>(run_c(ops)) / ops);
        if (do_cxx)
            tx.push_back(static_cast<double>(run_cxx(ops, a, b)) / ops);
    }
    if (do_c)
        std::printf("micro_cxx c_1r1w ns=%.2f min=%.2f rounds=%d ops=%ld\n", median(tc),
                    *std::min_element(tc.begin(), tc.end()), rounds, ops);
    if (do_cxx)
        std::printf("micro_cxx cxx_1r1w ns=%.2f min=%.2f rounds=%d ops=%ld\n", median(tx),
                    *std::min_element(tx.begin(), tx.end()), rounds, ops);
    if (do_c && do_cxx)
        std::printf("micro_cxx ratio cxx/c median=%.3f min=%.3f (target <= 1.15)\n",
                    median(tx) / median(tc),
                    *std::min_element(tx.begin(), tx.end()) /
                        *std::min_element(tc.begin(), tc.end()));
    stm_tvar_destroy(&ca);
    stm_tvar_destroy(&cb);
    return 0;
}
