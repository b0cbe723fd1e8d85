## tests/time.mk - the time layer (issue #3): deadlines in transactions,
## stm_atomically_until, wall-clock deadlines, the Waiter backends and the
## virtual clock.  Included from tests/local.mk; paths are relative to the
## top of the tree, flags come from the program defaults set there.

check_PROGRAMS += tests/check_time
tests_check_time_SOURCES = tests/check_time.c tests/testutil.h

check_PROGRAMS += tests/check_vclock
tests_check_vclock_SOURCES = tests/check_vclock.c tests/testutil.h

check_PROGRAMS += tests/check_watch_time
tests_check_watch_time_SOURCES = tests/check_watch_time.c tests/testutil.h

check_PROGRAMS += tests/check_watch_wall
tests_check_watch_wall_SOURCES = tests/check_watch_wall.c tests/testutil.h

check_PROGRAMS += tests/check_txtime
tests_check_txtime_SOURCES = tests/check_txtime.c tests/testutil.h

check_PROGRAMS += tests/check_fd
tests_check_fd_SOURCES = tests/check_fd.c tests/testutil.h

check_PROGRAMS += tests/check_watch_error
tests_check_watch_error_SOURCES = tests/check_watch_error.c tests/testutil.h

check_PROGRAMS += tests/check_watch_pool
tests_check_watch_pool_SOURCES = tests/check_watch_pool.c tests/testutil.h
