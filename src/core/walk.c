/*
 * walk.c — the page-walk translator.
 *
 * Owns: the x86 paging formats of every mode (levels, entry size, index bits, the reserved bits
 * of each entry type, how an entry encodes a table or page address) and the walk loop that
 * fills a ptmon_walk.
 *
 * Calls: only the pt_read_fn and the optional pt_walk_ops hooks it is given. It knows nothing
 * of instances, the glue or the engine. No allocation and no mutable static state, so any
 * number of walks may run at once on different threads.
 *
 * Where the SDM and SPEC.md differ, this file follows the SDM (docs/ARCHITECTURE.md, "Choices
 * where the SDM and the spec differ").
 */
#include "core/walk.h"

#include <string.h>

/* Bits hi..lo inclusive; empty when lo == hi + 1 (e.g. MAXPHYADDR 52 in bits 51:52). */
#define BITS(hi, lo) ((UINT64_MAX >> (63u - (hi))) & (UINT64_MAX << (lo)))
#define BIT(n)       (1ull << (n))

#define SIZE_4K (1ull << 12)
#define SIZE_2M (1ull << 21)
#define SIZE_4M (1ull << 22)
#define SIZE_1G (1ull << 30)

#define RIGHTS_WU (PTMON_RIGHT_W | PTMON_RIGHT_U)

/* The meaning of one present entry under its mode and level, before the reserved check. */
struct entry_format {
    uint64_t reserved;  /* bits that must be clear for the CPU to use the entry */
    uint64_t addr;      /* next table's GPA, or the page base when page_size != 0 */
    uint64_t page_size; /* 0 when the entry references a table */
    unsigned rights;    /* PTMON_RIGHT_* the entry contributes */
};

/* ---- per-mode geometry ---------------------------------------------------------------- */

static int level_exists(const ptmon_paging *pg, unsigned level)
{
    return level >= 1 && level <= ptmon_paging_levels(pg->mode);
}

/* Clamped so that every mask built from it stays a defined shift. */
static unsigned phys_width(const ptmon_paging *pg)
{
    return (pg->maxphyaddr == 0 || pg->maxphyaddr > 52) ? 52 : pg->maxphyaddr;
}

/* Address bits of a 64-bit entry or of CR3: MAXPHYADDR-1:12. */
static uint64_t phys_addr_mask(const ptmon_paging *pg)
{
    return BITS(phys_width(pg) - 1, 12);
}

/* The lowest VA bit that selects an entry at @p level (the level must exist). */
static unsigned index_shift(const ptmon_paging *pg, unsigned level)
{
    if (pg->mode == PTMON_MODE_32BIT)
        return 12 + 10 * (level - 1);
    return 12 + 9 * (level - 1);
}

static unsigned index_mask(const ptmon_paging *pg, unsigned level)
{
    if (pg->mode == PTMON_MODE_32BIT)
        return 0x3ff;
    if (pg->mode == PTMON_MODE_PAE && level == PTMON_LEVEL_PDPT)
        return 0x3;
    return 0x1ff;
}

unsigned pt_entry_size(const ptmon_paging *pg)
{
    switch (pg->mode) {
    case PTMON_MODE_32BIT:
        return 4;
    case PTMON_MODE_PAE:
    case PTMON_MODE_4LEVEL:
    case PTMON_MODE_5LEVEL:
        return 8;
    default:
        return 0;
    }
}

uint64_t pt_level_span(const ptmon_paging *pg, unsigned level)
{
    if (!level_exists(pg, level))
        return 0;
    return 1ull << index_shift(pg, level);
}

uint64_t pt_root_gpa(const ptmon_paging *pg, uint64_t cr3)
{
    switch (pg->mode) {
    case PTMON_MODE_32BIT:
        return cr3 & BITS(31, 12);
    case PTMON_MODE_PAE:
        return cr3 & BITS(31, 5);
    case PTMON_MODE_4LEVEL:
    case PTMON_MODE_5LEVEL:
        return cr3 & phys_addr_mask(pg);
    default:
        return 0;
    }
}

unsigned pt_index(const ptmon_paging *pg, unsigned level, uint64_t va)
{
    if (!level_exists(pg, level))
        return 0;
    return (unsigned)(va >> index_shift(pg, level)) & index_mask(pg, level);
}

uint64_t pt_entry_gpa(const ptmon_paging *pg, uint64_t table_gpa, unsigned level, uint64_t va)
{
    return table_gpa + (uint64_t)pt_index(pg, level, va) * pt_entry_size(pg);
}

/* Bits 63:top_bit all equal to top_bit. */
static int is_sign_extended(uint64_t va, unsigned top_bit)
{
    uint64_t upper = va >> top_bit;
    return upper == 0 || upper == (UINT64_MAX >> top_bit);
}

int pt_va_valid(const ptmon_paging *pg, uint64_t va)
{
    switch (pg->mode) {
    case PTMON_MODE_32BIT:
    case PTMON_MODE_PAE:
        return va <= UINT32_MAX;
    case PTMON_MODE_4LEVEL:
        return is_sign_extended(va, 47);
    case PTMON_MODE_5LEVEL:
        return is_sign_extended(va, 56);
    default:
        return 0;
    }
}

/* ---- entry formats -------------------------------------------------------------------- */

static unsigned rights_wu(uint64_t entry)
{
    return ((entry & PTMON_PTE_RW) ? PTMON_RIGHT_W : 0u) |
           ((entry & PTMON_PTE_US) ? PTMON_RIGHT_U : 0u);
}

static int nxe_on(const ptmon_paging *pg)
{
    return (pg->flags & PTMON_PAGING_NXE) != 0;
}

/* Rights of a PAE or IA-32e entry that has R/W, U/S and XD. */
static unsigned rights_64(const ptmon_paging *pg, uint64_t entry)
{
    unsigned nx = (nxe_on(pg) && (entry & PTMON_PTE_NX)) ? PTMON_RIGHT_NX : 0u;
    return rights_wu(entry) | nx;
}

/* Without EFER.NXE bit 63 is not execute-disable but reserved. */
static uint64_t xd_reserved(const ptmon_paging *pg)
{
    return nxe_on(pg) ? 0 : PTMON_PTE_NX;
}

/* PSE-36: PDE bits 20:13 carry physical bits 39:32, but only as many as the CPU has (at most
 * 8, as the field is 8 bits wide); the rest of 21:13 must be zero. */
static uint64_t pse36_reserved(const ptmon_paging *pg)
{
    unsigned width = phys_width(pg) < 40 ? phys_width(pg) : 40;
    unsigned high_bits = width > 32 ? width - 32 : 0;
    return BITS(21, 13 + high_bits);
}

static void format_32bit(const ptmon_paging *pg, unsigned level, uint64_t entry,
                         struct entry_format *f)
{
    f->rights = rights_wu(entry);
    /* With CR4.PSE clear the CPU ignores bit 7 of a PDE and follows it to a page table. */
    if (level == PTMON_LEVEL_PD && (pg->flags & PTMON_PAGING_PSE) && (entry & PTMON_PTE_PS)) {
        f->reserved = pse36_reserved(pg);
        f->addr = (entry & BITS(31, 22)) | ((entry & BITS(20, 13)) << 19);
        f->page_size = SIZE_4M;
        return;
    }
    f->reserved = 0;
    f->addr = entry & BITS(31, 12);
    f->page_size = level == PTMON_LEVEL_PT ? SIZE_4K : 0;
}

static void format_pae(const ptmon_paging *pg, unsigned level, uint64_t entry,
                       struct entry_format *f)
{
    unsigned width = phys_width(pg);
    uint64_t addr = entry & phys_addr_mask(pg);

    if (level == PTMON_LEVEL_PDPT) {
        /* A PDPTE has no R/W, U/S or XD bits: it restricts nothing. */
        f->rights = RIGHTS_WU;
        f->reserved = BIT(1) | BIT(2) | BITS(8, 5) | BITS(63, width);
        f->addr = addr;
        f->page_size = 0;
        return;
    }
    f->rights = rights_64(pg, entry);
    f->reserved = BITS(62, width) | xd_reserved(pg);
    if (level == PTMON_LEVEL_PD && (entry & PTMON_PTE_PS)) {
        f->reserved |= BITS(20, 13);
        f->addr = addr & ~(SIZE_2M - 1);
        f->page_size = SIZE_2M;
        return;
    }
    f->addr = addr;
    f->page_size = level == PTMON_LEVEL_PT ? SIZE_4K : 0;
}

/* 4- and 5-level paging: one format, the PML5 being one more PML4-like level. */
static void format_ia32e(const ptmon_paging *pg, unsigned level, uint64_t entry,
                         struct entry_format *f)
{
    uint64_t addr = entry & phys_addr_mask(pg);
    int ps = (entry & PTMON_PTE_PS) != 0;

    /* Bits 62:52 are free for software, so only 51:MAXPHYADDR are reserved. */
    f->rights = rights_64(pg, entry);
    f->reserved = BITS(51, phys_width(pg)) | xd_reserved(pg);
    f->addr = addr;
    f->page_size = 0;
    switch (level) {
    case PTMON_LEVEL_PML5:
    case PTMON_LEVEL_PML4:
        f->reserved |= PTMON_PTE_PS;
        break;
    case PTMON_LEVEL_PDPT:
        if (ps) {
            f->reserved |= BITS(29, 13);
            f->addr = addr & ~(SIZE_1G - 1);
            f->page_size = SIZE_1G;
        }
        break;
    case PTMON_LEVEL_PD:
        if (ps) {
            f->reserved |= BITS(20, 13);
            f->addr = addr & ~(SIZE_2M - 1);
            f->page_size = SIZE_2M;
        }
        break;
    default: /* PT: bit 7 is PAT, not PS */
        f->page_size = SIZE_4K;
        break;
    }
}

/* @return 0 if @p level does not exist in the mode (then every bit counts as reserved). */
static int entry_format_of(const ptmon_paging *pg, unsigned level, uint64_t entry,
                           struct entry_format *f)
{
    if (!level_exists(pg, level))
        return 0;
    switch (pg->mode) {
    case PTMON_MODE_32BIT:
        format_32bit(pg, level, entry, f);
        return 1;
    case PTMON_MODE_PAE:
        format_pae(pg, level, entry, f);
        return 1;
    default:
        format_ia32e(pg, level, entry, f);
        return 1;
    }
}

void pt_decode(const ptmon_paging *pg, unsigned level, uint64_t entry, struct pt_entry_info *out)
{
    struct entry_format f;

    memset(out, 0, sizeof(*out));
    if (!(entry & PTMON_PTE_P)) {
        out->kind = PT_NOT_PRESENT;
        return;
    }
    if (!entry_format_of(pg, level, entry, &f)) {
        out->kind = PT_RESERVED;
        out->reserved_bits = entry;
        return;
    }
    /* Rights are reported for a reserved entry too (hooks may want them); the walk only
     * combines those of entries it goes through. */
    out->rights = f.rights;
    if (entry & f.reserved) {
        out->kind = PT_RESERVED;
        out->reserved_bits = entry & f.reserved;
        return;
    }
    out->kind = f.page_size ? PT_LEAF : PT_TABLE;
    out->addr = f.addr;
    out->page_size = f.page_size;
}

/* ---- the walk ------------------------------------------------------------------------- */

/* The inputs of one walk, and what it must remember between levels. */
struct walker {
    const ptmon_paging *pg;
    pt_read_fn read;
    void *read_ctx;
    const struct pt_walk_ops *ops;
    void *ops_ctx;
    ptmon_walk *out;
    unsigned rights_above; /* out->rights before the last table pointer was added */
};

static int hook_before_read(const struct walker *w, unsigned level, uint64_t gpa)
{
    if (!w->ops || !w->ops->before_read)
        return 0;
    return w->ops->before_read(w->ops_ctx, level, gpa);
}

static int hook_entry(const struct walker *w, unsigned level, uint64_t gpa, uint64_t value,
                      const struct pt_entry_info *info)
{
    if (!w->ops || !w->ops->entry)
        return 0;
    return w->ops->entry(w->ops_ctx, level, gpa, value, info);
}

/* Guest entries are little-endian whatever the host is; 4-byte entries are zero-extended. */
static int read_entry(const struct walker *w, uint64_t gpa, uint64_t *value)
{
    unsigned char buf[8] = {0};
    unsigned size = pt_entry_size(w->pg);
    uint64_t v = 0;
    int rc = w->read(w->read_ctx, gpa, buf, size);

    if (rc != 0)
        return rc;
    for (unsigned i = size; i-- > 0;)
        v = (v << 8) | buf[i];
    *value = v;
    return 0;
}

/* Only entries the walk goes through (tables and the leaf) restrict the translation. The top
 * level is the first such entry, so it starts the combination. */
static void add_rights(ptmon_walk *out, unsigned level, unsigned rights)
{
    if (level == out->top_level) {
        out->rights = rights;
        return;
    }
    out->rights = (out->rights & rights & RIGHTS_WU) | ((out->rights | rights) & PTMON_RIGHT_NX);
}

/* @return nonzero when @p info ends the walk. */
static int record_entry(ptmon_walk *out, unsigned level, const struct pt_entry_info *info)
{
    switch (info->kind) {
    case PT_NOT_PRESENT:
        out->status = PTMON_WALK_NOT_PRESENT;
        return 1;
    case PT_RESERVED:
        out->status = PTMON_WALK_RESERVED;
        out->reserved_bits = info->reserved_bits;
        return 1;
    case PT_TABLE:
        add_rights(out, level, info->rights);
        return 0;
    case PT_LEAF:
        add_rights(out, level, info->rights);
        out->status = PTMON_WALK_OK;
        out->page_gpa = info->addr;
        out->page_size = info->page_size;
        out->gpa = info->addr + (out->va & (info->page_size - 1));
        return 1;
    }
    return 1;
}

/*
 * The table the pointer at @p level + 1 names is not in guest RAM (MMIO, a hole, beyond the
 * top): the walk stops at that pointer, the entry that exists, with its value (SPEC §4: the
 * record is the entry where the walk stops). Like any stopping entry that maps nothing, it adds
 * no rights.
 */
static void stop_at_pointer_outside_ram(struct walker *w, unsigned level)
{
    ptmon_walk *out = w->out;

    out->level[level].gpa = 0;
    out->stop_level = level + 1;
    out->status = PTMON_WALK_OUTSIDE_RAM;
    out->rights = level + 1 == out->top_level ? 0 : w->rights_above;
}

/* Read and decode @p va's entry at @p level in the table at *table; on return *table is the
 * next table and *done tells whether the walk has its outcome. */
static int walk_level(struct walker *w, unsigned level, uint64_t *table, int *done)
{
    ptmon_walk *out = w->out;
    uint64_t gpa = pt_entry_gpa(w->pg, *table, level, out->va);
    struct pt_entry_info info;
    uint64_t value = 0;
    int rc;

    out->stop_level = level;
    out->level[level].gpa = gpa;
    rc = hook_before_read(w, level, gpa);
    if (rc != 0)
        return rc;
    rc = read_entry(w, gpa, &value);
    if (rc == PTMON_ERANGE && level < out->top_level) {
        stop_at_pointer_outside_ram(w, level);
        *done = 1;
        return 0;
    }
    if (rc != 0)
        return rc; /* (the root outside RAM: PTMON_ERANGE, there is no entry to stop at) */
    out->level[level].value = value;
    pt_decode(w->pg, level, value, &info);
    rc = hook_entry(w, level, gpa, value, &info);
    if (rc != 0)
        return rc;
    w->rights_above = out->rights;
    *done = record_entry(out, level, &info);
    *table = info.addr;
    return 0;
}

int pt_walk(const ptmon_paging *pg, pt_read_fn read, void *read_ctx, uint64_t cr3, uint64_t va,
            const struct pt_walk_ops *ops, void *ops_ctx, ptmon_walk *out)
{
    struct walker w = {pg, read, read_ctx, ops, ops_ctx, out, 0};
    uint64_t table;
    int done = 0;

    if (!pg || !read || !out)
        return PTMON_EINVAL;
    memset(out, 0, sizeof(*out));
    out->cr3 = cr3;
    out->va = va;
    out->top_level = ptmon_paging_levels(pg->mode);
    if (out->top_level == 0)
        return PTMON_ENOTSUP;
    if (!pt_va_valid(pg, va)) {
        out->status = PTMON_WALK_NONCANONICAL;
        return 0;
    }
    table = pt_root_gpa(pg, cr3);
    /* Bounded by the mode, not by the guest: self-maps and loops just end at level 1, whose
     * entries are never tables. */
    for (unsigned level = out->top_level; level >= 1 && !done; level--) {
        int rc = walk_level(&w, level, &table, &done);
        if (rc != 0)
            return rc;
    }
    return 0;
}
