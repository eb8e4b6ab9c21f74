/*
 * findings.c — minimal cmocka repros of the engine divergences the differential fuzzer found
 * (N1..N4; see the FZ_FIX_N* flags in fuzz.h). Each test FAILS while its bug stands; it is built
 * (ptmon_fuzz_findings) but not registered with ctest. Once a bug is fixed, move its test to
 * tests/test_regress.c and run the fuzzer with FZ_FIXED=...,N<k>.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include "engine_fixture.h"

#define VA 0x400000ull

/* A backend that does not know the bytes of a PRE write (ptmon must have it performed through
 * emulate_write). */
static int nobytes_handler(void *ctx, const ptmon_mem_event *ev)
{
    ptmon_mem_event e = *ev;
    if (e.delivery == PTMON_DELIVERY_PRE)
        e.bytes = NULL;
    return ptmon_handle_event(ctx, &e);
}

/* N1 (ptmon_fuzz --mode 32 --seed 1 --steps 149 --run-steps 149 --fixed N1): a PRE write whose
 * bytes the backend does not give is denied; ptmon had it performed first and puts back only the
 * watched entries, so the unwatched entries of the same store stay written although the write was
 * vetoed (SPEC §4 Deny: "with pre-write delivery the write is then not performed"). The old bytes
 * of the whole range are readable before emulate_write: they could be restored. */
static void n1_denied_pre_write_without_bytes_is_partly_performed(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    map4k(g, VA + 0x1000, f1, RWU);
    watch_va(g, VA); /* VA + 0x1000's PTE is in the same table, unwatched */
    ptmon_fake_set_handler(g->fake, nobytes_handler, g->pm);
    g->deny_va_set = 1;
    g->deny_va = VA;
    uint64_t pte = entry_gpa(g, VA, 1), before = get_entry(g, VA + 0x1000, 1);
    uint64_t e[2] = {f2 | RWU | PTMON_PTE_P, f2 | RWU | PTMON_PTE_P};
    (void)ptmon_fake_store(g->fake, 0, pte, e, 16);
    assert_int_equal(get_entry(g, VA, 1), f1 | RWU | PTMON_PTE_P); /* the watched one: back */
    assert_int_equal(get_entry(g, VA + 0x1000, 1), before);        /* FAILS: f2 stays */
    g->deny_va_set = 0;
    guest_free(g);
}

/* N2 (ptmon_fuzz --mode 32 --faults read_gpa --run-steps 150 --runs 1 --seed 3 --nth 44
 * --fixed N2): in a POST event, the read of a changed upper entry fails while the read of a
 * changed entry below it succeeds; the callback's `after` combines the new lower entry with the
 * stale upper one: a translation that never existed (ENGINE.md: "the after is always exact").
 * The commit then reports a second change. Expected: no callback until the path is known (or
 * an exact one). Here the PD is its own page table (PDE i -> the PD frame), and one 16-byte
 * store changes PDE i (to another table) and PTE i+1 (= the watched PTE under the old PDE). */
static void n2_read_failure_gives_inexact_after(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t va = (3ull << 21) | (4ull << 12); /* PD index 3, PT index 4 */
    uint64_t f1 = new_frame(g), f2 = new_frame(g), f3 = new_frame(g), other = new_frame(g);
    map4k(g, va, f1, RWU); /* builds PML4E, PDPTE, PDE 3 -> PT */
    uint64_t pde = entry_gpa(g, va, 2), pd = pde & ~0xfffull;
    /* PDE 3 -> the PD itself; its PTE 4 is PDE 4 (set to map f1) */
    set_entry(g, va, 2, pd | RWU | PTMON_PTE_P);
    assert_int_equal(ptmon_fake_poke(g->fake, pd + 4 * 8, &(uint64_t){f1 | RWU | PTMON_PTE_P}, 8),
                     0);
    /* the other table maps f3 at index 4 */
    assert_int_equal(
        ptmon_fake_poke(g->fake, other + 4 * 8, &(uint64_t){f3 | RWU | PTMON_PTE_P}, 8), 0);
    struct ptmon_watch *w = watch_va(g, va);
    assert_int_equal(ptmon_watch_translation(w).frame, f1);
    /* PDE 3 -> other; PDE 4 (the old PTE) -> f2; the first read of the event fails */
    uint64_t e[2] = {other | RWU | PTMON_PTE_P, f2 | RWU | PTMON_PTE_P};
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 1, PTMON_EIO);
    assert_int_equal(ptmon_fake_store(g->fake, 0, pde, e, 16), 0);
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 0, 0);
    for (size_t i = 0; i < g->ncalls; i++) /* FAILS: a callback says f2 (never the translation) */
        assert_int_not_equal(g->calls[i].change.after.frame, f2);
    assert_int_equal(ptmon_watch_translation(w).frame, f3);
    guest_free(g);
}

/* N3 (ptmon_fuzz --mode 32 --faults emulate_write --run-steps 150 --runs 1 --seed 1 --nth 4
 * --fixed N3): a PRE write whose bytes the backend does not give; ptmon's emulate_write fails;
 * ptmon logs and answers ALLOW, so the backend performs the write, but ptmon neither updated its
 * tree nor scheduled a re-read: the watch is never told (missed callback) and ptmon_check
 * reports a stale record and cache even after a commit. */
static void n3_failed_emulate_without_bytes_leaves_tree_stale(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    struct ptmon_watch *w = watch_va(g, VA);
    ptmon_fake_set_handler(g->fake, nobytes_handler, g->pm);
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_EMULATE_WRITE, 1, PTMON_EIO);
    assert_int_equal(
        ptmon_fake_store_int(g->fake, 0, entry_gpa(g, VA, 1), f2 | RWU | PTMON_PTE_P, 8), 0);
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_EMULATE_WRITE, 0, 0);
    assert_int_equal(get_entry(g, VA, 1) & ~0xfffull, f2); /* the write happened */
    (void)ptmon_commit(g->pm);
    assert_int_equal(ptmon_watch_translation(w).frame, f2); /* FAILS: still f1 */
    assert_int_equal(g->ncalls, 1);
    guest_free(g);
}

/* Re-create g->pm on a copy of the fake's glue without emulate_write (a backend that cannot
 * perform writes: ptmon leaves every allowed PRE write to it). */
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

/* N4 (ptmon_fuzz --mode 4 --faults read_gpa --run-steps 200 --runs 1 --seed 903 --nth 23
 * --fixed all): backend without emulate_write. A read failure during a PRE event leaves a
 * resync pending ("stays stale until the next commit"). The next PRE event updates the tree
 * with its pending bytes, then its closing commit runs the resync BEFORE the backend performs
 * the write: it re-reads the old value, puts the tree back to it, and clears the resync. The
 * write then lands: tree and record stale for good (ptmon_check: stale record and cache), and
 * the watch was told f1 -> f2 and then (vcpu NONE) f2 -> f1 while memory says f2. */
static void n4_resync_before_backend_write_undoes_the_event(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    ptmon_glue glue;
    uint64_t f1 = new_frame(g), f2 = new_frame(g);
    map4k(g, VA, f1, RWU);
    use_glue_without_emulate(g, &glue);
    struct ptmon_watch *w = watch_va(g, VA);
    uint64_t pte = entry_gpa(g, VA, 1);
    /* 1: a half-entry write (same bytes) whose read of the rest fails: resync pending */
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 1, PTMON_EIO);
    assert_int_equal(ptmon_fake_store_int(g->fake, 0, pte + 4, 0, 4), 0);
    ptmon_fake_fail_nth(g->fake, PTMON_FAKE_OP_READ_GPA, 0, 0);
    /* 2: a real remap, PRE with bytes, allowed */
    assert_int_equal(ptmon_fake_store_int(g->fake, 0, pte, f2 | RWU | PTMON_PTE_P, 8), 0);
    assert_int_equal(get_entry(g, VA, 1) & ~0xfffull, f2);
    assert_int_equal(ptmon_watch_translation(w).frame, f2); /* FAILS: f1 */
    assert_consistent(g);
    guest_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ON(n1_denied_pre_write_without_bytes_is_partly_performed, pre4),
        ON(n2_read_failure_gives_inexact_after, post4),
        ON(n3_failed_emulate_without_bytes_leaves_tree_stale, pre4),
        ON(n4_resync_before_backend_write_undoes_the_event, pre4),
    };
    return cmocka_run_group_tests_name("fuzzer findings", tests, NULL, NULL);
}
