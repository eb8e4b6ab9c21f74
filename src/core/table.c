/*
 * table.c — table records: watched-slot bitmap and rank-indexed node chains (see table.h).
 *
 * Owns: struct table. Calls frame.c (one write restriction per record) and glue.c.
 */
#include "core/table.h"
#include "core/entry.h"

#include <string.h>

/* Index of @p slot's chain in t->chains: the number of watched slots below it. */
static unsigned table_rank(const struct table *t, unsigned slot)
{
    unsigned word = slot / 64, rank = 0;
    for (unsigned i = 0; i < word; i++)
        rank += (unsigned)__builtin_popcountll(t->bitmap[i]);
    return rank + (unsigned)__builtin_popcountll(t->bitmap[word] & ((1ull << (slot % 64)) - 1));
}

struct entry *table_slot_chain(const struct table *t, unsigned slot)
{
    return table_slot_watched(t, slot) ? t->chains[table_rank(t, slot)] : NULL;
}

int table_get(ptmon *pm, uint64_t gfn, struct table **out)
{
    struct frame *f = frame_find(pm, gfn);
    struct table *t;
    int rc;

    if (f && f->table) {
        *out = f->table;
        return 0;
    }
    t = glue_alloc(&pm->glue, sizeof(*t));
    if (!t)
        return PTMON_ENOMEM;
    memset(t, 0, sizeof(*t));
    rc = frame_acquire(pm, gfn, PTMON_ACCESS_W, &f);
    if (rc < 0) {
        glue_free(&pm->glue, t, sizeof(*t));
        return rc;
    }
    t->frame = f;
    f->table = t;
    *out = t;
    return 0;
}

void table_put_if_empty(ptmon *pm, struct table *t)
{
    if (t->count)
        return;
    t->frame->table = NULL;
    frame_release(pm, t->frame, PTMON_ACCESS_W);
    glue_free(&pm->glue, t->chains, t->capacity * sizeof(*t->chains));
    glue_free(&pm->glue, t, sizeof(*t));
}

/* Chains grow by doubling up to the slot count; 8 bytes per watched slot at most twice over. */
static int table_grow(ptmon *pm, struct table *t)
{
    uint32_t capacity = t->capacity ? t->capacity * 2 : 4;
    struct entry **chains;

    if (capacity > TABLE_MAX_SLOTS)
        capacity = TABLE_MAX_SLOTS;
    chains = glue_alloc(&pm->glue, capacity * sizeof(*chains));
    if (!chains)
        return PTMON_ENOMEM;
    if (t->count)
        memcpy(chains, t->chains, t->count * sizeof(*chains));
    glue_free(&pm->glue, t->chains, t->capacity * sizeof(*t->chains));
    t->chains = chains;
    t->capacity = capacity;
    return 0;
}

int table_link(ptmon *pm, struct table *t, unsigned slot, struct entry *node)
{
    unsigned rank = table_rank(t, slot);
    int rc;

    if (table_slot_watched(t, slot)) {
        node->slot_next = t->chains[rank];
        t->chains[rank] = node;
        return 0;
    }
    if (t->count == t->capacity) {
        rc = table_grow(pm, t);
        if (rc < 0)
            return rc;
    }
    memmove(&t->chains[rank + 1], &t->chains[rank], (t->count - rank) * sizeof(*t->chains));
    node->slot_next = NULL;
    t->chains[rank] = node;
    t->bitmap[slot / 64] |= 1ull << (slot % 64);
    t->count++;
    return 0;
}

void table_unlink(ptmon *pm, struct table *t, unsigned slot, struct entry *node)
{
    unsigned rank = table_rank(t, slot);
    struct entry **link = &t->chains[rank];

    while (*link != node)
        link = &(*link)->slot_next;
    *link = node->slot_next;
    if (!t->chains[rank]) {
        memmove(&t->chains[rank], &t->chains[rank + 1], (t->count - rank - 1) * sizeof(*t->chains));
        t->bitmap[slot / 64] &= ~(1ull << (slot % 64));
        t->count--;
    }
    table_put_if_empty(pm, t);
}

size_t table_bytes(const struct table *t)
{
    return sizeof(*t) + t->capacity * sizeof(*t->chains);
}
