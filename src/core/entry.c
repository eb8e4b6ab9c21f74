/*
 * entry.c — entry nodes, shared per (entry GPA, level) (see entry.h).
 *
 * Owns: struct entry. Calls table.c, frame.c, glue.c.
 */
#include "core/entry.h"
#include "core/walk.h"

#include <string.h>

unsigned entry_slot(const ptmon *pm, uint64_t gpa)
{
    return (unsigned)((gpa & 0xfff) / pm->esize);
}

void entry_set_decoded(struct entry *e, uint64_t value, const struct pt_entry_info *info)
{
    e->value = value;
    e->kind = (uint8_t)info->kind;
    e->rights = (uint8_t)info->rights;
}

void entry_set_value(const ptmon *pm, struct entry *e, uint64_t value)
{
    struct pt_entry_info info;
    pt_decode(&pm->paging, e->level, value, &info);
    entry_set_decoded(e, value, &info);
}

uint64_t entry_leaf_frame(const ptmon *pm, const struct entry *e)
{
    struct pt_entry_info info;
    /* PSE-36 scatters a 4 MiB page's high address bits: only the decoder knows */
    if (pm->paging.mode == PTMON_MODE_32BIT && e->level == 2) {
        pt_decode(&pm->paging, e->level, e->value, &info);
        return info.addr;
    }
    return e->value & pm->table_addr & ~(pm->span[e->level] - 1);
}

struct entry *entry_find(const ptmon *pm, uint64_t gpa, unsigned level)
{
    struct frame *f = frame_find(pm, gpa >> 12);
    if (!f || !f->table)
        return NULL;
    for (struct entry *e = table_slot_chain(f->table, entry_slot(pm, gpa)); e; e = e->slot_next)
        if (e->level == level)
            return e;
    return NULL;
}

static uint64_t load_le(const uint8_t *p, unsigned size)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v = 0;
    memcpy(&v, p, size);
    return v;
#else
    uint64_t v = 0;
    for (unsigned i = size; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
#endif
}

int entry_read(ptmon *pm, uint64_t gpa, uint64_t *value)
{
    unsigned size = pm->esize;
    const struct pending_write *pw = &pm->pending;
    uint8_t buf[8] = {0};
    int rc;

    /* A PRE-delivered write is not in memory yet, but the tree is updated as if it were: take
     * its bytes, and read memory only for the part of the entry it does not cover. */
    if (pw->bytes && pw->gpa <= gpa && gpa + size <= pw->gpa + pw->size) {
        *value = load_le(pw->bytes + (gpa - pw->gpa), size);
        return 0;
    }
    rc = glue_read_gpa(pm, gpa, buf, size);
    if (rc < 0)
        return rc;
    if (pw->bytes && gpa < pw->gpa + pw->size && pw->gpa < gpa + size)
        for (unsigned i = 0; i < size; i++)
            if (gpa + i >= pw->gpa && gpa + i < pw->gpa + pw->size)
                buf[i] = pw->bytes[gpa + i - pw->gpa];
    *value = load_le(buf, size);
    return 0;
}

/* Nodes come and go by the hundred when a page table is remapped, split or merged: keep a
 * bounded stock of free ones instead of a malloc/free pair per node and event. */
#define ENTRY_STOCK_MAX 1024

static struct entry *entry_alloc(ptmon *pm)
{
    struct entry *e = pm->node_stock;
    if (e) {
        pm->node_stock = e->slot_next;
        pm->node_stock_count--;
        return e;
    }
    return glue_alloc(&pm->glue, sizeof(*e));
}

static void entry_free(ptmon *pm, struct entry *e)
{
    if (pm->node_stock_count < ENTRY_STOCK_MAX) {
        e->slot_next = pm->node_stock;
        pm->node_stock = e;
        pm->node_stock_count++;
        return;
    }
    glue_free(&pm->glue, e, sizeof(*e));
}

void entry_stock_trim(ptmon *pm, unsigned keep)
{
    while (pm->node_stock_count > keep) {
        struct entry *e = pm->node_stock;
        pm->node_stock = e->slot_next;
        pm->node_stock_count--;
        glue_free(&pm->glue, e, sizeof(*e));
    }
}

size_t entry_stock_bytes(const ptmon *pm)
{
    return pm->node_stock_count * sizeof(struct entry);
}

int entry_get(ptmon *pm, uint64_t gpa, unsigned level, struct entry **out)
{
    struct entry *e = entry_find(pm, gpa, level);
    struct table *t;
    uint64_t value;
    int rc;

    if (e) {
        e->refs++;
        *out = e;
        return 0;
    }
    if (pm->max_nodes && pm->stats.nodes >= pm->max_nodes)
        return table_cap_reached(pm, gpa >> 12);
    rc = table_get(pm, gpa >> 12, &t); /* protect first ... */
    if (rc < 0)
        return rc;
    rc = entry_read(pm, gpa, &value); /* ... then read */
    if (rc == 0) {
        e = entry_alloc(pm);
        rc = e ? 0 : PTMON_ENOMEM;
    }
    if (rc == 0) {
        memset(e, 0, sizeof(*e));
        e->gpa = gpa;
        e->level = (uint8_t)level;
        entry_set_value(pm, e, value);
        e->table = t;
        rc = table_link(pm, t, entry_slot(pm, gpa), e);
        if (rc < 0)
            entry_free(pm, e);
    }
    if (rc < 0) {
        table_put_if_empty(pm, t);
        return rc;
    }
    pm->stats.nodes++;
    e->refs = 1;
    *out = e;
    return 0;
}

/* Tables holding unread nodes are listed, so that a commit reads again in proportion to what
 * failed, not to every table the instance watches. */
void entry_mark_unread(ptmon *pm, struct entry *e)
{
    struct table *t = e->table;

    if (e->unread)
        return;
    e->unread = 1;
    if (t->unread++ == 0) {
        t->unread_prev = NULL;
        t->unread_next = pm->unread_tables;
        if (pm->unread_tables)
            pm->unread_tables->unread_prev = t;
        pm->unread_tables = t;
    }
    pm->unread++;
}

void entry_mark_read(ptmon *pm, struct entry *e)
{
    struct table *t = e->table;

    if (!e->unread)
        return;
    e->unread = 0;
    if (--t->unread == 0) {
        if (t->unread_prev)
            t->unread_prev->unread_next = t->unread_next;
        else
            pm->unread_tables = t->unread_next;
        if (t->unread_next)
            t->unread_next->unread_prev = t->unread_prev;
        t->unread_prev = t->unread_next = NULL;
    }
    pm->unread--;
}

int entry_chain_unread(const struct entry *chain)
{
    for (; chain; chain = chain->slot_next)
        if (chain->unread)
            return 1;
    return 0;
}

struct entry *entry_first_stale(struct entry *chain, uint64_t value)
{
    while (chain && chain->value == value)
        chain = chain->slot_next;
    return chain;
}

void entry_put(ptmon *pm, struct entry *e)
{
    if (--e->refs)
        return;
    entry_mark_read(pm, e);
    table_unlink(pm, e->table, entry_slot(pm, e->gpa), e);
    entry_free(pm, e);
    pm->stats.nodes--;
    pm->room_epoch += pm->max_nodes != 0; /* room only counts under a cap */
}
