/*
 * The bridge's hand-off (DECISIONS 260): clawvisor-bridge accepts the
 * CLI's TCP connection inside the sandbox and passes that socket itself
 * over the proxy's unix socket (SCM_RIGHTS, with one NUL byte), so the
 * proxy reads and writes the CLI's connection directly and the bridge
 * copies nothing. The proxy answers one byte: NUL, taken (the bridge
 * closes its copies), or 1, not taken (the bridge copies bytes as
 * before: a socket forwarded by something that cannot carry descriptors
 * still works).
 *
 * The peer is the sandbox, so what it passes is checked: only a
 * connected stream socket is taken; anything else is closed unused. A
 * descriptor gives the proxy nothing the sender could not already do by
 * speaking HTTP on the unix socket itself.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "handoff.h"

/* Room for a few: what is sent beyond one is closed, not leaked. */
#define HANDOFF_MAXFD	4

/* A connected stream socket, made non-blocking; -1 for anything else. */
static int
handoff_check(int fd)
{
	struct stat	st;
	socklen_t	sl;
	int		type = 0, listening = 1, one = 1;

	sl = sizeof(type);
	if (fstat(fd, &st) == -1 || !S_ISSOCK(st.st_mode) ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) == -1 ||
	    type != SOCK_STREAM)
		return -1;
	sl = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &sl) == -1 ||
	    listening)
		return -1;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		return -1;
	/* Set by the bridge already; again in case another sender did not
	 * (an error here is a unix socket: no Nagle there anyway). */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

int
handoff_recv(int sfd, char *byte, int *fd)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(HANDOFF_MAXFD * sizeof(int))];
	} cm;
	struct msghdr	 msg;
	struct iovec	 iov;
	struct cmsghdr	*cmsg;
	int		 fds[HANDOFF_MAXFD];
	size_t		 i, n = 0;
	ssize_t		 r;

	*fd = -1;
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = byte;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	if ((r = recvmsg(sfd, &msg, MSG_CMSG_CLOEXEC)) <= 0)
		return (int)r;
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		for (i = 0; n < HANDOFF_MAXFD && CMSG_LEN((i + 1) *
		    sizeof(int)) <= cmsg->cmsg_len; i++)
			memcpy(&fds[n++], CMSG_DATA(cmsg) + i * sizeof(int),
			    sizeof(int));
	}
	/* One socket with the NUL byte is a hand-off; the rest is closed. */
	if (*byte == '\0' && n == 1 && handoff_check(fds[0]) == 0) {
		*fd = fds[0];
		n = 0;
	}
	for (i = 0; i < n; i++)
		close(fds[i]);
	return 1;
}
