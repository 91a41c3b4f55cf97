/*
 * The incoming side of the file queue: noticing files (inotify at once, a
 * full rescan every scan_interval_ms), reading and routing a bounded window
 * of them in arrival order, claiming one with rename when it is about to
 * run, and moving what is not a message to corrupt/.
 */
#include <sys/inotify.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef __unused
#define __unused __attribute__((__unused__))
#endif
#include <sys/tree.h>

#include "log.h"
#include "metrics.h"
#include "supervisor.h"
#include "util.h"

/*
 * How many messages are read and held in memory ahead of running. Bounded
 * so that a backlog of 100k files costs a sorted list of names, not 100k
 * parsed messages.
 */
#define WINDOW		1024
#define WINDOW_BYTES	(64u * 1024 * 1024)
/*
 * A message has a dozen values. More are refused before json-c builds
 * them, and each counts in the window for what json-c may spend on it (an
 * empty object: some 750 bytes), not for its few bytes of text.
 */
#define MSG_MAX_VALUES	1024
#define VALUE_COST	1024
/* A file that fails to parse but changed this recently is still being
 * written (TinyClaw's clients write in place): try it again later. */
#define YOUNG_MS	2000

struct pending {
	char		*name;
	int64_t		 mtime;	/* ns */
};

struct held {
	RB_ENTRY(held)		 entry;
	char			*name;
	const struct msg	*m;
	int			 again;	/* a file of that name is waiting */
	/* processing/NAME as claimed: rename(2) keeps the inode, so the
	 * same file back in incoming/ is recognised. */
	dev_t			 dev;
	ino_t			 ino;
	int			 stolen;
};

/*
 * Files clawvisor claimed that another program moved back to incoming/
 * (TinyClaw's queue processor does so at its start) and that clawvisor
 * has since answered, deferred or dead-lettered: the copy in incoming/ is
 * that same message and is never run again. A few suffice: the incidents
 * come at a rival's start, and an entry goes once its copy is found.
 */
#define TAKEN_MAX	64

struct taken {
	char	*name;
	dev_t	 dev;
	ino_t	 ino;
};

static int
held_cmp(struct held *a, struct held *b)
{
	return strcmp(a->name, b->name);
}

RB_HEAD(held_tree, held);
RB_GENERATE_STATIC(held_tree, held, entry, held_cmp);

static struct {
	struct pending	*pend;
	size_t		 npend;
	size_t		 head;
	size_t		 cap;
	struct held_tree held;
	size_t		 nheld;
	size_t		 held_bytes;
	int		 inotify;
	ev_io		 inotify_io;
	ev_timer	 scan;
	int		 rescan;
	/*
	 * Names to look at again, whatever scan_interval_ms is: no inotify
	 * event will come for a file skipped because a message of its name
	 * was held, or whose claim failed. The timer is due at the earliest
	 * time one of them asked for.
	 */
	char		**again;
	size_t		  nagain;
	ev_timer	  again_timer;
	double		  claim_delay;	/* s; doubles while claims fail */
	struct taken	  taken[TAKEN_MAX];
	size_t		  ntaken;
} q = { .held = RB_INITIALIZER(&q.held), .inotify = -1, .claim_delay = 1. };

#define CLAIM_DELAY_MAX	60.

static const char *const subdirs[] = {
	"queue", "queue/incoming", "queue/processing", "queue/deferred",
	"queue/outgoing", "queue/dead-letter", "queue/corrupt", "logs",
	"events", "chats", "run", "run/secrets", NULL
};

static int
open_dir(const char *home, const char *sub)
{
	char	*p;
	int	 fd;

	xasprintf(&p, "%s/%s", home, sub);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		log_error("cannot open %s: %s", p, strerror(errno));
	free(p);
	return fd;
}

int
queue_open_dirs(const char *home)
{
	char	*p;
	int	 i;

	for (i = 0; subdirs[i] != NULL; i++) {
		xasprintf(&p, "%s/%s", home, subdirs[i]);
		if (mkdir_p(p, 0700) == -1) {
			fprintf(stderr, "clawvisor: cannot create %s: %s\n", p,
			    strerror(errno));
			free(p);
			return -1;
		}
		if (strncmp(subdirs[i], "run", 3) == 0)
			chmod(p, 0700);
		free(p);
	}
	if ((sv.dir_incoming = open_dir(home, "queue/incoming")) == -1 ||
	    (sv.dir_processing = open_dir(home, "queue/processing")) == -1 ||
	    (sv.dir_deferred = open_dir(home, "queue/deferred")) == -1 ||
	    (sv.dir_outgoing = open_dir(home, "queue/outgoing")) == -1 ||
	    (sv.dir_dead = open_dir(home, "queue/dead-letter")) == -1 ||
	    (sv.dir_corrupt = open_dir(home, "queue/corrupt")) == -1 ||
	    (sv.dir_events = open_dir(home, "events")) == -1)
		return -1;
	return 0;
}

static int
is_message_name(const char *n)
{
	size_t l = strlen(n);

	return n[0] != '.' && l > 5 && strcmp(n + l - 5, ".json") == 0;
}

static void
pend_add(const char *name, int64_t mtime)
{
	if (q.npend == q.cap) {
		q.cap = q.cap == 0 ? 256 : q.cap * 2;
		q.pend = xreallocarray(q.pend, q.cap, sizeof(*q.pend));
	}
	q.pend[q.npend].name = xstrdup(name);
	q.pend[q.npend].mtime = mtime;
	q.npend++;
}

static void
pend_clear(void)
{
	size_t i;

	for (i = q.head; i < q.npend; i++)
		free(q.pend[i].name);
	q.npend = q.head = 0;
	if (q.cap > 4096) {
		free(q.pend);
		q.pend = NULL;
		q.cap = 0;
	}
}

static int
pend_cmp(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Every *.json in incoming/, oldest first, as TinyClaw orders them. */
static void
queue_scan(void)
{
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	int		 fd;

	pend_clear();
	if ((fd = dup(sv.dir_incoming)) == -1 || (d = fdopendir(fd)) == NULL) {
		log_error("scan: %s", strerror(errno));
		if (fd != -1)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (!is_message_name(de->d_name))
			continue;
		if (fstatat(sv.dir_incoming, de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		pend_add(de->d_name, (int64_t)st.st_mtim.tv_sec * 1000000000 +
		    st.st_mtim.tv_nsec);
	}
	closedir(d);
	if (q.npend > 1)
		qsort(q.pend, q.npend, sizeof(*q.pend), pend_cmp);
	q.rescan = 0;
}

static struct held *
held_find(const char *name)
{
	struct held key;

	key.name = (char *)name;
	return RB_FIND(held_tree, &q.held, &key);
}

static void
queue_again_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
	size_t i;

	(void)loop;
	(void)w;
	(void)revents;
	for (i = 0; i < q.nagain; i++) {
		pend_add(q.again[i], 0);
		free(q.again[i]);
	}
	free(q.again);
	q.again = NULL;
	q.nagain = 0;
	queue_pull();
}

/* Read incoming/NAME again in delay seconds (0: the next iteration). */
static void
queue_again(const char *name, double delay)
{
	size_t i;

	if (sv.loop == NULL || sv.stopping)
		return;
	for (i = 0; i < q.nagain && strcmp(q.again[i], name) != 0; i++)
		;
	if (i == q.nagain) {
		q.again = xreallocarray(q.again, q.nagain + 1, sizeof(char *));
		q.again[q.nagain++] = xstrdup(name);
	}
	if (ev_is_active(&q.again_timer) &&
	    ev_timer_remaining(sv.loop, &q.again_timer) <= delay)
		return;
	ev_timer_stop(sv.loop, &q.again_timer);
	ev_timer_set(&q.again_timer, delay, 0.);
	ev_timer_start(sv.loop, &q.again_timer);
}

static void	held_claimed(struct held *);

static void
held_add(struct msg *m)
{
	struct held *h = xcalloc(1, sizeof(*h));

	h->name = xstrdup(m->name);
	h->m = m;
	if (m->where == AT_PROCESSING)
		held_claimed(h);	/* recovered after a crash */
	RB_INSERT(held_tree, &q.held, h);
	q.nheld++;
	q.held_bytes += m->bytes;
}

/* Where processing/NAME is, for held_stolen(). */
static void
held_claimed(struct held *h)
{
	struct stat st;

	if (fstatat(sv.dir_processing, h->name, &st,
	    AT_SYMLINK_NOFOLLOW) == 0) {
		h->dev = st.st_dev;
		h->ino = st.st_ino;
	}
}

/*
 * A file of a held, claimed message's name in incoming/: the claimed file
 * itself, moved back by another program? Said loudly, once per file.
 */
static void
held_stolen(struct held *h, const struct stat *st)
{
	if (h->stolen || h->ino == 0 || h->m->where != AT_PROCESSING ||
	    st->st_dev != h->dev || st->st_ino != h->ino)
		return;
	h->stolen = 1;
	log_error("queue/processing/%s, which clawvisor was running, was "
	    "moved back to queue/incoming/ by another program: TinyClaw's "
	    "queue processor does that when it starts (`tinyclaw start` or "
	    "`restart`), and then runs the message too. clawvisor answers it "
	    "once and will not run the copy; stop the other processor "
	    "(docs/MIGRATION.md)", h->name);
}

static void
taken_add(const struct held *h)
{
	struct taken *t;

	if (q.ntaken == TAKEN_MAX) {
		free(q.taken[0].name);
		memmove(&q.taken[0], &q.taken[1], (TAKEN_MAX - 1) *
		    sizeof(q.taken[0]));
		q.ntaken--;
	}
	t = &q.taken[q.ntaken++];
	t->name = xstrdup(h->name);
	t->dev = h->dev;
	t->ino = h->ino;
}

/* 1 if incoming/NAME is a message clawvisor has already taken care of. */
static int
taken_check(const char *name, const struct stat *st)
{
	size_t i;

	for (i = 0; i < q.ntaken; i++)
		if (q.taken[i].ino == st->st_ino &&
		    q.taken[i].dev == st->st_dev &&
		    strcmp(q.taken[i].name, name) == 0)
			break;
	if (i == q.ntaken)
		return 0;
	free(q.taken[i].name);
	memmove(&q.taken[i], &q.taken[i + 1], (q.ntaken - i - 1) *
	    sizeof(q.taken[0]));
	q.ntaken--;
	return 1;
}

void
queue_forget(struct msg *m)
{
	struct held key, *h;

	key.name = m->name;
	if ((h = RB_FIND(held_tree, &q.held, &key)) == NULL)
		return;
	RB_REMOVE(held_tree, &q.held, h);
	if (h->stolen && !sv.stopping)
		taken_add(h);
	/* After the loop's commit has taken the name out of processing/. */
	if (h->again)
		queue_again(h->name, 0.);
	free(h->name);
	free(h);
	q.nheld--;
	q.held_bytes -= m->bytes;
}

size_t
queue_held(void)
{
	return q.nheld;
}

static const char *const required[] = {
	"channel", "sender", "message", "messageId", NULL
};
/* Every text of a message clawvisor reads, passes on or names a file by. */
static const char *const texts[] = {
	"channel", "sender", "senderId", "message", "messageId", "agent", NULL
};

/* A "\u0000" in it: a C string (argv, a file name) would end there. */
static int
has_nul(json_object *v)
{
	return json_object_is_type(v, json_type_string) &&
	    strlen(json_object_get_string(v)) !=
	    (size_t)json_object_get_string_len(v);
}

/*
 * argv cannot carry a NUL, and the text after one would be lost without a
 * word: refused. TinyClaw's clients never write one (their text comes from
 * chat services, which have none).
 */
static int
message_nul(json_object *obj, char *why, size_t len)
{
	json_object	*v;
	size_t		 i, n;

	for (i = 0; texts[i] != NULL; i++)
		if (json_object_object_get_ex(obj, texts[i], &v) &&
		    has_nul(v)) {
			snprintf(why, len, "field \"%s\" holds a NUL character "
			    "(U+0000)", texts[i]);
			return -1;
		}
	if (json_object_object_get_ex(obj, "files", &v) &&
	    json_object_is_type(v, json_type_array)) {
		n = json_object_array_length(v);
		for (i = 0; i < n; i++)
			if (has_nul(json_object_array_get_idx(v, i))) {
				snprintf(why, len, "field \"files\"[%zu] holds a "
				    "NUL character (U+0000)", i);
				return -1;
			}
	}
	return 0;
}

/* NULL and *why set if obj is not a message. */
static int
message_check(json_object *obj, char *why, size_t len)
{
	json_object	*v;
	int		 i;

	if (!json_object_is_type(obj, json_type_object)) {
		snprintf(why, len, "not a JSON object");
		return -1;
	}
	for (i = 0; required[i] != NULL; i++)
		if (!json_object_object_get_ex(obj, required[i], &v) ||
		    !json_object_is_type(v, json_type_string)) {
			snprintf(why, len, "missing or non-string field "
			    "\"%s\"", required[i]);
			return -1;
		}
	json_object_object_get_ex(obj, "messageId", &v);
	if (json_object_get_string_len(v) == 0) {
		snprintf(why, len, "empty field \"messageId\"");
		return -1;
	}
	return message_nul(obj, why, len);
}

/*
 * The text with each invalid UTF-8 byte made U+FFFD, as replies are (and
 * as TinyClaw's readFileSync(..., "utf8") replaces them too), so that all
 * that is written from a message (the response, events, a dead letter,
 * the log) is UTF-8. NULL if it is valid.
 */
static char *
utf8_fix(const char *buf, size_t *len)
{
	char	*clean;
	size_t	 i;

	for (i = 0; i < *len && (unsigned char)buf[i] < 0x80; i++)
		;
	if (i == *len)
		return NULL;
	clean = utf8_clean(buf, *len);
	if (strlen(clean) == *len) {	/* a replacement adds two bytes */
		free(clean);
		return NULL;
	}
	*len = strlen(clean);
	return clean;
}

/* Parse a message file's bytes: 0, or -1 with why; *incomplete if it
 * looks cut short (so a writer may still be at it). */
/*
 * Where JSON broke, as an editor shows it: line and column (in characters,
 * from 1) of byte off, and the text around it, escaped to one line.
 */
static void
json_where(const char *buf, size_t len, size_t off, const char *what,
    char *why, size_t wlen)
{
	size_t	 line, col, from, to;
	char	*ctx;

	if (off > len)
		off = len;
	text_position(buf, len, off, &line, &col);
	from = off > 24 ? off - 24 : 0;
	to = len - off > 16 ? off + 16 : len;
	ctx = str_escape(buf + from, to - from, 0);
	snprintf(why, wlen, "not valid JSON at line %zu, column %zu: %s, "
	    "near \"%s\"", line, col, what, ctx);
	free(ctx);
}

int
queue_parse(const char *buf, size_t len, json_object **out, int *incomplete,
    char *why, size_t wlen)
{
	struct json_tokener	*tok;
	json_object		*obj;
	enum json_tokener_error	 e;
	char			*clean;
	size_t			 at;

	*out = NULL;
	*incomplete = 0;
	if (len == 0) {
		*incomplete = 1;
		snprintf(why, wlen, "empty file");
		return -1;
	}
	if (memchr(buf, '\0', len) != NULL) {
		snprintf(why, wlen, "contains a NUL byte");
		return -1;
	}
	if (json_single_quoted(buf, len, &at)) {
		json_where(buf, len, at, "a single-quoted string", why, wlen);
		return -1;
	}
	if ((clean = utf8_fix(buf, &len)) != NULL)
		buf = clean;
	if ((tok = json_tokener_new_ex(64)) == NULL)
		fatalx("json_tokener_new");
	/* As JavaScript's JSON.parse: no trailing commas, no data after the
	 * object, no single quotes (above). */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	e = json_tokener_get_error(tok);
	if (obj == NULL && e == json_tokener_continue) {
		/*
		 * A number or a literal at the very end waits for what ends
		 * it: with a space after it, "42", "true" or "null" is a whole
		 * value, not a file still being written. A cut object stays
		 * cut, and is given time as before.
		 */
		obj = json_tokener_parse_ex(tok, " ", 1);
		if (json_tokener_get_error(tok) == json_tokener_success) {
			snprintf(why, wlen, "not a JSON object");
			json_tokener_free(tok);
			json_object_put(obj);
			free(clean);
			return -1;
		}
		json_object_put(obj);
	}
	if (obj == NULL && e == json_tokener_success) {
		/* The JSON null. */
		snprintf(why, wlen, "not a JSON object");
		json_tokener_free(tok);
		free(clean);
		return -1;
	}
	if (obj == NULL) {
		*incomplete = e == json_tokener_continue;
		if (e == json_tokener_continue)
			snprintf(why, wlen, "not valid JSON: unexpected end of "
			    "file");
		else
			json_where(buf, len, json_tokener_get_parse_end(tok),
			    json_tokener_error_desc(e), why, wlen);
		json_tokener_free(tok);
		free(clean);
		return -1;
	}
	if (json_tokener_get_parse_end(tok) != len &&
	    strspn(buf + json_tokener_get_parse_end(tok), " \t\r\n") !=
	    len - json_tokener_get_parse_end(tok)) {
		json_where(buf, len, json_tokener_get_parse_end(tok) +
		    strspn(buf + json_tokener_get_parse_end(tok), " \t\r\n"),
		    "data after the object", why, wlen);
		json_tokener_free(tok);
		json_object_put(obj);
		free(clean);
		return -1;
	}
	json_tokener_free(tok);
	free(clean);
	if (message_check(obj, why, wlen) == -1) {
		json_object_put(obj);
		return -1;
	}
	*out = obj;
	return 0;
}

/* The range of a JavaScript Date, in ms: TinyClaw's Date.now(). */
#define DATE_MAX	8640000000000000LL

/*
 * A number clawvisor keeps in a message it rewrites (attempt, firstSeenAt,
 * retryAt). A file anyone can edit may hold anything there: a value that
 * is not an integer in [min, max] is taken as fix, with a warning that
 * names it, rather than overflow the arithmetic done on it.
 */
static int64_t
msg_int(const char *name, json_object *o, const char *key, int64_t min,
    int64_t max, int64_t def, int64_t fix)
{
	json_object	*v;
	int64_t		 n;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return def;
	if (json_object_is_type(v, json_type_int)) {
		errno = 0;
		n = json_object_get_int64(v);
		if (errno == 0 && n >= min && n <= max)
			return n;
	}
	log_warnx("%s: \"%s\": %.40s is not an integer from %lld to %lld: "
	    "taken as %lld", name, key, json_object_to_json_string_ext(v,
	    JSON_C_TO_STRING_PLAIN), (long long)min, (long long)max,
	    (long long)fix);
	return fix;
}

/* Attempts made so far: above the largest max_attempts, one last one. */
int
queue_msg_attempt(const char *name, json_object *o)
{
	json_object	*v;
	int64_t		 fix = 0;

	if (json_object_object_get_ex(o, "attempt", &v) &&
	    json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) > CONFIG_MAX_ATTEMPTS)
		fix = CONFIG_MAX_ATTEMPTS;
	return (int)msg_int(name, o, "attempt", 0, CONFIG_MAX_ATTEMPTS, 0,
	    fix);
}

int64_t
queue_msg_first_seen(const char *name, json_object *o)
{
	int64_t now = now_ms();

	return msg_int(name, o, "firstSeenAt", 0, DATE_MAX, now, now);
}

/* No later than the longest backoff a configuration allows. */
int64_t
queue_msg_retry_at(const char *name, json_object *o)
{
	int64_t now = now_ms();

	return msg_int(name, o, "retryAt", 0, now + CONFIG_MAX_BACKOFF * 1000LL,
	    now, now);
}

/* A held message from its parsed file: routed, ready for its lane. */
struct msg *
queue_msg_new(const char *name, enum msg_where where, json_object *obj,
    size_t bytes)
{
	struct msg *m = xcalloc(1, sizeof(*m));

	m->name = xstrdup(name);
	m->where = where;
	m->obj = obj;
	m->bytes = bytes;
	m->attempt = queue_msg_attempt(name, obj);
	m->first_seen = queue_msg_first_seen(name, obj);
	route_message(sv.conf, obj, &m->agent, &m->text, &m->team_routed,
	    &m->multi);
	held_add(m);
	return m;
}

static void	corrupt_notice(const char *, const char *, size_t,
		    const char *);

static void
queue_peek(const char *name)
{
	struct stat	 st;
	struct held	*h;
	json_object	*obj;
	char		*buf, why[256];
	size_t		 len, values;
	int		 r, incomplete;

	if ((h = held_find(name)) != NULL) {
		/*
		 * Read once. But once the held message has left incoming/
		 * (claimed, or a retry from deferred/), this is another file
		 * of the same name: it is read when the held one is gone.
		 */
		if (h->m->where != AT_INCOMING) {
			h->again = 1;
			if (fstatat(sv.dir_incoming, name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0)
				held_stolen(h, &st);
		}
		return;
	}
	if (q.ntaken > 0 && fstatat(sv.dir_incoming, name, &st,
	    AT_SYMLINK_NOFOLLOW) == 0 && taken_check(name, &st)) {
		if (unlinkat(sv.dir_incoming, name, 0) == 0)
			log_warnx("incoming/%s is the copy of a message "
			    "clawvisor already took care of, moved back by "
			    "another queue processor: removed, not run twice",
			    name);
		return;
	}
	if (strlen(name) > QUEUE_NAME_MAX) {
		/* Its NAME.reply or dead letter could not be named. */
		snprintf(why, sizeof(why), "file name is %zu bytes, over the "
		    "limit of %d", strlen(name), QUEUE_NAME_MAX);
		queue_corrupt(sv.dir_incoming, name, why);
		return;
	}
	r = file_read_regular(sv.dir_incoming, name, MAX_MESSAGE_FILE, &buf,
	    &len, why, sizeof(why));
	if (r == -2)
		return;		/* gone */
	if (r == -3) {
		/* Still growing: its writer's close (inotify) or this. */
		queue_again(name, YOUNG_MS / 1000.);
		return;
	}
	if (r == -1) {
		queue_corrupt(sv.dir_incoming, name, why);
		return;
	}
	if ((values = json_values(buf, len)) > MSG_MAX_VALUES) {
		free(buf);
		snprintf(why, sizeof(why), "more than %d JSON values",
		    MSG_MAX_VALUES);
		queue_corrupt(sv.dir_incoming, name, why);
		return;
	}
	r = queue_parse(buf, len, &obj, &incomplete, why, sizeof(why));
	if (r == -1) {
		if (incomplete && fstatat(sv.dir_incoming, name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 && now_ms() -
		    ((int64_t)st.st_mtim.tv_sec * 1000 +
		    st.st_mtim.tv_nsec / 1000000) < YOUNG_MS) {
			/* A writer that died meanwhile sends no event. */
			free(buf);
			queue_again(name, YOUNG_MS / 1000.);
			return;
		}
		if (queue_corrupt(sv.dir_incoming, name, why) == 0)
			corrupt_notice(name, buf, len, why);
		free(buf);
		return;
	}
	free(buf);
	sched_add(queue_msg_new(name, AT_INCOMING, obj,
	    len + values * VALUE_COST), 0);
}

/* Read and route more of the backlog, up to the window. */
void
queue_pull(void)
{
	if (sv.stopping)
		return;
	while (q.nheld < WINDOW && q.held_bytes < WINDOW_BYTES) {
		if (q.head == q.npend) {
			if (!q.rescan)
				break;
			queue_scan();
			if (q.npend == 0)
				break;
		}
		queue_peek(q.pend[q.head].name);
		free(q.pend[q.head].name);
		q.head++;
		/* A backlog: the first ones run while the window fills. */
		if (pool_idle() != NULL)
			sched_kick();
	}
	if (q.head == q.npend)
		pend_clear();
	sched_kick();
}

static void
queue_inotify(struct ev_loop *loop, ev_io *w, int revents)
{
	char				 buf[65536]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event	*ev;
	ssize_t				 n;
	char				*p;

	(void)loop;
	(void)w;
	(void)revents;
	while ((n = read(q.inotify, buf, sizeof(buf))) > 0) {
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW)
				q.rescan = 1;
			else if (ev->len > 0 && is_message_name(ev->name))
				pend_add(ev->name, 0);
		}
	}
	queue_pull();
}

static void
queue_scan_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	/* While a list is being worked through, a rescan would only
	 * repeat it; what arrives meanwhile comes through inotify. */
	if (q.head == q.npend)
		q.rescan = 1;
	queue_pull();
}

void
queue_scan_start(void)
{
	char *p;

	q.inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (q.inotify == -1)
		log_warnx("inotify: %s: relying on the periodic scan",
		    strerror(errno));
	else {
		xasprintf(&p, "%s/queue/incoming", sv.home);
		if (inotify_add_watch(q.inotify, p, IN_MOVED_TO |
		    IN_CLOSE_WRITE) == -1)
			log_warnx("inotify_add_watch %s: %s", p,
			    strerror(errno));
		free(p);
		ev_io_init(&q.inotify_io, queue_inotify, q.inotify, EV_READ);
		ev_io_start(sv.loop, &q.inotify_io);
	}
	ev_timer_init(&q.again_timer, queue_again_fire, 0., 0.);
	ev_timer_init(&q.scan, queue_scan_timer, 0.,
	    sv.conf->scan_interval_ms / 1000.);
	if (sv.conf->scan_interval_ms > 0)
		ev_timer_again(sv.loop, &q.scan);
	q.rescan = 1;
	queue_pull();
}

/* After a reload: the scan period may have changed. */
void
queue_scan_reset(void)
{
	ev_timer_stop(sv.loop, &q.scan);
	q.scan.repeat = sv.conf->scan_interval_ms / 1000.;
	if (sv.conf->scan_interval_ms > 0)
		ev_timer_again(sv.loop, &q.scan);
}

void
queue_scan_stop(void)
{
	size_t i;

	ev_timer_stop(sv.loop, &q.scan);
	ev_timer_stop(sv.loop, &q.again_timer);
	for (i = 0; i < q.nagain; i++)
		free(q.again[i]);
	free(q.again);
	q.again = NULL;
	q.nagain = 0;
	if (q.inotify != -1) {
		ev_io_stop(sv.loop, &q.inotify_io);
		close(q.inotify);
		q.inotify = -1;
	}
	pend_clear();
	free(q.pend);
	q.pend = NULL;
	q.cap = 0;
}

static const char *
where_dir(enum msg_where w, int *fd)
{
	switch (w) {
	case AT_INCOMING:
		*fd = sv.dir_incoming;
		return "incoming";
	case AT_DEFERRED:
		*fd = sv.dir_deferred;
		return "deferred";
	default:
		*fd = sv.dir_processing;
		return "processing";
	}
}

/* The message is about to run: incoming/ or deferred/ -> processing/. */
int
queue_claim(struct msg *m)
{
	struct held	*h;
	struct stat	 st;
	const char	*dir;
	int		 fd, saved;

	if (m->where == AT_PROCESSING)
		return 0;
	dir = where_dir(m->where, &fd);
	if (commit_holds(m->name)) {
		/* An earlier message of this name is still committing. */
		log_warnx("cannot claim %s/%s yet: the commit of an earlier "
		    "message of that name is still under way", dir, m->name);
		if (m->where == AT_INCOMING)
			queue_again(m->name, 1.);
		return -1;
	}
	if (renameat2(fd, m->name, sv.dir_processing, m->name,
	    RENAME_NOREPLACE) == -1) {
		saved = errno;
		/*
		 * Still in incoming/ (the name is taken in processing/, a
		 * permission): no event will say when that changes, so it
		 * is tried again later, sooner than a restart.
		 */
		if (m->where == AT_INCOMING && saved != ENOENT &&
		    fstatat(fd, m->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			log_error("cannot claim %s/%s: %s: trying again in "
			    "%.0fs", dir, m->name, strerror(saved),
			    q.claim_delay);
			queue_again(m->name, q.claim_delay);
			q.claim_delay *= 2;
			if (q.claim_delay > CLAIM_DELAY_MAX)
				q.claim_delay = CLAIM_DELAY_MAX;
		} else
			log_error("cannot claim %s/%s: %s", dir, m->name,
			    strerror(saved));
		return -1;
	}
	q.claim_delay = 1.;
	if (m->where == AT_INCOMING)
		metrics_pickup(m->name);
	m->where = AT_PROCESSING;
	if ((h = held_find(m->name)) != NULL)
		held_claimed(h);
	return 0;
}

/* Hand a claimed message back to incoming/ as it was (graceful stop). */
void
queue_handback(struct msg *m)
{
	char *alt;

	if (m->where != AT_PROCESSING || m->parent != NULL)
		return;
	if (renameat2(sv.dir_processing, m->name, sv.dir_incoming, m->name,
	    RENAME_NOREPLACE) == -1) {
		xasprintf(&alt, "%.*s-%lld.json", (int)(strlen(m->name) - 5 <
		    QUEUE_NAME_MAX - 26 ? strlen(m->name) - 5 :
		    QUEUE_NAME_MAX - 26), m->name, (long long)now_ms());
		if (renameat2(sv.dir_processing, m->name, sv.dir_incoming,
		    alt, RENAME_NOREPLACE) == -1)
			log_error("cannot hand back %s: %s", m->name,
			    strerror(errno));
		free(alt);
	}
	m->where = AT_INCOMING;
}

/*
 * Keep the bytes, say why beside them: corrupt/NAME and corrupt/NAME.error.
 * The note is written first, so a crash between the two leaves the file
 * in place to be looked at again rather than a file without its note.
 */
/*
 * The sender of a file that was not a message learns that it was not
 * processed, when the file still says who that is (salvage.c).
 */
static void
corrupt_notice(const char *name, const char *buf, size_t len,
    const char *why)
{
	json_object	*who, *notice;
	char		*text;

	if ((who = salvage_sender(buf, len)) == NULL)
		return;
	xasprintf(&text, "%s (%s).", CORRUPT_NOTICE_TEXT, why);
	notice = response_notice(who, NULL, text);
	free(text);
	log_info("%s: a notice goes to %s on %s", name,
	    json_object_get_string(json_object_object_get(who, "sender")),
	    json_object_get_string(json_object_object_get(who, "channel")));
	commit_notice(name, notice);
	message_response_event(NULL, notice);
	json_object_put(notice);
	json_object_put(who);
}

int
queue_corrupt(int dirfd, const char *name, const char *why)
{
	struct stat	 st;
	char		*base, *target, *note, *text, *ename, *ewhy;
	int		 i, r = -1;

	/*
	 * Gone already: taken care of at an earlier sight of its name (its
	 * inotify event and a scan can both list it). Without this, a note
	 * would be written, the move fail, the note be removed again, and
	 * a false "cannot move" be logged.
	 */
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 &&
	    errno == ENOENT)
		return -1;
	/* Room for ".N.error" under NAME_MAX; the note has the name. */
	base = name_shorten(name, QUEUE_NAME_MAX);
	target = xstrdup(base);
	for (i = 1; fstatat(sv.dir_corrupt, target, &st,
	    AT_SYMLINK_NOFOLLOW) == 0; i++) {
		free(target);
		xasprintf(&target, "%s.%d", base, i);
	}
	free(base);
	xasprintf(&note, "%s.error", target);
	/* One field a line: a newline in the name must not forge one. */
	ename = str_escape(name, strlen(name), 1);
	ewhy = str_escape(why, strlen(why), 1);
	xasprintf(&text, "file: %s\nreason: %s\ntime: %lld\n", ename, ewhy,
	    (long long)now_ms());
	free(ename);
	free(ewhy);
	if (file_write_atomic(sv.dir_corrupt, note, text, strlen(text), 0)
	    == -1)
		/* A full disk, say: the file stays to be tried again (the
		 * next scan of incoming/, the next start elsewhere). */
		log_error("cannot write corrupt/%s: %s: %s left in place",
		    note, strerror(errno), name);
	else if (renameat2(dirfd, name, sv.dir_corrupt, target,
	    RENAME_NOREPLACE) == -1) {
		log_error("cannot move %s to corrupt/: %s", name,
		    strerror(errno));
		unlinkat(sv.dir_corrupt, note, 0);
	} else {
		log_warnx("%s is not a valid message (%s): moved to "
		    "queue/corrupt/%s", name, why, target);
		sv.count.corrupt++;
		r = 0;
	}
	free(target);
	free(note);
	free(text);
	return r;
}

size_t
queue_depth(int dirfd)
{
	struct dirent	*de;
	DIR		*d;
	size_t		 n = 0;
	int		 fd;

	if ((fd = dup(dirfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return 0;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (is_message_name(de->d_name))
			n++;
	closedir(d);
	return n;
}
