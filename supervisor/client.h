/*
 * The client subcommands: each is one request on the control socket and a
 * human-readable (or, with --json, the raw) reply.
 */
#ifndef CLAWVISOR_CLIENT_H
#define CLAWVISOR_CLIENT_H

#include <json-c/json.h>

int	 client_main(const char *home, int argc, char **argv, int json);
int	 client_connect(const char *home, int quiet);
char	*client_request(int fd, json_object *req);

/* client_exec.c: clawvisor exec, the shims */
int	 client_exec_main(const char *home, int argc, char **argv);
int	 client_shim_main(const char *home, const char *name, int argc,
	    char **argv);
int	 client_shim_write(int argc, char **argv);

/* doctor.c: these work without a daemon. */
int	 doctor_main(const char *home, int json);
int	 build_image_main(const char *home);

#endif
