## tests/proof.mk - the reliability proof of issue #11 (included from
## tests/local.mk; paths are relative to the top of the tree).  Programs use
## the defaults set up in tests/local.mk.  Iteration counts shrink under the
## sanitizers, valgrind or STM_TEST_SMALL=1 (tests/testutil.h).
##
##   check_serial  random transactions from several threads; the logged
##                 history is checked offline for serializability, and
##                 every attempt for opacity (STM_SERIAL_SEED repeats a run)

check_PROGRAMS += tests/check_serial
tests_check_serial_SOURCES = tests/check_serial.c tests/testutil.h
