/*
 * engine_fixture.h — a guest on the fake backend with a ptmon instance wired to it, a recorder
 * of watch callbacks, and assertions that run ptmon_check after every step.
 * Header-only (static functions) so each engine test binary stays self-contained.
 */
#ifndef PTMON_TESTS_ENGINE_FIXTURE_H
#define PTMON_TESTS_ENGINE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ptmon/fake.h>
#include <ptmon/ptmon.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIB       1024ull
#define MIB       (1024 * KIB)
#define GIB       (1024 * MIB)
#define RWU       (PTMON_PTE_RW | PTMON_PTE_US)
#define MAX_CALLS 4096

struct mode_case {
    const char *name;
    enum ptmon_paging_mode mode;
    unsigned flags;
    uint64_t large; /* the PD-level large page size */
    int has_1g;
    uint64_t kernel;
    enum ptmon_delivery delivery;
};

/* The mode and delivery cases most scenarios run in (each file uses a subset). */
static const struct mode_case pre4 = {
    "4-level pre",         PTMON_MODE_4LEVEL, PTMON_PAGING_NXE, 2 * MIB, 1,
    0xffff800000000000ull, PTMON_DELIVERY_PRE};
static const struct mode_case post4 = {
    "4-level post",        PTMON_MODE_4LEVEL,  PTMON_PAGING_NXE, 2 * MIB, 1,
    0xffff800000000000ull, PTMON_DELIVERY_POST};
static const struct mode_case pre32 = {
    "32-bit pre",  PTMON_MODE_32BIT,  PTMON_PAGING_PSE, 4 * MIB, 0,
    0xc0000000ull, PTMON_DELIVERY_PRE};
static const struct mode_case prepae = {"PAE pre", PTMON_MODE_PAE, PTMON_PAGING_NXE,  2 * MIB,
                                        0,         0xc0000000ull,  PTMON_DELIVERY_PRE};
static const struct mode_case pre5 = {
    "5-level pre",         PTMON_MODE_5LEVEL, PTMON_PAGING_NXE, 2 * MIB, 1,
    0xff00000000000000ull, PTMON_DELIVERY_PRE};

/* A cmocka test entry running @p f with @p m as its state, named after both. */
#define ON(f, m)                                  \
    {                                             \
#f " [" #m "]", f, NULL, NULL, (void *)&m \
    }

struct call {
    struct ptmon_watch *watch;
    ptmon_change change;
};

struct guest {
    const struct mode_case *mc;
    ptmon_fake *fake;
    ptmon *pm;
    uint64_t cr3;
    unsigned top;
    struct call calls[MAX_CALLS];
    size_t ncalls;
    /* what the recorder callback does besides recording */
    int deny_va_set;
    uint64_t deny_va;
    void (*hook)(struct guest *g, struct ptmon_watch *w, const ptmon_change *c);
};

static inline int fixture_handler(void *ctx, const ptmon_mem_event *ev)
{
    return ptmon_handle_event(ctx, ev);
}

static inline struct guest *guest_new(const struct mode_case *mc, uint64_t ram)
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
    fc.delivery = mc->delivery;
    fc.nr_vcpus = 2;
    assert_int_equal(ptmon_fake_create(&fc, &g->fake), 0);
    pc.paging = fc.paging;
    assert_int_equal(ptmon_create(ptmon_fake_glue(g->fake), &pc, &g->pm), 0);
    ptmon_fake_set_handler(g->fake, fixture_handler, g->pm);
    assert_int_equal(ptmon_fake_new_root(g->fake, &g->cr3), 0);
    g->top = ptmon_paging_levels(mc->mode);
    return g;
}

static inline void assert_consistent(struct guest *g)
{
    ptmon_finding f[8];
    int n = ptmon_check(g->pm, f, 8);
    for (int i = 0; i < n && i < 8; i++)
        print_error("ptmon_check: %s\n", f[i].text);
    assert_int_equal(n, 0);
}

/* Destroy everything; every frame's rights must be back to RWX (the fake's initial rights) and
 * nothing allocated through the glue may be left. */
static inline void guest_free(struct guest *g)
{
    assert_consistent(g);
    ptmon_destroy(g->pm);
    assert_int_equal(ptmon_fake_count_write_protected(g->fake), 0);
    assert_int_equal(ptmon_fake_stat(g->fake, PTMON_FAKE_STAT_BYTES_ALLOCATED), 0);
    ptmon_fake_destroy(g->fake);
    free(g);
}

static inline uint64_t new_frame(struct guest *g)
{
    uint64_t gpa;
    assert_int_equal(ptmon_fake_alloc_frame(g->fake, &gpa), 0);
    return gpa;
}

static inline int recorder(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    struct guest *g = ctx;
    (void)pm;
    assert_true(g->ncalls < MAX_CALLS);
    g->calls[g->ncalls].watch = w;
    g->calls[g->ncalls].change = *c;
    g->ncalls++;
    if (g->hook)
        g->hook(g, w, c);
    if (g->deny_va_set && c->va == g->deny_va && !c->reverted)
        return PTMON_ACTION_DENY;
    return 0;
}

static inline struct ptmon_watch *watch_va(struct guest *g, uint64_t va)
{
    struct ptmon_watch *w = NULL;
    assert_int_equal(ptmon_watch(g->pm, g->cr3, va, 0, recorder, g, &w), 0);
    assert_non_null(w);
    assert_consistent(g);
    return w;
}

static inline void map4k(struct guest *g, uint64_t va, uint64_t gpa, uint64_t bits)
{
    assert_int_equal(ptmon_fake_map(g->fake, g->cr3, va, gpa, 4 * KIB, bits), 0);
    assert_consistent(g);
}

static inline void set_entry(struct guest *g, uint64_t va, unsigned level, uint64_t value)
{
    assert_int_equal(ptmon_fake_set_entry(g->fake, g->cr3, va, level, value), 0);
    assert_consistent(g);
}

static inline uint64_t get_entry(struct guest *g, uint64_t va, unsigned level)
{
    uint64_t v;
    assert_int_equal(ptmon_fake_get_entry(g->fake, g->cr3, va, level, &v), 0);
    return v;
}

static inline uint64_t entry_gpa(struct guest *g, uint64_t va, unsigned level)
{
    uint64_t gpa;
    assert_int_equal(ptmon_fake_entry_gpa(g->fake, g->cr3, va, level, &gpa), 0);
    return gpa;
}

static inline unsigned esize(const struct guest *g)
{
    return g->mc->mode == PTMON_MODE_32BIT ? 4 : 8;
}

static inline const struct call *only_call(struct guest *g)
{
    assert_int_equal(g->ncalls, 1);
    return &g->calls[0];
}

static inline const struct call *call_for(struct guest *g, uint64_t va)
{
    for (size_t i = 0; i < g->ncalls; i++)
        if (g->calls[i].change.va == va)
            return &g->calls[i];
    fail_msg("no callback for va 0x%llx", (unsigned long long)va);
    return NULL;
}

static inline void reset_calls(struct guest *g)
{
    g->ncalls = 0;
}

#endif
