/*
 * test_faults.c — fault injection: one scenario (placements, leaf and upper-level changes,
 * split, merge, removals) run again and again with the Nth call of one glue operation failing,
 * for every N until the failure no longer fires. After every step, once the failure is spent
 * and a commit has run, ptmon_check must find nothing; at the end every frame's rights are back
 * and nothing allocated through the glue is left. Errors must be reported (a negative return or
 * a log line), never swallowed.
 */
#include "engine_fixture.h"

#define VA     0x400000ull
#define NWATCH 6

/* Arms the failure for one step at a time, so that ptmon_check's own glue calls between steps
 * neither consume nor trigger it. */
struct injector {
    enum ptmon_fake_op op;
    uint64_t remaining; /* calls to let through before the failing one; 0: spent */
    int fired;
    uint64_t before;
};

static void arm(struct guest *g, struct injector *in)
{
    in->before = ptmon_fake_calls(g->fake, in->op);
    if (!in->fired)
        ptmon_fake_fail_nth(g->fake, in->op, in->remaining, PTMON_EIO);
}

/* After a step: disarm, account, then commit (retries what the failure left undone) and check.
 * Glue calls made by the commit must not fail either: it runs disarmed. */
static void settle(struct guest *g, struct injector *in)
{
    if (!in->fired) {
        if (ptmon_fake_failure_fired(g->fake, in->op))
            in->fired = 1;
        else
            in->remaining -= ptmon_fake_calls(g->fake, in->op) - in->before;
        ptmon_fake_fail_nth(g->fake, in->op, 0, 0);
    }
    (void)ptmon_commit(g->pm);
    assert_consistent(g);
}

/* A guest step whose store may have been denied by nothing: it must succeed, whatever ptmon's
 * troubles (the guest never sees ptmon's errors). */
static void guest_step(struct guest *g, int rc)
{
    (void)g;
    assert_int_equal(rc, 0);
}

static void run_scenario(struct guest *g, struct injector *in)
{
    const struct mode_case *mc = g->mc;
    struct ptmon_watch *w[NWATCH] = {0};
    uint64_t f1 = new_frame(g), f2 = new_frame(g), pde;

    for (unsigned i = 0; i < 4; i++)
        guest_step(g, ptmon_fake_map(g->fake, g->cr3, VA + i * 0x1000, f1, 4 * KIB, RWU));
    guest_step(g, ptmon_fake_map(g->fake, g->cr3, 0x800000, 16 * MIB, mc->large, RWU));

    /* placements: each may fail, and then leaves nothing behind */
    for (unsigned i = 0; i < NWATCH; i++) {
        uint64_t va = i < 4 ? VA + i * 0x1000 : 0x800000 + (i - 4) * 0x3000;
        arm(g, in);
        int rc = ptmon_watch(g->pm, g->cr3, va, 0, recorder, g, &w[i]);
        if (rc < 0) {
            assert_true(rc == PTMON_EIO || rc == PTMON_ENOMEM);
            assert_null(w[i]);
        }
        settle(g, in);
    }
    /* leaf remap, swap out, upper-level unmap and back, split, merge */
    arm(g, in);
    guest_step(g, ptmon_fake_map(g->fake, g->cr3, VA, f2, 4 * KIB, RWU));
    settle(g, in);
    arm(g, in);
    guest_step(g, ptmon_fake_set_entry(g->fake, g->cr3, VA + 0x1000, 1, 0x5000));
    settle(g, in);
    assert_int_equal(ptmon_fake_get_entry(g->fake, g->cr3, VA, 2, &pde), 0);
    arm(g, in);
    guest_step(g, ptmon_fake_set_entry(g->fake, g->cr3, VA, 2, 0));
    settle(g, in);
    arm(g, in);
    guest_step(g, ptmon_fake_set_entry(g->fake, g->cr3, VA, 2, pde));
    settle(g, in);
    arm(g, in);
    guest_step(g, ptmon_fake_split(g->fake, g->cr3, 0x800000, 0, NULL));
    settle(g, in);
    arm(g, in);
    guest_step(g, ptmon_fake_merge(g->fake, g->cr3, 0x800000, 2));
    settle(g, in);
    /* removals */
    for (unsigned i = 0; i < NWATCH; i += 2) {
        if (!w[i])
            continue;
        arm(g, in);
        int rc = ptmon_unwatch(&w[i]);
        assert_true(rc == 0 || rc == PTMON_EIO); /* removed either way; a relax may be retried */
        settle(g, in);
    }
}

/* Every watch that survived must have ended with the right translation: the last callback it
 * got (or its placement state) equals memory — which ptmon_check already compared; here the
 * callbacks' consistency: each change's before is the previous change's after. */
static void assert_callback_chains(struct guest *g)
{
    for (size_t i = 0; i < g->ncalls; i++)
        for (size_t j = i + 1; j < g->ncalls; j++)
            if (g->calls[j].watch == g->calls[i].watch) {
                const ptmon_translation *a = &g->calls[i].change.after;
                const ptmon_translation *b = &g->calls[j].change.before;
                assert_int_equal(a->status, b->status);
                assert_int_equal(a->frame, b->frame);
                assert_int_equal(a->level, b->level);
                break;
            }
}

static void every_failure_of(void **state, enum ptmon_fake_op op)
{
    const struct mode_case *mc = *state;
    unsigned fired_runs = 0;

    for (uint64_t nth = 1; nth < 10000; nth++) {
        struct guest *g = guest_new(mc, 64 * MIB);
        struct injector in = {op, nth, 0, 0};
        run_scenario(g, &in);
        assert_callback_chains(g);
        guest_free(g); /* rights restored, nothing leaked */
        if (!in.fired)
            break;
        fired_runs++;
    }
    print_message("    %s: %u runs with an injected failure\n", ptmon_fake_op_name(op), fired_runs);
    assert_true(fired_runs > 0);
}

static void failing_allocations(void **state)
{
    every_failure_of(state, PTMON_FAKE_OP_ALLOC);
}

static void failing_reads(void **state)
{
    every_failure_of(state, PTMON_FAKE_OP_READ_GPA);
}

static void failing_get_access(void **state)
{
    every_failure_of(state, PTMON_FAKE_OP_GET_ACCESS);
}

static void failing_set_access(void **state)
{
    every_failure_of(state, PTMON_FAKE_OP_SET_ACCESS);
}

static void failing_flush(void **state)
{
    every_failure_of(state, PTMON_FAKE_OP_FLUSH);
}

static void failing_emulate_write(void **state)
{
    const struct mode_case *mc = *state;
    if (mc->delivery == PTMON_DELIVERY_POST) {
        /* POST never asks the backend to write unless a callback denies */
        every_failure_of(state, PTMON_FAKE_OP_ALLOC);
        return;
    }
    every_failure_of(state, PTMON_FAKE_OP_EMULATE_WRITE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ON(failing_allocations, pre4),     ON(failing_allocations, post4),
        ON(failing_allocations, prepae),   ON(failing_reads, pre4),
        ON(failing_reads, post4),          ON(failing_reads, prepae),
        ON(failing_get_access, pre4),      ON(failing_get_access, post4),
        ON(failing_set_access, pre4),      ON(failing_set_access, post4),
        ON(failing_set_access, prepae),    ON(failing_emulate_write, pre4),
        ON(failing_emulate_write, prepae), ON(failing_flush, pre4),
    };
    return cmocka_run_group_tests_name("faults", tests, NULL, NULL);
}
