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

/* The watched entries of @p t the write changes, in address order. */
size_t decode_write(ptmon *pm, struct table *t, uint64_t gpa, uint32_t size,
                    struct slot_change *out)
{
    unsigned esize = pm->esize;
    uint64_t frame = gpa & ~0xfffull;
    unsigned first = (unsigned)((gpa & 0xfff) / esize);
    unsigned last = (unsigned)(((gpa & 0xfff) + size - 1) / esize);
    size_t n = 0;

    for (unsigned slot = first; slot <= last; slot++) {
        struct entry *e;
        uint64_t value;
        if (!table_slot_watched(t, slot))
            continue;
        e = table_slot_chain(t, slot);
        if (entry_read(pm, frame + slot * esize, &value) < 0) {
            /* a commit re-reads every watched entry, once the write is in memory */
            if (pm->pending.bytes)
                pm->resync_later = 1;
            else
                pm->resync = 1;
            continue;
        }
        e = entry_first_stale(e, value);
        if (!e)
            continue;
        out[n].gpa = frame + slot * esize;
        out[n].old_value = e->value;
        out[n].new_value = value;
        n++;
    }
    return n;
}

/* Quick test without reading anything: does the write touch a watched slot at all? */
int decode_touches_watched(const ptmon *pm, const struct table *t, uint64_t gpa, uint32_t size)
{
    unsigned esize = pm->esize;
    unsigned first = (unsigned)((gpa & 0xfff) / esize);
    unsigned last = (unsigned)(((gpa & 0xfff) + size - 1) / esize);

    for (unsigned slot = first; slot <= last; slot++)
        if (table_slot_watched(t, slot))
            return 1;
    return 0;
}
