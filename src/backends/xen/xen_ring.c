/*
 * The vm_event ring, back end side. Owns: draining requests (copy out of the slot before any
 * response is written, as requests and responses share slots), writing responses, applying the
 * batched rights changes BEFORE the responses are pushed (a re-executed instruction must see
 * them), one notification per batch, the per-event latency histogram, and the answer to the
 * request in progress when an emergency detach cuts its handling short; opening and closing a
 * monitor ring (for the attach and the reset).
 * May call: xen_event.c, xen_glue.c (rights flush), the xen ops (notify).
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "xen_internal.h"

int xen_vm_ring_open(const struct xen_ops *ops, struct xen_vm_ring *r, int *enabled)
{
    int rc = ops->monitor_enable(ops->h, &r->page, &r->remote_port);

    *enabled = rc == 0;
    if (rc < 0 || !r->page) {
        r->page = NULL;
        return rc == -EBUSY ? PTMON_EBUSY : rc == -EOPNOTSUPP ? PTMON_ENOTSUP : PTMON_EIO;
    }
    if (ops->evtchn_bind(ops->h, r->remote_port, &r->local_port) < 0)
        return PTMON_EIO;
    r->bound = 1;
    SHARED_RING_INIT((vm_event_sring_t *)r->page);
    BACK_RING_INIT(&r->back, (vm_event_sring_t *)r->page, XC_PAGE_SIZE);
    return 0;
}

void xen_vm_ring_close(const struct xen_ops *ops, struct xen_vm_ring *r)
{
    if (r->page) {
        ops->unmap_ring(ops->h, r->page);
        r->page = NULL;
    }
    if (r->bound) {
        ops->evtchn_unbind(ops->h, r->local_port);
        r->bound = 0;
    }
}

uint64_t xen_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

void xen_account_event(ptmon_xen *x, int kind, uint32_t vcpu, uint64_t gfn, uint64_t ns)
{
    unsigned b = 0;
    uint64_t q = ns / 250;
    while (q > 1 && b < PTMON_XEN_LATENCY_BUCKETS - 1) {
        q >>= 1;
        b++;
    }
    x->stats.events[kind]++;
    x->stats.latency[b]++;
    if (x->event_fn)
        x->event_fn(x->event_ctx, (enum ptmon_xen_event_kind)kind, vcpu, gfn, ns);
}

int xen_ring_drain(ptmon_xen *x, int use_engine)
{
    vm_event_back_ring_t *br = &x->ring.back;
    /* Bounded: Xen may keep producing while we answer; push what we have every few rounds. */
    unsigned limit = 4 * RING_SIZE(br);
    int n = 0;

    if (!x->ring_up)
        return 0;
    while ((unsigned)n < limit && RING_HAS_UNCONSUMED_REQUESTS(br)) {
        uint64_t t0 = xen_now_ns();
        vm_event_request_t req;
        vm_event_response_t rsp;
        int kind;

        memcpy(&req, RING_GET_REQUEST(br, br->req_cons), sizeof(req));
        br->req_cons++;
        br->sring->req_event = br->req_cons + 1;
        x->inflight = &req; /* consumed: from here on, an emergency detach must answer it */
        if (use_engine)
            kind = xen_event_handle(x, &req, &rsp);
        else {
            xen_event_answer_plain(&req, &rsp);
            kind = PTMON_XEN_EV_OTHER;
        }
        if (!x->ring_up) /* an emergency detach ran meanwhile and answered this request */
            return n;
        memcpy(RING_GET_RESPONSE(br, br->rsp_prod_pvt), &rsp, sizeof(rsp));
        br->rsp_prod_pvt++;
        x->inflight = NULL;
        xen_account_event(x, kind, req.vcpu_id,
                          req.reason == VM_EVENT_REASON_MEM_ACCESS ? req.u.mem_access.gfn : 0,
                          xen_now_ns() - t0);
        n++;
    }
    if (n) {
        (void)xen_rights_flush(x); /* before the push: the answered vCPUs must see them */
        xen_ring_push(x);
    }
    return n;
}

void xen_ring_push(ptmon_xen *x)
{
    RING_PUSH_RESPONSES(&x->ring.back);
    (void)x->ops.evtchn_notify(x->ops.h, x->ring.local_port);
    x->stats.batches++;
}

void xen_ring_answer_current(ptmon_xen *x)
{
    const vm_event_request_t *req = x->inflight;
    vm_event_response_t rsp;

    if (!req || !x->ring_up)
        return;
    xen_event_answer_plain(req, &rsp);
    if (x->pend.active && x->pend.stored) {
        /* we made its store already: it must not run again, it resumes after it */
        rsp.data.regs.x86 = x->pend.cpu.r;
        rsp.flags |= VM_EVENT_FLAG_SET_REGISTERS;
    }
    memcpy(RING_GET_RESPONSE(&x->ring.back, x->ring.back.rsp_prod_pvt), &rsp, sizeof(rsp));
    x->ring.back.rsp_prod_pvt++;
    x->inflight = NULL;
}
