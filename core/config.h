/*
 * config.h - ringmaster's INI configuration.
 *
 * Every key exists in exactly one place: the X-macro tables below give the
 * struct field, the type (which picks the parser) and the default. config.c
 * expands them into the struct, the defaults and the parser branches.
 */
#ifndef RM_CONFIG_H
#define RM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringmaster_handler.h"
#include "shm/layout.h"

#define RM_MAX_POOLS 32
#define RM_MAX_LISTEN 16
#define RM_MAX_GATEWAYS 64
#define RM_POOL_NAME_MAX 48
#define RM_MAX_HANDLER_KEYS 32

/* The configuration's limits fit the shared memory's fields. */
static_assert(RM_MAX_POOLS == RM_SHM_MAX_POOLS, "a pool per shared-memory pool entry");
static_assert(RM_POOL_NAME_MAX == RM_SHM_POOL_NAME, "pool names fit the descriptor's name field");
static_assert(RM_MAX_GATEWAYS < RM_SHM_MAX_PROCS, "gateways fit the slot owner field");

/* Types: STR (char[256]), UINT (unsigned, decimal), DUR (uint64_t ms; units
 * ms/s/m, plain number = ms), SIZE (uint64_t bytes; units B/KiB/MiB/GiB, also
 * K/M/G and KB/MB/GB as powers of 1024), BOOL (yes/no/true/false/on/off/1/0).
 *
 *   X(type, field, "key", "default", min, max)   min/max: UINT/DUR/SIZE bounds
 */
#define RM_GLOBAL_KEYS(X)                                                        \
    X(STR,  listen,             "listen",             "127.0.0.1:8080", 0, 0)    \
    X(UINT, gateways,           "gateways",           "1",      1, RM_MAX_GATEWAYS) \
    X(STR,  runtime_dir,        "runtime_dir",        "/run/ringmaster", 0, 0)   \
    X(DUR,  heartbeat_interval, "heartbeat_interval", "100ms",  10, 60000)       \
    X(DUR,  heartbeat_timeout,  "heartbeat_timeout",  "2s",     50, 3600000)     \
    X(DUR,  shutdown_timeout,   "shutdown_timeout",   "30s",    0, 86400000)     \
    X(DUR,  drain_delay,        "drain_delay",        "0",      0, 3600000)      \
    X(UINT, max_connections,    "max_connections",    "1024",   1, 1000000)      \
    X(SIZE, max_header_size,    "max_header_size",    "16KiB",  1024, 1048576)   \
    X(DUR,  header_timeout,     "header_timeout",     "10s",    100, 3600000)    \
    X(DUR,  idle_timeout,       "idle_timeout",       "60s",    100, 86400000)   \
    X(DUR,  backoff_max,        "backoff_max",        "30s",    100, 3600000)    \
    X(STR,  user,               "user",               "",       0, 0)            \
    X(STR,  group,              "group",              "",       0, 0)            \
    X(STR,  access_log,         "access_log",         "off",    0, 0)            \
    X(STR,  metrics_listen,     "metrics_listen",     "off",    0, 0)

#define RM_POOL_KEYS(X)                                                          \
    X(STR,  handler,            "handler",            "",       0, 0)            \
    X(UINT, workers,            "workers",            "2",      1, 256)          \
    X(UINT, spares,             "spares",             "0",      0, 256)          \
    X(UINT, queue_depth,        "queue_depth",        "256",    1, 65536)        \
    X(SIZE, max_request_size,   "max_request_size",   "1MiB",   1, 1073741824)   \
    X(SIZE, max_response_size,  "max_response_size",  "1MiB",   1, 1073741824)   \
    X(DUR,  request_timeout,    "request_timeout",    "30s",    1, 86400000)     \
    X(DUR,  stream_idle_timeout, "stream_idle_timeout", "10s",  1, 86400000)     \
    X(DUR,  stream_timeout,     "stream_timeout",     "10m",  1, 86400000)     \
    X(DUR,  startup_timeout,    "startup_timeout",    "60s",    1, 86400000)     \
    X(UINT, max_attempts,       "max_attempts",       "2",      1, 100)          \
    X(UINT, max_requests,       "max_requests",       "0",      0, 4000000000u)  \
    X(SIZE, max_worker_memory,  "max_worker_memory",  "0",      0, 1099511627776ull) \
    X(BOOL, preload,            "preload",            "no",     0, 0)            \
    X(STR,  inputs,             "inputs",             "",       0, 0)            \
    X(STR,  outputs,            "outputs",            "",       0, 0)            \
    X(STR,  user,               "user",               "",       0, 0)            \
    X(STR,  group,              "group",              "",       0, 0)

#define RM_CFG_T_STR  char
#define RM_CFG_T_UINT unsigned
#define RM_CFG_T_DUR  uint64_t
#define RM_CFG_T_SIZE uint64_t
#define RM_CFG_T_BOOL bool
#define RM_CFG_DIM_STR  [256]
#define RM_CFG_DIM_UINT
#define RM_CFG_DIM_DUR
#define RM_CFG_DIM_SIZE
#define RM_CFG_DIM_BOOL

#define RM_CFG_FIELD(type, field, key, def, lo, hi) RM_CFG_T_##type field RM_CFG_DIM_##type;

/* Whom a process runs as: user/group resolved when the file is read. */
struct rm_identity {
    bool drop;         /* user or group set: change identity after setup */
    uid_t uid;
    gid_t gid;
};

struct rm_pool_config {
    char name[RM_POOL_NAME_MAX];
    RM_POOL_KEYS(RM_CFG_FIELD)
    struct rm_identity id;  /* workers (and the preloader) */
    /* Keys the pool section sets that ringmaster does not know: the handler's. */
    struct rm_handler_kv kv[RM_MAX_HANDLER_KEYS];
    char kv_store[RM_MAX_HANDLER_KEYS][2][256];
    size_t nkv;
    unsigned kv_line[RM_MAX_HANDLER_KEYS];  /* where each handler key was set */
    unsigned line;  /* line of the [pool NAME] header, for messages */
};

struct rm_listen_addr {
    enum { RM_LISTEN_TCP, RM_LISTEN_UNIX } kind;
    char host[256];    /* TCP: numeric or name; "" = any */
    unsigned port;     /* TCP */
    char path[108];    /* UNIX */
};

struct rm_config {
    char path[4096];   /* file it was read from */
    RM_GLOBAL_KEYS(RM_CFG_FIELD)
    struct rm_identity gw_id;  /* gateways: [ringmaster] user/group */
    struct rm_listen_addr listen_addrs[RM_MAX_LISTEN];
    size_t nlisten;
    /* metrics_listen: where /metrics is served instead of on listen (0: off) */
    struct rm_listen_addr metrics_addrs[RM_MAX_LISTEN];
    size_t nmetrics;
    struct rm_pool_config pools[RM_MAX_POOLS];
    size_t npools;
};

/* Fill cfg with every default (no pools). */
void rm_config_defaults(struct rm_config *cfg);

/*
 * Read and validate path into cfg. Returns 0, or -1 with a message
 * "FILE:LINE: what is wrong" (LINE omitted when the error is about the file
 * as a whole) written into err. On failure cfg is left in an unspecified
 * state: callers parse into a scratch struct and copy on success, so a bad
 * file never half-configures a running server.
 */
int rm_config_load(struct rm_config *cfg, const char *path, char *err, size_t errlen);

/* Same, from a string (tests); name is used in messages. */
int rm_config_load_string(struct rm_config *cfg, const char *name, const char *text,
                          char *err, size_t errlen);

/* Parsers, exposed for tests. Return 0 or -1 (no message). */
int rm_parse_duration_ms(const char *s, uint64_t *out);
int rm_parse_size(const char *s, uint64_t *out);
int rm_parse_bool(const char *s, bool *out);
int rm_parse_listen(const char *s, struct rm_listen_addr *out, size_t max, size_t *n,
                    char *err, size_t errlen);

/* Copy a config. Use this, not memcpy or assignment: each pool's kv[] points
 * into its own kv_store, and a plain copy would still point into src. */
void rm_config_copy(struct rm_config *dst, const struct rm_config *src);

/*
 * A tensor list for the v2 metadata, "name DATATYPE dims, ..." (dims:
 * "-1x64", "1"), as a JSON array of {"name","datatype","shape"} in out.
 * Returns 0, or -1 with the reason in err.
 */
int rm_tensor_spec_json(const char *spec, char *out, size_t outlen, char *err, size_t errlen);

/*
 * Strict keys: every key of pool pi that is not ringmaster's must be one
 * the pool's handler declares (keys: NULL-terminated; "*" accepts any other
 * key, except one a typo away from a ringmaster pool key). keys NULL: the
 * handler declares none and takes anything. Returns 0, or -1 with
 * "FILE:LINE: unknown key ..." in err.
 */
int rm_config_check_handler_keys(const struct rm_config *cfg, size_t pi, const char *handler_name,
                                 const char *const *keys, char *err, size_t errlen);
/* The same for a worker, which has the pool's keys but not the file. */
int rm_check_handler_keys(const char *file, const char *pool, const struct rm_handler_kv *kv,
                          const unsigned *kv_line, size_t nkv, const char *handler_name,
                          const char *const *keys, char *err, size_t errlen);

/* Pool by name, or NULL. */
const struct rm_pool_config *rm_config_pool(const struct rm_config *cfg, const char *name);

#endif
