/*
 * Secret redaction for any text that leaves a worker or the daemon: error
 * messages, logs, events, dead letters, control replies. Redact a text
 * whole, then cut it: never the other way round.
 */
#ifndef CLAWVISOR_REDACT_H
#define CLAWVISOR_REDACT_H

#include <stddef.h>

#define REDACTED "[REDACTED]"

/* Pieces of a value this long at a cut edge are redacted (issue 12). */
#define REDACT_FRAGMENT		8

/* For redact_cut(): the text was cut from a longer one there. */
#define REDACT_CUT_START	0x1
#define REDACT_CUT_END		0x2

/* A new string: NAME=value for each NAME, and each NAME's value from the
 * environment wherever it appears, replaced by [REDACTED]. */
char	*redact(const char *text, char *const *names, size_t nnames);

/*
 * The same for text[0..len), NUL bytes and all (the new length in *outlen
 * if not NULL). With REDACT_CUT_START or REDACT_CUT_END, the longest piece
 * of REDACT_FRAGMENT or more bytes of a value at that edge is replaced too:
 * the rest of the secret was lost in the cut, so neither shape can match.
 */
char	*redact_cut(const char *text, size_t len, char *const *names,
	    size_t nnames, int cut, size_t *outlen);

#endif
