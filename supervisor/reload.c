/*
 * reload.c - SIGHUP and `ringmasterctl reload`: a new generation of workers
 * for every pool, handed over one worker at a time (reload_tick), and the
 * policy that rolls it back when the new generation cannot load (deaths and
 * missed startups of new workers are reported here by spawn.c and pools.c).
 * See docs/supervision.md, "Reload".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/paths.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "supervisor/master_int.h"
#include "worker/handler.h"

static int pool_layout_same(const struct rm_pool_config *a, const struct rm_pool_config *b)
{
    return a->queue_depth == b->queue_depth && a->max_request_size == b->max_request_size &&
           a->max_response_size == b->max_response_size;
}

void reload_finished(int ok, const char *why)
{
    char msg[600];
    if (ok)
        snprintf(msg, sizeof msg, "ok\n");
    else
        snprintf(msg, sizeof msg, "error: %s\n", why);
    for (int i = 0; i < MAX_CTL; i++)
        if (M->ctl[i].fd >= 0 && M->ctl[i].waiting_reload == 1)
            ctl_reply(&M->ctl[i], msg);
    if (!M->reload_queued || M->stopping || M->stop_at)
        return;
    /* A reload was asked for while this one ran: start it now, and the
     * clients that asked get its result. */
    M->reload_queued = 0;
    char next_why[512];
    int r = begin_reload(next_why, sizeof next_why);
    for (int i = 0; i < MAX_CTL; i++) {
        if (M->ctl[i].fd < 0 || M->ctl[i].waiting_reload != 2)
            continue;
        if (r < 0) {
            snprintf(msg, sizeof msg, "error: %s\n", next_why);
            ctl_reply(&M->ctl[i], msg);
        } else {
            M->ctl[i].waiting_reload = 1;
        }
    }
    if (r < 0)
        rm_err("reload refused, nothing changed: %s", next_why);
}

/*
 * Start a reload: validate the new file, then start a new generation of
 * workers for every pool. Old workers drain one by one as new ones become
 * ready (reload_tick). Pools added by the file are created; pools removed
 * drain and then answer 404 (reconcile). A pool whose queue_depth or max
 * sizes changed needs a restart (its shared-memory layout is fixed): refused.
 * Everything a rollback needs is saved per pool first.
 */
static int start_reload(char *why, size_t len);

/* The same address list (parsed: blanks and spelling of "off" aside). */
static bool same_addrs(const struct rm_listen_addr *a, size_t na, const struct rm_listen_addr *b, size_t nb)
{
    /* memcmp is exact: the parser zeroes each address before filling it */
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* A reload that cannot start (a bad file) counts as a failed one. */
int begin_reload(char *why, size_t len)
{
    int r = start_reload(why, len);
    if (r < 0)
        /* relaxed: a counter for /metrics and ctl; nothing is published with it. */
        atomic_fetch_add_explicit(&M->seg.hdr->reloads_failed, 1, memory_order_relaxed);
    return r;
}

static int start_reload(char *why, size_t len)
{
    struct rm_config *nc = calloc(1, sizeof *nc);
    if (!nc) {
        snprintf(why, len, "out of memory");
        return -1;
    }
    char err[1600];
    if (rm_config_load(nc, M->cfg.path, err, sizeof err) < 0) {
        snprintf(why, len, "%s", err);
        free(nc);
        return -1;
    }
    /* Strict keys of built-in handlers (resolving a built-in runs no
     * handler code); a .so's keys are checked by its workers. */
    for (size_t i = 0; i < nc->npools; i++) {
        const struct rm_handler *h;
        void *dl;
        if (rm_handler_is_builtin(nc->pools[i].handler) &&
            rm_handler_resolve(nc->pools[i].handler, &h, &dl, err, sizeof err) == 0 &&
            rm_config_check_handler_keys(nc, i, h->name, h->keys, err, sizeof err) < 0) {
            snprintf(why, len, "%s", err);
            free(nc);
            return -1;
        }
    }
    rm_runtime_dir_resolve(nc);
    if (nc->gateways != M->cfg.gateways || strcmp(nc->runtime_dir, M->cfg.runtime_dir) != 0) {
        snprintf(why, len, "gateways and runtime_dir cannot change on reload: restart ringmaster");
        free(nc);
        return -1;
    }
    /* The sockets are bound once, at start: a changed address would be
     * ignored without a word. Under socket activation systemd owns listen
     * (and metrics_listen too when it passes a "metrics" socket). */
    if ((!M->lis.from_systemd && !same_addrs(nc->listen_addrs, nc->nlisten, M->cfg.listen_addrs, M->cfg.nlisten)) ||
        (!M->lis.metrics_from_systemd &&
         !same_addrs(nc->metrics_addrs, nc->nmetrics, M->cfg.metrics_addrs, M->cfg.nmetrics))) {
        snprintf(why, len, "listen and metrics_listen cannot change on reload: restart ringmaster");
        free(nc);
        return -1;
    }
    unsigned adding = 0;
    for (size_t i = 0; i < nc->npools; i++) {
        struct pool_rt *pr = pool_by_name(nc->pools[i].name);
        if (!pr) {
            adding++;
        } else if (!pool_layout_same(&pr->cfg, &nc->pools[i])) {
            snprintf(why, len, "pool %s: queue_depth, max_request_size and max_response_size cannot change on reload: restart ringmaster",
                     nc->pools[i].name);
            free(nc);
            return -1;
        }
    }
    unsigned free_entries = 0;
    for (unsigned k = 0; k < RM_SHM_MAX_POOLS; k++)
        free_entries += pool_entry_free(k);
    if (adding > free_entries) {
        snprintf(why, len, "%u new pools, room for %u more in shared memory: restart ringmaster", adding, free_entries);
        free(nc);
        return -1;
    }

    rm_notice("reload: %s parsed, starting a new generation", nc->path);
    notify_reloading();
    M->old_cfg = M->cfg;
    M->generation++; /* never reused, even after a rollback */
    M->reloading = 1;
    M->reload_started = rm_now_ns();
    M->reload_error[0] = '\0';
    M->cfg.heartbeat_interval = nc->heartbeat_interval;
    M->cfg.heartbeat_timeout = nc->heartbeat_timeout;
    M->cfg.shutdown_timeout = nc->shutdown_timeout;
    M->cfg.drain_delay = nc->drain_delay;
    M->cfg.backoff_max = nc->backoff_max;

    for (unsigned j = 0; j < RM_SHM_MAX_POOLS; j++) {
        struct pool_rt *pr = &M->pools[j];
        if (!pr->in_use)
            continue;
        pr->prev_cfg = pr->cfg;
        pr->prev_target = pr->target;
        pr->prev_generation = pr->generation;
        pr->prev_removing = pr->removing;
        pr->added = 0;
        pr->reload_failures = 0;
        const struct rm_pool_config *pc = rm_config_pool(nc, pr->cfg.name);
        if (!pc) {
            if (!pr->removing)
                rm_notice("reload: pool %s removed: new requests get 404, its workers finish theirs", pr->cfg.name);
            pr->removing = 1;
            /* release: gateways (acquire) stop taking requests for it. */
            atomic_store_explicit(&rm_seg_pool(&M->seg, pr->shm)->active, 0, memory_order_release);
            continue;
        }
        set_pool_cfg(pr, pc);
        pr->removing = 0;
        pr->target = pc->workers + pc->spares;
        pr->generation = M->generation;
        pr->failed = 0;
        pr->early_deaths = 0;
        pr->next_spawn_ns = 0;
        struct rm_shm_pool *sp = rm_seg_pool(&M->seg, pr->shm);
        /* relaxed: single values, picked up by the next request (layout.h) */
        atomic_store_explicit(&sp->max_attempts, pc->max_attempts, memory_order_relaxed);
        char io[1024];
        pool_io_json(pc, io, sizeof io);
        rm_pool_io_write(&M->seg, pr->shm, io);
        atomic_store_explicit(&sp->request_timeout_ns, pc->request_timeout * MS, memory_order_relaxed);
        atomic_store_explicit(&sp->stream_idle_ns, pc->stream_idle_timeout * MS, memory_order_relaxed);
        atomic_store_explicit(&sp->stream_timeout_ns, pc->stream_timeout * MS, memory_order_relaxed);
        /* release: pairs with the gateways' acquire load of failed (submit.c). */
        atomic_store_explicit(&sp->failed, 0, memory_order_release);
    }
    for (size_t i = 0; i < nc->npools; i++) {
        if (pool_by_name(nc->pools[i].name))
            continue;
        if (add_pool(&nc->pools[i], err, sizeof err) < 0) {
            snprintf(M->reload_error, sizeof M->reload_error, "pool %s: %s", nc->pools[i].name, err);
            break;
        }
        struct pool_rt *pr = pool_by_name(nc->pools[i].name);
        pr->added = 1;
        pr->prev_target = 0;
        rm_notice("reload: pool %s added", nc->pools[i].name);
    }
    free(nc);
    return 0;
}

/* ------------------------------------------------------------------ failure policy */

int reload_note_early_death(struct pool_rt *pr, const struct proc *p, int init_failed, int early)
{
    int new_gen = M->reloading && !pr->added && p->generation == pr->generation &&
                  pr->generation != pr->prev_generation;
    if (!(M->reloading && (new_gen || pr->added) && (init_failed || early)))
        return 0;
    /* The new generation cannot load: roll the reload back rather than
     * respawn it forever. Its other workers dying before the rollback runs
     * are the reload's too: judged by the pool's own policy, the last one
     * would mark the pool failed (503 "failed to load") while the old
     * generation still serves. */
    if (!M->reload_error[0] && (init_failed || ++pr->reload_failures >= 3))
        snprintf(M->reload_error, sizeof M->reload_error, "pool %s: new workers %s", pr->cfg.name,
                 init_failed ? "failed handler init" : "died while loading, 3 times");
    return 1;
}

void reload_note_startup_timeout(const struct pool_rt *pr, const struct proc *p)
{
    if (M->reloading && p->generation == pr->generation && (pr->added || pr->generation != pr->prev_generation))
        snprintf(M->reload_error, sizeof M->reload_error, "pool %s: new worker not ready within startup_timeout",
                 pr->cfg.name);
}

/*
 * Roll back: every pool gets its previous configuration, target and
 * generation. New-generation workers that are ready keep serving until the
 * old generation is back to its target (they are drained like recycled
 * workers, reconcile), so no pool drops to zero; those still loading are
 * stopped. Pools the reload added are removed again.
 */
static void rollback(void)
{
    rm_err("reload failed, rolling back: %s", M->reload_error);
    for (unsigned j = 0; j < RM_SHM_MAX_POOLS; j++) {
        struct pool_rt *pr = &M->pools[j];
        if (!pr->in_use)
            continue;
        uint32_t new_gen = pr->generation;
        unsigned sb;
        struct proc *p;
        for_each_pool_proc(j, POOL_ANY_ROLE, sb, p) {
            if (p->generation != new_gen || p->retiring)
                continue;
            if (p->reserved)
                give_up_reservation(sb);
            if (!p->pid)
                continue;
            if (p->role == RM_ROLE_WORKER && p->ready_ns && !pr->added) {
                p->recycling = 1; /* serves until the old generation is back */
            } else {
                drain_proc(sb);
                if (!p->ready_ns)
                    kill_proc(p, RM_RESTART_RELOAD, "reload rolled back");
            }
        }
        if (pr->added) {
            pr->removing = 1;
            pr->target = 0;
            /* release: gateways (acquire) stop taking requests for it. */
            atomic_store_explicit(&rm_seg_pool(&M->seg, pr->shm)->active, 0, memory_order_release);
            continue;
        }
        set_pool_cfg(pr, &pr->prev_cfg);
        pr->target = pr->prev_target;
        pr->generation = pr->prev_generation;
        pr->removing = pr->prev_removing;
        if (!pr->removing) {
            /* release: pairs with the gateways' acquire load of active:
             * the descriptor is unchanged and serves again. */
            atomic_store_explicit(&rm_seg_pool(&M->seg, pr->shm)->active, 1, memory_order_release);
        }
        pr->failed = 0;
        pr->early_deaths = 0;
        pr->next_spawn_ns = 0;
        struct rm_shm_pool *sp = rm_seg_pool(&M->seg, pr->shm);
        /* relaxed: single values, picked up by the next request (layout.h) */
        atomic_store_explicit(&sp->max_attempts, pr->cfg.max_attempts, memory_order_relaxed);
        char io[1024];
        pool_io_json(&pr->cfg, io, sizeof io);
        rm_pool_io_write(&M->seg, pr->shm, io);
        atomic_store_explicit(&sp->request_timeout_ns, pr->cfg.request_timeout * MS, memory_order_relaxed);
        atomic_store_explicit(&sp->stream_idle_ns, pr->cfg.stream_idle_timeout * MS, memory_order_relaxed);
        atomic_store_explicit(&sp->stream_timeout_ns, pr->cfg.stream_timeout * MS, memory_order_relaxed);
        /* release: pairs with the gateways' acquire load of failed (submit.c). */
        atomic_store_explicit(&sp->failed, 0, memory_order_release);
    }
    M->cfg.heartbeat_interval = M->old_cfg.heartbeat_interval;
    M->cfg.heartbeat_timeout = M->old_cfg.heartbeat_timeout;
    M->cfg.shutdown_timeout = M->old_cfg.shutdown_timeout;
    M->cfg.drain_delay = M->old_cfg.drain_delay;
    M->cfg.backoff_max = M->old_cfg.backoff_max;
    M->reloading = 0;
    notify_ready();
    /* relaxed: a counter for /metrics and ctl; nothing is published with it. */
    atomic_fetch_add_explicit(&M->seg.hdr->reloads_failed, 1, memory_order_relaxed);
    reload_finished(0, M->reload_error);
}

void reload_tick(uint64_t now)
{
    if (!M->reloading)
        return;
    /* A reload that neither finishes nor fails (workers that keep dying in
     * ways backoff hides) must not hang ctl, systemd and later reloads. */
    uint64_t limit = 10000;
    for (unsigned j = 0; j < RM_SHM_MAX_POOLS; j++)
        if (M->pools[j].in_use && 2 * M->pools[j].cfg.startup_timeout + 10000 > limit)
            limit = 2 * M->pools[j].cfg.startup_timeout + 10000;
    if (!M->reload_error[0] && now - M->reload_started > limit * MS)
        snprintf(M->reload_error, sizeof M->reload_error, "the new generation did not take over within %.0f s",
                 limit / 1e3);
    if (M->reload_error[0]) {
        rollback();
        return;
    }
    int done = 1;
    for (unsigned j = 0; j < RM_SHM_MAX_POOLS; j++) {
        struct pool_rt *pr = &M->pools[j];
        unsigned sb;
        struct proc *p;
        if (!pr->in_use)
            continue;
        if (pr->removing) {
            done = 0; /* finished when reconcile has removed it */
            continue;
        }
        /* Hand over one at a time: for every new worker that is ready,
         * drain one old worker. Capacity never drops below the target. */
        unsigned new_ready = count_workers(pr, j, pr->generation, 1);
        unsigned old_alive = 0, old_total = 0;
        for_each_pool_worker(j, sb, p) {
            if (p->generation == pr->generation)
                continue;
            old_total++;
            old_alive += !p->retiring;
        }
        while (old_alive > 0 && new_ready + old_alive > pr->target) {
            for_each_pool_worker(j, sb, p) {
                if (p->pid && p->generation != pr->generation && !p->retiring) {
                    drain_proc(sb);
                    break;
                }
            }
            old_alive--;
        }
        if (old_total > 0 || new_ready < pr->target)
            done = 0;
    }
    if (done) {
        M->reloading = 0;
        /* relaxed: a counter for ctl (read relaxed); nothing is published with it. */
        atomic_fetch_add_explicit(&M->seg.hdr->reloads, 1, memory_order_relaxed);
        rm_notice("reload finished in %.2f s: generation %u serves", (now - M->reload_started) / 1e9, M->generation);
        notify_ready();
        reload_finished(1, NULL);
    }
}
