/*
 * notify.c - the master talks to systemd (sd_notify; a no-op without
 * NOTIFY_SOCKET): READY once every pool has a ready worker and every
 * gateway runs (again after a reload), RELOADING and STOPPING, WATCHDOG at
 * half of WATCHDOG_USEC, and a STATUS line every second. Only the master
 * talks to systemd: children drop its variables (child_setup, spawn.c).
 */
#include <stdarg.h>
#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "core/log.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "supervisor/master_int.h"

static void notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notify(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sd_notify(0, buf);
}

void notify_ready(void)
{
    notify("READY=1");
}

void notify_reloading(void)
{
    notify("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)(rm_now_ns() / 1000u));
}

void notify_stopping(void)
{
    notify("STOPPING=1");
}

void notify_watchdog_init(void)
{
    if (sd_watchdog_enabled(0, &M->watchdog_usec) <= 0)
        M->watchdog_usec = 0;
}

void systemd_tick(uint64_t now)
{
    char why[128];
    if (!M->notified_ready && !M->stopping && !M->reloading && all_pools_ready(why, sizeof why)) {
        notify_ready();
        M->notified_ready = 1;
        unsigned npools = 0;
        for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++)
            npools += M->pools[i].in_use && !M->pools[i].removing;
        rm_notice("ready: serving on %zu socket(s), %u pool(s)", M->lis.n, npools);
    }
    if (M->watchdog_usec && now >= M->next_watchdog_ns) {
        notify("WATCHDOG=1");
        M->next_watchdog_ns = now + M->watchdog_usec * 1000u / 2;
    }
    if (now >= M->next_status_ns) {
        unsigned workers = 0, ready = 0;
        uint64_t served = 0;
        for (unsigned sb = RM_MAX_GATEWAYS; sb < NPROCS; sb++)
            if (M->procs[sb].pid) {
                workers++;
                ready += M->procs[sb].ready_ns != 0;
            }
        /* The master's private copy of max_gateways, never the header's:
         * a child that overwrote the header cannot push this loop past the
         * statistics block. */
        for (unsigned g = 0; g < M->seg.max_gateways; g++)
            for (unsigned pl = 0; pl < RM_SHM_MAX_POOLS; pl++)
                /* relaxed: statistics counters (single writer: that gateway);
                 * a slightly stale sum is fine for a status line. */
                served += atomic_load_explicit(&rm_seg_gw_stats(&M->seg, g, pl)->outcomes[RM_OUT_OK], memory_order_relaxed);
        notify("STATUS=%s%u workers (%u ready), %llu requests served", M->stopping ? "stopping: " : M->reloading ? "reloading: " : "",
               workers, ready, (unsigned long long)served);
        M->next_status_ns = now + 1000 * MS;
    }
}
