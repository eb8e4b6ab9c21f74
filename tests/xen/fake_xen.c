/*
 * The fake Xen (see fake_xen.h). Plays the hypervisor side of every Xen entry point the backend
 * uses, in ordinary memory. Test-only code: checks its own inputs and aborts on misuse.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake_xen.h" /* first: xenctrl.h sets up the Xen headers */

#include <xen/hvm/ioreq.h>
#include <xen/memory.h>

static struct fake_hv *H(void *h)
{
    return h;
}

static int f_version(void *h)
{
    return H(h)->version;
}

static int f_info(void *h, struct xen_dominfo *out)
{
    *out = H(h)->info;
    return 0;
}

static int f_enable(void *h, void **ring, uint32_t *port)
{
    struct fake_hv *hv = H(h);
    if (hv->enable_rc)
        return hv->enable_rc;
    if (hv->monitor_on)
        return -EBUSY;
    free(hv->ring); /* a previous attach's ring (kept for inspection until now) */
    hv->ring = aligned_alloc(4096, 4096);
    if (!hv->ring)
        return -ENOMEM;
    memset(hv->ring, 0, 4096);
    FRONT_RING_INIT(&hv->front, (vm_event_sring_t *)hv->ring, 4096);
    hv->monitor_on = 1;
    *ring = hv->ring;
    *port = 42;
    return 0;
}

static int f_disable(void *h)
{
    struct fake_hv *hv = H(h);
    hv->disable_calls++;
    if (hv->disable_ebusy > 0) {
        hv->disable_ebusy--;
        return -EBUSY;
    }
    for (uint64_t g = 0; hv->initial_access && g < hv->nframes; g++)
        if (hv->access[g] != hv->initial_access[g])
            hv->rights_at_disable_wrong++;
    hv->unconsumed_at_disable += (unsigned)fake_hv_unconsumed_requests(hv);
    hv->monitor_on = 0;
    return 0;
}

static void f_unmap_ring(void *h, void *ring)
{
    struct fake_hv *hv = H(h);
    if (ring == hv->ring) { /* kept until destroy: a test may still look at it */
    }
}

static int f_bind(void *h, uint32_t remote, uint32_t *local)
{
    if (remote == 42) {
        H(h)->bound = 1;
        *local = 7;
        return 0;
    }
    if (remote < 100 || remote >= 100 + H(h)->nvcpus)
        return -EINVAL;
    H(h)->bound++;
    *local = remote + 1000;
    return 0;
}

static void f_unbind(void *h, uint32_t local)
{
    if (local == 7)
        H(h)->bound = 0;
    else
        H(h)->bound--;
}

static int f_wait(void *h, int timeout_ms)
{
    struct fake_hv *hv = H(h);
    int p;
    (void)timeout_ms;
    if (hv->on_wait)
        hv->on_wait(hv, hv->on_wait_ctx);
    p = hv->pending;
    hv->pending = 0;
    return p;
}

/* What Xen's vm_event_resume() does with responses when the backend notifies it (only with
 * hv->resume_on_notify; else the test reads them with fake_hv_take): a response's VCPU_PAUSED
 * unpauses a vCPU only while some monitor holds it paused. */
static void resume_responses(struct fake_hv *hv)
{
    vm_event_response_t rsp;

    while (fake_hv_take(hv, &rsp)) {
        if (rsp.version != VM_EVENT_INTERFACE_VERSION || rsp.vcpu_id >= hv->nvcpus)
            continue;
        if (hv->vm_paused[rsp.vcpu_id] && (rsp.flags & VM_EVENT_FLAG_VCPU_PAUSED)) {
            hv->vm_paused[rsp.vcpu_id]--;
            hv->unpaused++;
        }
    }
}

static int f_notify(void *h, uint32_t port)
{
    if (port != 7 && (port < 1100 || port >= 1100 + H(h)->nvcpus))
        return -EINVAL;
    H(h)->notify++;
    H(h)->last_notify_port = port;
    if (H(h)->resume_on_notify && port == 7)
        resume_responses(H(h));
    return 0;
}

static int f_required(void *h, int r)
{
    H(h)->access_required = r;
    return 0;
}

static int f_gpt(void *h, int s)
{
    if (H(h)->gpt_suppressed == s)
        return -EEXIST;
    H(h)->gpt_suppressed = s;
    return 0;
}

static int f_emul(void *h, int on)
{
    H(h)->emul_unimpl = on;
    return 0;
}

static int f_cpuid(void *h, int on)
{
    H(h)->cpuid_on = on;
    return 0;
}

static int f_set_access(void *h, const uint8_t *acc, const uint64_t *gfns, uint32_t n)
{
    struct fake_hv *hv = H(h);
    hv->set_access_calls++;
    if (!hv->monitor_on)
        return -ENODEV; /* as Xen: no mem_access without the ring */
    if (hv->set_access_fail > 0) {
        hv->set_access_fail--;
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++)
        if (gfns[i] >= hv->nframes || acc[i] > XENMEM_access_default)
            return -EINVAL;
    for (uint32_t i = 0; i < n; i++)
        hv->access[gfns[i]] = acc[i];
    hv->set_access_gfns += n;
    return 0;
}

static int f_get_access(void *h, uint64_t gfn, uint8_t *acc)
{
    struct fake_hv *hv = H(h);
    if (gfn == 0 && hv->probe_rc)
        return hv->probe_rc;
    if (!hv->monitor_on)
        return -ENODEV;
    if (gfn >= hv->nframes)
        return -ESRCH;
    *acc = hv->access[gfn];
    return 0;
}

static int f_pause(void *h)
{
    H(h)->pause_depth++;
    H(h)->pause_calls++;
    return 0;
}

static int f_unpause(void *h)
{
    H(h)->pause_depth--;
    H(h)->unpause_calls++;
    return 0;
}

static int f_map(void *h, const uint64_t *gfns, size_t n, void **pages, void **region)
{
    struct fake_hv *hv = H(h);
    size_t good = 0;
    hv->map_calls++;
    for (size_t i = 0; i < n; i++) {
        pages[i] = gfns[i] < hv->nframes ? hv->ram + gfns[i] * 4096 : NULL;
        good += pages[i] != NULL;
    }
    if (!good)
        return -ENOENT;
    hv->regions_out++;
    *region = hv;
    return 0;
}

static void f_unmap(void *h, void *region, size_t n)
{
    (void)region;
    (void)n;
    H(h)->regions_out--;
}

static int f_regs(void *h, uint32_t vcpu, ptmon_vcpu_regs *regs)
{
    if (vcpu >= FHV_MAX_VCPUS)
        return -EINVAL;
    *regs = H(h)->vregs[vcpu];
    return 0;
}

static int f_xmm(void *h, uint32_t vcpu, unsigned i, uint8_t out[16])
{
    if (vcpu >= FHV_MAX_VCPUS || i > 15)
        return -EINVAL;
    memcpy(out, H(h)->xmm[vcpu][i], 16);
    return 0;
}

/* A policy with extended leaves up to 0x80000008 and the width in hv->maxphyaddr; with
 * hv->max_ext_leaf set below that, the width leaf is absent. */
static int f_cpuid_policy(void *h, uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
    struct fake_hv *hv = H(h);
    if (hv->cpuid_policy_rc)
        return hv->cpuid_policy_rc;
    memset(out, 0, 4 * sizeof(out[0]));
    if (subleaf != 0xffffffffu)
        return -ENOENT;
    if (leaf == 0x80000000u) {
        out[0] = hv->max_ext_leaf;
        return 0;
    }
    if (leaf == 0x80000008u && hv->max_ext_leaf >= leaf) {
        out[0] = hv->maxphyaddr | (48u << 8); /* linear-address width in EAX[15:8] */
        return 0;
    }
    return -ENOENT;
}

static void f_close(void *h)
{
    (void)h;
}

static int f_ioreq_create(void *h, void **iopage)
{
    struct fake_hv *hv = H(h);
    shared_iopage_t *sp;
    if (hv->ioreq_rc)
        return hv->ioreq_rc;
    free(hv->iopage);
    hv->iopage = aligned_alloc(4096, 4096);
    if (!hv->iopage)
        abort();
    memset(hv->iopage, 0, 4096);
    sp = hv->iopage;
    for (uint32_t v = 0; v < hv->nvcpus; v++)
        sp->vcpu_ioreq[v].vp_eport = 100 + v;
    hv->ioreq_on = 1;
    *iopage = hv->iopage;
    return 0;
}

static void f_ioreq_destroy(void *h, void *iopage)
{
    struct fake_hv *hv = H(h);
    if (iopage != hv->iopage)
        abort();
    hv->ioreq_on = 0;
}

static int f_set_mem_type(void *h, uint64_t gfn, int ioreq)
{
    struct fake_hv *hv = H(h);
    hv->set_access_calls++;
    if (!hv->ioreq_on)
        return -ENOENT;
    if (gfn >= hv->nframes)
        return -EINVAL;
    hv->mtype[gfn] = (uint8_t)ioreq;
    return 0;
}

void fake_hv_ioreq(struct fake_hv *hv, uint32_t vcpu, uint64_t addr, uint32_t size, uint64_t data,
                   uint32_t count, int data_is_ptr, int dir, int df)
{
    shared_iopage_t *sp = hv->iopage;
    ioreq_t *rq = &sp->vcpu_ioreq[vcpu];
    rq->addr = addr;
    rq->size = size;
    rq->data = data;
    rq->count = count;
    rq->data_is_ptr = data_is_ptr & 1;
    rq->dir = dir & 1;
    rq->df = df & 1;
    rq->type = IOREQ_TYPE_COPY;
    rq->state = STATE_IOREQ_READY;
    hv->pending = 1;
}

unsigned fake_hv_ioreq_state(const struct fake_hv *hv, uint32_t vcpu)
{
    const shared_iopage_t *sp = hv->iopage;
    return sp->vcpu_ioreq[vcpu].state;
}

uint64_t fake_hv_ioreq_data(const struct fake_hv *hv, uint32_t vcpu)
{
    const shared_iopage_t *sp = hv->iopage;
    return sp->vcpu_ioreq[vcpu].data;
}

struct fake_hv *fake_hv_create(uint64_t nframes, uint32_t nvcpus)
{
    struct fake_hv *hv = calloc(1, sizeof(*hv));
    if (!hv)
        abort();
    hv->nframes = nframes;
    hv->ram = aligned_alloc(4096, nframes * 4096);
    hv->access = malloc(nframes);
    hv->mtype = calloc(nframes, 1);
    hv->nvcpus = nvcpus;
    if (!hv->ram || !hv->access || !hv->mtype)
        abort();
    memset(hv->ram, 0, nframes * 4096);
    memset(hv->access, XENMEM_access_rwx, nframes);
    hv->next_free = 1; /* frame 0 stays unused (the probe reads it) */
    hv->version = VM_EVENT_INTERFACE_VERSION;
    hv->info.domid = 5;
    hv->info.hvm = hv->info.hap = 1;
    hv->info.max_vcpu_id = nvcpus - 1;
    hv->info.tot_pages = nframes;
    hv->access_required = -1;
    hv->maxphyaddr = 39; /* not 52: a width the backend must have asked for */
    hv->max_ext_leaf = 0x80000008u;
    for (unsigned v = 0; v < FHV_MAX_VCPUS; v++) {
        hv->vregs[v].cr0 = 0x80000011;
        hv->vregs[v].cr4 = 0x20;
        hv->vregs[v].efer = 0x500;
    }
    hv->ops = (struct xen_ops){hv,
                               f_version,
                               f_info,
                               f_enable,
                               f_disable,
                               f_unmap_ring,
                               f_bind,
                               f_unbind,
                               f_wait,
                               f_notify,
                               f_required,
                               f_gpt,
                               f_emul,
                               f_cpuid,
                               f_set_access,
                               f_get_access,
                               f_pause,
                               f_unpause,
                               f_map,
                               f_unmap,
                               f_regs,
                               f_xmm,
                               f_cpuid_policy,
                               f_close,
                               f_ioreq_create,
                               f_ioreq_destroy,
                               f_set_mem_type};
    return hv;
}

void fake_hv_destroy(struct fake_hv *hv)
{
    if (!hv)
        return;
    free(hv->ring);
    free(hv->ram);
    free(hv->access);
    free(hv->mtype);
    free(hv->iopage);
    free(hv->initial_access);
    free(hv);
}

void fake_hv_snapshot(struct fake_hv *hv)
{
    free(hv->initial_access);
    hv->initial_access = malloc(hv->nframes);
    if (!hv->initial_access)
        abort();
    memcpy(hv->initial_access, hv->access, hv->nframes);
}

int fake_hv_access_unchanged(const struct fake_hv *hv)
{
    for (uint64_t g = 0; g < hv->nframes; g++)
        if (hv->mtype[g])
            return 0;
    return hv->initial_access && memcmp(hv->initial_access, hv->access, hv->nframes) == 0;
}

int fake_hv_post(struct fake_hv *hv, const vm_event_request_t *req)
{
    if (RING_FULL(&hv->front))
        return -1;
    memcpy(RING_GET_REQUEST(&hv->front, hv->front.req_prod_pvt), req, sizeof(*req));
    hv->front.req_prod_pvt++;
    RING_PUSH_REQUESTS(&hv->front);
    hv->pending = 1;
    return 0;
}

int fake_hv_take(struct fake_hv *hv, vm_event_response_t *rsp)
{
    if (!RING_HAS_UNCONSUMED_RESPONSES(&hv->front))
        return 0;
    memcpy(rsp, RING_GET_RESPONSE(&hv->front, hv->front.rsp_cons), sizeof(*rsp));
    hv->front.rsp_cons++;
    return 1;
}

int fake_hv_unconsumed_requests(const struct fake_hv *hv)
{
    const vm_event_sring_t *s = hv->ring;
    return s ? (int)(s->req_prod - s->rsp_prod) : 0;
}

uint64_t fake_hv_alloc(struct fake_hv *hv)
{
    if (hv->next_free >= hv->nframes)
        abort();
    return hv->next_free++ << 12;
}

uint64_t fake_hv_new_root(struct fake_hv *hv)
{
    return fake_hv_alloc(hv);
}

uint64_t fake_hv_get64(const struct fake_hv *hv, uint64_t gpa)
{
    uint64_t v;
    memcpy(&v, hv->ram + gpa, 8);
    return v;
}

void fake_hv_set64(struct fake_hv *hv, uint64_t gpa, uint64_t v)
{
    memcpy(hv->ram + gpa, &v, 8);
}

void fake_hv_poke(struct fake_hv *hv, uint64_t gpa, const void *buf, size_t len)
{
    memcpy(hv->ram + gpa, buf, len);
}

uint64_t fake_hv_pte_gpa(struct fake_hv *hv, uint64_t cr3, uint64_t va, unsigned level)
{
    uint64_t table = cr3 & ~0xfffull;
    for (unsigned l = 4;; l--) {
        uint64_t slot = table + ((va >> (12 + 9 * (l - 1))) & 511) * 8;
        if (l == level)
            return slot;
        table = fake_hv_get64(hv, slot) & 0x000ffffffffff000ull;
        if (!table)
            return 0;
    }
}

uint64_t fake_hv_map(struct fake_hv *hv, uint64_t cr3, uint64_t va, uint64_t gpa)
{
    uint64_t table = cr3 & ~0xfffull;
    for (unsigned l = 4; l > 1; l--) {
        uint64_t slot = table + ((va >> (12 + 9 * (l - 1))) & 511) * 8;
        uint64_t e = fake_hv_get64(hv, slot);
        if (!(e & 1)) {
            e = fake_hv_alloc(hv) | 0x7;
            fake_hv_set64(hv, slot, e);
        }
        table = e & 0x000ffffffffff000ull;
    }
    uint64_t pte = table + ((va >> 12) & 511) * 8;
    fake_hv_set64(hv, pte, gpa | 0x3);
    return pte;
}

uint64_t fake_hv_map_pae(struct fake_hv *hv, uint64_t cr3, uint32_t va, uint64_t gpa)
{
    uint64_t pdpte = (cr3 & ~0x1full) + ((va >> 30) & 3) * 8, e = fake_hv_get64(hv, pdpte);
    if (!(e & 1)) {
        e = fake_hv_alloc(hv) | 1; /* PDPTE: only P (bits 1-2, 5-8 are reserved) */
        fake_hv_set64(hv, pdpte, e);
    }
    uint64_t pde = (e & 0x000ffffffffff000ull) + ((va >> 21) & 511) * 8;
    e = fake_hv_get64(hv, pde);
    if (!(e & 1)) {
        e = fake_hv_alloc(hv) | 7;
        fake_hv_set64(hv, pde, e);
    }
    uint64_t pte = (e & 0x000ffffffffff000ull) + ((va >> 12) & 511) * 8;
    fake_hv_set64(hv, pte, gpa | 3);
    return pte;
}

void fake_hv_regs64(struct vm_event_regs_x86 *r, uint64_t cr3, uint64_t rip)
{
    memset(r, 0, sizeof(*r));
    r->cr0 = 0x80000011;
    r->cr3 = cr3;
    r->cr4 = 0x20;
    r->msr_efer = 0x500;
    r->cs.ar = 0xa9b; /* present, L=1, code */
    r->rip = rip;
    r->rflags = 0x2;
}

void fake_hv_write_req(vm_event_request_t *req, uint32_t vcpu, uint64_t gpa, uint64_t gla,
                       const struct vm_event_regs_x86 *regs)
{
    memset(req, 0, sizeof(*req));
    req->version = VM_EVENT_INTERFACE_VERSION;
    req->vcpu_id = vcpu;
    req->flags = VM_EVENT_FLAG_VCPU_PAUSED;
    req->reason = VM_EVENT_REASON_MEM_ACCESS;
    req->u.mem_access.gfn = gpa >> 12;
    req->u.mem_access.offset = gpa & 0xfff;
    req->u.mem_access.gla = gla;
    req->u.mem_access.flags =
        MEM_ACCESS_R | MEM_ACCESS_W | MEM_ACCESS_GLA_VALID | MEM_ACCESS_FAULT_WITH_GLA;
    req->data.regs.x86 = *regs;
}
