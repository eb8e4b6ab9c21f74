/*
 * entry.h — entry nodes (HVMI's "PTS_ENTRY"): one per watched paging-structure entry, keyed by
 * (entry GPA, level), shared by every watch and address space whose walk passes through it.
 *
 * Owns: struct entry: the cached value of the entry, the number of live watches whose path
 * contains it, and the watches parked on it (their walk stops here), in delivery order.
 * May call: table.c, frame.c, glue.c.
 */
#ifndef PTMON_CORE_ENTRY_H
#define PTMON_CORE_ENTRY_H

#include "core/table.h"

struct ptmon_watch;

struct entry {
    uint64_t gpa;
    uint64_t value; /* equal to guest memory after every event */
    struct table *table;
    struct entry *slot_next; /* other nodes on the same slot (other levels) */
    struct ptmon_watch *parked_head, *parked_tail;
    uint32_t refs; /* live watches whose path contains this node */
    uint8_t level;
};

/** @return the slot of entry GPA @p gpa in its frame. */
unsigned entry_slot(const ptmon *pm, uint64_t gpa);

/** @return the node for (@p gpa, @p level), or NULL. */
struct entry *entry_find(const ptmon *pm, uint64_t gpa, unsigned level);

/**
 * Get the node for (@p gpa, @p level), creating it if needed: the table frame is write-protected
 * FIRST, then the entry is read (through the event's pending-write overlay, if any). On success
 * the caller holds one reference (refs was incremented); entry_put gives it back. @return 0,
 * PTMON_ERANGE (the table is outside guest RAM), PTMON_ENOMEM or the backend's error, with nothing
 * changed.
 */
int entry_get(ptmon *pm, uint64_t gpa, unsigned level, struct entry **out);

/** Drop one reference; the node is freed (and its table released) when none is left. */
void entry_put(ptmon *pm, struct entry *node);

/** Read the entry at @p gpa from guest memory as the guest will see it once the pending write
 *  (if any) is done. @return 0 or the backend's error. */
int entry_read(ptmon *pm, uint64_t gpa, uint64_t *value);

#endif
