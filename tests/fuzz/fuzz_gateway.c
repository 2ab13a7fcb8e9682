/* fuzz_gateway.c - libFuzzer: the gateway's request handling, fed through
 * the code that ships. The input is what a client sends on one connection.
 * This process plays the master (a real segment with two pools, "echo" of
 * 4 KiB requests and "ocr") and their workers (the request protocol of
 * shm/request.c: take, echo the body, finish, wake the gateway), and runs
 * the real gateway's event loop (gw_open, gw_poll: llhttp in strict mode,
 * the RFC 9112 checks, routing, limits, the ring, answers) on one end of a
 * socketpair while it writes the input into the other, then closes it.
 *
 * Beyond what ASan and UBSan catch, each input must leave nothing behind:
 * the connection closed once the client is gone, every slot FREE again,
 * no request pending. Anything else aborts (a finding). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "gateway/gateway.h"
#include "gateway/internal.h"
#include "shm/clock.h"
#include "shm/request.h"
#include "shm/segment.h"
#include "shm/slot.h"

#define NPOOLS 2
#define NPROCS 4 /* 0: the gateway; 1, 2: a worker of each pool */

static struct rm_seg seg;
static struct rm_config cfg;
static struct rm_gw_ctx ctx;
static struct rm_pool_view views[NPOOLS];
static struct gw *gw;
static int wake_fd = -1;

static void die(const char *what, const char *err)
{
    fprintf(stderr, "fuzz_gateway: %s: %s\n", what, err);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256] = "";
    signal(SIGPIPE, SIG_IGN);
    rm_log_init("fuzz gateway");
    rm_log_set_level(RM_LOG_ERR - 1); /* quiet: every bad request would be logged */
    if (rm_seg_create(&seg, NPROCS, 1, err, sizeof err) != 0)
        die("rm_seg_create", err);
    struct rm_pool_spec spec[NPOOLS] = {
        {.name = "echo", .nslots = 8, .max_req = 4096, .max_resp = 65536, .max_attempts = 2,
         .request_timeout_ns = 10000000000ull, .handler = "echo"},
        {.name = "ocr", .nslots = 4, .max_req = 65536, .max_resp = 65536, .max_attempts = 2,
         .request_timeout_ns = 10000000000ull, .handler = "ocr",
         .io_json = "\"inputs\":[{\"name\":\"image\",\"datatype\":\"BYTES\",\"shape\":[1]}],"
                    "\"outputs\":[{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[1]}]"},
    };
    for (unsigned i = 0; i < NPOOLS; i++)
        if (rm_seg_pool_add(&seg, i, &spec[i], err, sizeof err) != 0)
            die("rm_seg_pool_add", err);
    rm_seg_publish(&seg);
    /* the scoreboard as the master leaves it: the gateway starting, one
     * ready worker per pool, and the pools' worker counts published */
    for (unsigned i = 0; i < NPROCS; i++) {
        struct rm_sb_entry *e = rm_seg_sb(&seg, i);
        e->role = i == 0 ? RM_ROLE_GATEWAY : RM_ROLE_WORKER;
        e->pool = (uint16_t)(i == 0 ? 0 : (i - 1) % NPOOLS);
        atomic_store(&e->cur_slot, RM_NO_SLOT);
        atomic_store(&e->state, i == 0 ? RM_PROC_STARTING : RM_PROC_READY);
    }
    for (unsigned p = 0; p < NPOOLS; p++) {
        atomic_store(&rm_seg_pool(&seg, p)->workers[RM_PROC_READY], 1);
        if (rm_pool_view_open(&seg, p, &views[p]) < 0)
            die("rm_pool_view_open", "the pool does not validate");
    }
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0)
        die("eventfd", strerror(errno));
    rm_config_defaults(&cfg);
    cfg.max_header_size = 2048; /* so that 431 is in reach of small inputs */
    ctx = (struct rm_gw_ctx){
        .seg = &seg, .limits = rm_gw_limits_from(&cfg), .index = 0, .listen_fds = NULL, .nlisten = 0,
        .wake_fd = wake_fd, .chan_fd = -1, .access_fd = -1, .master_pid = getppid(),
    };
    gw = gw_open(&ctx);
    return 0;
}

/* Each pool's worker: answer everything on its ring with the body. */
static unsigned serve(void)
{
    unsigned n = 0;
    for (unsigned p = 0; p < NPOOLS; p++) {
        unsigned idx = 1 + p;
        struct rm_sb_entry *me = rm_seg_sb(&seg, idx);
        struct rm_req_job job;
        enum rm_take r;
        while ((r = rm_req_take(&views[p], me, idx, rm_now_ns(), &job)) != RM_TAKE_EMPTY) {
            if (r != RM_TAKE_OK)
                continue;
            struct rm_req_result res = {.status = 200, .len = job.len, .ctype = job.ctype};
            memcpy(job.resp, job.body, job.len);
            if (rm_req_finish(&views[p], me, &job, &res, rm_now_ns()) >= 0) {
                uint64_t one = 1;
                ssize_t w = write(wake_fd, &one, sizeof one);
                (void)w;
            }
            n++;
        }
    }
    return n;
}

/* Read and drop what the gateway answered (shown on stderr when
 * FUZZ_GATEWAY_SHOW is set, to see what an input gets); false once it
 * closed. */
static bool drain(int fd, size_t *got)
{
    static int show = -1;
    if (show < 0)
        show = getenv("FUZZ_GATEWAY_SHOW") != NULL;
    char buf[65536];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
            *got += (size_t)r;
            if (show)
                fwrite(buf, 1, (size_t)r, stderr);
            continue;
        }
        if (r == 0)
            return false;
        return errno == EAGAIN || errno == EINTR;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair", strerror(errno));
    gw->now = rm_now_ns();
    gw_conn_open(gw, sv[0], NULL, 0, false, false);

    /* The client: everything it has; once the gateway has nothing more to
     * say for a few turns, end of input (sooner would read as a client
     * gone before its answer); until the gateway closes or 1000 turns. */
    size_t off = 0;
    bool open = true, shut = false;
    int quiet = 0;
    for (int turn = 0; turn < 1000 && open; turn++) {
        bool progress = false;
        while (off < size) {
            ssize_t w = write(sv[1], data + off, size - off);
            if (w <= 0)
                break;
            off += (size_t)w;
            progress = true;
        }
        gw_poll(gw, 0);
        if (serve())
            progress = true;
        size_t got = 0;
        open = drain(sv[1], &got);
        if (got)
            progress = true;
        quiet = progress ? 0 : quiet + 1;
        if (off == size && !shut && quiet >= 3) {
            shutdown(sv[1], SHUT_WR);
            shut = true;
        }
    }
    /* The client goes away: the gateway must let go of everything. */
    close(sv[1]);
    for (int turn = 0; turn < 100 && (gw->nactive || gw->npending); turn++) {
        gw_poll(gw, 1);
        serve();
    }
    if (gw->nactive || gw->npending) {
        fprintf(stderr, "fuzz_gateway: the client is gone but %u connection(s) and %u request(s) remain\n",
                gw->nactive, gw->npending);
        abort();
    }
    for (unsigned p = 0; p < NPOOLS; p++)
        for (uint32_t s = 0; s < views[p].nslots; s++) {
            uint64_t w = rm_slot_load(&views[p].states[s]);
            if (RM_SLOT_STATE(w) != RM_SLOT_FREE) {
                fprintf(stderr, "fuzz_gateway: pool %u slot %u left in state %u\n", p, s, RM_SLOT_STATE(w));
                abort();
            }
        }
    return 0;
}
