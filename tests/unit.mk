## tests/unit.mk - the single-threaded-first unit suites (one Check suite per
## module).  Included from tests/local.mk; paths are relative to the top of
## the tree.  Flags come from the program defaults set there (AM_CPPFLAGS,
## AM_LDFLAGS, LDADD = the TEST_* settings), so each test is two lines.

check_PROGRAMS += tests/check_tvar
tests_check_tvar_SOURCES = tests/check_tvar.c tests/testutil.h

check_PROGRAMS += tests/check_tx
tests_check_tx_SOURCES = tests/check_tx.c tests/testutil.h

check_PROGRAMS += tests/check_orelse
tests_check_orelse_SOURCES = tests/check_orelse.c tests/testutil.h

check_PROGRAMS += tests/check_hooks
tests_check_hooks_SOURCES = tests/check_hooks.c tests/testutil.h

check_PROGRAMS += tests/check_alloc
tests_check_alloc_SOURCES = tests/check_alloc.c tests/testutil.h

check_PROGRAMS += tests/check_nomem
tests_check_nomem_SOURCES = tests/check_nomem.c tests/testutil.h

check_PROGRAMS += tests/check_misuse
tests_check_misuse_SOURCES = tests/check_misuse.c tests/testutil.h tests/misuse.h

check_PROGRAMS += tests/check_stats
tests_check_stats_SOURCES = tests/check_stats.c tests/testutil.h

check_PROGRAMS += tests/check_dispatch
tests_check_dispatch_SOURCES = tests/check_dispatch.c tests/testutil.h tests/misuse.h

check_PROGRAMS += tests/check_watch
tests_check_watch_SOURCES = tests/check_watch.c tests/testutil.h tests/misuse.h

check_PROGRAMS += tests/check_readonly
tests_check_readonly_SOURCES = tests/check_readonly.c tests/testutil.h tests/misuse.h

check_PROGRAMS += tests/check_embed
tests_check_embed_SOURCES = tests/check_embed.c tests/testutil.h tests/misuse.h

check_PROGRAMS += tests/check_catch
tests_check_catch_SOURCES = tests/check_catch.c tests/testutil.h tests/misuse.h

check_PROGRAMS += tests/check_protect
tests_check_protect_SOURCES = tests/check_protect.c tests/testutil.h tests/misuse.h

check_PROGRAMS += tests/check_retryspin
tests_check_retryspin_SOURCES = tests/check_retryspin.c tests/testutil.h

check_PROGRAMS += tests/check_writelock
tests_check_writelock_SOURCES = tests/check_writelock.c tests/testutil.h

check_PROGRAMS += tests/check_wheel
tests_check_wheel_SOURCES = tests/check_wheel.c tests/testutil.h
