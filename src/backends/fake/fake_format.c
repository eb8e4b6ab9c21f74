/*
 * fake_format.c — the x86 paging-structure formats, as the fake guest understands them.
 *
 * Owns: per-mode geometry (levels, entry size, indices, spans, root), VA validity, reserved-bit
 * rules and entry decoding/encoding (Intel SDM vol. 3A ch. 4). Pure functions of the paging
 * configuration: no memory access, no fake state.
 * Calls: nothing. Written independently of src/core/walk.c on purpose: the fake is the
 * reference the core walker is tested against, so sharing code would hide shared mistakes.
 */
#include "fake_internal.h"

/** @return bits hi..lo (inclusive) set; empty when hi < lo. */
static uint64_t bit_range(unsigned hi, unsigned lo)
{
    if (hi < lo || lo > 63)
        return 0;
    uint64_t upto_hi = hi >= 63 ? ~0ull : (1ull << (hi + 1)) - 1;
    return upto_hi & ~((1ull << lo) - 1);
}

static int is_32bit(const ptmon_paging *pg)
{
    return pg->mode == PTMON_MODE_32BIT;
}

static int is_ia32e(const ptmon_paging *pg)
{
    return pg->mode == PTMON_MODE_4LEVEL || pg->mode == PTMON_MODE_5LEVEL;
}

static unsigned phys_bits(const ptmon_paging *pg)
{
    return pg->maxphyaddr ? pg->maxphyaddr : 52;
}

static int nx_enabled(const ptmon_paging *pg)
{
    return !is_32bit(pg) && (pg->flags & PTMON_PAGING_NXE);
}

unsigned fake_levels(const ptmon_paging *pg)
{
    switch (pg->mode) {
    case PTMON_MODE_32BIT:
        return 2;
    case PTMON_MODE_PAE:
        return 3;
    case PTMON_MODE_4LEVEL:
        return 4;
    case PTMON_MODE_5LEVEL:
        return 5;
    default:
        return 0;
    }
}

unsigned fake_entry_size(const ptmon_paging *pg)
{
    return is_32bit(pg) ? 4 : 8;
}

static unsigned level_shift(const ptmon_paging *pg, unsigned level)
{
    return is_32bit(pg) ? 12 + 10 * (level - 1) : 12 + 9 * (level - 1);
}

unsigned fake_table_entries(const ptmon_paging *pg, unsigned level)
{
    if (is_32bit(pg))
        return 1024;
    if (pg->mode == PTMON_MODE_PAE && level == 3)
        return 4;
    return 512;
}

unsigned fake_index(const ptmon_paging *pg, unsigned level, uint64_t va)
{
    return (unsigned)(va >> level_shift(pg, level)) & (fake_table_entries(pg, level) - 1);
}

uint64_t fake_level_span(const ptmon_paging *pg, unsigned level)
{
    return 1ull << level_shift(pg, level);
}

uint64_t fake_root_gpa(const ptmon_paging *pg, uint64_t cr3)
{
    switch (pg->mode) {
    case PTMON_MODE_32BIT:
        return cr3 & 0xfffff000ull;
    case PTMON_MODE_PAE:
        return cr3 & 0xffffffe0ull;
    default:
        return cr3 & bit_range(phys_bits(pg) - 1, 12);
    }
}

int fake_va_valid(const ptmon_paging *pg, uint64_t va)
{
    if (!is_ia32e(pg))
        return va < FAKE_4GIB;
    /* Canonical: every bit above the top translated bit equals that bit. */
    unsigned top = pg->mode == PTMON_MODE_5LEVEL ? 56 : 47;
    uint64_t upper = va >> top;
    return upper == 0 || upper == (~0ull >> top);
}

int fake_large_page_level(const ptmon_paging *pg, unsigned level)
{
    switch (pg->mode) {
    case PTMON_MODE_32BIT:
        return level == 2 && (pg->flags & PTMON_PAGING_PSE);
    case PTMON_MODE_PAE:
        return level == 2;
    case PTMON_MODE_4LEVEL:
    case PTMON_MODE_5LEVEL:
        return level == 2 || level == 3;
    default:
        return 0;
    }
}

unsigned fake_level_for_size(const ptmon_paging *pg, uint64_t page_size)
{
    if (page_size == FAKE_FRAME_SIZE)
        return 1;
    for (unsigned level = 2; level <= fake_levels(pg); level++)
        if (fake_large_page_level(pg, level) && fake_level_span(pg, level) == page_size)
            return level;
    return 0;
}

/** 32-bit 4 MiB PDE: bits 21:(M-19) are reserved, M = min(MAXPHYADDR, 40) (PSE-36). */
static uint64_t reserved_32bit_4m(const ptmon_paging *pg)
{
    unsigned m = phys_bits(pg) < 40 ? phys_bits(pg) : 40;
    return bit_range(21, m - 19);
}

uint64_t fake_reserved_bits(const ptmon_paging *pg, unsigned level, uint64_t entry)
{
    if (is_32bit(pg)) {
        /* With CR4.PSE=0 bit 7 of a PDE is ignored, so a 32-bit table pointer or PTE has no
         * reserved bit at all. */
        if (fake_large_page_level(pg, level) && (entry & PTMON_PTE_PS))
            return entry & reserved_32bit_4m(pg);
        return 0;
    }

    unsigned m = phys_bits(pg);
    uint64_t reserved;
    if (pg->mode == PTMON_MODE_PAE)
        reserved = bit_range(62, m); /* PAE entries have no ignored high bits */
    else
        reserved = bit_range(51, m);
    if (!nx_enabled(pg))
        reserved |= PTMON_PTE_NX;

    if (pg->mode == PTMON_MODE_PAE && level == 3) {
        /* The PDPTE is loaded into a register: no R/W, U/S, A, D, PS, G and no XD. */
        reserved |= bit_range(2, 1) | bit_range(8, 5) | PTMON_PTE_NX;
    } else if (level >= 4) {
        reserved |= PTMON_PTE_PS;
    } else if (level >= 2 && (entry & PTMON_PTE_PS)) {
        /* Large page: the address bits below its alignment (bit 12 is PAT). */
        reserved |= bit_range(level_shift(pg, level) - 1, 13);
    }
    return entry & reserved;
}

static int is_leaf(const ptmon_paging *pg, unsigned level, uint64_t entry)
{
    return level == 1 || (fake_large_page_level(pg, level) && (entry & PTMON_PTE_PS));
}

static unsigned entry_rights(const ptmon_paging *pg, unsigned level, uint64_t entry)
{
    if (pg->mode == PTMON_MODE_PAE && level == 3)
        return PTMON_RIGHT_W | PTMON_RIGHT_U; /* no R/W, U/S: it restricts nothing */
    unsigned rights = 0;
    if (entry & PTMON_PTE_RW)
        rights |= PTMON_RIGHT_W;
    if (entry & PTMON_PTE_US)
        rights |= PTMON_RIGHT_U;
    if (nx_enabled(pg) && (entry & PTMON_PTE_NX))
        rights |= PTMON_RIGHT_NX;
    return rights;
}

static uint64_t entry_address(const ptmon_paging *pg, unsigned level, uint64_t entry, int leaf)
{
    if (is_32bit(pg)) {
        if (leaf && level == 2)
            return (entry & 0xffc00000ull) | (((entry >> 13) & 0xffull) << 32);
        return entry & 0xfffff000ull;
    }
    uint64_t addr = entry & bit_range(phys_bits(pg) - 1, 12);
    if (leaf)
        addr &= ~(fake_level_span(pg, level) - 1);
    return addr;
}

void fake_decode(const ptmon_paging *pg, unsigned level, uint64_t entry, struct fake_entry *out)
{
    out->addr = 0;
    out->page_size = 0;
    out->rights = 0;
    if (!(entry & PTMON_PTE_P)) {
        out->kind = FAKE_NOT_PRESENT;
        return;
    }
    if (fake_reserved_bits(pg, level, entry)) {
        out->kind = FAKE_RESERVED;
        return;
    }
    int leaf = is_leaf(pg, level, entry);
    out->kind = leaf ? FAKE_LEAF : FAKE_TABLE;
    out->addr = entry_address(pg, level, entry, leaf);
    out->page_size = leaf ? fake_level_span(pg, level) : 0;
    out->rights = entry_rights(pg, level, entry);
}

uint64_t fake_table_pointer_bits(const ptmon_paging *pg, unsigned level)
{
    if (pg->mode == PTMON_MODE_PAE && level == 3)
        return PTMON_PTE_P;
    return PTMON_PTE_P | PTMON_PTE_RW | PTMON_PTE_US;
}

uint64_t fake_table_limit(const ptmon_paging *pg, int root)
{
    if (is_32bit(pg) || (pg->mode == PTMON_MODE_PAE && root))
        return FAKE_4GIB;
    return 1ull << phys_bits(pg);
}

uint64_t fake_leaf_addr_limit(const ptmon_paging *pg, uint64_t page_size)
{
    if (!is_32bit(pg))
        return 1ull << phys_bits(pg);
    if (page_size == FAKE_FRAME_SIZE)
        return FAKE_4GIB;
    return 1ull << (phys_bits(pg) < 40 ? phys_bits(pg) : 40);
}

uint64_t fake_encode_leaf(const ptmon_paging *pg, uint64_t page_size, uint64_t gpa, uint64_t flags)
{
    if (is_32bit(pg) && page_size != FAKE_FRAME_SIZE)
        return (gpa & 0xffc00000ull) | ((gpa >> 32) << 13) | flags;
    return gpa | flags;
}
