/*
 * The bridge hands the CLI's connection to the proxy (egress/handoff.c).
 */
#ifndef CLAWVISOR_HANDOFF_H
#define CLAWVISOR_HANDOFF_H

/* The two answers of the proxy, one byte each. */
#define HANDOFF_TAKEN	'\0'
#define HANDOFF_COPY	'\1'

/*
 * The first byte of a connection on the proxy's socket, and the socket
 * handed over with it: 1 with *byte set and *fd a connected stream socket
 * (non-blocking, close-on-exec) or -1 when none was taken; 0 at end of
 * file; -1 with errno. A hand-off is a NUL byte with one socket; any other
 * first byte is the start of a request on the unix socket itself.
 */
int	handoff_recv(int sfd, char *byte, int *fd);

#endif
