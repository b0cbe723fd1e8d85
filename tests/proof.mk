## tests/proof.mk - the reliability proof of issue #11 (included from
## tests/local.mk; paths are relative to the top of the tree).  Programs use
## the defaults set up in tests/local.mk.  Iteration counts shrink under the
## sanitizers, valgrind or STM_TEST_SMALL=1 (tests/testutil.h).
##
##   check_serial  random transactions from several threads; the logged
##                 history is checked offline for serializability, and
##                 every attempt for opacity (STM_SERIAL_SEED repeats a run)
##   check_faults  thread creation and descriptors running out
##   fuzz/         the fuzz target and its replay (below)

check_PROGRAMS += tests/check_serial
tests_check_serial_SOURCES = tests/check_serial.c tests/testutil.h

## check_faults: pthread_create() failing for the timer and dispatcher
## threads (the test defines pthread_create and calls the next one through
## dlsym), EMFILE for stm_dispatch_fd() and the "pipe" Waiter.
check_PROGRAMS += tests/check_faults
tests_check_faults_SOURCES = tests/check_faults.c tests/testutil.h
tests_check_faults_LDADD = $(LDADD) -ldl

## check_lifecycle: threads that exit with watchers, deadlines and others'
## retries in place; stm_shutdown() with work in flight and reuse after
## it; fork() while library threads run (the child uses the library).
check_PROGRAMS += tests/check_lifecycle
tests_check_lifecycle_SOURCES = tests/check_lifecycle.c tests/testutil.h

## The fuzz target's checker without libFuzzer: the committed corpus and
## seeded random schedules (tests/fuzz/replay.c).
check_PROGRAMS += tests/fuzz/fuzz_replay
tests_fuzz_fuzz_replay_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_stm.c tests/fuzz/fuzz_stm.h \
	tests/testutil.h
tests_fuzz_fuzz_replay_CPPFLAGS = $(AM_CPPFLAGS) \
	-DSTM_FUZZ_CORPUS='"$(abs_top_srcdir)/tests/fuzz/corpus"'
EXTRA_DIST += tests/fuzz/corpus

## The libFuzzer target (clang only; not built by default):
##   ./configure CC=clang CFLAGS='-g -O1 -fsanitize=fuzzer-no-link' \
##       --enable-sanitize=address,undefined
##   make tests/fuzz/fuzz_stm && tests/fuzz/fuzz_stm CORPUS_DIR
## .ci/run does this for 60 seconds (the fuzz step).
EXTRA_PROGRAMS += tests/fuzz/fuzz_stm
tests_fuzz_fuzz_stm_SOURCES = tests/fuzz/fuzz_main.c tests/fuzz/fuzz_stm.c tests/fuzz/fuzz_stm.h
tests_fuzz_fuzz_stm_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
CLEANFILES += tests/fuzz/fuzz_stm

## make soak: tests/soak.c, everything at once for STM_SOAK_SECONDS
## (default 180) seconds; not part of make check.  STM_SOAK_WAKE_MS sets the
## wake-up bound (default 5000), STM_SOAK_REPORT the seconds between
## progress lines (30).  One malloc arena (MALLOC_ARENA_MAX=1, unless set):
## with one per thread, glibc's RSS creeps up from fragmentation while the
## heap in use stays flat (see tests/soak.c).
EXTRA_PROGRAMS += tests/soak
tests_soak_SOURCES = tests/soak.c tests/testutil.h
CLEANFILES += tests/soak$(EXEEXT)
soak: tests/soak$(EXEEXT)
	MALLOC_ARENA_MAX=$${MALLOC_ARENA_MAX:-1} ./tests/soak$(EXEEXT)
.PHONY: soak

## make check-valgrind: the test programs (not the shell-script tests)
## under valgrind's memcheck; any error, or any leak (definite, indirect or
## possible), fails the test.  The suites see valgrind (LD_PRELOAD) and use
## their small sizes; Check still forks each test (valgrind follows the
## forked children and checks each at its exit); time-outs are stretched.
## One suppression, tests/valgrind.supp (glibc's thread-stack cache; see
## there).  Left out: tests/check_starvation, which asserts that
## transactions conflict and fall back to serial mode, which valgrind's
## one-thread-at-a-time scheduler does not produce (its memory is covered
## by the other stress suites).  Needs valgrind (apt-get install valgrind).
VALGRIND = valgrind
VALGRIND_FLAGS = --quiet --error-exitcode=97 --leak-check=full \
	--show-leak-kinds=definite,indirect,possible \
	--errors-for-leak-kinds=definite,indirect,possible \
	--suppressions=$(abs_top_srcdir)/tests/valgrind.supp
VALGRIND_SKIP = tests/check_starvation$(EXEEXT)
EXTRA_DIST += tests/valgrind.supp
check-valgrind:
	@command -v $(VALGRIND) >/dev/null 2>&1 || \
	  { echo "check-valgrind: $(VALGRIND) not found (apt-get install valgrind)"; exit 1; }
	tests=; for t in $(check_PROGRAMS); do \
	  case " $(VALGRIND_SKIP) " in *" $$t "*) ;; *) tests="$$tests $$t";; esac; \
	done; \
	$(MAKE) $(AM_MAKEFLAGS) check TESTS="$$tests" \
	  LOG_COMPILER='env STM_TEST_SMALL=1 CK_TIMEOUT_MULTIPLIER=10 $(VALGRIND) $(VALGRIND_FLAGS)'
.PHONY: check-valgrind
