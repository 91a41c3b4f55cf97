/*
 * Secret redaction for any text that leaves a worker or the daemon: error
 * messages, logs, events, dead letters, control replies.
 */
#ifndef CLAWVISOR_REDACT_H
#define CLAWVISOR_REDACT_H

#include <stddef.h>

#define REDACTED "[REDACTED]"

/* A new string: NAME=value for each NAME, and each NAME's value from the
 * environment wherever it appears, replaced by [REDACTED]. */
char	*redact(const char *text, char *const *names, size_t nnames);

#endif
