/* segment.c - ringmaster's shared memory. See segment.h and layout.h. */
#include "shm/segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm/clock.h"
#include "shm/ring.h"
#include "shm/slot.h"

#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))
#define PAGE RM_PAGE

#define MEMFD_CTRL "ringmaster-ctrl"
#define MEMFD_SB "ringmaster-sb"
#define MEMFD_GW "ringmaster-gw"
#define MEMFD_POOL "ringmaster-pool-" /* + index */

static uint32_t ring_cells_for(uint32_t nslots)
{
    /* Twice the slots: a slot is on the ring at most once except for the
     * rare harmless duplicate that recovery may add (docs/shm.md). */
    return rm_ring_size_for(nslots * 2u);
}

/* ------------------------------------------------------------------ memfds */

/* A sealed memfd of size bytes (zero-filled). -1 with the reason in err. */
static int memfd_make(const char *name, uint64_t size, char *err, size_t errlen)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        snprintf(err, errlen, "memfd_create(%s): %s", name, strerror(errno));
        return -1;
    }
    if (ftruncate(fd, (off_t)size) < 0) {
        snprintf(err, errlen, "ftruncate(%s, %llu bytes): %s", name, (unsigned long long)size, strerror(errno));
        close(fd);
        return -1;
    }
    /* Nobody may resize it under the mappings (a shrink would SIGBUS every
     * process touching the lost pages). */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        snprintf(err, errlen, "fcntl(%s, F_ADD_SEALS): %s", name, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* A read-only open file description of fd: a mapping made from it can
 * never be made writable (mprotect fails with EACCES). */
static int ro_reopen(int fd, char *err, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    if (ro < 0)
        snprintf(err, errlen, "open(%s, O_RDONLY): %s", path, strerror(errno));
    return ro;
}

static void *map_fd(int fd, size_t size, int prot, const char *what, char *err, size_t errlen)
{
    void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "mmap(%s, %zu bytes): %s", what, size, strerror(errno));
        return NULL;
    }
    return p;
}

static void map_close(struct rm_seg_map *m)
{
    if (m->base)
        munmap(m->base, m->size);
    if (m->fd >= 0)
        close(m->fd);
    if (m->ro_fd >= 0)
        close(m->ro_fd);
    m->base = NULL;
    m->size = 0;
    m->fd = m->ro_fd = -1;
}

/* Make a whole map: memfd, read-only twin, read-write mapping. */
static int map_make(struct rm_seg_map *m, const char *name, uint64_t size, char *err, size_t errlen)
{
    m->base = NULL;
    m->size = 0;
    m->fd = m->ro_fd = -1;
    m->fd = memfd_make(name, size, err, errlen);
    if (m->fd < 0)
        return -1;
    m->ro_fd = ro_reopen(m->fd, err, errlen);
    m->base = map_fd(m->fd, (size_t)size, PROT_READ | PROT_WRITE, name, err, errlen);
    if (m->ro_fd < 0 || !m->base) {
        map_close(m);
        return -1;
    }
    m->size = (size_t)size;
    return 0;
}

/* ------------------------------------------------------------------ create */

static void seg_reset(struct rm_seg *seg)
{
    memset(seg, 0, sizeof *seg);
    seg->fd = seg->ro_fd = -1;
    seg->sb.fd = seg->sb.ro_fd = seg->gw.fd = seg->gw.ro_fd = -1;
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++)
        seg->pool[i].fd = seg->pool[i].ro_fd = -1;
}

int rm_seg_create(struct rm_seg *seg, uint32_t nprocs, uint32_t max_gateways, char *err, size_t errlen)
{
    seg_reset(seg);
    if (nprocs == 0 || nprocs > RM_SHM_MAX_PROCS || max_gateways > nprocs) {
        snprintf(err, errlen, "shared memory for %u processes (%u gateways): at most %u processes",
                 nprocs, max_gateways, RM_SHM_MAX_PROCS);
        return -1;
    }
    uint64_t pools_off = ALIGN_UP(sizeof(struct rm_shm_header), RM_CACHELINE);
    uint64_t master_stats_off = ALIGN_UP(pools_off + sizeof(struct rm_shm_pool) * RM_SHM_MAX_POOLS, RM_CACHELINE);
    uint64_t ctrl_size = ALIGN_UP(master_stats_off + sizeof(struct rm_master_stats) * RM_SHM_MAX_POOLS, PAGE);
    uint64_t sb_size = ALIGN_UP((uint64_t)nprocs * sizeof(struct rm_sb_entry), PAGE);
    uint64_t gw_size =
        ALIGN_UP((uint64_t)(max_gateways ? max_gateways : 1) * RM_GW_BLOCKS * sizeof(struct rm_gw_stats), PAGE);

    struct rm_seg_map ctrl;
    if (map_make(&ctrl, MEMFD_CTRL, ctrl_size, err, errlen) < 0)
        return -1;
    seg->base = ctrl.base;
    seg->size = ctrl.size;
    seg->fd = ctrl.fd;
    seg->ro_fd = ctrl.ro_fd;
    seg->hdr = (struct rm_shm_header *)seg->base;
    seg->owner = true;
    if (map_make(&seg->sb, MEMFD_SB, sb_size, err, errlen) < 0 ||
        map_make(&seg->gw, MEMFD_GW, gw_size, err, errlen) < 0) {
        rm_seg_close(seg);
        return -1;
    }

    struct rm_shm_header *h = seg->hdr; /* fresh memfd pages are zero */
    h->layout_version = RM_SHM_LAYOUT_VERSION;
    h->header_size = sizeof *h;
    h->size = ctrl_size;
    h->master_pid = (int32_t)getpid();
    h->nprocs = nprocs;
    h->birth_mono_ns = rm_now_ns();
    h->max_pools = RM_SHM_MAX_POOLS;
    h->max_gateways = max_gateways;
    h->pools_off = pools_off;
    h->master_stats_off = master_stats_off;
    h->sb_size = sb_size;
    h->gw_size = gw_size;
    seg->pools_off = pools_off;
    seg->master_stats_off = master_stats_off;
    seg->nprocs = nprocs;
    seg->max_gateways = max_gateways;
    for (uint32_t i = 0; i < nprocs; i++) {
        struct rm_sb_entry *e = rm_seg_sb(seg, i);
        /* relaxed: no child exists yet; fork() orders it before their reads. */
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
    /* The magic is one aligned 64-bit word (offset 0 of the ctrl memfd). */
    atomic_store_explicit((_Atomic uint64_t *)(void *)seg->hdr->magic, magic, memory_order_release);
}

/* ------------------------------------------------------------------ pools */

/* The geometry of a pool's memfd (layout.h): fills p's offsets, returns the size. */
static uint64_t pool_layout(const struct rm_pool_spec *s, struct rm_shm_pool *p)
{
    uint32_t cells = ring_cells_for(s->nslots);
    p->req_stride = ALIGN_UP(s->max_req, 64);
    p->resp_stride = ALIGN_UP(s->max_resp, 64);
    uint64_t off = PAGE; /* guard page */
    p->w_off = off;
    p->bell_off = off;
    off += ALIGN_UP(sizeof(struct rm_pool_bell), RM_CACHELINE);
    p->ring_off = off;
    off += ALIGN_UP(rm_ring_bytes(cells), RM_CACHELINE);
    p->states_off = off;
    off += ALIGN_UP((uint64_t)s->nslots * sizeof(uint64_t), RM_CACHELINE);
    p->resp_meta_off = off;
    off = ALIGN_UP(off + (uint64_t)s->nslots * sizeof(struct rm_resp_meta), PAGE);
    p->resp_off = off; /* last in W: a linear overflow runs into the guard page */
    off = ALIGN_UP(off + (uint64_t)s->nslots * p->resp_stride, PAGE);
    p->w_size = off - p->w_off;
    off += PAGE; /* guard page */
    p->r_off = off;
    p->req_meta_off = off;
    off = ALIGN_UP(off + (uint64_t)s->nslots * sizeof(struct rm_req_meta), PAGE);
    p->req_off = off;
    off = ALIGN_UP(off + (uint64_t)s->nslots * p->req_stride, PAGE);
    p->r_size = off - p->r_off;
    off += PAGE; /* guard page */
    p->size = off;
    return off;
}

uint64_t rm_pool_bytes(const struct rm_pool_spec *s)
{
    struct rm_shm_pool p;
    memset(&p, 0, sizeof p);
    return pool_layout(s, &p);
}

/* The three guard pages of a pool mapping: never readable or writable. */
static int pool_guards(unsigned char *base, const struct rm_shm_pool *p, char *err, size_t errlen)
{
    uint64_t guards[3] = {0, p->w_off + p->w_size, p->r_off + p->r_size};
    for (int i = 0; i < 3; i++)
        if (mprotect(base + guards[i], PAGE, PROT_NONE) < 0) {
            snprintf(err, errlen, "mprotect(guard page of pool %s, PROT_NONE): %s", p->name, strerror(errno));
            return -1;
        }
    return 0;
}

int rm_seg_pool_add(struct rm_seg *seg, unsigned idx, const struct rm_pool_spec *s, char *err, size_t errlen)
{
    if (idx >= RM_SHM_MAX_POOLS || seg->pool[idx].base) {
        snprintf(err, errlen, "pool index %u out of range or in use", idx);
        return -1;
    }
    if (s->nslots == 0 || s->nslots > RM_RING_MAX_VALUE / 2 || !ring_cells_for(s->nslots)) {
        snprintf(err, errlen, "pool %s: queue_depth %u out of range", s->name, s->nslots);
        return -1;
    }
    struct rm_shm_pool *p = rm_seg_pool(seg, idx);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", s->name);
    snprintf(p->handler, sizeof p->handler, "%s", s->handler ? s->handler : "");
    p->nslots = s->nslots;
    p->max_req = s->max_req;
    p->max_resp = s->max_resp;
    uint64_t size = pool_layout(s, p);
    char name[32];
    snprintf(name, sizeof name, MEMFD_POOL "%u", idx);
    struct rm_seg_map *m = &seg->pool[idx];
    if (map_make(m, name, size, err, errlen) < 0)
        return -1;
    if (pool_guards(m->base, p, err, errlen) < 0) {
        map_close(m);
        return -1;
    }
    snprintf(p->io[0], sizeof p->io[0], "%s", s->io_json ? s->io_json : "");
    /* relaxed: published with the rest of the descriptor by the release
     * store of active below. */
    atomic_store_explicit(&p->io_seq, 0, memory_order_relaxed);
    atomic_store_explicit(&p->max_attempts, s->max_attempts, memory_order_relaxed);
    atomic_store_explicit(&p->request_timeout_ns, s->request_timeout_ns, memory_order_relaxed);
    atomic_store_explicit(&p->stream_idle_ns, s->stream_idle_ns, memory_order_relaxed);
    atomic_store_explicit(&p->stream_timeout_ns, s->stream_timeout_ns, memory_order_relaxed);

    rm_ring_init(rm_pool_ring(seg, p), ring_cells_for(s->nslots));
    for (uint32_t i = 0; i < s->nslots; i++)
        /* relaxed: published by the release store of active (or the magic). */
        atomic_store_explicit(rm_pool_state(seg, p, i), RM_SLOT_WORD(1, 0, 0, RM_SLOT_FREE), memory_order_relaxed);
    /* release: pairs with the acquire load of active by gateways and ctl. */
    atomic_store_explicit(&p->active, 1, memory_order_release);
    return 0;
}

void rm_pool_io_write(struct rm_seg *seg, unsigned idx, const char *io_json)
{
    struct rm_shm_pool *p = rm_seg_pool(seg, idx);
    /* relaxed: the master is the only writer of io_seq */
    uint32_t seq = atomic_load_explicit(&p->io_seq, memory_order_relaxed);
    snprintf(p->io[(seq + 1) & 1], sizeof p->io[0], "%s", io_json ? io_json : "");
    /* release: pairs with rm_pool_io_read's acquire loads: who sees the new
     * seq sees the buffer written before it. */
    atomic_store_explicit(&p->io_seq, seq + 1, memory_order_release);
}

void rm_pool_io_read(const struct rm_shm_pool *p, char *out, size_t len)
{
    struct rm_shm_pool *q = (struct rm_shm_pool *)p;
    for (int tries = 0; tries < 8; tries++) {
        /* acquire (both): pair with the master's release store of io_seq */
        uint32_t s1 = atomic_load_explicit(&q->io_seq, memory_order_acquire);
        size_t n = strnlen(p->io[s1 & 1], sizeof p->io[0] - 1);
        if (n >= len)
            n = len - 1;
        memcpy(out, p->io[s1 & 1], n);
        out[n] = '\0';
        atomic_thread_fence(memory_order_acquire); /* the copy before the re-check */
        uint32_t s2 = atomic_load_explicit(&q->io_seq, memory_order_acquire);
        if (s2 - s1 < 2)
            return; /* the buffer we copied was not rewritten meanwhile */
    }
    out[0] = '\0';
}

int rm_seg_pool_map(struct rm_seg *seg, unsigned idx, int fd, char *err, size_t errlen)
{
    if (idx >= RM_SHM_MAX_POOLS) {
        snprintf(err, errlen, "pool index %u out of range", idx);
        return -1;
    }
    const struct rm_shm_pool *p = rm_seg_pool(seg, idx);
    /* acquire: pairs with the master's release store of active */
    if (!atomic_load_explicit(&p->active, memory_order_acquire) && !p->size) {
        snprintf(err, errlen, "pool %u: no descriptor", idx);
        return -1;
    }
    uint64_t size = p->size; /* ctrl: written by the master only, read once */
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "fstat(pool %u memfd): %s", idx, strerror(errno));
        return -1;
    }
    if ((uint64_t)st.st_size != size || size < 4 * PAGE) {
        snprintf(err, errlen, "pool %u: memfd has %lld bytes, its descriptor says %llu", idx, (long long)st.st_size,
                 (unsigned long long)size);
        return -1;
    }
    struct rm_seg_map m = {.fd = -1, .ro_fd = -1};
    m.base = map_fd(fd, (size_t)size, PROT_READ | PROT_WRITE, "pool", err, errlen);
    if (!m.base)
        return -1;
    m.size = (size_t)size;
    if (seg->pool[idx].base)
        munmap(seg->pool[idx].base, seg->pool[idx].size);
    seg->pool[idx] = m;
    if (!rm_pool_valid(seg, idx, p)) {
        snprintf(err, errlen, "pool %u: descriptor does not match its memory", idx);
        map_close(&seg->pool[idx]);
        return -1;
    }
    if (pool_guards(m.base, p, err, errlen) < 0) {
        map_close(&seg->pool[idx]);
        return -1;
    }
    return 0;
}

static int check_range(uint64_t off, uint64_t len, uint64_t lo, uint64_t hi)
{
    return off >= lo && off <= hi && len <= hi - off;
}

bool rm_pool_geometry_valid(const struct rm_seg *seg, unsigned idx, const struct rm_shm_pool *p, uint32_t cells)
{
    if (idx >= RM_SHM_MAX_POOLS || !seg->pool[idx].base)
        return false;
    const uint64_t size = seg->pool[idx].size;
    const uint32_t n = p->nslots;
    if (n == 0 || n > RM_RING_MAX_VALUE / 2 || p->max_req == 0 || p->max_resp == 0 || p->size != size)
        return false;
    if (p->req_stride < p->max_req || p->resp_stride < p->max_resp || p->req_stride > UINT64_MAX / n ||
        p->resp_stride > UINT64_MAX / n)
        return false;
    if (cells == 0 || cells != rm_ring_size_for(n * 2u) || p->ring_off % RM_CACHELINE || p->states_off % 8 ||
        p->bell_off % RM_CACHELINE || p->resp_meta_off % 8 || p->req_meta_off % 8)
        return false;
    /* W and R each inside the mapping, guard pages around them. */
    if (p->w_off < PAGE || p->w_off % PAGE || p->w_size % PAGE || p->r_off % PAGE || p->r_size % PAGE ||
        !check_range(p->w_off, p->w_size + PAGE, PAGE, size) ||
        !check_range(p->r_off, p->r_size + PAGE, p->w_off + p->w_size + PAGE, size))
        return false;
    const uint64_t w0 = p->w_off, w1 = p->w_off + p->w_size, r0 = p->r_off, r1 = p->r_off + p->r_size;
    if (!check_range(p->bell_off, sizeof(struct rm_pool_bell), w0, w1) ||
        !check_range(p->ring_off, rm_ring_bytes(cells), w0, w1) ||
        !check_range(p->states_off, (uint64_t)n * sizeof(uint64_t), w0, w1) ||
        !check_range(p->resp_meta_off, (uint64_t)n * sizeof(struct rm_resp_meta), w0, w1) ||
        !check_range(p->resp_off, (uint64_t)n * p->resp_stride, w0, w1) ||
        !check_range(p->req_meta_off, (uint64_t)n * sizeof(struct rm_req_meta), r0, r1) ||
        !check_range(p->req_off, (uint64_t)n * p->req_stride, r0, r1))
        return false;
    /* The ring's own size and mask words are not checked: they are in
     * memory the pool's workers write, and no reader uses them (ring.h). */
    return true;
}

bool rm_pool_valid(const struct rm_seg *seg, unsigned idx, const struct rm_shm_pool *p)
{
    return rm_pool_geometry_valid(seg, idx, p, rm_ring_size_for(p->nslots * 2u));
}

/* ------------------------------------------------------------------ confine */

void rm_seg_close_fds(struct rm_seg *seg)
{
    int *fds[] = {&seg->fd, &seg->ro_fd, &seg->sb.fd, &seg->sb.ro_fd, &seg->gw.fd, &seg->gw.ro_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        if (seg->pool[i].fd >= 0)
            close(seg->pool[i].fd);
        if (seg->pool[i].ro_fd >= 0)
            close(seg->pool[i].ro_fd);
        seg->pool[i].fd = seg->pool[i].ro_fd = -1;
    }
}

/* Map [off, off + len) of ro_fd read-only over the same bytes of base. */
static int remap_ro(unsigned char *base, uint64_t off, uint64_t len, int ro_fd, const char *what, char *err,
                    size_t errlen)
{
    if (ro_fd < 0) {
        snprintf(err, errlen, "%s: no read-only descriptor to map it from", what);
        return -1;
    }
    void *p = mmap(base + off, (size_t)len, PROT_READ, MAP_SHARED | MAP_FIXED, ro_fd, (off_t)off);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "mmap(%s, read-only, MAP_FIXED): %s", what, strerror(errno));
        return -1;
    }
    return 0;
}

int rm_seg_confine_gateway(struct rm_seg *seg, char *err, size_t errlen)
{
    int r = 0;
    if (seg->ro_fd >= 0)
        r = remap_ro(seg->base, 0, seg->size, seg->ro_fd, "ctrl", err, errlen);
    rm_seg_close_fds(seg);
    seg->owner = false;
    return r;
}

int rm_seg_confine_worker(struct rm_seg *seg, unsigned pool, uint32_t first_sb, uint32_t nsb, char *err,
                          size_t errlen)
{
    if (seg->confined) {
        rm_seg_close_fds(seg);
        return 0;
    }
    if (pool >= RM_SHM_MAX_POOLS || !seg->pool[pool].base) {
        snprintf(err, errlen, "pool %u is not mapped", pool);
        return -1;
    }
    /* ctrl: read-only from a read-only descriptor. */
    if (remap_ro(seg->base, 0, seg->size, seg->ro_fd, "ctrl", err, errlen) < 0)
        return -1;
    /* scoreboard: the pool's range only (whole pages); nsb 0: all of it
     * (tests that place entries freely). */
    uint64_t lo = (uint64_t)first_sb * sizeof(struct rm_sb_entry);
    uint64_t hi = lo + (uint64_t)nsb * sizeof(struct rm_sb_entry);
    if (nsb && (lo % PAGE || hi % PAGE || hi > seg->sb.size)) {
        snprintf(err, errlen, "scoreboard range %u+%u is not whole pages inside the scoreboard", first_sb, nsb);
        return -1;
    }
    if (nsb && ((lo && munmap(seg->sb.base, (size_t)lo) < 0) ||
                (hi < seg->sb.size && munmap(seg->sb.base + hi, seg->sb.size - (size_t)hi) < 0))) {
        snprintf(err, errlen, "munmap(scoreboard outside the pool's range): %s", strerror(errno));
        return -1;
    }
    /* gateway counters and every other pool: gone. */
    if (seg->gw.base && munmap(seg->gw.base, seg->gw.size) < 0) {
        snprintf(err, errlen, "munmap(gateway counters): %s", strerror(errno));
        return -1;
    }
    seg->gw.base = NULL;
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        if (i == pool || !seg->pool[i].base)
            continue;
        if (munmap(seg->pool[i].base, seg->pool[i].size) < 0) {
            snprintf(err, errlen, "munmap(pool %u): %s", i, strerror(errno));
            return -1;
        }
        seg->pool[i].base = NULL;
        seg->pool[i].size = 0;
    }
    /* its own pool's requests: read-only. The geometry comes from ctrl,
     * which only the master writes. */
    const struct rm_shm_pool *p = rm_seg_pool(seg, pool);
    if (!rm_pool_valid(seg, pool, p)) {
        snprintf(err, errlen, "pool %u: descriptor does not match its memory", pool);
        return -1;
    }
    if (remap_ro(seg->pool[pool].base, p->r_off, p->r_size, seg->pool[pool].ro_fd, "pool requests", err,
                 errlen) < 0)
        return -1;
    seg->confined = true;
    rm_seg_close_fds(seg);
    return 0;
}

/* ------------------------------------------------------------------ validate, attach */

int rm_seg_validate(const void *base, size_t size, char *err, size_t errlen)
{
    const struct rm_shm_header *h = base;
    if (size < sizeof *h) {
        snprintf(err, errlen, "shared memory truncated: %zu bytes, header needs %zu", size, sizeof *h);
        return -1;
    }
    /* The magic is the last thing written (F1): check it first. acquire:
     * pairs with F1, so everything below is the published header. */
    uint64_t magic, want;
    magic = atomic_load_explicit((_Atomic uint64_t *)(void *)h->magic, memory_order_acquire);
    memcpy(&want, RM_SHM_MAGIC, sizeof want);
    if (magic != want) {
        snprintf(err, errlen, "bad magic: not ringmaster's shared memory, or not published yet");
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
        snprintf(err, errlen, "shared memory truncated or resized: header says %llu bytes, mapping has %zu",
                 (unsigned long long)h->size, size);
        return -1;
    }
    if (h->max_pools != RM_SHM_MAX_POOLS || h->nprocs == 0 || h->nprocs > RM_SHM_MAX_PROCS ||
        h->max_gateways > h->nprocs) {
        snprintf(err, errlen, "header counts out of range (pools %u, procs %u, gateways %u)", h->max_pools,
                 h->nprocs, h->max_gateways);
        return -1;
    }
    if (!check_range(h->pools_off, sizeof(struct rm_shm_pool) * RM_SHM_MAX_POOLS, 0, size) ||
        !check_range(h->master_stats_off, sizeof(struct rm_master_stats) * RM_SHM_MAX_POOLS, 0, size) ||
        h->pools_off % RM_CACHELINE || h->master_stats_off % RM_CACHELINE ||
        h->sb_size < (uint64_t)h->nprocs * sizeof(struct rm_sb_entry) ||
        h->gw_size < (uint64_t)h->max_gateways * RM_GW_BLOCKS * sizeof(struct rm_gw_stats)) {
        snprintf(err, errlen, "section offsets or sizes out of bounds or misaligned");
        return -1;
    }
    return 0;
}

/* Open /proc/PID/fd/N read-only and map it, checking its size. */
static int attach_one(struct rm_seg_map *m, int pid, int n, uint64_t want, const char *what, char *err,
                      size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, n);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "open(%s, the master's %s): %s", path, what, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "fstat(%s): %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (st.st_size <= 0 || (want && (uint64_t)st.st_size != want)) {
        snprintf(err, errlen, "%s: %lld bytes, expected %llu (truncated?)", what, (long long)st.st_size,
                 (unsigned long long)want);
        close(fd);
        return -1;
    }
    m->base = map_fd(fd, (size_t)st.st_size, PROT_READ, what, err, errlen);
    m->size = (size_t)st.st_size;
    m->fd = fd;
    m->ro_fd = -1;
    return m->base ? 0 : -1;
}

int rm_seg_attach_pid(struct rm_seg *seg, int pid, char *err, size_t errlen)
{
    seg_reset(seg);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "opendir(%s): %s", dir, strerror(errno));
        return -1;
    }
    int ctrl = -1, sb = -1, gw = -1, pools[RM_SHM_MAX_POOLS];
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++)
        pools[i] = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        char link[128], target[256];
        snprintf(link, sizeof link, "%s/%s", dir, de->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        int fdn = atoi(de->d_name);
        unsigned idx;
        if (strncmp(target, "/memfd:" MEMFD_CTRL " ", sizeof "/memfd:" MEMFD_CTRL) == 0)
            ctrl = fdn;
        else if (strncmp(target, "/memfd:" MEMFD_SB " ", sizeof "/memfd:" MEMFD_SB) == 0)
            sb = fdn;
        else if (strncmp(target, "/memfd:" MEMFD_GW " ", sizeof "/memfd:" MEMFD_GW) == 0)
            gw = fdn;
        else if (sscanf(target, "/memfd:" MEMFD_POOL "%u ", &idx) == 1 && idx < RM_SHM_MAX_POOLS && pools[idx] < 0)
            pools[idx] = fdn;
    }
    closedir(d);
    if (ctrl < 0 || sb < 0 || gw < 0) {
        snprintf(err, errlen, "%s: no ringmaster shared memory among pid %d's descriptors", dir, pid);
        return -1;
    }
    struct rm_seg_map c;
    if (attach_one(&c, pid, ctrl, 0, "ctrl", err, errlen) < 0)
        return -1;
    seg->base = c.base;
    seg->size = c.size;
    seg->fd = c.fd;
    seg->hdr = (struct rm_shm_header *)c.base;
    char why[256];
    if (rm_seg_validate(seg->base, seg->size, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s/%d: %s", dir, ctrl, why);
        rm_seg_close(seg);
        return -1;
    }
    seg->pools_off = seg->hdr->pools_off;
    seg->master_stats_off = seg->hdr->master_stats_off;
    seg->nprocs = seg->hdr->nprocs;
    seg->max_gateways = seg->hdr->max_gateways;
    if (attach_one(&seg->sb, pid, sb, seg->hdr->sb_size, "scoreboard", err, errlen) < 0 ||
        attach_one(&seg->gw, pid, gw, seg->hdr->gw_size, "gateway counters", err, errlen) < 0) {
        rm_seg_close(seg);
        return -1;
    }
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++) {
        const struct rm_shm_pool *p = rm_seg_pool(seg, i);
        /* acquire: pairs with the master's release store of active */
        if (!atomic_load_explicit(&p->active, memory_order_acquire) || pools[i] < 0)
            continue;
        char what[32];
        snprintf(what, sizeof what, "pool %u", i);
        if (attach_one(&seg->pool[i], pid, pools[i], p->size, what, err, errlen) < 0) {
            rm_seg_close(seg);
            return -1;
        }
        if (!rm_pool_valid(seg, i, p)) {
            snprintf(err, errlen, "pool %u: offsets out of bounds", i);
            rm_seg_close(seg);
            return -1;
        }
    }
    return 0;
}

void rm_seg_close(struct rm_seg *seg)
{
    struct rm_seg_map ctrl = {.base = seg->base, .size = seg->size, .fd = seg->fd, .ro_fd = seg->ro_fd};
    map_close(&ctrl);
    map_close(&seg->sb);
    map_close(&seg->gw);
    for (unsigned i = 0; i < RM_SHM_MAX_POOLS; i++)
        map_close(&seg->pool[i]);
    seg_reset(seg);
}
