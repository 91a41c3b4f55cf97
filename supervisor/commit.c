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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "supervisor.h"
#include "util.h"

#define NOTICE_TEXT	"Sorry, I encountered an error processing your " \
			"request. Please check the queue logs."
#define INTERRUPTED	"interrupted: clawvisor stopped during the invocation"

static int
write_json(int dirfd, const char *name, json_object *o, int noreplace)
{
	const char	*s;
	char		*buf, *fixed;
	int		 r;

	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	    JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	xasprintf(&buf, "%s\n", utf8_ensure(s, &fixed));
	free(fixed);
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

/*
 * A response's name holds the message's channel and messageId, which can
 * be of any length: a name that would pass NAME_MAX has them shortened,
 * each to a prefix and a hash of all of it (docs/QUEUE.md).
 */
#define RESPONSE_CHANNEL_MAX	64
#define RESPONSE_ID_MAX		160

char *
commit_response_name(json_object *resp)
{
	json_object	*v;
	char		*ch, *id, *name, *s;
	long long	 ts = 0;
	int		 heartbeat;

	ch = xstrdup(obj_str(resp, "channel", "unknown"));
	id = xstrdup(obj_str(resp, "messageId", "unknown"));
	name_sanitize(ch);
	name_sanitize(id);
	if (json_object_object_get_ex(resp, "timestamp", &v))
		ts = json_object_get_int64(v);
	heartbeat = strcmp(ch, "heartbeat") == 0;
	/* Whether to shorten does not depend on the timestamp's digits. */
	if ((heartbeat ? 0 : strlen(ch) + 22) + strlen(id) +
	    sizeof(".json") - 1 > NAME_MAX) {
		s = name_shorten(ch, RESPONSE_CHANNEL_MAX);
		free(ch);
		ch = s;
		s = name_shorten(id, RESPONSE_ID_MAX);
		free(id);
		id = s;
	}
	if (heartbeat)
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
 * read the file (recovery). -1 with why on failure.
 */
static int
deliver(const char *reply, json_object *known, char *why, size_t wlen)
{
	json_object	*resp;
	char		*name, *text = NULL, err[128];
	size_t		 len;
	int		 i, r = -1, heartbeat;

	if (known != NULL)
		resp = json_object_get(known);
	else if (file_read_regular(sv.dir_processing, reply, MAX_OWN_FILE,
	    &text, &len, err, sizeof(err)) != 0 ||
	    (resp = json_parse_deep(text)) == NULL) {
		snprintf(why, wlen, "cannot read processing/%s: %s", reply,
		    text == NULL ? err : "bad JSON");
		free(text);
		return -1;
	}
	free(text);
	heartbeat = strcmp(obj_str(resp, "channel", ""), "heartbeat") == 0;
	for (i = 0; i < 1000; i++) {
		name = commit_response_name(resp);
		/* A heartbeat reply has one name and replaces the last. */
		r = heartbeat ? renameat(sv.dir_processing, reply,
		    sv.dir_outgoing, name) : renameat2(sv.dir_processing,
		    reply, sv.dir_outgoing, name, RENAME_NOREPLACE);
		if (r == 0 || errno != EEXIST) {
			if (r == -1)
				snprintf(why, wlen, "cannot move %s to "
				    "outgoing/%s: %s", reply, name,
				    strerror(errno));
			free(name);
			break;
		}
		free(name);
		/* Same name in the same millisecond: the next one. */
		json_object_object_add(resp, "timestamp", json_object_new_int64(
		    json_object_get_int64(json_object_object_get(resp,
		    "timestamp")) + 1));
		if (write_json(sv.dir_processing, reply, resp, 0) == -1) {
			snprintf(why, wlen, "cannot write processing/%s: %s",
			    reply, strerror(errno));
			r = -1;
			break;
		}
	}
	if (r == -1 && i == 1000)
		snprintf(why, wlen, "cannot move %s to outgoing/: every name "
		    "taken", reply);
	json_object_put(resp);
	return r;
}

static void
unlink_quiet(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT)
		log_error("cannot remove %s: %s", name, strerror(errno));
}

static int
exists(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* processing/NAME.dead -> dead-letter/NAME (or NAME-2.json, ...). */
static int
bury(const char *dead, const char *name, char *why, size_t wlen)
{
	char	*target;
	int	 i, r = 0;

	target = xstrdup(name);
	for (i = 2; renameat2(sv.dir_processing, dead, sv.dir_dead, target,
	    RENAME_NOREPLACE) == -1; i++) {
		if (errno != EEXIST || i > 10000) {
			snprintf(why, wlen, "cannot move %s to dead-letter/: "
			    "%s", dead, strerror(errno));
			r = -1;
			break;
		}
		free(target);
		/* Within QUEUE_NAME_MAX, so that it can be requeued. */
		xasprintf(&target, "%.*s-%d.json", (int)(strlen(name) - 5 <
		    QUEUE_NAME_MAX - 12 ? strlen(name) - 5 : QUEUE_NAME_MAX -
		    12), name, i);
	}
	free(target);
	return r;
}

/*
 * A commit that fails (a full disk, EIO, a rename refused) is not dropped:
 * what it still has to do is kept here, the reply with it, and tried again
 * with backoff while the daemon runs. The agent does not run again, and
 * the message completes once the disk takes the files. Each step is one of
 * the commit sequence (docs/QUEUE.md) and is done once, in order, so a
 * crash in between leaves what recovery expects.
 */
enum commit_step {
	STEP_DEAD,		/* write processing/NAME.dead */
	STEP_REPLY,		/* write processing/NAME.reply */
	STEP_REMOVE,		/* remove processing/NAME */
	STEP_BURY,		/* processing/NAME.dead -> dead-letter/ */
	STEP_DELIVER,		/* processing/NAME.reply -> outgoing/ */
};

#define RETRY_FIRST	1.	/* seconds */
#define RETRY_MAX	30.

struct commit_retry {
	TAILQ_ENTRY(commit_retry) entry;
	ev_timer		 timer;
	char			*name;
	json_object		*resp;	/* NULL: it is in NAME.reply */
	json_object		*dead;	/* the record, for STEP_DEAD */
	enum commit_step	 step;
	unsigned		 tries;
	double			 delay;
};

static TAILQ_HEAD(, commit_retry) retries = TAILQ_HEAD_INITIALIZER(retries);
static size_t nretries;

/* The steps from c->step on: 0, or -1 with why (c->step is where). */
static int
commit_steps(struct commit_retry *c, char *why, size_t wlen)
{
	char	*dead, *reply;
	int	 r = -1;

	xasprintf(&dead, "%s.dead", c->name);
	xasprintf(&reply, "%s.reply", c->name);
	if (c->step == STEP_DEAD) {
		if (write_json(sv.dir_processing, dead, c->dead, 0) == -1) {
			snprintf(why, wlen, "cannot write processing/%s: %s",
			    dead, strerror(errno));
			goto fail;
		}
		c->step = STEP_REPLY;
	}
	if (c->step == STEP_REPLY) {
		if (write_json(sv.dir_processing, reply, c->resp, 0) == -1) {
			snprintf(why, wlen, "cannot write processing/%s: %s",
			    reply, strerror(errno));
			goto fail;
		}
		c->step = STEP_REMOVE;
	}
	if (c->step == STEP_REMOVE) {
		if (unlinkat(sv.dir_processing, c->name, 0) == -1 &&
		    errno != ENOENT) {
			snprintf(why, wlen, "cannot remove processing/%s: %s",
			    c->name, strerror(errno));
			goto fail;
		}
		c->step = STEP_BURY;
	}
	if (c->step == STEP_BURY) {
		if (exists(sv.dir_processing, dead) &&
		    bury(dead, c->name, why, wlen) == -1)
			goto fail;
		c->step = STEP_DELIVER;
	}
	/* Recovery of a dead letter whose notice was lost: none. */
	if ((c->resp != NULL || exists(sv.dir_processing, reply)) &&
	    deliver(reply, c->resp, why, wlen) == -1)
		goto fail;
	r = 0;
fail:
	free(dead);
	free(reply);
	return r;
}

static void
commit_retry_free(struct commit_retry *c)
{
	free(c->name);
	json_object_put(c->resp);
	json_object_put(c->dead);
	free(c);
}

static void
commit_retry_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct commit_retry	*c = w->data;
	char			 why[512];

	(void)loop;
	(void)revents;
	c->tries++;
	if (commit_steps(c, why, sizeof(why)) == 0) {
		log_info("%s: committed after %u tr%s", c->name, c->tries,
		    c->tries == 1 ? "y" : "ies");
		TAILQ_REMOVE(&retries, c, entry);
		nretries--;
		commit_retry_free(c);
		return;
	}
	c->delay = c->delay * 2 > RETRY_MAX ? RETRY_MAX : c->delay * 2;
	/* The first failure was logged; then one line in ten. */
	if (c->tries % 10 == 0)
		log_error("%s: commit still failing after %u tries: %s; "
		    "trying again in %.0fs", c->name, c->tries, why,
		    c->delay);
	ev_timer_set(&c->timer, c->delay, 0.);
	ev_timer_start(sv.loop, &c->timer);
}

/*
 * Run the commit of processing/name from step on; what fails is kept and
 * tried again later. resp and dead are borrowed. now = 0: it just failed,
 * do not try again at once.
 */
static void
commit_start(const char *name, json_object *resp, json_object *dead,
    enum commit_step step, int now, const char *failed)
{
	struct commit_retry	*c = xcalloc(1, sizeof(*c));
	char			 why[512];

	c->name = xstrdup(name);
	c->resp = resp != NULL ? json_object_get(resp) : NULL;
	c->dead = dead != NULL ? json_object_get(dead) : NULL;
	c->step = step;
	if (now && commit_steps(c, why, sizeof(why)) == 0) {
		commit_retry_free(c);
		return;
	}
	if (!now)
		strlcpy(why, failed, sizeof(why));
	metrics_commit_failure();
	if (sv.loop == NULL) {
		/* No loop to wait in: the next start finishes it. */
		log_error("%s: commit failed: %s", name, why);
		commit_retry_free(c);
		return;
	}
	c->delay = RETRY_FIRST;
	log_error("%s: commit failed, kept in memory and tried again "
	    "in %.0fs: %s", name, c->delay, why);
	ev_timer_init(&c->timer, commit_retry_fire, c->delay, 0.);
	c->timer.data = c;
	ev_timer_start(sv.loop, &c->timer);
	TAILQ_INSERT_TAIL(&retries, c, entry);
	nretries++;
}

/* Commits waiting to be tried again, for status. */
size_t
commit_waiting(void)
{
	return nretries;
}

/* A commit of processing/name is still under way: do not claim name. */
int
commit_holds(const char *name)
{
	struct commit_retry *c;

	TAILQ_FOREACH(c, &retries, entry)
		if (strcmp(c->name, name) == 0)
			return 1;
	return 0;
}

/*
 * At exit: one last try each. What still fails is finished by recovery at
 * the next start if its records are on disk. A response that could not
 * even be written is lost with the process: its message goes back to
 * incoming/ un-failed, as an invocation a stop interrupts does, and runs
 * again. A dead letter never written is left claimed: recovery counts
 * the attempt, so a terminal failure does not start over.
 */
void
commit_close(void)
{
	struct commit_retry	*c;
	char			 why[512];

	while ((c = TAILQ_FIRST(&retries)) != NULL) {
		TAILQ_REMOVE(&retries, c, entry);
		nretries--;
		ev_timer_stop(sv.loop, &c->timer);
		if (commit_steps(c, why, sizeof(why)) == 0)
			log_info("%s: committed at exit", c->name);
		else if (c->step == STEP_REPLY && c->dead == NULL &&
		    renameat2(sv.dir_processing, c->name, sv.dir_incoming,
		    c->name, RENAME_NOREPLACE) == 0)
			log_error("%s: commit not finished at exit (%s): "
			    "handed back to incoming/, it runs again", c->name,
			    why);
		else if (c->step > STEP_REPLY || (c->step == STEP_REPLY &&
		    c->dead != NULL))
			log_error("%s: commit not finished at exit (%s): the "
			    "next start finishes it", c->name, why);
		else
			log_error("%s: commit not finished at exit (%s): the "
			    "next start counts an interrupted attempt",
			    c->name, why);
		commit_retry_free(c);
	}
}

/*
 * Responses are committed in groups. commit_respond() writes the response
 * to a temporary in processing/ and queues the rest; event_flush(), just
 * before the loop waits again, makes one syncfs(2) for these temporaries
 * and the events' together, then calls commit_finish(), which takes
 * each response through the same steps as ever: the temporary renamed to
 * NAME.reply, NAME removed, NAME.reply moved to outgoing/. So a busy loop
 * pays one flush per iteration instead of one fsync per response, and a
 * crash before the flush leaves only a temporary (removed by recovery) and
 * the claimed NAME (run again), as a crash during the fsync did. A step
 * that fails goes to commit_start() from there.
 *
 * "Removed" is a rename to a temporary name, and the unlink itself (which
 * frees, and on a filesystem mounted with discard, trims the file's
 * blocks) is left to commit_cleanup(), after the responses are out.
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

void
commit_respond(struct msg *m, json_object *resp)
{
	struct pending_reply	*p;
	const char		*s;
	char			*buf, *fixed, why[512];
	int			 r;

	if (sv.loop == NULL) {
		commit_start(m->name, resp, NULL, STEP_REPLY, 1, NULL);
		return;
	}
	if (pc.n == COMMIT_MAX)
		event_flush();
	p = &pc.p[pc.n];
	p->gone[0] = '\0';
	s = json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PRETTY |
	    JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	/* Only UTF-8 for the channel clients (settings are not checked). */
	xasprintf(&buf, "%s\n", utf8_ensure(s, &fixed));
	free(fixed);
	r = file_write_temp(sv.dir_processing, p->tmp, sizeof(p->tmp), buf,
	    strlen(buf), 0);
	free(buf);
	if (r == -1) {
		snprintf(why, sizeof(why), "cannot write processing/%s.reply: "
		    "%s", m->name, strerror(errno));
		commit_start(m->name, resp, NULL, STEP_REPLY, 0, why);
		return;
	}
	p->name = xstrdup(m->name);
	p->resp = json_object_get(resp);
	pc.n++;
	event_pending();
}

/* A response for no message clawvisor holds (corrupt/ notices). */
void
commit_notice(const char *name, json_object *resp)
{
	commit_start(name, resp, NULL, STEP_REPLY, 1, NULL);
}

size_t
commit_pending(void)
{
	return pc.n;
}

/* After the flush: synced says whether it covered the temporaries. */
void
commit_finish(int synced)
{
	struct pending_reply	*p;
	char			*reply, why[512];
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
			snprintf(why, sizeof(why), "cannot write processing/"
			    "%s: %s", reply, strerror(errno));
			unlinkat(sv.dir_processing, p->tmp, 0);
			commit_start(p->name, p->resp, NULL, STEP_REPLY, 0,
			    why);
			goto next;
		}
		snprintf(p->gone, sizeof(p->gone), ".tmp.%d.d%u",
		    (int)getpid(), pc.seq++);
		if (renameat2(sv.dir_processing, p->name, sv.dir_processing,
		    p->gone, RENAME_NOREPLACE) == -1) {
			p->gone[0] = '\0';
			unlink_quiet(sv.dir_processing, p->name);
		}
		if (deliver(reply, p->resp, why, sizeof(why)) == -1)
			commit_start(p->name, p->resp, NULL, STEP_DELIVER, 0,
			    why);
next:
		free(reply);
	}
}

/* The claimed messages of the responses just delivered go for good. */
void
commit_cleanup(void)
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

json_object *
commit_dead_record(json_object *payload, const char *cls, const char *error,
    int attempt)
{
	json_object *rec = json_object_new_object();

	metrics_dead_letter(cls);
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

static void
mark_failure(json_object *o, int attempt, int64_t first, const char *cls,
    const char *error)
{
	json_object_object_add(o, "attempt", json_object_new_int(attempt));
	json_object_object_add(o, "firstSeenAt", json_object_new_int64(first));
	json_object_object_add(o, "errorClass", json_object_new_string(cls));
	json_object_object_add(o, "lastError", json_object_new_string(error));
}

/* A dead letter for processing/NAME, with its notice. */
void
commit_dead(struct msg *m, const char *cls, const char *error,
    json_object *notice)
{
	json_object *rec;

	/* The payload as it was at the end, with the last failure. */
	mark_failure(m->obj, m->attempt, m->first_seen, cls, error);
	json_object_object_del(m->obj, "retryAt");
	rec = commit_dead_record(m->obj, cls, error, m->attempt);
	commit_start(m->name, notice, rec, STEP_DEAD, 1, NULL);
	json_object_put(rec);
}

int
commit_defer(struct msg *m, int64_t retry_at, const char *error)
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
	json_object	*rec, *payload, *notice = NULL;
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
			json_object_put(rec);
		}
		free(text);
	}
	commit_start(name, notice, NULL, notice != NULL ? STEP_REPLY :
	    STEP_REMOVE, 1, NULL);
	json_object_put(notice);
	log_info("recovered the dead letter of %s", name);
	free(name);
	free(reply);
}

/* A message that was running when the daemon died: one attempt spent. */
static void
recover_inflight(const char *name)
{
	json_object	*obj, *notice, *rec;
	struct msg	*m;
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
	attempt = queue_msg_attempt(name, obj) + 1;
	first = queue_msg_first_seen(name, obj);
	mark_failure(obj, attempt, first, "transient", INTERRUPTED);
	if (attempt >= sv.conf->max_attempts) {
		log_warnx("%s was running when clawvisor stopped, attempt %d "
		    "of %lld: dead letter", name, attempt,
		    (long long)sv.conf->max_attempts);
		rec = commit_dead_record(obj, "transient", INTERRUPTED, attempt);
		notice = response_notice(obj, NULL, NOTICE_TEXT);
		commit_start(name, notice, rec, STEP_DEAD, 1, NULL);
		/* The notice is the message's response, as TinyClaw's was. */
		message_response_event(NULL, notice);
		json_object_put(rec);
		json_object_put(notice);
		sv.count.dead++;
	} else {
		log_warnx("%s was running when clawvisor stopped: attempt %d "
		    "counted, retrying", name, attempt);
		json_object_object_add(obj, "retryAt",
		    json_object_new_int64(now_ms()));
		if (write_json(sv.dir_deferred, name, obj, 0) == -1) {
			/* A full disk, say: it runs from processing/. */
			log_error("cannot write deferred/%s: %s: retried from "
			    "processing/", name, strerror(errno));
			m = queue_msg_new(name, AT_PROCESSING, obj, len);
			m->deferred = 1;
			m->retry_at = now_ms();
			sched_add(m, 0);
			return;
		}
		unlink_quiet(sv.dir_processing, name);
	}
	json_object_put(obj);
}

void
commit_recover(void)
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
			/* Not one whose dead letter is being retried. */
			if (!commit_holds(base))
				commit_start(base, NULL, NULL, STEP_REMOVE, 1,
				    NULL);
			free(base);
		}
	free_list(v, n);
	v = list_dir(sv.dir_processing, &n);
	for (i = 0; i < n; i++) {
		if (has_suffix(v[i], ".json")) {
			if (!commit_holds(v[i]))
				recover_inflight(v[i]);
		}
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
commit_load_deferred(void)
{
	struct dmsg	 *d;
	json_object	 *obj;
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
		d[nd].m->retry_at = queue_msg_retry_at(names[i], obj);
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
