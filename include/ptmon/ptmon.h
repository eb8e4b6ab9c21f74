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
#define PTMON_ERRNO_MAP(XX)                                                            \
    XX(EINVAL, -1, "invalid argument")                                                 \
    XX(ENOMEM, -2, "out of memory")                                                    \
    XX(EVERSION, -3, "unsupported structure version")                                  \
    XX(ENOTSUP, -4, "operation or paging mode not supported")                          \
    XX(ERANGE, -5, "guest-physical address outside guest RAM")                         \
    XX(EIO, -6, "backend (hypervisor) call failed")                                    \
    XX(ENOENT, -7, "no such object")                                                   \
    XX(EEXIST, -8, "object already exists")                                            \
    XX(EBUSY, -9, "resource busy")                                                     \
    XX(ELIMIT, -10, "configured limit reached")                                        \
    XX(ENOTPRESENT, -11, "translation not present")                                    \
    XX(EDENIED, -12, "write denied")                                                   \
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

/** @return the symbolic name of @p err ("PTMON_ENOMEM", "PTMON_OK", ...), or "PTMON_E?" if unknown. */
PTMON_EXTERN const char *ptmon_err_name(int err);

/* ===================================================================================== */
/* x86 paging structures                                                                 */
/* ===================================================================================== */

/* Bits of a paging-structure entry (the same positions in 32-bit, PAE, 4- and 5-level
 * entries; NX exists only in 64-bit entries and only when EFER.NXE is set). */
#define PTMON_PTE_P (1ull << 0)   /**< present */
#define PTMON_PTE_RW (1ull << 1)  /**< writable */
#define PTMON_PTE_US (1ull << 2)  /**< user-accessible */
#define PTMON_PTE_PWT (1ull << 3) /**< page-level write-through */
#define PTMON_PTE_PCD (1ull << 4) /**< page-level cache disable */
#define PTMON_PTE_A (1ull << 5)   /**< accessed (set by the CPU's page walker) */
#define PTMON_PTE_D (1ull << 6)   /**< dirty (leaf entries only) */
#define PTMON_PTE_PS (1ull << 7)  /**< page size in PDEs/PDPTEs; PAT in PTEs */
#define PTMON_PTE_G (1ull << 8)   /**< global (leaf entries only) */
#define PTMON_PTE_NX (1ull << 63) /**< execute-disable (64-bit entries, EFER.NXE=1) */

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
    unsigned flags;      /**< PTMON_PAGING_* */
    unsigned maxphyaddr; /**< physical-address width in bits (CPUID 0x80000008); 0 means 52 */
} ptmon_paging;

/**
 * Derive the paging mode from control registers, as the CPU does.
 *
 * CR0.PG=0 gives PTMON_MODE_OFF; CR4.PAE=0 gives 32-bit paging (PSE flag from CR4.PSE);
 * EFER.LMA=0 with CR4.PAE=1 gives PAE; EFER.LMA=1 gives 4-level, or 5-level with CR4.LA57.
 * EFER.NXE sets PTMON_PAGING_NXE for PAE and IA-32e modes.
 *
 * @param cr0, cr4, efer  the vCPU's registers
 * @param maxphyaddr      physical-address width in bits (1..52), or 0 for 52
 * @param[out] out        the result
 * @return 0, or PTMON_EINVAL for a combination the CPU refuses (EFER.LMA without CR4.PAE or
 *         without CR0.PG, maxphyaddr > 52, NULL @p out).
 */
PTMON_EXTERN int ptmon_paging_from_regs(uint64_t cr0, uint64_t cr4, uint64_t efer,
                                        unsigned maxphyaddr, ptmon_paging *out);

/** @return the number of paging levels of @p mode (2, 3, 4, 5), or 0 for OFF/AUTO/unknown. */
PTMON_EXTERN unsigned ptmon_paging_levels(enum ptmon_paging_mode mode);

/** @return a static name for @p mode: "off", "32-bit", "PAE", "4-level", "5-level", "auto". */
PTMON_EXTERN const char *ptmon_paging_mode_name(enum ptmon_paging_mode mode);

/* ===================================================================================== */
/* Instance                                                                              */
/* ===================================================================================== */

/** One ptmon instance per guest. Opaque. */
typedef struct ptmon ptmon;

/** The backend's callbacks; defined in <ptmon/backend.h>. Agents get one from a backend. */
struct ptmon_glue;

#define PTMON_CONFIG_VERSION 1

/** Instance configuration. Initialise with PTMON_CONFIG_INIT, then change what you need. */
typedef struct ptmon_config {
    unsigned version; /**< PTMON_CONFIG_VERSION (any value from 1 to it is accepted) */
    /** The guest's paging. PTMON_MODE_AUTO asks the backend (get_vcpu_regs of vCPU 0,
     *  maxphyaddr taken from here). */
    ptmon_paging paging;
} ptmon_config;

#define PTMON_CONFIG_INIT {PTMON_CONFIG_VERSION, {PTMON_MODE_AUTO, 0, 0}}

/**
 * Create an instance for one guest.
 *
 * The glue struct is copied (only the members its version has); the backend object it points
 * to must outlive the instance.
 *
 * @param glue    the backend's callbacks (see <ptmon/backend.h>)
 * @param config  configuration, or NULL for PTMON_CONFIG_INIT
 * @param[out] out the new instance; set to NULL on failure
 * @return 0; PTMON_EINVAL (NULL argument, bad paging values), PTMON_EVERSION (glue or config
 *         version 0 or newer than this library), PTMON_ENOCALLBACK (a required glue member is
 *         NULL, or PTMON_MODE_AUTO without get_vcpu_regs), PTMON_ENOTSUP (paging is off),
 *         PTMON_ENOMEM, or the error of get_vcpu_regs.
 */
PTMON_EXTERN int ptmon_create(const struct ptmon_glue *glue, const ptmon_config *config,
                              ptmon **out);

/** Destroy an instance and free everything it owns. NULL is accepted and ignored. */
PTMON_EXTERN void ptmon_destroy(ptmon *pm);

/** @return the instance's paging (resolved: never PTMON_MODE_AUTO). */
PTMON_EXTERN ptmon_paging ptmon_get_paging(const ptmon *pm);

/* ===================================================================================== */
/* Page walk                                                                             */
/* ===================================================================================== */

/** Why a walk ended. */
enum ptmon_walk_status {
    PTMON_WALK_OK = 0,          /**< translated: page_gpa, page_size, rights are valid */
    PTMON_WALK_NOT_PRESENT = 1, /**< entry at stop_level has P=0 */
    PTMON_WALK_RESERVED = 2,    /**< entry at stop_level has reserved bits set (reserved_bits) */
    PTMON_WALK_OUTSIDE_RAM = 3, /**< the table holding the entry at stop_level is not in RAM */
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
    unsigned top_level;  /**< number of levels of the mode (the root's level) */
    /** The level whose entry ended the walk: the leaf's level when OK; the offending entry's
     *  level otherwise; 0 for PTMON_WALK_NONCANONICAL. Levels top_level..stop_level of
     *  @ref level are filled in (for OUTSIDE_RAM, level[stop_level] has the gpa, value 0). */
    unsigned stop_level;
    ptmon_walk_level level[PTMON_MAX_LEVELS + 1]; /**< indexed by level (1..5); [0] unused */
    uint64_t reserved_bits; /**< for PTMON_WALK_RESERVED: the reserved bits that were set */
    uint64_t page_gpa;      /**< base GPA of the page (OK only) */
    uint64_t gpa;           /**< GPA of va itself: page_gpa + offset (OK only) */
    uint64_t page_size;     /**< 4 KiB, 2 MiB, 4 MiB, 1 GiB (OK only), else 0 */
    unsigned rights;        /**< PTMON_RIGHT_*, combined over the levels walked */
} ptmon_walk;

/**
 * Translate @p va in the address space rooted at @p cr3, reading guest memory through the
 * backend. The low (PCID/PWT/PCD) bits and bit 63 of @p cr3 are ignored. Nothing is cached
 * and no protection is changed; the walk reads at most one entry per level.
 *
 * @return 0 when the walk ran (its outcome, including "not present", is in out->status), or a
 *         negative code: PTMON_EINVAL for NULL arguments, or the backend's read error other
 *         than PTMON_ERANGE (which is reported as PTMON_WALK_OUTSIDE_RAM).
 */
PTMON_EXTERN int ptmon_translate(ptmon *pm, uint64_t cr3, uint64_t va, ptmon_walk *out);

/** @return a static name for a walk status ("ok", "not present", ...). */
PTMON_EXTERN const char *ptmon_walk_status_name(enum ptmon_walk_status status);

#ifdef __cplusplus
}
#endif

#endif /* PTMON_PTMON_H */
