/*
 * exitcodes.h - how ringmaster's processes end: the master's contract with
 * its children (docs/architecture.md) and the daemon's with its caller
 * (docs/contract.md).
 */
#ifndef RM_EXITCODES_H
#define RM_EXITCODES_H

#define RM_EXIT_OK 0            /* drained or stopped */
#define RM_EXIT_FAILURE 1       /* setup failed (logged with the failing call) */
#define RM_EXIT_USAGE 2         /* bad command line */
#define RM_EXIT_INIT_FAILED 78  /* handler init failed: permanent, do not respawn (EX_CONFIG) */

#endif
