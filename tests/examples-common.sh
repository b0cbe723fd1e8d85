# tests/examples-common.sh - what check-tutorial.sh and check-examples.sh
# share, sourced by both (POSIX sh):  . "$(dirname "$0")/examples-common.sh"
#
# Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
#
# Before sourcing, set `name` (for messages and the temporary directory)
# and `probe` (a program under examples/ that shows where the build is
# when STM_BUILDDIR is not set).  Afterwards: $ex is the build's examples/
# directory, $tmp a temporary directory removed at exit, $bound a command
# prefix that limits a run to 60 s (empty without timeout(1)), $status the
# exit status so far, and fail MESSAGE records a failure.

set -u

builddir=${STM_BUILDDIR:-}
if test -z "$builddir"; then
    builddir=.
    here=$(dirname "$0")/..
    test -x "$here/examples/$probe" && builddir=$here
fi
ex=$builddir/examples

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stm-$name.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 99' HUP INT TERM

if command -v timeout >/dev/null 2>&1; then
    bound="timeout 60"
else
    bound=
fi

status=0
fail() {
    echo "check-$name: FAIL: $*"
    status=1
}
