/*
 * Control socket, after OpenSMTPD's control.c: refuse to unlink the socket
 * of a live daemon, create it under umask 077 and chmod 0600, check the
 * peer's credentials on every connection. Clients are non-blocking with
 * bounded input lines and output buffers, so a slow or stuck client never
 * holds up the loop; past the bounds a client gets an error or is dropped.
 */
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "supervisor.h"
#include "util.h"

#define OUT_MAX		(16u * 1024 * 1024)
#define OUT_KEEP	(64u * 1024)	/* a bigger drained buffer is freed */
#define IDLE_SECONDS	300.

struct client {
	TAILQ_ENTRY(client)	 entry;
	int			 fd;
	ev_io			 rio;
	ev_io			 wio;
	ev_timer		 idle;
	char			*in;
	size_t			 inlen;
	int			 discarding;	/* inside an over-long line */
	char			*out;
	size_t			 outlen;
	size_t			 outoff;
	size_t			 outcap;
	int			 fds[IPC_MAX_FDS];	/* passed, for exec */
	size_t			 nfds;
	struct exec		*exec;		/* waiting for its reply */
};

static struct {
	int			 fd;
	ev_io			 io;
	ev_timer		 stop;		/* a `stop` to act on */
	char			*path;
	size_t			 nclients;
	TAILQ_HEAD(, client)	 clients;
} ctl = { -1, { 0 }, { 0 }, NULL, 0, TAILQ_HEAD_INITIALIZER(ctl.clients) };

static void
fds_close(struct client *c)
{
	size_t i;

	for (i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	c->nfds = 0;
}

static void
client_free(struct client *c)
{
	struct exec *e = c->exec;

	/* A caller that went away cancels its invocation. */
	c->exec = NULL;
	if (e != NULL)
		exec_cancel(e, 1);
	fds_close(c);
	ev_io_stop(sv.loop, &c->rio);
	ev_io_stop(sv.loop, &c->wio);
	ev_timer_stop(sv.loop, &c->idle);
	close(c->fd);
	TAILQ_REMOVE(&ctl.clients, c, entry);
	ctl.nclients--;
	free(c->in);
	free(c->out);
	free(c);
}

/* -1 if c was freed. */
static int
client_flush(struct client *c)
{
	ssize_t n;

	while (c->outoff < c->outlen) {
		n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			ev_io_start(sv.loop, &c->wio);
			return 0;
		}
		if (n <= 0) {
			client_free(c);
			return -1;
		}
		c->outoff += n;
	}
	c->outoff = c->outlen = 0;
	if (c->outcap > OUT_KEEP) {
		free(c->out);
		c->out = NULL;
		c->outcap = 0;
	}
	ev_io_stop(sv.loop, &c->wio);
	return 0;
}

/*
 * Queue one reply line; a client that does not read is dropped. The buffer
 * grows by doubling and is compacted only when full, so a client that
 * reads slowly costs amortized constant time per reply.
 */
static int
client_reply(struct client *c, json_object *o)
{
	const char	*s;
	char		*fixed, big[160];
	size_t		 n, cap;
	int		 r;

	/* Names and records read from disk may hold bytes that are not
	 * UTF-8; the reply is UTF-8 whatever they hold. */
	s = utf8_ensure(json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), &fixed);
	n = strlen(s);
	if (n + 1 > OUT_MAX) {
		/*
		 * One reply that can never fit (dead.show of a dead letter
		 * with a message of many MiB; a dead letter may be up to
		 * MAX_OWN_FILE): say so rather than drop the client as if
		 * it did not read.
		 */
		snprintf(big, sizeof(big), "the reply is %zu bytes, over the "
		    "%u a control reply may hold; read the file itself", n,
		    OUT_MAX);
		log_warnx("control: %s", big);
		free(fixed);
		o = json_object_new_object();
		json_object_object_add(o, "ok", json_object_new_boolean(0));
		json_object_object_add(o, "error", json_object_new_string(big));
		r = client_reply(c, o);
		json_object_put(o);
		return r;
	}
	if (c->outlen - c->outoff + n + 1 > OUT_MAX) {
		log_warnx("control: client not reading its replies: dropped");
		free(fixed);
		client_free(c);
		return -1;
	}
	if (c->outlen + n + 1 > c->outcap && c->outoff > 0) {
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
	}
	if (c->outlen + n + 1 > c->outcap) {
		cap = c->outcap == 0 ? 4096 : c->outcap;
		while (cap < c->outlen + n + 1)
			cap *= 2;
		c->out = xreallocarray(c->out, cap, 1);
		c->outcap = cap;
	}
	memcpy(c->out + c->outlen, s, n);
	c->out[c->outlen + n] = '\n';
	c->outlen += n + 1;
	free(fixed);
	return 0;
}

static json_object *
error_reply(const char *text)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(text));
	return o;
}

/* Answer one line; -1 if c was freed meanwhile. */
static int
client_send(struct client *c, json_object *r)
{
	int ret = -1;

	if (client_reply(c, r) == 0)
		ret = client_flush(c);
	json_object_put(r);
	return ret;
}

/*
 * Stopping may close every client at once (nothing in flight), so it is
 * not done from inside a client's read callback, which may still hold more
 * lines of that client: it waits for the next loop iteration.
 */
static void
control_stop(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	supervisor_stop("control command");
}

/*
 * exec and exec.cancel need the connection (its descriptors, a reply that
 * comes when the invocation ends): 1 if the line was one of them, -1 if c
 * was freed, 0 for any other line.
 */
static int
client_exec(struct client *c, const char *line, size_t len)
{
	json_tokener	*tok;
	json_object	*o, *cmd, *reply = NULL;
	const char	*name;
	int		 r = 1;

	tok = json_tokener_new();
	o = json_tokener_parse_ex(tok, line, (int)len);
	json_tokener_free(tok);
	if (o == NULL || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		json_object_put(o);
		return c->exec != NULL ? (client_send(c, error_reply("an exec "
		    "runs on this connection: only exec.cancel is taken")) ==
		    -1 ? -1 : 1) : 0;
	}
	name = json_object_get_string(cmd);
	if (strcmp(name, "exec.cancel") == 0) {
		if (c->exec != NULL)
			exec_cancel(c->exec, 0);
	} else if (c->exec != NULL)
		reply = error_reply("an exec runs on this connection: only "
		    "exec.cancel is taken");
	else if (strcmp(name, "exec") == 0) {
		reply = exec_request(c, o, c->fds, c->nfds);
		c->nfds = 0;	/* taken */
	} else
		r = 0;
	json_object_put(o);
	if (reply != NULL && client_send(c, reply) == -1)
		return -1;
	return r;
}

static int
client_line(struct client *c, const char *line, size_t len)
{
	int stop = 0, r;

	if ((r = client_exec(c, line, len)) != 0)
		return r == -1 ? -1 : 0;
	/* Descriptors are for exec alone. */
	fds_close(c);
	r = client_send(c, control_handle_line(line, len, &stop));
	if (stop && !ev_is_active(&ctl.stop))
		ev_timer_start(sv.loop, &ctl.stop);
	return r;
}

/*
 * read(2) that also takes the descriptors an exec request carries (at
 * most IPC_MAX_FDS; more, or a truncated set, drops the client: 0).
 */
static ssize_t
client_recv(struct client *c, char *buf, size_t len)
{
	ssize_t	n;
	int	over;

	n = ipc_recv_fds(c->fd, buf, len, c->fds, IPC_MAX_FDS, &c->nfds,
	    &over);
	if (n > 0 && over) {
		log_warnx("control: a client passed too many descriptors: "
		    "dropped");
		return 0;
	}
	return n;
}

static void
client_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client	*c = w->data;
	char		 buf[8192], *nl;
	const char	*p;
	ssize_t		 n;
	size_t		 take, len;

	(void)loop;
	(void)revents;
	n = client_recv(c, buf, sizeof(buf));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		client_free(c);
		return;
	}
	if (c->exec == NULL)
		ev_timer_again(sv.loop, &c->idle);
	for (p = buf; p < buf + n; p += take) {
		nl = memchr(p, '\n', buf + n - p);
		take = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(buf + n - p);
		if (c->discarding) {
			/* The rest of a line already answered as too long. */
			if (nl != NULL)
				c->discarding = 0;
			continue;
		}
		if (c->inlen + take > CONTROL_MAX_LINE) {
			c->inlen = 0;
			c->discarding = nl == NULL;
			if (client_send(c, error_reply("line longer than "
			    "65536 bytes")) == -1)
				return;
			continue;
		}
		c->in = xreallocarray(c->in, c->inlen + take + 1, 1);
		memcpy(c->in + c->inlen, p, take);
		c->inlen += take;
		if (nl == NULL)
			continue;
		/* The whole line: a NUL inside makes it malformed. */
		c->in[c->inlen - 1] = '\0';
		len = c->inlen - 1;
		c->inlen = 0;
		if (client_line(c, c->in, len) == -1)
			return;
	}
}

static void
client_write(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	client_flush(w->data);
}

static void
client_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	client_free(w->data);
}

static void
control_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);
	struct client	*c;
	json_object	*e;
	const char	*s;
	int		 fd;

	(void)loop;
	(void)w;
	(void)revents;
	fd = accept4(ctl.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    (cred.uid != 0 && cred.uid != getuid())) {
		log_warnx("control: refused a connection from uid %d (pid %d):"
		    " only uid %d and root are served", (int)cred.uid,
		    (int)cred.pid, (int)getuid());
		e = error_reply("permission denied: only the daemon's uid "
		    "and root are served");
		s = json_object_to_json_string(e);
		(void)!write(fd, s, strlen(s));
		(void)!write(fd, "\n", 1);
		json_object_put(e);
		close(fd);
		return;
	}
	if (ctl.nclients >= CONTROL_MAX_CLIENTS) {
		e = error_reply("too many control clients (256)");
		s = json_object_to_json_string(e);
		(void)!write(fd, s, strlen(s));
		(void)!write(fd, "\n", 1);
		json_object_put(e);
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	ev_io_init(&c->rio, client_read, fd, EV_READ);
	ev_io_init(&c->wio, client_write, fd, EV_WRITE);
	ev_timer_init(&c->idle, client_idle, 0., IDLE_SECONDS);
	c->rio.data = c->wio.data = c->idle.data = c;
	ev_io_start(sv.loop, &c->rio);
	ev_timer_again(sv.loop, &c->idle);
	TAILQ_INSERT_TAIL(&ctl.clients, c, entry);
	ctl.nclients++;
}

int
control_init(void)
{
	struct sockaddr_un	 sun;
	mode_t			 old;
	int			 fd;

	xasprintf(&ctl.path, "%s/run/clawvisor.sock", sv.home);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, ctl.path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		log_error("control socket path too long: %s", ctl.path);
		return -1;
	}
	/* A socket that still answers belongs to a live daemon. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(fd);
		log_error("%s: a live daemon answers on it", ctl.path);
		return -1;
	}
	close(fd);
	if (unlink(ctl.path) == -1 && errno != ENOENT) {
		log_error("cannot remove stale %s: %s", ctl.path,
		    strerror(errno));
		return -1;
	}
	ctl.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl.fd == -1)
		return -1;
	old = umask(0077);
	if (bind(ctl.fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		log_error("bind %s: %s", ctl.path, strerror(errno));
		return -1;
	}
	umask(old);
	if (chmod(ctl.path, 0600) == -1 || listen(ctl.fd, 128) == -1) {
		log_error("%s: %s", ctl.path, strerror(errno));
		return -1;
	}
	ev_io_init(&ctl.io, control_accept, ctl.fd, EV_READ);
	ev_io_start(sv.loop, &ctl.io);
	ev_timer_init(&ctl.stop, control_stop, 0., 0.);
	return 0;
}

void
control_exec_attach(struct client *c, struct exec *e)
{
	c->exec = e;
	/* It may run for timeout_seconds without a byte either way. */
	ev_timer_stop(sv.loop, &c->idle);
}

void
control_exec_detach(struct client *c)
{
	c->exec = NULL;
	ev_timer_again(sv.loop, &c->idle);
}

/*
 * The exec's one reply (o taken). Written by the loop, not here: this may
 * run inside c's own read callback (a cancel whose worker died), where a
 * write error must not free c under its caller.
 */
void
control_exec_reply(struct client *c, json_object *o)
{
	if (client_reply(c, o) == 0)
		ev_io_start(sv.loop, &c->wio);
	json_object_put(o);
}

void
control_close(void)
{
	struct client *c;

	ev_timer_stop(sv.loop, &ctl.stop);
	while ((c = TAILQ_FIRST(&ctl.clients)) != NULL) {
		client_flush(c);
		if (TAILQ_FIRST(&ctl.clients) == c)
			client_free(c);
	}
	if (ctl.fd != -1) {
		ev_io_stop(sv.loop, &ctl.io);
		close(ctl.fd);
		ctl.fd = -1;
		unlink(ctl.path);
	}
	free(ctl.path);
	ctl.path = NULL;
}
