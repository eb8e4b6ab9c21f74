/*
 * ptmond-standin: a deliberately naive stand-in for ptmond, used ONLY to develop and smoke-test
 * the lab harness (boot, step driving, log transport, checker) while the real Xen backend is not
 * usable. It is not a deliverable and proves nothing about ptmon: it learns the CR3 through a
 * CPUID monitor event like ptmond, but then merely POLLS the guest page tables every 20 ms, so
 * it misses short-lived states and never write-protects anything.
 *
 *   ptmond-standin --domain ID --cr3-from-cpuid LEAF [--json] [--cr3-only] --va ADDR [--va ADDR
 * ...]
 *
 * --cr3-only: print the CR3 and exit (the lab uses it when ptmond's mechanism has no CPUID events).
 *
 * With --ioreq it instead write-traps the page-table frames on the watched paths through an
 * ioreq server (HVMMEM_ioreq_server + XEN_DMOP_IOREQ_MEM_ACCESS_WRITE, the AMD/NPT mechanism),
 * performs each trapped write itself and re-walks after it. That mode exists to find out,
 * independently of the real backend, whether that page type can serve live page-table frames
 * (hardware A/D updates, locked RMW instructions) on this Xen.
 *
 * Output (JSON lines): {"event":"cr3",...}, {"event":"initial",...} per VA, then
 * {"event":"change","va":...,"after":{...}} whenever a polled translation differs.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xen/vm_event.h>
#include <xendevicemodel.h>
#include <xen/hvm/ioreq.h>
#include <xen/hvm/dm_op.h>
#include <xen/hvm/hvm_op.h>
#include <xen/memory.h>

#define MAXVA 4096
static volatile sig_atomic_t stop;
static void on_sig(int s)
{
    (void)s;
    stop = 1;
}

struct tr {
    int present;
    uint64_t frame, size;
    int w;
};
static uint64_t vas[MAXVA];
static struct tr last[MAXVA];
static int nva;

static xenforeignmemory_handle *fm;
static uint32_t dom;
static struct {
    uint64_t gfn;
    uint64_t *p;
} cache[512];
static int ncache;

static const uint64_t *table(uint64_t gfn)
{
    for (int i = 0; i < ncache; i++)
        if (cache[i].gfn == gfn)
            return cache[i].p;
    xen_pfn_t pfn = gfn;
    int err = 0;
    uint64_t *p = xenforeignmemory_map(fm, dom, PROT_READ, 1, &pfn, &err);
    if (!p || err)
        return NULL;
    if (ncache == 512) { /* full: drop everything (tables are few, this never happens here) */
        for (int i = 0; i < ncache; i++)
            xenforeignmemory_unmap(fm, cache[i].p, 1);
        ncache = 0;
    }
    cache[ncache].gfn = gfn;
    cache[ncache++].p = p;
    return p;
}

/* Frames of the tables on the watched paths (collected by walk() when `collect` is set). */
static uint64_t pts[4096];
static int npts, collect;

static int opt_max_level = 4; /* --max-level L: trap only tables of level <= L (ioreq mode) */

static void note_pt(uint64_t gfn, int level)
{
    if (!collect || level > opt_max_level)
        return;
    for (int i = 0; i < npts; i++)
        if (pts[i] == gfn)
            return;
    if (npts < 4096)
        pts[npts++] = gfn;
}

static struct tr walk(uint64_t cr3, uint64_t va)
{
    struct tr t = {0, 0, 0, 0};
    uint64_t gfn = (cr3 & 0x000ffffffffff000ULL) >> 12;
    int w = 1;
    for (int l = 4; l >= 1; l--) {
        note_pt(gfn, l);
        const uint64_t *tb = table(gfn);
        if (!tb)
            return t;
        uint64_t e = tb[(va >> (12 + 9 * (l - 1))) & 511];
        if (!(e & 1))
            return t;
        w &= (int)((e >> 1) & 1);
        if (l == 1 || (l <= 3 && (e & 0x80))) {
            t.size = 1ULL << (12 + 9 * (l - 1));
            t.present = 1;
            t.frame = (e & 0x000ffffffffff000ULL) & ~(t.size - 1);
            t.w = w;
            return t;
        }
        gfn = (e & 0x000ffffffffff000ULL) >> 12;
    }
    return t;
}

/* Field by field: memcmp would also compare the struct's padding. */
static int tr_differ(const struct tr *a, const struct tr *b)
{
    return a->present != b->present || a->frame != b->frame || a->size != b->size || a->w != b->w;
}

static void print_tr(const char *ev, uint64_t va, const struct tr *t)
{
    if (t->present)
        printf("{\"event\":\"%s\",\"va\":\"0x%" PRIx64
               "\",\"after\":{\"present\":true,\"frame\":\"0x%" PRIx64 "\",\"page_size\":%" PRIu64
               ",\"rights\":\"r%c\"}}\n",
               ev, va, t->frame, t->size, t->w ? 'w' : '-');
    else
        printf("{\"event\":\"%s\",\"va\":\"0x%" PRIx64 "\",\"after\":{\"present\":false}}\n", ev,
               va);
}

/* ---- --ioreq: write-trap the table frames through an ioreq server ---------------------------- */
static unsigned long ioreq_changes, ioreq_writes, ioreq_other, preset_a;
/* --preset-a: set the Accessed bit of every present entry in a trapped table (at arming and in
 * every write we perform), so the CPU's page walker never has to write it. Xen sends a walker
 * A/D write to an ioreq_server frame to its MMIO emulator, which refuses instructions without a
 * memory operand (see README.md). */
static int opt_preset_a;
static uint8_t *rw_map(uint64_t gfn);
static uint64_t typed[4096];
static int ntyped;

/* Retype to ioreq_server every table now on a watched path, back to ram_rw what left them. */
static void retype(xendevicemodel_handle *dm, uint64_t cr3)
{
    npts = 0;
    collect = 1;
    for (int i = 0; i < nva; i++)
        (void)walk(cr3, vas[i]);
    collect = 0;
    for (int i = 0; i < npts; i++) {
        int have = 0;
        for (int j = 0; j < ntyped; j++)
            have |= typed[j] == pts[i];
        if (!have && ntyped < 4096) {
            if (opt_preset_a) {
                uint64_t *t = (uint64_t *)rw_map(pts[i]);
                for (int k = 0; t && k < 512; k++)
                    if ((t[k] & 1) && !(t[k] & 0x20)) {
                        __atomic_or_fetch(&t[k], 0x20, __ATOMIC_SEQ_CST);
                        preset_a++;
                    }
                if (t)
                    xenforeignmemory_unmap(fm, t, 1);
            }
            if (xendevicemodel_set_mem_type(dm, dom, HVMMEM_ioreq_server, pts[i], 1) == 0)
                typed[ntyped++] = pts[i];
            else
                fprintf(stderr, "standin: set_mem_type(0x%" PRIx64 ", ioreq_server): %s\n", pts[i],
                        strerror(errno));
        }
    }
    for (int j = 0; j < ntyped; j++) {
        int still = 0;
        for (int i = 0; i < npts; i++)
            still |= typed[j] == pts[i];
        if (!still) {
            if (xendevicemodel_set_mem_type(dm, dom, HVMMEM_ram_rw, typed[j], 1))
                fprintf(stderr, "standin: set_mem_type(0x%" PRIx64 ", ram_rw): %s\n", typed[j],
                        strerror(errno));
            typed[j--] = typed[--ntyped];
        }
    }
}

static uint8_t *rw_map(uint64_t gfn)
{
    xen_pfn_t pfn = gfn;
    int err = 0;
    uint8_t *p = xenforeignmemory_map(fm, dom, PROT_READ | PROT_WRITE, 1, &pfn, &err);
    return p && !err ? p : NULL;
}

/* Perform one trapped access for the guest. */
static void do_access(volatile ioreq_t *rq)
{
    uint64_t size = rq->size, count = rq->count ? rq->count : 1;
    for (uint64_t k = 0; k < count; k++) {
        uint64_t a = rq->addr + (rq->df ? -(int64_t)k : (int64_t)k) * size, v = 0;
        uint8_t *pg = rw_map(a >> 12);
        if (!pg || (a & 0xfff) + size > 4096) {
            ioreq_other++;
            if (pg)
                xenforeignmemory_unmap(fm, pg, 1);
            continue;
        }
        if (rq->dir == IOREQ_WRITE) {
            if (rq->data_is_ptr) {
                uint64_t src = rq->data + (rq->df ? -(int64_t)k : (int64_t)k) * size;
                uint8_t *sp = rw_map(src >> 12);
                if (sp) {
                    memcpy(&v, sp + (src & 0xfff), size);
                    xenforeignmemory_unmap(fm, sp, 1);
                }
            } else
                v = rq->data;
            if (opt_preset_a && size == 8 && (v & 1) && !(v & 0x20)) {
                v |= 0x20;
                preset_a++;
            }
            memcpy(pg + (a & 0xfff), &v, size);
            ioreq_writes++;
        } else if (!rq->data_is_ptr) {
            memcpy(&v, pg + (a & 0xfff), size);
            rq->data = v;
        } else
            ioreq_other++;
        xenforeignmemory_unmap(fm, pg, 1);
    }
}

static int ioreq_loop(uint64_t cr3)
{
    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    xenevtchn_handle *xe = xenevtchn_open(NULL, 0);
    ioservid_t id;
    void *iop = NULL;
    int rc = -1, port = -1, mapped = 0;
    if (!dm || !xe || xendevicemodel_create_ioreq_server(dm, dom, HVM_IOREQSRV_BUFIOREQ_OFF, &id)) {
        fprintf(stderr, "standin: create_ioreq_server: %s\n", strerror(errno));
        return -1;
    }
    xenforeignmemory_resource_handle *res = xenforeignmemory_map_resource(
        fm, dom, XENMEM_resource_ioreq_server, id, XENMEM_resource_ioreq_server_frame_ioreq(0), 1,
        &iop, PROT_READ | PROT_WRITE, 0);
    if (!res || xendevicemodel_set_ioreq_server_state(dm, dom, id, 1))
        goto out;
    volatile ioreq_t *rq =
        &((shared_iopage_t *)iop)->vcpu_ioreq[0]; /* the lab's domU has one vCPU */
    port = xenevtchn_bind_interdomain(xe, dom, rq->vp_eport);
    if (port < 0 || xendevicemodel_map_mem_type_to_ioreq_server(dm, dom, id, HVMMEM_ioreq_server,
                                                                XEN_DMOP_IOREQ_MEM_ACCESS_WRITE))
        goto out;
    mapped = 1;
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    xc_domain_pause(xch, dom);
    retype(dm, cr3);
    xc_domain_unpause(xch, dom);
    printf("{\"event\":\"ioreq-armed\",\"tables\":%d}\n", ntyped);
    while (!stop) {
        struct pollfd p = {xenevtchn_fd(xe), POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            int pp = xenevtchn_pending(xe);
            if (pp >= 0)
                xenevtchn_unmask(xe, pp);
        }
        if (rq->state != STATE_IOREQ_READY) {
            /* No trapped write: tables that appeared on an untrapped level (--max-level) are
             * found by polling; report changes made through them meanwhile. */
            if (opt_max_level < 4) {
                for (int i = 0; i < nva; i++) {
                    struct tr t = walk(cr3, vas[i]);
                    if (tr_differ(&t, &last[i])) {
                        last[i] = t;
                        print_tr("change", vas[i], &t);
                        ioreq_changes++;
                    }
                }
                retype(dm, cr3);
            }
            continue;
        }
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        rq->state = STATE_IOREQ_INPROCESS;
        if (rq->type == IOREQ_TYPE_COPY)
            do_access(rq);
        else
            ioreq_other++;
        /* The guest is blocked until we answer: re-walk now, so every change is seen in order. */
        for (int i = 0; i < nva; i++) {
            struct tr t = walk(cr3, vas[i]);
            if (tr_differ(&t, &last[i])) {
                last[i] = t;
                print_tr("change", vas[i], &t);
                ioreq_changes++;
            }
        }
        retype(dm, cr3);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        rq->state = STATE_IORESP_READY;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        xenevtchn_notify(xe, port);
    }
    rc = 0;
    xc_domain_pause(xch, dom);
    for (int j = 0; j < ntyped; j++)
        if (xendevicemodel_set_mem_type(dm, dom, HVMMEM_ram_rw, typed[j], 1))
            rc = -1;
    printf("{\"event\":\"detach\",\"restored\":%d,\"restore_errors\":%d,\"writes\":%lu,\"other\":%"
           "lu,\"preset_a\":%lu}\n",
           ntyped, rc ? 1 : 0, ioreq_writes, ioreq_other, preset_a);
    ntyped = 0;
    xc_domain_unpause(xch, dom);
out:
    if (rc)
        fprintf(stderr, "standin: ioreq setup: %s\n", strerror(errno));
    if (mapped)
        xendevicemodel_map_mem_type_to_ioreq_server(dm, dom, id, HVMMEM_ioreq_server, 0);
    xendevicemodel_destroy_ioreq_server(dm, dom, id);
    return rc;
}

int main(int argc, char **argv)
{
    uint32_t leaf = 0;
    int use_ioreq = 0, cr3_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--domain") && i + 1 < argc)
            dom = strtoul(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--cr3-from-cpuid") && i + 1 < argc)
            leaf = strtoul(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--va") && i + 1 < argc && nva < MAXVA)
            vas[nva++] = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--ioreq"))
            use_ioreq = 1;
        else if (!strcmp(argv[i], "--cr3-only"))
            cr3_only = 1;
        else if (!strcmp(argv[i], "--preset-a"))
            opt_preset_a = 1;
        else if (!strcmp(argv[i], "--max-level") && i + 1 < argc)
            opt_max_level = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json")) {
            fprintf(stderr, "bad argument %s\n", argv[i]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
    fm = xenforeignmemory_open(NULL, 0);
    if (!xch || !xce || !fm) {
        perror("open");
        return 1;
    }

    /* 1. learn CR3 from the workload's CPUID(leaf), answered like xen-access does */
    uint32_t rport;
    void *ring = xc_monitor_enable(xch, dom, &rport);
    if (!ring) {
        fprintf(stderr, "xc_monitor_enable: %s\n", strerror(errno));
        return 1;
    }
    int lport = xenevtchn_bind_interdomain(xce, dom, rport);
    vm_event_back_ring_t back;
    SHARED_RING_INIT((vm_event_sring_t *)ring);
    BACK_RING_INIT(&back, (vm_event_sring_t *)ring, XC_PAGE_SIZE);
    if (lport < 0 || xc_monitor_cpuid(xch, dom, 1)) {
        fprintf(stderr, "cpuid monitor: %s\n", strerror(errno));
        return 1;
    }
    uint64_t cr3 = 0;
    unsigned long events = 0;
    time_t deadline = time(NULL) + 120; /* a guest that never executes the CPUID: give up */
    while (!cr3 && !stop && time(NULL) < deadline) {
        struct pollfd p = {xenevtchn_fd(xce), POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            int port = xenevtchn_pending(xce);
            if (port >= 0)
                xenevtchn_unmask(xce, port);
        }
        while (RING_HAS_UNCONSUMED_REQUESTS(&back)) {
            vm_event_request_t req;
            vm_event_response_t rsp;
            memcpy(&req, RING_GET_REQUEST(&back, back.req_cons), sizeof req);
            back.req_cons++;
            back.sring->req_event = back.req_cons + 1;
            memset(&rsp, 0, sizeof rsp);
            rsp.version = VM_EVENT_INTERFACE_VERSION;
            rsp.vcpu_id = req.vcpu_id;
            rsp.flags = req.flags & VM_EVENT_FLAG_VCPU_PAUSED;
            rsp.reason = req.reason;
            if (req.reason == VM_EVENT_REASON_CPUID) {
                rsp.data = req.data;
                rsp.data.regs.x86.rip += req.u.cpuid.insn_length;
                rsp.flags |= VM_EVENT_FLAG_SET_REGISTERS;
                if (req.u.cpuid.leaf == leaf && !cr3)
                    cr3 = req.data.regs.x86.cr3;
            }
            events++;
            memcpy(RING_GET_RESPONSE(&back, back.rsp_prod_pvt), &rsp, sizeof rsp);
            back.rsp_prod_pvt++;
            RING_PUSH_RESPONSES(&back);
        }
        xenevtchn_notify(xce, lport);
    }
    xc_monitor_cpuid(xch, dom, 0);
    xenevtchn_notify(xce, lport);
    xc_monitor_disable(xch, dom);
    xenevtchn_unbind(xce, lport);
    munmap(ring, XC_PAGE_SIZE);
    if (!cr3) {
        fprintf(stderr, "standin: no CPUID 0x%x from the guest in 120 s (%lu other events)\n", leaf,
                events);
        return 1;
    }
    printf("{\"event\":\"cr3\",\"cr3\":\"0x%" PRIx64 "\",\"cpuid_events\":%lu}\n", cr3, events);
    if (cr3_only)
        return 0; /* the lab's CR3 source for a ptmond that cannot take CPUID events */

    /* 2. poll the translations, or trap the writes to the tables (--ioreq) */
    for (int i = 0; i < nva; i++) {
        last[i] = walk(cr3, vas[i]);
        print_tr("initial", vas[i], &last[i]);
    }
    unsigned long polls = 0, changes = 0;
    if (use_ioreq) {
        int rc = ioreq_loop(cr3);
        fprintf(stderr, "standin: ioreq loop rc=%d\n", rc);
        changes = ioreq_changes;
    } else {
        while (!stop) {
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
            polls++;
            for (int i = 0; i < nva; i++) {
                struct tr t = walk(cr3, vas[i]);
                if (tr_differ(&t, &last[i])) {
                    last[i] = t;
                    print_tr("change", vas[i], &t);
                    changes++;
                }
            }
        }
    }
    for (int i = 0; i < ncache; i++)
        xenforeignmemory_unmap(fm, cache[i].p, 1);
    printf("{\"event\":\"stats\",\"polls\":%lu,\"changes\":%lu,\"tables_mapped\":%d}\n", polls,
           changes, ncache);
    return 0;
}
