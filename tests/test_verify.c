/*
 * test_verify.c — regressions: one scenario (or a few) per defect an independent verification
 * of the public API found (issue 13, V1-V7), each asserting the behaviour SPEC.md and the
 * headers promise. Every scenario ends with ptmon_check finding nothing.
 */
#include "engine_fixture.h"

#include <stdlib.h>
#include <string.h>

#define VA        0x400000ull
#define ABOVE_RAM (64 * MIB + 0x10000) /* a frame just above the guest's 64 MiB of RAM */

/* A table pointer at @p level as the guest would write it (a PAE PDPTE has no R/W, U/S). */
static uint64_t pointer_to(const struct guest *g, unsigned level, uint64_t table)
{
    if (g->mc->mode == PTMON_MODE_PAE && level == 3)
        return table | PTMON_PTE_P;
    return table | PTMON_PTE_P | RWU;
}

static uint64_t span_of(const struct guest *g, unsigned level)
{
    static const uint64_t spans32[] = {0, 4 * KIB, 4 * MIB};
    static const uint64_t spans[] = {0, 4 * KIB, 2 * MIB, GIB, 512 * GIB, 256ull * 1024 * GIB};
    return g->mc->mode == PTMON_MODE_32BIT ? spans32[level] : spans[level];
}

/* The watch's record and a fresh ptmon_translate both say: stopped at the pointer. */
static void assert_stopped_at_pointer(struct guest *g, struct ptmon_watch *w, unsigned level,
                                      uint64_t pointer)
{
    ptmon_translation t = ptmon_watch_translation(w);
    ptmon_walk walk;
    assert_int_equal(t.status, PTMON_WALK_OUTSIDE_RAM);
    assert_int_equal(t.level, level);
    assert_int_equal(t.entry, pointer);
    assert_int_equal(t.page_size, span_of(g, level));
    assert_int_equal(t.frame, 0);
    assert_int_equal(ptmon_translate(g->pm, g->cr3, VA, &walk), 0);
    assert_int_equal(walk.status, PTMON_WALK_OUTSIDE_RAM);
    assert_int_equal(walk.stop_level, level);
    assert_int_equal(walk.level[level].value, pointer);
    assert_int_equal(walk.rights, t.rights);
}

/* ---- V1: a table pointer outside guest RAM is the entry where the walk stops ------------- */

/* SPEC §4: the record is the entry where the walk stops; an agent must tell "points at MMIO or
 * beyond RAM" from "PTE unmapped". At every upper level of every mode. */
static void pointer_to_a_table_above_ram_is_reported_as_that_pointer_at_every_level(void **state)
{
    const struct mode_case *mc = *state;
    for (unsigned level = 2; level <= ptmon_paging_levels(mc->mode); level++) {
        struct guest *g = guest_new(mc, 64 * MIB);
        uint64_t page = new_frame(g), pointer = pointer_to(g, level, ABOVE_RAM);
        map4k(g, VA, page, RWU);
        struct ptmon_watch *w = watch_va(g, VA);
        uint64_t old = get_entry(g, VA, level);

        set_entry(g, VA, level, pointer);
        const ptmon_change *c = &only_call(g)->change;
        assert_int_equal(c->level, level);
        assert_int_equal(c->before.status, PTMON_WALK_OK);
        assert_int_equal(c->before.frame, page);
        assert_int_equal(c->after.status, PTMON_WALK_OUTSIDE_RAM);
        assert_int_equal(c->after.level, level);
        assert_int_equal(c->after.entry, pointer);
        assert_int_equal(c->after.page_size, span_of(g, level));
        assert_stopped_at_pointer(g, w, level, pointer);

        reset_calls(g);
        set_entry(g, VA, level, old); /* the old table back: the page is mapped again */
        c = &only_call(g)->change;
        assert_int_equal(c->before.status, PTMON_WALK_OUTSIDE_RAM);
        assert_int_equal(c->before.level, level);
        assert_int_equal(c->before.entry, pointer);
        assert_int_equal(c->after.status, PTMON_WALK_OK);
        assert_int_equal(c->after.frame, page);
        guest_free(g);
    }
}

/* The verification's reproduction: a PDE mapping a 2 MiB page becomes a pointer to a table just
 * above RAM, and back. */
static void large_page_repointed_above_ram_and_back_reports_both_pdes(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    const uint64_t large = 0x40200087, pointer = 0x4010007;
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, VA, 0x40200000, 2 * MIB, RWU), 0);
    assert_int_equal(get_entry(g, VA, 2), large);
    struct ptmon_watch *w = watch_va(g, VA);

    set_entry(g, VA, 2, pointer);
    const ptmon_change *c = &only_call(g)->change;
    assert_int_equal(c->before.entry, large);
    assert_int_equal(c->before.page_size, 2 * MIB);
    assert_int_equal(c->after.status, PTMON_WALK_OUTSIDE_RAM);
    assert_int_equal(c->after.entry, pointer);
    assert_int_equal(c->after.level, 2);
    assert_stopped_at_pointer(g, w, 2, pointer);

    reset_calls(g);
    set_entry(g, VA, 2, large);
    c = &only_call(g)->change;
    assert_int_equal(c->before.entry, pointer);
    assert_int_equal(c->before.level, 2);
    assert_int_equal(c->after.status, PTMON_WALK_OK);
    assert_int_equal(c->after.entry, large);
    assert_int_equal(c->after.frame, 0x40200000);
    guest_free(g);
}

/* A root outside RAM is no translation at all: refused at once, not watched silently. */
static void watch_of_a_root_outside_ram_is_refused(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    struct ptmon_watch *w = (struct ptmon_watch *)g;
    ptmon_walk walk;
    assert_int_equal(ptmon_watch(g->pm, ABOVE_RAM, VA, 0, recorder, g, &w), PTMON_ERANGE);
    assert_null(w);
    assert_int_equal(ptmon_translate(g->pm, ABOVE_RAM, VA, &walk), PTMON_ERANGE);
    guest_free(g);
}

/* ---- V2: a removed handle cannot be used to read freed memory --------------------------- */

/* Under ASan (CI's second build) the second call read the block the first one's commit freed. */
static void unwatching_twice_through_one_handle_is_a_clean_einval(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    map4k(g, VA, new_frame(g), RWU);
    struct ptmon_watch *w = watch_va(g, VA);
    assert_int_equal(ptmon_unwatch(&w), 0);
    assert_null(w);
    assert_int_equal(ptmon_unwatch(&w), PTMON_EINVAL);
    assert_int_equal(ptmon_unwatch(NULL), PTMON_EINVAL);
    guest_free(g);
}

static int count_access(ptmon *pm, ptmon_hook *h, void *ctx, const ptmon_mem_event *ev)
{
    (void)pm;
    (void)h;
    (void)ev;
    ++*(int *)ctx;
    return PTMON_ACTION_ALLOW;
}

static void unhooking_twice_through_one_handle_is_a_clean_einval(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    int calls = 0;
    ptmon_hook *h = NULL;
    assert_int_equal(
        ptmon_hook_gpa(g->pm, new_frame(g), 8, PTMON_ACCESS_W, count_access, &calls, &h), 0);
    assert_int_equal(ptmon_unhook(&h), 0);
    assert_null(h);
    assert_int_equal(ptmon_unhook(&h), PTMON_EINVAL);
    assert_int_equal(ptmon_unhook(NULL), PTMON_EINVAL);
    guest_free(g);
}

/* What a watch's owner keeps: freed by the watch's own callback (ptmon.h: ctx may be freed
 * once ptmon_unwatch returns, also from inside that callback). */
struct owned_watch {
    struct ptmon_watch *handle;
    int calls;
};

static int unwatch_self_and_free_ctx(ptmon *pm, struct ptmon_watch *w, void *ctx,
                                     const ptmon_change *c)
{
    struct owned_watch *o = ctx;
    (void)pm;
    (void)c;
    assert_ptr_equal(o->handle, w);
    assert_int_equal(ptmon_unwatch(&o->handle), 0);
    assert_null(o->handle);
    free(o); /* ASan reports any later use of ctx by ptmon */
    return PTMON_ACTION_ALLOW;
}

static void watch_that_removes_itself_may_free_its_ctx_in_its_callback(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    struct owned_watch *o = calloc(1, sizeof(*o));
    assert_non_null(o);
    map4k(g, VA, new_frame(g), RWU);
    map4k(g, VA + 0x1000, new_frame(g), RWU);
    watch_va(g, VA + 0x1000); /* a neighbour, told after it */
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, PTMON_WATCH_HIGH_PRIORITY,
                                 unwatch_self_and_free_ctx, o, &o->handle),
                     0);
    set_entry(g, VA, 2, 0); /* both VAs unmapped: the first removes itself, the second is told */
    assert_int_equal(only_call(g)->change.va, VA + 0x1000);
    ptmon_stats st;
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_int_equal(st.watches, 1);
    guest_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ON(pointer_to_a_table_above_ram_is_reported_as_that_pointer_at_every_level, pre4),
        ON(pointer_to_a_table_above_ram_is_reported_as_that_pointer_at_every_level, post4),
        ON(pointer_to_a_table_above_ram_is_reported_as_that_pointer_at_every_level, pre32),
        ON(pointer_to_a_table_above_ram_is_reported_as_that_pointer_at_every_level, prepae),
        ON(pointer_to_a_table_above_ram_is_reported_as_that_pointer_at_every_level, pre5),
        ON(large_page_repointed_above_ram_and_back_reports_both_pdes, pre4),
        ON(watch_of_a_root_outside_ram_is_refused, pre4),
        ON(watch_of_a_root_outside_ram_is_refused, pre32),
        ON(watch_of_a_root_outside_ram_is_refused, prepae),
        ON(watch_of_a_root_outside_ram_is_refused, pre5),
        ON(unwatching_twice_through_one_handle_is_a_clean_einval, pre4),
        ON(unhooking_twice_through_one_handle_is_a_clean_einval, pre4),
        ON(watch_that_removes_itself_may_free_its_ctx_in_its_callback, pre4),
        ON(watch_that_removes_itself_may_free_its_ctx_in_its_callback, post4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
