## examples/local.mk - example programs, built by plain `make` (included from
## the top-level Makefile.am; paths are relative to the top of the tree).
## Examples use only the public API (include/stm.h) and the shared library.

noinst_PROGRAMS += examples/bank
examples_bank_SOURCES = examples/bank.c
examples_bank_CPPFLAGS = -I$(top_srcdir)/include
examples_bank_LDFLAGS =
examples_bank_LDADD = lib/libstm.la
