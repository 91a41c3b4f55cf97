/*
 * The clawvisor command: `serve` runs the supervisor, `worker` is how the
 * supervisor starts its workers, and every other subcommand is a client of
 * the control socket.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>
#include <unistd.h>

#include "client.h"
#include "egress_token.h"
#include "log.h"
#include "supervisor.h"
#include "util.h"
#include "worker.h"

static void __attribute__((noreturn))
usage(void)
{
	help_usage(stderr);
	exit(2);
}

/* --home wins over $TINYCLAW_HOME, which wins over ~/.tinyclaw. */
static char *
home_resolve(const char *flag)
{
	const char	*h = flag, *u;
	char		 cwd[PATH_MAX], *r;

	if (h == NULL)
		h = getenv("TINYCLAW_HOME");
	if (h == NULL || *h == '\0') {
		if ((u = getenv("HOME")) == NULL || *u == '\0') {
			struct passwd *pw = getpwuid(getuid());
			u = pw != NULL ? pw->pw_dir : "/";
		}
		xasprintf(&r, "%s/.tinyclaw", u);
		return r;
	}
	if (h[0] == '/')
		return xstrdup(h);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return xstrdup(h);
	xasprintf(&r, "%s/%s", cwd, h);
	return r;
}

int
main(int argc, char **argv, char **envp)
{
	enum log_level	  lvl = LOG_LVL_INFO;
	const char	 *homeflag = NULL, *base;
	/* Static: still reachable when usage() exits (LeakSanitizer). */
	static char	**args;
	char		 *home;
	int		  nargs = 0, i, foreground = 0, json = 0, fd = 3;
	int		  index = 0, log_stderr = 0, use_syslog = 0, r;

	/* Run as a shim: every argument is the CLI's, untouched. */
	base = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 :
	    argv[0];
	if (strcmp(base, "claude") == 0 || strcmp(base, "codex") == 0) {
		home = home_resolve(NULL);
		r = client_shim_main(home, base, argc, argv);
		free(home);
		return r;
	}
	setproctitle_init(argc, argv, envp);
	/* Not left to setproctitle(): a command that never sets a title,
	 * or a libbsd that stops overwriting the block, would keep them. */
	egress_env_scrub(envp);
	args = xcalloc(argc + 1, sizeof(char *));
	for (i = 1; i < argc; i++) {
		/* send reads its own options and text, whatever they are. */
		if (nargs > 0 && strcmp(args[0], "send") == 0) {
			while (i < argc)
				args[nargs++] = argv[i++];
			break;
		}
		/* exec's PROGRAM ARGS are not ours to read. */
		if (nargs > 0 && strcmp(args[0], "exec") == 0 &&
		    (strcmp(argv[i], "--") == 0 || argv[i][0] != '-')) {
			while (i < argc)
				args[nargs++] = argv[i++];
			break;
		}
		if (nargs > 0 && strcmp(args[0], "exec") == 0 &&
		    strcmp(argv[i], "--agent") == 0 && i + 1 < argc) {
			args[nargs++] = argv[i++];
			args[nargs++] = argv[i];
			continue;
		}
		if (strcmp(argv[i], "--home") == 0) {
			if (++i == argc)
				usage();
			homeflag = argv[i];
		} else if (strncmp(argv[i], "--home=", 7) == 0)
			homeflag = argv[i] + 7;
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "-f") == 0 ||
		    strcmp(argv[i], "--foreground") == 0)
			foreground = 1;
		else if (strcmp(argv[i], "--log-level") == 0) {
			if (++i == argc || log_level_parse(argv[i], &lvl) == -1)
				usage();
		} else if (strcmp(argv[i], "--index") == 0) {
			if (++i == argc)
				usage();
			index = atoi(argv[i]);
		} else if (strcmp(argv[i], "--stderr") == 0)
			log_stderr = 1;
		else if (strcmp(argv[i], "--syslog") == 0)
			use_syslog = 1;
		else if (nargs == 0 && (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0))
			return help_main(1, argv);
		else if (nargs == 0 && (strcmp(argv[i], "--version") == 0 ||
		    strcmp(argv[i], "-V") == 0))
			return version_main();
		else
			args[nargs++] = argv[i];
	}
	if (nargs == 0)
		usage();
	if (strcmp(args[0], "help") == 0)
		return help_main(nargs, args);
	if (strcmp(args[0], "version") == 0 && nargs == 1)
		return version_main();
	home = home_resolve(homeflag);
	log_set_level(lvl);
	if (use_syslog)
		log_use_syslog();
	if (strcmp(args[0], "serve") == 0) {
		if (nargs != 1)
			usage();
		r = supervisor_main(argv[0], home, foreground);
	} else if (strcmp(args[0], "worker") == 0)
		r = worker_main(fd, index, home, log_stderr);
	else if (strcmp(args[0], "send") == 0)
		r = send_main(home, nargs, args);
	else if (strcmp(args[0], "exec") == 0)
		r = client_exec_main(home, nargs, args);
	else if (strcmp(args[0], "shim") == 0)
		r = client_shim_write(nargs, args);
	else
		r = client_main(home, nargs, args, json);
	free(home);
	free(args);
	return r;
}
