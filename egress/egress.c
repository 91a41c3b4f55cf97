/*
 * The egress process's loop: a libev default loop of its own (a fresh exec
 * of the clawvisor binary), one socketpair to the supervisor. It gets the
 * keys in a frame, never in its environment or argv, and the tokens as
 * the supervisor dispatches and ends invocations; after each change it
 * reports its counters, which is what `status` shows. It is not dumpable:
 * no process of the same uid can ptrace it or read its memory.
 */
#include <sys/prctl.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "config.h"
#include "egress.h"
#include "egress_msg.h"
#include "proxy.h"
#include "ipc.h"
#include "log.h"
#include "util.h"

static struct {
	struct ev_loop		*loop;
	struct ipc_conn		 conn;
	ev_io			 rio;
	ev_io			 wio;
	ev_signal		 sigterm;
	ev_signal		 sigusr1;
	ev_timer		 tick;
	struct proxy_stats	 sent;		/* the proxy's, as last reported */
	pid_t			 parent;
	const char		*home;
	char			*keys[EGRESS_NKEYS];	/* egress_key_names order */
	TAILQ_HEAD(, egress_grant) grants;
	uint64_t		 live;
	uint64_t		 registered;
	uint64_t		 revoked;
} e;

static void	egress_read(struct ev_loop *, ev_io *, int);
static void	egress_reconfigure(void);

static void
egress_keys_clear(void)
{
	size_t i;

	for (i = 0; i < EGRESS_NKEYS; i++) {
		if (e.keys[i] != NULL)
			freezero(e.keys[i], strlen(e.keys[i]) + 1);
		e.keys[i] = NULL;
	}
}

static void
egress_grant_free(struct egress_grant *g)
{
	free(g->agent);
	explicit_bzero(g, sizeof(*g));
	free(g);
}

static void __attribute__((noreturn))
egress_exit(int status, const char *why)
{
	struct egress_grant *g;

	if (why != NULL)
		log_info("exiting: %s", why);
	while ((g = TAILQ_FIRST(&e.grants)) != NULL) {
		TAILQ_REMOVE(&e.grants, g, entry);
		egress_grant_free(g);
	}
	egress_keys_clear();
	check_stop();
	proxy_stop();
	exit(status);
}

static void
egress_write(struct ev_loop *loop, ev_io *io, int revents)
{
	int r;

	(void)loop;
	(void)io;
	(void)revents;
	if ((r = ipc_flush(&e.conn)) == -1)
		egress_exit(1, e.conn.err);
	if (r == 1)
		ev_io_stop(e.loop, &e.wio);
}

/*
 * Queued, and written at once when nothing is waiting before it: a
 * request's report costs one write(2), not a turn of the loop and two
 * epoll_ctl(2) calls to be told the socketpair has room.
 */
static void
egress_send(enum ipc_type t, uint64_t id, json_object *o)
{
	int r;

	if (ipc_queue(&e.conn, t, id, o) == -1)
		egress_exit(1, e.conn.err);
	if (ev_is_active(&e.wio))
		return;		/* behind what waits: egress_write sends it */
	if ((r = ipc_flush(&e.conn)) == -1)
		egress_exit(1, e.conn.err);
	if (r == 0)
		ev_io_start(e.loop, &e.wio);
}

/* What the egress process holds, for `status`: counts and key names only. */
static void
egress_stats(void)
{
	json_object	*o = json_object_new_object(), *k;
	size_t		 i;

	json_object_object_add(o, "tokensLive",
	    json_object_new_int64((int64_t)e.live));
	json_object_object_add(o, "tokensRegistered",
	    json_object_new_int64((int64_t)e.registered));
	json_object_object_add(o, "tokensRevoked",
	    json_object_new_int64((int64_t)e.revoked));
	k = json_object_new_array();
	for (i = 0; i < EGRESS_NKEYS; i++)
		if (e.keys[i] != NULL)
			json_object_array_add(k,
			    json_object_new_string(egress_key_names[i]));
	json_object_object_add(o, "keys", k);
	json_object_object_add(o, "connections",
	    json_object_new_int64((int64_t)proxy_stats.connections));
	json_object_object_add(o, "connectionsOpen",
	    json_object_new_int64((int64_t)proxy_stats.open));
	json_object_object_add(o, "forwarded",
	    json_object_new_int64((int64_t)proxy_stats.forwarded));
	json_object_object_add(o, "tunnels",
	    json_object_new_int64((int64_t)proxy_stats.tunnels));
	json_object_object_add(o, "refused",
	    json_object_new_int64((int64_t)proxy_stats.refused));
	e.sent = proxy_stats;
	egress_send(MSG_EGRESS_STATS, 0, o);
	json_object_put(o);
}

static int
egress_take_keys(json_object *o)
{
	json_object	*v;
	size_t		 i;

	egress_keys_clear();
	for (i = 0; i < EGRESS_NKEYS; i++)
		if (json_object_object_get_ex(o, egress_key_names[i], &v) &&
		    json_object_is_type(v, json_type_string) &&
		    json_object_get_string_len(v) > 0)
			e.keys[i] = xstrdup(json_object_get_string(v));
	/* The frame's copy goes with the object; its text is wiped. */
	json_object_object_foreach(o, name, val) {
		(void)name;
		if (json_object_is_type(val, json_type_string))
			explicit_bzero((char *)json_object_get_string(val),
			    json_object_get_string_len(val));
	}
	return 0;
}

static int
egress_register(uint64_t job, json_object *o)
{
	struct egress_grant	*g;
	const char		*tok, *agent;
	int			 prov;

	if (egress_msg_grant(o, &tok, &agent, &prov) == -1) {
		log_error("fatal: protocol error: bad token registration");
		return -1;
	}
	TAILQ_FOREACH(g, &e.grants, entry)
		if (g->job == job) {
			log_error("fatal: protocol error: job %llu registered "
			    "twice", (unsigned long long)job);
			return -1;
		}
	g = xcalloc(1, sizeof(*g));
	g->job = job;
	strlcpy(g->token, tok, sizeof(g->token));
	explicit_bzero((char *)tok, strlen(tok));
	g->agent = xstrdup(agent);
	g->provider = prov;
	TAILQ_INSERT_TAIL(&e.grants, g, entry);
	e.live++;
	e.registered++;
	log_debug("token registered for job %llu (agent %s)",
	    (unsigned long long)job, agent);
	return 0;
}

static void
egress_revoke(uint64_t job)
{
	struct egress_grant *g;

	TAILQ_FOREACH(g, &e.grants, entry)
		if (g->job == job)
			break;
	if (g == NULL)
		return;		/* never registered: egress was restarted */
	TAILQ_REMOVE(&e.grants, g, entry);
	egress_grant_free(g);
	e.live--;
	e.revoked++;
	log_debug("token of job %llu revoked", (unsigned long long)job);
}

/* Handle every whole frame read so far. */
static void
egress_orders(void)
{
	struct ipc_hdr	 h;
	json_object	*o;
	int		 n, changed = 0;

	while ((n = ipc_next(&e.conn, &h, &o)) == 1) {
		switch (h.type) {
		case MSG_EGRESS_KEYS:
			egress_take_keys(o);
			changed = 1;
			break;
		case MSG_EGRESS_REGISTER:
			if (egress_register(h.id, o) == -1) {
				json_object_put(o);
				egress_exit(1, NULL);
			}
			changed = 1;
			break;
		case MSG_EGRESS_REVOKE:
			egress_revoke(h.id);
			proxy_job_end(h.id);
			changed = 1;
			break;
		case MSG_EGRESS_CONFIG:
			egress_reconfigure();
			break;
		case MSG_EGRESS_CHECK:
			check_start(e.loop, h.id, o);
			break;
		default:
			json_object_put(o);
			log_error("fatal: protocol error: unexpected message "
			    "type %u", h.type);
			egress_exit(1, NULL);
		}
		json_object_put(o);
	}
	if (n == -1) {
		log_error("fatal: protocol error: %s", e.conn.err);
		egress_exit(1, NULL);
	}
	if (changed)
		egress_stats();
}

static void
egress_read(struct ev_loop *loop, ev_io *io, int revents)
{
	int r;

	(void)loop;
	(void)io;
	(void)revents;
	if ((r = ipc_fill(&e.conn)) == -1) {
		log_warnx("supervisor connection: %s", e.conn.err);
		egress_exit(0, "supervisor connection lost");
	}
	egress_orders();
	if (r == 0)
		egress_exit(0, "supervisor closed the connection");
}

/* settings.json again, as the supervisor has just loaded it. */
static void
egress_reconfigure(void)
{
	struct config	*cf;
	char		 err[512];

	if ((cf = config_load(e.home, err, sizeof(err))) == NULL) {
		log_warnx("settings not reloaded, the old ones stay: %s", err);
		return;
	}
	proxy_configure(&cf->egress);
	config_free(cf);
}

/* The provider's name for the metrics' label, "none" when not known. */
static const char *
prov_label(int prov)
{
	return prov == PROV_ANTHROPIC || prov == PROV_OPENAI ?
	    config_provider_name((enum provider)prov) : "none";
}

void
egress_checked(uint64_t seq, json_object *o)
{
	egress_send(MSG_EGRESS_CHECKED, seq, o);
}

void
egress_forwarded(int prov)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "provider", json_object_new_string(
	    prov_label(prov)));
	egress_send(MSG_EGRESS_FORWARDED, 0, o);
	json_object_put(o);
}

void
egress_refused(const char *host, const char *agent, int prov,
    const char *reason, const char *why)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "host", json_object_new_string(host));
	json_object_object_add(o, "agent", json_object_new_string(
	    agent != NULL ? agent : "-"));
	json_object_object_add(o, "provider", json_object_new_string(
	    prov_label(prov)));
	json_object_object_add(o, "reason", json_object_new_string(reason));
	json_object_object_add(o, "why", json_object_new_string(why));
	egress_send(MSG_EGRESS_REFUSED, 0, o);
	json_object_put(o);
	egress_stats();
}

const struct egress_grant *
egress_grant_find(const char *token)
{
	const struct egress_grant	*g, *found = NULL;

	/* A registration sent just before the request may be unread. */
	if (ipc_fill(&e.conn) == 1)
		egress_orders();
	/* Every grant compared, each in constant time. */
	TAILQ_FOREACH(g, &e.grants, entry)
		if (egress_token_equal(g->token, token))
			found = g;
	return found;
}

const char *
egress_key(int provider, int *bearer)
{
	/* Anthropic: the API key, else Claude Code's OAuth token; OpenAI:
	 * codex's own variable first, as codex reads it. */
	static const int order[2][2] = { { 0, 1 }, { 3, 2 } };
	size_t i;

	if (provider != PROV_ANTHROPIC && provider != PROV_OPENAI)
		return NULL;
	for (i = 0; i < 2; i++)
		if (e.keys[order[provider][i]] != NULL) {
			*bearer = order[provider][i] != 0;
			return e.keys[order[provider][i]];
		}
	return NULL;
}

/* The proxy's counters move with every connection: reported once a
 * second at most, when they have. */
static void
egress_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	if (memcmp(&e.sent, &proxy_stats, sizeof(proxy_stats)) != 0)
		egress_stats();
}

static void
egress_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
	(void)loop;
	(void)revents;
	if (s->signum == SIGUSR1)
		log_reopen();
	else
		egress_exit(0, "SIGTERM");
}

int
egress_main(int fd, const char *home, int log_stderr)
{
	struct config	*cf;
	json_object	*hello;
	sigset_t	 set;
	char		*logpath, err[512];

	xasprintf(&logpath, "%s/logs/clawvisor.log", home);
	log_open("egress", logpath, log_stderr);
	free(logpath);
	setproctitle("egress");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);
	/* No core with keys in it, no ptrace or /proc/PID/mem by our uid. */
	if (prctl(PR_SET_DUMPABLE, 0) == -1)
		log_warnx("prctl(PR_SET_DUMPABLE): %s", strerror(errno));
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if ((e.parent = getppid()) == 1)
		egress_exit(0, "supervisor gone");
	TAILQ_INIT(&e.grants);
	e.loop = ev_default_loop(EVFLAG_AUTO);
	ipc_init(&e.conn, fd);
	fd_nonblock(fd);
	fd_cloexec(fd);
	ev_io_init(&e.rio, egress_read, fd, EV_READ);
	ev_io_init(&e.wio, egress_write, fd, EV_WRITE);
	ev_io_start(e.loop, &e.rio);
	ev_signal_init(&e.sigterm, egress_signal, SIGTERM);
	ev_signal_start(e.loop, &e.sigterm);
	ev_signal_init(&e.sigusr1, egress_signal, SIGUSR1);
	ev_signal_start(e.loop, &e.sigusr1);
	ev_timer_init(&e.tick, egress_tick, 1., 1.);
	ev_timer_start(e.loop, &e.tick);
	/* Blocked since the fork (egress_spawn): now they are watched. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	/* Listening before the hello: a socket the supervisor hands out
	 * is there. */
	e.home = home;
	if ((cf = config_load(home, err, sizeof(err))) == NULL) {
		log_error("fatal: %s", err);
		egress_exit(1, NULL);
	}
	if (proxy_start(e.loop, home, &cf->egress) == -1) {
		config_free(cf);
		egress_exit(1, NULL);
	}
	config_free(cf);
	hello = json_object_new_object();
	json_object_object_add(hello, "pid", json_object_new_int64(getpid()));
	json_object_object_add(hello, "version",
	    json_object_new_int(IPC_VERSION));
	egress_send(MSG_HELLO, 0, hello);
	json_object_put(hello);
	log_info("started (pid %d)", (int)getpid());
	ev_run(e.loop, 0);
	egress_exit(0, NULL);
}
