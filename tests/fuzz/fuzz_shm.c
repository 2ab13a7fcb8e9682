/* fuzz_shm.c - libFuzzer: attaching a hostile shared memory. The input is
 * the ctrl memfd's content (header and pool descriptors) followed by a
 * pool's memory: rm_seg_validate must refuse what is inconsistent, and
 * whatever it accepts, rm_pool_view_open must either refuse or give a view
 * whose every area lies inside the mapping (checked here by touching the
 * first and last byte of each). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shm/request.h"
#include "shm/segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    /* ctrl: the input's head, page aligned like the real mapping */
    size_t ctrl = size < 16384 ? size : 16384;
    unsigned char *buf = aligned_alloc(4096, 16384);
    if (!buf)
        return 0;
    memset(buf, 0, 16384);
    memcpy(buf, data, ctrl);
    (void)rm_seg_validate(buf, ctrl, err, sizeof err);

    /* a pool: descriptor 0 of the fuzzed ctrl, over a mapping made of the
     * rest of the input (or zeros) of a size the input chooses */
    struct rm_seg seg;
    memset(&seg, 0, sizeof seg);
    seg.base = buf;
    seg.size = 16384;
    seg.pools_off = (sizeof(struct rm_shm_header) + 63) & ~(size_t)63; /* as rm_seg_create */
    seg.nprocs = 8;
    seg.max_gateways = 2;
    /* the mapping is as large as descriptor 0 says, when that is small
     * and whole pages (so that consistent geometry can pass), else a size
     * of the input's choosing */
    const struct rm_shm_pool *d0 = rm_seg_pool(&seg, 0);
    size_t psize = d0->size && d0->size <= (256u << 10) && d0->size % 4096 == 0
                       ? (size_t)d0->size
                       : 4096u * (1u + (size > 0 ? data[0] % 64u : 0u));
    unsigned char *pool = mmap(NULL, psize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pool == MAP_FAILED) {
        free(buf);
        return 0;
    }
    if (size > ctrl)
        memcpy(pool, data + ctrl, size - ctrl < psize ? size - ctrl : psize);
    seg.pool[0].base = pool;
    seg.pool[0].size = psize;
    struct rm_pool_view v;
    if (rm_pool_view_open(&seg, 0, &v) == 0) {
        volatile unsigned char sink = 0;
        const unsigned char *areas[][2] = {
            {(const unsigned char *)v.ring, (const unsigned char *)&v.ring->cells[v.ring_cells - 1] + 7},
            {(const unsigned char *)v.states, (const unsigned char *)&v.states[v.nslots - 1] + 7},
            {(const unsigned char *)v.req_meta, (const unsigned char *)&v.req_meta[v.nslots] - 1},
            {(const unsigned char *)v.resp_meta, (const unsigned char *)&v.resp_meta[v.nslots] - 1},
            {rm_view_req(&v, 0), rm_view_req(&v, v.nslots - 1) + v.max_req - 1},
            {rm_view_resp(&v, 0), rm_view_resp(&v, v.nslots - 1) + v.max_resp - 1},
        };
        for (size_t i = 0; i < sizeof areas / sizeof areas[0]; i++) {
            if (areas[i][0] < pool || areas[i][1] >= pool + psize)
                abort(); /* a view that reaches outside its mapping */
            sink ^= *areas[i][0];
            sink ^= *areas[i][1];
        }
        (void)sink;
    }
    munmap(pool, psize);
    free(buf);
    return 0;
}
