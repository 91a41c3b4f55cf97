/*
 * Helpers shared by every process. file_write_atomic() is the only way
 * clawvisor puts a file into queue/ or events/: a reader sees all of it or
 * nothing, and a crash leaves at worst a dot-named temporary behind.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "log.h"
#include "util.h"

void *
xmalloc(size_t n)
{
	void *p;

	if ((p = malloc(n == 0 ? 1 : n)) == NULL)
		fatal("malloc %zu", n);
	return p;
}

void *
xcalloc(size_t n, size_t sz)
{
	void *p;

	if ((p = calloc(n == 0 ? 1 : n, sz == 0 ? 1 : sz)) == NULL)
		fatal("calloc %zu*%zu", n, sz);
	return p;
}

void *
xreallocarray(void *p, size_t n, size_t sz)
{
	void *np;

	if ((np = reallocarray(p, n == 0 ? 1 : n, sz == 0 ? 1 : sz)) == NULL)
		fatal("reallocarray %zu*%zu", n, sz);
	return np;
}

char *
xstrdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		fatal("strdup");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p;

	if ((p = strndup(s, n)) == NULL)
		fatal("strndup");
	return p;
}

int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n == -1)
		fatal("vasprintf");
	return n;
}

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
fd_nonblock(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int
fd_cloexec(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFD)) == -1)
		return -1;
	return fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

int
mkdir_p(const char *path, mode_t mode)
{
	char	buf[PATH_MAX], *p;

	if (strlen(path) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Mostly it is there already (a worker, every job): one call. */
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	strcpy(buf, path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

int
dir_writable_by(const struct stat *st, uid_t uid, gid_t gid)
{
	if (st->st_uid == uid)
		return (st->st_mode & S_IWUSR) != 0;
	if (st->st_gid == gid)
		return (st->st_mode & S_IWGRP) != 0;
	return (st->st_mode & S_IWOTH) != 0;
}

/*
 * Write buf to a new dot-named temporary in dirfd, its name left in tmp:
 * TinyClaw's readers skip dot names, and so does our own scan. With dosync
 * it is fsync'ed before it is closed. On failure nothing is left.
 */
int
file_write_temp(int dirfd, char *tmp, size_t tmplen, const void *buf,
    size_t len, int dosync)
{
	const char	*p = buf;
	ssize_t		 n;
	int		 fd, i, saved;
	static unsigned	 seq;

	for (i = 0; ; i++) {
		snprintf(tmp, tmplen, ".tmp.%d.%u.%lld", (int)getpid(), seq++,
		    (long long)mono_ms());
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
		if (fd != -1)
			break;
		if (errno != EEXIST || i > 100)
			return -1;
	}
	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += n;
		len -= n;
	}
	if (dosync && fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	errno = saved;
	return -1;
}

int
file_write_atomic(int dirfd, const char *name, const void *buf, size_t len,
    int noreplace)
{
	char	tmp[64];
	int	r, saved;

	if (file_write_temp(dirfd, tmp, sizeof(tmp), buf, len, 1) == -1)
		return -1;
	if (noreplace)
		r = renameat2(dirfd, tmp, dirfd, name, RENAME_NOREPLACE);
	else
		r = renameat(dirfd, tmp, dirfd, name);
	if (r == -1) {
		saved = errno;
		unlinkat(dirfd, tmp, 0);
		errno = saved;
	}
	return r;
}

int
file_read_regular(int dirfd, const char *name, size_t max, char **out,
    size_t *outlen, char *err, size_t errlen)
{
	struct stat	 st;
	char		*buf = NULL;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		if (errno == ENOENT)
			return -2;
		snprintf(err, errlen, "cannot open: %s", errno == ELOOP ?
		    "is a symbolic link" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "cannot stat: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		goto fail;
	}
	if ((size_t)st.st_size > max) {
		snprintf(err, errlen, "file is %lld bytes, over the limit of "
		    "%zu", (long long)st.st_size, max);
		goto fail;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	for (;;) {
		/* The file may have grown since fstat: read one byte past. */
		n = read(fd, buf + off, (size_t)st.st_size + 1 - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "cannot read: %s",
			    strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		off += n;
		if (off > (size_t)st.st_size) {
			snprintf(err, errlen, "file grew while being read");
			close(fd);
			free(buf);
			return -3;
		}
	}
	close(fd);
	buf[off] = '\0';
	*out = buf;
	*outlen = off;
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}

void
name_sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
		    *s == '-'))
			*s = '_';
}

char *
name_shorten(const char *s, size_t max)
{
	uint64_t	 h = 0xcbf29ce484222325ULL;	/* FNV-1a */
	const char	*p;
	char		*out;
	size_t		 keep;

	if (strlen(s) <= max)
		return xstrdup(s);
	for (p = s; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	keep = max > 17 ? max - 17 : 0;
	xasprintf(&out, "%.*s-%016llx", (int)keep, s, (unsigned long long)h);
	return out;
}

/*
 * An upper bound on the values in JSON text, counted before json-c builds
 * them: one, plus every '{', '[' and ',' outside strings (json-c also
 * takes single-quoted strings, so both quotes open one).
 */
size_t
json_values(const char *s, size_t len)
{
	size_t	i, n = 1;
	char	quote = '\0';

	for (i = 0; i < len; i++) {
		if (quote != '\0') {
			if (s[i] == '\\')
				i++;
			else if (s[i] == quote)
				quote = '\0';
		} else if (s[i] == '"' || s[i] == '\'')
			quote = s[i];
		else if (s[i] == '{' || s[i] == '[' || s[i] == ',')
			n++;
	}
	return n;
}

/*
 * 1 if s has a single-quoted string: json-c's strict mode takes them,
 * JavaScript's JSON.parse (TinyClaw's reader) does not.
 */
int
json_single_quoted(const char *s, size_t len, size_t *at)
{
	size_t	i;
	int	in = 0;

	for (i = 0; i < len; i++) {
		if (in) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in = 0;
		} else if (s[i] == '"')
			in = 1;
		else if (s[i] == '\'') {
			*at = i;
			return 1;
		}
	}
	return 0;
}

/*
 * Where byte off of buf is, as an editor shows it: line and column, both
 * from 1, the column in characters (UTF-8 continuation bytes not counted).
 */
void
text_position(const char *buf, size_t len, size_t off, size_t *line,
    size_t *col)
{
	size_t	i;

	*line = *col = 1;
	for (i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)buf[i] & 0xc0) != 0x80)
			(*col)++;
	}
}

/*
 * JSON that clawvisor wrote itself (a dead letter, a control reply, the
 * settings it rewrites), parsed as deep as it may be: a message may be 64
 * levels deep, a dead letter one more, a reply with it two more, and
 * json_tokener_parse() stops at 32.
 */
struct json_object *
json_parse_deep(const char *s)
{
	struct json_tokener	*tok;
	json_object		*o;

	if ((tok = json_tokener_new_ex(128)) == NULL)
		fatalx("json_tokener_new");
	o = json_tokener_parse_ex(tok, s, -1);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* Length of the UTF-8 sequence at p (1..4), or 0 if it is not valid. */
size_t
utf8_seq(const unsigned char *p, size_t left, unsigned *cp)
{
	size_t	n, i;
	unsigned c = p[0], min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) { n = 2; c &= 0x1f; min = 0x80; }
	else if ((c & 0xf0) == 0xe0) { n = 3; c &= 0x0f; min = 0x800; }
	else if ((c & 0xf8) == 0xf0) { n = 4; c &= 0x07; min = 0x10000; }
	else
		return 0;
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* Invalid bytes become U+FFFD, as a JavaScript reader would show them. */
char *
utf8_clean(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	char			*out, *o;
	size_t			 i = 0, n;
	unsigned		 cp;

	o = out = xmalloc(len * 3 + 1);
	while (i < len) {
		n = p[i] == 0 ? 0 : utf8_seq(p + i, len - i, &cp);
		if (n == 0) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(o, p + i, n);
		o += n;
		i += n;
	}
	*o = '\0';
	return out;
}

/* 1 if the len bytes at s are valid UTF-8 without a NUL. */
int
utf8_valid(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n;
	unsigned		 cp;

	while (i < len) {
		if (p[i] == 0 || (n = utf8_seq(p + i, len - i, &cp)) == 0)
			return 0;
		i += n;
	}
	return 1;
}

/*
 * Text for the outside world as valid UTF-8: s itself, or a copy in *buf
 * with each invalid byte made U+FFFD. json-c copies a string's bytes as
 * they are, so JSON built from a file name or a file's bytes is checked
 * here before it is sent or written: every JSON clawvisor writes is UTF-8.
 */
const char *
utf8_ensure(const char *s, char **buf)
{
	size_t len = strlen(s);

	*buf = NULL;
	if (utf8_valid(s, len))
		return s;
	*buf = utf8_clean(s, len);
	return *buf;
}

/*
 * s as one line of printable UTF-8: each byte of an invalid sequence, of a
 * control character (C0, DEL, C1) and, with bs, each backslash (as \\)
 * is written \xNN. A name with a newline cannot forge a line, one with
 * invalid bytes stays valid UTF-8 and, with bs, str_unescape() gives the
 * bytes back.
 */
char *
str_escape(const char *s, size_t len, int bs)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = (const unsigned char *)s;
	char			*out, *o;
	size_t			 i = 0, n, k;
	unsigned		 cp;

	o = out = xmalloc(len * 4 + 1);
	while (i < len) {
		n = utf8_seq(p + i, len - i, &cp);
		if (n == 0)
			n = 1, cp = 0xfffd, k = 1;	/* one byte, escaped */
		else
			k = cp < 0x20 || cp == 0x7f || (cp >= 0x80 &&
			    cp <= 0x9f) ? n : 0;
		if (bs && cp == '\\') {
			*o++ = '\\';
			*o++ = '\\';
		} else if (k > 0) {
			for (k = 0; k < n; k++) {
				*o++ = '\\';
				*o++ = 'x';
				*o++ = hex[p[i + k] >> 4];
				*o++ = hex[p[i + k] & 15];
			}
		} else {
			memcpy(o, p + i, n);
			o += n;
		}
		i += n;
	}
	*o = '\0';
	return out;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The bytes str_escape(s, len, 1) came from: -1 on another escape or \x00. */
int
str_unescape(const char *s, char **out)
{
	char	*o;
	int	 h, l;

	o = *out = xmalloc(strlen(s) + 1);
	while (*s != '\0') {
		if (*s != '\\') {
			*o++ = *s++;
			continue;
		}
		if (s[1] == '\\') {
			*o++ = '\\';
			s += 2;
		} else if (s[1] == 'x' && (h = hexval(s[2])) != -1 &&
		    (l = hexval(s[3])) != -1 && (h | l) != 0) {
			*o++ = (char)(h << 4 | l);
			s += 4;
		} else {
			free(*out);
			*out = NULL;
			return -1;
		}
	}
	*o = '\0';
	return 0;
}

/*
 * What a container runtime's CLI reads from its environment (docker,
 * podman, Apple's container, their plugins and credential helpers); a
 * trailing '*' makes a prefix. The table in docs/SANDBOX.md follows it.
 */
static const char *const runtime_vars[] = {
	"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_*", "TZ",
	"TMPDIR", "XDG_*", "DBUS_SESSION_BUS_ADDRESS", "SSH_AUTH_SOCK",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy",
	"https_proxy", "no_proxy", "all_proxy", "SSL_CERT_FILE",
	"SSL_CERT_DIR", "DOCKER_*", "BUILDKIT_*", "BUILDX_*", "CONTAINER*",
	"PODMAN_*", "BUILDAH_*", "REGISTRY_AUTH_FILE", "STORAGE_DRIVER",
	"STORAGE_OPTS",
	NULL
};

/* Does "NAME=value" match pattern NAME or PREFIX*? */
static int
env_matches(const char *entry, const char *pat)
{
	size_t n = strlen(pat);

	if (n > 0 && pat[n - 1] == '*')
		return strncmp(entry, pat, n - 1) == 0;
	return strncmp(entry, pat, n) == 0 && entry[n] == '=';
}

char **
runtime_env(char *const *allow, size_t nallow, char *const *pass,
    size_t npass)
{
	extern char	**environ;
	char		**v, **e;
	const char	*const *r;
	size_t		  n = 0, i;
	int		  keep;

	for (e = environ; *e != NULL; e++)
		n++;
	v = xcalloc(n + 1, sizeof(char *));
	n = 0;
	for (e = environ; *e != NULL; e++) {
		keep = 0;
		for (r = runtime_vars; *r != NULL && !keep; r++)
			keep = env_matches(*e, *r);
		for (i = 0; i < npass && !keep; i++)
			keep = env_matches(*e, pass[i]);
		/* A key is for the agent, never for the engine's CLI. */
		for (i = 0; i < nallow && keep; i++)
			keep = !env_matches(*e, allow[i]);
		if (keep)
			v[n++] = xstrdup(*e);
	}
	return v;
}

int
run_output(char *const argv[], char *out, size_t len, int timeout_s)
{
	return run_output_env(argv, NULL, out, len, timeout_s);
}

/*
 * Run a short helper program (a container runtime's ps, rm, kill, info) to
 * completion, in its own session, stdin from /dev/null, with envp (NULL:
 * ours). Up to len-1 bytes of its stdout and stderr go to out (which may
 * be NULL). After timeout_s seconds it is killed. Returns its exit status,
 * or -1.
 */
int
run_output_env(char *const argv[], char *const envp[], char *out,
    size_t len, int timeout_s)
{
	struct pollfd	pfd;
	char		scratch[4096];
	size_t		off = 0;
	ssize_t		n;
	sigset_t	set;
	pid_t		pid;
	int		p[2], st, null, sig, r;
	int64_t		end = mono_ms() + timeout_s * 1000LL, left;

	if (out != NULL && len > 0)
		*out = '\0';
	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		setsid();
		/* Not our handlers, ignored signals or mask: its own. */
		for (sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		sigemptyset(&set);
		sigprocmask(SIG_SETMASK, &set, NULL);
		if ((null = open("/dev/null", O_RDONLY)) != -1)
			dup2(null, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		if (envp != NULL)
			execvpe(argv[0], argv, envp);
		else
			execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	for (;;) {
		if ((left = end - mono_ms()) <= 0)
			r = 0;
		/* A handled signal (SIGCHLD, SIGUSR1) is not the timeout. */
		else if ((r = poll(&pfd, 1, (int)left)) == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			kill(-pid, SIGKILL);
			break;
		}
		if (out != NULL && off + 1 < len)
			n = read(p[0], out + off, len - 1 - off);
		else
			n = read(p[0], scratch, sizeof(scratch));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out != NULL && off + 1 < len)
			off += n;
	}
	if (out != NULL && len > 0)
		out[off] = '\0';
	close(p[0]);
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

size_t
utf8_prefix(const char *s, size_t len, size_t max)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n;
	unsigned		 cp;

	if (len <= max)
		return len;
	while (i < max) {
		if ((n = utf8_seq(p + i, len - i, &cp)) == 0)
			n = 1;
		if (i + n > max)
			break;
		i += n;
	}
	return i;
}

static const char b64_digits[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
b64_encode(const void *src, size_t len)
{
	const unsigned char	*p = src;
	char			*out, *o;
	uint32_t		 v;
	size_t			 i;

	o = out = xmalloc(B64_LEN(len) + 1);
	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64_digits[v >> 18];
		*o++ = b64_digits[(v >> 12) & 63];
		*o++ = b64_digits[(v >> 6) & 63];
		*o++ = b64_digits[v & 63];
	}
	if (i < len) {
		v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		*o++ = b64_digits[v >> 18];
		*o++ = b64_digits[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64_digits[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

char *
b64_decode(const char *s, size_t len, size_t *outlen)
{
	char		*out;
	uint32_t	 v;
	size_t		 i, j, n = 0, pad = 0;
	int		 d;

	if (len % 4 != 0)
		return NULL;
	if (len > 0 && s[len - 1] == '=')
		pad = len > 1 && s[len - 2] == '=' ? 2 : 1;
	out = xmalloc(len / 4 * 3 + 1);
	for (i = 0; i < len; i += 4) {
		v = 0;
		for (j = 0; j < 4; j++) {
			if (i + j >= len - pad) {
				v <<= 6;
				continue;
			}
			if ((d = b64_value((unsigned char)s[i + j])) == -1)
				goto fail;
			v = v << 6 | (uint32_t)d;
		}
		out[n++] = (char)(v >> 16);
		if (i + 4 < len || pad < 2)
			out[n++] = (char)(v >> 8);
		if (i + 4 < len || pad < 1)
			out[n++] = (char)v;
		/* Bits below the last byte must be 0: one text per bytes. */
		if (i + 4 == len && ((pad == 1 && (v & 0xff) != 0) ||
		    (pad == 2 && (v & 0xffff) != 0)))
			goto fail;
	}
	out[n] = '\0';
	*outlen = n;
	return out;
fail:
	free(out);
	return NULL;
}

/*
 * Find name as execvp(3) does, on PATH (or its default): 1, its path in
 * buf. 0: not there, and why says what a person needs (the doctor and a
 * dead letter say it alike): not found, or found but not executable, or
 * behind a PATH directory the process cannot search, which execvp
 * reports as EACCES although nothing was found.
 */
int
path_lookup(const char *name, char *buf, size_t len, char *why, size_t wlen)
{
	const char	*path, *p, *e;
	char		 note[PATH_MAX + 64] = "";
	struct stat	 st;

	*why = '\0';
	if (strchr(name, '/') != NULL) {
		strlcpy(buf, name, len);
		if (access(name, X_OK) == 0)
			return 1;
		snprintf(why, wlen, "cannot execute %s: %s", name,
		    strerror(errno));
		return 0;
	}
	if ((path = getenv("PATH")) == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; ; p = e + 1) {
		if ((e = strchr(p, ':')) == NULL)
			e = p + strlen(p);
		/* An empty element is the current directory. */
		snprintf(buf, len, "%.*s/%s", e == p ? 1 : (int)(e - p),
		    e == p ? "." : p, name);
		if (access(buf, X_OK) == 0)
			return 1;
		if (*note == '\0' && errno == EACCES) {
			if (stat(buf, &st) == 0)
				snprintf(note, sizeof(note), "; %s is there but "
				    "not executable", buf);
			else
				snprintf(note, sizeof(note), "; the PATH "
				    "directory %.*s cannot be searched: %s",
				    e == p ? 1 : (int)(e - p), e == p ? "." :
				    p, strerror(EACCES));
		}
		if (*e == '\0')
			break;
	}
	snprintf(why, wlen, "%s not found in PATH (%.200s%s)%s", name, path,
	    strlen(path) > 200 ? "..." : "", note);
	return 0;
}
