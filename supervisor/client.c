/*
 * Client subcommands of the control socket.
 */
#include <stdio.h>

#include "client.h"

int
client_main(const char *home, int argc, char **argv, int json)
{
	(void)home;
	(void)argc;
	(void)json;
	fprintf(stderr, "clawvisor: unknown command \"%s\"\n", argv[0]);
	return 2;
}
