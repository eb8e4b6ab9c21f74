/*
 * decode.c — the write decoder (HVMI's "PTWH"): turns one guest store into whole-entry old and
 * new values of the watched entries it touches.
 *
 * Owns: nothing lasting. Calls entry.c (entry_read merges a partial or PRE-delivered write
 * with memory) and table.c (the slot bitmap). Any shape is accepted: 1 to 4096 bytes at any
 * offset, crossing entries, covering many; bytes outside watched slots cost one bit test each.
 */
#include "core/decode.h"
#include "core/entry.h"
#include "core/walk.h"

/* The slots of a table the range [gpa, gpa + size) covers, within one frame. */
static inline unsigned first_slot(const ptmon *pm, uint64_t gpa)
{
    return (unsigned)((gpa & 0xfff) / pm->esize);
}

static inline unsigned last_slot(const ptmon *pm, uint64_t gpa, uint32_t size)
{
    return (unsigned)(((gpa & 0xfff) + size - 1) / pm->esize);
}

/* The slot of @p chain cannot be known now: its nodes wait for a commit to read it again. */
static void slot_unreadable(ptmon *pm, struct entry *chain)
{
    for (; chain; chain = chain->slot_next)
        entry_mark_unread(pm, chain);
}

/* The watched entries of @p t the write changes, in address order. */
size_t decode_write(ptmon *pm, struct table *t, uint64_t gpa, uint32_t size,
                    struct slot_change *out, struct slot_set *failed)
{
    unsigned esize = pm->esize, first = first_slot(pm, gpa), last = last_slot(pm, gpa, size);
    uint64_t frame = gpa & ~0xfffull;
    size_t n = 0;

    for (unsigned slot = first; slot <= last; slot++) {
        const struct entry *e;
        struct entry *chain;
        uint64_t value;
        if (!table_slot_watched(t, slot))
            continue;
        chain = table_slot_chain(t, slot);
        int rc = entry_read(pm, frame + slot * esize, &value);
        if (rc < 0) {
            glue_log(&pm->glue, PTMON_LOG_WARN, "entry 0x%llx unreadable (%s): re-read at commit",
                     (unsigned long long)chain->gpa, ptmon_strerror(rc));
            if (failed && !entry_chain_unread(chain))
                slot_set_add(failed, slot);
            slot_unreadable(pm, chain);
            continue;
        }
        if (entry_chain_unread(chain)) {
            /* Read again: reported even if equal, so that the watches waiting for it are told.
             * What it held before this write is unknown: a deny leaves it as written. */
            out[n].old_value = value;
        } else if ((e = entry_first_stale(chain, value)) != NULL) {
            out[n].old_value = e->value;
        } else {
            continue;
        }
        out[n].gpa = frame + slot * esize;
        out[n].new_value = value;
        n++;
    }
    return n;
}

void decode_mark_unread(ptmon *pm, struct table *t, uint64_t gpa, uint32_t size)
{
    unsigned first = first_slot(pm, gpa), last = last_slot(pm, gpa, size);

    for (unsigned slot = first; slot <= last; slot++)
        if (table_slot_watched(t, slot))
            slot_unreadable(pm, table_slot_chain(t, slot));
}

/* Quick test without reading anything: does the write touch a watched slot at all? */
int decode_touches_watched(const ptmon *pm, const struct table *t, uint64_t gpa, uint32_t size)
{
    unsigned first = first_slot(pm, gpa), last = last_slot(pm, gpa, size);

    for (unsigned slot = first; slot <= last; slot++)
        if (table_slot_watched(t, slot))
            return 1;
    return 0;
}
