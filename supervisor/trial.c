/*
 * A throwaway sandbox for `sandbox doctor`: built by sandbox_prepare()
 * exactly as a worker builds a real one (the same runtime flags, user,
 * network, limits, mounts, env-file; bwrap's cgroup and ids), with
 * `sh -c SCRIPT` in place of the CLI, run to completion and torn down. What
 * the first real run would hit, the doctor hits first.
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "client.h"
#include "config.h"
#include "provider.h"
#include "sandbox.h"
#include "supervisor.h"
#include "util.h"

#define TRIAL_SECONDS	120	/* a first pull of a cached image, a slow engine */

/*
 * The command after the view: bwrap's "--", or the image in a container
 * runtime's argv (run ... IMAGE CMD...). Its index, or -1.
 */
static int
command_at(const struct job *j, char **argv)
{
	int	i;

	for (i = 1; argv[i] != NULL; i++)
		if (j->mode == MODE_BWRAP ? strcmp(argv[i], "--") == 0 :
		    strcmp(argv[i], j->rt.image) == 0)
			return i + 1;
	return -1;
}

/* bwrap: the child joins the cgroup and takes the agent's ids first. */
static int
trial_bwrap(struct sandbox_run *sb, const char *workdir, int *status,
    char *out, size_t outlen, char *err, size_t errlen)
{
	struct pollfd	 pfd;
	int		 fds[CGROUP_MAX_DIRS], pe[2], rc = -1;
	size_t		 i, n = 0, len = 0;
	ssize_t		 r;
	pid_t		 pid;
	int64_t		 deadline;

	if (sb->has_cg)
		n = cgroup_procs_fds(&sb->cg, fds, CGROUP_MAX_DIRS);
	if (pipe2(pe, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto done;
	}
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(pe[0]);
		close(pe[1]);
		goto done;
	}
	if (pid == 0) {
		gid_t g = sb->gid;

		for (i = 0; i < n; i++)
			if (write(fds[i], "0", 1) != 1)
				_exit(125);
		if (sb->setid && (setgroups(1, &g) == -1 ||
		    setresgid(g, g, g) == -1 ||
		    setresuid(sb->uid, sb->uid, sb->uid) == -1))
			_exit(126);
		if (dup2(pe[1], 2) == -1 || dup2(pe[1], 1) == -1 ||
		    chdir(workdir) == -1)
			_exit(127);
		execvpe(sb->argv[0], sb->argv, sb->envp);
		_exit(127);
	}
	close(pe[1]);
	pfd.fd = pe[0];
	pfd.events = POLLIN;
	deadline = mono_ms() + TRIAL_SECONDS * 1000;
	while (mono_ms() < deadline && poll(&pfd, 1, 200) >= 0) {
		if (!(pfd.revents & (POLLIN | POLLHUP)))
			continue;
		r = read(pe[0], out + len, outlen - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == outlen - 1)
			len = 0;	/* keep reading, keep the end */
	}
	out[len] = '\0';
	close(pe[0]);
	if (mono_ms() >= deadline)
		kill(pid, SIGKILL);
	while (waitpid(pid, status, 0) == -1 && errno == EINTR)
		;
	rc = 0;
done:
	for (i = 0; i < n; i++)
		close(fds[i]);
	return rc;
}

/*
 * The provider's first allowlisted key when none of its allowlisted keys
 * is set here; NULL when one is, or none is allowlisted (which a real run
 * refuses too).
 */
static const char *
unset_key(const struct config *cf, int prov)
{
	const char	*const *k, *first = NULL, *v;
	size_t		 i;

	for (k = provider_keys(prov); k != NULL && *k != NULL; k++)
		for (i = 0; i < cf->nallow; i++) {
			if (strcmp(cf->env_allowlist[i], *k) != 0)
				continue;
			if ((v = getenv(*k)) != NULL && *v != '\0')
				return NULL;
			if (first == NULL)
				first = *k;
		}
	return first;
}

int
trial_run(const struct config *cf, int mode, int prov, const char *workdir,
    const char *script, int *status, char *out, size_t outlen, char *err,
    size_t errlen)
{
	struct sandbox_run	 sb;
	struct job		 j;
	const char		*key = NULL;
	char			*cmd[3] = { "sh", "-c", NULL };
	int			 at, r, i;

	*out = '\0';
	memset(&j, 0, sizeof(j));
	j.id = (uint64_t)getpid();
	j.agent_id = "doctor";
	j.provider = prov;
	j.message = "";
	cmd[2] = (char *)script;
	j.command = cmd;
	j.ncommand = 3;
	j.workdir = (char *)workdir;
	j.home = cf->home;
	j.mode = mode;
	/* As sched.c fills a job in: the same settings, the same flags. */
	j.timeout_seconds = cf->timeout_seconds;
	j.kill_grace_seconds = cf->kill_grace_seconds;
	j.max_output_bytes = cf->max_output_bytes;
	j.env_allowlist = cf->env_allowlist;
	j.nallow = cf->nallow;
	j.runtime_pass_env = cf->runtime_pass_env;
	j.npass = cf->npass;
	j.path_mapping = cf->path_mapping;
	j.rt = mode == MODE_BWRAP ? cf->bwrap : mode == MODE_APPLE ?
	    cf->apple : cf->docker;
	if (mode == MODE_BWRAP)
		j.rt.limits_best_effort = 1;	/* checked apart */
	/*
	 * The provider's view (its CLI's directory mounted, its argv):
	 * sandbox.c wants its key set, which the daemon's environment has
	 * and this one may not; a placeholder stands in for it here.
	 */
	if (prov != PROV_COMMAND && (key = unset_key(cf, prov)) != NULL)
		setenv(key, "doctor-placeholder", 1);
	r = sandbox_prepare(&j, &sb, err, errlen);
	if (key != NULL)
		unsetenv(key);
	if (r == -1)
		return -1;
	if ((at = command_at(&j, sb.argv)) == -1) {
		snprintf(err, errlen, "no command in the sandbox's argv");
		sandbox_cleanup(&sb);
		return -1;
	}
	/* That view, sh's command line. */
	for (i = at; sb.argv[i] != NULL; i++)
		free(sb.argv[i]);
	sb.argv[at] = xstrdup("sh");
	sb.argv[at + 1] = xstrdup("-c");
	sb.argv[at + 2] = xstrdup(script);
	sb.argv[at + 3] = NULL;
	if (mode == MODE_BWRAP)
		r = trial_bwrap(&sb, workdir, status, out, outlen, err, errlen);
	else {
		/* run_output's status is the exit code, or -1. */
		r = run_output_env(sb.argv, sb.envp, out, outlen,
		    TRIAL_SECONDS);
		*status = r >= 0 ? W_EXITCODE(r, 0) : W_EXITCODE(255, 0);
		r = 0;
	}
	sandbox_cleanup(&sb);
	return r;
}
