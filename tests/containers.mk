## tests/containers.mk - the transactional containers (stm_queue, stm_chan,
## stm_map): every operation, the blocking cases, the "no conflict" claims
## measured with the conflict statistics, and stress.  Included from
## tests/local.mk; paths are relative to the top of the tree.

check_PROGRAMS += tests/check_queue
tests_check_queue_SOURCES = tests/check_queue.c tests/testutil.h tests/misuse.h

check_PROGRAMS += tests/check_map
tests_check_map_SOURCES = tests/check_map.c tests/testutil.h tests/misuse.h

check_PROGRAMS += tests/check_chan
tests_check_chan_SOURCES = tests/check_chan.c tests/testutil.h tests/misuse.h
