/*
 * The fake guest: a small x86 guest simulator to test, benchmark and demonstrate ptmon, and a
 * reusable tool for anyone writing code against ptmon's glue interface.
 *
 * It simulates:
 *  - guest RAM of a chosen size (GPA 0 .. ram_size-1; everything above is "outside RAM");
 *  - per-frame EPT rights (R/W/X plus backend bits, all RWX at start);
 *  - real x86 page tables in that RAM, in the paging mode chosen at creation, built by a
 *    page-table builder whose every change is a guest store (so it traps when protected);
 *  - guest stores of any shape (1..64 bytes at any offset, rep stos / rep movs ranges) that
 *    are reported to a registered handler when they hit a frame without W rights, in PRE-write
 *    mode (the handler decides; the write happens through emulate_write or not at all) or
 *    POST-write mode (the write is done, the handler is told);
 *  - a CPU page walker that sets A/D bits without any event (as Xen absorbs them);
 *  - a ptmon_glue implementation with per-operation call counters and fault injection.
 *
 * All state lives in the ptmon_fake object; nothing is global. Not thread-safe.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef PTMON_FAKE_H
#define PTMON_FAKE_H

#include <ptmon/backend.h>
#include <ptmon/trace.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ptmon_fake ptmon_fake;

#define PTMON_FAKE_CONFIG_VERSION 1

/** Fake guest configuration. Initialise with PTMON_FAKE_CONFIG_INIT. */
typedef struct ptmon_fake_config {
    unsigned version; /**< PTMON_FAKE_CONFIG_VERSION */
    uint64_t
        ram_size; /**< bytes of guest RAM, a multiple of 4096, at most 64 GiB and < 2^maxphyaddr */
    ptmon_paging paging;          /**< the guest's paging (mode must not be OFF or AUTO; flags only
                                       PSE and NXE; maxphyaddr 0 (= 52) or 32..52) */
    unsigned nr_vcpus;            /**< 1..64 */
    enum ptmon_delivery delivery; /**< how writes to protected frames are reported */
} ptmon_fake_config;

#define PTMON_FAKE_CONFIG_INIT                                                                \
    {                                                                                         \
        PTMON_FAKE_CONFIG_VERSION, 64ull << 20, {PTMON_MODE_4LEVEL, PTMON_PAGING_NXE, 46}, 1, \
            PTMON_DELIVERY_PRE                                                                \
    }

/**
 * Handler for accesses to frames whose rights forbid them (a write to a frame without
 * PTMON_ACCESS_W, ...). Returns an enum ptmon_action, or a negative error. A negative value, or
 * in PRE mode any value that is no action, is counted in PTMON_FAKE_STAT_HANDLER_ERRORS and the
 * fake performs the access as if allowed, like a hypervisor that fails open. In POST mode the
 * return value other than an error is ignored. A handler that answers EMULATED must have
 * performed the write through the glue's emulate_write: the fake does not check.
 */
typedef int (*ptmon_fake_handler)(void *ctx, const ptmon_mem_event *event);

/** Glue operations, for call counters and fault injection. */
enum ptmon_fake_op {
    PTMON_FAKE_OP_READ_GPA = 0,
    PTMON_FAKE_OP_GET_ACCESS,
    PTMON_FAKE_OP_SET_ACCESS,
    PTMON_FAKE_OP_SET_ACCESS_BATCH,
    PTMON_FAKE_OP_EMULATE_WRITE,
    PTMON_FAKE_OP_PAUSE,
    PTMON_FAKE_OP_RESUME,
    PTMON_FAKE_OP_FLUSH,
    PTMON_FAKE_OP_GET_VCPU_REGS,
    PTMON_FAKE_OP_LOG,
    PTMON_FAKE_OP_ALLOC, /**< realloc calls that allocate or grow (not frees) */
    PTMON_FAKE_OP_GET_MAXPHYADDR,
    PTMON_FAKE_OP_COUNT
};

/** Statistics of the simulation (not glue calls). */
enum ptmon_fake_stat {
    PTMON_FAKE_STAT_STORES = 0,     /**< guest store instructions executed (a rep op counts once) */
    PTMON_FAKE_STAT_EVENTS,         /**< events delivered to the handler */
    PTMON_FAKE_STAT_DENIED,         /**< PRE events answered DENY */
    PTMON_FAKE_STAT_EMULATED,       /**< PRE events answered EMULATED */
    PTMON_FAKE_STAT_UNHANDLED,      /**< violations with no handler registered (access done) */
    PTMON_FAKE_STAT_HANDLER_ERRORS, /**< handler returned a negative value */
    PTMON_FAKE_STAT_AD_UPDATES,     /**< A/D bits set by the simulated page walker */
    PTMON_FAKE_STAT_BYTES_ALLOCATED, /**< bytes currently allocated through the glue allocator */
    PTMON_FAKE_STAT_COUNT
};

/* ---- lifetime ------------------------------------------------------------------------- */

/**
 * Create a fake guest: zeroed RAM, every frame RWX, no page tables yet.
 * @return 0, PTMON_EINVAL (bad config / NULL), PTMON_EVERSION, PTMON_ENOTSUP (mode OFF/AUTO),
 *         PTMON_ENOMEM.
 */
PTMON_EXTERN int ptmon_fake_create(const ptmon_fake_config *config, ptmon_fake **out);

/** Free the fake guest. NULL is ignored. Instances using its glue must be destroyed first. */
PTMON_EXTERN void ptmon_fake_destroy(ptmon_fake *fake);

/**
 * @return the fake's glue (version PTMON_GLUE_VERSION, every member implemented). The struct
 * lives inside @p fake. Its realloc member counts bytes and can fail on demand.
 */
PTMON_EXTERN const ptmon_glue *ptmon_fake_glue(ptmon_fake *fake);

/** @return the configuration the fake was created with. */
PTMON_EXTERN const ptmon_fake_config *ptmon_fake_get_config(const ptmon_fake *fake);

/** Register the handler for protected-frame accesses (NULL removes it). */
PTMON_EXTERN void ptmon_fake_set_handler(ptmon_fake *fake, ptmon_fake_handler handler, void *ctx);

/** Change the delivery mode for later events. */
PTMON_EXTERN void ptmon_fake_set_delivery(ptmon_fake *fake, enum ptmon_delivery delivery);

/* ---- RAM as the hypervisor sees it (no EPT checks, no events, not counted) ------------- */

/** Copy guest RAM out. @return 0 or PTMON_ERANGE if any byte is outside RAM. */
PTMON_EXTERN int ptmon_fake_peek(const ptmon_fake *fake, uint64_t gpa, void *buf, size_t len);

/** Copy into guest RAM. @return 0 or PTMON_ERANGE. */
PTMON_EXTERN int ptmon_fake_poke(ptmon_fake *fake, uint64_t gpa, const void *buf, size_t len);

/** @return the little-endian 8-byte value at @p gpa (not counted), or 0 if outside RAM. */
PTMON_EXTERN uint64_t ptmon_fake_peek64(const ptmon_fake *fake, uint64_t gpa);

/* ---- frames -------------------------------------------------------------------------- */

/**
 * Allocate a zeroed 4 KiB guest frame from the fake's frame allocator (lowest free frame first,
 * frame 0 is never handed out by this call). @return 0 and its GPA in @p gpa, PTMON_ENOMEM
 * (no free frame) or PTMON_EINVAL (NULL argument).
 */
PTMON_EXTERN int ptmon_fake_alloc_frame(ptmon_fake *fake, uint64_t *gpa);

/** Mark the frame at @p gpa (any frame, frame 0 included) used and zero it.
 *  @return 0, PTMON_ERANGE, PTMON_EEXIST if already allocated. */
PTMON_EXTERN int ptmon_fake_claim_frame(ptmon_fake *fake, uint64_t gpa);

/** Return a frame to the allocator (its contents are kept until it is handed out again).
 *  @return 0, PTMON_ERANGE, PTMON_ENOENT if the frame is not allocated. */
PTMON_EXTERN int ptmon_fake_free_frame(ptmon_fake *fake, uint64_t gpa);

/** @return the current access rights of frame @p gfn (not counted), or 0 outside RAM. */
PTMON_EXTERN uint32_t ptmon_fake_rights(const ptmon_fake *fake, uint64_t gfn);

/** Set frame rights directly, as another agent would (not counted). @return 0 or PTMON_ERANGE. */
PTMON_EXTERN int ptmon_fake_set_rights(ptmon_fake *fake, uint64_t gfn, uint32_t access);

/** @return the number of frames whose rights lack PTMON_ACCESS_W. */
PTMON_EXTERN uint64_t ptmon_fake_count_write_protected(const ptmon_fake *fake);

/* ---- guest stores (EPT-checked: a store into a frame without W is reported) -------------- */

/**
 * One store instruction by @p vcpu of @p size bytes (1..64) at @p gpa (any alignment).
 * A store that crosses a frame boundary is delivered as one event per frame, in address order;
 * each frame's part is decided on its own (a denied part does not stop the later parts).
 * @return 0 when the store was performed, PTMON_EDENIED when the handler denied (part of) it,
 *         PTMON_ERANGE (outside RAM, nothing written), PTMON_EINVAL.
 */
PTMON_EXTERN int ptmon_fake_store(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, const void *bytes,
                                  uint32_t size);

/** ptmon_fake_store of a little-endian integer of @p size (1, 2, 4 or 8) bytes. */
PTMON_EXTERN int ptmon_fake_store_int(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, uint64_t value,
                                      uint32_t size);

/**
 * `rep stos`: store @p count elements of @p elem_size (1, 2, 4, 8) bytes, each @p value, from
 * @p gpa upwards. Delivered as one event per frame touched (covering that frame's whole part of
 * the range). @return as ptmon_fake_store; PTMON_EINVAL also for a range over 16 MiB.
 */
PTMON_EXTERN int ptmon_fake_rep_stos(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, uint64_t value,
                                     uint32_t elem_size, uint64_t count);

/** `rep movs`: copy @p count elements of @p elem_size bytes from @p src to @p dst (forward,
 *  non-overlapping), delivered like rep_stos. @return as rep_stos, or PTMON_ENOMEM if the
 *  fake cannot allocate its copy buffer. */
PTMON_EXTERN int ptmon_fake_rep_movs(ptmon_fake *fake, uint32_t vcpu, uint64_t dst, uint64_t src,
                                     uint32_t elem_size, uint64_t count);

/* ---- simulated CPU -------------------------------------------------------------------- */

/** Set / get the CR3 of a vCPU (reported through get_vcpu_regs). */
PTMON_EXTERN int ptmon_fake_set_cr3(ptmon_fake *fake, uint32_t vcpu, uint64_t cr3);
PTMON_EXTERN uint64_t ptmon_fake_get_cr3(const ptmon_fake *fake, uint32_t vcpu);

/** Access kinds for ptmon_fake_cpu_access. */
enum ptmon_fake_cpu_access {
    PTMON_FAKE_CPU_READ = 0,
    PTMON_FAKE_CPU_WRITE = 1,
    PTMON_FAKE_CPU_EXEC = 2,
    PTMON_FAKE_CPU_USER = 4, /**< or-ed in: the access is from user mode */
};

/**
 * Translate @p va as the CPU would for an access of kind @p how (PTMON_FAKE_CPU_*), setting
 * A in every entry used and D in the leaf for writes, directly (never an event, counted in
 * PTMON_FAKE_STAT_AD_UPDATES). Rights are checked (CR0.WP=1 semantics; NX only with NXE).
 * PTMON_FAKE_STAT_AD_UPDATES counts the A/D bits that went from 0 to 1. A PAE PDPTE never
 * gets A (it has no such bit).
 * @return 0 and the GPA in @p gpa; PTMON_ENOTPRESENT for a not-present or reserved-bit entry,
 *         a rights violation or a table outside RAM (no A/D bits are set then); PTMON_EINVAL
 *         for a bad @p how or a VA the mode cannot translate (non-canonical, or >= 4 GiB in
 *         32-bit/PAE paging: a #GP, not a page fault).
 */
PTMON_EXTERN int ptmon_fake_cpu_access(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned how,
                                       uint64_t *gpa);

/* ---- page-table builder --------------------------------------------------------------- */
/*
 * Every change the builder makes to an existing table is a guest store by vCPU 0 of one whole
 * entry (4 or 8 bytes, aligned), so it traps like the guest's own. New tables are filled while
 * still unreachable and then linked with one store. Upper-level entries the builder creates
 * are P|RW|US (the leaf carries the restrictions). Builder calls return 0, PTMON_EDENIED (a
 * store was denied: nothing else was changed), PTMON_ENOMEM (no free frame), PTMON_EINVAL
 * (bad size/alignment/level), PTMON_ENOTPRESENT (the path above is missing or is a large page
 * where a table is needed), PTMON_ERANGE.
 */

/** Allocate and zero a new root table (PAE: a 32-byte PDPT at the start of a new frame).
 *  @return 0 and the CR3 value in @p cr3. */
PTMON_EXTERN int ptmon_fake_new_root(ptmon_fake *fake, uint64_t *cr3);

/**
 * Map @p va to the page at @p gpa of @p page_size (4 KiB; 2 MiB or 1 GiB in PAE/IA-32e modes
 * where allowed; 4 MiB in 32-bit mode), creating missing tables. @p leaf_bits are the leaf's
 * bits other than the address and PS (PTMON_PTE_P is implied; RW, US, NX, G, PCD, ...), placed
 * as given: for a 4 KiB page bit 7 is PAT; for a large page the builder sets PS (bit 7 in
 * @p leaf_bits is PTMON_EINVAL) and PAT is bit 12. Bits 51:12 (51:13 for a large page; 31:12
 * and 31:13 in 32-bit paging, where bits above 31 do not exist) are PTMON_EINVAL. A 4 MiB page
 * above 4 GiB is encoded with the PSE-36 bits. Replaces whatever entry was at the leaf's level
 * (a table it pointed to is not freed).
 */
PTMON_EXTERN int ptmon_fake_map(ptmon_fake *fake, uint64_t cr3, uint64_t va, uint64_t gpa,
                                uint64_t page_size, uint64_t leaf_bits);

/** Clear the leaf entry translating @p va (the whole entry becomes 0). */
PTMON_EXTERN int ptmon_fake_unmap(ptmon_fake *fake, uint64_t cr3, uint64_t va);

/**
 * Split the large page that maps @p va into a new table of small pages with the same frames
 * and bits (A/D/G/NX/... kept; PAT moved to bit 7 of the PTEs; a 1 GiB page becomes 512 2 MiB
 * pages). The new table's PTEs get @p clear_bits removed (e.g. PTMON_PTE_P to split into
 * not-present entries). The large entry is replaced by a pointer to the new table with
 * P|RW|US plus the large entry's A bit (the new leaves carry every restriction, so the
 * translation's rights are unchanged). @return 0 and the new table's GPA in @p table_gpa (may
 * be NULL); PTMON_EINVAL if the leaf is a 4 KiB page or a 4 MiB page above 4 GiB (no 32-bit
 * PTE can map it).
 */
PTMON_EXTERN int ptmon_fake_split(ptmon_fake *fake, uint64_t cr3, uint64_t va, uint64_t clear_bits,
                                  uint64_t *table_gpa);

/**
 * Merge the table under the entry at @p level (2 or 3) on the path of @p va into one large
 * page whose frame is the one the first entry of that table maps, rounded down to the large
 * page size, and whose bits are that entry's (a PTE's PAT moves to bit 12; PS is set). The
 * table frame is not freed. PTMON_EINVAL if the mode has no large page at @p level;
 * PTMON_ENOTPRESENT if that entry is not a table pointer or the table's first entry is not a
 * present leaf.
 */
PTMON_EXTERN int ptmon_fake_merge(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level);

/**
 * @return 0 and the GPA of the entry at @p level on the path of @p va in @p entry_gpa. Every
 * level above must be a present table pointer (no reserved bits).
 */
PTMON_EXTERN int ptmon_fake_entry_gpa(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level,
                                      uint64_t *entry_gpa);

/** Read the entry at @p level on the path of @p va (not counted, no A/D update). */
PTMON_EXTERN int ptmon_fake_get_entry(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level,
                                      uint64_t *value);

/** Store @p value (any bits, reserved ones included) into the entry at @p level on the path
 *  of @p va, as one guest store. In 32-bit paging a value wider than 32 bits is PTMON_EINVAL. */
PTMON_EXTERN int ptmon_fake_set_entry(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level,
                                      uint64_t value);

/**
 * Point the entry at @p level on the path of @p va to the existing table at @p table_gpa (a
 * frame-aligned GPA, or any GPA at all, outside RAM included: the builder does not check) with
 * @p bits (P is implied; stored as table_gpa | bits | P, as ptmon_fake_set_entry would).
 * Builds aliased tables, loops and tables outside RAM.
 */
PTMON_EXTERN int ptmon_fake_link(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level,
                                 uint64_t table_gpa, uint64_t bits);

/** Make root entry @p index point to the root table itself (P|RW): the Windows self-map.
 *  Not available in PAE mode (PTMON_ENOTSUP). */
PTMON_EXTERN int ptmon_fake_self_map(ptmon_fake *fake, uint64_t cr3, unsigned index);

/* ---- counters and fault injection ------------------------------------------------------- */

/** @return how many times glue operation @p op was called since creation or the last reset. */
PTMON_EXTERN uint64_t ptmon_fake_calls(const ptmon_fake *fake, enum ptmon_fake_op op);

/** Zero every glue-call counter. */
PTMON_EXTERN void ptmon_fake_reset_calls(ptmon_fake *fake);

/** @return a simulation statistic. */
PTMON_EXTERN uint64_t ptmon_fake_stat(const ptmon_fake *fake, enum ptmon_fake_stat stat);

/** @return a static name for a glue operation ("read_gpa", ...). */
PTMON_EXTERN const char *ptmon_fake_op_name(enum ptmon_fake_op op);

/**
 * Make the @p nth next call (1 = the very next) of glue operation @p op fail with @p error
 * (a negative PTMON_E* code; for PTMON_FAKE_OP_ALLOC the allocation returns NULL, for LOG the
 * line is dropped). One shot: later calls succeed. Arming again replaces the previous setting;
 * @p nth = 0 disarms. A non-negative @p error is replaced by PTMON_EIO. A call counts toward
 * @p nth even if it would have failed anyway; realloc frees and shrinks are not calls of
 * PTMON_FAKE_OP_ALLOC and never fail.
 */
PTMON_EXTERN void ptmon_fake_fail_nth(ptmon_fake *fake, enum ptmon_fake_op op, uint64_t nth,
                                      int error);

/**
 * Like ptmon_fake_fail_nth, but the @p count calls from the @p nth on fail (UINT64_MAX: every
 * call from then on, until disarmed with @p count or @p nth = 0): a resource that stays broken.
 */
PTMON_EXTERN void ptmon_fake_fail_calls(ptmon_fake *fake, enum ptmon_fake_op op, uint64_t nth,
                                        uint64_t count, int error);

/** @return 1 if the injected failure armed for @p op has fired since it was armed, else 0. */
PTMON_EXTERN int ptmon_fake_failure_fired(const ptmon_fake *fake, enum ptmon_fake_op op);

/** Log lines received through the glue are kept here (the last one, truncated to 255
 *  bytes), for tests. */
PTMON_EXTERN const char *ptmon_fake_last_log(const ptmon_fake *fake);

/** @return how many glue pause calls are not yet matched by a resume (resume at 0 fails with
 *  PTMON_EINVAL). */
PTMON_EXTERN unsigned ptmon_fake_pause_depth(const ptmon_fake *fake);

/* ---- replay of a trace (<ptmon/trace.h>) ----------------------------------------------- */

/** What a replay did and how it compares with the recording. */
typedef struct ptmon_fake_replay_result {
    uint64_t records;            /**< records read */
    uint64_t calls;              /**< instance calls replayed (watch, unwatch, event, ...) */
    uint64_t events;             /**< of which ptmon_handle_event */
    uint64_t facts;              /**< FRAME and MEM records put into the fake's RAM */
    uint64_t failures;           /**< recorded backend failures injected again */
    uint64_t callbacks;          /**< callbacks the replayed instance made */
    uint64_t callbacks_recorded; /**< callbacks the recording holds */
    /** Differences between the replay and the recording (a result, an action, a callback
     *  made or not made, its change, a recorded failure not met again): 0 means the replay
     *  reproduced the recording exactly. */
    uint64_t divergences;
    int complete;               /**< 1 when the trace ended with its END record */
    char first_divergence[256]; /**< a description of the first divergence, or "" */
} ptmon_fake_replay_result;

/** What a replay tells its caller as it goes. Every member may be NULL. */
typedef struct ptmon_fake_replay_observer {
    /** A callback of the replayed instance, with the answer it gives (the one the recording
     *  holds) and the time of the call that caused it (ns since the recorded instance was
     *  created: an event's time, else the last event's). */
    void (*change)(void *ctx, const ptmon_change *change, int action, uint64_t time_ns);
    /** A recorded call was made again (after its callbacks): @p call is its record, @p result
     *  what the replayed call returned (ptmon_check: the findings). */
    void (*call)(void *ctx, const ptmon_trace_record *call, int result);
    void *ctx;
} ptmon_fake_replay_observer;

/**
 * Replay the trace @p trace (@p len bytes) on a new fake guest: its RAM gets the frames and
 * bytes the trace records, an instance with the recorded paging, caps and glue members is
 * created on it, and every recorded call is made again in order, with the recorded backend
 * failures injected where they happened and each callback answered as it was answered then.
 * Everything the replay creates is freed before it returns.
 * @param obs  told of every callback and call (NULL: no one)
 * @param[out] res  counts and the comparison; filled in also when an error is returned
 * @return 0 when the trace was replayed to its end (res->divergences says whether it matched),
 *         PTMON_EINVAL (NULL argument, malformed trace: res->first_divergence says where),
 *         PTMON_ENOTSUP (the trace holds what a replay cannot do: frame hooks, calls made from
 *         callbacks, a PRE write of unknown bytes, RAM beyond 64 GiB), PTMON_ENOMEM.
 */
PTMON_EXTERN int ptmon_fake_replay(const void *trace, size_t len,
                                   const ptmon_fake_replay_observer *obs,
                                   ptmon_fake_replay_result *res);

#ifdef __cplusplus
}
#endif

#endif /* PTMON_FAKE_H */
