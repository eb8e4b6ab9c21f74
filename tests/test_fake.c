/*
 * test_fake.c — the fake guest (src/backends/fake/) against its contract in <ptmon/fake.h>.
 *
 * Covers creation, the frame allocator, RAM access, the page-table builder in every paging
 * mode, the simulated CPU walk (A/D bits, rights), guest stores and their events (PRE and POST
 * delivery), the glue implementation, call counters and fault injection. Expected entry values
 * are written out by hand, never computed with the fake's own format code.
 *
 * Every test creates its own fake guests (no global mutable state).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ptmon/fake.h>

#include <stdio.h>
#include <string.h>

#define SIZE_4K  (1ull << 12)
#define SIZE_2M  (1ull << 21)
#define SIZE_4M  (1ull << 22)
#define SIZE_1G  (1ull << 30)
#define GIB4     (1ull << 32)
#define FRAME(n) ((uint64_t)(n) << 12)
#define BIT(n)   (1ull << (n))

#define P   PTMON_PTE_P
#define RW  PTMON_PTE_RW
#define US  PTMON_PTE_US
#define A   PTMON_PTE_A
#define D   PTMON_PTE_D
#define PS  PTMON_PTE_PS
#define G   PTMON_PTE_G
#define NX  PTMON_PTE_NX
#define PWU (P | RW | US)

#define NXE PTMON_PAGING_NXE
#define PSE PTMON_PAGING_PSE

#define RAM_DEFAULT  (1ull << 20) /* 256 frames */
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------------------------ */

static ptmon_fake *new_fake_full(enum ptmon_paging_mode mode, unsigned flags, uint64_t ram,
                                 enum ptmon_delivery delivery, unsigned nr_vcpus)
{
    ptmon_fake_config cfg = PTMON_FAKE_CONFIG_INIT;
    cfg.ram_size = ram;
    cfg.paging.mode = mode;
    cfg.paging.flags = flags;
    cfg.delivery = delivery;
    cfg.nr_vcpus = nr_vcpus;
    ptmon_fake *fake = NULL;
    assert_int_equal(ptmon_fake_create(&cfg, &fake), 0);
    assert_non_null(fake);
    return fake;
}

static ptmon_fake *new_fake(enum ptmon_paging_mode mode, unsigned flags)
{
    return new_fake_full(mode, flags, RAM_DEFAULT, PTMON_DELIVERY_PRE, 2);
}

static uint64_t new_root(ptmon_fake *fake)
{
    uint64_t cr3 = 0;
    assert_int_equal(ptmon_fake_new_root(fake, &cr3), 0);
    return cr3;
}

static uint64_t entry_at(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level)
{
    uint64_t value = 0xdeadbeef;
    assert_int_equal(ptmon_fake_get_entry(fake, cr3, va, level, &value), 0);
    return value;
}

static uint64_t entry_gpa(ptmon_fake *fake, uint64_t cr3, uint64_t va, unsigned level)
{
    uint64_t gpa = 0;
    assert_int_equal(ptmon_fake_entry_gpa(fake, cr3, va, level, &gpa), 0);
    return gpa;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (unsigned i = 8; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static uint8_t peek8(ptmon_fake *fake, uint64_t gpa)
{
    uint8_t b = 0;
    assert_int_equal(ptmon_fake_peek(fake, gpa, &b, 1), 0);
    return b;
}

/* ---- a handler that records events and answers as told -------------------------------------- */

#define REC_MAX_EVENTS 16
#define REC_MAX_BYTES  64

enum rec_emulate { REC_NO_EMULATE = 0, REC_EMULATE_BYTES, REC_EMULATE_PENDING };

struct rec_event {
    ptmon_mem_event ev;
    int had_bytes;
    uint8_t bytes[REC_MAX_BYTES]; /* the event's bytes (first REC_MAX_BYTES) */
    uint8_t mem[REC_MAX_BYTES];   /* guest memory at the event's gpa while the handler ran */
};

struct recorder {
    ptmon_fake *fake;
    int answer;               /* returned by the handler */
    enum rec_emulate emulate; /* what the handler does through the glue before answering */
    int emulate_rc;           /* emulate_write's result */
    uint8_t written[REC_MAX_BYTES];
    unsigned n;
    struct rec_event seen[REC_MAX_EVENTS];
};

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static int record(void *ctx, const ptmon_mem_event *ev)
{
    struct recorder *rec = ctx;
    assert_true(rec->n < REC_MAX_EVENTS);
    struct rec_event *r = &rec->seen[rec->n++];
    size_t len = min_size(ev->size, REC_MAX_BYTES);
    r->ev = *ev;
    r->had_bytes = ev->bytes != NULL;
    if (ev->bytes)
        memcpy(r->bytes, ev->bytes, len);
    assert_int_equal(ptmon_fake_peek(rec->fake, ev->gpa, r->mem, len), 0);
    if (rec->emulate != REC_NO_EMULATE) {
        const ptmon_glue *glue = ptmon_fake_glue(rec->fake);
        const void *bytes = rec->emulate == REC_EMULATE_BYTES ? ev->bytes : NULL;
        rec->emulate_rc = glue->emulate_write(glue->backend, ev->vcpu, ev->gpa, ev->size, bytes,
                                              ev->size <= REC_MAX_BYTES ? rec->written : NULL);
    }
    return rec->answer;
}

static void recorder_attach(struct recorder *rec, ptmon_fake *fake, int answer)
{
    memset(rec, 0, sizeof(*rec));
    rec->fake = fake;
    rec->answer = answer;
    ptmon_fake_set_handler(fake, record, rec);
}

/* ---- 1. creation -------------------------------------------------------------------------- */

static void create_rejects_bad_configs_with_the_documented_error(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        unsigned version;
        uint64_t ram;
        enum ptmon_paging_mode mode;
        unsigned nr_vcpus;
        int expected;
    } cases[] = {
        {"ram 0", PTMON_FAKE_CONFIG_VERSION, 0, PTMON_MODE_4LEVEL, 1, PTMON_EINVAL},
        {"ram 4097", PTMON_FAKE_CONFIG_VERSION, 4097, PTMON_MODE_4LEVEL, 1, PTMON_EINVAL},
        {"ram 100", PTMON_FAKE_CONFIG_VERSION, 100, PTMON_MODE_4LEVEL, 1, PTMON_EINVAL},
        {"ram > 64 GiB", PTMON_FAKE_CONFIG_VERSION, (64ull << 30) + SIZE_4K, PTMON_MODE_4LEVEL, 1,
         PTMON_EINVAL},
        {"version 0", 0, RAM_DEFAULT, PTMON_MODE_4LEVEL, 1, PTMON_EVERSION},
        {"version 2", PTMON_FAKE_CONFIG_VERSION + 1, RAM_DEFAULT, PTMON_MODE_4LEVEL, 1,
         PTMON_EVERSION},
        {"0 vcpus", PTMON_FAKE_CONFIG_VERSION, RAM_DEFAULT, PTMON_MODE_4LEVEL, 0, PTMON_EINVAL},
        {"65 vcpus", PTMON_FAKE_CONFIG_VERSION, RAM_DEFAULT, PTMON_MODE_4LEVEL, 65, PTMON_EINVAL},
        {"mode off", PTMON_FAKE_CONFIG_VERSION, RAM_DEFAULT, PTMON_MODE_OFF, 1, PTMON_ENOTSUP},
        {"mode auto", PTMON_FAKE_CONFIG_VERSION, RAM_DEFAULT, PTMON_MODE_AUTO, 1, PTMON_ENOTSUP},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        ptmon_fake_config cfg = PTMON_FAKE_CONFIG_INIT;
        cfg.version = cases[i].version;
        cfg.ram_size = cases[i].ram;
        cfg.paging.mode = cases[i].mode;
        cfg.nr_vcpus = cases[i].nr_vcpus;
        ptmon_fake *fake = (ptmon_fake *)&cfg; /* must be reset to NULL */
        print_message("case: %s\n", cases[i].what);
        assert_int_equal(ptmon_fake_create(&cfg, &fake), cases[i].expected);
        assert_null(fake);
    }
    ptmon_fake *fake = NULL;
    assert_int_equal(ptmon_fake_create(NULL, &fake), PTMON_EINVAL);
    ptmon_fake_config cfg = PTMON_FAKE_CONFIG_INIT;
    assert_int_equal(ptmon_fake_create(&cfg, NULL), PTMON_EINVAL);
    /* Paging values and delivery. */
    static const struct {
        unsigned flags, maxphyaddr, delivery;
        uint64_t ram;
    } more[] = {
        {1u << 2, 46, PTMON_DELIVERY_PRE, RAM_DEFAULT},
        {0, 31, PTMON_DELIVERY_PRE, RAM_DEFAULT},
        {0, 53, PTMON_DELIVERY_PRE, RAM_DEFAULT},
        {0, 32, PTMON_DELIVERY_PRE, GIB4}, /* RAM must lie below 2^maxphyaddr */
        {0, 46, 2, RAM_DEFAULT},
    };
    for (size_t i = 0; i < ARRAY_LEN(more); i++) {
        ptmon_fake_config bad = PTMON_FAKE_CONFIG_INIT;
        bad.paging.flags = more[i].flags;
        bad.paging.maxphyaddr = more[i].maxphyaddr;
        bad.delivery = (enum ptmon_delivery)more[i].delivery;
        bad.ram_size = more[i].ram;
        assert_int_equal(ptmon_fake_create(&bad, &fake), PTMON_EINVAL);
        assert_null(fake);
    }
}

static void create_accepts_boundary_configs_and_destroy_ignores_null(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake_full(PTMON_MODE_5LEVEL, NXE, SIZE_4K, PTMON_DELIVERY_POST, 64);
    const ptmon_fake_config *cfg = ptmon_fake_get_config(fake);
    assert_int_equal(cfg->ram_size, SIZE_4K);
    assert_int_equal(cfg->nr_vcpus, 64);
    assert_int_equal(cfg->paging.mode, PTMON_MODE_5LEVEL);
    assert_int_equal(cfg->delivery, PTMON_DELIVERY_POST);
    const ptmon_glue *glue = ptmon_fake_glue(fake);
    assert_int_equal(glue->version, PTMON_GLUE_VERSION);
    assert_ptr_equal(glue->backend, fake);
    assert_int_equal(ptmon_fake_rights(fake, 0), PTMON_ACCESS_RWX);
    assert_int_equal(ptmon_fake_count_write_protected(fake), 0);
    ptmon_fake_destroy(fake);
    ptmon_fake_destroy(NULL);
}

/* ---- 2. frames and RAM -------------------------------------------------------------------- */

static void alloc_frame_hands_out_lowest_free_frame_never_frame_0(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    uint64_t gpa = 0;
    for (unsigned i = 1; i <= 3; i++) {
        assert_int_equal(ptmon_fake_alloc_frame(fake, &gpa), 0);
        assert_int_equal(gpa, FRAME(i));
    }
    /* Freed frames keep their contents until handed out again, then come back zeroed. */
    static const uint8_t junk[4] = {1, 2, 3, 4};
    assert_int_equal(ptmon_fake_poke(fake, FRAME(2) + 100, junk, sizeof(junk)), 0);
    assert_int_equal(ptmon_fake_free_frame(fake, FRAME(2)), 0);
    assert_int_equal(peek8(fake, FRAME(2) + 101), 2);
    assert_int_equal(ptmon_fake_free_frame(fake, FRAME(2)), PTMON_ENOENT);
    assert_int_equal(ptmon_fake_alloc_frame(fake, &gpa), 0);
    assert_int_equal(gpa, FRAME(2));
    assert_int_equal(peek8(fake, FRAME(2) + 101), 0);
    /* A claimed frame is skipped by the allocator. */
    assert_int_equal(ptmon_fake_claim_frame(fake, FRAME(4) + 123), 0);
    assert_int_equal(ptmon_fake_alloc_frame(fake, &gpa), 0);
    assert_int_equal(gpa, FRAME(5));
    assert_int_equal(ptmon_fake_alloc_frame(fake, NULL), PTMON_EINVAL);
    ptmon_fake_destroy(fake);
}

static void claim_frame_takes_frame_0_once_and_checks_range(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    static const uint8_t junk[2] = {0xaa, 0xbb};
    assert_int_equal(ptmon_fake_poke(fake, 10, junk, sizeof(junk)), 0);
    assert_int_equal(ptmon_fake_claim_frame(fake, 0), 0);
    assert_int_equal(peek8(fake, 10), 0); /* claiming zeroes the frame */
    assert_int_equal(ptmon_fake_claim_frame(fake, 0), PTMON_EEXIST);
    assert_int_equal(ptmon_fake_claim_frame(fake, RAM_DEFAULT), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_free_frame(fake, RAM_DEFAULT), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_free_frame(fake, FRAME(7)), PTMON_ENOENT);
    assert_int_equal(ptmon_fake_free_frame(fake, 0), 0);
    assert_int_equal(ptmon_fake_claim_frame(fake, 0), 0);
    uint64_t gpa = 0;
    assert_int_equal(ptmon_fake_alloc_frame(fake, &gpa), 0);
    assert_int_equal(gpa, FRAME(1));
    ptmon_fake_destroy(fake);
}

static void alloc_frame_exhaustion_returns_enomem_until_a_frame_is_freed(void **state)
{
    (void)state;
    /* 130 frames: more than two bitmap words, the last one partial. */
    ptmon_fake *fake = new_fake_full(PTMON_MODE_4LEVEL, 0, FRAME(130), PTMON_DELIVERY_PRE, 1);
    uint64_t gpa = 0;
    for (unsigned i = 1; i < 130; i++) {
        assert_int_equal(ptmon_fake_alloc_frame(fake, &gpa), 0);
        assert_int_equal(gpa, FRAME(i));
    }
    assert_int_equal(ptmon_fake_alloc_frame(fake, &gpa), PTMON_ENOMEM);
    assert_int_equal(ptmon_fake_new_root(fake, &gpa), PTMON_ENOMEM);
    assert_int_equal(ptmon_fake_claim_frame(fake, 0), 0); /* frame 0 was never handed out */
    assert_int_equal(ptmon_fake_free_frame(fake, FRAME(100)), 0);
    assert_int_equal(ptmon_fake_free_frame(fake, FRAME(70)), 0);
    assert_int_equal(ptmon_fake_alloc_frame(fake, &gpa), 0);
    assert_int_equal(gpa, FRAME(70));
    assert_int_equal(ptmon_fake_alloc_frame(fake, &gpa), 0);
    assert_int_equal(gpa, FRAME(100));
    assert_int_equal(ptmon_fake_alloc_frame(fake, &gpa), PTMON_ENOMEM);
    ptmon_fake_destroy(fake);
}

static void peek_poke_outside_ram_return_erange_and_write_nothing(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    static const uint8_t four[4] = {0x11, 0x22, 0x33, 0x44};
    uint8_t buf[8] = {0};
    const uint64_t top = RAM_DEFAULT;
    assert_int_equal(ptmon_fake_poke(fake, top - 2, four, 4), PTMON_ERANGE);
    assert_int_equal(peek8(fake, top - 2), 0);
    assert_int_equal(peek8(fake, top - 1), 0);
    assert_int_equal(ptmon_fake_poke(fake, UINT64_MAX - 1, four, 4), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_poke(fake, top, four, 1), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_peek(fake, top - 2, buf, 4), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_peek(fake, top, buf, 1), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_peek(fake, UINT64_MAX, buf, 2), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_peek(fake, top, buf, 0), 0);
    assert_int_equal(ptmon_fake_poke(fake, top - 4, four, 4), 0);
    assert_int_equal(ptmon_fake_peek(fake, top - 4, buf, 4), 0);
    assert_memory_equal(buf, four, 4);
    ptmon_fake_destroy(fake);
}

static void peek64_reads_little_endian_and_gives_0_outside_ram(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    static const uint8_t bytes[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    assert_int_equal(ptmon_fake_poke(fake, 0x1234, bytes, 8), 0);
    assert_int_equal(ptmon_fake_peek64(fake, 0x1234), 0xefcdab8967452301ull);
    assert_int_equal(ptmon_fake_poke(fake, RAM_DEFAULT - 8, bytes, 8), 0);
    assert_int_equal(ptmon_fake_peek64(fake, RAM_DEFAULT - 8), 0xefcdab8967452301ull);
    assert_int_equal(ptmon_fake_peek64(fake, RAM_DEFAULT - 4), 0);
    assert_int_equal(ptmon_fake_peek64(fake, UINT64_MAX - 3), 0);
    ptmon_fake_destroy(fake);
}

/* ---- 3. the page-table builder ------------------------------------------------------------ */

struct map_op {
    uint64_t va, gpa, size, bits;
};

/** One entry the maps must have produced: where it is and its exact raw value. */
struct expect_entry {
    uint64_t va;
    unsigned level;
    uint64_t gpa;
    uint64_t value;
};

struct builder_case {
    const char *name;
    enum ptmon_paging_mode mode;
    unsigned flags;
    struct map_op maps[4];
    struct expect_entry entries[12];
};

/*
 * Frames are handed out lowest first: the root is frame 1, the tables the first map creates
 * follow from the top level down. Every VA below is chosen so its index at each level is easy
 * to read: 1 everywhere for the first 4 KiB page.
 */
static const struct builder_case BUILDER_CASES[] = {
    {"32-bit PSE",
     PTMON_MODE_32BIT,
     PSE,
     {{0x00401000, 0x5000, SIZE_4K, RW | US | G},
      {0x00800000, 0x00c00000, SIZE_4M, RW | BIT(12)},
      /* PSE-36: GPA bits 39:32 (0xab) go to PDE bits 20:13. */
      {0x00c00000, 0xab00400000ull, SIZE_4M, US}},
     {{0x00401000, 2, 0x1004, 0x2000 | PWU},
      {0x00401000, 1, 0x2004, 0x5000 | P | RW | US | G},
      {0x00800000, 2, 0x1008, 0x00c01083},
      {0x00c00000, 2, 0x100c, 0x00400000 | (0xabull << 13) | PS | US | P}}},
    {"PAE",
     PTMON_MODE_PAE,
     NXE,
     {{0x40201000, 0x7000, SIZE_4K, RW | NX}, {0x40400000, 0x00600000, SIZE_2M, US | G | BIT(12)}},
     {{0x40201000, 3, 0x1008, 0x2000 | P}, /* a PDPTE has no RW/US */
      {0x40201000, 2, 0x2008, 0x3000 | PWU},
      {0x40201000, 1, 0x3008, NX | 0x7000 | RW | P},
      {0x40400000, 2, 0x2010, 0x00600000 | BIT(12) | G | PS | US | P}}},
    {"4-level",
     PTMON_MODE_4LEVEL,
     NXE,
     {{0x8040201000ull, 0x9000, SIZE_4K, RW | US | NX},
      {0x8040400000ull, 0x200000, SIZE_2M, RW},
      {0x8080000000ull, 0x40000000, SIZE_1G, RW | NX | BIT(12)},
      {0xffff800000001000ull, 0xa000, SIZE_4K, 0}},
     {{0x8040201000ull, 4, 0x1008, 0x2000 | PWU},
      {0x8040201000ull, 3, 0x2008, 0x3000 | PWU},
      {0x8040201000ull, 2, 0x3008, 0x4000 | PWU},
      {0x8040201000ull, 1, 0x4008, NX | 0x9000 | RW | US | P},
      {0x8040400000ull, 2, 0x3010, 0x200000 | PS | RW | P},
      {0x8080000000ull, 3, 0x2010, NX | 0x40000000 | BIT(12) | PS | RW | P},
      {0xffff800000001000ull, 4, 0x1800, 0x5000 | PWU},
      {0xffff800000001000ull, 1, 0x7008, 0xa000 | P}}},
    {"5-level",
     PTMON_MODE_5LEVEL,
     0,
     {{0x0001008040201000ull, 0xa000, SIZE_4K, RW},
      {0x0001008040400000ull, 0x400000, SIZE_2M, 0},
      {0x0001008080000000ull, 0x80000000, SIZE_1G, US}},
     {{0x0001008040201000ull, 5, 0x1008, 0x2000 | PWU},
      {0x0001008040201000ull, 4, 0x2008, 0x3000 | PWU},
      {0x0001008040201000ull, 3, 0x3008, 0x4000 | PWU},
      {0x0001008040201000ull, 2, 0x4008, 0x5000 | PWU},
      {0x0001008040201000ull, 1, 0x5008, 0xa000 | RW | P},
      {0x0001008040400000ull, 2, 0x4010, 0x400000 | PS | P},
      {0x0001008080000000ull, 3, 0x3010, 0x80000000 | PS | US | P}}},
};

static void map_each_page_size_gives_exact_raw_entries_in_every_mode(void **state)
{
    (void)state;
    for (size_t c = 0; c < ARRAY_LEN(BUILDER_CASES); c++) {
        const struct builder_case *bc = &BUILDER_CASES[c];
        print_message("mode: %s\n", bc->name);
        ptmon_fake *fake = new_fake(bc->mode, bc->flags);
        uint64_t cr3 = new_root(fake);
        assert_int_equal(cr3, FRAME(1));
        for (size_t i = 0; i < ARRAY_LEN(bc->maps) && bc->maps[i].size; i++) {
            const struct map_op *m = &bc->maps[i];
            assert_int_equal(ptmon_fake_map(fake, cr3, m->va, m->gpa, m->size, m->bits), 0);
        }
        for (size_t i = 0; i < ARRAY_LEN(bc->entries) && bc->entries[i].level; i++) {
            const struct expect_entry *e = &bc->entries[i];
            assert_int_equal(entry_gpa(fake, cr3, e->va, e->level), e->gpa);
            assert_int_equal(entry_at(fake, cr3, e->va, e->level), e->value);
            uint64_t raw = bc->mode == PTMON_MODE_32BIT ? 0 : ptmon_fake_peek64(fake, e->gpa);
            if (bc->mode == PTMON_MODE_32BIT) {
                uint8_t b[4];
                assert_int_equal(ptmon_fake_peek(fake, e->gpa, b, 4), 0);
                raw = (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
                      (uint64_t)b[3] << 24;
            }
            assert_int_equal(raw, e->value);
        }
        ptmon_fake_destroy(fake);
    }
}

static void map_translates_through_the_cpu_walk_in_every_mode(void **state)
{
    (void)state;
    for (size_t c = 0; c < ARRAY_LEN(BUILDER_CASES); c++) {
        const struct builder_case *bc = &BUILDER_CASES[c];
        print_message("mode: %s\n", bc->name);
        ptmon_fake *fake = new_fake(bc->mode, bc->flags);
        uint64_t cr3 = new_root(fake);
        for (size_t i = 0; i < ARRAY_LEN(bc->maps) && bc->maps[i].size; i++) {
            const struct map_op *m = &bc->maps[i];
            assert_int_equal(ptmon_fake_map(fake, cr3, m->va, m->gpa, m->size, m->bits), 0);
            uint64_t off = m->size - 8, gpa = 0;
            assert_int_equal(
                ptmon_fake_cpu_access(fake, cr3, m->va + off, PTMON_FAKE_CPU_READ, &gpa), 0);
            assert_int_equal(gpa, m->gpa + off);
        }
        ptmon_fake_destroy(fake);
    }
}

static void unmap_zeroes_the_whole_leaf_entry_and_keeps_the_tables(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, NXE);
    uint64_t cr3 = new_root(fake);
    const uint64_t va = 0x8040201000ull, va2m = 0x8040400000ull;
    assert_int_equal(ptmon_fake_map(fake, cr3, va, 0x9000, SIZE_4K, RW | A | D | G), 0);
    assert_int_equal(ptmon_fake_map(fake, cr3, va2m, 0x200000, SIZE_2M, RW), 0);
    assert_int_equal(ptmon_fake_unmap(fake, cr3, va), 0);
    assert_int_equal(entry_at(fake, cr3, va, 1), 0);
    assert_int_equal(entry_at(fake, cr3, va, 2), 0x4000 | PWU);
    assert_int_equal(ptmon_fake_unmap(fake, cr3, va2m + 0x5000), 0); /* any VA in the page */
    assert_int_equal(entry_at(fake, cr3, va2m, 2), 0);
    assert_int_equal(ptmon_fake_unmap(fake, cr3, va), PTMON_ENOTPRESENT);
    assert_int_equal(ptmon_fake_unmap(fake, cr3, 0x0000800000000000ull), PTMON_EINVAL);
    uint64_t gpa;
    assert_int_equal(ptmon_fake_cpu_access(fake, cr3, va, PTMON_FAKE_CPU_READ, &gpa),
                     PTMON_ENOTPRESENT);
    ptmon_fake_destroy(fake);
}

static void split_2m_page_keeps_bits_moves_pat_and_merge_restores_it(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, NXE);
    uint64_t cr3 = new_root(fake);
    const uint64_t va = 0x8040400000ull;
    const uint64_t large = NX | 0x200000 | BIT(12) | G | PS | D | A | RW | P;
    assert_int_equal(
        ptmon_fake_map(fake, cr3, va, 0x200000, SIZE_2M, NX | BIT(12) | G | D | A | RW), 0);
    assert_int_equal(entry_at(fake, cr3, va, 2), large);
    uint64_t table = 0;
    assert_int_equal(ptmon_fake_split(fake, cr3, va, 0, &table), 0);
    assert_int_equal(table, FRAME(4)); /* after the root, PDPT and PD */
    assert_int_equal(entry_at(fake, cr3, va, 2), table | A | PWU);
    /* PAT moves to bit 7 of each PTE; everything else is kept. */
    assert_int_equal(entry_at(fake, cr3, va, 1), NX | 0x200000 | G | BIT(7) | D | A | RW | P);
    assert_int_equal(entry_at(fake, cr3, va + 0x1ff000, 1),
                     NX | 0x3ff000 | G | BIT(7) | D | A | RW | P);
    assert_int_equal(ptmon_fake_peek64(fake, table + 8 * 17),
                     NX | 0x211000 | G | BIT(7) | D | A | RW | P);
    uint64_t gpa;
    assert_int_equal(ptmon_fake_cpu_access(fake, cr3, va + 0x12345, PTMON_FAKE_CPU_READ, &gpa), 0);
    assert_int_equal(gpa, 0x212345);
    assert_int_equal(ptmon_fake_merge(fake, cr3, va, 2), 0);
    assert_int_equal(entry_at(fake, cr3, va, 2), large);
    ptmon_fake_destroy(fake);
}

static void split_with_clear_p_makes_not_present_ptes_and_merge_refuses_them(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_PAE, NXE);
    uint64_t cr3 = new_root(fake);
    const uint64_t va = 0x40400000;
    assert_int_equal(ptmon_fake_map(fake, cr3, va, 0x600000, SIZE_2M, RW | US), 0);
    uint64_t table = 0;
    assert_int_equal(ptmon_fake_split(fake, cr3, va + 0x3000, P, &table), 0);
    assert_int_equal(entry_at(fake, cr3, va, 2), table | PWU); /* no A: the page had none */
    assert_int_equal(entry_at(fake, cr3, va, 1), 0x600000 | RW | US);
    assert_int_equal(entry_at(fake, cr3, va + 0x1ff000, 1), 0x7ff000 | RW | US);
    uint64_t gpa;
    assert_int_equal(ptmon_fake_cpu_access(fake, cr3, va, PTMON_FAKE_CPU_READ, &gpa),
                     PTMON_ENOTPRESENT);
    assert_int_equal(ptmon_fake_merge(fake, cr3, va, 2), PTMON_ENOTPRESENT);
    /* Once the first PTE is present (at an unaligned frame) merge rounds down. */
    assert_int_equal(ptmon_fake_set_entry(fake, cr3, va, 1, 0x805000 | NX | P), 0);
    assert_int_equal(ptmon_fake_merge(fake, cr3, va, 2), 0);
    assert_int_equal(entry_at(fake, cr3, va, 2), NX | 0x800000 | PS | P);
    assert_int_equal(ptmon_fake_merge(fake, cr3, va, 2), PTMON_ENOTPRESENT); /* now a leaf */
    assert_int_equal(ptmon_fake_merge(fake, cr3, va, 3), PTMON_EINVAL);      /* no 1G in PAE */
    assert_int_equal(ptmon_fake_merge(fake, cr3, va, 1), PTMON_EINVAL);
    ptmon_fake_destroy(fake);
}

static void split_1g_page_gives_2m_pages_and_merge_at_level_3_restores_it(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_5LEVEL, 0);
    uint64_t cr3 = new_root(fake);
    const uint64_t va = 0x0001008080000000ull;
    const uint64_t large = 0x80000000 | BIT(12) | PS | US | RW | P;
    assert_int_equal(ptmon_fake_map(fake, cr3, va, 0x80000000, SIZE_1G, BIT(12) | US | RW), 0);
    uint64_t table = 0;
    assert_int_equal(ptmon_fake_split(fake, cr3, va, 0, &table), 0);
    assert_int_equal(entry_at(fake, cr3, va, 3), table | PWU);
    assert_int_equal(entry_at(fake, cr3, va, 2), large);
    assert_int_equal(entry_at(fake, cr3, va + 511 * SIZE_2M, 2),
                     (0x80000000 + 511 * SIZE_2M) | BIT(12) | PS | US | RW | P);
    assert_int_equal(ptmon_fake_split(fake, cr3, va, 0, NULL), 0); /* the first 2M page */
    assert_int_equal(entry_at(fake, cr3, va + SIZE_4K, 1), 0x80001000 | BIT(7) | US | RW | P);
    assert_int_equal(ptmon_fake_split(fake, cr3, va, 0, NULL), PTMON_EINVAL); /* 4 KiB */
    assert_int_equal(ptmon_fake_merge(fake, cr3, va, 2), 0);
    assert_int_equal(ptmon_fake_merge(fake, cr3, va, 3), 0);
    assert_int_equal(entry_at(fake, cr3, va, 3), large);
    ptmon_fake_destroy(fake);
}

static void split_32bit_4m_page_below_4g_works_above_4g_is_einval(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_32BIT, PSE);
    uint64_t cr3 = new_root(fake);
    assert_int_equal(ptmon_fake_map(fake, cr3, 0x00800000, 0x00c00000, SIZE_4M, RW | BIT(12)), 0);
    assert_int_equal(ptmon_fake_map(fake, cr3, 0x00c00000, 0xab00400000ull, SIZE_4M, 0), 0);
    uint64_t table = 0;
    assert_int_equal(ptmon_fake_split(fake, cr3, 0x00800000, 0, &table), 0);
    assert_int_equal(entry_at(fake, cr3, 0x00800000, 2), table | PWU);
    assert_int_equal(entry_at(fake, cr3, 0x00800000, 1), 0x00c00000 | BIT(7) | RW | P);
    assert_int_equal(entry_at(fake, cr3, 0x00bff000, 1), 0x00fff000 | BIT(7) | RW | P);
    assert_int_equal(ptmon_fake_split(fake, cr3, 0x00c00000, 0, NULL), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_merge(fake, cr3, 0x00800000, 2), 0);
    assert_int_equal(entry_at(fake, cr3, 0x00800000, 2), 0x00c01083);
    /* The PSE-36 page translates above 4 GiB. */
    uint64_t gpa;
    assert_int_equal(ptmon_fake_cpu_access(fake, cr3, 0x00c00010, PTMON_FAKE_CPU_READ, &gpa), 0);
    assert_int_equal(gpa, 0xab00400010ull);
    ptmon_fake_destroy(fake);
}

static void link_aliases_an_existing_table_and_can_point_outside_ram(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, NXE);
    uint64_t cr3 = new_root(fake);
    const uint64_t va = 0x8040201000ull, alias = 0x10040201000ull; /* PML4 index 1 and 2 */
    assert_int_equal(ptmon_fake_map(fake, cr3, va, 0x9000, SIZE_4K, RW), 0);
    assert_int_equal(ptmon_fake_link(fake, cr3, alias, 4, FRAME(2), RW), 0);
    assert_int_equal(entry_at(fake, cr3, alias, 4), FRAME(2) | RW | P);
    assert_int_equal(entry_gpa(fake, cr3, alias, 1), entry_gpa(fake, cr3, va, 1));
    uint64_t gpa;
    assert_int_equal(ptmon_fake_cpu_access(fake, cr3, alias + 0x10, PTMON_FAKE_CPU_READ, &gpa), 0);
    assert_int_equal(gpa, 0x9010);
    /* A table outside RAM: the builder stores the pointer; walks through it fail. */
    const uint64_t outside = 0x3000000000ull;
    assert_int_equal(ptmon_fake_link(fake, cr3, alias, 4, outside, 0), 0);
    assert_int_equal(entry_at(fake, cr3, alias, 4), outside | P);
    assert_int_equal(ptmon_fake_entry_gpa(fake, cr3, alias, 3, &gpa), 0);
    assert_int_equal(gpa, outside + 8);
    uint64_t value;
    assert_int_equal(ptmon_fake_get_entry(fake, cr3, alias, 3, &value), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_entry_gpa(fake, cr3, alias, 2, &gpa), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_cpu_access(fake, cr3, alias, PTMON_FAKE_CPU_READ, &gpa),
                     PTMON_ENOTPRESENT);
    ptmon_fake_destroy(fake);
}

static void self_map_points_a_root_entry_at_the_root_and_pae_has_none(void **state)
{
    (void)state;
    static const struct {
        enum ptmon_paging_mode mode;
        unsigned index, entries, esize;
    } cases[] = {
        {PTMON_MODE_32BIT, 0x300, 1024, 4},
        {PTMON_MODE_4LEVEL, 0x1ed, 512, 8},
        {PTMON_MODE_5LEVEL, 0x1ff, 512, 8},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        ptmon_fake *fake = new_fake(cases[i].mode, 0);
        uint64_t cr3 = new_root(fake);
        assert_int_equal(ptmon_fake_self_map(fake, cr3, cases[i].index), 0);
        uint8_t raw[8] = {0};
        assert_int_equal(ptmon_fake_peek(fake, cr3 + cases[i].index * cases[i].esize, raw, 8), 0);
        assert_int_equal(raw[0], (cr3 | RW | P) & 0xff);
        assert_int_equal(raw[1], (cr3 >> 8) & 0xff);
        assert_int_equal(raw[2] | raw[3] | raw[4] | raw[5] | raw[6] | raw[7], 0);
        assert_int_equal(ptmon_fake_self_map(fake, cr3, cases[i].entries), PTMON_EINVAL);
        ptmon_fake_destroy(fake);
    }
    ptmon_fake *fake = new_fake(PTMON_MODE_PAE, 0);
    assert_int_equal(ptmon_fake_self_map(fake, new_root(fake), 0), PTMON_ENOTSUP);
    ptmon_fake_destroy(fake);
}

static void map_rejects_invalid_arguments_in_every_mode(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        enum ptmon_paging_mode mode;
        unsigned flags;
        uint64_t va, gpa, size, bits;
    } cases[] = {
        {"misaligned va", PTMON_MODE_4LEVEL, 0, 0x1001, 0x2000, SIZE_4K, 0},
        {"misaligned gpa", PTMON_MODE_4LEVEL, 0, 0x1000, 0x2800, SIZE_4K, 0},
        {"misaligned 2M gpa", PTMON_MODE_PAE, 0, 0x200000, 0x201000, SIZE_2M, 0},
        {"misaligned 1G va", PTMON_MODE_4LEVEL, 0, SIZE_2M, 0, SIZE_1G, 0},
        {"misaligned 4M gpa", PTMON_MODE_32BIT, PSE, SIZE_4M, SIZE_2M, SIZE_4M, 0},
        {"size 0", PTMON_MODE_4LEVEL, 0, 0, 0, 0, 0},
        {"size 8K", PTMON_MODE_4LEVEL, 0, 0, 0, 2 * SIZE_4K, 0},
        {"4M in 4-level", PTMON_MODE_4LEVEL, 0, 0, 0, SIZE_4M, 0},
        {"1G in PAE", PTMON_MODE_PAE, 0, 0, 0, SIZE_1G, 0},
        {"2M in 32-bit", PTMON_MODE_32BIT, PSE, 0, 0, SIZE_2M, 0},
        {"4M without PSE", PTMON_MODE_32BIT, 0, 0, 0, SIZE_4M, 0},
        {"512G in 5-level", PTMON_MODE_5LEVEL, 0, 0, 0, 1ull << 39, 0},
        {"4K address bit 12", PTMON_MODE_4LEVEL, 0, 0x1000, 0x2000, SIZE_4K, BIT(12)},
        {"4K address bit 51", PTMON_MODE_4LEVEL, 0, 0x1000, 0x2000, SIZE_4K, BIT(51)},
        {"2M address bit 13", PTMON_MODE_4LEVEL, 0, 0, 0, SIZE_2M, BIT(13)},
        {"2M with PS", PTMON_MODE_PAE, 0, 0, 0, SIZE_2M, PS},
        {"1G with PS", PTMON_MODE_5LEVEL, 0, 0, 0, SIZE_1G, PS | RW},
        {"32-bit 4K bit 12", PTMON_MODE_32BIT, 0, 0x1000, 0x2000, SIZE_4K, BIT(12)},
        {"32-bit 4K bit 32", PTMON_MODE_32BIT, 0, 0x1000, 0x2000, SIZE_4K, BIT(32)},
        {"32-bit 4M bit 13", PTMON_MODE_32BIT, PSE, 0, 0, SIZE_4M, BIT(13)},
        {"32-bit 4M with PS", PTMON_MODE_32BIT, PSE, 0, 0, SIZE_4M, PS},
        {"32-bit 4M NX", PTMON_MODE_32BIT, PSE, 0, 0, SIZE_4M, NX},
        {"non-canonical 4-level", PTMON_MODE_4LEVEL, 0, 0x0000800000000000ull, 0, SIZE_4K, 0},
        {"non-canonical 4-level high", PTMON_MODE_4LEVEL, 0, 0xfff7800000000000ull, 0, SIZE_4K, 0},
        {"non-canonical 5-level", PTMON_MODE_5LEVEL, 0, 0x0100000000000000ull, 0, SIZE_4K, 0},
        {"va >= 4G in 32-bit", PTMON_MODE_32BIT, 0, GIB4, 0, SIZE_4K, 0},
        {"va >= 4G in PAE", PTMON_MODE_PAE, 0, GIB4 + SIZE_2M, 0, SIZE_2M, 0},
        {"gpa >= 4G in a 32-bit PTE", PTMON_MODE_32BIT, 0, 0x1000, GIB4, SIZE_4K, 0},
        {"gpa beyond maxphyaddr", PTMON_MODE_4LEVEL, 0, 0x1000, 1ull << 46, SIZE_4K, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        print_message("case: %s\n", cases[i].what);
        ptmon_fake *fake = new_fake(cases[i].mode, cases[i].flags);
        uint64_t cr3 = new_root(fake);
        assert_int_equal(
            ptmon_fake_map(fake, cr3, cases[i].va, cases[i].gpa, cases[i].size, cases[i].bits),
            PTMON_EINVAL);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_STORES), 0);
        uint64_t next = 0; /* no table was left allocated */
        assert_int_equal(ptmon_fake_alloc_frame(fake, &next), 0);
        assert_int_equal(next, FRAME(2));
        ptmon_fake_destroy(fake);
    }
}

static void builder_entry_calls_reject_bad_levels_and_missing_paths(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_32BIT, PSE);
    uint64_t cr3 = new_root(fake), value;
    assert_int_equal(ptmon_fake_get_entry(fake, cr3, 0x1000, 0, &value), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_get_entry(fake, cr3, 0x1000, 3, &value), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_get_entry(fake, cr3, 0x1000, 1, NULL), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_get_entry(fake, cr3, GIB4, 2, &value), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_get_entry(fake, cr3, 0x1000, 1, &value), PTMON_ENOTPRESENT);
    assert_int_equal(ptmon_fake_get_entry(fake, cr3, 0x1000, 2, &value), 0);
    assert_int_equal(value, 0);
    assert_int_equal(ptmon_fake_set_entry(fake, cr3, 0x1000, 2, BIT(32) | P), PTMON_EINVAL);
    /* Any 32-bit value goes in, reserved bits included (bit 21 of a PSE-36 PDE). */
    assert_int_equal(ptmon_fake_set_entry(fake, cr3, 0x1000, 2, BIT(21) | PS | P), 0);
    assert_int_equal(entry_at(fake, cr3, 0x1000, 2), BIT(21) | PS | P);
    uint64_t gpa;
    assert_int_equal(ptmon_fake_cpu_access(fake, cr3, 0x1000, PTMON_FAKE_CPU_READ, &gpa),
                     PTMON_ENOTPRESENT);
    /* A 4 KiB map below a large page needs a table there. */
    assert_int_equal(ptmon_fake_map(fake, cr3, 0x1000, 0x1000, SIZE_4K, 0), PTMON_ENOTPRESENT);
    assert_int_equal(ptmon_fake_set_entry(fake, cr3, 0x1000, 2, PS | P), 0);
    assert_int_equal(ptmon_fake_map(fake, cr3, 0x1000, 0x1000, SIZE_4K, 0), PTMON_ENOTPRESENT);
    assert_int_equal(ptmon_fake_get_entry(fake, cr3, 0x1000, 1, &value), PTMON_ENOTPRESENT);
    assert_int_equal(ptmon_fake_merge(fake, cr3, 0x1000, 2), PTMON_ENOTPRESENT);
    ptmon_fake_destroy(fake);
}

static void narrow_maxphyaddr_limits_leaf_addresses_and_makes_high_bits_reserved(void **state)
{
    (void)state;
    ptmon_fake_config cfg = PTMON_FAKE_CONFIG_INIT;
    cfg.ram_size = RAM_DEFAULT;
    cfg.paging.maxphyaddr = 36;
    static const struct {
        enum ptmon_paging_mode mode;
        unsigned flags;
        uint64_t va, size, good_gpa, good_entry, reserved_bit;
    } cases[] = {
        /* PSE-36 with M = 36: GPA bits 35:32 in PDE bits 16:13; bits 21:17 reserved. */
        {PTMON_MODE_32BIT, PSE, 0x00400000, SIZE_4M, 0xf00400000ull,
         0x00400000 | (0xfull << 13) | PS | P, BIT(17)},
        {PTMON_MODE_PAE, 0, 0x40200000, SIZE_2M, 0xfffe00000ull, 0xfffe00000ull | PS | P, BIT(36)},
        {PTMON_MODE_4LEVEL, 0, 0x40200000, SIZE_2M, 0xfffe00000ull, 0xfffe00000ull | PS | P,
         BIT(51)},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        cfg.paging.mode = cases[i].mode;
        cfg.paging.flags = cases[i].flags;
        ptmon_fake *fake = NULL;
        assert_int_equal(ptmon_fake_create(&cfg, &fake), 0);
        uint64_t cr3 = new_root(fake), va = cases[i].va, gpa;
        assert_int_equal(ptmon_fake_map(fake, cr3, va, 1ull << 36, cases[i].size, 0), PTMON_EINVAL);
        assert_int_equal(ptmon_fake_map(fake, cr3, va, cases[i].good_gpa, cases[i].size, 0), 0);
        assert_int_equal(entry_at(fake, cr3, va, 2), cases[i].good_entry);
        assert_int_equal(ptmon_fake_cpu_access(fake, cr3, va + 12, PTMON_FAKE_CPU_READ, &gpa), 0);
        assert_int_equal(gpa, cases[i].good_gpa + 12);
        assert_int_equal(
            ptmon_fake_set_entry(fake, cr3, va, 2, cases[i].good_entry | cases[i].reserved_bit), 0);
        assert_int_equal(ptmon_fake_cpu_access(fake, cr3, va, PTMON_FAKE_CPU_READ, &gpa),
                         PTMON_ENOTPRESENT);
        ptmon_fake_destroy(fake);
    }
}

/* ---- 4. the simulated CPU walk ------------------------------------------------------------ */

/** Write-protect every frame from 1 to @p last (the page tables). */
static void protect_tables(ptmon_fake *fake, unsigned last)
{
    for (unsigned f = 1; f <= last; f++)
        assert_int_equal(ptmon_fake_set_rights(fake, f, PTMON_ACCESS_R | PTMON_ACCESS_X), 0);
}

static void
cpu_access_sets_a_on_every_level_and_d_on_the_leaf_for_writes_without_events(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum ptmon_paging_mode mode;
        uint64_t va;
        unsigned levels, no_a_level; /* a PAE PDPTE has no A bit */
    } cases[] = {
        {"32-bit", PTMON_MODE_32BIT, 0x00401000, 2, 0},
        {"PAE", PTMON_MODE_PAE, 0x40201000, 3, 3},
        {"4-level", PTMON_MODE_4LEVEL, 0x8040201000ull, 4, 0},
        {"5-level", PTMON_MODE_5LEVEL, 0x0001008040201000ull, 5, 0},
    };
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        print_message("mode: %s\n", cases[c].name);
        ptmon_fake *fake = new_fake(cases[c].mode, 0);
        struct recorder rec;
        recorder_attach(&rec, fake, PTMON_ACTION_DENY);
        uint64_t cr3 = new_root(fake), va = cases[c].va, gpa = 0;
        assert_int_equal(ptmon_fake_map(fake, cr3, va, 0x80000, SIZE_4K, RW | US), 0);
        uint64_t before[PTMON_MAX_LEVELS + 1];
        for (unsigned l = 1; l <= cases[c].levels; l++)
            before[l] = entry_at(fake, cr3, va, l);
        protect_tables(fake, cases[c].levels);
        uint64_t stores = ptmon_fake_stat(fake, PTMON_FAKE_STAT_STORES);
        unsigned with_a = cases[c].levels - (cases[c].no_a_level ? 1 : 0);

        assert_int_equal(ptmon_fake_cpu_access(fake, cr3, va + 0x123, PTMON_FAKE_CPU_READ, &gpa),
                         0);
        assert_int_equal(gpa, 0x80123);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_AD_UPDATES), with_a);
        for (unsigned l = 1; l <= cases[c].levels; l++) {
            uint64_t a = l == cases[c].no_a_level ? 0 : A;
            assert_int_equal(entry_at(fake, cr3, va, l), before[l] | a);
        }
        /* Again: nothing new to set. Then a user write: D on the leaf only. */
        assert_int_equal(ptmon_fake_cpu_access(fake, cr3, va, PTMON_FAKE_CPU_READ, &gpa), 0);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_AD_UPDATES), with_a);
        assert_int_equal(
            ptmon_fake_cpu_access(fake, cr3, va, PTMON_FAKE_CPU_WRITE | PTMON_FAKE_CPU_USER, &gpa),
            0);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_AD_UPDATES), with_a + 1);
        assert_int_equal(entry_at(fake, cr3, va, 1), before[1] | A | D);
        for (unsigned l = 2; l <= cases[c].levels; l++)
            assert_int_equal(entry_at(fake, cr3, va, l) & D, 0);

        assert_int_equal(rec.n, 0);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_EVENTS), 0);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_STORES), stores);
        ptmon_fake_destroy(fake);
    }
}

static void cpu_write_to_a_large_page_sets_a_and_d_in_its_entry(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    uint64_t cr3 = new_root(fake), gpa;
    assert_int_equal(ptmon_fake_map(fake, cr3, SIZE_1G, SIZE_1G, SIZE_1G, RW), 0);
    assert_int_equal(ptmon_fake_cpu_access(fake, cr3, SIZE_1G + 5, PTMON_FAKE_CPU_WRITE, &gpa), 0);
    assert_int_equal(gpa, SIZE_1G + 5);
    assert_int_equal(entry_at(fake, cr3, SIZE_1G, 3), SIZE_1G | D | A | PS | RW | P);
    assert_int_equal(entry_at(fake, cr3, SIZE_1G, 4), FRAME(2) | A | PWU);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_AD_UPDATES), 3);
    ptmon_fake_destroy(fake);
}

struct cpu_fault_case {
    const char *what;
    enum ptmon_paging_mode mode;
    unsigned flags;
    uint64_t leaf_bits;
    unsigned upper_level; /* if nonzero: entry changed after the map */
    uint64_t upper_clear, upper_set;
    unsigned how;
    int expected;
};

static const struct cpu_fault_case CPU_FAULT_CASES[] = {
    {"supervisor write, read-only leaf", PTMON_MODE_4LEVEL, 0, US, 0, 0, 0, PTMON_FAKE_CPU_WRITE,
     PTMON_ENOTPRESENT},
    {"write, read-only PDE", PTMON_MODE_4LEVEL, 0, RW, 2, RW, 0, PTMON_FAKE_CPU_WRITE,
     PTMON_ENOTPRESENT},
    {"read, read-only PDE", PTMON_MODE_4LEVEL, 0, RW, 2, RW, 0, PTMON_FAKE_CPU_READ, 0},
    {"user read, supervisor leaf", PTMON_MODE_4LEVEL, 0, RW, 0, 0, 0,
     PTMON_FAKE_CPU_READ | PTMON_FAKE_CPU_USER, PTMON_ENOTPRESENT},
    {"user read, supervisor PML4E", PTMON_MODE_4LEVEL, 0, RW | US, 4, US, 0,
     PTMON_FAKE_CPU_READ | PTMON_FAKE_CPU_USER, PTMON_ENOTPRESENT},
    {"supervisor read, supervisor leaf", PTMON_MODE_4LEVEL, 0, RW, 0, 0, 0, PTMON_FAKE_CPU_READ, 0},
    {"user write, 32-bit supervisor PDE", PTMON_MODE_32BIT, 0, RW | US, 2, US, 0,
     PTMON_FAKE_CPU_WRITE | PTMON_FAKE_CPU_USER, PTMON_ENOTPRESENT},
    {"exec, NX leaf, NXE", PTMON_MODE_4LEVEL, NXE, NX, 0, 0, 0, PTMON_FAKE_CPU_EXEC,
     PTMON_ENOTPRESENT},
    {"read, NX leaf, NXE", PTMON_MODE_4LEVEL, NXE, NX, 0, 0, 0, PTMON_FAKE_CPU_READ, 0},
    {"exec, NX PDPTE, NXE", PTMON_MODE_4LEVEL, NXE, 0, 3, 0, NX, PTMON_FAKE_CPU_EXEC,
     PTMON_ENOTPRESENT},
    {"exec, NX PDE, PAE NXE", PTMON_MODE_PAE, NXE, US, 2, 0, NX,
     PTMON_FAKE_CPU_EXEC | PTMON_FAKE_CPU_USER, PTMON_ENOTPRESENT},
    {"exec, no NX, NXE", PTMON_MODE_4LEVEL, NXE, 0, 0, 0, 0, PTMON_FAKE_CPU_EXEC, 0},
    {"exec without NXE", PTMON_MODE_4LEVEL, 0, 0, 0, 0, 0, PTMON_FAKE_CPU_EXEC, 0},
    {"read, bit 63 without NXE (reserved)", PTMON_MODE_4LEVEL, 0, 0, 1, 0, NX, PTMON_FAKE_CPU_READ,
     PTMON_ENOTPRESENT},
    {"read, address bit above maxphyaddr", PTMON_MODE_4LEVEL, 0, 0, 1, 0, BIT(50),
     PTMON_FAKE_CPU_READ, PTMON_ENOTPRESENT},
    {"read, PS in a PML4E", PTMON_MODE_4LEVEL, 0, 0, 4, 0, PS, PTMON_FAKE_CPU_READ,
     PTMON_ENOTPRESENT},
    {"read, RW in a PAE PDPTE", PTMON_MODE_PAE, 0, 0, 3, 0, RW, PTMON_FAKE_CPU_READ,
     PTMON_ENOTPRESENT},
    {"read, not-present leaf", PTMON_MODE_4LEVEL, 0, 0, 1, P, 0, PTMON_FAKE_CPU_READ,
     PTMON_ENOTPRESENT},
    {"read, not-present PDE", PTMON_MODE_5LEVEL, 0, 0, 2, P, 0, PTMON_FAKE_CPU_READ,
     PTMON_ENOTPRESENT},
    {"bad how 3", PTMON_MODE_4LEVEL, 0, 0, 0, 0, 0, 3, PTMON_EINVAL},
    {"bad how 8", PTMON_MODE_4LEVEL, 0, 0, 0, 0, 0, 8, PTMON_EINVAL},
};

static uint64_t fault_case_va(enum ptmon_paging_mode mode)
{
    return mode == PTMON_MODE_4LEVEL   ? 0x8040201000ull
           : mode == PTMON_MODE_5LEVEL ? 0x0001008040201000ull
           : mode == PTMON_MODE_PAE    ? 0x40201000
                                       : 0x00401000;
}

static void cpu_access_faults_on_rights_reserved_and_not_present_and_sets_nothing(void **state)
{
    (void)state;
    for (size_t c = 0; c < ARRAY_LEN(CPU_FAULT_CASES); c++) {
        const struct cpu_fault_case *fc = &CPU_FAULT_CASES[c];
        print_message("case: %s\n", fc->what);
        ptmon_fake *fake = new_fake(fc->mode, fc->flags);
        uint64_t cr3 = new_root(fake), va = fault_case_va(fc->mode), gpa = 0;
        unsigned levels = ptmon_paging_levels(fc->mode);
        assert_int_equal(ptmon_fake_map(fake, cr3, va, 0x80000, SIZE_4K, fc->leaf_bits), 0);
        uint64_t where[PTMON_MAX_LEVELS + 1], before[PTMON_MAX_LEVELS + 1];
        for (unsigned l = 1; l <= levels; l++)
            where[l] = entry_gpa(fake, cr3, va, l);
        if (fc->upper_level) {
            uint64_t e = entry_at(fake, cr3, va, fc->upper_level);
            e = (e & ~fc->upper_clear) | fc->upper_set;
            assert_int_equal(ptmon_fake_set_entry(fake, cr3, va, fc->upper_level, e), 0);
        }
        for (unsigned l = 1; l <= levels; l++)
            before[l] = ptmon_fake_peek64(fake, where[l]);
        int rc = ptmon_fake_cpu_access(fake, cr3, va + 8, fc->how, &gpa);
        assert_int_equal(rc, fc->expected);
        if (rc == 0) {
            assert_int_equal(gpa, 0x80008);
            assert_int_not_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_AD_UPDATES), 0);
        } else {
            for (unsigned l = 1; l <= levels; l++)
                assert_int_equal(ptmon_fake_peek64(fake, where[l]), before[l]);
            assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_AD_UPDATES), 0);
        }
        ptmon_fake_destroy(fake);
    }
}

static void cpu_access_rejects_vas_the_mode_cannot_translate(void **state)
{
    (void)state;
    uint64_t gpa;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    assert_int_equal(
        ptmon_fake_cpu_access(fake, FRAME(1), 0x0000800000000000ull, PTMON_FAKE_CPU_READ, &gpa),
        PTMON_EINVAL);
    assert_int_equal(ptmon_fake_cpu_access(fake, FRAME(1), 0, PTMON_FAKE_CPU_READ, NULL),
                     PTMON_EINVAL);
    /* A root outside RAM is a translation failure, not an argument error. */
    assert_int_equal(ptmon_fake_cpu_access(fake, 0x10000000000ull, 0, PTMON_FAKE_CPU_READ, &gpa),
                     PTMON_ENOTPRESENT);
    ptmon_fake_destroy(fake);
    fake = new_fake(PTMON_MODE_PAE, 0);
    assert_int_equal(ptmon_fake_cpu_access(fake, FRAME(1), GIB4, PTMON_FAKE_CPU_READ, &gpa),
                     PTMON_EINVAL);
    ptmon_fake_destroy(fake);
}

/* ---- 5. guest stores ---------------------------------------------------------------------- */

static const uint32_t STORE_SIZES[] = {1, 2, 4, 8, 16, 32, 64};

static void fill_pattern(uint8_t *buf, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + 7 * i + 1);
}

static void assert_event(const struct rec_event *r, uint32_t vcpu, uint64_t gpa, uint32_t size,
                         enum ptmon_delivery delivery, const uint8_t *bytes)
{
    assert_int_equal(r->ev.vcpu, vcpu);
    assert_int_equal(r->ev.access, PTMON_ACCESS_W);
    assert_int_equal(r->ev.gpa, gpa);
    assert_int_equal(r->ev.size, size);
    assert_int_equal(r->ev.delivery, delivery);
    assert_true(r->had_bytes);
    assert_memory_equal(r->bytes, bytes, min_size(size, REC_MAX_BYTES));
}

static void store_of_each_size_and_alignment_into_writable_frame_raises_no_event(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    struct recorder rec;
    recorder_attach(&rec, fake, PTMON_ACTION_DENY);
    uint64_t stores = 0;
    for (size_t i = 0; i < ARRAY_LEN(STORE_SIZES); i++) {
        for (uint64_t misalign = 0; misalign <= 3; misalign += 3) {
            uint32_t size = STORE_SIZES[i];
            uint64_t gpa = FRAME(9) + 0x400 + misalign;
            uint8_t bytes[64], back[64];
            fill_pattern(bytes, size, (uint8_t)(size + misalign));
            assert_int_equal(ptmon_fake_store(fake, 1, gpa, bytes, size), 0);
            assert_int_equal(ptmon_fake_peek(fake, gpa, back, size), 0);
            assert_memory_equal(back, bytes, size);
            stores++;
        }
    }
    assert_int_equal(ptmon_fake_store_int(fake, 0, FRAME(9) + 1, 0x1122334455667788ull, 8), 0);
    assert_int_equal(ptmon_fake_peek64(fake, FRAME(9) + 1), 0x1122334455667788ull);
    assert_int_equal(ptmon_fake_store_int(fake, 0, FRAME(9) + 1, 0xaabb, 2), 0);
    assert_int_equal(ptmon_fake_peek64(fake, FRAME(9) + 1), 0x112233445566aabbull);
    assert_int_equal(rec.n, 0);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_STORES), stores + 2);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_EVENTS), 0);
    ptmon_fake_destroy(fake);
}

static void store_of_each_size_into_protected_frame_pre_allow_reports_one_event(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    struct recorder rec;
    assert_int_equal(ptmon_fake_set_rights(fake, 9, PTMON_ACCESS_R), 0);
    assert_int_equal(ptmon_fake_count_write_protected(fake), 1);
    for (size_t i = 0; i < ARRAY_LEN(STORE_SIZES); i++) {
        for (uint64_t misalign = 0; misalign <= 5; misalign += 5) {
            uint32_t size = STORE_SIZES[i];
            uint64_t gpa = FRAME(9) + 0x800 + misalign;
            uint8_t bytes[64], old[64], back[64];
            fill_pattern(bytes, size, (uint8_t)(3 * size + misalign));
            assert_int_equal(ptmon_fake_peek(fake, gpa, old, size), 0);
            recorder_attach(&rec, fake, PTMON_ACTION_ALLOW);
            assert_int_equal(ptmon_fake_store(fake, 1, gpa, bytes, size), 0);
            assert_int_equal(rec.n, 1);
            assert_event(&rec.seen[0], 1, gpa, size, PTMON_DELIVERY_PRE, bytes);
            assert_memory_equal(rec.seen[0].mem, old, size); /* not yet written */
            assert_int_equal(ptmon_fake_peek(fake, gpa, back, size), 0);
            assert_memory_equal(back, bytes, size);
        }
    }
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_EVENTS), 2 * ARRAY_LEN(STORE_SIZES));
    assert_int_equal(ptmon_fake_rights(fake, 9), PTMON_ACCESS_R); /* rights untouched */
    ptmon_fake_destroy(fake);
}

static void store_crossing_into_protected_frames_reports_one_event_per_frame_in_order(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    struct recorder rec;
    uint8_t bytes[16], back[16];
    fill_pattern(bytes, sizeof(bytes), 0x40);
    const uint64_t gpa = FRAME(11) - 6;

    /* Both frames protected: two events, lower address first. */
    assert_int_equal(ptmon_fake_set_rights(fake, 10, PTMON_ACCESS_R), 0);
    assert_int_equal(ptmon_fake_set_rights(fake, 11, PTMON_ACCESS_R), 0);
    recorder_attach(&rec, fake, PTMON_ACTION_ALLOW);
    assert_int_equal(ptmon_fake_store(fake, 0, gpa, bytes, 16), 0);
    assert_int_equal(rec.n, 2);
    assert_event(&rec.seen[0], 0, gpa, 6, PTMON_DELIVERY_PRE, bytes);
    assert_event(&rec.seen[1], 0, FRAME(11), 10, PTMON_DELIVERY_PRE, bytes + 6);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_STORES), 1);

    /* Only the upper frame protected: one event for its part. */
    assert_int_equal(ptmon_fake_set_rights(fake, 10, PTMON_ACCESS_RWX), 0);
    recorder_attach(&rec, fake, PTMON_ACTION_ALLOW);
    assert_int_equal(ptmon_fake_store(fake, 0, gpa, bytes, 16), 0);
    assert_int_equal(rec.n, 1);
    assert_event(&rec.seen[0], 0, FRAME(11), 10, PTMON_DELIVERY_PRE, bytes + 6);

    /* A denied part does not stop the other: frame 10's part is written, frame 11's is not. */
    static const uint8_t zero[16];
    assert_int_equal(ptmon_fake_poke(fake, gpa, zero, 16), 0);
    recorder_attach(&rec, fake, PTMON_ACTION_DENY);
    assert_int_equal(ptmon_fake_store(fake, 0, gpa, bytes, 16), PTMON_EDENIED);
    assert_int_equal(ptmon_fake_peek(fake, gpa, back, 16), 0);
    assert_memory_equal(back, bytes, 6);
    assert_memory_equal(back + 6, zero, 10);
    ptmon_fake_destroy(fake);
}

static void rep_stos_reports_one_event_per_protected_frame_covering_its_part(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    struct recorder rec;
    assert_int_equal(ptmon_fake_set_rights(fake, 10, PTMON_ACCESS_R), 0);
    assert_int_equal(ptmon_fake_set_rights(fake, 12, PTMON_ACCESS_R), 0);
    recorder_attach(&rec, fake, PTMON_ACTION_ALLOW);
    /* 8 KiB from the middle of frame 10: half of 10, all of 11, half of 12. */
    const uint64_t start = FRAME(10) + 0x800;
    assert_int_equal(ptmon_fake_rep_stos(fake, 1, start, 0x44332211, 4, 2048), 0);
    uint8_t pattern[REC_MAX_BYTES]; /* what assert_event compares: the first 64 bytes */
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(0x11 * (i % 4 + 1));
    assert_int_equal(rec.n, 2);
    assert_event(&rec.seen[0], 1, start, 0x800, PTMON_DELIVERY_PRE, pattern);
    assert_event(&rec.seen[1], 1, FRAME(12), 0x800, PTMON_DELIVERY_PRE, pattern);
    assert_int_equal(ptmon_fake_peek64(fake, FRAME(11) + 0x100), 0x4433221144332211ull);
    assert_int_equal(ptmon_fake_peek64(fake, FRAME(12) + 0x7f8), 0x4433221144332211ull);
    assert_int_equal(ptmon_fake_peek64(fake, FRAME(12) + 0x800), 0);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_STORES), 1);

    /* Elements cross a frame boundary: the second frame's part starts mid-element. */
    recorder_attach(&rec, fake, PTMON_ACTION_ALLOW);
    assert_int_equal(ptmon_fake_rep_stos(fake, 0, FRAME(12) - 2, 0x44332211, 4, 2), 0);
    static const uint8_t tail[6] = {0x33, 0x44, 0x11, 0x22, 0x33, 0x44};
    assert_int_equal(rec.n, 1);
    assert_event(&rec.seen[0], 0, FRAME(12), 6, PTMON_DELIVERY_PRE, tail);

    /* Deny: nothing of the protected frames' parts is written; the others are. */
    recorder_attach(&rec, fake, PTMON_ACTION_DENY);
    assert_int_equal(ptmon_fake_rep_stos(fake, 0, start, 0, 8, 1024), PTMON_EDENIED);
    assert_int_equal(rec.n, 2);
    assert_int_equal(ptmon_fake_peek64(fake, start), 0x4433221144332211ull);
    assert_int_equal(ptmon_fake_peek64(fake, FRAME(11) + 0x100), 0);
    recorder_attach(&rec, fake, PTMON_ACTION_DENY);
    assert_int_equal(ptmon_fake_rep_stos(fake, 0, start, 0, 8, 0), 0); /* count 0 */
    assert_int_equal(rec.n, 0);
    ptmon_fake_destroy(fake);
}

static void rep_movs_reports_the_moved_bytes_per_protected_frame(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    struct recorder rec;
    uint8_t src[256], back[256];
    fill_pattern(src, sizeof(src), 0x90);
    assert_int_equal(ptmon_fake_poke(fake, FRAME(20) + 0x10, src, sizeof(src)), 0);
    assert_int_equal(ptmon_fake_set_rights(fake, 30, PTMON_ACCESS_R), 0);
    assert_int_equal(ptmon_fake_set_rights(fake, 31, PTMON_ACCESS_R | PTMON_ACCESS_X), 0);
    recorder_attach(&rec, fake, PTMON_ACTION_ALLOW);
    const uint64_t dst = FRAME(31) - 100;
    assert_int_equal(ptmon_fake_rep_movs(fake, 1, dst, FRAME(20) + 0x10, 2, 128), 0);
    assert_int_equal(rec.n, 2);
    assert_event(&rec.seen[0], 1, dst, 100, PTMON_DELIVERY_PRE, src);
    assert_event(&rec.seen[1], 1, FRAME(31), 156, PTMON_DELIVERY_PRE, src + 100);
    assert_int_equal(ptmon_fake_peek(fake, dst, back, sizeof(back)), 0);
    assert_memory_equal(back, src, sizeof(back));
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_STORES), 1);
    ptmon_fake_destroy(fake);
}

static void store_into_protected_frame_pre_mode_deny_keeps_memory(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    struct recorder rec;
    assert_int_equal(ptmon_fake_set_rights(fake, 9, PTMON_ACCESS_R), 0);
    assert_int_equal(ptmon_fake_store_int(fake, 0, FRAME(9), 0x1111, 8), 0); /* unhandled */
    recorder_attach(&rec, fake, PTMON_ACTION_DENY);
    assert_int_equal(ptmon_fake_store_int(fake, 1, FRAME(9), 0x2222, 8), PTMON_EDENIED);
    assert_int_equal(rec.n, 1);
    assert_int_equal(ptmon_fake_peek64(fake, FRAME(9)), 0x1111);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_DENIED), 1);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_EMULATED), 0);
    ptmon_fake_destroy(fake);
}

static void store_into_protected_frame_pre_mode_emulated_writes_through_the_glue(void **state)
{
    (void)state;
    static const enum rec_emulate how[] = {REC_EMULATE_BYTES, REC_EMULATE_PENDING};
    for (size_t i = 0; i < ARRAY_LEN(how); i++) {
        ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
        struct recorder rec;
        assert_int_equal(ptmon_fake_set_rights(fake, 9, PTMON_ACCESS_R), 0);
        recorder_attach(&rec, fake, PTMON_ACTION_EMULATED);
        rec.emulate = how[i];
        uint8_t bytes[16];
        fill_pattern(bytes, sizeof(bytes), 0x5a);
        assert_int_equal(ptmon_fake_store(fake, 1, FRAME(9) + 0x7f8, bytes, 16), 0);
        assert_int_equal(rec.n, 1);
        assert_int_equal(rec.emulate_rc, 0);
        assert_memory_equal(rec.written, bytes, 16);
        uint8_t back[16];
        assert_int_equal(ptmon_fake_peek(fake, FRAME(9) + 0x7f8, back, 16), 0);
        assert_memory_equal(back, bytes, 16);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_EMULATED), 1);
        assert_int_equal(ptmon_fake_calls(fake, PTMON_FAKE_OP_EMULATE_WRITE), 1);
        ptmon_fake_destroy(fake);
    }
}

static void store_into_protected_frame_post_mode_is_written_before_the_handler_runs(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake_full(PTMON_MODE_4LEVEL, 0, RAM_DEFAULT, PTMON_DELIVERY_POST, 2);
    struct recorder rec;
    assert_int_equal(ptmon_fake_set_rights(fake, 9, PTMON_ACCESS_R), 0);
    recorder_attach(&rec, fake, PTMON_ACTION_DENY); /* ignored in POST */
    uint8_t bytes[32];
    fill_pattern(bytes, sizeof(bytes), 0x33);
    assert_int_equal(ptmon_fake_store(fake, 1, FRAME(9) + 3, bytes, 32), 0);
    assert_int_equal(rec.n, 1);
    assert_event(&rec.seen[0], 1, FRAME(9) + 3, 32, PTMON_DELIVERY_POST, bytes);
    assert_memory_equal(rec.seen[0].mem, bytes, 32);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_DENIED), 0);
    /* Switching delivery applies to later events. */
    ptmon_fake_set_delivery(fake, PTMON_DELIVERY_PRE);
    recorder_attach(&rec, fake, PTMON_ACTION_DENY);
    assert_int_equal(ptmon_fake_store_int(fake, 0, FRAME(9) + 3, 0, 4), PTMON_EDENIED);
    assert_int_equal(rec.seen[0].ev.delivery, PTMON_DELIVERY_PRE);
    ptmon_fake_destroy(fake);
}

static void store_without_handler_or_with_failing_handler_is_performed_and_counted(void **state)
{
    (void)state;
    static const enum ptmon_delivery deliveries[] = {PTMON_DELIVERY_PRE, PTMON_DELIVERY_POST};
    for (size_t i = 0; i < ARRAY_LEN(deliveries); i++) {
        ptmon_fake *fake = new_fake_full(PTMON_MODE_4LEVEL, 0, RAM_DEFAULT, deliveries[i], 1);
        assert_int_equal(ptmon_fake_set_rights(fake, 9, 0), 0);
        assert_int_equal(ptmon_fake_store_int(fake, 0, FRAME(9), 0xabcd, 2), 0);
        assert_int_equal(ptmon_fake_peek64(fake, FRAME(9)), 0xabcd);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_UNHANDLED), 1);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_EVENTS), 0);
        struct recorder rec;
        recorder_attach(&rec, fake, PTMON_EIO);
        assert_int_equal(ptmon_fake_store_int(fake, 0, FRAME(9), 0x1234, 2), 0);
        assert_int_equal(rec.n, 1);
        assert_int_equal(ptmon_fake_peek64(fake, FRAME(9)), 0x1234);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_HANDLER_ERRORS), 1);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_UNHANDLED), 1);
        ptmon_fake_set_handler(fake, NULL, &rec); /* removed */
        assert_int_equal(ptmon_fake_store_int(fake, 0, FRAME(9), 0x5678, 2), 0);
        assert_int_equal(rec.n, 1);
        assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_UNHANDLED), 2);
        ptmon_fake_destroy(fake);
    }
}

static void store_outside_ram_or_with_bad_arguments_writes_nothing(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    uint8_t bytes[65] = {1, 2, 3, 4, 5, 6, 7, 8};
    const uint64_t top = RAM_DEFAULT;
    assert_int_equal(ptmon_fake_store(fake, 0, top - 4, bytes, 8), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_peek64(fake, top - 8), 0);
    assert_int_equal(ptmon_fake_store(fake, 0, UINT64_MAX - 3, bytes, 8), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_store_int(fake, 0, top, 1, 1), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_rep_stos(fake, 0, top - 8, 7, 8, 2), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_peek64(fake, top - 8), 0);
    assert_int_equal(ptmon_fake_rep_movs(fake, 0, FRAME(1), top - 8, 8, 2), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_rep_movs(fake, 0, top - 8, FRAME(1), 8, 2), PTMON_ERANGE);
    assert_int_equal(ptmon_fake_store(fake, 0, 0, bytes, 0), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_store(fake, 0, 0, bytes, 65), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_store(fake, 0, 0, NULL, 1), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_store(fake, 2, 0, bytes, 1), PTMON_EINVAL); /* 2 vCPUs */
    assert_int_equal(ptmon_fake_store_int(fake, 0, 0, 1, 3), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_rep_stos(fake, 0, 0, 1, 3, 1), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_rep_movs(fake, 0, 0, 8, 16, 1), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_peek64(fake, 0), 0);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_STORES), 0);
    ptmon_fake_destroy(fake);
}

/* ---- 6. the builder's stores trap like the guest's ------------------------------------------- */

static void builder_map_into_protected_table_raises_one_entry_sized_store(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum ptmon_paging_mode mode;
        uint64_t va; /* a second page in the same page table as fault_case_va */
        unsigned esize;
    } cases[] = {
        {"32-bit", PTMON_MODE_32BIT, 0x00402000, 4},
        {"PAE", PTMON_MODE_PAE, 0x40202000, 8},
        {"4-level", PTMON_MODE_4LEVEL, 0x8040202000ull, 8},
        {"5-level", PTMON_MODE_5LEVEL, 0x0001008040202000ull, 8},
    };
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        print_message("mode: %s\n", cases[c].name);
        ptmon_fake *fake = new_fake(cases[c].mode, 0);
        uint64_t cr3 = new_root(fake), va = cases[c].va;
        assert_int_equal(
            ptmon_fake_map(fake, cr3, fault_case_va(cases[c].mode), 0x80000, SIZE_4K, RW), 0);
        uint64_t where = entry_gpa(fake, cr3, va, 1);
        assert_int_equal(ptmon_fake_set_rights(fake, where >> 12, PTMON_ACCESS_R), 0);
        const uint64_t leaf = 0x81000 | US | RW | P;
        uint8_t expected[8] = {0};
        for (unsigned i = 0; i < 8; i++)
            expected[i] = (uint8_t)(leaf >> (8 * i));

        struct recorder rec;
        recorder_attach(&rec, fake, PTMON_ACTION_DENY);
        assert_int_equal(ptmon_fake_map(fake, cr3, va, 0x81000, SIZE_4K, RW | US), PTMON_EDENIED);
        assert_int_equal(rec.n, 1);
        assert_event(&rec.seen[0], 0, where, cases[c].esize, PTMON_DELIVERY_PRE, expected);
        assert_int_equal(entry_at(fake, cr3, va, 1), 0);

        recorder_attach(&rec, fake, PTMON_ACTION_ALLOW);
        assert_int_equal(ptmon_fake_map(fake, cr3, va, 0x81000, SIZE_4K, RW | US), 0);
        assert_int_equal(rec.n, 1);
        assert_event(&rec.seen[0], 0, where, cases[c].esize, PTMON_DELIVERY_PRE, expected);
        assert_int_equal(entry_at(fake, cr3, va, 1), leaf);

        /* Unmap and set_entry are single entry stores too. */
        recorder_attach(&rec, fake, PTMON_ACTION_DENY);
        assert_int_equal(ptmon_fake_unmap(fake, cr3, va), PTMON_EDENIED);
        assert_int_equal(ptmon_fake_set_entry(fake, cr3, va, 1, 0), PTMON_EDENIED);
        assert_int_equal(rec.n, 2);
        assert_int_equal(rec.seen[1].ev.size, cases[c].esize);
        assert_int_equal(entry_at(fake, cr3, va, 1), leaf);
        ptmon_fake_destroy(fake);
    }
}

static void builder_map_denied_link_of_new_tables_changes_nothing(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    uint64_t cr3 = new_root(fake), gpa;
    const uint64_t va = 0x8040201000ull;
    assert_int_equal(ptmon_fake_set_rights(fake, cr3 >> 12, PTMON_ACCESS_R), 0);
    struct recorder rec;
    recorder_attach(&rec, fake, PTMON_ACTION_DENY);
    assert_int_equal(ptmon_fake_map(fake, cr3, va, 0x9000, SIZE_4K, RW), PTMON_EDENIED);
    /* One store: the PML4E linking the three new tables (built unreachable). */
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.seen[0].ev.gpa, cr3 + 8);
    assert_int_equal(rec.seen[0].ev.size, 8);
    assert_int_equal(le64(rec.seen[0].bytes), FRAME(2) | PWU);
    assert_int_equal(ptmon_fake_peek64(fake, cr3 + 8), 0);
    assert_int_equal(ptmon_fake_alloc_frame(fake, &gpa), 0); /* the tables were freed */
    assert_int_equal(gpa, FRAME(2));
    assert_int_equal(ptmon_fake_free_frame(fake, gpa), 0);

    /* EMULATED through emulate_write(NULL) performs the pending entry store. */
    recorder_attach(&rec, fake, PTMON_ACTION_EMULATED);
    rec.emulate = REC_EMULATE_PENDING;
    assert_int_equal(ptmon_fake_map(fake, cr3, va, 0x9000, SIZE_4K, RW), 0);
    assert_int_equal(rec.emulate_rc, 0);
    assert_int_equal(ptmon_fake_cpu_access(fake, cr3, va, PTMON_FAKE_CPU_WRITE, &gpa), 0);
    assert_int_equal(gpa, 0x9000);

    /* A denied split frees its new table and keeps the large entry. */
    const uint64_t va1g = 0x8080000000ull; /* in the PDPT (frame 2) of va */
    assert_int_equal(ptmon_fake_map(fake, cr3, va1g, SIZE_1G, SIZE_1G, RW), 0);
    assert_int_equal(ptmon_fake_set_rights(fake, 2, PTMON_ACCESS_R), 0);
    recorder_attach(&rec, fake, PTMON_ACTION_DENY);
    assert_int_equal(ptmon_fake_split(fake, cr3, va1g, 0, NULL), PTMON_EDENIED);
    assert_int_equal(rec.n, 1);
    assert_int_equal(entry_at(fake, cr3, va1g, 3), SIZE_1G | PS | RW | P);
    assert_int_equal(ptmon_fake_alloc_frame(fake, &gpa), 0);
    assert_int_equal(gpa, FRAME(5));
    ptmon_fake_destroy(fake);
}

/* ---- 7. the glue -------------------------------------------------------------------------- */

static void glue_read_and_access_calls_check_ram_and_keep_backend_bits(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    const ptmon_glue *g = ptmon_fake_glue(fake);
    void *b = g->backend;
    uint8_t buf[8];
    assert_int_equal(ptmon_fake_store_int(fake, 0, FRAME(3) + 8, 0x0102030405060708ull, 8), 0);
    assert_int_equal(g->read_gpa(b, FRAME(3) + 8, buf, 8), 0);
    assert_int_equal(le64(buf), 0x0102030405060708ull);
    assert_int_equal(g->read_gpa(b, RAM_DEFAULT - 4, buf, 8), PTMON_ERANGE);
    assert_int_equal(g->read_gpa(b, RAM_DEFAULT, buf, 1), PTMON_ERANGE);

    uint32_t access = 0;
    const uint64_t last = RAM_DEFAULT / SIZE_4K - 1;
    assert_int_equal(g->get_access(b, last, &access), 0);
    assert_int_equal(access, PTMON_ACCESS_RWX);
    assert_int_equal(g->get_access(b, last + 1, &access), PTMON_ERANGE);
    assert_int_equal(g->set_access(b, last + 1, PTMON_ACCESS_R), PTMON_ERANGE);
    const uint32_t odd = 0xabcd0000u | PTMON_ACCESS_R | PTMON_ACCESS_X;
    assert_int_equal(g->set_access(b, last, odd), 0);
    assert_int_equal(g->get_access(b, last, &access), 0);
    assert_int_equal(access, odd);
    assert_int_equal(ptmon_fake_rights(fake, last), odd);
    assert_int_equal(ptmon_fake_count_write_protected(fake), 1);
    assert_int_equal(g->set_access(b, last, 0x100u | PTMON_ACCESS_RWX), 0);
    assert_int_equal(ptmon_fake_count_write_protected(fake), 0);
    assert_int_equal(ptmon_fake_rights(fake, last + 1), 0);
    assert_int_equal(ptmon_fake_set_rights(fake, last + 1, 0), PTMON_ERANGE);
    ptmon_fake_destroy(fake);
}

static void glue_set_access_batch_stops_at_the_first_bad_gfn_and_reports_done(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    const ptmon_glue *g = ptmon_fake_glue(fake);
    const uint64_t gfns[] = {3, 4, 100000, 5};
    const uint32_t access[] = {PTMON_ACCESS_R, 0x1200u | PTMON_ACCESS_X, PTMON_ACCESS_R, 0};
    size_t done = 99;
    assert_int_equal(g->set_access_batch(g->backend, gfns, access, 4, &done), PTMON_ERANGE);
    assert_int_equal(done, 2);
    assert_int_equal(ptmon_fake_rights(fake, 3), PTMON_ACCESS_R);
    assert_int_equal(ptmon_fake_rights(fake, 4), 0x1200u | PTMON_ACCESS_X);
    assert_int_equal(ptmon_fake_rights(fake, 5), PTMON_ACCESS_RWX);
    assert_int_equal(ptmon_fake_count_write_protected(fake), 2);
    const uint64_t good[] = {5, 3};
    const uint32_t good_access[] = {PTMON_ACCESS_R, PTMON_ACCESS_RWX};
    assert_int_equal(g->set_access_batch(g->backend, good, good_access, 2, &done), 0);
    assert_int_equal(done, 2);
    assert_int_equal(ptmon_fake_rights(fake, 5), PTMON_ACCESS_R);
    assert_int_equal(ptmon_fake_rights(fake, 3), PTMON_ACCESS_RWX);
    assert_int_equal(g->set_access_batch(g->backend, NULL, NULL, 0, &done), 0);
    assert_int_equal(done, 0);
    assert_int_equal(ptmon_fake_calls(fake, PTMON_FAKE_OP_SET_ACCESS_BATCH), 3);
    ptmon_fake_destroy(fake);
}

/** A PRE handler that probes emulate_write's checks on the pending store. */
struct pending_probe {
    ptmon_fake *fake;
    int wrong_size_rc, first_rc, second_rc;
};

static int probe_pending(void *ctx, const ptmon_mem_event *ev)
{
    struct pending_probe *pp = ctx;
    const ptmon_glue *g = ptmon_fake_glue(pp->fake);
    pp->wrong_size_rc = g->emulate_write(g->backend, ev->vcpu, ev->gpa, ev->size + 1, NULL, NULL);
    pp->first_rc = g->emulate_write(g->backend, ev->vcpu, ev->gpa, ev->size, NULL, NULL);
    pp->second_rc = g->emulate_write(g->backend, ev->vcpu, ev->gpa, ev->size, NULL, NULL);
    return PTMON_ACTION_EMULATED;
}

static void glue_emulate_write_bypasses_protection_and_fills_written(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    const ptmon_glue *g = ptmon_fake_glue(fake);
    struct recorder rec;
    recorder_attach(&rec, fake, PTMON_ACTION_DENY);
    assert_int_equal(ptmon_fake_set_rights(fake, 7, PTMON_ACCESS_R), 0);
    uint8_t bytes[8] = {9, 8, 7, 6, 5, 4, 3, 2}, written[8] = {0};
    assert_int_equal(g->emulate_write(g->backend, 1, FRAME(7) + 4, 8, bytes, written), 0);
    assert_memory_equal(written, bytes, 8);
    assert_int_equal(ptmon_fake_peek64(fake, FRAME(7) + 4), le64(bytes));
    assert_int_equal(g->emulate_write(g->backend, 0, FRAME(7), 4, bytes, NULL), 0);
    assert_int_equal(rec.n, 0);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_STORES), 0);
    assert_int_equal(g->emulate_write(g->backend, 0, RAM_DEFAULT - 4, 8, bytes, NULL),
                     PTMON_ERANGE);
    assert_int_equal(g->emulate_write(g->backend, 0, FRAME(7), 0, bytes, NULL), PTMON_EINVAL);
    assert_int_equal(g->emulate_write(g->backend, 2, FRAME(7), 8, bytes, NULL), PTMON_EINVAL);
    /* NULL bytes: only the pending store of that vCPU, exactly, and only once. */
    assert_int_equal(g->emulate_write(g->backend, 0, FRAME(7), 8, NULL, NULL), PTMON_EINVAL);
    struct pending_probe pp = {fake, 0, 0, 0};
    ptmon_fake_set_handler(fake, probe_pending, &pp);
    assert_int_equal(ptmon_fake_store_int(fake, 1, FRAME(7) + 0x10, 0x77, 8), 0);
    assert_int_equal(pp.wrong_size_rc, PTMON_EINVAL);
    assert_int_equal(pp.first_rc, 0);
    assert_int_equal(pp.second_rc, PTMON_EINVAL);
    assert_int_equal(ptmon_fake_peek64(fake, FRAME(7) + 0x10), 0x77);
    /* After the event, nothing is pending any more. */
    assert_int_equal(g->emulate_write(g->backend, 1, FRAME(7) + 0x10, 8, NULL, NULL), PTMON_EINVAL);
    ptmon_fake_destroy(fake);
}

static void glue_pause_resume_nest_and_resume_without_pause_is_einval(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    const ptmon_glue *g = ptmon_fake_glue(fake);
    assert_int_equal(g->pause(g->backend), 0);
    assert_int_equal(g->pause(g->backend), 0);
    assert_int_equal(ptmon_fake_pause_depth(fake), 2);
    assert_int_equal(g->resume(g->backend), 0);
    assert_int_equal(ptmon_fake_pause_depth(fake), 1);
    assert_int_equal(g->resume(g->backend), 0);
    assert_int_equal(g->resume(g->backend), PTMON_EINVAL);
    assert_int_equal(ptmon_fake_pause_depth(fake), 0);
    assert_int_equal(g->flush(g->backend), 0);
    assert_int_equal(ptmon_fake_calls(fake, PTMON_FAKE_OP_FLUSH), 1);
    assert_int_equal(ptmon_fake_calls(fake, PTMON_FAKE_OP_RESUME), 3);
    ptmon_fake_destroy(fake);
}

static void glue_get_vcpu_regs_gives_back_the_fakes_paging_and_cr3(void **state)
{
    (void)state;
    static const struct {
        enum ptmon_paging_mode mode;
        unsigned flags;
    } cases[] = {
        {PTMON_MODE_32BIT, 0},  {PTMON_MODE_32BIT, PSE},  {PTMON_MODE_PAE, 0},
        {PTMON_MODE_PAE, NXE},  {PTMON_MODE_4LEVEL, NXE}, {PTMON_MODE_4LEVEL, 0},
        {PTMON_MODE_5LEVEL, 0}, {PTMON_MODE_5LEVEL, NXE},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        ptmon_fake *fake = new_fake(cases[i].mode, cases[i].flags);
        const ptmon_glue *g = ptmon_fake_glue(fake);
        assert_int_equal(ptmon_fake_set_cr3(fake, 1, 0x5000 | 0x18), 0);
        assert_int_equal(ptmon_fake_get_cr3(fake, 1), 0x5018);
        assert_int_equal(ptmon_fake_get_cr3(fake, 0), 0);
        ptmon_vcpu_regs regs;
        memset(&regs, 0xff, sizeof(regs));
        assert_int_equal(g->get_vcpu_regs(g->backend, 1, &regs), 0);
        assert_int_equal(regs.cr3, 0x5018);
        ptmon_paging pg;
        assert_int_equal(ptmon_paging_from_regs(regs.cr0, regs.cr4, regs.efer, 0, &pg), 0);
        assert_int_equal(pg.mode, cases[i].mode);
        assert_int_equal(pg.flags, cases[i].flags);
        assert_int_equal(g->get_vcpu_regs(g->backend, 2, &regs), PTMON_EINVAL);
        assert_int_equal(g->get_vcpu_regs(g->backend, 0, NULL), PTMON_EINVAL);
        assert_int_equal(ptmon_fake_set_cr3(fake, 2, 0x1000), PTMON_EINVAL);
        assert_int_equal(ptmon_fake_get_cr3(fake, 2), 0);
        ptmon_fake_destroy(fake);
    }
}

static void glue_log_keeps_the_last_line_truncated_to_255_bytes(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    const ptmon_glue *g = ptmon_fake_glue(fake);
    assert_string_equal(ptmon_fake_last_log(fake), "");
    g->log(g->backend, PTMON_LOG_INFO, "first");
    g->log(g->backend, PTMON_LOG_ERROR, "second line");
    assert_string_equal(ptmon_fake_last_log(fake), "second line");
    char longer[400];
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    g->log(g->backend, PTMON_LOG_DEBUG, longer);
    assert_int_equal(strlen(ptmon_fake_last_log(fake)), 255);
    assert_memory_equal(ptmon_fake_last_log(fake), longer, 255);
    g->log(g->backend, PTMON_LOG_WARN, "");
    assert_string_equal(ptmon_fake_last_log(fake), "");
    assert_int_equal(ptmon_fake_calls(fake, PTMON_FAKE_OP_LOG), 4);
    ptmon_fake_destroy(fake);
}

static void glue_realloc_accounts_bytes_and_counts_only_growth(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    const ptmon_glue *g = ptmon_fake_glue(fake);
    void *b = g->backend;
    uint8_t *p = g->realloc(b, NULL, 0, 100);
    assert_non_null(p);
    memset(p, 0x5c, 100);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_BYTES_ALLOCATED), 100);
    void *q = g->realloc(b, NULL, 0, 28);
    assert_non_null(q);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_BYTES_ALLOCATED), 128);
    p = g->realloc(b, p, 100, 300);
    assert_non_null(p);
    assert_int_equal(p[99], 0x5c); /* contents kept */
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_BYTES_ALLOCATED), 328);
    p = g->realloc(b, p, 300, 50);
    assert_non_null(p);
    assert_int_equal(p[49], 0x5c);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_BYTES_ALLOCATED), 78);
    assert_int_equal(ptmon_fake_calls(fake, PTMON_FAKE_OP_ALLOC), 3);
    assert_null(g->realloc(b, p, 50, 0));
    assert_null(g->realloc(b, q, 28, 0));
    assert_null(g->realloc(b, NULL, 0, 0));
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_BYTES_ALLOCATED), 0);
    assert_int_equal(ptmon_fake_calls(fake, PTMON_FAKE_OP_ALLOC), 3);
    ptmon_fake_destroy(fake);
}

/* ---- 8. call counters and 9. fault injection --------------------------------------------- */

/**
 * Call glue operation @p op once with valid arguments. @return its result; for LOG 0 if the
 * line was kept and PTMON_EIO if it was dropped; for ALLOC 0 or PTMON_ENOMEM (NULL).
 */
static int call_op(ptmon_fake *fake, enum ptmon_fake_op op, unsigned serial)
{
    const ptmon_glue *g = ptmon_fake_glue(fake);
    void *b = g->backend;
    uint8_t buf[8] = {0};
    uint32_t access = PTMON_ACCESS_RWX;
    const uint64_t gfn = 3;
    size_t done = 0;
    ptmon_vcpu_regs regs;
    switch (op) {
    case PTMON_FAKE_OP_READ_GPA:
        return g->read_gpa(b, FRAME(3), buf, sizeof(buf));
    case PTMON_FAKE_OP_GET_ACCESS:
        return g->get_access(b, gfn, &access);
    case PTMON_FAKE_OP_SET_ACCESS:
        return g->set_access(b, gfn, access);
    case PTMON_FAKE_OP_SET_ACCESS_BATCH:
        return g->set_access_batch(b, &gfn, &access, 1, &done);
    case PTMON_FAKE_OP_EMULATE_WRITE:
        return g->emulate_write(b, 0, FRAME(3), sizeof(buf), buf, NULL);
    case PTMON_FAKE_OP_PAUSE:
        return g->pause(b);
    case PTMON_FAKE_OP_RESUME:
        return g->resume(b);
    case PTMON_FAKE_OP_FLUSH:
        return g->flush(b);
    case PTMON_FAKE_OP_GET_VCPU_REGS:
        return g->get_vcpu_regs(b, 0, &regs);
    case PTMON_FAKE_OP_LOG: {
        char line[32];
        snprintf(line, sizeof(line), "line %u", serial);
        g->log(b, PTMON_LOG_INFO, line);
        return strcmp(ptmon_fake_last_log(fake), line) == 0 ? 0 : PTMON_EIO;
    }
    case PTMON_FAKE_OP_ALLOC: {
        void *p = g->realloc(b, NULL, 0, 16);
        if (!p)
            return PTMON_ENOMEM;
        g->realloc(b, p, 16, 0);
        return 0;
    }
    case PTMON_FAKE_OP_GET_MAXPHYADDR: {
        unsigned bits = 0;
        int rc = g->get_maxphyaddr(b, &bits);
        if (rc < 0)
            return rc;
        return bits >= 32 && bits <= 52 ? 0 : PTMON_EIO;
    }
    default:
        fail_msg("unknown op %d", (int)op);
        return PTMON_EINVAL;
    }
}

static void glue_call_counts_only_its_own_operation_and_reset_zeroes_all(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    const ptmon_glue *g = ptmon_fake_glue(fake);
    assert_int_equal(g->pause(g->backend), 0); /* so a resume succeeds */
    for (unsigned op = 0; op < PTMON_FAKE_OP_COUNT; op++) {
        ptmon_fake_reset_calls(fake);
        print_message("op: %s\n", ptmon_fake_op_name((enum ptmon_fake_op)op));
        assert_int_equal(call_op(fake, (enum ptmon_fake_op)op, op), 0);
        for (unsigned other = 0; other < PTMON_FAKE_OP_COUNT; other++)
            assert_int_equal(ptmon_fake_calls(fake, (enum ptmon_fake_op)other), other == op);
        if (op == PTMON_FAKE_OP_RESUME)
            assert_int_equal(g->pause(g->backend), 0);
    }
    ptmon_fake_reset_calls(fake);
    for (unsigned op = 0; op < PTMON_FAKE_OP_COUNT; op++)
        assert_int_equal(ptmon_fake_calls(fake, (enum ptmon_fake_op)op), 0);
    assert_int_equal(ptmon_fake_calls(fake, PTMON_FAKE_OP_COUNT), 0);
    /* The hypervisor-side helpers are not glue calls. */
    uint8_t byte;
    assert_int_equal(ptmon_fake_peek(fake, 0, &byte, 1), 0);
    assert_int_equal(ptmon_fake_set_rights(fake, 1, PTMON_ACCESS_R), 0);
    assert_int_equal(ptmon_fake_store_int(fake, 0, FRAME(1), 1, 1), 0);
    for (unsigned op = 0; op < PTMON_FAKE_OP_COUNT; op++)
        assert_int_equal(ptmon_fake_calls(fake, (enum ptmon_fake_op)op), 0);
    ptmon_fake_destroy(fake);
}

static void op_name_gives_each_operation_its_name(void **state)
{
    (void)state;
    static const char *const names[PTMON_FAKE_OP_COUNT] = {
        "read_gpa",      "get_access", "set_access", "set_access_batch",
        "emulate_write", "pause",      "resume",     "flush",
        "get_vcpu_regs", "log",        "alloc",      "get_maxphyaddr",
    };
    for (unsigned op = 0; op < PTMON_FAKE_OP_COUNT; op++)
        assert_string_equal(ptmon_fake_op_name((enum ptmon_fake_op)op), names[op]);
    assert_string_equal(ptmon_fake_op_name(PTMON_FAKE_OP_COUNT), "?");
    assert_string_equal(ptmon_fake_op_name((enum ptmon_fake_op) - 1), "?");
}

static void fail_nth_fails_exactly_the_nth_call_after_arming_once(void **state)
{
    (void)state;
    for (unsigned op = 0; op < PTMON_FAKE_OP_COUNT; op++) {
        enum ptmon_fake_op o = (enum ptmon_fake_op)op;
        print_message("op: %s\n", ptmon_fake_op_name(o));
        ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
        const ptmon_glue *g = ptmon_fake_glue(fake);
        for (unsigned i = 0; i < 10; i++)
            assert_int_equal(g->pause(g->backend), 0); /* resumes succeed */
        ptmon_fake_reset_calls(fake);
        unsigned serial = 100;
        assert_int_equal(call_op(fake, o, serial++), 0); /* calls before arming don't count */
        int expected = o == PTMON_FAKE_OP_LOG     ? PTMON_EIO
                       : o == PTMON_FAKE_OP_ALLOC ? PTMON_ENOMEM
                                                  : PTMON_EBUSY;
        ptmon_fake_fail_nth(fake, o, 3, PTMON_EBUSY);
        assert_int_equal(call_op(fake, o, serial++), 0);
        assert_int_equal(call_op(fake, o, serial++), 0);
        assert_false(ptmon_fake_failure_fired(fake, o));
        assert_int_equal(call_op(fake, o, serial++), expected);
        assert_true(ptmon_fake_failure_fired(fake, o));
        assert_int_equal(call_op(fake, o, serial++), 0); /* one shot */
        assert_true(ptmon_fake_failure_fired(fake, o));
        assert_int_equal(ptmon_fake_calls(fake, o), 5);
        for (unsigned other = 0; other < PTMON_FAKE_OP_COUNT; other++)
            if (other != op && other != PTMON_FAKE_OP_PAUSE)
                assert_false(ptmon_fake_failure_fired(fake, (enum ptmon_fake_op)other));

        /* Re-arming clears fired; nth 0 disarms; a non-negative error becomes PTMON_EIO. */
        ptmon_fake_fail_nth(fake, o, 1, PTMON_EBUSY);
        assert_false(ptmon_fake_failure_fired(fake, o));
        ptmon_fake_fail_nth(fake, o, 0, PTMON_EBUSY);
        assert_int_equal(call_op(fake, o, serial++), 0);
        assert_false(ptmon_fake_failure_fired(fake, o));
        ptmon_fake_fail_nth(fake, o, 1, 5);
        assert_int_equal(call_op(fake, o, serial++),
                         o == PTMON_FAKE_OP_ALLOC ? PTMON_ENOMEM : PTMON_EIO);
        assert_true(ptmon_fake_failure_fired(fake, o));
        ptmon_fake_destroy(fake);
    }
}

static void fail_nth_counts_calls_that_fail_anyway_and_never_fails_frees_or_shrinks(void **state)
{
    (void)state;
    ptmon_fake *fake = new_fake(PTMON_MODE_4LEVEL, 0);
    const ptmon_glue *g = ptmon_fake_glue(fake);
    void *b = g->backend;
    uint32_t access;
    ptmon_fake_fail_nth(fake, PTMON_FAKE_OP_GET_ACCESS, 2, PTMON_EIO);
    assert_int_equal(g->get_access(b, 1u << 30, &access), PTMON_ERANGE);
    assert_int_equal(g->get_access(b, 1, &access), PTMON_EIO);
    assert_int_equal(g->get_access(b, 1, &access), 0);

    /* A failing set_access leaves the frame unchanged. */
    ptmon_fake_fail_nth(fake, PTMON_FAKE_OP_SET_ACCESS, 1, PTMON_EIO);
    assert_int_equal(g->set_access(b, 1, PTMON_ACCESS_R), PTMON_EIO);
    assert_int_equal(ptmon_fake_rights(fake, 1), PTMON_ACCESS_RWX);
    /* A failing batch applies nothing and says so. */
    const uint64_t gfn = 1;
    const uint32_t r = PTMON_ACCESS_R;
    size_t done = 7;
    ptmon_fake_fail_nth(fake, PTMON_FAKE_OP_SET_ACCESS_BATCH, 1, PTMON_EIO);
    assert_int_equal(g->set_access_batch(b, &gfn, &r, 1, &done), PTMON_EIO);
    assert_int_equal(done, 0);
    assert_int_equal(ptmon_fake_rights(fake, 1), PTMON_ACCESS_RWX);

    uint8_t *p = g->realloc(b, NULL, 0, 64);
    assert_non_null(p);
    p[10] = 0x42;
    ptmon_fake_fail_nth(fake, PTMON_FAKE_OP_ALLOC, 1, PTMON_ENOMEM);
    p = g->realloc(b, p, 64, 32); /* a shrink: not an ALLOC call, cannot fail */
    assert_non_null(p);
    assert_false(ptmon_fake_failure_fired(fake, PTMON_FAKE_OP_ALLOC));
    assert_null(g->realloc(b, p, 32, 4096)); /* the growth fails, p is untouched */
    assert_true(ptmon_fake_failure_fired(fake, PTMON_FAKE_OP_ALLOC));
    assert_int_equal(p[10], 0x42);
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_BYTES_ALLOCATED), 32);
    assert_null(g->realloc(b, p, 32, 0));
    assert_int_equal(ptmon_fake_stat(fake, PTMON_FAKE_STAT_BYTES_ALLOCATED), 0);
    ptmon_fake_destroy(fake);
}

/* ---- 10. independent fakes ---------------------------------------------------------------- */

static void two_fake_guests_in_one_process_do_not_interfere(void **state)
{
    (void)state;
    ptmon_fake *one = new_fake(PTMON_MODE_4LEVEL, NXE);
    ptmon_fake *two = new_fake_full(PTMON_MODE_32BIT, PSE, 2 * RAM_DEFAULT, PTMON_DELIVERY_POST, 1);
    struct recorder rec_one, rec_two;
    recorder_attach(&rec_one, one, PTMON_ACTION_DENY);
    recorder_attach(&rec_two, two, PTMON_ACTION_ALLOW);
    uint64_t cr3_one = new_root(one), cr3_two = new_root(two), gpa;
    assert_int_equal(cr3_one, cr3_two); /* each has its own allocator */
    assert_int_equal(ptmon_fake_map(one, cr3_one, 0x8040201000ull, 0x9000, SIZE_4K, RW), 0);
    assert_int_equal(ptmon_fake_alloc_frame(two, &gpa), 0);
    assert_int_equal(gpa, FRAME(2));

    assert_int_equal(ptmon_fake_set_rights(one, 9, PTMON_ACCESS_R), 0);
    assert_int_equal(ptmon_fake_store_int(one, 1, FRAME(9), 0x1111, 8), PTMON_EDENIED);
    assert_int_equal(ptmon_fake_store_int(two, 0, FRAME(9), 0x2222, 8), 0);
    assert_int_equal(rec_one.n, 1);
    assert_int_equal(rec_two.n, 0);
    assert_int_equal(ptmon_fake_peek64(one, FRAME(9)), 0);
    assert_int_equal(ptmon_fake_peek64(two, FRAME(9)), 0x2222);
    assert_int_equal(ptmon_fake_rights(two, 9), PTMON_ACCESS_RWX);
    assert_int_equal(ptmon_fake_count_write_protected(two), 0);
    assert_int_equal(ptmon_fake_stat(two, PTMON_FAKE_STAT_EVENTS), 0);
    assert_int_equal(ptmon_fake_stat(one, PTMON_FAKE_STAT_DENIED), 1);

    const ptmon_glue *g1 = ptmon_fake_glue(one), *g2 = ptmon_fake_glue(two);
    assert_ptr_not_equal(g1, g2);
    ptmon_fake_fail_nth(one, PTMON_FAKE_OP_READ_GPA, 1, PTMON_EIO);
    uint8_t buf[8];
    assert_int_equal(g2->read_gpa(g2->backend, FRAME(9), buf, 8), 0);
    assert_int_equal(le64(buf), 0x2222);
    assert_int_equal(g1->read_gpa(g1->backend, FRAME(9), buf, 8), PTMON_EIO);
    assert_false(ptmon_fake_failure_fired(two, PTMON_FAKE_OP_READ_GPA));
    assert_int_equal(g1->pause(g1->backend), 0);
    assert_int_equal(ptmon_fake_pause_depth(two), 0);
    g2->log(g2->backend, PTMON_LOG_INFO, "two");
    assert_string_equal(ptmon_fake_last_log(one), "");
    void *p = g1->realloc(g1->backend, NULL, 0, 10);
    assert_int_equal(ptmon_fake_stat(two, PTMON_FAKE_STAT_BYTES_ALLOCATED), 0);
    g1->realloc(g1->backend, p, 10, 0);
    assert_int_equal(ptmon_fake_calls(two, PTMON_FAKE_OP_READ_GPA), 1);
    assert_int_equal(ptmon_fake_calls(one, PTMON_FAKE_OP_READ_GPA), 1);
    assert_int_equal(ptmon_fake_get_config(two)->paging.mode, PTMON_MODE_32BIT);
    ptmon_fake_destroy(one);
    /* The survivor still works. */
    assert_int_equal(ptmon_fake_map(two, cr3_two, 0x00400000, 0x00800000, SIZE_4M, RW), 0);
    assert_int_equal(ptmon_fake_cpu_access(two, cr3_two, 0x00400004, PTMON_FAKE_CPU_WRITE, &gpa),
                     0);
    assert_int_equal(gpa, 0x00800004);
    ptmon_fake_destroy(two);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_rejects_bad_configs_with_the_documented_error),
        cmocka_unit_test(create_accepts_boundary_configs_and_destroy_ignores_null),
        cmocka_unit_test(alloc_frame_hands_out_lowest_free_frame_never_frame_0),
        cmocka_unit_test(claim_frame_takes_frame_0_once_and_checks_range),
        cmocka_unit_test(alloc_frame_exhaustion_returns_enomem_until_a_frame_is_freed),
        cmocka_unit_test(peek_poke_outside_ram_return_erange_and_write_nothing),
        cmocka_unit_test(peek64_reads_little_endian_and_gives_0_outside_ram),
        cmocka_unit_test(map_each_page_size_gives_exact_raw_entries_in_every_mode),
        cmocka_unit_test(map_translates_through_the_cpu_walk_in_every_mode),
        cmocka_unit_test(unmap_zeroes_the_whole_leaf_entry_and_keeps_the_tables),
        cmocka_unit_test(split_2m_page_keeps_bits_moves_pat_and_merge_restores_it),
        cmocka_unit_test(split_with_clear_p_makes_not_present_ptes_and_merge_refuses_them),
        cmocka_unit_test(split_1g_page_gives_2m_pages_and_merge_at_level_3_restores_it),
        cmocka_unit_test(split_32bit_4m_page_below_4g_works_above_4g_is_einval),
        cmocka_unit_test(link_aliases_an_existing_table_and_can_point_outside_ram),
        cmocka_unit_test(self_map_points_a_root_entry_at_the_root_and_pae_has_none),
        cmocka_unit_test(map_rejects_invalid_arguments_in_every_mode),
        cmocka_unit_test(builder_entry_calls_reject_bad_levels_and_missing_paths),
        cmocka_unit_test(narrow_maxphyaddr_limits_leaf_addresses_and_makes_high_bits_reserved),
        cmocka_unit_test(
            cpu_access_sets_a_on_every_level_and_d_on_the_leaf_for_writes_without_events),
        cmocka_unit_test(cpu_write_to_a_large_page_sets_a_and_d_in_its_entry),
        cmocka_unit_test(cpu_access_faults_on_rights_reserved_and_not_present_and_sets_nothing),
        cmocka_unit_test(cpu_access_rejects_vas_the_mode_cannot_translate),
        cmocka_unit_test(store_of_each_size_and_alignment_into_writable_frame_raises_no_event),
        cmocka_unit_test(store_of_each_size_into_protected_frame_pre_allow_reports_one_event),
        cmocka_unit_test(store_crossing_into_protected_frames_reports_one_event_per_frame_in_order),
        cmocka_unit_test(rep_stos_reports_one_event_per_protected_frame_covering_its_part),
        cmocka_unit_test(rep_movs_reports_the_moved_bytes_per_protected_frame),
        cmocka_unit_test(store_into_protected_frame_pre_mode_deny_keeps_memory),
        cmocka_unit_test(store_into_protected_frame_pre_mode_emulated_writes_through_the_glue),
        cmocka_unit_test(store_into_protected_frame_post_mode_is_written_before_the_handler_runs),
        cmocka_unit_test(store_without_handler_or_with_failing_handler_is_performed_and_counted),
        cmocka_unit_test(store_outside_ram_or_with_bad_arguments_writes_nothing),
        cmocka_unit_test(builder_map_into_protected_table_raises_one_entry_sized_store),
        cmocka_unit_test(builder_map_denied_link_of_new_tables_changes_nothing),
        cmocka_unit_test(glue_read_and_access_calls_check_ram_and_keep_backend_bits),
        cmocka_unit_test(glue_set_access_batch_stops_at_the_first_bad_gfn_and_reports_done),
        cmocka_unit_test(glue_emulate_write_bypasses_protection_and_fills_written),
        cmocka_unit_test(glue_pause_resume_nest_and_resume_without_pause_is_einval),
        cmocka_unit_test(glue_get_vcpu_regs_gives_back_the_fakes_paging_and_cr3),
        cmocka_unit_test(glue_log_keeps_the_last_line_truncated_to_255_bytes),
        cmocka_unit_test(glue_realloc_accounts_bytes_and_counts_only_growth),
        cmocka_unit_test(glue_call_counts_only_its_own_operation_and_reset_zeroes_all),
        cmocka_unit_test(op_name_gives_each_operation_its_name),
        cmocka_unit_test(fail_nth_fails_exactly_the_nth_call_after_arming_once),
        cmocka_unit_test(fail_nth_counts_calls_that_fail_anyway_and_never_fails_frees_or_shrinks),
        cmocka_unit_test(two_fake_guests_in_one_process_do_not_interfere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
