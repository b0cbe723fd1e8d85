## lib/local.mk - the library (included from the top-level Makefile.am;
## paths are relative to the top of the tree).

lib_LTLIBRARIES += lib/libstm.la
include_HEADERS += include/stm.h

lib_libstm_la_SOURCES = \
	lib/clock.c \
	lib/error.c \
	lib/thread.c \
	lib/tvar.c \
	lib/tx.c \
	lib/retry.c \
	lib/orelse.c \
	lib/hooks.c \
	lib/alloc.c \
	lib/reclaim.c \
	lib/serial.c \
	lib/stats.c \
	lib/waiter.c \
	lib/waiter_condvar.c \
	lib/stm-internal.h

lib_libstm_la_CPPFLAGS = -I$(top_srcdir)/include -DSTM_BUILDING
lib_libstm_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
## Only public stm_<lowercase> names are exported; stm__internal never is.
lib_libstm_la_LDFLAGS = \
	-version-info $(STM_LT_VERSION) \
	-export-symbols-regex '^stm_[a-z]' \
	-no-undefined
