/*
 * The worker protocol as a hostile or broken peer could send it. The first
 * input byte picks the size of the pieces the rest arrives in (over a real
 * socketpair, through ipc_fill), so frames are cut at every place; each
 * frame goes through ipc_next (ipc_hdr_unpack, ipc_payload_parse), and
 * every payload through job_from_json and result_from_json. What decodes
 * must encode and decode again to the same thing.
 */
#include <sys/socket.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "job.h"
#include "log.h"
#include "util.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const size_t chunks[] = { 65536, 1, 2, 3, 7, 15, 16, 17, 31, 64,
    255, 4096 };

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_open("fuzz", NULL, 0);
	return 0;
}

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
strv_eq(char **a, size_t na, char **b, size_t nb)
{
	size_t i;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

static void
job_roundtrip(const struct job *j)
{
	json_object	*o;
	struct job	 k;
	char		 err[160];

	o = job_to_json(j);
	if (job_from_json(o, &k, err, sizeof(err)) == -1)
		abort();
	json_object_put(o);
	if (!str_eq(j->agent_id, k.agent_id) || j->provider != k.provider ||
	    !str_eq(j->model, k.model) || !str_eq(j->message, k.message) ||
	    j->reset != k.reset ||
	    !strv_eq(j->command, j->ncommand, k.command, k.ncommand) ||
	    !str_eq(j->workdir, k.workdir) || !str_eq(j->home, k.home) ||
	    j->mode != k.mode || j->timeout_seconds != k.timeout_seconds ||
	    j->kill_grace_seconds != k.kill_grace_seconds ||
	    j->max_output_bytes != k.max_output_bytes ||
	    !strv_eq(j->env_allowlist, j->nallow, k.env_allowlist, k.nallow) ||
	    j->path_mapping != k.path_mapping ||
	    !str_eq(j->rt.runtime_command, k.rt.runtime_command) ||
	    !str_eq(j->rt.image, k.rt.image) || j->rt.network != k.rt.network ||
	    !str_eq(j->rt.memory, k.rt.memory) ||
	    !str_eq(j->rt.cpus, k.rt.cpus) ||
	    j->rt.pids_limit != k.rt.pids_limit ||
	    !str_eq(j->rt.user, k.rt.user) ||
	    !strv_eq(j->rt.ro_paths, j->rt.nro_paths, k.rt.ro_paths,
	    k.rt.nro_paths) ||
	    j->rt.limits_best_effort != k.rt.limits_best_effort)
		abort();
	job_free(&k);
}

static void
result_roundtrip(const struct job_result *r)
{
	json_object		*o;
	struct job_result	 s;
	char			 err[160];

	o = result_to_json(r);
	if (result_from_json(o, &s, err, sizeof(err)) == -1)
		abort();
	json_object_put(o);
	if (r->outcome != s.outcome || !str_eq(r->reply, s.reply) ||
	    !str_eq(r->error, s.error) || r->exit_code != s.exit_code ||
	    r->signal != s.signal || r->timed_out != s.timed_out ||
	    r->truncated != s.truncated || r->duration_ms != s.duration_ms ||
	    !strv_eq(r->files, r->nfiles, s.files, s.nfiles))
		abort();
	result_free(&s);
}

/* The frame as ipc_queue sends it must come back through the decoder. */
static void
frame_roundtrip(const struct ipc_hdr *h, json_object *o)
{
	struct ipc_conn	 c;
	struct ipc_hdr	 h2;
	json_object	*back;
	char		 err[160];

	ipc_init(&c, -1);
	if (ipc_queue(&c, h->type, h->id, o) == -1)
		abort();
	if (ipc_hdr_unpack((unsigned char *)c.out.data, c.out.len, &h2, err,
	    sizeof(err)) == -1 || h2.type != h->type || h2.id != h->id ||
	    c.out.len != IPC_HDR_LEN + (size_t)h2.len)
		abort();
	if (ipc_payload_parse(c.out.data + IPC_HDR_LEN, h2.len, &back, err,
	    sizeof(err)) == -1)
		abort();
	json_object_put(back);
	ipc_free(&c);
}

static void
decode(const struct ipc_hdr *h, json_object *o)
{
	struct job		 j;
	struct job_result	 r;
	const char		*s;
	int64_t			 n;
	char			 err[160];

	if (h->version != IPC_VERSION || h->type == 0 ||
	    h->type >= MSG_TYPE_MAX || h->len > IPC_MAX_PAYLOAD ||
	    !json_object_is_type(o, json_type_object))
		abort();
	(void)ipc_get_int(o, "pid", 1, INT32_MAX, &n, err, sizeof(err));
	(void)ipc_get_str(o, "version", &s, err, sizeof(err));
	if (job_from_json(o, &j, err, sizeof(err)) == 0)
		job_roundtrip(&j);
	job_free(&j);
	if (result_from_json(o, &r, err, sizeof(err)) == 0)
		result_roundtrip(&r);
	result_free(&r);
	frame_roundtrip(h, o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_conn	 c;
	struct ipc_hdr	 h;
	json_object	*o;
	size_t		 chunk, off = 0, n;
	ssize_t		 w;
	int		 sp[2], r, f;

	if (size == 0)
		return 0;
	chunk = chunks[data[0] % (sizeof(chunks) / sizeof(chunks[0]))];
	data++;
	size--;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1)
		abort();
	fd_nonblock(sp[0]);
	ipc_init(&c, sp[0]);
	for (;;) {
		if (sp[1] != -1) {
			n = size - off < chunk ? size - off : chunk;
			if (n > 0 && (w = write(sp[1], data + off, n)) > 0)
				off += (size_t)w;
			if (off == size) {
				close(sp[1]);
				sp[1] = -1;
			}
		}
		if ((f = ipc_fill(&c)) == -1)
			break;
		while ((r = ipc_next(&c, &h, &o)) == 1) {
			decode(&h, o);
			json_object_put(o);
		}
		if (r == -1) {
			if (o != NULL || c.err[0] == '\0')
				abort();
			break;
		}
		if (f == 0) {
			/* EOF: fine on a frame boundary, a short read if not. */
			r = ipc_eof_check(&c);
			if ((r == 0) != (c.in.len == c.in.off))
				abort();
			break;
		}
	}
	if (sp[1] != -1)
		close(sp[1]);
	close(sp[0]);
	ipc_free(&c);
	return 0;
}
