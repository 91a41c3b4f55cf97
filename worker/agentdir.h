/*
 * TinyClaw's agent directory set-up, done by the worker in the job's
 * working directory right before the run (docs/DECISIONS.md).
 */
#ifndef CLAWVISOR_AGENTDIR_H
#define CLAWVISOR_AGENTDIR_H

#include "job.h"

/* Best effort: what cannot be done is logged, the run goes on. */
void	agentdir_setup(const struct job *);

#endif
