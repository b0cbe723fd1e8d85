## lib/local.mk - the library (included from the top-level Makefile.am;
## paths are relative to the top of the tree).

lib_LTLIBRARIES += lib/libstm.la
include_HEADERS += include/stm.h include/stm.hpp

lib_libstm_la_SOURCES = \
	lib/clock.c \
	lib/error.c \
	lib/thread.c \
	lib/tvar.c \
	lib/tvar_ext.c \
	lib/queue.c \
	lib/map.c \
	lib/chan.c \
	lib/tx.c \
	lib/retry.c \
	lib/orelse.c \
	lib/protect.c \
	lib/hooks.c \
	lib/alloc.c \
	lib/reclaim.c \
	lib/serial.c \
	lib/fork.c \
	lib/stats.c \
	lib/waiter.c \
	lib/waiter_condvar.c \
	lib/waiter_pipe.c \
	lib/waiter_thread.c \
	lib/wakespin.c \
	lib/retryspin.c \
	lib/heap.c \
	lib/wheel.c \
	lib/timer.c \
	lib/vclock.c \
	lib/wallclock.c \
	lib/elapsed.c \
	lib/dispatch.c \
	lib/reactor.c \
	lib/watch_retry.c \
	lib/fd_ready.c \
	lib/fd_wait.c \
	lib/fd_close.c \
	lib/readonly.c \
	lib/watch.c \
	lib/watch_phase.c \
	lib/watch_apply.c \
	lib/watch_error.c \
	lib/watch.h \
	lib/stm-internal.h \
	lib/stm-base.h \
	lib/stm-timer.h \
	lib/stm-waiter.h \
	lib/stm-fd.h \
	lib/stm-tvar.h \
	lib/stm-tx.h \
	lib/stm-watcher.h

lib_libstm_la_CPPFLAGS = -I$(top_srcdir)/include -DSTM_BUILDING
lib_libstm_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden

## Exported symbols.  lib/libstm.sym is the single list of what libstm.so
## exports: one name per line, sorted (LC_ALL=C sort), nothing else.  A
## function is exported only if it is declared STM_API in include/stm.h
## (-fvisibility=hidden hides the rest) AND listed there; stm__* internals
## never are.
##
## ADDING A PUBLIC FUNCTION: declare it STM_API in include/stm.h, add its
## name to lib/libstm.sym, and add it with the first version that has it to
## debian/libstm0.symbols -- when it is implemented, not before.  `make
## check` (tests/check-exports.sh) fails if libstm.so exports anything but
## the list, if a listed name is not declared STM_API, or if the library
## defines an STM_API function that is missing from the list.
## Removing or changing a function: see the libtool version rules in
## configure.ac.
lib_libstm_la_LDFLAGS = \
	-version-info $(STM_LT_VERSION) \
	-export-symbols $(top_srcdir)/lib/libstm.sym \
	-no-undefined
## Relink the library when the list changes.
EXTRA_lib_libstm_la_DEPENDENCIES = $(top_srcdir)/lib/libstm.sym
EXTRA_DIST += lib/libstm.sym
