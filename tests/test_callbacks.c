/*
 * test_callbacks.c — delivery semantics of the watch engine: deny (PRE and POST), ordering and
 * priorities, re-entrancy (removing and adding watches from callbacks), commit, sharing across
 * address spaces, PCID bits, self-maps, tables at GPA 0 and outside RAM, glue-call counts and
 * frame hooks. Every step ends with ptmon_check finding nothing.
 */
#include "engine_fixture.h"

#define VA 0x400000ull

/* ---- deny ----------------------------------------------------------------------------- */

static void deny_keeps_memory_and_tree_unchanged(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    struct ptmon_watch *w = watch_va(g, VA);
    uint64_t before = get_entry(g, VA, 1);
    int pre = g->mc->delivery == PTMON_DELIVERY_PRE;
    g->deny_va_set = 1;
    g->deny_va = VA;
    /* PRE: the write never happens; POST: it happened and ptmon puts the old entry back */
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, VA, f2, 4 * KIB, RWU),
                     pre ? PTMON_EDENIED : 0);
    assert_consistent(g);
    assert_int_equal(get_entry(g, VA, 1), before);
    assert_int_equal(ptmon_watch_translation(w).frame, f1);
    /* told of the change (and denied it), then told it was undone */
    assert_int_equal(g->ncalls, 2);
    assert_int_equal(g->calls[1].change.reverted, 1);
    assert_int_equal(g->calls[1].change.after.frame, f1);
    ptmon_stats st;
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_int_equal(st.events_denied, 1);
    guest_free(g);
}

static void deny_tells_watches_already_told_the_reverse_and_skips_the_rest(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g);
    for (unsigned i = 0; i < 3; i++)
        map4k(g, VA + i * 0x1000, f1, RWU);
    for (unsigned i = 0; i < 3; i++)
        watch_va(g, VA + i * 0x1000);
    uint64_t pde = get_entry(g, VA, 2);
    /* the second watch (placement order) denies clearing the PDE */
    g->deny_va_set = 1;
    g->deny_va = VA + 0x1000;
    assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, VA, 2, 0),
                     g->mc->delivery == PTMON_DELIVERY_PRE ? PTMON_EDENIED : 0);
    assert_consistent(g);
    assert_int_equal(get_entry(g, VA, 2), pde);
    /* VA told, VA+0x1000 told and denied, VA+0x2000 never told; then the two told the reverse */
    assert_int_equal(g->ncalls, 4);
    assert_int_equal(g->calls[0].change.va, VA);
    assert_int_equal(g->calls[1].change.va, VA + 0x1000);
    for (size_t i = 2; i < 4; i++) {
        assert_int_equal(g->calls[i].change.va, VA + (i - 2) * 0x1000);
        assert_int_equal(g->calls[i].change.reverted, 1);
        assert_int_equal(g->calls[i].change.before.status, PTMON_WALK_NOT_PRESENT);
        assert_int_equal(g->calls[i].change.after.status, PTMON_WALK_OK);
    }
    guest_free(g);
}

static void post_deny_that_cannot_be_undone_tells_everyone_the_change(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g);
    for (unsigned i = 0; i < 3; i++)
        map4k(g, VA + i * 0x1000, f1, RWU);
    for (unsigned i = 0; i < 3; i++)
        watch_va(g, VA + i * 0x1000);
    g->deny_va_set = 1;
    g->deny_va = VA + 0x1000;
    /* the write already happened and putting the old entry back fails: it stands */
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_EMULATE_WRITE, 1, PTMON_EIO);
    assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, VA, 2, 0), 0);
    assert_true(ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_EMULATE_WRITE));
    assert_consistent(g);
    assert_int_equal(g->ncalls, 3); /* the third watch is told too; nobody is told "undone" */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(g->calls[i].change.reverted, 0);
        assert_int_equal(g->calls[i].change.after.status, PTMON_WALK_NOT_PRESENT);
    }
    assert_non_null(strstr(ptmon_fake_last_log(g->fake), "cannot restore"));
    guest_free(g);
}

/* ---- order ---------------------------------------------------------------------------- */

static void callbacks_of_one_leaf_follow_priority_then_placement_order(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    struct ptmon_watch *w[4];
    map4k(g, VA, new_frame(g), RWU);
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, 0, recorder, g, &w[0]), 0);
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, PTMON_WATCH_HIGH_PRIORITY, recorder, g, &w[1]),
                     0);
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, 0, recorder, g, &w[2]), 0);
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, PTMON_WATCH_HIGH_PRIORITY, recorder, g, &w[3]),
                     0);
    set_entry(g, VA, 1, 0);
    assert_int_equal(g->ncalls, 4);
    assert_ptr_equal(g->calls[0].watch, w[1]);
    assert_ptr_equal(g->calls[1].watch, w[3]);
    assert_ptr_equal(g->calls[2].watch, w[0]);
    assert_ptr_equal(g->calls[3].watch, w[2]);
    /* the order survives a push-down: the watches moved to the PDE and back */
    uint64_t pde = get_entry(g, VA, 2);
    set_entry(g, VA, 2, 0);
    set_entry(g, VA, 2, pde);
    map4k(g, VA, new_frame(g), RWU);
    reset_calls(g);
    set_entry(g, VA, 1, 0);
    assert_ptr_equal(g->calls[0].watch, w[1]);
    assert_ptr_equal(g->calls[1].watch, w[3]);
    assert_ptr_equal(g->calls[2].watch, w[0]);
    assert_ptr_equal(g->calls[3].watch, w[2]);
    guest_free(g);
}

/* ---- re-entrancy ---------------------------------------------------------------------- */

static struct ptmon_watch *victim;

static void unwatch_victim(struct guest *g, struct ptmon_watch *w, const ptmon_change *c)
{
    (void)g;
    (void)w;
    (void)c;
    if (victim) {
        assert_int_equal(ptmon_unwatch(&victim), 0);
        victim = NULL;
    }
}

static void callback_removing_a_queued_watch_stops_its_delivery(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    map4k(g, VA, new_frame(g), RWU);
    struct ptmon_watch *a = watch_va(g, VA), *b = watch_va(g, VA);
    victim = b;
    g->hook = unwatch_victim;
    set_entry(g, VA, 1, 0);
    assert_int_equal(g->ncalls, 1); /* b was queued, removed by a's callback, never called */
    assert_ptr_equal(g->calls[0].watch, a);
    assert_consistent(g);
    /* (b's handle was freed by the commit that ended the event: it must not be used again) */
    guest_free(g);
}

static void self_removal(struct guest *g, struct ptmon_watch *w, const ptmon_change *c)
{
    (void)g;
    (void)c;
    assert_int_equal(ptmon_unwatch(&w), 0);
}

static void callback_removing_itself_is_never_called_again(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    map4k(g, VA, f, RWU);
    watch_va(g, VA);
    g->hook = self_removal;
    set_entry(g, VA, 1, 0);
    assert_int_equal(g->ncalls, 1);
    g->hook = NULL;
    map4k(g, VA, f, RWU);
    assert_int_equal(g->ncalls, 1);
    ptmon_stats st;
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_int_equal(st.watches, 0);
    assert_int_equal(st.nodes, 0);
    assert_int_equal(ptmon_fake_count_write_protected(g->fake), 0);
    guest_free(g);
}

static struct ptmon_watch *added;

static void add_watch(struct guest *g, struct ptmon_watch *w, const ptmon_change *c)
{
    (void)w;
    if (!added)
        assert_int_equal(ptmon_watch(g->pm, g->cr3, c->va + 0x1000, 0, recorder, g, &added), 0);
}

static void watch_added_in_a_callback_sees_the_state_after_the_write(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f1, RWU);
    watch_va(g, VA);
    added = NULL;
    g->hook = add_watch;
    /* one 16-byte store remaps both VA and VA + 0x1000 (PRE: not yet in memory when the
     * callback places the new watch) */
    uint64_t e[2] = {f2 | RWU | PTMON_PTE_P, f2 | RWU | PTMON_PTE_P};
    assert_int_equal(ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1), e, 16), 0);
    g->hook = NULL;
    assert_consistent(g);
    assert_int_equal(g->ncalls, 1); /* the new watch is not told of the write in progress */
    assert_non_null(added);
    assert_int_equal(ptmon_watch_translation(added).frame, f2);
    guest_free(g);
}

/* ---- sharing, PCID, commit --------------------------------------------------------- */

static void shared_prefixes_cost_one_node_per_entry(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    /* V1, V2 share the PML4E (and PDPT) but not the PDPTE; V3 is elsewhere (SPEC §1) */
    uint64_t v1 = 0x400000, v2 = 0x40400000, v3 = 0x8000400000ull;
    map4k(g, v1, f, RWU);
    map4k(g, v2, f, RWU);
    map4k(g, v3, f, RWU);
    ptmon_fake_reset_calls(g->fake);
    watch_va(g, v1);
    watch_va(g, v2);
    watch_va(g, v3);
    ptmon_stats st;
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_int_equal(st.watches, 3);
    assert_int_equal(st.nodes, 11);
    assert_int_equal(st.tables, 9);
    assert_int_equal(ptmon_fake_count_write_protected(g->fake), 9);
    /* a VA whose path is already watched adds no protection call */
    uint64_t before = ptmon_fake_calls(g->fake, PTMON_FAKE_OP_SET_ACCESS);
    watch_va(g, v1 + 0x1000);
    assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_SET_ACCESS), before);
    guest_free(g);
}

static void same_root_with_other_pcid_bits_is_the_same_tree(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    map4k(g, VA, new_frame(g), RWU);
    struct ptmon_watch *a = watch_va(g, VA), *b = NULL;
    assert_int_equal(ptmon_watch(g->pm, g->cr3 | 0x5 | (1ull << 63), VA, 0, recorder, g, &b), 0);
    ptmon_stats st;
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_int_equal(st.nodes, 4);
    set_entry(g, VA, 1, 0);
    assert_int_equal(g->ncalls, 2);
    assert_int_equal(call_for(g, VA)->change.cr3 & 0xfff, g->calls[0].watch == a ? 0 : 5);
    guest_free(g);
}

static void kernel_tables_shared_by_two_address_spaces_share_nodes(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t other, f1 = new_frame(g), f2 = new_frame(g), kva = g->mc->kernel;
    map4k(g, kva, f1, PTMON_PTE_RW);
    assert_int_equal(ptmon_fake_new_root(g->fake, &other), 0);
    /* the second root's PML4E points to the same PDPT, as every process's kernel half does */
    uint64_t pml4e = get_entry(g, kva, 4);
    assert_int_equal(ptmon_fake_set_entry(g->fake, other, kva, 4, pml4e), 0);
    struct ptmon_watch *a = watch_va(g, kva), *b = NULL;
    assert_int_equal(ptmon_watch(g->pm, other, kva, 0, recorder, g, &b), 0);
    ptmon_stats st;
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_int_equal(st.nodes, 5); /* two PML4Es, then one PDPTE, PDE and PTE */
    /* a change below the shared PDPT reaches both */
    map4k(g, kva, f2, PTMON_PTE_RW);
    assert_int_equal(g->ncalls, 2);
    /* a change of one root's PML4E reaches only that root's watch */
    reset_calls(g);
    assert_int_equal(ptmon_fake_set_entry(g->fake, other, kva, 4, 0), 0);
    assert_consistent(g);
    assert_int_equal(g->ncalls, 1);
    assert_ptr_equal(g->calls[0].watch, b);
    (void)a;
    guest_free(g);
}

static void remove_and_readd_before_commit_never_unprotects(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    map4k(g, VA, new_frame(g), RWU);
    uint64_t pt = entry_gpa(g, VA, 1) >> 12;
    struct ptmon_watch *a = watch_va(g, VA);
    /* inside a callback (no commit until the event ends): remove a, add a new one */
    victim = a;
    added = NULL;
    g->hook = unwatch_victim;
    struct ptmon_watch *trigger = watch_va(g, VA + 0x1000); /* not present: a PTE slot */
    (void)trigger;
    map4k(g, VA + 0x1000, new_frame(g), RWU);
    g->hook = NULL;
    assert_int_equal(ptmon_fake_rights(g->fake, pt) & PTMON_ACCESS_W, 0); /* still protected */
    struct ptmon_watch *again = watch_va(g, VA);
    (void)again;
    assert_int_equal(ptmon_fake_rights(g->fake, pt) & PTMON_ACCESS_W, 0);
    guest_free(g);
}

static void unwatching_everything_restores_the_original_rights(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    struct ptmon_watch *w[8];
    map4k(g, VA, f, RWU);
    /* a page table frame that was read-only before ptmon (another agent's restriction) */
    uint64_t pt = entry_gpa(g, VA, 1) >> 12;
    assert_int_equal(ptmon_fake_set_rights(g->fake, pt, PTMON_ACCESS_R | 0x300), 0);
    for (unsigned i = 0; i < 8; i++)
        w[i] = watch_va(g, VA + i * 0x1000);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(ptmon_unwatch(&w[i]), 0);
    assert_int_equal(ptmon_fake_rights(g->fake, pt), PTMON_ACCESS_R | 0x300);
    assert_int_equal(ptmon_fake_count_write_protected(g->fake), 1);
    assert_int_equal(ptmon_fake_set_rights(g->fake, pt, PTMON_ACCESS_RWX), 0);
    guest_free(g);
}

/* ---- hostile layouts ------------------------------------------------------------------ */

static void self_map_entry_written_through_every_level(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    unsigned idx = 0x1ed;
    assert_int_equal(ptmon_fake_self_map(g->fake, g->cr3, idx), 0);
    uint64_t va = 0xffff000000000000ull;
    for (unsigned l = 1; l <= 4; l++)
        va |= (uint64_t)idx << (12 + (l - 1) * 9);
    struct ptmon_watch *w = watch_va(g, va);
    assert_int_equal(ptmon_watch_translation(w).status, PTMON_WALK_OK);
    assert_int_equal(ptmon_watch_translation(w).frame, g->cr3 & ~0xfffull);
    ptmon_stats st;
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_int_equal(st.nodes, 4); /* one slot, four levels */
    assert_int_equal(st.tables, 1);
    /* clearing the self-map entry changes the entry at all four levels at once */
    uint64_t e = get_entry(g, va, 4);
    set_entry(g, va, 4, 0);
    assert_int_equal(only_call(g)->change.after.status, PTMON_WALK_NOT_PRESENT);
    assert_int_equal(only_call(g)->change.after.level, 4);
    reset_calls(g);
    assert_int_equal(ptmon_fake_self_map(g->fake, g->cr3, idx), 0);
    assert_consistent(g);
    assert_int_equal(only_call(g)->change.after.status, PTMON_WALK_OK);
    (void)e;
    guest_free(g);
}

static void table_at_gpa_zero_and_tables_outside_ram(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    map4k(g, 0x200000, f, RWU); /* upper tables */
    assert_int_equal(ptmon_fake_claim_frame(g->fake, 0), 0);
    assert_int_equal(ptmon_fake_link(g->fake, g->cr3, VA, 2, 0, RWU), 0);
    map4k(g, VA, f, RWU);
    struct ptmon_watch *w = watch_va(g, VA);
    assert_int_equal(ptmon_watch_translation(w).frame, f);
    assert_int_equal(ptmon_fake_rights(g->fake, 0) & PTMON_ACCESS_W, 0);
    /* now point the PDE outside RAM: the walk stops at the PDE, nothing protected there */
    set_entry(g, VA, 2, (64 * MIB + 0x5000) | RWU | PTMON_PTE_P);
    const struct call *c = only_call(g);
    assert_int_equal(c->change.after.status, PTMON_WALK_OUTSIDE_RAM);
    assert_int_equal(c->change.after.level, 2);
    assert_int_equal(c->change.after.entry, (64 * MIB + 0x5000) | RWU | PTMON_PTE_P);
    assert_int_equal(ptmon_fake_rights(g->fake, 0) & PTMON_ACCESS_W, PTMON_ACCESS_W);
    /* a root outside RAM: refused (a mistyped CR3), nothing left behind */
    struct ptmon_watch *w2 = NULL;
    assert_int_equal(ptmon_watch(g->pm, 128 * MIB, VA, 0, recorder, g, &w2), PTMON_ERANGE);
    assert_null(w2);
    assert_consistent(g);
    guest_free(g);
}

static void watch_refuses_bad_arguments(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    struct ptmon_watch *w = (struct ptmon_watch *)g;
    assert_int_equal(ptmon_watch(g->pm, g->cr3, 0x0000800000000000ull, 0, recorder, g, &w),
                     PTMON_EINVAL); /* non-canonical */
    assert_null(w);
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, 0x80, recorder, g, &w), PTMON_EINVAL);
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, 0, NULL, g, &w), PTMON_EINVAL);
    assert_int_equal(ptmon_watch(NULL, g->cr3, VA, 0, recorder, g, &w), PTMON_EINVAL);
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, 0, recorder, g, NULL), PTMON_EINVAL);
    assert_int_equal(ptmon_unwatch(NULL), PTMON_EINVAL);
    guest_free(g);
}

/* ---- PAE and 32-bit specifics --------------------------------------------------------- */

static void pae_pdpte_change_is_an_upper_level_change(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    map4k(g, VA, new_frame(g), RWU);
    watch_va(g, VA);
    uint64_t pdpte = get_entry(g, VA, 3);
    set_entry(g, VA, 3, 0);
    assert_int_equal(only_call(g)->change.after.level, 3);
    assert_int_equal(only_call(g)->change.after.page_size, 1 * GIB);
    reset_calls(g);
    set_entry(g, VA, 3, pdpte);
    assert_int_equal(only_call(g)->change.after.status, PTMON_WALK_OK);
    guest_free(g);
}

static void pae_entry_written_as_two_halves(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g);
    map4k(g, VA, f1, RWU);
    watch_va(g, VA);
    uint64_t gpa = entry_gpa(g, VA, 1);
    /* Linux's PAE swap-out: low half (P) first, then the high half */
    assert_int_equal(ptmon_fake_store_int(g->fake, 0, gpa, 0, 4), 0);
    assert_consistent(g);
    assert_int_equal(only_call(g)->change.after.status, PTMON_WALK_NOT_PRESENT);
    assert_int_equal(ptmon_fake_store_int(g->fake, 0, gpa + 4, 0x12, 4), 0);
    assert_consistent(g);
    assert_int_equal(g->ncalls, 1); /* not present -> not present */
    /* swap-in: high half first (still not present), then the low half with P */
    reset_calls(g);
    assert_int_equal(ptmon_fake_store_int(g->fake, 0, gpa + 4, 0, 4), 0);
    assert_int_equal(g->ncalls, 0);
    assert_int_equal(ptmon_fake_store_int(g->fake, 0, gpa, f1 | RWU | PTMON_PTE_P, 4), 0);
    assert_consistent(g);
    assert_int_equal(only_call(g)->change.after.frame, f1);
    guest_free(g);
}

/* ---- frame hooks ---------------------------------------------------------------------- */

struct hook_log {
    int calls;
    int deny;
    ptmon_mem_event last;
};

static int hook_fn(ptmon *pm, ptmon_hook *h, void *ctx, const ptmon_mem_event *ev)
{
    struct hook_log *log = ctx;
    (void)pm;
    (void)h;
    log->calls++;
    log->last = *ev;
    return log->deny ? PTMON_ACTION_DENY : PTMON_ACTION_ALLOW;
}

static void frame_hook_sees_writes_in_its_range_and_can_deny(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    struct hook_log log = {0, 0, {0}};
    ptmon_hook *h = NULL;
    assert_int_equal(ptmon_hook_gpa(g->pm, f + 0x100, 0x10, PTMON_ACCESS_W, hook_fn, &log, &h), 0);
    assert_int_equal(ptmon_fake_rights(g->fake, f >> 12) & PTMON_ACCESS_W, 0);
    assert_int_equal(ptmon_fake_store_int(g->fake, 1, f + 0x200, 7, 8), 0); /* outside range */
    assert_int_equal(log.calls, 0);
    assert_int_equal(ptmon_fake_store_int(g->fake, 1, f + 0x108, 7, 8), 0);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.last.gpa, f + 0x108);
    assert_int_equal(log.last.vcpu, 1);
    log.deny = 1;
    int rc = ptmon_fake_store_int(g->fake, 1, f + 0x108, 9, 8);
    if (g->mc->delivery == PTMON_DELIVERY_PRE) {
        assert_int_equal(rc, PTMON_EDENIED);
        assert_int_equal(ptmon_fake_peek64(g->fake, f + 0x108), 7);
    }
    assert_int_equal(ptmon_unhook(&h), 0);
    assert_int_equal(ptmon_fake_rights(g->fake, f >> 12), PTMON_ACCESS_RWX);
    assert_int_equal(ptmon_hook_gpa(g->pm, f + 0xff0, 0x20, PTMON_ACCESS_W, hook_fn, &log, &h),
                     PTMON_EINVAL); /* crosses the frame */
    assert_int_equal(ptmon_hook_gpa(g->pm, 128 * MIB, 8, PTMON_ACCESS_W, hook_fn, &log, &h),
                     PTMON_ERANGE);
    guest_free(g);
}

static void read_hook_also_removes_write_access(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    struct hook_log log = {0, 0, {0}};
    ptmon_hook *h = NULL;
    assert_int_equal(ptmon_hook_gpa(g->pm, f, 8, PTMON_ACCESS_R, hook_fn, &log, &h), 0);
    assert_int_equal(ptmon_fake_rights(g->fake, f >> 12) & (PTMON_ACCESS_R | PTMON_ACCESS_W), 0);
    /* a write into the frame is reported to ptmon but not to a read hook */
    assert_int_equal(ptmon_fake_store_int(g->fake, 0, f, 1, 8), 0);
    assert_int_equal(log.calls, 0);
    assert_int_equal(ptmon_fake_peek64(g->fake, f), 1);
    assert_int_equal(ptmon_unhook(&h), 0);
    assert_int_equal(ptmon_fake_rights(g->fake, f >> 12), PTMON_ACCESS_RWX);
    guest_free(g);
}

static void exec_hook_is_called_for_an_execute_event(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    struct hook_log log = {0, 0, {0}};
    ptmon_hook *h = NULL;
    assert_int_equal(ptmon_hook_gpa(g->pm, f, 4096, PTMON_ACCESS_X, hook_fn, &log, &h), 0);
    assert_int_equal(ptmon_fake_rights(g->fake, f >> 12), PTMON_ACCESS_R | PTMON_ACCESS_W);
    /* the fake guest does not execute code: the event a backend would report, by hand */
    ptmon_mem_event ev = {1, PTMON_ACCESS_X, f + 0x10, 1, PTMON_DELIVERY_PRE, NULL};
    assert_int_equal(ptmon_handle_event(g->pm, &ev), PTMON_ACTION_ALLOW);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.last.access, PTMON_ACCESS_X);
    /* a deny is only for writes: an execution cannot be skipped */
    log.deny = 1;
    assert_int_equal(ptmon_handle_event(g->pm, &ev), PTMON_ACTION_ALLOW);
    /* malformed events are refused */
    ev.size = 0;
    assert_int_equal(ptmon_handle_event(g->pm, &ev), PTMON_EINVAL);
    ev.size = 8;
    ev.gpa = f + 4092; /* leaves the frame */
    assert_int_equal(ptmon_handle_event(g->pm, &ev), PTMON_EINVAL);
    ev.gpa = f;
    ev.access = 3;
    assert_int_equal(ptmon_handle_event(g->pm, &ev), PTMON_EINVAL);
    assert_int_equal(ptmon_handle_event(NULL, &ev), PTMON_EINVAL);
    assert_int_equal(ptmon_unhook(&h), 0);
    /* an event for a frame ptmon no longer restricts (in flight): allowed */
    ev.access = PTMON_ACCESS_X;
    assert_int_equal(ptmon_handle_event(g->pm, &ev), PTMON_ACTION_ALLOW);
    guest_free(g);
}

static void flush_follows_every_change_of_rights_and_only_those(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    map4k(g, VA, f, RWU);
    map4k(g, VA + 0x1000, f, RWU);
    ptmon_fake_reset_calls(g->fake);
    struct ptmon_watch *a = watch_va(g, VA); /* four tables protected */
    assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_FLUSH), 1);
    struct ptmon_watch *b = watch_va(g, VA + 0x1000); /* nothing new to protect */
    assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_FLUSH), 1);
    map4k(g, VA, new_frame(g), RWU); /* a leaf change: no rights change */
    assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_FLUSH), 1);
    assert_int_equal(ptmon_unwatch(&a), 0); /* the tables are still needed by b */
    assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_FLUSH), 1);
    assert_int_equal(ptmon_unwatch(&b), 0); /* all four relaxed in one commit, one flush */
    assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_FLUSH), 2);
    assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_SET_ACCESS_BATCH), 1);
    guest_free(g);
}

static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void append(void *ctx, const char *text)
{
    char *buf = ctx;
    strncat(buf, text, 16383 - strlen(buf));
}

static void dumps_show_every_watch_node_and_table(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    static char buf[16384];
    uint64_t f = new_frame(g);
    map4k(g, VA, f, RWU);
    map4k(g, VA + 0x1000, f, RWU);
    watch_va(g, VA);
    watch_va(g, VA + 0x1000);
    buf[0] = 0;
    assert_int_equal(ptmon_dump(g->pm, PTMON_DUMP_TEXT, append, buf), 0);
    assert_int_equal(count_lines(buf, "\nwatch "), 2);
    assert_int_equal(count_lines(buf, "table frame="), 4);
    assert_int_equal(count_lines(buf, "  node "), 5);
    assert_non_null(strstr(buf, "va=0x401000"));
    buf[0] = 0;
    assert_int_equal(ptmon_dump(g->pm, PTMON_DUMP_DOT, append, buf), 0);
    assert_int_equal(strncmp(buf, "strict digraph ptmon {", 22), 0);
    assert_int_equal(count_lines(buf, "[shape=ellipse"), 2);
    assert_int_equal(count_lines(buf, "refs "), 5);
    assert_non_null(strstr(buf, "}\n"));
    assert_int_equal(ptmon_dump(g->pm, (enum ptmon_dump_format)9, append, buf), PTMON_EINVAL);
    assert_int_equal(ptmon_dump(NULL, PTMON_DUMP_TEXT, append, buf), PTMON_EINVAL);
    guest_free(g);
}

/* ---- glue failures ----------------------------------------------------------------------- */

static void failed_protection_leaves_no_half_placed_watch(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    map4k(g, VA, new_frame(g), RWU);
    for (uint64_t nth = 1; nth <= 4; nth++) {
        struct ptmon_watch *w = (struct ptmon_watch *)g;
        ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_SET_ACCESS, nth, PTMON_EIO);
        assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, 0, recorder, g, &w), PTMON_EIO);
        assert_null(w);
        assert_consistent(g);
        assert_int_equal(ptmon_fake_count_write_protected(g->fake), 0);
    }
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_SET_ACCESS, 0, 0);
    watch_va(g, VA);
    guest_free(g);
}

static void failed_allocation_at_every_point_of_placement(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    map4k(g, VA, new_frame(g), RWU);
    for (uint64_t nth = 1;; nth++) {
        struct ptmon_watch *w = NULL;
        ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_ALLOC, nth, PTMON_ENOMEM);
        int rc = ptmon_watch(g->pm, g->cr3, VA, 0, recorder, g, &w);
        int fired = ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_ALLOC);
        ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_ALLOC, 0, 0);
        assert_consistent(g);
        if (!fired) {
            assert_int_equal(rc, 0);
            assert_int_equal(ptmon_unwatch(&w), 0);
            assert_true(nth > 4); /* watch, tables, nodes, chains: several allocations */
            break;
        }
        assert_int_equal(rc, PTMON_ENOMEM);
        assert_null(w);
        assert_int_equal(ptmon_fake_count_write_protected(g->fake), 0);
    }
    guest_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ON(deny_keeps_memory_and_tree_unchanged, pre4),
        ON(deny_keeps_memory_and_tree_unchanged, post4),
        ON(deny_keeps_memory_and_tree_unchanged, prepae),
        ON(deny_keeps_memory_and_tree_unchanged, pre32),
        ON(deny_tells_watches_already_told_the_reverse_and_skips_the_rest, pre4),
        ON(deny_tells_watches_already_told_the_reverse_and_skips_the_rest, post4),
        ON(post_deny_that_cannot_be_undone_tells_everyone_the_change, post4),
        ON(callbacks_of_one_leaf_follow_priority_then_placement_order, pre4),
        ON(callbacks_of_one_leaf_follow_priority_then_placement_order, post4),
        ON(callback_removing_a_queued_watch_stops_its_delivery, pre4),
        ON(callback_removing_a_queued_watch_stops_its_delivery, post4),
        ON(callback_removing_itself_is_never_called_again, pre4),
        ON(callback_removing_itself_is_never_called_again, post4),
        ON(watch_added_in_a_callback_sees_the_state_after_the_write, pre4),
        ON(watch_added_in_a_callback_sees_the_state_after_the_write, post4),
        ON(shared_prefixes_cost_one_node_per_entry, pre4),
        ON(same_root_with_other_pcid_bits_is_the_same_tree, pre4),
        ON(kernel_tables_shared_by_two_address_spaces_share_nodes, pre4),
        ON(kernel_tables_shared_by_two_address_spaces_share_nodes, post4),
        ON(remove_and_readd_before_commit_never_unprotects, pre4),
        ON(unwatching_everything_restores_the_original_rights, pre4),
        ON(self_map_entry_written_through_every_level, pre4),
        ON(self_map_entry_written_through_every_level, post4),
        ON(table_at_gpa_zero_and_tables_outside_ram, pre4),
        ON(table_at_gpa_zero_and_tables_outside_ram, post4),
        ON(watch_refuses_bad_arguments, pre4),
        ON(pae_pdpte_change_is_an_upper_level_change, prepae),
        ON(pae_entry_written_as_two_halves, prepae),
        ON(frame_hook_sees_writes_in_its_range_and_can_deny, pre4),
        ON(frame_hook_sees_writes_in_its_range_and_can_deny, post4),
        ON(read_hook_also_removes_write_access, pre4),
        ON(exec_hook_is_called_for_an_execute_event, pre4),
        ON(flush_follows_every_change_of_rights_and_only_those, pre4),
        ON(dumps_show_every_watch_node_and_table, pre4),
        ON(failed_protection_leaves_no_half_placed_watch, pre4),
        ON(failed_allocation_at_every_point_of_placement, pre4),
    };
    return cmocka_run_group_tests_name("callbacks", tests, NULL, NULL);
}
