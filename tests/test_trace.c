/*
 * test_trace.c — recording a trace (ptmon_config.trace) and replaying it (ptmon_fake_replay):
 * a replay makes the same callbacks with the same changes, reproduces denies, read failures and
 * A/D bits set behind ptmon's back, notices a tampered trace, and survives malformed ones.
 */
#include "engine_fixture.h"

#include <ptmon/trace.h>

struct sink {
    uint8_t *p;
    size_t n, cap;
    int writes, fail_at; /* fail_at > 0: the fail_at-th write fails */
};

static int sink_write(void *ctx, const void *data, size_t len)
{
    struct sink *s = ctx;
    if (s->fail_at && ++s->writes >= s->fail_at)
        return -1;
    if (s->n + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->n + len)
            cap *= 2;
        s->p = realloc(s->p, cap);
        assert_non_null(s->p);
        s->cap = cap;
    }
    memcpy(s->p + s->n, data, len);
    s->n += len;
    return 0;
}

/* A fixture guest whose instance records into @p s. */
static struct guest *recorded_guest(const struct mode_case *mc, struct sink *s)
{
    struct guest *g = guest_new(mc, 64 * MIB);
    ptmon_config pc = PTMON_CONFIG_INIT;
    ptmon_trace_sink ts = {PTMON_TRACE_SINK_VERSION, sink_write, s, "test_trace"};

    ptmon_destroy(g->pm);
    pc.paging = ptmon_fake_get_config(g->fake)->paging;
    pc.trace = &ts;
    assert_int_equal(ptmon_create(ptmon_fake_glue(g->fake), &pc, &g->pm), 0);
    ptmon_fake_set_handler(g->fake, fixture_handler, g->pm);
    return g;
}

/* Callbacks as the replay makes them. */
struct seen {
    ptmon_change changes[MAX_CALLS];
    int actions[MAX_CALLS];
    size_t n;
};

static void seen_change(void *ctx, const ptmon_change *c, int action, uint64_t time_ns)
{
    struct seen *s = ctx;
    (void)time_ns;
    assert_true(s->n < MAX_CALLS);
    s->changes[s->n] = *c;
    s->actions[s->n++] = action;
}

static void assert_same_changes(const struct guest *g, const struct seen *s)
{
    assert_int_equal(s->n, g->ncalls);
    for (size_t i = 0; i < s->n; i++)
        assert_memory_equal(&s->changes[i], &g->calls[i].change, sizeof(ptmon_change));
}

static void replay_ok(const struct sink *s, struct seen *seen, ptmon_fake_replay_result *res);

static void guest_done(struct guest *g)
{
    ptmon_destroy(g->pm);
    ptmon_fake_destroy(g->fake);
    free(g);
}

/* End the recording (ptmon_destroy writes its END), replay it, require the run's callbacks. */
static struct seen *stop_and_replay(struct guest *g, const struct sink *s,
                                    ptmon_fake_replay_result *res)
{
    struct seen *seen = calloc(1, sizeof(*seen));
    assert_non_null(seen);
    ptmon_destroy(g->pm);
    g->pm = NULL;
    replay_ok(s, seen, res);
    assert_same_changes(g, seen);
    return seen;
}

static void finish(struct guest *g, struct sink *s, struct seen *seen)
{
    guest_done(g);
    free(seen);
    free(s->p);
}

static void replay_ok(const struct sink *s, struct seen *seen, ptmon_fake_replay_result *res)
{
    ptmon_fake_replay_observer obs = {seen_change, NULL, seen};
    int rc = ptmon_fake_replay(s->p, s->n, &obs, res);
    if (res->divergences)
        print_error("first divergence: %s\n", res->first_divergence);
    assert_int_equal(rc, 0);
    assert_int_equal(res->divergences, 0);
    assert_int_equal(res->complete, 1);
    assert_int_equal(res->callbacks, res->callbacks_recorded);
}

/* Watches on 4 KiB pages and in a large page, then: a remap, a rights change, an unmap, a
 * refault, the large page split and merged, a page table moved, an unwatch. */
static void session(struct guest *g)
{
    const uint64_t va = 0x400000, big = g->mc->large * 4;
    struct ptmon_watch *w[6];

    for (int i = 0; i < 4; i++)
        map4k(g, va + (uint64_t)i * 4 * KIB, new_frame(g), RWU);
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, big, 8 * MIB, g->mc->large, RWU), 0);
    for (int i = 0; i < 4; i++)
        w[i] = watch_va(g, va + (uint64_t)i * 4 * KIB);
    w[4] = watch_va(g, big);
    w[5] = watch_va(g, big + 16 * KIB);
    map4k(g, va, new_frame(g), RWU); /* remap */
    map4k(g, va + 4 * KIB, get_entry(g, va + 4 * KIB, 1) & 0xfffff000ull,
          PTMON_PTE_US); /* rights */
    assert_int_equal(ptmon_fake_unmap(g->fake, g->cr3, va + 8 * KIB), 0);
    assert_consistent(g);
    map4k(g, va + 8 * KIB, new_frame(g), RWU); /* refault */
    assert_int_equal(ptmon_fake_split(g->fake, g->cr3, big, 0, NULL), 0);
    assert_consistent(g);
    assert_int_equal(ptmon_fake_merge(g->fake, g->cr3, big, 2), 0);
    assert_consistent(g);
    /* a new page table for the 4 KiB pages: the PDE moves */
    {
        uint64_t pt = new_frame(g), old = entry_gpa(g, va, 1) & ~0xfffull;
        uint8_t copy[4096];
        assert_int_equal(ptmon_fake_peek(g->fake, old, copy, sizeof(copy)), 0);
        assert_int_equal(ptmon_fake_poke(g->fake, pt, copy, sizeof(copy)), 0);
        assert_int_equal(ptmon_fake_link(g->fake, g->cr3, va, 2, pt, RWU), 0);
        assert_consistent(g);
    }
    assert_int_equal(ptmon_unwatch(&w[3]), 0);
    assert_int_equal(ptmon_commit(g->pm), 0);
    assert_consistent(g);
}

static void replay_of_a_session_makes_the_same_callbacks(void **state)
{
    struct sink s = {0};
    struct guest *g = recorded_guest(*state, &s);
    ptmon_fake_replay_result res;
    struct seen *seen;

    session(g);
    assert_true(g->ncalls >= 8);
    seen = stop_and_replay(g, &s, &res);
    assert_true(res.facts > 0);
    finish(g, &s, seen);
}

static void replay_answers_as_the_recording_did_and_the_deny_holds(void **state)
{
    struct sink s = {0};
    struct guest *g = recorded_guest(*state, &s);
    ptmon_fake_replay_result res;
    const uint64_t va = 0x400000;
    struct seen *seen;
    uint64_t pte;
    size_t denied = 0;

    map4k(g, va, new_frame(g), RWU);
    watch_va(g, va);
    pte = get_entry(g, va, 1);
    g->deny_va_set = 1;
    g->deny_va = va;
    assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, va, 1, pte & ~PTMON_PTE_RW),
                     g->mc->delivery == PTMON_DELIVERY_PRE ? PTMON_EDENIED : 0);
    assert_int_equal(get_entry(g, va, 1), pte); /* the deny held */
    assert_consistent(g);
    seen = stop_and_replay(g, &s, &res);
    for (size_t i = 0; i < seen->n; i++)
        denied += seen->actions[i] == PTMON_ACTION_DENY;
    assert_int_equal(denied, 1);
    finish(g, &s, seen);
}

/* Reads fail while a page table moves: the watches below it wait, then catch up; the replay
 * fails the same reads and makes the same late callbacks. */
static void replay_fails_the_reads_that_failed(void **state)
{
    struct sink s = {0};
    struct guest *g = recorded_guest(*state, &s);
    ptmon_fake_replay_result res;
    const uint64_t va = 0x400000;
    const unsigned es = esize(g);
    struct seen *seen;
    uint64_t pt;

    for (int i = 0; i < 3; i++) {
        map4k(g, va + (uint64_t)i * 4 * KIB, new_frame(g), RWU);
        watch_va(g, va + (uint64_t)i * 4 * KIB);
    }
    pt = new_frame(g);
    {
        uint8_t copy[4096];
        assert_int_equal(ptmon_fake_peek(g->fake, entry_gpa(g, va, 1) & ~0xfffull, copy, 4096), 0);
        copy[es + 1] ^= 0x10;         /* bit 12: another frame for the second page */
        memset(copy + 2 * es, 0, es); /* and the third unmapped */
        assert_int_equal(ptmon_fake_poke(g->fake, pt, copy, sizeof(copy)), 0);
    }
    ptmon_fake_fail_calls(g->fake, PTMON_FAKE_OP_READ_GPA, 1, 3, PTMON_EIO);
    assert_int_equal(ptmon_fake_link(g->fake, g->cr3, va, 2, pt, RWU), 0);
    ptmon_fake_fail_calls(g->fake, PTMON_FAKE_OP_READ_GPA, 0, 0, 0);
    assert_int_equal(ptmon_commit(g->pm), 0);
    assert_consistent(g);
    assert_true(g->ncalls >= 2);
    seen = stop_and_replay(g, &s, &res);
    assert_true(res.failures > 0);
    finish(g, &s, seen);
}

/* The CPU's walker sets A and D without an event; a one-byte store into the entry later makes
 * ptmon read the rest of it from memory, A/D bits included: the trace carries those bytes as a
 * fact, so the replay's callback shows the same entry. */
static void bits_the_cpu_set_behind_ptmon_reach_the_replay(void **state)
{
    struct sink s = {0};
    struct guest *g = recorded_guest(*state, &s);
    ptmon_fake_replay_result res;
    const uint64_t va = 0x400000;
    uint64_t gpa, pte_gpa;
    uint8_t byte1;

    map4k(g, va, new_frame(g), RWU);
    watch_va(g, va);
    assert_int_equal(ptmon_fake_cpu_access(g->fake, g->cr3, va, PTMON_FAKE_CPU_WRITE, &gpa), 0);
    pte_gpa = entry_gpa(g, va, 1);
    assert_int_equal(ptmon_fake_peek(g->fake, pte_gpa + 1, &byte1, 1), 0);
    byte1 ^= 0x10; /* bit 12: another frame */
    assert_int_equal(ptmon_fake_store(g->fake, 0, pte_gpa + 1, &byte1, 1), 0);
    assert_consistent(g);
    assert_int_equal(only_call(g)->change.after.entry & (PTMON_PTE_A | PTMON_PTE_D),
                     PTMON_PTE_A | PTMON_PTE_D);
    finish(g, &s, stop_and_replay(g, &s, &res));
}

/* Find the first record of @p type; @return its payload offset, or 0. */
static size_t find_record(const struct sink *s, enum ptmon_trace_type type, size_t *plen)
{
    ptmon_trace_record rec;
    size_t pos = 0, at;
    while (at = pos, ptmon_trace_next(s->p, s->n, &pos, &rec) == 1)
        if (rec.type == type) {
            *plen = pos - at - 8;
            return at + 8;
        }
    return 0;
}

static void a_tampered_trace_is_noticed(void **state)
{
    struct sink s = {0};
    struct guest *g = recorded_guest(*state, &s);
    ptmon_fake_replay_result res;
    size_t off, plen;

    session(g);
    ptmon_destroy(g->pm);
    g->pm = NULL;
    /* the first event's new bytes: a different frame number in the entry written */
    off = find_record(&s, PTMON_TRACE_EVENT, &plen);
    assert_true(off != 0 && plen > 40);
    s.p[off + 40 + 1] ^= 0x10;
    assert_int_equal(ptmon_fake_replay(s.p, s.n, NULL, &res), 0);
    assert_true(res.divergences > 0);
    assert_true(strlen(res.first_divergence) > 0);
    guest_done(g);
    free(s.p);
}

/* The replay cannot place a watch the recording placed (here: its VA made non-canonical): one
 * divergence, and the rest of the trace is still replayed. */
static void a_watch_the_replay_cannot_place_is_one_divergence(void **state)
{
    struct sink s = {0};
    struct guest *g = recorded_guest(*state, &s);
    ptmon_fake_replay_result res;
    size_t off, plen;

    session(g);
    ptmon_destroy(g->pm);
    g->pm = NULL;
    off = find_record(&s, PTMON_TRACE_WATCH, &plen);
    assert_true(off != 0 && plen == 28);
    s.p[off + 16 + 6] = 0x80; /* va bit 55: not canonical in 4-level paging */
    assert_int_equal(ptmon_fake_replay(s.p, s.n, NULL, &res), 0);
    assert_int_equal(res.complete, 1);
    assert_true(res.divergences > 0);
    assert_non_null(strstr(res.first_divergence, "ptmon_watch"));
    assert_true(res.calls > 10);
    guest_done(g);
    free(s.p);
}

/* Every prefix of a trace and a few thousand corrupted copies: replayed or refused, never a
 * crash or a leak (the ASan build runs this too). */
static void malformed_traces_are_refused_not_trusted(void **state)
{
    struct sink s = {0};
    struct guest *g = recorded_guest(*state, &s);
    ptmon_fake_replay_result res;
    uint8_t *copy;
    uint64_t seed = 12345;

    session(g);
    ptmon_destroy(g->pm);
    g->pm = NULL;
    for (size_t len = 0; len < s.n; len += 1 + len / 64) {
        int rc = ptmon_fake_replay(s.p, len, NULL, &res);
        assert_true(rc == PTMON_EINVAL || (rc == 0 && !res.complete && res.divergences > 0));
    }
    copy = malloc(s.n);
    assert_non_null(copy);
    for (int i = 0; i < 3000; i++) {
        memcpy(copy, s.p, s.n);
        for (int k = 0; k < 1 + i % 4; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            copy[(seed >> 17) % s.n] ^= (uint8_t)(1u << ((seed >> 40) & 7));
        }
        (void)ptmon_fake_replay(copy, s.n, NULL, &res);
    }
    free(copy);
    assert_int_equal(ptmon_fake_replay(NULL, 0, NULL, &res), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_replay(s.p, 0, NULL, &res), PTMON_EINVAL);
    guest_done(g);
    free(s.p);
}

static void a_failing_sink_stops_the_recording_not_the_instance(void **state)
{
    struct sink s = {0};
    struct guest *g;
    ptmon_fake_replay_result res;

    s.fail_at = 4;
    g = recorded_guest(*state, &s);
    session(g);
    assert_true(g->ncalls >= 8);
    assert_non_null(strstr(ptmon_fake_last_log(g->fake), "trace"));
    ptmon_destroy(g->pm);
    g->pm = NULL;
    assert_int_equal(ptmon_fake_replay(s.p, s.n, NULL, &res), 0);
    assert_int_equal(res.complete, 0);
    assert_true(res.divergences > 0);
    guest_done(g);
    free(s.p);
}

static int hook_fn(ptmon *pm, ptmon_hook *h, void *ctx, const ptmon_mem_event *ev)
{
    (void)pm, (void)h, (void)ctx, (void)ev;
    return 0;
}

static void frame_hooks_make_a_trace_unreplayable(void **state)
{
    struct sink s = {0};
    struct guest *g = recorded_guest(*state, &s);
    ptmon_fake_replay_result res;
    ptmon_hook *h;

    assert_int_equal(ptmon_hook_gpa(g->pm, 0x5000, 8, PTMON_ACCESS_W, hook_fn, NULL, &h), 0);
    assert_int_equal(ptmon_unhook(&h), 0);
    ptmon_destroy(g->pm);
    g->pm = NULL;
    assert_int_equal(ptmon_fake_replay(s.p, s.n, NULL, &res), PTMON_ENOTSUP);
    assert_non_null(strstr(res.first_divergence, "hook"));
    guest_done(g);
    free(s.p);
}

static void recording_changes_nothing_the_agent_sees(void **state)
{
    struct sink s = {0};
    struct guest *plain = guest_new(*state, 64 * MIB), *rec = recorded_guest(*state, &s);

    session(plain);
    session(rec);
    assert_int_equal(plain->ncalls, rec->ncalls);
    for (size_t i = 0; i < plain->ncalls; i++)
        assert_memory_equal(&plain->calls[i].change, &rec->calls[i].change, sizeof(ptmon_change));
    guest_free(plain);
    guest_free(rec);
    free(s.p);
}

static void a_bad_sink_is_refused(void **state)
{
    ptmon_fake *fake;
    ptmon *pm = NULL;
    ptmon_fake_config fc = PTMON_FAKE_CONFIG_INIT;
    ptmon_config pc = PTMON_CONFIG_INIT;
    ptmon_trace_sink ts = {PTMON_TRACE_SINK_VERSION, NULL, NULL, NULL};
    (void)state;

    assert_int_equal(ptmon_fake_create(&fc, &fake), 0);
    pc.paging = fc.paging;
    pc.trace = &ts;
    assert_int_equal(ptmon_create(ptmon_fake_glue(fake), &pc, &pm), PTMON_EINVAL);
    ts.write = sink_write;
    ts.version = 99;
    assert_int_equal(ptmon_create(ptmon_fake_glue(fake), &pc, &pm), PTMON_EVERSION);
    assert_null(pm);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_BYTES_ALLOCATED), 0);
    ptmon_fake_destroy(fake);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        ON(replay_of_a_session_makes_the_same_callbacks, pre4),
        ON(replay_of_a_session_makes_the_same_callbacks, post4),
        ON(replay_of_a_session_makes_the_same_callbacks, pre32),
        ON(replay_of_a_session_makes_the_same_callbacks, prepae),
        ON(replay_answers_as_the_recording_did_and_the_deny_holds, pre4),
        ON(replay_answers_as_the_recording_did_and_the_deny_holds, post4),
        ON(replay_fails_the_reads_that_failed, pre4),
        ON(replay_fails_the_reads_that_failed, post4),
        ON(replay_fails_the_reads_that_failed, pre32),
        ON(bits_the_cpu_set_behind_ptmon_reach_the_replay, pre4),
        ON(bits_the_cpu_set_behind_ptmon_reach_the_replay, prepae),
        ON(a_tampered_trace_is_noticed, pre4),
        ON(malformed_traces_are_refused_not_trusted, pre4),
        ON(a_watch_the_replay_cannot_place_is_one_divergence, pre4),
        ON(a_failing_sink_stops_the_recording_not_the_instance, pre4),
        ON(frame_hooks_make_a_trace_unreplayable, pre4),
        ON(recording_changes_nothing_the_agent_sees, pre4),
        ON(recording_changes_nothing_the_agent_sees, post4),
        cmocka_unit_test(a_bad_sink_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
