/*
 * The client side of `clawvisor exec` and of the shims (SPEC §10,
 * docs/EXEC.md): one request on the control socket that carries this
 * process's stdout, stderr (and stdin when it is a pipe, a socket or a
 * file) as SCM_RIGHTS, so that the sandboxed child writes straight into
 * them; then a wait for the one reply line, the exit status. A signal
 * (INT, TERM, HUP) asks the daemon to cancel and, once it has, exits
 * 128+signal; if this process dies, its closed socket cancels too.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "ipc.h"
#include "util.h"

#define EX_USAGE_EXEC	2
#define EX_TEMPFAIL	75
#define EX_UNAVAIL	69
#define LINE_MAX_EXEC	(64 * 1024)

static volatile sig_atomic_t	got_signal;

static void
on_signal(int sig)
{
	if (got_signal == 0)
		got_signal = sig;
}

/* Pass stdin only if it is data: a pipe, a socket (Node's), a file. */
static int
stdin_passable(void)
{
	struct stat st;

	if (fstat(0, &st) == -1)
		return 0;
	return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
	    S_ISREG(st.st_mode);
}

static int
send_request(int fd, json_object *req, int with_stdin)
{
	int	 fds[3], n = 0;
	char	*line;
	size_t	 len, off;
	ssize_t	 w;

	if (with_stdin)
		fds[n++] = 0;
	fds[n++] = 1;
	fds[n++] = 2;
	xasprintf(&line, "%s\n", json_object_to_json_string_ext(req,
	    JSON_C_TO_STRING_PLAIN));
	len = strlen(line);
	/* The descriptors with the first bytes, the rest as it goes. */
	w = ipc_send_fds(fd, line, len, fds, n);
	off = w > 0 ? (size_t)w : 0;
	while (w != -1 && off < len) {
		w = send(fd, line + off, len - off, MSG_NOSIGNAL);
		if (w > 0)
			off += w;
		else if (w == -1 && errno == EINTR)
			w = 0;
	}
	free(line);
	return w == -1 ? -1 : 0;
}

/* The reply line, or NULL at EOF; a signal sends exec.cancel once. */
static char *
wait_reply(int fd)
{
	static const char cancel[] = "{\"cmd\":\"exec.cancel\"}\n";
	struct pollfd	 p = { fd, POLLIN, 0 };
	char		*buf = xmalloc(LINE_MAX_EXEC + 1), *nl;
	size_t		 len = 0;
	ssize_t		 n;
	int		 sent = 0;

	for (;;) {
		if (got_signal && !sent) {
			(void)!send(fd, cancel, sizeof(cancel) - 1,
			    MSG_NOSIGNAL);
			sent = 1;
		}
		if (poll(&p, 1, -1) == -1)
			continue;	/* EINTR: a signal, handled above */
		n = read(fd, buf + len, LINE_MAX_EXEC - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
		buf[len] = '\0';
		if ((nl = memchr(buf, '\n', len)) != NULL) {
			*nl = '\0';
			return buf;
		}
		if (len == LINE_MAX_EXEC)
			break;
	}
	free(buf);
	return NULL;
}

/*
 * Output past sandbox.max_output_bytes was dropped: said once, after the
 * child's own stderr (the worker has relayed all of it by now). The
 * status stays the child's.
 */
static void
reply_truncated(json_object *o)
{
	json_object	*a;
	size_t		 i;

	if (!json_object_object_get_ex(o, "truncated", &a) ||
	    !json_object_is_type(a, json_type_array))
		return;
	for (i = 0; i < json_object_array_length(a); i++)
		fprintf(stderr, "clawvisor exec: %s truncated: the output past "
		    "%lld bytes was dropped (sandbox.max_output_bytes)\n",
		    json_object_get_string(json_object_array_get_idx(a, i)),
		    (long long)json_object_get_int64(json_object_object_get(o,
		    "maxOutputBytes")));
}

/* The status the reply stands for; its error said on stderr. */
static int
reply_status(const char *line, int json_status)
{
	json_object	*o, *v;
	int		 status;

	if (json_status)
		fprintf(stderr, "%s\n", line);
	if ((o = json_tokener_parse(line)) == NULL ||
	    !json_object_is_type(o, json_type_object)) {
		fprintf(stderr, "clawvisor exec: bad reply from the daemon\n");
		json_object_put(o);
		return EX_TEMPFAIL;
	}
	if (json_object_get_boolean(json_object_object_get(o, "ok"))) {
		if (json_object_object_get_ex(o, "signal", &v))
			status = 128 + json_object_get_int(v);
		else
			status = json_object_get_int(json_object_object_get(o,
			    "exitCode"));
		reply_truncated(o);
	} else {
		/* After our own signal the cancel is no news. */
		if (!got_signal)
			fprintf(stderr, "clawvisor exec: %s\n",
			    json_object_get_string(json_object_object_get(o,
			    "error")));
		status = json_object_object_get_ex(o, "exitStatus", &v) ?
		    json_object_get_int(v) : 1;
	}
	json_object_put(o);
	return status;
}

/* argv: PROGRAM ARGS... (PROGRAM already resolved by a shim, or not). */
static int
exec_run_client(const char *home, const char *agent, int json_status,
    int argc, char **argv)
{
	struct sigaction sa;
	json_object	*req, *a;
	char		 cwd[PATH_MAX], *line;
	int		 fd, i, with_stdin, status;

	if ((fd = client_connect(home, 0)) == -1)
		return EX_UNAVAIL;
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		fprintf(stderr, "clawvisor exec: getcwd: %s\n",
		    strerror(errno));
		return EX_USAGE_EXEC;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: poll returns */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	with_stdin = stdin_passable();
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("exec"));
	a = json_object_new_array();
	for (i = 0; i < argc; i++)
		json_object_array_add(a, json_object_new_string(argv[i]));
	json_object_object_add(req, "argv", a);
	json_object_object_add(req, "cwd", json_object_new_string(cwd));
	if (agent != NULL)
		json_object_object_add(req, "agent",
		    json_object_new_string(agent));
	json_object_object_add(req, "stdin",
	    json_object_new_boolean(with_stdin));
	if (send_request(fd, req, with_stdin) == -1) {
		json_object_put(req);
		close(fd);
		fprintf(stderr, "clawvisor exec: cannot send the request: "
		    "%s\n", strerror(errno));
		return EX_UNAVAIL;
	}
	json_object_put(req);
	line = wait_reply(fd);
	close(fd);
	if (line == NULL) {
		fprintf(stderr, "clawvisor exec: the daemon closed the "
		    "connection without a status\n");
		status = EX_TEMPFAIL;
	} else
		status = reply_status(line, json_status);
	free(line);
	if (got_signal)
		return 128 + got_signal;
	return status;
}

/* clawvisor exec [--agent ID] [--json-status] -- PROGRAM ARGS... */
int
client_exec_main(const char *home, int argc, char **argv)
{
	const char	*agent = getenv("CLAWVISOR_AGENT");
	int		 i, json_status = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--agent") == 0 && i + 1 < argc)
			agent = argv[++i];
		else if (strncmp(argv[i], "--agent=", 8) == 0)
			agent = argv[i] + 8;
		else if (strcmp(argv[i], "--json-status") == 0)
			json_status = 1;
		else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "clawvisor exec: unknown option %s\n"
			    "usage: clawvisor exec [--agent ID] [--json-status]"
			    " -- PROGRAM ARGS...\n", argv[i]);
			return EX_USAGE_EXEC;
		} else
			break;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: clawvisor exec [--agent ID] "
		    "[--json-status] -- PROGRAM ARGS...\n");
		return EX_USAGE_EXEC;
	}
	return exec_run_client(home, agent, json_status, argc - i, argv + i);
}

/*
 * The real NAME on PATH: the first that is not this binary (a shim is a
 * link to it, so every shim directory is passed over). NULL if none.
 */
static char *
shim_real(const char *name)
{
	struct stat	 self, st;
	const char	*path, *p, *e;
	char		 buf[PATH_MAX];

	if (stat("/proc/self/exe", &self) == -1 ||
	    (path = getenv("PATH")) == NULL)
		return NULL;
	for (p = path; ; p = e + 1) {
		if ((e = strchr(p, ':')) == NULL)
			e = p + strlen(p);
		if (e > p && *p == '/') {
			snprintf(buf, sizeof(buf), "%.*s/%s", (int)(e - p), p,
			    name);
			if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
			    access(buf, X_OK) == 0 &&
			    !(st.st_dev == self.st_dev &&
			    st.st_ino == self.st_ino))
				return xstrdup(buf);
		}
		if (*e == '\0')
			return NULL;
	}
}

/* Run as `claude` or `codex` (a shim): exec -- NAME ARGS..., verbatim. */
int
client_shim_main(const char *home, const char *name, int argc, char **argv)
{
	char	*real, **v;
	int	 i, r;

	v = xcalloc(argc + 1, sizeof(char *));
	real = shim_real(name);
	v[0] = real != NULL ? real : (char *)name;
	for (i = 1; i < argc; i++)
		v[i] = argv[i];
	r = exec_run_client(home, getenv("CLAWVISOR_AGENT"), 0, argc, v);
	free(real);
	free(v);
	return r;
}

/* clawvisor shim DIR: DIR/claude and DIR/codex, links to this binary. */
int
client_shim_write(int argc, char **argv)
{
	static const char *const names[] = { "claude", "codex" };
	char	 self[PATH_MAX], *dst, *tmp;
	size_t	 i;

	if (argc != 2) {
		fprintf(stderr, "usage: clawvisor shim DIR\n");
		return EX_USAGE_EXEC;
	}
	if (realpath("/proc/self/exe", self) == NULL ||
	    mkdir_p(argv[1], 0755) == -1) {
		fprintf(stderr, "clawvisor shim: %s: %s\n", argv[1],
		    strerror(errno));
		return 1;
	}
	for (i = 0; i < 2; i++) {
		xasprintf(&dst, "%s/%s", argv[1], names[i]);
		xasprintf(&tmp, "%s/.%s.%d", argv[1], names[i], (int)getpid());
		(void)unlink(tmp);
		if (symlink(self, tmp) == -1 || rename(tmp, dst) == -1) {
			fprintf(stderr, "clawvisor shim: %s: %s\n", dst,
			    strerror(errno));
			(void)unlink(tmp);
			free(dst);
			free(tmp);
			return 1;
		}
		printf("%s -> %s\n", dst, self);
		free(dst);
		free(tmp);
	}
	printf("Put %s first on the orchestrator's PATH: every claude and "
	    "codex it runs then goes through clawvisor exec.\n", argv[1]);
	return 0;
}
