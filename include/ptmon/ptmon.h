/*
 * ptmon — guest page-table monitoring for hypervisor-based memory introspection.
 *
 * This is the API for introspection agents. Backend authors (code that connects ptmon to a
 * hypervisor) also need <ptmon/backend.h>.
 *
 * Conventions (as in libuv):
 *  - every function that can fail returns 0 on success or a negative PTMON_E* code;
 *    ptmon_strerror() turns a code into a message;
 *  - memory passed in is owned by the caller and only read during the call;
 *  - an instance (ptmon) is NOT thread-safe: serialise all calls on one instance. Separate
 *    instances share nothing and may be used from different threads at once.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef PTMON_PTMON_H
#define PTMON_PTMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PTMON_STATIC)
#define PTMON_EXTERN
#elif defined(__GNUC__)
#define PTMON_EXTERN __attribute__((visibility("default")))
#else
#define PTMON_EXTERN
#endif

/* ===================================================================================== */
/* Version                                                                               */
/* ===================================================================================== */

#define PTMON_VERSION_MAJOR 0
#define PTMON_VERSION_MINOR 1
#define PTMON_VERSION_PATCH 0
/** The compile-time version as one number: major * 10000 + minor * 100 + patch. */
#define PTMON_VERSION_NUMBER \
    (PTMON_VERSION_MAJOR * 10000 + PTMON_VERSION_MINOR * 100 + PTMON_VERSION_PATCH)

/** @return the run-time library version as PTMON_VERSION_NUMBER encodes it. */
PTMON_EXTERN unsigned ptmon_version(void);

/** @return the run-time library version as a static string, e.g. "0.1.0". */
PTMON_EXTERN const char *ptmon_version_string(void);

/* ===================================================================================== */
/* Errors                                                                                */
/* ===================================================================================== */

/* X-macro: name, value, message. Values are stable; new codes are only ever appended. */
#define PTMON_ERRNO_MAP(XX)                                    \
    XX(EINVAL, -1, "invalid argument")                         \
    XX(ENOMEM, -2, "out of memory")                            \
    XX(EVERSION, -3, "unsupported structure version")          \
    XX(ENOTSUP, -4, "operation or paging mode not supported")  \
    XX(ERANGE, -5, "guest-physical address outside guest RAM") \
    XX(EIO, -6, "backend (hypervisor) call failed")            \
    XX(ENOENT, -7, "no such object")                           \
    XX(EEXIST, -8, "object already exists")                    \
    XX(EBUSY, -9, "resource busy")                             \
    XX(ELIMIT, -10, "configured limit reached")                \
    XX(ENOTPRESENT, -11, "translation not present")            \
    XX(EDENIED, -12, "write denied")                           \
    XX(ENOCALLBACK, -13, "required backend callback missing")

/** Error codes. Every failing function returns one of these (always negative). */
enum ptmon_error {
    PTMON_OK = 0,
#define PTMON_ERR_ENUM_(name, value, msg) PTMON_##name = (value),
    PTMON_ERRNO_MAP(PTMON_ERR_ENUM_)
#undef PTMON_ERR_ENUM_
};

/**
 * @return a human-readable message for @p err (0 or a PTMON_E* code). Unknown codes give
 *         "unknown error". The string is static and must not be freed.
 */
PTMON_EXTERN const char *ptmon_strerror(int err);

/** @return the symbolic name of @p err ("PTMON_ENOMEM", "PTMON_OK", ...), or "PTMON_E?" if unknown.
 */
PTMON_EXTERN const char *ptmon_err_name(int err);

/* ===================================================================================== */
/* x86 paging structures                                                                 */
/* ===================================================================================== */

/* Bits of a paging-structure entry (the same positions in 32-bit, PAE, 4- and 5-level
 * entries; NX exists only in 64-bit entries and only when EFER.NXE is set). */
#define PTMON_PTE_P   (1ull << 0)  /**< present */
#define PTMON_PTE_RW  (1ull << 1)  /**< writable */
#define PTMON_PTE_US  (1ull << 2)  /**< user-accessible */
#define PTMON_PTE_PWT (1ull << 3)  /**< page-level write-through */
#define PTMON_PTE_PCD (1ull << 4)  /**< page-level cache disable */
#define PTMON_PTE_A   (1ull << 5)  /**< accessed (set by the CPU's page walker) */
#define PTMON_PTE_D   (1ull << 6)  /**< dirty (leaf entries only) */
#define PTMON_PTE_PS  (1ull << 7)  /**< page size in PDEs/PDPTEs; PAT in PTEs */
#define PTMON_PTE_G   (1ull << 8)  /**< global (leaf entries only) */
#define PTMON_PTE_NX  (1ull << 63) /**< execute-disable (64-bit entries, EFER.NXE=1) */

/** Paging levels, numbered as in the Intel SDM. PTMON_MAX_LEVELS is the highest (LA57). */
enum ptmon_level {
    PTMON_LEVEL_PT = 1,   /**< page table: entries map 4 KiB pages */
    PTMON_LEVEL_PD = 2,   /**< page directory: 2 MiB (4 MiB in 32-bit paging) pages or tables */
    PTMON_LEVEL_PDPT = 3, /**< page-directory-pointer table: 1 GiB pages or tables */
    PTMON_LEVEL_PML4 = 4,
    PTMON_LEVEL_PML5 = 5,
};
#define PTMON_MAX_LEVELS 5

/** The paging mode of the guest: how its page tables are laid out. */
enum ptmon_paging_mode {
    PTMON_MODE_OFF = 0,    /**< paging disabled (CR0.PG=0): nothing can be watched */
    PTMON_MODE_32BIT = 1,  /**< legacy 32-bit paging: 4-byte entries, PD and PT */
    PTMON_MODE_PAE = 2,    /**< PAE: 8-byte entries, 4-entry PDPT, PD, PT */
    PTMON_MODE_4LEVEL = 3, /**< IA-32e 4-level paging (PML4) */
    PTMON_MODE_5LEVEL = 4, /**< IA-32e 5-level paging (PML5, CR4.LA57) */
    PTMON_MODE_AUTO = 5,   /**< only in ptmon_config: ask the backend for vCPU 0's registers */
};

/** Flags of struct ptmon_paging. */
enum ptmon_paging_flags {
    PTMON_PAGING_PSE = 1u << 0, /**< CR4.PSE: 4 MiB pages in 32-bit paging (PSE-36 address bits) */
    PTMON_PAGING_NXE = 1u << 1, /**< EFER.NXE: bit 63 is execute-disable; reserved otherwise */
};

/** Everything the walker needs to know about the guest's paging. */
typedef struct ptmon_paging {
    enum ptmon_paging_mode mode;
    unsigned flags; /**< PTMON_PAGING_* */
    /** physical-address width in bits, 32..52 (CPUID 0x80000008). 0: in ptmon_config, ask the
     *  backend (see ptmon_config.paging); for ptmon_paging_from_regs, 52 */
    unsigned maxphyaddr;
} ptmon_paging;

/**
 * Derive the paging mode from control registers, as the CPU does.
 *
 * CR0.PG=0 gives PTMON_MODE_OFF; CR4.PAE=0 gives 32-bit paging (PSE flag from CR4.PSE);
 * EFER.LMA=0 with CR4.PAE=1 gives PAE; EFER.LMA=1 gives 4-level, or 5-level with CR4.LA57.
 * EFER.NXE sets PTMON_PAGING_NXE for PAE and IA-32e modes.
 *
 * @param cr0, cr4, efer  the vCPU's registers
 * @param maxphyaddr      physical-address width in bits (32..52), or 0 for 52
 * @param[out] out        the result
 * @return 0, or PTMON_EINVAL for a combination the CPU refuses (EFER.LMA without CR4.PAE or
 *         without CR0.PG, maxphyaddr outside 32..52 and not 0, NULL @p out).
 */
PTMON_EXTERN int ptmon_paging_from_regs(uint64_t cr0, uint64_t cr4, uint64_t efer,
                                        unsigned maxphyaddr, ptmon_paging *out);

/** @return the number of paging levels of @p mode (2, 3, 4, 5), or 0 for OFF/AUTO/unknown. */
PTMON_EXTERN unsigned ptmon_paging_levels(enum ptmon_paging_mode mode);

/** @return a static name for @p mode: "off", "32-bit", "PAE", "4-level", "5-level", "auto". */
PTMON_EXTERN const char *ptmon_paging_mode_name(enum ptmon_paging_mode mode);

/* ===================================================================================== */
/* Guest memory accesses                                                                 */
/* ===================================================================================== */

/** Frame access rights (EPT/NPT permissions) as ptmon sees them. */
enum ptmon_access {
    PTMON_ACCESS_R = 1u << 0,
    PTMON_ACCESS_W = 1u << 1,
    PTMON_ACCESS_X = 1u << 2,
    PTMON_ACCESS_RWX = 7u,
};
/** Bits a backend may use for its own state (a Xen access type, a p2m type). ptmon never
 *  interprets them; it restores them exactly as get_access returned them. */
#define PTMON_ACCESS_BACKEND_MASK 0xffffff00u

/** How a backend delivers a write into a protected frame. */
enum ptmon_delivery {
    /** Before the write happens: the bytes are the NEW bytes (or unknown), and the answer
     *  decides whether it happens. */
    PTMON_DELIVERY_PRE = 0,
    /** After the write happened: memory already holds the new bytes. */
    PTMON_DELIVERY_POST = 1,
};

/** What the backend must do with the access it reported. */
enum ptmon_action {
    PTMON_ACTION_ALLOW = 0,    /**< PRE: perform the write (or let the vCPU retry it unprotected) */
    PTMON_ACTION_DENY = 1,     /**< PRE: skip the write (advance past the instruction) */
    PTMON_ACTION_EMULATED = 2, /**< PRE: ptmon already performed it through emulate_write */
};

/**
 * One access to a protected frame, as a backend reports it. The fake guest delivers exactly this
 * structure; the event entry point of the watch engine takes it.
 */
typedef struct ptmon_mem_event {
    uint32_t vcpu;     /**< the vCPU that made the access */
    uint32_t access;   /**< PTMON_ACCESS_R, _W or _X: the kind of access that faulted */
    uint64_t gpa;      /**< first byte accessed */
    uint32_t size;     /**< bytes accessed (1..4096; a rep-string range may cover many entries) */
    uint32_t delivery; /**< enum ptmon_delivery */
    /** For writes. PRE: the bytes about to be written, or NULL if the backend does not know
     *  them (then ptmon asks emulate_write to perform the write and report them). POST: the
     *  bytes now in memory, or NULL (ptmon re-reads guest memory). */
    const void *bytes;
} ptmon_mem_event;

/** @return the name of an action ("allow", "deny", "emulated"), or "?" */
PTMON_EXTERN const char *ptmon_action_name(enum ptmon_action action);

/* ===================================================================================== */
/* Instance                                                                              */
/* ===================================================================================== */

/** One ptmon instance per guest. Opaque. */
typedef struct ptmon ptmon;

/** The backend's callbacks; defined in <ptmon/backend.h>. Agents get one from a backend. */
struct ptmon_glue;
/** Where a recording goes; defined in <ptmon/trace.h>. */
struct ptmon_trace_sink;

#define PTMON_CONFIG_VERSION 3

/** Instance configuration. Initialise with PTMON_CONFIG_INIT, then change what you need.
 *  Members are only ever appended; a caller's older version gets defaults for the rest. */
typedef struct ptmon_config {
    unsigned version; /**< PTMON_CONFIG_VERSION (any value from 1 to it is accepted) */
    /** The guest's paging. PTMON_MODE_AUTO asks the backend (get_vcpu_regs of vCPU 0; flags
     *  must then be 0). maxphyaddr 0 asks the backend too (glue get_maxphyaddr: the guest's
     *  CPUID), or means 52 with a warning for a backend that cannot say. Flags the mode has no
     *  use for (PSE outside 32-bit paging, NXE in it) are refused. */
    ptmon_paging paging;

    /* ---- version 2 ---- */

    /** At most this many entry nodes (0: no limit). The guest decides how many nodes a set of
     *  watches needs (aliasing, remaps): a cap bounds what it can make ptmon allocate. Reaching
     *  it makes ptmon_watch fail with PTMON_ELIMIT; inside an event the watches that cannot be
     *  re-placed keep their last record and are completed (and told) at a later commit, once
     *  there is room. */
    uint64_t max_nodes;
    /** At most this many table records, i.e. write-protected page-table frames (0: no limit).
     *  Same behaviour as max_nodes. */
    uint64_t max_tables;

    /* ---- version 3 ---- */

    /** Record a trace of the instance's life into this sink (see <ptmon/trace.h>), from
     *  creation to ptmon_destroy; NULL: no recording. The sink struct is copied; what its ctx
     *  points to must outlive the instance. */
    const struct ptmon_trace_sink *trace;
} ptmon_config;

#define PTMON_CONFIG_INIT                                         \
    {                                                             \
        PTMON_CONFIG_VERSION, {PTMON_MODE_AUTO, 0, 0}, 0, 0, NULL \
    }

/**
 * Create an instance for one guest.
 *
 * The glue struct is copied (only the members its version has); the backend object it points
 * to must outlive the instance.
 *
 * @param glue    the backend's callbacks (see <ptmon/backend.h>)
 * @param config  configuration, or NULL for PTMON_CONFIG_INIT
 * @param[out] out the new instance; set to NULL on failure
 * @return 0; PTMON_EINVAL (NULL argument, bad paging values: named in a debug log line),
 *         PTMON_EVERSION (glue or config version 0 or newer than this library),
 *         PTMON_ENOCALLBACK (a required glue member is
 *         NULL, or PTMON_MODE_AUTO without get_vcpu_regs), PTMON_ENOTSUP (paging is off),
 *         PTMON_ENOMEM, or the error of get_vcpu_regs.
 */
PTMON_EXTERN int ptmon_create(const struct ptmon_glue *glue, const ptmon_config *config,
                              ptmon **out);

/**
 * Destroy an instance and free everything it owns. NULL is accepted and ignored.
 * Every frame gets back the rights ptmon took from it (glue set_access, then flush), so the
 * backend must still work during the call; a frame it cannot restore is logged. No callback is
 * called and no guest memory is read. Not from inside a callback of this instance.
 */
PTMON_EXTERN void ptmon_destroy(ptmon *pm);

/** @return the instance's paging (resolved: never PTMON_MODE_AUTO). */
PTMON_EXTERN ptmon_paging ptmon_get_paging(const ptmon *pm);

/* ===================================================================================== */
/* Frame hooks                                                                           */
/* ===================================================================================== */

/** A hook on a range of guest-physical memory. Opaque; owned by the instance. */
typedef struct ptmon_hook ptmon_hook;

/**
 * Called for a guest access to a hooked range (from inside ptmon_handle_event()).
 * @return PTMON_ACTION_ALLOW, or PTMON_ACTION_DENY to veto a PRE-delivered write (ignored for
 *         reads, executions and POST-delivered writes, which have already happened).
 * The callback may add and remove hooks (its own included); a removed hook is not called again.
 */
typedef int (*ptmon_hook_fn)(ptmon *pm, ptmon_hook *hook, void *ctx, const ptmon_mem_event *ev);

/**
 * Hook the guest-physical range [gpa, gpa + len), which must lie within one 4 KiB frame, for the
 * accesses in @p access (PTMON_ACCESS_R/W/X, at least one). The frame's rights are restricted
 * through the backend at once (a read hook also removes write access: EPT cannot express
 * write-without-read); the rights the frame had before ptmon first restricted it are restored
 * exactly once no hook needs the restriction any more (at the next commit).
 *
 * @return 0 and the hook in @p out; PTMON_EINVAL (bad range or access, NULL argument),
 *         PTMON_ERANGE (frame outside guest RAM), PTMON_ENOMEM, or the backend's error. On
 *         error nothing changed.
 */
PTMON_EXTERN int ptmon_hook_gpa(ptmon *pm, uint64_t gpa, uint32_t len, uint32_t access,
                                ptmon_hook_fn fn, void *ctx, ptmon_hook **out);

/**
 * Remove a hook and set @p *hook to NULL. It is never called again; its memory is freed and the
 * frame's rights relaxed at the next commit (end of the current event, or before this call
 * returns when made outside an event). Handle lifetime and @p ctx: as for ptmon_unwatch().
 * @return 0 or PTMON_EINVAL (@p hook or @p *hook NULL, or the hook already removed).
 */
PTMON_EXTERN int ptmon_unhook(ptmon_hook **hook);

/**
 * Apply deferred work now: free removed objects and restore the rights of frames nothing needs
 * any more (batched through the backend). ptmon commits by itself at the end of every event and
 * of every call made outside an event; call this after changing rights behind ptmon's back.
 * Called from a callback (inside an event or a commit) it does nothing: the event's own end
 * commits, and committing earlier would free what the event is still walking.
 * @return 0, or the first backend error (the frames concerned stay protected and are retried at
 *         the next commit).
 */
PTMON_EXTERN int ptmon_commit(ptmon *pm);

/* ===================================================================================== */
/* Page walk                                                                             */
/* ===================================================================================== */

/** Why a walk ended. */
enum ptmon_walk_status {
    PTMON_WALK_OK = 0,           /**< translated: page_gpa, page_size, rights are valid */
    PTMON_WALK_NOT_PRESENT = 1,  /**< entry at stop_level has P=0 */
    PTMON_WALK_RESERVED = 2,     /**< entry at stop_level has reserved bits set (reserved_bits) */
    PTMON_WALK_OUTSIDE_RAM = 3,  /**< the entry at stop_level points to a table outside RAM */
    PTMON_WALK_NONCANONICAL = 4, /**< the VA is not canonical / wider than the mode allows */
};

/** Effective rights of a translation, combined over all levels. */
enum ptmon_rights {
    PTMON_RIGHT_W = 1u << 0,  /**< writable: R/W set at every level */
    PTMON_RIGHT_U = 1u << 1,  /**< user: U/S set at every level */
    PTMON_RIGHT_NX = 1u << 2, /**< no-execute: XD set at some level (EFER.NXE=1) */
};

/** One level of a walk: where the entry is and what it held. */
typedef struct ptmon_walk_level {
    uint64_t gpa;   /**< guest-physical address of the entry */
    uint64_t value; /**< the entry (32-bit paging: zero-extended 4-byte entry) */
} ptmon_walk_level;

/** The result of a page walk. */
typedef struct ptmon_walk {
    uint64_t cr3;
    uint64_t va;
    enum ptmon_walk_status status;
    unsigned top_level; /**< number of levels of the mode (the root's level) */
    /** The level whose entry ended the walk: the leaf's level when OK; the offending entry's
     *  level otherwise (for OUTSIDE_RAM: the table pointer whose table is not in RAM); 0 for
     *  PTMON_WALK_NONCANONICAL. Levels top_level..stop_level of @ref level are filled in. */
    unsigned stop_level;
    ptmon_walk_level level[PTMON_MAX_LEVELS + 1]; /**< indexed by level (1..5); [0] unused */
    uint64_t reserved_bits; /**< for PTMON_WALK_RESERVED: the reserved bits that were set */
    uint64_t page_gpa;      /**< base GPA of the page (OK only) */
    uint64_t gpa;           /**< GPA of va itself: page_gpa + offset (OK only) */
    uint64_t page_size;     /**< 4 KiB, 2 MiB, 4 MiB, 1 GiB (OK only), else 0 */
    /** PTMON_RIGHT_*: W and U ANDed, NX ORed over the entries the walk passed through (the
     *  table pointers above stop_level, and the leaf when OK); a not-present or reserved
     *  stopping entry adds nothing; 0 when the walk stopped at top_level. */
    unsigned rights;
} ptmon_walk;

/**
 * Translate @p va in the address space rooted at @p cr3, reading guest memory through the
 * backend. The low (PCID/PWT/PCD) bits and bit 63 of @p cr3 are ignored. Nothing is cached
 * and no protection is changed; the walk reads at most one entry per level.
 *
 * @return 0 when the walk ran (its outcome, including "not present", is in out->status), or a
 *         negative code: PTMON_EINVAL for NULL arguments, PTMON_ERANGE when the root table
 *         (@p cr3) is outside guest RAM, or the backend's read error (a table outside RAM below
 *         the root is an outcome: PTMON_WALK_OUTSIDE_RAM at the entry pointing to it).
 */
PTMON_EXTERN int ptmon_translate(ptmon *pm, uint64_t cr3, uint64_t va, ptmon_walk *out);

/** @return a static name for a walk status ("ok", "not present", ...). */
PTMON_EXTERN const char *ptmon_walk_status_name(enum ptmon_walk_status status);

/* ===================================================================================== */
/* Watches                                                                               */
/* ===================================================================================== */

/** A watched virtual address. Opaque; owned by the instance. (No typedef: ptmon_watch is the
 *  function that creates one.) */
struct ptmon_watch;

/** The translation of a watched VA as ptmon last reported it. */
typedef struct ptmon_translation {
    /** PTMON_WALK_OK when present; NOT_PRESENT, RESERVED (treated as not present) or
     *  OUTSIDE_RAM (the entry at @ref level points to a table that is not in guest RAM)
     *  otherwise. */
    enum ptmon_walk_status status;
    unsigned level;     /**< level of the entry where the walk stops (the leaf when present) */
    uint64_t entry;     /**< that entry's value, as in the guest's table */
    uint64_t page_size; /**< what an entry at that level maps: 4K, 2M/4M, 1G, ... (never 0) */
    uint64_t frame;     /**< page base GPA when present, else 0 */
    unsigned rights;    /**< PTMON_RIGHT_*, as in ptmon_walk */
} ptmon_translation;

/** One change of a watched translation, as passed to a watch callback. */
typedef struct ptmon_change {
    uint64_t cr3;             /**< the CR3 given to ptmon_watch (PCID bits included) */
    uint64_t va;              /**< the watched VA */
    ptmon_translation before; /**< as last reported: the latest state the watch was in */
    ptmon_translation after;  /**< as it is after this write */
    unsigned level;           /**< level of the entry whose write caused the change (the
                                   highest, if one write changed several on the path) */
    uint32_t vcpu;            /**< the vCPU that wrote */
    /** 1 when this call undoes a change reported earlier in the same event because a later
     *  callback denied the write; its return value is ignored. */
    unsigned reverted;
} ptmon_change;

/**
 * Called when a watched translation changes (from inside ptmon_handle_event(), after every
 * tree change of the write is done). @return 0 (PTMON_ACTION_ALLOW) to accept, or
 * PTMON_ACTION_DENY to veto the write: it is then not performed (PRE delivery) or undone (POST
 * delivery), callbacks not yet called for it are not called, and those already called are
 * called again with the reverse change (reverted = 1, before and after swapped).
 * The callback may add or remove any watch, its own included; a removed watch is never called
 * again; a watch added here is not notified of the write in progress.
 */
typedef int (*ptmon_watch_fn)(ptmon *pm, struct ptmon_watch *watch, void *ctx,
                              const ptmon_change *change);

#define PTMON_VCPU_NONE UINT32_MAX

/** Flags of ptmon_watch(). */
enum ptmon_watch_flags {
    /** Called before the ordinary watches of the same leaf (each group in placement order). */
    PTMON_WATCH_HIGH_PRIORITY = 1u << 0,
};

/**
 * Watch the translation of @p va in the address space rooted at @p cr3 (PCID and flag bits are
 * ignored: the same root is the same address space). Every page-table page on the walk is
 * write-protected (protect first, then read) down to the entry where the walk stops: the leaf,
 * a not-present entry, or a large page. The new watch is not called for its placement. Outside
 * an event, entries a failed read left unknown are read first, so it starts from memory (other
 * watches through them may be called then, with no vCPU).
 *
 * A table outside guest RAM on the path ends the walk at the entry pointing to it (status
 * PTMON_WALK_OUTSIDE_RAM, that entry's value and level): it is watched like any stopping entry.
 *
 * @return 0 and the handle in @p out; PTMON_EINVAL (NULL argument, unknown flag, a VA the mode
 *         cannot translate), PTMON_ERANGE (the root table @p cr3 names is outside guest RAM:
 *         most likely a mistyped CR3), PTMON_ENOMEM, or a backend error. Nothing is left behind
 *         on error.
 */
PTMON_EXTERN int ptmon_watch(ptmon *pm, uint64_t cr3, uint64_t va, unsigned flags,
                             ptmon_watch_fn fn, void *ctx, struct ptmon_watch **out);

/**
 * Stop watching and set @p *watch to NULL. The watch is never called again (even if queued for
 * the event in progress). Memory and protection are released at the next commit: at the end of
 * the current event, or before this call returns when made outside an event.
 *
 * Handle lifetime: a handle is valid from ptmon_watch() until ptmon_unwatch() or
 * ptmon_destroy(). Clearing @p *watch makes a second call through the same variable a harmless
 * PTMON_EINVAL. A copy of the handle kept elsewhere must not be used after the call: inside an
 * event (a callback) it still gives PTMON_EINVAL until the event ends, after that its memory is
 * gone. Keep one owner per handle (e.g. in the ctx it carries) and unwatch through it.
 *
 * @p ctx: ptmon never touches the watch's ctx once ptmon_unwatch() has returned, so the caller
 * may free it right away, also from inside the watch's own callback (ptmon reads nothing through
 * ctx after a callback returns).
 *
 * @return 0, PTMON_EINVAL (@p watch or @p *watch NULL, or the watch already removed), or the
 *         commit's backend error (the watch is removed all the same).
 */
PTMON_EXTERN int ptmon_unwatch(struct ptmon_watch **watch);

/** @return the translation as last reported to @p watch (its "old" for the next change). */
PTMON_EXTERN ptmon_translation ptmon_watch_translation(const struct ptmon_watch *watch);

/** Configure which entry bits are monitored (default PTMON_DEFAULT_MONITORED). Address bits
 *  are always monitored; PS is only ever compared at levels where it selects the page size. */
PTMON_EXTERN void ptmon_set_monitored_bits(ptmon *pm, uint64_t bits);

/** P, R/W, U/S, PS (where it means page size), NX and the address bits. */
#define PTMON_DEFAULT_MONITORED \
    (PTMON_PTE_P | PTMON_PTE_RW | PTMON_PTE_US | PTMON_PTE_PS | PTMON_PTE_NX)

/* ===================================================================================== */
/* Self-inspection                                                                       */
/* ===================================================================================== */

/** Kinds of integrity findings. */
enum ptmon_finding_kind {
    PTMON_FINDING_STALE_RECORD = 1, /**< a watch's record differs from a fresh walk */
    PTMON_FINDING_REFCOUNT,         /**< a node's refcount differs from the watches through it */
    PTMON_FINDING_UNPROTECTED,      /**< a frame holding watched entries is not write-protected */
    PTMON_FINDING_STRAY,            /**< a node, table or frame is used by no live watch */
    PTMON_FINDING_CACHE, /**< a node's cached entry differs from memory (monitored bits) */
    /** an entry ptmon watches cannot be read (a backend error): the watches through it wait,
     *  keeping what they were last told, until a read succeeds */
    PTMON_FINDING_UNREADABLE,
};

/** One problem ptmon_check found. */
typedef struct ptmon_finding {
    enum ptmon_finding_kind kind;
    const struct ptmon_watch *watch; /**< the watch concerned, or NULL */
    uint64_t gpa;                    /**< entry or frame address concerned, or 0 */
    unsigned level;
    char text[120]; /**< a readable description */
} ptmon_finding;

/**
 * Check the engine against guest memory: re-walk every watch and compare with its record;
 * verify reference counts, that exactly the frames holding watched entries are write-protected,
 * and that nothing unreachable is kept. An entry the backend cannot read is a finding
 * (PTMON_FINDING_UNREADABLE), not an error of the check.
 * @param out, max  caller-owned array for up to @p max findings (may be NULL, 0)
 * @return the number of findings (0: all good; may exceed @p max), or a negative error
 *         (PTMON_EINVAL, PTMON_ENOMEM).
 */
PTMON_EXTERN int ptmon_check(ptmon *pm, ptmon_finding *out, size_t max);

/** Counters and sizes of an instance. */
typedef struct ptmon_stats {
    uint64_t watches;           /**< live watches */
    uint64_t nodes;             /**< entry nodes */
    uint64_t tables;            /**< table records */
    uint64_t frames;            /**< frame records (restricted frames) */
    uint64_t bytes;             /**< bytes allocated by ptmon for this instance */
    uint64_t events;            /**< events handled */
    uint64_t events_irrelevant; /**< writes that changed no watched entry */
    uint64_t events_denied;     /**< events answered DENY (or undone, POST) */
    uint64_t callbacks;         /**< watch callbacks made */
} ptmon_stats;

/** Fill @p out with the instance's statistics. @return 0 or PTMON_EINVAL. */
PTMON_EXTERN int ptmon_get_stats(const ptmon *pm, ptmon_stats *out);

/** Dump formats. */
enum ptmon_dump_format {
    PTMON_DUMP_TEXT = 0, /**< one line per watch, node and table */
    PTMON_DUMP_DOT = 1,  /**< a Graphviz digraph of the entry tree */
};

/** Receives dump output piece by piece. */
typedef void (*ptmon_write_fn)(void *ctx, const char *text);

/** Dump the watched tree. @return 0 or PTMON_EINVAL. */
PTMON_EXTERN int ptmon_dump(const ptmon *pm, enum ptmon_dump_format format, ptmon_write_fn write,
                            void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* PTMON_PTMON_H */
