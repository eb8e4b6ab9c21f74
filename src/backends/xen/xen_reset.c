/*
 * xen_reset.c — recovery from a monitor that died (ptmon_xen_reset): the vCPUs it left paused
 * run again, its ring goes, the frames it restricted get their rights back.
 *
 * Owns: nothing lasting (a ring of its own for the length of the call). Calls the xen ops only.
 *
 * Why this works on Xen 4.17. A monitor that dies leaves its ring enabled: the next attach gets
 * EBUSY. The vCPUs it left waiting for an answer stay paused (vm_event_vcpu_pause) even once the
 * ring is disabled, and nobody can answer on that ring: xc_monitor_enable took its page out of
 * the guest's physmap. A new ring can answer for it: vm_event_resume() applies a response's
 * VCPU_PAUSED only to a vCPU whose vm_event pause count is not zero, so one response per vCPU
 * unpauses exactly the vCPUs some monitor left paused and nothing else. p2m access outlives the
 * ring, and Xen answers access queries only while a ring exists: the rights are given back
 * through the new ring. The domain stays paused throughout, so no request can land in the new
 * ring while it carries responses nobody asked for.
 */
#include <errno.h>
#include <string.h>

#include "xen_internal.h"

#define BATCH 256

/* Frames above what the domain holds, scanned when no list is given (libxl's HVM layout puts RAM
 * at the bottom; the VGA hole and special pages below that top are skipped as not RAM). */
#define SCAN_SLACK 1024

struct reset {
    const struct xen_ops *ops;
    ptmon_xen_reset_result *res;
    struct xen_vm_ring ring;
    int enabled;
    uint64_t gfns[BATCH];
    uint8_t access[BATCH];
    uint32_t queued;
};

/* Take the ring from a monitor that is gone (EBUSY: one is enabled), then open ours. Xen refuses
 * to disable a ring while vCPUs wait for room in it (more requests than its 8 slots), and only
 * answers on that ring would wake them: then the domain cannot be recovered (PTMON_EBUSY). */
static int open_ring(struct reset *r)
{
    int rc = xen_vm_ring_open(r->ops, &r->ring, &r->enabled);

    if (rc != PTMON_EBUSY)
        return rc;
    r->res->stale_monitor = 1;
    rc = r->ops->monitor_disable(r->ops->h);
    if (rc < 0)
        return rc == -EBUSY ? PTMON_EBUSY : PTMON_EIO;
    return xen_vm_ring_open(r->ops, &r->ring, &r->enabled);
}

static void close_ring(struct reset *r)
{
    xen_vm_ring_close(r->ops, &r->ring);
    if (r->enabled)
        (void)r->ops->monitor_disable(r->ops->h);
}

static void flush_rights(struct reset *r)
{
    if (!r->queued)
        return;
    if (r->ops->set_mem_access_multi(r->ops->h, r->access, r->gfns, r->queued) == 0) {
        r->res->frames_restored += r->queued;
    } else { /* one at a time: one bad gfn must not keep the others restricted */
        for (uint32_t i = 0; i < r->queued; i++) {
            if (r->ops->set_mem_access_multi(r->ops->h, &r->access[i], &r->gfns[i], 1) == 0)
                r->res->frames_restored++;
            else
                r->res->frames_failed++;
        }
    }
    r->queued = 0;
}

/* Give @p gfn the access @p want (a XENMEM_access_* value) if it lacks a right of it. */
static void restore_frame(struct reset *r, uint64_t gfn, uint8_t want)
{
    uint8_t xa;

    if (r->ops->get_mem_access(r->ops->h, gfn, &xa) < 0)
        return; /* not RAM */
    r->res->frames_checked++;
    if (xa > XENMEM_access_rwx || (want & ~xa) == 0)
        return; /* it has every right it should have (or a type only Xen's own code sets) */
    r->gfns[r->queued] = gfn;
    r->access[r->queued++] = want;
    if (r->queued == BATCH)
        flush_rights(r);
}

/* One response per vCPU, pushed and delivered a ring's worth at a time: the notification runs
 * vm_event_resume() in our hypercall, so each batch is consumed before the next is written. */
static int unpause_vcpus(struct reset *r, uint32_t nvcpus)
{
    uint32_t v = 0;

    while (v < nvcpus) {
        for (uint32_t n = 0; n < RING_SIZE(&r->ring.back) && v < nvcpus; n++, v++) {
            vm_event_response_t *rsp = RING_GET_RESPONSE(&r->ring.back, r->ring.back.rsp_prod_pvt);
            memset(rsp, 0, sizeof(*rsp));
            rsp->version = VM_EVENT_INTERFACE_VERSION;
            rsp->vcpu_id = v;
            rsp->flags = VM_EVENT_FLAG_VCPU_PAUSED;
            r->ring.back.rsp_prod_pvt++;
        }
        RING_PUSH_RESPONSES(&r->ring.back);
        if (r->ops->evtchn_notify(r->ops->h, r->ring.local_port) < 0)
            return PTMON_EIO;
        r->res->vcpus = v;
    }
    return 0;
}

static int reset_steps(struct reset *r, uint32_t nvcpus, const uint64_t *gfns,
                       const uint32_t *access, size_t n, uint64_t tot_pages)
{
    int rc = open_ring(r);

    if (rc < 0)
        return rc;
    /* rights first: an unpaused vCPU re-executes its write, which must not fault again */
    if (gfns) {
        for (size_t i = 0; i < n; i++)
            restore_frame(r, gfns[i], (uint8_t)(access[i] & PTMON_ACCESS_RWX));
    } else {
        for (uint64_t gfn = 0; gfn < tot_pages + SCAN_SLACK; gfn++)
            restore_frame(r, gfn, XENMEM_access_rwx);
    }
    flush_rights(r);
    return unpause_vcpus(r, nvcpus);
}

int xen_reset_ops(uint32_t domid, const struct xen_ops *ops, const uint64_t *gfns,
                  const uint32_t *access, size_t n, ptmon_xen_reset_result *res)
{
    struct xen_dominfo info;
    struct reset r;
    int rc;

    memset(res, 0, sizeof(*res));
    memset(&r, 0, sizeof(r));
    r.ops = ops;
    r.res = res;
    rc = ops->vm_event_version(ops->h);
    if (rc != VM_EVENT_INTERFACE_VERSION)
        return rc < 0 ? PTMON_EIO : PTMON_EVERSION; /* our responses would be dropped */
    memset(&info, 0, sizeof(info));
    if (ops->domain_info(ops->h, &info) < 0 || info.domid != domid || info.dying)
        return PTMON_ENOENT;
    res->domain_paused = info.paused != 0; /* (before our own pause) */
    rc = ops->pause(ops->h);
    if (rc < 0)
        return rc == -ESRCH ? PTMON_ENOENT : PTMON_EIO;
    rc = reset_steps(&r, info.max_vcpu_id + 1, gfns, access, n, info.tot_pages);
    close_ring(&r);
    if (ops->unpause(ops->h) < 0 && rc == 0)
        rc = PTMON_EIO;
    return rc;
}

int ptmon_xen_reset(uint32_t domid, const uint64_t *gfns, const uint32_t *access, size_t n,
                    ptmon_xen_reset_result *res)
{
    struct xen_ops ops;
    int rc;

    if (!res || (n && (!gfns || !access)))
        return PTMON_EINVAL;
    rc = xen_ops_real_open(domid, &ops);
    if (rc < 0)
        return rc;
    rc = xen_reset_ops(domid, &ops, gfns, access, n, res);
    ops.close(ops.h);
    return rc;
}
