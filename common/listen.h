/*
 * A local listening address, as supervisor.metrics_listen takes it: a
 * loopback "host:port" or an absolute unix socket path. Parsed without a
 * name lookup, so that validation says the same at start and on reload.
 */
#ifndef CLAWVISOR_LISTEN_H
#define CLAWVISOR_LISTEN_H

#include <sys/socket.h>
#include <sys/un.h>

struct listen_addr {
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	int			 family;	/* AF_INET, AF_INET6, AF_UNIX */
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* 0, or -1 with why ("expected ...") for the key's error message. */
int	 listen_parse(const char *spec, struct listen_addr *, char *why,
	    size_t whylen);
/* A bound, listening, non-blocking socket; -1 with why. */
int	 listen_open(const struct listen_addr *, char *why, size_t whylen);

#endif
