/*
 * Xen backend internals: the "xen ops" table (the only way backend logic reaches libxen*), the
 * mapping cache, the instruction decoder's write plan and the backend object.
 *
 * Layers (each file may call only the ones below it):
 *   xen_attach.c   public API: attach / poll / detach / free, signal-safe emergency detach
 *   xen_ring.c     ring draining, batching, notification, latency accounting
 *   xen_event.c    one vm_event request -> engine -> one response
 *   xen_glue.c     the ptmon_glue callbacks (read, rights, emulate_write, regs)
 *   xen_insn.c     Zydis decode of the faulting instruction -> write plan; plan arithmetic
 *   xen_store.c    atomic stores through the mappings (CAS loop tolerant of A/D updates)
 *   xen_map.c      persistent + LRU foreign mappings
 *   xen_ops_real.c the libxenctrl / foreignmemory / evtchn adapter (tests supply their own)
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef PTMON_XEN_INTERNAL_H
#define PTMON_XEN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xenctrl.h> /* before xen/vm_event.h: defines __XEN_TOOLS__ */
#include <xen/vm_event.h>

#include <ptmon/xen.h>

/* Frame rights as the backend stores them in the glue's backend bits: the exact Xen access
 * type + 1 (0 = none recorded), so the engine restores what was there before. */
#define XEN_ACCESS_SHIFT 8

/** Domain facts the attach code needs. */
struct xen_dominfo {
    uint32_t domid;
    unsigned dying, shutdown, paused, hvm, hap;
    uint32_t max_vcpu_id;
    uint64_t nr_paged_pages;
    uint64_t tot_pages; /* RAM the domain holds */
};

/** Everything the backend asks of Xen. Each returns 0 or a negative errno unless stated. */
struct xen_ops {
    void *h;
    int (*vm_event_version)(void *h); /**< >= 0: the interface version */
    int (*domain_info)(void *h, struct xen_dominfo *out);
    int (*monitor_enable)(void *h, void **ring, uint32_t *remote_port);
    int (*monitor_disable)(void *h);
    void (*unmap_ring)(void *h, void *ring);
    int (*evtchn_bind)(void *h, uint32_t remote_port, uint32_t *local_port);
    void (*evtchn_unbind)(void *h, uint32_t local_port);
    int (*evtchn_wait)(void *h, int timeout_ms); /**< 1 event, 0 timeout, <0 error; unmasks */
    int (*evtchn_notify)(void *h, uint32_t local_port);
    int (*set_access_required)(void *h, int required);
    int (*suppress_gpt_events)(void *h, int on);
    int (*monitor_emul_unimplemented)(void *h, int on);
    int (*monitor_cpuid)(void *h, int on);
    int (*set_mem_access_multi)(void *h, const uint8_t *access, const uint64_t *gfns, uint32_t n);
    int (*get_mem_access)(void *h, uint64_t gfn, uint8_t *access);
    int (*pause)(void *h);
    int (*unpause)(void *h);
    /** Map @p n frames read/write; pages[i] gets each page's address, *region what unmap takes.
     *  A frame that fails gets pages[i] = NULL (the call still succeeds if any frame mapped). */
    int (*map)(void *h, const uint64_t *gfns, size_t n, void **pages, void **region);
    void (*unmap)(void *h, void *region, size_t n);
    int (*get_vcpu_regs)(void *h, uint32_t vcpu, ptmon_vcpu_regs *regs);
    int (*get_xmm)(void *h, uint32_t vcpu, unsigned index, uint8_t out[16]);
    /** The domain's CPUID policy (what the guest's CPUID returns): leaf @p leaf, subleaf
     *  @p subleaf (0xffffffff: none) into out[0..3] = EAX..EDX. -ENOENT: no such leaf. */
    int (*cpuid_policy)(void *h, uint32_t leaf, uint32_t subleaf, uint32_t out[4]);
    void (*close)(void *h);
    /* ioreq-server mechanism (libxendevicemodel) */
    /** Create an ioreq server, map its ioreq page (*iopage), enable it, claim the
     *  HVMMEM_ioreq_server type for writes. */
    int (*ioreq_create)(void *h, void **iopage);
    /** Undo ioreq_create (unclaim the type, disable, destroy, unmap). */
    void (*ioreq_destroy)(void *h, void *iopage);
    /** Retype one frame: @p ioreq 1 = HVMMEM_ioreq_server (writes come to us), 0 = ram_rw. */
    int (*set_mem_type)(void *h, uint64_t gfn, int ioreq);
};

/* ---- mapping cache (xen_map.c) ------------------------------------------------------------ */

struct xen_region {
    void *base;
    size_t n, refs;
};

struct xen_mapping {
    uint64_t gfn;
    uint8_t *page;
    struct xen_region *region;
    struct xen_mapping *hnext;       /* hash chain */
    struct xen_mapping *prev, *next; /* LRU list (unpinned only) */
    unsigned pinned;                 /* 1 while the frame is restricted (persistent mapping) */
    uint8_t orig_access;             /* Xen access type to restore (valid while pinned) */
    uint8_t cur_access;              /* Xen access type requested now (valid while pinned) */
};

struct xen_map {
    const struct xen_ops *ops;
    struct xen_mapping **buckets;
    size_t nbuckets, count, lru_count, lru_max;
    struct xen_mapping lru; /* sentinel: lru.next = most recent */
    uint64_t *want;         /* gfns pinned but not yet mapped (batched map) */
    size_t nwant, capwant;
    uint64_t hits, misses, calls;
};

int xen_map_init(struct xen_map *m, const struct xen_ops *ops, size_t lru_max);
void xen_map_fini(struct xen_map *m);
/** @return the frame's page (mapping it if needed), or NULL (not RAM / map failed). */
uint8_t *xen_map_get(struct xen_map *m, uint64_t gfn);
/** Keep the frame mapped persistently (restricted frames); mapped in a batch at the next get. */
struct xen_mapping *xen_map_pin(struct xen_map *m, uint64_t gfn);
/** The entry of @p gfn, or NULL. */
struct xen_mapping *xen_map_find(const struct xen_map *m, uint64_t gfn);
/** Call @p fn for every pinned entry. */
void xen_map_each_pinned(struct xen_map *m, void (*fn)(void *ctx, struct xen_mapping *e),
                         void *ctx);
void xen_map_unpin(struct xen_map *m, uint64_t gfn);
int xen_map_is_pinned(const struct xen_map *m, uint64_t gfn);

/* ---- write plans (xen_insn.c) -------------------------------------------------------------- */

enum xen_plan_kind {
    PLAN_MOV = 1,
    PLAN_XCHG,
    PLAN_CMPXCHG,
    PLAN_CMPXCHG_DOUBLE, /* cmpxchg8b / cmpxchg16b */
    PLAN_AND,
    PLAN_OR,
    PLAN_XOR,
    PLAN_BTS,
    PLAN_BTR,
    PLAN_BTC,
    PLAN_STOS,
    PLAN_MOVS,
    PLAN_VEC,
};

/** What one faulting instruction writes, and how it changes the vCPU. */
struct xen_plan {
    enum xen_plan_kind kind;
    unsigned len;        /* instruction length */
    unsigned size;       /* element size in bytes (1..16; 32 never: refused) */
    unsigned count;      /* elements written in this frame (stos/movs), else 1 */
    unsigned rep;        /* rep prefix (stos/movs) */
    unsigned reg;        /* GPR index (0..15) receiving a result (xchg, cmpxchg) */
    unsigned high8;      /* reg is AH/CH/DH/BH */
    unsigned bit;        /* bt* bit number within the operand */
    unsigned addr_bytes; /* address size (string register updates) */
    uint64_t ea;         /* linear address of the first byte written */
    uint8_t src[4096];   /* bytes to store (mov/stos/movs/vec), operand (and/or/xor/xchg) */
};

/** Registers and mode of the vCPU at the fault. */
struct xen_cpu {
    struct vm_event_regs_x86 r;
    unsigned mode_bits; /* 16, 32, 64 */
};

/** Source reader for movs: copy @p len bytes at linear @p va. */
typedef int (*xen_read_va_fn)(void *ctx, uint64_t va, void *buf, size_t len);
/** XMM register reader for vector stores. */
typedef int (*xen_read_xmm_fn)(void *ctx, unsigned index, uint8_t out[16]);

/**
 * Decode @p insn (up to 15 bytes) and build the plan of the write it makes into the frame at
 * page offset @p offset. @return 0, PTMON_ENOTSUP (not an instruction we perform), PTMON_EINVAL.
 */
int xen_insn_plan(const uint8_t *insn, size_t ilen, const struct xen_cpu *cpu, uint32_t offset,
                  xen_read_va_fn read_va, xen_read_xmm_fn read_xmm, void *ctx,
                  struct xen_plan *plan);

/** New bytes of the operand given its @p old bytes (plan->size * plan->count bytes). */
void xen_plan_new_bytes(const struct xen_plan *plan, const struct xen_cpu *cpu, const uint8_t *old,
                        uint8_t *out);

/** Registers after the instruction, given the @p old bytes memory held when it ran and whether
 *  the store happened (@p stored: cmpxchg's outcome). */
void xen_plan_apply_regs(const struct xen_plan *plan, const uint8_t *old, struct xen_cpu *cpu);

/** @return 1 if cmpxchg(8b/16b) would store given @p old. */
int xen_plan_cmp_equal(const struct xen_plan *plan, const struct xen_cpu *cpu, const uint8_t *old);

/* ---- atomic stores (xen_store.c) --------------------------------------------------------- */

enum xen_store_result { STORE_DONE = 0, STORE_RACE = 1 };

/**
 * Perform the plan's store at @p dst (inside one mapped frame). @p told_old holds the old bytes
 * the engine was told; if memory changed meanwhile only in A/D bits of @p entry_size entries, the
 * store is recomputed on the fresh value. @p old_out receives the bytes the store replaced.
 * @return STORE_DONE, or STORE_RACE (memory changed otherwise: nothing stored).
 */
int xen_store_plan(const struct xen_plan *plan, const struct xen_cpu *cpu, uint8_t *dst,
                   const uint8_t *told_old, unsigned entry_size, uint8_t *old_out);

/** Plain store of @p len bytes, each naturally aligned 8/4-byte piece written atomically. */
void xen_store_bytes(uint8_t *dst, const uint8_t *src, size_t len);
/** Atomic-piecewise load (the counterpart of xen_store_bytes). */
void xen_load_bytes(uint8_t *dst, const uint8_t *src, size_t len);

/* ---- the backend object ----------------------------------------------------------------- */

#define XEN_MAX_VCPUS 4096

/** The write of the event being handled (what emulate_write performs). */
struct xen_pending {
    int active, stored, raced;
    uint32_t vcpu;
    uint64_t gpa;
    uint32_t size;
    struct xen_plan plan;
    struct xen_cpu cpu; /* registers in, updated after the store */
    uint8_t told_old[4096];
    uint8_t new_bytes[4096];
};

/** A write Xen emulates for us: re-read at the vCPU's next event. */
struct xen_reread {
    int active;
    uint64_t gpa;
    uint32_t size;
    /* the frame of this vCPU's last EMULATE answer, and a frame relaxed for one instruction
     * because Xen could not emulate it */
    int emul_valid, relaxed;
    uint64_t emul_gfn, relaxed_gfn;
};

/* A vm_event monitor ring as a back end holds it: mapped, its event channel bound. */
struct xen_vm_ring {
    void *page;
    vm_event_back_ring_t back;
    uint32_t remote_port, local_port;
    int bound;
};

/* Enable the monitor ring of the ops' domain, bind its event channel and initialise it (the
 * attach and the reset). *enabled says whether the monitor was enabled, even on a later error:
 * the caller disables it. What was set up stays in @p r for xen_vm_ring_close. @return 0,
 * PTMON_EBUSY (a monitor holds the domain), PTMON_ENOTSUP (no vm_event here) or PTMON_EIO. */
int xen_vm_ring_open(const struct xen_ops *ops, struct xen_vm_ring *r, int *enabled);

/* Unbind and unmap what xen_vm_ring_open set up; the monitor stays enabled. */
void xen_vm_ring_close(const struct xen_ops *ops, struct xen_vm_ring *r);

struct ptmon_xen {
    struct xen_ops ops;
    ptmon_glue glue;
    ptmon *pm;
    uint32_t domid;
    unsigned mechanism;
    uint32_t nvcpus;
    int attached, ring_up;
    unsigned paused_by_us; /* glue pauses not yet resumed */
    uint64_t last_get_gfn;
    int last_get_xa; /* -1: none; the access get_access last read (the original to restore) */
    struct xen_vm_ring ring;
    struct xen_map map;
    /* batched rights changes, applied before responses are pushed / at flush */
    uint64_t *q_gfn;
    uint8_t *q_acc;
    size_t q_n, q_cap;
    /* every frame we restricted, with the access to restore (gfn-sorted insertion not needed) */
    uint64_t *r_gfn;
    uint8_t *r_orig;
    size_t r_n, r_cap;
    /* event in progress */
    const vm_event_request_t *inflight; /* consumed from the ring, not yet answered */
    const vm_event_request_t *cur;      /* the one the event handler works on */
    struct xen_pending pend;
    struct xen_reread *reread; /* per vCPU */
    /* ioreq mechanism */
    void *iopage;
    uint32_t *ioports; /* local port per vCPU */
    /* CPUID */
    ptmon_xen_cpuid_fn cpuid_fn;
    void *cpuid_ctx;
    uint32_t cpuid_leaf;
    int cpuid_on;
    /* observers */
    ptmon_xen_event_fn event_fn;
    void *event_ctx;
    ptmon_xen_frame_fn frame_fn;
    void *frame_ctx;
    ptmon_xen_stats stats;
};

/* xen_glue.c */
void xen_glue_fill(ptmon_xen *x);
int xen_rights_flush(ptmon_xen *x);
int xen_rights_restore_all(ptmon_xen *x);
int xen_rights_is_restricted(const ptmon_xen *x, uint64_t gfn);
/** A write fault on @p gfn, which we do not restrict: unless a change of ours is queued for it,
 *  its restriction was left by a dead monitor: give it Xen's default access (at the flush
 *  before the push). */
void xen_rights_repair_stale(ptmon_xen *x, uint64_t gfn);
int xen_read_gpa(ptmon_xen *x, uint64_t gpa, void *buf, size_t len);

/* xen_event.c */
int xen_event_handle(ptmon_xen *x, const vm_event_request_t *req, vm_event_response_t *rsp);
/** Answer without the engine (detach drains): unpause, re-execute, no emulation. */
void xen_event_answer_plain(const vm_event_request_t *req, vm_event_response_t *rsp);
void xen_event_flush_rereads(ptmon_xen *x);
/** Re-protect every frame relaxed after EMUL_UNIMPLEMENTED, re-reading it whole. */
void xen_event_reprotect_all(ptmon_xen *x);
/** Lift our restriction of @p gfn in Xen only (the frame stays ours). */
int xen_rights_relax_once(ptmon_xen *x, uint64_t gfn);
/** Put back what xen_rights_relax_once lifted. @return 1 if the frame is still ours. */
int xen_rights_reapply(ptmon_xen *x, uint64_t gfn);
/** Perform the pending write of the current event (emulate_write). @return 0 or PTMON_EBUSY. */
int xen_event_perform_pending(ptmon_xen *x, void *written);

/* xen_ioreq.c */
int xen_ioreq_setup(ptmon_xen *x);
void xen_ioreq_teardown(ptmon_xen *x);
/** Handle every ready ioreq (with the engine, or just performing the writes). */
int xen_ioreq_drain(ptmon_xen *x, int use_engine);

/* xen_ring.c */
int xen_ring_drain(ptmon_xen *x, int use_engine);
/** Publish the responses written so far and notify Xen (even if there are none new). */
void xen_ring_push(ptmon_xen *x);
/** Answer the request consumed and not yet answered (x->inflight) without the engine:
 *  re-execute it, or resume after it if its store was already made. For the emergency detach. */
void xen_ring_answer_current(ptmon_xen *x);
uint64_t xen_now_ns(void);
/** Count an answered request of @p kind that took @p ns, and tell the event observer. */
void xen_account_event(ptmon_xen *x, int kind, uint32_t vcpu, uint64_t gfn, uint64_t ns);

/* xen_attach.c: attach with a caller-supplied ops table (tests). */
/* The ops of the real libraries (xen_ops_real.c). */
int xen_ops_real_open(uint32_t domid, struct xen_ops *ops);

int xen_attach_ops(const ptmon_xen_config *cfg, const struct xen_ops *ops, ptmon_xen **out);
/* ptmon_xen_reset() on @p ops (the tests' fake hypervisor, or the real libraries). */
int xen_reset_ops(uint32_t domid, const struct xen_ops *ops, const uint64_t *gfns,
                  const uint32_t *access, size_t n, ptmon_xen_reset_result *res);

#endif /* PTMON_XEN_INTERNAL_H */
