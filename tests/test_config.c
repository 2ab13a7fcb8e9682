/*
 * test_config.c - the INI contract of docs/contract.md: defaults, units,
 * sections, handler keys, listen lists, cross-key checks, and the exact
 * "FILE:LINE: message" shape of every error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unistd.h>

#include "core/config.h"
#include "tests/cunit_util.h"

#define NAME "/etc/x.ini"

/* A config is ~0.5 MiB: keep them out of the stack. */
static struct rm_config cfg;
static struct rm_config other;
static char err[2048];

static int load(const char *text)
{
    err[0] = '\0';
    return rm_config_load_string(&cfg, NAME, text, err, sizeof err);
}

static void expect_ok(const char *text)
{
    int rc = load(text);
    if (rc != 0)
        printf("\n    unexpected error: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
}

/* The load fails with exactly this message. */
static void expect_error(const char *text, const char *want)
{
    int rc = load(text);
    CU_ASSERT_EQUAL(rc, -1);
    if (strcmp(err, want) != 0)
        printf("\n    want: %s\n    got:  %s\n", want, err);
    CU_ASSERT_STRING_EQUAL(err, want);
}

/* The load fails with a message that starts with prefix ("FILE:LINE: ")
 * and mentions word (the key or value at fault). */
static void expect_error_at(const char *text, const char *prefix, const char *word)
{
    int rc = load(text);
    CU_ASSERT_EQUAL(rc, -1);
    bool ok = strncmp(err, prefix, strlen(prefix)) == 0 && strstr(err, word) != NULL;
    if (!ok)
        printf("\n    want: %s...%s...\n    got:  %s\n", prefix, word, err);
    CU_ASSERT_TRUE(ok);
}

static void test_defaults_applied_when_keys_absent(void)
{
    expect_ok("[pool a]\nhandler = echo\n");
    CU_ASSERT_STRING_EQUAL(cfg.path, NAME);
    CU_ASSERT_STRING_EQUAL(cfg.listen, "127.0.0.1:8080");
    CU_ASSERT_EQUAL(cfg.nlisten, 1);
    CU_ASSERT_EQUAL(cfg.listen_addrs[0].kind, RM_LISTEN_TCP);
    CU_ASSERT_STRING_EQUAL(cfg.listen_addrs[0].host, "127.0.0.1");
    CU_ASSERT_EQUAL(cfg.listen_addrs[0].port, 8080);
    CU_ASSERT_EQUAL(cfg.gateways, 1);
    CU_ASSERT_STRING_EQUAL(cfg.runtime_dir, "/run/ringmaster");
    CU_ASSERT_EQUAL(cfg.heartbeat_interval, 100);
    CU_ASSERT_EQUAL(cfg.heartbeat_timeout, 2000);
    CU_ASSERT_EQUAL(cfg.shutdown_timeout, 30000);
    CU_ASSERT_EQUAL(cfg.max_connections, 1024);
    CU_ASSERT_EQUAL(cfg.max_header_size, 16384);
    CU_ASSERT_EQUAL(cfg.header_timeout, 10000);
    CU_ASSERT_EQUAL(cfg.idle_timeout, 60000);
    CU_ASSERT_EQUAL(cfg.backoff_max, 30000);

    CU_ASSERT_EQUAL_FATAL(cfg.npools, 1);
    const struct rm_pool_config *p = &cfg.pools[0];
    CU_ASSERT_STRING_EQUAL(p->name, "a");
    CU_ASSERT_EQUAL(p->line, 1);
    CU_ASSERT_STRING_EQUAL(p->handler, "echo");
    CU_ASSERT_EQUAL(p->workers, 2);
    CU_ASSERT_EQUAL(p->spares, 0);
    CU_ASSERT_EQUAL(p->queue_depth, 256);
    CU_ASSERT_EQUAL(p->max_request_size, 1024 * 1024);
    CU_ASSERT_EQUAL(p->max_response_size, 1024 * 1024);
    CU_ASSERT_EQUAL(p->request_timeout, 30000);
    CU_ASSERT_EQUAL(p->startup_timeout, 60000);
    CU_ASSERT_EQUAL(p->max_attempts, 2);
    CU_ASSERT_EQUAL(p->max_requests, 0);
    CU_ASSERT_FALSE(p->preload);
    CU_ASSERT_EQUAL(p->nkv, 0);
}

static void test_defaults_function_gives_no_pools(void)
{
    rm_config_defaults(&other);
    CU_ASSERT_EQUAL(other.npools, 0);
    CU_ASSERT_EQUAL(other.heartbeat_timeout, 2000);
    CU_ASSERT_EQUAL(other.nlisten, 1);
    CU_ASSERT_EQUAL(other.listen_addrs[0].port, 8080);
}

static void test_all_keys_set_from_file(void)
{
    expect_ok("[ringmaster]\n"
              "listen = 0.0.0.0:9000\n"
              "gateways = 4\n"
              "runtime_dir = /tmp/rm\n"
              "heartbeat_interval = 50ms\n"
              "heartbeat_timeout = 1s\n"
              "shutdown_timeout = 0\n"
              "max_connections = 5000\n"
              "max_header_size = 8KiB\n"
              "header_timeout = 5s\n"
              "idle_timeout = 2m\n"
              "backoff_max = 10s\n"
              "[pool ocr]\n"
              "handler = /usr/lib/ringmaster/ocr.so\n"
              "workers = 8\n"
              "spares = 2\n"
              "queue_depth = 64\n"
              "max_request_size = 16MiB\n"
              "max_response_size = 64KiB\n"
              "request_timeout = 1m\n"
              "startup_timeout = 2m\n"
              "max_attempts = 1\n"
              "max_requests = 4000000000\n"
              "preload = yes\n");
    CU_ASSERT_EQUAL(cfg.listen_addrs[0].port, 9000);
    CU_ASSERT_EQUAL(cfg.gateways, 4);
    CU_ASSERT_STRING_EQUAL(cfg.runtime_dir, "/tmp/rm");
    CU_ASSERT_EQUAL(cfg.heartbeat_interval, 50);
    CU_ASSERT_EQUAL(cfg.heartbeat_timeout, 1000);
    CU_ASSERT_EQUAL(cfg.shutdown_timeout, 0);
    CU_ASSERT_EQUAL(cfg.max_connections, 5000);
    CU_ASSERT_EQUAL(cfg.max_header_size, 8192);
    CU_ASSERT_EQUAL(cfg.header_timeout, 5000);
    CU_ASSERT_EQUAL(cfg.idle_timeout, 120000);
    CU_ASSERT_EQUAL(cfg.backoff_max, 10000);
    const struct rm_pool_config *p = rm_config_pool(&cfg, "ocr");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_STRING_EQUAL(p->handler, "/usr/lib/ringmaster/ocr.so");
    CU_ASSERT_EQUAL(p->workers, 8);
    CU_ASSERT_EQUAL(p->spares, 2);
    CU_ASSERT_EQUAL(p->queue_depth, 64);
    CU_ASSERT_EQUAL(p->max_request_size, 16u << 20);
    CU_ASSERT_EQUAL(p->max_response_size, 64u << 10);
    CU_ASSERT_EQUAL(p->request_timeout, 60000);
    CU_ASSERT_EQUAL(p->startup_timeout, 120000);
    CU_ASSERT_EQUAL(p->max_attempts, 1);
    CU_ASSERT_EQUAL(p->max_requests, 4000000000u);
    CU_ASSERT_TRUE(p->preload);
}

static void test_duration_units_parsed(void)
{
    static const struct { const char *s; uint64_t ms; } good[] = {
        { "100ms", 100 }, { "2s", 2000 }, { "1m", 60000 }, { "250", 250 },
        { "0", 0 }, { " 5s ", 5000 }, { "7 ms", 7 }, { "3S", 3000 },
        { "18446744073709551615", UINT64_MAX },
    };
    static const char *const bad[] = {
        "", "   ", "s", "-1s", "+1s", "2x", "1.5s", "1h", "10 s x", "0x10",
        "18446744073709551616", "18446744073709551615s", "999999999999999999m",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t v = 1234567;
        CU_ASSERT_EQUAL(rm_parse_duration_ms(good[i].s, &v), 0);
        CU_ASSERT_EQUAL(v, good[i].ms);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 1234567;
        if (rm_parse_duration_ms(bad[i], &v) != -1)
            printf("\n    accepted bad duration \"%s\"\n", bad[i]);
        CU_ASSERT_EQUAL(rm_parse_duration_ms(bad[i], &v), -1);
        CU_ASSERT_EQUAL(v, 1234567);
    }
}

static void test_size_units_parsed(void)
{
    static const struct { const char *s; uint64_t bytes; } good[] = {
        { "512", 512 }, { "7B", 7 }, { "16KiB", 16384 }, { "1MiB", 1048576 },
        { "1GiB", 1073741824 }, { "1k", 1024 }, { "2M", 2097152 },
        { "3g", 3221225472u }, { "4KB", 4096 }, { "5mb", 5242880 },
        { "6gib", 6442450944u }, { " 8 KiB ", 8192 }, { "0", 0 },
    };
    static const char *const bad[] = {
        "", "KiB", "-1", "1TiB", "1.5MiB", "1 Ki B", "12xb", "0x100",
        "17179869184GiB", "99999999999999999999",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t v = 1234567;
        CU_ASSERT_EQUAL(rm_parse_size(good[i].s, &v), 0);
        CU_ASSERT_EQUAL(v, good[i].bytes);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 1234567;
        if (rm_parse_size(bad[i], &v) != -1)
            printf("\n    accepted bad size \"%s\"\n", bad[i]);
        CU_ASSERT_EQUAL(rm_parse_size(bad[i], &v), -1);
        CU_ASSERT_EQUAL(v, 1234567);
    }
}

static void test_bool_words_parsed(void)
{
    static const char *const yes[] = { "yes", "true", "on", "1", "YES", " True " };
    static const char *const no[] = { "no", "false", "off", "0", "Off" };
    static const char *const bad[] = { "", "maybe", "2", "y", "yess", "on off" };
    bool b;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        b = false;
        CU_ASSERT_EQUAL(rm_parse_bool(yes[i], &b), 0);
        CU_ASSERT_TRUE(b);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        b = true;
        CU_ASSERT_EQUAL(rm_parse_bool(no[i], &b), 0);
        CU_ASSERT_FALSE(b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(rm_parse_bool(bad[i], &b), -1);
}

static void test_bad_duration_reports_file_and_line(void)
{
    expect_error("[ringmaster]\n"
                 "; the interval\n"
                 "heartbeat_timeout = 2x\n"
                 "[pool a]\n",
                 NAME ":3: bad value \"2x\" for heartbeat_timeout: expected a duration "
                 "like 100ms, 2s or 1m");
}

static void test_bad_size_and_bool_and_uint_named_with_expectation(void)
{
    expect_error("[pool a]\nmax_request_size = 1TB\n",
                 NAME ":2: bad value \"1TB\" for max_request_size: expected a size like "
                 "512, 16KiB, 1MiB or 1GiB");
    expect_error("[pool a]\npreload = maybe\n",
                 NAME ":2: bad value \"maybe\" for preload: expected yes or no (also "
                 "true/false, on/off, 1/0)");
    expect_error("[pool a]\nworkers = 0x10\n",
                 NAME ":2: bad value \"0x10\" for workers: expected a whole decimal number");
    expect_error_at("[pool a]\nworkers = -1\n", NAME ":2: ", "workers");
    expect_error_at("[pool a]\nworkers = 4294967296\n", NAME ":2: ", "workers");
}

static void test_unknown_global_key_rejected_with_line(void)
{
    expect_error_at("[ringmaster]\ngateways = 2\ncolour = blue\n[pool a]\n",
                    NAME ":3: unknown key \"colour\" in [ringmaster]", "heartbeat_timeout");
    /* A pool key in the wrong section says where it belongs. */
    expect_error_at("[ringmaster]\nworkers = 2\n[pool a]\n",
                    NAME ":2: unknown key \"workers\" in [ringmaster]", "[pool NAME]");
}

static void test_pool_extra_keys_go_to_handler(void)
{
    expect_ok("[pool ocr]\nhandler = ocr\nmodel = /usr/share/tessdata\nlang = eng+deu\nworkers = 3\n[pool echo]\nhandler = echo\n");
    const struct rm_pool_config *p = rm_config_pool(&cfg, "ocr");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->workers, 3);
    CU_ASSERT_EQUAL_FATAL(p->nkv, 2);
    struct rm_handler_config hc = { .pool = p->name, .kv = p->kv, .nkv = p->nkv };
    CU_ASSERT_STRING_EQUAL(rm_handler_get(&hc, "model", ""), "/usr/share/tessdata");
    CU_ASSERT_STRING_EQUAL(rm_handler_get(&hc, "lang", ""), "eng+deu");
    CU_ASSERT_STRING_EQUAL(rm_handler_get(&hc, "workers", "none"), "none");
    CU_ASSERT_PTR_EQUAL(p->kv[0].key, p->kv_store[0][0]);
    CU_ASSERT_EQUAL(rm_config_pool(&cfg, "echo")->nkv, 0);
}

static void test_too_many_handler_keys_rejected(void)
{
    char text[4096] = "[pool a]\n";
    for (int i = 0; i <= RM_MAX_HANDLER_KEYS; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "k%d = v\n", i);
    char prefix[64];
    snprintf(prefix, sizeof prefix, NAME ":%d: too many handler keys", RM_MAX_HANDLER_KEYS + 2);
    expect_error_at(text, prefix, "k32");
}

static void test_duplicate_pool_rejected(void)
{
    expect_error("[pool a]\nworkers = 1\n[pool b]\n[pool a]\n",
                 NAME ":4: duplicate [pool a] (first at line 1)");
}

static void test_duplicate_key_in_section_rejected(void)
{
    expect_error("[ringmaster]\ngateways = 1\ngateways = 2\n[pool a]\n",
                 NAME ":3: gateways is given twice in [ringmaster] (first at line 2)");
    expect_error("[pool a]\nworkers = 1\n\nworkers = 2\n",
                 NAME ":4: workers is given twice in [pool a] (first at line 2)");
    expect_error("[pool a]\nmodel = x\nmodel = y\n",
                 NAME ":3: model is given twice in [pool a] (first at line 2)");
    expect_error("[ringmaster]\n[pool a]\n[ringmaster]\n",
                 NAME ":3: duplicate [ringmaster] section (first at line 1)");
    /* The same key in two different pools is fine. */
    expect_ok("[pool a]\nworkers = 1\nhandler = echo\n[pool b]\nworkers = 3\nhandler = echo\n");
}

static void test_no_pool_rejected(void)
{
    expect_error("[ringmaster]\ngateways = 2\n",
                 NAME ": no [pool NAME] section: at least one pool is needed, e.g. "
                 "[pool echo] with handler = echo");
    expect_error("", NAME ": no [pool NAME] section: at least one pool is needed, e.g. "
                 "[pool echo] with handler = echo");
}

static void test_unknown_section_rejected(void)
{
    expect_error("[pool a]\n[server]\nport = 1\n",
                 NAME ":2: unknown section [server]: expected [ringmaster] or [pool NAME]");
    expect_error("[pool]\n", NAME ":1: [pool] needs a name, like [pool echo]");
    expect_error_at("[pool a/b]\n", NAME ":1: bad pool name \"a/b\"", "1..47");
    expect_error_at("[pool a b]\n", NAME ":1: bad pool name \"a b\"", "1..47");
    expect_error_at("[pool ..]\n", NAME ":1: bad pool name \"..\"", "1..47");
    expect_error_at("[pool a] workers = 2\n", NAME ":1: unexpected text", "workers");
    /* Empty unknown sections are caught too (inih alone would not see them). */
    expect_error_at("[pool a]\n[extra]\n", NAME ":2: unknown section [extra]", "[pool NAME]");
}

static void test_pool_name_length_limits(void)
{
    char text[256], name[64];
    memset(name, 'n', 47);
    name[47] = '\0';
    snprintf(text, sizeof text, "[pool %s]\nworkers = 3\nhandler = echo\n", name);
    expect_ok(text);
    CU_ASSERT_STRING_EQUAL(cfg.pools[0].name, name);

    /* Two names that agree on their first 44 characters stay two pools
     * (inih alone truncates section names). */
    char text2[256], name2[64];
    memcpy(name2, name, sizeof name2);
    name2[46] = 'X';
    snprintf(text2, sizeof text2, "[pool %s]\nhandler = echo\n[pool %s]\nhandler = echo\n", name, name2);
    expect_ok(text2);
    CU_ASSERT_EQUAL(cfg.npools, 2);

    name[47] = 'n';
    name[48] = '\0';
    snprintf(text, sizeof text, "[pool %s]\n", name);
    expect_error_at(text, NAME ":1: bad pool name", "1..47");
}

static void test_too_many_pools_rejected(void)
{
    char text[2048] = "";
    for (int i = 0; i <= RM_MAX_POOLS; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "[pool p%d]\n", i);
    char want[128];
    snprintf(want, sizeof want, NAME ":%d: too many pools: at most %d", RM_MAX_POOLS + 1,
             RM_MAX_POOLS);
    expect_error(text, want);
}

static void test_key_outside_section_rejected(void)
{
    expect_error_at("workers = 2\n[pool a]\n", NAME ":1: key \"workers\" is outside any section",
                    "[ringmaster]");
}

static void test_listen_list_parsed(void)
{
    expect_ok("[ringmaster]\nlisten = 127.0.0.1:80, [::1]:80 ,unix:/x, :8080,*:9090, localhost:0, [fe80::1%eth0]:81\n[pool a]\nhandler = echo\n");
    CU_ASSERT_EQUAL_FATAL(cfg.nlisten, 7);
    const struct rm_listen_addr *a = cfg.listen_addrs;
    CU_ASSERT_EQUAL(a[0].kind, RM_LISTEN_TCP);
    CU_ASSERT_STRING_EQUAL(a[0].host, "127.0.0.1");
    CU_ASSERT_EQUAL(a[0].port, 80);
    CU_ASSERT_EQUAL(a[1].kind, RM_LISTEN_TCP);
    CU_ASSERT_STRING_EQUAL(a[1].host, "::1");
    CU_ASSERT_EQUAL(a[1].port, 80);
    CU_ASSERT_EQUAL(a[2].kind, RM_LISTEN_UNIX);
    CU_ASSERT_STRING_EQUAL(a[2].path, "/x");
    CU_ASSERT_EQUAL(a[3].kind, RM_LISTEN_TCP);
    CU_ASSERT_STRING_EQUAL(a[3].host, "");
    CU_ASSERT_EQUAL(a[3].port, 8080);
    CU_ASSERT_STRING_EQUAL(a[4].host, "");
    CU_ASSERT_EQUAL(a[4].port, 9090);
    CU_ASSERT_STRING_EQUAL(a[5].host, "localhost");
    CU_ASSERT_EQUAL(a[5].port, 0);
    CU_ASSERT_STRING_EQUAL(a[6].host, "fe80::1%eth0");
    CU_ASSERT_EQUAL(a[6].port, 81);
}

static void test_bad_listen_rejected(void)
{
    static const char *const bad[] = {
        "127.0.0.1", "::1:80", "[::1]80", "[::1]:", "[]:80", "[nothost]:80",
        "host:65536", "host:", "host:8o", "host:-1", "unix:", "unix:rel/path",
        "a:1,,b:2", "a:1,", "", "  ", "ho st:80", "a:b:80",
    };
    struct rm_listen_addr out[RM_MAX_LISTEN];
    char msg[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 99;
        msg[0] = '\0';
        int rc = rm_parse_listen(bad[i], out, RM_MAX_LISTEN, &n, msg, sizeof msg);
        if (rc != -1)
            printf("\n    accepted bad listen \"%s\"\n", bad[i]);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_EQUAL(n, 99);          /* untouched on error */
        CU_ASSERT(strstr(msg, "listen") != NULL);
    }

    /* 17 addresses for 16 slots. */
    char many[1024] = "";
    for (int i = 0; i <= RM_MAX_LISTEN; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s:%d", i ? "," : "",
                 8000 + i);
    size_t n = 99;
    CU_ASSERT_EQUAL(rm_parse_listen(many, out, RM_MAX_LISTEN, &n, msg, sizeof msg), -1);
    CU_ASSERT_STRING_EQUAL(msg, "too many listen addresses: at most 16");

    /* Through the file: the line of the listen key. */
    expect_error_at("[pool a]\n[ringmaster]\nlisten = 127.0.0.1\n",
                    NAME ":3: bad listen address \"127.0.0.1\"", "host:port");
}

static void test_metrics_listen(void)
{
    expect_ok("[pool a]\nhandler = echo\n");
    CU_ASSERT_STRING_EQUAL(cfg.metrics_listen, "off");
    CU_ASSERT_EQUAL(cfg.nmetrics, 0);
    expect_ok("[ringmaster]\nmetrics_listen = 127.0.0.1:9100, unix:/run/m.sock\n[pool a]\nhandler = echo\n");
    CU_ASSERT_EQUAL_FATAL(cfg.nmetrics, 2);
    CU_ASSERT_EQUAL(cfg.metrics_addrs[0].kind, RM_LISTEN_TCP);
    CU_ASSERT_STRING_EQUAL(cfg.metrics_addrs[0].host, "127.0.0.1");
    CU_ASSERT_EQUAL(cfg.metrics_addrs[0].port, 9100);
    CU_ASSERT_EQUAL(cfg.metrics_addrs[1].kind, RM_LISTEN_UNIX);
    CU_ASSERT_STRING_EQUAL(cfg.metrics_addrs[1].path, "/run/m.sock");
    CU_ASSERT_EQUAL(cfg.nlisten, 1); /* listen untouched */
    expect_error_at("[ringmaster]\nmetrics_listen = 9100\n[pool a]\n",
                    NAME ":2: metrics_listen (addresses or off): bad listen address \"9100\"", "host:port");
    expect_error_at("[ringmaster]\nmetrics_listen =\n[pool a]\n", NAME ":2: metrics_listen", "empty");
    expect_error_at("[ringmaster]\nlisten = 127.0.0.1:80, unix:/s\nmetrics_listen = :9100, unix:/s\n[pool a]\nhandler = echo\n",
                    NAME ":3: metrics_listen repeats an address of listen", "metrics_listen = off");
    expect_error_at("[ringmaster]\nlisten = 127.0.0.1:80\nmetrics_listen = 127.0.0.1:80\n[pool a]\nhandler = echo\n",
                    NAME ":3: metrics_listen repeats an address of listen", "own address");
}

static void test_out_of_range_rejected(void)
{
    expect_error("[pool a]\nworkers = 0\n",
                 NAME ":2: value \"0\" for workers is out of range: expected 1..256");
    expect_error("[pool a]\nworkers = 257\n",
                 NAME ":2: value \"257\" for workers is out of range: expected 1..256");
    expect_error("[ringmaster]\nheartbeat_interval = 5ms\n[pool a]\n",
                 NAME ":2: value \"5ms\" for heartbeat_interval is out of range: "
                 "expected 10ms..1m");
    expect_error("[ringmaster]\nmax_header_size = 512\n[pool a]\n",
                 NAME ":2: value \"512\" for max_header_size is out of range: "
                 "expected 1KiB..1MiB");
    expect_error_at("[ringmaster]\ngateways = 65\n[pool a]\n", NAME ":2: ", "gateways");
    expect_error_at("[pool a]\nmax_request_size = 2GiB\n", NAME ":2: ", "max_request_size");
    /* The bounds themselves are in range. */
    expect_ok("[ringmaster]\nheartbeat_interval = 10ms\nmax_header_size = 1MiB\n[pool a]\nworkers = 256\nmax_request_size = 1GiB\nhandler = echo\n");
}

static void test_heartbeat_timeout_must_exceed_interval(void)
{
    expect_error("[ringmaster]\nheartbeat_interval = 1s\nheartbeat_timeout = 1s\n[pool a]\n",
                 NAME ":3: heartbeat_timeout (1s) must be greater than heartbeat_interval (1s)");
    /* Only the interval set: the message points at it. */
    expect_error_at("[ringmaster]\nheartbeat_interval = 1m\n[pool a]\n", NAME ":2: ",
                    "heartbeat_timeout (2s)");
}

static void test_workers_plus_spares_limited(void)
{
    expect_error("[pool a]\nworkers = 200\nspares = 57\nhandler = echo\n",
                 NAME ":3: workers + spares is 257 in [pool a]: at most 256");
    expect_ok("[pool a]\nworkers = 200\nspares = 56\nhandler = echo\n");
}

static void test_empty_handler_rejected(void)
{
    expect_error_at("[pool a]\nhandler =\n", NAME ":2: handler is missing or empty in [pool a]",
                    "handler .so");
}

static void test_runtime_dir_must_be_absolute(void)
{
    expect_error_at("[ringmaster]\nruntime_dir = run\n[pool a]\n",
                    NAME ":2: runtime_dir must be an absolute path", "\"run\"");
}

static void test_syntax_error_reports_line(void)
{
    expect_error("[pool a]\nworkers = 2\nthis line has no equals sign\n",
                 NAME ":3: syntax error in \"this line has no equals sign\": expected "
                 "\"key = value\", \"[section]\" or a comment");
    expect_error_at("[pool a]\n\n[pool b\n", NAME ":3: syntax error", "']'");
    expect_error_at("[pool a]\n= 3\n", NAME ":2: missing key name", "=");
}

static void test_first_error_wins_over_later_ones(void)
{
    /* The syntax error on line 2 comes before the bad value on line 4. */
    expect_error_at("[pool a]\noops\nworkers = 1\nworkers = x\n", NAME ":2: syntax error",
                    "oops");
    /* A bad value before a syntax error: the bad value. */
    expect_error_at("[pool a]\nworkers = x\noops\n", NAME ":2: bad value", "workers");
}

static void test_comments_blanks_crlf_and_bom_accepted(void)
{
    expect_ok("\xEF\xBB\xBF[ringmaster]\r\n"
              "; a comment\r\n"
              "# another comment\r\n"
              "\r\n"
              "gateways = 3 ; inline comment\r\n"
              "[ pool a ]  ; the pool\r\n"
              "workers: 5\r\n"
              "handler = echo\r\n");
    CU_ASSERT_EQUAL(cfg.gateways, 3);
    CU_ASSERT_STRING_EQUAL(cfg.pools[0].name, "a");
    CU_ASSERT_EQUAL(cfg.pools[0].workers, 5);
}

static void test_indented_key_is_not_a_continuation(void)
{
    /* inih alone would glue the indented line onto handler's value. */
    expect_ok("[pool a]\n"
              "    handler = chaos\n"
              "    workers = 3\n");
    CU_ASSERT_STRING_EQUAL(cfg.pools[0].handler, "chaos");
    CU_ASSERT_EQUAL(cfg.pools[0].workers, 3);
}

static void test_lines_of_any_length_values_within_their_limits(void)
{
    static char text[16384];
    char comment[8000];
    memset(comment, 'c', sizeof comment - 1);
    comment[sizeof comment - 1] = '\0';
    snprintf(text, sizeof text, "; %s\n[pool a]\nhandler = echo\nworkers = 3\n", comment);
    expect_ok(text); /* a long line is read whole: nothing after it is lost */
    CU_ASSERT_EQUAL(cfg.pools[0].workers, 3);
    char value[400];
    memset(value, 'x', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    snprintf(text, sizeof text, "[pool a]\nmodel = %s\nworkers = 1\nhandler = echo\n", value);
    expect_error_at(text, NAME ":2: handler key model", "too long");
}

static void test_failed_load_leaves_config_untouched(void)
{
    expect_ok("[pool a]\nworkers = 7\nmodel = m\nhandler = echo\n");
    rm_config_copy(&other, &cfg);
    CU_ASSERT_EQUAL(load("[pool a]\nworkers = 9\n[pool b]\nworkers = nope\n"), -1);
    CU_ASSERT_EQUAL(cfg.npools, 1);
    CU_ASSERT_EQUAL(cfg.pools[0].workers, 7);
    CU_ASSERT_EQUAL(memcmp(&cfg, &other, offsetof(struct rm_config, pools)), 0);
    CU_ASSERT_STRING_EQUAL(cfg.pools[0].kv[0].value, "m");
}

static void test_config_copy_rebinds_handler_keys(void)
{
    expect_ok("[pool a]\nmodel = m1\nhandler = echo\n[pool b]\nlang = eng\nhandler = echo\n");
    rm_config_copy(&other, &cfg);
    memset(&cfg, 0, sizeof cfg);  /* the copy must not point back here */
    CU_ASSERT_PTR_EQUAL(other.pools[1].kv[0].key, other.pools[1].kv_store[0][0]);
    CU_ASSERT_PTR_EQUAL(other.pools[1].kv[0].value, other.pools[1].kv_store[0][1]);
    CU_ASSERT_STRING_EQUAL(other.pools[0].kv[0].value, "m1");
    CU_ASSERT_STRING_EQUAL(other.pools[1].kv[0].key, "lang");
}

static void test_pool_lookup_by_name(void)
{
    expect_ok("[pool echo]\nhandler = echo\n[pool ocr]\nworkers = 4\nhandler = echo\n");
    CU_ASSERT_PTR_EQUAL(rm_config_pool(&cfg, "ocr"), &cfg.pools[1]);
    CU_ASSERT_PTR_EQUAL(rm_config_pool(&cfg, "echo"), &cfg.pools[0]);
    CU_ASSERT_PTR_NULL(rm_config_pool(&cfg, "ocr2"));
    CU_ASSERT_PTR_NULL(rm_config_pool(&cfg, ""));
}

static void test_missing_file_names_errno(void)
{
    const char *path = "/nonexistent-ringmaster-dir/ringmaster.ini";
    char want[512];
    snprintf(want, sizeof want, "%s: cannot open: %s", path, strerror(ENOENT));
    CU_ASSERT_EQUAL(rm_config_load(&cfg, path, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, want);

    /* Only a regular file is a configuration: a directory, a FIFO (which
     * would hang the read) or a device is refused at once. */
    CU_ASSERT_EQUAL(rm_config_load(&cfg, "/", err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, "/: not a regular file (a directory)");
    CU_ASSERT_EQUAL(rm_config_load(&cfg, "/dev/null", err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, "/dev/null: not a regular file (a character device)");
    char fifo[] = "/tmp/rm-test-fifo-XXXXXX";
    int fd = mkstemp(fifo);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    unlink(fifo);
    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    CU_ASSERT_EQUAL(rm_config_load(&cfg, fifo, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file (a FIFO)"));
    unlink(fifo);
}

static void test_file_error_names_path_and_line(void)
{
    const char *tmp = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/test_config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    static const char text[] = "[ringmaster]\nlisten = :0\n\n[pool a]\nqueue_depth = 0\n";
    CU_ASSERT_EQUAL(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);

    char want[1024];
    snprintf(want, sizeof want, "%s:5: value \"0\" for queue_depth is out of range: "
             "expected 1..65536", path);
    CU_ASSERT_EQUAL(rm_config_load(&cfg, path, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, want);
    unlink(path);
}

static void test_example_file_parses(void)
{
    const char *srcdir = getenv("srcdir");
    char path[4096];
    snprintf(path, sizeof path, "%s/etc/ringmaster.ini", srcdir && *srcdir ? srcdir : ".");
    if (access(path, R_OK) != 0) {
        printf("\n    skipped: %s is missing\n", path);
        return;
    }
    int rc = rm_config_load(&cfg, path, err, sizeof err);
    if (rc != 0)
        printf("\n    %s\n", err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(cfg.npools >= 1);
    CU_ASSERT(cfg.nlisten >= 1);
}

static void test_tensor_specs_for_metadata(void)
{
    char out[512], e[256];
    CU_ASSERT_EQUAL(rm_tensor_spec_json("image FP32 -1x64, label INT64 -1", out, sizeof out, e, sizeof e), 0);
    CU_ASSERT_STRING_EQUAL(out, "[{\"name\":\"image\",\"datatype\":\"FP32\",\"shape\":[-1,64]},"
                                "{\"name\":\"label\",\"datatype\":\"INT64\",\"shape\":[-1]}]");
    CU_ASSERT_EQUAL(rm_tensor_spec_json("image FP33 1", out, sizeof out, e, sizeof e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "unknown datatype FP33"));
    CU_ASSERT_EQUAL(rm_tensor_spec_json("image FP32", out, sizeof out, e, sizeof e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "expected"));
    CU_ASSERT_EQUAL(rm_tensor_spec_json("im\"g FP32 1", out, sizeof out, e, sizeof e), -1);
    CU_ASSERT_EQUAL(rm_tensor_spec_json("x FP32 -2", out, sizeof out, e, sizeof e), -1);
    expect_error_at("[pool a]\ninputs = x FP32 abc\n", NAME ":2: ", "dimension");
}

static void test_unknown_pool_keys_are_errors_with_a_hint(void)
{
    static const char *const none[] = {NULL};
    static const char *const ocr[] = {"language", "tessdata", NULL};
    static const char *const any[] = {"app", "*", NULL};
    expect_ok("[pool a]\nhandler = echo\nwokers = 2\n");
    CU_ASSERT_EQUAL(rm_config_check_handler_keys(&cfg, 0, "echo", none, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, NAME ":3: unknown key \"wokers\" in [pool a]: did you mean \"workers\"?"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "handler echo takes (none)"));
    /* a handler that takes any key still refuses a near-miss of a pool key */
    CU_ASSERT_EQUAL(rm_config_check_handler_keys(&cfg, 0, "python", any, err, sizeof err), -1);
    expect_ok("[pool a]\nhandler = ocr\nlanguge = eng\n");
    CU_ASSERT_EQUAL(rm_config_check_handler_keys(&cfg, 0, "ocr", ocr, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "did you mean \"language\"?"));
    expect_ok("[pool a]\nhandler = python\napp = m:f\nmodel_dir = /srv/m\n");
    CU_ASSERT_EQUAL(rm_config_check_handler_keys(&cfg, 0, "python", any, err, sizeof err), 0);
    CU_ASSERT_EQUAL(rm_config_check_handler_keys(&cfg, 0, "old", NULL, err, sizeof err), 0); /* ABI 1: unchecked */
    CU_ASSERT_EQUAL(rm_config_check_handler_keys(&cfg, 0, "ocr", ocr, err, sizeof err), -1);
}

static void test_relative_handler_path_starts_at_the_files_folder(void)
{
    expect_ok("[pool a]\nhandler = ./models/m.so\n");
    CU_ASSERT_STRING_EQUAL(cfg.pools[0].handler, "/etc/./models/m.so");
    expect_ok("[pool a]\nhandler = /abs/m.so\n");
    CU_ASSERT_STRING_EQUAL(cfg.pools[0].handler, "/abs/m.so");
}

/* The example file shows every key with its true default, or says that
 * its value is not the default (a comment line above it that mentions
 * "default"): an operator copies it and must not be misled. */
static bool example_says_differs(const char *text, const char *section, const char *key)
{
    const char *s = strstr(text, section);
    if (!s)
        return false;
    const char *end = strstr(s + 1, "\n[");
    char pat[80];
    snprintf(pat, sizeof pat, "\n%s = ", key);
    const char *k = strstr(s, pat);
    if (!k || (end && k > end))
        return true; /* not set in that section: nothing misleads */
    /* the comment lines right above it */
    const char *p = k;
    while (p > s) {
        const char *prev = p - 1;
        while (prev > s && prev[-1] != '\n')
            prev--;
        if (*prev != ';')
            break;
        if (memmem(prev, (size_t)(p - prev), "default", 7))
            return true;
        p = prev - 1;
        if (p <= s)
            break;
        p++;
    }
    return false;
}

#define STR_EQ_STR(a, b) (strcmp((a), (b)) == 0)
#define STR_EQ_UINT(a, b) ((a) == (b))
#define STR_EQ_DUR(a, b) ((a) == (b))
#define STR_EQ_SIZE(a, b) ((a) == (b))
#define STR_EQ_BOOL(a, b) ((a) == (b))

static void test_example_file_shows_true_defaults(void)
{
    const char *srcdir = getenv("srcdir");
    char path[4096];
    snprintf(path, sizeof path, "%s/etc/ringmaster.ini", srcdir && *srcdir ? srcdir : ".");
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("\n    skipped: %s is missing\n", path);
        return;
    }
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    static struct rm_config ex, def;
    CU_ASSERT_FATAL(rm_config_load(&ex, path, err, sizeof err) == 0);
    CU_ASSERT_FATAL(rm_config_load_string(&def, NAME, "[pool d]\nhandler = echo\n", err, sizeof err) == 0);
#define CHECK_GLOBAL(type, field, key, dflt, lo, hi)                                                   \
    if (!STR_EQ_##type(ex.field, def.field) && strcmp(key, "listen") != 0 &&                           \
        !example_says_differs(text, "[ringmaster]", key)) {                                             \
        printf("\n    [ringmaster] %s differs from its default without saying so\n", key);            \
        CU_FAIL("example value differs from the default");                                            \
    }
    RM_GLOBAL_KEYS(CHECK_GLOBAL)
    for (size_t i = 0; i < ex.npools; i++) {
        char section[80];
        snprintf(section, sizeof section, "[pool %s]", ex.pools[i].name);
        const struct rm_pool_config *p = &ex.pools[i], *d = &def.pools[0];
#define CHECK_POOL(type, field, key, dflt, lo, hi)                                                     \
        if (!STR_EQ_##type(p->field, d->field) && strcmp(key, "handler") != 0 &&                       \
            !example_says_differs(text, section, key)) {                                                \
            printf("\n    %s %s differs from its default without saying so\n", section, key);         \
            CU_FAIL("example value differs from the default");                                         \
        }
        RM_POOL_KEYS(CHECK_POOL)
    }
}

static const rm_test tests[] = {
    RM_TEST(test_defaults_applied_when_keys_absent),
    RM_TEST(test_defaults_function_gives_no_pools),
    RM_TEST(test_all_keys_set_from_file),
    RM_TEST(test_duration_units_parsed),
    RM_TEST(test_size_units_parsed),
    RM_TEST(test_bool_words_parsed),
    RM_TEST(test_bad_duration_reports_file_and_line),
    RM_TEST(test_bad_size_and_bool_and_uint_named_with_expectation),
    RM_TEST(test_unknown_global_key_rejected_with_line),
    RM_TEST(test_pool_extra_keys_go_to_handler),
    RM_TEST(test_too_many_handler_keys_rejected),
    RM_TEST(test_duplicate_pool_rejected),
    RM_TEST(test_duplicate_key_in_section_rejected),
    RM_TEST(test_no_pool_rejected),
    RM_TEST(test_unknown_section_rejected),
    RM_TEST(test_pool_name_length_limits),
    RM_TEST(test_too_many_pools_rejected),
    RM_TEST(test_key_outside_section_rejected),
    RM_TEST(test_listen_list_parsed),
    RM_TEST(test_bad_listen_rejected),
    RM_TEST(test_metrics_listen),
    RM_TEST(test_out_of_range_rejected),
    RM_TEST(test_heartbeat_timeout_must_exceed_interval),
    RM_TEST(test_workers_plus_spares_limited),
    RM_TEST(test_empty_handler_rejected),
    RM_TEST(test_runtime_dir_must_be_absolute),
    RM_TEST(test_syntax_error_reports_line),
    RM_TEST(test_first_error_wins_over_later_ones),
    RM_TEST(test_comments_blanks_crlf_and_bom_accepted),
    RM_TEST(test_indented_key_is_not_a_continuation),
    RM_TEST(test_lines_of_any_length_values_within_their_limits),
    RM_TEST(test_failed_load_leaves_config_untouched),
    RM_TEST(test_config_copy_rebinds_handler_keys),
    RM_TEST(test_pool_lookup_by_name),
    RM_TEST(test_missing_file_names_errno),
    RM_TEST(test_file_error_names_path_and_line),
    RM_TEST(test_example_file_parses),
    RM_TEST(test_example_file_shows_true_defaults),
    RM_TEST(test_tensor_specs_for_metadata),
    RM_TEST(test_unknown_pool_keys_are_errors_with_a_hint),
    RM_TEST(test_relative_handler_path_starts_at_the_files_folder),
    { 0 },
};

int main(void)
{
    return rm_run_suite("config", tests);
}
