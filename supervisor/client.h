/*
 * The client subcommands: each is one request on the control socket and a
 * human-readable (or, with --json, the raw) reply.
 */
#ifndef CLAWVISOR_CLIENT_H
#define CLAWVISOR_CLIENT_H

int	client_main(const char *home, int argc, char **argv, int json);

#endif
