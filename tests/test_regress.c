/*
 * test_regress.c — regressions: one scenario per engine bug an internal review (B1-B10) or the
 * differential fuzzer (N1-N4, tests/fuzz) found, each asserting the behaviour SPEC.md asks for.
 */
#include "engine_fixture.h"

#include <stdlib.h>
#include <string.h>

/* internals: to fast-forward the event counters (B10) and count collection visits (B5) */
#include "core/internal.h"
#include "core/watch.h"

#define VA        0x400000ull
#define PAT_LARGE (1ull << 12)

/* ---- B1: the PAT bit of a large page (bit 12) is not an address bit -------------------- */
/* SPEC §4 C5: "A, D, G, PCD, PWT, PAT ... do not trigger". On a 2M/1G/4M leaf, PAT is bit 12. */
static void pat_bit_of_large_page_is_silent(void **state)
{
    const struct mode_case *mc = *state;
    struct guest *g = guest_new(mc, 64 * MIB);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, 0x800000, 16 * MIB, mc->large, RWU), 0);
    watch_va(g, 0x800000);
    uint64_t pde = get_entry(g, 0x800000, 2);
    set_entry(g, 0x800000, 2, pde | PAT_LARGE); /* PAT only */
    assert_int_equal(g->ncalls, 0);
    guest_free(g);
}

/* ---- B2: a watch added in a callback, then the PRE write is denied ---------------------- */
/* The new watch's path crosses a slot of the written range that was not watched at decode time;
 * its node was read through the pending write's bytes and must go back to memory's value. */
static struct ptmon_watch *b2_added;
static void b2_hook(struct guest *g, struct ptmon_watch *w, const ptmon_change *c)
{
    (void)w;
    if (!b2_added && !c->reverted)
        assert_int_equal(ptmon_watch(g->pm, g->cr3, VA + 0x1000, 0, recorder, g, &b2_added), 0);
}

static void watch_added_in_callback_then_deny_keeps_old_state(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f1, RWU);
    watch_va(g, VA);
    b2_added = NULL;
    g->hook = b2_hook;
    g->deny_va_set = 1;
    g->deny_va = VA;
    uint64_t e[2] = {f2 | RWU | PTMON_PTE_P, f2 | RWU | PTMON_PTE_P};
    assert_int_equal(ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1), e, 16), PTMON_EDENIED);
    g->hook = NULL;
    g->deny_va_set = 0;
    assert_non_null(b2_added);
    /* memory is unchanged (denied): the new watch must see f1 (SPEC §4 Re-entrancy) */
    assert_int_equal(get_entry(g, VA + 0x1000, 1) & ~0xfffull, f1);
    assert_int_equal(ptmon_watch_translation(b2_added).frame, f1);
    assert_consistent(g);
    guest_free(g);
}

/* ---- B3: ptmon_commit called from a callback is deferred to the event's end -------------- */
static void b3_hook(struct guest *g, struct ptmon_watch *w, const ptmon_change *c)
{
    (void)c;
    assert_int_equal(ptmon_unwatch(&w), 0);
    (void)ptmon_commit(g->pm); /* "apply deferred work now" */
}

static void commit_inside_callback(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    map4k(g, VA, new_frame(g), RWU);
    watch_va(g, VA);
    watch_va(g, VA);
    g->hook = b3_hook;
    set_entry(g, VA, 1, 0); /* was: heap-use-after-free while delivering */
    g->hook = NULL;
    assert_int_equal(g->ncalls, 2);
    assert_consistent(g);
    guest_free(g);
}

/* ---- B4: POST deny whose undo fails ------------------------------------------------------ */
/* (a) a store changing two watched entries; the first denies; the undo of the FIRST entry
 * fails, the second's succeeds: memory = {new, old}, and so must the tree be. */
static void post_deny_partial_undo_failure_tree_follows_memory(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f1, RWU);
    watch_va(g, VA);
    watch_va(g, VA + 0x1000);
    g->deny_va_set = 1;
    g->deny_va = VA;
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_EMULATE_WRITE, 1, PTMON_EIO);
    uint64_t e[2] = {f2 | RWU | PTMON_PTE_P, f2 | RWU | PTMON_PTE_P};
    (void)ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1), e, 16);
    g->deny_va_set = 0;
    assert_consistent(g); /* was: VA+0x1000's node cached f2, memory held f1 */
    assert_int_equal(get_entry(g, VA, 1) & ~0xfffull, f2);
    assert_int_equal(get_entry(g, VA + 0x1000, 1) & ~0xfffull, f1);
    guest_free(g);
}

/* (b) one entry, two watches on it; the first denies, the undo fails: the write stands, and the
 * second watch, which the deny kept from its turn, is told. */
static void post_deny_with_failed_undo_still_tells_everyone(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    struct ptmon_watch *a = watch_va(g, VA);
    struct ptmon_watch *b = watch_va(g, VA);
    g->deny_va_set = 1;
    g->deny_va = VA; /* a is called first (placement order) and denies */
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_EMULATE_WRITE, 1, PTMON_EIO);
    (void)ptmon_fake_store_int(g->fake, 0, entry_gpa(g, VA, 1), f2 | RWU | PTMON_PTE_P, 8);
    g->deny_va_set = 0;
    assert_consistent(g);
    assert_int_equal(get_entry(g, VA, 1) & ~0xfffull, f2); /* the write stands */
    assert_int_equal(ptmon_watch_translation(b).frame, f2);
    assert_int_equal(g->ncalls, 2);
    assert_ptr_equal(g->calls[0].watch, a);
    assert_ptr_equal(g->calls[1].watch, b);
    guest_free(g);
}

/* ---- B5: collecting the watches of a changed node visits each node once ---------------- */
/* A guest aliases K PDPTEs -> one PD, K PDEs -> one PT; K watches. One write to the PML4E (an
 * OS-available bit) used to visit K^3 nodes (each shared node once per parent). SPEC §8: the
 * cost is O(watches below). Counted in node visits, not timed. */
static uint64_t alias_visits(unsigned k)
{
    struct guest *g = guest_new(&pre4, 64 * MIB);
    uint64_t f = new_frame(g);
    map4k(g, 0, f, RWU); /* PML4[0] -> A, A[0] -> B, B[0] -> C */
    uint64_t b = get_entry(g, 0, 3) & ~0xfffull, c = get_entry(g, 0, 2) & ~0xfffull;
    for (unsigned i = 1; i < k; i++) {
        uint64_t va = ((uint64_t)i << 30) | ((uint64_t)i << 21) | ((uint64_t)i << 12);
        assert_int_equal(ptmon_fake_link(g->fake, g->cr3, va, 3, b, RWU), 0);
        assert_int_equal(ptmon_fake_link(g->fake, g->cr3, va, 2, c, RWU), 0);
        assert_int_equal(ptmon_fake_map(g->fake, g->cr3, va, f, 4 * KIB, RWU), 0);
    }
    for (unsigned i = 0; i < k; i++) {
        uint64_t va = ((uint64_t)i << 30) | ((uint64_t)i << 21) | ((uint64_t)i << 12);
        struct ptmon_watch *w;
        assert_int_equal(ptmon_watch(g->pm, g->cr3, va, 0, recorder, g, &w), 0);
    }
    uint64_t pml4e = get_entry(g, 0, 4);
    uint64_t before = g->pm->stats.visits;
    assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, 0, 4, pml4e | (1ull << 9)), 0);
    uint64_t visits = g->pm->stats.visits - before;
    assert_int_equal(g->ncalls, 0);
    assert_consistent(g);
    guest_free(g);
    return visits;
}

static void aliased_tables_cost_linear_visits_per_upper_write(void **state)
{
    (void)state;
    uint64_t v128 = alias_visits(128), v512 = alias_visits(512);
    print_message("    one PML4E write: 128 watches %llu node visits, 512 watches %llu\n",
                  (unsigned long long)v128, (unsigned long long)v512);
    /* the PML4E, the PDPTEs (k), the PDEs (k), the PTEs (k) */
    assert_true(v128 <= 3 * 128 + 1);
    assert_true(v512 <= 3 * 512 + 1);
}

/* ---- B6: a watch whose placement was incomplete is complete again after a later successful
 * re-placement: told in that event, by its vCPU, with its deny honoured. */
static ptmon_glue wrap_glue;
static void *(*real_realloc)(void *, void *, size_t, size_t);
static int fail_allocs;
static void *failing_realloc(void *b, void *ptr, size_t old, size_t size)
{
    if (fail_allocs && size > old)
        return NULL;
    return real_realloc(b, ptr, old, size);
}

/* Re-create g->pm on a glue whose allocations can be made to fail persistently. */
static void use_wrapped_glue(struct guest *g)
{
    ptmon_config pc = PTMON_CONFIG_INIT;
    ptmon_destroy(g->pm);
    wrap_glue = *ptmon_fake_glue(g->fake);
    real_realloc = wrap_glue.realloc;
    wrap_glue.realloc = failing_realloc;
    pc.paging = ptmon_fake_get_config(g->fake)->paging;
    assert_int_equal(ptmon_create(&wrap_glue, &pc, &g->pm), 0);
    ptmon_fake_set_handler(g->fake, fixture_handler, g->pm);
}

static void watch_complete_again_after_failed_placement_is_told_and_may_deny(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f3 = new_frame(g), f4 = new_frame(g);
    use_wrapped_glue(g);
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 2 * MIB, f3, RWU); /* another PT (P2), slot 0 -> f3 */
    map4k(g, VA + 4 * MIB, f4, RWU); /* another PT (P3), slot 0 -> f4 */
    uint64_t pde_p2 = get_entry(g, VA + 2 * MIB, 2), pde_p3 = get_entry(g, VA + 4 * MIB, 2);
    struct ptmon_watch *w = watch_va(g, VA);
    /* event 1: PDE -> P2 while every allocation fails (the commit's retry fails too) */
    fail_allocs = 1;
    assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, VA, 2, pde_p2), 0);
    fail_allocs = 0;
    assert_int_equal(g->ncalls, 0);
    /* event 2: PDE -> P3; placement now succeeds. W must be told in this event, by vCPU 0,
     * and its deny must be honoured. */
    g->deny_va_set = 1;
    g->deny_va = VA;
    int rc = ptmon_fake_set_entry(g->fake, g->cr3, VA, 2, pde_p3);
    g->deny_va_set = 0;
    assert_int_equal(rc, PTMON_EDENIED);
    /* told f1 -> f4 (it was last told f1), then that the write is undone: P2's f3 stands */
    assert_int_equal(g->ncalls, 2);
    assert_int_equal(g->calls[0].change.vcpu, 0);
    assert_int_equal(g->calls[0].change.before.frame, f1);
    assert_int_equal(g->calls[0].change.after.frame, f4);
    assert_int_equal(g->calls[1].change.reverted, 1);
    assert_int_equal(g->calls[1].change.after.frame, f3);
    assert_int_equal(ptmon_watch_translation(w).frame, f3);
    assert_consistent(g);
    guest_free(g);
}

/* ---- B8: a resync after an unreadable entry compares every node of a slot ---------------- */
/* POST 16-byte store over PD slots t and s=t+1 of page P: slot t becomes a pointer to P itself
 * (P is now B's page table, B's PT index = s) and slot s changes too; the read of slot s fails.
 * Re-placing B creates a fresh (P+8s, L1) node with the new value at the head of slot s's
 * chain; a resync comparing that head only saw no change and never corrected A's stale
 * (P+8s, L2) node. */
static void resync_corrects_stale_node_behind_fresh_one(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g), f2 = new_frame(g);
    unsigned t = 4, s = 5;
    uint64_t va_a = (uint64_t)s << 21, va_b = ((uint64_t)t << 21) | ((uint64_t)s << 12);
    map4k(g, va_a, f, RWU);
    map4k(g, va_b, f, RWU);
    uint64_t p = entry_gpa(g, va_a, 2) & ~0xfffull;
    watch_va(g, va_a);
    watch_va(g, va_b);
    uint64_t e[2] = {p | RWU | PTMON_PTE_P, 0};
    /* slot s: A's PDE now points to a fresh PT whose slot holds f2 */
    uint64_t pt3 = new_frame(g);
    uint64_t leaf = f2 | RWU | PTMON_PTE_P;
    assert_int_equal(ptmon_fake_poke(g->fake, pt3 + ((va_a >> 12) & 511) * 8, &leaf, 8), 0);
    e[1] = pt3 | RWU | PTMON_PTE_P;
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 2, PTMON_EIO); /* decode: slot s */
    assert_int_equal(ptmon_fake_store(g->fake, 0, p + t * 8, e, 16), 0);
    assert_true(ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_READ_GPA));
    (void)ptmon_commit(g->pm);
    assert_consistent(g); /* was: node P+8s L2 kept the old PDE */
    guest_free(g);
}

/* ---- B9: stats.bytes counts the stocks of free nodes and tables; commits trim them -------- */
/* SPEC §5: "bytes used". After unwatching everything the instance must not keep the stocked
 * nodes and table records (with their chain arrays), and what it keeps is counted. */
static void stats_bytes_count_everything(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    struct ptmon_watch *w[600];
    for (unsigned i = 0; i < 600; i++) {
        assert_int_equal(ptmon_fake_map(g->fake, g->cr3, VA + i * 0x1000ull, f, 4 * KIB, RWU), 0);
        assert_int_equal(ptmon_watch(g->pm, g->cr3, VA + i * 0x1000ull, 0, recorder, g, &w[i]), 0);
    }
    for (unsigned i = 0; i < 600; i++)
        assert_int_equal(ptmon_unwatch(&w[i]), 0);
    ptmon_stats st;
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    uint64_t real = ptmon_fake_stat(g->fake, PTMON_FAKE_STAT_BYTES_ALLOCATED);
    print_message("    no watch left: stats.bytes %llu, allocator %llu\n",
                  (unsigned long long)st.bytes, (unsigned long long)real);
    assert_int_equal(st.bytes, real);
    assert_int_equal(st.nodes, 0);
    assert_true(real < 16 * KIB); /* the instance and its empty frame map, not 600 nodes */
    guest_free(g);
}

/* ---- B3b: ptmon_commit from a frame-hook callback is deferred too ------------------------ */
static int hook_unhook_commit(ptmon *pm, ptmon_hook *h, void *ctx, const ptmon_mem_event *ev)
{
    (void)ctx;
    (void)ev;
    assert_int_equal(ptmon_unhook(&h), 0);
    (void)ptmon_commit(pm);
    return PTMON_ACTION_ALLOW;
}

static void commit_inside_hook_callback(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f = new_frame(g);
    ptmon_hook *h1, *h2;
    assert_int_equal(ptmon_hook_gpa(g->pm, f, 16, PTMON_ACCESS_W, hook_unhook_commit, NULL, &h1),
                     0);
    assert_int_equal(ptmon_hook_gpa(g->pm, f, 16, PTMON_ACCESS_W, hook_unhook_commit, NULL, &h2),
                     0);
    /* was: heap-use-after-free in frame_dispatch (h->next) / ptmon_handle_event (f->table) */
    assert_int_equal(ptmon_fake_store_int(g->fake, 0, f, 1, 8), 0);
    assert_int_equal(ptmon_fake_rights(g->fake, f >> 12) & PTMON_ACCESS_W, PTMON_ACCESS_W);
    assert_consistent(g);
    guest_free(g);
}

/* ---- B10: the mark and epoch counters do not wrap ----------------------------------------- */
/* Collection skips a node whose visit equals pm->mark; touch() skips a watch whose
 * touched_epoch equals pm->epoch. As 32-bit counters they wrapped after 2^32 node changes (or
 * events) and skipped watches; they are 64-bit now. Fast-forwarded instead of 2^32 writes. */
static void mark_wraparound_skips_watch(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    struct ptmon_watch *w = watch_va(g, VA);
    g->pm->mark = UINT32_MAX; /* as after 2^32 - 1 node changes elsewhere */
    map4k(g, VA, f2, RWU);
    assert_int_equal(g->ncalls, 1);
    (void)w;
    guest_free(g);
}

static void epoch_wraparound_skips_watch(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    watch_va(g, VA);
    g->pm->epoch = UINT32_MAX; /* as after 2^32 - 1 events */
    map4k(g, VA, f2, RWU);
    assert_int_equal(g->ncalls, 1);
    guest_free(g);
}

/* ---- B7: a transient entry-read failure on the deny path -------------------------------- */
/* A watches VA; the PDE is remapped to another PT; A denies. The n-th guest read of the event
 * fails once. Placements that failed are retried before each delivery, so wherever the failure
 * falls, A is told by vCPU 0, its deny holds, and the undo is told as reverted. */
static void read_failure_on_the_deny_path(void **state)
{
    int bad = 0;
    for (uint64_t nth = 1; nth <= 8; nth++) {
        struct guest *g = guest_new(*state, 64 * MIB);
        uint64_t f1 = new_frame(g), f2 = new_frame(g);
        map4k(g, VA, f1, RWU);
        map4k(g, VA + 2 * MIB, f2, RWU); /* P2: slot 0 maps f2 */
        uint64_t pde_p2 = get_entry(g, VA + 2 * MIB, 2);
        watch_va(g, VA);
        g->deny_va_set = 1;
        g->deny_va = VA;
        ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, nth, PTMON_EIO);
        int src = ptmon_fake_set_entry(g->fake, g->cr3, VA, 2, pde_p2);
        g->deny_va_set = 0;
        int fired = ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_READ_GPA);
        ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 0, 0);
        assert_consistent(g);
        int ok = src == PTMON_EDENIED && g->ncalls == 2 && g->calls[0].change.vcpu == 0 &&
                 g->calls[1].change.vcpu == 0 && g->calls[1].change.reverted == 1;
        if (!ok) {
            bad++;
            print_message("    read #%llu fails: store rc %d, %zu calls\n", (unsigned long long)nth,
                          src, g->ncalls);
            for (size_t i = 0; i < g->ncalls; i++)
                print_message("      call %zu: reverted %u vcpu %u frame %llx -> %llx\n", i,
                              g->calls[i].change.reverted, g->calls[i].change.vcpu,
                              (unsigned long long)g->calls[i].change.before.frame,
                              (unsigned long long)g->calls[i].change.after.frame);
        }
        guest_free(g);
        if (!fired)
            break;
    }
    assert_int_equal(bad, 0);
}

/* ---- found by the differential fuzzer after the fixes above ---------------------------------- */

/* POST 16-byte store over two watched PTEs, {f2, f2}; the read of the second fails while
 * decoding; the watch on the first denies. @return the second watch. */
static struct ptmon_watch *post_deny_with_second_read_failing(struct guest *g, uint64_t f1,
                                                              uint64_t f2)
{
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f1, RWU);
    watch_va(g, VA);
    struct ptmon_watch *b = watch_va(g, VA + 0x1000);
    g->deny_va_set = 1;
    g->deny_va = VA;
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 2, PTMON_EIO); /* decode: 2nd slot */
    uint64_t e[2] = {f2 | RWU | PTMON_PTE_P, f2 | RWU | PTMON_PTE_P};
    (void)ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1), e, 16);
    g->deny_va_set = 0;
    assert_true(ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_READ_GPA));
    assert_consistent(g);
    return b;
}

/* SPEC 4 Deny: with post-write delivery the old value is restored. The second entry's node still
 * holds it (the read failed, the node did not change): it is written back too (it used to stand
 * as written, and the deny was counted all the same). */
static void post_deny_restores_entry_whose_read_failed(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    ptmon_stats st;
    struct ptmon_watch *b = post_deny_with_second_read_failing(g, f1, f2);
    assert_int_equal(get_entry(g, VA, 1) & ~0xfffull, f1);
    assert_int_equal(get_entry(g, VA + 0x1000, 1) & ~0xfffull, f1);
    assert_int_equal(ptmon_watch_translation(b).frame, f1);
    for (size_t i = 0; i < g->ncalls; i++)
        assert_int_not_equal(g->calls[i].change.va, VA + 0x1000);
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_int_equal(st.events_denied, 1);
    guest_free(g);
}

/* The same with the write-back of that second entry failing: its new value stands in memory, and
 * its watch hears it in this event (it used to be updated silently). */
static void post_deny_tells_entry_whose_read_and_undo_failed_what_stands(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    ptmon_stats st;
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_EMULATE_WRITE, 2, PTMON_EIO); /* 2nd write-back */
    struct ptmon_watch *b = post_deny_with_second_read_failing(g, f1, f2);
    assert_true(ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_EMULATE_WRITE));
    assert_int_equal(get_entry(g, VA, 1) & ~0xfffull, f1);
    assert_int_equal(get_entry(g, VA + 0x1000, 1) & ~0xfffull, f2);
    assert_int_equal(ptmon_watch_translation(b).frame, f2);
    const struct call *cb = call_for(g, VA + 0x1000);
    assert_non_null(cb);
    assert_int_equal(cb->change.before.frame, f1);
    assert_int_equal(cb->change.after.frame, f2);
    assert_int_equal(cb->change.reverted, 0);
    assert_int_equal(cb->change.vcpu, 0); /* in the event, not at a later commit */
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_int_equal(st.events_denied, 0); /* not undone */
    guest_free(g);
}

/* PRE 4-byte store into a watched 8-byte entry; reading the other half fails. The commit closing
 * the event reads the entry again, through the pending bytes (the backend writes them after the
 * event): the tree is not left stale after the event returns (it used to be until the next
 * commit). */
static void pre_partial_store_with_failed_read_is_resynced_in_the_event(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    struct ptmon_watch *w = watch_va(g, VA);
    uint32_t low = (uint32_t)(f2 | RWU | PTMON_PTE_P);
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 1, PTMON_EIO);
    assert_int_equal(ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1), &low, 4), 0);
    assert_true(ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_READ_GPA));
    assert_consistent(g);
    assert_int_equal(ptmon_watch_translation(w).frame, f2);
    assert_int_equal(g->ncalls, 1);
    assert_int_equal(g->calls[0].change.vcpu, PTMON_VCPU_NONE); /* found by the commit */
    assert_int_equal(g->calls[0].change.after.frame, f2);
    guest_free(g);
}

/* ---- N1-N4: found by the differential fuzzer (tests/fuzz), and what unread entries do ------- */

/* A backend that does not know the bytes of a PRE write (ptmon has it performed through
 * emulate_write(bytes = NULL)). */
static int handler_without_pre_bytes(void *ctx, const ptmon_mem_event *ev)
{
    ptmon_mem_event e = *ev;
    if (e.delivery == PTMON_DELIVERY_PRE)
        e.bytes = NULL;
    return ptmon_handle_event(ctx, &e);
}

/* Re-create g->pm on a copy of the fake's glue without emulate_write (a backend that performs
 * every allowed PRE write itself, after the event). */
static void use_glue_without_emulate(struct guest *g, ptmon_glue *glue)
{
    ptmon_config pc = PTMON_CONFIG_INIT;
    ptmon_destroy(g->pm);
    *glue = *ptmon_fake_glue(g->fake);
    glue->emulate_write = NULL;
    pc.paging = ptmon_fake_get_config(g->fake)->paging;
    assert_int_equal(ptmon_create(glue, &pc, &g->pm), 0);
    ptmon_fake_set_handler(g->fake, fixture_handler, g->pm);
}

/* N1. SPEC §4 Deny: "with pre-write delivery the write is then not performed". Without the
 * bytes ptmon must have the write performed to learn them; a deny then undoes the whole store,
 * the unwatched entry beside the watched one included (it used to stay written). */
static void denied_pre_write_without_bytes_leaves_the_whole_range_unwritten(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f1, RWU);
    watch_va(g, VA); /* VA + 0x1000's PTE is in the same table, unwatched */
    ptmon_fake_set_handler(g->fake, handler_without_pre_bytes, g->pm);
    g->deny_va_set = 1;
    g->deny_va = VA;
    uint64_t before = get_entry(g, VA + 0x1000, 1);
    uint64_t e[2] = {f2 | RWU | PTMON_PTE_P, f2 | RWU | PTMON_PTE_P};
    (void)ptmon_fake_store(g->fake, 0, entry_gpa(g, VA, 1), e, 16);
    g->deny_va_set = 0;
    assert_int_equal(get_entry(g, VA, 1), f1 | RWU | PTMON_PTE_P);
    assert_int_equal(get_entry(g, VA + 0x1000, 1), before);
    assert_int_equal(g->ncalls, 2);
    assert_int_equal(g->calls[1].change.reverted, 1);
    guest_free(g);
}

/* The page directory maps itself at index 3: the PT of a VA with PD index 3 is the PD, and its
 * PTE 4 is PDE 4. One 16-byte store then covers PDE 3 (the watch's upper entry) and PDE 4 (its
 * PTE under the old PDE 3). @return the VA; *pde3 its PDE's address. */
static uint64_t self_mapped_pd(struct guest *g, uint64_t f1, uint64_t *pde3)
{
    uint64_t va = (3ull << 21) | (4ull << 12), pd;
    map4k(g, va, f1, RWU);
    *pde3 = entry_gpa(g, va, 2);
    pd = *pde3 & ~0xfffull;
    set_entry(g, va, 2, pd | RWU | PTMON_PTE_P);
    assert_int_equal(ptmon_fake_poke(g->fake, pd + 4 * 8, &(uint64_t){f1 | RWU | PTMON_PTE_P}, 8),
                     0);
    return va;
}

/* N2. In a POST event the read of a changed upper entry fails, the read of the changed entry
 * below it does not. A callback made of the new lower entry and the stale upper one would report
 * a translation that never existed: the watch waits for the commit that reads the upper entry
 * again, and is told once, exactly. */
static void read_failure_holds_the_callback_until_the_path_is_read(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g), f3 = new_frame(g), other = new_frame(g);
    uint64_t pde3, va = self_mapped_pd(g, f1, &pde3);
    assert_int_equal(
        ptmon_fake_poke(g->fake, other + 4 * 8, &(uint64_t){f3 | RWU | PTMON_PTE_P}, 8), 0);
    struct ptmon_watch *w = watch_va(g, va);
    assert_int_equal(ptmon_watch_translation(w).frame, f1);
    /* PDE 3 -> other (its slot 4 maps f3); PDE 4, the old PTE, -> f2; the first read fails */
    uint64_t e[2] = {other | RWU | PTMON_PTE_P, f2 | RWU | PTMON_PTE_P};
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 1, PTMON_EIO);
    assert_int_equal(ptmon_fake_store(g->fake, 0, pde3, e, 16), 0);
    assert_true(ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_READ_GPA));
    assert_int_equal(g->ncalls, 1);
    assert_int_equal(g->calls[0].change.before.frame, f1);
    assert_int_equal(g->calls[0].change.after.frame, f3);
    assert_int_equal(g->calls[0].change.vcpu, PTMON_VCPU_NONE); /* the event's commit */
    assert_int_equal(ptmon_watch_translation(w).frame, f3);
    guest_free(g);
}

/* The same with PDE 3 rewritten unchanged: re-read, it has not moved, yet the watch waited on it
 * and must now be told the change of its PTE. (POST only: a PRE event reads the store's own
 * bytes.) */
static void entry_read_again_unchanged_still_releases_its_waiting_watch(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    uint64_t pde3, va = self_mapped_pd(g, f1, &pde3);
    struct ptmon_watch *w = watch_va(g, va);
    uint64_t e[2] = {get_entry(g, va, 2), f2 | RWU | PTMON_PTE_P};
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 1, PTMON_EIO);
    assert_int_equal(ptmon_fake_store(g->fake, 0, pde3, e, 16), 0);
    assert_true(ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_READ_GPA));
    assert_int_equal(g->ncalls, 1);
    assert_int_equal(g->calls[0].change.before.frame, f1);
    assert_int_equal(g->calls[0].change.after.frame, f2);
    assert_int_equal(ptmon_watch_translation(w).frame, f2);
    guest_free(g);
}

/* N3. A PRE write of unknown bytes whose emulate_write fails is left to the backend (ALLOW, an
 * error logged). Its watched entries are read again at the next commit and the watch told: it
 * used to miss the change for good. */
static void failed_emulate_of_unknown_bytes_is_read_at_the_next_commit(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    struct ptmon_watch *w = watch_va(g, VA);
    ptmon_fake_set_handler(g->fake, handler_without_pre_bytes, g->pm);
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_EMULATE_WRITE, 1, PTMON_EIO);
    assert_int_equal(
        ptmon_fake_store_int(g->fake, 0, entry_gpa(g, VA, 1), f2 | RWU | PTMON_PTE_P, 8), 0);
    assert_true(ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_EMULATE_WRITE));
    assert_int_equal(get_entry(g, VA, 1) & ~0xfffull, f2); /* the backend wrote it */
    assert_int_equal(g->ncalls, 0);                        /* ... after the event */
    assert_int_equal(ptmon_commit(g->pm), 0);
    assert_int_equal(ptmon_watch_translation(w).frame, f2);
    assert_int_equal(g->ncalls, 1);
    assert_int_equal(g->calls[0].change.after.frame, f2);
    guest_free(g);
}

/* N4. Backend without emulate_write: a read failure in a PRE event leaves the entry to be read
 * after the backend's write. The next PRE event's commit runs before that event's write lands:
 * it must not read the entries that write changes (it used to, putting the tree back to the old
 * value for good). Only the entries whose read failed are read again. */
static void pending_reread_does_not_undo_the_next_pre_write(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    ptmon_glue glue;
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    use_glue_without_emulate(g, &glue);
    struct ptmon_watch *w = watch_va(g, VA);
    uint64_t pte = entry_gpa(g, VA, 1);
    /* 1: a half-entry write (same bytes) whose read of the other half fails */
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 1, PTMON_EIO);
    assert_int_equal(ptmon_fake_store_int(g->fake, 0, pte + 4, 0, 4), 0);
    assert_true(ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_READ_GPA));
    /* 2: a remap, PRE with bytes, allowed and written by the backend */
    assert_int_equal(ptmon_fake_store_int(g->fake, 0, pte, f2 | RWU | PTMON_PTE_P, 8), 0);
    assert_int_equal(get_entry(g, VA, 1) & ~0xfffull, f2);
    assert_int_equal(ptmon_watch_translation(w).frame, f2);
    assert_int_equal(g->ncalls, 1);
    assert_int_equal(g->calls[0].change.vcpu, 0);
    guest_free(g);
}

/* A commit after a read failure reads the entries that failed, not every watched entry (the
 * whole tree used to be read again: with a guest that keeps an entry unreadable, every event). */
static void commit_reads_only_the_entries_whose_read_failed(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    for (unsigned i = 0; i < 64; i++) {
        map4k(g, VA + i * 0x1000ull, f1, RWU);
        watch_va(g, VA + i * 0x1000ull);
    }
    ptmon_fake_reset_calls(g->fake);
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 1, PTMON_EIO);
    /* its decode read fails; the event's commit reads it again */
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, VA, f2, 4 * KIB, RWU), 0);
    assert_true(ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_READ_GPA));
    assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_READ_GPA), 2);
    assert_int_equal(g->ncalls, 1);
    assert_int_equal(g->calls[0].change.after.frame, f2);
    guest_free(g);
}

/* The guest maps VA to @p frame while every guest read fails: VA's PTE is left unread. */
static void remap_while_unreadable(struct guest *g, uint64_t frame)
{
    ptmon_fake_fail_calls(g->fake, PTMON_FAKE_OP_READ_GPA, 1, UINT64_MAX, PTMON_EIO);
    assert_int_equal(
        ptmon_fake_store_int(g->fake, 0, entry_gpa(g, VA, 1), frame | RWU | PTMON_PTE_P, 8), 0);
    ptmon_fake_fail_calls(g->fake, PTMON_FAKE_OP_READ_GPA, 0, 0, 0);
}

/* While an entry stays unreadable, the watches through it keep their record, ptmon_check says
 * why, and every commit tries again; the first that reads it tells them. */
static void watch_waits_while_its_entry_stays_unreadable(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    ptmon_finding f[8];
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    struct ptmon_watch *w = watch_va(g, VA);
    ptmon_fake_fail_calls(g->fake, PTMON_FAKE_OP_READ_GPA, 1, UINT64_MAX, PTMON_EIO);
    assert_int_equal(
        ptmon_fake_store_int(g->fake, 0, entry_gpa(g, VA, 1), f2 | RWU | PTMON_PTE_P, 8), 0);
    assert_int_equal(ptmon_commit(g->pm), 0); /* still unreadable: nothing to tell */
    ptmon_fake_fail_calls(g->fake, PTMON_FAKE_OP_READ_GPA, 0, 0, 0);
    assert_int_equal(ptmon_watch_translation(w).frame, f1);
    assert_int_equal(g->ncalls, 0);
    int n = ptmon_check(g->pm, f, 8), unread_said = 0;
    assert_true(n >= 1);
    for (int i = 0; i < n && i < 8; i++)
        unread_said |= f[i].kind == PTMON_FINDING_UNREADABLE && strstr(f[i].text, "unread");
    assert_true(unread_said);
    assert_int_equal(ptmon_commit(g->pm), 0);
    assert_int_equal(ptmon_watch_translation(w).frame, f2);
    assert_int_equal(g->ncalls, 1);
    assert_int_equal(g->calls[0].change.vcpu, PTMON_VCPU_NONE);
    guest_free(g);
}

/* Found by the fuzzer after N1-N4: the commit closing a PRE event runs before the backend
 * performs the write it was allowed. A placement it retries must read through that write (it
 * read the old entry, and the tree stayed stale once the write landed). W's PDE moves to the
 * page table of X; reading W's entry there fails three times (at once, the retry before
 * delivery, the event's commit): W waits, incomplete. Then the guest writes that entry: not a
 * watched slot yet, so ALLOW, and the event's commit completes W's placement. */
static void placement_retried_at_commit_reads_the_pending_write(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g), f3 = new_frame(g), pt = g->mc->large;
    map4k(g, VA, f1, RWU);
    map4k(g, VA + pt + 0x1000, f2, RWU); /* X: slot 1 of the next PT */
    watch_va(g, VA + pt + 0x1000);
    struct ptmon_watch *w = watch_va(g, VA);
    ptmon_fake_fail_calls(g->fake, PTMON_FAKE_OP_READ_GPA, 1, 3, PTMON_EIO);
    /* W's PDE -> X's PT, whose slot 0 is empty */
    assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, VA, 2, get_entry(g, VA + pt, 2)), 0);
    assert_true(ptmon_fake_failure_fired(g->fake, PTMON_FAKE_OP_READ_GPA));
    ptmon_fake_fail_calls(g->fake, PTMON_FAKE_OP_READ_GPA, 0, 0, 0);
    assert_int_equal(ptmon_watch_translation(w).frame, f1); /* waits */
    uint64_t slot0 = get_entry(g, VA + pt, 2) & ~0xfffull;
    assert_int_equal(ptmon_fake_store_int(g->fake, 1, slot0, f3 | RWU | PTMON_PTE_P, esize(g)), 0);
    assert_consistent(g);
    assert_int_equal(ptmon_watch_translation(w).frame, f3);
    const struct call *c = call_for(g, VA);
    assert_non_null(c);
    assert_int_equal(c->change.before.frame, f1);
    assert_int_equal(c->change.after.frame, f3);
    guest_free(g);
}

/* N6. One 16-byte store changes the watch's PTE and, above it, its PDE (the PD maps itself at
 * index 3; the PTE of PT index 2 is then PDE 2, just below PDE 3). The change is reported as
 * caused by the PDE: the highest changed entry decides the way, the PTE lies on the old one. */
static void change_of_upper_and_lower_entry_reports_the_upper_level(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g), f3 = new_frame(g), other = new_frame(g);
    uint64_t va = (3ull << 21) | (2ull << 12);
    map4k(g, va, f1, RWU);
    uint64_t pde3 = entry_gpa(g, va, 2), pd = pde3 & ~0xfffull;
    set_entry(g, va, 2, pd | RWU | PTMON_PTE_P);
    assert_int_equal(ptmon_fake_poke(g->fake, pd + 2 * 8, &(uint64_t){f1 | RWU | PTMON_PTE_P}, 8),
                     0);
    assert_int_equal(
        ptmon_fake_poke(g->fake, other + 2 * 8, &(uint64_t){f3 | RWU | PTMON_PTE_P}, 8), 0);
    watch_va(g, va);
    uint64_t e[2] = {f2 | RWU | PTMON_PTE_P, other | RWU | PTMON_PTE_P}; /* PDE 2, PDE 3 */
    assert_int_equal(ptmon_fake_store(g->fake, 0, pde3 - 8, e, 16), 0);
    assert_int_equal(g->ncalls, 1);
    assert_int_equal(g->calls[0].change.after.frame, f3);
    assert_int_equal(g->calls[0].change.level, 2);
    guest_free(g);
}

/* POST deny of a write to an entry whose earlier read failed: memory already holds the write, so
 * what the entry held before it is unknown. It is left as written (logged), the deny is not
 * counted, and the watch keeps the translation that stands. */
static void post_deny_leaves_an_entry_of_unknown_old_value_as_written(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    ptmon_stats st;
    uint64_t f1 = new_frame(g), f2 = new_frame(g), f3 = new_frame(g);
    map4k(g, VA, f1, RWU);
    struct ptmon_watch *w = watch_va(g, VA);
    uint64_t pte = entry_gpa(g, VA, 1);
    remap_while_unreadable(g, f2);
    g->deny_va_set = 1;
    g->deny_va = VA;
    assert_int_equal(ptmon_fake_store_int(g->fake, 0, pte, f3 | RWU | PTMON_PTE_P, 8), 0);
    g->deny_va_set = 0;
    assert_non_null(strstr(ptmon_fake_last_log(g->fake), "left as written"));
    assert_int_equal(get_entry(g, VA, 1) & ~0xfffull, f3);
    assert_int_equal(ptmon_watch_translation(w).frame, f3);
    assert_int_equal(g->ncalls, 1);
    assert_int_equal(g->calls[0].change.before.frame, f1);
    assert_int_equal(g->calls[0].change.after.frame, f3);
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_int_equal(st.events_denied, 0);
    guest_free(g);
}

/* A change delayed by a read failure is told before the next write into its table, as what it is:
 * an older change (no vCPU) that cannot be vetoed. It used to be told inside that write's
 * deniable pass, with its vCPU: a deny then refused a write that changed nothing and could not
 * undo the older change. */
static void delayed_change_is_told_before_the_next_write_without_veto(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    ptmon_stats st;
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    struct ptmon_watch *w = watch_va(g, VA);
    ptmon_fake_set_delivery(g->fake, PTMON_DELIVERY_POST);
    remap_while_unreadable(g, f2);
    ptmon_fake_set_delivery(g->fake, PTMON_DELIVERY_PRE);
    assert_int_equal(g->ncalls, 0);
    g->deny_va_set = 1;
    g->deny_va = VA;
    assert_int_equal(
        ptmon_fake_store_int(g->fake, 1, entry_gpa(g, VA, 1), f2 | RWU | PTMON_PTE_P, 8), 0);
    g->deny_va_set = 0;
    assert_int_equal(g->ncalls, 1);
    assert_int_equal(g->calls[0].change.before.frame, f1);
    assert_int_equal(g->calls[0].change.after.frame, f2);
    assert_int_equal(g->calls[0].change.vcpu, PTMON_VCPU_NONE);
    assert_int_equal(ptmon_watch_translation(w).frame, f2);
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    assert_int_equal(st.events_denied, 0);
    guest_free(g);
}

/* A watch placed after an entry on its path could not be read starts from memory, not from the
 * stale cached value, and is told nothing of a change that happened before it existed (the
 * older watch is told it). */
static void watch_placed_after_a_read_failure_starts_from_memory(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    struct ptmon_watch *old = watch_va(g, VA);
    remap_while_unreadable(g, f2);
    struct ptmon_watch *w = NULL;
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, 0, recorder, g, &w), 0);
    assert_int_equal(ptmon_watch_translation(w).frame, f2);
    assert_int_equal(ptmon_commit(g->pm), 0);
    assert_int_equal(g->ncalls, 1);
    assert_ptr_equal(g->calls[0].watch, old);
    assert_int_equal(g->calls[0].change.after.frame, f2);
    guest_free(g);
}

/* ptmon_destroy gives every frame its rights back and frees everything, without reading guest
 * memory or calling a callback (as ptmon.h promises), even with a watch waiting for an entry that
 * could not be read. */
static void destroy_reads_nothing_and_calls_no_callback(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    watch_va(g, VA);
    remap_while_unreadable(g, f2);
    assert_int_equal(g->ncalls, 0); /* waits for the entry */
    ptmon_fake_reset_calls(g->fake);
    ptmon_destroy(g->pm);
    assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_READ_GPA), 0);
    assert_int_equal(g->ncalls, 0);
    assert_int_equal(ptmon_fake_count_write_protected(g->fake), 0);
    assert_int_equal(ptmon_fake_stat(g->fake, PTMON_FAKE_STAT_BYTES_ALLOCATED), 0);
    ptmon_fake_destroy(g->fake);
    free(g);
}

/* A callback of the catch-up before a write (an entry a failed read left unknown) removes a
 * watch; a callback of the write itself removes it again. The handle stays valid until the
 * event's end, so the second removal is PTMON_EINVAL (it used to be freed by the catch-up:
 * use-after-free, found by the fuzzer's failure bursts under ASan). */
static struct ptmon_watch *catch_up_victim, *catch_up_copy;
static int catch_up_second_rc;
static void catch_up_remover(struct guest *g, struct ptmon_watch *w, const ptmon_change *c)
{
    (void)g;
    (void)w;
    if (c->vcpu == PTMON_VCPU_NONE)
        assert_int_equal(ptmon_unwatch(&catch_up_victim), 0);
    else /* a copy of the handle, still allocated until the event's end */
        catch_up_second_rc = ptmon_unwatch(&catch_up_copy);
}

static void watch_removed_by_a_catch_up_callback_stays_valid_for_the_event(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g), f3 = new_frame(g);
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f1, RWU);
    map4k(g, VA + 0x2000, f1, RWU);
    watch_va(g, VA);
    catch_up_victim = catch_up_copy = watch_va(g, VA + 0x1000);
    watch_va(g, VA + 0x2000);
    remap_while_unreadable(g, f2); /* VA's entry: unread (POST: the failed read is decode's) */
    ptmon_fake_set_delivery(g->fake, PTMON_DELIVERY_PRE); /* the catch-up comes before PRE writes */
    catch_up_second_rc = 1;
    g->hook = catch_up_remover;
    map4k(g, VA + 0x2000, f3, RWU); /* the catch-up tells VA, then this write tells VA + 8K */
    g->hook = NULL;
    assert_int_equal(catch_up_second_rc, PTMON_EINVAL);
    assert_int_equal(g->ncalls, 2);
    assert_int_equal(g->calls[0].change.vcpu, PTMON_VCPU_NONE);
    assert_int_equal(g->calls[1].change.va, VA + 0x2000);
    guest_free(g);
}

/* ---- placement shortcut: a watch next to the previous one reuses its upper nodes ------------ */

/* The previous watch's page table moved (its PDE was remapped) and another address space holds
 * the same VA: each new watch must still end on what a walk from its own root finds. */
static void consecutive_watches_follow_moves_and_address_spaces(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g), f3 = new_frame(g), pt = g->mc->large;
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f1, RWU);
    map4k(g, VA + pt + 0x1000, f2, RWU); /* the next PT: slot 1 -> f2 */
    struct ptmon_watch *a = watch_va(g, VA);
    set_entry(g, VA, 2, get_entry(g, VA + pt, 2)); /* a's PDE now -> that other PT */
    struct ptmon_watch *b = watch_va(g, VA + 0x1000);
    assert_int_equal(ptmon_watch_translation(b).frame, f2);
    uint64_t cr3b = 0;
    assert_int_equal(ptmon_fake_new_root(g->fake, &cr3b), 0);
    assert_int_equal(ptmon_fake_map(g->fake, cr3b, VA + 0x2000, f3, 4 * KIB, RWU), 0);
    struct ptmon_watch *c;
    assert_int_equal(ptmon_watch(g->pm, cr3b, VA + 0x2000, 0, recorder, g, &c), 0);
    assert_int_equal(ptmon_watch_translation(c).frame, f3);
    assert_int_equal(ptmon_unwatch(&c), 0);
    struct ptmon_watch *d = watch_va(g, VA + 0x2000); /* after c is gone: from the root */
    assert_int_equal(ptmon_watch_translation(d).status, PTMON_WALK_NOT_PRESENT);
    (void)a;
    assert_consistent(g);
    guest_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ON(pat_bit_of_large_page_is_silent, pre4),
        ON(pat_bit_of_large_page_is_silent, pre32),
        ON(pat_bit_of_large_page_is_silent, prepae),
        ON(watch_added_in_callback_then_deny_keeps_old_state, pre4),
        ON(post_deny_partial_undo_failure_tree_follows_memory, post4),
        ON(post_deny_with_failed_undo_still_tells_everyone, post4),
        ON(aliased_tables_cost_linear_visits_per_upper_write, pre4),
        ON(watch_complete_again_after_failed_placement_is_told_and_may_deny, pre4),
        ON(resync_corrects_stale_node_behind_fresh_one, post4),
        ON(stats_bytes_count_everything, pre4),
        ON(mark_wraparound_skips_watch, pre4),
        ON(epoch_wraparound_skips_watch, pre4),
        ON(read_failure_on_the_deny_path, pre4),
        ON(post_deny_restores_entry_whose_read_failed, post4),
        ON(post_deny_tells_entry_whose_read_and_undo_failed_what_stands, post4),
        ON(pre_partial_store_with_failed_read_is_resynced_in_the_event, pre4),
        ON(consecutive_watches_follow_moves_and_address_spaces, pre4),
        ON(consecutive_watches_follow_moves_and_address_spaces, pre32),
        ON(consecutive_watches_follow_moves_and_address_spaces, prepae),
        ON(commit_inside_hook_callback, pre4),
        ON(commit_inside_callback, pre4),
        ON(denied_pre_write_without_bytes_leaves_the_whole_range_unwritten, pre4),
        ON(denied_pre_write_without_bytes_leaves_the_whole_range_unwritten, pre32),
        ON(read_failure_holds_the_callback_until_the_path_is_read, post4),
        ON(entry_read_again_unchanged_still_releases_its_waiting_watch, post4),
        ON(failed_emulate_of_unknown_bytes_is_read_at_the_next_commit, pre4),
        ON(pending_reread_does_not_undo_the_next_pre_write, pre4),
        ON(commit_reads_only_the_entries_whose_read_failed, post4),
        ON(watch_waits_while_its_entry_stays_unreadable, post4),
        ON(destroy_reads_nothing_and_calls_no_callback, post4),
        ON(post_deny_leaves_an_entry_of_unknown_old_value_as_written, post4),
        ON(delayed_change_is_told_before_the_next_write_without_veto, pre4),
        ON(watch_placed_after_a_read_failure_starts_from_memory, post4),
        ON(watch_removed_by_a_catch_up_callback_stays_valid_for_the_event, post4),
        ON(change_of_upper_and_lower_entry_reports_the_upper_level, pre4),
        ON(change_of_upper_and_lower_entry_reports_the_upper_level, post4),
        ON(placement_retried_at_commit_reads_the_pending_write, pre4),
        ON(placement_retried_at_commit_reads_the_pending_write, pre32),
        ON(placement_retried_at_commit_reads_the_pending_write, prepae),
    };
    if (getenv("T"))
        cmocka_set_test_filter(getenv("T"));
    return cmocka_run_group_tests_name("regressions", tests, NULL, NULL);
}
