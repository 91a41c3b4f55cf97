/*
 * One line on the control socket, as any process of the daemon's uid could
 * send it: control_handle_line() parses it and runs the command against a
 * daemon state set up on a temporary home (settings.json, the queue
 * directories, dead letters good and bad, one held message, one worker
 * slot whose process exits at once). Commands with effects act on that
 * home only, and the home is put back after every input so that each input
 * sees the same state: sandbox.set rewrites settings.json, reload swaps the
 * configuration, dead.requeue and dead.purge move and remove dead letters,
 * stop only sets *stop.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "log.h"
#include "supervisor.h"
#include "util.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char settings[] =
    "{\"supervisor\": {\"workers\": 1},\n"
    " \"sandbox\": {\"env_allowlist\": [\"FUZZ_SECRET\", \"HOME\"]},\n"
    " \"agents\": {\"default\": {}, \"coder\": {\"name\": \"Coder\","
    " \"provider\": \"openai\"}},\n"
    " \"teams\": {\"dev\": {\"agents\": [\"default\", \"coder\"]}}}\n";

static const char payload[] = "{\"channel\": \"telegram\", \"sender\": "
    "\"alice\", \"message\": \"hello\", \"messageId\": \"m1\"}";

static const struct {
	const char	*name;
	const char	*text;		/* NULL: a symlink to settings.json */
} dead[] = {
	{ "1700000000000-m1.json", "{\"failedAt\": 1700000000000, "
	    "\"errorClass\": \"terminal\", \"errorMessage\": \"exit 1\", "
	    "\"attempt\": 3, \"maxAttempts\": 3, \"agent\": \"default\", "
	    "\"payload\": {\"channel\": \"telegram\", \"sender\": \"alice\", "
	    "\"message\": \"hi\", \"messageId\": \"m1\", \"attempt\": 2, "
	    "\"lastError\": \"x\"}}\n" },
	/* A producer's name: not UTF-8, a newline, an escape. */
	{ "bad\xff\n\x1b.json", "{\"errorClass\": \"terminal\", "
	    "\"errorMessage\": \"x\", \"payload\": {\"messageId\": \"b\"}}\n" },
	{ "no-payload.json", "{\"errorClass\": \"transient\"}\n" },
	{ "payload-array.json", "{\"payload\": [1, 2]}\n" },
	{ "array.json", "[]\n" },
	{ "garbage.json", "not json\n" },
	{ "empty.json", "" },
	{ "link.json", NULL },
	{ "note.txt", "not a dead letter\n" },
};

static char	home[PATH_MAX];
static int	dir_home;

static void
put(int dirfd, const char *name, const char *text)
{
	int fd;

	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
}

/* Remove every entry of dirfd (files only: the commands make no dirs). */
static void
clear_dir(int dirfd)
{
	struct dirent	*de;
	DIR		*d;
	int		 fd;

	if ((fd = dup(dirfd)) == -1 || (d = fdopendir(fd)) == NULL)
		abort();
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..")
		    != 0)
			unlinkat(dirfd, de->d_name, 0);
	closedir(d);
}

static struct config *
load(void)
{
	struct config	*cf;
	char		 err[512];

	if ((cf = config_load(home, err, sizeof(err))) == NULL)
		abort();
	return cf;
}

/* The state every input starts from. */
static void
restore(void)
{
	size_t i;

	event_flush();
	clear_dir(sv.dir_events);
	clear_dir(sv.dir_incoming);
	clear_dir(sv.dir_dead);
	for (i = 0; i < sizeof(dead) / sizeof(dead[0]); i++)
		if (dead[i].text != NULL)
			put(sv.dir_dead, dead[i].name, dead[i].text);
		else if (symlinkat("../../settings.json", sv.dir_dead,
		    dead[i].name) == -1)
			abort();
	put(dir_home, "settings.json", settings);
	if (sv.generation != 1) {
		config_free(sv.conf);
		sv.conf = load();
		sv.generation = 1;
	}
	sv.paused = 0;
}

static void
cleanup(void)
{
	static const char *const subdirs[] = { "queue/incoming",
	    "queue/processing", "queue/deferred", "queue/outgoing",
	    "queue/dead-letter", "queue/corrupt", "queue", "logs", "events",
	    "chats", "run/secrets", "run", NULL };
	char	*p;
	int	 i, fd;

	for (i = 0; subdirs[i] != NULL; i++) {
		xasprintf(&p, "%s/%s", home, subdirs[i]);
		if ((fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
			clear_dir(fd);
			close(fd);
		}
		rmdir(p);
		free(p);
	}
	clear_dir(dir_home);
	rmdir(home);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char	*tmp = getenv("TMPDIR");
	json_object	*obj;
	char		 why[256];
	int		 incomplete;

	(void)argc;
	(void)argv;
	snprintf(home, sizeof(home), "%s/fuzz-control.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(home) == NULL)
		abort();
	/* The workspace and "~" stay inside the temporary home. */
	setenv("HOME", home, 1);
	setenv("FUZZ_SECRET", "hunter2", 1);
	unsetenv("NOTIFY_SOCKET");
	log_open("fuzz", NULL, 0);
	if ((dir_home = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		abort();
	memset(&sv, 0, sizeof(sv));
	sv.home = xstrdup(home);
	/* A worker that is spawned execs nothing and exits 127. */
	sv.self_exe = xstrdup("/nonexistent/clawvisor");
	sv.pidfd = -1;
	if (queue_open_dirs(home) == -1)
		abort();
	put(dir_home, "settings.json", settings);
	sv.conf = load();
	sv.loop = ev_default_loop(0);
	sv.generation = 1;
	sv.started_ms = now_ms();
	sv.next_job_id = 1;
	/* The one worker slot the settings ask for is taken now, so that a
	 * reload never forks. */
	pool_init();
	/* A held message, so that status shows a lane. */
	if (queue_parse(payload, strlen(payload), &obj, &incomplete, why,
	    sizeof(why)) == -1)
		abort();
	sched_add(queue_msg_new("1700000000000-m1.json", AT_INCOMING, obj,
	    strlen(payload)), 0);
	restore();
	atexit(cleanup);
	return 0;
}

/* Every reply is {"ok": true, ...} or {"ok": false, "error": "..."}. */
static void
check(json_object *r, int stop)
{
	json_object	*ok, *e;
	const char	*s;

	if (r == NULL || !json_object_is_type(r, json_type_object) ||
	    !json_object_object_get_ex(r, "ok", &ok) ||
	    !json_object_is_type(ok, json_type_boolean))
		abort();
	if (!json_object_get_boolean(ok) &&
	    (!json_object_object_get_ex(r, "error", &e) ||
	    !json_object_is_type(e, json_type_string)))
		abort();
	if (stop != 0 && stop != 1)
		abort();
	/* The secret's value never reaches a reply. */
	if (strstr(json_object_to_json_string(r), "hunter2") != NULL)
		abort();
	/* UTF-8, whatever the request or the names in dead-letter/ hold. */
	s = json_object_to_json_string(r);
	if (!utf8_valid(s, strlen(s)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_object	*r;
	char		*line;
	int		 stop = -1;

	/* What control.c passes: at most CONTROL_MAX_LINE bytes, cut at the
	 * newline, NUL-terminated, and its strlen. */
	if (size > CONTROL_MAX_LINE)
		return 0;
	line = xstrndup((const char *)data, size);
	line[strcspn(line, "\n")] = '\0';
	r = control_handle_line(line, strlen(line), &stop);
	check(r, stop);
	json_object_put(r);
	free(line);
	restore();
	return 0;
}
