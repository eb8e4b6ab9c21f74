/*
 * decode.h — the write decoder: guest store -> whole-entry changes of watched entries.
 *
 * Owns: struct slot_change. May call: entry.c, table.c.
 */
#ifndef PTMON_CORE_DECODE_H
#define PTMON_CORE_DECODE_H

#include "core/table.h"

#include <string.h>

/** One changed watched entry of a write. */
struct slot_change {
    uint64_t gpa;
    uint64_t old_value, new_value;
};

/** A set of slots of one table (a bit per slot). Emptied in O(1) (count = 0): the bits are
 *  cleared when the first slot is added, which on the hot path never happens. */
struct slot_set {
    unsigned count;
    uint64_t bits[TABLE_MAX_SLOTS / 64];
};

static inline void slot_set_add(struct slot_set *s, unsigned slot)
{
    if (s->count++ == 0)
        memset(s->bits, 0, sizeof(s->bits));
    s->bits[slot / 64] |= 1ull << (slot % 64);
}

static inline int slot_set_has(const struct slot_set *s, unsigned slot)
{
    return s->count && ((s->bits[slot / 64] >> (slot % 64)) & 1);
}

/** @return nonzero if [gpa, gpa + size) touches a watched slot of @p t. Reads nothing. */
int decode_touches_watched(const ptmon *pm, const struct table *t, uint64_t gpa, uint32_t size);

/**
 * Store in @p out (room for 4096 / entry size) the watched entries of @p t whose value the write
 * [gpa, gpa + size) changes, in address order: old = the cached value of the first node on the
 * slot that differs, new = memory merged with the pending PRE bytes. An entry that cannot be read
 * is skipped and its nodes marked unread (a commit reads them again); if they were not unread
 * before, their cached value is still what the entry held before the write, and the slot is added
 * to @p failed (may be NULL). An entry marked unread that reads now is always reported, with
 * old = new (its earlier value is unknown).
 * @return the number of changes.
 */
size_t decode_write(ptmon *pm, struct table *t, uint64_t gpa, uint32_t size,
                    struct slot_change *out, struct slot_set *failed);

/** Mark the nodes of every watched entry in [gpa, gpa + size) unread: a write of unknown bytes
 *  will land there after the event. */
void decode_mark_unread(ptmon *pm, struct table *t, uint64_t gpa, uint32_t size);

#endif
