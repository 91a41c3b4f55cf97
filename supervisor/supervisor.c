/*
 * `clawvisor serve`: start-up (layout, configuration, pid file lock,
 * recovery), the signal watchers, reload, and graceful stop.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "control.h"
#include "log.h"
#include "metrics.h"
#include "provider.h"
#include "supervisor.h"
#include "util.h"

/* How long a stop waits for the workers to clean up and exit. */
#define WORKER_EXIT_MS	10000

struct sv sv;

static ev_signal	sig_hup, sig_term, sig_int, sig_usr1;
static ev_timer		grace;
static int		finished;

static int
pid_lock(void)
{
	char	*path, buf[32];
	ssize_t	 n;
	int	 fd;

	xasprintf(&path, "%s/run/clawvisor.pid", sv.home);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		fprintf(stderr, "clawvisor: cannot open %s: %s\n", path,
		    strerror(errno));
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		fprintf(stderr, "clawvisor: another clawvisor (pid %s) is "
		    "already serving %s\n", *buf ? buf : "?", sv.home);
		close(fd);
		free(path);
		return -1;
	}
	free(path);
	sv.pidfd = fd;
	return 0;
}

static void
pid_write(void)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(sv.pidfd, 0) == -1 ||
	    pwrite(sv.pidfd, buf, strlen(buf), 0) == -1)
		log_warnx("cannot write the pid file: %s", strerror(errno));
}

static void
pid_remove(void)
{
	char *path;

	xasprintf(&path, "%s/run/clawvisor.pid", sv.home);
	unlink(path);
	free(path);
	close(sv.pidfd);
}

/* Env-files a crash left behind hold secrets: they go first. */
static void
secrets_sweep(void)
{
	struct dirent	*de;
	DIR		*d;
	char		*path;
	int		 n = 0;

	xasprintf(&path, "%s/run/secrets", sv.home);
	if ((d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.' &&
			    unlinkat(dirfd(d), de->d_name, 0) == 0)
				n++;
		closedir(d);
	}
	if (n > 0)
		log_info("removed %d stale env-file(s) from %s", n, path);
	free(path);
}

/*
 * Containers an earlier crash of this home left behind: every one the
 * workers recorded in run/containers/, and for docker and podman every one
 * carrying this home's label. Synchronous and bounded: the loop is not
 * running yet, and nothing new may start before they are gone.
 */
static int
container_rm(const char *runtime, const char *name, char **envp)
{
	char *kill[] = { (char *)runtime, "kill", (char *)name, NULL };
	char *rm[] = { (char *)runtime, "rm", "-f", (char *)name, NULL };

	/* A kill first: rm -f would wait out the stop timeout. */
	(void)run_output_env(kill, envp, NULL, 0, 30);
	return run_output_env(rm, envp, NULL, 0, 60);
}

static void
containers_sweep(void)
{
	struct dirent	*de;
	DIR		*d;
	FILE		*f;
	char		*dir, *label, line[256], out[65536], *p, *nl;
	char		*ps[] = { sv.conf->docker.runtime_command, "ps", "-a",
			    "--filter", NULL, "--format", "{{.Names}}", NULL };
	char		**envp;
	int		 n = 0;
	size_t		 i;

	envp = runtime_env(sv.conf->env_allowlist, sv.conf->nallow,
	    sv.conf->runtime_pass_env, sv.conf->npass);
	xasprintf(&dir, "%s/run/containers", sv.home);
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strncmp(de->d_name, "clawvisor-", 10) != 0)
				continue;
			*line = '\0';
			if ((f = fdopen(openat(dirfd(d), de->d_name, O_RDONLY |
			    O_CLOEXEC | O_NOFOLLOW), "r")) != NULL) {
				if (fgets(line, sizeof(line), f) == NULL)
					*line = '\0';
				fclose(f);
			}
			line[strcspn(line, "\n")] = '\0';
			if (*line != '\0' &&
			    container_rm(line, de->d_name, envp) == 0)
				n++;
			unlinkat(dirfd(d), de->d_name, 0);
		}
		closedir(d);
	}
	free(dir);
	for (i = 0; i < sv.conf->nagents; i++)
		if (config_agent_mode(sv.conf, &sv.conf->agents[i]) ==
		    MODE_DOCKER)
			break;
	if (i < sv.conf->nagents) {
		xasprintf(&label, "label=clawvisor.home=%s", sv.home);
		ps[4] = label;
		if (run_output_env(ps, envp, out, sizeof(out), 30) == 0)
			for (p = out; *p != '\0'; p = nl) {
				nl = p + strcspn(p, "\n");
				if (*nl != '\0')
					*nl++ = '\0';
				if (strncmp(p, "clawvisor-", 10) == 0 &&
				    container_rm(ps[0], p, envp) == 0)
					n++;
			}
		free(label);
	}
	argv_free(envp);
	if (n > 0)
		log_info("removed %d container(s) left by an earlier run", n);
}

static void
finish(void)
{
	if (finished)
		return;
	finished = 1;
	ev_timer_stop(sv.loop, &grace);
	chain_handback_all();
	control_close();
	pool_shutdown();
	egress_shutdown();
	ev_break(sv.loop, EVBREAK_ALL);
}

void
supervisor_check_exit(void)
{
	if (sv.stopping && sched_running() == 0)
		finish();
}

static void
grace_expired(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	log_info("grace period over: handing back what still runs");
	sched_handback_running();
	finish();
}

/*
 * Who can write into the home can make the agents run prompts or forge
 * replies: say so if that is every user.
 */
static void
warn_world_writable(const char *home)
{
	static const struct {
		const char	*sub;
		const char	*what;
	} d[] = {
		{ "", "replace settings.json" },
		{ "/queue", "replace the queue's directories" },
		{ "/queue/incoming", "submit prompts to the agents" },
		{ "/queue/outgoing", "forge or remove replies" },
	};
	struct stat	 st;
	char		*p;
	size_t		 i;

	for (i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		xasprintf(&p, "%s%s", home, d[i].sub);
		if (stat(p, &st) == 0 && (st.st_mode & S_IWOTH))
			log_warnx("%s is world-writable: any local user can "
			    "%s; chmod o-w it", p, d[i].what);
		free(p);
	}
}

void
supervisor_stop(const char *why)
{
	if (sv.stopping)
		return;
	sv.stopping = 1;
	notify_send("STOPPING=1");
	log_info("stopping (%s): %zu invocation(s) in flight", why,
	    sched_running());
	queue_scan_stop();
	watch_stop();
	if (sched_running() == 0) {
		finish();
		return;
	}
	ev_timer_init(&grace, grace_expired,
	    (double)sv.conf->kill_grace_seconds, 0.);
	ev_timer_start(sv.loop, &grace);
}

/*
 * bwrap's cgroups on a delegated cgroup v2 subtree need the daemon in a
 * leaf of its own (cgroup.h): done when an agent uses bwrap, at start and
 * at reload; a failure is the doctor's and the invocation's to report.
 */
static void
delegate(const struct config *cf)
{
	char	msg[PATH_MAX + 256];
	size_t	i;
	int	r;

	for (i = 0; i < cf->nagents; i++)
		if (config_agent_mode(cf, &cf->agents[i]) == MODE_BWRAP)
			break;
	if (i == cf->nagents)
		return;
	if ((r = cgroup_delegate(msg, sizeof(msg))) == 1)
		log_info("%s", msg);
	else if (r == -1)
		log_warnx("%s", msg);
}

int
supervisor_reload(char *err, size_t errlen)
{
	struct config	*cf;
	json_object	*ev;

	notify_reloading();
	watch_note_loaded();	/* before: a change while loading is seen */
	if ((cf = config_load(sv.home, err, errlen)) == NULL ||
	    egress_reload_check(cf, err, errlen) == -1 ||
	    metrics_http_reload(cf, err, errlen) == -1) {
		config_free(cf);
		notify_send("READY=1\nSTATUS=reload refused: old "
		    "configuration in force");
		log_error("reload refused, keeping generation %u: %s",
		    sv.generation, err);
		ev = json_object_new_object();
		json_object_object_add(ev, "error",
		    json_object_new_string(err));
		json_object_object_add(ev, "generation",
		    json_object_new_int((int)sv.generation));
		event_emit("config_reload_failed", ev);
		return -1;
	}
	if (*cf->warning != '\0')
		log_warnx("%s", cf->warning);
	config_free(sv.conf);
	sv.conf = cf;
	sv.templates = teammates_templates(cf);
	sv.generation++;
	log_info("configuration generation %u in force: %zu agent(s), %lld "
	    "worker(s), mode %s", sv.generation, cf->nagents,
	    (long long)cf->workers, config_mode_name(cf->mode));
	ev = json_object_new_object();
	json_object_object_add(ev, "generation",
	    json_object_new_int((int)sv.generation));
	event_emit("config_reloaded", ev);
	delegate(cf);
	egress_reloaded();
	if (!sv.stopping) {
		pool_resize((int)cf->workers);
		queue_scan_reset();
	}
	sched_kick();
	notify_send("READY=1");
	return 0;
}

static void
on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	char err[512];

	(void)loop;
	(void)revents;
	switch (w->signum) {
	case SIGHUP:
		log_info("SIGHUP: reloading %s", sv.conf->path);
		supervisor_reload(err, sizeof(err));
		break;
	case SIGUSR1:
		if (log_reopen() == -1)
			log_error("cannot reopen the log: %s", strerror(errno));
		pool_signal(SIGUSR1);
		break;
	default:
		supervisor_stop(w->signum == SIGINT ? "SIGINT" : "SIGTERM");
	}
}

/*
 * The signals the supervisor acts on. They are blocked from the start of
 * `serve` and watched as soon as the loop exists, but only let in when it
 * runs: the pid file names this process long before that (the sweep of an
 * earlier crash's containers can take minutes with a slow engine), and
 * logrotate's SIGUSR1 or a SIGHUP would otherwise kill it there, with their
 * default action. Held back, they are acted on in the loop's first
 * iteration; and a handler cannot interrupt the start-up's helpers
 * (EINTR). The parent of daemonize() and every child set their own mask.
 */
static void
signals_block(int how, sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigprocmask(how, &set, old);
}

static void
signals_start(void)
{
	ev_signal_init(&sig_hup, on_signal, SIGHUP);
	ev_signal_init(&sig_term, on_signal, SIGTERM);
	ev_signal_init(&sig_int, on_signal, SIGINT);
	ev_signal_init(&sig_usr1, on_signal, SIGUSR1);
	ev_signal_start(sv.loop, &sig_hup);
	ev_signal_start(sv.loop, &sig_term);
	ev_signal_start(sv.loop, &sig_int);
	ev_signal_start(sv.loop, &sig_usr1);
}

/*
 * Go to the background. The parent stays until the daemon says it is ready
 * (a byte on a pipe) and exits 0, or exits 1 if the daemon died first, so
 * that `clawvisor serve` reports a failed start. Returns the pipe's write
 * end for daemon_ready(), or -1.
 */
static int
daemonize(const sigset_t *mask)
{
	pid_t	pid;
	int	null, p[2];
	char	c;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == -1)
		return -1;
	if (pid > 0) {
		/* ^C on a `clawvisor serve` waiting for its daemon: as before. */
		sigprocmask(SIG_SETMASK, mask, NULL);
		close(p[1]);
		if (read(p[0], &c, 1) == 1)
			_exit(0);
		fprintf(stderr, "clawvisor: the daemon did not start; see "
		    "%s/logs/clawvisor.log\n", sv.home);
		_exit(1);
	}
	close(p[0]);
	setsid();
	if ((null = open("/dev/null", O_RDWR)) != -1) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
	return p[1];
}

static void
emit_start(void)
{
	json_object	*o = json_object_new_object(), *a, *t;
	size_t		 i;

	a = json_object_new_array();
	for (i = 0; i < sv.conf->nagents; i++)
		json_object_array_add(a,
		    json_object_new_string(sv.conf->agents[i].id));
	t = json_object_new_array();
	for (i = 0; i < sv.conf->nteams; i++)
		json_object_array_add(t,
		    json_object_new_string(sv.conf->teams[i].id));
	json_object_object_add(o, "agents", a);
	json_object_object_add(o, "teams", t);
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	event_emit("processor_start", o);
}

int
supervisor_main(const char *argv0, const char *home, int foreground)
{
	sigset_t mask;
	char	 err[512], exe[PATH_MAX], *logpath;
	ssize_t	 n;
	int	 ready_fd = -1, swept;

	signals_block(SIG_BLOCK, &mask);
	memset(&sv, 0, sizeof(sv));
	sv.home = xstrdup(home);
	sv.foreground = foreground;
	sv.pidfd = -1;
	/*
	 * Workers are this binary: the path it was started by, when that is
	 * a path (so that it also holds under valgrind, where /proc/self/exe
	 * is the tool), else what the kernel says.
	 */
	if (argv0 != NULL && strchr(argv0, '/') != NULL &&
	    realpath(argv0, exe) != NULL)
		;
	else if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) != -1)
		exe[n] = '\0';
	else {
		fprintf(stderr, "clawvisor: /proc/self/exe: %s\n",
		    strerror(errno));
		return 1;
	}
	sv.self_exe = xstrdup(exe);
	if (queue_open_dirs(home) == -1)
		return 1;
	xasprintf(&logpath, "%s/logs/clawvisor.log", home);
	log_open("supervisor", logpath, foreground);
	free(logpath);
	if ((sv.conf = config_load(home, err, sizeof(err))) == NULL) {
		if (!foreground)
			fprintf(stderr, "clawvisor: %s\n", err);
		log_error("configuration error: %s", err);
		return EX_CONFIG;
	}
	if (pid_lock() == -1)
		return 1;
	warn_world_writable(home);
	if (!foreground && (ready_fd = daemonize(&mask)) == -1) {
		fprintf(stderr, "clawvisor: fork: %s\n", strerror(errno));
		return 1;
	}
	log_open("supervisor", NULL, foreground);
	xasprintf(&logpath, "%s/logs/clawvisor.log", home);
	log_open("supervisor", logpath, foreground);
	free(logpath);
	pid_write();
	setproctitle("supervisor %s", home);
	signal(SIGPIPE, SIG_IGN);
	sv.loop = ev_default_loop(EVFLAG_AUTO);
	signals_start();
	sv.generation = 1;
	sv.started_ms = now_ms();
	/* Unique across restarts: container names derive from it. */
	sv.next_job_id = (uint64_t)now_ms() * 1000;
	if (*sv.conf->warning != '\0')
		log_warnx("%s", sv.conf->warning);
	sv.templates = teammates_templates(sv.conf);
	log_info("starting on %s: %zu agent(s), %lld worker(s), mode %s",
	    home, sv.conf->nagents, (long long)sv.conf->workers,
	    config_mode_name(sv.conf->mode));
	secrets_sweep();
	containers_sweep();
	/* bwrap: the cgroups of invocations a crash left (cgroup.h). */
	if ((swept = cgroup_sweep(sv.home)) > 0)
		log_info("removed %d stale cgroup%s of an earlier run", swept,
		    swept == 1 ? "" : "s");
	delegate(sv.conf);
	commit_recover();
	commit_load_deferred();
	if (control_init() == -1 || metrics_http_start() == -1) {
		pid_remove();
		return 1;
	}
	/* Before the workers: they are execed with our environment, which
	 * the provider keys leave when the proxy holds them (SPEC §9). */
	egress_init();
	pool_init();
	emit_start();
	queue_scan_start();
	watch_start();
	notify_ready();
	if (ready_fd != -1) {
		(void)!write(ready_fd, "", 1);
		close(ready_fd);
	}
	/* What came during the start-up is handled in the first iteration. */
	signals_block(SIG_UNBLOCK, NULL);
	ev_run(sv.loop, 0);

	metrics_http_close();
	event_close();
	commit_close();
	pool_wait(WORKER_EXIT_MS);
	egress_free();
	log_info("stopped");
	pid_remove();
	sched_free_all();
	pool_free();
	metrics_free();
	config_free(sv.conf);
	free(sv.home);
	free(sv.self_exe);
	log_close();
	return 0;
}
