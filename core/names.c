/* names.c - the name tables of names.h. */
#include "core/names.h"

#define NAME_OF(table, v) ((v) < sizeof table / sizeof table[0] && table[v] ? table[v] : "?")

static const char *const proc_states[RM_PROC_NSTATES] = {
    [RM_PROC_EMPTY] = "empty",       [RM_PROC_STARTING] = "starting", [RM_PROC_READY] = "ready",
    [RM_PROC_BUSY] = "busy",         [RM_PROC_DRAINING] = "draining", [RM_PROC_DEAD] = "dead",
};

static const char *const roles[] = {
    [RM_ROLE_NONE] = "none",     [RM_ROLE_GATEWAY] = "gateway",     [RM_ROLE_WORKER] = "worker",
    [RM_ROLE_TEST] = "test",     [RM_ROLE_PRELOADER] = "preloader",
};

static const char *const restart_reasons[RM_RESTART_N] = {
    [RM_RESTART_CRASHED] = "crashed",   [RM_RESTART_HEARTBEAT] = "heartbeat",
    [RM_RESTART_TIMEOUT] = "timeout",   [RM_RESTART_RECYCLED] = "recycled",
    [RM_RESTART_RELOAD] = "reload",     [RM_RESTART_INIT_FAILED] = "init_failed",
    [RM_RESTART_MEMORY] = "memory",
};

static const char *const outcomes[RM_OUT_N] = {
    [RM_OUT_OK] = "ok",
    [RM_OUT_HANDLER_ERROR] = "handler_error",
    [RM_OUT_CRASHED] = "crashed",
    [RM_OUT_TIMEOUT] = "timeout",
    [RM_OUT_REJECTED] = "rejected",
    [RM_OUT_TOO_LARGE] = "too_large",
    [RM_OUT_CLIENT_GONE] = "client_gone",
};

static const char *const slot_states[RM_SLOT_NSTATES] = {
    [RM_SLOT_FREE] = "free",       [RM_SLOT_FILLING] = "filling", [RM_SLOT_QUEUED] = "queued",
    [RM_SLOT_RUNNING] = "running", [RM_SLOT_DONE] = "done",       [RM_SLOT_ABORTED] = "aborted",
};

/* The `code` label of /metrics and ringmasterctl's keys: a status, or its
 * class for the statuses without an entry of their own. */
static const char *const codes[RM_CODE_N] = {
    [RM_CODE_200] = "200", [RM_CODE_2XX] = "2xx", [RM_CODE_3XX] = "3xx", [RM_CODE_400] = "400",
    [RM_CODE_404] = "404", [RM_CODE_405] = "405", [RM_CODE_408] = "408", [RM_CODE_413] = "413",
    [RM_CODE_414] = "414", [RM_CODE_431] = "431", [RM_CODE_4XX] = "4xx", [RM_CODE_500] = "500",
    [RM_CODE_502] = "502", [RM_CODE_503] = "503", [RM_CODE_504] = "504", [RM_CODE_5XX] = "5xx",
};

const char *rm_proc_state_name(unsigned v) { return NAME_OF(proc_states, v); }
const char *rm_role_name(unsigned v) { return NAME_OF(roles, v); }
const char *rm_restart_reason_name(unsigned v) { return NAME_OF(restart_reasons, v); }
const char *rm_outcome_name(unsigned v) { return NAME_OF(outcomes, v); }
const char *rm_slot_state_name(unsigned v) { return NAME_OF(slot_states, v); }
const char *rm_code_name(unsigned v) { return NAME_OF(codes, v); }

static const char *const stream_results[RM_STREAM_RESULTS] = {
    [RM_STREAMS_STARTED] = "started",
    [RM_STREAMS_COMPLETED] = "completed",
    [RM_STREAMS_FAILED] = "failed",
    [RM_STREAMS_CANCELLED] = "cancelled",
};
const char *rm_stream_result_name(unsigned v) { return NAME_OF(stream_results, v); }
