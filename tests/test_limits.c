/*
 * test_limits.c — resource bounds (SPEC §7): the optional per-instance caps on entry nodes and
 * table records. A cap refuses a watch cleanly; a guest write that would need more than the cap
 * leaves the affected watches on their last record until room is made, then tells them.
 */
#include "engine_fixture.h"

#define VA 0x400000ull

/* Re-create g->pm with caps. */
static void set_caps(struct guest *g, uint64_t max_nodes, uint64_t max_tables)
{
    ptmon_config pc = PTMON_CONFIG_INIT;
    ptmon_destroy(g->pm);
    pc.paging = ptmon_fake_get_config(g->fake)->paging;
    pc.max_nodes = max_nodes;
    pc.max_tables = max_tables;
    assert_int_equal(ptmon_create(ptmon_fake_glue(g->fake), &pc, &g->pm), 0);
    ptmon_fake_set_handler(g->fake, fixture_handler, g->pm);
}

static uint64_t nodes_of(struct guest *g)
{
    ptmon_stats st;
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    return st.nodes;
}

static void node_cap_refuses_a_watch_cleanly(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    set_caps(g, g->top + 2, 0); /* a full path and two more leaves */
    for (unsigned i = 0; i < 4; i++)
        map4k(g, VA + i * 0x1000ull, f, RWU);
    struct ptmon_watch *w[3], *extra = (struct ptmon_watch *)1;
    for (unsigned i = 0; i < 3; i++)
        w[i] = watch_va(g, VA + i * 0x1000ull);
    uint64_t protected_before = ptmon_fake_count_write_protected(g->fake);
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA + 0x3000, 0, recorder, g, &extra), PTMON_ELIMIT);
    assert_null(extra);
    assert_int_equal(nodes_of(g), g->top + 2);
    assert_int_equal(ptmon_fake_count_write_protected(g->fake), protected_before);
    assert_consistent(g);
    /* room made: the same watch succeeds */
    assert_int_equal(ptmon_unwatch(&w[1]), 0);
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA + 0x3000, 0, recorder, g, &extra), 0);
    assert_consistent(g);
    guest_free(g);
}

static void table_cap_refuses_a_watch_in_another_table(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g), pt = g->mc->large;
    set_caps(g, 0, g->top); /* one table per level */
    map4k(g, VA, f, RWU);
    map4k(g, VA + 0x1000, f, RWU);
    map4k(g, VA + pt, f, RWU); /* needs one more page table */
    watch_va(g, VA);
    watch_va(g, VA + 0x1000); /* same tables: fine */
    struct ptmon_watch *extra;
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA + pt, 0, recorder, g, &extra), PTMON_ELIMIT);
    assert_int_equal(ptmon_fake_count_write_protected(g->fake), g->top);
    assert_consistent(g);
    guest_free(g);
}

/* The guest splits a watched 2M page while the instance is at its node cap: the watch cannot
 * follow into the new page table, keeps its last record (no callback, no half-made path), and
 * is completed and told by the commit after another watch made room. */
static void guest_split_beyond_the_cap_is_told_once_there_is_room(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t big = 32 * MIB, f = new_frame(g), pt = g->mc->large;
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, VA + pt, big, pt, RWU), 0);
    map4k(g, VA, f, RWU);
    set_caps(g, g->top + 1, 0);                   /* A's path and B's leaf */
    struct ptmon_watch *a = watch_va(g, VA + pt); /* ends at the large-page PDE */
    struct ptmon_watch *b = watch_va(g, VA);      /* its own PDE and PTE */
    assert_int_equal(nodes_of(g), g->top + 1);
    assert_int_equal(ptmon_fake_split(g->fake, g->cr3, VA + pt, 0, NULL), 0);
    assert_int_equal(g->ncalls, 0);
    assert_int_equal(ptmon_watch_translation(a).page_size, pt); /* the last record */
    assert_int_equal(nodes_of(g), g->top + 1);
    assert_int_equal(ptmon_unwatch(&b), 0); /* room: the commit completes A */
    assert_int_equal(g->ncalls, 1);
    assert_int_equal(g->calls[0].change.vcpu, PTMON_VCPU_NONE);
    assert_int_equal(g->calls[0].change.before.page_size, pt);
    assert_int_equal(g->calls[0].change.after.page_size, 4 * KIB);
    assert_int_equal(g->calls[0].change.after.frame, big);
    assert_consistent(g);
    guest_free(g);
}

/* A caller built against configuration version 1 has no cap members: whatever lies there is
 * not read. */
static void version_1_configuration_has_no_caps(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    ptmon_config pc = PTMON_CONFIG_INIT;
    ptmon *pm;
    pc.version = 1;
    pc.paging = ptmon_fake_get_config(g->fake)->paging;
    pc.max_nodes = 1;
    pc.max_tables = 1;
    assert_int_equal(ptmon_create(ptmon_fake_glue(g->fake), &pc, &pm), 0);
    map4k(g, VA, new_frame(g), RWU);
    struct ptmon_watch *w;
    assert_int_equal(ptmon_watch(pm, g->cr3, VA, 0, recorder, g, &w), 0);
    ptmon_destroy(pm);
    guest_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ON(node_cap_refuses_a_watch_cleanly, pre4),
        ON(node_cap_refuses_a_watch_cleanly, prepae),
        ON(node_cap_refuses_a_watch_cleanly, pre32),
        ON(table_cap_refuses_a_watch_in_another_table, pre4),
        ON(table_cap_refuses_a_watch_in_another_table, pre32),
        ON(guest_split_beyond_the_cap_is_told_once_there_is_room, pre4),
        ON(guest_split_beyond_the_cap_is_told_once_there_is_room, post4),
        ON(guest_split_beyond_the_cap_is_told_once_there_is_room, prepae),
        ON(version_1_configuration_has_no_caps, pre4),
    };
    return cmocka_run_group_tests_name("limits", tests, NULL, NULL);
}
