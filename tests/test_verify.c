/*
 * test_verify.c — regressions: one scenario (or a few) per defect an independent verification
 * of the public API found (issue 13, V1-V7), each asserting the behaviour SPEC.md and the
 * headers promise. Every scenario ends with ptmon_check finding nothing.
 */
#include "engine_fixture.h"

/* internals: the count of placements tried again (V4) */
#include "core/internal.h"

#include <stdio.h>
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

/* ---- a glue wrapper (V3, V5) ----------------------------------------------------------- */

/* The fake's glue behind a wrapper that keeps every log line and, with minus_one set, answers
 * -1 (the natural first try, which is PTMON_EINVAL) wherever the contract says PTMON_ERANGE. */
struct wrapped {
    ptmon_glue inner, glue;
    int minus_one;
    char log[8192];
};

static int as_minus_one(const struct wrapped *w, int rc)
{
    return w->minus_one && rc == PTMON_ERANGE ? -1 : rc;
}

static int w_read(void *be, uint64_t gpa, void *buf, size_t len)
{
    struct wrapped *w = be;
    return as_minus_one(w, w->inner.read_gpa(w->inner.backend, gpa, buf, len));
}

static int w_get(void *be, uint64_t gfn, uint32_t *access)
{
    struct wrapped *w = be;
    return as_minus_one(w, w->inner.get_access(w->inner.backend, gfn, access));
}

static int w_set(void *be, uint64_t gfn, uint32_t access)
{
    struct wrapped *w = be;
    return as_minus_one(w, w->inner.set_access(w->inner.backend, gfn, access));
}

static int w_emulate(void *be, uint32_t vcpu, uint64_t gpa, uint32_t size, const void *bytes,
                     void *written)
{
    struct wrapped *w = be;
    return w->inner.emulate_write(w->inner.backend, vcpu, gpa, size, bytes, written);
}

static int w_flush(void *be)
{
    struct wrapped *w = be;
    return w->inner.flush(w->inner.backend);
}

static int w_regs(void *be, uint32_t vcpu, ptmon_vcpu_regs *regs)
{
    struct wrapped *w = be;
    return w->inner.get_vcpu_regs(w->inner.backend, vcpu, regs);
}

static void w_log(void *be, int level, const char *line)
{
    struct wrapped *w = be;
    size_t used = strlen(w->log);
    (void)level;
    snprintf(w->log + used, sizeof(w->log) - used, "%s\n", line);
}

/* A version-@p version glue of the fake's (members of later versions absent). */
static void wrap(struct wrapped *w, ptmon_fake *fake, unsigned version, int minus_one)
{
    ptmon_glue g = PTMON_GLUE_INIT;
    memset(w, 0, sizeof(*w));
    w->inner = *ptmon_fake_glue(fake);
    w->minus_one = minus_one;
    g.version = version;
    g.backend = w;
    g.read_gpa = w_read;
    g.get_access = w_get;
    g.set_access = w_set;
    g.emulate_write = w_emulate;
    g.flush = w_flush;
    g.get_vcpu_regs = w_regs;
    g.log = w_log;
    w->glue = g;
}

/* ---- V3: the guest's physical-address width comes from the backend ----------------------- */

/* A bare instance on a fake guest whose CPU has @p maxphyaddr bits, created the README's way
 * (no configuration: paging read off vCPU 0, the width asked of the backend). */
struct bare {
    ptmon_fake *fake;
    ptmon *pm;
    uint64_t cr3;
    int calls;
    ptmon_change last;
};

static int remember(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    struct bare *b = ctx;
    (void)pm;
    (void)w;
    b->calls++;
    b->last = *c;
    return 0;
}

static void bare_fake(struct bare *b, unsigned maxphyaddr)
{
    ptmon_fake_config fc = PTMON_FAKE_CONFIG_INIT;
    memset(b, 0, sizeof(*b));
    fc.paging.mode = PTMON_MODE_4LEVEL;
    fc.paging.flags = PTMON_PAGING_NXE;
    fc.paging.maxphyaddr = maxphyaddr;
    fc.ram_size = 64 * MIB;
    assert_int_equal(ptmon_fake_create(&fc, &b->fake), 0);
    assert_int_equal(ptmon_fake_new_root(b->fake, &b->cr3), 0);
}

static void bare_free(struct bare *b)
{
    ptmon_destroy(b->pm);
    assert_int_equal(ptmon_fake_count_write_protected(b->fake), 0);
    ptmon_fake_destroy(b->fake);
}

/* With the 52-bit default, an entry setting bit 50 was reported as a present translation (frame
 * 0x4000000002000) where the CPU takes a reserved-bit fault. */
static void
created_without_configuration_an_address_bit_above_the_guests_width_is_reserved(void **state)
{
    struct bare b;
    struct ptmon_watch *w = NULL;
    uint64_t pte_gpa, frame;
    (void)state;
    bare_fake(&b, 46);
    assert_int_equal(ptmon_fake_alloc_frame(b.fake, &frame), 0);
    assert_int_equal(ptmon_fake_map(b.fake, b.cr3, VA, frame, 4 * KIB, RWU), 0);
    assert_int_equal(ptmon_create(ptmon_fake_glue(b.fake), NULL, &b.pm), 0);
    ptmon_fake_set_handler(b.fake, fixture_handler, b.pm);
    assert_int_equal(ptmon_get_paging(b.pm).maxphyaddr, 46);
    assert_int_equal(ptmon_watch(b.pm, b.cr3, VA, 0, remember, &b, &w), 0);
    assert_int_equal(ptmon_fake_entry_gpa(b.fake, b.cr3, VA, 1, &pte_gpa), 0);
    assert_int_equal(
        ptmon_fake_store_int(b.fake, 0, pte_gpa, (1ull << 50) | frame | RWU | PTMON_PTE_P, 8), 0);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.last.after.status, PTMON_WALK_RESERVED);
    assert_int_equal(b.last.after.frame, 0);
    assert_int_equal(ptmon_check(b.pm, NULL, 0), 0);
    bare_free(&b);
}

/* A backend built against the version-1 header cannot say: 52 bits, and a warning says so. */
static void a_version_1_backend_gets_52_bits_and_a_warning(void **state)
{
    struct bare b;
    struct wrapped v1;
    (void)state;
    bare_fake(&b, 40);
    wrap(&v1, b.fake, 1, 0);
    assert_int_equal(ptmon_create(&v1.glue, NULL, &b.pm), 0);
    assert_int_equal(ptmon_get_paging(b.pm).maxphyaddr, 52);
    assert_non_null(strstr(v1.log, "assuming 52"));
    bare_free(&b);
}

/* ---- V4: one waiting placement costs in proportion to itself ----------------------------- */

/* A watch X in address space B whose PDE points at A's first page table; B's PDE re-pointed at a
 * new table while the table cap is reached: X waits for room. Irrelevant writes (W11/W12 in the
 * benchmark: their cost no longer grows with the watches) do not even retry it; freeing a table
 * does, and X is placed and told. */
/* The layout of V4 (and of its cap case of V1): @p n watches on contiguous VAs of the guest's
 * address space A (w[]), and a watch X at VA + 0x5000 in a second address space B whose PDE
 * points at A's first page table; the instance is created anew with a table cap of exactly what
 * this needs. @return X. */
static struct ptmon_watch *at_the_table_cap(struct guest *g, uint64_t n, struct ptmon_watch **w,
                                            uint64_t *cr3_b)
{
    ptmon_config pc = PTMON_CONFIG_INIT;
    struct ptmon_watch *x = NULL;
    ptmon_stats st;
    uint64_t frame = new_frame(g);

    for (uint64_t i = 0; i < n + 8; i++)
        assert_int_equal(ptmon_fake_map(g->fake, g->cr3, VA + i * 4096, frame, 4 * KIB, RWU), 0);
    assert_int_equal(ptmon_fake_new_root(g->fake, cr3_b), 0);
    assert_int_equal(ptmon_fake_map(g->fake, *cr3_b, VA + 2 * MIB * 8, frame, 4 * KIB, RWU), 0);
    assert_int_equal(ptmon_fake_link(g->fake, *cr3_b, VA, 2, entry_gpa(g, VA, 1) & ~0xfffull, RWU),
                     0);
    for (uint64_t i = 0; i < n; i++) /* a first instance counts the tables */
        watch_va(g, VA + i * 4096);
    assert_int_equal(ptmon_watch(g->pm, *cr3_b, VA + 0x5000, 0, recorder, g, &x), 0);
    assert_int_equal(ptmon_get_stats(g->pm, &st), 0);
    ptmon_destroy(g->pm);
    pc.paging = ptmon_fake_get_config(g->fake)->paging;
    pc.max_tables = st.tables;
    assert_int_equal(ptmon_create(ptmon_fake_glue(g->fake), &pc, &g->pm), 0);
    ptmon_fake_set_handler(g->fake, fixture_handler, g->pm);
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(ptmon_watch(g->pm, g->cr3, VA + i * 4096, 0, recorder, g, &w[i]), 0);
    assert_int_equal(ptmon_watch(g->pm, *cr3_b, VA + 0x5000, 0, recorder, g, &x), 0);
    return x;
}

/* A pointer outside RAM needs no record: a full cap must not make its watch wait. */
static void at_the_table_cap_a_pointer_above_ram_is_still_reported_as_that_pointer(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    struct ptmon_watch *w[600];
    uint64_t cr3_b, pointer = ABOVE_RAM | RWU | PTMON_PTE_P;
    (void)at_the_table_cap(g, 600, w, &cr3_b);
    assert_int_equal(ptmon_fake_set_entry(g->fake, cr3_b, VA, 2, pointer), 0);
    const ptmon_change *c = &only_call(g)->change;
    assert_int_equal(c->va, VA + 0x5000);
    assert_int_equal(c->after.status, PTMON_WALK_OUTSIDE_RAM);
    assert_int_equal(c->after.level, 2);
    assert_int_equal(c->after.entry, pointer);
    guest_free(g);
}

static void a_watch_waiting_for_room_is_retried_only_when_room_is_freed(void **state)
{
    const uint64_t n = 600; /* two page tables: 512 + 88 watched PTEs */
    struct guest *g = guest_new(*state, 64 * MIB);
    struct ptmon_watch *w[600];
    uint64_t cr3_b, frame, irrelevant;

    (void)at_the_table_cap(g, n, w, &cr3_b);
    frame = new_frame(g);
    assert_int_equal(ptmon_fake_set_entry(g->fake, cr3_b, VA, 2, new_frame(g) | RWU | 1), 0);
    assert_int_equal(ptmon_check(g->pm, NULL, 0), 1); /* X: placement incomplete */
    assert_int_equal(g->ncalls, 0);                   /* X keeps what it was told */
    uint64_t retries = g->pm->stats.retries;
    irrelevant = entry_gpa(g, VA + n * 4096, 1);
    for (unsigned e = 0; e < 100; e++)
        assert_int_equal(ptmon_fake_store_int(g->fake, 0, irrelevant, (e & 1) ? frame | 1 : 0, 8),
                         0);
    assert_int_equal(g->pm->stats.retries, retries); /* no room was freed: nothing to retry */
    assert_int_equal(g->ncalls, 0);

    for (uint64_t i = 512; i < n; i++) /* the second page table goes: room for X's new one */
        assert_int_equal(ptmon_unwatch(&w[i]), 0);
    assert_int_equal(g->pm->stats.retries, retries + 1);
    assert_int_equal(only_call(g)->change.va, VA + 0x5000);
    assert_int_equal(only_call(g)->change.vcpu, PTMON_VCPU_NONE);
    assert_int_equal(only_call(g)->change.after.status, PTMON_WALK_NOT_PRESENT);
    guest_free(g);
}

/* ---- V5: a backend's wrong error code is reported, never silently taken ------------------- */

static void a_backend_answering_minus_one_outside_ram_is_logged_and_checked(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    struct wrapped m;
    ptmon_config pc = PTMON_CONFIG_INIT;
    ptmon_finding f[8];
    ptmon *pm;
    struct ptmon_watch *w = NULL;
    int n, unreadable = 0;

    wrap(&m, g->fake, PTMON_GLUE_VERSION, 1);
    pc.paging = ptmon_get_paging(g->pm);
    assert_int_equal(ptmon_create(&m.glue, &pc, &pm), 0);
    ptmon_fake_set_handler(g->fake, fixture_handler, pm);
    map4k(g, VA, new_frame(g), RWU);
    assert_int_equal(ptmon_watch(pm, g->cr3, VA, 0, recorder, g, &w), 0);
    set_entry(g, VA, 2, pointer_to(g, 2, ABOVE_RAM));
    /* the change cannot be placed (the backend says "invalid argument", not "outside RAM") */
    assert_non_null(strstr(m.log, "returned -1"));
    assert_non_null(strstr(m.log, "outside guest RAM must be PTMON_ERANGE"));
    n = ptmon_check(pm, f, 8); /* findings, not the backend's -1 */
    assert_true(n >= 1);
    for (int i = 0; i < n && i < 8; i++)
        unreadable |= f[i].kind == PTMON_FINDING_UNREADABLE;
    assert_true(unreadable);
    ptmon_fake_set_handler(g->fake, fixture_handler, g->pm);
    ptmon_destroy(pm);
    g->ncalls = 0;
    guest_free(g);
}

/* ---- V7: misuse is refused and explained -------------------------------------------------- */

static void paging_flags_that_mean_nothing_in_the_mode_are_refused_and_named(void **state)
{
    struct bare b;
    ptmon_config pc = PTMON_CONFIG_INIT;
    (void)state;
    bare_fake(&b, 46);
    pc.paging.mode = PTMON_MODE_4LEVEL;
    pc.paging.flags = PTMON_PAGING_PSE;
    assert_int_equal(ptmon_create(ptmon_fake_glue(b.fake), &pc, &b.pm), PTMON_EINVAL);
    assert_non_null(strstr(ptmon_fake_last_log(b.fake), "PTMON_PAGING_PSE"));
    pc.paging.mode = PTMON_MODE_32BIT;
    pc.paging.flags = PTMON_PAGING_NXE;
    assert_int_equal(ptmon_create(ptmon_fake_glue(b.fake), &pc, &b.pm), PTMON_EINVAL);
    assert_non_null(strstr(ptmon_fake_last_log(b.fake), "PTMON_PAGING_NXE"));
    pc.paging.mode = PTMON_MODE_AUTO; /* flags come from the vCPU's registers */
    assert_int_equal(ptmon_create(ptmon_fake_glue(b.fake), &pc, &b.pm), PTMON_EINVAL);
    assert_non_null(strstr(ptmon_fake_last_log(b.fake), "PTMON_MODE_AUTO"));
    assert_null(b.pm);
    bare_free(&b);
}

static void every_refused_argument_is_named_in_a_debug_line(void **state)
{
    struct guest *g = guest_new(*state, 64 * MIB);
    struct ptmon_watch *w = NULL;
    ptmon_hook *h = NULL;
    ptmon_mem_event ev = {0, PTMON_ACCESS_W, 0x1000, 0, PTMON_DELIVERY_PRE, NULL};
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, 0x80, recorder, g, &w), PTMON_EINVAL);
    assert_non_null(strstr(ptmon_fake_last_log(g->fake), "ptmon_watch: flags"));
    assert_int_equal(ptmon_watch(g->pm, g->cr3, VA, 0, NULL, g, &w), PTMON_EINVAL);
    assert_non_null(strstr(ptmon_fake_last_log(g->fake), "ptmon_watch: fn is NULL"));
    assert_int_equal(ptmon_watch(g->pm, g->cr3, 0x0000800000000000ull, 0, recorder, g, &w),
                     PTMON_EINVAL);
    assert_non_null(strstr(ptmon_fake_last_log(g->fake), "not canonical"));
    assert_int_equal(ptmon_hook_gpa(g->pm, 0x1ff8, 16, PTMON_ACCESS_W, count_access, NULL, &h),
                     PTMON_EINVAL);
    assert_non_null(strstr(ptmon_fake_last_log(g->fake), "leaves its 4 KiB frame"));
    assert_int_equal(ptmon_handle_event(g->pm, &ev), PTMON_EINVAL);
    assert_non_null(strstr(ptmon_fake_last_log(g->fake), "ev->size is 0"));
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
        cmocka_unit_test(
            created_without_configuration_an_address_bit_above_the_guests_width_is_reserved),
        cmocka_unit_test(a_version_1_backend_gets_52_bits_and_a_warning),
        ON(at_the_table_cap_a_pointer_above_ram_is_still_reported_as_that_pointer, pre4),
        ON(at_the_table_cap_a_pointer_above_ram_is_still_reported_as_that_pointer, post4),
        ON(a_watch_waiting_for_room_is_retried_only_when_room_is_freed, pre4),
        ON(a_watch_waiting_for_room_is_retried_only_when_room_is_freed, post4),
        ON(a_backend_answering_minus_one_outside_ram_is_logged_and_checked, pre4),
        ON(a_backend_answering_minus_one_outside_ram_is_logged_and_checked, post4),
        cmocka_unit_test(paging_flags_that_mean_nothing_in_the_mode_are_refused_and_named),
        ON(every_refused_argument_is_named_in_a_debug_line, pre4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
