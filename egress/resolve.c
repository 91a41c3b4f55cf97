/*
 * Asynchronous name lookups for the egress process. getaddrinfo(3) blocks
 * for as long as the resolver takes (seconds to minutes with a resolver
 * that does not answer), and the egress loop carries every invocation's
 * traffic: one slow lookup would stall them all. glibc's getaddrinfo_a(3)
 * runs the same lookup (the same nsswitch, /etc/hosts, resolv.conf) in
 * threads of its own; its completion notice (SIGEV_THREAD) only wakes the
 * loop through an ev_async, which libev makes safe from any thread. All
 * else, callbacks included, happens on the loop.
 *
 * An IP literal is no lookup: it is answered from the loop at once. At
 * most RESOLVE_MAX lookups run at once in each lane (provider names, and
 * the names of CONNECTs, which a sandbox chooses); the others wait in
 * order, behind their own lane only. A
 * cancelled lookup that has already started cannot be stopped
 * (EAI_NOTCANCELED): it stays here, unseen, until it ends, and is freed.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "resolve.h"
#include "util.h"

struct resolve {
	TAILQ_ENTRY(resolve)	 entry;
	struct gaicb		 cb;
	struct addrinfo		 hints;
	char			*host;
	char			 serv[8];
	resolve_fn		 fn;		/* NULL: cancelled */
	void			*arg;
	int			 running;
	int			 failed;	/* getaddrinfo_a's own error */
	int			 literal;	/* an address: ar_result is it */
	int			 lane;
};

static struct {
	struct ev_loop		*loop;
	ev_async		 wake;
	size_t			 running[RESOLVE_NLANES];
	size_t			 waiting;
	TAILQ_HEAD(, resolve)	 list;		/* in the order asked */
} rs = { .list = TAILQ_HEAD_INITIALIZER(rs.list) };

/* In one of glibc's threads: nothing but the wake-up. */
static void
resolve_notify(union sigval sv)
{
	(void)sv;
	ev_async_send(rs.loop, &rs.wake);
}

static void
resolve_free(struct resolve *r)
{
	TAILQ_REMOVE(&rs.list, r, entry);
	if (r->running)
		rs.running[r->lane]--;
	else
		rs.waiting--;
	free(r->host);
	free(r);
}

static void
resolve_run(struct resolve *r)
{
	struct gaicb	*list[1] = { &r->cb };
	struct sigevent	 sev;
	int		 e;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = resolve_notify;
	r->running = 1;
	rs.waiting--;
	rs.running[r->lane]++;
	if ((e = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev)) != 0) {
		/* No thread to be had: an error, told from the loop. */
		r->failed = e;
		ev_async_send(rs.loop, &rs.wake);
	}
}

static void
resolve_start_waiting(void)
{
	struct resolve *r;

	TAILQ_FOREACH(r, &rs.list, entry)
		if (!r->running && rs.running[r->lane] < RESOLVE_MAX)
			resolve_run(r);
}

/* One finished lookup handed over, or 0 when none is. */
static int
resolve_reap_one(void)
{
	struct resolve	*r;
	struct addrinfo	*res;
	resolve_fn	 fn;
	void		*arg;
	int		 err;

	TAILQ_FOREACH(r, &rs.list, entry) {
		if (!r->running)
			continue;
		if (r->failed != 0)
			err = r->failed;
		else if (r->literal)
			err = 0;
		else if ((err = gai_error(&r->cb)) == EAI_INPROGRESS)
			continue;
		res = r->failed == 0 && err == 0 ? r->cb.ar_result : NULL;
		if (res == NULL && r->failed == 0 && r->cb.ar_result != NULL)
			freeaddrinfo(r->cb.ar_result);
		fn = r->fn;
		arg = r->arg;
		resolve_free(r);
		/* Freed first: fn may start or cancel lookups. */
		if (fn != NULL)
			fn(arg, err, res);
		else if (res != NULL)
			freeaddrinfo(res);
		return 1;
	}
	return 0;
}

static void
resolve_wake(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	while (resolve_reap_one())
		;
	resolve_start_waiting();
}

void
resolve_init(struct ev_loop *loop)
{
	rs.loop = loop;
	ev_async_init(&rs.wake, resolve_wake);
	ev_async_start(loop, &rs.wake);
}

struct resolve *
resolve_start(const char *host, uint16_t port, int lane, resolve_fn fn,
    void *arg)
{
	struct resolve *r;

	r = xcalloc(1, sizeof(*r));
	r->lane = lane;
	r->host = xstrdup(host);
	snprintf(r->serv, sizeof(r->serv), "%u", port);
	r->hints.ai_family = AF_UNSPEC;
	r->hints.ai_socktype = SOCK_STREAM;
	r->cb.ar_name = r->host;
	r->cb.ar_service = r->serv;
	r->cb.ar_request = &r->hints;
	r->fn = fn;
	r->arg = arg;
	TAILQ_INSERT_TAIL(&rs.list, r, entry);
	rs.waiting++;
	/* An address needs no lookup and waits for none. */
	r->hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(host, r->serv, &r->hints, &r->cb.ar_result) == 0) {
		r->literal = r->running = 1;
		rs.waiting--;
		rs.running[lane]++;
		ev_async_send(rs.loop, &rs.wake);
		return r;
	}
	r->cb.ar_result = NULL;
	r->hints.ai_flags = 0;
	if (rs.running[lane] < RESOLVE_MAX)
		resolve_run(r);
	return r;
}

void
resolve_cancel(struct resolve *r)
{
	if (r == NULL)
		return;
	if (r->literal && r->cb.ar_result != NULL)
		freeaddrinfo(r->cb.ar_result);
	if (!r->running || r->failed != 0 || r->literal) {
		resolve_free(r);
		resolve_start_waiting();
		return;
	}
	switch (gai_cancel(&r->cb)) {
	case EAI_CANCELED:
		resolve_free(r);
		break;
	case EAI_ALLDONE:
		if (gai_error(&r->cb) == 0 && r->cb.ar_result != NULL)
			freeaddrinfo(r->cb.ar_result);
		resolve_free(r);
		break;
	default:	/* EAI_NOTCANCELED: freed when it ends */
		r->fn = NULL;
		r->arg = NULL;
		break;
	}
	resolve_start_waiting();
}

size_t
resolve_pending(void)
{
	size_t i, n = rs.waiting;

	for (i = 0; i < RESOLVE_NLANES; i++)
		n += rs.running[i];
	return n;
}
