/* segment.c - the shared-memory segment. See segment.h and layout.h. */
#include "shm/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm/clock.h"
#include "shm/ring.h"
#include "shm/slot.h"

#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))
#define PAGE 4096u

static uint64_t ring_cells_for(uint32_t nslots)
{
    /* Twice the slots: a slot is on the ring at most once except for the
     * rare harmless duplicate that recovery may add (docs/shm.md). */
    return rm_ring_size_for(nslots * 2u);
}

uint64_t rm_pool_bytes(const struct rm_pool_spec *s)
{
    uint64_t n = 0;
    n += ALIGN_UP(rm_ring_bytes((uint32_t)ring_cells_for(s->nslots)), PAGE);
    n += ALIGN_UP((uint64_t)s->nslots * sizeof(uint64_t), PAGE);
    n += ALIGN_UP((uint64_t)s->nslots * sizeof(struct rm_slot_meta), PAGE);
    n += ALIGN_UP((uint64_t)s->nslots * ALIGN_UP(s->max_req, 64), PAGE);
    n += ALIGN_UP((uint64_t)s->nslots * ALIGN_UP(s->max_resp, 64), PAGE);
    return n;
}

int rm_seg_create(struct rm_seg *seg, uint32_t nprocs, uint32_t max_gateways,
                  uint64_t arena_size, char *err, size_t errlen)
{
    memset(seg, 0, sizeof *seg);
    seg->fd = -1;
    if (nprocs == 0 || nprocs > RM_SHM_MAX_PROCS || max_gateways > nprocs) {
        snprintf(err, errlen, "segment for %u processes (%u gateways): at most %u processes",
                 nprocs, max_gateways, RM_SHM_MAX_PROCS);
        return -1;
    }
    uint64_t off = ALIGN_UP(sizeof(struct rm_shm_header), RM_CACHELINE);
    uint64_t pools_off = off;
    off = ALIGN_UP(off + sizeof(struct rm_shm_pool) * RM_SHM_MAX_POOLS, RM_CACHELINE);
    uint64_t sb_off = off;
    off = ALIGN_UP(off + sizeof(struct rm_sb_entry) * (uint64_t)nprocs, RM_CACHELINE);
    uint64_t gw_stats_off = off;
    off = ALIGN_UP(off + sizeof(struct rm_gw_stats) * (uint64_t)max_gateways * RM_SHM_MAX_POOLS, RM_CACHELINE);
    uint64_t master_stats_off = off;
    off = ALIGN_UP(off + sizeof(struct rm_master_stats) * RM_SHM_MAX_POOLS, PAGE);
    uint64_t arena_off = off;
    uint64_t size = ALIGN_UP(arena_off + arena_size, PAGE);

    int fd = memfd_create("ringmaster", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        snprintf(err, errlen, "memfd_create: %s", strerror(errno));
        return -1;
    }
    if (ftruncate(fd, (off_t)size) < 0) {
        snprintf(err, errlen, "ftruncate(%llu bytes): %s", (unsigned long long)size, strerror(errno));
        close(fd);
        return -1;
    }
    /* Nobody may resize it under the mappings (a shrink would SIGBUS every
     * process touching the lost pages). */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
        snprintf(err, errlen, "fcntl(F_ADD_SEALS): %s", strerror(errno));
        close(fd);
        return -1;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "mmap(%llu bytes): %s", (unsigned long long)size, strerror(errno));
        close(fd);
        return -1;
    }
    seg->base = base;
    seg->size = size;
    seg->fd = fd;
    seg->owner = true;
    seg->hdr = base;

    struct rm_shm_header *h = seg->hdr;  /* fresh memfd pages are zero */
    h->layout_version = RM_SHM_LAYOUT_VERSION;
    h->header_size = sizeof *h;
    h->size = size;
    h->master_pid = (int32_t)getpid();
    h->nprocs = nprocs;
    h->birth_mono_ns = rm_now_ns();
    h->max_pools = RM_SHM_MAX_POOLS;
    h->max_gateways = max_gateways;
    h->pools_off = pools_off;
    h->sb_off = sb_off;
    h->gw_stats_off = gw_stats_off;
    h->master_stats_off = master_stats_off;
    h->arena_off = arena_off;
    h->arena_size = size - arena_off;
    seg->pools_off = pools_off;
    seg->sb_off = sb_off;
    seg->gw_stats_off = gw_stats_off;
    seg->master_stats_off = master_stats_off;
    seg->nprocs = nprocs;
    seg->max_gateways = max_gateways;
    for (uint32_t i = 0; i < nprocs; i++) {
        struct rm_sb_entry *e = rm_seg_sb(seg, i);
        atomic_store_explicit(&e->cur_slot, RM_NO_SLOT, memory_order_relaxed);
    }
    return 0;
}

void rm_seg_publish(struct rm_seg *seg)
{
    /* F1: release store of the magic: every header, pool and slot
     * initialisation before it is visible to a reader whose acquire load in
     * rm_seg_validate sees the magic. */
    uint64_t magic;
    memcpy(&magic, RM_SHM_MAGIC, sizeof magic);
    /* The magic is one aligned 64-bit word (offset 0 of the segment). */
    atomic_store_explicit((_Atomic uint64_t *)(void *)seg->hdr->magic, magic, memory_order_release);
}

int rm_seg_pool_add(struct rm_seg *seg, unsigned idx, const struct rm_pool_spec *s,
                    char *err, size_t errlen)
{
    if (idx >= RM_SHM_MAX_POOLS) {
        snprintf(err, errlen, "pool index %u out of range", idx);
        return -1;
    }
    if (s->nslots == 0 || s->nslots > RM_RING_MAX_VALUE || !ring_cells_for(s->nslots)) {
        snprintf(err, errlen, "pool %s: queue_depth %u out of range", s->name, s->nslots);
        return -1;
    }
    uint64_t need = rm_pool_bytes(s);
    if (seg->arena_used + need > seg->hdr->arena_size) {
        snprintf(err, errlen, "pool %s: needs %llu bytes of shared memory, %llu left",
                 s->name, (unsigned long long)need,
                 (unsigned long long)(seg->hdr->arena_size - seg->arena_used));
        return -1;
    }
    struct rm_shm_pool *p = rm_seg_pool(seg, idx);
    uint64_t off = seg->hdr->arena_off + seg->arena_used;
    uint32_t cells = (uint32_t)ring_cells_for(s->nslots);

    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", s->name);
    snprintf(p->handler, sizeof p->handler, "%s", s->handler ? s->handler : "");
    p->nslots = s->nslots;
    /* relaxed: published with the rest of the descriptor by the release
     * store of active below. */
    atomic_store_explicit(&p->max_attempts, s->max_attempts, memory_order_relaxed);
    atomic_store_explicit(&p->request_timeout_ns, s->request_timeout_ns, memory_order_relaxed);
    p->max_req = s->max_req;
    p->max_resp = s->max_resp;
    p->req_stride = ALIGN_UP(s->max_req, 64);
    p->resp_stride = ALIGN_UP(s->max_resp, 64);
    p->ring_off = off;
    off += ALIGN_UP(rm_ring_bytes(cells), PAGE);
    p->states_off = off;
    off += ALIGN_UP((uint64_t)s->nslots * sizeof(uint64_t), PAGE);
    p->meta_off = off;
    off += ALIGN_UP((uint64_t)s->nslots * sizeof(struct rm_slot_meta), PAGE);
    p->req_off = off;
    off += ALIGN_UP((uint64_t)s->nslots * p->req_stride, PAGE);
    p->resp_off = off;
    off += ALIGN_UP((uint64_t)s->nslots * p->resp_stride, PAGE);
    seg->arena_used += need;

    rm_ring_init(rm_pool_ring(seg, p), cells);
    for (uint32_t i = 0; i < s->nslots; i++) {
        /* Keep generations rising across a pool's reuse of arena bytes.
         * relaxed: published by the release store of active (or the magic). */
        atomic_store_explicit(rm_pool_state(seg, p, i), RM_SLOT_WORD(1, 0, 0, RM_SLOT_FREE),
                              memory_order_relaxed);
        memset(rm_pool_meta(seg, p, i), 0, sizeof(struct rm_slot_meta));
    }
    /* release: pairs with the acquire load of active by gateways and ctl. */
    atomic_store_explicit(&p->active, 1, memory_order_release);
    return 0;
}

static int check_range(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

int rm_seg_validate(const void *base, size_t size, char *err, size_t errlen)
{
    const struct rm_shm_header *h = base;
    if (size < sizeof *h) {
        snprintf(err, errlen, "segment truncated: %zu bytes, header needs %zu", size, sizeof *h);
        return -1;
    }
    /* The magic is the last thing written (F1): check it first. acquire:
     * pairs with F1, so everything below is the published header. */
    uint64_t magic, want;
    magic = atomic_load_explicit((_Atomic uint64_t *)(void *)h->magic, memory_order_acquire);
    memcpy(&want, RM_SHM_MAGIC, sizeof want);
    if (magic != want) {
        snprintf(err, errlen, "bad magic: not a ringmaster segment, or not published yet");
        return -1;
    }
    if (h->layout_version != RM_SHM_LAYOUT_VERSION) {
        snprintf(err, errlen, "layout version %u, this program reads version %u (ringmaster and ringmasterctl differ?)",
                 h->layout_version, RM_SHM_LAYOUT_VERSION);
        return -1;
    }
    if (h->header_size != sizeof *h) {
        snprintf(err, errlen, "header size %u, expected %zu", h->header_size, sizeof *h);
        return -1;
    }
    if (h->size != size) {
        snprintf(err, errlen, "segment truncated or resized: header says %llu bytes, mapping has %zu",
                 (unsigned long long)h->size, size);
        return -1;
    }
    if (h->max_pools != RM_SHM_MAX_POOLS || h->nprocs == 0 || h->nprocs > 65535 ||
        h->max_gateways == 0 || h->max_gateways > 65535) {
        snprintf(err, errlen, "header counts out of range (pools %u, procs %u, gateways %u)",
                 h->max_pools, h->nprocs, h->max_gateways);
        return -1;
    }
    if (!check_range(h->pools_off, sizeof(struct rm_shm_pool) * RM_SHM_MAX_POOLS, size) ||
        !check_range(h->sb_off, sizeof(struct rm_sb_entry) * (uint64_t)h->nprocs, size) ||
        !check_range(h->gw_stats_off, sizeof(struct rm_gw_stats) * (uint64_t)h->max_gateways * RM_SHM_MAX_POOLS, size) ||
        !check_range(h->master_stats_off, sizeof(struct rm_master_stats) * RM_SHM_MAX_POOLS, size) ||
        !check_range(h->arena_off, h->arena_size, size) ||
        h->pools_off % RM_CACHELINE || h->sb_off % RM_CACHELINE ||
        h->gw_stats_off % RM_CACHELINE || h->master_stats_off % RM_CACHELINE) {
        snprintf(err, errlen, "section offsets out of bounds or misaligned");
        return -1;
    }
    const struct rm_shm_pool *pools = (const void *)((const unsigned char *)base + h->pools_off);
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        const struct rm_shm_pool *p = &pools[i];
        /* acquire: pairs with the master's release store of active, so the
         * descriptor read below is complete */
        if (!atomic_load_explicit(&p->active, memory_order_acquire))
            continue;
        uint64_t cells = rm_ring_size_for(p->nslots * 2u);
        if (p->nslots == 0 || p->nslots > RM_RING_MAX_VALUE || cells == 0 ||
            !check_range(p->ring_off, rm_ring_bytes((uint32_t)cells), size) ||
            !check_range(p->states_off, (uint64_t)p->nslots * 8, size) ||
            !check_range(p->meta_off, (uint64_t)p->nslots * sizeof(struct rm_slot_meta), size) ||
            p->req_stride < p->max_req || p->resp_stride < p->max_resp ||
            (p->req_stride && (uint64_t)p->nslots > UINT64_MAX / p->req_stride) ||
            (p->resp_stride && (uint64_t)p->nslots > UINT64_MAX / p->resp_stride) ||
            !check_range(p->req_off, (uint64_t)p->nslots * p->req_stride, size) ||
            !check_range(p->resp_off, (uint64_t)p->nslots * p->resp_stride, size) ||
            p->ring_off < h->arena_off || p->ring_off % RM_CACHELINE) {
            snprintf(err, errlen, "pool %u: offsets out of bounds", i);
            return -1;
        }
    }
    return 0;
}

int rm_seg_attach(struct rm_seg *seg, const char *path, bool writable, char *err, size_t errlen)
{
    memset(seg, 0, sizeof *seg);
    seg->fd = -1;
    int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "fstat %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if ((uint64_t)st.st_size < sizeof(struct rm_shm_header)) {
        snprintf(err, errlen, "%s: segment truncated: %lld bytes", path, (long long)st.st_size);
        close(fd);
        return -1;
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "mmap %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    char why[256];
    if (rm_seg_validate(base, (size_t)st.st_size, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        munmap(base, (size_t)st.st_size);
        close(fd);
        return -1;
    }
    seg->base = base;
    seg->size = (size_t)st.st_size;
    seg->hdr = base;
    seg->fd = fd;
    seg->pools_off = seg->hdr->pools_off;
    seg->sb_off = seg->hdr->sb_off;
    seg->gw_stats_off = seg->hdr->gw_stats_off;
    seg->master_stats_off = seg->hdr->master_stats_off;
    seg->nprocs = seg->hdr->nprocs;
    seg->max_gateways = seg->hdr->max_gateways;
    return 0;
}

void rm_seg_close(struct rm_seg *seg)
{
    if (seg->base)
        munmap(seg->base, seg->size);
    if (seg->fd >= 0)
        close(seg->fd);
    memset(seg, 0, sizeof *seg);
    seg->fd = -1;
}

bool rm_pool_geometry_valid(const struct rm_seg *seg, const struct rm_shm_pool *p, uint32_t cells)
{
    uint64_t size = seg->size;
    uint32_t n = p->nslots;
    if (n == 0 || n > RM_RING_MAX_VALUE / 2 || p->max_req == 0 || p->max_resp == 0)
        return false;
    if (p->req_stride < p->max_req || p->resp_stride < p->max_resp ||
        p->req_stride > UINT64_MAX / n || p->resp_stride > UINT64_MAX / n)
        return false;
    if (cells == 0 || cells != rm_ring_size_for(n * 2u) || p->ring_off % RM_CACHELINE || p->states_off % 8 ||
        p->meta_off % 8)
        return false;
    if (!check_range(p->ring_off, rm_ring_bytes(cells), size) ||
        !check_range(p->states_off, (uint64_t)n * sizeof(uint64_t), size) ||
        !check_range(p->meta_off, (uint64_t)n * sizeof(struct rm_slot_meta), size) ||
        !check_range(p->req_off, (uint64_t)n * p->req_stride, size) ||
        !check_range(p->resp_off, (uint64_t)n * p->resp_stride, size))
        return false;
    const struct rm_ring *r = (const struct rm_ring *)(seg->base + p->ring_off);
    return r->size == cells && r->mask == cells - 1;
}

bool rm_pool_valid(const struct rm_seg *seg, const struct rm_shm_pool *p)
{
    return rm_pool_geometry_valid(seg, p, rm_ring_size_for(p->nslots * 2u));
}
