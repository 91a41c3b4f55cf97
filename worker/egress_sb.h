/*
 * A sandbox's side of the egress proxy (SPEC §9): argv and environment.
 */
#ifndef CLAWVISOR_EGRESS_SB_H
#define CLAWVISOR_EGRESS_SB_H

#include "job.h"

/* cli behind the bridge (cli's strings are taken, its array freed). */
char	**egress_sb_argv(const struct job *, char **cli);
/* envp plus the token and the bridge's addresses (envp is reallocated). */
char	**egress_sb_env(const struct job *, char **envp);

#endif
