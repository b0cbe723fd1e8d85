#!/bin/sh
# tests/check-cmake.sh - CMake projects find an installed libstm:
# find_package(stm) and target_link_libraries(app stm::stm).
# Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
#
# Run by `make check` from the top build directory (STM_* from
# AM_TESTS_ENVIRONMENT: tests/local.mk and tests/cxx.mk).  Installs into a
# staging directory (make install DESTDIR=...), configures and builds
# tests/cmake-consumer (a C program, and a C++17 one using stm.hpp when a
# C++ compiler is configured) with CMAKE_PREFIX_PATH set to the staged
# prefix and find_package(stm <this version>), runs them, then checks
# that an incompatible version request fails.  Exit 77 (skipped) without
# cmake.

set -u

srcdir=${srcdir:-.}
MAKE=${STM_MAKE:-make}
: "${STM_PREFIX:?not set; run this test with make check}"
: "${STM_LIBDIR:?not set; run this test with make check}"
CMAKE=${STM_CMAKE:-cmake}

if ! command -v "$CMAKE" >/dev/null 2>&1; then
    echo "check-cmake: SKIP: cmake not found"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stm-cmake.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 99' HUP INT TERM
dest=$tmp/root

fail() {
    echo "check-cmake: FAIL: $*"
    exit 1
}

# the inner make runs serially (see tests/check-install.sh)
if test -n "${MAKEFLAGS:-}"; then
    MAKEFLAGS=$(printf ' %s \n' "$MAKEFLAGS" |
        sed -e 's/ --jobserver-[a-z]*=[^ ]* / /g' -e 's/ -j[0-9]* / /g' \
            -e 's/^ //' -e 's/ $//')
    export MAKEFLAGS
fi
unset MFLAGS

if ! $MAKE install DESTDIR="$dest" >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"
    fail "make install DESTDIR=$dest failed"
fi
for f in stmConfig.cmake stmConfigVersion.cmake; do
    test -f "$dest$STM_LIBDIR/cmake/stm/$f" || fail "$STM_LIBDIR/cmake/stm/$f was not installed"
done

with_cxx=OFF
test "${STM_HAVE_CXX:-no}" = yes && with_cxx=ON
# the configured compilers and flags (sanitizer flags included, which the
# installed library needs at link time)
configure() { # BUILD-DIR VERSION
    "$CMAKE" -S "$srcdir/tests/cmake-consumer" -B "$1" \
        -DCMAKE_PREFIX_PATH="$dest$STM_PREFIX" -DSTM_EXPECT_VERSION="$2" \
        -DWITH_CXX=$with_cxx \
        -DCMAKE_C_COMPILER="${STM_CC:-cc}" -DCMAKE_CXX_COMPILER="${STM_CXX:-c++}" \
        -DCMAKE_C_FLAGS="${STM_CFLAGS:-}" -DCMAKE_CXX_FLAGS="${STM_CXXFLAGS:-}" \
        -DCMAKE_EXE_LINKER_FLAGS="${STM_LDFLAGS:-}"
}

echo "check-cmake: configuring tests/cmake-consumer (find_package(stm ${STM_VERSION:-}))"
if ! configure "$tmp/build" "${STM_VERSION:-}" >"$tmp/cmake.log" 2>&1; then
    cat "$tmp/cmake.log"
    fail "cmake could not configure the consumer against $dest$STM_PREFIX"
fi
if ! "$CMAKE" --build "$tmp/build" >"$tmp/build.log" 2>&1; then
    cat "$tmp/cmake.log" "$tmp/build.log"
    fail "the consumer does not build against the staged install"
fi
LD_LIBRARY_PATH=$dest$STM_LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
progs=consumer_c
test $with_cxx = ON && progs="$progs consumer_cxx"
for p in $progs; do
    "$tmp/build/$p" || fail "$p failed"
done
if command -v ldd >/dev/null 2>&1 && test -f "$dest$STM_LIBDIR/libstm.so"; then
    ldd "$tmp/build/consumer_c" | grep -q "$dest$STM_LIBDIR/libstm.so" ||
        fail "consumer_c does not load the staged libstm.so"
fi

# a request for a later major version must not be satisfied
if configure "$tmp/build2" 99.0 >"$tmp/cmake2.log" 2>&1; then
    fail "find_package(stm 99.0) succeeded"
fi
echo "check-cmake: ok"
exit 0
