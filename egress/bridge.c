/*
 * clawvisor-bridge PORT SOCKET CMD [ARG...]: the sandbox's end of the path
 * out (SPEC §9). It listens on 127.0.0.1:PORT inside the sandbox, where the
 * CLI's base URL and HTTPS_PROXY point, and joins each connection to the
 * egress proxy's unix socket SOCKET, mounted into the sandbox; it runs CMD
 * as its child and exits when CMD does, with its status (128 + the signal
 * if a signal ended it), so the worker sees the CLI's outcome.
 *
 * Each accepted connection is handed to the proxy itself (SCM_RIGHTS, with
 * one NUL byte; DECISIONS 260): the proxy then reads and writes the CLI's
 * socket directly, and the bridge is out of the data path. When the proxy
 * answers that it did not get the socket (something between the two that
 * cannot carry descriptors), the bridge copies bytes as they come, each
 * direction through a buffer of its own, so a streamed reply reaches the
 * CLI event by event; a side that stops reading stops the other from being
 * read (bounded memory).
 *
 * Static and libc-only (one poll(2) loop, no allocation after start): it
 * runs in any image and in bwrap's view of the host alike. Nothing secret
 * passes through its argv: the token is in the CLI's environment only.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BRIDGE_MAX_CONNS	64
#define BRIDGE_BUF		65536

/* The proxy's answers to a hand-off (egress/handoff.h). */
#define BRIDGE_TAKEN		'\0'
#define BRIDGE_COPY		'\1'

struct half {
	char	buf[BRIDGE_BUF];
	size_t	len;
	size_t	off;
	int	eof;		/* the reading side is done */
	int	shut;		/* shutdown(SHUT_WR) sent to the writing side */
};

struct pair {
	int		in;	/* from the CLI, on 127.0.0.1 */
	int		out;	/* to the proxy's socket */
	struct half	up;	/* in -> out */
	struct half	down;	/* out -> in */
	int		asked;	/* handed off, the proxy's answer not read */
};

static struct pair	 pairs[BRIDGE_MAX_CONNS];
static volatile sig_atomic_t got_signal;
static pid_t		 child;

static void
bridge_onsignal(int sig)
{
	got_signal = sig;
}

static void
bridge_close(struct pair *p)
{
	if (p->in != -1)
		close(p->in);
	if (p->out != -1)
		close(p->out);
	memset(p, 0, sizeof(*p));
	p->in = p->out = -1;
}

/* Pass the CLI's socket fd over the proxy's socket ufd; 0, or -1. */
static int
bridge_handoff(int ufd, int fd)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct msghdr	 msg;
	struct iovec	 iov;
	struct cmsghdr	*cmsg;
	char		 nul = '\0';

	memset(&msg, 0, sizeof(msg));
	memset(&cm, 0, sizeof(cm));
	iov.iov_base = &nul;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(ufd, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static void
bridge_accept(int lfd, const char *path)
{
	struct sockaddr_un	 sun;
	struct pair		*p = NULL;
	size_t			 i;
	int			 fd, ufd, one = 1;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC))
	    == -1)
		return;
	/*
	 * No Nagle towards the CLI: a short write (an SSE event, the last
	 * chunk of a reply) behind unacknowledged data would otherwise wait
	 * for the CLI's delayed ACK, 40 ms on Linux, at every reply.
	 */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (i = 0; i < BRIDGE_MAX_CONNS && p == NULL; i++)
		if (pairs[i].in == -1)
			p = &pairs[i];
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	/* A full table or a proxy that is not there: the CLI sees the
	 * connection closed, and fails as it would without a network. */
	if (p == NULL || (ufd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0))
	    == -1) {
		close(fd);
		return;
	}
	if (connect(ufd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "clawvisor-bridge: %s: %s\n", path,
		    strerror(errno));
		close(ufd);
		close(fd);
		return;
	}
	(void)fcntl(ufd, F_SETFL, fcntl(ufd, F_GETFL) | O_NONBLOCK);
	memset(p, 0, sizeof(*p));
	p->in = fd;
	p->out = ufd;
	p->asked = bridge_handoff(ufd, fd) == 0;
}

/*
 * The proxy's answer: taken, and the pair is closed here (the proxy has
 * the CLI's socket; no shutdown, which would reach its copy too), or not
 * taken, and the bridge copies. Anything else is the proxy's reply
 * itself, sent before it read the hand-off (a 503 when it is full): the
 * first byte the CLI gets. 0, or -1: closed.
 */
static int
bridge_answer(struct pair *p, short rev)
{
	ssize_t	n;
	char	c;

	if (!(rev & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	if ((n = read(p->out, &c, 1)) == -1 && (errno == EAGAIN ||
	    errno == EINTR))
		return 0;
	if (n != 1 || c == BRIDGE_TAKEN)
		return -1;
	p->asked = 0;
	if (c != BRIDGE_COPY) {
		p->down.buf[0] = c;
		p->down.len = 1;
	}
	return 0;
}

/* Read into h from rfd if it has room; write h to wfd. 0, or -1: broken. */
static int
bridge_move(int rfd, int wfd, struct half *h, short rev)
{
	ssize_t n;

	if ((rev & (POLLIN | POLLHUP | POLLERR)) && !h->eof &&
	    h->len < sizeof(h->buf)) {
		n = read(rfd, h->buf + h->len, sizeof(h->buf) - h->len);
		if (n == 0)
			h->eof = 1;
		else if (n > 0)
			h->len += (size_t)n;
		else if (errno != EAGAIN && errno != EINTR)
			return -1;
	}
	/* Tried at once: a buffer filled just now goes out in this round. */
	if (h->off < h->len) {
		n = write(wfd, h->buf + h->off, h->len - h->off);
		if (n > 0)
			h->off += (size_t)n;
		else if (n == -1 && errno != EAGAIN && errno != EINTR)
			return -1;
	}
	if (h->off == h->len)
		h->off = h->len = 0;
	if (h->eof && h->len == 0 && !h->shut) {
		(void)shutdown(wfd, SHUT_WR);
		h->shut = 1;
	}
	return 0;
}

static int
bridge_listen(const char *port)
{
	struct sockaddr_in	sin;
	char			*end;
	long			n;
	int			fd, one = 1;

	n = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || n < 1 || n > 65535) {
		fprintf(stderr, "clawvisor-bridge: bad port \"%s\"\n", port);
		return -1;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)n);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) == -1 || bind(fd, (struct sockaddr *)&sin,
	    sizeof(sin)) == -1 || listen(fd, 64) == -1) {
		fprintf(stderr, "clawvisor-bridge: 127.0.0.1:%ld: %s\n", n,
		    strerror(errno));
		return -1;
	}
	return fd;
}

int
main(int argc, char *argv[])
{
	struct pollfd	 pfd[1 + 2 * BRIDGE_MAX_CONNS];
	struct pair	*p;
	size_t		 i, n;
	int		 lfd, st;
	pid_t		 r;

	if (argc < 4) {
		fprintf(stderr, "usage: clawvisor-bridge PORT SOCKET CMD "
		    "[ARG...]\n");
		return 2;
	}
	for (i = 0; i < BRIDGE_MAX_CONNS; i++)
		pairs[i].in = pairs[i].out = -1;
	signal(SIGPIPE, SIG_IGN);
	/* Listening before the CLI starts: its first request finds us. */
	if ((lfd = bridge_listen(argv[1])) == -1)
		return 126;
	signal(SIGTERM, bridge_onsignal);
	signal(SIGINT, bridge_onsignal);
	signal(SIGHUP, bridge_onsignal);
	if ((child = fork()) == -1) {
		fprintf(stderr, "clawvisor-bridge: fork: %s\n",
		    strerror(errno));
		return 126;
	}
	if (child == 0) {
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		execvp(argv[3], argv + 3);
		fprintf(stderr, "clawvisor-bridge: %s: %s\n", argv[3],
		    strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	for (;;) {
		if (got_signal) {
			kill(child, got_signal);
			got_signal = 0;
		}
		if ((r = waitpid(child, &st, WNOHANG)) == child)
			break;
		pfd[0].fd = lfd;
		pfd[0].events = POLLIN;
		for (i = 0, n = 1; i < BRIDGE_MAX_CONNS; i++) {
			p = &pairs[i];
			pfd[n].fd = p->asked ? -1 : p->in;
			pfd[n].events = (p->in != -1 && !p->up.eof &&
			    p->up.len < BRIDGE_BUF ? POLLIN : 0) |
			    (p->down.len > 0 ? POLLOUT : 0);
			pfd[n + 1].fd = p->out;
			pfd[n + 1].events = (p->out != -1 && !p->down.eof &&
			    p->down.len < BRIDGE_BUF ? POLLIN : 0) |
			    (p->up.len > 0 ? POLLOUT : 0);
			n += 2;
		}
		/* A short timeout: the child's exit is noticed by waitpid. */
		if (poll(pfd, n, 100) == -1 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN)
			bridge_accept(lfd, argv[2]);
		for (i = 0; i < BRIDGE_MAX_CONNS; i++) {
			p = &pairs[i];
			if (p->in == -1)
				continue;
			if (p->asked) {
				if (bridge_answer(p, pfd[2 + 2 * i].revents)
				    == -1)
					bridge_close(p);
				continue;
			}
			if (bridge_move(p->in, p->out, &p->up,
			    pfd[1 + 2 * i].revents) == -1 ||
			    bridge_move(p->out, p->in, &p->down,
			    pfd[2 + 2 * i].revents) == -1 ||
			    (p->up.shut && p->down.shut))
				bridge_close(p);
		}
	}
	for (i = 0; i < BRIDGE_MAX_CONNS; i++)
		if (pairs[i].in != -1)
			bridge_close(&pairs[i]);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}
