/*
 * fake_cpu.c — the simulated CPU's page walk.
 *
 * Owns: ptmon_fake_cpu_access: translation with the CPU's rights checks (CR0.WP=1, U/S, XD with
 * EFER.NXE) and the walker's A/D updates. Those updates are direct memory writes, never guest
 * stores: Xen absorbs them without an event, and ptmon must never see them as writes.
 * Calls: fake_format.c (formats), fake.c (RAM), fake_counters.c (statistics).
 */
#include "fake_internal.h"

enum { CPU_KIND_MASK = 3 };

/** The entries one walk used, for the A/D updates after the rights checks passed. */
struct used_path {
    unsigned n;
    uint64_t gpa[PTMON_MAX_LEVELS];
    unsigned level[PTMON_MAX_LEVELS];
};

/** Set @p bits in the entry at @p gpa, as the walker's locked OR would.
 *  @return the number of bits that were clear before. */
static unsigned set_entry_bits(ptmon_fake *fake, uint64_t gpa, uint64_t bits)
{
    unsigned size = fake_entry_size(&fake->config.paging);
    uint64_t old = fake_load_le(fake->ram + gpa, size);
    uint64_t added = bits & ~old;
    if (!added)
        return 0;
    /* Re-read and OR, never write back a value read earlier: with aliased tables the same
     * entry may appear twice on one path. */
    fake_put_le(fake->ram + gpa, old | added, size);
    unsigned count = 0;
    for (; added; added &= added - 1)
        count++;
    return count;
}

static void update_accessed_dirty(ptmon_fake *fake, const struct used_path *path, int write)
{
    const ptmon_paging *pg = &fake->config.paging;
    for (unsigned i = 0; i < path->n; i++) {
        /* A PAE PDPTE is loaded at MOV CR3 time and has no A bit (bit 5 is reserved). */
        if (pg->mode == PTMON_MODE_PAE && path->level[i] == 3)
            continue;
        uint64_t bits = PTMON_PTE_A;
        if (write && i + 1 == path->n)
            bits |= PTMON_PTE_D;
        unsigned added = set_entry_bits(fake, path->gpa[i], bits);
        fake->stats[PTMON_FAKE_STAT_AD_UPDATES] += added;
    }
}

static int access_allowed(unsigned how, unsigned rights)
{
    unsigned kind = how & CPU_KIND_MASK;
    if (kind == PTMON_FAKE_CPU_WRITE && !(rights & PTMON_RIGHT_W))
        return 0;
    if ((how & PTMON_FAKE_CPU_USER) && !(rights & PTMON_RIGHT_U))
        return 0;
    if (kind == PTMON_FAKE_CPU_EXEC && (rights & PTMON_RIGHT_NX))
        return 0;
    return 1;
}

int ptmon_fake_cpu_access(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned how, uint64_t *gpa)
{
    if (!fake || !gpa || (how & ~(unsigned)(CPU_KIND_MASK | PTMON_FAKE_CPU_USER)) ||
        (how & CPU_KIND_MASK) == CPU_KIND_MASK)
        return PTMON_EINVAL;
    const ptmon_paging *pg = &fake->config.paging;
    if (!fake_va_valid(pg, va))
        return PTMON_EINVAL; /* #GP rather than #PF: the access is not a translation fault */

    unsigned esize = fake_entry_size(pg);
    unsigned rights = PTMON_RIGHT_W | PTMON_RIGHT_U;
    struct used_path path = {0};
    struct fake_entry info = {0};
    uint64_t table = fake_root_gpa(pg, cr3);
    for (unsigned lvl = fake_levels(pg); lvl >= 1; lvl--) {
        uint64_t entry_gpa = table + (uint64_t)fake_index(pg, lvl, va) * esize;
        if (!fake_range_in_ram(fake, entry_gpa, esize))
            return PTMON_ENOTPRESENT;
        fake_decode(pg, lvl, fake_load_le(fake->ram + entry_gpa, esize), &info);
        if (info.kind == FAKE_NOT_PRESENT || info.kind == FAKE_RESERVED)
            return PTMON_ENOTPRESENT;
        rights = (rights & info.rights & (PTMON_RIGHT_W | PTMON_RIGHT_U)) |
                 ((rights | info.rights) & PTMON_RIGHT_NX);
        path.gpa[path.n] = entry_gpa;
        path.level[path.n] = lvl;
        path.n++;
        if (info.kind == FAKE_LEAF)
            break;
        table = info.addr;
    }
    if (!access_allowed(how, rights))
        return PTMON_ENOTPRESENT;

    update_accessed_dirty(fake, &path, (how & CPU_KIND_MASK) == PTMON_FAKE_CPU_WRITE);
    *gpa = info.addr + (va & (info.page_size - 1));
    return 0;
}
