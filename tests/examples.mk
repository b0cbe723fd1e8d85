## tests/examples.mk - the watcher demos, examples/reconnect and
## examples/eventloop, and the containers' examples (examples/queue,
## examples/map, examples/chan, each checking its own outcome and printing
## an OK line).  Included from tests/local.mk; paths are relative
## to the top of the tree.
##
## The programs are noinst_PROGRAMS in examples/local.mk (plain `make`
## builds them, as README.md's first command needs).  tests/check-examples.sh
## runs them from the build directory ($STM_BUILDDIR) and checks their
## output: reconnect's back-off schedule (each wait at least its delay and
## not much more, doubling up to the cap, reset after a connection) and
## eventloop's reports (every value, in order, on the main thread).
## Appending to dist_check_SCRIPTS puts it in TESTS (tests/local.mk).
dist_check_SCRIPTS += tests/check-examples.sh
## What it and tests/check-tutorial.sh share (sourced, not run).
EXTRA_DIST += tests/examples-common.sh
