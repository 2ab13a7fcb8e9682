/* master.h - the master process: supervision loop. */
#ifndef RM_MASTER_H
#define RM_MASTER_H

#include "core/config.h"

/* Run the master with cfg (already validated) until stopped. Returns the
 * process exit code: 0 after a graceful stop, 1 on a startup error. */
int rm_master_run(const struct rm_config *cfg);


#endif
