## bench/local.mk - benchmarks (included from the top-level Makefile.am;
## paths are relative to the top of the tree).
##
## Benchmarks are EXTRA_PROGRAMS: neither `make` nor `make check` builds them;
## `make bench` builds every program in BENCHMARKS and runs bench/matrix.sh,
## which runs them with short settings (add a new program there too).  To add one:
##
##   BENCHMARKS += bench/foo$(EXEEXT)
##   EXTRA_PROGRAMS += bench/foo
##   bench_foo_SOURCES = bench/foo.c bench/bench.h
##   bench_foo_CPPFLAGS = $(BENCH_CPPFLAGS)
##   bench_foo_CFLAGS = $(BENCH_CFLAGS)
##   bench_foo_LDFLAGS = $(BENCH_LINKFLAGS)
##   bench_foo_LDADD = $(BENCH_LDADD)

BENCH_CPPFLAGS = -I$(top_srcdir)/include -I$(top_srcdir)/lib
BENCH_CFLAGS = $(AM_CFLAGS) -O2
BENCH_LINKFLAGS = -static
BENCH_LDADD = lib/libstm.la

BENCHMARKS = bench/micro$(EXEEXT)

EXTRA_PROGRAMS += bench/micro
bench_micro_SOURCES = bench/micro.c bench/bench.h
bench_micro_CPPFLAGS = $(BENCH_CPPFLAGS)
bench_micro_CFLAGS = $(BENCH_CFLAGS)
bench_micro_LDFLAGS = $(BENCH_LINKFLAGS)
bench_micro_LDADD = $(BENCH_LDADD)

BENCHMARKS += bench/wake$(EXEEXT)
EXTRA_PROGRAMS += bench/wake
bench_wake_SOURCES = bench/wake.c bench/bench.h
bench_wake_CPPFLAGS = $(BENCH_CPPFLAGS)
bench_wake_CFLAGS = $(BENCH_CFLAGS)
bench_wake_LDFLAGS = $(BENCH_LINKFLAGS)
bench_wake_LDADD = $(BENCH_LDADD)

BENCHMARKS += bench/watch$(EXEEXT)
EXTRA_PROGRAMS += bench/watch
bench_watch_SOURCES = bench/watch.c bench/bench.h
bench_watch_CPPFLAGS = $(BENCH_CPPFLAGS)
bench_watch_CFLAGS = $(BENCH_CFLAGS)
bench_watch_LDFLAGS = $(BENCH_LINKFLAGS)
bench_watch_LDADD = $(BENCH_LDADD)

BENCHMARKS += bench/intset$(EXEEXT)
EXTRA_PROGRAMS += bench/intset
bench_intset_SOURCES = bench/intset.c
bench_intset_CPPFLAGS = $(BENCH_CPPFLAGS)
bench_intset_CFLAGS = $(BENCH_CFLAGS)
bench_intset_LDFLAGS = $(BENCH_LINKFLAGS)
bench_intset_LDADD = $(BENCH_LDADD)

BENCHMARKS += bench/bank$(EXEEXT)
EXTRA_PROGRAMS += bench/bank
bench_bank_SOURCES = bench/bank.c bench/bench.h
bench_bank_CPPFLAGS = $(BENCH_CPPFLAGS)
bench_bank_CFLAGS = $(BENCH_CFLAGS)
bench_bank_LDFLAGS = $(BENCH_LINKFLAGS)
bench_bank_LDADD = $(BENCH_LDADD)

BENCHMARKS += bench/queue$(EXEEXT)
EXTRA_PROGRAMS += bench/queue
bench_queue_SOURCES = bench/queue.c bench/bench.h
bench_queue_CPPFLAGS = $(BENCH_CPPFLAGS)
bench_queue_CFLAGS = $(BENCH_CFLAGS)
bench_queue_LDFLAGS = $(BENCH_LINKFLAGS)
bench_queue_LDADD = $(BENCH_LDADD)

BENCHMARKS += bench/map$(EXEEXT)
EXTRA_PROGRAMS += bench/map
bench_map_SOURCES = bench/map.c bench/bench.h
bench_map_CPPFLAGS = $(BENCH_CPPFLAGS)
bench_map_CFLAGS = $(BENCH_CFLAGS)
bench_map_LDFLAGS = $(BENCH_LINKFLAGS)
bench_map_LDADD = $(BENCH_LDADD)

CLEANFILES += $(BENCHMARKS)

EXTRA_DIST += bench/matrix.sh bench/compare.sh

# The short standard matrix (bench/matrix.sh, about a minute): every
# program in BENCHMARKS with quick settings.
bench: $(BENCHMARKS)
	$(SHELL) $(top_srcdir)/bench/matrix.sh bench

.PHONY: bench

BENCHMARKS += bench/fd$(EXEEXT)
EXTRA_PROGRAMS += bench/fd
bench_fd_SOURCES = bench/fd.c
bench_fd_CPPFLAGS = $(BENCH_CPPFLAGS)
bench_fd_CFLAGS = $(BENCH_CFLAGS)
bench_fd_LDFLAGS = $(BENCH_LINKFLAGS)
bench_fd_LDADD = $(BENCH_LDADD)
## C++: include/stm.hpp against the C API (only with a C++17 compiler)
if HAVE_CXX
BENCHMARKS += bench/micro_cxx$(EXEEXT)
EXTRA_PROGRAMS += bench/micro_cxx
bench_micro_cxx_SOURCES = bench/micro_cxx.cc
bench_micro_cxx_CPPFLAGS = -I$(top_srcdir)/include
bench_micro_cxx_CXXFLAGS = $(AM_CXXFLAGS) -O2
bench_micro_cxx_LDFLAGS = $(BENCH_LINKFLAGS)
bench_micro_cxx_LDADD = $(BENCH_LDADD)
else
EXTRA_DIST += bench/micro_cxx.cc
endif
