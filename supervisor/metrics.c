/*
 * The daemon's figures in Prometheus' text exposition format 0.0.4
 * (docs/METRICS.md). Counters live here, outside the configuration, so a
 * reload keeps them and a start begins them at zero, as Prometheus expects
 * of a restart. Gauges are read when rendered. Every label value comes
 * from the configuration or a fixed list (modes, outcomes, queues, worker
 * states), never from a message.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "supervisor.h"
#include "util.h"

#ifndef CLAWVISOR_VERSION
#define CLAWVISOR_VERSION	"unknown"
#endif

#define NMODES		4	/* MODE_HOST .. MODE_BWRAP */
#define NOUTCOMES	3	/* OUT_OK .. OUT_TERMINAL */

/* From a bwrap run in milliseconds to an agent CLI's tens of minutes. */
static const double dur_bounds[] = { .005, .01, .025, .05, .1, .25, .5, 1,
    2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600 };
#define NDUR	(sizeof(dur_bounds) / sizeof(dur_bounds[0]))
/* From a file noticed at once to one waiting behind a full queue. */
static const double pick_bounds[] = { .001, .005, .01, .05, .1, .5, 1, 5, 10,
    30, 60, 300, 900, 3600 };
#define NPICK	(sizeof(pick_bounds) / sizeof(pick_bounds[0]))

struct hist {
	uint64_t	 n[NDUR + 1];	/* per bucket, not cumulative; last +Inf */
	uint64_t	 count;
	double		 sum;
};

struct inv {
	char		*agent;
	uint64_t	 n[NMODES][NOUTCOMES];
};

struct egress {
	char		*provider;
	char		*reason;	/* NULL: requests forwarded */
	uint64_t	 n;
};

static struct {
	uint64_t	 reloads_ok, reloads_failed;
	uint64_t	 dead_transient, dead_terminal;
	uint64_t	 commit_failures;
	uint64_t	 worker_restarts;
	struct inv	*inv;
	size_t		 ninv;
	struct hist	 dur[NMODES];
	struct hist	 pick;
	struct egress	*eg;
	size_t		 neg;
} mx;

static void
hist_add(struct hist *h, const double *bounds, size_t nb, double v)
{
	size_t i;

	for (i = 0; i < nb && v > bounds[i]; i++)
		;
	h->n[i]++;
	h->count++;
	h->sum += v;
}

static struct inv *
inv_get(const char *agent)
{
	size_t i;

	for (i = 0; i < mx.ninv; i++)
		if (strcmp(mx.inv[i].agent, agent) == 0)
			return &mx.inv[i];
	mx.inv = xreallocarray(mx.inv, mx.ninv + 1, sizeof(*mx.inv));
	memset(&mx.inv[mx.ninv], 0, sizeof(*mx.inv));
	mx.inv[mx.ninv].agent = xstrdup(agent);
	return &mx.inv[mx.ninv++];
}

void
metrics_invocation(const struct msg *m, enum outcome o)
{
	struct inv	*v;
	int64_t		 ms = mono_ms() - m->started_ms;

	if ((unsigned)m->job_mode >= NMODES || (unsigned)o >= NOUTCOMES)
		return;
	/* Dispatched, so m->agent was a configured agent id. */
	v = inv_get(m->agent);
	v->n[m->job_mode][o]++;
	hist_add(&mx.dur[m->job_mode], dur_bounds, NDUR,
	    ms > 0 ? ms / 1000. : 0.);
}

/* From the file's mtime (when its producer wrote it) to its claim. */
void
metrics_pickup(const char *name)
{
	struct timespec	 now;
	struct stat	 st;
	double		 d;

	if (fstatat(sv.dir_processing, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	d = (now.tv_sec - st.st_mtim.tv_sec) +
	    (now.tv_nsec - st.st_mtim.tv_nsec) / 1e9;
	/* A producer's clock ahead of ours is no negative wait. */
	hist_add(&mx.pick, pick_bounds, NPICK, d > 0 ? d : 0.);
}

void
metrics_dead_letter(const char *cls)
{
	if (strcmp(cls, "terminal") == 0)
		mx.dead_terminal++;
	else
		mx.dead_transient++;
}

void
metrics_commit_failure(void)
{
	mx.commit_failures++;
}

void
metrics_worker_restart(void)
{
	mx.worker_restarts++;
}

void
metrics_event(const char *type)
{
	if (strcmp(type, "config_reloaded") == 0)
		mx.reloads_ok++;
	else if (strcmp(type, "config_reload_failed") == 0)
		mx.reloads_failed++;
}

void
metrics_egress(const char *provider, const char *reason)
{
	struct egress	*e;
	size_t		 i;

	for (i = 0; i < mx.neg; i++) {
		e = &mx.eg[i];
		if (strcmp(e->provider, provider) == 0 && (reason == NULL ?
		    e->reason == NULL : e->reason != NULL &&
		    strcmp(e->reason, reason) == 0)) {
			e->n++;
			return;
		}
	}
	mx.eg = xreallocarray(mx.eg, mx.neg + 1, sizeof(*mx.eg));
	e = &mx.eg[mx.neg++];
	e->provider = xstrdup(provider);
	e->reason = reason != NULL ? xstrdup(reason) : NULL;
	e->n = 1;
}

/* A label value: backslash, double quote and newline escaped. */
static void
put_label(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void
family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
sample(FILE *f, const char *name, uint64_t v)
{
	fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void
sample1(FILE *f, const char *name, const char *label, const char *value,
    uint64_t v)
{
	fprintf(f, "%s{%s=\"", name, label);
	put_label(f, value);
	fprintf(f, "\"} %llu\n", (unsigned long long)v);
}

/* label is "" or `name="value",` (escaped by the caller). */
static void
hist_put(FILE *f, const char *name, const char *label, const struct hist *h,
    const double *bounds, size_t nb)
{
	uint64_t	cum = 0;
	size_t		i;

	for (i = 0; i < nb; i++) {
		cum += h->n[i];
		fprintf(f, "%s_bucket{%sle=\"%g\"} %llu\n", name, label,
		    bounds[i], (unsigned long long)cum);
	}
	fprintf(f, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, label,
	    (unsigned long long)h->count);
	if (*label != '\0')
		fprintf(f, "%s_sum{%.*s} %.6f\n%s_count{%.*s} %llu\n", name,
		    (int)strlen(label) - 1, label, h->sum, name,
		    (int)strlen(label) - 1, label,
		    (unsigned long long)h->count);
	else
		fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name,
		    (unsigned long long)h->count);
}

/* Modes to show: configured now, or with something counted. */
static void
modes_in_use(int used[NMODES])
{
	size_t	i;
	int	m;

	memset(used, 0, NMODES * sizeof(int));
	if ((unsigned)sv.conf->mode < NMODES)
		used[sv.conf->mode] = 1;
	for (i = 0; i < sv.conf->nagents; i++)
		if ((unsigned)(m = config_agent_mode(sv.conf,
		    &sv.conf->agents[i])) < NMODES)
			used[m] = 1;
	for (m = 0; m < NMODES; m++)
		if (mx.dur[m].count > 0)
			used[m] = 1;
}

static void
render_invocations(FILE *f)
{
	static const char *const outcomes[] = { "ok", "transient", "terminal" };
	const char	*n = "clawvisor_invocations_total";
	struct inv	*v;
	char		 label[32];
	size_t		 i;
	int		 used[NMODES], m, o, show;

	/* Configured agents start at zero, so rate() sees their first. */
	for (i = 0; i < sv.conf->nagents; i++)
		(void)inv_get(sv.conf->agents[i].id);
	family(f, n, "counter", "Invocations finished, by agent, sandbox "
	    "mode and outcome (ok, transient, terminal).");
	for (i = 0; i < mx.ninv; i++) {
		v = &mx.inv[i];
		for (m = 0; m < NMODES; m++) {
			const struct agent *a = config_agent(sv.conf, v->agent);

			show = a != NULL && (int)config_agent_mode(sv.conf, a)
			    == m;
			for (o = 0; o < NOUTCOMES; o++)
				show |= v->n[m][o] != 0;
			if (!show)
				continue;
			for (o = 0; o < NOUTCOMES; o++) {
				fprintf(f, "%s{agent=\"", n);
				put_label(f, v->agent);
				fprintf(f, "\",mode=\"%s\",outcome=\"%s\"} "
				    "%llu\n", config_mode_name(m), outcomes[o],
				    (unsigned long long)v->n[m][o]);
			}
		}
	}
	n = "clawvisor_invocation_duration_seconds";
	family(f, n, "histogram", "Time from dispatch to result of an "
	    "invocation, by sandbox mode.");
	modes_in_use(used);
	for (m = 0; m < NMODES; m++)
		if (used[m]) {
			snprintf(label, sizeof(label), "mode=\"%s\",",
			    config_mode_name(m));
			hist_put(f, n, label, &mx.dur[m], dur_bounds, NDUR);
		}
}

static void
render_workers(FILE *f)
{
	static const char *const states[] = { "starting", "idle", "busy",
	    "dead" };
	json_object	*a = pool_status();
	uint64_t	 n[4] = { 0, 0, 0, 0 };
	const char	*st;
	size_t		 i, j;

	for (i = 0; i < json_object_array_length(a); i++) {
		st = json_object_get_string(json_object_object_get(
		    json_object_array_get_idx(a, i), "state"));
		for (j = 0; j < 4; j++)
			if (st != NULL && strcmp(st, states[j]) == 0)
				n[j]++;
	}
	json_object_put(a);
	family(f, "clawvisor_workers", "gauge", "Worker processes, by state.");
	for (j = 0; j < 4; j++)
		sample1(f, "clawvisor_workers", "state", states[j], n[j]);
	family(f, "clawvisor_worker_restarts_total", "counter", "Workers "
	    "that died and were started again.");
	sample(f, "clawvisor_worker_restarts_total", mx.worker_restarts);
}

static void
render_queue(FILE *f)
{
	const struct { const char *name; int fd; } q[] = {
		{ "incoming", sv.dir_incoming },
		{ "processing", sv.dir_processing },
		{ "deferred", sv.dir_deferred },
		{ "outgoing", sv.dir_outgoing },
		{ "dead-letter", sv.dir_dead },
		{ "corrupt", sv.dir_corrupt },
	};
	size_t i;

	family(f, "clawvisor_queue_messages", "gauge", "Message files in each "
	    "queue directory.");
	for (i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		sample1(f, "clawvisor_queue_messages", "queue", q[i].name,
		    queue_depth(q[i].fd));
	family(f, "clawvisor_message_pickup_delay_seconds", "histogram",
	    "Time from a message file's arrival in incoming/ (its mtime) to "
	    "its claim.");
	hist_put(f, "clawvisor_message_pickup_delay_seconds", "", &mx.pick,
	    pick_bounds, NPICK);
	family(f, "clawvisor_commits_waiting", "gauge", "Final outcomes the "
	    "disk refused, kept in memory and tried again.");
	sample(f, "clawvisor_commits_waiting", commit_waiting());
}

static void
render_messages(FILE *f)
{
	family(f, "clawvisor_messages_received_total", "counter", "Messages "
	    "taken from the queue and routed.");
	sample(f, "clawvisor_messages_received_total", sv.count.received);
	family(f, "clawvisor_messages_finished_total", "counter", "Messages "
	    "that reached their final outcome: a response (ok) or a dead "
	    "letter.");
	sample1(f, "clawvisor_messages_finished_total", "outcome", "ok",
	    sv.count.ok);
	sample1(f, "clawvisor_messages_finished_total", "outcome",
	    "dead_letter", sv.count.dead);
	family(f, "clawvisor_retries_total", "counter", "Transient failures "
	    "scheduled to run again after a backoff.");
	sample(f, "clawvisor_retries_total", sv.count.retried);
	family(f, "clawvisor_dead_letters_total", "counter", "Messages moved "
	    "to dead-letter/, by the class of their last failure.");
	sample1(f, "clawvisor_dead_letters_total", "class", "terminal",
	    mx.dead_terminal);
	sample1(f, "clawvisor_dead_letters_total", "class", "transient",
	    mx.dead_transient);
	family(f, "clawvisor_corrupt_files_total", "counter", "Files in "
	    "incoming/ that were not a message, moved to corrupt/.");
	sample(f, "clawvisor_corrupt_files_total", sv.count.corrupt);
	family(f, "clawvisor_commit_failures_total", "counter", "Final "
	    "outcomes whose first write failed (kept and tried again).");
	sample(f, "clawvisor_commit_failures_total", mx.commit_failures);
}

static void
render_permits(FILE *f)
{
	family(f, "clawvisor_permits_in_use", "gauge", "Sandboxed "
	    "invocations running (concurrency permits held).");
	sample(f, "clawvisor_permits_in_use", sched_permits_in_use());
	family(f, "clawvisor_permits_limit", "gauge", "sandbox."
	    "max_concurrency (0: no limit).");
	sample(f, "clawvisor_permits_limit", (uint64_t)sv.conf->max_concurrency);
	family(f, "clawvisor_permit_waiters", "gauge", "Invocations waiting "
	    "for a permit.");
	sample(f, "clawvisor_permit_waiters", sched_waiting());
	family(f, "clawvisor_permit_waiters_limit", "gauge", "sandbox."
	    "max_waiters: past it a message fails as transient.");
	sample(f, "clawvisor_permit_waiters_limit",
	    (uint64_t)sv.conf->max_waiters);
}

static void
render_egress(FILE *f)
{
	struct egress	*e;
	size_t		 i;

	family(f, "clawvisor_egress_requests_total", "counter", "Provider "
	    "requests forwarded by the egress process, by provider.");
	for (i = 0; i < mx.neg; i++)
		if ((e = &mx.eg[i])->reason == NULL)
			sample1(f, "clawvisor_egress_requests_total",
			    "provider", e->provider, e->n);
	family(f, "clawvisor_egress_refusals_total", "counter", "Requests "
	    "the egress process refused, by provider and reason.");
	for (i = 0; i < mx.neg; i++)
		if ((e = &mx.eg[i])->reason != NULL) {
			fprintf(f, "clawvisor_egress_refusals_total"
			    "{provider=\"");
			put_label(f, e->provider);
			fprintf(f, "\",reason=\"");
			put_label(f, e->reason);
			fprintf(f, "\"} %llu\n", (unsigned long long)e->n);
		}
}

static void
render_daemon(FILE *f)
{
	family(f, "clawvisor_build_info", "gauge", "Always 1; the version "
	    "clawvisor was built as.");
	sample1(f, "clawvisor_build_info", "version", CLAWVISOR_VERSION, 1);
	family(f, "clawvisor_start_time_seconds", "gauge", "When the daemon "
	    "started, in seconds since the epoch.");
	fprintf(f, "clawvisor_start_time_seconds %.3f\n",
	    sv.started_ms / 1000.);
	family(f, "clawvisor_config_generation", "gauge", "The configuration "
	    "generation in force: 1 at start, one more per reload.");
	sample(f, "clawvisor_config_generation", sv.generation);
	family(f, "clawvisor_config_reloads_total", "counter", "Reloads, by "
	    "result (ok, or failed: the old configuration stayed).");
	sample1(f, "clawvisor_config_reloads_total", "result", "ok",
	    mx.reloads_ok);
	sample1(f, "clawvisor_config_reloads_total", "result", "failed",
	    mx.reloads_failed);
}

char *
metrics_render(size_t *len)
{
	FILE	*f;
	char	*buf = NULL;

	if ((f = open_memstream(&buf, len)) == NULL)
		return NULL;
	render_daemon(f);
	render_messages(f);
	render_invocations(f);
	render_queue(f);
	render_permits(f);
	render_workers(f);
	render_egress(f);
	if (fclose(f) == EOF) {
		free(buf);
		return NULL;
	}
	return buf;
}

void
metrics_free(void)
{
	size_t i;

	for (i = 0; i < mx.ninv; i++)
		free(mx.inv[i].agent);
	free(mx.inv);
	for (i = 0; i < mx.neg; i++) {
		free(mx.eg[i].provider);
		free(mx.eg[i].reason);
	}
	free(mx.eg);
	memset(&mx, 0, sizeof(mx));
}
