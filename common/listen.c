/*
 * Local listening addresses (common/listen.h). Only loopback or a unix
 * socket: what listens here answers without authentication, so nothing
 * beyond this host may reach it (docs/METRICS.md). Literal addresses only:
 * a name could resolve elsewhere tomorrow.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listen.h"

#define LISTEN_BACKLOG	16

static int
listen_port(const char *s, in_port_t *port)
{
	const char	*errstr;
	long long	 n;

	if (*s == '\0' || strspn(s, "0123456789") != strlen(s))
		return -1;
	n = strtonum(s, 1, 65535, &errstr);
	if (errstr != NULL)
		return -1;
	*port = htons((in_port_t)n);
	return 0;
}

int
listen_parse(const char *spec, struct listen_addr *la, char *why,
    size_t whylen)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)&la->ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&la->ss;
	struct sockaddr_un	*sun = (struct sockaddr_un *)&la->ss;
	char			 host[64];
	const char		*colon, *port;
	size_t			 hlen;

	memset(la, 0, sizeof(*la));
	if (spec[0] == '/') {
		if (strlen(spec) >= sizeof(sun->sun_path)) {
			snprintf(why, whylen, "expected a unix socket path "
			    "shorter than %zu bytes", sizeof(sun->sun_path));
			return -1;
		}
		sun->sun_family = AF_UNIX;
		strlcpy(sun->sun_path, spec, sizeof(sun->sun_path));
		strlcpy(la->path, spec, sizeof(la->path));
		la->family = AF_UNIX;
		la->len = sizeof(*sun);
		return 0;
	}
	if (spec[0] == '[') {
		if ((colon = strstr(spec, "]:")) == NULL)
			goto bad;
		hlen = colon - spec - 1;
		port = colon + 2;
		spec++;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL)
			goto bad;
		hlen = colon - spec;
		port = colon + 1;
		/* An IPv6 address goes in brackets: "::1:80" is ambiguous. */
		if (memchr(spec, ':', hlen) != NULL)
			goto bad;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	if (strcmp(host, "localhost") == 0)
		strlcpy(host, "127.0.0.1", sizeof(host));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		/* 127.0.0.0/8 */
		if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
			goto notlocal;
		sin->sin_family = AF_INET;
		la->family = AF_INET;
		la->len = sizeof(*sin);
		if (listen_port(port, &sin->sin_port) == -1)
			goto badport;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			goto notlocal;
		sin6->sin6_family = AF_INET6;
		la->family = AF_INET6;
		la->len = sizeof(*sin6);
		if (listen_port(port, &sin6->sin6_port) == -1)
			goto badport;
		return 0;
	}
	if (strspn(host, "0123456789.:abcdefABCDEF") == strlen(host))
		goto bad;
	snprintf(why, whylen, "expected a literal loopback address, not the "
	    "name \"%.64s\" (use 127.0.0.1 or [::1])", host);
	return -1;
notlocal:
	snprintf(why, whylen, "%.64s is not a loopback address: only "
	    "127.0.0.0/8, [::1] or a unix socket path may serve metrics",
	    host);
	return -1;
badport:
	snprintf(why, whylen, "expected a port from 1 to 65535 after the "
	    "address");
	return -1;
bad:
	snprintf(why, whylen, "expected a loopback HOST:PORT (127.0.0.1:9464, "
	    "[::1]:9464) or an absolute unix socket path");
	return -1;
}

/* A unix socket path that still answers belongs to someone alive. */
static int
listen_unix_clear(const struct listen_addr *la, char *why, size_t whylen)
{
	struct stat	st;
	int		fd;

	if (lstat(la->path, &st) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(why, whylen, "%s exists and is not a socket",
		    la->path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	if (connect(fd, (const struct sockaddr *)&la->ss, la->len) == 0) {
		close(fd);
		snprintf(why, whylen, "%s: something answers on it", la->path);
		return -1;
	}
	close(fd);
	if (unlink(la->path) == -1 && errno != ENOENT)
		goto fail;
	return 0;
fail:
	snprintf(why, whylen, "%s: %s", la->path, strerror(errno));
	return -1;
}

int
listen_open(const struct listen_addr *la, char *why, size_t whylen)
{
	mode_t	old;
	int	fd, one = 1, saved;

	if (la->family == AF_UNIX && listen_unix_clear(la, why, whylen) == -1)
		return -1;
	fd = socket(la->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	if (la->family != AF_UNIX)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
	/* A unix socket for the daemon's user and group (a local proxy). */
	old = umask(0117);
	if (bind(fd, (const struct sockaddr *)&la->ss, la->len) == -1) {
		saved = errno;
		umask(old);
		snprintf(why, whylen, "bind: %s", strerror(saved));
		close(fd);
		return -1;
	}
	umask(old);
	if (listen(fd, LISTEN_BACKLOG) == -1) {
		snprintf(why, whylen, "listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}
