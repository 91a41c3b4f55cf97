/*
 * The client subcommands: build one request, send it on the control socket,
 * print the reply for a person (or as is with --json). Exit status: 0 done,
 * 1 the daemon said no, 2 usage, 69 no daemon.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "client.h"
#include "util.h"

#define REPLY_MAX	(64u * 1024 * 1024)

static int
usage_error(const char *msg)
{
	fprintf(stderr, "clawvisor: %s\n", msg);
	return 2;
}

/* -1: no daemon (message printed); else the connected socket. */
int
client_connect(const char *home, int quiet)
{
	struct sockaddr_un	sun;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/run/clawvisor.sock",
	    home);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (!quiet)
			fprintf(stderr, "clawvisor: no daemon is running on %s "
			    "(%s: %s)\n", home, sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Send one request, return the reply line (NULL: connection failed). A
 * daemon that refuses us (another uid, too many clients) answers and closes
 * at once, maybe before the request is sent: sending must not raise
 * SIGPIPE, and its failure must not hide the answer already waiting.
 */
char *
client_request(int fd, json_object *req)
{
	const char	*s;
	char		*buf = NULL, *nl, *out;
	size_t		 len = 0, cap = 0, off = 0, olen;
	ssize_t		 n;

	s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	xasprintf(&out, "%s\n", s);
	olen = strlen(out);
	while (off < olen) {
		n = send(fd, out + off, olen - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += n;
	}
	free(out);
	for (;;) {
		if (len + 65536 > cap) {
			cap = cap == 0 ? 65536 * 2 : cap * 2;
			if (cap > REPLY_MAX)
				break;
			buf = xreallocarray(buf, cap, 1);
		}
		n = read(fd, buf + len, cap - len - 1);
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
	}
	free(buf);
	return NULL;
}

static const char *
str(json_object *o, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) || v == NULL)
		return "";
	return json_object_get_string(v);
}

/*
 * A string of the reply for a terminal: its control characters (a newline
 * in a file name would forge a line of `dead list`, an escape sequence
 * would drive the terminal) and any byte that is not UTF-8 as \xNN. One
 * of a few rotating buffers, so that a printf can take several.
 */
static const char *
text(json_object *o, const char *k)
{
	static char	*ring[8];
	static int	 next;
	const char	*s = str(o, k);

	next = (next + 1) % 8;
	free(ring[next]);
	ring[next] = str_escape(s, strlen(s), 0);
	return ring[next];
}

static int64_t
num(json_object *o, const char *k)
{
	return json_object_get_int64(json_object_object_get(o, k));
}

/* SPEC §9: one line of what the JSON says; nothing when the proxy is off. */
static void
print_egress(json_object *e)
{
	const char *state = str(e, "state");

	if (e == NULL || strcmp(state, "off") == 0)
		return;
	printf("egress: %s", text(e, "state"));
	if (json_object_object_get(e, "pid") != NULL)
		printf(" pid %lld", (long long)num(e, "pid"));
	printf(", respawns %lld", (long long)num(e, "restarts"));
	if (json_object_object_get(e, "tokensLive") != NULL)
		printf(", tokens live %lld, requests forwarded %lld, tunnels "
		    "%lld, refused %lld, connections open %lld",
		    (long long)num(e, "tokensLive"),
		    (long long)num(e, "forwarded"), (long long)num(e, "tunnels"),
		    (long long)num(e, "refused"),
		    (long long)num(e, "connectionsOpen"));
	printf("\n");
}

static void
print_status(json_object *r)
{
	json_object	*ws, *w, *p, *q, *c;
	size_t		 i, n;

	printf("clawvisor pid %lld, up %llds, configuration generation %lld, "
	    "mode %s%s%s\n", (long long)num(r, "pid"),
	    (long long)num(r, "uptimeSeconds"), (long long)num(r, "generation"),
	    str(r, "mode"), json_object_get_boolean(json_object_object_get(r,
	    "paused")) ? ", PAUSED" : "", json_object_get_boolean(
	    json_object_object_get(r, "stopping")) ? ", STOPPING" : "");
	ws = json_object_object_get(r, "workers");
	n = json_object_array_length(ws);
	printf("workers: %zu\n", n);
	for (i = 0; i < n; i++) {
		w = json_object_array_get_idx(ws, i);
		printf("  worker %lld pid %lld %-8s jobs %lld", (long long)num(w,
		    "index"), (long long)num(w, "pid"), text(w, "state"),
		    (long long)num(w, "jobs"));
		if (json_object_object_get(w, "agent") != NULL)
			printf("  running %s for agent %s (%lld ms)",
			    text(w, "message"), text(w, "agent"),
			    (long long)num(w, "runningMs"));
		printf("\n");
	}
	p = json_object_object_get(r, "permits");
	printf("permits: %lld in use of %s, %lld waiting (max %lld)\n",
	    (long long)num(p, "inUse"), num(p, "max") == 0 ? "unlimited" :
	    str(p, "max"), (long long)num(p, "waiting"),
	    (long long)num(p, "maxWaiters"));
	q = json_object_object_get(r, "queue");
	printf("queue: incoming %lld, processing %lld, deferred %lld, "
	    "outgoing %lld, dead-letter %lld, corrupt %lld\n",
	    (long long)num(q, "incoming"), (long long)num(q, "processing"),
	    (long long)num(q, "deferred"), (long long)num(q, "outgoing"),
	    (long long)num(q, "deadLetter"), (long long)num(q, "corrupt"));
	if (num(q, "commitsWaiting") > 0)
		printf("commits waiting to be tried again (disk full?): %lld; "
		    "see the log\n", (long long)num(q, "commitsWaiting"));
	ws = json_object_object_get(r, "warnings");
	for (i = 0; ws != NULL && i < json_object_array_length(ws); i++)
		printf("warning: %s\n", json_object_get_string(
		    json_object_array_get_idx(ws, i)));
	print_egress(json_object_object_get(r, "egress"));
	c = json_object_object_get(r, "counters");
	printf("counters: ok %lld, transient %lld, terminal %lld, retried "
	    "%lld, dead %lld, corrupt %lld\n", (long long)num(c, "ok"),
	    (long long)num(c, "transient"), (long long)num(c, "terminal"),
	    (long long)num(c, "retried"), (long long)num(c, "dead"),
	    (long long)num(c, "corrupt"));
}

static void
print_dead_list(json_object *r)
{
	json_object	*a = json_object_object_get(r, "dead"), *d;
	char		 when[32];
	struct tm	 tm;
	time_t		 t;
	size_t		 i, n = json_object_array_length(a);

	if (n > 0)
		printf("ID\tMESSAGE ID\tAGENT\tCLASS\tATTEMPTS\tFAILED AT\t"
		    "ERROR\n");
	for (i = 0; i < n; i++) {
		d = json_object_array_get_idx(a, i);
		t = (time_t)(num(d, "failedAt") / 1000);
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		/* One line each, tab-separated: no field may hold either. */
		printf("%s\t%s\t%s\t%s\t%lld/%lld\t%s\t%s\n", text(d, "id"),
		    text(d, "messageId"), json_object_object_get(d, "agent") !=
		    NULL ? text(d, "agent") : "-", text(d, "errorClass"),
		    (long long)num(d, "attempt"),
		    (long long)num(d, "maxAttempts"), when,
		    text(d, "errorMessage"));
	}
	if (n == 0)
		printf("no dead letters\n");
}

static void
print_reply(const char *cmd, json_object *r)
{
	if (strcmp(cmd, "status") == 0)
		print_status(r);
	else if (strcmp(cmd, "metrics") == 0)
		fputs(str(r, "metrics"), stdout);	/* built for output as is */
	else if (strcmp(cmd, "dead.list") == 0)
		print_dead_list(r);
	else if (strcmp(cmd, "dead.show") == 0 ||
	    strcmp(cmd, "sandbox.show") == 0)
		printf("%s\n", json_object_to_json_string_ext(r,
		    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
		    JSON_C_TO_STRING_NOSLASHESCAPE));
	else if (strcmp(cmd, "reload") == 0 || strcmp(cmd, "sandbox.set") == 0)
		printf("configuration generation %lld in force\n",
		    (long long)num(r, "generation"));
	else if (strcmp(cmd, "dead.requeue") == 0)
		printf("%lld requeued\n", (long long)num(r, "requeued"));
	else
		printf("ok\n");
}

/* Turn argv into a request; NULL and *err for a usage error. */
static json_object *
build_request(int argc, char **argv, const char **err)
{
	json_object	*req = json_object_new_object();
	const char	*c = argv[0], *sub = argc > 1 ? argv[1] : NULL;
	char		 name[64];
	int		 nargs = 1;

	*err = NULL;
	if (strcmp(c, "status") == 0 || strcmp(c, "metrics") == 0 ||
	    strcmp(c, "reload") == 0 ||
	    strcmp(c, "pause") == 0 || strcmp(c, "resume") == 0 ||
	    strcmp(c, "stop") == 0)
		snprintf(name, sizeof(name), "%s", c);
	else if (strcmp(c, "sandbox") == 0 && sub != NULL &&
	    (strcmp(sub, "show") == 0 || strcmp(sub, "set") == 0)) {
		snprintf(name, sizeof(name), "sandbox.%s", sub);
		nargs = 2;
		if (strcmp(sub, "set") == 0) {
			if (argc < 3) {
				*err = "usage: clawvisor sandbox set "
				    "host|docker|apple|bwrap";
				goto fail;
			}
			json_object_object_add(req, "mode",
			    json_object_new_string(argv[2]));
			nargs = 3;
		}
	} else if (strcmp(c, "dead") == 0 && sub != NULL &&
	    (strcmp(sub, "list") == 0 || strcmp(sub, "show") == 0 ||
	    strcmp(sub, "requeue") == 0 || strcmp(sub, "purge") == 0)) {
		snprintf(name, sizeof(name), "dead.%s", sub);
		nargs = 2;
		if (strcmp(sub, "list") != 0) {
			if (argc < 3) {
				*err = "usage: clawvisor dead show|requeue|"
				    "purge ID (or requeue --all)";
				goto fail;
			}
			if (strcmp(sub, "requeue") == 0 &&
			    strcmp(argv[2], "--all") == 0)
				json_object_object_add(req, "all",
				    json_object_new_boolean(1));
			else
				json_object_object_add(req, "id",
				    json_object_new_string(argv[2]));
			nargs = 3;
		}
	} else {
		*err = "unknown command";
		goto fail;
	}
	if (argc != nargs) {
		*err = "too many arguments";
		goto fail;
	}
	json_object_object_add(req, "cmd", json_object_new_string(name));
	return req;
fail:
	json_object_put(req);
	return NULL;
}

/* sandbox build-image [--base IMAGE] [--extra-ca FILE] */
static int
build_image_args(const char *home, int argc, char **argv)
{
	const char	*base = NULL, *ca = NULL;
	int		 i;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--base") == 0 && i + 1 < argc &&
		    base == NULL && *argv[i + 1] != '\0')
			base = argv[++i];
		else if (strcmp(argv[i], "--extra-ca") == 0 && i + 1 < argc &&
		    ca == NULL && *argv[i + 1] != '\0')
			ca = argv[++i];
		else
			return usage_error("usage: clawvisor sandbox "
			    "build-image [--base IMAGE] [--extra-ca FILE]");
	}
	return build_image_main(home, base, ca);
}

int
client_main(const char *home, int argc, char **argv, int json)
{
	json_object	*req, *rep;
	const char	*err, *cmd;
	char		*line;
	int		 fd, ok;

	if (strcmp(argv[0], "sandbox") == 0 && argc >= 2 &&
	    strcmp(argv[1], "doctor") == 0)
		return argc == 2 ? doctor_main(home, json) :
		    usage_error("usage: clawvisor sandbox doctor");
	if (strcmp(argv[0], "sandbox") == 0 && argc >= 2 &&
	    strcmp(argv[1], "build-image") == 0)
		return build_image_args(home, argc - 2, argv + 2);
	if ((req = build_request(argc, argv, &err)) == NULL) {
		fprintf(stderr, "clawvisor: %s: %s\n", argv[0], err);
		return 2;
	}
	if ((fd = client_connect(home, 0)) == -1) {
		json_object_put(req);
		return 69;
	}
	line = client_request(fd, req);
	close(fd);
	if (line == NULL) {
		fprintf(stderr, "clawvisor: the daemon closed the connection "
		    "without a reply\n");
		json_object_put(req);
		return 69;
	}
	rep = json_parse_deep(line);
	if (rep == NULL || !json_object_is_type(rep, json_type_object)) {
		fprintf(stderr, "clawvisor: bad reply from the daemon: "
		    "%.200s\n", line);
		free(line);
		json_object_put(rep);
		json_object_put(req);
		return 1;
	}
	ok = json_object_get_boolean(json_object_object_get(rep, "ok"));
	cmd = json_object_get_string(json_object_object_get(req, "cmd"));
	if (json)
		printf("%s\n", line);
	else if (ok)
		print_reply(cmd, rep);
	else
		fprintf(stderr, "clawvisor: %s\n", text(rep, "error"));
	free(line);
	json_object_put(rep);
	json_object_put(req);
	return ok ? 0 : 1;
}
