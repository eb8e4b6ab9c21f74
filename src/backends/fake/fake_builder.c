/*
 * fake_builder.c — the page-table builder: how a test plays the guest OS's memory manager.
 *
 * Owns: ptmon_fake_new_root, map, unmap, split, merge, entry_gpa, get/set_entry, link, self_map.
 * Every change to a table that already exists is one guest store of a whole entry by vCPU 0
 * (fake_guest_store), so it traps exactly like the guest's own writes. New tables are filled by
 * direct writes while nothing points to them yet, then linked with one store.
 * Calls: fake_format.c (formats), fake_store.c (stores), fake.c (frames, RAM).
 */
#include "fake_internal.h"

#define ADDR_BITS_64       0x000ffffffffff000ull /* bits 51:12 */
#define LARGE_ADDR_BITS_64 0x000fffffffffe000ull /* bits 51:13: bit 12 is PAT in a large leaf */
#define HIGH_FLAG_BITS_64  0xfff0000000000000ull /* bits 63:52: available, protection key, XD */
#define PTE_PAT            (1ull << 7)
#define LARGE_PAT          (1ull << 12)

static const ptmon_paging *paging_of(const ptmon_fake *fake)
{
    return &fake->config.paging;
}

static int is_32bit(const ptmon_fake *fake)
{
    return fake->config.paging.mode == PTMON_MODE_32BIT;
}

static uint64_t entry_gpa_in(const ptmon_fake *fake, uint64_t table, unsigned level, uint64_t va)
{
    const ptmon_paging *pg = paging_of(fake);
    return table + (uint64_t)fake_index(pg, level, va) * fake_entry_size(pg);
}

static int read_entry(const ptmon_fake *fake, uint64_t gpa, uint64_t *value)
{
    unsigned size = fake_entry_size(paging_of(fake));
    if (!fake_range_in_ram(fake, gpa, size))
        return PTMON_ERANGE;
    *value = fake_load_le(fake->ram + gpa, size);
    return 0;
}

/** Only for tables nothing points to yet. */
static void write_entry_direct(ptmon_fake *fake, uint64_t gpa, uint64_t value)
{
    fake_put_le(fake->ram + gpa, value, fake_entry_size(paging_of(fake)));
}

/** One guest store of a whole entry by vCPU 0. */
static int store_entry(ptmon_fake *fake, uint64_t gpa, uint64_t value)
{
    unsigned size = fake_entry_size(paging_of(fake));
    if (!fake_range_in_ram(fake, gpa, size))
        return PTMON_ERANGE;
    uint8_t bytes[8];
    fake_put_le(bytes, value, size);
    fake_count(fake, PTMON_FAKE_STAT_STORES);
    return fake_guest_store(fake, 0, gpa, bytes, size);
}

static int entry_fits(const ptmon_fake *fake, uint64_t value)
{
    return !is_32bit(fake) || value <= UINT32_MAX;
}

static int level_and_va_valid(const ptmon_fake *fake, unsigned level, uint64_t va)
{
    const ptmon_paging *pg = paging_of(fake);
    return level >= 1 && level <= fake_levels(pg) && fake_va_valid(pg, va);
}

/** Walk from the root to the table holding @p va's entry at @p level; every entry above must
 *  be a valid table pointer. */
static int find_table(const ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level,
                      uint64_t *table)
{
    const ptmon_paging *pg = paging_of(fake);
    uint64_t t = fake_root_gpa(pg, cr3);
    for (unsigned lvl = fake_levels(pg); lvl > level; lvl--) {
        uint64_t value;
        struct fake_entry info;
        int rc = read_entry(fake, entry_gpa_in(fake, t, lvl, va), &value);
        if (rc)
            return rc;
        fake_decode(pg, lvl, value, &info);
        if (info.kind != FAKE_TABLE)
            return PTMON_ENOTPRESENT;
        t = info.addr;
    }
    *table = t;
    return 0;
}

/** Where the translation of a VA ends in a present leaf. */
struct leaf_pos {
    unsigned level;
    uint64_t gpa;
    uint64_t value;
    struct fake_entry info;
};

static int find_leaf(const ptmon_fake *fake, uint64_t cr3, uint64_t va, struct leaf_pos *out)
{
    const ptmon_paging *pg = paging_of(fake);
    uint64_t t = fake_root_gpa(pg, cr3);
    for (unsigned lvl = fake_levels(pg); lvl >= 1; lvl--) {
        out->level = lvl;
        out->gpa = entry_gpa_in(fake, t, lvl, va);
        int rc = read_entry(fake, out->gpa, &out->value);
        if (rc)
            return rc;
        fake_decode(pg, lvl, out->value, &out->info);
        if (out->info.kind == FAKE_LEAF)
            return 0;
        if (out->info.kind != FAKE_TABLE)
            break;
        t = out->info.addr;
    }
    return PTMON_ENOTPRESENT;
}

/* ---- roots and leaves --------------------------------------------------------------------- */

int ptmon_fake_new_root(ptmon_fake *fake, uint64_t *cr3)
{
    if (!fake || !cr3)
        return PTMON_EINVAL;
    return fake_alloc_frame_below(fake, fake_table_limit(paging_of(fake), 1), cr3);
}

/** @return nonzero if @p leaf_bits hold only flag bits of a leaf of @p page_size. */
static int leaf_bits_valid(const ptmon_fake *fake, uint64_t page_size, uint64_t leaf_bits)
{
    int large = page_size != FAKE_FRAME_SIZE;
    uint64_t forbidden;
    if (is_32bit(fake))
        forbidden = large ? ~0x1fffull | PTMON_PTE_PS : ~0xfffull;
    else
        forbidden = large ? LARGE_ADDR_BITS_64 | PTMON_PTE_PS : ADDR_BITS_64;
    return !(leaf_bits & forbidden);
}

static void free_frames(ptmon_fake *fake, const uint64_t *frames, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        fake_release_frame(fake, frames[i]);
}

/**
 * The path of @p va is missing from @p link_level down: build the tables for levels
 * link_level-1 .. leaf_level, put @p leaf in the lowest, and link them with one store at
 * @p link_gpa.
 */
static int link_new_tables(ptmon_fake *fake, uint64_t link_gpa, unsigned link_level,
                           unsigned leaf_level, uint64_t va, uint64_t leaf)
{
    const ptmon_paging *pg = paging_of(fake);
    uint64_t tables[PTMON_MAX_LEVELS]; /* tables[i] is at level link_level - 1 - i */
    unsigned n = 0;
    for (unsigned lvl = link_level - 1; lvl >= leaf_level; lvl--) {
        int rc = fake_alloc_frame_below(fake, fake_table_limit(pg, 0), &tables[n]);
        if (rc) {
            free_frames(fake, tables, n);
            return rc;
        }
        n++;
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned lvl = link_level - 1 - i;
        uint64_t value = i + 1 < n ? tables[i + 1] | fake_table_pointer_bits(pg, lvl) : leaf;
        write_entry_direct(fake, entry_gpa_in(fake, tables[i], lvl, va), value);
    }
    int rc = store_entry(fake, link_gpa, tables[0] | fake_table_pointer_bits(pg, link_level));
    if (rc)
        free_frames(fake, tables, n);
    return rc;
}

int ptmon_fake_map(ptmon_fake *fake, uint64_t cr3, uint64_t va, uint64_t gpa, uint64_t page_size,
                   uint64_t leaf_bits)
{
    if (!fake)
        return PTMON_EINVAL;
    const ptmon_paging *pg = paging_of(fake);
    unsigned leaf_level = fake_level_for_size(pg, page_size);
    if (!leaf_level || !fake_va_valid(pg, va) || (va & (page_size - 1)) ||
        (gpa & (page_size - 1)) || gpa >= fake_leaf_addr_limit(pg, page_size) ||
        !leaf_bits_valid(fake, page_size, leaf_bits))
        return PTMON_EINVAL;
    uint64_t flags = leaf_bits | PTMON_PTE_P | (leaf_level > 1 ? PTMON_PTE_PS : 0);
    uint64_t leaf = fake_encode_leaf(pg, page_size, gpa, flags);

    uint64_t table = fake_root_gpa(pg, cr3);
    for (unsigned lvl = fake_levels(pg); lvl > leaf_level; lvl--) {
        uint64_t entry_gpa = entry_gpa_in(fake, table, lvl, va);
        uint64_t value;
        struct fake_entry info;
        int rc = read_entry(fake, entry_gpa, &value);
        if (rc)
            return rc;
        fake_decode(pg, lvl, value, &info);
        if (info.kind == FAKE_NOT_PRESENT)
            return link_new_tables(fake, entry_gpa, lvl, leaf_level, va, leaf);
        if (info.kind != FAKE_TABLE)
            return PTMON_ENOTPRESENT;
        table = info.addr;
    }
    return store_entry(fake, entry_gpa_in(fake, table, leaf_level, va), leaf);
}

int ptmon_fake_unmap(ptmon_fake *fake, uint64_t cr3, uint64_t va)
{
    if (!fake || !fake_va_valid(paging_of(fake), va))
        return PTMON_EINVAL;
    struct leaf_pos leaf;
    int rc = find_leaf(fake, cr3, va, &leaf);
    if (rc)
        return rc;
    return store_entry(fake, leaf.gpa, 0);
}

/* ---- split and merge ---------------------------------------------------------------------- */

static uint64_t flag_bits_mask(const ptmon_fake *fake)
{
    return is_32bit(fake) ? 0xfffull : 0xfffull | HIGH_FLAG_BITS_64;
}

/** The flags of the small entries a split of @p large at @p level produces. */
static uint64_t split_flags(const ptmon_fake *fake, unsigned level, uint64_t large)
{
    uint64_t flags = large & flag_bits_mask(fake);
    if (level == 3)
        return flags | (large & LARGE_PAT); /* 2 MiB leaves keep PS, PAT stays at bit 12 */
    flags &= ~PTMON_PTE_PS;
    if (large & LARGE_PAT)
        flags |= PTE_PAT;
    return flags;
}

/** The flags of the large entry a merge of @p small (a leaf at @p small_level) produces. */
static uint64_t merge_flags(const ptmon_fake *fake, unsigned small_level, uint64_t small)
{
    uint64_t flags = small & flag_bits_mask(fake);
    if (small_level == 2)
        return flags | (small & LARGE_PAT); /* already PS and PAT at bit 12 */
    flags &= ~PTE_PAT;
    if (small & PTE_PAT)
        flags |= LARGE_PAT;
    return flags | PTMON_PTE_PS;
}

int ptmon_fake_split(ptmon_fake *fake, uint64_t cr3, uint64_t va, uint64_t clear_bits,
                     uint64_t *table_gpa)
{
    if (!fake || !fake_va_valid(paging_of(fake), va))
        return PTMON_EINVAL;
    const ptmon_paging *pg = paging_of(fake);
    struct leaf_pos large;
    int rc = find_leaf(fake, cr3, va, &large);
    if (rc)
        return rc;
    /* A 4 KiB page cannot be split; a PSE-36 page above 4 GiB has no 32-bit PTE form. */
    if (large.level == 1 || large.info.addr >= fake_leaf_addr_limit(pg, FAKE_FRAME_SIZE))
        return PTMON_EINVAL;

    unsigned small_level = large.level - 1;
    uint64_t small_size = fake_level_span(pg, small_level);
    uint64_t flags = split_flags(fake, large.level, large.value);
    uint64_t table;
    rc = fake_alloc_frame_below(fake, fake_table_limit(pg, 0), &table);
    if (rc)
        return rc;
    unsigned n = fake_table_entries(pg, small_level);
    for (unsigned i = 0; i < n; i++) {
        uint64_t small = fake_encode_leaf(pg, small_size, large.info.addr + i * small_size, flags);
        write_entry_direct(fake, table + (uint64_t)i * fake_entry_size(pg), small & ~clear_bits);
    }
    /* The leaves carry the restrictions; A is kept so the walker sees the path as used. */
    uint64_t pointer =
        table | fake_table_pointer_bits(pg, large.level) | (large.value & PTMON_PTE_A);
    rc = store_entry(fake, large.gpa, pointer);
    if (rc) {
        fake_release_frame(fake, table);
        return rc;
    }
    if (table_gpa)
        *table_gpa = table;
    return 0;
}

int ptmon_fake_merge(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level)
{
    if (!fake)
        return PTMON_EINVAL;
    const ptmon_paging *pg = paging_of(fake);
    if (!fake_large_page_level(pg, level) || !fake_va_valid(pg, va))
        return PTMON_EINVAL;
    uint64_t table, entry_gpa, value, first;
    struct fake_entry info, first_info;
    int rc = find_table(fake, cr3, va, level, &table);
    if (rc)
        return rc;
    entry_gpa = entry_gpa_in(fake, table, level, va);
    if ((rc = read_entry(fake, entry_gpa, &value)) != 0)
        return rc;
    fake_decode(pg, level, value, &info);
    if (info.kind != FAKE_TABLE)
        return PTMON_ENOTPRESENT;
    if ((rc = read_entry(fake, info.addr, &first)) != 0)
        return rc;
    fake_decode(pg, level - 1, first, &first_info);
    if (first_info.kind != FAKE_LEAF)
        return PTMON_ENOTPRESENT;

    uint64_t size = fake_level_span(pg, level);
    uint64_t large = fake_encode_leaf(pg, size, first_info.addr & ~(size - 1),
                                      merge_flags(fake, level - 1, first));
    return store_entry(fake, entry_gpa, large);
}

/* ---- raw entries -------------------------------------------------------------------------- */

int ptmon_fake_entry_gpa(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level,
                         uint64_t *entry_gpa)
{
    if (!fake || !entry_gpa || !level_and_va_valid(fake, level, va))
        return PTMON_EINVAL;
    uint64_t table;
    int rc = find_table(fake, cr3, va, level, &table);
    if (rc)
        return rc;
    *entry_gpa = entry_gpa_in(fake, table, level, va);
    return 0;
}

int ptmon_fake_get_entry(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level,
                         uint64_t *value)
{
    uint64_t gpa;
    if (!value)
        return PTMON_EINVAL;
    int rc = ptmon_fake_entry_gpa(fake, cr3, va, level, &gpa);
    return rc ? rc : read_entry(fake, gpa, value);
}

int ptmon_fake_set_entry(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level,
                         uint64_t value)
{
    uint64_t gpa;
    if (!fake || !entry_fits(fake, value))
        return PTMON_EINVAL;
    int rc = ptmon_fake_entry_gpa(fake, cr3, va, level, &gpa);
    return rc ? rc : store_entry(fake, gpa, value);
}

int ptmon_fake_link(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level, uint64_t table_gpa,
                    uint64_t bits)
{
    return ptmon_fake_set_entry(fake, cr3, va, level, table_gpa | bits | PTMON_PTE_P);
}

int ptmon_fake_self_map(ptmon_fake *fake, uint64_t cr3, unsigned index)
{
    if (!fake)
        return PTMON_EINVAL;
    const ptmon_paging *pg = paging_of(fake);
    if (pg->mode == PTMON_MODE_PAE)
        return PTMON_ENOTSUP;
    unsigned top = fake_levels(pg);
    if (index >= fake_table_entries(pg, top))
        return PTMON_EINVAL;
    uint64_t root = fake_root_gpa(pg, cr3);
    return store_entry(fake, root + (uint64_t)index * fake_entry_size(pg),
                       root | PTMON_PTE_P | PTMON_PTE_RW);
}
