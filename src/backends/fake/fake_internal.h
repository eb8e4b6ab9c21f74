/*
 * fake_internal.h — what the fake guest's source files share (not installed).
 *
 * Owns: the definition of struct ptmon_fake and the prototypes of the functions one fake_*.c
 * file offers to the others. Nothing here is exported from the library.
 *
 * File map:
 *   fake.c          lifetime, configuration, RAM access, frame allocator, frame rights, vCPU CR3
 *   fake_counters.c glue-call counters, fault injection, statistics, operation names, last log
 *   fake_format.c   the x86 paging formats (levels, indices, reserved bits, entry decoding)
 *   fake_store.c    guest stores through the EPT check: events, PRE/POST delivery, rep ops
 *   fake_glue.c     the ptmon_glue implementation
 *   fake_builder.c  the page-table builder (map, unmap, split, merge, link, ...)
 *   fake_cpu.c      the simulated CPU page walk with rights checks and A/D updates
 */
#ifndef PTMON_FAKE_INTERNAL_H
#define PTMON_FAKE_INTERNAL_H

#include <ptmon/fake.h>

#define FAKE_FRAME_SHIFT 12
#define FAKE_FRAME_SIZE  4096u
#define FAKE_MAX_VCPUS   64u
#define FAKE_LOG_MAX     256u
/** Bound on the bytes one rep stos / rep movs may cover (keeps a test's typo from eating RAM). */
#define FAKE_REP_MAX_BYTES (16ull << 20)
/** Page tables of 32-bit paging and the PAE PDPT must lie below 4 GiB (32-bit pointers / CR3). */
#define FAKE_4GIB (1ull << 32)

/** The store the handler of a PRE event is deciding on (what emulate_write(NULL) performs). */
struct fake_pending {
    int active;
    uint64_t gpa;
    uint32_t size;
    const uint8_t *bytes;
};

/** One armed injected failure of a glue operation. */
struct fake_fault {
    uint64_t countdown; /**< calls left until it fires (1 = the next); 0 = not armed */
    uint64_t repeat;    /**< calls it fails once it fires (then disarms) */
    int error;
    int fired;
};

struct ptmon_fake {
    ptmon_fake_config config;
    uint64_t maxphyaddr; /**< config.paging.maxphyaddr with 0 resolved to 52 */

    uint8_t *ram;
    uint64_t nr_frames;
    /** Per-frame rights stored XOR PTMON_ACCESS_RWX, so that calloc's zero pages mean RWX and a
     *  large guest costs no memory until its frames' rights are changed. */
    uint32_t *rights_xor;
    uint64_t nr_write_protected;
    uint64_t *frame_used; /**< allocator bitmap, one bit per frame */
    uint64_t alloc_hint;  /**< every frame below this (from 1) is in use */

    uint64_t cr3[FAKE_MAX_VCPUS];
    struct fake_pending pending[FAKE_MAX_VCPUS];

    ptmon_fake_handler handler;
    void *handler_ctx;
    enum ptmon_delivery delivery;

    uint64_t calls[PTMON_FAKE_OP_COUNT];
    struct fake_fault faults[PTMON_FAKE_OP_COUNT];
    uint64_t stats[PTMON_FAKE_STAT_COUNT];
    unsigned pause_depth;
    char last_log[FAKE_LOG_MAX];

    ptmon_glue glue;
};

/* ---- fake.c ------------------------------------------------------------------------------- */

/** @return nonzero if [gpa, gpa + len) lies inside guest RAM (len 0: gpa <= ram_size). */
int fake_range_in_ram(const ptmon_fake *fake, uint64_t gpa, uint64_t len);
uint32_t fake_frame_rights(const ptmon_fake *fake, uint64_t gfn);
/** Set the rights of an in-RAM frame, keeping the write-protected count right. */
void fake_put_frame_rights(ptmon_fake *fake, uint64_t gfn, uint32_t access);
/** Allocate the lowest free frame (never frame 0) if it lies below @p limit; else PTMON_ENOMEM. */
int fake_alloc_frame_below(ptmon_fake *fake, uint64_t limit, uint64_t *gpa);
void fake_release_frame(ptmon_fake *fake, uint64_t gpa);
uint64_t fake_load_le(const uint8_t *p, unsigned size);
void fake_put_le(uint8_t *p, uint64_t value, unsigned size);

/* ---- fake_counters.c ---------------------------------------------------------------------- */

/** Count a call of glue operation @p op, then return the injected error if it fires now (the
 *  caller must then fail with it), else 0. */
int fake_glue_enter(ptmon_fake *fake, enum ptmon_fake_op op);
void fake_count(ptmon_fake *fake, enum ptmon_fake_stat stat);
void fake_keep_log(ptmon_fake *fake, const char *message);

/* ---- fake_format.c ------------------------------------------------------------------------ */

enum fake_kind {
    FAKE_NOT_PRESENT = 0,
    FAKE_RESERVED,
    FAKE_TABLE,
    FAKE_LEAF,
};

/** The meaning of one paging-structure entry. */
struct fake_entry {
    enum fake_kind kind;
    uint64_t addr;      /**< FAKE_TABLE: next table GPA; FAKE_LEAF: page base GPA */
    uint64_t page_size; /**< FAKE_LEAF only */
    unsigned rights;    /**< PTMON_RIGHT_* this entry contributes (present entries) */
};

unsigned fake_levels(const ptmon_paging *pg);
unsigned fake_entry_size(const ptmon_paging *pg);
unsigned fake_table_entries(const ptmon_paging *pg, unsigned level);
unsigned fake_index(const ptmon_paging *pg, unsigned level, uint64_t va);
/** @return the bytes of VA one entry at @p level spans. */
uint64_t fake_level_span(const ptmon_paging *pg, unsigned level);
uint64_t fake_root_gpa(const ptmon_paging *pg, uint64_t cr3);
int fake_va_valid(const ptmon_paging *pg, uint64_t va);
/** @return nonzero if PS at @p level makes a large-page leaf in this mode. */
int fake_large_page_level(const ptmon_paging *pg, unsigned level);
/** @return the level whose leaves map pages of @p page_size, or 0 if the mode has none. */
unsigned fake_level_for_size(const ptmon_paging *pg, uint64_t page_size);
/** @return the bits of @p entry (present, at @p level) that the SDM marks reserved. */
uint64_t fake_reserved_bits(const ptmon_paging *pg, unsigned level, uint64_t entry);
void fake_decode(const ptmon_paging *pg, unsigned level, uint64_t entry, struct fake_entry *out);
/** @return the flag bits (P|RW|US, or P alone for a PAE PDPTE) of a table pointer the builder
 *  creates at @p level. */
uint64_t fake_table_pointer_bits(const ptmon_paging *pg, unsigned level);
/** @return the highest GPA + 1 a page table (or the root, if @p root) may occupy. */
uint64_t fake_table_limit(const ptmon_paging *pg, int root);
/** @return an entry mapping a @p page_size page at @p gpa with @p flags (PS not added). */
uint64_t fake_encode_leaf(const ptmon_paging *pg, uint64_t page_size, uint64_t gpa, uint64_t flags);
/** @return the widest physical address + 1 a leaf of @p page_size can hold. */
uint64_t fake_leaf_addr_limit(const ptmon_paging *pg, uint64_t page_size);

/* ---- fake_store.c ------------------------------------------------------------------------- */

/**
 * Perform a guest store of @p size bytes (already range-checked, > 0) by @p vcpu, frame part by
 * frame part, raising an event for every part that lands in a frame without W.
 * @return 0, or PTMON_EDENIED if some part was denied. Does not count STAT_STORES.
 */
int fake_guest_store(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, const uint8_t *bytes,
                     uint64_t size);
/** Perform @p vcpu's pending PRE store if it is exactly (gpa, size). @return 0 or PTMON_EINVAL. */
int fake_perform_pending(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, uint32_t size);

/* ---- fake_glue.c -------------------------------------------------------------------------- */

void fake_glue_init(ptmon_fake *fake);

#endif /* PTMON_FAKE_INTERNAL_H */
