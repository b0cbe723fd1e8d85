## tests/embedded.mk - every Check suite a second time, over embedded TVars:
## built with -DSTM_TEST_EMBEDDED, so that the suites' stm_tvar_new() and
## stm_tvar_free() make TVars inside larger blocks with stm_tvar_init() and
## end them with stm_tvar_destroy() + stm_free() (tests/testutil.h).  Heap and
## embedded TVars must behave the same in everything the suites check.
## Included from tests/local.mk; paths are relative to the top of the tree.

check_PROGRAMS += tests/check_tvar_emb
tests_check_tvar_emb_SOURCES = tests/check_tvar.c tests/testutil.h tests/misuse.h
tests_check_tvar_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_tx_emb
tests_check_tx_emb_SOURCES = tests/check_tx.c tests/testutil.h tests/misuse.h
tests_check_tx_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_orelse_emb
tests_check_orelse_emb_SOURCES = tests/check_orelse.c tests/testutil.h tests/misuse.h
tests_check_orelse_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_hooks_emb
tests_check_hooks_emb_SOURCES = tests/check_hooks.c tests/testutil.h tests/misuse.h
tests_check_hooks_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_alloc_emb
tests_check_alloc_emb_SOURCES = tests/check_alloc.c tests/testutil.h tests/misuse.h
tests_check_alloc_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_nomem_emb
tests_check_nomem_emb_SOURCES = tests/check_nomem.c tests/testutil.h tests/misuse.h
tests_check_nomem_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_misuse_emb
tests_check_misuse_emb_SOURCES = tests/check_misuse.c tests/testutil.h tests/misuse.h
tests_check_misuse_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_stats_emb
tests_check_stats_emb_SOURCES = tests/check_stats.c tests/testutil.h tests/misuse.h
tests_check_stats_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_dispatch_emb
tests_check_dispatch_emb_SOURCES = tests/check_dispatch.c tests/testutil.h tests/misuse.h
tests_check_dispatch_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_watch_emb
tests_check_watch_emb_SOURCES = tests/check_watch.c tests/testutil.h tests/misuse.h
tests_check_watch_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_readonly_emb
tests_check_readonly_emb_SOURCES = tests/check_readonly.c tests/testutil.h tests/misuse.h
tests_check_readonly_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_bank_emb
tests_check_bank_emb_SOURCES = tests/check_bank.c tests/testutil.h tests/misuse.h
tests_check_bank_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_opacity_emb
tests_check_opacity_emb_SOURCES = tests/check_opacity.c tests/testutil.h tests/misuse.h
tests_check_opacity_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_pingpong_emb
tests_check_pingpong_emb_SOURCES = tests/check_pingpong.c tests/testutil.h tests/misuse.h
tests_check_pingpong_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_orelse_wait_emb
tests_check_orelse_wait_emb_SOURCES = tests/check_orelse_wait.c tests/testutil.h tests/misuse.h
tests_check_orelse_wait_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_reclaim_emb
tests_check_reclaim_emb_SOURCES = tests/check_reclaim.c tests/testutil.h tests/misuse.h
tests_check_reclaim_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_starvation_emb
tests_check_starvation_emb_SOURCES = tests/check_starvation.c tests/testutil.h tests/misuse.h
tests_check_starvation_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_watch_stress_emb
tests_check_watch_stress_emb_SOURCES = tests/check_watch_stress.c tests/testutil.h tests/misuse.h
tests_check_watch_stress_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_time_emb
tests_check_time_emb_SOURCES = tests/check_time.c tests/testutil.h tests/misuse.h
tests_check_time_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_vclock_emb
tests_check_vclock_emb_SOURCES = tests/check_vclock.c tests/testutil.h tests/misuse.h
tests_check_vclock_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_watch_time_emb
tests_check_watch_time_emb_SOURCES = tests/check_watch_time.c tests/testutil.h tests/misuse.h
tests_check_watch_time_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_watch_wall_emb
tests_check_watch_wall_emb_SOURCES = tests/check_watch_wall.c tests/testutil.h tests/misuse.h
tests_check_watch_wall_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_catch_emb
tests_check_catch_emb_SOURCES = tests/check_catch.c tests/testutil.h tests/misuse.h
tests_check_catch_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED

check_PROGRAMS += tests/check_cancel_emb
tests_check_cancel_emb_SOURCES = tests/check_cancel.c tests/testutil.h tests/misuse.h
tests_check_cancel_emb_CPPFLAGS = $(TEST_CPPFLAGS) -DSTM_TEST_EMBEDDED
