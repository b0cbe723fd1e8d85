#!/bin/sh
# tests/check-tutorial.sh - the tutorial's programs do what doc/tutorial.md
# says they do.
# Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
#
# Run by `make check` (dist_check_SCRIPTS in tests/tutorial.mk) from the top
# build directory.  The programs are check_PROGRAMS (examples/local.mk), so
# they have been built when this runs; they are found in $STM_BUILDDIR (set
# by tests/local.mk), or else relative to this script's directory's parent
# and then the current directory, which also works in VPATH builds and
# under `make distcheck`.  For each program:
#
#   1. it exits 0 (each checks its own outcome) within 60 s;
#   2. its output has the line the tutorial points at;
#   3. tut5_reconnect --virtual, run twice, prints the same thing both times
#      (the schedule on the virtual clock is exact);
#   4. tut6_watch --virtual prints exactly the schedule the tutorial shows.
#
# Exit 99 (hard error) if a program is missing.

name=tutorial
probe=tut1_counter
. "$(dirname "$0")/examples-common.sh"

# run NAME OUTFILE [ARGS...]: run examples/NAME, output to OUTFILE; 0 iff
# it exited 0.
run() {
    prog=$ex/$1
    out=$2
    shift 2
    if ! test -x "$prog"; then
        echo "check-tutorial: ERROR: $prog not built"
        exit 99
    fi
    # shellcheck disable=SC2086  # $bound is a command and its argument
    $bound "$prog" "$@" >"$out" 2>&1
    rc=$?
    sed "s/^/  $(basename "$prog")${*:+ $*}: /" "$out"
    if test "$rc" -ne 0; then
        fail "$prog $* exited with status $rc"
        return 1
    fi
    return 0
}

# expect NAME PATTERN...: run NAME (no arguments), then grep its output
# for each PATTERN (basic regular expressions).
expect() {
    name=$1
    shift
    run "$name" "$tmp/$name.out" || return
    for pattern in "$@"; do
        grep -q "$pattern" "$tmp/$name.out" ||
            fail "$name: no line matching '$pattern' in its output"
    done
}

expect tut1_counter  'counter = 100000 (expected 100000): OK'
expect tut2_transfer 'refused, insufficient funds; balances 100 and 100' \
                     'audits, 0 wrong; total 500: OK'
expect tut3_queue    'expected 50005000): OK'
expect tut4_timeout  'OK: each wait ended at whichever came first'
expect tut5_reconnect 'attempt 7 (woken): connected$' '^connected after 7 attempts$'
expect tut6_watch     'attempt 7 (woken): connected$' '^connected after 7 attempts$'

# The virtual clock: exact and repeatable.
if run tut5_reconnect "$tmp/v1" --virtual &&
   run tut5_reconnect "$tmp/v2" --virtual; then
    grep -q '^\[+ 460.0 ms\] attempt 7 (woken): connected$' "$tmp/v1" ||
        fail "tut5_reconnect --virtual: attempt 7 not at exactly 460.0 ms"
    if ! cmp -s "$tmp/v1" "$tmp/v2"; then
        fail "tut5_reconnect --virtual printed different things on two runs:"
        diff "$tmp/v1" "$tmp/v2"
    fi
fi

# The watcher on the virtual clock: the schedule of doc/tutorial.md, step
# 6, line for line.
cat >"$tmp/tut6.expected" <<'EOF'
[+   0.0 ms] attempt 1: Connection refused; next in 20 ms
[+  20.0 ms] attempt 2: Connection refused; next in 40 ms
[+  60.0 ms] attempt 3: Connection refused; next in 80 ms
[+ 140.0 ms] attempt 4: Connection refused; next in 160 ms (cap)
[+ 300.0 ms] attempt 5: Connection refused; next in 160 ms (cap)
[+ 460.0 ms] attempt 6: Connection refused; next in 160 ms (cap)
server: listening (simulated)
[+ 460.0 ms] attempt 7 (woken): connected
connected after 7 attempts
EOF
if run tut6_watch "$tmp/w1" --virtual; then
    if ! cmp -s "$tmp/tut6.expected" "$tmp/w1"; then
        fail "tut6_watch --virtual: not the schedule of the tutorial:"
        diff "$tmp/tut6.expected" "$tmp/w1"
    fi
fi

if test "$status" -eq 0; then
    echo "check-tutorial: PASS"
fi
exit "$status"
