/*
 * table.c — table records: watched-slot bitmap and rank-indexed node chains (see table.h).
 *
 * Owns: struct table. Calls frame.c (one write restriction per record) and glue.c.
 */
#include "core/table.h"
#include "core/entry.h"

#include <string.h>

/* Portable population count: baseline x86-64 has no POPCNT, and the compiler's fallback is a
 * library call. */
static unsigned popcount64(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* Index of @p slot's chain in t->chains: its slot when dense, else the number of watched
 * slots below it. */
static unsigned table_index(const struct table *t, unsigned slot)
{
    unsigned word = slot / 64, rank = 0;
    if (t->dense)
        return slot;
    for (unsigned i = 0; i < word; i++)
        rank += popcount64(t->bitmap[i]);
    return rank + popcount64(t->bitmap[word] & ((1ull << (slot % 64)) - 1));
}

struct entry *table_slot_chain(const struct table *t, unsigned slot)
{
    return table_slot_watched(t, slot) ? t->chains[table_index(t, slot)] : NULL;
}

/* A page-table remap frees one record and makes another: keep a few records, with their
 * chain arrays, for reuse. */
#define TABLE_STOCK_MAX 16

static size_t table_size(const ptmon *pm)
{
    return sizeof(struct table) + (4096 / pm->esize / 64) * sizeof(uint64_t);
}

static struct table *table_alloc(ptmon *pm)
{
    struct table *t = pm->table_stock;
    struct entry **chains = NULL;
    uint32_t capacity = 0;

    if (t) {
        pm->table_stock = (struct table *)t->frame;
        pm->table_stock_count--;
        chains = t->chains;
        capacity = t->capacity;
    } else {
        t = glue_alloc(&pm->glue, table_size(pm));
        if (!t)
            return NULL;
    }
    memset(t, 0, table_size(pm));
    pm->stats.tables++;
    t->nslots = (uint16_t)(4096 / pm->esize);
    t->chains = chains;
    t->capacity = capacity;
    if (capacity == t->nslots) { /* a dense array: use it as one */
        memset(chains, 0, capacity * sizeof(*chains));
        t->dense = 1;
    }
    return t;
}

static void table_free(ptmon *pm, struct table *t)
{
    pm->stats.tables--;
    pm->room_epoch += pm->max_tables != 0; /* room only counts under a cap */
    if (pm->table_stock_count < TABLE_STOCK_MAX) {
        t->frame = (struct frame *)pm->table_stock; /* the stock's link */
        pm->table_stock = t;
        pm->table_stock_count++;
        return;
    }
    glue_free(&pm->glue, t->chains, t->capacity * sizeof(*t->chains));
    glue_free(&pm->glue, t, table_size(pm));
}

void table_stock_trim(ptmon *pm, unsigned keep)
{
    while (pm->table_stock_count > keep) {
        struct table *t = pm->table_stock;
        pm->table_stock = (struct table *)t->frame;
        pm->table_stock_count--;
        glue_free(&pm->glue, t->chains, t->capacity * sizeof(*t->chains));
        glue_free(&pm->glue, t, table_size(pm));
    }
}

size_t table_stock_bytes(const ptmon *pm)
{
    size_t bytes = 0;
    for (const struct table *t = pm->table_stock; t; t = (const struct table *)t->frame)
        bytes += table_size(pm) + t->capacity * sizeof(*t->chains);
    return bytes;
}

int table_cap_reached(ptmon *pm, uint64_t gfn)
{
    uint32_t access;

    if (frame_find(pm, gfn))
        return PTMON_ELIMIT; /* a frame ptmon holds is in RAM */
    return glue_get_access(pm, gfn, &access) == PTMON_ERANGE ? PTMON_ERANGE : PTMON_ELIMIT;
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
    if (pm->max_tables && pm->stats.tables >= pm->max_tables)
        return table_cap_reached(pm, gfn);
    t = table_alloc(pm);
    if (!t)
        return PTMON_ENOMEM;
    rc = frame_acquire(pm, gfn, PTMON_ACCESS_W, &f);
    if (rc < 0) {
        table_free(pm, t);
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
    table_free(pm, t);
}

/* Re-lay the chains sparse (by rank) or dense (by slot) into a new array of @p capacity. */
static int table_relayout(ptmon *pm, struct table *t, int dense, uint32_t capacity)
{
    struct entry **chains = glue_alloc(&pm->glue, capacity * sizeof(*chains));
    unsigned rank = 0;

    if (!chains)
        return PTMON_ENOMEM;
    if (dense)
        memset(chains, 0, capacity * sizeof(*chains));
    for (unsigned s = 0; table_next_slot(t, &s); s++, rank++)
        chains[dense ? s : rank] = t->chains[table_index(t, s)];
    glue_free(&pm->glue, t->chains, t->capacity * sizeof(*t->chains));
    t->chains = chains;
    t->capacity = capacity;
    t->dense = (uint8_t)dense;
    return 0;
}

int table_link(ptmon *pm, struct table *t, unsigned slot, struct entry *node)
{
    unsigned idx;
    int rc;

    if (table_slot_watched(t, slot)) {
        idx = table_index(t, slot);
        node->slot_next = t->chains[idx];
        t->chains[idx] = node;
        return 0;
    }
    if (!t->dense && t->count == t->capacity) {
        rc = t->count >= TABLE_DENSE_AT
                 ? table_relayout(pm, t, 1, t->nslots)
                 : table_relayout(pm, t, 0, t->capacity ? t->capacity * 2 : 1);
        if (rc < 0)
            return rc;
    }
    idx = table_index(t, slot);
    if (!t->dense)
        memmove(&t->chains[idx + 1], &t->chains[idx], (t->count - idx) * sizeof(*t->chains));
    node->slot_next = NULL;
    t->chains[idx] = node;
    t->bitmap[slot / 64] |= 1ull << (slot % 64);
    t->count++;
    return 0;
}

void table_unlink(ptmon *pm, struct table *t, unsigned slot, struct entry *node)
{
    unsigned idx = table_index(t, slot);
    struct entry **link = &t->chains[idx];

    while (*link != node)
        link = &(*link)->slot_next;
    *link = node->slot_next;
    if (!t->chains[idx]) {
        if (!t->dense)
            memmove(&t->chains[idx], &t->chains[idx + 1],
                    (t->count - idx - 1) * sizeof(*t->chains));
        t->bitmap[slot / 64] &= ~(1ull << (slot % 64));
        t->count--;
        /* A dense table stays dense until it is empty: a page table emptied slot by slot (a
         * remap, a merge) would otherwise re-lay its chains on the way down. */
    }
    table_put_if_empty(pm, t);
}

size_t table_bytes(const struct table *t)
{
    return sizeof(*t) + t->nslots / 64 * sizeof(uint64_t) + t->capacity * sizeof(*t->chains);
}
