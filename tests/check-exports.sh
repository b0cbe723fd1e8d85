#!/bin/sh
# tests/check-exports.sh - libstm.so must export exactly lib/libstm.sym.
# Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
#
# Run by `make check` (TESTS in tests/local.mk) from the top build
# directory; srcdir is set by the test harness.  Checks that
#
#   1. lib/libstm.sym is sorted (LC_ALL=C) and has no duplicates;
#   2. `nm -D --defined-only lib/.libs/libstm.so` lists exactly the names in
#      lib/libstm.sym (functions and data; not the A version nodes);
#   3. every exported name starts with stm_ and none with stm__;
#   4. every name in lib/libstm.sym is declared STM_API in include/stm.h;
#   5. no STM_API function that the library defines is missing from
#      lib/libstm.sym (it would silently not be exported).  STM_API names
#      the library does not define yet are only listed, not an error.
#
# Exit 77 (skipped) without nm or without a shared library (e.g. after
# --disable-shared, or on a platform where it is not lib/.libs/libstm.so).

set -u

srcdir=${srcdir:-.}
builddir=${STM_BUILDDIR:-.}
so=$builddir/lib/.libs/libstm.so
a=$builddir/lib/.libs/libstm.a
list=$srcdir/lib/libstm.sym
header=$srcdir/include/stm.h
NM=${STM_NM:-nm}

if ! command -v "$NM" >/dev/null 2>&1; then
    echo "check-exports: SKIP: $NM not found"
    exit 77
fi
if ! test -f "$so"; then
    echo "check-exports: SKIP: no shared library $so (--disable-shared?)"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stm-exports.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 99' HUP INT TERM
LC_ALL=C
export LC_ALL

status=0
fail() {
    echo "check-exports: FAIL: $*"
    status=1
}

# names FILE...: the defined symbol names nm prints for FILE, one a line,
# sorted, without @VERSION suffixes and without absolute (A) symbols.
names() {
    "$NM" "$@" | awk 'NF == 3 && $2 ~ /^[A-Za-z]$/ && $2 != "A" && $2 != "a" {
        sub(/@.*/, "", $3); print $3 }' | sort -u
}

# ---- 1. the list is sorted and unique -----------------------------------
if ! test -f "$list"; then
    echo "check-exports: FAIL: $list is missing"
    exit 1
fi
sort -u "$list" >"$tmp/list"
if ! cmp -s "$list" "$tmp/list"; then
    fail "$list is not sorted (LC_ALL=C sort) or has duplicates:"
    diff -u "$list" "$tmp/list"
fi

# ---- 2. the exports are exactly the list --------------------------------
names -D --defined-only "$so" >"$tmp/exported"
if ! test -s "$tmp/exported"; then
    echo "check-exports: FAIL: $NM -D --defined-only $so printed no symbols"
    exit 1
fi
echo "check-exports: $so exports $(wc -l <"$tmp/exported") symbols"
if ! diff -u "$tmp/list" "$tmp/exported" >"$tmp/diff"; then
    fail "the exports of $so differ from $list" \
         "(- listed but not exported, + exported but not listed):"
    cat "$tmp/diff"
fi

# ---- 3. only stm_ names, never stm__ ------------------------------------
if grep -v '^stm_' "$tmp/exported" >"$tmp/bad"; then
    fail "exported names without the stm_ prefix:"
    cat "$tmp/bad"
fi
if grep '^stm__' "$tmp/exported" >"$tmp/bad"; then
    fail "internal stm__ names are exported:"
    cat "$tmp/bad"
fi

# ---- 4./5. the list against the STM_API declarations --------------------
# A declaration starts with STM_API at the start of a line and ends at the
# first ; or {.  Its name is the first stm_xxx followed by "(" (a function),
# or else the stm_xxx before [...], = or ; (a variable).
awk '/^STM_API[ \t]/ { buf = ""; on = 1 }
     on {
        buf = buf " " $0
        if (buf !~ /[;{]/)
            next
        on = 0
        if (match(buf, /stm_[A-Za-z0-9_]*[ \t]*\(/)) {
            n = substr(buf, RSTART, RLENGTH); sub(/[ \t]*\($/, "", n); print n
        } else if (match(buf, /stm_[A-Za-z0-9_]*[ \t]*(\[[^]]*\][ \t]*)*(=[^;]*)?;/)) {
            n = substr(buf, RSTART, RLENGTH); sub(/[^A-Za-z0-9_].*$/, "", n); print n
        } else {
            print "?unparsed: " buf
        }
     }' "$header" | sort -u >"$tmp/declared"
if grep '^?unparsed' "$tmp/declared" >"$tmp/bad"; then
    fail "cannot find the name in these STM_API declarations of $header:"
    cat "$tmp/bad"
fi
if ! test -s "$tmp/declared"; then
    fail "found no STM_API declarations in $header"
fi

comm -23 "$tmp/list" "$tmp/declared" >"$tmp/bad"
if test -s "$tmp/bad"; then
    fail "listed in $list but not declared STM_API in $header:"
    cat "$tmp/bad"
fi

# Every symbol the library defines, hidden or not: the full symbol table of
# the .so, or the static archive if the .so is stripped.
names --defined-only "$so" 2>/dev/null >"$tmp/defined"
if ! test -s "$tmp/defined" && test -f "$a"; then
    names --defined-only "$a" 2>/dev/null >"$tmp/defined"
fi
if test -s "$tmp/defined"; then
    comm -23 "$tmp/declared" "$tmp/list" >"$tmp/unlisted"
    comm -12 "$tmp/unlisted" "$tmp/defined" >"$tmp/bad"
    if test -s "$tmp/bad"; then
        fail "declared STM_API and defined by the library, but missing" \
             "from $list (so not exported; add them there):"
        cat "$tmp/bad"
    fi
    comm -23 "$tmp/unlisted" "$tmp/defined" >"$tmp/todo"
    if test -s "$tmp/todo"; then
        echo "check-exports: note: declared STM_API but not defined by the" \
             "library yet (not an error):"
        sed 's/^/  /' "$tmp/todo"
    fi
else
    echo "check-exports: note: no symbol table to find unlisted STM_API" \
         "functions in (stripped library); check 5 skipped"
fi

if test "$status" -eq 0; then
    echo "check-exports: PASS: exports == $list ($(wc -l <"$list") names)"
fi
exit "$status"
