/*
 * watch.h — watches (HVMI's "PTS"): one handle per ptmon_watch() call, and the engine that keeps
 * every watch's record equal to guest memory as page-table writes arrive.
 *
 * Owns: struct ptmon_watch, placement (walk down creating nodes, protect first), the per-event
 * tree update, records, the notification queue and deny/revert. May call: entry.c, table.c,
 * frame.c, walk.c, glue.c.
 */
#ifndef PTMON_CORE_WATCH_H
#define PTMON_CORE_WATCH_H

#include "core/entry.h"

/* Why a watch's placement waits (ptmon_watch.incomplete). */
enum {
    WAIT_NONE = 0,
    WAIT_READ = 1 /* a read or an allocation failed */,
    WAIT_ROOM = 2 /* caps */
};

struct ptmon_watch {
    ptmon *pm;
    uint64_t cr3, va;
    ptmon_watch_fn fn;
    void *ctx;
    struct ptmon_watch *park_prev, *park_next; /* on path[depth]'s parked list */
    struct ptmon_watch *all_prev, *all_next;   /* pm->watches, or pm->dead_watches */
    struct ptmon_watch *touched_next;          /* watches touched by the event in progress */
    struct ptmon_watch *scratch_next;          /* collection of one node change */
    struct entry *path[PTMON_MAX_LEVELS + 1];  /* path[top..depth]; NULL elsewhere */
    ptmon_translation rec; /* last told (or silently updated): equal to memory between events */
    uint64_t seq;          /* placement order */
    uint64_t touched_epoch, told_epoch;
    uint8_t depth;       /* level of the deepest node; top + 1 when there is none */
    uint8_t cause_level; /* level of the first entry of this event that affected it */
    uint8_t flags;       /* PTMON_WATCH_* */
    uint8_t dead;
    uint8_t incomplete; /* placement stopped early: WAIT_ROOM or WAIT_READ; retried at commit */
};

/** Handle a write into a frame holding watched entries. @return an enum ptmon_action. */
int watch_on_write(ptmon *pm, struct table *t, const ptmon_mem_event *ev);

/** @return nonzero if the next commit retries waiting placements (it then reads guest memory):
 *  some wait for a read, or room was freed since the room-waiting ones were last tried. */
int watch_retries_due(const ptmon *pm);

/** Free removed watches, read unread entries again and retry incomplete placements (part of the
 *  commit); changes found are told as of no vCPU. */
void watch_commit(ptmon *pm);

/** Before event @p ev (not a POST write), when pm->unread: read the entries that could not be
 *  read before, so that what changed there is told as an older change (no vCPU, no veto) and not
 *  as part of this write, whose deny could not undo it. */
void watch_before_event(ptmon *pm, const ptmon_mem_event *ev);

/** Free every watch (teardown). */
void watch_destroy_all(ptmon *pm);

/** Iterate every live watch, placed in full or waiting: for (w = watch_first(pm); w;
 *  w = watch_next(pm, w)). Not while watches are added or removed. */
static inline struct ptmon_watch *watch_first(const ptmon *pm)
{
    return pm->watches ? pm->watches : pm->waiting;
}

static inline struct ptmon_watch *watch_next(const ptmon *pm, const struct ptmon_watch *w)
{
    if (w->all_next)
        return w->all_next;
    return w->incomplete ? NULL : pm->waiting; /* the end of pm->watches: on to the waiting */
}

/** Compute the record of @p w from its path's cached values. */
void watch_compute(const ptmon *pm, const struct ptmon_watch *w, ptmon_translation *out);

#endif
