/*
 * ptmon Xen backend: watches a Xen 4.17 HVM/PVH guest's page-table pages through the vm_event
 * mem_access interface (Intel EPT) and feeds the writes into a ptmon instance.
 *
 * Use:
 *   ptmon_xen *x; ptmon *pm;
 *   ptmon_xen_attach(&cfg, &x);                  // version check, ring, event channel
 *   ptmon_create(ptmon_xen_glue(x), NULL, &pm);  // the engine reads/protects through x
 *   ptmon_xen_set_instance(x, pm);
 *   ... ptmon_watch(pm, ...) ...
 *   while (running) ptmon_xen_poll(x, 100);      // handles events, calls your watch callbacks
 *   ptmon_xen_detach(x);                         // restores every frame, drains, unpauses
 *   ptmon_destroy(pm); ptmon_xen_free(x);
 *
 * Threading: one thread owns a ptmon_xen and its ptmon instance. Every write event is delivered
 * PRE-write: the backend decodes the faulting instruction, the engine decides, the backend performs
 * the store atomically and advances the vCPU (one ring round trip).
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef PTMON_XEN_H
#define PTMON_XEN_H

#include <ptmon/backend.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An attached Xen domain. Opaque. */
typedef struct ptmon_xen ptmon_xen;

#define PTMON_XEN_CONFIG_VERSION 1

/** Write-interception mechanisms. */
enum ptmon_xen_mechanism {
    PTMON_XEN_MECH_AUTO = 0,       /**< mem_access (the ioreq server is never chosen for you) */
    PTMON_XEN_MECH_MEM_ACCESS = 1, /**< vm_event mem_access (Intel EPT) */
    /** ioreq-server page type (any HAP host; writes only). Experimental: Xen 4.17 performs
     *  locked read-modify-writes on such frames non-atomically (unsafe with several vCPUs), and
     *  on AMD NPT a page walk through a trapped table can end in Xen's MMIO emulator and crash
     *  the guest (tests/xen-lab/README.md). */
    PTMON_XEN_MECH_IOREQ = 2,
};

/** Attach configuration. Start from PTMON_XEN_CONFIG_INIT. */
typedef struct ptmon_xen_config {
    unsigned version;   /**< PTMON_XEN_CONFIG_VERSION */
    uint32_t domid;     /**< the guest */
    unsigned mechanism; /**< enum ptmon_xen_mechanism */
    unsigned lru_pages; /**< mappings kept for reads of unprotected frames (0: 64) */
} ptmon_xen_config;

#define PTMON_XEN_CONFIG_INIT                               \
    {                                                       \
        PTMON_XEN_CONFIG_VERSION, 0, PTMON_XEN_MECH_AUTO, 0 \
    }

/** Event kinds counted in ptmon_xen_stats.events[]. */
enum ptmon_xen_event_kind {
    PTMON_XEN_EV_WRITE = 0,     /**< write decoded, handed to the engine, performed in place */
    PTMON_XEN_EV_DENIED,        /**< write decoded and denied (skipped) */
    PTMON_XEN_EV_EMULATE,       /**< instruction not handled: answered EMULATE, re-read later */
    PTMON_XEN_EV_RETRY,         /**< entry changed under the CAS: re-executed */
    PTMON_XEN_EV_IN_GPT,        /**< page-walker A/D fault, answered without the engine */
    PTMON_XEN_EV_STALE,         /**< frame no longer protected: re-executed */
    PTMON_XEN_EV_READ_EXEC,     /**< read or execute access (frame hooks) */
    PTMON_XEN_EV_CPUID,         /**< CPUID monitor event */
    PTMON_XEN_EV_UNIMPLEMENTED, /**< Xen could not emulate: frame opened for one instruction */
    PTMON_XEN_EV_OTHER,         /**< any other reason, or a malformed request */
    PTMON_XEN_EV_KINDS
};

#define PTMON_XEN_LATENCY_BUCKETS 16

/** Backend statistics. */
typedef struct ptmon_xen_stats {
    uint64_t events[PTMON_XEN_EV_KINDS];
    /** Per-event handling time (request read -> response written), bucket i counts events
     *  taking [2^i, 2^(i+1)) * 250 ns; the last bucket is open-ended. */
    uint64_t latency[PTMON_XEN_LATENCY_BUCKETS];
    uint64_t map_hits, map_misses; /**< guest-memory reads served by an existing mapping */
    uint64_t map_calls;            /**< foreign-map calls made */
    uint64_t protect_calls;        /**< batched set-mem-access calls */
    uint64_t batches;              /**< ring batches (notifications sent) */
    uint64_t protected_frames;     /**< frames currently restricted by the backend */
    /** frames found restricted by someone else (a monitor that died: Xen keeps p2m access
     *  when the ring goes) and given Xen's default access (rwx) back */
    uint64_t stale_frames;
} ptmon_xen_stats;

/**
 * Attach to a domain: open the Xen interfaces, check the vm_event interface version, refuse
 * dying domains, enable the monitor ring, bind its event channel and initialise the ring.
 * @return 0 and the handle in @p out; PTMON_EVERSION (interface or config version mismatch),
 *         PTMON_ENOENT (no such domain, or dying), PTMON_EBUSY (another monitor attached),
 *         PTMON_ENOTSUP (mechanism unavailable: no mem_access without Intel EPT), PTMON_EIO,
 *         PTMON_ENOMEM, PTMON_EINVAL. PTMON_XEN_MECH_AUTO is mem_access; the ioreq-server page
 *         type only when asked for (writes only: frame hooks on reads/executions get ENOTSUP).
 */
PTMON_EXTERN int ptmon_xen_attach(const ptmon_xen_config *cfg, ptmon_xen **out);

/** @return the glue to pass to ptmon_create() (valid while @p x lives). */
PTMON_EXTERN const ptmon_glue *ptmon_xen_glue(ptmon_xen *x);

/** @return the mechanism chosen at attach (PTMON_XEN_MECH_MEM_ACCESS or _IOREQ), 0 for NULL. */
PTMON_EXTERN unsigned ptmon_xen_mechanism(const ptmon_xen *x);

/** Tell the backend which instance receives the events (the one created on its glue). Detach
 *  (or set NULL) before destroying that instance: detach still reports pending re-reads to it. */
PTMON_EXTERN void ptmon_xen_set_instance(ptmon_xen *x, ptmon *pm);

/** Called for a CPUID event of the watched leaf; @p regs are the vCPU's registers. */
typedef void (*ptmon_xen_cpuid_fn)(void *ctx, uint32_t vcpu, uint32_t leaf,
                                   const ptmon_vcpu_regs *regs);

/**
 * Enable CPUID monitoring (mem_access mechanism only: the events come on the monitor ring) and
 * call @p fn for every CPUID with leaf @p leaf. Every CPUID of the guest, of any leaf, is
 * completed with the answer Xen computed for it from the domain's own policy: the guest sees
 * no difference, only each CPUID costs a round trip to the backend while monitoring is on.
 * @p fn NULL disables it. @return 0, PTMON_ENOTSUP (ioreq mechanism) or PTMON_EIO.
 */
PTMON_EXTERN int ptmon_xen_watch_cpuid(ptmon_xen *x, uint32_t leaf, ptmon_xen_cpuid_fn fn,
                                       void *ctx);

/**
 * Wait up to @p timeout_ms for events and handle every request on the ring (one batch: all
 * responses pushed, then one notification). @return the number of requests handled (>= 0),
 * or PTMON_EIO / PTMON_ENOENT (the domain died).
 */
PTMON_EXTERN int ptmon_xen_poll(ptmon_xen *x, int timeout_ms);

/**
 * Orderly detach: restore every frame's rights while the ring exists, drain with the guest
 * running until the ring stays empty, pause, drain again, disable the monitor (retrying on
 * EBUSY), unpause only if we paused. Safe to call twice. @return 0 or the first error.
 */
PTMON_EXTERN int ptmon_xen_detach(ptmon_xen *x);

/** Best-effort detach from a fatal-signal handler (not async-signal-safe; better than a hung
 *  guest): restore rights, answer the ring, disable. */
PTMON_EXTERN void ptmon_xen_emergency_detach(ptmon_xen *x);

/** What ptmon_xen_reset() found and did. */
typedef struct ptmon_xen_reset_result {
    int stale_monitor;       /**< a monitor ring was enabled (a monitor that died): now gone */
    uint32_t vcpus;          /**< vCPUs sent an unpause (only those left paused resume) */
    uint64_t frames_checked; /**< frames whose access was read */
    uint64_t frames_restored, frames_failed; /**< rights given back / that Xen refused */
    /** the domain is paused besides (the toolstack, or a ptmond killed while placing its
     *  watches, which pauses the domain): `xl unpause` it if that is not wanted */
    int domain_paused;
} ptmon_xen_reset_result;

/**
 * Recover domain @p domid from a monitor that died (ptmond killed, a crashed agent): the attach
 * then fails with PTMON_EBUSY, vCPUs that were waiting for its answer stay paused (on a 1-vCPU
 * guest the guest hangs) and the frames it write-protected stay so. With the domain paused: the
 * stale ring is disabled, a ring of our own answers every vCPU so that those left paused by
 * vm_event run again (re-executing the instruction they stopped at; Xen's paging and sharing,
 * which ptmon does not use, pause through the same count), and frames get their rights back:
 * frame gfns[i] the rights @p access[i] (PTMON_ACCESS_R/W/X, e.g. as recorded when restricted),
 * or, with @p gfns NULL, every frame of the domain's RAM found without write access gets rwx
 * (low RAM as libxl lays out HVM guests). A frame the list or the scan misses heals on its own
 * once the stale ring is gone: the backend attaches with access_required 0, and Xen then lifts a
 * restriction nobody answers for at its first fault. A write that the dead monitor had
 * performed without answering runs a second time. mem_access only: an ioreq server left by a
 * killed `--experimental-ioreq` run is not removed. Not while another agent monitors the
 * domain: its ring would be taken away.
 * @return 0 and @p res, PTMON_EINVAL, PTMON_ENOENT (no such domain, or dying), PTMON_EVERSION,
 *         PTMON_EBUSY (Xen will not disable the stale ring: more vCPUs wait for room in it than
 *         it has slots, and only answers on it would wake them; the domain cannot be recovered
 *         without restarting it), PTMON_EIO.
 */
PTMON_EXTERN int ptmon_xen_reset(uint32_t domid, const uint64_t *gfns, const uint32_t *access,
                                 size_t n, ptmon_xen_reset_result *res);

/** Free the handle (detaches first if still attached). NULL is ignored. */
PTMON_EXTERN void ptmon_xen_free(ptmon_xen *x);

/** Fill @p out. @return 0 or PTMON_EINVAL. */
PTMON_EXTERN int ptmon_xen_get_stats(const ptmon_xen *x, ptmon_xen_stats *out);

/** @return the number of vCPUs of the attached domain (max_vcpu_id + 1), 0 for NULL. */
PTMON_EXTERN uint32_t ptmon_xen_vcpus(const ptmon_xen *x);

/** Told of every request the backend answered: its kind, the vCPU, the frame it concerned
 *  (mem_access and ioreq writes; else 0) and the time from reading the request to writing
 *  the response, in ns (the clock of the host that runs the backend). */
typedef void (*ptmon_xen_event_fn)(void *ctx, enum ptmon_xen_event_kind kind, uint32_t vcpu,
                                   uint64_t gfn, uint64_t ns);

/** Register @p fn (NULL removes it). It is called from ptmon_xen_poll() and the detach's
 *  drain, on the thread that polls; it must not call the backend or the instance. */
PTMON_EXTERN void ptmon_xen_on_event(ptmon_xen *x, ptmon_xen_event_fn fn, void *ctx);

/** Told when the backend restricts a frame for the engine (@p restricted = 1; @p was names the
 *  access the frame had before: "rwx", "rx", ...) and when it gives a frame that access back
 *  (@p restricted = 0; not called for the restore of every frame at detach). */
typedef void (*ptmon_xen_frame_fn)(void *ctx, uint64_t gfn, int restricted, const char *was);

/** Register @p fn (NULL removes it). Called from inside the engine's calls: it must not call
 *  the backend or the instance. */
PTMON_EXTERN void ptmon_xen_on_frame(ptmon_xen *x, ptmon_xen_frame_fn fn, void *ctx);

/** @return a static name for an event kind ("write", "denied", ...). */
PTMON_EXTERN const char *ptmon_xen_event_kind_name(enum ptmon_xen_event_kind kind);

#ifdef __cplusplus
}
#endif

#endif /* PTMON_XEN_H */
