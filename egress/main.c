/*
 * clawvisor-egress: the egress process's own executable (SPEC §9), so
 * that only the process that talks TLS to the providers loads libtls and
 * OpenSSL; the supervisor, the workers and every client command (an exec
 * through a shim starts one per invocation) do without them. Started by
 * the supervisor only: `clawvisor-egress egress --home HOME [--stderr]
 * [--syslog] [--log-level LEVEL]`, its end of the socketpair on fd 3.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "egress.h"
#include "egress_token.h"
#include "log.h"
#include "util.h"

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: clawvisor-egress egress --home HOME "
	    "[--stderr] [--syslog] [--log-level LEVEL]\n"
	    "clawvisor-egress is started by the clawvisor daemon, "
	    "not by hand.\n");
	exit(2);
}

int
main(int argc, char **argv, char **envp)
{
	enum log_level	 lvl = LOG_LVL_INFO;
	const char	*home = NULL;
	int		 i, log_stderr = 0;

	setproctitle_init(argc, argv, envp);
	/* Its environment holds no key (the supervisor's has none left),
	 * but one started by hand might: as every clawvisor process. */
	egress_env_scrub(envp);
	if (argc < 2 || strcmp(argv[1], "egress") != 0)
		usage();
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--home") == 0 && i + 1 < argc)
			home = argv[++i];
		else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
			if (log_level_parse(argv[++i], &lvl) == -1)
				usage();
		} else if (strcmp(argv[i], "--stderr") == 0)
			log_stderr = 1;
		else if (strcmp(argv[i], "--syslog") == 0)
			log_use_syslog();
		else
			usage();
	}
	if (home == NULL || home[0] != '/')
		usage();
	log_set_level(lvl);
	return egress_main(3, home, log_stderr);
}
