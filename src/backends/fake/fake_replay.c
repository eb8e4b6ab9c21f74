/*
 * fake_replay.c — ptmon_fake_replay: a recorded trace driven again over a fake guest.
 *
 * Owns: struct replay (the fake, the instance on a glue of the replay's own, the watches by
 * their trace id, the facts and failures waiting for the next call). The glue forwards to the
 * fake's and, first, fails a call where the recording says the backend failed it.
 * Facts (FRAME, MEM) recorded before a call were seen during that call: they are put into RAM
 * before it is made, after the call's own pre-write (POST bytes) so that they win where they
 * overlap. A call's CALLBACK records follow its record: the replay's callback consumes them.
 * Calls: the public API of ptmon (ptmon.h, backend.h, trace.h) and of the fake (fake.h) only.
 */
#include <ptmon/fake.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_SIZE   4096u
#define MAX_RAM      (64ull << 30)
#define RAM_ROUNDING (2ull << 20)

struct slot {
    struct replay *r;
    uint32_t id;
    struct ptmon_watch *w; /* NULL once unwatched, or when the replay could not place it */
    int replay_failed;
};

struct replay {
    const uint8_t *data;
    size_t len;
    ptmon_fake *fake;
    const ptmon_glue *fake_glue;
    ptmon_glue glue;
    ptmon *pm;
    struct slot **slots; /* by trace id */
    size_t nslots, capslots;
    size_t *facts; /* positions of FRAME/MEM records waiting for the next call */
    size_t nfacts, capfacts;
    ptmon_trace_record *fails; /* failures recorded for the next call, in order */
    size_t nfails, nextfail, capfails;
    size_t cursor; /* the next record a callback of the call in progress must match */
    uint64_t time_ns;
    ptmon_fake_replay_observer obs;
    ptmon_fake_replay_result *res;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
diverge(struct replay *r, const char *fmt, ...)
{
    va_list ap;

    if (r->res->divergences++ == 0) {
        va_start(ap, fmt);
        vsnprintf(r->res->first_divergence, sizeof(r->res->first_divergence), fmt, ap);
        va_end(ap);
    }
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t c = *cap ? *cap : 16;
    void *q;

    if (need <= *cap)
        return 0;
    while (c < need)
        c *= 2;
    q = realloc(*p, c * elem);
    if (!q)
        return PTMON_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* ---- the replay's glue: recorded failures first, then the fake --------------------------- */

/* @return 1 and the recorded code in @p rc if the next recorded failure is this call. */
static int recorded_failure(struct replay *r, unsigned op, uint64_t addr, uint32_t len, int *rc)
{
    const ptmon_trace_record *f;

    if (r->nextfail >= r->nfails)
        return 0;
    f = &r->fails[r->nextfail];
    if (f->u.fail.op != op || f->u.fail.addr != addr ||
        ((op == PTMON_TRACE_OP_READ || op == PTMON_TRACE_OP_EMULATE_WRITE) && f->u.fail.len != len))
        return 0;
    r->nextfail++;
    r->res->failures++;
    *rc = f->u.fail.rc;
    return 1;
}

static int rg_read_gpa(void *b, uint64_t gpa, void *buf, size_t len)
{
    struct replay *r = b;
    int rc;
    if (recorded_failure(r, PTMON_TRACE_OP_READ, gpa, (uint32_t)len, &rc))
        return rc;
    return r->fake_glue->read_gpa(r->fake_glue->backend, gpa, buf, len);
}

static int rg_get_access(void *b, uint64_t gfn, uint32_t *access)
{
    struct replay *r = b;
    int rc;
    if (recorded_failure(r, PTMON_TRACE_OP_GET_ACCESS, gfn, 0, &rc))
        return rc;
    return r->fake_glue->get_access(r->fake_glue->backend, gfn, access);
}

static int rg_set_access(void *b, uint64_t gfn, uint32_t access)
{
    struct replay *r = b;
    int rc;
    if (recorded_failure(r, PTMON_TRACE_OP_SET_ACCESS, gfn, 0, &rc))
        return rc;
    return r->fake_glue->set_access(r->fake_glue->backend, gfn, access);
}

/* One by one, as the recorder wrote a batch's failure: at its first entry not applied. */
static int rg_set_access_batch(void *b, const uint64_t *gfns, const uint32_t *access, size_t n,
                               size_t *done)
{
    for (size_t i = 0; i < n; i++) {
        int rc = rg_set_access(b, gfns[i], access[i]);
        if (rc != 0) {
            if (done)
                *done = i;
            return rc;
        }
    }
    if (done)
        *done = n;
    return 0;
}

static int rg_emulate_write(void *b, uint32_t vcpu, uint64_t gpa, uint32_t size, const void *bytes,
                            void *written)
{
    struct replay *r = b;
    int rc;
    (void)vcpu; /* any vCPU number the recording had: the write is the same */
    if (recorded_failure(r, PTMON_TRACE_OP_EMULATE_WRITE, gpa, size, &rc))
        return rc;
    if (!bytes) {
        diverge(r, "emulate_write of unknown bytes at 0x%llx (not in traces)",
                (unsigned long long)gpa);
        return PTMON_ENOTSUP;
    }
    rc = ptmon_fake_poke(r->fake, gpa, bytes, size);
    if (rc == 0 && written)
        memcpy(written, bytes, size);
    return rc;
}

static int rg_flush(void *b)
{
    struct replay *r = b;
    int rc;
    if (recorded_failure(r, PTMON_TRACE_OP_FLUSH, 0, 0, &rc))
        return rc;
    return r->fake_glue->flush(r->fake_glue->backend);
}

static int rg_pause(void *b)
{
    struct replay *r = b;
    return r->fake_glue->pause(r->fake_glue->backend);
}

static int rg_resume(void *b)
{
    struct replay *r = b;
    return r->fake_glue->resume(r->fake_glue->backend);
}

static int rg_get_vcpu_regs(void *b, uint32_t vcpu, ptmon_vcpu_regs *regs)
{
    struct replay *r = b;
    return r->fake_glue->get_vcpu_regs(r->fake_glue->backend, vcpu, regs);
}

/* The members the recorded backend had, no more: the engine takes other paths without them. */
static void glue_fill(struct replay *r, unsigned members)
{
    ptmon_glue g = PTMON_GLUE_INIT;

    g.backend = r;
    g.read_gpa = rg_read_gpa;
    g.get_access = rg_get_access;
    g.set_access = rg_set_access;
    if (members & PTMON_TRACE_HAS_SET_ACCESS_BATCH)
        g.set_access_batch = rg_set_access_batch;
    if (members & PTMON_TRACE_HAS_EMULATE_WRITE)
        g.emulate_write = rg_emulate_write;
    if (members & PTMON_TRACE_HAS_PAUSE) {
        g.pause = rg_pause;
        g.resume = rg_resume;
    }
    if (members & PTMON_TRACE_HAS_FLUSH)
        g.flush = rg_flush;
    if (members & PTMON_TRACE_HAS_GET_VCPU_REGS)
        g.get_vcpu_regs = rg_get_vcpu_regs;
    r->glue = g;
}

/* ---- callbacks ------------------------------------------------------------------------------ */

static int same_translation(const ptmon_translation *a, const ptmon_translation *b)
{
    return a->status == b->status && a->level == b->level && a->entry == b->entry &&
           a->page_size == b->page_size && a->frame == b->frame && a->rights == b->rights;
}

static int same_change(const ptmon_change *a, const ptmon_change *b)
{
    return a->cr3 == b->cr3 && a->va == b->va && a->level == b->level && a->vcpu == b->vcpu &&
           a->reverted == b->reverted && same_translation(&a->before, &b->before) &&
           same_translation(&a->after, &b->after);
}

static int replay_callback(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *ch)
{
    struct slot *s = ctx;
    struct replay *r = s->r;
    ptmon_trace_record rec;
    size_t at = r->cursor;
    int action = PTMON_ACTION_ALLOW;

    (void)pm;
    (void)w;
    r->res->callbacks++;
    if (ptmon_trace_next(r->data, r->len, &at, &rec) == 1 && rec.type == PTMON_TRACE_CALLBACK) {
        r->cursor = at;
        action = rec.u.callback.action;
        if (rec.u.callback.id != s->id || !same_change(&rec.u.callback.change, ch))
            diverge(r,
                    "callback for va 0x%llx (watch %u) differs from the recording (va 0x%llx, "
                    "watch %u): entry 0x%llx -> 0x%llx, recorded 0x%llx -> 0x%llx",
                    (unsigned long long)ch->va, s->id, (unsigned long long)rec.u.callback.change.va,
                    rec.u.callback.id, (unsigned long long)ch->before.entry,
                    (unsigned long long)ch->after.entry,
                    (unsigned long long)rec.u.callback.change.before.entry,
                    (unsigned long long)rec.u.callback.change.after.entry);
    } else {
        diverge(r, "callback for va 0x%llx (watch %u) is not in the recording",
                (unsigned long long)ch->va, s->id);
    }
    if (r->obs.change)
        r->obs.change(r->obs.ctx, ch, action, r->time_ns);
    return action;
}

/* ---- calls ---------------------------------------------------------------------------------- */

static void apply_facts(struct replay *r)
{
    for (size_t i = 0; i < r->nfacts; i++) {
        size_t at = r->facts[i];
        ptmon_trace_record rec;
        int rc;

        (void)ptmon_trace_next(r->data, r->len, &at, &rec); /* parsed once already */
        if (rec.type == PTMON_TRACE_FRAME)
            rc = ptmon_fake_poke(r->fake, rec.u.frame.gfn << 12, rec.u.frame.bytes, FRAME_SIZE);
        else
            rc = ptmon_fake_poke(r->fake, rec.u.mem.gpa, rec.u.mem.bytes, rec.u.mem.len);
        if (rc < 0)
            diverge(r, "fact at trace offset %zu is outside the replay's RAM", r->facts[i]);
        r->res->facts++;
    }
    r->nfacts = 0;
}

static int is_write_with_bytes(const ptmon_mem_event *ev, unsigned delivery)
{
    return ev->access == PTMON_ACCESS_W && ev->delivery == delivery && ev->bytes;
}

static int replay_watch(struct replay *r, const ptmon_trace_record *rec)
{
    struct slot *s;
    struct ptmon_watch *w = NULL;
    int rc;

    if (rec->u.watch.rc == 0 && rec->u.watch.id != r->nslots) {
        snprintf(r->res->first_divergence, sizeof(r->res->first_divergence),
                 "watch id %u where %zu was due: not a trace ptmon wrote", rec->u.watch.id,
                 r->nslots);
        return PTMON_EINVAL; /* ids are given in order */
    }
    if (grow((void **)&r->slots, &r->capslots, r->nslots + 1, sizeof(*r->slots)) < 0 ||
        !(s = calloc(1, sizeof(*s))))
        return PTMON_ENOMEM;
    s->r = r;
    s->id = (uint32_t)r->nslots;
    rc = ptmon_watch(r->pm, rec->u.watch.cr3, rec->u.watch.va, rec->u.watch.flags, replay_callback,
                     s, &w);
    if (rc != rec->u.watch.rc)
        diverge(r, "ptmon_watch(0x%llx) returned %d, recorded %d",
                (unsigned long long)rec->u.watch.va, rc, rec->u.watch.rc);
    if (rec->u.watch.rc == 0) { /* the id is the recording's, whatever the replay got */
        s->w = rc == 0 ? w : NULL;
        s->replay_failed = rc != 0; /* (already a divergence: not reported again) */
        r->slots[r->nslots++] = s;
        return 0;
    }
    if (rc == 0)
        (void)ptmon_unwatch(&w); /* a watch the recording does not have: keep the states alike */
    free(s);
    return 0;
}

static void replay_unwatch(struct replay *r, const ptmon_trace_record *rec)
{
    uint32_t id = rec->u.unwatch.id;
    int rc;

    if (id >= r->nslots || !r->slots[id]->w) {
        if (rec->u.unwatch.rc == 0 && !(id < r->nslots && r->slots[id]->replay_failed))
            diverge(r, "ptmon_unwatch of watch %u, which the replay does not have", id);
        return;
    }
    rc = ptmon_unwatch(&r->slots[id]->w);
    r->slots[id]->w = NULL;
    if (rc != rec->u.unwatch.rc)
        diverge(r, "ptmon_unwatch(&watch %u) returned %d, recorded %d", id, rc, rec->u.unwatch.rc);
}

static int replay_event(struct replay *r, const ptmon_trace_record *rec)
{
    const ptmon_mem_event *ev = &rec->u.event.ev;
    int action = ptmon_handle_event(r->pm, ev);

    r->res->events++;
    if (action != rec->u.event.action)
        diverge(r, "event at 0x%llx (%u bytes, vCPU %u) answered %d, recorded %d",
                (unsigned long long)ev->gpa, ev->size, ev->vcpu, action, rec->u.event.action);
    /* ALLOW on a PRE write: the backend performs it, so the replay does. */
    if (action == PTMON_ACTION_ALLOW && is_write_with_bytes(ev, PTMON_DELIVERY_PRE) &&
        ptmon_fake_poke(r->fake, ev->gpa, ev->bytes, ev->size) < 0)
        diverge(r, "event at 0x%llx is outside the replay's RAM", (unsigned long long)ev->gpa);
    return action;
}

static const char *op_name(unsigned op)
{
    switch (op) {
    case PTMON_TRACE_OP_READ:
        return "read_gpa";
    case PTMON_TRACE_OP_GET_ACCESS:
        return "get_access";
    case PTMON_TRACE_OP_SET_ACCESS:
        return "set_access";
    case PTMON_TRACE_OP_EMULATE_WRITE:
        return "emulate_write";
    default:
        return "flush";
    }
}

static int compare_result(struct replay *r, const char *what, int rc, int recorded)
{
    if (rc != recorded)
        diverge(r, "%s returned %d, recorded %d", what, rc, recorded);
    return rc;
}

/* Make the call of @p rec (its record ends at @p after); its callbacks follow it there.
 * @return the position after its callback records, or a negative error. */
static long long replay_call(struct replay *r, const ptmon_trace_record *rec, size_t after)
{
    ptmon_trace_record cb;
    size_t at;
    int rc = 0, result = 0;

    r->cursor = after;
    r->res->calls++;
    if (rec->type == PTMON_TRACE_EVENT) {
        r->time_ns = rec->u.event.time_ns;
        if (is_write_with_bytes(&rec->u.event.ev, PTMON_DELIVERY_POST) &&
            ptmon_fake_poke(r->fake, rec->u.event.ev.gpa, rec->u.event.ev.bytes,
                            rec->u.event.ev.size) < 0)
            diverge(r, "POST event at 0x%llx is outside the replay's RAM",
                    (unsigned long long)rec->u.event.ev.gpa);
    }
    apply_facts(r);
    r->nextfail = 0;
    switch (rec->type) {
    case PTMON_TRACE_WATCH:
        rc = replay_watch(r, rec); /* < 0: the replay itself failed */
        break;
    case PTMON_TRACE_UNWATCH:
        replay_unwatch(r, rec);
        break;
    case PTMON_TRACE_EVENT:
        result = replay_event(r, rec);
        break;
    case PTMON_TRACE_COMMIT:
        result = compare_result(r, "ptmon_commit", ptmon_commit(r->pm), rec->u.result.rc);
        break;
    case PTMON_TRACE_CHECK:
        result = compare_result(r, "ptmon_check", ptmon_check(r->pm, NULL, 0), rec->u.result.rc);
        break;
    default: /* PTMON_TRACE_MONITORED */
        ptmon_set_monitored_bits(r->pm, rec->u.monitored.bits);
        break;
    }
    if (rc < 0)
        return rc;
    for (; r->nextfail < r->nfails; r->nextfail++)
        diverge(r, "recorded failure of %s at 0x%llx (%d) in a %s did not happen again",
                op_name(r->fails[r->nextfail].u.fail.op),
                (unsigned long long)r->fails[r->nextfail].u.fail.addr,
                r->fails[r->nextfail].u.fail.rc, ptmon_trace_type_name(rec->type));
    r->nfails = r->nextfail = 0;
    /* callbacks the recording made and the replay did not */
    for (at = r->cursor;
         ptmon_trace_next(r->data, r->len, &at, &cb) == 1 && cb.type == PTMON_TRACE_CALLBACK;
         r->cursor = at)
        diverge(r, "recorded callback for va 0x%llx (watch %u) was not made by the replay",
                (unsigned long long)cb.u.callback.change.va, cb.u.callback.id);
    if (r->obs.call)
        r->obs.call(r->obs.ctx, rec, result);
    return (long long)r->cursor;
}

/* ---- the whole trace ---------------------------------------------------------------------- */

/* Check every record once and find how much RAM the replay needs. */
static int survey(struct replay *r, ptmon_trace_record *header, uint64_t *ram)
{
    ptmon_trace_record rec;
    size_t pos = 0;
    uint64_t top = 0;
    int rc;

    while ((rc = ptmon_trace_next(r->data, r->len, &pos, &rec)) == 1) {
        uint64_t end = 0;
        if (rec.type == PTMON_TRACE_HEADER)
            *header = rec;
        else if (rec.type == PTMON_TRACE_FRAME)
            end = (rec.u.frame.gfn + 1) << 12;
        else if (rec.type == PTMON_TRACE_MEM)
            end = rec.u.mem.gpa + rec.u.mem.len;
        else if (rec.type == PTMON_TRACE_EVENT && rec.u.event.ev.bytes)
            end = rec.u.event.ev.gpa + rec.u.event.ev.size;
        if (rec.type == PTMON_TRACE_CALLBACK)
            r->res->callbacks_recorded++;
        if (rec.flags & (PTMON_TRACE_F_NESTED | PTMON_TRACE_F_UNSUPPORTED)) {
            snprintf(r->res->first_divergence, sizeof(r->res->first_divergence),
                     "trace offset %zu: a %s %s", pos, ptmon_trace_type_name(rec.type),
                     rec.flags & PTMON_TRACE_F_NESTED ? "whose callbacks called the instance"
                                                      : "a trace cannot express");
            return PTMON_ENOTSUP;
        }
        if (end > top)
            top = end;
    }
    if (rc < 0) {
        snprintf(r->res->first_divergence, sizeof(r->res->first_divergence),
                 "malformed record at trace offset %zu", pos);
        return rc;
    }
    if (top > MAX_RAM) {
        snprintf(r->res->first_divergence, sizeof(r->res->first_divergence),
                 "the trace needs %llu MiB of RAM, more than the fake has",
                 (unsigned long long)(top >> 20));
        return PTMON_ENOTSUP;
    }
    *ram = top < RAM_ROUNDING ? RAM_ROUNDING : (top + RAM_ROUNDING - 1) & ~(RAM_ROUNDING - 1);
    return 0;
}

static int setup(struct replay *r, const ptmon_trace_record *h, uint64_t ram)
{
    ptmon_fake_config fc = PTMON_FAKE_CONFIG_INIT;
    ptmon_config cfg = PTMON_CONFIG_INIT;
    int rc;

    fc.ram_size = ram;
    fc.paging = h->u.header.paging;
    fc.nr_vcpus = 1;
    rc = ptmon_fake_create(&fc, &r->fake);
    if (rc < 0)
        return rc;
    r->fake_glue = ptmon_fake_glue(r->fake);
    glue_fill(r, h->u.header.glue_members);
    cfg.paging = h->u.header.paging;
    cfg.max_nodes = h->u.header.max_nodes;
    cfg.max_tables = h->u.header.max_tables;
    rc = ptmon_create(&r->glue, &cfg, &r->pm);
    if (rc < 0)
        return rc;
    ptmon_set_monitored_bits(r->pm, h->u.header.monitored);
    return 0;
}

static int queue_record(struct replay *r, const ptmon_trace_record *rec, size_t at)
{
    if (rec->type == PTMON_TRACE_FAIL) {
        if (grow((void **)&r->fails, &r->capfails, r->nfails + 1, sizeof(*r->fails)) < 0)
            return PTMON_ENOMEM;
        r->fails[r->nfails++] = *rec;
        return 0;
    }
    if (grow((void **)&r->facts, &r->capfacts, r->nfacts + 1, sizeof(*r->facts)) < 0)
        return PTMON_ENOMEM;
    r->facts[r->nfacts++] = at;
    return 0;
}

static int run(struct replay *r)
{
    ptmon_trace_record rec;
    size_t pos = 0, at;
    long long next;
    int rc;

    while (at = pos, (rc = ptmon_trace_next(r->data, r->len, &pos, &rec)) == 1) {
        r->res->records++;
        switch (rec.type) {
        case PTMON_TRACE_HEADER:
            break;
        case PTMON_TRACE_FRAME:
        case PTMON_TRACE_MEM:
        case PTMON_TRACE_FAIL:
            if ((rc = queue_record(r, &rec, at)) < 0)
                return rc;
            break;
        case PTMON_TRACE_CALLBACK:
            diverge(r, "recorded callback for va 0x%llx follows no call",
                    (unsigned long long)rec.u.callback.change.va);
            break;
        case PTMON_TRACE_HOOK:
            return PTMON_ENOTSUP; /* (survey refused it already) */
        case PTMON_TRACE_END:
            r->res->complete = 1;
            if (pos != r->len)
                diverge(r, "%zu bytes after the END record", r->len - pos);
            return 0;
        default:
            next = replay_call(r, &rec, pos);
            if (next < 0)
                return (int)next;
            pos = (size_t)next;
            break;
        }
    }
    if (rc == 0)
        diverge(r, "the trace has no END record (the recording was cut short)");
    return rc;
}

static void teardown(struct replay *r)
{
    ptmon_destroy(r->pm);
    ptmon_fake_destroy(r->fake);
    for (size_t i = 0; i < r->nslots; i++)
        free(r->slots[i]);
    free(r->slots);
    free(r->facts);
    free(r->fails);
}

int ptmon_fake_replay(const void *trace, size_t len, const ptmon_fake_replay_observer *obs,
                      ptmon_fake_replay_result *res)
{
    struct replay r;
    ptmon_trace_record header;
    uint64_t ram = 0;
    int rc;

    if (!res)
        return PTMON_EINVAL;
    memset(res, 0, sizeof(*res));
    if (!trace)
        return PTMON_EINVAL;
    memset(&r, 0, sizeof(r));
    memset(&header, 0, sizeof(header));
    r.data = trace;
    r.len = len;
    if (obs)
        r.obs = *obs;
    r.res = res;
    rc = survey(&r, &header, &ram);
    if (rc == 0 && (rc = setup(&r, &header, ram)) < 0)
        snprintf(res->first_divergence, sizeof(res->first_divergence),
                 "cannot set the replay up (%s): paging mode %u, %llu MiB of RAM",
                 ptmon_strerror(rc), (unsigned)header.u.header.paging.mode,
                 (unsigned long long)(ram >> 20));
    if (rc == 0)
        rc = run(&r);
    teardown(&r);
    return rc;
}
