/*
 * trace_write.c — the recorder (trace.h): the tap glue and the records of public calls.
 *
 * Owns: struct trace. Its shadow holds, per frame ptmon read or protected, the bytes a replay's
 * guest memory will hold at that point (the frame as first seen, then every write a replay
 * performs: PRE writes allowed, POST bytes, emulate_write's bytes). A read that returns
 * something else is a fact the replay needs, written as a MEM record; nothing else about guest
 * memory is written. Calls map.c, glue.c (allocation only) and the backend's callbacks.
 */
#define _POSIX_C_SOURCE 200809L
#include "core/trace.h"

#include <string.h>
#include <time.h>

#define FRAME_SIZE 4096u
#define NOTE_MAX   4095u

struct buf {
    uint8_t *p;
    size_t n, cap;
};

struct trace {
    ptmon_glue backend; /* the backend's own glue: the tap forwards to it */
    ptmon_trace_sink sink;
    struct map shadow; /* gfn -> uint8_t[FRAME_SIZE] */
    struct map ids;    /* watch handle -> its trace id + 1 */
    uint32_t next_id;
    unsigned depth;      /* public calls in progress; > 1: one made from a callback */
    unsigned call_flags; /* PTMON_TRACE_F_* of the outermost call in progress */
    unsigned quiet;      /* > 0: reads for someone else (ptmon_translate): no facts */
    int dead;            /* the sink or an allocation failed: nothing more is written */
    struct buf out;      /* records not yet given to the sink */
    struct buf post;     /* callbacks of the call in progress (they follow its record) */
    uint64_t t0_ns, ev_ns;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void go_dead(struct trace *t, const char *why)
{
    if (t->dead)
        return;
    t->dead = 1;
    if (t->backend.log)
        t->backend.log(t->backend.backend, PTMON_LOG_ERROR, why);
}

/* ---- byte buffers and record encoding ------------------------------------------------------ */

static int buf_room(struct trace *t, struct buf *b, size_t more)
{
    size_t cap;
    uint8_t *p;

    if (b->n + more <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more)
        cap *= 2;
    p = glue_alloc(&t->backend, cap);
    if (!p) {
        go_dead(t, "trace: out of memory, recording stopped");
        return -1;
    }
    if (b->n)
        memcpy(p, b->p, b->n);
    glue_free(&t->backend, b->p, b->cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

static void put_bytes(struct buf *b, const void *src, size_t len)
{
    memcpy(b->p + b->n, src, len);
    b->n += len;
}

static void put_u32(struct buf *b, uint32_t v)
{
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put_bytes(b, le, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

/* Open a record of @p payload bytes: its header is written, the payload must follow.
 * @return 0, or -1 (recording is dead). */
static int rec_open(struct trace *t, struct buf *b, enum ptmon_trace_type type, unsigned flags,
                    size_t payload)
{
    if (t->dead || buf_room(t, b, 8 + payload) < 0)
        return -1;
    put_u32(b, (uint32_t)type | (uint32_t)flags << 16);
    put_u32(b, (uint32_t)payload);
    return 0;
}

static void sink_flush(struct trace *t)
{
    if (!t->dead && t->out.n && t->sink.write(t->sink.ctx, t->out.p, t->out.n) < 0)
        go_dead(t, "trace: the sink refused a write, recording stopped");
    t->out.n = 0;
}

/* ---- facts --------------------------------------------------------------------------------- */

/* Only what the engine does inside a public call can matter to a replay: a read outside one
 * (ptmon_translate, from a backend between events) changes nothing ptmon keeps. */
static int facts_wanted(const struct trace *t)
{
    return !t->dead && t->depth && !t->quiet;
}

static void fact_frame(struct trace *t, uint64_t gfn, const uint8_t *bytes)
{
    if (rec_open(t, &t->out, PTMON_TRACE_FRAME, 0, 8 + FRAME_SIZE) == 0) {
        put_u64(&t->out, gfn);
        put_bytes(&t->out, bytes, FRAME_SIZE);
    }
}

static void fact_mem(struct trace *t, uint64_t gpa, const void *bytes, size_t len)
{
    if (rec_open(t, &t->out, PTMON_TRACE_MEM, 0, 12 + len) == 0) {
        put_u64(&t->out, gpa);
        put_u32(&t->out, (uint32_t)len);
        put_bytes(&t->out, bytes, len);
    }
}

static void fact_fail(struct trace *t, enum ptmon_trace_op op, int rc, uint64_t addr, size_t len)
{
    if (rec_open(t, &t->out, PTMON_TRACE_FAIL, 0, 20) == 0) {
        put_u32(&t->out, op);
        put_u32(&t->out, (uint32_t)rc);
        put_u64(&t->out, addr);
        put_u32(&t->out, (uint32_t)len);
    }
}

/* The frame as memory holds it now, kept as the shadow and written as a FRAME record.
 * @return the shadow, or NULL (the read or an allocation failed). */
static uint8_t *shadow_snapshot(struct trace *t, uint64_t gfn)
{
    uint8_t *f = glue_alloc(&t->backend, FRAME_SIZE);

    if (!f)
        return NULL;
    if (t->backend.read_gpa(t->backend.backend, gfn << 12, f, FRAME_SIZE) != 0 ||
        map_put(&t->shadow, &t->backend, gfn, f) < 0) {
        glue_free(&t->backend, f, FRAME_SIZE);
        return NULL;
    }
    fact_frame(t, gfn, f);
    return f;
}

/* A write a replay performs too: the shadow follows it. Frames never seen stay unseen (their
 * first read will snapshot what memory holds then, this write included). */
static void shadow_apply(struct trace *t, uint64_t gpa, const void *bytes, size_t len)
{
    uint8_t *f = map_get(&t->shadow, gpa >> 12);
    if (f && len && len <= FRAME_SIZE - (gpa & 0xfff))
        memcpy(f + (gpa & 0xfff), bytes, len);
}

/* ptmon read @p len bytes at @p gpa: note what a replay would not know. */
static void note_read(struct trace *t, uint64_t gpa, const void *buf, size_t len)
{
    uint8_t *f;

    if (t->dead || len == 0 || len > FRAME_SIZE - (gpa & 0xfff))
        return;
    f = map_get(&t->shadow, gpa >> 12);
    if (!f)
        f = shadow_snapshot(t, gpa >> 12);
    if (!f) {
        fact_mem(t, gpa, buf, len);
        return;
    }
    if (memcmp(f + (gpa & 0xfff), buf, len) != 0) {
        fact_mem(t, gpa, buf, len);
        memcpy(f + (gpa & 0xfff), buf, len);
    }
}

static void note_protected(struct trace *t, uint64_t gfn, uint32_t access)
{
    if (!t->dead && !(access & PTMON_ACCESS_W) && !map_get(&t->shadow, gfn))
        (void)shadow_snapshot(t, gfn);
}

/* ---- the tap glue -------------------------------------------------------------------------- */

static int tap_read_gpa(void *b, uint64_t gpa, void *buf, size_t len)
{
    struct trace *t = b;
    int rc = t->backend.read_gpa(t->backend.backend, gpa, buf, len);

    if (!facts_wanted(t))
        return rc;
    if (rc != 0)
        fact_fail(t, PTMON_TRACE_OP_READ, rc, gpa, len);
    else
        note_read(t, gpa, buf, len);
    return rc;
}

static int tap_get_access(void *b, uint64_t gfn, uint32_t *access)
{
    struct trace *t = b;
    int rc = t->backend.get_access(t->backend.backend, gfn, access);

    if (rc != 0 && facts_wanted(t))
        fact_fail(t, PTMON_TRACE_OP_GET_ACCESS, rc, gfn, 0);
    return rc;
}

static int tap_set_access(void *b, uint64_t gfn, uint32_t access)
{
    struct trace *t = b;
    int rc = t->backend.set_access(t->backend.backend, gfn, access);

    if (!facts_wanted(t))
        return rc;
    if (rc != 0)
        fact_fail(t, PTMON_TRACE_OP_SET_ACCESS, rc, gfn, 0);
    else
        note_protected(t, gfn, access);
    return rc;
}

/* A failed batch is recorded as the failure of its first entry not applied: a replay applies
 * the entries one by one and fails there. */
static int tap_set_access_batch(void *b, const uint64_t *gfns, const uint32_t *access, size_t n,
                                size_t *done)
{
    struct trace *t = b;
    size_t applied = 0;
    int rc = t->backend.set_access_batch(t->backend.backend, gfns, access, n, &applied);

    if (rc == 0)
        applied = n;
    else if (applied > n)
        applied = 0;
    if (done)
        *done = applied;
    if (!facts_wanted(t))
        return rc;
    for (size_t i = 0; i < applied; i++)
        note_protected(t, gfns[i], access[i]);
    if (rc != 0)
        fact_fail(t, PTMON_TRACE_OP_SET_ACCESS, rc, applied < n ? gfns[applied] : 0, 0);
    return rc;
}

static int tap_emulate_write(void *b, uint32_t vcpu, uint64_t gpa, uint32_t size, const void *bytes,
                             void *written)
{
    struct trace *t = b;
    int rc = t->backend.emulate_write(t->backend.backend, vcpu, gpa, size, bytes, written);

    if (!facts_wanted(t))
        return rc;
    if (rc != 0)
        fact_fail(t, PTMON_TRACE_OP_EMULATE_WRITE, rc, gpa, size);
    else if (bytes)
        shadow_apply(t, gpa, bytes, size);
    else /* the bytes of that write are the backend's secret */
        t->call_flags |= PTMON_TRACE_F_UNSUPPORTED;
    return rc;
}

static int tap_flush(void *b)
{
    struct trace *t = b;
    int rc = t->backend.flush(t->backend.backend);

    if (rc != 0 && facts_wanted(t))
        fact_fail(t, PTMON_TRACE_OP_FLUSH, rc, 0, 0);
    return rc;
}

static int tap_pause(void *b)
{
    struct trace *t = b;
    return t->backend.pause(t->backend.backend);
}

static int tap_resume(void *b)
{
    struct trace *t = b;
    return t->backend.resume(t->backend.backend);
}

static int tap_get_vcpu_regs(void *b, uint32_t vcpu, ptmon_vcpu_regs *regs)
{
    struct trace *t = b;
    return t->backend.get_vcpu_regs(t->backend.backend, vcpu, regs);
}

static void tap_log(void *b, int level, const char *message)
{
    struct trace *t = b;
    t->backend.log(t->backend.backend, level, message);
}

static void *tap_realloc(void *b, void *ptr, size_t old_size, size_t new_size)
{
    struct trace *t = b;
    return t->backend.realloc(t->backend.backend, ptr, old_size, new_size);
}

/* The tap has exactly the members the backend has: the engine must see the same glue. */
static void tap_fill(struct trace *t, ptmon_glue *tap)
{
    const ptmon_glue *g = &t->backend;

    *tap = *g;
    tap->version = PTMON_GLUE_VERSION;
    tap->backend = t;
    tap->read_gpa = tap_read_gpa;
    tap->get_access = tap_get_access;
    tap->set_access = tap_set_access;
    tap->set_access_batch = g->set_access_batch ? tap_set_access_batch : NULL;
    tap->emulate_write = g->emulate_write ? tap_emulate_write : NULL;
    tap->pause = g->pause ? tap_pause : NULL;
    tap->resume = g->resume ? tap_resume : NULL;
    tap->flush = g->flush ? tap_flush : NULL;
    tap->get_vcpu_regs = g->get_vcpu_regs ? tap_get_vcpu_regs : NULL;
    tap->log = g->log ? tap_log : NULL;
    tap->realloc = g->realloc ? tap_realloc : NULL;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

int trace_start(struct trace **out, const ptmon_glue *backend, const ptmon_trace_sink *sink,
                ptmon_glue *tap)
{
    struct trace *t;

    if (!sink->write)
        return PTMON_EINVAL;
    if (sink->version != PTMON_TRACE_SINK_VERSION)
        return PTMON_EVERSION;
    t = glue_alloc(backend, sizeof(*t));
    if (!t)
        return PTMON_ENOMEM;
    memset(t, 0, sizeof(*t));
    t->backend = *backend;
    t->sink = *sink;
    map_init(&t->shadow);
    map_init(&t->ids);
    t->t0_ns = now_ns();
    tap_fill(t, tap);
    *out = t;
    return 0;
}

static uint32_t glue_members(const ptmon_glue *g)
{
    return (g->set_access_batch ? PTMON_TRACE_HAS_SET_ACCESS_BATCH : 0) |
           (g->emulate_write ? PTMON_TRACE_HAS_EMULATE_WRITE : 0) |
           (g->pause ? PTMON_TRACE_HAS_PAUSE : 0) | (g->flush ? PTMON_TRACE_HAS_FLUSH : 0) |
           (g->get_vcpu_regs ? PTMON_TRACE_HAS_GET_VCPU_REGS : 0);
}

void trace_header(struct trace *t, const ptmon_paging *paging, uint64_t monitored,
                  uint64_t max_nodes, uint64_t max_tables)
{
    size_t note = t->sink.note ? strlen(t->sink.note) : 0;

    if (note > NOTE_MAX)
        note = NOTE_MAX;
    if (rec_open(t, &t->out, PTMON_TRACE_HEADER, 0, 60 + note) == 0) {
        put_bytes(&t->out, "PTMONTRC", 8);
        put_u32(&t->out, PTMON_TRACE_FORMAT);
        put_u32(&t->out, (uint32_t)paging->mode);
        put_u32(&t->out, paging->flags);
        put_u32(&t->out, paging->maxphyaddr);
        put_u32(&t->out, t->backend.version);
        put_u32(&t->out, glue_members(&t->backend));
        put_u64(&t->out, monitored);
        put_u64(&t->out, max_nodes);
        put_u64(&t->out, max_tables);
        put_u32(&t->out, (uint32_t)note);
        put_bytes(&t->out, t->sink.note ? t->sink.note : "", note);
    }
    sink_flush(t);
}

static void free_shadow(struct trace *t)
{
    uint64_t gfn;
    void *f;

    for (size_t i = 0; map_next(&t->shadow, &i, &gfn, &f);)
        glue_free(&t->backend, f, FRAME_SIZE);
    map_fini(&t->shadow, &t->backend);
    map_fini(&t->ids, &t->backend);
}

void trace_stop(struct trace *t, ptmon_glue *glue)
{
    ptmon_glue backend = t->backend;

    if (rec_open(t, &t->out, PTMON_TRACE_END, 0, 0) == 0)
        sink_flush(t);
    free_shadow(t);
    glue_free(&backend, t->out.p, t->out.cap);
    glue_free(&backend, t->post.p, t->post.cap);
    glue_free(&backend, t, sizeof(*t));
    if (glue)
        *glue = backend;
}

/* ---- public calls -------------------------------------------------------------------------- */

void trace_quiet(struct trace *t, int on)
{
    if (on)
        t->quiet++;
    else
        t->quiet--;
}

void trace_begin(struct trace *t)
{
    if (t->depth++ == 0)
        t->call_flags = 0;
    else
        t->call_flags |= PTMON_TRACE_F_NESTED;
}

/* Close the outermost call: its record (opened in t->out by @p open) then its callbacks.
 * @return 1 when the caller must write the record now (the outermost call ends). */
static int call_ends(struct trace *t)
{
    return --t->depth == 0;
}

static void call_done(struct trace *t)
{
    if (!t->dead && t->post.n && buf_room(t, &t->out, t->post.n) == 0)
        put_bytes(&t->out, t->post.p, t->post.n);
    t->post.n = 0;
    sink_flush(t);
}

/* The bytes of an event are kept when the reader will take them: an event ptmon accepts, in
 * a 52-bit physical space (others are recorded without their bytes). */
static int event_bytes_valid(const ptmon_mem_event *ev)
{
    return ev->bytes && ev->size && ev->size <= FRAME_SIZE - (ev->gpa & 0xfff) && !(ev->gpa >> 52);
}

void trace_event_begin(struct trace *t, const ptmon_mem_event *ev)
{
    trace_begin(t);
    if (t->depth != 1)
        return;
    t->ev_ns = now_ns() - t->t0_ns;
    /* A replay writes POST bytes before it delivers the event: the shadow does too. */
    if (ev->access == PTMON_ACCESS_W && ev->delivery == PTMON_DELIVERY_POST &&
        event_bytes_valid(ev))
        shadow_apply(t, ev->gpa, ev->bytes, ev->size);
}

void trace_event_end(struct trace *t, const ptmon_mem_event *ev, int action)
{
    int bytes = event_bytes_valid(ev);

    if (!call_ends(t))
        return;
    /* An allowed PRE write is the backend's to perform once we return: a replay does it. */
    if (action == PTMON_ACTION_ALLOW && ev->access == PTMON_ACCESS_W &&
        ev->delivery == PTMON_DELIVERY_PRE && bytes)
        shadow_apply(t, ev->gpa, ev->bytes, ev->size);
    if (rec_open(t, &t->out, PTMON_TRACE_EVENT, t->call_flags, 40 + (bytes ? ev->size : 0)) == 0) {
        put_u32(&t->out, ev->vcpu);
        put_u32(&t->out, ev->access);
        put_u64(&t->out, ev->gpa);
        put_u32(&t->out, ev->size);
        put_u32(&t->out, ev->delivery);
        put_u32(&t->out, (uint32_t)bytes);
        put_u32(&t->out, (uint32_t)action);
        put_u64(&t->out, t->ev_ns);
        if (bytes)
            put_bytes(&t->out, ev->bytes, ev->size);
    }
    call_done(t);
}

static uint32_t watch_id(const struct trace *t, const struct ptmon_watch *w)
{
    uintptr_t v = (uintptr_t)map_get(&t->ids, (uint64_t)(uintptr_t)w);
    return v ? (uint32_t)(v - 1) : UINT32_MAX;
}

void trace_watch_end(struct trace *t, uint64_t cr3, uint64_t va, unsigned flags, int rc,
                     const struct ptmon_watch *w)
{
    uint32_t id = UINT32_MAX;

    if (!call_ends(t))
        return;
    if (rc == 0 && !t->dead) {
        id = t->next_id++;
        if (map_put(&t->ids, &t->backend, (uint64_t)(uintptr_t)w, (void *)(uintptr_t)(id + 1)) < 0)
            go_dead(t, "trace: out of memory, recording stopped");
    }
    if (rec_open(t, &t->out, PTMON_TRACE_WATCH, t->call_flags, 28) == 0) {
        put_u32(&t->out, id);
        put_u32(&t->out, (uint32_t)rc);
        put_u64(&t->out, cr3);
        put_u64(&t->out, va);
        put_u32(&t->out, flags);
    }
    call_done(t);
}

void trace_unwatch_end(struct trace *t, const struct ptmon_watch *w, int rc)
{
    uint32_t id = watch_id(t, w);

    if (!call_ends(t))
        return;
    if (rc == 0)
        (void)map_del(&t->ids, (uint64_t)(uintptr_t)w); /* the handle may be reused */
    if (rec_open(t, &t->out, PTMON_TRACE_UNWATCH, t->call_flags, 8) == 0) {
        put_u32(&t->out, id);
        put_u32(&t->out, (uint32_t)rc);
    }
    call_done(t);
}

void trace_result_end(struct trace *t, enum ptmon_trace_type type, int rc)
{
    if (!call_ends(t))
        return;
    if (rec_open(t, &t->out, type, t->call_flags, 4) == 0)
        put_u32(&t->out, (uint32_t)rc);
    call_done(t);
}

static void put_translation(struct buf *b, const ptmon_translation *tr)
{
    put_u32(b, (uint32_t)tr->status);
    put_u32(b, tr->level);
    put_u64(b, tr->entry);
    put_u64(b, tr->page_size);
    put_u64(b, tr->frame);
    put_u32(b, tr->rights);
}

void trace_callback(struct trace *t, const struct ptmon_watch *w, const ptmon_change *ch,
                    int action)
{
    /* Outside every call (never, today) a callback record would have no call to follow. */
    struct buf *b = t->depth ? &t->post : &t->out;

    if (rec_open(t, b, PTMON_TRACE_CALLBACK, 0, 108) < 0)
        return;
    put_u32(b, watch_id(t, w));
    put_u32(b, (uint32_t)action);
    put_u32(b, ch->vcpu);
    put_u32(b, ch->level);
    put_u32(b, ch->reverted);
    put_translation(b, &ch->before);
    put_translation(b, &ch->after);
    put_u64(b, ch->cr3);
    put_u64(b, ch->va);
}

void trace_monitored(struct trace *t, uint64_t bits)
{
    trace_begin(t);
    if (!call_ends(t))
        return;
    if (rec_open(t, &t->out, PTMON_TRACE_MONITORED, t->call_flags, 8) == 0)
        put_u64(&t->out, bits);
    call_done(t);
}

void trace_hook(struct trace *t)
{
    if (t->depth) {
        t->call_flags |= PTMON_TRACE_F_UNSUPPORTED;
        return;
    }
    if (rec_open(t, &t->out, PTMON_TRACE_HOOK, PTMON_TRACE_F_UNSUPPORTED, 0) == 0)
        sink_flush(t);
}
