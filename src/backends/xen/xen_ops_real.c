/*
 * The xen ops backed by the real libraries (libxenctrl, libxenforeignmemory, libxenevtchn,
 * libxendevicemodel, libxenguest for the domain's CPUID policy).
 * Owns: the library handles. The only file of the backend that calls libxen*; everything else
 * goes through struct xen_ops, which the tests replace with a fake hypervisor.
 * Errors are returned as negative errno values.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "xen_internal.h" /* first: xenctrl.h sets up the Xen headers */

#include <xendevicemodel.h>
#include <xenguest.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>

#include <xen/hvm/dm_op.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/save.h>
#include <xen/memory.h>

struct real {
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    xenevtchn_handle *xce;
    xendevicemodel_handle *dm;
    xenforeignmemory_resource_handle *iores;
    ioservid_t ioid;
    uint32_t domid;
};

static int neg_errno(void)
{
    return errno ? -errno : -EIO;
}

static int r_version(void *h)
{
    struct real *r = h;
    int v = xc_vm_event_get_version(r->xch);
    return v < 0 ? neg_errno() : v;
}

static int r_domain_info(void *h, struct xen_dominfo *out)
{
    struct real *r = h;
    xc_dominfo_t info;

    /* returns the NEXT existing domain if ours is gone: the caller compares domid */
    if (xc_domain_getinfo(r->xch, r->domid, 1, &info) != 1)
        return neg_errno();
    out->domid = info.domid;
    out->dying = info.dying;
    out->shutdown = info.shutdown;
    out->paused = info.paused;
    out->hvm = info.hvm;
    out->hap = info.hap;
    out->max_vcpu_id = info.max_vcpu_id;
    out->nr_paged_pages = info.nr_paged_pages;
    out->tot_pages = info.nr_pages;
    return 0;
}

static int r_monitor_enable(void *h, void **ring, uint32_t *remote_port)
{
    struct real *r = h;
    *ring = xc_monitor_enable(r->xch, r->domid, remote_port);
    return *ring ? 0 : neg_errno();
}

static int r_monitor_disable(void *h)
{
    struct real *r = h;
    return xc_monitor_disable(r->xch, r->domid) < 0 ? neg_errno() : 0;
}

static void r_unmap_ring(void *h, void *ring)
{
    (void)h;
    munmap(ring, XC_PAGE_SIZE);
}

static int r_bind(void *h, uint32_t remote, uint32_t *local)
{
    struct real *r = h;
    xenevtchn_port_or_error_t p = xenevtchn_bind_interdomain(r->xce, r->domid, remote);
    if (p < 0)
        return neg_errno();
    *local = (uint32_t)p;
    return 0;
}

static void r_unbind(void *h, uint32_t local)
{
    struct real *r = h;
    (void)xenevtchn_unbind(r->xce, local);
}

static int r_wait(void *h, int timeout_ms)
{
    struct real *r = h;
    struct pollfd pfd = {xenevtchn_fd(r->xce), POLLIN | POLLERR, 0};
    xenevtchn_port_or_error_t port;
    int rc = poll(&pfd, 1, timeout_ms);

    if (rc < 0)
        return errno == EINTR ? 0 : neg_errno();
    if (rc == 0)
        return 0;
    port = xenevtchn_pending(r->xce);
    if (port >= 0)
        (void)xenevtchn_unmask(r->xce, (evtchn_port_t)port);
    return 1;
}

static int r_notify(void *h, uint32_t local)
{
    struct real *r = h;
    return xenevtchn_notify(r->xce, local) < 0 ? neg_errno() : 0;
}

static int r_access_required(void *h, int required)
{
    struct real *r = h;
    return xc_domain_set_access_required(r->xch, r->domid, required) < 0 ? neg_errno() : 0;
}

static int r_suppress_gpt(void *h, int suppress)
{
    struct real *r = h;
    return xc_monitor_inguest_pagefault(r->xch, r->domid, suppress) < 0 ? neg_errno() : 0;
}

static int r_emul_unimpl(void *h, int on)
{
    struct real *r = h;
    return xc_monitor_emul_unimplemented(r->xch, r->domid, on) < 0 ? neg_errno() : 0;
}

static int r_cpuid(void *h, int on)
{
    struct real *r = h;
    return xc_monitor_cpuid(r->xch, r->domid, on) < 0 ? neg_errno() : 0;
}

static int r_set_access(void *h, const uint8_t *access, const uint64_t *gfns, uint32_t n)
{
    struct real *r = h;
    /* the library bounces the arrays into hypercall buffers; it does not write them */
    return xc_set_mem_access_multi(r->xch, r->domid, (uint8_t *)access, (uint64_t *)gfns, n) < 0
               ? neg_errno()
               : 0;
}

static int r_get_access(void *h, uint64_t gfn, uint8_t *access)
{
    struct real *r = h;
    xenmem_access_t a;
    if (xc_get_mem_access(r->xch, r->domid, gfn, &a) < 0)
        return neg_errno();
    *access = (uint8_t)a;
    return 0;
}

static int r_pause(void *h)
{
    struct real *r = h;
    return xc_domain_pause(r->xch, r->domid) < 0 ? neg_errno() : 0;
}

static int r_unpause(void *h)
{
    struct real *r = h;
    return xc_domain_unpause(r->xch, r->domid) < 0 ? neg_errno() : 0;
}

static int r_map(void *h, const uint64_t *gfns, size_t n, void **pages, void **region)
{
    struct real *r = h;
    xen_pfn_t *arr = calloc(n, sizeof(*arr));
    int *err = calloc(n, sizeof(*err));
    uint8_t *base;
    size_t good = 0;

    if (!arr || !err) {
        free(arr);
        free(err);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        arr[i] = (xen_pfn_t)gfns[i];
    base = xenforeignmemory_map(r->fmem, r->domid, PROT_READ | PROT_WRITE, n, arr, err);
    if (base)
        for (size_t i = 0; i < n; i++) {
            pages[i] = err[i] ? NULL : base + i * XC_PAGE_SIZE;
            good += !err[i];
        }
    free(arr);
    free(err);
    if (!base)
        return neg_errno();
    if (!good) {
        (void)xenforeignmemory_unmap(r->fmem, base, n);
        return -ENOENT;
    }
    *region = base;
    return 0;
}

static void r_unmap(void *h, void *region, size_t n)
{
    struct real *r = h;
    (void)xenforeignmemory_unmap(r->fmem, region, n);
}

static int cpu_record(struct real *r, uint32_t vcpu, struct hvm_hw_cpu *cpu)
{
    if (xc_domain_hvm_getcontext_partial(r->xch, r->domid, HVM_SAVE_CODE(CPU), (uint16_t)vcpu, cpu,
                                         sizeof(*cpu)) < 0)
        return neg_errno();
    return 0;
}

static int r_regs(void *h, uint32_t vcpu, ptmon_vcpu_regs *regs)
{
    struct hvm_hw_cpu cpu;
    int rc = cpu_record(h, vcpu, &cpu);
    if (rc < 0)
        return rc;
    regs->cr0 = cpu.cr0;
    regs->cr3 = cpu.cr3;
    regs->cr4 = cpu.cr4;
    regs->efer = cpu.msr_efer;
    return 0;
}

/* One leaf of the domain's CPUID policy (libxenguest: the policy as Xen holds it for the domain,
 * serialised to leaves). */
static int r_cpuid_policy(void *h, uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
    struct real *r = h;
    xc_cpu_policy_t *policy = xc_cpu_policy_init();
    xen_cpuid_leaf_t *leaves = NULL;
    uint32_t nr_leaves = 0, nr_msrs = 0;
    int rc = -ENOENT;

    if (!policy)
        return -ENOMEM;
    if (xc_cpu_policy_get_domain(r->xch, r->domid, policy) < 0 ||
        xc_cpu_policy_get_size(r->xch, &nr_leaves, &nr_msrs) < 0) {
        rc = neg_errno();
        goto out;
    }
    leaves = calloc(nr_leaves ? nr_leaves : 1, sizeof(*leaves));
    nr_msrs = 0; /* no MSRs wanted */
    if (!leaves) {
        rc = -ENOMEM;
        goto out;
    }
    if (xc_cpu_policy_serialise(r->xch, policy, leaves, &nr_leaves, NULL, &nr_msrs) < 0) {
        rc = neg_errno();
        goto out;
    }
    for (uint32_t i = 0; i < nr_leaves; i++) {
        if (leaves[i].leaf == leaf && leaves[i].subleaf == subleaf) {
            out[0] = leaves[i].a;
            out[1] = leaves[i].b;
            out[2] = leaves[i].c;
            out[3] = leaves[i].d;
            rc = 0;
            break;
        }
    }
out:
    free(leaves);
    xc_cpu_policy_destroy(policy);
    return rc;
}

static int r_xmm(void *h, uint32_t vcpu, unsigned index, uint8_t out[16])
{
    struct hvm_hw_cpu cpu;
    int rc;
    if (index > 15)
        return -EINVAL;
    rc = cpu_record(h, vcpu, &cpu);
    if (rc < 0)
        return rc;
    memcpy(out, cpu.fpu_regs + 160 + 16 * index, 16); /* FXSAVE layout: XMM0 at byte 160 */
    return 0;
}

static void r_ioreq_destroy(void *h, void *iopage)
{
    struct real *r = h;
    (void)iopage;
    (void)xendevicemodel_map_mem_type_to_ioreq_server(r->dm, (domid_t)r->domid, r->ioid,
                                                      HVMMEM_ioreq_server, 0);
    (void)xendevicemodel_set_ioreq_server_state(r->dm, (domid_t)r->domid, r->ioid, 0);
    if (r->iores)
        (void)xenforeignmemory_unmap_resource(r->fmem, r->iores);
    r->iores = NULL;
    (void)xendevicemodel_destroy_ioreq_server(r->dm, (domid_t)r->domid, r->ioid);
}

static int r_ioreq_create(void *h, void **iopage)
{
    struct real *r = h;
    int rc;

    if (!r->dm) {
        r->dm = xendevicemodel_open(NULL, 0);
        if (!r->dm)
            return neg_errno();
    }
    if (xendevicemodel_create_ioreq_server(r->dm, (domid_t)r->domid, HVM_IOREQSRV_BUFIOREQ_OFF,
                                           &r->ioid) < 0)
        return neg_errno();
    *iopage = NULL;
    r->iores = xenforeignmemory_map_resource(
        r->fmem, (domid_t)r->domid, XENMEM_resource_ioreq_server, r->ioid,
        XENMEM_resource_ioreq_server_frame_ioreq(0), 1, iopage, PROT_READ | PROT_WRITE, 0);
    if (!r->iores ||
        xendevicemodel_set_ioreq_server_state(r->dm, (domid_t)r->domid, r->ioid, 1) < 0 ||
        xendevicemodel_map_mem_type_to_ioreq_server(r->dm, (domid_t)r->domid, r->ioid,
                                                    HVMMEM_ioreq_server,
                                                    XEN_DMOP_IOREQ_MEM_ACCESS_WRITE) < 0) {
        rc = neg_errno();
        r_ioreq_destroy(r, *iopage);
        *iopage = NULL;
        return rc;
    }
    return 0;
}

static int r_set_mem_type(void *h, uint64_t gfn, int ioreq)
{
    struct real *r = h;
    return xendevicemodel_set_mem_type(r->dm, (domid_t)r->domid,
                                       ioreq ? HVMMEM_ioreq_server : HVMMEM_ram_rw, gfn, 1) < 0
               ? neg_errno()
               : 0;
}

static void r_close(void *h)
{
    struct real *r = h;
    if (r->dm)
        xendevicemodel_close(r->dm);
    if (r->xce)
        xenevtchn_close(r->xce);
    if (r->fmem)
        xenforeignmemory_close(r->fmem);
    if (r->xch)
        xc_interface_close(r->xch);
    free(r);
}

int xen_ops_real_open(uint32_t domid, struct xen_ops *ops)
{
    struct real *r = calloc(1, sizeof(*r));

    if (!r)
        return PTMON_ENOMEM;
    r->domid = domid;
    r->xch = xc_interface_open(NULL, NULL, 0);
    r->fmem = xenforeignmemory_open(NULL, 0);
    r->xce = xenevtchn_open(NULL, 0);
    if (!r->xch || !r->fmem || !r->xce) {
        r_close(r);
        return PTMON_EIO;
    }
    memset(ops, 0, sizeof(*ops));
    ops->h = r;
    ops->vm_event_version = r_version;
    ops->domain_info = r_domain_info;
    ops->monitor_enable = r_monitor_enable;
    ops->monitor_disable = r_monitor_disable;
    ops->unmap_ring = r_unmap_ring;
    ops->evtchn_bind = r_bind;
    ops->evtchn_unbind = r_unbind;
    ops->evtchn_wait = r_wait;
    ops->evtchn_notify = r_notify;
    ops->set_access_required = r_access_required;
    ops->suppress_gpt_events = r_suppress_gpt;
    ops->monitor_emul_unimplemented = r_emul_unimpl;
    ops->monitor_cpuid = r_cpuid;
    ops->set_mem_access_multi = r_set_access;
    ops->get_mem_access = r_get_access;
    ops->pause = r_pause;
    ops->unpause = r_unpause;
    ops->map = r_map;
    ops->unmap = r_unmap;
    ops->get_vcpu_regs = r_regs;
    ops->get_xmm = r_xmm;
    ops->cpuid_policy = r_cpuid_policy;
    ops->close = r_close;
    ops->ioreq_create = r_ioreq_create;
    ops->ioreq_destroy = r_ioreq_destroy;
    ops->set_mem_type = r_set_mem_type;
    return 0;
}
