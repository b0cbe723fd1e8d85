#!/bin/sh
# tests/check-examples.sh - the watcher demos and the containers' examples
# do what they say they do.
# Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
#
# Run by `make check` (dist_check_SCRIPTS in tests/examples.mk) from the
# top build directory.  The programs are found as in check-tutorial.sh:
# in $STM_BUILDDIR, or else relative to this script, or the current
# directory.
#
# examples/reconnect (real time, so bounds are strict below, loose above):
#   1. exits 0 within 60 s, and prints its "done:" line;
#   2. attempts are numbered 1, 2, 3, ... and their times never go back;
#   3. back-off: after the k-th refusal in a row the next attempt comes at
#      least min(20 * 2^(k-1), 320) ms later (and less than 500 ms more
#      than that); the program's own "next in D ms" agrees; the cap is
#      reached (at least two waits of 320 ms);
#   4. it connects at the first attempt that begins after each "server
#      up" (only one that began before may be refused), the first of which
#      comes after at least 7 refusals; there are 2 connections;
#   5. after the connection is lost, the back-off starts afresh: the next
#      attempt comes within 500 ms and the waits are 20, 40, ... again.
# examples/eventloop:
#   6. exits 0; reports 0, 1, ..., 20 in that order, each once, each on
#      the main thread, and says OK.
# examples/queue, examples/map, examples/chan (the containers):
#   7. each exits 0 and prints its OK line (each checks its own outcome:
#      every job taken once and in per-producer order; word counts exact
#      and every concurrent audit consistent; every reader's events in
#      order with none missing).
#
# Exit 99 (hard error) if a program is missing.

name=examples
probe=reconnect
. "$(dirname "$0")/examples-common.sh"

# run NAME: run examples/NAME, output to $tmp/NAME.out (also shown,
# prefixed); 0 iff it exited 0.
run() {
    prog=$ex/$1
    if ! test -x "$prog"; then
        echo "check-examples: ERROR: $prog not built"
        exit 99
    fi
    # shellcheck disable=SC2086  # $bound is a command and its argument
    $bound "$prog" >"$tmp/$1.out" 2>&1
    rc=$?
    sed "s/^/  $1: /" "$tmp/$1.out"
    if test "$rc" -ne 0; then
        fail "$1 exited with status $rc"
        return 1
    fi
    return 0
}

# ---- reconnect ----------------------------------------------------------
run reconnect
grep -q '^done: ' "$tmp/reconnect.out" || fail "reconnect: no 'done:' line"
# The awk program prints one line per violation.
awk '
function bad(msg) { print "line " NR ": " msg; errors++ }
/^server up at / { up = 1; up_at = $4 + 0; ups++; next }
/^connection lost at / {
    lost_at = $4 + 0; lost = 1; losses++
    if (state != "up") bad("lost a connection it did not have")
    state = "down"; expect = 20; next
}
/^attempt / {
    n = $2 + 0; t = $4 + 0; outcome = $6
    if (n != prev_n + 1) bad("attempt " n " follows attempt " prev_n)
    if (n > 1 && t < prev_t) bad("time went back: " t " < " prev_t)
    if (lost) {         # the first attempt after a loss
        if (t - lost_at >= 500) bad("first attempt " t - lost_at " ms after the loss")
        lost = 0
    } else if (prev_refused) {
        gap = t - prev_t
        if (gap < expect) bad("waited " gap " ms after a refusal; the back-off says " expect)
        if (gap >= expect + 500) bad("waited " gap " ms; the back-off says " expect)
        if (expect == 320) capped++
        expect = expect * 2 > 320 ? 320 : expect * 2
    } else if (n > 1) {
        bad("attempt " n " neither after a refusal nor after a loss")
    }
    if (n == 1) expect = 20
    if (outcome == "refused;") {
        if ($9 + 0 != expect) bad("says next in " $9 " ms; the back-off says " expect)
        if (up && t > up_at) bad("refused although the server was up before it began")
        refusals++; run++
        prev_refused = 1
    } else if (outcome == "connected") {
        if (!up) bad("connected without a server up line before it")
        if (connections == 0 && run < 7) bad("first connection after only " run " refusals")
        connections++; run = 0; up = 0; state = "up"
        prev_refused = 0
    } else {
        bad("unexpected outcome " outcome)
    }
    prev_n = n; prev_t = t
}
END {
    if (connections != 2) bad("connected " connections + 0 " times, not 2")
    if (losses != 1) bad("lost " losses + 0 " connections, not 1")
    if (ups != 2) bad("server came up " ups + 0 " times, not 2")
    if (capped < 2) bad("waited the cap (320 ms) " capped + 0 " times, not at least 2")
    if (refusals < 10) bad("only " refusals + 0 " refusals")
}' "$tmp/reconnect.out" >"$tmp/reconnect.err"
if test -s "$tmp/reconnect.err"; then
    fail "reconnect: the schedule is wrong:"
    sed 's/^/    /' "$tmp/reconnect.err"
fi

# ---- eventloop ------------------------------------------------------------
run eventloop
grep -q ': OK, all in order on the main thread$' "$tmp/eventloop.out" ||
    fail "eventloop: no OK line"
awk '
/^temperature / {
    if ($2 + 0 != want) print "line " NR ": temperature " $2 ", expected " want
    if ($0 !~ /on the main thread\)$/) print "line " NR ": not on the main thread"
    want++
}
END { if (want != 21) print "reported " want + 0 " values, not 21 (0 to 20)" }
' "$tmp/eventloop.out" >"$tmp/eventloop.err"
if test -s "$tmp/eventloop.err"; then
    fail "eventloop: the reports are wrong:"
    sed 's/^/    /' "$tmp/eventloop.err"
fi

# ---- the containers' examples ---------------------------------------------
run queue
grep -q 'each taken once, in order: OK$' "$tmp/queue.out" || fail "queue: no OK line"

run map
grep -q 'counts exact and every audit consistent: OK$' "$tmp/map.out" || fail "map: no OK line"

run chan
grep -q 'in order, none missing: OK$' "$tmp/chan.out" || fail "chan: no OK line"

if test "$status" -eq 0; then
    echo "check-examples: PASS"
fi
exit "$status"
