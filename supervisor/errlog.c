/*
 * Repeated identical failures (a heartbeat failing every minute, say) are
 * logged once per minute with a count of the repeats. The memory that keeps
 * the counts is bounded: entries expire, and there are at most ERRLOG_MAX of
 * them; when full, the oldest is forgotten.
 */
#include <stdint.h>
#include <string.h>

#include "supervisor.h"
#include "util.h"

#define ERRLOG_MAX	256
#define ERRLOG_EVERY	60000		/* ms between two lines for one key */
#define ERRLOG_EXPIRE	(10 * 60000)	/* forget a key quiet this long */

struct errlog_entry {
	uint64_t	hash;
	int64_t		logged;		/* when its last line was written */
	int64_t		seen;		/* when it last happened */
	unsigned	repeats;	/* since that line */
};

static struct errlog_entry	table[ERRLOG_MAX];
static size_t			nused;

static uint64_t
fnv1a(const char *a, const char *b)
{
	uint64_t	h = 1469598103934665603ULL;
	const char	*p;

	for (p = a; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (p = b; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

/*
 * Whether a failure of key (agent, text) should be logged now; if so,
 * *repeats is how many identical ones were held back since the last line.
 */
int
errlog_should(const char *agent, const char *text, unsigned *repeats)
{
	struct errlog_entry	*e = NULL, *oldest = NULL;
	uint64_t		 h = fnv1a(agent, text);
	int64_t			 now = mono_ms();
	size_t			 i;

	*repeats = 0;
	for (i = 0; i < nused; i++) {
		if (now - table[i].seen > ERRLOG_EXPIRE) {
			table[i] = table[--nused];	/* expired */
			i--;
			continue;
		}
		if (table[i].hash == h)
			e = &table[i];
		if (oldest == NULL || table[i].seen < oldest->seen)
			oldest = &table[i];
	}
	if (e == NULL) {
		e = nused < ERRLOG_MAX ? &table[nused++] : oldest;
		e->hash = h;
		e->logged = now;
		e->seen = now;
		e->repeats = 0;
		return 1;
	}
	e->seen = now;
	if (now - e->logged < ERRLOG_EVERY) {
		e->repeats++;
		return 0;
	}
	*repeats = e->repeats;
	e->repeats = 0;
	e->logged = now;
	return 1;
}

size_t
errlog_entries(void)
{
	return nused;
}
