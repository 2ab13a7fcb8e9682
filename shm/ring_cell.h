/* ring_cell.h - the cell word of the rings: seq:40 | value:24 (docs/ring.md). */
#ifndef RM_RING_CELL_H
#define RM_RING_CELL_H

#include <stdint.h>

#include "shm/layout.h"

#define CELL(seq, v) (((uint64_t)(seq) << RM_RING_VALUE_BITS) | ((uint64_t)(v) & RM_RING_VALUE_MASK))
#define CELL_SEQ(w) ((w) >> RM_RING_VALUE_BITS)
#define CELL_VAL(w) ((uint32_t)((w) & RM_RING_VALUE_MASK))

/* Signed distance seq - counter, modulo 2^40 (the sequence field's width). */
static inline int64_t seq_diff(uint64_t seq, uint64_t counter)
{
    uint64_t d = (seq - counter) << RM_RING_VALUE_BITS;
    return (int64_t)d >> RM_RING_VALUE_BITS;
}

#endif
