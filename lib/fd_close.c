/*
 * fd_close.c - stm_fd_close: close a file descriptor and end the waits on
 * it.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The kernel tells nobody that an fd was closed: a ppoll() in progress
 * holds the file (fd_wait.c), and epoll drops a closed file without an
 * event (reactor.c).  So the library is told: the fd leaves the epoll set
 * while it is still open (a duplicate may keep the file), then it is
 * closed, then every waiter on it is woken; they run again after the
 * close, and stm_fd_ready() sees POLLNVAL.  A stm_fd_ready() that sees
 * POLLNVAL ends the waits on the number the same way (stm__fd_closed):
 * the close was a close(2), that nobody told the library of.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>

#include "stm-fd.h"

void stm__fd_closed(int fd)
{
    stm__fd_direct_closed(fd);
    stm__reactor_closed(fd);
}

STM_API int stm_fd_close(int fd)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    stm__reactor_closing(fd);
    int r = close(fd);
    int e = errno;
    stm__fd_closed(fd);
    errno = e;
    return r;
}
