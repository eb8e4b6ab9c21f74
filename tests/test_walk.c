/*
 * test_walk.c — the page-walk translator (src/core/walk.c) in every paging mode.
 *
 * Each test hand-writes page tables into a tiny guest RAM of its own (the test state) and
 * walks them with pt_walk(), or calls the per-mode helpers directly. Expected indices and
 * entry addresses are written out by hand, never computed with the code under test.
 *
 * Depends on nothing but walk.c: no fake guest, no instance.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ptmon/ptmon.h>

#include "core/walk.h"

#include <string.h>

#define FRAME(n)    ((uint64_t)(n) << 12)
#define RAM_FRAMES  40
#define RAM_SIZE    FRAME(RAM_FRAMES)
#define OUTSIDE_RAM FRAME(100)

#define SIZE_4K (1ull << 12)
#define SIZE_2M (1ull << 21)
#define SIZE_4M (1ull << 22)
#define SIZE_1G (1ull << 30)
#define BIT(n)  (1ull << (n))

#define P         PTMON_PTE_P
#define RW        PTMON_PTE_RW
#define US        PTMON_PTE_US
#define PS        PTMON_PTE_PS
#define NX        PTMON_PTE_NX
#define PWU       (P | RW | US)
#define PAT_LARGE BIT(12) /* PAT of a 2M/4M/1G page */
#define W_U       (PTMON_RIGHT_W | PTMON_RIGHT_U)

#define NXE PTMON_PAGING_NXE
#define PSE PTMON_PAGING_PSE

/* ---- the guest: RAM, an error to inject, and a log of reads and hook calls ----------- */

enum event_kind { EV_BEFORE_READ, EV_READ, EV_ENTRY };

struct event {
    enum event_kind kind;
    unsigned level; /* 0 for EV_READ */
    uint64_t gpa;
    size_t len;     /* EV_READ */
    uint64_t value; /* EV_ENTRY */
    struct pt_entry_info info;
};

struct guest {
    uint8_t ram[RAM_SIZE];
    uint64_t fail_gpa; /* a read at fail_gpa returns fail_rc, if nonzero */
    int fail_rc;
    enum event_kind stop_hook; /* that hook returns stop_rc at stop_level, if nonzero */
    unsigned stop_level;
    int stop_rc;
    unsigned nevents;
    struct event events[32];
};

static void log_event(struct guest *g, struct event ev)
{
    assert_true(g->nevents < sizeof(g->events) / sizeof(g->events[0]));
    g->events[g->nevents++] = ev;
}

static int guest_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
    struct guest *g = ctx;
    struct event ev = {.kind = EV_READ, .gpa = gpa, .len = len};

    log_event(g, ev);
    if (g->fail_rc != 0 && gpa == g->fail_gpa)
        return g->fail_rc;
    if (gpa >= RAM_SIZE || len > RAM_SIZE - gpa)
        return PTMON_ERANGE;
    memcpy(buf, g->ram + gpa, len);
    return 0;
}

static int on_before_read(void *ctx, unsigned level, uint64_t entry_gpa)
{
    struct guest *g = ctx;
    struct event ev = {.kind = EV_BEFORE_READ, .level = level, .gpa = entry_gpa};

    log_event(g, ev);
    return (g->stop_hook == EV_BEFORE_READ && g->stop_level == level) ? g->stop_rc : 0;
}

static int on_entry(void *ctx, unsigned level, uint64_t entry_gpa, uint64_t value,
                    const struct pt_entry_info *info)
{
    struct guest *g = ctx;
    struct event ev = {
        .kind = EV_ENTRY, .level = level, .gpa = entry_gpa, .value = value, .info = *info};

    log_event(g, ev);
    return (g->stop_hook == EV_ENTRY && g->stop_level == level) ? g->stop_rc : 0;
}

static const struct pt_walk_ops LOGGING_OPS = {on_before_read, on_entry};

static int guest_setup(void **state)
{
    *state = test_calloc(1, sizeof(struct guest));
    return *state ? 0 : -1;
}

static int guest_teardown(void **state)
{
    test_free(*state);
    return 0;
}

/* Entries are little-endian in guest memory. */
static void put(struct guest *g, uint64_t gpa, uint64_t value, unsigned size)
{
    assert_true(gpa + size <= RAM_SIZE);
    for (unsigned i = 0; i < size; i++)
        g->ram[gpa + i] = (uint8_t)(value >> (8 * i));
}

static void put64(struct guest *g, uint64_t gpa, uint64_t value)
{
    put(g, gpa, value, 8);
}

static void put32(struct guest *g, uint64_t gpa, uint32_t value)
{
    put(g, gpa, value, 4);
}

static void reset(struct guest *g)
{
    memset(g->ram, 0, sizeof(g->ram));
    g->nevents = 0;
}

static ptmon_paging paging(enum ptmon_paging_mode mode, unsigned flags, unsigned maxphyaddr)
{
    ptmon_paging pg = {mode, flags, maxphyaddr};
    return pg;
}

/* ---- one hand-written 4 KiB translation per mode ------------------------------------- */

/* A chain of tables mapping `va` to a 4 KiB page, and where each level's entry lives. */
struct chain {
    enum ptmon_paging_mode mode;
    unsigned levels;
    uint64_t cr3;
    uint64_t va;
    uint64_t entry_gpa[PTMON_MAX_LEVELS + 1]; /* the entry the walk of va reads at each level */
    uint64_t target[PTMON_MAX_LEVELS + 1];    /* the table or page that entry references */
};

/* PD at frame 11 [3] -> PT at 12 [4] -> page 13. */
static const struct chain CHAIN_32 = {
    .mode = PTMON_MODE_32BIT,
    .levels = 2,
    .cr3 = FRAME(11),
    .va = 0x00C04123u,
    .entry_gpa = {0, FRAME(12) + 4 * 4, FRAME(11) + 3 * 4},
    .target = {0, FRAME(13), FRAME(12)},
};

/* PDPT at frame 7 [2] -> PD at 8 [3] -> PT at 9 [4] -> page 10. */
static const struct chain CHAIN_PAE = {
    .mode = PTMON_MODE_PAE,
    .levels = 3,
    .cr3 = FRAME(7),
    .va = 0x80604123u,
    .entry_gpa = {0, FRAME(9) + 4 * 8, FRAME(8) + 3 * 8, FRAME(7) + 2 * 8},
    .target = {0, FRAME(10), FRAME(9), FRAME(8)},
};

/* PML4 at frame 1 [1] -> PDPT at 2 [2] -> PD at 3 [3] -> PT at 4 [4] -> page 5. */
#define VA4 0x0000008080604123ull
static const struct chain CHAIN_4 = {
    .mode = PTMON_MODE_4LEVEL,
    .levels = 4,
    .cr3 = FRAME(1),
    .va = VA4,
    .entry_gpa = {0, FRAME(4) + 4 * 8, FRAME(3) + 3 * 8, FRAME(2) + 2 * 8, FRAME(1) + 1 * 8},
    .target = {0, FRAME(5), FRAME(4), FRAME(3), FRAME(2)},
};

/* PML5 at frame 6 [5] -> the 4-level chain above. */
static const struct chain CHAIN_5 = {
    .mode = PTMON_MODE_5LEVEL,
    .levels = 5,
    .cr3 = FRAME(6),
    .va = 0x0005000000000000ull | VA4,
    .entry_gpa = {0, FRAME(4) + 4 * 8, FRAME(3) + 3 * 8, FRAME(2) + 2 * 8, FRAME(1) + 1 * 8,
                  FRAME(6) + 5 * 8},
    .target = {0, FRAME(5), FRAME(4), FRAME(3), FRAME(2), FRAME(1)},
};

static ptmon_paging chain_paging(const struct chain *c, unsigned flags, unsigned maxphyaddr)
{
    return paging(c->mode, flags, maxphyaddr);
}

/* A PAE PDPTE has no R/W or U/S bit: there they are reserved. */
static uint64_t usual_flags(const struct chain *c, unsigned level)
{
    return (c->mode == PTMON_MODE_PAE && level == PTMON_LEVEL_PDPT) ? P : PWU;
}

static void put_entry(struct guest *g, const struct chain *c, unsigned level, uint64_t value)
{
    if (c->mode == PTMON_MODE_32BIT)
        put32(g, c->entry_gpa[level], (uint32_t)value);
    else
        put64(g, c->entry_gpa[level], value);
}

static uint64_t entry_at(const struct guest *g, const struct chain *c, uint64_t gpa)
{
    unsigned size = c->mode == PTMON_MODE_32BIT ? 4 : 8;
    uint64_t v = 0;
    for (unsigned i = size; i-- > 0;)
        v = (v << 8) | g->ram[gpa + i];
    return v;
}

/* Clears RAM and writes the chain with the usual flags. */
static void build_chain(struct guest *g, const struct chain *c)
{
    reset(g);
    for (unsigned level = 1; level <= c->levels; level++)
        put_entry(g, c, level, c->target[level] | usual_flags(c, level));
}

static ptmon_walk walk_va(struct guest *g, ptmon_paging pg, uint64_t cr3, uint64_t va)
{
    ptmon_walk w;
    assert_int_equal(pt_walk(&pg, guest_read, g, cr3, va, NULL, NULL, &w), 0);
    assert_int_equal(w.cr3, cr3);
    assert_int_equal(w.va, va);
    return w;
}

static ptmon_walk walk_chain(struct guest *g, const struct chain *c, ptmon_paging pg)
{
    ptmon_walk w = walk_va(g, pg, c->cr3, c->va);
    assert_int_equal(w.top_level, c->levels);
    return w;
}

/* The chain with the entry at @p level replaced by @p value. */
static ptmon_walk walk_chain_with(struct guest *g, const struct chain *c, ptmon_paging pg,
                                  unsigned level, uint64_t value)
{
    build_chain(g, c);
    put_entry(g, c, level, value);
    return walk_chain(g, c, pg);
}

/* Levels top..stop hold the chain's entries, levels below are untouched. */
static void assert_chain_path(const struct guest *g, const struct chain *c, const ptmon_walk *w)
{
    for (unsigned level = 1; level <= PTMON_MAX_LEVELS; level++) {
        if (level >= w->stop_level && level <= c->levels) {
            assert_int_equal(w->level[level].gpa, c->entry_gpa[level]);
            assert_int_equal(w->level[level].value, entry_at(g, c, c->entry_gpa[level]));
        } else {
            assert_int_equal(w->level[level].gpa, 0);
            assert_int_equal(w->level[level].value, 0);
        }
    }
    assert_int_equal(w->level[0].gpa, 0);
}

static void assert_translated(const ptmon_walk *w, unsigned stop_level, uint64_t page_gpa,
                              uint64_t page_size, uint64_t gpa)
{
    assert_int_equal(w->status, PTMON_WALK_OK);
    assert_int_equal(w->stop_level, stop_level);
    assert_int_equal(w->page_gpa, page_gpa);
    assert_int_equal(w->page_size, page_size);
    assert_int_equal(w->gpa, gpa);
    assert_int_equal(w->reserved_bits, 0);
}

static void assert_stopped(const ptmon_walk *w, enum ptmon_walk_status status, unsigned level)
{
    assert_int_equal(w->status, status);
    assert_int_equal(w->stop_level, level);
    assert_int_equal(w->page_gpa, 0);
    assert_int_equal(w->gpa, 0);
    assert_int_equal(w->page_size, 0);
}

static void assert_reserved(const ptmon_walk *w, unsigned level, uint64_t bits)
{
    assert_stopped(w, PTMON_WALK_RESERVED, level);
    assert_int_equal(w->reserved_bits, bits);
}

/* ===================================================================================== */
/* Per-mode helpers                                                                      */
/* ===================================================================================== */

static void entry_size_per_mode(void **state)
{
    (void)state;
    static const struct {
        enum ptmon_paging_mode mode;
        unsigned size;
    } cases[] = {
        {PTMON_MODE_32BIT, 4},  {PTMON_MODE_PAE, 8}, {PTMON_MODE_4LEVEL, 8},
        {PTMON_MODE_5LEVEL, 8}, {PTMON_MODE_OFF, 0}, {PTMON_MODE_AUTO, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ptmon_paging pg = paging(cases[i].mode, 0, 0);
        assert_int_equal(pt_entry_size(&pg), cases[i].size);
    }
}

static void level_span_per_mode(void **state)
{
    (void)state;
    static const struct {
        enum ptmon_paging_mode mode;
        unsigned level;
        uint64_t span;
    } cases[] = {
        {PTMON_MODE_32BIT, 1, SIZE_4K},
        {PTMON_MODE_32BIT, 2, SIZE_4M},
        {PTMON_MODE_32BIT, 3, 0},
        {PTMON_MODE_32BIT, 0, 0},
        {PTMON_MODE_PAE, 1, SIZE_4K},
        {PTMON_MODE_PAE, 2, SIZE_2M},
        {PTMON_MODE_PAE, 3, SIZE_1G},
        {PTMON_MODE_PAE, 4, 0},
        {PTMON_MODE_4LEVEL, 1, SIZE_4K},
        {PTMON_MODE_4LEVEL, 2, SIZE_2M},
        {PTMON_MODE_4LEVEL, 3, SIZE_1G},
        {PTMON_MODE_4LEVEL, 4, 1ull << 39},
        {PTMON_MODE_4LEVEL, 5, 0},
        {PTMON_MODE_5LEVEL, 4, 1ull << 39},
        {PTMON_MODE_5LEVEL, 5, 1ull << 48},
        {PTMON_MODE_5LEVEL, 6, 0},
        {PTMON_MODE_OFF, 1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ptmon_paging pg = paging(cases[i].mode, 0, 0);
        assert_int_equal(pt_level_span(&pg, cases[i].level), cases[i].span);
    }
}

static void root_gpa_per_mode(void **state)
{
    (void)state;
    static const struct {
        enum ptmon_paging_mode mode;
        unsigned maxphyaddr;
        uint64_t cr3;
        uint64_t root;
    } cases[] = {
        {PTMON_MODE_32BIT, 36, 0xFFFFFFFF12345FFFull, 0x12345000},
        {PTMON_MODE_PAE, 36, 0xFFFFFFFF12345FFFull, 0x12345FE0},
        {PTMON_MODE_PAE, 36, 0x12345678, 0x12345660},
        {PTMON_MODE_4LEVEL, 40, 0x80000FFF12345FFFull, 0xFF12345000ull},
        {PTMON_MODE_4LEVEL, 0, 0x80000FFF12345FFFull, 0x00000FFF12345000ull},
        {PTMON_MODE_5LEVEL, 46, UINT64_MAX, 0x00003FFFFFFFF000ull},
        {PTMON_MODE_5LEVEL, 52, 0x8000000000001000ull | 0xABC, 0x1000},
        {PTMON_MODE_OFF, 0, 0x1000, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ptmon_paging pg = paging(cases[i].mode, 0, cases[i].maxphyaddr);
        assert_int_equal(pt_root_gpa(&pg, cases[i].cr3), cases[i].root);
    }
}

static void index_per_mode(void **state)
{
    (void)state;
    static const struct {
        enum ptmon_paging_mode mode;
        uint64_t va;
        unsigned index[PTMON_MAX_LEVELS + 1];
    } cases[] = {
        {PTMON_MODE_32BIT, 0xFFC01FFFu, {0, 1, 1023}},
        {PTMON_MODE_32BIT, 0x00C04123u, {0, 4, 3}},
        {PTMON_MODE_PAE, 0xC0201FFFu, {0, 1, 1, 3}},
        {PTMON_MODE_PAE, 0x80604123u, {0, 4, 3, 2}},
        {PTMON_MODE_PAE, UINT64_MAX, {0, 511, 511, 3}}, /* the PDPT has 4 entries */
        {PTMON_MODE_4LEVEL, VA4, {0, 4, 3, 2, 1}},
        {PTMON_MODE_4LEVEL, UINT64_MAX, {0, 511, 511, 511, 511}},
        {PTMON_MODE_5LEVEL, 0x0005000000000000ull | VA4, {0, 4, 3, 2, 1, 5}},
        {PTMON_MODE_5LEVEL, UINT64_MAX, {0, 511, 511, 511, 511, 511}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ptmon_paging pg = paging(cases[i].mode, 0, 0);
        for (unsigned level = 1; level <= PTMON_MAX_LEVELS; level++)
            assert_int_equal(pt_index(&pg, level, cases[i].va), cases[i].index[level]);
    }
}

static void entry_gpa_per_mode(void **state)
{
    (void)state;
    const struct chain *chains[] = {&CHAIN_32, &CHAIN_PAE, &CHAIN_4, &CHAIN_5};
    for (size_t i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
        const struct chain *c = chains[i];
        ptmon_paging pg = chain_paging(c, 0, 0);
        uint64_t table = c->cr3;
        for (unsigned level = c->levels; level >= 1; level--) {
            assert_int_equal(pt_entry_gpa(&pg, table, level, c->va), c->entry_gpa[level]);
            table = c->target[level];
        }
    }
    /* The PAE PDPT is 32-byte aligned, not page aligned. */
    ptmon_paging pae = paging(PTMON_MODE_PAE, 0, 0);
    assert_int_equal(pt_entry_gpa(&pae, FRAME(7) + 0x20, 3, 0xC0000000u), FRAME(7) + 0x20 + 3 * 8);
}

static void va_valid_per_mode(void **state)
{
    (void)state;
    static const struct {
        enum ptmon_paging_mode mode;
        uint64_t va;
        int valid;
    } cases[] = {
        {PTMON_MODE_32BIT, 0xFFFFFFFFu, 1},
        {PTMON_MODE_32BIT, 0x100000000ull, 0},
        {PTMON_MODE_PAE, 0xFFFFFFFFu, 1},
        {PTMON_MODE_PAE, 0xFFFFFFFF80000000ull, 0},
        {PTMON_MODE_4LEVEL, 0x00007FFFFFFFFFFFull, 1},
        {PTMON_MODE_4LEVEL, 0x0000800000000000ull, 0},
        {PTMON_MODE_4LEVEL, 0xFFFF800000000000ull, 1},
        {PTMON_MODE_4LEVEL, 0xFFFF7FFFFFFFFFFFull, 0},
        {PTMON_MODE_4LEVEL, 0x8000000000000000ull, 0},
        {PTMON_MODE_5LEVEL, 0x0000800000000000ull, 1},
        {PTMON_MODE_5LEVEL, 0x00FFFFFFFFFFFFFFull, 1},
        {PTMON_MODE_5LEVEL, 0x0100000000000000ull, 0},
        {PTMON_MODE_5LEVEL, 0xFF00000000000000ull, 1},
        {PTMON_MODE_5LEVEL, 0xFEFFFFFFFFFFFFFFull, 0},
        {PTMON_MODE_OFF, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ptmon_paging pg = paging(cases[i].mode, 0, 0);
        assert_int_equal(pt_va_valid(&pg, cases[i].va) != 0, cases[i].valid);
    }
}

static void decode_not_present_ignores_every_other_bit(void **state)
{
    (void)state;
    const struct chain *chains[] = {&CHAIN_32, &CHAIN_PAE, &CHAIN_4, &CHAIN_5};
    for (size_t i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
        ptmon_paging pg = chain_paging(chains[i], 0, 36);
        for (unsigned level = 1; level <= chains[i]->levels; level++) {
            struct pt_entry_info info;
            memset(&info, 0xAA, sizeof(info));
            pt_decode(&pg, level, ~P, &info);
            assert_int_equal(info.kind, PT_NOT_PRESENT);
            assert_int_equal(info.addr, 0);
            assert_int_equal(info.page_size, 0);
            assert_int_equal(info.reserved_bits, 0);
            assert_int_equal(info.rights, 0);
        }
    }
}

static void decode_level_missing_from_mode_is_reserved(void **state)
{
    (void)state;
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 0);
    struct pt_entry_info info;
    pt_decode(&pg, PTMON_LEVEL_PML5, FRAME(1) | PWU, &info);
    assert_int_equal(info.kind, PT_RESERVED);
    assert_int_equal(info.reserved_bits, FRAME(1) | PWU);
    pt_decode(&pg, 0, FRAME(1) | PWU, &info);
    assert_int_equal(info.kind, PT_RESERVED);
}

/* ===================================================================================== */
/* Translations: every mode, every page size                                            */
/* ===================================================================================== */

static void check_4k_chain(struct guest *g, const struct chain *c, ptmon_paging pg)
{
    build_chain(g, c);
    ptmon_walk w = walk_chain(g, c, pg);
    assert_translated(&w, 1, c->target[1], SIZE_4K, c->target[1] + 0x123);
    assert_int_equal(w.rights, W_U);
    assert_chain_path(g, c, &w);
}

static void bit32_4k_page_translates(void **state)
{
    check_4k_chain(*state, &CHAIN_32, paging(PTMON_MODE_32BIT, 0, 36));
    check_4k_chain(*state, &CHAIN_32, paging(PTMON_MODE_32BIT, PSE, 36));
}

static void pae_4k_page_translates(void **state)
{
    check_4k_chain(*state, &CHAIN_PAE, paging(PTMON_MODE_PAE, NXE, 36));
}

static void fourlevel_4k_page_translates(void **state)
{
    check_4k_chain(*state, &CHAIN_4, paging(PTMON_MODE_4LEVEL, NXE, 46));
}

static void fivelevel_4k_page_translates(void **state)
{
    check_4k_chain(*state, &CHAIN_5, paging(PTMON_MODE_5LEVEL, NXE, 52));
}

/* The chain's entry at @p level maps a large page of @p size at @p base (PAT bit set too). */
static void check_large_page(struct guest *g, const struct chain *c, ptmon_paging pg,
                             unsigned level, uint64_t base, uint64_t size)
{
    ptmon_walk w = walk_chain_with(g, c, pg, level, base | PAT_LARGE | PS | PWU);
    assert_translated(&w, level, base, size, base + (c->va & (size - 1)));
    assert_int_equal(w.rights, W_U);
    assert_chain_path(g, c, &w);
}

static void bit32_4m_page_with_pse_translates(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_32BIT, PSE, 36);
    check_large_page(*state, &CHAIN_32, pg, PTMON_LEVEL_PD, 0x01400000u, SIZE_4M);
    assert_int_equal(0x01400000u + (CHAIN_32.va & (SIZE_4M - 1)), 0x01404123u);
}

static void bit32_4m_page_pse36_gives_address_bits_39_to_32(void **state)
{
    static const struct {
        unsigned maxphyaddr;
        uint32_t bits_20_13;
        uint64_t base;
    } cases[] = {
        {36, 0x0F, 0x0000000F01400000ull}, {40, 0xFF, 0x000000FF01400000ull},
        {52, 0xFF, 0x000000FF01400000ull}, {0, 0xA5, 0x000000A501400000ull},
        {33, 0x01, 0x0000000101400000ull},
    };
    /* PSE-36 is at most 40 bits wide: MAXPHYADDR 52 (or 0) gives all 8 bits, no more. */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ptmon_paging pg = paging(PTMON_MODE_32BIT, PSE, cases[i].maxphyaddr);
        uint64_t pde = 0x01400000u | ((uint64_t)cases[i].bits_20_13 << 13) | PS | PWU;
        ptmon_walk w = walk_chain_with(*state, &CHAIN_32, pg, PTMON_LEVEL_PD, pde);
        assert_translated(&w, 2, cases[i].base, SIZE_4M, cases[i].base + 0x4123);
    }
}

static void bit32_pde_with_ps_but_pse_off_walks_to_page_table(void **state)
{
    struct guest *g = *state;
    ptmon_paging pg = paging(PTMON_MODE_32BIT, 0, 36);
    ptmon_walk w = walk_chain_with(g, &CHAIN_32, pg, PTMON_LEVEL_PD, FRAME(12) | PS | PWU);
    assert_translated(&w, 1, FRAME(13), SIZE_4K, FRAME(13) + 0x123);
    assert_chain_path(g, &CHAIN_32, &w);
}

static void bit32_entries_have_no_reserved_bits(void **state)
{
    struct guest *g = *state;
    ptmon_paging pg = paging(PTMON_MODE_32BIT, 0, 32);
    build_chain(g, &CHAIN_32);
    put_entry(g, &CHAIN_32, PTMON_LEVEL_PD, FRAME(12) | 0xFFF);
    put_entry(g, &CHAIN_32, PTMON_LEVEL_PT, 0xFFFFFFFFu);
    ptmon_walk w = walk_chain(g, &CHAIN_32, pg);
    assert_translated(&w, 1, 0xFFFFF000u, SIZE_4K, 0xFFFFF123u);
}

static void bit32_entries_are_read_as_4_bytes_and_zero_extended(void **state)
{
    struct guest *g = *state;
    build_chain(g, &CHAIN_32);
    /* The neighbours of each entry are all ones: none of them may leak into the value. */
    put32(g, CHAIN_32.entry_gpa[2] + 4, UINT32_MAX);
    put32(g, CHAIN_32.entry_gpa[1] + 4, UINT32_MAX);
    put32(g, CHAIN_32.entry_gpa[1] - 4, UINT32_MAX);
    ptmon_walk w = walk_chain(g, &CHAIN_32, paging(PTMON_MODE_32BIT, 0, 36));
    assert_int_equal(w.level[2].value, FRAME(12) | PWU);
    assert_int_equal(w.level[1].value, FRAME(13) | PWU);
    assert_int_equal(g->nevents, 2);
    for (unsigned i = 0; i < g->nevents; i++)
        assert_int_equal(g->events[i].len, 4);
}

static void pae_2m_page_translates_above_4g(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_PAE, NXE, 36);
    check_large_page(*state, &CHAIN_PAE, pg, PTMON_LEVEL_PD, 0xF40000000ull, SIZE_2M);
}

static void fourlevel_2m_page_translates(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 46);
    check_large_page(*state, &CHAIN_4, pg, PTMON_LEVEL_PD, 0x40000000ull, SIZE_2M);
}

static void fourlevel_1g_page_translates(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 46);
    check_large_page(*state, &CHAIN_4, pg, PTMON_LEVEL_PDPT, 0x3FC0000000ull, SIZE_1G);
}

static void fivelevel_2m_page_translates(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_5LEVEL, NXE, 52);
    check_large_page(*state, &CHAIN_5, pg, PTMON_LEVEL_PD, 0xFFFFFFFE00000ull, SIZE_2M);
}

static void fivelevel_1g_page_translates(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_5LEVEL, NXE, 52);
    check_large_page(*state, &CHAIN_5, pg, PTMON_LEVEL_PDPT, 0x40000000ull, SIZE_1G);
}

static void fourlevel_pte_bit7_is_pat_not_ps(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 46);
    ptmon_walk w = walk_chain_with(*state, &CHAIN_4, pg, PTMON_LEVEL_PT, FRAME(5) | PS | PWU);
    assert_translated(&w, 1, FRAME(5), SIZE_4K, FRAME(5) + 0x123);
}

static void ia32e_ignored_bits_are_not_reserved(struct guest *g, const struct chain *c)
{
    /* Bits 62:52 and 11:9 are free for software; they are neither reserved nor address. */
    const uint64_t ignored = 0x7FF0000000000E00ull;
    build_chain(g, c);
    for (unsigned level = 1; level <= c->levels; level++)
        put_entry(g, c, level, c->target[level] | PWU | ignored);
    ptmon_walk w = walk_chain(g, c, chain_paging(c, NXE, 46));
    assert_translated(&w, 1, c->target[1], SIZE_4K, c->target[1] + 0x123);
    assert_chain_path(g, c, &w);
}

static void fourlevel_bits_62_to_52_are_ignored(void **state)
{
    ia32e_ignored_bits_are_not_reserved(*state, &CHAIN_4);
}

static void fivelevel_bits_62_to_52_are_ignored(void **state)
{
    ia32e_ignored_bits_are_not_reserved(*state, &CHAIN_5);
}

/* ===================================================================================== */
/* Not present                                                                           */
/* ===================================================================================== */

/* P=0 stops the walk whatever else the entry holds (here: every other bit set). */
static void check_not_present_at_each_level(struct guest *g, const struct chain *c)
{
    ptmon_paging pg = chain_paging(c, 0, 36);
    uint64_t value = c->mode == PTMON_MODE_32BIT ? (UINT32_MAX & ~P) : ~P;
    for (unsigned level = c->levels; level >= 1; level--) {
        ptmon_walk w = walk_chain_with(g, c, pg, level, value);
        assert_stopped(&w, PTMON_WALK_NOT_PRESENT, level);
        assert_int_equal(w.reserved_bits, 0);
        assert_chain_path(g, c, &w);
    }
}

static void bit32_not_present_stops_at_each_level(void **state)
{
    check_not_present_at_each_level(*state, &CHAIN_32);
}

static void pae_not_present_stops_at_each_level(void **state)
{
    check_not_present_at_each_level(*state, &CHAIN_PAE);
}

static void fourlevel_not_present_stops_at_each_level(void **state)
{
    check_not_present_at_each_level(*state, &CHAIN_4);
}

static void fivelevel_not_present_stops_at_each_level(void **state)
{
    check_not_present_at_each_level(*state, &CHAIN_5);
}

/* ===================================================================================== */
/* Reserved bits                                                                         */
/* ===================================================================================== */

static void assert_entry_reserved(struct guest *g, const struct chain *c, ptmon_paging pg,
                                  unsigned level, uint64_t value, uint64_t bits)
{
    ptmon_walk w = walk_chain_with(g, c, pg, level, value);
    assert_reserved(&w, level, bits);
    assert_chain_path(g, c, &w);
}

/* The chain's usual entry at @p level plus @p extra stops there, reporting exactly @p extra. */
static void assert_bits_reserved(struct guest *g, const struct chain *c, ptmon_paging pg,
                                 unsigned level, uint64_t extra)
{
    assert_entry_reserved(g, c, pg, level, c->target[level] | usual_flags(c, level) | extra, extra);
}

static void fourlevel_pml4e_with_ps_bit_is_reserved(void **state)
{
    assert_bits_reserved(*state, &CHAIN_4, paging(PTMON_MODE_4LEVEL, NXE, 46), 4, PS);
}

static void fivelevel_pml5e_with_ps_bit_is_reserved(void **state)
{
    assert_bits_reserved(*state, &CHAIN_5, paging(PTMON_MODE_5LEVEL, NXE, 52), 5, PS);
}

static void fivelevel_pml4e_with_ps_bit_is_reserved(void **state)
{
    assert_bits_reserved(*state, &CHAIN_5, paging(PTMON_MODE_5LEVEL, NXE, 52), 4, PS);
}

static void pae_pdpte_with_ps_bit_is_reserved(void **state)
{
    assert_bits_reserved(*state, &CHAIN_PAE, paging(PTMON_MODE_PAE, NXE, 36), 3, PS);
}

static void pae_pdpte_bits_1_2_and_5_to_8_are_reserved(void **state)
{
    struct guest *g = *state;
    ptmon_paging pg = paging(PTMON_MODE_PAE, NXE, 36);
    static const unsigned reserved[] = {1, 2, 5, 6, 7, 8};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        assert_bits_reserved(g, &CHAIN_PAE, pg, 3, BIT(reserved[i]));

    /* PWT, PCD and the ignored bits 11:9 are allowed. */
    ptmon_walk w = walk_chain_with(g, &CHAIN_PAE, pg, 3, FRAME(8) | P | 0xE18);
    assert_translated(&w, 1, FRAME(10), SIZE_4K, FRAME(10) + 0x123);
}

static void pae_pdpte_bit63_is_reserved_even_with_nxe(void **state)
{
    assert_bits_reserved(*state, &CHAIN_PAE, paging(PTMON_MODE_PAE, NXE, 36), 3, NX);
    assert_bits_reserved(*state, &CHAIN_PAE, paging(PTMON_MODE_PAE, 0, 36), 3, NX);
}

static void pae_pdpte_address_above_maxphyaddr_is_reserved(void **state)
{
    struct guest *g = *state;
    assert_bits_reserved(g, &CHAIN_PAE, paging(PTMON_MODE_PAE, NXE, 36), 3, BIT(36));
    assert_bits_reserved(g, &CHAIN_PAE, paging(PTMON_MODE_PAE, NXE, 36), 3, BIT(51));
    assert_bits_reserved(g, &CHAIN_PAE, paging(PTMON_MODE_PAE, NXE, 52), 3, BIT(52));
    assert_bits_reserved(g, &CHAIN_PAE, paging(PTMON_MODE_PAE, NXE, 0), 3, BIT(62));
}

static void pae_pde_and_pte_bits_62_to_maxphyaddr_are_reserved(void **state)
{
    struct guest *g = *state;
    static const struct {
        unsigned maxphyaddr;
        unsigned bit;
    } cases[] = {{36, 36}, {36, 40}, {36, 51}, {52, 52}, {52, 62}, {0, 57}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ptmon_paging pg = paging(PTMON_MODE_PAE, NXE, cases[i].maxphyaddr);
        assert_bits_reserved(g, &CHAIN_PAE, pg, 2, BIT(cases[i].bit));
        assert_bits_reserved(g, &CHAIN_PAE, pg, 1, BIT(cases[i].bit));
    }
}

static void pae_nx_with_nxe_off_is_reserved(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_PAE, 0, 36);
    assert_bits_reserved(*state, &CHAIN_PAE, pg, 2, NX);
    assert_bits_reserved(*state, &CHAIN_PAE, pg, 1, NX);
}

static void pae_2m_page_bits_20_to_13_are_reserved(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_PAE, NXE, 36);
    for (unsigned bit = 13; bit <= 20; bit++)
        assert_entry_reserved(*state, &CHAIN_PAE, pg, 2, 0x40000000u | PS | PWU | BIT(bit),
                              BIT(bit));
}

static void check_above_maxphyaddr_at_each_level(struct guest *g, const struct chain *c)
{
    ptmon_paging pg = chain_paging(c, NXE, 40);
    for (unsigned level = 1; level <= c->levels; level++) {
        assert_bits_reserved(g, c, pg, level, BIT(40));
        assert_bits_reserved(g, c, pg, level, BIT(51));
    }
    /* In a large page too. */
    assert_entry_reserved(g, c, pg, 2, 0x40000000u | PS | PWU | BIT(45), BIT(45));
    assert_entry_reserved(g, c, pg, 3, 0x40000000u | PS | PWU | BIT(45), BIT(45));
}

static void fourlevel_address_above_maxphyaddr_is_reserved_at_each_level(void **state)
{
    check_above_maxphyaddr_at_each_level(*state, &CHAIN_4);
}

static void fivelevel_address_above_maxphyaddr_is_reserved_at_each_level(void **state)
{
    check_above_maxphyaddr_at_each_level(*state, &CHAIN_5);
}

static void check_nx_without_nxe_at_each_level(struct guest *g, const struct chain *c)
{
    ptmon_paging pg = chain_paging(c, 0, 52);
    for (unsigned level = 1; level <= c->levels; level++)
        assert_bits_reserved(g, c, pg, level, NX);
    assert_entry_reserved(g, c, pg, 2, 0x40000000u | PS | PWU | NX, NX);
}

static void fourlevel_nx_with_nxe_off_is_reserved_at_each_level(void **state)
{
    check_nx_without_nxe_at_each_level(*state, &CHAIN_4);
}

static void fivelevel_nx_with_nxe_off_is_reserved_at_each_level(void **state)
{
    check_nx_without_nxe_at_each_level(*state, &CHAIN_5);
}

/* Bits lo..hi of a large page at @p level each make it reserved; the PAT bit 12 does not. */
static void check_large_page_low_bits(struct guest *g, const struct chain *c, unsigned level,
                                      unsigned hi)
{
    ptmon_paging pg = chain_paging(c, NXE, 46);
    for (unsigned bit = 13; bit <= hi; bit++)
        assert_entry_reserved(g, c, pg, level, 0x40000000u | PS | PWU | BIT(bit), BIT(bit));
    ptmon_walk w = walk_chain_with(g, c, pg, level, 0x40000000u | PS | PWU | PAT_LARGE);
    assert_int_equal(w.status, PTMON_WALK_OK);
}

static void fourlevel_2m_page_bits_20_to_13_are_reserved(void **state)
{
    check_large_page_low_bits(*state, &CHAIN_4, 2, 20);
}

static void fourlevel_1g_page_bits_29_to_13_are_reserved(void **state)
{
    check_large_page_low_bits(*state, &CHAIN_4, 3, 29);
}

static void fivelevel_2m_page_bits_20_to_13_are_reserved(void **state)
{
    check_large_page_low_bits(*state, &CHAIN_5, 2, 20);
}

static void fivelevel_1g_page_bits_29_to_13_are_reserved(void **state)
{
    check_large_page_low_bits(*state, &CHAIN_5, 3, 29);
}

static void bit32_4m_page_bit21_is_always_reserved(void **state)
{
    static const unsigned widths[] = {32, 36, 40, 52, 0};
    for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
        ptmon_paging pg = paging(PTMON_MODE_32BIT, PSE, widths[i]);
        assert_entry_reserved(*state, &CHAIN_32, pg, 2, 0x01400000u | PS | PWU | BIT(21), BIT(21));
    }
}

static void bit32_4m_page_pse36_bits_above_maxphyaddr_are_reserved(void **state)
{
    static const struct {
        unsigned maxphyaddr;
        unsigned bit;
    } cases[] = {{36, 17}, {36, 20}, {32, 13}, {33, 14}, {39, 20}, {20, 13}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ptmon_paging pg = paging(PTMON_MODE_32BIT, PSE, cases[i].maxphyaddr);
        uint64_t bit = BIT(cases[i].bit);
        assert_entry_reserved(*state, &CHAIN_32, pg, 2, 0x01400000u | PS | PWU | bit, bit);
    }
}

static void reserved_bits_lists_every_offending_bit_and_only_those(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, 0, 40);
    uint64_t bad = PS | BIT(45) | NX;
    /* bit 55 is ignored: set but not reported */
    ptmon_walk w = walk_chain_with(*state, &CHAIN_4, pg, 4, FRAME(2) | PWU | bad | BIT(55));
    assert_reserved(&w, 4, bad);
}

/* ===================================================================================== */
/* Tables outside RAM                                                                    */
/* ===================================================================================== */

static void root_outside_ram_in_every_mode_is_an_error(void **state)
{
    struct guest *g = *state;
    const struct chain *chains[] = {&CHAIN_32, &CHAIN_PAE, &CHAIN_4, &CHAIN_5};
    for (size_t i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
        const struct chain *c = chains[i];
        ptmon_paging pg = chain_paging(c, NXE, 36);
        ptmon_walk w;
        build_chain(g, c);
        /* no entry exists to stop at: the walk has no outcome */
        assert_int_equal(pt_walk(&pg, guest_read, g, OUTSIDE_RAM, c->va, NULL, NULL, &w),
                         PTMON_ERANGE);
    }
}

/* SPEC §4: the walk stops at the entry that exists, the pointer, with its value and level. */
static void table_outside_ram_stops_at_its_pointer_in_every_mode_and_level(void **state)
{
    struct guest *g = *state;
    const struct chain *chains[] = {&CHAIN_32, &CHAIN_PAE, &CHAIN_4, &CHAIN_5};
    for (size_t i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
        const struct chain *c = chains[i];
        for (unsigned level = c->levels; level >= 2; level--) {
            uint64_t pointer = OUTSIDE_RAM | usual_flags(c, level);
            ptmon_walk w = walk_chain_with(g, c, chain_paging(c, NXE, 36), level, pointer);
            assert_stopped(&w, PTMON_WALK_OUTSIDE_RAM, level);
            assert_int_equal(w.level[level].gpa, c->entry_gpa[level]);
            assert_int_equal(w.level[level].value, pointer);
            assert_int_equal(w.level[level - 1].gpa, 0);
            assert_int_equal(w.level[level - 1].value, 0);
            if (level == c->levels)
                assert_int_equal(w.rights, 0);
        }
    }
}

static void fourlevel_table_outside_ram_at_lower_level(void **state)
{
    struct guest *g = *state;
    build_chain(g, &CHAIN_4);
    put_entry(g, &CHAIN_4, 3, FRAME(3) | P | RW); /* not user: rights so far are W */
    put_entry(g, &CHAIN_4, 2, OUTSIDE_RAM | PWU);
    ptmon_walk w = walk_chain(g, &CHAIN_4, paging(PTMON_MODE_4LEVEL, NXE, 46));
    assert_stopped(&w, PTMON_WALK_OUTSIDE_RAM, 2);
    assert_int_equal(w.level[2].value, OUTSIDE_RAM | PWU);
    assert_int_equal(w.level[1].gpa, 0);
    assert_int_equal(w.level[1].value, 0);
    assert_int_equal(w.rights, PTMON_RIGHT_W); /* the pointer itself adds nothing */
}

static void bit32_page_table_outside_ram(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_32BIT, 0, 36);
    ptmon_walk w = walk_chain_with(*state, &CHAIN_32, pg, 2, OUTSIDE_RAM | PWU);
    assert_stopped(&w, PTMON_WALK_OUTSIDE_RAM, 2);
    assert_int_equal(w.level[2].value, OUTSIDE_RAM | PWU);
    assert_int_equal(w.level[1].gpa, 0);
    assert_int_equal(w.rights, 0);
}

/* ===================================================================================== */
/* Virtual addresses the mode cannot translate                                           */
/* ===================================================================================== */

static void assert_refused_without_reading(struct guest *g, const struct chain *c, uint64_t va)
{
    build_chain(g, c);
    ptmon_walk w = walk_va(g, chain_paging(c, NXE, 0), c->cr3, va);
    assert_int_equal(w.status, PTMON_WALK_NONCANONICAL);
    assert_int_equal(w.stop_level, 0);
    assert_int_equal(w.top_level, c->levels);
    assert_int_equal(w.rights, 0);
    for (unsigned level = 0; level <= PTMON_MAX_LEVELS; level++)
        assert_int_equal(w.level[level].gpa, 0);
    assert_int_equal(g->nevents, 0);
}

static void fourlevel_noncanonical_va_reads_nothing(void **state)
{
    assert_refused_without_reading(*state, &CHAIN_4, 0x0000800000000000ull | VA4);
    assert_refused_without_reading(*state, &CHAIN_4, 0x8000000000000000ull | VA4);
    assert_refused_without_reading(*state, &CHAIN_4, 0xFFFF000000000000ull | VA4);
}

static void fivelevel_noncanonical_va_reads_nothing(void **state)
{
    struct guest *g = *state;
    assert_refused_without_reading(g, &CHAIN_5, 0x0100000000000000ull | CHAIN_5.va);
    assert_refused_without_reading(g, &CHAIN_5, 0xFE00000000000000ull | CHAIN_5.va);

    /* Non-canonical in 4-level, fine in 5-level: the walk reads (empty) PML5 entry 0. */
    ptmon_walk w = walk_va(g, paging(PTMON_MODE_5LEVEL, NXE, 0), FRAME(6), 0x0000800000000000ull);
    assert_stopped(&w, PTMON_WALK_NOT_PRESENT, 5);
    assert_int_equal(w.level[5].gpa, FRAME(6));
}

static void bit32_and_pae_refuse_va_at_or_above_4g(void **state)
{
    assert_refused_without_reading(*state, &CHAIN_32, BIT(32) | CHAIN_32.va);
    assert_refused_without_reading(*state, &CHAIN_PAE, BIT(32) | CHAIN_PAE.va);
    assert_refused_without_reading(*state, &CHAIN_PAE, 0xFFFFFFFF80000000ull);
}

/* ===================================================================================== */
/* CR3                                                                                   */
/* ===================================================================================== */

/* Walking with @p cr3 gives the same walk as with the chain's plain root. */
static void assert_same_walk_with_cr3(struct guest *g, const struct chain *c, ptmon_paging pg,
                                      uint64_t cr3)
{
    build_chain(g, c);
    ptmon_walk plain = walk_chain(g, c, pg);
    ptmon_walk noisy = walk_va(g, pg, cr3, c->va);
    assert_int_equal(noisy.status, PTMON_WALK_OK);
    assert_int_equal(noisy.status, plain.status);
    assert_int_equal(noisy.stop_level, plain.stop_level);
    assert_int_equal(noisy.page_gpa, plain.page_gpa);
    assert_int_equal(noisy.gpa, plain.gpa);
    assert_int_equal(noisy.rights, plain.rights);
    assert_memory_equal(noisy.level, plain.level, sizeof(plain.level));
}

static void fourlevel_cr3_pcid_and_bit63_are_ignored(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 46);
    assert_same_walk_with_cr3(*state, &CHAIN_4, pg, CHAIN_4.cr3 | 0xFFF | BIT(63));
    assert_same_walk_with_cr3(*state, &CHAIN_4, pg, CHAIN_4.cr3 | 0x018);
}

static void fivelevel_cr3_pcid_and_bit63_are_ignored(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_5LEVEL, NXE, 46);
    /* bits 62:46 lie above MAXPHYADDR: not part of the root either */
    assert_same_walk_with_cr3(*state, &CHAIN_5, pg, CHAIN_5.cr3 | 0xFFF | BIT(63) | BIT(50));
}

static void bit32_cr3_low_bits_are_ignored(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_32BIT, PSE, 36);
    assert_same_walk_with_cr3(*state, &CHAIN_32, pg, CHAIN_32.cr3 | 0xFFF);
}

static void pae_cr3_bits_5_to_11_select_the_pdpt(void **state)
{
    struct guest *g = *state;
    const uint64_t pdpt = FRAME(7) + 0x60;
    build_chain(g, &CHAIN_PAE);
    put_entry(g, &CHAIN_PAE, 3, 0); /* the chain's PDPT at the frame start is not used */
    put64(g, pdpt + 2 * 8, FRAME(8) | P);
    ptmon_walk w = walk_va(g, paging(PTMON_MODE_PAE, NXE, 36), pdpt | 0x18, CHAIN_PAE.va);
    assert_translated(&w, 1, FRAME(10), SIZE_4K, FRAME(10) + 0x123);
    assert_int_equal(w.level[3].gpa, pdpt + 2 * 8);
    assert_int_equal(w.level[3].value, FRAME(8) | P);
}

/* ===================================================================================== */
/* Effective rights                                                                      */
/* ===================================================================================== */

/* Clearing R/W (U/S) at any one level takes W (U) away from the translation. */
static void check_w_and_u_anded(struct guest *g, const struct chain *c, unsigned from_level)
{
    ptmon_paging pg = chain_paging(c, NXE, 46);
    for (unsigned level = from_level; level >= 1; level--) {
        ptmon_walk w = walk_chain_with(g, c, pg, level, c->target[level] | P | US);
        assert_int_equal(w.status, PTMON_WALK_OK);
        assert_int_equal(w.rights, PTMON_RIGHT_U);
        w = walk_chain_with(g, c, pg, level, c->target[level] | P | RW);
        assert_int_equal(w.status, PTMON_WALK_OK);
        assert_int_equal(w.rights, PTMON_RIGHT_W);
    }
}

static void bit32_w_and_u_are_anded_over_levels(void **state)
{
    check_w_and_u_anded(*state, &CHAIN_32, 2);
}

static void pae_w_and_u_are_anded_over_pd_and_pt(void **state)
{
    check_w_and_u_anded(*state, &CHAIN_PAE, 2);
}

static void fourlevel_w_and_u_are_anded_over_levels(void **state)
{
    check_w_and_u_anded(*state, &CHAIN_4, 4);
}

static void fivelevel_w_and_u_are_anded_over_levels(void **state)
{
    check_w_and_u_anded(*state, &CHAIN_5, 5);
}

/* XD at any one level makes the translation NX, but only with EFER.NXE. */
static void check_nx_ored(struct guest *g, const struct chain *c, unsigned from_level)
{
    ptmon_paging pg = chain_paging(c, NXE, 46);
    for (unsigned level = from_level; level >= 1; level--) {
        ptmon_walk w = walk_chain_with(g, c, pg, level, c->target[level] | PWU | NX);
        assert_int_equal(w.status, PTMON_WALK_OK);
        assert_int_equal(w.rights, W_U | PTMON_RIGHT_NX);
    }
}

static void pae_nx_is_ored_over_levels(void **state)
{
    check_nx_ored(*state, &CHAIN_PAE, 2);
}

static void fourlevel_nx_is_ored_over_levels(void **state)
{
    check_nx_ored(*state, &CHAIN_4, 4);
}

static void fivelevel_nx_is_ored_over_levels(void **state)
{
    check_nx_ored(*state, &CHAIN_5, 5);
}

static void pae_pdpte_contributes_w_and_u(void **state)
{
    struct guest *g = *state;
    ptmon_paging pg = paging(PTMON_MODE_PAE, NXE, 36);
    struct pt_entry_info info;
    pt_decode(&pg, 3, FRAME(8) | P, &info);
    assert_int_equal(info.kind, PT_TABLE);
    assert_int_equal(info.rights, W_U);

    build_chain(g, &CHAIN_PAE); /* the PDPTE has P only */
    ptmon_walk w = walk_chain(g, &CHAIN_PAE, pg);
    assert_int_equal(w.level[3].value, FRAME(8) | P);
    assert_int_equal(w.rights, W_U);
}

static void bit32_never_reports_nx(void **state)
{
    (void)state;
    ptmon_paging pg = paging(PTMON_MODE_32BIT, PSE | NXE, 36);
    struct pt_entry_info info;
    pt_decode(&pg, 1, NX | FRAME(13) | PWU, &info); /* a 4-byte entry has no bit 63 */
    assert_int_equal(info.kind, PT_LEAF);
    assert_int_equal(info.addr, FRAME(13));
    assert_int_equal(info.rights, W_U);
}

static void nx_right_needs_nxe(void **state)
{
    (void)state;
    ptmon_paging with = paging(PTMON_MODE_4LEVEL, NXE, 46);
    ptmon_paging without = paging(PTMON_MODE_4LEVEL, 0, 46);
    struct pt_entry_info info;

    pt_decode(&with, 1, NX | FRAME(5) | PWU, &info);
    assert_int_equal(info.kind, PT_LEAF);
    assert_int_equal(info.rights, W_U | PTMON_RIGHT_NX);
    /* Without NXE bit 63 is a reserved bit, not XD. */
    pt_decode(&without, 1, NX | FRAME(5) | PWU, &info);
    assert_int_equal(info.kind, PT_RESERVED);
    assert_int_equal(info.reserved_bits, NX);
    assert_int_equal(info.rights, W_U);
}

static void rights_accumulate_when_walk_stops_early(void **state)
{
    struct guest *g = *state;
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 46);

    build_chain(g, &CHAIN_4);
    put_entry(g, &CHAIN_4, 4, FRAME(2) | P | US);
    put_entry(g, &CHAIN_4, 3, FRAME(3) | PWU | NX);
    put_entry(g, &CHAIN_4, 2, 0);
    ptmon_walk w = walk_chain(g, &CHAIN_4, pg);
    assert_stopped(&w, PTMON_WALK_NOT_PRESENT, 2);
    assert_int_equal(w.rights, PTMON_RIGHT_U | PTMON_RIGHT_NX);

    /* A reserved entry does not take part either. */
    put_entry(g, &CHAIN_4, 2, FRAME(4) | P | BIT(51));
    w = walk_chain(g, &CHAIN_4, pg);
    assert_stopped(&w, PTMON_WALK_RESERVED, 2);
    assert_int_equal(w.rights, PTMON_RIGHT_U | PTMON_RIGHT_NX);
}

static void rights_are_zero_when_top_entry_stops_walk(void **state)
{
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 46);
    ptmon_walk w = walk_chain_with(*state, &CHAIN_4, pg, 4, PWU & ~P);
    assert_stopped(&w, PTMON_WALK_NOT_PRESENT, 4);
    assert_int_equal(w.rights, 0);
}

/* ===================================================================================== */
/* Self-maps, loops, GPA 0                                                               */
/* ===================================================================================== */

static uint64_t va4(unsigned i4, unsigned i3, unsigned i2, unsigned i1, unsigned offset)
{
    uint64_t va = ((uint64_t)i4 << 39) | ((uint64_t)i3 << 30) | ((uint64_t)i2 << 21) |
                  ((uint64_t)i1 << 12) | offset;
    return (va & BIT(47)) ? (va | 0xFFFF000000000000ull) : va;
}

static uint64_t va5(unsigned i5, unsigned i4, unsigned i3, unsigned i2, unsigned i1,
                    unsigned offset)
{
    uint64_t va = ((uint64_t)i5 << 48) | (va4(i4, i3, i2, i1, offset) & 0x0000FFFFFFFFFFFFull);
    return (va & BIT(56)) ? (va | 0xFE00000000000000ull) : va;
}

static void fourlevel_self_map_walk_terminates_at_pml4_frame(void **state)
{
    struct guest *g = *state;
    const unsigned self = 0x1ED; /* Windows' self-map slot */
    const uint64_t slot = FRAME(1) + self * 8;
    reset(g);
    put64(g, slot, FRAME(1) | P | RW);
    uint64_t va = va4(self, self, self, self, 0x10);
    assert_int_equal(va, 0xFFFFF6FB7DBED010ull);

    ptmon_walk w = walk_va(g, paging(PTMON_MODE_4LEVEL, NXE, 46), FRAME(1), va);
    assert_translated(&w, 1, FRAME(1), SIZE_4K, FRAME(1) + 0x10);
    for (unsigned level = 1; level <= 4; level++) {
        assert_int_equal(w.level[level].gpa, slot);
        assert_int_equal(w.level[level].value, FRAME(1) | P | RW);
    }
    assert_int_equal(w.rights, PTMON_RIGHT_W);
    assert_int_equal(g->nevents, 4);
}

static void fivelevel_self_map_walk_terminates_at_pml5_frame(void **state)
{
    struct guest *g = *state;
    const unsigned self = 0x1FF;
    const uint64_t slot = FRAME(6) + self * 8;
    reset(g);
    put64(g, slot, FRAME(6) | PWU);
    ptmon_walk w = walk_va(g, paging(PTMON_MODE_5LEVEL, NXE, 52), FRAME(6),
                           va5(self, self, self, self, self, 0xFF8));
    assert_translated(&w, 1, FRAME(6), SIZE_4K, FRAME(6) + 0xFF8);
    for (unsigned level = 1; level <= 5; level++)
        assert_int_equal(w.level[level].gpa, slot);
    assert_int_equal(g->nevents, 5);
}

static void fourlevel_pdpte_pointing_back_to_pml4_terminates(void **state)
{
    struct guest *g = *state;
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 46);
    build_chain(g, &CHAIN_4);
    put_entry(g, &CHAIN_4, 3, FRAME(1) | PWU);  /* the "PD" is the PML4 page */
    put64(g, FRAME(1) + 3 * 8, FRAME(4) | PWU); /* PML4[3], read as the PDE */

    ptmon_walk w = walk_chain(g, &CHAIN_4, pg);
    assert_translated(&w, 1, FRAME(5), SIZE_4K, FRAME(5) + 0x123);
    assert_int_equal(w.level[2].gpa, FRAME(1) + 3 * 8);

    /* PD index 1 finds PML4[1] (the PDPT) as PDE: the PDPT is then read as a page table. */
    w = walk_va(g, pg, FRAME(1), va4(1, 2, 1, 4, 0));
    assert_stopped(&w, PTMON_WALK_NOT_PRESENT, 1);
    assert_int_equal(w.level[2].gpa, FRAME(1) + 1 * 8);
    assert_int_equal(w.level[1].gpa, FRAME(2) + 4 * 8);
}

static void tables_and_page_at_gpa_zero_are_walked(void **state)
{
    struct guest *g = *state;
    reset(g);
    put64(g, 0 + 1 * 8, FRAME(2) | PWU); /* PML4 at GPA 0 */
    put64(g, FRAME(2) + 2 * 8, FRAME(3) | PWU);
    put64(g, FRAME(3) + 3 * 8, FRAME(4) | PWU);
    put64(g, FRAME(4) + 4 * 8, 0 | PWU); /* the page at GPA 0 */
    ptmon_walk w = walk_va(g, paging(PTMON_MODE_4LEVEL, NXE, 46), 0x005, VA4);
    assert_translated(&w, 1, 0, SIZE_4K, 0x123);
    assert_int_equal(w.level[4].gpa, 8);

    reset(g);
    put32(g, 3 * 4, FRAME(12) | PWU); /* 32-bit PD at GPA 0 */
    put32(g, FRAME(12) + 4 * 4, FRAME(13) | PWU);
    w = walk_va(g, paging(PTMON_MODE_32BIT, 0, 32), 0, CHAIN_32.va);
    assert_translated(&w, 1, FRAME(13), SIZE_4K, FRAME(13) + 0x123);
    assert_int_equal(w.level[2].gpa, 12);
}

/* ===================================================================================== */
/* Hooks and errors                                                                      */
/* ===================================================================================== */

static int walk_with_ops(struct guest *g, const struct chain *c, ptmon_paging pg,
                         const struct pt_walk_ops *ops, ptmon_walk *w)
{
    return pt_walk(&pg, guest_read, g, c->cr3, c->va, ops, g, w);
}

static void assert_event(const struct guest *g, unsigned i, enum event_kind kind, unsigned level,
                         uint64_t gpa)
{
    assert_true(i < g->nevents);
    assert_int_equal(g->events[i].kind, kind);
    assert_int_equal(g->events[i].level, level);
    assert_int_equal(g->events[i].gpa, gpa);
}

static void ops_before_read_precedes_each_read_top_down(void **state)
{
    struct guest *g = *state;
    const struct chain *chains[] = {&CHAIN_32, &CHAIN_PAE, &CHAIN_4, &CHAIN_5};
    for (size_t i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
        const struct chain *c = chains[i];
        ptmon_walk w;
        build_chain(g, c);
        assert_int_equal(walk_with_ops(g, c, chain_paging(c, NXE, 46), &LOGGING_OPS, &w), 0);
        assert_int_equal(w.status, PTMON_WALK_OK);
        assert_int_equal(g->nevents, 3 * c->levels);
        for (unsigned level = c->levels, e = 0; level >= 1; level--, e += 3) {
            assert_event(g, e, EV_BEFORE_READ, level, c->entry_gpa[level]);
            assert_event(g, e + 1, EV_READ, 0, c->entry_gpa[level]);
            assert_int_equal(g->events[e + 1].len, c->mode == PTMON_MODE_32BIT ? 4 : 8);
            assert_event(g, e + 2, EV_ENTRY, level, c->entry_gpa[level]);
        }
    }
}

static void ops_entry_sees_the_decoded_entry(void **state)
{
    struct guest *g = *state;
    ptmon_walk w;
    build_chain(g, &CHAIN_4);
    put_entry(g, &CHAIN_4, 2, 0x40000000u | PS | P | RW | NX);
    assert_int_equal(
        walk_with_ops(g, &CHAIN_4, paging(PTMON_MODE_4LEVEL, NXE, 46), &LOGGING_OPS, &w), 0);
    assert_int_equal(g->nevents, 9);

    const struct event *pml4e = &g->events[2], *pdpte = &g->events[5], *pde = &g->events[8];
    assert_int_equal(pml4e->value, FRAME(2) | PWU);
    assert_int_equal(pml4e->info.kind, PT_TABLE);
    assert_int_equal(pml4e->info.addr, FRAME(2));
    assert_int_equal(pml4e->info.rights, W_U);
    assert_int_equal(pdpte->info.kind, PT_TABLE);
    assert_int_equal(pdpte->info.addr, FRAME(3));
    assert_int_equal(pde->value, 0x40000000u | PS | P | RW | NX);
    assert_int_equal(pde->info.kind, PT_LEAF);
    assert_int_equal(pde->info.addr, 0x40000000u);
    assert_int_equal(pde->info.page_size, SIZE_2M);
    assert_int_equal(pde->info.reserved_bits, 0);
    assert_int_equal(pde->info.rights, PTMON_RIGHT_W | PTMON_RIGHT_NX);

    /* The entry that stops the walk is reported too. */
    build_chain(g, &CHAIN_PAE);
    put_entry(g, &CHAIN_PAE, 3, FRAME(8) | P | PS);
    assert_int_equal(
        walk_with_ops(g, &CHAIN_PAE, paging(PTMON_MODE_PAE, NXE, 36), &LOGGING_OPS, &w), 0);
    assert_int_equal(g->nevents, 3);
    assert_int_equal(g->events[2].info.kind, PT_RESERVED);
    assert_int_equal(g->events[2].info.reserved_bits, PS);
    assert_int_equal(g->events[2].info.addr, 0);
}

static void ops_before_read_nonzero_stops_walk_and_is_returned(void **state)
{
    struct guest *g = *state;
    ptmon_walk w;
    build_chain(g, &CHAIN_4);
    g->stop_hook = EV_BEFORE_READ;
    g->stop_level = 3;
    g->stop_rc = 42;
    assert_int_equal(
        walk_with_ops(g, &CHAIN_4, paging(PTMON_MODE_4LEVEL, NXE, 46), &LOGGING_OPS, &w), 42);
    assert_int_equal(g->nevents, 4); /* level 4: before, read, entry; level 3: before only */
    assert_event(g, 3, EV_BEFORE_READ, 3, CHAIN_4.entry_gpa[3]);
}

static void ops_entry_nonzero_stops_walk_and_is_returned(void **state)
{
    struct guest *g = *state;
    ptmon_walk w;
    build_chain(g, &CHAIN_4);
    g->stop_hook = EV_ENTRY;
    g->stop_level = 2;
    g->stop_rc = PTMON_EBUSY;
    assert_int_equal(
        walk_with_ops(g, &CHAIN_4, paging(PTMON_MODE_4LEVEL, NXE, 46), &LOGGING_OPS, &w),
        PTMON_EBUSY);
    assert_int_equal(g->nevents, 9); /* nothing of level 1 */
    assert_event(g, 8, EV_ENTRY, 2, CHAIN_4.entry_gpa[2]);
}

static void ops_with_null_members_are_skipped(void **state)
{
    struct guest *g = *state;
    const struct pt_walk_ops none = {NULL, NULL};
    const struct pt_walk_ops before_only = {on_before_read, NULL};
    ptmon_walk w;

    build_chain(g, &CHAIN_4);
    assert_int_equal(walk_with_ops(g, &CHAIN_4, paging(PTMON_MODE_4LEVEL, NXE, 46), &none, &w), 0);
    assert_int_equal(w.status, PTMON_WALK_OK);
    assert_int_equal(g->nevents, 4); /* reads only */

    g->nevents = 0;
    assert_int_equal(
        walk_with_ops(g, &CHAIN_4, paging(PTMON_MODE_4LEVEL, NXE, 46), &before_only, &w), 0);
    assert_int_equal(w.status, PTMON_WALK_OK);
    assert_int_equal(g->nevents, 8);
}

static void ops_before_read_sees_entry_outside_ram(void **state)
{
    struct guest *g = *state;
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 46);
    ptmon_walk w;
    reset(g);
    assert_int_equal(pt_walk(&pg, guest_read, g, OUTSIDE_RAM, VA4, &LOGGING_OPS, g, &w),
                     PTMON_ERANGE);
    assert_int_equal(g->nevents, 2); /* no entry callback: there is no entry */
    assert_event(g, 0, EV_BEFORE_READ, 4, OUTSIDE_RAM + 8);
    assert_event(g, 1, EV_READ, 0, OUTSIDE_RAM + 8);
}

static void read_error_other_than_erange_is_returned(void **state)
{
    struct guest *g = *state;
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 46);
    ptmon_walk w;
    build_chain(g, &CHAIN_4);
    g->fail_gpa = CHAIN_4.entry_gpa[2];
    g->fail_rc = PTMON_EIO;
    assert_int_equal(pt_walk(&pg, guest_read, g, CHAIN_4.cr3, CHAIN_4.va, NULL, NULL, &w),
                     PTMON_EIO);
    assert_int_equal(g->nevents, 3);
}

static void walk_zeroes_out_first(void **state)
{
    struct guest *g = *state;
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 46);
    ptmon_walk w, expected;
    memset(&w, 0xAA, sizeof(w));
    memset(&expected, 0, sizeof(expected));
    expected.cr3 = CHAIN_4.cr3;
    expected.va = 0x0000800000000000ull;
    expected.status = PTMON_WALK_NONCANONICAL;
    expected.top_level = 4;
    assert_int_equal(pt_walk(&pg, guest_read, g, expected.cr3, expected.va, NULL, NULL, &w), 0);
    assert_memory_equal(&w, &expected, sizeof(w));
}

static void walk_rejects_null_arguments_and_paging_off(void **state)
{
    struct guest *g = *state;
    ptmon_paging pg = paging(PTMON_MODE_4LEVEL, NXE, 46);
    ptmon_paging off = paging(PTMON_MODE_OFF, 0, 0);
    ptmon_paging automatic = paging(PTMON_MODE_AUTO, 0, 0);
    ptmon_walk w;
    assert_int_equal(pt_walk(NULL, guest_read, g, 0, 0, NULL, NULL, &w), PTMON_EINVAL);
    assert_int_equal(pt_walk(&pg, NULL, g, 0, 0, NULL, NULL, &w), PTMON_EINVAL);
    assert_int_equal(pt_walk(&pg, guest_read, g, 0, 0, NULL, NULL, NULL), PTMON_EINVAL);
    assert_int_equal(pt_walk(&off, guest_read, g, 0, 0, NULL, NULL, &w), PTMON_ENOTSUP);
    assert_int_equal(pt_walk(&automatic, guest_read, g, 0, 0, NULL, NULL, &w), PTMON_ENOTSUP);
    assert_int_equal(g->nevents, 0);
}

#define WALK_TEST(name) cmocka_unit_test_setup_teardown(name, guest_setup, guest_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* per-mode helpers */
        WALK_TEST(entry_size_per_mode),
        WALK_TEST(level_span_per_mode),
        WALK_TEST(root_gpa_per_mode),
        WALK_TEST(index_per_mode),
        WALK_TEST(entry_gpa_per_mode),
        WALK_TEST(va_valid_per_mode),
        WALK_TEST(decode_not_present_ignores_every_other_bit),
        WALK_TEST(decode_level_missing_from_mode_is_reserved),
        /* translations */
        WALK_TEST(bit32_4k_page_translates),
        WALK_TEST(bit32_4m_page_with_pse_translates),
        WALK_TEST(bit32_4m_page_pse36_gives_address_bits_39_to_32),
        WALK_TEST(bit32_pde_with_ps_but_pse_off_walks_to_page_table),
        WALK_TEST(bit32_entries_have_no_reserved_bits),
        WALK_TEST(bit32_entries_are_read_as_4_bytes_and_zero_extended),
        WALK_TEST(pae_4k_page_translates),
        WALK_TEST(pae_2m_page_translates_above_4g),
        WALK_TEST(fourlevel_4k_page_translates),
        WALK_TEST(fourlevel_2m_page_translates),
        WALK_TEST(fourlevel_1g_page_translates),
        WALK_TEST(fourlevel_pte_bit7_is_pat_not_ps),
        WALK_TEST(fourlevel_bits_62_to_52_are_ignored),
        WALK_TEST(fivelevel_4k_page_translates),
        WALK_TEST(fivelevel_2m_page_translates),
        WALK_TEST(fivelevel_1g_page_translates),
        WALK_TEST(fivelevel_bits_62_to_52_are_ignored),
        /* not present */
        WALK_TEST(bit32_not_present_stops_at_each_level),
        WALK_TEST(pae_not_present_stops_at_each_level),
        WALK_TEST(fourlevel_not_present_stops_at_each_level),
        WALK_TEST(fivelevel_not_present_stops_at_each_level),
        /* reserved bits */
        WALK_TEST(fourlevel_pml4e_with_ps_bit_is_reserved),
        WALK_TEST(fivelevel_pml5e_with_ps_bit_is_reserved),
        WALK_TEST(fivelevel_pml4e_with_ps_bit_is_reserved),
        WALK_TEST(pae_pdpte_with_ps_bit_is_reserved),
        WALK_TEST(pae_pdpte_bits_1_2_and_5_to_8_are_reserved),
        WALK_TEST(pae_pdpte_bit63_is_reserved_even_with_nxe),
        WALK_TEST(pae_pdpte_address_above_maxphyaddr_is_reserved),
        WALK_TEST(pae_pde_and_pte_bits_62_to_maxphyaddr_are_reserved),
        WALK_TEST(pae_nx_with_nxe_off_is_reserved),
        WALK_TEST(pae_2m_page_bits_20_to_13_are_reserved),
        WALK_TEST(fourlevel_address_above_maxphyaddr_is_reserved_at_each_level),
        WALK_TEST(fivelevel_address_above_maxphyaddr_is_reserved_at_each_level),
        WALK_TEST(fourlevel_nx_with_nxe_off_is_reserved_at_each_level),
        WALK_TEST(fivelevel_nx_with_nxe_off_is_reserved_at_each_level),
        WALK_TEST(fourlevel_2m_page_bits_20_to_13_are_reserved),
        WALK_TEST(fourlevel_1g_page_bits_29_to_13_are_reserved),
        WALK_TEST(fivelevel_2m_page_bits_20_to_13_are_reserved),
        WALK_TEST(fivelevel_1g_page_bits_29_to_13_are_reserved),
        WALK_TEST(bit32_4m_page_bit21_is_always_reserved),
        WALK_TEST(bit32_4m_page_pse36_bits_above_maxphyaddr_are_reserved),
        WALK_TEST(reserved_bits_lists_every_offending_bit_and_only_those),
        /* outside RAM */
        WALK_TEST(root_outside_ram_in_every_mode_is_an_error),
        WALK_TEST(table_outside_ram_stops_at_its_pointer_in_every_mode_and_level),
        WALK_TEST(fourlevel_table_outside_ram_at_lower_level),
        WALK_TEST(bit32_page_table_outside_ram),
        /* VAs the mode cannot translate */
        WALK_TEST(fourlevel_noncanonical_va_reads_nothing),
        WALK_TEST(fivelevel_noncanonical_va_reads_nothing),
        WALK_TEST(bit32_and_pae_refuse_va_at_or_above_4g),
        /* CR3 */
        WALK_TEST(fourlevel_cr3_pcid_and_bit63_are_ignored),
        WALK_TEST(fivelevel_cr3_pcid_and_bit63_are_ignored),
        WALK_TEST(bit32_cr3_low_bits_are_ignored),
        WALK_TEST(pae_cr3_bits_5_to_11_select_the_pdpt),
        /* effective rights */
        WALK_TEST(bit32_w_and_u_are_anded_over_levels),
        WALK_TEST(pae_w_and_u_are_anded_over_pd_and_pt),
        WALK_TEST(fourlevel_w_and_u_are_anded_over_levels),
        WALK_TEST(fivelevel_w_and_u_are_anded_over_levels),
        WALK_TEST(pae_nx_is_ored_over_levels),
        WALK_TEST(fourlevel_nx_is_ored_over_levels),
        WALK_TEST(fivelevel_nx_is_ored_over_levels),
        WALK_TEST(pae_pdpte_contributes_w_and_u),
        WALK_TEST(bit32_never_reports_nx),
        WALK_TEST(nx_right_needs_nxe),
        WALK_TEST(rights_accumulate_when_walk_stops_early),
        WALK_TEST(rights_are_zero_when_top_entry_stops_walk),
        /* self-maps, loops, GPA 0 */
        WALK_TEST(fourlevel_self_map_walk_terminates_at_pml4_frame),
        WALK_TEST(fivelevel_self_map_walk_terminates_at_pml5_frame),
        WALK_TEST(fourlevel_pdpte_pointing_back_to_pml4_terminates),
        WALK_TEST(tables_and_page_at_gpa_zero_are_walked),
        /* hooks and errors */
        WALK_TEST(ops_before_read_precedes_each_read_top_down),
        WALK_TEST(ops_entry_sees_the_decoded_entry),
        WALK_TEST(ops_before_read_nonzero_stops_walk_and_is_returned),
        WALK_TEST(ops_entry_nonzero_stops_walk_and_is_returned),
        WALK_TEST(ops_with_null_members_are_skipped),
        WALK_TEST(ops_before_read_sees_entry_outside_ram),
        WALK_TEST(read_error_other_than_erange_is_returned),
        WALK_TEST(walk_zeroes_out_first),
        WALK_TEST(walk_rejects_null_arguments_and_paging_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
