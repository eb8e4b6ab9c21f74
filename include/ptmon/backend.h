/*
 * ptmon backend interface: what a hypervisor backend implements so ptmon can run on it.
 *
 * A backend fills in a struct ptmon_glue (start from PTMON_GLUE_INIT) and hands it to
 * ptmon_create(). The core never talks to the hypervisor in any other way.
 *
 * Versioning (as SQLite's sqlite3_vfs.iVersion): `version` says which members the struct has.
 * ptmon accepts any version from 1 to PTMON_GLUE_VERSION, reads only the members that version
 * defines and treats later ones as absent. New members are only ever appended, with a new
 * version; a backend compiled against an older header keeps working unchanged.
 *
 * Threading: ptmon calls the glue only from inside calls made on the instance, on the caller's
 * thread. A backend need not be re-entrant for one instance.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef PTMON_BACKEND_H
#define PTMON_BACKEND_H

#include <ptmon/ptmon.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Log levels for the log member. */
enum ptmon_log_level {
    PTMON_LOG_ERROR = 0,
    PTMON_LOG_WARN = 1,
    PTMON_LOG_INFO = 2,
    PTMON_LOG_DEBUG = 3,
};

/** vCPU registers ptmon may need (the paging mode). */
typedef struct ptmon_vcpu_regs {
    uint64_t cr0, cr3, cr4, efer;
} ptmon_vcpu_regs;

#define PTMON_GLUE_VERSION 2

/**
 * The backend contract. Every callback receives `backend` as its first argument and returns
 * 0 or a negative PTMON_E* code unless stated otherwise. A backend must never call back into
 * the same ptmon instance from inside a callback.
 *
 * Errors of read_gpa, get_access, set_access, set_access_batch, flush and emulate_write: exactly
 * PTMON_ERANGE for anything outside guest RAM; PTMON_EIO, PTMON_ENOMEM or PTMON_EBUSY for a
 * failure that may pass (ptmon retries at a later commit); PTMON_ENOTSUP from set_access,
 * set_access_batch or emulate_write for a change the backend cannot make. Anything else (a
 * plain -1, which is PTMON_EINVAL; an errno; a positive value) breaks the contract: ptmon logs
 * it once per member and takes it as PTMON_EIO. ptmon_glue_check() below finds such answers.
 */
typedef struct ptmon_glue {
    /* ---- version 1 ------------------------------------------------------------------ */

    /** PTMON_GLUE_VERSION the backend was written against. */
    unsigned version;

    /** Opaque pointer passed to every callback. */
    void *backend;

    /**
     * REQUIRED. Copy @p len bytes of guest-physical memory at @p gpa into @p buf.
     * Called by: the walker and the engine, whenever they read page-table entries.
     * Must: fail with PTMON_ERANGE (and leave @p buf unspecified) if any byte is outside
     * guest RAM (MMIO, holes, beyond the top); never block for long (no paging-in); read each
     * naturally aligned 4- or 8-byte entry with one load so a concurrent update is seen whole.
     * @p len is at most 4096 and the range never crosses a 4 KiB frame boundary.
     */
    int (*read_gpa)(void *backend, uint64_t gpa, void *buf, size_t len);

    /**
     * REQUIRED. Store the current access rights of frame @p gfn (GPA >> 12) in @p access:
     * PTMON_ACCESS_R/W/X plus any backend-private bits (PTMON_ACCESS_BACKEND_MASK).
     * Called by: the engine before it first restricts a frame, to restore it exactly later.
     * Must: fail with PTMON_ERANGE for frames outside guest RAM.
     */
    int (*get_access)(void *backend, uint64_t gfn, uint32_t *access);

    /**
     * REQUIRED. Set the access rights of frame @p gfn to @p access (a value get_access returned,
     * possibly with PTMON_ACCESS_W cleared). A change that takes a right away must be in force on
     * every vCPU when the call returns: ptmon reads the frame right after protecting it, and a
     * write another vCPU makes in between would be lost. A change that gives rights back may wait
     * until flush (or until the current event is answered).
     * Must: fail with PTMON_ERANGE for frames outside guest RAM; leave the frame unchanged on
     * failure.
     */
    int (*set_access)(void *backend, uint64_t gfn, uint32_t access);

    /**
     * OPTIONAL (NULL: ptmon calls set_access once per frame). Set the rights of @p n frames at
     * once: frame gfns[i] gets access[i]. On failure, returns the error and stores in @p done
     * how many leading entries were applied (entries after that are unchanged).
     */
    int (*set_access_batch)(void *backend, const uint64_t *gfns, const uint32_t *access, size_t n,
                            size_t *done);

    /**
     * OPTIONAL. Perform a guest write now, as if the vCPU had done it, without raising an event
     * for it (the backend bypasses the protection).
     * Called by: the engine for a PRE event it allows (then it answers PTMON_ACTION_EMULATED),
     * and to put back the old bytes when a POST write is denied.
     * If @p bytes is non-NULL, write those @p size bytes at @p gpa. If NULL, perform the pending
     * write of @p vcpu's current event (e.g. by emulating its instruction). In both cases, if
     * @p written is non-NULL, store there the @p size bytes memory holds afterwards (they may
     * differ from @p bytes if the backend merged a concurrent A/D-bit update atomically).
     * Must: write each naturally aligned entry atomically.
     */
    int (*emulate_write)(void *backend, uint32_t vcpu, uint64_t gpa, uint32_t size,
                         const void *bytes, void *written);

    /** OPTIONAL. Pause every vCPU (calls are paired with resume; a backend must take both or
     *  neither). ptmon 0.1 does not call it yet: placement is safe without pausing because it
     *  protects each table before reading it. Reserved for bulk operations. */
    int (*pause)(void *backend);

    /** OPTIONAL. Resume what pause paused. */
    int (*resume)(void *backend);

    /** OPTIONAL. Make every access change requested so far effective on every vCPU (e.g. apply
     *  a batch, invalidate EPT caches). Called once at the end of each ptmon call, or event,
     *  that changed rights (never when none changed). On failure ptmon logs the error and
     *  calls flush again at the end of its next call. */
    int (*flush)(void *backend);

    /** OPTIONAL. Fill @p regs with the registers of @p vcpu. Needed for PTMON_MODE_AUTO. */
    int (*get_vcpu_regs)(void *backend, uint32_t vcpu, ptmon_vcpu_regs *regs);

    /** OPTIONAL. Receive a log line (no trailing newline; valid only during the call). */
    void (*log)(void *backend, int level, const char *message);

    /**
     * OPTIONAL allocator (NULL: the C library's). One function in the style of lua_Alloc:
     * new_size == 0 frees @p ptr (returns NULL); otherwise (re)allocates @p ptr (NULL: a new
     * block) from @p old_size to @p new_size bytes and returns the block, or NULL on failure
     * (leaving @p ptr untouched). Lets tests inject allocation failures.
     */
    void *(*realloc)(void *backend, void *ptr, size_t old_size, size_t new_size);

    /* ---- version 2 ------------------------------------------------------------------ */

    /**
     * OPTIONAL, but every backend that can should set it. Store in @p bits the guest's
     * physical-address width, MAXPHYADDR, 32..52: what the guest's CPUID leaf 0x80000008
     * reports in EAX[7:0] (36 when the guest has no such leaf).
     * Called by: ptmon_create(), when the configuration leaves paging.maxphyaddr 0.
     * Why: address bits above the width are reserved; the CPU faults on an entry that sets
     * them, and ptmon must not report such an entry as a present translation. Without this
     * member ptmon assumes 52 bits and logs a warning.
     */
    int (*get_maxphyaddr)(void *backend, unsigned *bits);
} ptmon_glue;

/** Initialiser: the current version, every callback absent. */
#define PTMON_GLUE_INIT                                                                       \
    {                                                                                         \
        PTMON_GLUE_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
            NULL, NULL                                                                        \
    }

/**
 * The event entry point: the backend reports an access to a frame ptmon restricted (a write for
 * page-table monitoring; reads and executions for frame hooks).
 *
 * Called by: the backend, on the thread that owns the instance, once per access (a rep-string
 * range once per frame). Not from inside a glue callback.
 * PRE delivery: the access has not happened. The return value says what to do: ALLOW (perform
 * it), DENY (skip it), EMULATED (ptmon performed it through emulate_write).
 * POST delivery: the write already happened; ptmon restores the old entries itself (through
 * emulate_write) if a callback denies, and returns ALLOW.
 * An event for a frame ptmon no longer restricts (it was in flight when ptmon relaxed it) is
 * answered ALLOW.
 * Stack: a write into a watched table uses about 30 KiB of the caller's stack (the changes of a
 * store of up to a whole page are decoded without allocating); run it on a thread with more.
 *
 * @return an enum ptmon_action (>= 0), or a negative error: PTMON_EINVAL (NULL, size 0 or the
 *         range leaves its frame, unknown access or delivery).
 */
PTMON_EXTERN int ptmon_handle_event(ptmon *pm, const ptmon_mem_event *ev);

/* ===================================================================================== */
/* Glue conformance check                                                                */
/* ===================================================================================== */

#define PTMON_GLUE_CHECK_VERSION 1

/**
 * Where ptmon_glue_check() may look and touch. Initialise with PTMON_GLUE_CHECK_INIT.
 * Run the check on a guest that is paused (or not yet started), or with @ref scratch_gfn a frame
 * nothing else uses: it reads, changes and restores that frame's contents and rights.
 */
typedef struct ptmon_glue_check_config {
    unsigned version;     /**< PTMON_GLUE_CHECK_VERSION */
    uint64_t scratch_gfn; /**< a frame inside guest RAM the check may read, write and restrict
                               (its bytes and rights are put back) */
    uint64_t outside_gfn; /**< a frame outside guest RAM (MMIO hole or above the top) */
    uint32_t vcpu;        /**< the vCPU emulate_write and get_vcpu_regs are asked about */
} ptmon_glue_check_config;

#define PTMON_GLUE_CHECK_INIT             \
    {                                     \
        PTMON_GLUE_CHECK_VERSION, 0, 0, 0 \
    }

/**
 * Check that a backend's glue keeps the contract this header states, the way SQLite's test VFS
 * lets VFS authors test theirs: run it once against a real guest (or the backend's own test
 * double) before trusting the backend with ptmon.
 *
 * It checks, each as one named check with a line of @p report:
 * the glue imports (version, required members, pause/resume paired); read_gpa inside RAM
 * (whole frame, single entries, the last byte) and PTMON_ERANGE outside it; get_access and
 * set_access give PTMON_ERANGE outside RAM; rights round-trip (a removed write right reads back
 * removed, the saved rights restore exactly, backend bits included);
 * set_access_batch applies what it says it applied; flush succeeds; emulate_write with bytes
 * writes them, reports what memory holds and raises no event; get_vcpu_regs and get_maxphyaddr
 * answer in range; every error is a PTMON_E* code this header defines (a plain -1 or an errno
 * is reported as a failure, naming the member and the value).
 *
 * @param glue    the backend's glue, as it would be given to ptmon_create()
 * @param config  what the check may touch (PTMON_GLUE_CHECK_INIT, then the frames)
 * @param report  called with one line per check ("ok ..." or "FAIL ..."), may be NULL
 * @param ctx     passed to @p report
 * @return the number of failed checks (0: the glue conforms), or PTMON_EINVAL (NULL glue or
 *         config, unknown config version, @p scratch_gfn == @p outside_gfn).
 */
PTMON_EXTERN int ptmon_glue_check(const struct ptmon_glue *glue,
                                  const ptmon_glue_check_config *config, ptmon_write_fn report,
                                  void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* PTMON_BACKEND_H */
