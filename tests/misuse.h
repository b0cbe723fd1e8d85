/*
 * misuse.h - check that a misuse aborts with one line naming the function:
 * expect_abort("stm_read") sends stderr to a memfd and installs a SIGABRT
 * handler that exits with status 3 (failing the test) unless the captured
 * text is exactly one line naming the function, then dies of SIGABRT as
 * tcase_add_test_raise_signal() expects.  The line must start with
 * "libstm: <function>: " (the name in full: "stm_atomically" does not
 * match a message about stm_atomically_until).  For tests that include it
 * once.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#ifndef STM_TEST_MISUSE_H
#define STM_TEST_MISUSE_H

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *expect_name;
static int saved_stderr = -1;
static int capture_fd = -1;

static void say(const char *s)
{
    ssize_t r = write(2, s, strlen(s));
    (void)r;
}

static void on_sigabrt(int sig)
{
    (void)sig;
    char buf[2048];
    ssize_t n = pread(capture_fd, buf, sizeof buf - 1, 0);
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    dup2(saved_stderr, 2);
    say("captured stderr: ");
    say(buf);
    int lines = 0;
    for (ssize_t i = 0; i < n; i++)
        lines += buf[i] == '\n';
    size_t len = strlen(expect_name);
    if (strncmp(buf, "libstm: ", 8) != 0 || strncmp(buf + 8, expect_name, len) != 0 ||
        strncmp(buf + 8 + len, ": ", 2) != 0) {
        say("\nFAIL: the message does not start with \"libstm: ");
        say(expect_name);
        say(": \"\n");
        _exit(3);
    }
    if (lines != 1 || buf[n - 1] != '\n') {
        say("\nFAIL: the message is not exactly one line\n");
        _exit(3);
    }
    signal(SIGABRT, SIG_DFL);
    raise(SIGABRT);
}

/* Capture stderr and check the abort message for `fn`. */
static void expect_abort(const char *fn)
{
    expect_name = fn;
    capture_fd = memfd_create("stm-stderr", 0);
    ck_assert_int_ge(capture_fd, 0);
    saved_stderr = dup(2);
    ck_assert_int_ge(saved_stderr, 0);
    fflush(stderr);
    ck_assert_int_ge(dup2(capture_fd, 2), 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigabrt;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGABRT, &sa, NULL), 0);
}

#endif
