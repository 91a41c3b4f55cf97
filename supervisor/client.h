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

/* doctor.c, image.c: these work without a daemon. */
int	 doctor_main(const char *home, int json);
int	 build_image_main(const char *home, const char *base,
	    const char *extra_ca);

/* help.c */
#include <stdio.h>
void	 help_usage(FILE *);
int	 help_main(int argc, char **argv);
int	 version_main(void);

/* send.c: drop a message as a channel client does; --wait for its reply. */
int	 send_main(const char *home, int argc, char **argv);

/*
 * trial.c: a throwaway sandbox of mode built as a worker builds one, with
 * `sh -c script` in place of the CLI. 0: it ran, its wait status in
 * *status and the start of its output in out; -1: why in err.
 */
struct config;
int	 trial_run(const struct config *, int mode, int provider,
	    const char *workdir, const char *script, int *status, char *out,
	    size_t outlen, char *err, size_t errlen);

#endif
