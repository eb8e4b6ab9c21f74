/*
 * trace_read.c — parsing of traces (ptmon_trace_next): one record at a time out of a caller's
 * buffer, every length and value checked before it is used (a trace is hostile input).
 *
 * Owns: nothing (stateless). Calls nothing but libc.
 */
#include <ptmon/trace.h>

#include <string.h>

#define FRAME_SIZE 4096u

/* A bounded cursor over one record's payload: a read past its end sets bad. */
struct cur {
    const uint8_t *p;
    size_t n, at;
    int bad;
};

static const uint8_t *take(struct cur *c, size_t len)
{
    const uint8_t *p;
    if (c->bad || len > c->n - c->at) {
        c->bad = 1;
        return NULL;
    }
    p = c->p + c->at;
    c->at += len;
    return p;
}

static uint32_t get_u32(struct cur *c)
{
    const uint8_t *p = take(c, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
             : 0;
}

static uint64_t get_u64(struct cur *c)
{
    uint64_t lo = get_u32(c);
    return lo | (uint64_t)get_u32(c) << 32;
}

static int get_i32(struct cur *c)
{
    uint32_t v = get_u32(c);
    int32_t s;
    memcpy(&s, &v, sizeof(s));
    return s;
}

static void get_translation(struct cur *c, ptmon_translation *t)
{
    t->status = (enum ptmon_walk_status)get_u32(c);
    t->level = get_u32(c);
    t->entry = get_u64(c);
    t->page_size = get_u64(c);
    t->frame = get_u64(c);
    t->rights = get_u32(c);
}

static int parse_header(struct cur *c, ptmon_trace_record *r)
{
    const uint8_t *magic = take(c, 8);

    if (!magic || memcmp(magic, "PTMONTRC", 8) != 0)
        return -1;
    r->u.header.format = get_u32(c);
    r->u.header.paging.mode = (enum ptmon_paging_mode)get_u32(c);
    r->u.header.paging.flags = get_u32(c);
    r->u.header.paging.maxphyaddr = get_u32(c);
    r->u.header.glue_version = get_u32(c);
    r->u.header.glue_members = get_u32(c);
    r->u.header.monitored = get_u64(c);
    r->u.header.max_nodes = get_u64(c);
    r->u.header.max_tables = get_u64(c);
    r->u.header.note_len = get_u32(c);
    r->u.header.note = (const char *)take(c, r->u.header.note_len);
    return r->u.header.format == PTMON_TRACE_FORMAT ? 0 : -1;
}

static int parse_event(struct cur *c, ptmon_trace_record *r)
{
    ptmon_mem_event *ev = &r->u.event.ev;
    uint32_t has_bytes;

    ev->vcpu = get_u32(c);
    ev->access = get_u32(c);
    ev->gpa = get_u64(c);
    ev->size = get_u32(c);
    ev->delivery = get_u32(c);
    has_bytes = get_u32(c);
    r->u.event.action = get_i32(c);
    r->u.event.time_ns = get_u64(c);
    ev->bytes = NULL;
    if (has_bytes > 1)
        return -1;
    if (has_bytes) {
        /* only events ptmon would accept carry bytes: one frame's worth at most */
        if (ev->gpa >> 52 || ev->size == 0 || ev->size > FRAME_SIZE - (ev->gpa & 0xfff))
            return -1;
        ev->bytes = take(c, ev->size);
    }
    return 0;
}

/* @return 0, or -1 when the payload is not what its type says. */
static int parse_payload(struct cur *c, ptmon_trace_record *r)
{
    switch (r->type) {
    case PTMON_TRACE_HEADER:
        return parse_header(c, r);
    case PTMON_TRACE_FRAME:
        r->u.frame.gfn = get_u64(c);
        r->u.frame.bytes = take(c, FRAME_SIZE);
        return r->u.frame.gfn >> 40 ? -1 : 0; /* a frame of a 52-bit physical space */
    case PTMON_TRACE_MEM:
        r->u.mem.gpa = get_u64(c);
        r->u.mem.len = get_u32(c);
        if (r->u.mem.gpa >> 52 || r->u.mem.len == 0 ||
            r->u.mem.len > FRAME_SIZE - (r->u.mem.gpa & 0xfff))
            return -1;
        r->u.mem.bytes = take(c, r->u.mem.len);
        return 0;
    case PTMON_TRACE_FAIL:
        r->u.fail.op = get_u32(c);
        r->u.fail.rc = get_i32(c);
        r->u.fail.addr = get_u64(c);
        r->u.fail.len = get_u32(c);
        return r->u.fail.op >= PTMON_TRACE_OP_READ && r->u.fail.op <= PTMON_TRACE_OP_FLUSH ? 0 : -1;
    case PTMON_TRACE_WATCH:
        r->u.watch.id = get_u32(c);
        r->u.watch.rc = get_i32(c);
        r->u.watch.cr3 = get_u64(c);
        r->u.watch.va = get_u64(c);
        r->u.watch.flags = get_u32(c);
        return 0;
    case PTMON_TRACE_UNWATCH:
        r->u.unwatch.id = get_u32(c);
        r->u.unwatch.rc = get_i32(c);
        return 0;
    case PTMON_TRACE_EVENT:
        return parse_event(c, r);
    case PTMON_TRACE_CALLBACK: {
        ptmon_change *ch = &r->u.callback.change;
        memset(ch, 0, sizeof(*ch));
        r->u.callback.id = get_u32(c);
        r->u.callback.action = get_i32(c);
        ch->vcpu = get_u32(c);
        ch->level = get_u32(c);
        ch->reverted = get_u32(c);
        get_translation(c, &ch->before);
        get_translation(c, &ch->after);
        ch->cr3 = get_u64(c);
        ch->va = get_u64(c);
        return 0;
    }
    case PTMON_TRACE_CHECK:
    case PTMON_TRACE_COMMIT:
        r->u.result.rc = get_i32(c);
        return 0;
    case PTMON_TRACE_MONITORED:
        r->u.monitored.bits = get_u64(c);
        return 0;
    case PTMON_TRACE_END:
    case PTMON_TRACE_HOOK:
        return 0;
    }
    return -1;
}

int ptmon_trace_next(const void *data, size_t len, size_t *pos, ptmon_trace_record *out)
{
    const uint8_t *p = data;
    struct cur hdr, body;
    uint32_t word, plen;

    if (!data || !pos || !out || *pos > len)
        return PTMON_EINVAL;
    if (*pos == len)
        return *pos == 0 ? PTMON_EINVAL : 0; /* an empty buffer is no trace */
    hdr = (struct cur){p + *pos, len - *pos, 0, 0};
    word = get_u32(&hdr);
    plen = get_u32(&hdr);
    if (hdr.bad || plen > hdr.n - hdr.at)
        return PTMON_EINVAL;
    memset(out, 0, sizeof(*out));
    out->type = (enum ptmon_trace_type)(word & 0xffff);
    out->flags = word >> 16;
    if ((*pos == 0) != (out->type == PTMON_TRACE_HEADER))
        return PTMON_EINVAL;
    body = (struct cur){p + *pos + 8, plen, 0, 0};
    /* the payload must be exactly what the type says: no trailing bytes either */
    if (parse_payload(&body, out) < 0 || body.bad || body.at != body.n)
        return PTMON_EINVAL;
    *pos += 8 + (size_t)plen;
    return 1;
}

const char *ptmon_trace_type_name(enum ptmon_trace_type type)
{
    static const char *const names[] = {
        [PTMON_TRACE_HEADER] = "header",
        [PTMON_TRACE_FRAME] = "frame",
        [PTMON_TRACE_MEM] = "mem",
        [PTMON_TRACE_FAIL] = "fail",
        [PTMON_TRACE_WATCH] = "watch",
        [PTMON_TRACE_UNWATCH] = "unwatch",
        [PTMON_TRACE_EVENT] = "event",
        [PTMON_TRACE_CALLBACK] = "callback",
        [PTMON_TRACE_CHECK] = "check",
        [PTMON_TRACE_COMMIT] = "commit",
        [PTMON_TRACE_MONITORED] = "monitored",
        [PTMON_TRACE_END] = "end",
        [PTMON_TRACE_HOOK] = "hook",
    };
    return (unsigned)type < sizeof(names) / sizeof(names[0]) && names[type] ? names[type] : "?";
}
