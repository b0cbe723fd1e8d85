## tests/local.mk - Check unit tests (included from the top-level Makefile.am;
## paths are relative to the top of the tree).  `make check` runs them all.
##
## Every test links libstm statically (-static), so white-box tests may call
## the hidden stm__* functions declared in lib/stm-internal.h.  The settings
## below are the top-level defaults for programs (AM_CPPFLAGS, AM_LDFLAGS,
## LDADD), so a test needs no per-target flags.
##
## To add a test, append (uncommented) two lines like these:
##
##   check_PROGRAMS += tests/check_foo
##   tests_check_foo_SOURCES = tests/check_foo.c tests/testutil.h
##
## Everything in check_PROGRAMS is in TESTS.

TEST_CPPFLAGS = $(CHECK_CFLAGS) -I$(top_srcdir)/include -I$(top_srcdir)/lib
TEST_LINKFLAGS = -static
TEST_LDADD = lib/libstm.la $(CHECK_LIBS)

TESTS = $(check_PROGRAMS)

## Check's per-test timeout (seconds; scaled by CK_TIMEOUT_MULTIPLIER) and
## verbosity; both may be overridden from the environment.
AM_TESTS_ENVIRONMENT = \
	CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-60}; export CK_DEFAULT_TIMEOUT; \
	CK_VERBOSITY=$${CK_VERBOSITY:-normal}; export CK_VERBOSITY;

## The suites: single-thread semantics, then concurrency and stress.
include $(srcdir)/tests/unit.mk
include $(srcdir)/tests/stress.mk
