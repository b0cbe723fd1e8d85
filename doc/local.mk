## doc/local.mk - manual pages (included from the top-level Makefile.am;
## paths are relative to the top of the tree).  Installed and distributed.
## To add one:
##
##   dist_man_MANS += doc/stm_atomically.3

## The overview page and one page per family, then the .so aliases.
dist_man_MANS = \
	doc/stm.7 \
	doc/stm_atomically.3 \
	doc/stm_tvar_new.3 \
	doc/stm_tvar_init.3 \
	doc/stm_queue_new.3 \
	doc/stm_map_new.3 \
	doc/stm_chan_new.3 \
	doc/stm_after_commit.3 \
	doc/stm_defer.3 \
	doc/stm_now.3 \
	doc/stm_elapsed.3 \
	doc/stm_fd_close.3 \
	doc/stm_fd_ready.3 \
	doc/stm_set_waiter.3 \
	doc/stm_clock_virtual.3 \
	doc/stm_stats_get.3 \
	doc/stm_watch_new.3 \
	doc/stm_set_watch_error_handler.3 \
	doc/stm_abort.3 \
	doc/stm_alloc.3 \
	doc/stm_catch.3 \
	doc/stm_protect.3 \
	doc/stm_read_x.3 \
	doc/stm_write_x.3 \
	doc/stm_retry_x.3 \
	doc/stm_abort_x.3 \
	doc/stm_pending.3 \
	doc/stm_resume.3 \
	doc/stm_atomically_ro.3 \
	doc/stm_atomically_until.3 \
	doc/stm_atomically_watch.3 \
	doc/stm_chan_free.3 \
	doc/stm_chan_recv.3 \
	doc/stm_chan_send.3 \
	doc/stm_chan_subscribe.3 \
	doc/stm_chan_try_recv.3 \
	doc/stm_chan_unsubscribe.3 \
	doc/stm_clock_advance.3 \
	doc/stm_clock_is_virtual.3 \
	doc/stm_clock_real.3 \
	doc/stm_dispatch.3 \
	doc/stm_dispatch_fd.3 \
	doc/stm_elapsed_wall.3 \
	doc/stm_free.3 \
	doc/STM_MSEC.3 \
	doc/STM_NEVER.3 \
	doc/stm_map_del.3 \
	doc/stm_map_free.3 \
	doc/stm_map_get.3 \
	doc/stm_map_iter_init.3 \
	doc/stm_map_len.3 \
	doc/stm_map_next.3 \
	doc/stm_map_put.3 \
	doc/stm_on_abort.3 \
	doc/stm_or_else.3 \
	doc/stm_read.3 \
	doc/stm_queue_free.3 \
	doc/stm_queue_len.3 \
	doc/stm_queue_pop.3 \
	doc/stm_queue_push.3 \
	doc/stm_queue_try_pop.3 \
	doc/stm_queue_try_push.3 \
	doc/stm_read_ptr.3 \
	doc/stm_retry.3 \
	doc/STM_SEC.3 \
	doc/STM_SERIAL_AFTER.3 \
	doc/STM_TVAR_INIT.3 \
	doc/stm_set_waiter_ops.3 \
	doc/stm_set_wake_spin.3 \
	doc/stm_shutdown.3 \
	doc/stm_strerror.3 \
	doc/stm_tvar_destroy.3 \
	doc/stm_tvar_free.3 \
	doc/stm_tvar_name.3 \
	doc/stm_tvar_peek.3 \
	doc/stm_tvar_poke.3 \
	doc/stm_tvar_set_name.3 \
	doc/stm_tx_now.3 \
	doc/stm_tx_start.3 \
	doc/stm_tx_current.3 \
	doc/stm_tx_wall_now.3 \
	doc/stm_unwatch.3 \
	doc/STM_USEC.3 \
	doc/stm_waiter_name.3 \
	doc/stm_wall_now.3 \
	doc/stm_write.3 \
	doc/stm_write_ptr.3

## Guides: distributed, not installed.
EXTRA_DIST += doc/virtual-clock.md
EXTRA_DIST += doc/tutorial.md
EXTRA_DIST += doc/event-loops.md
EXTRA_DIST += doc/benchmarks.md
