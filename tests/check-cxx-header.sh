#!/bin/sh
# tests/check-cxx-header.sh - <stm.h> is valid C++.
# Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
#
# Run by `make check` from the top build directory (srcdir set by the
# harness; STM_* by AM_TESTS_ENVIRONMENT, tests/cxx.mk).  Compiles
# tests/cxx_header.cc, which includes <stm.h> and uses its types, macros
# and inline helpers, as C++11 and as C++17 with -Wall -Wextra -Werror
# -pedantic, with the configured C++ compiler and with every other one of
# g++ and clang++ on the PATH; then links the configured compiler's C++17
# object against the static library and runs it (it ends with
# "N passed, 0 failed").  Exit 77 (skipped) when no C++ compiler works.

set -u

srcdir=${srcdir:-.}
builddir=${STM_BUILDDIR:-.}
cxx=${STM_CXX:-}
lib=$builddir/lib/.libs/libstm.a
src=$srcdir/tests/cxx_header.cc
strict="-Wall -Wextra -Werror -pedantic"

if test "${STM_HAVE_CXX:-no}" != yes; then
    echo "check-cxx-header: SKIP: configure found no working C++17 compiler"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stm-cxxh.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 99' HUP INT TERM

status=0
fail() {
    echo "check-cxx-header: FAIL: $*"
    status=1
}

compilers=$cxx
for c in g++ clang++; do
    if command -v "$c" >/dev/null 2>&1; then
        case " $compilers " in
        *" $c "*) ;;
        *) compilers="$compilers $c" ;;
        esac
    fi
done

n=0
for c in $compilers; do
    for std in c++11 c++17; do
        n=$((n + 1))
        # the configured compiler with the build's flags (sanitizers);
        # the others with their defaults
        flags=
        test "$c" = "$cxx" && flags=${STM_CXXFLAGS:-}
        # shellcheck disable=SC2086
        if $c -std=$std $strict $flags -I"$srcdir/include" -c "$src" \
            -o "$tmp/h$n.o" 2>"$tmp/err"; then
            echo "check-cxx-header: ok: $c -std=$std $strict"
        else
            cat "$tmp/err"
            fail "$c -std=$std: <stm.h> does not compile as C++"
        fi
    done
done

# link and run the configured compiler's C++17 build
# shellcheck disable=SC2086
if ! $cxx -std=c++17 $strict ${STM_CXXFLAGS:-} -I"$srcdir/include" "$src" "$lib" \
    ${STM_LDFLAGS:-} ${STM_LIBS:-} -o "$tmp/cxx_header" 2>"$tmp/err"; then
    cat "$tmp/err"
    fail "$cxx: cannot link tests/cxx_header.cc against $lib"
elif ! "$tmp/cxx_header" >"$tmp/out" 2>&1; then
    cat "$tmp/out"
    fail "tests/cxx_header.cc failed"
else
    cat "$tmp/out"
    grep -q '^[1-9][0-9]* passed, 0 failed$' "$tmp/out" ||
        fail "tests/cxx_header.cc did not report its checks"
fi
exit $status
