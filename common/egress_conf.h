/*
 * sandbox.egress (SPEC §9): the proxy that holds the provider keys and is
 * the sandboxes' only way out. Parsed with the rest of settings.json into
 * struct config; its own file because config.c is already long and the
 * egress process reads nothing else of it but these.
 */
#ifndef CLAWVISOR_EGRESS_CONF_H
#define CLAWVISOR_EGRESS_CONF_H

#include <stdint.h>
#include <stddef.h>

#include <json-c/json.h>

enum egress_mode { EGRESS_OFF, EGRESS_PROXY };

/* The providers the proxy swaps a token for a key for, in enum provider
 * order (anthropic, openai). */
#define EGRESS_NPROVIDERS	2

/* A provider URL, split: https://HOST[:PORT][PATH]. */
struct egress_url {
	char		*url;		/* as written */
	char		*host;		/* without the brackets of an IPv6 literal */
	uint16_t	 port;		/* 443 unless written */
	char		*path;		/* "" or "/v1" ...: no trailing slash */
};

/* One "host:port" or "*.domain:port" of allow. */
struct egress_allow {
	char		*host;		/* "*.example.com" kept as ".example.com" */
	uint16_t	 port;
	int		 wildcard;	/* a suffix match, the domain itself excluded */
	int		 literal;	/* an IP literal: private ranges allowed */
};

struct egress_conf {
	enum egress_mode	 mode;
	struct egress_allow	*allow;
	size_t			 nallow;
	struct egress_url	 providers[EGRESS_NPROVIDERS];
	char			*ca_file;	/* NULL: system CAs only */
	int64_t			 max_connections;
	int64_t			 buffer_bytes;	/* per connection, per direction */
	int64_t			 idle_timeout_seconds;
};

/*
 * Parse the object sandbox.egress (NULL: absent) into ec. 0, or -1 with an
 * error naming the key path in err; ec is then for egress_conf_free().
 */
int		 egress_conf_parse(json_object *, struct egress_conf *, char *,
		    size_t);
void		 egress_conf_free(struct egress_conf *);
/* "host:port" or "*.domain:port": 0 and a filled entry, or -1. */
int		 egress_allow_parse(const char *, struct egress_allow *);
/* "https://host[:port][/path]": 0 and a filled url, or -1 and why. */
int		 egress_url_parse(const char *, struct egress_url *,
		    const char **);
json_object	*egress_conf_json(const struct egress_conf *);

#endif
