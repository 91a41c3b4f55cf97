/*
 * clawvisor exec's output: the child writes into pipes of the worker, and
 * the worker relays them to the caller's stdout and stderr (received with
 * the job, SCM_RIGHTS), counting bytes per stream. Past max_output_bytes
 * the rest is read, dropped and the stream marked truncated, as the queued
 * path drains it (SPEC §3). Only the end of each stream is kept, for
 * classify().
 *
 * Backpressure: a stream's pipe is read only when what was read before has
 * been written, so the worker holds at most RELAY_CHUNK per stream and a
 * caller that stops reading stalls the child on its full pipe. The worker
 * never blocks on the caller: the caller's descriptors are open file
 * descriptions it shares (a terminal, a pipe of its own shell), so they are
 * never made O_NONBLOCK; instead a socket is written with MSG_DONTWAIT, and
 * anything else with at most PIPE_BUF bytes once poll(2) has said POLLOUT
 * (a pipe then has a free page, and a write that small never waits). A
 * timeout or a cancel finds the loop free, and gives the relay up.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "runner.h"
#include "util.h"

#define RELAY_CHUNK	65536	/* read from the child at once, at most */
#define RELAY_TAIL	16384	/* of each stream, kept for classify() */

static void	relay_flush(struct runner *, struct capture *);

static struct capture *
relay_capture(struct runner *r, ev_io *w)
{
	return w == &r->out.io || w == &r->out.wio ? &r->out : &r->err;
}

/* The last RELAY_TAIL bytes (or more) of the stream in c->data. */
static void
relay_tail(struct capture *c, const char *b, size_t n)
{
	if (n >= RELAY_TAIL) {
		b += n - RELAY_TAIL;
		n = RELAY_TAIL;
		c->len = 0;
		c->tail_cut = 1;
	} else if (c->len + n > c->alloc) {
		memmove(c->data, c->data + c->len - (RELAY_TAIL - n),
		    RELAY_TAIL - n);
		c->len = RELAY_TAIL - n;
		c->tail_cut = 1;
	}
	memcpy(c->data + c->len, b, n);
	c->len += n;
	c->data[c->len] = '\0';
}

static void
relay_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct runner	*r = w->data;
	struct capture	*c = relay_capture(r, w);
	ssize_t		 n;
	size_t		 keep;

	(void)loop;
	(void)revents;
	do
		n = read(c->fd, c->pend, RELAY_CHUNK);
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno == EAGAIN)
		return;
	if (n <= 0) {
		runner_capture_close(r, c);
		runner_maybe_done(r);
		return;
	}
	relay_tail(c, c->pend, (size_t)n);
	keep = c->total >= c->cap ? 0 : c->cap - c->total;
	if (keep > (size_t)n)
		keep = (size_t)n;
	c->total += (uint64_t)n;
	if (keep < (size_t)n)
		c->truncated = 1;	/* drained and dropped */
	if (keep == 0 || r->relay_off || c->sink_dead)
		return;
	c->poff = 0;
	c->plen = keep;
	/* Nothing more is read until this is written: backpressure. */
	ev_io_stop(r->loop, &c->io);
	relay_flush(r, c);
}

/* The caller is gone from this stream: what it would have been told. */
static void
relay_sink_failed(struct runner *r, struct capture *c, int err)
{
	ev_io_stop(r->loop, &c->wio);
	c->plen = 0;
	if (err == EPIPE || err == ECONNRESET) {
		/* Its reader closed: the child gets its SIGPIPE or EPIPE, as
		 * it would have writing there itself. */
		runner_capture_close(r, c);
		runner_maybe_done(r);
		return;
	}
	log_warnx("exec: cannot write to the caller's %s: %s; the rest of "
	    "it is dropped", c == &r->out ? "stdout" : "stderr",
	    strerror(err));
	c->sink_dead = 1;
	if (c->fd != -1)
		ev_io_start(r->loop, &c->io);
	runner_maybe_done(r);
}

/* Writes what c holds as far as the caller takes it without waiting. */
static void
relay_flush(struct runner *r, struct capture *c)
{
	struct pollfd	 p;
	ssize_t		 n;
	size_t		 len;

	while (c->plen > 0) {
		len = c->plen;
		if (c->sink_sock)
			n = send(c->sink, c->pend + c->poff, len,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		else {
			p.fd = c->sink;
			p.events = POLLOUT;
			p.revents = 0;
			if (poll(&p, 1, 0) == -1 && errno != EINTR) {
				relay_sink_failed(r, c, errno);
				return;
			}
			if (p.revents == 0) {
				errno = EAGAIN;
				n = -1;
			} else {
				if (len > PIPE_BUF)
					len = PIPE_BUF;
				n = write(c->sink, c->pend + c->poff, len);
			}
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(r->loop, &c->wio);
			return;
		}
		if (n <= 0) {
			relay_sink_failed(r, c, n == 0 ? EIO : errno);
			return;
		}
		c->poff += (size_t)n;
		c->plen -= (size_t)n;
	}
	ev_io_stop(r->loop, &c->wio);
	if (c->fd != -1)
		ev_io_start(r->loop, &c->io);
	else
		runner_maybe_done(r);
}

static void
relay_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct runner *r = w->data;

	(void)loop;
	(void)revents;
	relay_flush(r, relay_capture(r, w));
}

/* c relays fd, the child's end of a pipe, to the caller's sink. */
void
relay_init(struct runner *r, struct capture *c, int fd, int sink, int64_t max)
{
	struct stat st;

	c->fd = fd;
	c->sink = sink;
	c->cap = (size_t)max;
	c->sink_sock = fstat(sink, &st) == 0 && S_ISSOCK(st.st_mode);
	c->pend = xmalloc(RELAY_CHUNK);
	c->alloc = 2 * RELAY_TAIL;
	c->data = xmalloc(c->alloc + 1);
	c->data[0] = '\0';
	fd_nonblock(fd);		/* ours: the child has the other end */
	ev_io_init(&c->io, relay_read, fd, EV_READ);
	ev_io_init(&c->wio, relay_writable, sink, EV_WRITE);
	c->io.data = c->wio.data = r;
	ev_io_start(r->loop, &c->io);
}

/*
 * A timeout or a cancel: the caller may not be reading, and must not hold
 * the end of the run. What is held is dropped and what the child still
 * writes is read and dropped until it is gone.
 */
void
relay_stop(struct runner *r)
{
	struct capture	*c;
	int		 i;

	r->relay_off = 1;
	for (i = 0; i < 2; i++) {
		c = i == 0 ? &r->out : &r->err;
		ev_io_stop(r->loop, &c->wio);
		c->plen = 0;
		if (r->reaped)
			runner_capture_close(r, c);
		else if (c->fd != -1)
			ev_io_start(r->loop, &c->io);
	}
}

/* Bytes read and not yet given to the caller. */
int
relay_pending(const struct runner *r)
{
	return r->relay && (r->out.plen > 0 || r->err.plen > 0);
}

/*
 * The drain after the child's end: a pipe the worker has emptied and that
 * stays open is held by something that escaped (closed, as in the queued
 * path); one still holding bytes waits for the caller to read them.
 * Returns 1 while some pipe is kept.
 */
int
relay_drain(struct runner *r)
{
	struct capture	*c;
	int		 i, n, kept = 0;

	for (i = 0; i < 2; i++) {
		c = i == 0 ? &r->out : &r->err;
		if (c->fd == -1)
			continue;
		if (!r->relay_off && !c->sink_dead && (c->plen > 0 ||
		    (ioctl(c->fd, FIONREAD, &n) == 0 && n > 0))) {
			kept = 1;
			continue;
		}
		runner_capture_close(r, c);
	}
	return kept;
}

void
relay_free(struct runner *r, struct capture *c)
{
	if (c->pend != NULL)
		ev_io_stop(r->loop, &c->wio);
	free(c->pend);
	c->pend = NULL;
}
