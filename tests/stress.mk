## tests/stress.mk - concurrency and stress suites (included from the
## top-level Makefile.am after tests/local.mk; paths are relative to the top
## of the tree).  They use the defaults set up in tests/local.mk, so they
## need no per-target flags.  Iteration counts shrink by themselves under
## ThreadSanitizer/AddressSanitizer or valgrind, or with STM_TEST_SMALL=1.

check_PROGRAMS += tests/check_bank
tests_check_bank_SOURCES = tests/check_bank.c tests/testutil.h

check_PROGRAMS += tests/check_opacity
tests_check_opacity_SOURCES = tests/check_opacity.c tests/testutil.h

check_PROGRAMS += tests/check_pingpong
tests_check_pingpong_SOURCES = tests/check_pingpong.c tests/testutil.h

check_PROGRAMS += tests/check_orelse_wait
tests_check_orelse_wait_SOURCES = tests/check_orelse_wait.c tests/testutil.h

check_PROGRAMS += tests/check_reclaim
tests_check_reclaim_SOURCES = tests/check_reclaim.c tests/testutil.h

check_PROGRAMS += tests/check_starvation
tests_check_starvation_SOURCES = tests/check_starvation.c tests/testutil.h

check_PROGRAMS += tests/check_watch_stress
tests_check_watch_stress_SOURCES = tests/check_watch_stress.c tests/testutil.h

check_PROGRAMS += tests/check_cancel
tests_check_cancel_SOURCES = tests/check_cancel.c tests/testutil.h
