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

/* Past this many watched slots a table indexes its chains by slot directly (one pointer per
 * slot: 4 KiB for a full page table, i.e. 8 bytes per watched entry); below it, by rank. */
#define TABLE_DENSE_AT 32

struct table {
    struct frame *frame;
    /* sparse: chains[rank(slot)], capacity entries; dense: chains[slot], nslots entries */
    struct entry **chains;
    uint32_t count;    /* watched slots */
    uint32_t capacity; /* of chains (nslots when dense) */
    uint16_t nslots;   /* entries per table: 512, or 1024 in 32-bit paging */
    uint8_t dense;
    uint16_t unread; /* nodes on its slots marked unread (entry_mark_unread) */
    struct table *unread_prev, *unread_next; /* on pm->unread_tables while unread > 0 */
    uint64_t bitmap[];                       /* nslots / 64 words */
};

/** Advance @p slot to the next watched slot at or after it. @return 0 when there is none.
 *  Iterate: for (unsigned s = 0; table_next_slot(t, &s); s++) ... */
static inline int table_next_slot(const struct table *t, unsigned *slot)
{
    for (unsigned s = *slot; s < t->nslots; s = (s | 63) + 1) {
        uint64_t bits = t->bitmap[s / 64] >> (s % 64);
        if (bits) {
            *slot = s + (unsigned)__builtin_ctzll(bits);
            return 1;
        }
    }
    return 0;
}

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

/**
 * A cap (max_tables, max_nodes) leaves no room for a record of frame @p gfn. @return
 * PTMON_ERANGE if the frame is not in guest RAM: a walk stops at the pointer to it and needs no
 * record, so the cap must not make that watch wait; PTMON_ELIMIT otherwise.
 */
int table_cap_reached(ptmon *pm, uint64_t gfn);

/** Put @p node first on @p slot's chain. @return 0 or PTMON_ENOMEM (nothing changed). */
int table_link(ptmon *pm, struct table *t, unsigned slot, struct entry *node);

/** Take @p node off @p slot's chain; an empty table is freed and its frame released. */
void table_unlink(ptmon *pm, struct table *t, unsigned slot, struct entry *node);

/** Free @p t if it holds no slot (after a table_get whose caller then failed). */
void table_put_if_empty(ptmon *pm, struct table *t);

/** Free stocked unused records until at most @p keep are left. */
void table_stock_trim(ptmon *pm, unsigned keep);

/** Bytes held by the stock of unused records (with their chain arrays). */
size_t table_stock_bytes(const ptmon *pm);

/** Bytes this record uses. */
size_t table_bytes(const struct table *t);

#endif
