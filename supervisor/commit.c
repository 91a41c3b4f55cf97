/*
 * The outgoing side of the file queue: retries parked in deferred/,
 * responses to outgoing/, dead letters, and the recovery that makes all of
 * it survive a crash. A final outcome is committed in processing/ first
 * (NAME.reply, and NAME.dead for a dead letter), then the claimed NAME is
 * removed, then the records move to their directories; recovery finishes
 * whatever step a crash interrupted, so every message ends in exactly one
 * outcome.
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
#include "supervisor.h"
#include "util.h"

#define NOTICE_TEXT	"Sorry, I encountered an error processing your " \
			"request. Please check the queue logs."
#define INTERRUPTED	"interrupted: clawvisor stopped during the invocation"

static int
write_json(int dirfd, const char *name, json_object *o, int noreplace)
{
	const char	*s;
	char		*buf;
	int		 r;

	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	    JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	xasprintf(&buf, "%s\n", s);
	r = file_write_atomic(dirfd, name, buf, strlen(buf), noreplace);
	free(buf);
	return r;
}

static const char *
obj_str(json_object *o, const char *key, const char *def)
{
	json_object *v;

	if (json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return def;
}

char *
queue_response_name(json_object *resp)
{
	json_object	*v;
	char		*ch, *id, *name;
	long long	 ts = 0;

	ch = xstrdup(obj_str(resp, "channel", "unknown"));
	id = xstrdup(obj_str(resp, "messageId", "unknown"));
	name_sanitize(ch);
	name_sanitize(id);
	if (json_object_object_get_ex(resp, "timestamp", &v))
		ts = json_object_get_int64(v);
	if (strcmp(ch, "heartbeat") == 0)
		xasprintf(&name, "%s.json", id);
	else
		xasprintf(&name, "%s_%s_%lld.json", ch, id, ts);
	free(ch);
	free(id);
	return name;
}

/*
 * processing/NAME.reply -> outgoing/<response name>. known is what was
 * just written there (it gets the timestamp the name needed), or NULL to
 * read the file (recovery).
 */
static int
deliver(const char *reply, json_object *known)
{
	json_object	*resp;
	char		*name, *text = NULL, why[128];
	size_t		 len;
	int		 i, r, heartbeat;

	if (known != NULL)
		resp = json_object_get(known);
	else if (file_read_regular(sv.dir_processing, reply, MAX_OWN_FILE,
	    &text, &len, why, sizeof(why)) != 0 ||
	    (resp = json_parse_deep(text)) == NULL) {
		log_error("cannot read processing/%s: %s", reply, text == NULL ?
		    why : "bad JSON");
		free(text);
		return -1;
	}
	free(text);
	heartbeat = strcmp(obj_str(resp, "channel", ""), "heartbeat") == 0;
	for (i = 0; i < 1000; i++) {
		name = queue_response_name(resp);
		/* A heartbeat reply has one name and replaces the last. */
		r = heartbeat ? renameat(sv.dir_processing, reply,
		    sv.dir_outgoing, name) : renameat2(sv.dir_processing,
		    reply, sv.dir_outgoing, name, RENAME_NOREPLACE);
		if (r == 0 || errno != EEXIST) {
			if (r == -1)
				log_error("cannot move %s to outgoing/%s: %s",
				    reply, name, strerror(errno));
			free(name);
			break;
		}
		free(name);
		/* Same name in the same millisecond: the next one. */
		json_object_object_add(resp, "timestamp", json_object_new_int64(
		    json_object_get_int64(json_object_object_get(resp,
		    "timestamp")) + 1));
		if (write_json(sv.dir_processing, reply, resp, 0) == -1)
			break;
	}
	json_object_put(resp);
	return r;
}

static void
unlink_quiet(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT)
		log_error("cannot remove %s: %s", name, strerror(errno));
}

/*
 * Responses are committed in groups. queue_respond() writes the response
 * to a temporary in processing/ and queues the rest; event_flush(), just
 * before the loop waits again, makes one syncfs(2) for these temporaries
 * and the events' together, then calls queue_commit_finish(), which takes
 * each response through the same steps as ever: the temporary renamed to
 * NAME.reply, NAME removed, NAME.reply moved to outgoing/. So a busy loop
 * pays one flush per iteration instead of one fsync per response, and a
 * crash before the flush leaves only a temporary (removed by recovery) and
 * the claimed NAME (run again), as a crash during the fsync did.
 *
 * "Removed" is a rename to a temporary name, and the unlink itself (which
 * frees, and on a filesystem mounted with discard, trims the file's
 * blocks) is left to queue_commit_cleanup(), after the responses are out.
 */
#define COMMIT_MAX	256

struct pending_reply {
	char		 tmp[64];	/* the response's temporary */
	char		 gone[48];	/* processing/.tmp.PID.dSEQ */
	char		*name;		/* the claimed message */
	json_object	*resp;
};

static struct {
	struct pending_reply	 p[COMMIT_MAX];
	size_t			 n;
	unsigned		 seq;
} pc;

static int
respond_now(const char *name, json_object *resp)
{
	char *reply;

	xasprintf(&reply, "%s.reply", name);
	if (write_json(sv.dir_processing, reply, resp, 0) == -1) {
		log_error("cannot write processing/%s: %s", reply,
		    strerror(errno));
		free(reply);
		return -1;
	}
	unlink_quiet(sv.dir_processing, name);
	deliver(reply, resp);
	free(reply);
	return 0;
}

int
queue_respond(struct msg *m, json_object *resp)
{
	struct pending_reply	*p;
	const char		*s;
	char			*buf;
	int			 r;

	if (sv.loop == NULL)
		return respond_now(m->name, resp);
	if (pc.n == COMMIT_MAX)
		event_flush();
	p = &pc.p[pc.n];
	p->gone[0] = '\0';
	s = json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PRETTY |
	    JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	xasprintf(&buf, "%s\n", s);
	r = file_write_temp(sv.dir_processing, p->tmp, sizeof(p->tmp), buf,
	    strlen(buf), 0);
	free(buf);
	if (r == -1) {
		log_error("cannot write processing/%s.reply: %s", m->name,
		    strerror(errno));
		return -1;
	}
	p->name = xstrdup(m->name);
	p->resp = json_object_get(resp);
	pc.n++;
	event_pending();
	return 0;
}

size_t
queue_commit_pending(void)
{
	return pc.n;
}

/* After the flush: synced says whether it covered the temporaries. */
void
queue_commit_finish(int synced)
{
	struct pending_reply	*p;
	char			*reply;
	size_t			 i;
	int			 fd, ok;

	for (i = 0; i < pc.n; i++) {
		p = &pc.p[i];
		xasprintf(&reply, "%s.reply", p->name);
		ok = 1;
		if (!synced) {
			/* The flush failed: each one on its own. */
			fd = openat(sv.dir_processing, p->tmp, O_RDONLY |
			    O_CLOEXEC | O_NOFOLLOW);
			ok = fd != -1 && fsync(fd) == 0;
			if (fd != -1)
				close(fd);
		}
		if (!ok || renameat(sv.dir_processing, p->tmp,
		    sv.dir_processing, reply) == -1) {
			log_error("cannot write processing/%s: %s", reply,
			    strerror(errno));
			unlinkat(sv.dir_processing, p->tmp, 0);
			goto next;
		}
		snprintf(p->gone, sizeof(p->gone), ".tmp.%d.d%u",
		    (int)getpid(), pc.seq++);
		if (renameat2(sv.dir_processing, p->name, sv.dir_processing,
		    p->gone, RENAME_NOREPLACE) == -1) {
			p->gone[0] = '\0';
			unlink_quiet(sv.dir_processing, p->name);
		}
		deliver(reply, p->resp);
next:
		free(reply);
	}
}

/* The claimed messages of the responses just delivered go for good. */
void
queue_commit_cleanup(void)
{
	struct pending_reply	*p;
	size_t			 i;

	for (i = 0; i < pc.n; i++) {
		p = &pc.p[i];
		if (p->gone[0] != '\0')
			unlink_quiet(sv.dir_processing, p->gone);
		p->gone[0] = '\0';
		free(p->name);
		json_object_put(p->resp);
	}
	pc.n = 0;
}

/* processing/NAME.dead -> dead-letter/NAME (or NAME-2.json, ...). */
static void
bury(const char *dead, const char *name)
{
	char	*target, *stem;
	int	 i;

	stem = xstrndup(name, strlen(name) - 5);
	target = xstrdup(name);
	for (i = 2; renameat2(sv.dir_processing, dead, sv.dir_dead, target,
	    RENAME_NOREPLACE) == -1; i++) {
		if (errno != EEXIST || i > 10000) {
			log_error("cannot move %s to dead-letter/: %s", dead,
			    strerror(errno));
			break;
		}
		free(target);
		xasprintf(&target, "%s-%d.json", stem, i);
	}
	free(target);
	free(stem);
}

json_object *
queue_dead_record(json_object *payload, const char *cls, const char *error,
    int attempt)
{
	json_object *rec = json_object_new_object();

	json_object_object_add(rec, "failedAt", json_object_new_int64(now_ms()));
	json_object_object_add(rec, "errorClass", json_object_new_string(cls));
	json_object_object_add(rec, "errorMessage",
	    json_object_new_string(error));
	json_object_object_add(rec, "attempt", json_object_new_int(attempt));
	json_object_object_add(rec, "maxAttempts",
	    json_object_new_int64(sv.conf->max_attempts));
	json_object_object_add(rec, "payload", json_object_get(payload));
	return rec;
}

/* Commit a dead letter for processing/NAME, with its notice. */
static int
commit_dead(const char *name, json_object *rec, json_object *notice)
{
	char	*dead, *reply;
	int	 r = -1;

	xasprintf(&dead, "%s.dead", name);
	xasprintf(&reply, "%s.reply", name);
	if (write_json(sv.dir_processing, dead, rec, 0) == -1 ||
	    write_json(sv.dir_processing, reply, notice, 0) == -1) {
		log_error("cannot write the dead letter for %s: %s", name,
		    strerror(errno));
		goto out;
	}
	unlink_quiet(sv.dir_processing, name);
	bury(dead, name);
	deliver(reply, notice);
	r = 0;
out:
	free(dead);
	free(reply);
	return r;
}

static void
mark_failure(json_object *o, int attempt, int64_t first, const char *cls,
    const char *error)
{
	json_object_object_add(o, "attempt", json_object_new_int(attempt));
	json_object_object_add(o, "firstSeenAt", json_object_new_int64(first));
	json_object_object_add(o, "errorClass", json_object_new_string(cls));
	json_object_object_add(o, "lastError", json_object_new_string(error));
}

int
queue_dead(struct msg *m, const char *cls, const char *error,
    json_object *notice)
{
	json_object	*rec;
	int		 r;

	/* The payload as it was at the end, with the last failure. */
	mark_failure(m->obj, m->attempt, m->first_seen, cls, error);
	json_object_object_del(m->obj, "retryAt");
	rec = queue_dead_record(m->obj, cls, error, m->attempt);
	r = commit_dead(m->name, rec, notice);
	json_object_put(rec);
	return r;
}

int
queue_defer(struct msg *m, int64_t retry_at, const char *error)
{
	mark_failure(m->obj, m->attempt, m->first_seen, "transient", error);
	json_object_object_add(m->obj, "retryAt",
	    json_object_new_int64(retry_at));
	if (write_json(sv.dir_deferred, m->name, m->obj, 0) == -1) {
		log_error("cannot write deferred/%s: %s", m->name,
		    strerror(errno));
		return -1;
	}
	unlink_quiet(sv.dir_processing, m->name);
	m->where = AT_DEFERRED;
	return 0;
}

static int
has_suffix(const char *s, const char *suf)
{
	size_t l = strlen(s), n = strlen(suf);

	return l > n && strcmp(s + l - n, suf) == 0;
}

static int
exists(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Names in a directory, sorted; dot files (our temporaries) removed. */
static char **
list_dir(int dirfd, size_t *n)
{
	struct dirent	 *de;
	DIR		 *d;
	char		**v = NULL;
	size_t		  cap = 0;
	int		  fd;

	*n = 0;
	if ((fd = dup(dirfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return NULL;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".tmp.", 5) == 0) {
			unlinkat(dirfd, de->d_name, 0);
			continue;
		}
		if (de->d_name[0] == '.')
			continue;
		if (*n + 1 >= cap) {
			cap = cap == 0 ? 64 : cap * 2;
			v = xreallocarray(v, cap, sizeof(char *));
		}
		v[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	return v;
}

static void
free_list(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
recover_dead(const char *dead)
{
	json_object	*rec, *payload, *notice;
	char		*name, *reply, *text = NULL, why[128];
	size_t		 len;

	name = xstrndup(dead, strlen(dead) - 5);
	xasprintf(&reply, "%s.reply", name);
	if (!exists(sv.dir_processing, reply)) {
		/* Crashed between the two records: the notice again. */
		if (file_read_regular(sv.dir_processing, dead, MAX_OWN_FILE,
		    &text, &len, why, sizeof(why)) == 0 &&
		    (rec = json_parse_deep(text)) != NULL) {
			payload = json_object_object_get(rec, "payload");
			notice = response_notice(payload, NULL, NOTICE_TEXT);
			write_json(sv.dir_processing, reply, notice, 0);
			json_object_put(notice);
			json_object_put(rec);
		}
		free(text);
	}
	unlink_quiet(sv.dir_processing, name);
	bury(dead, name);
	if (exists(sv.dir_processing, reply))
		deliver(reply, NULL);
	log_info("recovered the dead letter of %s", name);
	free(name);
	free(reply);
}

/* A message that was running when the daemon died: one attempt spent. */
static void
recover_inflight(const char *name)
{
	json_object	*obj, *notice, *rec;
	char		*text, why[256];
	size_t		 len;
	int		 r, incomplete, attempt;
	int64_t		 first;

	if (exists(sv.dir_deferred, name)) {
		/* Died after parking it for retry: that copy is current. */
		unlink_quiet(sv.dir_processing, name);
		return;
	}
	r = file_read_regular(sv.dir_processing, name, MAX_OWN_FILE,
	    &text, &len, why, sizeof(why));
	if (r == -2)
		return;
	if (r != 0) {
		queue_corrupt(sv.dir_processing, name, why);
		return;
	}
	r = queue_parse(text, len, &obj, &incomplete, why, sizeof(why));
	free(text);
	if (r == -1) {
		queue_corrupt(sv.dir_processing, name, why);
		return;
	}
	attempt = json_object_get_int(json_object_object_get(obj, "attempt"));
	attempt = (attempt < 0 ? 0 : attempt) + 1;
	first = json_object_object_get_ex(obj, "firstSeenAt", NULL) ?
	    json_object_get_int64(json_object_object_get(obj, "firstSeenAt")) :
	    now_ms();
	mark_failure(obj, attempt, first, "transient", INTERRUPTED);
	if (attempt >= sv.conf->max_attempts) {
		log_warnx("%s was running when clawvisor stopped, attempt %d "
		    "of %lld: dead letter", name, attempt,
		    (long long)sv.conf->max_attempts);
		rec = queue_dead_record(obj, "transient", INTERRUPTED, attempt);
		notice = response_notice(obj, NULL, NOTICE_TEXT);
		if (commit_dead(name, rec, notice) == 0)
			sched_response_event(NULL, notice);
		json_object_put(rec);
		json_object_put(notice);
		sv.count.dead++;
	} else {
		log_warnx("%s was running when clawvisor stopped: attempt %d "
		    "counted, retrying", name, attempt);
		json_object_object_add(obj, "retryAt",
		    json_object_new_int64(now_ms()));
		if (write_json(sv.dir_deferred, name, obj, 0) == 0)
			unlink_quiet(sv.dir_processing, name);
		else
			log_error("cannot write deferred/%s: %s", name,
			    strerror(errno));
	}
	json_object_put(obj);
}

void
queue_recover(void)
{
	char	**v, *base;
	size_t	  n, i;

	v = list_dir(sv.dir_processing, &n);
	for (i = 0; i < n; i++)
		if (has_suffix(v[i], ".json.dead"))
			recover_dead(v[i]);
	free_list(v, n);
	v = list_dir(sv.dir_processing, &n);
	for (i = 0; i < n; i++)
		if (has_suffix(v[i], ".json.reply")) {
			base = xstrndup(v[i], strlen(v[i]) - 6);
			unlink_quiet(sv.dir_processing, base);
			deliver(v[i], NULL);
			free(base);
		}
	free_list(v, n);
	v = list_dir(sv.dir_processing, &n);
	for (i = 0; i < n; i++) {
		if (has_suffix(v[i], ".json"))
			recover_inflight(v[i]);
		else if (!has_suffix(v[i], ".reply") &&
		    !has_suffix(v[i], ".dead"))
			queue_corrupt(sv.dir_processing, v[i],
			    "unexpected file in processing/");
	}
	free_list(v, n);
	/* Temporaries a crash left in the other directories. */
	for (i = 0; i < 4; i++) {
		int dirs[] = { sv.dir_outgoing, sv.dir_events, sv.dir_dead,
		    sv.dir_corrupt };

		v = list_dir(dirs[i], &n);
		free_list(v, n);
	}
}

struct dmsg {
	struct msg	*m;
	int64_t		 first;
};

static int
dmsg_cmp(const void *a, const void *b)
{
	const struct dmsg *x = a, *y = b;

	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return strcmp(x->m->name, y->m->name);
}

/* Retries parked before a restart go first: they arrived first. */
void
queue_load_deferred(void)
{
	struct dmsg	 *d;
	json_object	 *obj, *v;
	char		**names, *text, why[256];
	size_t		  n, i, nd = 0, len;
	int		  incomplete;

	names = list_dir(sv.dir_deferred, &n);
	d = xcalloc(n, sizeof(*d));
	for (i = 0; i < n; i++) {
		if (!has_suffix(names[i], ".json")) {
			queue_corrupt(sv.dir_deferred, names[i],
			    "unexpected file in deferred/");
			continue;
		}
		if (file_read_regular(sv.dir_deferred, names[i],
		    MAX_OWN_FILE, &text, &len, why, sizeof(why)) != 0) {
			queue_corrupt(sv.dir_deferred, names[i], why);
			continue;
		}
		if (queue_parse(text, len, &obj, &incomplete, why,
		    sizeof(why)) == -1) {
			free(text);
			queue_corrupt(sv.dir_deferred, names[i], why);
			continue;
		}
		free(text);
		d[nd].m = queue_msg_new(names[i], AT_DEFERRED, obj, len);
		d[nd].m->deferred = 1;
		d[nd].first = d[nd].m->first_seen;
		d[nd].m->retry_at = json_object_object_get_ex(obj, "retryAt",
		    &v) ? json_object_get_int64(v) : now_ms();
		nd++;
	}
	if (nd > 1)
		qsort(d, nd, sizeof(*d), dmsg_cmp);
	for (i = 0; i < nd; i++)
		sched_add(d[i].m, 0);
	if (nd > 0)
		log_info("%zu deferred retries reloaded", nd);
	free(d);
	free_list(names, n);
}
