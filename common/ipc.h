/*
 * The supervisor/worker protocol: frames of a fixed header (version, type,
 * payload length, job id) and a JSON object payload. Every length is checked
 * before use; a bad version, an unknown type, an oversize frame, a payload
 * that is not exactly one JSON object, or EOF inside a frame is a protocol
 * error and the peer is dropped.
 */
#ifndef CLAWVISOR_IPC_H
#define CLAWVISOR_IPC_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define IPC_VERSION		2	/* 2: message and reply in base64 */
#define IPC_HDR_LEN		16
/* A result with a reply of CONFIG_MAX_OUTPUT bytes in base64 (4/3 of it)
 * and the rest; job.c checks that at compile time. */
#define IPC_MAX_PAYLOAD		(88u * 1024 * 1024)

enum ipc_type {
	MSG_HELLO = 1,		/* worker -> supervisor: {pid, version} */
	MSG_JOB_RUN,		/* supervisor -> worker: the job */
	MSG_JOB_STARTED,	/* worker -> supervisor: {pid} of the child */
	MSG_JOB_DONE,		/* worker -> supervisor: the result */
	MSG_JOB_CANCEL,		/* supervisor -> worker: stop the job now */
	/* The egress process (SPEC §9); its hello is MSG_HELLO too. */
	MSG_EGRESS_KEYS,	/* supervisor -> egress: {provider: key} */
	MSG_EGRESS_REGISTER,	/* supervisor -> egress: {token, agent,
				 * provider}; id: the job */
	MSG_EGRESS_REVOKE,	/* supervisor -> egress: id: the job */
	MSG_EGRESS_STATS,	/* egress -> supervisor: its counters */
	MSG_EGRESS_REFUSED,	/* egress -> supervisor: {host, agent,
				 * provider, reason, why} */
	MSG_EGRESS_CONFIG,	/* supervisor -> egress: settings.json again */
	MSG_EGRESS_FORWARDED,	/* egress -> supervisor: {provider} */
	MSG_EGRESS_CHECK,	/* supervisor -> egress: {providers: [name]};
				 * id: the check's number */
	MSG_EGRESS_CHECKED,	/* egress -> supervisor: {providers: [{provider,
				 * url, result, detail}]} or {error} */
	MSG_TYPE_MAX
};

struct ipc_hdr {
	uint16_t	version;
	uint16_t	type;
	uint32_t	len;
	uint64_t	id;
};

struct ipc_buf {
	char	*data;
	size_t	 len;
	size_t	 off;		/* consumed prefix */
	size_t	 cap;
};

struct ipc_conn {
	int		fd;
	struct ipc_buf	in;
	struct ipc_buf	out;
	char		err[128];	/* why the last call failed */
};

void	 ipc_init(struct ipc_conn *, int fd);
void	 ipc_free(struct ipc_conn *);

/* Frame encoding and decoding, separate from I/O so they can be tested. */
void	 ipc_hdr_pack(const struct ipc_hdr *, unsigned char *);
int	 ipc_hdr_unpack(const unsigned char *, size_t, struct ipc_hdr *,
	    char *err, size_t errlen);
int	 ipc_payload_parse(const char *, size_t, json_object **,
	    char *err, size_t errlen);

/* Queue a frame; the payload object may be NULL for an empty object. */
int	 ipc_queue(struct ipc_conn *, enum ipc_type, uint64_t id,
	    json_object *);
/* 1: all written; 0: some left (EAGAIN); -1: error. */
int	 ipc_flush(struct ipc_conn *);
int	 ipc_flush_blocking(struct ipc_conn *);
/* 1: read something; 0: EOF; -1: error (EAGAIN is 1 with nothing read). */
int	 ipc_fill(struct ipc_conn *);
/* 1: a frame in *hdr / *obj (caller puts obj); 0: need more; -1: error. */
int	 ipc_next(struct ipc_conn *, struct ipc_hdr *, json_object **);
/* Descriptors (SCM_RIGHTS): an exec'd invocation's stdio. */
#define IPC_MAX_FDS	3
ssize_t	 ipc_send_fds(int sock, const void *, size_t, const int *fds,
	    size_t nfds);
ssize_t	 ipc_recv_fds(int sock, void *, size_t, int *fds, size_t max,
	    size_t *nfds, int *over);
int	 ipc_flush_fds(struct ipc_conn *, const int *fds, size_t nfds);
int	 ipc_fill_fds(struct ipc_conn *, int *fds, size_t max, size_t *nfds);
/* At EOF: 0 if the input ended on a frame boundary, -1 (short read) if not. */
int	 ipc_eof_check(struct ipc_conn *);

/* Checked getters: -1 with err set if the field is missing or mistyped. */
int	 ipc_get_str(json_object *, const char *, const char **,
	    char *err, size_t errlen);
int	 ipc_get_int(json_object *, const char *, int64_t min, int64_t max,
	    int64_t *, char *err, size_t errlen);

#endif
