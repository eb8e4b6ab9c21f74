/*
 * table.h — table records (HVMI's "PTM"): one per guest frame holding watched page-table
 * entries, whatever level or address space uses them.
 *
 * Owns: struct table: which slots of the frame are watched (a bitmap, O(1) to test) and, per
 * watched slot, the chain of entry nodes on it (a rank-indexed array: 8 bytes per watched slot,
 * not per slot). Holds exactly one write restriction on its frame. May call: frame.c, glue.c.
 */
#ifndef PTMON_CORE_TABLE_H
#define PTMON_CORE_TABLE_H

#include "core/frame.h"

struct entry;

#define TABLE_MAX_SLOTS 1024 /* 4-byte entries (32-bit paging); 512 otherwise */

struct table {
    struct frame *frame;
    uint64_t bitmap[TABLE_MAX_SLOTS / 64];
    struct entry **chains; /* chains[rank(slot)]: first node on the slot */
    uint32_t count;        /* watched slots */
    uint32_t capacity;     /* of chains */
};

/** @return nonzero if @p slot is watched. */
static inline int table_slot_watched(const struct table *t, unsigned slot)
{
    return (int)((t->bitmap[slot / 64] >> (slot % 64)) & 1);
}

/** @return the first node on @p slot (watched), following slot_next for the others. */
struct entry *table_slot_chain(const struct table *t, unsigned slot);

/**
 * Get the table record of frame @p gfn, creating it (and write-protecting the frame: protect
 * first, read after) if needed. @return 0, PTMON_ERANGE (outside RAM), PTMON_ENOMEM, or the
 * backend's error; nothing changed on error.
 */
int table_get(ptmon *pm, uint64_t gfn, struct table **out);

/** Put @p node first on @p slot's chain. @return 0 or PTMON_ENOMEM (nothing changed). */
int table_link(ptmon *pm, struct table *t, unsigned slot, struct entry *node);

/** Take @p node off @p slot's chain; an empty table is freed and its frame released. */
void table_unlink(ptmon *pm, struct table *t, unsigned slot, struct entry *node);

/** Free @p t if it holds no slot (after a table_get whose caller then failed). */
void table_put_if_empty(ptmon *pm, struct table *t);

/** Bytes this record uses. */
size_t table_bytes(const struct table *t);

#endif
