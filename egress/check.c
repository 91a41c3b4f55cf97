/*
 * `sandbox doctor`'s TLS check of the provider URLs (SPEC §9, DECISIONS
 * 242), done by the egress process because it is the one that connects:
 * the same CAs (system + ca_file), the same host-name verification, the
 * same lookups. It runs on the egress loop like a proxied connection
 * (lookup off the loop, non-blocking connect and handshake) and is bounded
 * by CHECK_SECONDS; the answer goes to the supervisor in one frame.
 *
 * Each provider ends in one of three results: "ok" (the TLS version and
 * the name verified), "failed" (the provider answered and something is
 * wrong: connection refused, certificate or name not verified), or
 * "unchecked" (no network here: the name does not resolve, the network is
 * unreachable, or no answer in time).
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <tls.h>

#include "config.h"
#include "egress.h"
#include "log.h"
#include "proxy.h"
#include "resolve.h"
#include "util.h"

#define CHECK_SECONDS	10.
#define CHECK_MAX	4	/* checks at once; past it, "busy" */

struct check;

struct probe {
	struct check	*ck;
	int		 prov;
	char		*host;
	struct resolve	*rq;
	int		 fd;
	struct tls	*tls;
	ev_io		 io;
	json_object	*result;	/* set when done */
};

struct check {
	TAILQ_ENTRY(check)	 entry;
	uint64_t		 seq;
	ev_timer		 timer;
	size_t			 n;
	struct probe		 p[EGRESS_NPROVIDERS];
};

static struct {
	struct ev_loop		*loop;
	size_t			 n;
	TAILQ_HEAD(, check)	 list;
} ch = { .list = TAILQ_HEAD_INITIALIZER(ch.list) };

static void	probe_event(struct ev_loop *, ev_io *, int);

static void
probe_close(struct probe *p)
{
	resolve_cancel(p->rq);
	p->rq = NULL;
	ev_io_stop(ch.loop, &p->io);
	if (p->tls != NULL) {
		(void)tls_close(p->tls);
		tls_free(p->tls);
		p->tls = NULL;
	}
	if (p->fd != -1)
		close(p->fd);
	p->fd = -1;
}

static void
check_end(struct check *ck)
{
	json_object	*o, *a;
	size_t		 i;

	ev_timer_stop(ch.loop, &ck->timer);
	a = json_object_new_array();
	for (i = 0; i < ck->n; i++) {
		probe_close(&ck->p[i]);
		json_object_array_add(a, ck->p[i].result);
		free(ck->p[i].host);
	}
	o = json_object_new_object();
	json_object_object_add(o, "providers", a);
	egress_checked(ck->seq, o);
	json_object_put(o);
	TAILQ_REMOVE(&ch.list, ck, entry);
	ch.n--;
	free(ck);
}

/* The probe's result (result: ok, failed or unchecked); the check ends
 * with its last probe. */
static void
probe_done(struct probe *p, const char *result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
probe_done(struct probe *p, const char *result, const char *fmt, ...)
{
	const struct egress_conf	*ec = proxy_conf();
	struct check			*ck = p->ck;
	char				 detail[512];
	va_list				 ap;
	size_t				 i;

	if (p->result != NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	probe_close(p);
	p->result = json_object_new_object();
	json_object_object_add(p->result, "provider", json_object_new_string(
	    config_provider_name((enum provider)p->prov)));
	json_object_object_add(p->result, "url", json_object_new_string(
	    ec->providers[p->prov].url));
	json_object_object_add(p->result, "result",
	    json_object_new_string(result));
	json_object_object_add(p->result, "detail",
	    json_object_new_string(detail));
	for (i = 0; i < ck->n; i++)
		if (ck->p[i].result == NULL)
			return;
	check_end(ck);
}

static void
probe_watch(struct probe *p, int events)
{
	ev_io_stop(ch.loop, &p->io);
	ev_io_set(&p->io, p->fd, events);
	ev_io_start(ch.loop, &p->io);
}

static void
probe_handshake(struct probe *p)
{
	int r;

	if ((r = tls_handshake(p->tls)) == TLS_WANT_POLLIN ||
	    r == TLS_WANT_POLLOUT) {
		probe_watch(p, r == TLS_WANT_POLLIN ? EV_READ : EV_WRITE);
		return;
	}
	if (r == -1) {
		probe_done(p, "failed", "TLS handshake with %s: %s", p->host,
		    tls_error(p->tls));
		return;
	}
	probe_done(p, "ok", "%s, certificate of %s verified (issuer %s)",
	    tls_conn_version(p->tls), p->host,
	    tls_peer_cert_issuer(p->tls) != NULL ?
	    tls_peer_cert_issuer(p->tls) : "not given");
}

static void
probe_event(struct ev_loop *loop, ev_io *io, int revents)
{
	struct probe	*p = io->data;
	socklen_t	 sl = sizeof(int);
	int		 err = 0;

	(void)loop;
	(void)revents;
	if (p->tls != NULL) {
		probe_handshake(p);
		return;
	}
	if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1)
		err = errno;
	if (err == ENETUNREACH || err == EHOSTUNREACH) {
		probe_done(p, "unchecked", "no network here: not checked "
		    "(%s: %s)", p->host, strerror(err));
		return;
	}
	if (err != 0) {
		probe_done(p, "failed", "connection to %s: %s", p->host,
		    strerror(err));
		return;
	}
	if ((p->tls = tls_client()) == NULL ||
	    tls_configure(p->tls, proxy_tls()) == -1 ||
	    tls_connect_socket(p->tls, p->fd, p->host) == -1) {
		probe_done(p, "failed", "TLS set-up for %s: %s", p->host,
		    p->tls != NULL ? tls_error(p->tls) : "tls_client failed");
		return;
	}
	probe_handshake(p);
}

static void
probe_resolved(void *arg, int gerr, struct addrinfo *res)
{
	struct probe	*p = arg;
	struct addrinfo	*ai;
	int		 e = 0;

	p->rq = NULL;
	if (gerr != 0) {
		probe_done(p, "unchecked", "no network here: not checked "
		    "(%s: %s)", p->host, gai_strerror(gerr));
		return;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((p->fd = socket(ai->ai_family, ai->ai_socktype |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
			e = errno;
			continue;
		}
		if (connect(p->fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    errno == EINPROGRESS)
			break;
		e = errno;
		close(p->fd);
		p->fd = -1;
	}
	freeaddrinfo(res);
	if (p->fd == -1) {
		if (e == ENETUNREACH || e == EHOSTUNREACH || e == EADDRNOTAVAIL)
			probe_done(p, "unchecked", "no network here: not "
			    "checked (%s: %s)", p->host, strerror(e));
		else
			probe_done(p, "failed", "connection to %s: %s",
			    p->host, strerror(e));
		return;
	}
	probe_watch(p, EV_WRITE);
}

static void
check_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct check	*ck = t->data;
	struct probe	*todo[EGRESS_NPROVIDERS];
	size_t		 i, n = 0;
	int		 tls;

	(void)loop;
	(void)revents;
	/* The last probe_done() frees ck: the probes are listed first. */
	for (i = 0; i < ck->n; i++)
		if (ck->p[i].result == NULL)
			todo[n++] = &ck->p[i];
	for (i = 0; i < n; i++) {
		tls = todo[i]->tls != NULL;
		if (tls)
			probe_done(todo[i], "failed", "%s: no TLS answer in "
			    "%.0f s", todo[i]->host, CHECK_SECONDS);
		else
			probe_done(todo[i], "unchecked", "no network here: "
			    "not checked (%s: no answer in %.0f s)",
			    todo[i]->host, CHECK_SECONDS);
	}
}

void
check_start(struct ev_loop *loop, uint64_t seq, json_object *req)
{
	const struct egress_conf	*ec = proxy_conf();
	struct check			*ck;
	struct probe			*p;
	json_object			*a, *v, *o;
	size_t				 i, j;

	ch.loop = loop;
	if (ch.n >= CHECK_MAX) {
		o = json_object_new_object();
		json_object_object_add(o, "error", json_object_new_string(
		    "egress: too many checks at once, try again"));
		egress_checked(seq, o);
		json_object_put(o);
		return;
	}
	ck = xcalloc(1, sizeof(*ck));
	ck->seq = seq;
	TAILQ_INSERT_TAIL(&ch.list, ck, entry);
	ch.n++;
	if (!json_object_object_get_ex(req, "providers", &a) ||
	    !json_object_is_type(a, json_type_array))
		a = NULL;
	for (i = 0; i < EGRESS_NPROVIDERS; i++) {
		for (j = 0; a != NULL && j < json_object_array_length(a); j++) {
			v = json_object_array_get_idx(a, j);
			if (json_object_is_type(v, json_type_string) &&
			    strcmp(json_object_get_string(v),
			    config_provider_name((enum provider)i)) == 0)
				break;
		}
		if (a != NULL && j == json_object_array_length(a))
			continue;
		p = &ck->p[ck->n++];
		p->ck = ck;
		p->prov = (int)i;
		p->fd = -1;
		p->host = xstrdup(ec->providers[i].host);
		ev_init(&p->io, probe_event);
		p->io.data = p;
	}
	ev_timer_init(&ck->timer, check_timeout, CHECK_SECONDS, 0.);
	ck->timer.data = ck;
	if (ck->n == 0) {
		check_end(ck);
		return;
	}
	ev_timer_start(loop, &ck->timer);
	for (i = 0; i < ck->n; i++)
		ck->p[i].rq = resolve_start(ck->p[i].host,
		    ec->providers[ck->p[i].prov].port, RESOLVE_PROVIDER,
		    probe_resolved, &ck->p[i]);
}

void
check_stop(void)
{
	struct check	*ck;
	size_t		 i;

	while ((ck = TAILQ_FIRST(&ch.list)) != NULL) {
		ev_timer_stop(ch.loop, &ck->timer);
		for (i = 0; i < ck->n; i++) {
			probe_close(&ck->p[i]);
			json_object_put(ck->p[i].result);
			free(ck->p[i].host);
		}
		TAILQ_REMOVE(&ch.list, ck, entry);
		ch.n--;
		free(ck);
	}
}
