/*
 * pools.c - the master's pools: their runtime records and pending re-queue
 * lists, the per-pool iterator over the scoreboard, reconcile (spawn until
 * every pool has its target, drain what is extra), the removal of a pool,
 * the heartbeat / deadline / startup checks of every process, and
 * readiness. See docs/supervision.md.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "shm/clock.h"
#include "shm/recovery.h"
#include "shm/segment.h"
#include "supervisor/master_int.h"

/* ------------------------------------------------------------------ iterator */

struct proc *pool_proc_next(unsigned pidx, int role, unsigned *sb)
{
    const unsigned end = pidx < RM_SHM_MAX_POOLS ? pool_first_sb(pidx) + RM_SB_PER_POOL : 0;
    for (; *sb < end; (*sb)++) {
        struct proc *p = &M->procs[*sb];
        if ((p->pid || p->reserved) && p->pool == pidx && (role == POOL_ANY_ROLE || p->role == role))
            return p;
    }
    return NULL;
}

/* ------------------------------------------------------------------ pool records */

void set_pool_cfg(struct pool_rt *pr, const struct rm_pool_config *pc)
{
    pr->cfg = *pc;
    /* cfg.kv points into cfg.kv_store: re-point after the copy. */
    for (size_t k = 0; k < pr->cfg.nkv; k++) {
        pr->cfg.kv[k].key = pr->cfg.kv_store[k][0];
        pr->cfg.kv[k].value = pr->cfg.kv_store[k][1];
    }
}

/* The master's own record, not the shared descriptor's nslots (which any
 * child could overwrite), says whether an entry was ever used. */
int pool_entry_free(unsigned k)
{
    return !M->pools[k].in_use && !M->pools[k].created;
}

/* A pool's master index is its shared-memory index (one numbering
 * everywhere). Shared-memory pool entries are never reused, so neither are
 * indexes: a pool removed by a reload keeps its entry until restart. */
/* The metadata of a pool: its tensors (inputs/outputs keys, else what
 * the built-in declares, else raw bytes) and a handler name that is never
 * a filesystem path. */
static const char *handler_display(const struct rm_pool_config *pc)
{
    return strchr(pc->handler, '/') ? "shared object" : pc->handler;
}

void pool_io_json(const struct rm_pool_config *pc, char *out, size_t len)
{
    static const char body[] = "[{\"name\":\"body\",\"datatype\":\"BYTES\",\"shape\":[-1]}]";
    char in[512], outs[512], e[256];
    const char *in_j = body, *out_j = body;
    if (strcmp(pc->handler, "ocr") == 0) {
        in_j = "[{\"name\":\"image\",\"datatype\":\"BYTES\",\"shape\":[1]}]";
        out_j = "[{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[1]},"
                "{\"name\":\"confidence\",\"datatype\":\"FP32\",\"shape\":[1]}]";
    }
    /* validated when the file was read */
    if (pc->inputs[0] && rm_tensor_spec_json(pc->inputs, in, sizeof in, e, sizeof e) == 0)
        in_j = in;
    if (pc->outputs[0] && rm_tensor_spec_json(pc->outputs, outs, sizeof outs, e, sizeof e) == 0)
        out_j = outs;
    snprintf(out, len, "\"inputs\":%s,\"outputs\":%s", in_j, out_j);
}

int add_pool(const struct rm_pool_config *pc, char *err, size_t errlen)
{
    char io[1024];
    pool_io_json(pc, io, sizeof io);
    struct rm_pool_spec spec = {
        .name = pc->name, .nslots = pc->queue_depth, .max_req = pc->max_request_size,
        .max_resp = pc->max_response_size, .max_attempts = pc->max_attempts,
        .request_timeout_ns = pc->request_timeout * MS, .stream_idle_ns = pc->stream_idle_timeout * MS,
        .stream_timeout_ns = pc->stream_timeout * MS, .handler = handler_display(pc), .io_json = io,
    };
    unsigned k;
    for (k = 0; k < RM_SHM_MAX_POOLS; k++)
        if (pool_entry_free(k))
            break;
    if (k == RM_SHM_MAX_POOLS) {
        snprintf(err, errlen, "no free pool entry in shared memory (%u pools were ever configured): restart",
                 RM_SHM_MAX_POOLS);
        return -1;
    }
    /* Room to keep every slot of the pool pending (see struct pool_rt). */
    uint64_t *bits = calloc((pc->queue_depth + 63u) / 64u, sizeof *bits);
    uint32_t *gens = calloc(pc->queue_depth, sizeof *gens);
    uint64_t *seen = calloc(pc->queue_depth, sizeof *seen);
    uint64_t *since = calloc(pc->queue_depth, sizeof *since);
    if (!bits || !gens || !seen || !since) {
        snprintf(err, errlen, "pool %s: calloc: %s", pc->name, strerror(errno));
        free(bits);
        free(gens);
        free(seen);
        free(since);
        return -1;
    }
    if (rm_seg_pool_add(&M->seg, k, &spec, err, errlen) < 0) {
        free(bits);
        free(gens);
        free(seen);
        free(since);
        return -1;
    }
    struct pool_rt *pr = &M->pools[k];
    memset(pr, 0, sizeof *pr);
    set_pool_cfg(pr, pc);
    pr->shm = k;
    pr->zfd = -1;
    pr->zsb = NPROCS;
    pr->target = pc->workers + pc->spares;
    pr->generation = M->generation;
    pr->prev_generation = M->generation;
    pr->in_use = 1;
    pr->created = 1;
    pr->pend_bits = bits;
    pr->pend_gen = gens;
    pr->pend_cap = pc->queue_depth;
    pr->seen_word = seen;
    pr->seen_since = since;
    if (rm_pool_view_open(&M->seg, k, &pr->view) < 0) {
        snprintf(err, errlen, "pool %s: its new shared memory does not validate", pc->name);
        return -1; /* cannot happen: we just made it */
    }
    send_pool_to_gateways(k);
    return 0;
}

struct pool_rt *pool_by_name(const char *name)
{
    for (unsigned j = 0; j < RM_SHM_MAX_POOLS; j++)
        if (M->pools[j].in_use && strcmp(M->pools[j].cfg.name, name) == 0)
            return &M->pools[j];
    return NULL;
}

/* ------------------------------------------------------------------ pending re-queues */

/* Recovery found the pool's ring full: keep (slot, gen) for retry_pending.
 * A slot already pending takes the newer generation (struct pool_rt). */
void pool_pend_add(unsigned pool, uint32_t slot, uint32_t gen)
{
    struct pool_rt *pr = pool < RM_SHM_MAX_POOLS ? &M->pools[pool] : NULL;
    if (!pr || !pr->pend_bits || slot >= pr->pend_cap) {
        /* Recovery bounds slots by the shared descriptor: one beyond the
         * pool's own queue_depth means the descriptor was overwritten. */
        rm_err("pending re-queue: slot %u of pool %u is outside the pool's queue_depth: "
               "it waits for its gateway's deadline", slot, pool);
        return;
    }
    uint64_t bit = UINT64_C(1) << (slot % 64);
    if (!(pr->pend_bits[slot / 64] & bit)) {
        pr->pend_bits[slot / 64] |= bit;
        pr->npend++;
    }
    pr->pend_gen[slot] = gen;
}

void retry_pending(void)
{
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        struct pool_rt *pr = &M->pools[i];
        if (!pr->npend)
            continue;
        for (uint32_t w = 0; w < (pr->pend_cap + 63u) / 64u; w++) {
            for (uint64_t bits = pr->pend_bits[w]; bits; bits &= bits - 1) {
                uint32_t slot = w * 64u + (uint32_t)__builtin_ctzll(bits);
                if (rm_recovery_retry(&M->seg, i, slot, pr->pend_gen[slot])) {
                    pr->pend_bits[w] &= ~(UINT64_C(1) << (slot % 64));
                    pr->npend--;
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ checks */

static uint64_t proc_rss_bytes(pid_t pid);

void check_procs(uint64_t now)
{
    const uint64_t hb_timeout = M->cfg.heartbeat_timeout * MS;
    for (unsigned sb = 0; sb < NPROCS; sb++) {
        struct proc *p = &M->procs[sb];
        if (!p->pid)
            continue;
        if (p->kill_at && now >= p->kill_at) {
            proc_signal(p, SIGKILL);
            p->kill_at = UINT64_MAX; /* sent; wait for the reap */
            continue;
        }
        if (p->kill_at)
            continue;
        struct rm_sb_entry *e = rm_seg_sb(&M->seg, sb);
        /* acquire: pairs with the process's release stores of its state
         * (worker.c, gateway.c, preloader.c). */
        unsigned st = atomic_load_explicit(&e->state, memory_order_acquire);
        /* relaxed: a timestamp, compared only; nothing is read through it. */
        uint64_t hb = atomic_load_explicit(&e->heartbeat_ns, memory_order_relaxed);
        if (!p->ready_ns && (st == RM_PROC_READY || st == RM_PROC_BUSY))
            p->ready_ns = now;
        /* Serving for a while ends a series of early deaths. */
        if (p->ready_ns && now - p->ready_ns >= EARLY_DEATH_NS) {
            if (p->role == RM_ROLE_GATEWAY)
                M->gw_early_deaths = 0;
            else if (p->pool < RM_SHM_MAX_POOLS)
                M->pools[p->pool].early_deaths = 0;
        }
        if ((p->role == RM_ROLE_WORKER || p->role == RM_ROLE_PRELOADER) && st == RM_PROC_STARTING) {
            struct pool_rt *pr = &M->pools[p->pool];
            if (now - p->spawn_ns > pr->cfg.startup_timeout * MS) {
                reload_note_startup_timeout(pr, p);
                kill_proc(p, RM_RESTART_INIT_FAILED, "not ready within startup_timeout");
            }
            continue;
        }
        if (st == RM_PROC_BUSY && p->role == RM_ROLE_WORKER) {
            /* Busy: the request's deadline, not the heartbeat, decides. */
            /* acquire: pairs with the worker's release store of cur_slot
             * (worker.c run_slot). */
            uint32_t s = atomic_load_explicit(&e->cur_slot, memory_order_acquire);
            const struct rm_pool_view *v = &M->pools[p->pool].view;
            /* cur_slot is the worker's word: bounded by the master's private
             * view. The deadline is in the request meta, which gateways
             * write and workers cannot. */
            if (s >= v->nslots)
                continue;
            /* A stream that started (its first chunk written) is judged by
             * its silence and its overall cap instead (docs/streaming.md).
             * relaxed: the worker's words, compared only; a worker that
             * scribbles on them is still held to stream_timeout, counted
             * from accept_ns in request meta (R: workers cannot write). */
            const struct rm_resp_meta *rm = &v->resp_meta[s];
            if (atomic_load_explicit(&((struct rm_resp_meta *)rm)->s_wpos, memory_order_relaxed) > 0) {
                /* relaxed: policy values the master itself stored */
                uint64_t cap = atomic_load_explicit(&v->desc->stream_timeout_ns, memory_order_relaxed);
                uint64_t idle = atomic_load_explicit(&v->desc->stream_idle_ns, memory_order_relaxed);
                uint64_t beat = atomic_load_explicit(&((struct rm_resp_meta *)rm)->s_beat_ns, memory_order_relaxed);
                uint64_t acc = v->req_meta[s].accept_ns;
                if (now > acc && now - acc > cap)
                    kill_proc(p, RM_RESTART_TIMEOUT, "stream past stream_timeout");
                else if (now > beat && now - beat > idle)
                    kill_proc(p, RM_RESTART_TIMEOUT, "stream silent past stream_idle_timeout");
                continue;
            }
            if (now > v->req_meta[s].deadline_ns)
                kill_proc(p, RM_RESTART_TIMEOUT, "request past its deadline");
            continue;
        }
        if ((st == RM_PROC_READY || st == RM_PROC_DRAINING) && now > hb && now - hb > hb_timeout)
            kill_proc(p, RM_RESTART_HEARTBEAT, "no heartbeat");
        if (p->role == RM_ROLE_WORKER && p->max_requests && !p->recycling && !p->retiring &&
            /* relaxed: a counter, compared only (the worker's own relaxed store). */
            atomic_load_explicit(&e->served, memory_order_relaxed) >= p->max_requests) {
            /* Recycle through the handover: the replacement starts now, this
             * one keeps serving until the replacement is ready (reconcile). */
            p->recycling = 1;
            /* relaxed: a statistics counter (single writer, the master). */
            atomic_fetch_add_explicit(&rm_seg_master_stats(&M->seg, M->pools[p->pool].shm)->restarts[RM_RESTART_RECYCLED],
                                      1, memory_order_relaxed);
        }
        /* max_worker_memory: a worker that grew past it is recycled
         * through the same handover (its replacement is ready first). Read
         * from /proc, the kernel's truth, about once a second per worker. */
        uint64_t limit = p->role == RM_ROLE_WORKER && p->pool < RM_SHM_MAX_POOLS
                             ? M->pools[p->pool].cfg.max_worker_memory : 0;
        if (limit && !p->recycling && !p->retiring && now >= p->next_mem_check_ns) {
            p->next_mem_check_ns = now + 1000 * MS;
            uint64_t rss = proc_rss_bytes(p->pid);
            if (rss > limit) {
                char nb[96];
                rm_notice("%s (pid %d) uses %llu MiB, over max_worker_memory (%llu MiB): recycling it",
                          proc_name(p, nb, sizeof nb), (int)p->pid, (unsigned long long)(rss >> 20),
                          (unsigned long long)(limit >> 20));
                p->recycling = 1;
                /* relaxed: a statistics counter (single writer, the master). */
                atomic_fetch_add_explicit(&rm_seg_master_stats(&M->seg, M->pools[p->pool].shm)->restarts[RM_RESTART_MEMORY],
                                          1, memory_order_relaxed);
            }
        }
    }
}

/* Resident memory of pid, from /proc/PID/statm (0 if it is gone). */
static uint64_t proc_rss_bytes(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned long long size = 0, resident = 0;
    int ok = fscanf(f, "%llu %llu", &size, &resident) == 2;
    fclose(f);
    return ok ? resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

/* ------------------------------------------------------------------ published state */

void publish_worker_counts(void)
{
    uint32_t counts[RM_SHM_MAX_POOLS][8];
    memset(counts, 0, sizeof counts);
    for (unsigned pidx = 0; pidx < RM_SHM_MAX_POOLS; pidx++) {
        if (!M->pools[pidx].created)
            continue;
        unsigned sb;
        struct proc *p;
        /* Only processes the master knows to be alive count, whatever the
         * scoreboard says; their state is what they report (bounded). */
        for_each_pool_worker(pidx, sb, p) {
            if (!p->pid || p->kill_at)
                continue;
            /* acquire: pairs with the worker's release stores of its state */
            unsigned st = atomic_load_explicit(&rm_seg_sb(&M->seg, sb)->state, memory_order_acquire);
            if (st < RM_PROC_NSTATES)
                counts[pidx][st]++;
        }
        struct rm_shm_pool *sp = rm_seg_pool(&M->seg, pidx);
        for (unsigned st = 0; st < 8; st++)
            /* relaxed: gauges (layout.h) */
            atomic_store_explicit(&sp->workers[st], counts[pidx][st], memory_order_relaxed);
    }
}

void send_pool_to_gateways(unsigned k)
{
    int fd = M->seg.pool[k].fd;
    uint32_t msg = k;
    for (unsigned g = 0; g < RM_MAX_GATEWAYS; g++) {
        if (M->gw_chan[g] < 0)
            continue;
        char cbuf[CMSG_SPACE(sizeof(int))];
        memset(cbuf, 0, sizeof cbuf);
        struct iovec iov = {.iov_base = &msg, .iov_len = sizeof msg};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
        if (sendmsg(M->gw_chan[g], &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            rm_err("sendmsg(gateway %u channel, pool %s): %s: that gateway cannot serve the pool", g,
                   M->pools[k].cfg.name, strerror(errno));
    }
}

/* ------------------------------------------------------------------ reconcile */

/* A free entry in pool pidx's range of the scoreboard, or NPROCS. */
unsigned free_worker_entry(unsigned pidx)
{
    for (unsigned sb = pool_first_sb(pidx); sb < pool_first_sb(pidx) + RM_SB_PER_POOL; sb++)
        if (!M->procs[sb].pid && !M->procs[sb].reserved && !M->procs[sb].poisoned)
            return sb;
    return NPROCS;
}

unsigned count_workers(const struct pool_rt *pr, unsigned pidx, uint32_t gen, int ready_only)
{
    unsigned n = 0, sb;
    const struct proc *p;
    for_each_pool_worker(pidx, sb, p) {
        if (p->retiring || p->recycling || p->generation != gen)
            continue;
        if (ready_only && !p->ready_ns)
            continue;
        n++;
    }
    (void)pr;
    return n;
}

void drain_proc(unsigned sb)
{
    struct proc *p = &M->procs[sb];
    p->retiring = 1;
    /* release: pairs with the worker's acquire load of flags. */
    atomic_fetch_or_explicit(&rm_seg_sb(&M->seg, sb)->flags, RM_SBF_DRAIN, memory_order_release);
}

/* Worker numbers in titles stay small: the lowest one no live worker of the
 * pool uses ("ringmaster: worker echo 0", like nginx and php-fpm). */
unsigned lowest_free_index(unsigned pidx)
{
    for (unsigned n = 0;; n++) {
        int used = 0;
        unsigned sb;
        struct proc *p;
        for_each_pool_worker(pidx, sb, p) {
            if (p->index == n) {
                used = 1;
                break;
            }
        }
        if (!used)
            return n;
    }
}

/* A removed pool: drain everything of it; once nothing is left, stop
 * serving it (404 from then on). */
static void remove_tick(struct pool_rt *pr, unsigned pidx)
{
    unsigned left = 0, sb;
    struct proc *p;
    for_each_pool_proc(pidx, POOL_ANY_ROLE, sb, p) {
        if (p->reserved)
            give_up_reservation(sb);
        if (p->pid && !p->retiring)
            drain_proc(sb);
        left += p->pid != 0;
    }
    if (left)
        return;
    /* release: gateways that see the pool inactive answer 404. */
    atomic_store_explicit(&rm_seg_pool(&M->seg, pr->shm)->active, 0, memory_order_release);
    if (pr->zfd >= 0)
        close(pr->zfd);
    pr->zfd = -1;
    pr->in_use = 0;
    rm_notice("pool %s removed", pr->cfg.name);
}

void reconcile(uint64_t now)
{
    if (M->stopping)
        return;
    /* Gateways start once every pool has a ready worker (or has failed), so
     * that connections made before that wait in the listen backlog instead
     * of getting 503 from a server that is still loading its models. */
    if (!M->gateways_started) {
        int ok = 1;
        for (unsigned i = 0; i < RM_SHM_MAX_POOLS && ok; i++) {
            struct pool_rt *pr = &M->pools[i];
            ok = !pr->in_use || pr->failed || count_workers(pr, i, pr->generation, 1) > 0 ||
                 now - M->started_ns > pr->cfg.startup_timeout * MS;
        }
        M->gateways_started = ok;
    }
    for (unsigned g = 0; g < M->cfg.gateways && M->gateways_started; g++)
        if (!M->procs[g].pid && now >= M->gw_next_spawn_ns)
            spawn(g, RM_ROLE_GATEWAY, 0, g);
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        struct pool_rt *pr = &M->pools[i];
        unsigned sb;
        struct proc *p;
        if (pr->in_use && pr->removing) {
            remove_tick(pr, i);
            continue;
        }
        if (!pr->in_use || pr->failed || pr->healing)
            continue; /* a pool being rebuilt gets fresh workers once it is (heal.c) */
        if (pr->cfg.preload && !preloader_ready(pr, i, now))
            continue; /* workers of this pool are forked by its preloader */
        while (count_workers(pr, i, pr->generation, 0) < pr->target && now >= pr->next_spawn_ns) {
            sb = free_worker_entry(i);
            if (sb == NPROCS) {
                rm_err("pool %s: its %u scoreboard entries are all in use: cannot start another worker",
                       pr->cfg.name, RM_SB_PER_POOL);
                break;
            }
            if ((pr->cfg.preload ? request_worker(pr, i, sb) : spawn(sb, RM_ROLE_WORKER, i, lowest_free_index(i))) < 0)
                break;
        }
        /* Recycling workers (max_requests reached, or left over from a
         * rolled-back generation) drain once their replacements are ready. */
        for_each_pool_worker(i, sb, p) {
            if (p->pid && p->recycling && !p->retiring && count_workers(pr, i, pr->generation, 1) >= pr->target) {
                char nb[96];
                rm_info("%s (pid %d): replacement ready, draining it", proc_name(p, nb, sizeof nb), p->pid);
                drain_proc(sb);
            }
        }
        /* More workers than the target (TTOU): drain the youngest extra. */
        while (count_workers(pr, i, pr->generation, 0) > pr->target) {
            struct proc *victim = NULL;
            for_each_pool_worker(i, sb, p) {
                if (p->pid && !p->retiring && !p->recycling && p->generation == pr->generation &&
                    (!victim || p->spawn_ns > victim->spawn_ns))
                    victim = p;
            }
            if (!victim)
                break;
            victim->retiring = 1;
            /* release: pairs with the worker's acquire load of flags. */
            atomic_fetch_or_explicit(&rm_seg_sb(&M->seg, (unsigned)(victim - M->procs))->flags, RM_SBF_DRAIN,
                                     memory_order_release);
        }
    }
}

/* ------------------------------------------------------------------ readiness */

int all_pools_ready(char *why, size_t len)
{
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        struct pool_rt *pr = &M->pools[i];
        if (!pr->in_use || pr->removing)
            continue;
        if (pr->failed) {
            snprintf(why, len, "pool %s failed", pr->cfg.name);
            return 0;
        }
        if (pr->healing) {
            snprintf(why, len, "pool %s is being rebuilt", pr->cfg.name);
            return 0;
        }
        unsigned n = 0, sb;
        struct proc *p;
        for_each_pool_worker(i, sb, p)
            if (p->pid && p->ready_ns)
                n++;
        if (!n) {
            snprintf(why, len, "pool %s has no ready worker", pr->cfg.name);
            return 0;
        }
    }
    for (unsigned g = 0; g < M->cfg.gateways; g++)
        if (!M->procs[g].pid || !M->procs[g].ready_ns) {
            snprintf(why, len, "gateway %u not ready", g);
            return 0;
        }
    return 1;
}
