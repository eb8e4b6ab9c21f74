/*
 * fuzz.c — the differential fuzzer (see fuzz.h).
 *
 * Checks, after every step (and inside every callback):
 *  (a) every live watch's record equals the reference MMU's translation of memory, and the last
 *      state it was told (callbacks' after, or its placement) differs from it in no monitored
 *      way: nothing missed; a record that changed silently changed in no monitored way;
 *  (b) every callback reports a real change of a monitored bit, its `after` is the oracle's
 *      translation of memory as the write leaves it (PRE: with the pending bytes; a revert or a
 *      call after a deny: without) and its `before` is the state last told: nothing invented;
 *  (c) ptmon_check finds nothing;
 *  (d) exactly the frames holding entries on watched paths lack W, each with exactly the rights
 *      it had before minus W; after unwatching everything every frame is back as it was.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include "fuzz.h"

#include "oracle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPOOL     8
#define RAM_SIZE  (2ull << 20)
#define NFRAMES   (RAM_SIZE >> 12)
#define MAXW      40
#define NROOTS    3
#define AD_BITS   (PTMON_PTE_A | PTMON_PTE_D)
#define FULL_SCAN 128
#define MAXH      6

struct fz;

struct wslot {
    struct fz *z;
    struct ptmon_watch *w; /* set while the slot is in use (live, or removed this step) */
    uint64_t cr3, va;
    int live;
    unsigned flags;
    int busy;               /* being placed (ptmon_watch has not returned) */
    int waiting;            /* its placement waits for room under the caps (ptmon_check says) */
    unsigned waiting_depth; /* ... the level it got to */
    uint64_t born_event;    /* the event during which it was placed, 0 outside events */
    uint64_t removed_event; /* the event during which it was removed (by a callback) */
    ptmon_translation told;
};

/* A frame hook (ptmon_hook_gpa) placed by the fuzzer on a table frame or any other. */
struct hslot {
    struct fz *z;
    ptmon_hook *h;
    uint64_t gpa;
    uint32_t len, access;
    int live;
};

struct fz {
    const struct fz_options *opt;
    struct fz_src *src;
    struct fz_result *res;
    ptmon_fake *fake;
    ptmon *pm;
    struct oracle_mmu mmu;
    unsigned esize, top, nentries;
    uint64_t pool[NPOOL];
    uint64_t roots[NROOTS];
    uint32_t init_rights[NFRAMES];
    struct wslot ws[MAXW];
    struct hslot hs[MAXH];
    unsigned maxw;
    uint64_t step;
    unsigned delivery_pre; /* the fake's current delivery */
    int nobytes;           /* hide PRE bytes from ptmon (it has them performed, or waits) */
    int caps;              /* ptmon_config max_nodes / max_tables set: watches may wait */
    int ad_seen;           /* the CPU walker set A/D bits behind ptmon's back */
    uint64_t monitored;    /* ptmon_set_monitored_bits */
    ptmon_glue glue;       /* the fake's glue, maybe without emulate_write / set_access_batch */
    /* the event in progress */
    int in_event;
    uint64_t event_id;
    int denied;
    int added_in_event;
    int forward_seen; /* a callback of this write (not of no vCPU) came */
    int before_write; /* the callback running tells a change older than the write */
    ptmon_mem_event ev;
    uint8_t evbytes[4096];
    uint8_t evold[4096];
    /* memory of the store in progress before it started (POST events come after the write) */
    uint64_t snap_gpa;
    uint32_t snap_len;
    uint8_t snap[8192 + 64];
    int overlay;
    /* fault injection */
    uint64_t remaining, calls_before, logs_before;
    int fired, fired_now, armed, api_error;
    int burst; /* a burst of failures is going on (fz_options.burst_pct) */
};

/* ---- byte source -------------------------------------------------------------------------- */

void fz_src_seed(struct fz_src *src, uint64_t seed)
{
    uint64_t x = seed + 0x9e3779b97f4a7c15ull;
    memset(src, 0, sizeof(*src));
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    src->rng = (x ^ (x >> 31)) | 1;
}

void fz_src_bytes(struct fz_src *src, const uint8_t *data, size_t len)
{
    memset(src, 0, sizeof(*src));
    src->data = data;
    src->len = len;
}

static uint64_t take(struct fz_src *s, unsigned nbytes)
{
    uint64_t v = 0;
    if (!s->data) {
        s->rng ^= s->rng << 13;
        s->rng ^= s->rng >> 7;
        s->rng ^= s->rng << 17;
        return s->rng * 0x2545f4914f6cdd1dull;
    }
    for (unsigned i = 0; i < nbytes; i++) {
        if (s->pos < s->len)
            v |= (uint64_t)s->data[s->pos++] << (8 * i);
        else
            s->exhausted = 1;
    }
    return v;
}

static unsigned below(struct fz *z, unsigned n)
{
    if (n <= 1)
        return 0;
    return (unsigned)(take(z->src, n <= 256 ? 1 : n <= 65536 ? 2 : 4) % n);
}

static uint64_t rnd64(struct fz *z)
{
    return take(z->src, 8);
}

/* 16 random bits (2 input bytes) */
static uint64_t rnd16(struct fz *z)
{
    return take(z->src, 2) & 0xffff;
}

static int chance(struct fz *z, unsigned n)
{
    return below(z, n) == 0;
}

/* ---- reporting ---------------------------------------------------------------------------- */

const char *fz_mode_name(enum ptmon_paging_mode mode)
{
    switch (mode) {
    case PTMON_MODE_32BIT:
        return "32";
    case PTMON_MODE_PAE:
        return "pae";
    case PTMON_MODE_4LEVEL:
        return "4";
    case PTMON_MODE_5LEVEL:
        return "5";
    default:
        return "?";
    }
}

unsigned fz_parse_fixed(const char *text)
{
    unsigned mask = 0;
    if (!text)
        return FZ_FIX_ALL; /* unset: every known bug is fixed */
    if (strstr(text, "all"))
        mask |= FZ_FIX_ALL;
    for (const char *p = text; *p; p++) {
        if ((*p == 'N' || *p == 'n') && p[1] >= '1' && p[1] <= '4')
            mask |= FZ_FIX_N1 << (p[1] - '1');
        if ((*p == 'B' || *p == 'b') && p[1] >= '0' && p[1] <= '9') {
            unsigned n = (unsigned)strtoul(p + 1, NULL, 10);
            if (n >= 1 && n <= 10)
                mask |= 1u << n;
        }
    }
    return mask;
}

static void dump_tr(const char *what, const ptmon_translation *t)
{
    fprintf(stderr, "    %-16s %-12s L%u entry %#018llx frame %#llx size %#llx rights %u\n", what,
            ptmon_walk_status_name(t->status), t->level, (unsigned long long)t->entry,
            (unsigned long long)t->frame, (unsigned long long)t->page_size, t->rights);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3), noreturn))
#endif
static void
fail(struct fz *z, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr,
            "DIVERGENCE [mode %s seed %llu step %llu event %llu]: ", fz_mode_name(z->mmu.mode),
            (unsigned long long)z->opt->seed, (unsigned long long)z->step,
            (unsigned long long)z->event_id);
    if (z->opt->fault_op >= 0)
        fprintf(stderr, "[fault %s nth %llu, %s] ",
                ptmon_fake_op_name((enum ptmon_fake_op)z->opt->fault_op),
                (unsigned long long)z->opt->fault_nth, z->fired ? "fired" : "not fired yet");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

static void trace(struct fz *z, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void trace(struct fz *z, const char *fmt, ...)
{
    va_list ap;
    if (!z->opt->verbose)
        return;
    fprintf(stderr, "[%llu] ", (unsigned long long)z->step);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

/* ---- the oracle's view of memory ---------------------------------------------------------- */

static int view_read(void *ctx, uint64_t gpa, unsigned size, uint64_t *value)
{
    struct fz *z = ctx;
    uint8_t b[8];
    uint64_t v = 0;

    if (ptmon_fake_peek(z->fake, gpa, b, size) != 0)
        return -1;
    if (z->overlay) {
        for (unsigned i = 0; i < size; i++) {
            uint64_t a = gpa + i;
            if (a >= z->ev.gpa && a < z->ev.gpa + z->ev.size)
                b[i] = z->overlay == 2 ? z->evold[a - z->ev.gpa] : z->evbytes[a - z->ev.gpa];
        }
    }
    for (unsigned i = size; i-- > 0;)
        v = (v << 8) | b[i];
    *value = v;
    return 0;
}

static void truth(struct fz *z, const struct wslot *s, int overlay, struct oracle_walk *ow)
{
    z->overlay = overlay;
    oracle_walk(&z->mmu, view_read, z, s->cr3, s->va, ow);
    z->overlay = 0;
}

static int same_tr(const struct fz *z, const ptmon_translation *a, const ptmon_translation *b)
{
    uint64_t ignore = z->ad_seen ? AD_BITS : 0;
    return a->status == b->status && a->level == b->level && a->page_size == b->page_size &&
           a->frame == b->frame && a->rights == b->rights && ((a->entry ^ b->entry) & ~ignore) == 0;
}

static int must_tell(const struct fz *z, const ptmon_translation *a, const ptmon_translation *b)
{
    return oracle_must_tell(&z->mmu, z->monitored, a, b);
}

/* B1: a large leaf whose only difference is PAT (bit 12) */
static int pat_only(const ptmon_translation *a, const ptmon_translation *b)
{
    return a->status == PTMON_WALK_OK && b->status == PTMON_WALK_OK && a->level >= 2 &&
           a->level == b->level && ((a->entry ^ b->entry) & (1ull << 12)) != 0;
}

static int fixed(const struct fz *z, unsigned bug)
{
    return (z->opt->fixed & bug) != 0;
}

/* ---- watches ------------------------------------------------------------------------------ */

static unsigned live_count(const struct fz *z)
{
    unsigned n = 0;
    for (unsigned i = 0; i < MAXW; i++)
        n += z->ws[i].live;
    return n;
}

static int pick_live(struct fz *z)
{
    int idx[MAXW], n = 0;
    for (int i = 0; i < MAXW; i++)
        if (z->ws[i].live)
            idx[n++] = i;
    return n ? idx[below(z, (unsigned)n)] : -1;
}

static unsigned pick_index(struct fz *z, unsigned level)
{
    static const unsigned set512[] = {0, 1, 2, 3, 256, 511};
    static const unsigned set1024[] = {0, 1, 2, 3, 768, 1023};
    if (z->mmu.mode == PTMON_MODE_PAE && level == 3)
        return below(z, 4);
    if (chance(z, 16))
        return below(z, z->nentries);
    if (z->mmu.mode == PTMON_MODE_32BIT)
        return set1024[below(z, 6)];
    return set512[below(z, 6)];
}

static uint64_t random_va(struct fz *z)
{
    uint64_t va = rnd16(z) & 0xfff;
    for (unsigned l = 1; l <= z->top; l++) {
        unsigned shift = z->mmu.mode == PTMON_MODE_32BIT ? 12 + 10 * (l - 1) : 12 + 9 * (l - 1);
        va |= (uint64_t)pick_index(z, l) << shift;
    }
    if (z->mmu.mode == PTMON_MODE_4LEVEL && (va >> 47) & 1)
        va |= ~0ull << 48;
    if (z->mmu.mode == PTMON_MODE_5LEVEL && (va >> 56) & 1)
        va |= ~0ull << 57;
    if (chance(z, 64)) /* a VA the mode cannot translate */
        va ^= z->mmu.mode == PTMON_MODE_5LEVEL   ? 1ull << 60
              : z->mmu.mode == PTMON_MODE_4LEVEL ? 1ull << 50
                                                 : 1ull << 33;
    return va;
}

static uint64_t random_cr3(struct fz *z)
{
    uint64_t cr3 = z->roots[below(z, NROOTS)];
    if (chance(z, 64)) /* a root outside RAM */
        cr3 = z->mmu.mode == PTMON_MODE_PAE ? RAM_SIZE + 0x40 : RAM_SIZE + 0x3000;
    switch (z->mmu.mode) {
    case PTMON_MODE_4LEVEL:
    case PTMON_MODE_5LEVEL: /* PCID, and bit 63 (no flush) */
        cr3 |= rnd16(z) & 0xfff;
        if (chance(z, 4))
            cr3 |= 1ull << 63;
        break;
    default: /* PWT, PCD */
        cr3 |= rnd16(z) & 0x18;
        break;
    }
    return cr3;
}

static int on_change(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c);

static void note_api(struct fz *z, int rc)
{
    if (rc < 0)
        z->api_error = 1;
}

static int relaxed(const struct fz *z)
{
    return z->armed || z->fired_now || z->burst;
}

/* Has the failure injected in this step fired already? */
static int fault_fired_in_step(const struct fz *z)
{
    return z->burst || (z->armed && z->opt->fault_op >= 0 &&
                        ptmon_fake_failure_fired(z->fake, (enum ptmon_fake_op)z->opt->fault_op));
}

/* Is the root table of @p ow's walk itself outside RAM? */
static int root_outside_ram(const struct oracle_walk *ow)
{
    return ow->tr.status == PTMON_WALK_OUTSIDE_RAM && !ow->in_ram[ow->top];
}

/* Place a watch; @return its slot or -1. */
static int add_watch(struct fz *z, uint64_t cr3, uint64_t va, unsigned flags)
{
    struct oracle_walk ow;
    struct wslot *s = NULL;
    for (unsigned i = 0; i < z->maxw; i++)
        if (!z->ws[i].w && !z->ws[i].busy) {
            s = &z->ws[i];
            break;
        }
    if (!s)
        return -1;
    memset(s, 0, sizeof(*s));
    s->busy = 1; /* a failing ptmon_watch commits: callbacks may add watches meanwhile */
    s->z = z;
    s->cr3 = cr3;
    s->va = va;
    s->flags = flags;
    truth(z, s, 0, &ow);
    struct ptmon_watch *w = NULL;
    int rc = ptmon_watch(z->pm, cr3, va, flags, on_change, s, &w);
    s->busy = 0;
    note_api(z, rc);
    trace(z, "watch cr3 %#llx va %#llx flags %u -> %d", (unsigned long long)cr3,
          (unsigned long long)va, flags, rc);
    if (!ow.valid) {
        if (rc != PTMON_EINVAL)
            fail(z, "watch of untranslatable va %#llx returned %d", (unsigned long long)va, rc);
        return -1;
    }
    if (root_outside_ram(&ow)) { /* a CR3 no table can be at: refused, not watched silently */
        if (rc != PTMON_ERANGE && !(rc == PTMON_ELIMIT && z->caps) && !(relaxed(z) && rc < 0))
            fail(z, "watch with a root outside RAM returned %d", rc);
        if (w)
            fail(z, "failed ptmon_watch left a handle");
        return -1;
    }
    if (rc != 0) {
        if (!relaxed(z) && !(rc == PTMON_ELIMIT && z->caps))
            fail(z, "ptmon_watch failed: %s", ptmon_err_name(rc));
        if (w)
            fail(z, "failed ptmon_watch left a handle");
        return -1;
    }
    if (!w)
        fail(z, "ptmon_watch returned no handle");
    s->w = w;
    s->live = 1;
    /* placed while entries left unknown are caught up, before the write is decoded: from
     * memory without the write, so it is told of it like the older watches */
    s->born_event = z->in_event && !z->before_write ? z->event_id : 0;
    s->told = ptmon_watch_translation(w);
    z->res->placed++;
    if (z->in_event)
        z->added_in_event = 1;
    return (int)(s - z->ws);
}

static void remove_watch(struct fz *z, struct wslot *s)
{
    /* removed before the call: its commit may run callbacks, which must not remove it again */
    s->live = 0;
    s->removed_event = z->in_event ? z->event_id : 0;
    struct ptmon_watch *handle = s->w; /* s->w stays: the event's passes compare against it */
    int rc = ptmon_unwatch(&handle);
    if (handle)
        fail(z, "ptmon_unwatch left the handle set");
    note_api(z, rc);
    trace(z, "unwatch va %#llx -> %d", (unsigned long long)s->va, rc);
    if (rc != 0 && !(relaxed(z) && rc != PTMON_EINVAL))
        fail(z, "ptmon_unwatch: %s", ptmon_err_name(rc));
}

/* A record may change silently only in ways that need no callback. */
static void resnap(struct fz *z)
{
    for (unsigned i = 0; i < MAXW; i++) {
        struct wslot *s = &z->ws[i];
        if (!s->live)
            continue;
        ptmon_translation rec = ptmon_watch_translation(s->w);
        if (must_tell(z, &s->told, &rec)) {
            dump_tr("last told", &s->told);
            dump_tr("record", &rec);
            fail(z, "watch %u (va %#llx) changed without a callback", i, (unsigned long long)s->va);
        }
        s->told = rec;
    }
}

/* Place a watch of a random VA in a random address space (decisions in a fixed order). */
static void add_random_watch(struct fz *z, unsigned high_one_in)
{
    uint64_t cr3 = random_cr3(z);
    uint64_t va = random_va(z);
    unsigned flags = chance(z, high_one_in) ? PTMON_WATCH_HIGH_PRIORITY : 0;
    (void)add_watch(z, cr3, va, flags);
}

static int on_change(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    struct wslot *s = ctx;
    struct fz *z = s->z;
    struct oracle_walk ow;
    unsigned idx = (unsigned)(s - z->ws);

    z->res->callbacks++;
    z->res->reverted += c->reverted != 0;
    trace(z, "  callback watch %u va %#llx reverted %u level %u vcpu %u", idx,
          (unsigned long long)s->va, c->reverted, c->level, c->vcpu);
    if (pm != z->pm || s->w != w)
        fail(z, "callback with a wrong instance or handle");
    if (!s->live)
        fail(z, "callback for removed watch %u", idx);
    if (c->cr3 != s->cr3 || c->va != s->va)
        fail(z, "callback with a wrong cr3/va");
    if (c->vcpu != PTMON_VCPU_NONE && z->in_event && s->born_event == z->event_id)
        fail(z, "watch %u placed during this event was called for it", idx);
    if (c->after.status == PTMON_WALK_OK && c->after.page_size == 0)
        fail(z, "page size 0 for a present translation");
    truth(z, s, z->in_event && !z->denied && !c->reverted, &ow);
    int exact = same_tr(z, &c->after, &ow.tr);
    if (c->vcpu != PTMON_VCPU_NONE && z->in_event)
        z->forward_seen = 1;
    if (!exact && c->vcpu == PTMON_VCPU_NONE && z->in_event && !z->forward_seen) {
        /* told before the write is decoded (entries an earlier read failure left unknown are
         * read first): the translation before the write */
        struct oracle_walk before_write;
        truth(z, s, 2, &before_write);
        exact = same_tr(z, &c->after, &before_write.tr);
    }
    if (!exact && !(relaxed(z) && !fixed(z, FZ_FIX_N2))) {
        dump_tr("callback before", &c->before);
        dump_tr("callback after", &c->after);
        dump_tr("oracle", &ow.tr);
        fail(z, "watch %u (va %#llx cr3 %#llx): callback's after is not the translation", idx,
             (unsigned long long)s->va, (unsigned long long)s->cr3);
    }
    /* before: the last state told, give or take silent changes (a not-present entry's other
     * bits); the forward pass of a denied write may have made one just before */
    if (must_tell(z, &s->told, &c->before)) {
        dump_tr("last told", &s->told);
        dump_tr("callback before", &c->before);
        dump_tr("callback after", &c->after);
        fail(z, "watch %u (va %#llx): callback's before is not the last state", idx,
             (unsigned long long)s->va);
    }
    if (!must_tell(z, &c->before, &c->after) &&
        !(!fixed(z, FZ_FIX_B1) && pat_only(&c->before, &c->after))) {
        dump_tr("callback before", &c->before);
        dump_tr("callback after", &c->after);
        fail(z, "watch %u (va %#llx): invented callback", idx, (unsigned long long)s->va);
    }
    /* the vCPU that wrote, and the level of an entry this write covered */
    if (c->vcpu != PTMON_VCPU_NONE) {
        if (!z->in_event || c->vcpu != z->ev.vcpu)
            fail(z, "callback with vcpu %u, the write was by %u", c->vcpu, z->ev.vcpu);
        if (c->level < 1 || c->level > z->top || !ow.valid)
            fail(z, "callback with level %u", c->level);
        /* the entry at that level on the path before or after the write */
        struct oracle_walk pre, post;
        truth(z, s, 2, &pre);
        truth(z, s, 1, &post);
        uint64_t a1 = pre.entry_gpa[c->level], a2 = post.entry_gpa[c->level];
        int in1 =
            c->level >= pre.tr.level && a1 + z->esize > z->ev.gpa && a1 < z->ev.gpa + z->ev.size;
        int in2 =
            c->level >= post.tr.level && a2 + z->esize > z->ev.gpa && a2 < z->ev.gpa + z->ev.size;
        uint64_t at = a1;
        if (z->ev.size && !in1 && !in2) {
            dump_tr("callback before", &c->before);
            dump_tr("callback after", &c->after);
            fail(z, "watch %u: callback's level %u (entry %#llx) is not in the write %#llx+%u", idx,
                 c->level, (unsigned long long)at, (unsigned long long)z->ev.gpa, z->ev.size);
        }
    }
    s->told = c->after;

    /* re-entry */
    z->before_write = z->in_event && c->vcpu == PTMON_VCPU_NONE && !z->forward_seen;
    unsigned r = below(z, 64);
    if (r < 3) {
        remove_watch(z, s);
    } else if (r < 6) {
        int j = pick_live(z);
        if (j >= 0)
            remove_watch(z, &z->ws[j]);
    } else if (r < 10) {
        if (live_count(z) < z->maxw)
            (void)add_random_watch(z, 3);
    } else if (r < 11) {
        /* a watch removed earlier in this event's passes is still allocated (freed at the
         * event's commit): removing it again is PTMON_EINVAL */
        for (unsigned i = 0; i < MAXW && z->in_event && c->vcpu != PTMON_VCPU_NONE; i++)
            if (z->ws[i].w && !z->ws[i].live && z->ws[i].removed_event == z->event_id) {
                struct ptmon_watch *copy = z->ws[i].w; /* a copy: the documented case */
                int rc = ptmon_unwatch(&copy);
                if (rc != PTMON_EINVAL)
                    fail(z, "second ptmon_unwatch of watch %u in one event: %d", i, rc);
                break;
            }
    } else if (r < 12 && fixed(z, FZ_FIX_B3)) {
        int rc = ptmon_commit(pm);
        if (rc != 0)
            fail(z, "ptmon_commit in a callback returned %d", rc);
    }
    if (c->reverted || !z->in_event || !chance(z, 6))
        return 0;
    /* A change found by a commit (no vCPU: e.g. a partial PRE write whose entry could not be
     * read is performed at once and re-read at the event's commit) cannot be vetoed any more:
     * the answer is ignored. */
    if (c->vcpu == PTMON_VCPU_NONE)
        return PTMON_ACTION_DENY;
    /* deny, where no known bug stands in the way */
    if (!fixed(z, FZ_FIX_B2) && z->ev.delivery == PTMON_DELIVERY_PRE && z->added_in_event)
        return 0;
    if (!fixed(z, FZ_FIX_B7) && z->armed && z->opt->fault_op == PTMON_FAKE_OP_READ_GPA)
        return 0;
    if (!fixed(z, FZ_FIX_B4) && z->armed && z->opt->fault_op == PTMON_FAKE_OP_EMULATE_WRITE)
        return 0;
    z->denied = 1;
    z->res->denies++;
    trace(z, "  deny");
    return PTMON_ACTION_DENY;
}

static int handler(void *ctx, const ptmon_mem_event *ev)
{
    struct fz *z = ctx;
    ptmon_mem_event e = *ev;
    int rc;

    if (z->in_event)
        fail(z, "nested event");
    z->event_id++;
    z->res->events++;
    z->ev = *ev;
    if (ev->bytes && ev->size <= sizeof(z->evbytes))
        memcpy(z->evbytes, ev->bytes, ev->size);
    else
        z->ev.size = 0; /* no overlay: memory is what it is */
    if (z->nobytes && e.delivery == PTMON_DELIVERY_PRE &&
        !(z->armed && z->opt->fault_op == PTMON_FAKE_OP_EMULATE_WRITE && !fixed(z, FZ_FIX_N3)))
        e.bytes = NULL;
    if (ev->size <= sizeof(z->evold)) {
        if (ev->gpa >= z->snap_gpa && ev->gpa + ev->size <= z->snap_gpa + z->snap_len)
            memcpy(z->evold, z->snap + (ev->gpa - z->snap_gpa), ev->size);
        else
            (void)ptmon_fake_peek(z->fake, ev->gpa, z->evold, ev->size);
    }
    resnap(z);
    z->in_event = 1;
    z->denied = 0;
    z->added_in_event = 0;
    z->forward_seen = 0;
    z->before_write = 0;
    trace(z, " event gpa %#llx size %u %s", (unsigned long long)ev->gpa, ev->size,
          ev->delivery == PTMON_DELIVERY_PRE ? "pre" : "post");
    rc = ptmon_handle_event(z->pm, &e);
    z->in_event = 0;
    /* a watch placed during the event is told nothing of it: its record is the state after the
     * write, or the unchanged memory if it was denied (SPEC §4 Re-entrancy) */
    for (unsigned i = 0; i < MAXW; i++)
        if (z->ws[i].live && z->ws[i].born_event == z->event_id)
            z->ws[i].told = ptmon_watch_translation(z->ws[i].w);
    if (rc < 0)
        fail(z, "ptmon_handle_event: %s", ptmon_err_name(rc));
    if (ev->delivery == PTMON_DELIVERY_PRE && z->denied && rc != PTMON_ACTION_DENY) {
        /* without the bytes ptmon performs the write first, then undoes it: EMULATED */
        uint8_t now[4096];
        if (rc != PTMON_ACTION_EMULATED || !z->nobytes)
            fail(z, "a callback denied a PRE write but the answer is %s", ptmon_action_name(rc));
        /* (a failed save of the range, or a failed undo, leaves only the watched entries
         * restored: logged, tolerated in the step whose fault fired) */
        if (fixed(z, FZ_FIX_N1) && !fault_fired_in_step(z) &&
            (ptmon_fake_peek(z->fake, ev->gpa, now, ev->size) != 0 ||
             memcmp(now, z->evold, ev->size) != 0))
            fail(z, "a denied PRE write (no bytes given) was left performed");
    }
    if (ev->delivery == PTMON_DELIVERY_PRE && !z->denied && rc == PTMON_ACTION_DENY)
        fail(z, "PRE write denied though no callback denied");
    return rc;
}

/* ---- guest values ------------------------------------------------------------------------- */

static uint64_t random_flags(struct fz *z)
{
    uint64_t f = PTMON_PTE_P;
    if (!chance(z, 8))
        f |= PTMON_PTE_RW;
    if (!chance(z, 8))
        f |= PTMON_PTE_US;
    if (chance(z, 3))
        f |= rnd16(z) & (PTMON_PTE_A | PTMON_PTE_D | PTMON_PTE_PCD | PTMON_PTE_PWT | PTMON_PTE_G |
                         (7ull << 9));
    if (chance(z, 8))
        f |= PTMON_PTE_NX;
    if (chance(z, 8))
        f |= PTMON_PTE_PS;
    if (chance(z, 16))
        f &= ~PTMON_PTE_P;
    return f;
}

static uint64_t random_entry(struct fz *z, uint64_t cur)
{
    int is32 = z->mmu.mode == PTMON_MODE_32BIT;
    unsigned r = below(z, 100);
    uint64_t v, base, flags;

    /* every random decision in its own statement: the order is the same with every compiler */
    if (r < 6) {
        v = 0;
    } else if (r < 50) { /* a table of the pool */
        base = z->pool[below(z, NPOOL)];
        v = base | (random_flags(z) & ~PTMON_PTE_PS);
        if (z->mmu.mode == PTMON_MODE_PAE && chance(z, 2)) /* a valid PDPTE */
            v = base | PTMON_PTE_P | (rnd16(z) & 0x18);
    } else if (r < 54) {
        base = z->pool[below(z, NPOOL)];
        v = base | random_flags(z);
    } else if (r < 64) { /* a large page */
        base = is32 ? (uint64_t)below(z, 1024) << 22 : (uint64_t)below(z, 64) << 21;
        if (!is32 && chance(z, 3))
            base = (uint64_t)below(z, 8) << 30;
        v = base | random_flags(z) | PTMON_PTE_PS;
        if (is32 && chance(z, 3))
            v |= (rnd16(z) & 0xff) << 13; /* PSE-36 */
        if (chance(z, 4))
            v |= 1ull << 12; /* PAT of a large page */
    } else if (r < 68) {     /* a table outside RAM */
        static const uint64_t far[] = {RAM_SIZE, RAM_SIZE + 0x5000, 0xfffff000ull, 0x7ffff000ull};
        base = far[below(z, 4)];
        v = base | (random_flags(z) & ~PTMON_PTE_PS);
    } else if (r < 72) { /* a data frame in RAM (a table if used as one) */
        base = (uint64_t)(16 + below(z, NFRAMES - 16)) << 12;
        v = base | random_flags(z);
    } else if (r < 84) { /* flip a bit */
        v = cur ^ (1ull << (is32 ? below(z, 32) : chance(z, 5) ? 63 - below(z, 14) : below(z, 16)));
    } else if (r < 92) { /* a reserved bit */
        static const unsigned bits[] = {51, 52, 62, 63, 13, 20, 21, 29, 36, 40, 45, 1, 2, 5, 8};
        base = z->pool[below(z, NPOOL)];
        flags = random_flags(z);
        v = base | flags | (1ull << bits[below(z, 15)]);
    } else if (r < 96) {
        v = rnd64(z);
    } else if (r < 97) {
        v = ~0ull;
    } else { /* the same value: no change */
        v = cur;
    }
    if (is32)
        v &= 0xffffffffull;
    return v;
}

static void put_le(uint8_t *b, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t peek_entry(struct fz *z, uint64_t gpa)
{
    uint8_t b[8] = {0};
    uint64_t v = 0;
    (void)ptmon_fake_peek(z->fake, gpa, b, z->esize);
    for (unsigned i = z->esize; i-- > 0;)
        v = (v << 8) | b[i];
    return v;
}

/* An entry GPA worth writing: mostly one on a watched path, else a pool slot. */
static uint64_t pick_entry_gpa(struct fz *z)
{
    int j = pick_live(z);
    if (j >= 0 && chance(z, 2)) {
        struct oracle_walk ow;
        truth(z, &z->ws[j], 0, &ow);
        unsigned lv[6], n = 0;
        for (unsigned l = ow.tr.level; l <= ow.top && l >= 1; l++)
            if (ow.in_ram[l])
                lv[n++] = l;
        if (n)
            return ow.entry_gpa[lv[below(z, n)]];
    }
    uint64_t frame = z->pool[below(z, NPOOL)];
    unsigned slot = pick_index(z, 2);
    if (z->mmu.mode == PTMON_MODE_PAE && chance(z, 3))
        slot = below(z, 12); /* the PDPTs of the roots */
    return frame + (uint64_t)slot * z->esize;
}

/* ---- steps -------------------------------------------------------------------------------- */

static uint32_t vcpu_of(struct fz *z)
{
    return below(z, 2);
}

/* Remember what [gpa, gpa + len) holds before a store (the part in RAM). */
static void snap_store(struct fz *z, uint64_t gpa, uint64_t len)
{
    z->snap_gpa = gpa;
    z->snap_len = 0;
    if (len > sizeof(z->snap))
        return;
    if (gpa >= RAM_SIZE)
        return;
    if (gpa + len > RAM_SIZE) /* the part in RAM */
        len = RAM_SIZE - gpa;
    if (ptmon_fake_peek(z->fake, gpa, z->snap, (size_t)len) == 0)
        z->snap_len = (uint32_t)len;
}

static void store(struct fz *z, uint64_t gpa, const uint8_t *b, uint32_t size)
{
    snap_store(z, gpa, size);
    trace(z, "store %u bytes at %#llx", size, (unsigned long long)gpa);
    z->res->stores++;
    int rc = ptmon_fake_store(z->fake, vcpu_of(z), gpa, b, size);
    if (rc != 0 && rc != PTMON_EDENIED && rc != PTMON_ERANGE)
        fail(z, "ptmon_fake_store: %s", ptmon_err_name(rc));
}

/* Fill buf with new values for the entries from @p gpa's entry on, enough for @p bytes bytes
 * (the first always new, each later one new or unchanged). */
static void new_entries(struct fz *z, uint64_t gpa, uint8_t *buf, unsigned bytes)
{
    unsigned es = z->esize;
    for (unsigned k = 0; k * es < bytes; k++) {
        uint64_t cur = peek_entry(z, gpa + k * es);
        uint64_t v = (k == 0 || chance(z, 2)) ? random_entry(z, cur) : cur;
        put_le(buf + k * es, v, es);
    }
}

static void step_store(struct fz *z, unsigned kind)
{
    uint64_t gpa = pick_entry_gpa(z);
    uint8_t buf[80];
    unsigned es = z->esize;

    switch (kind) {
    case 0: /* one whole entry */
        new_entries(z, gpa, buf, es);
        store(z, gpa, buf, es);
        break;
    case 1: { /* part of an entry */
        static const unsigned sizes[] = {1, 2, 4};
        unsigned sz = sizes[below(z, es == 8 ? 3 : 2)];
        unsigned off = below(z, es - sz + 1);
        new_entries(z, gpa, buf, es);
        store(z, gpa + off, buf + off, sz);
        break;
    }
    case 2: { /* misaligned, crossing into the next entry */
        static const unsigned sizes[] = {2, 4, 8};
        unsigned sz = sizes[below(z, 3)];
        unsigned off = 1 + below(z, es - 1);
        new_entries(z, gpa, buf, off + sz);
        store(z, gpa + off, buf + off, sz);
        break;
    }
    case 3: { /* vector stores */
        static const unsigned sizes[] = {16, 32, 64};
        unsigned sz = sizes[below(z, 3)];
        unsigned off = chance(z, 3) ? below(z, 8) : 0;
        new_entries(z, gpa, buf, off + sz);
        store(z, gpa + off, buf + off, sz);
        break;
    }
    case 4: { /* crossing the frame's end */
        uint64_t end = (gpa | 0xfff) + 1;
        unsigned sz = chance(z, 2) ? 8 : 16;
        unsigned back = 1 + below(z, sz - 1);
        new_entries(z, gpa, buf, sz);
        store(z, end - back, buf, sz);
        break;
    }
    case 5: { /* an 8-byte entry written as two halves, in either order */
        new_entries(z, gpa, buf, es);
        if (es != 8) {
            store(z, gpa, buf, es);
            break;
        }
        if (chance(z, 2)) {
            store(z, gpa, buf, 4);
            store(z, gpa + 4, buf + 4, 4);
        } else {
            store(z, gpa + 4, buf + 4, 4);
            store(z, gpa, buf, 4);
        }
        break;
    }
    case 6: { /* rep stos */
        static const unsigned elems[] = {1, 2, 4, 8};
        unsigned el = chance(z, 2) ? es : elems[below(z, 4)];
        uint64_t start = chance(z, 3) ? gpa & ~0xfffull : gpa & ~(uint64_t)(el - 1);
        uint64_t count = chance(z, 4) ? (8192 - (start & 0xfff)) / el : 1 + below(z, 64 / el * 2);
        uint64_t v = chance(z, 3) ? 0 : random_entry(z, 0);
        trace(z, "rep stos %u x %llu at %#llx", el, (unsigned long long)count,
              (unsigned long long)start);
        z->res->stores++;
        snap_store(z, start, count * el);
        int rc = ptmon_fake_rep_stos(z->fake, vcpu_of(z), start, v, el, count);
        if (rc != 0 && rc != PTMON_EDENIED && rc != PTMON_ERANGE)
            fail(z, "rep stos: %s", ptmon_err_name(rc));
        break;
    }
    default: { /* rep movs from another pool frame */
        uint64_t src = z->pool[below(z, NPOOL)];
        src += (uint64_t)below(z, 64) * es;
        uint64_t count = chance(z, 4) ? 4096 / es : 1 + below(z, 16);
        uint64_t dst = gpa;
        if (src < dst + count * es && dst < src + count * es)
            break; /* overlapping: not a forward copy the fake supports */
        trace(z, "rep movs %u x %llu %#llx -> %#llx", es, (unsigned long long)count,
              (unsigned long long)src, (unsigned long long)dst);
        z->res->stores++;
        snap_store(z, dst, count * es);
        int rc = ptmon_fake_rep_movs(z->fake, vcpu_of(z), dst, src, es, count);
        if (rc != 0 && rc != PTMON_EDENIED && rc != PTMON_ERANGE && rc != PTMON_ENOMEM)
            fail(z, "rep movs: %s", ptmon_err_name(rc));
        break;
    }
    }
}

/* Make a random watch's walk go one level further: its stopping entry becomes a valid table
 * pointer (or a valid 4K leaf at level 1), written whole. Keeps many translations present. */
static void step_heal(struct fz *z)
{
    int j = pick_live(z);
    struct oracle_walk ow;
    uint8_t b[8];
    uint64_t v;

    if (j < 0)
        return;
    truth(z, &z->ws[j], 0, &ow);
    if (ow.tr.status == PTMON_WALK_OK || ow.tr.status == PTMON_WALK_OUTSIDE_RAM)
        return;
    if (ow.tr.level == 1)
        v = ((uint64_t)(16 + below(z, 64)) << 12) | PTMON_PTE_P | PTMON_PTE_RW | PTMON_PTE_US;
    else if (z->mmu.mode == PTMON_MODE_PAE && ow.tr.level == 3)
        v = z->pool[below(z, NPOOL)] | PTMON_PTE_P;
    else
        v = z->pool[below(z, NPOOL)] | PTMON_PTE_P | PTMON_PTE_RW | PTMON_PTE_US;
    put_le(b, v, z->esize);
    store(z, ow.entry_gpa[ow.tr.level], b, z->esize);
}

static int on_hook(ptmon *pm, ptmon_hook *h, void *ctx, const ptmon_mem_event *ev)
{
    struct hslot *hs = ctx;
    struct fz *z = hs->z;

    trace(z, "  hook %u access %u", (unsigned)(hs - z->hs), ev->access);
    if (pm != z->pm || hs->h != h)
        fail(z, "hook callback with a wrong instance or handle");
    if (!hs->live)
        fail(z, "removed hook %u called", (unsigned)(hs - z->hs));
    if (!(ev->access & hs->access) || ev->gpa >= hs->gpa + hs->len || ev->gpa + ev->size <= hs->gpa)
        fail(z, "hook %u called for an access it did not ask for", (unsigned)(hs - z->hs));
    if (chance(z, 8)) {
        int rc = ptmon_unhook(&h);
        note_api(z, rc);
        if (rc != 0)
            fail(z, "ptmon_unhook in its callback: %s", ptmon_err_name(rc));
        hs->live = 0;
    }
    if (ev->access == PTMON_ACCESS_W && ev->delivery == PTMON_DELIVERY_PRE && z->in_event &&
        chance(z, 6)) {
        z->denied = 1;
        z->res->denies++;
        trace(z, "  hook deny");
        return PTMON_ACTION_DENY;
    }
    return 0;
}

/* Add a hook on (part of) a frame, or remove one. */
static void step_hook(struct fz *z)
{
    static const uint32_t kinds[] = {PTMON_ACCESS_W, PTMON_ACCESS_W, PTMON_ACCESS_R, PTMON_ACCESS_X,
                                     PTMON_ACCESS_RWX};
    struct hslot *hs = &z->hs[below(z, MAXH)];
    int rc;

    if (hs->live) {
        rc = ptmon_unhook(&hs->h);
        note_api(z, rc);
        trace(z, "unhook %u -> %d", (unsigned)(hs - z->hs), rc);
        if (rc != 0 && !relaxed(z))
            fail(z, "ptmon_unhook: %s", ptmon_err_name(rc));
        hs->live = 0;
        return;
    }
    uint64_t frame = chance(z, 8)   ? RAM_SIZE + 0x2000 /* outside RAM */
                     : chance(z, 4) ? (uint64_t)below(z, NFRAMES) << 12
                                    : z->pool[below(z, NPOOL)];
    uint32_t off = below(z, 4096), len = 1 + below(z, 4096 - off);
    memset(hs, 0, sizeof(*hs));
    hs->z = z;
    hs->gpa = frame + off;
    hs->len = len;
    hs->access = kinds[below(z, 5)];
    rc = ptmon_hook_gpa(z->pm, hs->gpa, len, hs->access, on_hook, hs, &hs->h);
    note_api(z, rc);
    trace(z, "hook %u gpa %#llx len %u access %u -> %d", (unsigned)(hs - z->hs),
          (unsigned long long)hs->gpa, len, hs->access, rc);
    if (frame >= RAM_SIZE) {
        if (rc != PTMON_ERANGE && !(relaxed(z) && rc < 0))
            fail(z, "hook outside RAM returned %d", rc);
        return;
    }
    if (rc != 0) {
        if (!relaxed(z))
            fail(z, "ptmon_hook_gpa: %s", ptmon_err_name(rc));
        return;
    }
    hs->live = 1;
}

static void step_cpu(struct fz *z)
{
    int j = pick_live(z);
    uint64_t gpa;
    /* Not in PAE: an A/D bit the CPU sets in a PD entry that is also another root's PDPTE (an
     * aliased frame) makes that PDPTE reserved with no event for ptmon to see. */
    if (j < 0 || z->mmu.mode == PTMON_MODE_PAE || (z->monitored & AD_BITS))
        return;
    unsigned how = below(z, 3);
    how |= chance(z, 2) ? PTMON_FAKE_CPU_USER : 0;
    int rc = ptmon_fake_cpu_access(z->fake, z->ws[j].cr3, z->ws[j].va, how, &gpa);
    trace(z, "cpu access va %#llx how %u -> %d", (unsigned long long)z->ws[j].va, how, rc);
    z->ad_seen = 1;
}

/* ---- fault injection ---------------------------------------------------------------------- */

static int fault_error(int op)
{
    return op == PTMON_FAKE_OP_ALLOC ? PTMON_ENOMEM : PTMON_EIO;
}

/* Run ptmon_check; @return its findings other than (under caps) watches whose placement waits
 * for room, printed if @p print. With @p mark, those watches are marked waiting, with the level
 * their path got to. */
static int engine_findings(struct fz *z, int mark, int print)
{
    ptmon_finding f[MAXW + 8];
    int n = ptmon_check(z->pm, f, MAXW + 8);
    int seen = n < MAXW + 8 ? n : MAXW + 8, bad = n - seen;

    if (n < 0)
        fail(z, "ptmon_check: %s", ptmon_err_name(n));
    for (unsigned i = 0; mark && i < MAXW; i++)
        z->ws[i].waiting = 0;
    for (int i = 0; i < seen; i++) {
        struct wslot *s = NULL;
        for (unsigned k = 0; f[i].watch && k < MAXW; k++)
            if (z->ws[k].live && z->ws[k].w == f[i].watch)
                s = &z->ws[k];
        if (z->caps && s && f[i].kind == PTMON_FINDING_STALE_RECORD &&
            strstr(f[i].text, "placement incomplete")) {
            if (mark) {
                s->waiting = 1;
                s->waiting_depth = f[i].level;
            }
            continue;
        }
        if (print)
            fprintf(stderr, "    ptmon_check: %s\n", f[i].text);
        bad++;
    }
    return bad;
}

static void arm(struct fz *z)
{
    int op = z->opt->fault_op;
    z->api_error = 0;
    z->fired_now = 0;
    if (op < 0)
        return;
    z->calls_before = ptmon_fake_calls(z->fake, (enum ptmon_fake_op)op);
    z->logs_before = ptmon_fake_calls(z->fake, PTMON_FAKE_OP_LOG);
    if (z->opt->fault_count || z->fired)
        return;
    ptmon_fake_fail_nth(z->fake, (enum ptmon_fake_op)op, z->remaining, fault_error(op));
    z->armed = 1;
}

static void disarm(struct fz *z)
{
    int op = z->opt->fault_op;
    if (op < 0)
        return;
    uint64_t used = ptmon_fake_calls(z->fake, (enum ptmon_fake_op)op) - z->calls_before;
    if (z->opt->fault_count) {
        z->res->fault_calls += used;
        return;
    }
    if (!z->armed)
        return;
    z->armed = 0;
    if (ptmon_fake_failure_fired(z->fake, (enum ptmon_fake_op)op)) {
        z->fired = z->fired_now = 1;
        z->res->fault_fired = 1;
        trace(z, "injected %s failure fired", ptmon_fake_op_name((enum ptmon_fake_op)op));
        /* A failure must be reported (an error returned, or a log line) unless ptmon absorbed
         * it (retried at once): then nothing is left to fix. */
        if (!z->api_error && op != PTMON_FAKE_OP_LOG &&
            ptmon_fake_calls(z->fake, PTMON_FAKE_OP_LOG) == z->logs_before &&
            engine_findings(z, 0, 0) != 0) {
            z->res->unreported++;
            if (getenv("FZ_SHOW_UNREPORTED"))
                fprintf(stderr, "unreported %s failure: mode %s seed %llu nth %llu step %llu\n",
                        ptmon_fake_op_name((enum ptmon_fake_op)op), fz_mode_name(z->mmu.mode),
                        (unsigned long long)z->opt->seed, (unsigned long long)z->opt->fault_nth,
                        (unsigned long long)z->step);
        }
    } else {
        z->remaining -= used;
    }
    ptmon_fake_fail_nth(z->fake, (enum ptmon_fake_op)op, 0, 0);
}

/* ---- verification ------------------------------------------------------------------------- */

/* ptmon_check must find nothing but the waiting watches of engine_findings. */
static void check_engine(struct fz *z)
{
    int bad = engine_findings(z, 1, 1);
    if (bad)
        fail(z, "ptmon_check: %d findings", bad);
}

/* The rights ptmon must have removed from frame @p g: W if it holds entries on watched paths
 * (@p gfns), and what the live hooks on it ask (a read hook removes W too). */
static uint32_t removed_rights(const struct fz *z, uint64_t g, const uint64_t *gfns, unsigned n)
{
    uint32_t rm = 0;
    for (unsigned i = 0; i < n; i++)
        if (gfns[i] == g)
            rm |= PTMON_ACCESS_W;
    for (unsigned i = 0; i < MAXH; i++) {
        const struct hslot *h = &z->hs[i];
        if (!h->live || (h->gpa >> 12) != g)
            continue;
        rm |= h->access;
        if (h->access & PTMON_ACCESS_R)
            rm |= PTMON_ACCESS_W;
    }
    return rm;
}

static void check_frame(struct fz *z, uint64_t g, const uint64_t *gfns, unsigned n)
{
    uint32_t want = z->init_rights[g] & ~removed_rights(z, g, gfns, n);
    uint32_t have = ptmon_fake_rights(z->fake, g);
    if (have != want)
        fail(z, "frame %#llx has rights %#x, expected %#x", (unsigned long long)g, have, want);
}

static void check_rights(struct fz *z, const uint64_t *gfns, unsigned n, int full)
{
    uint64_t cand[MAXW * 6 + MAXH], wp = 0;
    unsigned nc = 0;

    /* the frames ptmon may have restricted: on watched paths, or hooked (each once) */
    for (unsigned i = 0; i < n + MAXH; i++) {
        uint64_t g;
        if (i < n)
            g = gfns[i];
        else if (z->hs[i - n].live && (z->hs[i - n].gpa >> 12) < NFRAMES)
            g = z->hs[i - n].gpa >> 12;
        else
            continue;
        unsigned k = 0;
        while (k < nc && cand[k] != g)
            k++;
        if (k < nc)
            continue;
        cand[nc++] = g;
        check_frame(z, g, gfns, n);
        if (removed_rights(z, g, gfns, n) & PTMON_ACCESS_W)
            wp++;
    }
    if (ptmon_fake_count_write_protected(z->fake) != wp)
        fail(z, "%llu frames write-protected, expected %llu",
             (unsigned long long)ptmon_fake_count_write_protected(z->fake), (unsigned long long)wp);
    if (full)
        for (uint64_t g = 0; g < NFRAMES; g++)
            check_frame(z, g, gfns, n);
}

/* ptmon_translate (the engine's walker) against the reference MMU, level by level. */
static void check_translate(struct fz *z, uint64_t cr3, uint64_t va)
{
    struct wslot tmp;
    struct oracle_walk ow;
    ptmon_walk wk;
    int rc;

    memset(&tmp, 0, sizeof(tmp));
    tmp.cr3 = cr3;
    tmp.va = va;
    truth(z, &tmp, 0, &ow);
    rc = ptmon_translate(z->pm, cr3, va, &wk);
    if (ow.valid && root_outside_ram(&ow)) {
        if (rc != PTMON_ERANGE)
            fail(z, "ptmon_translate with a root outside RAM returned %d", rc);
        return;
    }
    if (rc != 0)
        fail(z, "ptmon_translate(%#llx, %#llx): %s", (unsigned long long)cr3,
             (unsigned long long)va, ptmon_err_name(rc));
    if (!ow.valid) {
        if (wk.status != PTMON_WALK_NONCANONICAL)
            fail(z, "ptmon_translate of untranslatable va %#llx: %s", (unsigned long long)va,
                 ptmon_walk_status_name(wk.status));
        return;
    }
    int bad = wk.status != ow.tr.status || wk.stop_level != ow.tr.level ||
              wk.rights != ow.tr.rights || wk.top_level != ow.top;
    if (wk.status == PTMON_WALK_OK)
        bad |= wk.page_gpa != ow.tr.frame || wk.page_size != ow.tr.page_size ||
               wk.gpa != ow.tr.frame + (va & (ow.tr.page_size - 1));
    for (unsigned l = ow.tr.level; !bad && l <= ow.top; l++) {
        uint64_t want = l == ow.tr.level ? ow.tr.entry : 0;
        if (l != ow.tr.level)
            (void)view_read(z, ow.entry_gpa[l], z->esize, &want);
        bad |= wk.level[l].gpa != ow.entry_gpa[l] || wk.level[l].value != want;
    }
    if (bad) {
        ptmon_translation t = {wk.status,    wk.stop_level, wk.level[wk.stop_level].value,
                               wk.page_size, wk.page_gpa,   wk.rights};
        dump_tr("ptmon_translate", &t);
        dump_tr("oracle", &ow.tr);
        fail(z, "ptmon_translate(%#llx, %#llx) differs from the reference MMU",
             (unsigned long long)cr3, (unsigned long long)va);
    }
}

static void dump_sink(void *ctx, const char *text)
{
    size_t *n = ctx;
    *n += strlen(text);
}

/* Add to @p gfns the frames (in RAM) holding the entries of @p ow's path from the top down to
 * level @p lowest. */
static void add_path_frames(const struct oracle_walk *ow, unsigned lowest, uint64_t *gfns,
                            unsigned *ngfn)
{
    for (unsigned l = lowest; l <= ow->top; l++) {
        if (l < ow->tr.level || !ow->in_ram[l])
            continue;
        uint64_t g = ow->entry_gpa[l] >> 12;
        unsigned k = 0;
        while (k < *ngfn && gfns[k] != g)
            k++;
        if (k == *ngfn)
            gfns[(*ngfn)++] = g;
    }
}

static void verify(struct fz *z)
{
    uint64_t gfns[MAXW * 6];
    unsigned ngfn = 0, live = 0;
    ptmon_stats st;

    for (unsigned i = 0; i < MAXW; i++)
        if (!z->ws[i].live)
            z->ws[i].w = NULL;
    check_engine(z);
    for (unsigned i = 0; i < MAXW; i++) {
        struct wslot *s = &z->ws[i];
        struct oracle_walk ow;
        if (!s->live)
            continue;
        live++;
        truth(z, s, 0, &ow);
        ptmon_translation rec = ptmon_watch_translation(s->w);
        z->res->present_checks += ow.tr.status == PTMON_WALK_OK;
        if (s->waiting) {
            /* keeps what it was told (give or take silent changes); protects the part of its
             * path it got to */
            if (must_tell(z, &s->told, &rec))
                fail(z, "waiting watch %u (va %#llx): record changed without a callback", i,
                     (unsigned long long)s->va);
            s->told = rec;
            z->res->waiting_checks++;
            add_path_frames(&ow, s->waiting_depth, gfns, &ngfn);
            continue;
        }
        if (!same_tr(z, &rec, &ow.tr)) {
            dump_tr("record", &rec);
            dump_tr("oracle", &ow.tr);
            fail(z, "watch %u (va %#llx cr3 %#llx): record differs from the reference MMU", i,
                 (unsigned long long)s->va, (unsigned long long)s->cr3);
        }
        if (must_tell(z, &s->told, &ow.tr)) {
            dump_tr("last told", &s->told);
            dump_tr("oracle", &ow.tr);
            fail(z, "watch %u (va %#llx cr3 %#llx): missed callback", i, (unsigned long long)s->va,
                 (unsigned long long)s->cr3);
        }
        s->told = rec;
        check_translate(z, s->cr3, s->va);
        add_path_frames(&ow, ow.tr.level, gfns, &ngfn);
    }
    check_rights(z, gfns, ngfn, z->step % FULL_SCAN == 0);
    uint64_t cr3 = random_cr3(z);
    check_translate(z, cr3, random_va(z));
    if (z->step % FULL_SCAN == 1) {
        size_t n = 0;
        if (ptmon_dump(z->pm, PTMON_DUMP_TEXT, dump_sink, &n) != 0 ||
            ptmon_dump(z->pm, PTMON_DUMP_DOT, dump_sink, &n) != 0)
            fail(z, "ptmon_dump failed");
    }
    if (ptmon_get_stats(z->pm, &st) != 0 || st.watches != live)
        fail(z, "stats: %llu watches, %u live", (unsigned long long)st.watches, live);
    if (fixed(z, FZ_FIX_B9) &&
        st.bytes != ptmon_fake_stat(z->fake, PTMON_FAKE_STAT_BYTES_ALLOCATED))
        fail(z, "stats.bytes %llu, allocated %llu", (unsigned long long)st.bytes,
             (unsigned long long)ptmon_fake_stat(z->fake, PTMON_FAKE_STAT_BYTES_ALLOCATED));
}

/*
 * Bursts: reads, and now and then emulated writes, keep failing over several steps, as when a
 * guest balloons out a page-table frame. ptmon may hold callbacks back meanwhile, but every
 * callback it makes must be exact and its own structures sound at every step; once the failures
 * stop and a commit has run, the full verification must pass.
 */
static void burst_arm(struct fz *z)
{
    if (!z->opt->burst_pct || z->opt->fault_op >= 0)
        return;
    if (!z->burst && below(z, 100) < z->opt->burst_pct)
        z->burst = 1;
    if (!z->burst)
        return;
    if (chance(z, 2))
        ptmon_fake_fail_calls(z->fake, PTMON_FAKE_OP_READ_GPA, 1 + below(z, 6), 1 + below(z, 4),
                              PTMON_EIO);
    if (chance(z, 6))
        ptmon_fake_fail_calls(z->fake, PTMON_FAKE_OP_EMULATE_WRITE, 1 + below(z, 3), 1, PTMON_EIO);
}

/* @return nonzero while the burst goes on: the step's full verification waits for its end. */
static int burst_continues(struct fz *z)
{
    ptmon_finding f[MAXW + 8];
    int n;

    if (!z->burst)
        return 0;
    ptmon_fake_fail_calls(z->fake, PTMON_FAKE_OP_READ_GPA, 0, 0, 0);
    ptmon_fake_fail_calls(z->fake, PTMON_FAKE_OP_EMULATE_WRITE, 0, 0, 0);
    n = ptmon_check(z->pm, f, MAXW + 8);
    for (int i = 0; i < n && i < MAXW + 8; i++)
        if (f[i].kind != PTMON_FINDING_STALE_RECORD && f[i].kind != PTMON_FINDING_UNREADABLE)
            fail(z, "in a burst of failures: ptmon_check: %s", f[i].text);
    z->res->burst_steps++;
    if (!chance(z, 4))
        return 1;
    z->burst = 0;
    z->fired_now = 1; /* the commit below, then the full verification */
    return 0;
}

static void one_step(struct fz *z)
{
    unsigned op = below(z, 100);

    resnap(z);
    arm(z);
    burst_arm(z);
    if (op < 52) {
        static const unsigned kinds[] = {0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7};
        step_store(z, kinds[below(z, 16)]);
    } else if (op < 65) {
        step_heal(z);
    } else if (op < 83) {
        if (live_count(z) < z->maxw)
            (void)add_random_watch(z, 4);
    } else if (op < 90) {
        int j = chance(z, 2) ? pick_live(z) : -1;
        if (j >= 0)
            remove_watch(z, &z->ws[j]);
    } else if (op < 93) {
        int rc = ptmon_commit(z->pm);
        note_api(z, rc);
        if (rc != 0 && !relaxed(z))
            fail(z, "ptmon_commit: %s", ptmon_err_name(rc));
    } else if (op < 96) {
        step_cpu(z);
    } else if (op < 98) {
        step_hook(z);
    } else if (chance(z, 2)) {
        z->delivery_pre = !z->delivery_pre;
        ptmon_fake_set_delivery(z->fake,
                                z->delivery_pre ? PTMON_DELIVERY_PRE : PTMON_DELIVERY_POST);
        trace(z, "delivery %s", z->delivery_pre ? "pre" : "post");
    } else {
        z->nobytes = !z->nobytes;
    }
    disarm(z);
    if (burst_continues(z)) {
        z->res->steps++;
        return;
    }
    /* The failure is spent: a commit retries what it left undone. Without emulate_write a PRE
     * write of unknown bytes lands after its event, to be read by the next commit: this one. */
    if (z->fired_now || (z->nobytes && !z->glue.emulate_write)) {
        int rc = ptmon_commit(z->pm);
        if (rc != 0)
            fail(z, "commit after the step: %s", ptmon_err_name(rc));
    }
    verify(z);
    z->fired_now = 0;
    z->res->steps++;
}

/* ---- one run ------------------------------------------------------------------------------ */

static void setup(struct fz *z)
{
    static const unsigned phys32[] = {32, 36, 40, 46};
    static const unsigned phys64[] = {36, 40, 46, 52};
    ptmon_fake_config fc = PTMON_FAKE_CONFIG_INIT;
    ptmon_config pc = PTMON_CONFIG_INIT;
    enum ptmon_paging_mode mode = z->opt->mode;

    if (mode == PTMON_MODE_AUTO)
        mode = (enum ptmon_paging_mode)(PTMON_MODE_32BIT + below(z, 4));
    z->mmu.mode = mode;
    z->mmu.pse = mode == PTMON_MODE_32BIT && !chance(z, 4);
    z->mmu.nxe = mode != PTMON_MODE_32BIT && !chance(z, 4);
    z->mmu.maxphyaddr = mode == PTMON_MODE_32BIT ? phys32[below(z, 4)] : phys64[below(z, 4)];
    z->esize = mode == PTMON_MODE_32BIT ? 4 : 8;
    z->nentries = mode == PTMON_MODE_32BIT ? 1024 : 512;
    z->top = oracle_levels(&z->mmu);
    z->delivery_pre = chance(z, 2);
    z->nobytes = chance(z, 4);
    z->maxw = fixed(z, FZ_FIX_B5) ? MAXW : 24;
    /* monitored bits: the default, or more of the low bits, maybe without RW/US/NX (the
     * effective rights are compared whatever the mask) */
    z->monitored = PTMON_DEFAULT_MONITORED;
    if (chance(z, 3)) {
        z->monitored |= rnd16(z) & 0xf78;
        if (chance(z, 2)) {
            z->monitored &= ~(rnd16(z) & (PTMON_PTE_RW | PTMON_PTE_US | PTMON_PTE_P));
            z->monitored &= ~(chance(z, 2) ? PTMON_PTE_NX : 0);
        }
    }

    fc.ram_size = RAM_SIZE;
    fc.paging.mode = mode;
    fc.paging.flags = (z->mmu.pse ? PTMON_PAGING_PSE : 0u) | (z->mmu.nxe ? PTMON_PAGING_NXE : 0u);
    fc.paging.maxphyaddr = z->mmu.maxphyaddr;
    fc.nr_vcpus = 2;
    fc.delivery = z->delivery_pre ? PTMON_DELIVERY_PRE : PTMON_DELIVERY_POST;
    if (ptmon_fake_create(&fc, &z->fake) != 0)
        fail(z, "ptmon_fake_create");
    pc.paging = fc.paging;
    /* a backend without emulate_write (PRE writes then always left to the backend, POST denies
     * cannot be undone) or without set_access_batch, now and then */
    z->glue = *ptmon_fake_glue(z->fake);
    if (chance(z, 8) && !(z->opt->fault_op == PTMON_FAKE_OP_READ_GPA && !fixed(z, FZ_FIX_N4)))
        z->glue.emulate_write = NULL;
    if (chance(z, 8))
        z->glue.set_access_batch = NULL;
    /* caps small enough to bind (SPEC 7), now and then; the paging read off vCPU 0 (AUTO) */
    z->caps = chance(z, 6);
    if (z->caps) {
        pc.max_nodes = 4 + below(z, 40);
        pc.max_tables = 2 + below(z, 10);
    }
    if (chance(z, 4)) { /* mode and flags read off vCPU 0 */
        pc.paging.mode = PTMON_MODE_AUTO;
        pc.paging.flags = 0;
    }
    if (ptmon_create(&z->glue, &pc, &z->pm) != 0)
        fail(z, "ptmon_create");
    ptmon_paging got = ptmon_get_paging(z->pm);
    if (got.mode != fc.paging.mode || got.maxphyaddr != fc.paging.maxphyaddr ||
        (got.flags & PTMON_PAGING_NXE) != (fc.paging.flags & PTMON_PAGING_NXE) ||
        (mode == PTMON_MODE_32BIT && got.flags != fc.paging.flags))
        fail(z, "paging %s flags %#x maxphyaddr %u, the guest's %s flags %#x maxphyaddr %u",
             ptmon_paging_mode_name(got.mode), got.flags, got.maxphyaddr,
             ptmon_paging_mode_name(fc.paging.mode), fc.paging.flags, fc.paging.maxphyaddr);
    ptmon_fake_set_handler(z->fake, handler, z);
    ptmon_set_monitored_bits(z->pm, z->monitored);

    /* the pool: frame 0 and the next frames, tables at any level */
    if (ptmon_fake_claim_frame(z->fake, 0) != 0)
        fail(z, "claim frame 0");
    z->pool[0] = 0;
    for (unsigned i = 1; i < NPOOL; i++)
        if (ptmon_fake_alloc_frame(z->fake, &z->pool[i]) != 0)
            fail(z, "alloc frame");
    if (mode == PTMON_MODE_PAE) {
        z->roots[0] = z->pool[0];
        z->roots[1] = z->pool[1] + 32;
        z->roots[2] = z->pool[0] + 64;
    } else {
        z->roots[0] = z->pool[0];
        z->roots[1] = z->pool[1];
        z->roots[2] = z->pool[2];
    }
    /* rights before ptmon: always with W (so "lacks W" means "ptmon protected it") */
    for (uint64_t g = 0; g < NFRAMES; g++) {
        static const uint32_t rights[] = {PTMON_ACCESS_RWX, PTMON_ACCESS_R | PTMON_ACCESS_W,
                                          PTMON_ACCESS_RWX | 0x1200u,
                                          PTMON_ACCESS_R | PTMON_ACCESS_W | 0xab00u};
        uint32_t r = g < 24 ? rights[below(z, 4)] : PTMON_ACCESS_RWX;
        if (ptmon_fake_set_rights(z->fake, g, r) != 0)
            fail(z, "set rights");
        z->init_rights[g] = ptmon_fake_rights(z->fake, g);
    }
    /* initial tables: every slot the VAs use, with random entries */
    for (unsigned i = 0; i < NPOOL; i++) {
        static const unsigned set512[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 256, 511};
        static const unsigned set1024[] = {0, 1, 2, 3, 768, 1023};
        unsigned n = z->esize == 8 ? 14 : 6;
        for (unsigned k = 0; k < n; k++) {
            unsigned slot = z->esize == 8 ? set512[k] : set1024[k];
            uint8_t b[8];
            put_le(b, random_entry(z, 0), z->esize);
            (void)ptmon_fake_poke(z->fake, z->pool[i] + (uint64_t)slot * z->esize, b, z->esize);
        }
    }
}

static void teardown(struct fz *z)
{
    ptmon_stats st;
    for (unsigned i = 0; i < MAXH; i++)
        if (z->hs[i].live) {
            if (ptmon_unhook(&z->hs[i].h) != 0)
                fail(z, "final unhook");
            z->hs[i].live = 0;
        }
    /* Each removal commits, and a commit's callbacks (a waiting watch completing) may add
     * watches: remove until none is left. */
    for (unsigned round = 0; live_count(z); round++) {
        if (round == 64)
            fail(z, "watches keep coming back at teardown");
        for (unsigned i = 0; i < MAXW; i++)
            if (z->ws[i].live)
                remove_watch(z, &z->ws[i]);
    }
    if (ptmon_commit(z->pm) != 0)
        fail(z, "final commit");
    z->step++;
    verify(z);
    check_rights(z, NULL, 0, 1);
    if (ptmon_get_stats(z->pm, &st) != 0 || st.watches || st.nodes || st.tables || st.frames)
        fail(z, "after unwatching everything: %llu watches %llu nodes %llu tables %llu frames",
             (unsigned long long)st.watches, (unsigned long long)st.nodes,
             (unsigned long long)st.tables, (unsigned long long)st.frames);
    ptmon_destroy(z->pm);
    if (ptmon_fake_stat(z->fake, PTMON_FAKE_STAT_BYTES_ALLOCATED) != 0)
        fail(z, "%llu bytes leaked",
             (unsigned long long)ptmon_fake_stat(z->fake, PTMON_FAKE_STAT_BYTES_ALLOCATED));
    ptmon_fake_destroy(z->fake);
}

int fz_run(const struct fz_options *opt, struct fz_src *src, struct fz_result *res)
{
    struct fz *z = calloc(1, sizeof(*z));
    if (!z)
        return PTMON_ENOMEM;
    memset(res, 0, sizeof(*res));
    z->opt = opt;
    z->src = src;
    z->res = res;
    z->remaining = opt->fault_nth;
    setup(z);
    for (z->step = 1; z->step <= opt->max_steps && !src->exhausted; z->step++)
        one_step(z);
    teardown(z);
    free(z);
    return 0;
}

int fz_run_input(const uint8_t *data, size_t len, unsigned fixed_bugs)
{
    struct fz_options opt;
    struct fz_result res;
    struct fz_src src;

    memset(&opt, 0, sizeof(opt));
    opt.mode = PTMON_MODE_AUTO;
    opt.max_steps = 4096;
    opt.fixed = fixed_bugs;
    opt.fault_op = -1;
    opt.verbose = getenv("FZ_VERBOSE") != NULL;
    fz_src_bytes(&src, data, len);
    (void)fz_run(&opt, &src, &res);
    return (int)res.steps;
}
