/*
 * GET /metrics over HTTP/1.1 on supervisor.metrics_listen, served from the
 * supervisor's loop. Everything is bounded, as relayd and httpd bound
 * theirs: connections (past the limit the listener pauses and the kernel's
 * backlog holds the rest), request size, and the time a client has to send
 * its request and to take the answer. One request per connection, then a
 * close: a scrape every few seconds needs no keep-alive.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <http_parser.h>

#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "supervisor.h"
#include "util.h"

#define MAX_CONNS		16
#define REQUEST_SECONDS		5.	/* to send the whole request */
#define RESPONSE_SECONDS	10.	/* to take the whole answer */
#define LINGER_SECONDS		2.	/* to close its side after ours */
#define CONTENT_TYPE		"text/plain; version=0.0.4; charset=utf-8"

struct metrics_req {
	http_parser	 p;
	char		 url[METRICS_HTTP_MAX_REQUEST + 1];
	size_t		 urllen;
	size_t		 total;
	int		 complete;
	int		 status;
};

enum conn_state { C_READ, C_WRITE, C_LINGER };

struct conn {
	TAILQ_ENTRY(conn)	 entry;
	int			 fd;
	enum conn_state		 state;
	ev_io			 io;
	ev_timer		 timer;
	struct metrics_req	*req;
	char			*out;
	size_t			 outlen, outoff;
};

static struct {
	int			 fd;
	ev_io			 io;
	char			*spec;
	struct listen_addr	 la;
	TAILQ_HEAD(, conn)	 conns;
	size_t			 nconns;
} mh = { -1, { 0 }, NULL, { { 0 }, 0, 0, { 0 } },
    TAILQ_HEAD_INITIALIZER(mh.conns), 0 };

static int
req_url(http_parser *p, const char *at, size_t len)
{
	struct metrics_req *r = p->data;

	/* Within the request's bound, so within url[]. */
	if (r->urllen + len > METRICS_HTTP_MAX_REQUEST)
		return -1;
	memcpy(r->url + r->urllen, at, len);
	r->urllen += len;
	r->url[r->urllen] = '\0';
	return 0;
}

static int
req_complete(http_parser *p)
{
	struct metrics_req *r = p->data;

	r->complete = 1;
	/* Whatever follows (a pipelined request) is not read. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings req_settings = {
	.on_url = req_url,
	.on_message_complete = req_complete,
};

struct metrics_req *
metrics_req_new(void)
{
	struct metrics_req *r = xcalloc(1, sizeof(*r));

	http_parser_init(&r->p, HTTP_REQUEST);
	r->p.data = r;
	return r;
}

void
metrics_req_free(struct metrics_req *r)
{
	free(r);
}

int
metrics_req_head(const struct metrics_req *r)
{
	return r->p.method == HTTP_HEAD;
}

static int
req_route(struct metrics_req *r)
{
	struct http_parser_url	u;
	const char		*path;
	size_t			 len;

	http_parser_url_init(&u);
	if (http_parser_parse_url(r->url, r->urllen, 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH)))
		return 400;
	path = r->url + u.field_data[UF_PATH].off;
	len = u.field_data[UF_PATH].len;
	if (len != strlen("/metrics") || memcmp(path, "/metrics", len) != 0)
		return 404;
	if (r->p.method != HTTP_GET && r->p.method != HTTP_HEAD)
		return 405;
	return 200;
}

int
metrics_req_feed(struct metrics_req *r, const char *data, size_t len)
{
	enum http_errno e;

	if (r->status != 0)
		return r->status;
	if (len > METRICS_HTTP_MAX_REQUEST - r->total) {
		/* Feed only what fits: past it the request is too large. */
		len = METRICS_HTTP_MAX_REQUEST - r->total;
		r->status = 431;
	}
	r->total += len;
	/* Length 0 would tell the parser the connection ended. */
	if (len > 0)
		(void)http_parser_execute(&r->p, &req_settings, data, len);
	e = HTTP_PARSER_ERRNO(&r->p);
	if (r->complete)
		r->status = req_route(r);
	else if (e != HPE_OK && e != HPE_PAUSED && r->status == 0)
		r->status = 400;
	return r->status;
}

static const char *
status_text(int status)
{
	switch (status) {
	case 200:	return "OK";
	case 400:	return "Bad Request";
	case 404:	return "Not Found";
	case 405:	return "Method Not Allowed";
	case 431:	return "Request Header Fields Too Large";
	default:	return "Internal Server Error";
	}
}

static void
conn_close(struct conn *c)
{
	ev_io_stop(sv.loop, &c->io);
	ev_timer_stop(sv.loop, &c->timer);
	close(c->fd);
	TAILQ_REMOVE(&mh.conns, c, entry);
	mh.nconns--;
	metrics_req_free(c->req);
	free(c->out);
	free(c);
	/* A slot is free: take the next one from the backlog. */
	if (mh.fd != -1 && !ev_is_active(&mh.io))
		ev_io_start(sv.loop, &mh.io);
}

static void
conn_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn	*c = t->data;
	struct linger	 l = { 1, 0 };

	(void)loop;
	(void)revents;
	if (c->state != C_LINGER) {
		log_debug("metrics: a client too slow to %s: closed",
		    c->state == C_READ ? "send its request" :
		    "take the answer");
		/* A reset: what it did not take is dropped, not kept queued. */
		(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	}
	conn_close(c);
}

/* The next state, the event it waits for, and its own time limit. */
static void
conn_state(struct conn *c, enum conn_state state, int events, double secs)
{
	c->state = state;
	ev_io_stop(sv.loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(sv.loop, &c->io);
	ev_timer_stop(sv.loop, &c->timer);
	ev_timer_set(&c->timer, secs, 0.);
	ev_timer_start(sv.loop, &c->timer);
}

static void
conn_answer(struct conn *c, int status)
{
	char	*body = NULL, *hdr;
	size_t	 blen = 0;

	if (status == 200 && (body = metrics_render(&blen)) == NULL)
		status = 500;
	if (status != 200) {
		xasprintf(&body, "%d %s\n", status, status_text(status));
		blen = strlen(body);
	}
	xasprintf(&hdr, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n", status,
	    status_text(status), status == 200 ? CONTENT_TYPE :
	    "text/plain; charset=utf-8", blen,
	    status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (status == 200 && metrics_req_head(c->req))
		blen = 0;
	c->outlen = strlen(hdr) + blen;
	c->out = xmalloc(c->outlen);
	memcpy(c->out, hdr, strlen(hdr));
	memcpy(c->out + strlen(hdr), body, blen);
	free(hdr);
	free(body);
	conn_state(c, C_WRITE, EV_WRITE, RESPONSE_SECONDS);
}

static void
conn_read(struct conn *c)
{
	char	buf[1024];
	ssize_t	n;
	int	status;

	n = recv(c->fd, buf, sizeof(buf), 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	if (c->state == C_LINGER)
		return;		/* drained, so the close sends no reset */
	if ((status = metrics_req_feed(c->req, buf, (size_t)n)) != 0)
		conn_answer(c, status);
}

static void
conn_write(struct conn *c)
{
	ssize_t n;

	n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
	    MSG_NOSIGNAL);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == -1) {
		conn_close(c);
		return;
	}
	c->outoff += (size_t)n;
	if (c->outoff < c->outlen)
		return;
	/*
	 * All sent: close our side, then read until the client closes its
	 * own, so unread bytes of its request do not make the kernel reset
	 * the connection before it has read the answer.
	 */
	shutdown(c->fd, SHUT_WR);
	conn_state(c, C_LINGER, EV_READ, LINGER_SECONDS);
}

static void
conn_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = io->data;

	(void)loop;
	(void)revents;
	if (c->state == C_WRITE)
		conn_write(c);
	else
		conn_read(c);
}

static void
metrics_http_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn	*c;
	int		 fd;

	(void)loop;
	(void)revents;
	while (mh.nconns < MAX_CONNS) {
		fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warnx("metrics: accept: %s",
				    strerror(errno));
			return;
		}
		c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->state = C_READ;
		c->req = metrics_req_new();
		ev_io_init(&c->io, conn_io, fd, EV_READ);
		c->io.data = c;
		ev_io_start(sv.loop, &c->io);
		ev_timer_init(&c->timer, conn_timeout, REQUEST_SECONDS, 0.);
		c->timer.data = c;
		ev_timer_start(sv.loop, &c->timer);
		TAILQ_INSERT_TAIL(&mh.conns, c, entry);
		mh.nconns++;
	}
	/* Full: the rest wait in the backlog until a slot frees. */
	ev_io_stop(sv.loop, &mh.io);
}

static void
listener_close(void)
{
	if (mh.fd == -1)
		return;
	ev_io_stop(sv.loop, &mh.io);
	close(mh.fd);
	if (mh.la.family == AF_UNIX)
		unlink(mh.la.path);
	mh.fd = -1;
	free(mh.spec);
	mh.spec = NULL;
}

static void
listener_install(int fd, const char *spec, const struct listen_addr *la)
{
	mh.fd = fd;
	mh.spec = xstrdup(spec);
	mh.la = *la;
	ev_io_init(&mh.io, metrics_http_accept, fd, EV_READ);
	ev_io_start(sv.loop, &mh.io);
	log_info("serving metrics on %s", spec);
}

/* Open spec's listener: fd, or -1 with err naming the key. */
static int
listener_open(const char *spec, struct listen_addr *la, char *err,
    size_t errlen)
{
	char	why[256];
	int	fd;

	if (listen_parse(spec, la, why, sizeof(why)) == -1 ||
	    (fd = listen_open(la, why, sizeof(why))) == -1) {
		snprintf(err, errlen, "supervisor.metrics_listen: cannot "
		    "listen on %s: %s", spec, why);
		return -1;
	}
	return fd;
}

int
metrics_http_start(void)
{
	struct listen_addr	la;
	char			err[512];
	int			fd;

	if (sv.conf->metrics_listen == NULL)
		return 0;
	if ((fd = listener_open(sv.conf->metrics_listen, &la, err,
	    sizeof(err))) == -1) {
		log_error("%s", err);
		return -1;
	}
	listener_install(fd, sv.conf->metrics_listen, &la);
	return 0;
}

/*
 * Before the new configuration is swapped in: a new address is opened
 * first, so a failure leaves the old configuration and listener in force.
 */
int
metrics_http_reload(const struct config *cf, char *err, size_t errlen)
{
	struct listen_addr	la;
	const char		*spec = cf->metrics_listen;
	int			fd;

	if (spec == NULL) {
		if (mh.fd != -1)
			log_info("no longer serving metrics on %s", mh.spec);
		listener_close();
		return 0;
	}
	if (mh.spec != NULL && strcmp(mh.spec, spec) == 0)
		return 0;
	/* The same address spelt otherwise (localhost, 127.0.0.1). */
	if (mh.fd != -1 && listen_parse(spec, &la, err, errlen) == 0 &&
	    la.len == mh.la.len && memcmp(&la.ss, &mh.la.ss, la.len) == 0) {
		free(mh.spec);
		mh.spec = xstrdup(spec);
		return 0;
	}
	if ((fd = listener_open(spec, &la, err, errlen)) == -1)
		return -1;
	listener_close();
	listener_install(fd, spec, &la);
	return 0;
}

void
metrics_http_close(void)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&mh.conns)) != NULL)
		conn_close(c);
	listener_close();
}
