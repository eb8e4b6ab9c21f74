/*
 * A fake Xen for the Xen backend's tests and benchmark: guest RAM in ordinary memory, a per-gfn
 * access type, the vm_event ring in an ordinary page (test code plays the hypervisor: posts
 * requests, consumes responses, applies SET_REGISTERS), counters and failure injection for every
 * Xen entry point the backend uses (struct xen_ops), and a tiny 4-level page-table builder.
 */
#ifndef PTMON_FAKE_XEN_H
#define PTMON_FAKE_XEN_H

#include "xen_internal.h"

#define FHV_MAX_VCPUS 8

struct fake_hv;
typedef void (*fake_hv_wait_fn)(struct fake_hv *hv, void *ctx);

struct fake_hv {
    struct xen_ops ops;
    uint8_t *ram;
    uint64_t nframes, next_free;
    uint8_t *access; /* XENMEM_access_* per gfn */
    void *ring;
    vm_event_front_ring_t front;
    /* behaviour */
    int version; /* what vm_event_version reports */
    struct xen_dominfo info;
    int enable_rc;       /* monitor_enable error to return */
    int disable_ebusy;   /* monitor_disable says EBUSY this many times */
    int set_access_fail; /* set_mem_access_multi fails this many times */
    int probe_rc;        /* get_mem_access error for the attach probe (gfn 0) */
    fake_hv_wait_fn on_wait;
    void *on_wait_ctx;
    /* state */
    int monitor_on, bound, access_required, gpt_suppressed, emul_unimpl, cpuid_on;
    int pause_depth, pending;
    /* counters */
    unsigned notify, pause_calls, unpause_calls, set_access_calls, map_calls, regions_out;
    unsigned disable_calls, rights_at_disable_wrong, unconsumed_at_disable;
    uint64_t set_access_gfns;
    ptmon_vcpu_regs vregs[FHV_MAX_VCPUS];
    uint8_t xmm[FHV_MAX_VCPUS][16][16];
    uint8_t *initial_access; /* snapshot for "left as it was" checks */
    /* ioreq server */
    uint8_t *mtype; /* 1: HVMMEM_ioreq_server */
    void *iopage;
    int ioreq_on, ioreq_rc;
    uint32_t nvcpus, last_notify_port;
    /* vm_event pauses: vCPUs a monitor left waiting for an answer, and what notify does */
    unsigned vm_paused[FHV_MAX_VCPUS];
    int resume_on_notify;
    unsigned unpaused;
    /* the domain's CPUID policy */
    uint32_t maxphyaddr, max_ext_leaf;
    int cpuid_policy_rc; /* error every policy lookup returns */
};

struct fake_hv *fake_hv_create(uint64_t nframes, uint32_t nvcpus);
void fake_hv_destroy(struct fake_hv *hv);
/** Snapshot the access types (compared by fake_hv_access_unchanged). */
void fake_hv_snapshot(struct fake_hv *hv);
int fake_hv_access_unchanged(const struct fake_hv *hv);

/** Post a request (returns -1 if the ring is full). */
int fake_hv_post(struct fake_hv *hv, const vm_event_request_t *req);
/** Take the next response. @return 1 if there was one. */
int fake_hv_take(struct fake_hv *hv, vm_event_response_t *rsp);
int fake_hv_unconsumed_requests(const struct fake_hv *hv);

/* guest building: 4-level paging, identity-free layout */
uint64_t fake_hv_alloc(struct fake_hv *hv); /* a zeroed frame's GPA */
uint64_t fake_hv_new_root(struct fake_hv *hv);
/** Map va -> gpa (4 KiB, P|RW|flags), creating tables. @return the PTE's GPA. */
uint64_t fake_hv_map(struct fake_hv *hv, uint64_t cr3, uint64_t va, uint64_t gpa);
/** PAE: map va -> gpa (4 KiB) under the 4-entry PDPT at @p cr3. @return the PTE's GPA. */
uint64_t fake_hv_map_pae(struct fake_hv *hv, uint64_t cr3, uint32_t va, uint64_t gpa);
uint64_t fake_hv_pte_gpa(struct fake_hv *hv, uint64_t cr3, uint64_t va, unsigned level);
uint64_t fake_hv_get64(const struct fake_hv *hv, uint64_t gpa);
void fake_hv_set64(struct fake_hv *hv, uint64_t gpa, uint64_t v);
void fake_hv_poke(struct fake_hv *hv, uint64_t gpa, const void *buf, size_t len);

/** 64-bit register block of a vCPU running at @p rip with root @p cr3. */
void fake_hv_regs64(struct vm_event_regs_x86 *r, uint64_t cr3, uint64_t rip);
/** A synchronous mem_access write request (W|R, GLA valid, fault with GLA). */
void fake_hv_write_req(vm_event_request_t *req, uint32_t vcpu, uint64_t gpa, uint64_t gla,
                       const struct vm_event_regs_x86 *regs);

/** Put a ready ioreq in vCPU @p vcpu's slot. */
void fake_hv_ioreq(struct fake_hv *hv, uint32_t vcpu, uint64_t addr, uint32_t size, uint64_t data,
                   uint32_t count, int data_is_ptr, int dir, int df);
unsigned fake_hv_ioreq_state(const struct fake_hv *hv, uint32_t vcpu);
uint64_t fake_hv_ioreq_data(const struct fake_hv *hv, uint32_t vcpu);

#endif
