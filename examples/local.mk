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

## The watcher demos (README.md's first command runs examples/reconnect)
## and the echo server (transactions that wait on sockets), built like
## examples/bank.  tests/check-examples.sh (tests/examples.mk) runs them
## and checks their output.
noinst_PROGRAMS += examples/reconnect examples/eventloop examples/echo_server
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
examples_echo_server_SOURCES = examples/echo_server.c
examples_echo_server_CPPFLAGS = -I$(top_srcdir)/include
examples_echo_server_LDFLAGS =
examples_echo_server_LDADD = lib/libstm.la
## C++ (include/stm.hpp): a bounded work queue and a reconnecting client.
## check_PROGRAMS, so `make check` builds and runs them (each checks its
## own outcome and exits 0 iff it went right); only with a C++17 compiler.
if HAVE_CXX
check_PROGRAMS += examples/cpp/work_queue examples/cpp/reconnect
examples_cpp_work_queue_SOURCES = examples/cpp/work_queue.cc
examples_cpp_work_queue_CPPFLAGS = -I$(top_srcdir)/include
examples_cpp_work_queue_LDFLAGS =
examples_cpp_work_queue_LDADD = lib/libstm.la
examples_cpp_reconnect_SOURCES = examples/cpp/reconnect.cc
examples_cpp_reconnect_CPPFLAGS = -I$(top_srcdir)/include
examples_cpp_reconnect_LDFLAGS =
examples_cpp_reconnect_LDADD = lib/libstm.la
else
EXTRA_DIST += examples/cpp/work_queue.cc examples/cpp/reconnect.cc
endif

## Event loops (doc/event-loops.md): libstm's deferred and watcher
## callbacks delivered on a libuv, GLib or libevent loop's thread through
## stm_dispatch_fd(), a timed watch driving a periodic job, clean
## shutdown.  check_PROGRAMS: make check runs them (each checks order,
## thread and timing and exits 0 iff all held); built only when configure
## found the library with pkg-config.
EXTRA_DIST += examples/loops/demo.h
if HAVE_LIBUV
check_PROGRAMS += examples/loops/uv
examples_loops_uv_SOURCES = examples/loops/uv.c examples/loops/demo.h
examples_loops_uv_CPPFLAGS = -I$(top_srcdir)/include
examples_loops_uv_CFLAGS = $(AM_CFLAGS) $(LIBUV_CFLAGS)
examples_loops_uv_LDFLAGS =
examples_loops_uv_LDADD = lib/libstm.la $(LIBUV_LIBS)
else
EXTRA_DIST += examples/loops/uv.c
endif
if HAVE_GLIB
check_PROGRAMS += examples/loops/glib
examples_loops_glib_SOURCES = examples/loops/glib.c examples/loops/demo.h
examples_loops_glib_CPPFLAGS = -I$(top_srcdir)/include
examples_loops_glib_CFLAGS = $(AM_CFLAGS) $(GLIB_CFLAGS)
examples_loops_glib_LDFLAGS =
examples_loops_glib_LDADD = lib/libstm.la $(GLIB_LIBS)
else
EXTRA_DIST += examples/loops/glib.c
endif
if HAVE_LIBEVENT
check_PROGRAMS += examples/loops/libevent
examples_loops_libevent_SOURCES = examples/loops/libevent.c examples/loops/demo.h
examples_loops_libevent_CPPFLAGS = -I$(top_srcdir)/include
examples_loops_libevent_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
examples_loops_libevent_LDFLAGS =
examples_loops_libevent_LDADD = lib/libstm.la $(LIBEVENT_LIBS)
else
EXTRA_DIST += examples/loops/libevent.c
endif
