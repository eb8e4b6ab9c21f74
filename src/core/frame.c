/*
 * frame.c — frame hooks and reference-counted frame protection (see frame.h).
 *
 * Owns: struct frame and struct ptmon_hook. Calls glue.c, map.c and the recorder (trace.h).
 *
 * Rule: restrictions are applied at once (a caller that reads a page table after protecting it
 * must not miss a write in between) and relaxed only at commit, so that a restriction released
 * and taken again before the commit never leaves the frame open, and so that many releases
 * become one batched backend call.
 */
#include "core/frame.h"
#include "core/trace.h"

#include <string.h>

#define ACCESS_BITS  (PTMON_ACCESS_R | PTMON_ACCESS_W | PTMON_ACCESS_X)
#define COMMIT_BATCH 64

static const unsigned right_bit[3] = {PTMON_ACCESS_R, PTMON_ACCESS_W, PTMON_ACCESS_X};

/* Intel EPT treats write-without-read as a misconfiguration: removing R removes W too. */
static unsigned rights_to_remove(unsigned rights)
{
    return (rights & PTMON_ACCESS_R) ? (rights | PTMON_ACCESS_W) : rights;
}

static unsigned frame_needed(const struct frame *f)
{
    unsigned mask = 0;
    for (int i = 0; i < 3; i++)
        if (f->need[i])
            mask |= right_bit[i];
    return mask;
}

/* What to program for the frame: its saved rights less what is still needed. */
static uint32_t frame_target_access(const struct frame *f, unsigned removed)
{
    return removed ? f->saved_access & ~(uint32_t)removed : f->saved_access;
}

struct frame *frame_find(const ptmon *pm, uint64_t gfn)
{
    return map_get(&pm->frames, gfn);
}

static int frame_create(ptmon *pm, uint64_t gfn, struct frame **out)
{
    struct frame *f;
    uint32_t saved;
    int rc;

    rc = glue_get_access(pm, gfn, &saved);
    if (rc < 0)
        return rc;
    f = glue_alloc(&pm->glue, sizeof(*f));
    if (!f)
        return PTMON_ENOMEM;
    memset(f, 0, sizeof(*f));
    f->gfn = gfn;
    f->saved_access = saved;
    rc = map_put(&pm->frames, &pm->glue, gfn, f);
    if (rc < 0) {
        glue_free(&pm->glue, f, sizeof(*f));
        return rc;
    }
    *out = f;
    return 0;
}

static int frame_unused(const struct frame *f)
{
    return !frame_needed(f) && !f->hooks && !f->table;
}

static void frame_free(ptmon *pm, struct frame *f)
{
    map_del(&pm->frames, f->gfn);
    glue_free(&pm->glue, f, sizeof(*f));
}

static void frame_queue_commit(ptmon *pm, struct frame *f)
{
    if (f->on_commit)
        return;
    f->on_commit = 1;
    f->commit_next = pm->commit_frames;
    pm->commit_frames = f;
}

int frame_acquire(ptmon *pm, uint64_t gfn, unsigned rights, struct frame **out)
{
    struct frame *f = frame_find(pm, gfn);
    unsigned remove = rights_to_remove(rights) & ACCESS_BITS, want;
    int created = 0, rc;

    if (!f) {
        rc = frame_create(pm, gfn, &f);
        if (rc < 0)
            return rc;
        created = 1;
    }
    want = f->removed | remove;
    if (want != f->removed) {
        rc = glue_set_access(pm, gfn, frame_target_access(f, want));
        if (rc < 0) {
            if (created)
                frame_free(pm, f);
            return rc;
        }
        pm->flush_pending = 1;
        f->removed = (uint8_t)want;
    }
    for (int i = 0; i < 3; i++)
        if (remove & right_bit[i])
            f->need[i]++;
    *out = f;
    return 0;
}

void frame_release(ptmon *pm, struct frame *f, unsigned rights)
{
    unsigned remove = rights_to_remove(rights) & ACCESS_BITS;
    for (int i = 0; i < 3; i++)
        if ((remove & right_bit[i]) && f->need[i])
            f->need[i]--;
    frame_queue_commit(pm, f);
}

int frame_dispatch(ptmon *pm, struct frame *f, const ptmon_mem_event *ev)
{
    uint64_t lo = ev->gpa & 0xfff, hi = lo + ev->size;
    int action = PTMON_ACTION_ALLOW;

    /* Hooks added by a callback go to the end of the list and are visited too: harmless, the
     * access is in progress and they asked for it. Removed ones stay linked until commit. */
    for (struct ptmon_hook *h = f->hooks; h; h = h->next) {
        if (h->dead || !(h->access & ev->access) || h->offset >= hi || h->offset + h->len <= lo)
            continue;
        int rc = h->fn(pm, h, h->ctx, ev);
        if (rc == PTMON_ACTION_DENY && ev->access == PTMON_ACCESS_W &&
            ev->delivery == PTMON_DELIVERY_PRE) {
            action = PTMON_ACTION_DENY;
            break; /* the write will not happen: later hooks are not told of it */
        }
    }
    return action;
}

int ptmon_hook_gpa(ptmon *pm, uint64_t gpa, uint32_t len, uint32_t access, ptmon_hook_fn fn,
                   void *ctx, ptmon_hook **out)
{
    struct ptmon_hook *h, **tail;
    struct frame *f;
    int rc;

    if (out)
        *out = NULL;
    if (!pm)
        return PTMON_EINVAL;
    if (!fn || !out)
        return glue_misuse(&pm->glue, "ptmon_hook_gpa", !fn ? "fn is NULL" : "out is NULL");
    if (len == 0 || len > 4096 - (gpa & 0xfff))
        return glue_misuse(&pm->glue, "ptmon_hook_gpa",
                           "[gpa, gpa + len) is empty or leaves its 4 KiB frame");
    if (!(access & ACCESS_BITS) || (access & ~(uint32_t)ACCESS_BITS))
        return glue_misuse(&pm->glue, "ptmon_hook_gpa",
                           "access must be PTMON_ACCESS_R/W/X bits, at least one");
    if (pm->trace)
        trace_hook(pm->trace);
    h = glue_alloc(&pm->glue, sizeof(*h));
    if (!h)
        return PTMON_ENOMEM;
    rc = frame_acquire(pm, gpa >> 12, access, &f);
    if (rc < 0) {
        glue_free(&pm->glue, h, sizeof(*h));
        return rc;
    }
    memset(h, 0, sizeof(*h));
    h->pm = pm;
    h->frame = f;
    h->fn = fn;
    h->ctx = ctx;
    h->offset = (uint16_t)(gpa & 0xfff);
    h->len = (uint16_t)len;
    h->access = (uint8_t)access;
    for (tail = &f->hooks; *tail; tail = &(*tail)->next)
        ;
    *tail = h;
    *out = h;
    if (!pm->event_depth)
        instance_flush(pm);
    return 0;
}

int ptmon_unhook(ptmon_hook **hook)
{
    ptmon_hook *h;

    if (!hook || !*hook)
        return PTMON_EINVAL;
    if ((*hook)->dead) /* a copy of the handle, still allocated until the event ends */
        return glue_misuse(&(*hook)->pm->glue, "ptmon_unhook", "the hook is already removed");
    h = *hook;
    *hook = NULL; /* the handle dies here: a second call through it is a clean EINVAL */
    if (h->pm->trace)
        trace_hook(h->pm->trace);
    h->dead = 1;
    frame_release(h->pm, h->frame, h->access);
    return instance_commit_if_idle(h->pm);
}

/* Unlink and free the dead hooks of @p f. */
static void frame_reap_hooks(ptmon *pm, struct frame *f)
{
    struct ptmon_hook **link = &f->hooks;
    while (*link) {
        struct ptmon_hook *h = *link;
        if (h->dead) {
            *link = h->next;
            glue_free(&pm->glue, h, sizeof(*h));
        } else {
            link = &h->next;
        }
    }
}

/* Program @p n frames; on failure the frames not done stay as they were (still restricted,
 * which is the safe side) and are queued again. */
static int frame_apply_batch(ptmon *pm, struct frame **fs, size_t n)
{
    uint64_t gfns[COMMIT_BATCH] = {0};
    uint32_t access[COMMIT_BATCH] = {0};
    size_t done = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        gfns[i] = fs[i]->gfn;
        access[i] = frame_target_access(fs[i], frame_needed(fs[i]));
    }
    rc = glue_set_access_many(pm, gfns, access, n, &done);
    if (done)
        pm->flush_pending = 1;
    for (size_t i = 0; i < n; i++) {
        struct frame *f = fs[i];
        if (i < done) {
            f->removed = (uint8_t)frame_needed(f);
            if (frame_unused(f))
                frame_free(pm, f);
        } else {
            frame_queue_commit(pm, f);
        }
    }
    return rc;
}

int frame_commit(ptmon *pm)
{
    struct frame *list = pm->commit_frames, *batch[COMMIT_BATCH];
    size_t n = 0;
    int rc = 0, brc;

    pm->commit_frames = NULL;
    while (list) {
        struct frame *f = list;
        list = f->commit_next;
        f->on_commit = 0;
        frame_reap_hooks(pm, f);
        if (frame_needed(f) == f->removed) {
            if (frame_unused(f))
                frame_free(pm, f);
            continue;
        }
        batch[n++] = f;
        if (n == COMMIT_BATCH || !list) {
            brc = frame_apply_batch(pm, batch, n);
            if (brc < 0 && rc == 0)
                rc = brc;
            n = 0;
        }
    }
    if (n) {
        brc = frame_apply_batch(pm, batch, n);
        if (brc < 0 && rc == 0)
            rc = brc;
    }
    return rc;
}

void frame_destroy_all(ptmon *pm)
{
    uint64_t gfn;
    void *v;

    for (size_t pos = 0; map_next(&pm->frames, &pos, &gfn, &v);) {
        struct frame *f = v;
        struct ptmon_hook *h = f->hooks, *next;
        /* Best effort: a backend that fails here leaves the frame restricted; say so. */
        if (f->removed && glue_set_access(pm, f->gfn, f->saved_access) < 0)
            glue_log(&pm->glue, PTMON_LOG_ERROR,
                     "destroy: could not restore the rights of frame 0x%llx",
                     (unsigned long long)f->gfn);
        for (; h; h = next) {
            next = h->next;
            glue_free(&pm->glue, h, sizeof(*h));
        }
        glue_free(&pm->glue, f, sizeof(*f));
    }
    map_fini(&pm->frames, &pm->glue);
    pm->commit_frames = NULL;
    pm->flush_pending = 1;
    instance_flush(pm);
}
