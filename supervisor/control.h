/*
 * The control socket, run/clawvisor.sock: one JSON object per line each
 * way, served only to the daemon's own uid and root.
 */
#ifndef CLAWVISOR_CONTROL_H
#define CLAWVISOR_CONTROL_H

#include <json-c/json.h>

#define CONTROL_MAX_LINE	65536
#define CONTROL_MAX_CLIENTS	256

int	control_init(void);
void	control_close(void);
/* The dispatcher, apart from the socket so it can be fuzzed and tested. */
json_object *control_handle_line(const char *line, size_t len, int *stop);

#endif
