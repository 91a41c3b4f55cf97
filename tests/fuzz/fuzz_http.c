/*
 * An HTTP request as any local process could send it to the metrics
 * listener: metrics_req_feed() (supervisor/metrics_http.c) takes it in the
 * pieces the network cut it into. Byte 0 picks the size of the pieces (1
 * to 256 bytes), the rest is the request. The answer is one of the
 * statuses the listener knows, final once given; 200 only for a GET or
 * HEAD of /metrics; 431 only past the size bound; never a read past it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_open("fuzz", NULL, 0);
	return 0;
}

static int
known(int status)
{
	return status == 0 || status == 200 || status == 400 ||
	    status == 404 || status == 405 || status == 431;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct metrics_req	*r;
	const char		*p;
	size_t			 piece, off, n;
	int			 status = 0, again;

	if (size < 1)
		return 0;
	piece = (size_t)data[0] + 1;
	p = (const char *)data + 1;
	size--;
	r = metrics_req_new();
	for (off = 0; off < size && status == 0; off += n) {
		n = size - off < piece ? size - off : piece;
		/* A copy of just this piece: ASan sees a read past it. */
		char *buf = malloc(n);
		memcpy(buf, p + off, n);
		status = metrics_req_feed(r, buf, n);
		free(buf);
		if (!known(status))
			abort();
	}
	if (status != 0) {
		/* Final: more bytes do not change it. */
		again = metrics_req_feed(r, "GET /metrics HTTP/1.1\r\n\r\n", 25);
		if (again != status)
			abort();
	}
	if (status == 200 && memmem(p, size, "/metrics", 8) == NULL)
		abort();
	if (status == 431 && size < METRICS_HTTP_MAX_REQUEST)
		abort();
	metrics_req_free(r);
	return 0;
}
