#!/bin/sh
# bench/compare.sh - bench/intset against TinySTM's own test/intset, side by
# side, in alternating runs (libstm, TinySTM, libstm, TinySTM, ...).
#
# Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
#
# Usage: bench/compare.sh [-d MS] [-k ROUNDS] [-b BENCHDIR] [-S STATSDIR]
#                         [-r ROWS] [-u UPDATES] [-n THREADS] TINYDIR
#   TINYDIR   a TinySTM test/intset directory holding intset-ll, intset-rb,
#             intset-sl and intset-hs, built outside this tree (how:
#             doc/benchmarks.md; nothing of TinySTM belongs in the repo)
#   -S DIR    the same programs built with -DTM_STATISTICS: only used for
#             TinySTM's abort rate at 2 threads (the default build counts
#             no aborts), one run per round after the timed pair (median
#             over the rounds, like libstm's), not timed
#   -d MS     length of one run (2000);  -k  rounds (3)
#   -b DIR    where bench/intset is (./bench)
#   -r ROWS   e.g. "ll:256:512 rb:4096:8192" (default: the table's six rows)
#   -u, -n    update percentages ("0 10 20"), thread counts ("1 2")
#
# Prints one markdown table row per cell: the median throughput of each
# (million tx/s), the ratio of the medians (libstm / TinySTM, higher is
# better), the lowest and highest ratio of the pairs run back to back (the
# noise), and at 2 threads the abort rates (aborts per 100 operations).
# Ends with the median and the lowest of the ratios.  Raw output lines go
# to compare.log in the current directory.
set -e
ms=2000
k=3
B=bench
S=
rows="ll:256:512 ll:1024:2048 rb:4096:8192 rb:65536:131072 sl:4096:8192 hs:4096:8192"
ups="0 10 20"
threads="1 2"
while getopts d:k:b:S:r:u:n: o; do
    case $o in
    d) ms=$OPTARG ;;
    k) k=$OPTARG ;;
    b) B=$OPTARG ;;
    S) S=$OPTARG ;;
    r) rows=$OPTARG ;;
    u) ups=$OPTARG ;;
    n) threads=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
T=${1:?usage: bench/compare.sh [options] TINYDIR}
log=compare.log
: >"$log"

# txs/s from a "#txs : N (X / s)" line
txs() { sed -n 's/^#txs *: [0-9]* (\([0-9.]*\) \/ s)$/\1/p'; }
# aborts per 100 txs from the "#txs" and "#aborts" lines
abort_pct() {
    awk '/^#txs/ { t = $3 } /^#aborts / { a = $3 } END { printf "%.3f", t ? 100 * a / t : 0 }'
}
med() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "| workload | -u | n | libstm Mtx/s | TinySTM Mtx/s | ratio | pairs min-max | aborts% libstm | aborts% TinySTM |"
echo "|---|---|---|---|---|---|---|---|---|"
all=
for row in $rows; do
    t=${row%%:*}
    rest=${row#*:}
    i=${rest%%:*}
    r=${rest#*:}
    for u in $ups; do
        for n in $threads; do
            L= TT= P= A= AT=
            round=1
            while [ "$round" -le "$k" ]; do
                out=$("$B/intset" -t "$t" -i "$i" -r "$r" -u "$u" -n "$n" -d "$ms" -s "$round") || {
                    printf '%s\n' "$out"
                    echo "bench/intset failed" >&2
                    exit 1
                }
                printf '%s\n' "$out" | tail -n 1 >>"$log"
                l=$(printf '%s\n' "$out" | txs)
                a=$(printf '%s\n' "$out" | abort_pct)
                tout=$("$T/intset-$t" -i "$i" -r "$r" -u "$u" -n "$n" -d "$ms" -s "$round")
                tt=$(printf '%s\n' "$tout" | txs)
                echo "tinystm $t i=$i r=$r u=$u n=$n txs/s=$tt" >>"$log"
                L="$L $l"
                TT="$TT $tt"
                A="$A $a"
                if [ "$n" = 2 ] && [ -n "$S" ]; then
                    # TinySTM's abort rate: its statistics build, same seed
                    AT="$AT $("$S/intset-$t" -i "$i" -r "$r" -u "$u" -n "$n" -d "$ms" -s "$round" | abort_pct)"
                fi
                P="$P $(awk -v a="$l" -v b="$tt" 'BEGIN { printf "%.4f", a / b }')"
                round=$((round + 1))
            done
            lm=$(echo "$L" | med)
            tm=$(echo "$TT" | med)
            ratio=$(awk -v a="$lm" -v b="$tm" 'BEGIN { printf "%.2f", a / b }')
            pmin=$(echo "$P" | tr ' ' '\n' | grep . | sort -g | head -n 1)
            pmax=$(echo "$P" | tr ' ' '\n' | grep . | sort -g | tail -n 1)
            al=- at=-
            if [ "$n" = 2 ]; then
                al=$(echo "$A" | med)
                if [ -n "$S" ]; then
                    at=$(echo "$AT" | med)
                fi
            fi
            all="$all $ratio"
            awk -v t="$t" -v i="$i" -v r="$r" -v u="$u" -v n="$n" -v lm="$lm" -v tm="$tm" \
                -v ratio="$ratio" -v pmin="$pmin" -v pmax="$pmax" -v al="$al" -v at="$at" \
                'BEGIN { printf "| %s %s/%s | %s | %s | %.3f | %.3f | %s | %.2f-%.2f | %s | %s |\n",
                         t, i, r, u, n, lm / 1e6, tm / 1e6, ratio, pmin, pmax, al, at }'
        done
    done
done
echo
echo "median ratio $(echo "$all" | med), lowest $(echo "$all" | tr ' ' '\n' | grep . | sort -g | head -n 1)"
