/*
 * walk.h — the page-walk translator (internal interface).
 *
 * Owns: the x86 paging formats (per mode: levels, entry size, index bits, reserved bits) and the
 * walk loop. Calls nothing but the read function it is given: it knows nothing of instances,
 * the glue or the engine, so the engine and ptmon_translate() share it.
 *
 * Levels are numbered as in the SDM: 1 = PT ... 5 = PML5. A walk reads at most one entry per
 * level and never loops, whatever the guest's tables contain.
 */
#ifndef PTMON_CORE_WALK_H
#define PTMON_CORE_WALK_H

#include <ptmon/ptmon.h>

/** What one entry means at its level. */
enum pt_kind {
    PT_NOT_PRESENT = 0, /**< P = 0 */
    PT_RESERVED,        /**< P = 1 but a bit reserved for this entry type is set */
    PT_TABLE,           /**< points to the next level's table (addr = its GPA) */
    PT_LEAF,            /**< maps a page (addr = page base GPA, page_size set) */
};

/** The decoded meaning of one entry. */
struct pt_entry_info {
    enum pt_kind kind;
    uint64_t addr;          /**< PT_TABLE: next table GPA; PT_LEAF: page base GPA; else 0 */
    uint64_t page_size;     /**< PT_LEAF only: 4K, 2M, 4M or 1G; else 0 */
    uint64_t reserved_bits; /**< PT_RESERVED: the offending bits; else 0 */
    unsigned rights;        /**< PTMON_RIGHT_* this entry contributes: W and U if its R/W and
                                 U/S bits are set (always both for a PAE PDPTE, which has
                                 neither), NX if it has XD set and NXE is on */
};

/** @return the size in bytes of one entry (4 in 32-bit paging, 8 otherwise), 0 for OFF/AUTO. */
unsigned pt_entry_size(const ptmon_paging *pg);

/** @return bytes of VA one entry at @p level spans (4K at level 1, 4M at level 2 in 32-bit
 *  paging, 2M at level 2 otherwise, 1G, 512G, 256T). */
uint64_t pt_level_span(const ptmon_paging *pg, unsigned level);

/** @return the GPA of the root table for @p cr3 (PCID/flag bits and bits above MAXPHYADDR
 *  dropped; PAE: CR3[31:5]). */
uint64_t pt_root_gpa(const ptmon_paging *pg, uint64_t cr3);

/** @return the index of @p va's entry in a table at @p level (0..3 for the PAE PDPT, 0..1023
 *  in 32-bit paging, 0..511 otherwise). */
unsigned pt_index(const ptmon_paging *pg, unsigned level, uint64_t va);

/** @return the GPA of @p va's entry in the table at @p table_gpa, which is at @p level. */
uint64_t pt_entry_gpa(const ptmon_paging *pg, uint64_t table_gpa, unsigned level, uint64_t va);

/** @return nonzero if @p va can be translated in this mode (canonical for 4/5-level, below
 *  4 GiB for 32-bit and PAE). */
int pt_va_valid(const ptmon_paging *pg, uint64_t va);

/** Decode @p entry found at @p level. Pure: no memory access. A present entry at a level the
 *  mode does not have decodes as PT_RESERVED with every bit reported. rights are filled for
 *  PT_RESERVED entries too (for hooks), 0 for PT_NOT_PRESENT. */
void pt_decode(const ptmon_paging *pg, unsigned level, uint64_t entry, struct pt_entry_info *out);

/** Reads @p len bytes of guest memory at @p gpa; returns 0 or a negative PTMON_E* code
 *  (PTMON_ERANGE: outside RAM). */
typedef int (*pt_read_fn)(void *ctx, uint64_t gpa, void *buf, size_t len);

/**
 * Per-level hooks of a walk (in the spirit of Linux mm/pagewalk.c). Each may be NULL. A nonzero
 * return stops the walk and becomes pt_walk's return value.
 */
struct pt_walk_ops {
    /** Before the entry at @p level (at @p entry_gpa) is read: e.g. protect its table first. */
    int (*before_read)(void *ctx, unsigned level, uint64_t entry_gpa);
    /** After the entry was read and decoded. */
    int (*entry)(void *ctx, unsigned level, uint64_t entry_gpa, uint64_t value,
                 const struct pt_entry_info *info);
};

/**
 * Walk @p va from the root of @p cr3, filling @p out exactly as ptmon_translate documents.
 * @p ops (may be NULL) is called at each level with @p ops_ctx.
 * @return 0 when the walk ran to an outcome (out->status); otherwise @p out is unspecified and
 *         the value is a hook's nonzero return, the read function's error other than
 *         PTMON_ERANGE, PTMON_ENOTSUP (paging OFF/AUTO) or PTMON_EINVAL (NULL argument).
 */
int pt_walk(const ptmon_paging *pg, pt_read_fn read, void *read_ctx, uint64_t cr3, uint64_t va,
            const struct pt_walk_ops *ops, void *ops_ctx, ptmon_walk *out);

#endif
