/*
 * The ptmon_glue of the Xen backend. Owns: guest reads through the mapping cache, frame rights
 * (Xen access types, the queue of changes applied in one batched call, the original type of
 * every frame we restricted), emulate_write, vCPU registers.
 * Rights changes are queued and applied by xen_rights_flush: a restriction at once (the engine
 * reads the frame right after protecting it: another vCPU's write in between must fault), a
 * relaxation at the glue's flush (end of a ptmon call) or before responses are pushed (end of a
 * ring batch). A change Xen refuses for a passing reason (ENOMEM from the HAP pool, EBUSY)
 * stays queued and is tried again at the next flush; one it refuses for good (not RAM) is
 * dropped and reported.
 * May call: xen_map.c, xen_store.c, xen_event_perform_pending, the xen ops.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xen_internal.h"

#include <xen/memory.h>

/* ---- Xen access types <-> ptmon rights --------------------------------------------------- */

static uint32_t rights_of(uint8_t xa)
{
    if (xa <= XENMEM_access_rwx) /* n, r, w, rw, x, rx, wx, rwx: the low bits are R, W, X */
        return xa;
    if (xa == XENMEM_access_rx2rw)
        return PTMON_ACCESS_R | PTMON_ACCESS_W | PTMON_ACCESS_X;
    return PTMON_ACCESS_RWX; /* n2rwx, default */
}

static uint8_t xa_of(uint32_t access)
{
    uint32_t saved = access >> XEN_ACCESS_SHIFT;
    uint32_t rwx = access & PTMON_ACCESS_RWX;

    if (saved && saved - 1 <= 0xff && rights_of((uint8_t)(saved - 1)) == rwx)
        return (uint8_t)(saved - 1); /* restore exactly what was there */
    if (rwx == PTMON_ACCESS_W)
        return XENMEM_access_n; /* write-only EPT entries are a misconfiguration */
    if (rwx == (PTMON_ACCESS_W | PTMON_ACCESS_X))
        return XENMEM_access_x;
    return (uint8_t)rwx;
}

static const char *xa_name(uint8_t xa)
{
    static const char *const names[] = {"n",  "r",   "w",     "rw",    "x",      "rx",
                                        "wx", "rwx", "rx2rw", "n2rwx", "default"};
    return xa < sizeof(names) / sizeof(names[0]) ? names[xa] : "?";
}

static void tell_frame(ptmon_xen *x, uint64_t gfn, int restricted, uint8_t was)
{
    if (x->frame_fn)
        x->frame_fn(x->frame_ctx, gfn, restricted, xa_name(was));
}

/* @return 1 if going from access @p from to @p to removes a right (the engine then reads the
 * frame and counts on every later write faulting, on every vCPU). */
static int takes_rights_away(uint8_t from, uint8_t to)
{
    return (rights_of(from) & ~rights_of(to)) != 0;
}

static int errno_to_ptmon(int rc)
{
    return rc == -ESRCH || rc == -EINVAL || rc == -ENOENT ? PTMON_ERANGE : PTMON_EIO;
}

/* ---- the rights queue ------------------------------------------------------------------- */

static int queue_append(ptmon_xen *x, uint64_t gfn, uint8_t xa)
{
    if (x->q_n == x->q_cap) {
        size_t cap = x->q_cap ? 2 * x->q_cap : 64;
        uint64_t *g = realloc(x->q_gfn, cap * sizeof(*g));
        uint8_t *a;
        if (!g)
            return PTMON_ENOMEM;
        x->q_gfn = g;
        a = realloc(x->q_acc, cap);
        if (!a)
            return PTMON_ENOMEM;
        x->q_acc = a;
        x->q_cap = cap;
    }
    x->q_gfn[x->q_n] = gfn;
    x->q_acc[x->q_n++] = xa;
    return 0;
}

/* Forget a queued change of @p gfn (a newer one was applied). */
/* @return the queue index of @p gfn's change (queue() keeps one per gfn), or x->q_n. */
static size_t queue_find(const ptmon_xen *x, uint64_t gfn)
{
    size_t i = 0;
    while (i < x->q_n && x->q_gfn[i] != gfn)
        i++;
    return i;
}

static void queue_drop(ptmon_xen *x, uint64_t gfn)
{
    size_t i = queue_find(x, gfn);
    if (i == x->q_n)
        return;
    x->q_n--;
    x->q_gfn[i] = x->q_gfn[x->q_n];
    x->q_acc[i] = x->q_acc[x->q_n];
}

static int queue(ptmon_xen *x, uint64_t gfn, uint8_t xa)
{
    size_t i = queue_find(x, gfn);
    if (i == x->q_n)
        return queue_append(x, gfn, xa);
    x->q_acc[i] = xa; /* last writer wins */
    return 0;
}

/* Xen refuses these for good: the gfn is no RAM (or not an access it takes). */
static int refused_for_good(int rc)
{
    return rc == -EINVAL || rc == -ESRCH || rc == -ENOENT;
}

int xen_rights_flush(ptmon_xen *x)
{
    int rc, first = 0;

    if (!x->q_n || !x->ring_up) {
        x->q_n = 0;
        return 0;
    }
    if (x->mechanism == PTMON_XEN_MECH_IOREQ) { /* p2m types: one retype call per frame */
        for (size_t i = 0; i < x->q_n; i++) {
            x->stats.protect_calls++;
            rc = x->ops.set_mem_type(x->ops.h, x->q_gfn[i], !(x->q_acc[i] & XENMEM_access_w));
            if (rc < 0 && !first)
                first = errno_to_ptmon(rc);
        }
        x->q_n = 0;
        return first;
    }
    x->stats.protect_calls++;
    rc = x->ops.set_mem_access_multi(x->ops.h, x->q_acc, x->q_gfn, (uint32_t)x->q_n);
    if (rc == 0) {
        x->q_n = 0;
        return 0;
    }
    /* One bad gfn must not sink the rest: one at a time, keeping what may work next time. */
    size_t keep = 0;
    for (size_t i = 0; i < x->q_n; i++) {
        x->stats.protect_calls++;
        rc = x->ops.set_mem_access_multi(x->ops.h, &x->q_acc[i], &x->q_gfn[i], 1);
        if (rc < 0 && !first)
            first = errno_to_ptmon(rc);
        if (rc < 0 && !refused_for_good(rc)) {
            x->q_gfn[keep] = x->q_gfn[i];
            x->q_acc[keep++] = x->q_acc[i];
        }
    }
    x->q_n = keep;
    return first;
}

/* (the pinned frames are distinct: appended, not searched, so that restoring n is O(n)) */
static void restore_one(void *ctx, struct xen_mapping *e)
{
    (void)queue_append(ctx, e->gfn, e->orig_access);
}

int xen_rights_restore_all(ptmon_xen *x)
{
    int rc;

    x->q_n = 0;
    xen_map_each_pinned(&x->map, restore_one, x);
    rc = xen_rights_flush(x);
    /* Last chance before the ring goes: Xen's HAP pool may have room again. */
    for (int tries = 0; tries < 3 && x->q_n; tries++)
        rc = xen_rights_flush(x);
    x->stats.protected_frames = 0;
    return rc;
}

int xen_rights_relax_once(ptmon_xen *x, uint64_t gfn)
{
    struct xen_mapping *e = xen_map_find(&x->map, gfn);
    if (!e || !e->pinned)
        return PTMON_ENOENT;
    return queue(x, gfn, e->orig_access);
}

static int apply_now(ptmon_xen *x, uint64_t gfn, uint8_t xa);

int xen_rights_reapply(ptmon_xen *x, uint64_t gfn)
{
    struct xen_mapping *e = xen_map_find(&x->map, gfn);
    if (!e || !e->pinned)
        return 0; /* released meanwhile: the engine's restore is what stands */
    /* in force before the engine re-reads the frame; else again at the next flush */
    if (apply_now(x, gfn, e->cur_access) < 0)
        (void)queue(x, gfn, e->cur_access);
    return 1;
}

int xen_rights_is_restricted(const ptmon_xen *x, uint64_t gfn)
{
    return xen_map_is_pinned(&x->map, gfn);
}

void xen_rights_repair_stale(ptmon_xen *x, uint64_t gfn)
{
    uint8_t xa;

    if (queue_find(x, gfn) < x->q_n)
        return; /* our own change of it is on its way: it is what stands */
    /* (a write in flight while we gave the frame back finds it writable already) */
    if (x->ops.get_mem_access(x->ops.h, gfn, &xa) < 0 || (rights_of(xa) & PTMON_ACCESS_W))
        return;
    if (queue_append(x, gfn, XENMEM_access_rwx) == 0)
        x->stats.stale_frames++;
}

/* ---- glue callbacks --------------------------------------------------------------------- */

/* The access Xen reports for a frame we do not hold, as the original to save and restore. One
 * that is write-protected was left by a monitor that died (Xen keeps p2m access when the ring
 * goes, and only one monitor can hold a domain): its original is Xen's default. */
static uint8_t unless_left_by_a_dead_monitor(ptmon_xen *x, uint8_t xa)
{
    if (rights_of(xa) & PTMON_ACCESS_W)
        return xa;
    x->stats.stale_frames++;
    return XENMEM_access_rwx;
}

/* The access a frame we do not hold stands at: a change of ours still queued for it (a frame
 * given back waits for the flush, and Xen still has our restriction until then: read from Xen,
 * it would look like a dead monitor's and be "restored" to rwx), else what Xen reports. */
static int standing_access(ptmon_xen *x, uint64_t gfn, uint8_t *xa)
{
    size_t i = queue_find(x, gfn);
    int rc;

    if (i < x->q_n) {
        *xa = x->q_acc[i];
        return 0;
    }
    rc = x->ops.get_mem_access(x->ops.h, gfn, xa);
    if (rc < 0)
        return errno_to_ptmon(rc);
    *xa = unless_left_by_a_dead_monitor(x, *xa);
    return 0;
}

int xen_read_gpa(ptmon_xen *x, uint64_t gpa, void *buf, size_t len)
{
    uint8_t *page;

    if (len == 0 || len > 4096 || (gpa & 0xfff) + len > 4096)
        return PTMON_EINVAL;
    page = xen_map_get(&x->map, gpa >> 12);
    if (!page)
        return PTMON_ERANGE;
    xen_load_bytes(buf, page + (gpa & 0xfff), len);
    return 0;
}

static int g_read_gpa(void *b, uint64_t gpa, void *buf, size_t len)
{
    return xen_read_gpa(b, gpa, buf, len);
}

static int g_get_access(void *b, uint64_t gfn, uint32_t *access)
{
    ptmon_xen *x = b;
    struct xen_mapping *e = xen_map_find(&x->map, gfn);
    uint8_t xa;
    int rc;

    if (!x->ring_up)
        return PTMON_EIO;
    if (e && e->pinned) { /* restricted by us: what we asked for (maybe not yet flushed) */
        *access = rights_of(e->cur_access) | ((uint32_t)e->cur_access + 1) << XEN_ACCESS_SHIFT;
        return 0;
    }
    if (x->mechanism == PTMON_XEN_MECH_IOREQ)
        xa = XENMEM_access_rwx; /* ordinary RAM (ram_rw): Xen has no query for the type */
    else {
        rc = standing_access(x, gfn, &xa);
        if (rc < 0)
            return rc;
    }
    x->last_get_gfn = gfn;
    x->last_get_xa = xa;
    *access = rights_of(xa) | ((uint32_t)xa + 1) << XEN_ACCESS_SHIFT;
    return 0;
}

/* The access a frame we do not hold has, to restore in the end: what get_access just read (a
 * dead monitor's write protection already replaced by Xen's default there), or Xen's word. */
static int original_access(ptmon_xen *x, uint64_t gfn, uint8_t *orig)
{
    int rc;

    if (x->mechanism == PTMON_XEN_MECH_IOREQ)
        *orig = XENMEM_access_rwx;
    else if (x->last_get_xa >= 0 && x->last_get_gfn == gfn)
        *orig = (uint8_t)x->last_get_xa;
    else if ((rc = standing_access(x, gfn, orig)) < 0)
        return rc;
    return 0;
}

/* A change that takes a right away, in Xen before we return, on its own: its result is its
 * own, and an older change of the frame still queued must not land after it. */
static int apply_now(ptmon_xen *x, uint64_t gfn, uint8_t xa)
{
    int rc;

    x->stats.protect_calls++;
    if (x->mechanism == PTMON_XEN_MECH_IOREQ)
        rc = x->ops.set_mem_type(x->ops.h, gfn, !(xa & XENMEM_access_w));
    else
        rc = x->ops.set_mem_access_multi(x->ops.h, &xa, &gfn, 1);
    if (rc < 0)
        return errno_to_ptmon(rc);
    queue_drop(x, gfn);
    return 0;
}

/* Apply @p xa to a frame: at once if it takes a right away from @p from, else at the flush. */
static int change_access(ptmon_xen *x, uint64_t gfn, uint8_t from, uint8_t xa)
{
    return takes_rights_away(from, xa) ? apply_now(x, gfn, xa) : queue(x, gfn, xa);
}

static int restrict_new(ptmon_xen *x, uint64_t gfn, uint8_t xa)
{
    struct xen_mapping *e;
    uint8_t orig;
    int rc = original_access(x, gfn, &orig);

    if (rc < 0)
        return rc;
    if (xa == orig)
        return 0; /* nothing to restrict */
    e = xen_map_pin(&x->map, gfn);
    if (!e)
        return PTMON_ENOMEM;
    rc = change_access(x, gfn, orig, xa);
    if (rc < 0) { /* Xen has the frame as it was: so do we */
        xen_map_unpin(&x->map, gfn);
        return rc;
    }
    e->orig_access = orig;
    e->cur_access = xa;
    x->last_get_xa = -1;
    x->stats.protected_frames++;
    tell_frame(x, gfn, 1, orig);
    return 0;
}

static int change_held(ptmon_xen *x, struct xen_mapping *e, uint8_t xa)
{
    int rc = change_access(x, e->gfn, e->cur_access, xa);

    if (rc < 0)
        return rc;
    e->cur_access = xa;
    if (xa == e->orig_access) { /* back to where it was: no longer ours */
        uint64_t gfn = e->gfn;
        xen_map_unpin(&x->map, gfn);
        x->stats.protected_frames--;
        tell_frame(x, gfn, 0, xa);
    }
    return 0;
}

static int g_set_access(void *b, uint64_t gfn, uint32_t access)
{
    ptmon_xen *x = b;
    struct xen_mapping *e = xen_map_find(&x->map, gfn);

    if (!x->ring_up)
        return PTMON_EIO;
    if (x->mechanism == PTMON_XEN_MECH_IOREQ &&
        (access & (PTMON_ACCESS_R | PTMON_ACCESS_X)) != (PTMON_ACCESS_R | PTMON_ACCESS_X))
        return PTMON_ENOTSUP; /* the ioreq type only intercepts writes */
    if (e && e->pinned)
        return change_held(x, e, xa_of(access));
    return restrict_new(x, gfn, xa_of(access));
}

static int g_set_access_batch(void *b, const uint64_t *gfns, const uint32_t *access, size_t n,
                              size_t *done)
{
    for (size_t i = 0; i < n; i++) {
        int rc = g_set_access(b, gfns[i], access[i]);
        if (rc < 0) {
            if (done)
                *done = i;
            return rc;
        }
    }
    if (done)
        *done = n;
    return 0;
}

static int g_emulate_write(void *b, uint32_t vcpu, uint64_t gpa, uint32_t size, const void *bytes,
                           void *written)
{
    ptmon_xen *x = b;
    struct xen_pending *p = &x->pend;
    uint8_t *page;

    if (size == 0 || size > 4096 || (gpa & 0xfff) + size > 4096)
        return PTMON_EINVAL;
    if (p->active && !p->stored && vcpu == p->vcpu && gpa == p->gpa && size == p->size &&
        (!bytes || memcmp(bytes, p->new_bytes, size) == 0))
        return xen_event_perform_pending(x, written);
    if (!bytes)
        return PTMON_ENOTSUP; /* only the event's own write can be performed without bytes */
    page = xen_map_get(&x->map, gpa >> 12);
    if (!page)
        return PTMON_ERANGE;
    xen_store_bytes(page + (gpa & 0xfff), bytes, size);
    if (written)
        xen_load_bytes(written, page + (gpa & 0xfff), size);
    return 0;
}

static int g_pause(void *b)
{
    ptmon_xen *x = b;
    int rc = x->ops.pause(x->ops.h);
    if (rc < 0)
        return PTMON_EIO;
    x->paused_by_us++; /* detach undoes what a crashed caller left paused */
    return 0;
}

static int g_resume(void *b)
{
    ptmon_xen *x = b;
    int rc;
    if (x->paused_by_us == 0)
        return PTMON_EINVAL; /* never unpause what we did not pause */
    rc = x->ops.unpause(x->ops.h);
    if (rc < 0)
        return PTMON_EIO;
    x->paused_by_us--;
    return 0;
}

static int g_flush(void *b)
{
    return xen_rights_flush(b);
}

static int g_get_vcpu_regs(void *b, uint32_t vcpu, ptmon_vcpu_regs *regs)
{
    ptmon_xen *x = b;
    int rc;

    if (x->cur && x->cur->vcpu_id == vcpu) { /* the faulting vCPU: the event's snapshot */
        const struct vm_event_regs_x86 *r = &x->cur->data.regs.x86;
        regs->cr0 = r->cr0;
        regs->cr3 = r->cr3;
        regs->cr4 = r->cr4;
        regs->efer = r->msr_efer;
        return 0;
    }
    if (vcpu >= x->nvcpus)
        return PTMON_EINVAL;
    rc = x->ops.get_vcpu_regs(x->ops.h, vcpu, regs);
    return rc < 0 ? PTMON_EIO : 0;
}

/* The guest's MAXPHYADDR as its CPUID reports it (Xen 4.17 caps the policy's paddr_bits at what
 * HAP can map), 36 when the policy has no leaf 0x80000008 (SDM: the width without that leaf). */
static int g_get_maxphyaddr(void *b, unsigned *bits)
{
    ptmon_xen *x = b;
    uint32_t max_ext[4], leaf[4];
    int rc;

    if (!x->ops.cpuid_policy)
        return PTMON_ENOTSUP;
    rc = x->ops.cpuid_policy(x->ops.h, 0x80000000u, 0xffffffffu, max_ext);
    if (rc == -ENOENT || (rc == 0 && max_ext[0] < 0x80000008u)) {
        *bits = 36;
        return 0;
    }
    if (rc == 0)
        rc = x->ops.cpuid_policy(x->ops.h, 0x80000008u, 0xffffffffu, leaf);
    if (rc < 0)
        return PTMON_EIO;
    *bits = leaf[0] & 0xff;
    return 0;
}

void xen_glue_fill(ptmon_xen *x)
{
    ptmon_glue g = PTMON_GLUE_INIT;

    g.backend = x;
    g.read_gpa = g_read_gpa;
    g.get_access = g_get_access;
    g.set_access = g_set_access;
    g.set_access_batch = g_set_access_batch;
    g.emulate_write = g_emulate_write;
    g.pause = g_pause;
    g.resume = g_resume;
    g.flush = g_flush;
    g.get_vcpu_regs = g_get_vcpu_regs;
    g.get_maxphyaddr = g_get_maxphyaddr;
    x->glue = g;
    x->last_get_xa = -1;
}
