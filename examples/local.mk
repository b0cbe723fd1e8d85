## examples/local.mk - example programs, built by plain `make` (included from
## the top-level Makefile.am; paths are relative to the top of the tree).
## Examples use only the public API (include/stm.h) and the shared library.

noinst_PROGRAMS += examples/bank
examples_bank_SOURCES = examples/bank.c
examples_bank_CPPFLAGS = -I$(top_srcdir)/include
examples_bank_LDFLAGS =
examples_bank_LDADD = lib/libstm.la

## The tutorial's programs (doc/tutorial.md), one per step.  They are
## check_PROGRAMS: `make check` builds them, and tests/check-tutorial.sh
## (tests/tutorial.mk) runs them and checks their output.  Flags as for
## examples/bank: the public header and the shared library.
check_PROGRAMS += examples/tut1_counter examples/tut2_transfer \
	examples/tut3_queue examples/tut4_timeout examples/tut5_reconnect \
	examples/tut6_watch
examples_tut1_counter_SOURCES = examples/tut1_counter.c
examples_tut1_counter_CPPFLAGS = -I$(top_srcdir)/include
examples_tut1_counter_LDFLAGS =
examples_tut1_counter_LDADD = lib/libstm.la
examples_tut2_transfer_SOURCES = examples/tut2_transfer.c
examples_tut2_transfer_CPPFLAGS = -I$(top_srcdir)/include
examples_tut2_transfer_LDFLAGS =
examples_tut2_transfer_LDADD = lib/libstm.la
examples_tut3_queue_SOURCES = examples/tut3_queue.c
examples_tut3_queue_CPPFLAGS = -I$(top_srcdir)/include
examples_tut3_queue_LDFLAGS =
examples_tut3_queue_LDADD = lib/libstm.la
examples_tut4_timeout_SOURCES = examples/tut4_timeout.c
examples_tut4_timeout_CPPFLAGS = -I$(top_srcdir)/include
examples_tut4_timeout_LDFLAGS =
examples_tut4_timeout_LDADD = lib/libstm.la
examples_tut5_reconnect_SOURCES = examples/tut5_reconnect.c
examples_tut5_reconnect_CPPFLAGS = -I$(top_srcdir)/include
examples_tut5_reconnect_LDFLAGS =
examples_tut5_reconnect_LDADD = lib/libstm.la
examples_tut6_watch_SOURCES = examples/tut6_watch.c
examples_tut6_watch_CPPFLAGS = -I$(top_srcdir)/include
examples_tut6_watch_LDFLAGS =
examples_tut6_watch_LDADD = lib/libstm.la

## The watcher demos (README.md's first command runs examples/reconnect),
## built like examples/bank.  tests/check-examples.sh (tests/examples.mk)
## runs both and checks their output.
noinst_PROGRAMS += examples/reconnect examples/eventloop
examples_reconnect_SOURCES = examples/reconnect.c
examples_reconnect_CPPFLAGS = -I$(top_srcdir)/include
examples_reconnect_LDFLAGS =
examples_reconnect_LDADD = lib/libstm.la
examples_eventloop_SOURCES = examples/eventloop.c
examples_eventloop_CPPFLAGS = -I$(top_srcdir)/include
examples_eventloop_LDFLAGS =
examples_eventloop_LDADD = lib/libstm.la

## The containers' examples (stm_queue, stm_map, stm_chan), built like
## examples/bank; tests/check-examples.sh runs them and checks their output.
noinst_PROGRAMS += examples/queue
examples_queue_SOURCES = examples/queue.c
examples_queue_CPPFLAGS = -I$(top_srcdir)/include
examples_queue_LDFLAGS =
examples_queue_LDADD = lib/libstm.la
noinst_PROGRAMS += examples/map
examples_map_SOURCES = examples/map.c
examples_map_CPPFLAGS = -I$(top_srcdir)/include
examples_map_LDFLAGS =
examples_map_LDADD = lib/libstm.la
noinst_PROGRAMS += examples/chan
examples_chan_SOURCES = examples/chan.c
examples_chan_CPPFLAGS = -I$(top_srcdir)/include
examples_chan_LDFLAGS =
examples_chan_LDADD = lib/libstm.la
