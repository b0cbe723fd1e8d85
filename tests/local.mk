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

TEST_CPPFLAGS = $(CHECK_CFLAGS) -I$(top_srcdir)/include -I$(top_srcdir)/lib -DSTM__LIB_INTERNAL
TEST_LINKFLAGS = -static
TEST_LDADD = lib/libstm.la $(CHECK_LIBS)

TESTS = $(check_PROGRAMS)

## Packaging tests, POSIX shell scripts run with $(SHELL) (so they need no
## execute bit), from the top build directory:
##   tests/check-exports.sh  libstm.so exports exactly lib/libstm.sym, only
##                           stm_ names, each declared STM_API in stm.h
##   tests/check-install.sh  make install DESTDIR=<tmp>, build and run
##                           tests/install-smoke.c and examples/bank.c with
##                           `pkg-config stm` against the staged copy, then
##                           make uninstall leaves no file behind
##   tests/check-asan-app.sh  tests/asan-app.c built with -fsanitize=address
##                           against this build's unsanitized libstm.a:
##                           conflict restarts leave no false reports
dist_check_SCRIPTS = tests/check-exports.sh tests/check-install.sh tests/check-asan-app.sh
TESTS += $(dist_check_SCRIPTS)
TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = $(SHELL)
EXTRA_DIST += tests/install-smoke.c tests/asan-app.c

## The tests' environment.  CK_*: Check's per-test timeout (seconds; scaled
## by CK_TIMEOUT_MULTIPLIER) and verbosity; both may be overridden from the
## environment.  STM_*: build settings for the packaging tests.
##
## Why check-install.sh runs make itself.  It runs
## `$$STM_MAKE install DESTDIR=<tmp>` (and uninstall) itself: a make inside
## the make that runs the tests.  That is on purpose, rather than a
## check-local rule: check-local runs alongside (not before) the tests
## under -j and its failure does not show in test-suite.log, while a test
## keeps install, checks and uninstall together, with its own log, skip
## status and clean-up.  It is safe: `make check` has built `all` before
## any test runs, so the inner make only copies files, and only below its
## DESTDIR (fine in VPATH builds and distcheck's read-only source tree).
## The jobserver is not handed to test scripts, so the script drops -j and
## --jobserver-* from MAKEFLAGS and the inner make runs serially; STM_MAKE
## makes it the same make program as the outer one.
AM_TESTS_ENVIRONMENT = \
	CK_DEFAULT_TIMEOUT=$${CK_DEFAULT_TIMEOUT:-60}; export CK_DEFAULT_TIMEOUT; \
	CK_VERBOSITY=$${CK_VERBOSITY:-normal}; export CK_VERBOSITY; \
	STM_BUILDDIR='$(top_builddir)'; STM_MAKE='$(MAKE)'; \
	STM_CC='$(CC)'; STM_CPPFLAGS='$(CPPFLAGS)'; STM_CFLAGS='$(CFLAGS)'; \
	STM_LDFLAGS='$(LDFLAGS)'; STM_WARN_CFLAGS='$(WARN_CFLAGS)'; \
	STM_PKG_CONFIG='$(PKG_CONFIG)'; STM_LIBDIR='$(libdir)'; \
	STM_INCLUDEDIR='$(includedir)'; STM_MANDIR='$(mandir)'; \
	STM_PKGCONFIGDIR='$(pkgconfigdir)'; \
	export STM_BUILDDIR STM_MAKE STM_CC STM_CPPFLAGS STM_CFLAGS STM_LDFLAGS \
	  STM_WARN_CFLAGS STM_PKG_CONFIG STM_LIBDIR STM_INCLUDEDIR STM_MANDIR \
	  STM_PKGCONFIGDIR;

## The suites: single-thread semantics, then concurrency and stress.
include $(srcdir)/tests/unit.mk
include $(srcdir)/tests/stress.mk
include $(srcdir)/tests/time.mk
include $(srcdir)/tests/embedded.mk
include $(srcdir)/tests/containers.mk
include $(srcdir)/tests/tutorial.mk
include $(srcdir)/tests/examples.mk
