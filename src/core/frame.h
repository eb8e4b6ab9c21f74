/*
 * frame.h — frame hooks: the lowest layer of the engine (HVMI's "GPA hooks").
 *
 * Owns: one struct frame per guest frame ptmon restricts, in the instance's frame map; the
 * hooks on it; the reference counts of each removed access right; the rights saved before the
 * first restriction. May call: glue.c and map.c only. Table records (table.c) sit on top: a
 * frame that holds watched page-table entries has frame->table set and holds one write
 * restriction for it.
 */
#ifndef PTMON_CORE_FRAME_H
#define PTMON_CORE_FRAME_H

#include "core/internal.h"

struct table;

struct ptmon_hook {
    ptmon *pm;
    struct frame *frame;
    struct ptmon_hook *next; /* on frame->hooks, in placement order */
    ptmon_hook_fn fn;
    void *ctx;
    uint16_t offset, len; /* the range within the frame; len 1..4096 */
    uint8_t access;       /* PTMON_ACCESS_* the hook wants to see */
    uint8_t dead;         /* removed: skipped by dispatch, freed at commit */
};

struct frame {
    uint64_t gfn;
    uint32_t saved_access; /* what get_access said before ptmon first restricted the frame */
    uint8_t removed;       /* PTMON_ACCESS_* bits currently removed through set_access */
    uint8_t on_commit;     /* queued on pm->commit_frames */
    uint32_t need[3];      /* restrictions wanted, per right: [0] R, [1] W, [2] X */
    struct ptmon_hook *hooks;
    struct table *table;
    struct frame *commit_next;
};

/**
 * Take one restriction of @p rights (PTMON_ACCESS_* bits) on frame @p gfn, creating its record
 * and applying the restriction through the backend at once (protect first). @return 0 and the
 * frame in @p out, or an error with nothing changed (PTMON_ERANGE: outside guest RAM).
 */
int frame_acquire(ptmon *pm, uint64_t gfn, unsigned rights, struct frame **out);

/** Give back a restriction taken with frame_acquire. The rights are relaxed at commit. */
void frame_release(ptmon *pm, struct frame *f, unsigned rights);

/** @return the frame record of @p gfn, or NULL. */
struct frame *frame_find(const ptmon *pm, uint64_t gfn);

/** Call the live hooks matching @p ev; @return PTMON_ACTION_DENY if one denied a PRE write. */
int frame_dispatch(ptmon *pm, struct frame *f, const ptmon_mem_event *ev);

/** Relax what nothing needs any more, free dead hooks and unused frame records. */
int frame_commit(ptmon *pm);

/** Restore every frame and free every record (instance teardown). */
void frame_destroy_all(ptmon *pm);

#endif
