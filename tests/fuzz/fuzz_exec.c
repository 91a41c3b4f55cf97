/*
 * The request line of `clawvisor exec` (supervisor/exec.c), as any process
 * of the daemon's uid could send it on the control socket: parsed as the
 * control socket parses a line, then checked by exec_req_parse(). The
 * same object also goes through job_from_json(), whose exec fields
 * ("exec", "exec_cwd", "exec_stdin") the worker reads from the supervisor.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "job.h"
#include "supervisor.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct exec_req	 r;
	struct job	 j;
	json_tokener	*tok;
	json_object	*o;
	char		 err[512];

	if (size > 65536)
		return 0;
	tok = json_tokener_new();
	o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return 0;
	}
	if (exec_req_parse(o, &r, err, sizeof(err)) == 0) {
		/* What the rest of exec.c relies on. */
		if (r.nargv == 0 || r.argv[0] == NULL || *r.argv[0] == '\0' ||
		    r.argv[r.nargv] != NULL || r.cwd == NULL ||
		    r.cwd[0] != '/')
			__builtin_trap();
		exec_req_free(&r);
	} else if (strlen(err) == 0)
		__builtin_trap();	/* a refusal always says why */
	(void)job_from_json(o, &j, err, sizeof(err));
	job_free(&j);
	json_object_put(o);
	return 0;
}
