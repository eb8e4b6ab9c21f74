/*
 * test_engine.c — the watch engine's modification cases C1–C15 (SPEC §4), in every paging mode
 * and both delivery modes, on the fake guest. Every step ends with ptmon_check finding nothing;
 * every scenario ends with every frame's rights restored and no memory left allocated.
 */
#include "engine_fixture.h"

static const struct mode_case modes[] = {
    {"32-bit pre", PTMON_MODE_32BIT, PTMON_PAGING_PSE, 4 * MIB, 0, 0xc0000000ull,
     PTMON_DELIVERY_PRE},
    {"PAE pre", PTMON_MODE_PAE, PTMON_PAGING_NXE, 2 * MIB, 0, 0xc0000000ull, PTMON_DELIVERY_PRE},
    {"4-level pre", PTMON_MODE_4LEVEL, PTMON_PAGING_NXE, 2 * MIB, 1, 0xffff800000000000ull,
     PTMON_DELIVERY_PRE},
    {"5-level pre", PTMON_MODE_5LEVEL, PTMON_PAGING_NXE, 2 * MIB, 1, 0xff00000000000000ull,
     PTMON_DELIVERY_PRE},
    {"32-bit post", PTMON_MODE_32BIT, PTMON_PAGING_PSE, 4 * MIB, 0, 0xc0000000ull,
     PTMON_DELIVERY_POST},
    {"PAE post", PTMON_MODE_PAE, PTMON_PAGING_NXE, 2 * MIB, 0, 0xc0000000ull, PTMON_DELIVERY_POST},
    {"4-level post", PTMON_MODE_4LEVEL, PTMON_PAGING_NXE, 2 * MIB, 1, 0xffff800000000000ull,
     PTMON_DELIVERY_POST},
    {"5-level post", PTMON_MODE_5LEVEL, PTMON_PAGING_NXE, 2 * MIB, 1, 0xff00000000000000ull,
     PTMON_DELIVERY_POST},
};

#define VA 0x400000ull

/* A guest with VA mapped to a fresh frame and watched. */
static struct guest *watched_guest(void **state, uint64_t *frame, struct ptmon_watch **w)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    *frame = new_frame(g);
    map4k(g, VA, *frame, RWU);
    *w = watch_va(g, VA);
    assert_int_equal(g->ncalls, 0); /* no callback at placement */
    return g;
}

/* ---- leaf cases --------------------------------------------------------------------- */

static void c1_leaf_remap_to_another_frame_notifies_old_and_new(void **state)
{
    uint64_t f1, f2;
    struct ptmon_watch *w;
    struct guest *g = watched_guest(state, &f1, &w);
    f2 = new_frame(g);
    map4k(g, VA, f2, RWU);
    const struct call *c = only_call(g);
    assert_ptr_equal(c->watch, w);
    assert_int_equal(c->change.before.status, PTMON_WALK_OK);
    assert_int_equal(c->change.after.status, PTMON_WALK_OK);
    assert_int_equal(c->change.before.frame, f1);
    assert_int_equal(c->change.after.frame, f2);
    assert_int_equal(c->change.before.page_size, 4 * KIB);
    assert_int_equal(c->change.after.page_size, 4 * KIB);
    assert_int_equal(c->change.level, 1);
    assert_int_equal(c->change.va, VA);
    assert_int_equal(c->change.cr3, g->cr3);
    assert_int_equal(c->change.after.entry, get_entry(g, VA, 1));
    guest_free(g);
}

static void c2_c3_swap_out_and_in_notify_with_the_written_values(void **state)
{
    uint64_t f1;
    struct ptmon_watch *w;
    struct guest *g = watched_guest(state, &f1, &w);
    uint64_t before = get_entry(g, VA, 1);
    set_entry(g, VA, 1, 0xabc000); /* swap out: P clear, a swap slot */
    const struct call *c = only_call(g);
    assert_int_equal(c->change.before.entry, before);
    assert_int_equal(c->change.after.status, PTMON_WALK_NOT_PRESENT);
    assert_int_equal(c->change.after.entry, 0xabc000); /* as written, never 0 */
    assert_int_equal(c->change.after.page_size, 4 * KIB);
    reset_calls(g);
    map4k(g, VA, f1, RWU); /* swap in */
    c = only_call(g);
    assert_int_equal(c->change.before.entry, 0xabc000);
    assert_int_equal(c->change.after.status, PTMON_WALK_OK);
    assert_int_equal(c->change.after.frame, f1);
    guest_free(g);
}

static void c4_leaf_rights_change_notifies(void **state)
{
    uint64_t f1;
    struct ptmon_watch *w;
    struct guest *g = watched_guest(state, &f1, &w);
    map4k(g, VA, f1, PTMON_PTE_US); /* read-only now */
    const struct call *c = only_call(g);
    assert_int_equal(c->change.before.rights & PTMON_RIGHT_W, PTMON_RIGHT_W);
    assert_int_equal(c->change.after.rights & PTMON_RIGHT_W, 0);
    if (g->mc->flags & PTMON_PAGING_NXE) {
        reset_calls(g);
        map4k(g, VA, f1, PTMON_PTE_US | PTMON_PTE_NX);
        c = only_call(g);
        assert_int_equal(c->change.after.rights & PTMON_RIGHT_NX, PTMON_RIGHT_NX);
    }
    guest_free(g);
}

static void c5_accessed_dirty_global_and_cache_bits_are_silent(void **state)
{
    uint64_t f1;
    struct ptmon_watch *w;
    struct guest *g = watched_guest(state, &f1, &w);
    uint64_t e = get_entry(g, VA, 1);
    set_entry(g, VA, 1,
              e | PTMON_PTE_A | PTMON_PTE_D | PTMON_PTE_G | PTMON_PTE_PCD | PTMON_PTE_PWT |
                  (1ull << 9) | (1ull << 11));
    assert_int_equal(g->ncalls, 0);
    /* and the CPU's own A/D updates never arrive at all */
    uint64_t gpa;
    assert_int_equal(ptmon_fake_cpu_access(g->fake, g->cr3, VA, PTMON_FAKE_CPU_WRITE, &gpa), 0);
    assert_int_equal(g->ncalls, 0);
    assert_consistent(g);
    guest_free(g);
}

static void c6_not_present_rewrite_is_remembered_as_the_next_old(void **state)
{
    uint64_t f1;
    struct ptmon_watch *w;
    struct guest *g = watched_guest(state, &f1, &w);
    set_entry(g, VA, 1, 0x111000);
    reset_calls(g);
    set_entry(g, VA, 1, 0x222000); /* another swap slot */
    assert_int_equal(g->ncalls, 0);
    assert_int_equal(ptmon_watch_translation(w).entry, 0x222000);
    map4k(g, VA, f1, RWU);
    assert_int_equal(only_call(g)->change.before.entry, 0x222000);
    guest_free(g);
}

/* ---- upper levels ------------------------------------------------------------------- */

static void c7_upper_entry_remapped_to_another_table_notifies_changed_watches(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g), f3 = new_frame(g), pt2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f2, RWU);
    struct ptmon_watch *w1 = watch_va(g, VA), *w2 = watch_va(g, VA + 0x1000);
    /* a new page table: same frame for VA + 0x1000, another one for VA */
    uint64_t pde = get_entry(g, VA, 2);
    uint64_t pte2 = get_entry(g, VA + 0x1000, 1);
    uint64_t pte1 = (f3 | RWU | PTMON_PTE_P);
    assert_int_equal(ptmon_fake_poke(g->fake, pt2, &pte1, esize(g)), 0);
    assert_int_equal(ptmon_fake_poke(g->fake, pt2 + esize(g), &pte2, esize(g)), 0);
    uint64_t old_pt = pde & 0xfffff000ull;
    set_entry(g, VA, 2, (pde & ~(old_pt | 0xfff0000000000ull)) | pt2);
    const struct call *c = only_call(g);
    assert_ptr_equal(c->watch, w1);
    assert_int_equal(c->change.after.frame, f3);
    assert_int_equal(c->change.level, 2);
    (void)w2;
    /* the new table is protected, the old one released */
    assert_int_equal(ptmon_fake_rights(g->fake, pt2 >> 12) & PTMON_ACCESS_W, 0);
    assert_int_equal(ptmon_fake_rights(g->fake, old_pt >> 12) & PTMON_ACCESS_W, PTMON_ACCESS_W);
    guest_free(g);
}

static void c8_c9_upper_entry_not_present_and_back(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f2, RWU);
    watch_va(g, VA);
    watch_va(g, VA + 0x1000);
    uint64_t pde = get_entry(g, VA, 2);
    uint64_t pt = pde & 0x000ffffffffff000ull;
    set_entry(g, VA, 2, 0); /* the whole page table goes away */
    assert_int_equal(g->ncalls, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(g->calls[i].change.after.status, PTMON_WALK_NOT_PRESENT);
        assert_int_equal(g->calls[i].change.after.level, 2);
        assert_int_equal(g->calls[i].change.after.page_size, g->mc->large);
        assert_int_equal(g->calls[i].change.before.level, 1);
    }
    /* the page table is not watched any more */
    assert_int_equal(ptmon_fake_rights(g->fake, pt >> 12) & PTMON_ACCESS_W, PTMON_ACCESS_W);
    reset_calls(g);
    set_entry(g, VA, 2, pde); /* and comes back */
    assert_int_equal(g->ncalls, 2);
    assert_int_equal(call_for(g, VA)->change.after.frame, f1);
    assert_int_equal(call_for(g, VA + 0x1000)->change.after.frame, f2);
    assert_int_equal(ptmon_fake_rights(g->fake, pt >> 12) & PTMON_ACCESS_W, 0);
    guest_free(g);
}

static void c9_enable_whose_new_leaf_is_not_present_only_updates_the_record(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g);
    map4k(g, VA + 0x1000, f1, RWU); /* VA itself stays unmapped */
    uint64_t pde = get_entry(g, VA, 2);
    set_entry(g, VA, 2, 0);
    struct ptmon_watch *w = watch_va(g, VA);
    assert_int_equal(ptmon_watch_translation(w).level, 2);
    set_entry(g, VA, 2, pde);
    assert_int_equal(g->ncalls, 0); /* not present -> not present (deeper) */
    assert_int_equal(ptmon_watch_translation(w).level, 1);
    guest_free(g);
}

static void c10_upper_rights_change_notifies_every_present_watch_below(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g);
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f1, RWU);
    watch_va(g, VA);
    watch_va(g, VA + 0x1000);
    watch_va(g, VA + 0x2000); /* not present: not told */
    uint64_t pde = get_entry(g, VA, 2);
    set_entry(g, VA, 2, pde & ~PTMON_PTE_RW);
    assert_int_equal(g->ncalls, 2);
    for (size_t i = 0; i < 2; i++) {
        const ptmon_change *c = &g->calls[i].change;
        assert_int_equal(c->before.entry, c->after.entry); /* leaf unchanged */
        assert_int_equal(c->before.rights & PTMON_RIGHT_W, PTMON_RIGHT_W);
        assert_int_equal(c->after.rights & PTMON_RIGHT_W, 0);
        assert_int_equal(c->level, 2);
    }
    guest_free(g);
}

/* ---- large pages -------------------------------------------------------------------- */

static void c11_large_page_remap_and_swap_notify_with_large_sizes(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x800000, 16 * MIB, mc->large, RWU), 0);
    watch_va(g, 0x800000 + 0x1234);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x800000, 32 * MIB, mc->large, RWU), 0);
    const struct call *c = only_call(g);
    assert_int_equal(c->change.before.frame, 16 * MIB);
    assert_int_equal(c->change.after.frame, 32 * MIB);
    assert_int_equal(c->change.before.page_size, mc->large);
    assert_int_equal(c->change.after.page_size, mc->large);
    reset_calls(g);
    assert_int_equal(ptmon_fake_unmap(g->fake, g->cr3, 0x800000), 0);
    assert_int_equal(only_call(g)->change.after.status, PTMON_WALK_NOT_PRESENT);
    assert_consistent(g);
    guest_free(g);
}

static void c12_split_to_not_present_ptes_notifies_large_to_4k(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x800000, 16 * MIB, mc->large, RWU), 0);
    watch_va(g, 0x800000);
    watch_va(g, 0x800000 + 0x5000);
    assert_int_equal(ptmon_fake_split(g->fake, g->cr3, 0x800000, PTMON_PTE_P, NULL), 0);
    assert_consistent(g);
    assert_int_equal(g->ncalls, 2);
    for (size_t i = 0; i < 2; i++) {
        const ptmon_change *c = &g->calls[i].change;
        assert_int_equal(c->before.page_size, mc->large);
        assert_int_equal(c->after.page_size, 4 * KIB);
        assert_int_equal(c->after.status, PTMON_WALK_NOT_PRESENT);
        assert_int_equal(c->after.level, 1);
    }
    guest_free(g);
}

static void c12_c13_split_and_merge_keep_frames_and_notify_size_changes(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    uint64_t table;
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x800000, 16 * MIB, mc->large, RWU), 0);
    watch_va(g, 0x800000 + 0x3000);
    assert_int_equal(ptmon_fake_split(g->fake, g->cr3, 0x800000, 0, &table), 0);
    assert_consistent(g);
    const struct call *c = only_call(g);
    assert_int_equal(c->change.before.page_size, mc->large);
    assert_int_equal(c->change.after.page_size, 4 * KIB);
    assert_int_equal(c->change.after.frame, 16 * MIB + 0x3000);
    assert_int_equal(ptmon_fake_rights(g->fake, table >> 12) & PTMON_ACCESS_W, 0);
    reset_calls(g);
    assert_int_equal(ptmon_fake_merge(g->fake, g->cr3, 0x800000, 2), 0);
    assert_consistent(g);
    c = only_call(g);
    assert_int_equal(c->change.before.page_size, 4 * KIB);
    assert_int_equal(c->change.after.page_size, mc->large);
    assert_int_equal(c->change.after.frame, 16 * MIB);
    /* the collapsed page table is no longer protected */
    assert_int_equal(ptmon_fake_rights(g->fake, table >> 12) & PTMON_ACCESS_W, PTMON_ACCESS_W);
    guest_free(g);
}

static void c13_merge_into_1g_page(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 2 * GIB + 64 * MIB);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, mc->kernel, 1 * GIB, 1 * GIB, PTMON_PTE_RW),
                     0);
    assert_int_equal(ptmon_fake_split(g->fake, g->cr3, mc->kernel, 0, NULL), 0);
    watch_va(g, mc->kernel + 5 * MIB);
    assert_int_equal(ptmon_fake_merge(g->fake, g->cr3, mc->kernel, 3), 0);
    assert_consistent(g);
    const struct call *c = only_call(g);
    assert_int_equal(c->change.before.page_size, 2 * MIB);
    assert_int_equal(c->change.after.page_size, 1 * GIB);
    assert_int_equal(c->change.level, 3);
    guest_free(g);
}

/* ---- reserved bits and no-ops -------------------------------------------------------- */

static void c14_reserved_bit_in_leaf_is_reported_as_not_present(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    uint64_t level = 1, va = VA, bit = 1ull << 50;
    if (mc->mode == PTMON_MODE_32BIT) { /* no reserved bits in 32-bit PTEs: use a 4M page */
        assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x800000, 16 * MIB, 4 * MIB, RWU), 0);
        level = 2, va = 0x800000, bit = 1ull << 21;
    } else {
        map4k(g, VA, new_frame(g), RWU);
    }
    watch_va(g, va);
    set_entry(g, va, (unsigned)level, get_entry(g, va, (unsigned)level) | bit);
    const struct call *c = only_call(g);
    assert_int_equal(c->change.after.status, PTMON_WALK_RESERVED);
    assert_int_equal(c->change.after.frame, 0);
    guest_free(g);
}

static void c14_reserved_bit_in_upper_entry_is_reported_like_unmap(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    map4k(g, VA, new_frame(g), RWU);
    watch_va(g, VA);
    unsigned level = mc->mode == PTMON_MODE_32BIT ? 2 : 3;
    uint64_t bit = mc->mode == PTMON_MODE_32BIT ? PTMON_PTE_PS | (1ull << 21) /* 4M + bit 21 */
                   : mc->mode == PTMON_MODE_PAE ? (1ull << 1)                 /* PDPTE bit 1 */
                                                : (1ull << 49);
    set_entry(g, VA, level, get_entry(g, VA, level) | bit);
    const struct call *c = only_call(g);
    assert_int_equal(c->change.after.status, PTMON_WALK_RESERVED);
    assert_int_equal(c->change.after.level, level);
    guest_free(g);
}

static void c15_rewriting_the_same_value_is_silent(void **state)
{
    uint64_t f1;
    struct ptmon_watch *w;
    struct guest *g = watched_guest(state, &f1, &w);
    set_entry(g, VA, 1, get_entry(g, VA, 1));
    set_entry(g, VA, 2, get_entry(g, VA, 2));
    assert_int_equal(g->ncalls, 0);
    guest_free(g);
}

/* ---- store shapes ------------------------------------------------------------------- */

static void one_byte_write_clearing_present_is_processed_at_once(void **state)
{
    uint64_t f1;
    struct ptmon_watch *w;
    struct guest *g = watched_guest(state, &f1, &w);
    uint8_t low = (uint8_t)(get_entry(g, VA, 1) & ~PTMON_PTE_P);
    assert_int_equal(ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1), &low, 1), 0);
    assert_consistent(g);
    assert_int_equal(only_call(g)->change.after.status, PTMON_WALK_NOT_PRESENT);
    guest_free(g);
}

static void half_entry_write_is_merged_with_memory(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    watch_va(g, VA);
    /* write only bytes 1..2 of the entry: the address bits 12..23 */
    uint16_t mid = (uint16_t)(((f2 | RWU | PTMON_PTE_P) >> 8) & 0xffff);
    assert_int_equal(ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1) + 1, &mid, 2), 0);
    assert_consistent(g);
    assert_int_equal(only_call(g)->change.after.frame, f2);
    guest_free(g);
}

static void store_crossing_two_entries_changes_both(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f2, RWU);
    watch_va(g, VA);
    watch_va(g, VA + 0x1000);
    /* an unaligned store covering the upper half of entry 0 and the lower half of entry 1:
     * clears P of entry 1 and changes the high address bits of entry 0 (PAE/64-bit) */
    unsigned es = esize(g);
    uint8_t bytes[8];
    uint64_t e0 = get_entry(g, VA, 1), e1 = get_entry(g, VA + 0x1000, 1);
    for (unsigned i = 0; i < es; i++)
        bytes[i] =
            i < es / 2 ? (uint8_t)(e0 >> (8 * (es / 2 + i))) : (uint8_t)(e1 >> (8 * (i - es / 2)));
    bytes[es / 2] &= (uint8_t)~PTMON_PTE_P;
    if (es == 8)
        bytes[0] ^= 0x1; /* entry 0 bit 32: another frame (below MAXPHYADDR) */
    else
        bytes[1] ^= 0x10; /* entry 0 bit 28 */
    assert_int_equal(ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1) + es / 2, bytes, es), 0);
    assert_consistent(g);
    assert_int_equal(g->ncalls, 2);
    assert_int_not_equal(call_for(g, VA)->change.after.frame, f1);
    assert_int_equal(call_for(g, VA + 0x1000)->change.after.status, PTMON_WALK_NOT_PRESENT);
    guest_free(g);
}

static void wide_vector_stores_and_rep_stos_cover_many_entries(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    uint64_t f = new_frame(g);
    for (unsigned i = 0; i < 16; i++)
        map4k(g, VA + i * 0x1000, f, RWU);
    for (unsigned i = 0; i < 16; i++)
        watch_va(g, VA + i * 0x1000);
    uint8_t zeros[64] = {0};
    unsigned es = esize(g);
    /* 16-byte store at entry 0, 32-byte at entry 4 (8-byte entries) */
    assert_int_equal(ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1), zeros, 16), 0);
    assert_int_equal(g->ncalls, 16 / es);
    assert_consistent(g);
    reset_calls(g);
    assert_int_equal(ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1) + 32, zeros, 32), 0);
    assert_int_equal(g->ncalls, 32 / es);
    assert_consistent(g);
    reset_calls(g);
    /* a 64-byte store over the first 64 / es entries, all present again */
    uint8_t present[64];
    for (unsigned i = 0; i < 64; i += es) {
        uint64_t e = f | RWU | PTMON_PTE_P;
        memcpy(present + i, &e, es);
    }
    assert_int_equal(ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1), present, 64), 0);
    assert_int_equal(g->ncalls, (16 + 32) / es); /* only the entries cleared above change */
    assert_consistent(g);
    reset_calls(g);
    /* rep stos over the rest */
    uint64_t first = entry_gpa(g, VA, 1) + 64;
    unsigned remaining = 16 - 64 / es;
    assert_int_equal(ptmon_fake_rep_stos(g->fake, 0, first, 0, es, remaining), 0);
    assert_int_equal(g->ncalls, remaining);
    assert_consistent(g);
    guest_free(g);
}

static void write_to_an_unwatched_slot_is_irrelevant_and_costs_no_read(void **state)
{
    uint64_t f1;
    struct ptmon_watch *w;
    struct guest *g = watched_guest(state, &f1, &w);
    uint64_t f2 = new_frame(g);
    ptmon_fake_reset_calls(g->fake);
    /* same page table, another slot */
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, VA + 0x5000, f2, 4 * KIB, RWU), 0);
    assert_int_equal(g->ncalls, 0);
    ptmon_stats st;
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_true(st.events_irrelevant >= 1);
    /* no glue call at all for the irrelevant write in PRE mode (the fake writes it itself) */
    if (g->mc->delivery == PTMON_DELIVERY_PRE)
        assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_READ_GPA), 0);
    assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_SET_ACCESS), 0);
    assert_consistent(g);
    guest_free(g);
}

int main(void)
{
#define ALL(f)                                                    \
    {#f " [32-bit pre]", f, NULL, NULL, (void *)&modes[0]},       \
        {#f " [PAE pre]", f, NULL, NULL, (void *)&modes[1]},      \
        {#f " [4-level pre]", f, NULL, NULL, (void *)&modes[2]},  \
        {#f " [5-level pre]", f, NULL, NULL, (void *)&modes[3]},  \
        {#f " [32-bit post]", f, NULL, NULL, (void *)&modes[4]},  \
        {#f " [PAE post]", f, NULL, NULL, (void *)&modes[5]},     \
        {#f " [4-level post]", f, NULL, NULL, (void *)&modes[6]}, \
    {                                                             \
#f " [5-level post]", f, NULL, NULL, (void *)&modes[7]    \
    }
#define WITH_1G(f)                                                \
    {#f " [4-level pre]", f, NULL, NULL, (void *)&modes[2]},      \
        {#f " [5-level pre]", f, NULL, NULL, (void *)&modes[3]},  \
        {#f " [4-level post]", f, NULL, NULL, (void *)&modes[6]}, \
    {                                                             \
#f " [5-level post]", f, NULL, NULL, (void *)&modes[7]    \
    }
    const struct CMUnitTest tests[] = {
        ALL(c1_leaf_remap_to_another_frame_notifies_old_and_new),
        ALL(c2_c3_swap_out_and_in_notify_with_the_written_values),
        ALL(c4_leaf_rights_change_notifies),
        ALL(c5_accessed_dirty_global_and_cache_bits_are_silent),
        ALL(c6_not_present_rewrite_is_remembered_as_the_next_old),
        ALL(c7_upper_entry_remapped_to_another_table_notifies_changed_watches),
        ALL(c8_c9_upper_entry_not_present_and_back),
        ALL(c9_enable_whose_new_leaf_is_not_present_only_updates_the_record),
        ALL(c10_upper_rights_change_notifies_every_present_watch_below),
        ALL(c11_large_page_remap_and_swap_notify_with_large_sizes),
        ALL(c12_split_to_not_present_ptes_notifies_large_to_4k),
        ALL(c12_c13_split_and_merge_keep_frames_and_notify_size_changes),
        WITH_1G(c13_merge_into_1g_page),
        ALL(c14_reserved_bit_in_leaf_is_reported_as_not_present),
        ALL(c14_reserved_bit_in_upper_entry_is_reported_like_unmap),
        ALL(c15_rewriting_the_same_value_is_silent),
        ALL(one_byte_write_clearing_present_is_processed_at_once),
        ALL(half_entry_write_is_merged_with_memory),
        ALL(store_crossing_two_entries_changes_both),
        ALL(wide_vector_stores_and_rep_stos_cover_many_entries),
        ALL(write_to_an_unwatched_slot_is_irrelevant_and_costs_no_read),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
