/*
 * settings.json watched on disk: TinyClaw's CLI edits it (jq to a temporary
 * name, then mv) and tells the user no restart is needed. inotify on the
 * home directory notices the rename as well as an in-place write; after a
 * short quiet time the file is reloaded exactly as SIGHUP reloads it.
 */
#include <sys/inotify.h>
#include <sys/stat.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "supervisor.h"
#include "util.h"

/* Editors write in several steps: wait for this much quiet. */
#define WATCH_SETTLE_SECONDS	0.25

static struct {
	int		 fd;
	ev_io		 io;
	ev_timer	 settle;
	/* The file as last loaded: a change of any of these is a change. */
	int		 known;
	dev_t		 dev;
	ino_t		 ino;
	off_t		 size;
	struct timespec	 mtime;
	int		 missing_said;
} wt = { .fd = -1 };

static int
watch_stat(struct stat *st)
{
	return lstat(sv.conf->path, st);
}

void
watch_note_loaded(void)
{
	struct stat st;

	if (sv.conf == NULL || watch_stat(&st) == -1) {
		wt.known = 0;
		return;
	}
	wt.known = 1;
	wt.dev = st.st_dev;
	wt.ino = st.st_ino;
	wt.size = st.st_size;
	wt.mtime = st.st_mtim;
}

static void
watch_settled(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct stat	st;
	char		err[512];

	(void)loop;
	(void)t;
	(void)revents;
	if (sv.stopping || !sv.conf->watch_settings)
		return;
	if (watch_stat(&st) == -1) {
		/* Being replaced, or removed: never fall back to defaults. */
		if (errno == ENOENT && !wt.missing_said) {
			log_warnx("%s was removed; the running configuration "
			    "stays in force until it is back", sv.conf->path);
			wt.missing_said = 1;
		}
		return;
	}
	wt.missing_said = 0;
	if (wt.known && st.st_dev == wt.dev && st.st_ino == wt.ino &&
	    st.st_size == wt.size && st.st_mtim.tv_sec == wt.mtime.tv_sec &&
	    st.st_mtim.tv_nsec == wt.mtime.tv_nsec)
		return;		/* already loaded (reload, sandbox set) */
	log_info("%s changed on disk: reloading", sv.conf->path);
	(void)supervisor_reload(err, sizeof(err));
}

static void
watch_read(struct ev_loop *loop, ev_io *w, int revents)
{
	char				 buf[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event	*ev;
	const char			*p;
	ssize_t				 n;
	int				 hit = 0;

	(void)w;
	(void)revents;
	while ((n = read(wt.fd, buf, sizeof(buf))) > 0)
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if ((ev->mask & IN_Q_OVERFLOW) || (ev->len > 0 &&
			    strcmp(ev->name, "settings.json") == 0))
				hit = 1;
		}
	if (hit) {
		ev_timer_stop(loop, &wt.settle);
		ev_timer_set(&wt.settle, WATCH_SETTLE_SECONDS, 0.);
		ev_timer_start(loop, &wt.settle);
	}
}

void
watch_start(void)
{
	watch_note_loaded();
	wt.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (wt.fd == -1 || inotify_add_watch(wt.fd, sv.home, IN_CLOSE_WRITE |
	    IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM) == -1) {
		log_warnx("cannot watch %s for changes of settings.json: "
		    "%s; reload by hand (clawvisor reload)", sv.home,
		    strerror(errno));
		if (wt.fd != -1)
			close(wt.fd);
		wt.fd = -1;
		return;
	}
	ev_io_init(&wt.io, watch_read, wt.fd, EV_READ);
	ev_io_start(sv.loop, &wt.io);
	ev_timer_init(&wt.settle, watch_settled, WATCH_SETTLE_SECONDS, 0.);
}

void
watch_stop(void)
{
	if (wt.fd == -1)
		return;
	ev_io_stop(sv.loop, &wt.io);
	ev_timer_stop(sv.loop, &wt.settle);
	close(wt.fd);
	wt.fd = -1;
}
