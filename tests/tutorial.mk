## tests/tutorial.mk - the tutorial's programs (doc/tutorial.md, issue #5).
## Included from tests/local.mk; paths are relative to the top of the tree.
##
## The programs themselves are check_PROGRAMS in examples/local.mk, so
## `make check` builds them (and, since TESTS includes $(check_PROGRAMS),
## also runs each once on its own).  tests/check-tutorial.sh runs them
## again from the build directory ($STM_BUILDDIR) and checks their output:
## exit status, a key line, for tut5 that two --virtual runs print
## exactly the same schedule, and for tut6 that its --virtual run prints
## what the tutorial shows.  Appending to dist_check_SCRIPTS puts it in
## TESTS too (tests/local.mk: TESTS += $(dist_check_SCRIPTS)).
dist_check_SCRIPTS += tests/check-tutorial.sh
