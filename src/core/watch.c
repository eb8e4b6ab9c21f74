/*
 * watch.c — watches and the engine that keeps them equal to guest memory (see watch.h and
 * docs/ENGINE.md).
 *
 * Owns: struct ptmon_watch; placement; the per-write tree update; records; notification,
 * deny and revert. Calls entry.c, table.c, frame.c, walk.c, glue.c and the recorder.
 *
 * Entry nodes form a DAG (tables shared between address spaces share their nodes), so every
 * watch keeps its own path. A change of node N touches exactly the watches with
 * path[level(N)] == N; they are found by walking N's subtree (O(1) child lookups through the
 * child table's record) and filtering on the path.
 */
#include "core/watch.h"
#include "core/decode.h"
#include "core/trace.h"
#include "core/walk.h"

#include <string.h>

#define ADDR_BITS_64 0x000ffffffffff000ull
#define ADDR_BITS_32 0x00000000fffff000ull

static unsigned top_level(const ptmon *pm)
{
    return pm->levels;
}

/* ---- records -------------------------------------------------------------------------- */

void watch_compute(const ptmon *pm, const struct ptmon_watch *w, ptmon_translation *out)
{
    unsigned top = top_level(pm), rights = PTMON_RIGHT_W | PTMON_RIGHT_U, passed = 0;

    memset(out, 0, sizeof(*out));
    if (w->depth > top) { /* no node (a placement that failed at the root: never told) */
        out->status = PTMON_WALK_OUTSIDE_RAM;
        out->level = top;
        out->page_size = pm->span[top];
        return;
    }
    for (unsigned level = top; level >= w->depth; level--) {
        const struct entry *e = w->path[level];
        out->level = level;
        out->entry = e->value;
        if (e->kind == PT_TABLE && level == w->depth) {
            /* the deepest node points to a table ptmon could not protect: outside RAM, and the
             * walk stops at this pointer (it adds no rights, like any entry mapping nothing).
             * An incomplete watch stops at a pointer too, but its record is not computed until
             * its placement completes (deliver skips it, ptmon_check names it). */
            out->status = PTMON_WALK_OUTSIDE_RAM;
            break;
        }
        if (e->kind == PT_TABLE || e->kind == PT_LEAF) {
            rights = (rights & e->rights & (PTMON_RIGHT_W | PTMON_RIGHT_U)) |
                     ((rights | e->rights) & PTMON_RIGHT_NX);
            passed = 1;
        }
        if (e->kind == PT_TABLE)
            continue;
        if (e->kind == PT_LEAF) {
            out->status = PTMON_WALK_OK;
            out->frame = entry_leaf_frame(pm, e);
            out->page_size = pm->span[level];
            out->rights = rights;
            return;
        }
        out->status = e->kind == PT_RESERVED ? PTMON_WALK_RESERVED : PTMON_WALK_NOT_PRESENT;
        break;
    }
    out->page_size = pm->span[out->level];
    out->rights = passed ? rights : 0;
}

/*
 * Bits other than the address of an entry at @p level whose change is reported. The address is
 * compared as the decoded frame instead of as bits: a large page's address field holds PAT at
 * bit 12 (SPEC: PAT never triggers) and PSE-36 scatters a 4 MiB page's high address bits.
 */
static uint64_t flags_monitored_at(const ptmon *pm, unsigned level)
{
    uint64_t m =
        pm->monitored & ~(pm->paging.mode == PTMON_MODE_32BIT ? ADDR_BITS_32 : ADDR_BITS_64);
    /* bit 7 is PAT in a PTE; PS elsewhere, but reserved (never set in a usable entry) above */
    if (level == 1)
        m &= ~PTMON_PTE_PS;
    return m;
}

/* Would a watch whose record went from @p a to @p b be told? */
static int record_changed(const ptmon *pm, const ptmon_translation *a, const ptmon_translation *b)
{
    int pa = a->status == PTMON_WALK_OK, pb = b->status == PTMON_WALK_OK;

    if (!pa && !pb)
        return 0; /* not present -> not present: only remembered (C6) */
    if (pa != pb || a->level != b->level || a->rights != b->rights || a->frame != b->frame)
        return 1;
    return ((a->entry ^ b->entry) & flags_monitored_at(pm, a->level)) != 0;
}

/* ---- parked lists (ordered: high priority first, then placement order) ------------------ */

static int park_before(const struct ptmon_watch *a, const struct ptmon_watch *b)
{
    unsigned ha = a->flags & PTMON_WATCH_HIGH_PRIORITY, hb = b->flags & PTMON_WATCH_HIGH_PRIORITY;
    return ha != hb ? ha > hb : a->seq < b->seq;
}

static void park(struct ptmon_watch *w, struct entry *e)
{
    struct ptmon_watch *after = e->parked_tail;

    /* Newly placed and moved watches usually belong at the end: scan from the tail. */
    while (after && park_before(w, after))
        after = after->park_prev;
    w->park_prev = after;
    w->park_next = after ? after->park_next : e->parked_head;
    if (w->park_next)
        w->park_next->park_prev = w;
    else
        e->parked_tail = w;
    if (after)
        after->park_next = w;
    else
        e->parked_head = w;
}

static void unpark(struct ptmon_watch *w)
{
    struct entry *e;

    if (w->depth > top_level(w->pm))
        return;
    e = w->path[w->depth];
    if (w->park_prev)
        w->park_prev->park_next = w->park_next;
    else
        e->parked_head = w->park_next;
    if (w->park_next)
        w->park_next->park_prev = w->park_prev;
    else
        e->parked_tail = w->park_prev;
    w->park_prev = w->park_next = NULL;
}

/* ---- placement ------------------------------------------------------------------------ */

/* Give back the nodes of w's path below @p level (the watch must be unparked). */
static void release_below(ptmon *pm, struct ptmon_watch *w, unsigned level)
{
    for (unsigned l = w->depth; l < level; l++) {
        if (w->path[l]) {
            entry_put(pm, w->path[l]);
            w->path[l] = NULL;
        }
    }
    if (w->depth < level)
        w->depth = (uint8_t)level;
}

/*
 * Extend w's path downward from @p from (path[from + 1 ..] is set and path[from + 1] is a table
 * pointer, or from == top), then park it on its deepest node. On an error other than "table
 * outside RAM" the watch is parked where it got to and the error returned.
 */
static int place_from(ptmon *pm, struct ptmon_watch *w, unsigned from)
{
    unsigned top = top_level(pm);
    uint64_t table = pt_root_gpa(&pm->paging, w->cr3);
    int rc = 0;

    if (from < top)
        table = entry_table_addr(pm, w->path[from + 1]);
    w->depth = (uint8_t)(from + 1);
    for (unsigned level = from; level >= 1; level--) {
        struct entry *e;
        rc = entry_get(pm, pt_entry_gpa(&pm->paging, table, level, w->va), level, &e);
        if (rc < 0)
            break;
        w->path[level] = e;
        w->depth = (uint8_t)level;
        if (e->kind != PT_TABLE || level == 1)
            break;
        table = entry_table_addr(pm, e);
    }
    /* A table outside guest RAM: the walk stops at the pointer to it, nothing to protect. The
     * root outside RAM has no such pointer: ptmon_watch refuses it (a mistyped CR3). */
    if (rc == PTMON_ERANGE && w->depth <= top)
        rc = 0;
    if (w->depth <= top)
        park(w, w->path[w->depth]);
    return rc;
}

static void release_all(ptmon *pm, struct ptmon_watch *w)
{
    if (pm->last_placed == w)
        pm->last_placed = NULL;
    unpark(w);
    release_below(pm, w, top_level(pm) + 1);
}

/*
 * Place a new watch. Consecutive watches usually lie in the same page table of the same address
 * space (a range of VAs): then the previous watch's nodes above the leaf are this one's too, and
 * only the leaf is looked up. The tree equals memory at every call, so the shared nodes are
 * exactly what a walk from the root would find.
 */
static int place_new(ptmon *pm, struct ptmon_watch *w)
{
    const struct ptmon_watch *p = pm->last_placed;
    unsigned top = top_level(pm);
    int rc;

    if (p && p->cr3 == w->cr3 && p->depth == 1 && !p->incomplete && top > 1 &&
        p->va / pm->span[2] == w->va / pm->span[2]) {
        for (unsigned level = top; level >= 2; level--) {
            w->path[level] = p->path[level];
            w->path[level]->refs++;
        }
        rc = place_from(pm, w, 1);
    } else {
        rc = place_from(pm, w, top);
    }
    if (rc == 0)
        pm->last_placed = w;
    return rc;
}

static void list_push(struct ptmon_watch **head, struct ptmon_watch *w);
static void list_remove(struct ptmon_watch **head, struct ptmon_watch *w);

/* The watch no longer misses part of its path: it is delivered with the others again, and
 * leaves the list of waiting watches. */
static void placement_done(ptmon *pm, struct ptmon_watch *w)
{
    if (w->incomplete) {
        pm->waiting_for_room -= w->incomplete == WAIT_ROOM;
        w->incomplete = 0;
        pm->incomplete--;
        list_remove(&pm->waiting, w);
        list_push(&pm->watches, w);
    }
}

/* Waiting watches live on a list of their own: a commit retries exactly them, at a cost in
 * proportion to their number, not to every watch the instance has (a guest can keep one
 * placement incomplete for ever, and must not make every event cost O(watches) by it). */
static void placement_failed(ptmon *pm, struct ptmon_watch *w, int rc)
{
    uint8_t why = rc == PTMON_ELIMIT ? WAIT_ROOM : WAIT_READ;

    if (w->incomplete) { /* still waiting, maybe for another reason now */
        pm->waiting_for_room += (why == WAIT_ROOM) - (w->incomplete == WAIT_ROOM);
        w->incomplete = why;
    } else {
        w->incomplete = why;
        pm->waiting_for_room += why == WAIT_ROOM;
        pm->incomplete++;
        list_remove(&pm->watches, w);
        list_push(&pm->waiting, w);
    }
}

/* Retry the placement of a watch whose path stopped early on an error. */
static void complete_placement(ptmon *pm, struct ptmon_watch *w)
{
    unsigned top = top_level(pm);
    int rc = 0;

    pm->stats.retries++;
    unpark(w);
    if (w->depth > top)
        rc = place_from(pm, w, top);
    else if (w->path[w->depth]->kind == PT_TABLE && w->depth > 1)
        rc = place_from(pm, w, w->depth - 1u);
    else
        park(w, w->path[w->depth]);
    if (rc < 0)
        placement_failed(pm, w, rc);
    else
        placement_done(pm, w);
}

/* ---- the instance's watch list --------------------------------------------------------- */

static void list_push(struct ptmon_watch **head, struct ptmon_watch *w)
{
    w->all_prev = NULL;
    w->all_next = *head;
    if (*head)
        (*head)->all_prev = w;
    *head = w;
}

static void list_remove(struct ptmon_watch **head, struct ptmon_watch *w)
{
    if (w->all_prev)
        w->all_prev->all_next = w->all_next;
    else
        *head = w->all_next;
    if (w->all_next)
        w->all_next->all_prev = w->all_prev;
}

static int watch_add(ptmon *pm, uint64_t cr3, uint64_t va, unsigned flags, ptmon_watch_fn fn,
                     void *ctx, struct ptmon_watch **out)
{
    struct ptmon_watch *w;
    int rc;

    if (!fn || !out)
        return glue_misuse(&pm->glue, "ptmon_watch", !fn ? "fn is NULL" : "out is NULL");
    if (flags & ~(unsigned)PTMON_WATCH_HIGH_PRIORITY)
        return glue_misuse(&pm->glue, "ptmon_watch", "flags has unknown bits");
    if (!pt_va_valid(&pm->paging, va))
        return glue_misuse(&pm->glue, "ptmon_watch",
                           pm->levels >= 4 ? "va is not canonical for the paging mode"
                                           : "va is above 4 GiB, which the paging mode cannot map");
    /* Entries that could not be read are read first, so that the new watch starts from memory
     * (the others are told what changed there). From a callback the event's commit does it. */
    if (pm->unread && !pm->event_depth)
        watch_commit(pm);
    w = glue_alloc(&pm->glue, sizeof(*w));
    if (!w)
        return PTMON_ENOMEM;
    memset(w, 0, sizeof(*w));
    w->pm = pm;
    w->cr3 = cr3;
    w->va = va;
    w->fn = fn;
    w->ctx = ctx;
    w->flags = (uint8_t)flags;
    w->seq = pm->next_seq++;
    rc = place_new(pm, w);
    if (rc < 0) {
        release_all(pm, w); /* nothing half-placed stays behind */
        glue_free(&pm->glue, w, sizeof(*w));
        instance_commit_if_idle(pm);
        return rc;
    }
    watch_compute(pm, w, &w->rec);
    list_push(&pm->watches, w);
    pm->stats.watches++;
    *out = w;
    if (!pm->event_depth)
        instance_flush(pm); /* the new protections, effective on every vCPU */
    return 0;
}

int ptmon_watch(ptmon *pm, uint64_t cr3, uint64_t va, unsigned flags, ptmon_watch_fn fn, void *ctx,
                struct ptmon_watch **out)
{
    int rc;

    if (out)
        *out = NULL;
    if (!pm)
        return PTMON_EINVAL;
    if (!pm->trace)
        return watch_add(pm, cr3, va, flags, fn, ctx, out);
    trace_begin(pm->trace);
    rc = watch_add(pm, cr3, va, flags, fn, ctx, out);
    trace_watch_end(pm->trace, cr3, va, flags, rc, out ? *out : NULL);
    return rc;
}

static int watch_remove(ptmon *pm, struct ptmon_watch *w)
{
    w->dead = 1;
    if (w->incomplete) {
        pm->incomplete--;
        pm->waiting_for_room -= w->incomplete == WAIT_ROOM;
    }
    release_all(pm, w);
    list_remove(w->incomplete ? &pm->waiting : &pm->watches, w);
    list_push(&pm->dead_watches, w);
    pm->stats.watches--;
    return instance_commit_if_idle(pm);
}

int ptmon_unwatch(struct ptmon_watch **watch)
{
    struct ptmon_watch *w;
    ptmon *pm;
    int rc;

    if (!watch || !*watch)
        return PTMON_EINVAL;
    if ((*watch)->dead) /* a copy of the handle, still allocated until the event ends */
        return glue_misuse(&(*watch)->pm->glue, "ptmon_unwatch", "the watch is already removed");
    w = *watch;
    *watch = NULL; /* the handle dies here: a second call through it is a clean EINVAL */
    pm = w->pm;
    if (!pm->trace)
        return watch_remove(pm, w);
    trace_begin(pm->trace);
    rc = watch_remove(pm, w);
    trace_unwatch_end(pm->trace, w, rc);
    return rc;
}

ptmon_translation ptmon_watch_translation(const struct ptmon_watch *w)
{
    ptmon_translation none;
    if (w)
        return w->rec;
    memset(&none, 0, sizeof(none));
    return none;
}

void ptmon_set_monitored_bits(ptmon *pm, uint64_t bits)
{
    if (!pm)
        return;
    pm->monitored = bits;
    if (pm->trace)
        trace_monitored(pm->trace, bits);
}

/* ---- the tree update for one write ------------------------------------------------------ */

static void touch(ptmon *pm, struct ptmon_watch *w, unsigned level)
{
    if (w->touched_epoch == pm->epoch) {
        /* The highest changed entry is the cause: it decides which entries below count (a
         * lower one may lie on a way the walk no longer takes). */
        if (level > w->cause_level)
            w->cause_level = (uint8_t)level;
        return;
    }
    w->touched_epoch = pm->epoch;
    w->cause_level = (uint8_t)level;
    /* appended: watches arrive mostly in delivery order, which keeps the sort to one pass */
    w->touched_next = NULL;
    *pm->touched_tail = w;
    pm->touched_tail = &w->touched_next;
}

/*
 * Append at @p tail the watches below (or parked on) @p x whose path goes through @p n. Every
 * node is visited once per collection (pm->mark): aliased tables reach a node through many
 * parents, and revisiting it per parent would cost watches^(levels - 1).
 */
static void collect(ptmon *pm, struct entry *n, struct entry *x, struct ptmon_watch ***tail)
{
    struct frame *f;

    if (x->visit == pm->mark)
        return;
    x->visit = pm->mark;
    pm->stats.visits++;
    for (struct ptmon_watch *w = x->parked_head; w; w = w->park_next) {
        if (w->path[n->level] != n)
            continue; /* parked here, but reaches this node through another way */
        w->scratch_next = NULL;
        **tail = w;
        *tail = &w->scratch_next;
    }
    if (x->level == 1 || x->kind != PT_TABLE)
        return;
    f = frame_find(pm, entry_table_addr(pm, x) >> 12);
    if (!f || !f->table)
        return;
    for (unsigned slot = 0; table_next_slot(f->table, &slot); slot++)
        for (struct entry *c = table_slot_chain(f->table, slot); c; c = c->slot_next)
            if (c->level == x->level - 1)
                collect(pm, n, c, tail);
}

/* Does the walk below a node take another way after its value went from @p a to @p b? */
static int reroutes(const struct pt_entry_info *a, const struct pt_entry_info *b)
{
    if (a->kind != b->kind)
        return a->kind == PT_TABLE || b->kind == PT_TABLE;
    return a->kind == PT_TABLE && a->addr != b->addr;
}

/* Which list link to sort by. */
enum watch_link { LINK_SCRATCH, LINK_TOUCHED };

static struct ptmon_watch **link_of(struct ptmon_watch *w, enum watch_link l)
{
    return l == LINK_SCRATCH ? &w->scratch_next : &w->touched_next;
}

/* Is the list already in delivery order? */
static int watches_sorted(struct ptmon_watch *w, enum watch_link l)
{
    for (; w && *link_of(w, l); w = *link_of(w, l))
        if (park_before(*link_of(w, l), w))
            return 0;
    return 1;
}

/* Merge sort of a singly linked watch list into delivery order (priority, then placement),
 * without allocation. Re-parking watches in that order appends each at its node's tail. Lists
 * usually arrive sorted (gathered from sorted parked lists): that costs one pass. */
static struct ptmon_watch *sort_watches(struct ptmon_watch *head, enum watch_link l)
{
    struct ptmon_watch *a = head, *b, *slow = head, *fast, *merged = NULL, **tail = &merged;

    if (watches_sorted(head, l))
        return head;
    for (fast = *link_of(head, l); fast && *link_of(fast, l); fast = *link_of(*link_of(fast, l), l))
        slow = *link_of(slow, l);
    b = *link_of(slow, l);
    *link_of(slow, l) = NULL;
    a = sort_watches(a, l);
    b = sort_watches(b, l);
    while (a && b) {
        struct ptmon_watch **take = park_before(b, a) ? &b : &a;
        *tail = *take;
        *take = *link_of(*take, l);
        tail = link_of(*tail, l);
    }
    *tail = a ? a : b;
    return merged;
}

/* Node @p n now holds @p value: re-route the watches through it and mark them touched. */
static int node_changed(ptmon *pm, struct entry *n, uint64_t value)
{
    struct pt_entry_info before, after;
    struct ptmon_watch *list = NULL, **tail = &list;
    int rc = 0;

    before.kind = (enum pt_kind)n->kind;
    before.addr = entry_table_addr(pm, n);
    pt_decode(&pm->paging, n->level, value, &after);
    if (after.kind != PT_TABLE)
        after.addr = 0; /* compared only between table pointers */
    if (before.kind != PT_TABLE)
        before.addr = 0;
    if (before.kind != PT_TABLE && after.kind != PT_TABLE) {
        /* A leaf (or nothing) stays a leaf (or nothing): no walk goes below n, so the watches
         * through n are exactly those parked on it, already in delivery order. The common
         * event (remap, swap, rights) takes this way. */
        entry_set_decoded(n, value, &after);
        for (struct ptmon_watch *w = n->parked_head; w; w = w->park_next)
            touch(pm, w, n->level);
        return 0;
    }
    pm->mark++;
    collect(pm, n, n, &tail); /* with the old value: that is where the children are */
    list = sort_watches(list, LINK_SCRATCH);
    entry_set_decoded(n, value, &after);
    for (struct ptmon_watch *w = list; w; w = w->scratch_next) {
        touch(pm, w, n->level);
        if (!reroutes(&before, &after))
            continue;
        unpark(w);
        release_below(pm, w, n->level);
        if (after.kind == PT_TABLE && n->level > 1) {
            int prc = place_from(pm, w, n->level - 1u);
            if (prc < 0) {
                placement_failed(pm, w, prc);
                if (rc == 0)
                    rc = prc;
                continue;
            }
        } else {
            park(w, n);
        }
        placement_done(pm, w); /* whatever was missing below n is gone or found now */
    }
    return rc;
}

/* Touch every watch whose path goes through @p n: its slot was read again after a failure, and
 * the watches skipped meanwhile must now compare their record with the tree. */
static void touch_through(ptmon *pm, struct entry *n)
{
    struct ptmon_watch *list = NULL, **tail = &list;

    pm->mark++;
    collect(pm, n, n, &tail);
    for (struct ptmon_watch *w = list; w; w = w->scratch_next)
        touch(pm, w, n->level);
}

/* Start collecting the watches one pass of node changes touches. */
static void start_pass(ptmon *pm)
{
    pm->epoch++;
    pm->touched = NULL;
    pm->touched_tail = &pm->touched;
}

/* Give every node on the watched slot at @p gpa the value @p value. @p t: the slot's table
 * when the caller knows it is alive, else NULL (looked up: an earlier change of the same write
 * may have released it). */
static int apply_slot(ptmon *pm, struct table *t, uint64_t gpa, uint64_t value)
{
    struct entry *nodes[PTMON_MAX_LEVELS * 2];
    size_t count = 0;
    int rc = 0;

    if (!t) {
        struct frame *f = frame_find(pm, gpa >> 12);
        if (!f || !f->table)
            return 0;
        t = f->table;
    }
    /* Hold the slot's nodes: re-placement may free or add nodes on this very slot. */
    for (struct entry *e = table_slot_chain(t, entry_slot(pm, gpa));
         e && count < sizeof(nodes) / sizeof(nodes[0]); e = e->slot_next) {
        e->refs++;
        nodes[count++] = e;
    }
    for (size_t k = 0; k < count; k++) {
        struct entry *e = nodes[k];
        if (e->unread) {
            entry_mark_read(pm, e);
            if (e->value == value)
                touch_through(pm, e);
        }
        if (e->value != value) {
            int nrc = node_changed(pm, e, value);
            if (nrc < 0 && rc == 0)
                rc = nrc;
        }
    }
    for (size_t k = 0; k < count; k++)
        entry_put(pm, nodes[k]);
    return rc;
}

/* Apply the new values of @p n changes to the pass in progress. @p t: the (live) table of the
 * first change, or NULL. @return 0 or the first error. */
static int apply_new_values(ptmon *pm, struct table *t, const struct slot_change *c, size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        int src = apply_slot(pm, i == 0 ? t : NULL, c[i].gpa, c[i].new_value);
        if (src < 0 && rc == 0)
            rc = src;
    }
    return rc;
}

/* The same, in a pass of their own. */
static int apply_changes(ptmon *pm, struct table *t, const struct slot_change *c, size_t n)
{
    start_pass(pm);
    return apply_new_values(pm, t, c, n);
}

/* ---- notification ----------------------------------------------------------------------- */

/* Take the event's touched watches, in delivery order. */
static struct ptmon_watch *take_touched(ptmon *pm)
{
    struct ptmon_watch *list = sort_watches(pm->touched, LINK_TOUCHED);
    pm->touched = NULL;
    pm->touched_tail = &pm->touched;
    return list;
}

/* Retry, before delivery, the placements of this pass that failed: a transient read failure
 * must not make a watch miss its callback (and its chance to deny). */
static void retry_placements(ptmon *pm, struct ptmon_watch *list)
{
    for (struct ptmon_watch *w = list; w && pm->incomplete; w = w->touched_next)
        if (w->incomplete && !w->dead)
            complete_placement(pm, w);
}

/* Does @p w's path cross a node whose slot could not be read? Its record would be made of a
 * stale entry: the watch waits (keeping what it was told) until a commit reads the slot. */
static int path_unread(const ptmon *pm, const struct ptmon_watch *w)
{
    for (unsigned level = w->depth; level <= top_level(pm); level++)
        if (w->path[level]->unread)
            return 1;
    return 0;
}

/* What a delivery pass tells. */
enum pass {
    PASS_FORWARD, /* a write: every changed watch, may be denied (stops at the deny) */
    PASS_TELL,    /* a commit's changes: every changed watch, no veto */
    PASS_REVERT,  /* after a deny: those told the write are told it is undone (reverted = 1),
                     the others hear what stands (reverted = 0): the deny kept them from their
                     turn, or the undo could not restore everything */
};

/* Where a revert pass stands. */
struct revert {
    uint64_t forward_epoch; /* watches told in it are told the undo */
    uint64_t first_seq;     /* watches placed since (by callbacks) saw the write pending, never
                               in memory, and were told nothing: they update silently */
};

/*
 * Bring the records of the watches on @p list up to date and call those whose translation
 * changed, in list order. Records are computed as each watch's turn comes: callbacks cannot
 * change page tables, only add or remove watches, so the result is the same as computing them
 * all first, and no watch needs a copy of its old record. PASS_FORWARD returns 1 after the
 * first deny, leaving in @p rest the watches not reached. An incomplete watch, or one whose path
 * crosses an unread node, keeps its record (what it was last told) until the commit that
 * completes its placement or reads the node again touches it.
 */
static int deliver(ptmon *pm, struct ptmon_watch *list, uint32_t vcpu, enum pass pass,
                   const struct revert *rv, struct ptmon_watch **rest)
{
    for (struct ptmon_watch *w = list; w; w = w->touched_next) {
        int reverted = 0, action;
        ptmon_translation now;
        ptmon_change ch;

        if (w->dead || w->incomplete || (pm->unread && path_unread(pm, w)))
            continue;
        watch_compute(pm, w, &now);
        if (pass == PASS_REVERT) {
            reverted = w->told_epoch == rv->forward_epoch;
            if (!reverted && w->seq >= rv->first_seq) {
                w->rec = now;
                continue;
            }
        }
        if (!record_changed(pm, &w->rec, &now)) {
            w->rec = now;
            continue;
        }
        memset(&ch, 0, sizeof(ch));
        ch.cr3 = w->cr3;
        ch.va = w->va;
        ch.before = w->rec;
        ch.after = now;
        ch.level = w->cause_level;
        ch.vcpu = vcpu;
        ch.reverted = (uint8_t)reverted;
        w->rec = now;
        w->told_epoch = pm->epoch;
        pm->stats.callbacks++;
        action = w->fn(pm, w, w->ctx, &ch);
        if (pm->trace)
            trace_callback(pm->trace, w, &ch, action);
        if (action == PTMON_ACTION_DENY && pass == PASS_FORWARD) {
            if (rest)
                *rest = w->touched_next;
            return 1;
        }
    }
    if (rest)
        *rest = NULL;
    return 0;
}

/* ---- the write -------------------------------------------------------------------------- */

/* Write @p value back into the entry at @p gpa. @return 0, or the backend's error (logged). */
static int write_back_entry(ptmon *pm, uint32_t vcpu, uint64_t gpa, uint64_t value)
{
    uint8_t bytes[8];
    int rc;

    for (unsigned b = 0; b < pm->esize; b++)
        bytes[b] = (uint8_t)(value >> (8 * b));
    rc = glue_emulate_write(pm, vcpu, gpa, pm->esize, bytes, NULL);
    if (rc < 0)
        glue_log(&pm->glue, PTMON_LOG_ERROR, "deny: cannot restore entry 0x%llx: %s",
                 (unsigned long long)gpa, ptmon_strerror(rc));
    return rc;
}

/* Undo a write already in memory, entry by entry, trying every one: the changes @p c, and the
 * entries of @p failed (their read failed in the forward pass; their nodes, unread since, still
 * hold what they held before the write). @return the number of entries left as written (their
 * restore failed, or their old value is unknown). */
static size_t write_back_old(ptmon *pm, const ptmon_mem_event *ev, const struct slot_change *c,
                             size_t n, const struct slot_set *failed)
{
    unsigned first = entry_slot(pm, ev->gpa), last = entry_slot(pm, ev->gpa + ev->size - 1);
    struct frame *f = frame_find(pm, ev->gpa >> 12);
    size_t left = 0;

    for (size_t i = 0; i < n; i++) {
        if (c[i].old_value == c[i].new_value) {
            /* an entry read again after a failure: what it held before the write is unknown */
            glue_log(&pm->glue, PTMON_LOG_WARN,
                     "deny: entry 0x%llx left as written (its old value is unknown)",
                     (unsigned long long)c[i].gpa);
            left++;
        } else if (write_back_entry(pm, ev->vcpu, c[i].gpa, c[i].old_value) < 0) {
            left++;
        }
    }
    for (unsigned slot = first; failed->count && f && f->table && slot <= last; slot++) {
        struct entry *chain;
        if (!slot_set_has(failed, slot) || !table_slot_watched(f->table, slot))
            continue;
        chain = table_slot_chain(f->table, slot);
        /* (a node a callback made since read the new value: nothing known to restore) */
        if (entry_chain_unread(chain) &&
            write_back_entry(pm, ev->vcpu, chain->gpa, chain->value) < 0)
            left++;
    }
    return left;
}

/* Undo the write @p ev, already in memory. With @p old (the range's bytes before the write,
 * saved when ptmon had it performed) the whole store is undone, unwatched entries included: a
 * denied PRE write is not performed at all. Otherwise (POST) only the watched entries' old
 * values are known (write_back_old). @return the number of watched entries left as written. */
static size_t undo_write(ptmon *pm, const ptmon_mem_event *ev, const uint8_t *old,
                         const struct slot_change *c, size_t n, const struct slot_set *failed)
{
    if (old) {
        int rc = glue_emulate_write(pm, ev->vcpu, ev->gpa, ev->size, old, NULL);
        if (rc == 0)
            return 0;
        glue_log(&pm->glue, PTMON_LOG_ERROR, "deny: cannot restore 0x%llx+%u: %s",
                 (unsigned long long)ev->gpa, ev->size, ptmon_strerror(rc));
    }
    return write_back_old(pm, ev, c, n, failed);
}

/* The slots of @p known hold values known without reading (a denied PRE write left memory as it
 * was): a failed read of them after the deny does not make them unread. */
static void keep_known(ptmon *pm, struct table *t, const struct slot_set *known)
{
    for (unsigned slot = 0; table_next_slot(t, &slot); slot++)
        if (slot_set_has(known, slot))
            for (struct entry *e = table_slot_chain(t, slot); e; e = e->slot_next)
                entry_mark_read(pm, e);
}

/*
 * A callback denied the write @p ev after the watches before it were told. Undo what can be
 * undone, bring the tree back to memory, then tell: the watches told the write hear that it is
 * reverted, the ones the deny kept from being told hear whatever still stands (an undo in
 * memory can fail part-way). @p rest: the forward pass's watches not reached. @p old: see
 * undo_write; @p failed: the slots whose read failed in the forward pass (decode_write). The @p c
 * array is reused for the re-read once its changes are undone.
 */
static void deny_write(ptmon *pm, const ptmon_mem_event *ev, int in_memory, const uint8_t *old,
                       struct slot_change *c, size_t n, const struct slot_set *failed,
                       struct ptmon_watch *rest, const struct revert *rv)
{
    struct slot_set known = *failed; /* PRE: memory never held the write */
    struct ptmon_watch *list, *next;
    struct frame *f;
    int undone = 1;

    pm->pending.bytes = NULL;
    if (in_memory && undo_write(pm, ev, old, c, n, failed) > 0)
        undone = 0;
    start_pass(pm);
    for (struct ptmon_watch *w = rest; w; w = next) {
        next = w->touched_next; /* touch() relinks w */
        touch(pm, w, w->cause_level);
    }
    if (!in_memory) { /* memory never changed: no read needed to know the old values */
        for (size_t i = 0; i < n; i++) {
            if (c[i].old_value != c[i].new_value) /* else: unknown, read below */
                slot_set_add(&known, entry_slot(pm, c[i].gpa));
            (void)apply_slot(pm, NULL, c[i].gpa, c[i].old_value);
        }
    }
    /* Nodes made by callbacks while the write was pending read its bytes, and an entry whose
     * read failed was not undone: compare the whole range with memory (no overlay now). */
    f = frame_find(pm, ev->gpa >> 12);
    if (f && f->table) {
        (void)apply_new_values(pm, NULL, c, decode_write(pm, f->table, ev->gpa, ev->size, c, NULL));
        if (!in_memory)
            keep_known(pm, f->table, &known);
    }
    list = take_touched(pm);
    retry_placements(pm, list);
    deliver(pm, list, ev->vcpu, PASS_REVERT, rv, NULL);
    if (undone)
        pm->stats.denied++;
}

/* Perform an allowed PRE write whose bytes the event carries, so that the tree and memory agree
 * when the event ends. @return EMULATED, or @p action when the backend is left to write. */
static int perform_allowed(ptmon *pm, const ptmon_mem_event *ev, int action)
{
    int rc;

    if (!pm->glue.emulate_write)
        return action;
    rc = glue_emulate_write(pm, ev->vcpu, ev->gpa, ev->size, ev->bytes, NULL);
    if (rc < 0) {
        glue_log(&pm->glue, PTMON_LOG_WARN, "emulate_write at 0x%llx: %s; backend writes",
                 (unsigned long long)ev->gpa, ptmon_strerror(rc));
        return action;
    }
    return PTMON_ACTION_EMULATED;
}

int watch_on_write(ptmon *pm, struct table *t, const ptmon_mem_event *ev)
{
    struct slot_change changes[4096 / 4];
    struct slot_set failed;
    uint8_t saved[4096];
    const uint8_t *old = NULL;
    int pre = ev->delivery == PTMON_DELIVERY_PRE, in_memory = !pre, action = PTMON_ACTION_ALLOW;
    struct ptmon_watch *rest = NULL, *list;
    struct revert rv = {0, pm->next_seq};
    size_t n;
    int rc;

    if (!decode_touches_watched(pm, t, ev->gpa, ev->size)) {
        pm->stats.irrelevant++;
        return PTMON_ACTION_ALLOW;
    }
    failed.count = 0;
    if (pre && !ev->bytes) {
        /* The backend does not know the bytes: have it perform the write now; from then on this
         * is a write already in memory. The range is saved first so that a deny can undo all of
         * it, not just the watched entries. */
        rc = glue_read_gpa(pm, ev->gpa, saved, ev->size);
        if (rc == 0)
            old = saved;
        else
            glue_log(&pm->glue, PTMON_LOG_WARN,
                     "cannot save 0x%llx+%u (%s): a deny restores only the watched entries",
                     (unsigned long long)ev->gpa, ev->size, ptmon_strerror(rc));
        rc = glue_emulate_write(pm, ev->vcpu, ev->gpa, ev->size, NULL, NULL);
        if (rc < 0) {
            /* The backend performs the write after we answer: its watched entries wait for the
             * next commit to read them (their watches are told then). */
            glue_log(&pm->glue, PTMON_LOG_ERROR,
                     "write of unknown bytes at 0x%llx: %s; left to the backend, re-read later",
                     (unsigned long long)ev->gpa, ptmon_strerror(rc));
            decode_mark_unread(pm, t, ev->gpa, ev->size);
            pm->reads_held = 1;
            return PTMON_ACTION_ALLOW;
        }
        in_memory = 1;
        action = PTMON_ACTION_EMULATED;
    } else if (pre) {
        pm->pending = pending_write_of(ev);
    }
    n = decode_write(pm, t, ev->gpa, ev->size, changes, &failed);
    if (n == 0) {
        pm->pending.bytes = NULL;
        pm->stats.irrelevant++;
        return action;
    }
    rc = apply_changes(pm, t, changes, n);
    rv.forward_epoch = pm->epoch;
    list = take_touched(pm);
    retry_placements(pm, list);
    if (rc < 0 && pm->incomplete)
        glue_log(&pm->glue, PTMON_LOG_ERROR, "write at 0x%llx: %s (placement retried at commit)",
                 (unsigned long long)ev->gpa, ptmon_strerror(rc));
    if (deliver(pm, list, ev->vcpu, PASS_FORWARD, NULL, &rest)) {
        deny_write(pm, ev, in_memory, old, changes, n, &failed, rest, &rv);
        return in_memory ? action : PTMON_ACTION_DENY;
    }
    pm->pending.bytes = NULL;
    return in_memory ? action : perform_allowed(pm, ev, action);
}

/* ---- commit ---------------------------------------------------------------------------- */

/* Read again every slot marked unread and apply what it holds (its waiting watches are touched
 * even if it did not change). Only the tables listed as holding such a node are searched.
 * @return 0, or an error with the slots still unreadable left marked for the next commit. */
static int reread_unread(ptmon *pm)
{
    size_t n = 0, cap = pm->unread;
    struct slot_change *changes = glue_alloc(&pm->glue, cap * sizeof(*changes));
    int rc = 0;

    if (!changes)
        return PTMON_ENOMEM;
    /* (reading marks nothing: the list stays as it is until the changes are applied below) */
    for (struct table *t = pm->unread_tables; t; t = t->unread_next) {
        for (unsigned slot = 0; t->unread && table_next_slot(t, &slot); slot++) {
            struct entry *chain = table_slot_chain(t, slot);
            uint64_t value;
            int rrc;
            if (!entry_chain_unread(chain) || n == cap) /* (a slot per unread node at most) */
                continue;
            rrc = entry_read(pm, chain->gpa, &value);
            if (rrc < 0) {
                rc = rc ? rc : rrc;
                continue;
            }
            changes[n].gpa = chain->gpa;
            changes[n].old_value = value; /* unused: a commit is never denied */
            changes[n].new_value = value;
            n++;
        }
    }
    (void)apply_changes(pm, NULL, changes, n); /* failures: retried placements */
    glue_free(&pm->glue, changes, cap * sizeof(*changes));
    return rc;
}

static void free_dead_watches(ptmon *pm)
{
    while (pm->dead_watches) {
        struct ptmon_watch *w = pm->dead_watches;
        pm->dead_watches = w->all_next;
        glue_free(&pm->glue, w, sizeof(*w));
    }
}

/*
 * Retry the waiting placements. A watch waiting for room under the caps can only be placed once
 * a node or table was freed, and once one such retry fails again the caps are full: the other
 * room-waiting watches would fail the same way, and are left for the next free. So a guest that
 * keeps many watches waiting, and frees one entry per event, makes each event cost one failed
 * retry, not one per waiting watch. (Watches that wait for a read are always retried.)
 */
static void retry_waiting(ptmon *pm)
{
    int room = pm->room_epoch != pm->room_epoch_tried;

    pm->room_epoch_tried = pm->room_epoch; /* (what the retries free counts for the next) */
    for (struct ptmon_watch *w = pm->waiting, *next; w; w = next) {
        next = w->all_next; /* a completed placement moves w to pm->watches */
        if (w->incomplete == WAIT_ROOM && !room)
            continue;
        touch(pm, w, w->depth);
        complete_placement(pm, w);
        if (w->incomplete == WAIT_ROOM)
            room = 0;
    }
}

int watch_retries_due(const ptmon *pm)
{
    return pm->waiting &&
           (pm->waiting_for_room != pm->incomplete || pm->room_epoch != pm->room_epoch_tried);
}

/* Read the unread entries again, retry the failed placements if @p placements, and tell what
 * changed now, as of no vCPU (callbacks may unwatch). */
static void catch_up(ptmon *pm, int placements)
{
    int rc;

    pm->event_depth++;
    start_pass(pm);
    rc = pm->unread ? reread_unread(pm) : 0;
    if (rc < 0 && pm->unread != pm->unread_logged) /* once per count, not once per event */
        glue_log(&pm->glue, PTMON_LOG_WARN, "%zu watched entries still unread: %s", pm->unread,
                 ptmon_strerror(rc));
    pm->unread_logged = pm->unread;
    if (placements && watch_retries_due(pm))
        retry_waiting(pm);
    deliver(pm, take_touched(pm), PTMON_VCPU_NONE, PASS_TELL, NULL, NULL);
    pm->event_depth--;
}

void watch_commit(ptmon *pm)
{
    free_dead_watches(pm);
    /* Both steps read guest memory: not while a write of unknown bytes is to land. */
    if (!pm->reads_held && (watch_retries_due(pm) || pm->unread)) {
        catch_up(pm, 1);
        free_dead_watches(pm); /* removed by its callbacks: the commit is their event's end */
    }
}

/* (Watches its callbacks remove stay allocated until the event's own commit, like any removed
 * during an event: their handles may still be passed to ptmon_unwatch, which says EINVAL.) */
void watch_before_event(ptmon *pm, const ptmon_mem_event *ev)
{
    /* Not before a POST write: memory holds it already, so what is read now would mix it with
     * the state before it. Its decode reads its own entries (their change is its), the watches
     * through the others wait for its commit. */
    if (ev->access == PTMON_ACCESS_W && ev->delivery == PTMON_DELIVERY_POST)
        return;
    catch_up(pm, 0);
}

static void free_list(ptmon *pm, struct ptmon_watch **head)
{
    while (*head) {
        struct ptmon_watch *w = *head;
        release_all(pm, w);
        *head = w->all_next;
        glue_free(&pm->glue, w, sizeof(*w));
    }
}

void watch_destroy_all(ptmon *pm)
{
    free_list(pm, &pm->watches);
    free_list(pm, &pm->waiting);
    pm->stats.watches = 0;
    pm->incomplete = 0;
    pm->waiting_for_room = 0;
    free_dead_watches(pm); /* no commit: it would read guest memory for nothing */
}
