/*
 * The supervisor's own children: a worker or the egress process is the
 * clawvisor binary run again under another command, with its end of a
 * socketpair on fd 3 and the daemon's logging options.
 */
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "supervisor.h"
#include "util.h"

#define SPAWN_ARGS	16

/*
 * Start EXE as `clawvisor ROLE...` (role holds the command and its own
 * options, NULL-terminated) and return its pid, with the supervisor's end of the
 * socketpair, non-blocking, in *fdp; -1 with the cause logged.
 *
 * The child gets a process group of its own: a signal to ours (^C or a
 * hangup on the terminal of `serve -f`, timeout(1), `kill -TERM -PGID`)
 * is an order to the supervisor, which stops or reloads and tells its
 * children what to do; had it reached them too, they would have killed
 * their invocations at once. Signals are blocked across the fork, so that
 * none is handled in the child before it has left our group. It unblocks
 * them before the exec but SIGTERM and SIGUSR1, which the child lets in
 * once it watches them: a SIGUSR1 passed on (pool_signal) to a worker
 * still starting would kill it, with the default action.
 */
pid_t
spawn_child(const char *exe, const char *const role[], int *fdp)
{
	sigset_t	 set, old;
	char		*argv[SPAWN_ARGS];
	int		 sp[2], i = 0, saved;
	pid_t		 pid;

	argv[i++] = "clawvisor";
	while (*role != NULL && i < SPAWN_ARGS - 8)
		argv[i++] = (char *)*role++;
	argv[i++] = "--home";
	argv[i++] = sv.home;
	if (sv.foreground)
		argv[i++] = "--stderr";
	if (log_using_syslog())
		argv[i++] = "--syslog";
	argv[i++] = "--log-level";
	argv[i++] = (char *)log_level_name();
	argv[i] = NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1) {
		log_error("%s: socketpair: %s", argv[1], strerror(errno));
		return -1;
	}
	sigfillset(&set);
	sigprocmask(SIG_SETMASK, &set, &old);
	if ((pid = fork()) == -1) {
		saved = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		log_error("%s: fork: %s", argv[1], strerror(saved));
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (pid == 0) {
		if (setpgid(0, 0) == -1)
			_exit(127);
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGUSR1);
		sigprocmask(SIG_SETMASK, &set, NULL);
		if (dup2(sp[1], 3) == -1)
			_exit(127);
		closefrom(4);
		execv(exe, argv);
		_exit(127);
	}
	/* Both sides, so that it holds whichever runs first. */
	(void)setpgid(pid, pid);
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sp[1]);
	fd_nonblock(sp[0]);
	*fdp = sp[0];
	return pid;
}
