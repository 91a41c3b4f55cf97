/*
 * The supervisor's side of the egress process (SPEC §9): started when
 * sandbox.egress.mode is "proxy", respawned like a worker when it dies,
 * stopped with the daemon. At start the provider keys leave the
 * supervisor's environment (wiped, then unset), so that no worker it
 * execs, and no sandbox, ever has them; the supervisor keeps one copy to
 * give each egress process it starts, in a frame, never in an environment.
 *
 * Tokens: one per invocation, made at dispatch and registered before the
 * job is sent to its worker (the frames are ordered on one socket), revoked
 * when the attempt ends in whatever way. With egress down no token is made
 * and the worker fails the invocation closed, as transient.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "egress_msg.h"
#include "egress_token.h"
#include "log.h"
#include "metrics.h"
#include "supervisor.h"
#include "util.h"

#define EGRESS_RESPAWN_MIN	0.1
#define EGRESS_RESPAWN_MAX	30.0

enum egress_state { EG_OFF, EG_DOWN, EG_STARTING, EG_UP };

static struct {
	enum egress_state state;
	pid_t		 pid;
	struct ipc_conn	 conn;
	ev_io		 rio;
	ev_io		 wio;
	ev_child	 child;
	ev_timer	 respawn;
	double		 delay;
	uint64_t	 starts;
	char		*keys[EGRESS_NKEYS];
	json_object	*stats;		/* the egress process's last report */
	char		*socket;
	char		*bridge;
	char		*exe;		/* clawvisor-egress */
	uint64_t	 check_seq;	/* the doctor's TLS checks, numbered */
	json_object	*checks[4];	/* the last answers, by seq % 4 */
} eg;		/* state EG_OFF: the proxy is not configured */

static void	egress_spawn(void);
static const char	*egress_exe(void);
static void	egress_down(const char *why);
static void	egress_refusal(json_object *);
static void	egress_counted(json_object *, int);

/* Take the keys out of our environment: wiped where they are, unset. */
static void
egress_keys_take(void)
{
	extern char	**environ;
	size_t		  i, j, n;
	char		 *v;

	for (i = 0; i < EGRESS_NKEYS; i++) {
		if ((v = getenv(egress_key_names[i])) != NULL && *v != '\0')
			eg.keys[i] = xstrdup(v);
		n = strlen(egress_key_names[i]);
		for (j = 0; environ != NULL && environ[j] != NULL; j++)
			if (strncmp(environ[j], egress_key_names[i], n) == 0 &&
			    environ[j][n] == '=')
				explicit_bzero(environ[j] + n + 1,
				    strlen(environ[j] + n + 1));
		unsetenv(egress_key_names[i]);
	}
}

static void
egress_flush(struct ev_loop *loop, ev_io *io, int revents)
{
	int r;

	(void)loop;
	(void)io;
	(void)revents;
	if ((r = ipc_flush(&eg.conn)) == -1)
		egress_down(eg.conn.err);
	else if (r == 1)
		ev_io_stop(sv.loop, &eg.wio);
}

static int
egress_send(enum ipc_type t, uint64_t id, json_object *o)
{
	if (eg.state != EG_STARTING && eg.state != EG_UP)
		return -1;
	if (ipc_queue(&eg.conn, t, id, o) == -1) {
		egress_down(eg.conn.err);
		return -1;
	}
	if (!ev_is_active(&eg.wio) && ipc_flush(&eg.conn) == 1)
		return 0;
	if (!ev_is_active(&eg.wio))
		ev_io_start(sv.loop, &eg.wio);
	return 0;
}

static void
egress_read(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ipc_hdr	 h;
	json_object	*o;
	int		 r, n;

	(void)loop;
	(void)io;
	(void)revents;
	if ((r = ipc_fill(&eg.conn)) == -1) {
		egress_down(eg.conn.err);
		return;
	}
	while (eg.state != EG_DOWN && (n = ipc_next(&eg.conn, &h, &o)) == 1) {
		if (h.type == MSG_HELLO && eg.state == EG_STARTING) {
			eg.state = EG_UP;
			eg.delay = EGRESS_RESPAWN_MIN;
			log_info("egress (pid %d) ready", (int)eg.pid);
			sched_kick();
		} else if (h.type == MSG_EGRESS_STATS) {
			json_object_put(eg.stats);
			eg.stats = egress_msg_stats(o);
		} else if (h.type == MSG_EGRESS_REFUSED) {
			egress_refusal(o);
		} else if (h.type == MSG_EGRESS_FORWARDED) {
			egress_counted(o, 0);
		} else if (h.type == MSG_EGRESS_CHECKED) {
			json_object_object_add(o, "seq",
			    json_object_new_int64((int64_t)h.id));
			json_object_put(eg.checks[h.id % 4]);
			eg.checks[h.id % 4] = json_object_get(o);
		} else {
			json_object_put(o);
			egress_down("protocol error: unexpected message");
			return;
		}
		json_object_put(o);
	}
	if (eg.state == EG_DOWN)
		return;
	if (n == -1) {
		egress_down(eg.conn.err);
		return;
	}
	if (r == 0)
		egress_down(ipc_eof_check(&eg.conn) == -1 ? eg.conn.err :
		    "closed its connection");
}

/* A forwarded request (refused: 0) or a refusal, in the metrics. */
static void
egress_counted(json_object *o, int refused)
{
	const char	*prov, *reason = NULL;

	/* Only the listed labels, whatever the egress process sends, so that
	 * the number of series stays bounded. */
	if ((prov = egress_msg_label(o, "provider", egress_msg_providers)) ==
	    NULL || (refused && (reason = egress_msg_label(o, "reason",
	    egress_msg_reasons)) == NULL))
		return;
	metrics_egress(prov, reason);
}

/*
 * A refusal: logged once per host a minute (errlog's bounded dedupe, with
 * the count held back), and an event each time it is logged. Never a key
 * or a token: the egress process sends neither.
 */
static void
egress_refusal(json_object *o)
{
	json_object	*ev;
	const char	*host, *agent, *why;
	char		 err[64];
	unsigned	 repeats;

	egress_counted(o, 1);		/* every one, before the dedupe */
	if (ipc_get_str(o, "host", &host, err, sizeof(err)) == -1 ||
	    ipc_get_str(o, "agent", &agent, err, sizeof(err)) == -1 ||
	    ipc_get_str(o, "why", &why, err, sizeof(err)) == -1)
		return;
	if (!errlog_should("egress refusal", host, &repeats))
		return;
	log_warnx("egress refused a request to %s (agent %s): %s%s", host,
	    agent, why, repeats > 0 ? " (and more since the last line)" : "");
	ev = json_object_new_object();
	json_object_object_add(ev, "host", json_object_new_string(host));
	json_object_object_add(ev, "agentId", json_object_new_string(agent));
	json_object_object_add(ev, "reason", json_object_new_string(why));
	json_object_object_add(ev, "repeats", json_object_new_int64(repeats));
	event_emit("egress_refused", ev);
}

/* The settings were reloaded: the egress process reads them again. */
void
egress_reloaded(void)
{
	egress_send(MSG_EGRESS_CONFIG, 0, NULL);
}

static void
egress_respawn(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	if (!sv.stopping && eg.state == EG_DOWN && eg.pid == 0)
		egress_spawn();
}

static void
egress_reaped(struct ev_loop *loop, ev_child *c, int revents)
{
	char	why[96];
	int	st = c->rstatus;

	(void)revents;
	ev_child_stop(loop, c);
	if (WIFSIGNALED(st))
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(st));
	else
		snprintf(why, sizeof(why), "exited with status %d",
		    WEXITSTATUS(st));
	if (eg.state != EG_DOWN)
		egress_down(why);
	eg.pid = 0;
	if (sv.stopping || eg.state == EG_OFF)
		return;
	log_warnx("egress %s; respawning in %.1fs", why, eg.delay);
	ev_timer_init(&eg.respawn, egress_respawn, eg.delay, 0.);
	ev_timer_start(sv.loop, &eg.respawn);
	eg.delay = eg.delay * 2 > EGRESS_RESPAWN_MAX ? EGRESS_RESPAWN_MAX :
	    eg.delay * 2;
}

/*
 * Gone or to go. Its tokens went with it: a sandbox that still runs has
 * lost its way out, and its invocation fails on its own (the CLI cannot
 * reach its provider); the next ones get tokens from the new process.
 */
static void
egress_down(const char *why)
{
	if (eg.state == EG_DOWN || eg.state == EG_OFF)
		return;
	if (why != NULL)
		log_warnx("egress (pid %d): %s", (int)eg.pid, why);
	eg.state = EG_DOWN;
	ev_io_stop(sv.loop, &eg.rio);
	ev_io_stop(sv.loop, &eg.wio);
	close(eg.conn.fd);
	ipc_free(&eg.conn);
	if (eg.pid > 0)
		kill(eg.pid, SIGKILL);
	json_object_put(eg.stats);
	eg.stats = NULL;
}

static void
egress_spawn(void)
{
	static const char *const role[] = { "egress", NULL };
	json_object	*keys;
	size_t		 k;
	int		 fd;
	pid_t		 pid;

	if (access(egress_exe(), X_OK) == -1) {
		log_error("egress: cannot execute %s: %s", egress_exe(),
		    strerror(errno));
		goto retry;
	}
	if ((pid = spawn_child(egress_exe(), role, &fd)) == -1)
		goto retry;
	eg.pid = pid;
	eg.state = EG_STARTING;
	eg.starts++;
	ipc_init(&eg.conn, fd);
	ev_io_init(&eg.rio, egress_read, fd, EV_READ);
	ev_io_init(&eg.wio, egress_flush, fd, EV_WRITE);
	ev_io_start(sv.loop, &eg.rio);
	ev_child_init(&eg.child, egress_reaped, pid, 0);
	ev_child_start(sv.loop, &eg.child);
	keys = json_object_new_object();
	for (k = 0; k < EGRESS_NKEYS; k++)
		if (eg.keys[k] != NULL)
			json_object_object_add(keys, egress_key_names[k],
			    json_object_new_string(eg.keys[k]));
	egress_send(MSG_EGRESS_KEYS, 0, keys);
	json_object_object_foreach(keys, name, val) {
		(void)name;
		explicit_bzero((char *)json_object_get_string(val),
		    json_object_get_string_len(val));
	}
	json_object_put(keys);
	return;
retry:
	eg.state = EG_DOWN;
	ev_timer_init(&eg.respawn, egress_respawn, EGRESS_RESPAWN_MAX / 10,
	    0.);
	ev_timer_start(sv.loop, &eg.respawn);
}

void
egress_init(void)
{
	if (sv.conf->egress.mode != EGRESS_PROXY)
		return;
	egress_keys_take();
	eg.delay = EGRESS_RESPAWN_MIN;
	eg.state = EG_DOWN;
	egress_spawn();
}

int
egress_reload_check(const struct config *cf, char *err, size_t errlen)
{
	if ((cf->egress.mode == EGRESS_PROXY) == (eg.state != EG_OFF))
		return 0;
	snprintf(err, errlen, "sandbox.egress.mode: a change between \"off\" "
	    "and \"proxy\" takes a restart (the keys move between processes "
	    "at start), got \"%s\" while \"%s\" is running",
	    cf->egress.mode == EGRESS_PROXY ? "proxy" : "off",
	    eg.state == EG_OFF ? "off" : "proxy");
	return -1;
}

char *
egress_register(uint64_t job, const struct agent *a)
{
	json_object	*o;
	char		 tok[EGRESS_TOKEN_LEN + 1];
	int		 r;

	if (eg.state != EG_UP && eg.state != EG_STARTING)
		return NULL;
	egress_token_new(tok, sizeof(tok));
	o = json_object_new_object();
	json_object_object_add(o, "token", json_object_new_string(tok));
	json_object_object_add(o, "agent", json_object_new_string(a->id));
	json_object_object_add(o, "provider", json_object_new_int(
	    (int)a->provider));
	r = egress_send(MSG_EGRESS_REGISTER, job, o);
	explicit_bzero((char *)json_object_get_string(
	    json_object_object_get(o, "token")), EGRESS_TOKEN_LEN);
	json_object_put(o);
	if (r == -1) {
		explicit_bzero(tok, sizeof(tok));
		return NULL;
	}
	return xstrdup(tok);
}

void
egress_revoke(uint64_t job)
{
	egress_send(MSG_EGRESS_REVOKE, job, NULL);
}

/* The proxy's socket, while an egress process that listens on it runs;
 * else NULL, and the worker fails the invocation closed. */
const char *
egress_socket(void)
{
	if (eg.state != EG_UP)
		return NULL;
	if (eg.socket == NULL)
		eg.socket = egress_socket_path(sv.home);
	return eg.socket;
}

/* A program of ours: next to this binary (a build tree), else where it
 * is installed. */
static const char *
egress_libexec(char **cache, const char *name)
{
	char	*dir, *p;

	if (*cache != NULL)
		return *cache;
	dir = xstrdup(sv.self_exe);
	if ((p = strrchr(dir, '/')) != NULL)
		*p = '\0';
	xasprintf(cache, "%s/%s", dir, name);
	free(dir);
	if (access(*cache, X_OK) == -1) {
		free(*cache);
		xasprintf(cache, "%s/%s", CLAWVISOR_LIBEXECDIR, name);
	}
	return *cache;
}

const char *
egress_bridge(void)
{
	return egress_libexec(&eg.bridge, "clawvisor-bridge");
}

static const char *
egress_exe(void)
{
	return egress_libexec(&eg.exe, "clawvisor-egress");
}

/*
 * The doctor's TLS check (DECISIONS 242): asked of the egress process,
 * answered in a frame later; the doctor asks for the answer by its number
 * (egress_check_result). Nothing here waits.
 */
json_object *
egress_check(json_object *providers)
{
	json_object *o, *r;

	if (eg.state != EG_UP)
		return NULL;
	o = json_object_new_object();
	if (providers != NULL)
		json_object_object_add(o, "providers",
		    json_object_get(providers));
	eg.check_seq++;
	json_object_put(eg.checks[eg.check_seq % 4]);
	eg.checks[eg.check_seq % 4] = NULL;
	egress_send(MSG_EGRESS_CHECK, eg.check_seq, o);
	json_object_put(o);
	r = json_object_new_object();
	json_object_object_add(r, "seq",
	    json_object_new_int64((int64_t)eg.check_seq));
	return r;
}

/* The answer to check seq, or NULL while there is none. */
json_object *
egress_check_result(uint64_t seq)
{
	json_object *o = eg.checks[seq % 4], *v;

	if (o == NULL || !json_object_object_get_ex(o, "seq", &v) ||
	    (uint64_t)json_object_get_int64(v) != seq)
		return NULL;
	return json_object_get(o);
}

json_object *
egress_status(void)
{
	static const char *const names[] = { "off", "down", "starting",
	    "running" };
	json_object	*o = json_object_new_object();

	json_object_object_add(o, "state",
	    json_object_new_string(names[eg.state]));
	if (eg.state == EG_OFF)
		return o;
	json_object_object_add(o, "pid", eg.pid > 0 ?
	    json_object_new_int64(eg.pid) : NULL);
	json_object_object_add(o, "restarts", json_object_new_int64(
	    eg.starts > 0 ? (int64_t)eg.starts - 1 : 0));
	if (eg.stats != NULL) {
		json_object_object_foreach(eg.stats, k, v)
			json_object_object_add(o, k, json_object_get(v));
	}
	return o;
}

int
egress_starting(void)
{
	return eg.state == EG_STARTING;
}

/* Whether the running egress process reports holding this key. */
int
egress_holds(const char *name)
{
	json_object	*k;
	size_t		 i;

	if (eg.state != EG_UP || eg.stats == NULL ||
	    !json_object_object_get_ex(eg.stats, "keys", &k) ||
	    !json_object_is_type(k, json_type_array))
		return 0;
	for (i = 0; i < json_object_array_length(k); i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(k,
		    i)), name) == 0)
			return 1;
	return 0;
}

void
egress_shutdown(void)
{
	if (eg.state == EG_OFF)
		return;
	ev_timer_stop(sv.loop, &eg.respawn);
	if (eg.pid > 0)
		kill(eg.pid, SIGTERM);
}

void
egress_free(void)
{
	size_t	i;
	int	st, n;

	if (eg.state == EG_OFF)
		return;
	/* SIGTERM was sent (egress_shutdown): 2 s, then SIGKILL. */
	for (n = 0; eg.pid > 0 && n < 200; n++) {
		if (waitpid(eg.pid, &st, WNOHANG) != 0)
			eg.pid = 0;
		else
			usleep(10000);
	}
	if (eg.pid > 0) {
		kill(eg.pid, SIGKILL);
		(void)waitpid(eg.pid, &st, 0);
		eg.pid = 0;
	}
	if (eg.state != EG_DOWN) {
		close(eg.conn.fd);
		ipc_free(&eg.conn);
	}
	json_object_put(eg.stats);
	eg.stats = NULL;
	for (i = 0; i < 4; i++) {
		json_object_put(eg.checks[i]);
		eg.checks[i] = NULL;
	}
	free(eg.socket);
	free(eg.bridge);
	free(eg.exe);
	eg.socket = eg.bridge = eg.exe = NULL;
	for (i = 0; i < EGRESS_NKEYS; i++)
		if (eg.keys[i] != NULL) {
			freezero(eg.keys[i], strlen(eg.keys[i]) + 1);
			eg.keys[i] = NULL;
		}
	eg.state = EG_OFF;
}
