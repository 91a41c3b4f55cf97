/*
 * `codex exec --json` output as a broken or hostile CLI could print it:
 * codex_parse() picks the agent_message texts out of the JSONL, and what it
 * returns is trimmed text or NULL; codex_failure() picks the message of a
 * turn.failed or error event, a string with no NUL before its end, or NULL. provider_reply() is what the worker
 * calls on a program's stdout, for codex and for the other providers.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "provider.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * A regression too big for the corpus: 2 MB of agent_message lines took
 * seconds when each message copied the whole reply (quadratic); linear, it
 * takes a few tens of milliseconds even with the sanitizers.
 */
static void
selfcheck(void)
{
	static const char line[] = "{\"type\":\"item.completed\",\"item\":"
	    "{\"type\":\"agent_message\",\"text\":\"%0200d\"}}\n";
	char	*buf, *r;
	size_t	 len = 0, cap = 2 * 1024 * 1024;
	clock_t	 t;

	buf = malloc(cap + sizeof(line) + 200);
	while (len < cap)
		len += (size_t)sprintf(buf + len, line, 0);
	t = clock();
	r = codex_parse(buf, len);
	t = clock() - t;
	if (r == NULL || t > CLOCKS_PER_SEC) {
		fprintf(stderr, "selfcheck: codex_parse of %zu bytes took "
		    "%.2f s of CPU\n", len, (double)t / CLOCKS_PER_SEC);
		abort();
	}
	free(r);
	free(buf);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_open("fuzz", NULL, 0);
	selfcheck();
	return 0;
}

static void
check_trimmed(const char *r)
{
	size_t n = strlen(r);

	if (n > 0 && (isspace((unsigned char)r[0]) ||
	    isspace((unsigned char)r[n - 1])))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct job	 j;
	char		*r;

	if ((r = codex_parse((const char *)data, size)) != NULL) {
		check_trimmed(r);
		free(r);
	}
	if ((r = codex_failure((const char *)data, size)) != NULL) {
		if (strlen(r) > size)
			abort();
		free(r);
	}
	memset(&j, 0, sizeof(j));
	j.provider = PROV_OPENAI;
	if ((r = provider_reply(&j, (const char *)data, size)) == NULL ||
	    *r == '\0')
		abort();	/* codex always gets a reply, canned if need be */
	check_trimmed(r);
	free(r);
	j.provider = PROV_ANTHROPIC;
	if ((r = provider_reply(&j, (const char *)data, size)) == NULL)
		abort();
	/* Output with a NUL byte is cut there, whatever precedes it. */
	if (memchr(data, '\0', size) == NULL)
		check_trimmed(r);
	free(r);
	return 0;
}
