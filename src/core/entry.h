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
    uint64_t visit; /* pm->mark of the last collection that visited it (tables form a DAG) */
    uint32_t refs;  /* live watches whose path contains this node */
    uint8_t level;
    uint8_t kind;   /* enum pt_kind of value, kept with it by entry_set_value */
    uint8_t rights; /* PTMON_RIGHT_* value contributes */
    uint8_t unread; /* the last read of the slot failed: value may be stale (entry_mark_unread) */
};

/** Set the cached value and its decoded kind and rights. */
void entry_set_value(const ptmon *pm, struct entry *e, uint64_t value);

struct pt_entry_info;
/** The same, with @p value already decoded. */
void entry_set_decoded(struct entry *e, uint64_t value, const struct pt_entry_info *info);

/** @return the page base GPA of a PT_LEAF node. */
uint64_t entry_leaf_frame(const ptmon *pm, const struct entry *e);

/** @return the GPA of the table a PT_TABLE node points to. */
static inline uint64_t entry_table_addr(const ptmon *pm, const struct entry *e)
{
    return e->value & pm->table_addr;
}

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

/**
 * A read of @p e's slot failed: its cached value may no longer be memory's. The watches through
 * it are not called until a commit reads the slot again (watch.c), so that no callback reports a
 * translation made of a stale entry. Counted in its table and the instance.
 */
void entry_mark_unread(ptmon *pm, struct entry *e);

/** The slot of @p e was read again: clear the mark. */
void entry_mark_read(ptmon *pm, struct entry *e);

/** @return nonzero if a node of the chain from @p chain is marked unread. */
int entry_chain_unread(const struct entry *chain);

/** @return the first node of the slot chain @p chain whose cached value is not @p value, or
 *  NULL. After a failed read or a deny the nodes of one slot can disagree, and the one that
 *  differs may be any of them. */
struct entry *entry_first_stale(struct entry *chain, uint64_t value);

/** Drop one reference; the node is freed (and its table released) when none is left. */
void entry_put(ptmon *pm, struct entry *node);

/** Free stocked unused nodes until at most @p keep are left (0 at teardown; commits keep a
 *  share of the live tree so a shrinking tree gives its memory back). */
void entry_stock_trim(ptmon *pm, unsigned keep);

/** Bytes held by the stock of unused nodes. */
size_t entry_stock_bytes(const ptmon *pm);

/** Read the entry at @p gpa from guest memory as the guest will see it once the pending write
 *  (if any) is done. @return 0 or the backend's error. */
int entry_read(ptmon *pm, uint64_t gpa, uint64_t *value);

#endif
