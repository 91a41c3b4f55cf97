/*
 * A worker process: runs one invocation at a time for the supervisor, over
 * the socketpair it was started with, and reports one classified result.
 */
#ifndef CLAWVISOR_WORKER_H
#define CLAWVISOR_WORKER_H

int	worker_main(int fd, int index, const char *home, int log_stderr);

#endif
