/*
 * The ioreq-server write-interception mechanism (any HAP host, AMD included). Owns: the ioreq
 * server's shared page and per-vCPU event channels, and handling one ioreq: a write into a
 * frame typed HVMMEM_ioreq_server arrives decoded (address, size, data or a pointer to it,
 * count, direction flag); the engine gets it PRE-write, the write is performed through our
 * mapping when allowed, and the ioreq is completed (IORESP_READY + notify).
 * Unlike mem_access, the guest cannot re-execute: an ioreq is always completed by us, so even
 * during detach the writes are performed.
 * May call: the engine (ptmon_handle_event), xen_glue.c (reads, rights flush), xen_store.c,
 * the xen ops.
 */
#include <stdlib.h>
#include <string.h>

#include "xen_internal.h"

#include <xen/hvm/ioreq.h>

#define IOREQ_SLOTS (4096 / sizeof(ioreq_t))

int xen_ioreq_setup(ptmon_xen *x)
{
    shared_iopage_t *sp;
    int rc;

    if (!x->ops.ioreq_create || x->nvcpus > IOREQ_SLOTS)
        return PTMON_ENOTSUP;
    x->ioports = calloc(x->nvcpus, sizeof(*x->ioports));
    if (!x->ioports)
        return PTMON_ENOMEM;
    rc = x->ops.ioreq_create(x->ops.h, &x->iopage);
    if (rc < 0 || !x->iopage) {
        x->iopage = NULL;
        return PTMON_ENOTSUP;
    }
    sp = x->iopage;
    for (uint32_t v = 0; v < x->nvcpus; v++) {
        uint32_t remote = __atomic_load_n(&sp->vcpu_ioreq[v].vp_eport, __ATOMIC_ACQUIRE);
        if (x->ops.evtchn_bind(x->ops.h, remote, &x->ioports[v]) < 0) {
            for (uint32_t u = 0; u < v; u++)
                x->ops.evtchn_unbind(x->ops.h, x->ioports[u]);
            x->ops.ioreq_destroy(x->ops.h, x->iopage);
            x->iopage = NULL;
            return PTMON_EIO;
        }
    }
    x->ring_up = 1; /* rights may be changed from now on */
    return 0;
}

void xen_ioreq_teardown(ptmon_xen *x)
{
    if (!x->iopage)
        return;
    for (uint32_t v = 0; v < x->nvcpus; v++)
        x->ops.evtchn_unbind(x->ops.h, x->ioports[v]);
    x->ops.ioreq_destroy(x->ops.h, x->iopage);
    x->iopage = NULL;
    x->ring_up = 0;
}

/* One element of a write: engine (if asked), then the store unless denied. */
static int write_one(ptmon_xen *x, uint32_t vcpu, uint64_t gpa, const uint8_t *bytes, uint32_t size,
                     int use_engine)
{
    int action = PTMON_ACTION_ALLOW;
    uint8_t *page;

    if (use_engine && x->pm && xen_rights_is_restricted(x, gpa >> 12)) {
        ptmon_mem_event ev = {vcpu, PTMON_ACCESS_W, gpa, size, PTMON_DELIVERY_PRE, bytes};
        action = ptmon_handle_event(x->pm, &ev);
    }
    if (action == PTMON_ACTION_DENY)
        return PTMON_XEN_EV_DENIED;
    if (action != PTMON_ACTION_EMULATED) {
        page = xen_map_get(&x->map, gpa >> 12);
        if (!page)
            return PTMON_XEN_EV_OTHER;
        xen_store_bytes(page + (gpa & 0xfff), bytes, size);
    }
    return PTMON_XEN_EV_WRITE;
}

/* Handle a copied ioreq; @p data_out receives the data to return for reads. */
static int handle(ptmon_xen *x, uint32_t vcpu, const ioreq_t *rq, int use_engine,
                  uint64_t *data_out)
{
    uint32_t size = rq->size, count = rq->count ? rq->count : 1;
    int kind = PTMON_XEN_EV_OTHER;

    *data_out = rq->data;
    if (rq->type != IOREQ_TYPE_COPY || size == 0 || size > 8 || (size & (size - 1)))
        return PTMON_XEN_EV_OTHER; /* not ours: complete untouched */
    if (count > 4096)
        return PTMON_XEN_EV_OTHER; /* a rep beyond one page of elements: refuse the work */
    for (uint32_t i = 0; i < count; i++) {
        int64_t step = (int64_t)i * size * (rq->df ? -1 : 1);
        uint64_t gpa = rq->addr + (uint64_t)step;
        uint8_t buf[8];
        if ((gpa & 0xfff) + size > 4096)
            return PTMON_XEN_EV_OTHER; /* crosses a frame: not a page-table write */
        if (rq->dir == IOREQ_READ) {   /* only writes are claimed; serve a stray read anyway */
            uint64_t v = 0;
            if (count != 1 || rq->data_is_ptr || xen_read_gpa(x, gpa, &v, size) < 0)
                return PTMON_XEN_EV_OTHER;
            *data_out = v;
            return PTMON_XEN_EV_READ_EXEC;
        }
        if (rq->data_is_ptr) { /* rep movs/stos: the source is guest memory */
            uint64_t src = rq->data + (uint64_t)step;
            if ((src & 0xfff) + size > 4096 || xen_read_gpa(x, src, buf, size) < 0)
                return PTMON_XEN_EV_OTHER;
        } else
            memcpy(buf, &rq->data, size);
        kind = write_one(x, vcpu, gpa, buf, size, use_engine);
    }
    return kind;
}

int xen_ioreq_drain(ptmon_xen *x, int use_engine)
{
    shared_iopage_t *sp = x->iopage;
    int n = 0;

    if (!sp)
        return 0;
    for (uint32_t v = 0; v < x->nvcpus; v++) {
        volatile ioreq_t *slot = &sp->vcpu_ioreq[v];
        ioreq_t rq;
        uint64_t t0, data;
        int kind;

        if (slot->state != STATE_IOREQ_READY) /* state is a bit-field: a volatile read */
            continue;
        t0 = xen_now_ns();
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        memcpy(&rq, (const void *)slot, sizeof(rq)); /* copy once, then only the copy is read */
        slot->state = STATE_IOREQ_INPROCESS;
        kind = handle(x, v, &rq, use_engine, &data);
        (void)xen_rights_flush(x); /* before completing: the vCPU resumes right after */
        slot->data = data;
        __atomic_thread_fence(__ATOMIC_RELEASE);
        slot->state = STATE_IORESP_READY;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        (void)x->ops.evtchn_notify(x->ops.h, x->ioports[v]);
        xen_account_event(x, kind, v, rq.addr >> 12, xen_now_ns() - t0);
        n++;
    }
    if (n)
        x->stats.batches++;
    return n;
}
