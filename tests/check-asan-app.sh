#!/bin/sh
# tests/check-asan-app.sh - an application built with -fsanitize=address
# against the library built without it: conflict restarts must not leave
# false stack-buffer-overflow reports (issue 11, defect 7).
# Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
#
# Run by `make check` from the top build directory.  Builds
# tests/asan-app.c with $STM_CC -fsanitize=address and links it with
# lib/.libs/libstm.a of this (unsanitized) build, then runs it: thousands
# of forced conflict restarts, each a jump out of frames with stack
# arrays, then the same stack reused by a large array.  Without the
# library telling AddressSanitizer about the jump, the run reports a
# stack-buffer-overflow (or -underflow) and fails.
#
# Exit 77 (skipped) if this build is itself sanitized (the library's jump
# is then the intercepted siglongjmp, and the test would prove nothing),
# if there is no static library, or if $STM_CC cannot build and run a
# program with -fsanitize=address here.

set -u

srcdir=${srcdir:-.}
builddir=${STM_BUILDDIR:-.}
CC=${STM_CC:-cc}
a=$builddir/lib/.libs/libstm.a

case " ${STM_CFLAGS:-} ${STM_LDFLAGS:-} " in
*-fsanitize=*)
    echo "check-asan-app: SKIP: this build is sanitized; the test needs an unsanitized libstm"
    exit 77
    ;;
esac
if ! test -f "$a"; then
    echo "check-asan-app: SKIP: no static library $a (--disable-static?)"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stm-asan-app.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 99' HUP INT TERM

ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export ASAN_OPTIONS
SAN="-fsanitize=address -fno-omit-frame-pointer -g -O1"

printf 'int main(void) { char b[8]; b[0] = 1; return b[0] - 1; }\n' >"$tmp/probe.c"
# shellcheck disable=SC2086 # word splitting of the flags is intended
if ! $CC $SAN "$tmp/probe.c" -o "$tmp/probe" >"$tmp/probe.log" 2>&1 || ! "$tmp/probe"; then
    echo "check-asan-app: SKIP: $CC cannot build and run a program with -fsanitize=address here"
    cat "$tmp/probe.log"
    exit 77
fi

# shellcheck disable=SC2086
if ! $CC -std=c11 $SAN -I"$srcdir/include" -I"$builddir/include" "$srcdir/tests/asan-app.c" \
    "$a" -pthread -o "$tmp/asan-app"; then
    echo "check-asan-app: FAIL: could not build tests/asan-app.c against $a"
    exit 1
fi
if ! "$tmp/asan-app" 2000; then
    echo "check-asan-app: FAIL: the AddressSanitizer application failed (see above)"
    exit 1
fi
echo "check-asan-app: PASS"
exit 0
