/*
 * test_translate.c — ptmon_translate() against what the fake guest's page-table builder
 * mapped, in every paging mode: the walker and the builder are written independently, so
 * each checks the other. Every test runs once per mode (cmocka state = the mode under test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ptmon/fake.h>
#include <ptmon/ptmon.h>

#include <stdlib.h>

#define KIB 1024ull
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define RWU (PTMON_PTE_RW | PTMON_PTE_US)

struct mode_case {
    const char *name;
    enum ptmon_paging_mode mode;
    unsigned flags;
    uint64_t large; /* the PD-level large page size */
    int has_1g;
    uint64_t kernel; /* a kernel-half VA */
};

static const struct mode_case modes[] = {
    {"32-bit", PTMON_MODE_32BIT, PTMON_PAGING_PSE, 4 * MIB, 0, 0xc0000000ull},
    {"PAE", PTMON_MODE_PAE, PTMON_PAGING_NXE, 2 * MIB, 0, 0xc0000000ull},
    {"4-level", PTMON_MODE_4LEVEL, PTMON_PAGING_NXE, 2 * MIB, 1, 0xffff800000000000ull},
    {"5-level", PTMON_MODE_5LEVEL, PTMON_PAGING_NXE, 2 * MIB, 1, 0xff00000000000000ull},
};

struct guest {
    const struct mode_case *mc;
    ptmon_fake *fake;
    ptmon *pm;
    uint64_t cr3;
    unsigned top;
};

static struct guest *guest_new(const struct mode_case *mc, uint64_t ram)
{
    struct guest *g = calloc(1, sizeof(*g));
    ptmon_fake_config fc = PTMON_FAKE_CONFIG_INIT;
    ptmon_config pc = PTMON_CONFIG_INIT;

    assert_non_null(g);
    g->mc = mc;
    fc.paging.mode = mc->mode;
    fc.paging.flags = mc->flags;
    fc.paging.maxphyaddr = mc->mode == PTMON_MODE_32BIT ? 40 : 46;
    fc.ram_size = ram;
    assert_int_equal(ptmon_fake_create(&fc, &g->fake), 0);
    pc.paging = fc.paging;
    assert_int_equal(ptmon_create(ptmon_fake_glue(g->fake), &pc, &g->pm), 0);
    assert_int_equal(ptmon_fake_new_root(g->fake, &g->cr3), 0);
    g->top = ptmon_paging_levels(mc->mode);
    return g;
}

static void guest_free(struct guest *g)
{
    ptmon_destroy(g->pm);
    ptmon_fake_destroy(g->fake);
    free(g);
}

static uint64_t new_frame(struct guest *g)
{
    uint64_t gpa;
    assert_int_equal(ptmon_fake_alloc_frame(g->fake, &gpa), 0);
    return gpa;
}

static ptmon_walk walk(struct guest *g, uint64_t va)
{
    ptmon_walk w;
    assert_int_equal(ptmon_translate(g->pm, g->cr3, va, &w), 0);
    return w;
}

/* Every level the walk reports must be the entry the builder put there. */
static void assert_levels_match_builder(struct guest *g, const ptmon_walk *w)
{
    for (unsigned l = w->top_level; l >= w->stop_level && l >= 1; l--) {
        uint64_t gpa, value;
        assert_int_equal(ptmon_fake_entry_gpa(g->fake, g->cr3, w->va, l, &gpa), 0);
        assert_int_equal(ptmon_fake_get_entry(g->fake, g->cr3, w->va, l, &value), 0);
        assert_int_equal(w->level[l].gpa, gpa);
        assert_int_equal(w->level[l].value, value);
    }
}

static void assert_maps(struct guest *g, uint64_t va, uint64_t gpa, uint64_t size, unsigned rights)
{
    ptmon_walk w = walk(g, va);
    assert_int_equal(w.status, PTMON_WALK_OK);
    assert_int_equal(w.top_level, g->top);
    assert_int_equal(w.page_size, size);
    assert_int_equal(w.page_gpa, gpa & ~(size - 1));
    assert_int_equal(w.gpa, gpa);
    assert_int_equal(w.rights, rights);
    assert_levels_match_builder(g, &w);
    /* the simulated CPU agrees with the walker */
    uint64_t cpu_gpa = 0;
    assert_int_equal(ptmon_fake_cpu_access(g->fake, g->cr3, va, PTMON_FAKE_CPU_READ, &cpu_gpa), 0);
    assert_int_equal(cpu_gpa, gpa);
}

static void assert_stops(struct guest *g, uint64_t va, enum ptmon_walk_status status,
                         unsigned level)
{
    ptmon_walk w = walk(g, va);
    assert_int_equal(w.status, status);
    assert_int_equal(w.stop_level, level);
    assert_int_equal(w.page_size, 0);
}

static unsigned nx_right(const struct guest *g)
{
    return (g->mc->flags & PTMON_PAGING_NXE) ? PTMON_RIGHT_NX : 0;
}

/* ---- scenarios ---------------------------------------------------------------------- */

static void small_pages_translate_to_the_frames_the_builder_mapped(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g), f3 = new_frame(g);
    uint64_t nx = (g->mc->flags & PTMON_PAGING_NXE) ? PTMON_PTE_NX : 0;

    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x400000, f1, 4 * KIB, RWU), 0);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x401000, f2, 4 * KIB, PTMON_PTE_US), 0);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x7ffff000, f3, 4 * KIB, RWU | nx), 0);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, g->mc->kernel, f3, 4 * KIB, PTMON_PTE_RW), 0);

    assert_maps(g, 0x400abc, f1 + 0xabc, 4 * KIB, PTMON_RIGHT_W | PTMON_RIGHT_U);
    assert_maps(g, 0x401fff, f2 + 0xfff, 4 * KIB, PTMON_RIGHT_U);
    assert_maps(g, 0x7ffff000, f3, 4 * KIB, PTMON_RIGHT_W | PTMON_RIGHT_U | nx_right(g));
    assert_maps(g, g->mc->kernel + 8, f3 + 8, 4 * KIB, PTMON_RIGHT_W);
    guest_free(g);
}

static void large_pages_translate_with_their_size(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, mc->has_1g ? 2 * GIB + 64 * MIB : 64 * MIB);
    uint64_t big = 16 * MIB;

    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x800000, big, mc->large, RWU), 0);
    assert_maps(g, 0x800000 + mc->large - 1, big + mc->large - 1, mc->large,
                PTMON_RIGHT_W | PTMON_RIGHT_U);
    if (mc->has_1g) {
        assert_int_equal(ptmon_fake_map(g->fake, g->cr3, mc->kernel, 1 * GIB, 1 * GIB, 0), 0);
        assert_maps(g, mc->kernel + 0x12345678, 1 * GIB + 0x12345678, 1 * GIB, 0);
    }
    guest_free(g);
}

static void pse36_4m_page_above_4g(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    /* The builder may refuse a frame outside RAM; write the PDE by hand: PA 0x3_0040_0000. */
    uint64_t pde = 0x00400000ull | (3ull << 13) | PTMON_PTE_P | PTMON_PTE_PS | PTMON_PTE_RW;
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x00400000, 16 * MIB, 4 * MIB, 0), 0);
    assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, 0x00400000, 2, pde), 0);
    ptmon_walk w = walk(g, 0x00412345);
    assert_int_equal(w.status, PTMON_WALK_OK);
    assert_int_equal(w.gpa, 0x300412345ull);
    assert_int_equal(w.page_size, 4 * MIB);
    guest_free(g);
}

static void unmapped_address_stops_at_the_first_missing_level(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    /* nothing mapped: the root entry is not present */
    assert_stops(g, 0x400000, PTMON_WALK_NOT_PRESENT, g->top);
    /* one page mapped: a neighbour in the same table stops at the PTE */
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x400000, new_frame(g), 4 * KIB, RWU), 0);
    assert_stops(g, 0x401000, PTMON_WALK_NOT_PRESENT, 1);
    /* an address in another PD stops at the PD-pointing level (PDE for 32-bit) */
    ptmon_walk w = walk(g, 0x40000000);
    assert_int_equal(w.status, PTMON_WALK_NOT_PRESENT);
    assert_true(w.stop_level >= 2);
    assert_levels_match_builder(g, &w);
    guest_free(g);
}

static void unmap_and_swap_out_make_the_leaf_not_present(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x400000, f, 4 * KIB, RWU), 0);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x401000, f, 4 * KIB, RWU), 0);
    assert_int_equal(ptmon_fake_unmap(g->fake, g->cr3, 0x400000), 0);
    assert_stops(g, 0x400000, PTMON_WALK_NOT_PRESENT, 1);
    assert_int_equal(walk(g, 0x400000).level[1].value, 0);
    /* a swap entry: P clear, the OS's own bits elsewhere */
    assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, 0x401000, 1, 0x12345600), 0);
    ptmon_walk w = walk(g, 0x401000);
    assert_int_equal(w.status, PTMON_WALK_NOT_PRESENT);
    assert_int_equal(w.level[1].value, 0x12345600);
    /* swap back in */
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x401000, f, 4 * KIB, RWU), 0);
    assert_maps(g, 0x401000, f, 4 * KIB, PTMON_RIGHT_W | PTMON_RIGHT_U);
    guest_free(g);
}

static void split_and_merge_change_the_page_size(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    uint64_t big = 16 * MIB, table;

    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x800000, big, mc->large, RWU), 0);
    assert_int_equal(ptmon_fake_split(g->fake, g->cr3, 0x800000, 0, &table), 0);
    assert_maps(g, 0x800000 + 5 * 4096 + 7, big + 5 * 4096 + 7, 4 * KIB,
                PTMON_RIGHT_W | PTMON_RIGHT_U);
    assert_int_equal(walk(g, 0x800000).level[1].gpa, table);
    assert_int_equal(ptmon_fake_merge(g->fake, g->cr3, 0x800000, 2), 0);
    assert_maps(g, 0x800000 + 5 * 4096 + 7, big + 5 * 4096 + 7, mc->large,
                PTMON_RIGHT_W | PTMON_RIGHT_U);
    /* split into not-present PTEs: the walk now stops at level 1 */
    assert_int_equal(ptmon_fake_split(g->fake, g->cr3, 0x800000, PTMON_PTE_P, NULL), 0);
    assert_stops(g, 0x800000, PTMON_WALK_NOT_PRESENT, 1);
    guest_free(g);
}

static void split_1g_page_gives_2m_pages(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 2 * GIB + 64 * MIB);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, mc->kernel, 1 * GIB, 1 * GIB, PTMON_PTE_RW),
                     0);
    assert_int_equal(ptmon_fake_split(g->fake, g->cr3, mc->kernel, 0, NULL), 0);
    assert_maps(g, mc->kernel + 3 * MIB, 1 * GIB + 3 * MIB, 2 * MIB, PTMON_RIGHT_W);
    assert_int_equal(ptmon_fake_merge(g->fake, g->cr3, mc->kernel, 3), 0);
    assert_maps(g, mc->kernel + 3 * MIB, 1 * GIB + 3 * MIB, 1 * GIB, PTMON_RIGHT_W);
    guest_free(g);
}

static void rights_combine_over_levels(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g), pde;
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x400000, f, 4 * KIB, RWU), 0);
    assert_maps(g, 0x400000, f, 4 * KIB, PTMON_RIGHT_W | PTMON_RIGHT_U);
    /* clear R/W in the PDE: the leaf is unchanged but the page is read-only */
    assert_int_equal(ptmon_fake_get_entry(g->fake, g->cr3, 0x400000, 2, &pde), 0);
    assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, 0x400000, 2, pde & ~PTMON_PTE_RW), 0);
    assert_maps(g, 0x400000, f, 4 * KIB, PTMON_RIGHT_U);
    /* and U/S: kernel only */
    pde &= ~(PTMON_PTE_RW | PTMON_PTE_US);
    assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, 0x400000, 2, pde), 0);
    assert_maps(g, 0x400000, f, 4 * KIB, 0);
    if (g->mc->flags & PTMON_PAGING_NXE) {
        assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, 0x400000, 2, pde | PTMON_PTE_NX), 0);
        ptmon_walk w = walk(g, 0x400000);
        assert_int_equal(w.rights, PTMON_RIGHT_NX);
    }
    guest_free(g);
}

static void reserved_bits_stop_the_walk(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    uint64_t f = new_frame(g), pte, pde;

    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x400000, f, 4 * KIB, RWU), 0);
    assert_int_equal(ptmon_fake_get_entry(g->fake, g->cr3, 0x400000, 1, &pte), 0);
    assert_int_equal(ptmon_fake_get_entry(g->fake, g->cr3, 0x400000, 2, &pde), 0);
    if (mc->mode == PTMON_MODE_32BIT) {
        /* 32-bit PTEs have no reserved bits; a 4M PDE has bit 21 */
        assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x800000, 16 * MIB, 4 * MIB, 0), 0);
        assert_int_equal(ptmon_fake_get_entry(g->fake, g->cr3, 0x800000, 2, &pde), 0);
        assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, 0x800000, 2, pde | (1ull << 21)), 0);
        ptmon_walk w = walk(g, 0x800000);
        assert_int_equal(w.status, PTMON_WALK_RESERVED);
        assert_int_equal(w.stop_level, 2);
        assert_int_equal(w.reserved_bits, 1ull << 21);
    } else {
        /* an address bit at MAXPHYADDR (46) in the PTE */
        assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, 0x400000, 1, pte | (1ull << 46)), 0);
        ptmon_walk w = walk(g, 0x400000);
        assert_int_equal(w.status, PTMON_WALK_RESERVED);
        assert_int_equal(w.stop_level, 1);
        assert_int_equal(w.reserved_bits, 1ull << 46);
        /* the CPU faults on it too */
        uint64_t gpa;
        assert_int_equal(ptmon_fake_cpu_access(g->fake, g->cr3, 0x400000, 0, &gpa),
                         PTMON_ENOTPRESENT);
    }
    guest_free(g);
}

/* The builder links only below an existing path: a page mapped at 0x200000 creates the upper
 * tables that 0x400000 shares (same PD in every mode). */
static void make_upper_tables(struct guest *g, uint64_t cr3)
{
    assert_int_equal(ptmon_fake_map(g->fake, cr3, 0x200000, new_frame(g), 4 * KIB, RWU), 0);
}

static void table_outside_ram_stops_the_walk_at_its_pointer(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t pde;
    make_upper_tables(g, g->cr3);
    assert_int_equal(ptmon_fake_link(g->fake, g->cr3, 0x400000, 2, 64 * MIB + 0x3000, RWU), 0);
    assert_int_equal(ptmon_fake_get_entry(g->fake, g->cr3, 0x400000, 2, &pde), 0);
    ptmon_walk w = walk(g, 0x400000);
    assert_int_equal(w.status, PTMON_WALK_OUTSIDE_RAM);
    assert_int_equal(w.stop_level, 2); /* the PDE, which exists, not an entry of no table */
    assert_int_equal(w.level[2].value, pde);
    assert_int_equal(w.level[2].value & 0xffffff000ull, 64 * MIB + 0x3000);
    assert_int_equal(w.level[1].gpa, 0);
    assert_int_equal(w.level[1].value, 0);
    guest_free(g);
}

static void table_at_gpa_zero_is_walked(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    assert_int_equal(ptmon_fake_claim_frame(g->fake, 0), 0);
    make_upper_tables(g, g->cr3);
    assert_int_equal(ptmon_fake_link(g->fake, g->cr3, 0x400000, 2, 0, RWU), 0);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x400000, f, 4 * KIB, RWU), 0);
    ptmon_walk w = walk(g, 0x400000);
    assert_int_equal(w.status, PTMON_WALK_OK);
    assert_int_equal(w.level[1].gpa, 0);
    assert_int_equal(w.gpa, f);
    guest_free(g);
}

static void pcid_and_flag_bits_of_cr3_are_ignored(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x400000, f, 4 * KIB, RWU), 0);
    ptmon_walk plain = walk(g, 0x400010), tagged;
    uint64_t low = g->mc->mode == PTMON_MODE_PAE ? 0x18 /* PWT|PCD */ : 0xfff;
    uint64_t high = g->mc->mode >= PTMON_MODE_4LEVEL ? 1ull << 63 : 0;
    assert_int_equal(ptmon_translate(g->pm, g->cr3 | low | high, 0x400010, &tagged), 0);
    assert_int_equal(tagged.status, PTMON_WALK_OK);
    assert_int_equal(tagged.gpa, plain.gpa);
    for (unsigned l = 1; l <= g->top; l++)
        assert_int_equal(tagged.level[l].gpa, plain.level[l].gpa);
    guest_free(g);
}

static void aliased_tables_give_the_same_translation_in_two_roots(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g), other, table;
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x400000, f, 4 * KIB, RWU), 0);
    assert_int_equal(ptmon_fake_new_root(g->fake, &other), 0);
    make_upper_tables(g, other);
    /* the second root's level-2 table pointer aliases the first's page table */
    ptmon_walk w = walk(g, 0x400000);
    table = w.level[1].gpa & ~0xfffull;
    assert_int_equal(ptmon_fake_link(g->fake, other, 0x400000, 2, table, RWU), 0);
    ptmon_walk w2;
    assert_int_equal(ptmon_translate(g->pm, other, 0x400000, &w2), 0);
    assert_int_equal(w2.status, PTMON_WALK_OK);
    assert_int_equal(w2.gpa, w.gpa);
    assert_int_equal(w2.level[1].gpa, w.level[1].gpa);
    guest_free(g);
}

static void self_map_walk_terminates_at_the_root(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    unsigned idx = mc->mode == PTMON_MODE_32BIT ? 0x300 : 0x1ed;
    assert_int_equal(ptmon_fake_self_map(g->fake, g->cr3, idx), 0);
    /* the VA whose every index is the self-map index maps the root table itself */
    uint64_t va = 0;
    unsigned bits = mc->mode == PTMON_MODE_32BIT ? 10 : 9;
    for (unsigned l = 1; l <= g->top; l++)
        va |= (uint64_t)idx << (12 + (l - 1) * bits);
    if (mc->mode == PTMON_MODE_4LEVEL && (va >> 47))
        va |= 0xffff000000000000ull;
    if (mc->mode == PTMON_MODE_5LEVEL && (va >> 56))
        va |= 0xff00000000000000ull;
    ptmon_walk w = walk(g, va);
    assert_int_equal(w.status, PTMON_WALK_OK);
    assert_int_equal(w.page_gpa, g->cr3 & ~0xfffull);
    assert_int_equal(w.page_size, 4 * KIB);
    for (unsigned l = 1; l <= g->top; l++)
        assert_int_equal(w.level[l].gpa, (g->cr3 & ~0xfffull) + idx * (bits == 10 ? 4 : 8));
    guest_free(g);
}

static void loop_back_to_the_root_is_bounded(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    /* a PDPTE pointing back at the root page */
    make_upper_tables(g, g->cr3);
    assert_int_equal(ptmon_fake_link(g->fake, g->cr3, 0x400000, 3, g->cr3 & ~0xfffull, RWU), 0);
    ptmon_walk w = walk(g, 0x400000);
    /* whatever the outcome, the walk read exactly one entry per level */
    assert_true(w.stop_level >= 1 && w.stop_level <= g->top);
    assert_int_equal(w.level[2].gpa & ~0xfffull, g->cr3 & ~0xfffull);
    guest_free(g);
}

static void addresses_the_mode_cannot_translate_are_refused(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    uint64_t bad = mc->mode == PTMON_MODE_4LEVEL   ? 0x0000800000000000ull
                   : mc->mode == PTMON_MODE_5LEVEL ? 0x0100000000000000ull
                                                   : 0x100000000ull;
    ptmon_walk w = walk(g, bad);
    assert_int_equal(w.status, PTMON_WALK_NONCANONICAL);
    assert_int_equal(w.stop_level, 0);
    guest_free(g);
}

static void accessed_and_dirty_updates_do_not_change_the_translation(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g), gpa;
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x400000, f, 4 * KIB, RWU), 0);
    ptmon_walk before = walk(g, 0x400000);
    assert_int_equal(ptmon_fake_cpu_access(g->fake, g->cr3, 0x400000,
                                           PTMON_FAKE_CPU_WRITE | PTMON_FAKE_CPU_USER, &gpa),
                     0);
    ptmon_walk after = walk(g, 0x400000);
    assert_int_equal(after.gpa, before.gpa);
    assert_int_equal(after.rights, before.rights);
    assert_true(after.level[1].value & PTMON_PTE_A);
    assert_true(after.level[1].value & PTMON_PTE_D);
    assert_true(after.level[2].value & PTMON_PTE_A);
    guest_free(g);
}

#define PER_MODE(f)                                          \
    {#f " [32-bit]", f, NULL, NULL, (void *)&modes[0]},      \
        {#f " [PAE]", f, NULL, NULL, (void *)&modes[1]},     \
        {#f " [4-level]", f, NULL, NULL, (void *)&modes[2]}, \
    {                                                        \
#f " [5-level]", f, NULL, NULL, (void *)&modes[3]    \
    }
#define IN_MODE(f, i, label)                                \
    {                                                       \
#f " [" label "]", f, NULL, NULL, (void *)&modes[i] \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        PER_MODE(small_pages_translate_to_the_frames_the_builder_mapped),
        PER_MODE(large_pages_translate_with_their_size),
        IN_MODE(pse36_4m_page_above_4g, 0, "32-bit"),
        PER_MODE(unmapped_address_stops_at_the_first_missing_level),
        PER_MODE(unmap_and_swap_out_make_the_leaf_not_present),
        PER_MODE(split_and_merge_change_the_page_size),
        IN_MODE(split_1g_page_gives_2m_pages, 2, "4-level"),
        IN_MODE(split_1g_page_gives_2m_pages, 3, "5-level"),
        PER_MODE(rights_combine_over_levels),
        PER_MODE(reserved_bits_stop_the_walk),
        PER_MODE(table_outside_ram_stops_the_walk_at_its_pointer),
        PER_MODE(table_at_gpa_zero_is_walked),
        PER_MODE(pcid_and_flag_bits_of_cr3_are_ignored),
        PER_MODE(aliased_tables_give_the_same_translation_in_two_roots),
        /* not in PAE: a 4-entry PDPT cannot map itself */
        IN_MODE(self_map_walk_terminates_at_the_root, 0, "32-bit"),
        IN_MODE(self_map_walk_terminates_at_the_root, 2, "4-level"),
        IN_MODE(self_map_walk_terminates_at_the_root, 3, "5-level"),
        /* needs a level-3 table pointer */
        IN_MODE(loop_back_to_the_root_is_bounded, 2, "4-level"),
        IN_MODE(loop_back_to_the_root_is_bounded, 3, "5-level"),
        PER_MODE(addresses_the_mode_cannot_translate_are_refused),
        PER_MODE(accessed_and_dirty_updates_do_not_change_the_translation),
    };
    return cmocka_run_group_tests_name("translate", tests, NULL, NULL);
}
