/*
 * Small helpers every part of clawvisor uses: checked allocation, clocks,
 * descriptors, and the one way files are written into queue/ and events/.
 */
#ifndef CLAWVISOR_UTIL_H
#define CLAWVISOR_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct json_object;

#define MAX_MESSAGE_FILE	(16 * 1024 * 1024)	/* SPEC §2 */
/* What clawvisor writes from a message (a rewrite for a retry, a response,
 * a dead letter) holds its text, escaped and pretty-printed: larger. */
#define MAX_OWN_FILE		(8 * MAX_MESSAGE_FILE)

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

int64_t	 now_ms(void);		/* wall clock, for files and events */
int64_t	 mono_ms(void);		/* monotonic, for durations */

int	 fd_nonblock(int);
int	 fd_cloexec(int);
int	 mkdir_p(const char *, mode_t);
/* Whether uid:gid may write a directory with this owner and mode, by the
 * bits alone (a container's user has no capability to override them). */
struct stat;
int	 dir_writable_by(const struct stat *, uid_t, gid_t);

/* Write buf to dir/name through a temporary file, fsync and rename. */
int	 file_write_temp(int dirfd, char *tmp, size_t tmplen, const void *,
	    size_t, int dosync);
int	 file_write_atomic(int dirfd, const char *name, const void *, size_t,
	    int noreplace);
/*
 * Read a regular file, never following a symlink or blocking on a FIFO.
 * 0: read; -1: refused (err says why); -2: no such file; -3: still growing.
 */
int	 file_read_regular(int dirfd, const char *name, size_t max,
	    char **out, size_t *outlen, char *err, size_t errlen);

int	 run_output(char *const argv[], char *out, size_t len,
	    int timeout_s);
int	 run_output_env(char *const argv[], char *const envp[], char *out,
	    size_t len, int timeout_s);
/*
 * A copy of the part of our environment a container runtime's CLI needs
 * (docs/SANDBOX.md), plus the names or PREFIX* in pass, never a name in
 * allow (the agents' keys): for argv_free().
 */
char	**runtime_env(char *const *allow, size_t nallow, char *const *pass,
	    size_t npass);

/* Replace every character outside [A-Za-z0-9._-] by '_' (file names). */
void	 name_sanitize(char *);
/*
 * s itself if it is at most max bytes, else its first max - 17 bytes, a
 * '-' and 16 hex digits of a hash of all of it: a name part that cannot
 * push a file name past NAME_MAX, and stays apart from its neighbours.
 */
char	*name_shorten(const char *s, size_t max);

/*
 * json-c spends some 50 bytes on a number and 750 on an empty object: a
 * few MiB of "{}," would take gigabytes. Text is measured with this first.
 */
size_t	 json_values(const char *, size_t);
int	 json_single_quoted(const char *, size_t, size_t *);
void	 text_position(const char *, size_t, size_t, size_t *, size_t *);
int	 path_lookup(const char *, char *, size_t, char *, size_t);
/* Parse JSON clawvisor wrote, as deep as a message it holds may make it. */
struct json_object *json_parse_deep(const char *);

/* Length of the UTF-8 sequence at p (1..4), or 0 if it is not valid. */
size_t	 utf8_seq(const unsigned char *p, size_t left, unsigned *cp);
/* A copy in which each invalid byte (and NUL) is U+FFFD. */
char	*utf8_clean(const char *, size_t);
/* Bytes of the longest prefix of at most max bytes that ends on a whole
 * UTF-8 sequence (an invalid byte counts as one). */
size_t	 utf8_prefix(const char *, size_t len, size_t max);

/*
 * Base64 (RFC 4648, padded): a form of any bytes whose size is known in
 * advance, B64_LEN(n), where a JSON string of them may take six bytes for
 * one. The decoder is strict and NUL-terminates what it returns; NULL if
 * the text is not base64.
 */
#define B64_LEN(n)	(((n) + 2) / 3 * 4)
char	*b64_encode(const void *, size_t);
char	*b64_decode(const char *, size_t, size_t *);

/* 1 if valid UTF-8 without a NUL; s itself, or a cleaned copy in *buf. */
int	 utf8_valid(const char *, size_t);
const char *utf8_ensure(const char *s, char **buf);
/*
 * One line of printable UTF-8: invalid bytes and control characters as
 * \xNN and, with bs, a backslash as \\ (then str_unescape() reverses it).
 */
char	*str_escape(const char *, size_t, int bs);
int	 str_unescape(const char *, char **);

#endif
