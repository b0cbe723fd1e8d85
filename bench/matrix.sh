#!/bin/sh
# bench/matrix.sh - the short standard benchmark matrix that `make bench`
# runs (about a minute on a quiet 2-CPU machine).
#
# Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
#
# Usage: bench/matrix.sh [DIR]   (DIR: where the bench programs are built,
# default ./bench).  Exits non-zero as soon as a program fails (a failed
# check in intset or bank is a failure).  Quick settings throughout: for
# figures worth quoting use the programs' own defaults, or bench/compare.sh
# for the side-by-side table against TinySTM (doc/benchmarks.md).
set -e
B=${1:-bench}

run() {
    echo "=== $*"
    "$@"
}

run "$B/micro" -r 5 -n 1000000
run "$B/wake" -q
run "$B/watch" -q
run "$B/bank"
run "$B/queue"
run "$B/map"

# intset: each row under libstm and under one global mutex (same code, same
# nodes); the result line gets vs_mutex= (stm throughput / mutex throughput).
echo "=== $B/intset (800 ms per run)"
for row in "ll 256 512" "ll 1024 2048" "rb 4096 8192" "rb 65536 131072" "sl 4096 8192" \
    "hs 4096 8192"; do
    set -- $row
    for n in 1 2; do
        stm=$("$B/intset" -t "$1" -i "$2" -r "$3" -u 20 -n "$n" -d 800 -s 1) || {
            printf '%s\n' "$stm"
            exit 1
        }
        mx=$("$B/intset" -m mutex -t "$1" -i "$2" -r "$3" -u 20 -n "$n" -d 800 -s 1) || {
            printf '%s\n' "$mx"
            exit 1
        }
        s=$(printf '%s\n' "$stm" | tail -n 1)
        m=$(printf '%s\n' "$mx" | tail -n 1 | sed 's/.*txs\/s=\([0-9]*\).*/\1/')
        printf '%s\n' "$s" | awk -v m="$m" '{
            split($0, f, "txs/s="); split(f[2], g, " ");
            printf "%s vs_mutex=%.2f\n", $0, g[1] / m }'
    done
done
