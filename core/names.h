/*
 * names.h - one name per value of each shared vocabulary, used by logs,
 * /metrics, ringmasterctl and the tests. The enums themselves live in
 * shm/layout.h because they are stored in shared memory; the names live
 * here, once. Each function returns "?" for a value outside its enum (the
 * value may come from shared memory a process scribbled on).
 */
#ifndef RM_NAMES_H
#define RM_NAMES_H

#include "shm/layout.h"

const char *rm_proc_state_name(unsigned state);      /* enum rm_proc_state: "ready" */
const char *rm_role_name(unsigned role);             /* enum rm_role: "gateway" */
const char *rm_restart_reason_name(unsigned reason); /* enum rm_restart_reason: "heartbeat" */
const char *rm_outcome_name(unsigned outcome);       /* enum rm_outcome: "client_gone" */
const char *rm_slot_state_name(unsigned state);      /* enum rm_slot_state: "running" */
const char *rm_code_name(unsigned code);
const char *rm_stream_result_name(unsigned r);        /* enum rm_stream_result: "cancelled" */             /* enum rm_code: "503", "4xx" (any other 4xx) */

#endif
