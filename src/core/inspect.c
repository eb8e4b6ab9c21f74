/*
 * inspect.c — ptmon looking at itself: the integrity check, statistics and dumps.
 *
 * Owns: nothing lasting (check builds a temporary map and frees it). Reads every layer's
 * structures; calls walk.c, the glue (reads and get_access only, never a change) and the
 * recorder (a check is a recorded call).
 */
#include "core/trace.h"
#include "core/walk.h"
#include "core/watch.h"

#include <stdio.h>
#include <string.h>

#define AD_BITS (PTMON_PTE_A | PTMON_PTE_D)

struct findings {
    ptmon_finding *out;
    size_t max, count;
    size_t unread; /* nodes found marked unread */
};

static void finding(struct findings *fs, enum ptmon_finding_kind kind, const struct ptmon_watch *w,
                    uint64_t gpa, unsigned level, const char *fmt, ...) PTMON_PRINTF(6, 7);

static void finding(struct findings *fs, enum ptmon_finding_kind kind, const struct ptmon_watch *w,
                    uint64_t gpa, unsigned level, const char *fmt, ...)
{
    if (fs->count < fs->max) {
        ptmon_finding *f = &fs->out[fs->count];
        va_list ap;
        f->kind = kind;
        f->watch = w;
        f->gpa = gpa;
        f->level = level;
        va_start(ap, fmt);
        vsnprintf(f->text, sizeof(f->text), fmt, ap);
        va_end(ap);
    }
    fs->count++;
}

static int check_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
    return glue_read_gpa(ctx, gpa, buf, len);
}

/* The walker's view of a VA, in the form of a watch record. */
static int fresh_translation(ptmon *pm, const struct ptmon_watch *w, ptmon_translation *t)
{
    ptmon_walk walk;
    int rc = pt_walk(&pm->paging, check_read, pm, w->cr3, w->va, NULL, NULL, &walk);

    if (rc < 0)
        return rc;
    memset(t, 0, sizeof(*t));
    t->status = walk.status;
    t->level = walk.stop_level;
    t->entry = walk.level[walk.stop_level].value;
    t->rights = walk.rights;
    t->frame = walk.status == PTMON_WALK_OK ? walk.page_gpa : 0;
    t->page_size =
        walk.status == PTMON_WALK_OK ? walk.page_size : pt_level_span(&pm->paging, walk.stop_level);
    return 0;
}

static int same_translation(const ptmon_translation *a, const ptmon_translation *b)
{
    /* A and D are set by the CPU's page walker without any event: not part of the record. */
    return a->status == b->status && a->level == b->level && a->rights == b->rights &&
           a->frame == b->frame && a->page_size == b->page_size &&
           ((a->entry ^ b->entry) & ~AD_BITS) == 0;
}

static int check_watches(ptmon *pm, struct findings *fs, struct map *expected)
{
    unsigned top = ptmon_paging_levels(pm->paging.mode);

    for (struct ptmon_watch *w = watch_first(pm); w; w = watch_next(pm, w)) {
        ptmon_translation t;
        int rc = fresh_translation(pm, w, &t);
        if (rc < 0)
            finding(fs, PTMON_FINDING_UNREADABLE, w, 0, 0,
                    "watch va=0x%llx: its path cannot be read (%s)", (unsigned long long)w->va,
                    ptmon_strerror(rc));
        else if (w->incomplete)
            finding(fs, PTMON_FINDING_STALE_RECORD, w, 0, w->depth,
                    "watch va=0x%llx: placement incomplete (an error stopped it)",
                    (unsigned long long)w->va);
        else if (!same_translation(&t, &w->rec))
            finding(fs, PTMON_FINDING_STALE_RECORD, w, 0, t.level,
                    "watch va=0x%llx: record %s L%u entry 0x%llx, memory %s L%u entry 0x%llx",
                    (unsigned long long)w->va, ptmon_walk_status_name(w->rec.status), w->rec.level,
                    (unsigned long long)w->rec.entry, ptmon_walk_status_name(t.status), t.level,
                    (unsigned long long)t.entry);
        for (unsigned l = w->depth; l <= top; l++) {
            uintptr_t n = (uintptr_t)map_get(expected, (uintptr_t)w->path[l]);
            rc = map_put(expected, &pm->glue, (uintptr_t)w->path[l], (void *)(n + 1));
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static void check_node(ptmon *pm, struct findings *fs, struct map *expected, struct entry *e)
{
    uintptr_t want = (uintptr_t)map_get(expected, (uintptr_t)e);
    uint64_t value;

    if (e->refs != want)
        finding(fs, PTMON_FINDING_REFCOUNT, NULL, e->gpa, e->level,
                "node 0x%llx L%u: refs %u, watches through it %lu", (unsigned long long)e->gpa,
                e->level, e->refs, (unsigned long)want);
    if (!want)
        finding(fs, PTMON_FINDING_STRAY, NULL, e->gpa, e->level,
                "node 0x%llx L%u is used by no live watch", (unsigned long long)e->gpa, e->level);
    int rc = entry_read(pm, e->gpa, &value);

    if (rc < 0)
        finding(fs, PTMON_FINDING_UNREADABLE, NULL, e->gpa, e->level,
                "node 0x%llx L%u cannot be read (%s): its watches wait", (unsigned long long)e->gpa,
                e->level, ptmon_strerror(rc));
    else if (e->unread)
        finding(fs, PTMON_FINDING_UNREADABLE, NULL, e->gpa, e->level,
                "node 0x%llx L%u unread (its last read failed): its watches wait for a commit",
                (unsigned long long)e->gpa, e->level);
    else if ((value ^ e->value) & ~AD_BITS)
        finding(fs, PTMON_FINDING_CACHE, NULL, e->gpa, e->level,
                "node 0x%llx L%u caches 0x%llx, memory holds 0x%llx", (unsigned long long)e->gpa,
                e->level, (unsigned long long)e->value, (unsigned long long)value);
    fs->unread += e->unread;
    for (struct ptmon_watch *w = e->parked_head; w; w = w->park_next)
        if (w->dead || w->path[w->depth] != e)
            finding(fs, PTMON_FINDING_STRAY, w, e->gpa, e->level,
                    "node 0x%llx L%u has a %s watch parked", (unsigned long long)e->gpa, e->level,
                    w->dead ? "removed" : "misplaced");
}

static void check_frame(ptmon *pm, struct findings *fs, struct map *expected, struct frame *f)
{
    uint32_t access;

    if (f->table) {
        size_t unread = fs->unread;
        if (!(f->removed & PTMON_ACCESS_W) || !f->need[1])
            finding(fs, PTMON_FINDING_UNPROTECTED, NULL, f->gfn << 12, 0,
                    "table frame 0x%llx is not write-protected by ptmon",
                    (unsigned long long)f->gfn);
        else if (glue_get_access(pm, f->gfn, &access) == 0 && (access & PTMON_ACCESS_W))
            finding(fs, PTMON_FINDING_UNPROTECTED, NULL, f->gfn << 12, 0,
                    "table frame 0x%llx is writable in the backend", (unsigned long long)f->gfn);
        if (!f->table->count)
            finding(fs, PTMON_FINDING_STRAY, NULL, f->gfn << 12, 0,
                    "table frame 0x%llx has no watched slot", (unsigned long long)f->gfn);
        for (unsigned slot = 0; table_next_slot(f->table, &slot); slot++)
            for (struct entry *e = table_slot_chain(f->table, slot); e; e = e->slot_next)
                check_node(pm, fs, expected, e);
        if (fs->unread - unread != f->table->unread)
            finding(fs, PTMON_FINDING_REFCOUNT, NULL, f->gfn << 12, 0,
                    "table frame 0x%llx counts %u unread nodes, holds %zu",
                    (unsigned long long)f->gfn, f->table->unread, fs->unread - unread);
    }
    /* A frame whose rights could not be given back stays queued for the next commit. */
    if (!pm->event_depth && !f->table && !f->hooks && !f->on_commit)
        finding(fs, PTMON_FINDING_STRAY, NULL, f->gfn << 12, 0,
                "frame 0x%llx is kept with nothing on it", (unsigned long long)f->gfn);
}

static int check(ptmon *pm, ptmon_finding *out, size_t max)
{
    struct findings fs = {out, out ? max : 0, 0, 0};
    struct map expected;
    uint64_t gfn;
    void *v;
    int rc;

    map_init(&expected);
    rc = check_watches(pm, &fs, &expected);
    if (rc == 0) {
        for (size_t pos = 0; map_next(&pm->frames, &pos, &gfn, &v);)
            check_frame(pm, &fs, &expected, v);
        if (fs.unread != pm->unread)
            finding(&fs, PTMON_FINDING_REFCOUNT, NULL, 0, 0,
                    "the instance counts %zu unread nodes, its tables hold %zu", pm->unread,
                    fs.unread);
    }
    map_fini(&expected, &pm->glue);
    if (rc < 0)
        return rc;
    return fs.count > (size_t)INT32_MAX ? INT32_MAX : (int)fs.count;
}

int ptmon_check(ptmon *pm, ptmon_finding *out, size_t max)
{
    int rc;

    if (!pm)
        return PTMON_EINVAL;
    if (!pm->trace)
        return check(pm, out, max);
    trace_begin(pm->trace);
    rc = check(pm, out, max);
    trace_result_end(pm->trace, PTMON_TRACE_CHECK, rc);
    return rc;
}

int ptmon_get_stats(const ptmon *pm, ptmon_stats *out)
{
    uint64_t gfn;
    void *v;

    if (!pm || !out)
        return PTMON_EINVAL;
    memset(out, 0, sizeof(*out));
    out->watches = pm->stats.watches;
    out->nodes = pm->stats.nodes;
    out->events = pm->stats.events;
    out->events_irrelevant = pm->stats.irrelevant;
    out->events_denied = pm->stats.denied;
    out->callbacks = pm->stats.callbacks;
    out->bytes = sizeof(*pm) + map_bytes(&pm->frames) + pm->stats.nodes * sizeof(struct entry) +
                 pm->stats.watches * sizeof(struct ptmon_watch) + entry_stock_bytes(pm) +
                 table_stock_bytes(pm);
    for (size_t pos = 0; map_next(&pm->frames, &pos, &gfn, &v);) {
        const struct frame *f = v;
        out->frames++;
        out->bytes += sizeof(*f);
        for (const struct ptmon_hook *h = f->hooks; h; h = h->next)
            out->bytes += sizeof(*h);
        if (f->table) {
            out->tables++;
            out->bytes += table_bytes(f->table);
        }
    }
    return 0;
}

/* ---- dumps ------------------------------------------------------------------------------ */

static void emit(ptmon_write_fn write, void *ctx, const char *fmt, ...) PTMON_PRINTF(3, 4);

static void emit(ptmon_write_fn write, void *ctx, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    write(ctx, line);
}

static void dump_text(const ptmon *pm, ptmon_write_fn write, void *ctx)
{
    uint64_t gfn;
    void *v;

    emit(write, ctx, "ptmon %s paging: %llu watches, %llu nodes\n",
         ptmon_paging_mode_name(pm->paging.mode), (unsigned long long)pm->stats.watches,
         (unsigned long long)pm->stats.nodes);
    for (const struct ptmon_watch *w = watch_first(pm); w; w = watch_next(pm, w))
        emit(write, ctx,
             "watch cr3=0x%llx va=0x%llx: %s L%u entry=0x%llx frame=0x%llx size=0x%llx rights=%u\n",
             (unsigned long long)w->cr3, (unsigned long long)w->va,
             ptmon_walk_status_name(w->rec.status), w->rec.level, (unsigned long long)w->rec.entry,
             (unsigned long long)w->rec.frame, (unsigned long long)w->rec.page_size, w->rec.rights);
    for (size_t pos = 0; map_next(&pm->frames, &pos, &gfn, &v);) {
        const struct frame *f = v;
        if (!f->table)
            continue;
        emit(write, ctx, "table frame=0x%llx watched slots=%u\n", (unsigned long long)f->gfn,
             f->table->count);
        for (unsigned slot = 0; table_next_slot(f->table, &slot); slot++)
            for (const struct entry *e = table_slot_chain(f->table, slot); e; e = e->slot_next)
                emit(write, ctx, "  node gpa=0x%llx L%u value=0x%llx refs=%u\n",
                     (unsigned long long)e->gpa, e->level, (unsigned long long)e->value, e->refs);
    }
}

static void dump_dot(const ptmon *pm, ptmon_write_fn write, void *ctx)
{
    unsigned top = ptmon_paging_levels(pm->paging.mode);

    /* strict: paths sharing a prefix emit the same edge more than once; Graphviz merges them */
    emit(write, ctx,
         "strict digraph ptmon {\n  rankdir=LR;\n  node [shape=box, fontname=monospace];\n");
    for (const struct ptmon_watch *w = watch_first(pm); w; w = watch_next(pm, w)) {
        emit(write, ctx, "  w%p [shape=ellipse, label=\"va 0x%llx\\ncr3 0x%llx\\n%s\"];\n",
             (const void *)w, (unsigned long long)w->va, (unsigned long long)w->cr3,
             ptmon_walk_status_name(w->rec.status));
        /* the path, top-down */
        for (unsigned l = top; l > w->depth && l <= top; l--)
            emit(write, ctx, "  n%p -> n%p;\n", (const void *)w->path[l],
                 (const void *)w->path[l - 1]);
        if (w->depth <= top)
            emit(write, ctx, "  n%p -> w%p [style=dashed];\n", (const void *)w->path[w->depth],
                 (const void *)w);
    }
    uint64_t gfn;
    void *v;
    for (size_t pos = 0; map_next(&pm->frames, &pos, &gfn, &v);) {
        const struct frame *f = v;
        if (!f->table)
            continue;
        for (unsigned slot = 0; table_next_slot(f->table, &slot); slot++)
            for (const struct entry *e = table_slot_chain(f->table, slot); e; e = e->slot_next)
                emit(write, ctx, "  n%p [label=\"L%u @0x%llx\\n0x%llx\\nrefs %u\"];\n",
                     (const void *)e, e->level, (unsigned long long)e->gpa,
                     (unsigned long long)e->value, e->refs);
    }
    emit(write, ctx, "}\n");
}

int ptmon_dump(const ptmon *pm, enum ptmon_dump_format format, ptmon_write_fn write, void *ctx)
{
    if (!pm || !write)
        return PTMON_EINVAL;
    if (format == PTMON_DUMP_TEXT)
        dump_text(pm, write, ctx);
    else if (format == PTMON_DUMP_DOT)
        dump_dot(pm, write, ctx);
    else
        return PTMON_EINVAL;
    return 0;
}
