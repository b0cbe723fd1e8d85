#!/bin/sh
# tests/check-install.sh - install into a staging directory, build programs
# against the installed copy as a user would, then uninstall.
# Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
#
# Run by `make check` (TESTS in tests/local.mk) from the top build
# directory.  tests/local.mk passes, through AM_TESTS_ENVIRONMENT:
#   STM_MAKE                   $(MAKE), to run `make install` / `uninstall`
#                              here (see the comment there about recursion)
#   STM_CC, STM_CPPFLAGS, STM_CFLAGS, STM_LDFLAGS, STM_WARN_CFLAGS
#                              the configured compiler and flags (sanitizer
#                              flags included, which the installed library
#                              needs at link time)
#   STM_PKG_CONFIG             the configured pkg-config
#   STM_LIBDIR, STM_INCLUDEDIR, STM_MANDIR, STM_PKGCONFIGDIR
#                              the configured installation directories
#
# Steps:
#   1. `make install DESTDIR=$dest`; stm.h, the library, stm.pc and every
#      doc/*.3 and doc/*.7 page must be there.
#   2. pkg-config with PKG_CONFIG_LIBDIR=$dest$pkgconfigdir and
#      PKG_CONFIG_SYSROOT_DIR=$dest must give -I$dest$includedir and
#      -L$dest$libdir -lstm (sysroot rewriting).
#   3. tests/install-smoke.c and examples/bank.c, compiled and linked with
#      those flags only, run OK with LD_LIBRARY_PATH=$dest$libdir (and ldd,
#      if present, shows the staged libstm.so.N is the one loaded).
#   4. `make uninstall DESTDIR=$dest` leaves no file behind (only empty
#      directories).
# Exit 77 (skipped) without pkg-config.

set -u

srcdir=${srcdir:-.}
MAKE=${STM_MAKE:-make}
CC=${STM_CC:-cc}
PKG_CONFIG=${STM_PKG_CONFIG:-pkg-config}
: "${STM_LIBDIR:?not set; run this test with make check}"
: "${STM_INCLUDEDIR:?not set; run this test with make check}"
: "${STM_MANDIR:?not set; run this test with make check}"
: "${STM_PKGCONFIGDIR:?not set; run this test with make check}"

if ! command -v "${PKG_CONFIG%% *}" >/dev/null 2>&1; then
    echo "check-install: SKIP: pkg-config ($PKG_CONFIG) not found"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stm-install.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 99' HUP INT TERM
dest=$tmp/root
lib=$dest$STM_LIBDIR

fail() {
    echo "check-install: FAIL: $*"
    exit 1
}

# Automake's recipe that runs a test does not name $(MAKE), so make does
# not hand its jobserver to the test: the jobserver file descriptors named
# in the inherited MAKEFLAGS are closed here.  Drop -jN and --jobserver-*
# from MAKEFLAGS, so that the inner make runs serially (installing takes a
# second) instead of warning "jobserver unavailable"; it keeps the other
# flags (-k, -s, ...) and command-line variables.
if test -n "${MAKEFLAGS:-}"; then
    MAKEFLAGS=$(printf ' %s \n' "$MAKEFLAGS" |
        sed -e 's/ --jobserver-[a-z]*=[^ ]* / /g' -e 's/ -j[0-9]* / /g' \
            -e 's/^ //' -e 's/ $//')
    export MAKEFLAGS
fi
unset MFLAGS

# ---- 1. install ----------------------------------------------------------
echo "check-install: $MAKE install DESTDIR=$dest"
if ! $MAKE install DESTDIR="$dest" >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log"
    fail "make install DESTDIR=$dest failed"
fi
echo "check-install: installed files:"
(cd "$dest" && find . ! -type d | LC_ALL=C sort | sed 's/^\./  /')

for f in "$STM_INCLUDEDIR/stm.h" "$STM_PKGCONFIGDIR/stm.pc" \
         "$STM_MANDIR/man7/stm.7" "$STM_MANDIR/man3/stm_atomically.3"; do
    test -f "$dest$f" || fail "$f was not installed"
done
for page in "$srcdir"/doc/*.[37]; do
    test -f "$page" || continue
    name=${page##*/}
    test -f "$dest$STM_MANDIR/man${name##*.}/$name" ||
        fail "$name was not installed (missing from dist_man_MANS in doc/local.mk?)"
done
if test -f "$lib/libstm.so"; then
    shared=yes
    static=
else
    test -f "$lib/libstm.a" || fail "neither libstm.so nor libstm.a in $STM_LIBDIR"
    shared=no
    static=--static
fi

# ---- 2. pkg-config, with sysroot rewriting ------------------------------
PKG_CONFIG_LIBDIR=$dest$STM_PKGCONFIGDIR
PKG_CONFIG_PATH=$dest$STM_PKGCONFIGDIR
PKG_CONFIG_SYSROOT_DIR=$dest
# pkgconf drops -I/usr/include and -L/usr/lib... as system directories,
# which would hide the staged copies when the prefix is /usr.
PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1
PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
export PKG_CONFIG_LIBDIR PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR \
       PKG_CONFIG_ALLOW_SYSTEM_CFLAGS PKG_CONFIG_ALLOW_SYSTEM_LIBS

cflags=$($PKG_CONFIG --cflags stm) || fail "$PKG_CONFIG --cflags stm failed"
libs=$($PKG_CONFIG $static --libs stm) || fail "$PKG_CONFIG --libs stm failed"
echo "check-install: pkg-config --cflags stm: $cflags"
echo "check-install: pkg-config $static --libs stm: $libs"
case " $cflags " in
*" -I$dest$STM_INCLUDEDIR "*) ;;
*) fail "--cflags lacks -I$dest$STM_INCLUDEDIR (sysroot not applied?)" ;;
esac
case " $libs " in
*" -L$lib "*) ;;
*) fail "--libs lacks -L$lib (sysroot not applied?)" ;;
esac
case " $libs " in
*" -lstm "*) ;;
*) fail "--libs lacks -lstm" ;;
esac

# ---- 3. build and run programs against the staged copy ------------------
# Only the configured compiler flags (CFLAGS carries -pthread and any
# -fsanitize=) plus what pkg-config says: no -I into the source tree.
LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
for src in tests/install-smoke.c examples/bank.c; do
    prog=$tmp/$(basename "$src" .c)
    # shellcheck disable=SC2086 # the flag variables are word lists
    if ! $CC ${STM_CPPFLAGS:-} ${STM_CFLAGS:-} -std=c11 -Wall -Wextra \
            ${STM_WARN_CFLAGS:-} $cflags -o "$prog" "$srcdir/$src" \
            ${STM_LDFLAGS:-} $libs; then
        fail "cannot build $src against the installed library"
    fi
    if test "$shared" = yes && command -v ldd >/dev/null 2>&1; then
        loaded=$(ldd "$prog" | awk '$1 ~ /^libstm\.so/ { print $3 }')
        case $loaded in
        "$lib"/libstm.so.*) ;;
        *) fail "$prog loads libstm from '$loaded', not from $lib" ;;
        esac
    fi
    echo "check-install: running $src"
    "$prog" || fail "$src, built against the installed library, failed"
done

# ---- 4. uninstall --------------------------------------------------------
echo "check-install: $MAKE uninstall DESTDIR=$dest"
if ! $MAKE uninstall DESTDIR="$dest" >"$tmp/uninstall.log" 2>&1; then
    cat "$tmp/uninstall.log"
    fail "make uninstall DESTDIR=$dest failed"
fi
left=$(cd "$dest" && find . ! -type d)
if test -n "$left"; then
    echo "$left"
    fail "make uninstall left the files above"
fi

echo "check-install: PASS (shared library: $shared)"
exit 0
