/*
 * The proxy's connections, after relayd's relays: each accepted connection
 * from a bridge reads one request head at a time (egress/proxy_req.c),
 * decides, and then pumps bytes both ways through two bounded buffers
 * (sandbox.egress.buffer_bytes each): a side that does not read stops the
 * other from being read, so memory stays flat and a stuck upstream holds
 * only its own connection. Request bodies go through libhttp-parser too,
 * to find where the next request of a keep-alive connection starts (its
 * token is checked and swapped again); a CONNECT or an upgraded websocket
 * becomes a plain tunnel. Responses are relayed as they come, unparsed:
 * an SSE reply reaches the CLI event by event.
 *
 * This file accepts, decides and ends connections; proxy_relay.c moves
 * their bytes (and takes the bridge's hand-off of the CLI's socket),
 * proxy_buf.c has their buffers and upstream TLS's callbacks.
 *
 * Upstream TLS is libtls, non-blocking: each call that wants the socket
 * readable or writable says so, and the watcher follows. Names are
 * resolved without blocking the loop (egress/resolve.c): a connection
 * waits in P_RESOLVING while the others go on.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tls.h>

#include "config.h"
#include "egress.h"
#include "log.h"
#include "pconn.h"
#include "proxy.h"
#include "proxy_req.h"
#include "resolve.h"
#include "util.h"

struct proxy_stats proxy_stats;
struct proxy_env px = { .lfd = -1 };

static void	pconn_pump(struct pconn *);
static void	pconn_free(struct pconn *);

static void
proxy_conf_copy(struct egress_conf *dst, const struct egress_conf *src)
{
	size_t i;

	memset(dst, 0, sizeof(*dst));
	dst->mode = src->mode;
	dst->allow = xcalloc(src->nallow + 1, sizeof(*dst->allow));
	for (i = 0; i < src->nallow; i++) {
		dst->allow[i] = src->allow[i];
		dst->allow[i].host = xstrdup(src->allow[i].host);
	}
	dst->nallow = src->nallow;
	for (i = 0; i < EGRESS_NPROVIDERS; i++) {
		dst->providers[i].url = xstrdup(src->providers[i].url);
		dst->providers[i].host = xstrdup(src->providers[i].host);
		dst->providers[i].path = xstrdup(src->providers[i].path);
		dst->providers[i].port = src->providers[i].port;
	}
	dst->ca_file = src->ca_file != NULL ? xstrdup(src->ca_file) : NULL;
	dst->max_connections = src->max_connections;
	dst->buffer_bytes = src->buffer_bytes;
	dst->idle_timeout_seconds = src->idle_timeout_seconds;
}

int
proxy_configure(const struct egress_conf *ec)
{
	egress_conf_free(&px.conf);
	proxy_conf_copy(&px.conf, ec);
	if (px.tls != NULL)
		tls_config_free(px.tls);
	px.tls = proxy_tls_config(ec, px.cadir);
	return 0;
}

static void
pconn_watch(struct pconn *c)
{
	int ce = 0, ue = 0;

	if (c->st == P_CLOSING) {
		ce = c->u2c.len > 0 ? EV_WRITE : 0;
	} else {
		if (!c->c_eof && pbuf_room(&c->cin) > 0 &&
		    pbuf_room(&c->c2u) > 0)
			ce |= EV_READ;
		if (c->u2c.len > 0)
			ce |= EV_WRITE;
	}
	if (c->ufd != -1 && c->st != P_CLOSING) {
		if (c->st == P_CONNECTING)
			ue = EV_WRITE;
		else if (c->st == P_HANDSHAKE)
			ue = c->tls_wants;
		else if (c->st == P_RELAY) {
			if (!c->u_eof && pbuf_room(&c->u2c) > 0)
				ue |= c->tls != NULL ? c->tls_rw : EV_READ;
			if (c->c2u.len > 0)
				ue |= c->tls != NULL ? c->tls_ww : EV_WRITE;
		}
	}
	if ((c->cio.events & (EV_READ | EV_WRITE)) != ce ||
	    !ev_is_active(&c->cio)) {
		ev_io_stop(px.loop, &c->cio);
		ev_io_set(&c->cio, c->cfd, ce);
		if (ce != 0)
			ev_io_start(px.loop, &c->cio);
	}
	if (c->ufd != -1 && ((c->uio.events & (EV_READ | EV_WRITE)) != ue ||
	    !ev_is_active(&c->uio))) {
		ev_io_stop(px.loop, &c->uio);
		ev_io_set(&c->uio, c->ufd, ue);
		if (ue != 0)
			ev_io_start(px.loop, &c->uio);
	}
}

/*
 * A 403 (or 502) with a one-line reason the CLI shows, then close. reason
 * is one of egress_reasons[] (the metrics' label), prov the provider the
 * request was for (-1: not known yet).
 */
void
pconn_refuse(struct pconn *c, int code, const char *reason, int prov,
    const char *host, const char *why)
{
	char head[256];

	proxy_stats.refused++;
	egress_refused(host, c->agent, prov, reason, why);
	snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: "
	    "text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
	    code, code == 403 ? "Forbidden" : "Bad Gateway", strlen(why) + 1);
	pbuf_clear(&c->u2c);
	pbuf_add(&c->u2c, head, strlen(head));
	pbuf_add(&c->u2c, why, strlen(why));
	pbuf_add(&c->u2c, "\n", 1);
	c->st = P_CLOSING;
}

/*
 * The upstream's address is known: a non-blocking connect. A CONNECT
 * (dial_check) skips loopback, link-local, private and metadata addresses.
 */
static void
pconn_resolved(void *arg, int gerr, struct addrinfo *res)
{
	struct pconn	*c = arg;
	struct addrinfo	*ai;
	const char	*why;
	int		 fd = -1, one = 1;

	c->rq = NULL;
	why = gerr != 0 ? "egress: the host's name does not resolve" :
	    "egress: the host resolves to a loopback, link-local, private "
	    "or metadata address";
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (c->dial_check && proxy_addr_forbidden(ai->ai_addr))
			continue;
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0)) == -1)
			continue;
		/* Requests and websocket frames go out as they come. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    errno == EINPROGRESS)
			break;
		why = "egress: the host refused the connection";
		close(fd);
		fd = -1;
	}
	if (res != NULL)
		freeaddrinfo(res);
	if (c->st == P_CLOSING) {
		/* Its job ended while it looked up: nothing to refuse. */
		if (fd != -1)
			close(fd);
	} else if (fd == -1 && c->connect)
		pconn_refuse(c, 403, "address", -1, c->host, why);
	else if (fd == -1)
		pconn_refuse(c, 502, "upstream", c->provider, c->host,
		    "egress: cannot reach the provider");
	else {
		c->ufd = fd;
		c->st = P_CONNECTING;
		c->u_rd = 1;
		ev_io_set(&c->uio, fd, 0);
		/* A tunnel counts once its address passed the checks. */
		if (c->connect)
			proxy_stats.tunnels++;
	}
	pconn_pump(c);
}

/* Look the upstream up; the connection waits, the loop does not. */
static void
pconn_dial(struct pconn *c, const char *host, uint16_t port, int check)
{
	c->dial_check = check;
	c->st = P_RESOLVING;
	c->rq = resolve_start(host, port, c->connect ? RESOLVE_ALLOW :
	    RESOLVE_PROVIDER, pconn_resolved, c);
}

/* The head is whole: refuse, or open the way. */
static void
pconn_decide(struct pconn *c)
{
	const struct egress_grant	*g;
	const struct egress_allow	*a;
	const struct egress_url		*up;
	struct proxy_target		 t;
	const char			*key;
	char				*head, hp[300];
	size_t				 len;
	int				 bearer;

	proxy_req_classify(&c->req, &t);
	if (t.kind == PK_REFUSE) {
		pconn_refuse(c, 403, "request", -1, "-", t.why);
		goto out;
	}
	if (t.kind == PK_CONNECT) {
		snprintf(hp, sizeof(hp), "%s:%u", t.host, t.port);
		if (c->ufd != -1 || c->rq != NULL) {
			pconn_refuse(c, 403, "request", -1, hp, "egress: "
			    "CONNECT on a "
			    "connection already in use");
			goto out;
		}
		if ((a = proxy_allow_match(&px.conf, t.host, t.port)) == NULL) {
			pconn_refuse(c, 403, "not_allowed", -1, hp, "egress: "
			    "CONNECT to this "
			    "host:port is not in sandbox.egress.allow");
			goto out;
		}
		free(c->host);
		c->host = xstrdup(hp);
		c->connect = 1;
		c->tunnel = 1;
		pconn_dial(c, t.host, t.port, !a->literal);
		goto out;
	}
	if ((g = egress_grant_find(t.token)) == NULL) {
		pconn_refuse(c, 403, "token", -1, "-", "egress: unknown or "
		    "expired token");
		goto out;
	}
	if ((key = egress_key(g->provider, &bearer)) == NULL) {
		pconn_refuse(c, 502, "no_key", g->provider, "-", "egress: no "
		    "key for this provider in "
		    "the daemon's environment");
		goto out;
	}
	up = &px.conf.providers[g->provider];
	if (c->provider != -1 && c->provider != g->provider) {
		pconn_refuse(c, 403, "request", g->provider, up->host,
		    "egress: one provider per "
		    "connection");
		goto out;
	}
	c->job = g->job;
	free(c->agent);
	c->agent = xstrdup(g->agent);
	/* Claude Code's OAuth token goes with its beta flag, as the CLI
	 * itself would send it (DECISIONS 243). */
	head = proxy_req_rewrite(&c->req, t.path, up, key, bearer,
	    g->provider == PROV_ANTHROPIC && bearer ? PROXY_OAUTH_BETA : NULL,
	    &len);
	pbuf_add(&c->c2u, head, len);
	freezero(head, len);
	proxy_stats.forwarded++;
	egress_forwarded(g->provider);
	if (c->req.p.upgrade)
		c->tunnel = 1;
	if (c->ufd == -1 && c->rq == NULL) {
		c->provider = g->provider;
		free(c->host);
		c->host = xstrdup(up->host);
		pconn_dial(c, up->host, up->port, 0);
	}
out:
	proxy_target_free(&t);
}

static int
pconn_body_done(http_parser *p)
{
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings pconn_body_settings = {
	.on_message_complete = pconn_body_done,
};

/* Client bytes in cin: heads decided, bodies and tunnels to c2u. */
int
pconn_process(struct pconn *c)
{
	size_t	n;
	long	used;
	int	moved = 0;

	while (c->cin.len > 0 && c->st != P_CLOSING) {
		if (c->tunnel && !c->body) {
			if (c->connect)
				break;	/* until the upstream answers */
			n = c->cin.len < pbuf_room(&c->c2u) ?
			    c->cin.len : pbuf_room(&c->c2u);
			if (n == 0)
				break;
			pbuf_add(&c->c2u, pbuf_data(&c->cin), n);
			pbuf_drop(&c->cin, n);
			moved = 1;
		} else if (!c->body) {
			if ((used = proxy_req_feed(&c->req,
			    pbuf_data(&c->cin), c->cin.len)) == -1) {
				pconn_refuse(c, 403, "malformed", -1, "-",
				    "egress: malformed request");
				return 1;
			}
			pbuf_drop(&c->cin, (size_t)used);
			moved = 1;
			if (!c->req.complete)
				break;
			pconn_decide(c);
			if (c->st == P_CLOSING)
				return 1;
			/* Its body: the parser goes on from the head's LF. */
			http_parser_pause(&c->req.p, 0);
			(void)http_parser_execute(&c->req.p,
			    &pconn_body_settings, "\n", 1);
			c->body = HTTP_PARSER_ERRNO(&c->req.p) != HPE_PAUSED;
			if (!c->body && !c->tunnel) {
				proxy_req_free(&c->req);
				proxy_req_init(&c->req);
			}
		} else {
			n = c->cin.len < pbuf_room(&c->c2u) ?
			    c->cin.len : pbuf_room(&c->c2u);
			if (n == 0)
				break;
			n = http_parser_execute(&c->req.p,
			    &pconn_body_settings, pbuf_data(&c->cin), n);
			if (HTTP_PARSER_ERRNO(&c->req.p) != HPE_OK &&
			    HTTP_PARSER_ERRNO(&c->req.p) != HPE_PAUSED) {
				pconn_refuse(c, 403, "malformed", c->provider,
				    "-", "egress: malformed request body");
				return 1;
			}
			pbuf_add(&c->c2u, pbuf_data(&c->cin), n);
			pbuf_drop(&c->cin, n);
			moved = 1;
			if (HTTP_PARSER_ERRNO(&c->req.p) == HPE_PAUSED) {
				c->body = 0;
				if (!c->tunnel) {
					proxy_req_free(&c->req);
					proxy_req_init(&c->req);
				}
			}
		}
	}
	return moved;
}

static void
pconn_pump(struct pconn *c)
{
	while (pconn_step(c))
		;
	/* Done: a refusal written, or both sides over and drained. */
	if ((c->st == P_CLOSING && c->u2c.len == 0) ||
	    (c->u_eof && c->u2c.len == 0) ||
	    (c->c_eof && c->cin.len == 0 && c->c2u.len == 0 &&
	    (c->ufd == -1 || c->u_eof || c->tls != NULL))) {
		pconn_free(c);
		return;
	}
	pconn_watch(c);
}

static void
pconn_event(struct ev_loop *loop, ev_io *io, int revents)
{
	struct pconn *c = io->data;

	(void)loop;
	if (revents & EV_READ)
		*(io == &c->cio ? &c->c_rd : &c->u_rd) = 1;
	ev_timer_again(px.loop, &c->idle);
	pconn_pump(c);
}

static void
pconn_idle(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	pconn_free(t->data);
}

static void
pconn_free(struct pconn *c)
{
	TAILQ_REMOVE(&px.conns, c, entry);
	resolve_cancel(c->rq);
	ev_io_stop(px.loop, &c->cio);
	ev_io_stop(px.loop, &c->uio);
	ev_timer_stop(px.loop, &c->idle);
	if (c->tls != NULL) {
		(void)tls_close(c->tls);
		tls_free(c->tls);
	}
	if (c->ufd != -1)
		close(c->ufd);
	close(c->cfd);
	proxy_req_free(&c->req);
	if (c->c2u.b != NULL)
		explicit_bzero(c->c2u.b, c->c2u.cap);
	free(c->c2u.b);
	free(c->u2c.b);
	free(c->cin.b);
	free(c->uin.b);
	free(c->agent);
	free(c->host);
	free(c);
	proxy_stats.open--;
}

static void
proxy_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct pconn	*c;
	int		 fd;

	(void)loop;
	(void)io;
	(void)revents;
	if ((fd = accept4(px.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC))
	    == -1)
		return;
	if ((int64_t)proxy_stats.open >= px.conf.max_connections) {
		static const char busy[] = "HTTP/1.1 503 Service "
		    "Unavailable\r\nContent-Length: 0\r\nConnection: "
		    "close\r\n\r\n";

		(void)!write(fd, busy, sizeof(busy) - 1);
		close(fd);
		proxy_stats.refused++;
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->cfd = fd;
	c->ufd = -1;
	c->provider = -1;
	c->c_rd = 1;
	c->hello = 1;
	c->tls_rw = EV_READ;
	c->tls_ww = EV_WRITE;
	proxy_req_init(&c->req);
	TAILQ_INSERT_TAIL(&px.conns, c, entry);
	proxy_stats.connections++;
	proxy_stats.open++;
	ev_io_init(&c->cio, pconn_event, fd, 0);
	c->cio.data = c;
	ev_io_init(&c->uio, pconn_event, -1, 0);
	c->uio.data = c;
	ev_init(&c->idle, pconn_idle);
	c->idle.repeat = (double)px.conf.idle_timeout_seconds;
	c->idle.data = c;
	ev_timer_again(px.loop, &c->idle);
	pconn_pump(c);
}

int
proxy_start(struct ev_loop *loop, const char *home,
    const struct egress_conf *ec)
{
	struct sockaddr_un	 sun;
	char			*dir;

	px.loop = loop;
	TAILQ_INIT(&px.conns);
	resolve_init(loop);
	/*
	 * Not under run/ (0700): bwrap runs as the agent's user and must
	 * reach the socket to mount it. 0711: it can go through the
	 * directory, not list it; the socket is 0666, a token is the key.
	 */
	xasprintf(&dir, "%s/egress", home);
	if (mkdir(dir, 0711) == -1 && errno != EEXIST) {
		log_error("egress: %s: %s", dir, strerror(errno));
		free(dir);
		return -1;
	}
	(void)chmod(dir, 0711);
	free(dir);
	xasprintf(&px.cadir, "%s/egress/ca", home);
	proxy_configure(ec);
	px.path = egress_socket_path(home);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, px.path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		log_error("egress: %s: path too long for a socket", px.path);
		return -1;
	}
	(void)unlink(px.path);
	if ((px.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1 || bind(px.lfd, (struct sockaddr *)&sun,
	    sizeof(sun)) == -1 || chmod(px.path, 0666) == -1 ||
	    listen(px.lfd, 128) == -1) {
		log_error("egress: %s: %s", px.path, strerror(errno));
		return -1;
	}
	ev_io_init(&px.lio, proxy_accept, px.lfd, EV_READ);
	ev_io_start(loop, &px.lio);
	return 0;
}

/*
 * Marked and closed from the loop, not freed here: this can run inside
 * egress_grant_find(), in the middle of deciding for one of these very
 * connections.
 */
void
proxy_job_end(uint64_t job)
{
	struct pconn *c;

	TAILQ_FOREACH(c, &px.conns, entry)
		if (c->job == job && job != 0) {
			c->job = 0;
			c->st = P_CLOSING;
			pbuf_clear(&c->u2c);
			ev_feed_event(px.loop, &c->cio, EV_CUSTOM);
		}
}

const struct egress_conf *
proxy_conf(void)
{
	return &px.conf;
}

struct tls_config *
proxy_tls(void)
{
	return px.tls;
}

void
proxy_stop(void)
{
	while (!TAILQ_EMPTY(&px.conns))
		pconn_free(TAILQ_FIRST(&px.conns));
	if (px.lfd != -1) {
		ev_io_stop(px.loop, &px.lio);
		close(px.lfd);
		unlink(px.path);
		px.lfd = -1;
	}
	free(px.path);
	px.path = NULL;
	free(px.cadir);
	px.cadir = NULL;
	egress_conf_free(&px.conf);
	if (px.tls != NULL)
		tls_config_free(px.tls);
	px.tls = NULL;
}
