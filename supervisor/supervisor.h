/*
 * The supervisor's shared state and, grouped by file, the functions each
 * supervisor/ file offers the others (as OpenSMTPD's smtpd.h does).
 */
#ifndef CLAWVISOR_SUPERVISOR_H
#define CLAWVISOR_SUPERVISOR_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stdint.h>

#include <ev.h>
#include <json-c/json.h>

#include "config.h"
#include "ipc.h"
#include "job.h"

#define EX_CONFIG	78
#define EX_UNAVAILABLE	69

/* Where a message's file is while the supervisor holds it. */
enum msg_where { AT_INCOMING, AT_DEFERRED, AT_PROCESSING };

struct chain;
struct client;
struct exec;
struct lane;
struct worker;

struct msg {
	TAILQ_ENTRY(msg)	 entry;		/* in its lane */
	char			*name;		/* file name, same in every dir */
	enum msg_where		 where;
	json_object		*obj;		/* the message as on disk */
	char			*agent;		/* routed agent id */
	char			*text;		/* what the agent is sent */
	int			 team_routed;
	int			 attempt;	/* attempts made so far */
	int64_t			 first_seen;	/* ms */
	int			 deferred;	/* waiting for retry_at */
	int64_t			 retry_at;	/* ms */
	ev_timer		 retry;
	int			 announced;	/* received/routed events sent */
	struct lane		*lane;
	struct worker		*worker;	/* running on it, or NULL */
	uint64_t		 job_id;
	enum sandbox_mode	 job_mode;
	enum path_mapping	 job_mapping;
	char			*job_workdir;
	char			*job_runtime;	/* for a kill after worker death */
	int			 job_egress;	/* a token is registered (SPEC §9) */
	int64_t			 started_ms;	/* monotonic */
	size_t			 bytes;
	char			*multi;		/* several agents named: "@a, @b" */
	struct msg		*parent;	/* a chain step: its root */
	struct chain		*chain;		/* a root: its team chain */
	size_t			 step;		/* step number in the chain */
	struct exec		*exec;		/* clawvisor exec, not a message */
};

TAILQ_HEAD(msgq, msg);

struct lane {
	TAILQ_ENTRY(lane)	 all;
	TAILQ_ENTRY(lane)	 ready;
	char			*agent;
	struct msgq		 msgs;
	int			 running;
	int			 in_ready;
	size_t			 depth;
};

enum worker_state { W_STARTING, W_IDLE, W_BUSY, W_DEAD };

struct worker {
	int			 index;
	pid_t			 pid;
	enum worker_state	 state;
	struct ipc_conn		 conn;
	ev_io			 rio;
	ev_io			 wio;
	ev_child		 child;
	ev_timer		 respawn;
	struct msg		*msg;
	pid_t			 job_pid;
	uint64_t		 jobs;
	int			 retired;	/* pool shrank: exit when idle */
};

/*
 * The longest message file name taken from incoming/: what clawvisor adds
 * to a name (NAME.reply, NAME.dead, STEM-N.json, NAME.N.error) stays
 * under NAME_MAX. A longer name goes to corrupt/ (docs/QUEUE.md).
 */
#define QUEUE_NAME_MAX	200

struct counters {
	uint64_t	ok;
	uint64_t	transient;
	uint64_t	terminal;
	uint64_t	retried;
	uint64_t	dead;
	uint64_t	corrupt;
	uint64_t	received;
};

struct sv {
	struct ev_loop		*loop;
	struct config		*conf;
	unsigned		 generation;
	char			*home;
	char			*self_exe;
	int			 foreground;
	int			 dir_incoming;
	int			 dir_processing;
	int			 dir_deferred;
	int			 dir_outgoing;
	int			 dir_dead;
	int			 dir_corrupt;
	int			 dir_events;
	int			 pidfd;
	int			 stopping;
	int			 paused;
	int64_t			 started_ms;
	uint64_t		 next_job_id;
	struct counters		 count;
	const char		*templates;	/* conf's tinyclaw_dir, or NULL */
};

extern struct sv sv;

/* supervisor.c */
int		 supervisor_main(const char *argv0, const char *home,
		    int foreground);
void		 supervisor_stop(const char *why);
int		 supervisor_reload(char *err, size_t errlen);
void		 supervisor_check_exit(void);

/* A file in incoming/ that is not a message, to its sender (queue.c). */
#define CORRUPT_NOTICE_TEXT	"Sorry, your message could not be read and " \
				"was not processed"

/* salvage.c */
json_object	*salvage_sender(const char *, size_t);

/* rival.c */
int		 rival_find(const char *home, char *what, size_t len);

/* watch.c */
void		 watch_start(void);
void		 watch_stop(void);
void		 watch_note_loaded(void);

/* queue.c */
int		 queue_open_dirs(const char *home);
void		 queue_scan_start(void);
void		 queue_scan_reset(void);
void		 queue_scan_stop(void);
void		 queue_pull(void);
int		 queue_parse(const char *, size_t, json_object **,
		    int *incomplete, char *why, size_t);
int		 queue_msg_attempt(const char *name, json_object *);
int64_t		 queue_msg_first_seen(const char *name, json_object *);
int64_t		 queue_msg_retry_at(const char *name, json_object *);
struct msg	*queue_msg_new(const char *name, enum msg_where,
		    json_object *, size_t bytes);
void		 queue_forget(struct msg *);
size_t		 queue_held(void);
int		 queue_claim(struct msg *);
void		 queue_handback(struct msg *);
int		 queue_corrupt(int dirfd, const char *name, const char *why);
size_t		 queue_depth(int dirfd);

/* commit.c */
void		 commit_recover(void);
void		 commit_load_deferred(void);
int		 commit_defer(struct msg *, int64_t retry_at, const char *error);
void		 commit_respond(struct msg *, json_object *resp);
void		 commit_notice(const char *name, json_object *resp);
size_t		 commit_pending(void);
void		 commit_finish(int synced);
void		 commit_cleanup(void);
void		 commit_dead(struct msg *, const char *cls, const char *error,
		    json_object *notice);
json_object	*commit_dead_record(json_object *payload, const char *cls,
		    const char *error, int attempt);
char		*commit_response_name(json_object *resp);
size_t		 commit_waiting(void);
int		 commit_holds(const char *name);
void		 commit_close(void);

/* spawn.c */
pid_t		 spawn_child(const char *exe, const char *const role[],
		    int *fdp);

/* egressctl.c */
void		 egress_init(void);
int		 egress_reload_check(const struct config *, char *, size_t);
char		*egress_register(uint64_t job, const struct agent *);
void		 egress_revoke(uint64_t job);
const char	*egress_socket(void);
const char	*egress_bridge(void);
json_object	*egress_status(void);
json_object	*egress_check(json_object *providers);
json_object	*egress_check_result(uint64_t seq);
int		 egress_holds(const char *name);
void		 egress_reloaded(void);
int		 egress_starting(void);
void		 egress_shutdown(void);
void		 egress_free(void);

/* sched.c */
void		 sched_egress_end(struct msg *);
void		 sched_job_egress(struct msg *, struct job *, const struct agent *);
void		 sched_job_encoded(struct job *);
void		 sched_init(void);
void		 sched_add(struct msg *, int front);
void		 sched_kick(void);
void		 sched_done(struct msg *, struct job_result *);
void		 sched_worker_lost(struct msg *, const char *why);
size_t		 sched_running(void);
size_t		 sched_waiting(void);
size_t		 sched_permits_in_use(void);
void		 sched_handback_running(void);
json_object	*sched_status(void);
void		 sched_free_all(void);
void		 sched_msg_done(struct msg *);
void		 sched_detach(struct msg *);
void		 sched_defer(struct msg *, int64_t delay);
void		 sched_job_base(struct job *, const struct agent *);

/* message.c: a queued message's job and outcome */
json_object	*message_job(struct msg *);
void		 message_started(struct msg *);
void		 message_ended(struct msg *, const struct job_result *);
void		 message_done(struct msg *, struct job_result *);
void		 message_lost(struct msg *, const char *why);
void		 message_abandoned(struct msg *);
void		 message_fail(struct msg *, enum outcome, const char *why);
int64_t		 message_backoff_ms(int attempt);
void		 message_response_event(struct msg *, json_object *resp);
void		 message_free(struct msg *);

/* chain.c */
void		 chain_dispatched(struct msg *);
int		 chain_result(struct msg *, struct job_result *);
int		 chain_step_failed(struct msg *, enum outcome, const char *);
void		 chain_answered(struct msg *, const char *);
void		 chain_dead(struct msg *, const char *);
void		 chain_forget(struct msg *);
void		 chain_handback_all(void);

/* exec.c: clawvisor exec, the daemon's side */
#define EXEC_MAX_ARGS	4096
struct exec_req {
	char	**argv;
	size_t	  nargv;
	char	 *cwd;
	char	 *agent;	/* --agent, or NULL */
	int	  stdin_fd;	/* the caller passes its stdin */
};
int		 exec_req_parse(json_object *, struct exec_req *, char *err,
		    size_t);
void		 exec_req_free(struct exec_req *);
json_object	*exec_request(struct client *, json_object *, int *fds,
		    size_t nfds);
json_object	*exec_job(struct msg *);
void		 exec_run(struct msg *, struct worker *, json_object *job);
void		 exec_done(struct msg *, struct job_result *);
void		 exec_lost(struct msg *, const char *why);
void		 exec_abandoned(struct msg *);
void		 exec_refused(struct msg *, const char *why);
void		 exec_cancel(struct exec *, int gone);
void		 exec_forget(struct msg *);

/* control.c: an exec's client, waiting for its one reply */
void		 control_exec_attach(struct client *, struct exec *);
void		 control_exec_detach(struct client *);
void		 control_exec_reply(struct client *, json_object *);

/* notify.c */
int		 notify_send(const char *state);
void		 notify_reloading(void);
void		 notify_ready(void);

/* pool.c */
void		 pool_init(void);
void		 pool_resize(int n);
struct worker	*pool_idle(void);
int		 pool_run(struct worker *, struct msg *, json_object *job);
int		 pool_run_fds(struct worker *, struct msg *, json_object *job,
		    const int *fds, size_t nfds);
void		 pool_cancel(struct worker *);
void		 pool_abandon(struct worker *);
void		 pool_shutdown(void);
void		 pool_wait(int ms);
void		 pool_signal(int);
void		 pool_free(void);
size_t		 pool_alive(void);
json_object	*pool_status(void);
void		 pool_kill_container(const char *runtime, uint64_t job_id);

/* errlog.c */
int		 errlog_should(const char *agent, const char *text,
		    unsigned *repeats);
size_t		 errlog_entries(void);

/* route.c */
const struct agent *route_mention(const struct config *, const char *word,
		    int *team);
int		 route_message(const struct config *, json_object *msg,
		    char **agent, char **text, int *team_routed, char **multi);
char		*route_multi_reply(const char *list);

/* teammates.c */
char		*teammates_block(const struct config *, const struct agent *);
const char	*teammates_templates(const struct config *);
const char	*teammates_install_bad(const char *dir);

/* event.c */
void		 event_emit(const char *type, json_object *fields);
void		 event_emit_lazy(const char *type, json_object *fields);
void		 event_flush(void);
void		 event_pending(void);
void		 event_close(void);

/* attach.c: [send_file:] files copied into HOME/files/ */
struct sendfile_ctx;
struct attach_list {
	char	**src;		/* the agent's files, as resolved */
	char	**dst;		/* their copies */
	size_t	  n;
	size_t	  bytes;	/* copied so far, for the reply's bound */
};
void		 attach_ctx(struct sendfile_ctx *, struct attach_list *);
void		 attach_list_free(struct attach_list *);

/* response.c */
json_object	*response_build(struct msg *, const char *reply,
		    char **files, size_t nfiles);
char		*response_scan(struct msg *, const char *reply,
		    char ***files, size_t *nfiles, struct attach_list *);
json_object	*response_final(struct msg *, const char *text,
		    char **files, size_t nfiles);
json_object	*response_notice(json_object *msg, const char *agent,
		    const char *text);
char		*response_cut(const char *);
size_t		 utf16_span(const char *, size_t units, size_t *prefix);
size_t		 utf16_len(const char *);

#endif
