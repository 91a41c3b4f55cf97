/*
 * sandbox.egress (SPEC §9) from settings.json. The section is clawvisor's
 * own, not TinyClaw's: an unknown provider name is an error here (a typo
 * would otherwise leave a provider unreachable without a word), while the
 * file's other unknown keys are left alone as everywhere else.
 */
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "egress_conf.h"
#include "util.h"

#define PATH	"sandbox.egress"

static const char *const provider_keys[EGRESS_NPROVIDERS] = { "anthropic",
    "openai" };
static const char *const provider_urls[EGRESS_NPROVIDERS] = {
    "https://api.anthropic.com", "https://api.openai.com" };

static void
egress_conf_got(json_object *v, char *buf, size_t len)
{
	const char *s;

	s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strlen(s) > 40)
		snprintf(buf, len, "%.37s...", s);
	else
		snprintf(buf, len, "%s", s);
}

static int
egress_conf_fail(char *err, size_t errlen, const char *key, json_object *v,
    const char *what)
{
	char g[64];

	egress_conf_got(v, g, sizeof(g));
	snprintf(err, errlen, "%s.%s: %s, got %s", PATH, key, what, g);
	return -1;
}

/* A port of 1-65535 written in decimal, nothing else. */
static int
egress_port(const char *s, uint16_t *port)
{
	char	*end;
	long	 n;

	if (*s < '0' || *s > '9' || strlen(s) > 5)
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || n < 1 || n > 65535)
		return -1;
	*port = (uint16_t)n;
	return 0;
}

/* A DNS name: labels of letters, digits and '-', not at a label's ends. */
static int
egress_hostname(const char *s)
{
	size_t	label = 0, i, len = strlen(s);

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i <= len; i++) {
		if (s[i] == '.' || s[i] == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-') || (label == 0 && s[i] == '-'))
			return 0;
		label++;
	}
	return 1;
}

/*
 * HOST[:PORT] with HOST a name, an IPv4 literal or a bracketed IPv6
 * literal: host (brackets removed) and port (0 if absent) filled, and
 * whether HOST is a literal. -1 if it is none of those.
 */
static int
egress_hostport(const char *s, char **host, uint16_t *port, int *literal)
{
	unsigned char	 a[16];
	const char	*colon;
	char		*h;

	*port = 0;
	*literal = 0;
	if (*s == '[') {
		if ((colon = strchr(s, ']')) == NULL)
			return -1;
		h = xstrndup(s + 1, colon - s - 1);
		if (inet_pton(AF_INET6, h, a) != 1)
			goto fail;
		*literal = 1;
		colon++;
		if (*colon != '\0' && (*colon != ':' ||
		    egress_port(colon + 1, port) == -1))
			goto fail;
		*host = h;
		return 0;
	}
	colon = strrchr(s, ':');
	h = colon == NULL ? xstrdup(s) : xstrndup(s, colon - s);
	if (colon != NULL && egress_port(colon + 1, port) == -1)
		goto fail;
	if (inet_pton(AF_INET, h, a) == 1)
		*literal = 1;
	else if (!egress_hostname(h))
		goto fail;
	*host = h;
	return 0;
fail:
	free(h);
	return -1;
}

int
egress_allow_parse(const char *s, struct egress_allow *e)
{
	const char	*p = s;
	uint16_t	 port;
	char		*host;
	int		 literal, wildcard = 0;

	memset(e, 0, sizeof(*e));
	if (strncmp(p, "*.", 2) == 0) {
		wildcard = 1;
		p += 2;
	}
	if (egress_hostport(p, &host, &port, &literal) == -1)
		return -1;
	/* CONNECT names a port: an entry without one would be a guess. */
	if (port == 0 || (wildcard && literal)) {
		free(host);
		return -1;
	}
	if (wildcard) {
		e->host = NULL;
		xasprintf(&e->host, ".%s", host);
		free(host);
	} else
		e->host = host;
	e->port = port;
	e->wildcard = wildcard;
	e->literal = literal;
	return 0;
}

int
egress_url_parse(const char *s, struct egress_url *u, const char **why)
{
	const char	*p, *slash;
	char		*hp, *host;
	uint16_t	 port;
	size_t		 plen;
	int		 literal;

	memset(u, 0, sizeof(*u));
	if (strncasecmp(s, "https://", 8) != 0) {
		*why = "expected an https:// URL (the key never travels in "
		    "clear)";
		return -1;
	}
	p = s + 8;
	slash = strchr(p, '/');
	hp = slash == NULL ? xstrdup(p) : xstrndup(p, slash - p);
	if (strchr(hp, '@') != NULL || egress_hostport(hp, &host, &port,
	    &literal) == -1) {
		free(hp);
		*why = "expected https://HOST[:PORT][/PATH]";
		return -1;
	}
	free(hp);
	if (slash != NULL && strpbrk(slash, "?#% \t\r\n") != NULL) {
		free(host);
		*why = "expected a path without query, fragment, escapes or "
		    "spaces";
		return -1;
	}
	u->url = xstrdup(s);
	u->host = host;
	u->port = port == 0 ? 443 : port;
	u->path = xstrdup(slash == NULL ? "" : slash);
	plen = strlen(u->path);
	while (plen > 0 && u->path[plen - 1] == '/')
		u->path[--plen] = '\0';
	return 0;
}

static int
egress_conf_int(json_object *o, const char *key, int64_t def, int64_t min,
    int64_t max, int64_t *out, char *err, size_t errlen)
{
	json_object	*v;
	char		 what[96];
	int64_t		 n;

	*out = def;
	if (!json_object_object_get_ex(o, key, &v) || v == NULL)
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		errno = 0;
		n = json_object_get_int64(v);
		if (errno == 0 && n >= min && n <= max) {
			*out = n;
			return 0;
		}
	}
	snprintf(what, sizeof(what), "expected an integer between %lld and "
	    "%lld", (long long)min, (long long)max);
	return egress_conf_fail(err, errlen, key, v, what);
}

static int
egress_conf_allow(json_object *o, struct egress_conf *ec, char *err,
    size_t errlen)
{
	json_object	*v, *e;
	char		 key[32];
	size_t		 i, n;

	if (!json_object_object_get_ex(o, "allow", &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return egress_conf_fail(err, errlen, "allow", v,
		    "expected an array of \"host:port\" strings");
	if ((n = json_object_array_length(v)) > 256) {
		snprintf(err, errlen, "%s.allow: expected at most 256 "
		    "elements, got %zu", PATH, n);
		return -1;
	}
	ec->allow = xcalloc(n + 1, sizeof(*ec->allow));
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(v, i);
		snprintf(key, sizeof(key), "allow[%zu]", i);
		if (e == NULL || !json_object_is_type(e, json_type_string) ||
		    egress_allow_parse(json_object_get_string(e),
		    &ec->allow[i]) == -1)
			return egress_conf_fail(err, errlen, key, e,
			    "expected \"host:port\", \"*.domain:port\", "
			    "\"IPv4:port\" or \"[IPv6]:port\"");
		ec->nallow = i + 1;
	}
	return 0;
}

static int
egress_conf_providers(json_object *o, struct egress_conf *ec, char *err,
    size_t errlen)
{
	json_object		*ps = NULL, *p, *u;
	struct json_object_iterator it, end;
	const char		*why, *name;
	char			 key[64];
	size_t			 i;

	if (json_object_object_get_ex(o, "providers", &ps) && ps != NULL &&
	    !json_object_is_type(ps, json_type_object))
		return egress_conf_fail(err, errlen, "providers", ps,
		    "expected an object");
	if (ps != NULL) {
		it = json_object_iter_begin(ps);
		end = json_object_iter_end(ps);
		for (; !json_object_iter_equal(&it, &end);
		    json_object_iter_next(&it)) {
			name = json_object_iter_peek_name(&it);
			for (i = 0; i < EGRESS_NPROVIDERS; i++)
				if (strcmp(name, provider_keys[i]) == 0)
					break;
			if (i == EGRESS_NPROVIDERS) {
				snprintf(err, errlen, "%s.providers: expected "
				    "\"anthropic\" or \"openai\", got "
				    "\"%.40s\"", PATH, name);
				return -1;
			}
		}
	}
	for (i = 0; i < EGRESS_NPROVIDERS; i++) {
		p = u = NULL;
		snprintf(key, sizeof(key), "providers.%s", provider_keys[i]);
		if (ps != NULL && json_object_object_get_ex(ps,
		    provider_keys[i], &p) && p != NULL &&
		    !json_object_is_type(p, json_type_object))
			return egress_conf_fail(err, errlen, key, p,
			    "expected an object");
		if (p != NULL && json_object_object_get_ex(p, "url", &u) &&
		    u != NULL && !json_object_is_type(u, json_type_string)) {
			strlcat(key, ".url", sizeof(key));
			return egress_conf_fail(err, errlen, key, u,
			    "expected a string");
		}
		if (egress_url_parse(u != NULL ? json_object_get_string(u) :
		    provider_urls[i], &ec->providers[i], &why) == -1) {
			strlcat(key, ".url", sizeof(key));
			return egress_conf_fail(err, errlen, key, u, why);
		}
	}
	return 0;
}

int
egress_conf_parse(json_object *o, struct egress_conf *ec, char *err,
    size_t errlen)
{
	json_object	*v;
	const char	*s;

	memset(ec, 0, sizeof(*ec));
	if (o != NULL && !json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "%s: expected an object", PATH);
		return -1;
	}
	if (o != NULL && json_object_object_get_ex(o, "mode", &v) &&
	    v != NULL) {
		s = json_object_is_type(v, json_type_string) ?
		    json_object_get_string(v) : "";
		if (strcmp(s, "proxy") == 0)
			ec->mode = EGRESS_PROXY;
		else if (strcmp(s, "off") != 0)
			return egress_conf_fail(err, errlen, "mode", v,
			    "expected one of \"off\" or \"proxy\"");
	}
	if (o != NULL && json_object_object_get_ex(o, "ca_file", &v) &&
	    v != NULL) {
		if (!json_object_is_type(v, json_type_string) ||
		    *(s = json_object_get_string(v)) != '/' ||
		    strlen(s) != (size_t)json_object_get_string_len(v))
			return egress_conf_fail(err, errlen, "ca_file", v,
			    "expected an absolute path or null");
		ec->ca_file = xstrdup(s);
	}
	if (egress_conf_allow(o, ec, err, errlen) == -1 ||
	    egress_conf_providers(o, ec, err, errlen) == -1 ||
	    egress_conf_int(o, "max_connections", 256, 1, 65536,
	    &ec->max_connections, err, errlen) == -1 ||
	    egress_conf_int(o, "buffer_bytes", 262144, 4096, 67108864,
	    &ec->buffer_bytes, err, errlen) == -1 ||
	    egress_conf_int(o, "idle_timeout_seconds", 300, 1, 86400,
	    &ec->idle_timeout_seconds, err, errlen) == -1)
		return -1;
	return 0;
}

void
egress_conf_free(struct egress_conf *ec)
{
	size_t i;

	for (i = 0; i < ec->nallow; i++)
		free(ec->allow[i].host);
	free(ec->allow);
	for (i = 0; i < EGRESS_NPROVIDERS; i++) {
		free(ec->providers[i].url);
		free(ec->providers[i].host);
		free(ec->providers[i].path);
	}
	free(ec->ca_file);
	memset(ec, 0, sizeof(*ec));
}

json_object *
egress_conf_json(const struct egress_conf *ec)
{
	json_object	*o = json_object_new_object(), *a, *p, *u;
	char		*s;
	size_t		 i;

	json_object_object_add(o, "mode", json_object_new_string(
	    ec->mode == EGRESS_PROXY ? "proxy" : "off"));
	a = json_object_new_array();
	for (i = 0; i < ec->nallow; i++) {
		if (strchr(ec->allow[i].host, ':') != NULL)
			xasprintf(&s, "[%s]:%u", ec->allow[i].host,
			    ec->allow[i].port);
		else
			xasprintf(&s, "%s%s:%u", ec->allow[i].wildcard ? "*" :
			    "", ec->allow[i].host, ec->allow[i].port);
		json_object_array_add(a, json_object_new_string(s));
		free(s);
	}
	json_object_object_add(o, "allow", a);
	p = json_object_new_object();
	for (i = 0; i < EGRESS_NPROVIDERS; i++) {
		u = json_object_new_object();
		json_object_object_add(u, "url",
		    json_object_new_string(ec->providers[i].url));
		json_object_object_add(p, provider_keys[i], u);
	}
	json_object_object_add(o, "providers", p);
	json_object_object_add(o, "ca_file", ec->ca_file == NULL ? NULL :
	    json_object_new_string(ec->ca_file));
	json_object_object_add(o, "max_connections",
	    json_object_new_int64(ec->max_connections));
	json_object_object_add(o, "buffer_bytes",
	    json_object_new_int64(ec->buffer_bytes));
	json_object_object_add(o, "idle_timeout_seconds",
	    json_object_new_int64(ec->idle_timeout_seconds));
	/* What the sandboxes get, whatever the modes' network says. */
	json_object_object_add(o, "sandbox_network", json_object_new_string(
	    ec->mode == EGRESS_PROXY ? "none + the proxy" :
	    "as the mode's network"));
	return o;
}
