/*
 * Events for TinyClaw's visualiser and tools: one JSON file per event in
 * events/, named <ms>-<random>.json, {"type":…,"timestamp":ms,…} and a
 * newline. Events are collected during a loop iteration and written in a
 * batch just before the loop waits again (ev_prepare): every file to a
 * temporary name, one syncfs(2) for all of them, then the renames. So they
 * are still durable before they become visible, for one flush instead of
 * one per file. The same flush covers the responses of the iteration
 * (commit.c), which are committed first. Files older than a day are
 * pruned.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "supervisor.h"
#include "util.h"

#define RETENTION_MS	(24LL * 3600 * 1000)
#define PRUNE_EVERY_MS	(60LL * 1000)
#define BATCH_MAX	512
#define LAZY_SECONDS	1.0

struct pending_event {
	char	name[32];
	char	tmp[64];
	char	*data;
};

static struct {
	struct pending_event	 ev[BATCH_MAX];
	size_t			 n;
	ev_prepare		 prepare;
	int			 started;
	int64_t			 last_prune;
	uint32_t		 name_seq;
	size_t			 nlazy;		/* of n, event_emit_lazy's */
	ev_timer		 lazy;
} e;

static void
event_prune(int64_t now)
{
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	int		 fd;

	e.last_prune = now;
	if ((fd = dup(sv.dir_events)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		/* Only event names, <ms>-<id>.json; anything else stays. */
		if (de->d_name[0] < '0' || de->d_name[0] > '9' ||
		    strtoll(de->d_name, NULL, 10) > now - RETENTION_MS)
			continue;
		if (fstatat(sv.dir_events, de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			unlinkat(sv.dir_events, de->d_name, 0);
	}
	closedir(d);
}

/*
 * syncfs(2) on events/, and on processing/ too if it is on another
 * filesystem: 1 if both worked.
 */
static int
flush_all(void)
{
	static int	other = -1;	/* processing/ on another filesystem */
	struct stat	a, b;
	int		ok = 1;

	if (other == -1)
		other = fstat(sv.dir_events, &a) == -1 ||
		    fstat(sv.dir_processing, &b) == -1 || a.st_dev != b.st_dev;
	if (syncfs(sv.dir_events) == -1) {
		log_warnx("syncfs events/: %s", strerror(errno));
		ok = 0;
	}
	if (commit_pending() > 0 && other &&
	    syncfs(sv.dir_processing) == -1) {
		log_warnx("syncfs processing/: %s", strerror(errno));
		ok = 0;
	}
	return ok;
}

void
event_flush(void)
{
	struct pending_event	*p;
	size_t			 i;
	int			 synced;

	if (e.n == 0 && commit_pending() == 0)
		return;
	for (i = 0; i < e.n; i++) {
		p = &e.ev[i];
		if (file_write_temp(sv.dir_events, p->tmp, sizeof(p->tmp),
		    p->data, strlen(p->data), 0) == -1) {
			log_warnx("cannot write event %s: %s", p->name,
			    strerror(errno));
			p->tmp[0] = '\0';
		}
	}
	/* One flush for these and the responses' temporaries (commit.c). */
	synced = flush_all();
	commit_finish(synced);
	for (i = 0; i < e.n; i++) {
		p = &e.ev[i];
		if (p->tmp[0] != '\0' && renameat2(sv.dir_events, p->tmp,
		    sv.dir_events, p->name, RENAME_NOREPLACE) == -1) {
			log_warnx("cannot rename event %s: %s", p->name,
			    strerror(errno));
			unlinkat(sv.dir_events, p->tmp, 0);
		}
		free(p->data);
	}
	e.n = 0;
	e.nlazy = 0;
	if (sv.loop != NULL)
		ev_timer_stop(sv.loop, &e.lazy);
	commit_cleanup();
}

static void
event_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	int64_t now;

	(void)loop;
	(void)w;
	(void)revents;
	/* Lazy events alone wait for their timer or for company. */
	if (e.n > e.nlazy || commit_pending() > 0)
		event_flush();
	now = now_ms();
	if (now - e.last_prune > PRUNE_EVERY_MS)
		event_prune(now);
}

/* Something waits for the flush before the loop waits again. */
void
event_pending(void)
{
	if (!e.started && sv.loop != NULL) {
		ev_prepare_init(&e.prepare, event_prepare);
		ev_prepare_start(sv.loop, &e.prepare);
		/* The batch must not keep the loop alive on its own. */
		ev_unref(sv.loop);
		e.started = 1;
	}
}

/* Takes ownership of fields (which may be NULL). */
void
event_emit(const char *type, json_object *fields)
{
	static const char	 alnum[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	struct pending_event	*p;
	json_object		*o;
	char			*fixed;
	int64_t			 now = now_ms();
	uint32_t		 seq;
	int			 i, j;

	metrics_event(type);
	event_pending();
	if (e.n == BATCH_MAX)
		event_flush();
	o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "timestamp", json_object_new_int64(now));
	if (fields != NULL) {
		json_object_object_foreach(fields, k, v)
			json_object_object_add(o, k, json_object_get(v));
		json_object_put(fields);
	}
	p = &e.ev[e.n++];
	/* Configuration strings are not checked for UTF-8; events are. */
	xasprintf(&p->data, "%s\n", utf8_ensure(json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), &fixed));
	free(fixed);
	json_object_put(o);
	/*
	 * <ms>-<6 base-36 digits>, as TinyClaw names them; the digits count
	 * up from a random start so that events of one millisecond sort in
	 * the order they happened.
	 */
	if (e.name_seq == 0)
		e.name_seq = arc4random_uniform(36u * 36 * 36 * 36 * 36) + 1;
	seq = e.name_seq++;
	i = snprintf(p->name, sizeof(p->name), "%lld-", (long long)now);
	for (j = 5; j >= 0; j--, seq /= 36)
		p->name[i + j] = alnum[seq % 36];
	snprintf(p->name + i + 6, sizeof(p->name) - i - 6, ".json");
	if (sv.loop == NULL)
		event_flush();
}

static void
event_lazy_due(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	event_flush();
}

/*
 * An event that need not be on disk before the loop waits again (an
 * exec'd invocation's: its caller has its answer on the socket): written
 * with the next batch, or within LAZY_SECONDS, so that a stream of short
 * execs shares one syncfs a second instead of paying one each.
 */
void
event_emit_lazy(const char *type, json_object *fields)
{
	event_emit(type, fields);
	if (sv.loop == NULL || e.n == 0)
		return;
	e.nlazy++;
	if (!ev_is_active(&e.lazy)) {
		ev_timer_init(&e.lazy, event_lazy_due, LAZY_SECONDS, 0.);
		ev_timer_start(sv.loop, &e.lazy);
	}
}

/* At exit: nothing may stay unwritten. */
void
event_close(void)
{
	event_flush();
	if (sv.loop != NULL)
		ev_timer_stop(sv.loop, &e.lazy);
	if (e.started) {
		ev_ref(sv.loop);
		ev_prepare_stop(sv.loop, &e.prepare);
		e.started = 0;
	}
}
