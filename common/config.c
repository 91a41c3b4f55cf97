/*
 * settings.json parsing and validation. Every value is checked for type and
 * range; an error names the key path and what was found. A key that is
 * present is used as given, 0 included; an absent (or null) key takes the
 * default of SPEC §3. Keys clawvisor does not know are left alone: the file
 * is TinyClaw's and holds its other settings too.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "listen.h"
#include "log.h"
#include "util.h"

#define SETTINGS_MAX	(4 * 1024 * 1024)
/* Far above any real file (1024 agents take about 10000 values); as many
 * empty objects, the worst case, take json-c some 50 MB. */
#define SETTINGS_MAX_VALUES	65536

struct ctx {
	char		*err;
	size_t		 errlen;
	const char	*text;		/* the file, for int_written() */
	size_t		 len;
};

static const char *const mode_names[] = { "host", "docker", "apple",
    "bwrap" };
static const char *const provider_names[] = { "anthropic", "openai",
    "command" };

const char *
config_mode_name(enum sandbox_mode m)
{
	return m <= MODE_BWRAP ? mode_names[m] : "inherit";
}

const char *
config_provider_name(enum provider p)
{
	return provider_names[p];
}

const char *
config_agent_provider(const struct agent *a)
{
	return a->provider_text != NULL ? a->provider_text :
	    provider_names[a->provider];
}

/*
 * TinyClaw's own providers that clawvisor does not run (0.0.5's wizard
 * offers opencode): that agent alone is refused, every other one works.
 */
static const char *const foreign_providers[] = { "opencode", "custom" };

static int
foreign_provider(struct config *cf, json_object *o, const char *path,
    struct agent *a)
{
	json_object	*v;
	size_t		 i;

	if (!json_object_object_get_ex(o, "provider", &v) ||
	    !json_object_is_type(v, json_type_string))
		return 0;
	for (i = 0; i < sizeof(foreign_providers) /
	    sizeof(foreign_providers[0]); i++)
		if (strcmp(json_object_get_string(v), foreign_providers[i])
		    == 0)
			break;
	if (i == sizeof(foreign_providers) / sizeof(foreign_providers[0]))
		return 0;
	a->provider = PROV_COMMAND;	/* never run: see a->refused */
	a->provider_text = xstrdup(foreign_providers[i]);
	xasprintf(&a->refused, "%s.provider: \"%s\" is not run by clawvisor "
	    "(it runs \"anthropic\", \"openai\" and \"command\"); this "
	    "agent's messages are refused", path, a->provider_text);
	config_warn(cf, "%s", a->refused);
	return 1;
}

static void
got(json_object *v, char *buf, size_t len)
{
	const char *s;

	s = v == NULL ? "nothing" : json_object_to_json_string_ext(v,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strlen(s) > 40)
		snprintf(buf, len, "%.37s...", s);
	else
		snprintf(buf, len, "%s", s);
}

static int
fail(struct ctx *c, const char *path, const char *key, json_object *v,
    const char *what)
{
	char g[64];

	got(v, g, sizeof(g));
	snprintf(c->err, c->errlen, "%s%s%s: %s, got %s", path,
	    *path != '\0' && *key != '\0' ? "." : "", key, what, g);
	return -1;
}

static int
fail_str(struct ctx *c, const char *path, const char *key, const char *val,
    const char *what)
{
	snprintf(c->err, c->errlen, "%s.%s: %s, got \"%.40s\"", path, key,
	    what, val);
	return -1;
}

/* 1 and *v set if present and not null, 0 if absent. */
static int
member(json_object *o, const char *key, json_object **v)
{
	if (o == NULL || !json_object_object_get_ex(o, key, v) || *v == NULL)
		return 0;
	return 1;
}

static int
get_object(struct ctx *c, json_object *o, const char *path, const char *key,
    json_object **out)
{
	json_object *v;

	*out = NULL;
	if (!member(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return fail(c, path, key, v, "expected an object");
	*out = v;
	return 0;
}

/*
 * json-c 0.16 keeps no text for an integer, and one past 64 bits becomes
 * the nearest bound: "99999999999999999999" reads as 18446744073709551615,
 * a number the user never wrote. For such a value the file is searched
 * for "key": followed by an integer that overflows the same way; if there
 * is one such text (a key can appear in several sections), that is what
 * was written. 0 if not found or not clamped.
 */
static int
int_written(struct ctx *c, const char *key, json_object *v, char *buf,
    size_t buflen)
{
	const char	*p, *q, *end = c->text + c->len, *found = NULL;
	char		*pat, tok[64];
	size_t		 plen, n, flen = 0;
	int		 neg;

	if (c->text == NULL || !((json_object_get_int64(v) == INT64_MIN) ||
	    json_object_get_uint64(v) == UINT64_MAX))
		return 0;
	plen = xasprintf(&pat, "\"%s\"", key);
	for (p = c->text; (p = memmem(p, end - p, pat, plen)) != NULL;
	    p += plen) {
		for (q = p + plen; q < end && strchr(" \t\r\n", *q); q++)
			;
		if (q == end || *q++ != ':')
			continue;
		for (; q < end && strchr(" \t\r\n", *q); q++)
			;
		neg = q < end && *q == '-';
		for (n = neg; q + n < end && q[n] >= '0' && q[n] <= '9'; n++)
			;
		if (n == (size_t)neg || (q + n < end && strchr(".eE", q[n])))
			continue;
		/* Past 64 bits the way json-c clamped it: over 20 digits, or
		 * 20 (19 negative) that strto[u]ll refuses. */
		if (n < sizeof(tok)) {
			snprintf(tok, sizeof(tok), "%.*s", (int)n, q);
			errno = 0;
			if (neg)
				(void)strtoll(tok, NULL, 10);
			else
				(void)strtoull(tok, NULL, 10);
			if (errno != ERANGE)
				continue;
		}
		if (found != NULL && (flen != n || memcmp(found, q, n) != 0)) {
			found = NULL;	/* two different texts: say neither */
			break;
		}
		found = q;
		flen = n;
	}
	free(pat);
	if (found == NULL)
		return 0;
	if (flen > 40)
		snprintf(buf, buflen, "%.37s...", found);
	else
		snprintf(buf, buflen, "%.*s", (int)flen, found);
	return 1;
}

static int
get_int(struct ctx *c, json_object *o, const char *path, const char *key,
    int64_t def, int64_t min, int64_t max, int64_t *out)
{
	json_object	*v;
	char		 what[96], text[48];
	int64_t		 n = min;
	int		 isint;

	*out = def;
	if (!member(o, key, &v))
		return 0;
	if ((isint = json_object_is_type(v, json_type_int))) {
		errno = 0;
		n = json_object_get_int64(v);
		if (errno == 0 && n >= min && n <= max) {
			*out = n;
			return 0;
		}
	}
	/* An upper bound that is only a technical cap is not worth naming. */
	if (max >= INT32_MAX && !(isint && n > max))
		snprintf(what, sizeof(what), "expected an integer >= %lld",
		    (long long)min);
	else
		snprintf(what, sizeof(what), "expected an integer between "
		    "%lld and %lld", (long long)min, (long long)max);
	if (isint && int_written(c, key, v, text, sizeof(text))) {
		snprintf(c->err, c->errlen, "%s%s%s: %s, got %s", path,
		    *path != '\0' && *key != '\0' ? "." : "", key, what, text);
		return -1;
	}
	return fail(c, path, key, v, what);
}

static int
get_bool(struct ctx *c, json_object *o, const char *path, const char *key,
    int def, int *out)
{
	json_object *v;

	*out = def;
	if (!member(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return fail(c, path, key, v, "expected true or false");
	*out = json_object_get_boolean(v);
	return 0;
}

static int
get_str(struct ctx *c, json_object *o, const char *path, const char *key,
    const char *def, char **out)
{
	json_object	*v;
	const char	*s;

	*out = NULL;
	if (!member(o, key, &v)) {
		if (def != NULL)
			*out = xstrdup(def);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail(c, path, key, v, "expected a string");
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s))
		return fail(c, path, key, v, "expected a string without NUL");
	*out = xstrdup(s);
	return 0;
}

static int
get_enum(struct ctx *c, json_object *o, const char *path, const char *key,
    const char *const *names, size_t nnames, int def, int *out)
{
	json_object	*v;
	char		 what[128];
	size_t		 i, n;

	*out = def;
	if (!member(o, key, &v))
		return 0;
	n = snprintf(what, sizeof(what), "expected one of");
	for (i = 0; i < nnames && n < sizeof(what); i++)
		n += snprintf(what + n, sizeof(what) - n, "%s \"%s\"",
		    i == 0 ? "" : (i + 1 == nnames ? " or" : ","), names[i]);
	if (!json_object_is_type(v, json_type_string))
		return fail(c, path, key, v, what);
	for (i = 0; i < nnames; i++)
		if (strcmp(json_object_get_string(v), names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	return fail(c, path, key, v, what);
}

static void
strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

static int
get_strv(struct ctx *c, json_object *o, const char *path, const char *key,
    int required, char ***out, size_t *nout)
{
	json_object	*v, *e;
	char		 epath[256];
	size_t		 i, n;

	*out = NULL;
	*nout = 0;
	if (!member(o, key, &v)) {
		if (required)
			return fail(c, path, key, NULL,
			    "expected a non-empty array of strings");
		return 0;
	}
	if (!json_object_is_type(v, json_type_array))
		return fail(c, path, key, v, "expected an array of strings");
	n = json_object_array_length(v);
	if (n > CONFIG_MAX_ARRAY) {
		snprintf(c->err, c->errlen, "%s.%s: expected at most %d "
		    "elements, got %zu", path, key, CONFIG_MAX_ARRAY, n);
		return -1;
	}
	if (required && n == 0)
		return fail(c, path, key, v,
		    "expected a non-empty array of strings");
	*out = xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(v, i);
		if (e == NULL || !json_object_is_type(e, json_type_string)) {
			snprintf(epath, sizeof(epath), "%s.%s[%zu]", path, key,
			    i);
			strv_free(*out, i);
			*out = NULL;
			*nout = 0;
			return fail(c, epath, "", e, "expected a string");
		}
		(*out)[i] = xstrdup(json_object_get_string(e));
		*nout = i + 1;
	}
	return 0;
}

static char *
expand_home(const char *p)
{
	const char	*h;
	char		*r;

	if (p[0] != '~' || (p[1] != '/' && p[1] != '\0'))
		return xstrdup(p);
	if ((h = getenv("HOME")) == NULL || *h == '\0') {
		struct passwd *pw = getpwuid(getuid());
		h = pw != NULL ? pw->pw_dir : "/";
	}
	xasprintf(&r, "%s%s", h, p + 1);
	return r;
}

static int
id_valid(const char *s)
{
	size_t i;

	if (*s == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 ||
	    strlen(s) > 128)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static int
env_name_valid(const char *s)
{
	size_t i;

	if (*s == '\0' || (*s >= '0' && *s <= '9'))
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* "2g", "512m", "1073741824": what docker and container accept. */
static int
memory_valid(const char *s)
{
	char *end;

	if (*s < '0' || *s > '9')
		return 0;
	(void)strtoull(s, &end, 10);
	if (*end == '\0')
		return 1;
	if (strchr("bkmgBKMG", *end) == NULL)
		return 0;
	end++;
	if (*end == 'b' || *end == 'B')
		end++;
	return *end == '\0';
}

/*
 * What the engines take for --cpus, written as a decimal: "1", "1.0",
 * "0.5". Docker reads a rational number in nano-CPUs (at most nine
 * decimals, at least 0.01); strtod would also take "0x10", "1e3", "inf"
 * and " 1", which the engine refuses or reads otherwise. whole: Apple's
 * container takes an integer ("1.0" is 1).
 */
int
config_cpus_valid(const char *s, int whole)
{
	const char	*p = s, *dot = NULL;
	long		 n = 0;
	int		 frac = 0, nonzero = 0;

	for (; *p >= '0' && *p <= '9'; p++)
		if ((n = n * 10 + (*p - '0')) > 4096)
			return 0;
	if (p == s)
		return 0;
	if (*p == '.') {
		dot = p++;
		for (; *p >= '0' && *p <= '9'; p++, frac++)
			if (*p != '0')
				nonzero = 1;
		if (p == dot + 1 || frac > 9)
			return 0;
	}
	if (*p != '\0' || (n == 4096 && nonzero))
		return 0;
	if (whole)
		return !nonzero && n >= 1;
	/* At least 0.01, docker's smallest: a first or second decimal. */
	return n >= 1 || (dot != NULL && (dot[1] > '0' ||
	    (frac >= 2 && dot[2] > '0')));
}

static int
user_valid(const char *s)
{
	char		*end;
	unsigned long	 u;

	if (strcmp(s, "auto") == 0)
		return 1;
	if (*s < '0' || *s > '9')
		return 0;
	u = strtoul(s, &end, 10);
	if (*end != ':' || u > 0xfffffffeUL)
		return 0;
	s = end + 1;
	if (*s < '0' || *s > '9')
		return 0;
	u = strtoul(s, &end, 10);
	return *end == '\0' && u <= 0xfffffffeUL;
}

int
config_user(const struct runtime_conf *rt, uid_t *uid, gid_t *gid)
{
	char *end;

	/* user_valid() has checked the form: digits, ':', digits. */
	if (strcmp(rt->user, "auto") == 0)
		return -1;
	*uid = (uid_t)strtoul(rt->user, &end, 10);
	*gid = (gid_t)strtoul(end + 1, NULL, 10);
	return 0;
}

static void
runtime_free(struct runtime_conf *r)
{
	free(r->runtime_command);
	free(r->image);
	free(r->memory);
	free(r->cpus);
	free(r->user);
	strv_free(r->ro_paths, r->nro_paths);
}

static int
parse_cpus(struct ctx *c, json_object *o, const char *path, const char *def,
    char **out)
{
	json_object	*v;
	char		 buf[64];

	if (member(o, "cpus", &v) && (json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_double))) {
		/* TinyClaw writes a number here as often as a string. */
		snprintf(buf, sizeof(buf), "%s", json_object_to_json_string(v));
		*out = xstrdup(buf);
	} else if (get_str(c, o, path, "cpus", def, out) == -1)
		return -1;
	if (!config_cpus_valid(*out, 0))
		return fail_str(c, path, "cpus", *out,
		    "expected a decimal number of CPUs from 0.01 to 4096 such "
		    "as \"1.0\"");
	return 0;
}

static int
parse_runtime(struct ctx *c, json_object *sandbox, const char *which,
    struct runtime_conf *r)
{
	static const char *const nets[] = { "default", "none", "restricted" };
	json_object	*o;
	char		 path[32];
	int		 net, apple = strcmp(which, "apple") == 0;

	snprintf(path, sizeof(path), "sandbox.%s", which);
	if (get_object(c, sandbox, "sandbox", which, &o) == -1)
		return -1;
	if (get_str(c, o, path, "runtime_command", apple ? "container" :
	    "docker", &r->runtime_command) == -1 ||
	    get_str(c, o, path, "image", "tinyclaw/agent-runner:latest",
	    &r->image) == -1 ||
	    get_enum(c, o, path, "network", nets, 3, 0, &net) == -1 ||
	    get_str(c, o, path, "memory", "2g", &r->memory) == -1 ||
	    parse_cpus(c, o, path, apple ? "1" : "1.0", &r->cpus) == -1 ||
	    get_int(c, o, path, "pids_limit", 256, 0, INT32_MAX,
	    &r->pids_limit) == -1 ||
	    get_str(c, o, path, "user", "auto", &r->user) == -1)
		return -1;
	r->network = net == 1 ? NET_NONE : NET_DEFAULT;
	r->network_restricted = net == 2;
	if (*r->runtime_command == '\0')
		return fail_str(c, path, "runtime_command", r->runtime_command,
		    "expected a program name");
	if (*r->image == '\0' || r->image[0] == '-')
		return fail_str(c, path, "image", r->image,
		    "expected an image name");
	if (!memory_valid(r->memory))
		return fail_str(c, path, "memory", r->memory,
		    "expected a size such as \"2g\"");
	if (!user_valid(r->user))
		return fail_str(c, path, "user", r->user,
		    "expected \"auto\" or \"UID:GID\"");
	return 0;
}

int64_t
config_memory_bytes(const char *s)
{
	unsigned long long	 n;
	char			*end;
	int			 shift = 0;

	if (!memory_valid(s))
		return -1;
	errno = 0;
	n = strtoull(s, &end, 10);
	switch (*end) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	}
	if (errno != 0 || n > (unsigned long long)INT64_MAX >> shift)
		return -1;
	return (int64_t)(n << shift);
}

/*
 * sandbox.bwrap (SPEC §8): no image, a network of none or host, a user
 * that is never root, extra read-only paths, and whether the limits fail
 * closed. Its own function: the container modes' keys mean other things.
 */
static int
parse_bwrap(struct ctx *c, json_object *sandbox, struct runtime_conf *r)
{
	static const char *const nets[] = { "none", "host" };
	static const char *const limits[] = { "strict", "best-effort" };
	static const char	*path = "sandbox.bwrap";
	json_object		*o;
	size_t			 i;
	int			 net, lim;

	if (get_object(c, sandbox, "sandbox", "bwrap", &o) == -1)
		return -1;
	r->image = xstrdup("");
	if (get_str(c, o, path, "runtime_command", "bwrap",
	    &r->runtime_command) == -1 ||
	    get_enum(c, o, path, "network", nets, 2, 0, &net) == -1 ||
	    get_str(c, o, path, "user", "auto", &r->user) == -1 ||
	    get_strv(c, o, path, "ro_paths", 0, &r->ro_paths,
	    &r->nro_paths) == -1 ||
	    get_str(c, o, path, "memory", "2g", &r->memory) == -1 ||
	    parse_cpus(c, o, path, "1.0", &r->cpus) == -1 ||
	    get_int(c, o, path, "pids_limit", 256, 0, INT32_MAX,
	    &r->pids_limit) == -1 ||
	    get_enum(c, o, path, "limits", limits, 2, 0, &lim) == -1)
		return -1;
	r->network = net == 1 ? NET_HOST : NET_NONE;
	r->limits_best_effort = lim == 1;
	if (*r->runtime_command == '\0')
		return fail_str(c, path, "runtime_command", r->runtime_command,
		    "expected a program name");
	if (config_memory_bytes(r->memory) < 4096)
		return fail_str(c, path, "memory", r->memory,
		    "expected a size of at least 4k such as \"2g\"");
	if (!user_valid(r->user))
		return fail_str(c, path, "user", r->user,
		    "expected \"auto\" or \"UID:GID\"");
	if (strncmp(r->user, "0:", 2) == 0)
		return fail_str(c, path, "user", r->user,
		    "the agent never runs as root (uid 0)");
	for (i = 0; i < r->nro_paths; i++)
		if (r->ro_paths[i][0] != '/' ||
		    strcmp(r->ro_paths[i], "/") == 0 ||
		    strstr(r->ro_paths[i], "/../") != NULL ||
		    (strlen(r->ro_paths[i]) >= 3 && strcmp(r->ro_paths[i] +
		    strlen(r->ro_paths[i]) - 3, "/..") == 0)) {
			snprintf(c->err, c->errlen, "%s.ro_paths[%zu]: expected "
			    "an absolute path other than /, got \"%.40s\"",
			    path, i, r->ro_paths[i]);
			return -1;
		}
	return 0;
}

/*
 * sandbox.runtime_pass_env: more of the daemon's environment for the
 * container runtime's CLI (a credential helper's, a wrapper's), NAME or
 * PREFIX*. A key of env_allowlist is never passed: naming one is an error.
 */
static int
parse_pass_env(struct ctx *c, json_object *s, struct config *cf)
{
	char	*e, *star;
	size_t	 i, j;
	int	 ok;

	if (get_strv(c, s, "sandbox", "runtime_pass_env", 0,
	    &cf->runtime_pass_env, &cf->npass) == -1)
		return -1;
	for (i = 0; i < cf->npass; i++) {
		e = cf->runtime_pass_env[i];
		star = strchr(e, '*');
		if (star != NULL && star[1] == '\0') {
			*star = '\0';
			ok = env_name_valid(e);
			*star = '*';
		} else
			ok = env_name_valid(e);
		if (!ok) {
			snprintf(c->err, c->errlen, "sandbox.runtime_pass_env"
			    "[%zu]: expected a variable name or a prefix and "
			    "'*', got \"%.40s\"", i, e);
			return -1;
		}
		for (j = 0; j < cf->nallow; j++)
			if (strcmp(e, cf->env_allowlist[j]) == 0) {
				snprintf(c->err, c->errlen, "sandbox."
				    "runtime_pass_env[%zu]: %s is in sandbox."
				    "env_allowlist: a key never reaches the "
				    "container runtime's CLI", i, e);
				return -1;
			}
	}
	return 0;
}

/* Off unless set; loopback or a unix socket only (common/listen.c). */
static int
parse_metrics_listen(struct ctx *c, json_object *sup, struct config *cf)
{
	struct listen_addr	 la;
	char			 why[160];

	if (get_str(c, sup, "supervisor", "metrics_listen", NULL,
	    &cf->metrics_listen) == -1)
		return -1;
	if (cf->metrics_listen == NULL ||
	    listen_parse(cf->metrics_listen, &la, why, sizeof(why)) == 0)
		return 0;
	snprintf(c->err, c->errlen, "supervisor.metrics_listen: %s, got "
	    "\"%.64s\"", why, cf->metrics_listen);
	return -1;
}

static int
parse_sandbox(struct ctx *c, json_object *root, struct config *cf)
{
	static const char *const maps[] = { "mapped", "same-path" };
	json_object	*s, *sup;
	int		 mode, map;
	size_t		 i;

	if (get_object(c, root, "", "sandbox", &s) == -1)
		return -1;
	if (get_enum(c, s, "sandbox", "mode", mode_names, 4, MODE_HOST,
	    &mode) == -1 ||
	    get_int(c, s, "sandbox", "timeout_seconds", 600, 0, INT32_MAX,
	    &cf->timeout_seconds) == -1 ||
	    get_int(c, s, "sandbox", "max_attempts", 3, 1, CONFIG_MAX_ATTEMPTS,
	    &cf->max_attempts) == -1 ||
	    get_int(c, s, "sandbox", "max_concurrency", 0, 0, INT32_MAX,
	    &cf->max_concurrency) == -1 ||
	    get_int(c, s, "sandbox", "max_waiters", 1000, 0, INT32_MAX,
	    &cf->max_waiters) == -1 ||
	    get_int(c, s, "sandbox", "max_output_bytes", 10485760, 0,
	    CONFIG_MAX_OUTPUT, &cf->max_output_bytes) == -1 ||
	    get_int(c, s, "sandbox", "max_message_bytes", 100000, 0,
	    MAX_MESSAGE_FILE, &cf->max_message_bytes) == -1 ||
	    get_int(c, s, "sandbox", "backoff_seconds", 5, 0,
	    CONFIG_MAX_BACKOFF, &cf->backoff_seconds) == -1 ||
	    get_int(c, s, "sandbox", "backoff_max_seconds", 300, 0,
	    CONFIG_MAX_BACKOFF,
	    &cf->backoff_max_seconds) == -1 ||
	    get_int(c, s, "sandbox", "kill_grace_seconds", 5, 0, 3600,
	    &cf->kill_grace_seconds) == -1 ||
	    get_enum(c, s, "sandbox", "path_mapping_mode", maps, 2, MAP_MAPPED,
	    &map) == -1)
		return -1;
	cf->mode = mode;
	cf->path_mapping = map;
	if (member(s, "env_allowlist", &sup)) {
		if (get_strv(c, s, "sandbox", "env_allowlist", 0,
		    &cf->env_allowlist, &cf->nallow) == -1)
			return -1;
	} else {
		static const char *const def[] = { "ANTHROPIC_API_KEY",
		    "CLAUDE_CODE_OAUTH_TOKEN", "OPENAI_API_KEY",
		    "CODEX_API_KEY" };

		cf->nallow = sizeof(def) / sizeof(def[0]);
		cf->env_allowlist = xcalloc(cf->nallow + 1, sizeof(char *));
		for (i = 0; i < cf->nallow; i++)
			cf->env_allowlist[i] = xstrdup(def[i]);
	}
	for (i = 0; i < cf->nallow; i++)
		if (!env_name_valid(cf->env_allowlist[i])) {
			snprintf(c->err, c->errlen, "sandbox.env_allowlist[%zu]:"
			    " expected an environment variable name, got "
			    "\"%.40s\"", i, cf->env_allowlist[i]);
			return -1;
		}
	if (parse_pass_env(c, s, cf) == -1 ||
	    parse_runtime(c, s, "docker", &cf->docker) == -1 ||
	    parse_runtime(c, s, "apple", &cf->apple) == -1 ||
	    parse_bwrap(c, s, &cf->bwrap) == -1 ||
	    egress_conf_parse(member(s, "egress", &sup) ? sup : NULL,
	    &cf->egress, c->err, c->errlen) == -1)
		return -1;

	if (get_object(c, root, "", "supervisor", &sup) == -1 ||
	    get_int(c, sup, "supervisor", "workers", 4, 1, CONFIG_MAX_WORKERS,
	    &cf->workers) == -1 ||
	    get_int(c, sup, "supervisor", "scan_interval_ms", 1000, 0,
	    86400000, &cf->scan_interval_ms) == -1 ||
	    get_int(c, sup, "supervisor", "max_chain_steps", 10, 1, 1000,
	    &cf->max_chain_steps) == -1 ||
	    get_bool(c, sup, "supervisor", "watch_settings", 1,
	    &cf->watch_settings) == -1 ||
	    parse_metrics_listen(c, sup, cf) == -1)
		return -1;
	return 0;
}

static int
parse_agent(struct ctx *c, const char *id, json_object *o, struct config *cf,
    struct agent *a)
{
	char	 path[192], *wd = NULL;
	int	 prov, mode;

	snprintf(path, sizeof(path), "agents.%s", id);
	a->id = xstrdup(id);
	a->mode = MODE_INHERIT;
	if (!id_valid(id)) {
		snprintf(c->err, c->errlen, "agents.%.128s: agent id must be "
		    "letters, digits, '.', '_' or '-'", id);
		return -1;
	}
	if (!json_object_is_type(o, json_type_object))
		return fail(c, "agents", id, o, "expected an object");
	if (foreign_provider(cf, o, path, a))
		prov = PROV_COMMAND;
	else if (get_enum(c, o, path, "provider", provider_names, 3,
	    PROV_ANTHROPIC, &prov) == -1)
		goto fail;
	if (get_str(c, o, path, "name", id, &a->name) == -1 ||
	    get_str(c, o, path, "model", NULL, &a->model) == -1 ||
	    get_str(c, o, path, "working_directory", NULL, &wd) == -1 ||
	    get_enum(c, o, path, "sandbox_mode", mode_names, 4, MODE_INHERIT,
	    &mode) == -1)
		goto fail;
	a->provider = prov;
	a->mode = mode;
	if (a->model != NULL && *a->model == '\0') {
		free(a->model);
		a->model = NULL;
	}
	if (a->provider == PROV_COMMAND && a->refused == NULL &&
	    get_strv(c, o, path, "command", 1, &a->command, &a->ncommand) == -1)
		goto fail;
	if (wd != NULL && *wd != '\0') {
		a->workdir = expand_home(wd);
		if (a->workdir[0] != '/') {
			/* TinyClaw resolves a relative path in the workspace. */
			char *abs;
			xasprintf(&abs, "%s/%s", cf->workspace, a->workdir);
			free(a->workdir);
			a->workdir = abs;
		}
	} else
		xasprintf(&a->workdir, "%s/%s", cf->workspace, id);
	free(wd);
	return 0;
fail:
	free(wd);
	return -1;
}

/*
 * The legacy section, as TinyClaw reads it: {"models": {"provider": ...,
 * "anthropic": {"model": "sonnet"}, "openai": {"model": ...}}} becomes one
 * agent "default" working in <workspace>/default. Without a provider, the
 * presence of an "openai" section means openai.
 */
static int
parse_legacy(struct ctx *c, json_object *root, struct config *cf)
{
	json_object	*m, *sub, *v;
	struct agent	*a;
	int		 prov;

	if (get_object(c, root, "", "models", &m) == -1)
		return -1;
	prov = member(m, "openai", &v) && !member(m, "anthropic", &v) ?
	    PROV_OPENAI : PROV_ANTHROPIC;
	if (get_enum(c, m, "models", "provider", provider_names, 2, prov,
	    &prov) == -1)
		return -1;
	cf->agents = xcalloc(1, sizeof(*cf->agents));
	cf->nagents = 1;
	a = &cf->agents[0];
	a->id = xstrdup("default");
	a->name = xstrdup("Default");
	a->provider = prov;
	a->mode = MODE_INHERIT;
	xasprintf(&a->workdir, "%s/default", cf->workspace);
	if (get_object(c, m, "models", prov == PROV_OPENAI ? "openai" :
	    "anthropic", &sub) == -1 ||
	    get_str(c, sub, prov == PROV_OPENAI ? "models.openai" :
	    "models.anthropic", "model", prov == PROV_OPENAI ?
	    "gpt-5.3-codex" : "sonnet", &a->model) == -1)
		return -1;
	return 0;
}

static int
parse_agents(struct ctx *c, json_object *root, struct config *cf)
{
	json_object	*agents;
	size_t		 n;

	if (get_object(c, root, "", "agents", &agents) == -1)
		return -1;
	if (agents == NULL || json_object_object_length(agents) == 0)
		return parse_legacy(c, root, cf);
	n = json_object_object_length(agents);
	if (n > CONFIG_MAX_AGENTS) {
		snprintf(c->err, c->errlen, "agents: expected at most %d "
		    "agents, got %zu", CONFIG_MAX_AGENTS, n);
		return -1;
	}
	cf->agents = xcalloc(n, sizeof(*cf->agents));
	json_object_object_foreach(agents, key, val) {
		if (parse_agent(c, key, val, cf, &cf->agents[cf->nagents++])
		    == -1)
			return -1;
	}
	return 0;
}

static void
team_free(struct team *t)
{
	free(t->id);
	free(t->name);
	strv_free(t->agents, t->nagents);
	free(t->leader);
	memset(t, 0, sizeof(*t));
}

/*
 * TinyClaw's `agent remove` leaves the agent in its teams, and TinyClaw's
 * processor ignores such members: drop them with a warning rather than
 * refuse the whole file. A leader that is not a remaining member gives way
 * to the first one that is.
 */
static void
team_drop_missing(struct config *cf, struct team *t, const char *path)
{
	size_t i, n = 0;

	for (i = 0; i < t->nagents; i++) {
		if (config_agent(cf, t->agents[i]) == NULL) {
			config_warn(cf, "%s.agents: no agent \"%.128s\", "
			    "dropped from the team", path, t->agents[i]);
			free(t->agents[i]);
			continue;
		}
		t->agents[n++] = t->agents[i];
	}
	t->nagents = n;
	if (n == 0)
		return;
	if (t->leader != NULL) {
		for (i = 0; i < n; i++)
			if (strcmp(t->agents[i], t->leader) == 0)
				return;
		config_warn(cf, "%s.leader_agent: \"%.128s\" is not one of "
		    "the team's agents; \"%.128s\" leads instead", path,
		    t->leader, t->agents[0]);
		free(t->leader);
	}
	t->leader = xstrdup(t->agents[0]);
}

static int
parse_teams(struct ctx *c, json_object *root, struct config *cf)
{
	json_object	*teams;
	struct team	*t;
	char		 path[192];
	size_t		 n;

	if (get_object(c, root, "", "teams", &teams) == -1 || teams == NULL)
		return teams == NULL && *c->err == '\0' ? 0 : -1;
	n = json_object_object_length(teams);
	if (n > CONFIG_MAX_TEAMS) {
		snprintf(c->err, c->errlen, "teams: expected at most %d teams,"
		    " got %zu", CONFIG_MAX_TEAMS, n);
		return -1;
	}
	cf->teams = xcalloc(n, sizeof(*cf->teams));
	json_object_object_foreach(teams, key, val) {
		t = &cf->teams[cf->nteams++];
		t->id = xstrdup(key);
		snprintf(path, sizeof(path), "teams.%s", key);
		if (!id_valid(key)) {
			snprintf(c->err, c->errlen, "teams.%.128s: team id must"
			    " be letters, digits, '.', '_' or '-'", key);
			return -1;
		}
		if (!json_object_is_type(val, json_type_object))
			return fail(c, "teams", key, val, "expected an object");
		if (get_str(c, val, path, "name", key, &t->name) == -1 ||
		    get_strv(c, val, path, "agents", 1, &t->agents,
		    &t->nagents) == -1 ||
		    get_str(c, val, path, "leader_agent", NULL, &t->leader)
		    == -1)
			return -1;
		team_drop_missing(cf, t, path);
		if (t->nagents == 0) {
			config_warn(cf, "%s: no agent of the team exists, the "
			    "team is ignored", path);
			team_free(t);
			cf->nteams--;
		}
	}
	return 0;
}

/*
 * tinyclaw.install_dir: where TinyClaw keeps the files it sets an agent's
 * directory up from (AGENTS.md, heartbeat.md, SOUL.md, .claude/, skills).
 * Absent: no set-up (the supervisor warns once at start).
 */
static int
parse_tinyclaw(struct ctx *c, json_object *root, struct config *cf)
{
	json_object	*t;
	char		*dir = NULL;

	if (get_object(c, root, "", "tinyclaw", &t) == -1 ||
	    get_str(c, t, "tinyclaw", "install_dir", NULL, &dir) == -1)
		return -1;
	if (dir == NULL)
		return 0;
	cf->tinyclaw_dir = expand_home(dir);
	free(dir);
	if (cf->tinyclaw_dir[0] != '/') {
		snprintf(c->err, c->errlen, "tinyclaw.install_dir: expected an "
		    "absolute path, got \"%.40s\"", cf->tinyclaw_dir);
		return -1;
	}
	return 0;
}

/* network "host" for a mode in use: said at every start and reload. */
static void
bwrap_warn(struct config *cf)
{
	size_t	i;
	int	used = cf->mode == MODE_BWRAP;

	for (i = 0; i < cf->nagents; i++)
		if (cf->agents[i].mode == MODE_BWRAP)
			used = 1;
	if (used && cf->bwrap.network == NET_HOST)
		config_warn(cf, "sandbox.bwrap.network is \"host\": bwrap "
		    "sandboxes share the host's network, its loopback "
		    "included");
}

static int
check_apple_cpus(struct ctx *c, struct config *cf)
{
	size_t	i;
	int	used = cf->mode == MODE_APPLE;

	for (i = 0; i < cf->nagents; i++)
		if (cf->agents[i].mode == MODE_APPLE)
			used = 1;
	if (used && !config_cpus_valid(cf->apple.cpus, 1)) {
		snprintf(c->err, c->errlen, "sandbox.apple.cpus: expected a "
		    "whole number of CPUs (Apple's container takes an "
		    "integer), got \"%.40s\"", cf->apple.cpus);
		return -1;
	}
	return 0;
}

/* "/home/settings.json:12:3: not valid JSON: what", as compilers say it. */
static void
syntax_error(const struct config *cf, const char *text, size_t len,
    size_t off, const char *what, char *err, size_t errlen)
{
	size_t	line, col;

	text_position(text, len, off, &line, &col);
	snprintf(err, errlen, "%s:%zu:%zu: not valid JSON: %s", cf->path,
	    line, col, what);
}

/*
 * The proxy (SPEC §9) only means something where the sandbox has no
 * network of its own: host and apple modes would run with the real key and
 * the network, so they are an error, as is bwrap's shared network.
 */
static int
check_egress(struct ctx *c, struct config *cf)
{
	size_t	i;

	if (cf->egress.mode != EGRESS_PROXY)
		return 0;
	if (cf->bwrap.network == NET_HOST) {
		snprintf(c->err, c->errlen, "sandbox.bwrap.network: \"host\" "
		    "cannot be used with sandbox.egress.mode \"proxy\": the "
		    "sandbox would reach the network around the proxy");
		return -1;
	}
	if (cf->mode == MODE_HOST || cf->mode == MODE_APPLE) {
		snprintf(c->err, c->errlen, "sandbox.egress.mode: \"proxy\" "
		    "needs a docker, podman or bwrap sandbox, got sandbox.mode "
		    "\"%s\"", config_mode_name(cf->mode));
		return -1;
	}
	for (i = 0; i < cf->nagents; i++)
		if (cf->agents[i].mode == MODE_HOST ||
		    cf->agents[i].mode == MODE_APPLE) {
			snprintf(c->err, c->errlen, "agents.%s.sandbox_mode: "
			    "\"%s\" cannot be used with sandbox.egress.mode "
			    "\"proxy\" (it needs a docker, podman or bwrap "
			    "sandbox)", cf->agents[i].id,
			    config_mode_name(cf->agents[i].mode));
			return -1;
		}
	return 0;
}

struct config *
config_parse(const char *text, size_t len, const char *home, char *err,
    size_t errlen)
{
	struct ctx		 c = { err, errlen, text, len };
	struct config		*cf;
	struct json_tokener	*tok;
	enum json_tokener_error	 jerr;
	json_object		*root, *ws;
	char			*wsp = NULL;
	size_t			 at;

	*err = '\0';
	cf = xcalloc(1, sizeof(*cf));
	cf->home = xstrdup(home);
	xasprintf(&cf->path, "%s/settings.json", home);
	if (json_values(text, len) > SETTINGS_MAX_VALUES) {
		snprintf(err, errlen, "%s: more than %d JSON values",
		    cf->path, SETTINGS_MAX_VALUES);
		config_free(cf);
		return NULL;
	}
	if (json_single_quoted(text, len, &at)) {
		syntax_error(cf, text, len, at, "a single-quoted string", err,
		    errlen);
		config_free(cf);
		return NULL;
	}
	if ((tok = json_tokener_new_ex(64)) == NULL)
		fatalx("json_tokener_new");
	/* As JavaScript's JSON.parse: no trailing commas, no data after the
	 * object, no single quotes (above). */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	/* NULL with success is the JSON null: not an object, below. */
	if (jerr != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len) {
		at = json_tokener_get_parse_end(tok);
		if (jerr == json_tokener_continue)
			syntax_error(cf, text, len, len, "unexpected end of "
			    "file", err, errlen);
		else if (jerr != json_tokener_success)
			syntax_error(cf, text, len, at,
			    json_tokener_error_desc(jerr), err, errlen);
		else
			syntax_error(cf, text, len, at + strspn(text + at,
			    " \t\r\n"), "unexpected data after the JSON "
			    "object", err, errlen);
		json_tokener_free(tok);
		json_object_put(root);
		config_free(cf);
		return NULL;
	}
	json_tokener_free(tok);
	if (!json_object_is_type(root, json_type_object)) {
		snprintf(err, errlen, "settings.json: expected a JSON object");
		goto fail;
	}
	if (get_object(&c, root, "", "workspace", &ws) == -1 ||
	    get_str(&c, ws, "workspace", "path", "~/tinyclaw-workspace",
	    &wsp) == -1)
		goto fail;
	cf->workspace = expand_home(wsp);
	free(wsp);
	if (cf->workspace[0] != '/') {
		snprintf(err, errlen, "workspace.path: expected an absolute "
		    "path, got \"%.40s\"", cf->workspace);
		goto fail;
	}
	if (parse_tinyclaw(&c, root, cf) == -1 ||
	    parse_sandbox(&c, root, cf) == -1 ||
	    parse_agents(&c, root, cf) == -1 ||
	    parse_teams(&c, root, cf) == -1 ||
	    check_apple_cpus(&c, cf) == -1 ||
	    check_egress(&c, cf) == -1)
		goto fail;
	if (cf->docker.network_restricted || cf->apple.network_restricted)
		config_warn(cf, "network "
		    "\"restricted\" is treated as \"default\": clawvisor has no "
		    "restricted network; use \"none\" to cut it off");
	bwrap_warn(cf);
	json_object_put(root);
	return cf;
fail:
	json_object_put(root);
	config_free(cf);
	return NULL;
}

struct config *
config_load(const char *home, char *err, size_t errlen)
{
	struct config	*cf;
	struct stat	 st;
	char		*path, *text = NULL, rerr[160];
	size_t		 len;
	int		 missing, r;

	xasprintf(&path, "%s/settings.json", home);
	missing = access(path, F_OK) == -1 && errno == ENOENT;
	if (missing) {
		/* TinyClaw runs on defaults without a settings file. */
		cf = config_parse("{}", 2, home, err, errlen);
		if (cf != NULL)
			config_warn(cf, "%s: no such"
			    " file, running on defaults", path);
		free(path);
		return cf;
	}
	r = file_read_regular(AT_FDCWD, path, SETTINGS_MAX, &text, &len, rerr,
	    sizeof(rerr));
	if (r != 0) {
		snprintf(err, errlen, "%s: %s", path, r == -2 ? "removed while "
		    "being read" : r == -3 ? "changed while being read" : rerr);
		free(path);
		return NULL;
	}
	cf = config_parse(text, len, home, err, errlen);
	free(text);
	if (cf != NULL && stat(path, &st) == 0 && (st.st_mode & S_IWOTH))
		config_warn(cf, "%s is world-"
		    "writable: any local user can change what runs; chmod o-w "
		    "it", path);
	free(path);
	return cf;
}

void
config_warn(struct config *cf, const char *fmt, ...)
{
	va_list	ap;
	size_t	len = strlen(cf->warning);

	if (len > 0 && len + 2 < sizeof(cf->warning)) {
		strlcat(cf->warning, "; ", sizeof(cf->warning));
		len += 2;
	}
	if (len + 1 >= sizeof(cf->warning))
		return;
	va_start(ap, fmt);
	vsnprintf(cf->warning + len, sizeof(cf->warning) - len, fmt, ap);
	va_end(ap);
}

void
config_free(struct config *cf)
{
	size_t i;

	if (cf == NULL)
		return;
	for (i = 0; i < cf->nagents; i++) {
		free(cf->agents[i].id);
		free(cf->agents[i].name);
		free(cf->agents[i].model);
		free(cf->agents[i].workdir);
		strv_free(cf->agents[i].command, cf->agents[i].ncommand);
		free(cf->agents[i].refused);
		free(cf->agents[i].provider_text);
	}
	free(cf->agents);
	for (i = 0; i < cf->nteams; i++)
		team_free(&cf->teams[i]);
	free(cf->teams);
	strv_free(cf->env_allowlist, cf->nallow);
	strv_free(cf->runtime_pass_env, cf->npass);
	runtime_free(&cf->docker);
	runtime_free(&cf->apple);
	runtime_free(&cf->bwrap);
	free(cf->metrics_listen);
	egress_conf_free(&cf->egress);
	free(cf->workspace);
	free(cf->tinyclaw_dir);
	free(cf->home);
	free(cf->path);
	free(cf);
}

const struct agent *
config_agent(const struct config *cf, const char *id)
{
	size_t i;

	for (i = 0; i < cf->nagents; i++)
		if (cf->agents[i].id != NULL && strcmp(cf->agents[i].id, id)
		    == 0)
			return &cf->agents[i];
	return NULL;
}

const struct team *
config_team(const struct config *cf, const char *id)
{
	size_t i;

	for (i = 0; i < cf->nteams; i++)
		if (strcmp(cf->teams[i].id, id) == 0)
			return &cf->teams[i];
	return NULL;
}

enum sandbox_mode
config_agent_mode(const struct config *cf, const struct agent *a)
{
	return a->mode == MODE_INHERIT ? cf->mode : a->mode;
}

static json_object *
runtime_json(const struct runtime_conf *r, int apple)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "runtime_command",
	    json_object_new_string(r->runtime_command));
	json_object_object_add(o, "image", json_object_new_string(r->image));
	json_object_object_add(o, "network", json_object_new_string(
	    r->network == NET_NONE ? "none" : r->network_restricted ?
	    "restricted" : "default"));
	json_object_object_add(o, "memory", json_object_new_string(r->memory));
	json_object_object_add(o, "cpus", json_object_new_string(r->cpus));
	if (!apple)
		json_object_object_add(o, "pids_limit",
		    json_object_new_int64(r->pids_limit));
	json_object_object_add(o, "user", json_object_new_string(r->user));
	return o;
}

static json_object *
bwrap_json(const struct runtime_conf *r)
{
	json_object	*o = json_object_new_object(), *a;
	size_t		 i;

	json_object_object_add(o, "runtime_command",
	    json_object_new_string(r->runtime_command));
	json_object_object_add(o, "network", json_object_new_string(
	    r->network == NET_HOST ? "host" : "none"));
	json_object_object_add(o, "user", json_object_new_string(r->user));
	a = json_object_new_array();
	for (i = 0; i < r->nro_paths; i++)
		json_object_array_add(a, json_object_new_string(r->ro_paths[i]));
	json_object_object_add(o, "ro_paths", a);
	json_object_object_add(o, "memory", json_object_new_string(r->memory));
	json_object_object_add(o, "cpus", json_object_new_string(r->cpus));
	json_object_object_add(o, "pids_limit",
	    json_object_new_int64(r->pids_limit));
	json_object_object_add(o, "limits", json_object_new_string(
	    r->limits_best_effort ? "best-effort" : "strict"));
	return o;
}

json_object *
config_sandbox_json(const struct config *cf)
{
	json_object	*o = json_object_new_object(), *a;
	size_t		 i;

#define ADD_INT(k) json_object_object_add(o, #k, json_object_new_int64(cf->k))
	json_object_object_add(o, "mode",
	    json_object_new_string(config_mode_name(cf->mode)));
	ADD_INT(timeout_seconds);
	ADD_INT(max_attempts);
	ADD_INT(max_concurrency);
	ADD_INT(max_waiters);
	ADD_INT(max_output_bytes);
	ADD_INT(max_message_bytes);
	ADD_INT(backoff_seconds);
	ADD_INT(backoff_max_seconds);
	ADD_INT(kill_grace_seconds);
#undef ADD_INT
	a = json_object_new_array();
	for (i = 0; i < cf->nallow; i++)
		json_object_array_add(a,
		    json_object_new_string(cf->env_allowlist[i]));
	json_object_object_add(o, "env_allowlist", a);
	a = json_object_new_array();
	for (i = 0; i < cf->npass; i++)
		json_object_array_add(a,
		    json_object_new_string(cf->runtime_pass_env[i]));
	json_object_object_add(o, "runtime_pass_env", a);
	json_object_object_add(o, "path_mapping_mode", json_object_new_string(
	    cf->path_mapping == MAP_MAPPED ? "mapped" : "same-path"));
	json_object_object_add(o, "docker", runtime_json(&cf->docker, 0));
	json_object_object_add(o, "apple", runtime_json(&cf->apple, 1));
	json_object_object_add(o, "bwrap", bwrap_json(&cf->bwrap));
	json_object_object_add(o, "egress", egress_conf_json(&cf->egress));
	return o;
}
