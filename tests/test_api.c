/*
 * test_api.c — the public API's contract at its edges: versions, errors, paging-mode
 * derivation, instance creation and misuse (NULL arguments, bad versions, missing callbacks).
 *
 * Uses a minimal stub backend of its own so these tests depend on nothing but the core.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ptmon/backend.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a stub backend: 16 frames of RAM, counts allocations, can refuse them ---------- */

struct stub {
    uint8_t ram[16 * 4096];
    ptmon_vcpu_regs regs;
    int regs_error;
    long live_blocks;
    int fail_alloc;
    char last_log[256];
};

static int stub_read(void *be, uint64_t gpa, void *buf, size_t len)
{
    struct stub *s = be;
    if (gpa >= sizeof(s->ram) || len > sizeof(s->ram) - gpa)
        return PTMON_ERANGE;
    memcpy(buf, s->ram + gpa, len);
    return 0;
}

static int stub_get_access(void *be, uint64_t gfn, uint32_t *access)
{
    (void)be;
    (void)gfn;
    *access = PTMON_ACCESS_RWX;
    return 0;
}

static int stub_set_access(void *be, uint64_t gfn, uint32_t access)
{
    (void)be;
    (void)gfn;
    (void)access;
    return 0;
}

static int stub_get_regs(void *be, uint32_t vcpu, ptmon_vcpu_regs *regs)
{
    struct stub *s = be;
    (void)vcpu;
    if (s->regs_error)
        return s->regs_error;
    *regs = s->regs;
    return 0;
}

static void *stub_realloc(void *be, void *ptr, size_t old_size, size_t new_size)
{
    struct stub *s = be;
    (void)old_size;
    if (new_size == 0) {
        if (ptr)
            s->live_blocks--;
        free(ptr);
        return NULL;
    }
    if (s->fail_alloc)
        return NULL;
    void *p = realloc(ptr, new_size);
    if (p && !ptr)
        s->live_blocks++;
    return p;
}

static void stub_log(void *be, int level, const char *msg)
{
    struct stub *s = be;
    (void)level;
    snprintf(s->last_log, sizeof(s->last_log), "%s", msg);
}

static ptmon_glue stub_glue(struct stub *s)
{
    ptmon_glue g = PTMON_GLUE_INIT;
    g.backend = s;
    g.read_gpa = stub_read;
    g.get_access = stub_get_access;
    g.set_access = stub_set_access;
    g.get_vcpu_regs = stub_get_regs;
    g.log = stub_log;
    g.realloc = stub_realloc;
    return g;
}

static int stub_setup(void **state)
{
    struct stub *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    /* 4-level paging with NX: CR0.PG|PE, CR4.PAE, EFER.LME|LMA|NXE */
    s->regs.cr0 = 0x80000001;
    s->regs.cr4 = 0x20;
    s->regs.efer = 0xd00;
    *state = s;
    return 0;
}

static int stub_teardown(void **state)
{
    struct stub *s = *state;
    assert_int_equal(s->live_blocks, 0); /* nothing leaked through the glue allocator */
    free(s);
    return 0;
}

static ptmon_config config_with_mode(enum ptmon_paging_mode mode)
{
    ptmon_config c = PTMON_CONFIG_INIT;
    c.paging.mode = mode;
    return c;
}

/* ---- version and errors -------------------------------------------------------------- */

static void version_number_matches_the_header(void **state)
{
    (void)state;
    assert_int_equal(ptmon_version(), PTMON_VERSION_NUMBER);
    char want[32];
    snprintf(want, sizeof(want), "%d.%d.%d", PTMON_VERSION_MAJOR, PTMON_VERSION_MINOR,
             PTMON_VERSION_PATCH);
    assert_string_equal(ptmon_version_string(), want);
}

static void every_error_code_has_a_distinct_message_and_name(void **state)
{
    (void)state;
    static const int codes[] = {
#define CODE_(name, value, msg) PTMON_##name,
        PTMON_ERRNO_MAP(CODE_)
#undef CODE_
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] < 0);
        assert_string_not_equal(ptmon_strerror(codes[i]), "unknown error");
        assert_string_not_equal(ptmon_err_name(codes[i]), "PTMON_E?");
        assert_int_equal(strncmp(ptmon_err_name(codes[i]), "PTMON_E", 7), 0);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(ptmon_strerror(codes[i]), ptmon_strerror(codes[j]));
        }
    }
    assert_string_equal(ptmon_strerror(0), "success");
    assert_string_equal(ptmon_err_name(0), "PTMON_OK");
    assert_string_equal(ptmon_strerror(-9999), "unknown error");
    assert_string_equal(ptmon_strerror(42), "unknown error");
    assert_string_equal(ptmon_err_name(-9999), "PTMON_E?");
    assert_string_equal(ptmon_err_name(PTMON_ENOMEM), "PTMON_ENOMEM");
}

static void names_of_modes_statuses_and_actions(void **state)
{
    (void)state;
    assert_string_equal(ptmon_paging_mode_name(PTMON_MODE_PAE), "PAE");
    assert_string_equal(ptmon_paging_mode_name(PTMON_MODE_5LEVEL), "5-level");
    assert_string_equal(ptmon_paging_mode_name((enum ptmon_paging_mode)77), "?");
    assert_string_equal(ptmon_walk_status_name(PTMON_WALK_RESERVED), "reserved bit set");
    assert_string_equal(ptmon_walk_status_name((enum ptmon_walk_status)77), "?");
    assert_string_equal(ptmon_action_name(PTMON_ACTION_DENY), "deny");
    assert_string_equal(ptmon_action_name((enum ptmon_action)77), "?");
    assert_int_equal(ptmon_paging_levels(PTMON_MODE_32BIT), 2);
    assert_int_equal(ptmon_paging_levels(PTMON_MODE_PAE), 3);
    assert_int_equal(ptmon_paging_levels(PTMON_MODE_4LEVEL), 4);
    assert_int_equal(ptmon_paging_levels(PTMON_MODE_5LEVEL), 5);
    assert_int_equal(ptmon_paging_levels(PTMON_MODE_OFF), 0);
    assert_int_equal(ptmon_paging_levels(PTMON_MODE_AUTO), 0);
}

/* ---- paging mode from registers ------------------------------------------------------ */

#define CR0_PE   0x1ull
#define CR0_PG   0x80000000ull
#define CR4_PSE  0x10ull
#define CR4_PAE  0x20ull
#define CR4_LA57 0x1000ull
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull
#define EFER_NXE 0x800ull

static void paging_mode_follows_cr0_cr4_efer(void **state)
{
    (void)state;
    static const struct {
        uint64_t cr0, cr4, efer;
        enum ptmon_paging_mode mode;
        unsigned flags;
    } cases[] = {
        {CR0_PE, CR4_PAE, 0, PTMON_MODE_OFF, 0},
        {CR0_PE | CR0_PG, 0, 0, PTMON_MODE_32BIT, 0},
        {CR0_PE | CR0_PG, CR4_PSE, EFER_NXE, PTMON_MODE_32BIT, PTMON_PAGING_PSE},
        {CR0_PE | CR0_PG, CR4_PAE, 0, PTMON_MODE_PAE, 0},
        {CR0_PE | CR0_PG, CR4_PAE | CR4_PSE, EFER_NXE, PTMON_MODE_PAE, PTMON_PAGING_NXE},
        /* LME without LMA: long mode enabled but not yet active — still PAE paging */
        {CR0_PE | CR0_PG, CR4_PAE, EFER_LME, PTMON_MODE_PAE, 0},
        {CR0_PE | CR0_PG, CR4_PAE, EFER_LME | EFER_LMA, PTMON_MODE_4LEVEL, 0},
        {CR0_PE | CR0_PG, CR4_PAE, EFER_LME | EFER_LMA | EFER_NXE, PTMON_MODE_4LEVEL,
         PTMON_PAGING_NXE},
        {CR0_PE | CR0_PG, CR4_PAE | CR4_LA57, EFER_LME | EFER_LMA | EFER_NXE, PTMON_MODE_5LEVEL,
         PTMON_PAGING_NXE},
        /* LA57 means nothing outside IA-32e mode */
        {CR0_PE | CR0_PG, CR4_PAE | CR4_LA57, 0, PTMON_MODE_PAE, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ptmon_paging pg;
        assert_int_equal(ptmon_paging_from_regs(cases[i].cr0, cases[i].cr4, cases[i].efer, 46, &pg),
                         0);
        assert_int_equal(pg.mode, cases[i].mode);
        assert_int_equal(pg.flags, cases[i].flags);
        assert_int_equal(pg.maxphyaddr, 46);
    }
}

static void paging_mode_refuses_what_the_cpu_refuses(void **state)
{
    (void)state;
    ptmon_paging pg;
    /* LMA without PAE, LMA without paging, too wide an address, NULL out */
    assert_int_equal(ptmon_paging_from_regs(CR0_PG, 0, EFER_LMA, 46, &pg), PTMON_EINVAL);
    assert_int_equal(ptmon_paging_from_regs(0, CR4_PAE, EFER_LMA, 46, &pg), PTMON_EINVAL);
    assert_int_equal(ptmon_paging_from_regs(CR0_PG, CR4_PAE, 0, 53, &pg), PTMON_EINVAL);
    assert_int_equal(ptmon_paging_from_regs(CR0_PG, CR4_PAE, 0, 31, &pg), PTMON_EINVAL);
    assert_int_equal(ptmon_paging_from_regs(CR0_PG, CR4_PAE, 0, 46, NULL), PTMON_EINVAL);
    assert_int_equal(ptmon_paging_from_regs(CR0_PG, CR4_PAE, 0, 0, &pg), 0);
    assert_int_equal(pg.maxphyaddr, 52); /* 0 means the architectural maximum */
}

/* ---- instance creation --------------------------------------------------------------- */

static void create_with_explicit_mode_and_destroy(void **state)
{
    struct stub *s = *state;
    ptmon_glue g = stub_glue(s);
    ptmon_config c = config_with_mode(PTMON_MODE_PAE);
    ptmon *pm = NULL;

    c.paging.flags = PTMON_PAGING_NXE;
    c.paging.maxphyaddr = 40;
    assert_int_equal(ptmon_create(&g, &c, &pm), 0);
    assert_non_null(pm);
    ptmon_paging pg = ptmon_get_paging(pm);
    assert_int_equal(pg.mode, PTMON_MODE_PAE);
    assert_int_equal(pg.flags, PTMON_PAGING_NXE);
    assert_int_equal(pg.maxphyaddr, 40);
    assert_true(s->live_blocks > 0); /* the instance came from the backend's allocator */
    assert_non_null(strstr(s->last_log, "PAE"));
    ptmon_destroy(pm);
    assert_int_equal(s->live_blocks, 0);
}

static void create_with_auto_mode_reads_vcpu0_registers(void **state)
{
    struct stub *s = *state;
    ptmon_glue g = stub_glue(s);
    ptmon *pm = NULL;

    /* NULL config = PTMON_CONFIG_INIT = AUTO */
    assert_int_equal(ptmon_create(&g, NULL, &pm), 0);
    assert_int_equal(ptmon_get_paging(pm).mode, PTMON_MODE_4LEVEL);
    assert_int_equal(ptmon_get_paging(pm).flags, PTMON_PAGING_NXE);
    assert_int_equal(ptmon_get_paging(pm).maxphyaddr, 52);
    ptmon_destroy(pm);

    s->regs.cr4 |= CR4_LA57;
    ptmon_config c = config_with_mode(PTMON_MODE_AUTO);
    c.paging.maxphyaddr = 48;
    assert_int_equal(ptmon_create(&g, &c, &pm), 0);
    assert_int_equal(ptmon_get_paging(pm).mode, PTMON_MODE_5LEVEL);
    assert_int_equal(ptmon_get_paging(pm).maxphyaddr, 48);
    ptmon_destroy(pm);
}

static void create_with_auto_mode_reports_register_errors(void **state)
{
    struct stub *s = *state;
    ptmon_glue g = stub_glue(s);
    ptmon *pm = (ptmon *)&g; /* must be reset to NULL on failure */

    s->regs_error = PTMON_EIO;
    assert_int_equal(ptmon_create(&g, NULL, &pm), PTMON_EIO);
    assert_null(pm);

    /* an errno-style code from the backend is folded into PTMON_EIO */
    s->regs_error = -5000;
    assert_int_equal(ptmon_create(&g, NULL, &pm), PTMON_EIO);

    s->regs_error = 0;
    s->regs.cr0 = CR0_PE; /* paging off: nothing to watch */
    s->regs.efer = 0;
    assert_int_equal(ptmon_create(&g, NULL, &pm), PTMON_ENOTSUP);
    assert_null(pm);

    g.get_vcpu_regs = NULL;
    assert_int_equal(ptmon_create(&g, NULL, &pm), PTMON_ENOCALLBACK);
}

static void create_refuses_null_arguments(void **state)
{
    struct stub *s = *state;
    ptmon_glue g = stub_glue(s);
    ptmon *pm = (ptmon *)&g;

    assert_int_equal(ptmon_create(NULL, NULL, &pm), PTMON_EINVAL);
    assert_null(pm);
    assert_int_equal(ptmon_create(&g, NULL, NULL), PTMON_EINVAL);
    ptmon_destroy(NULL); /* accepted, does nothing */
    assert_int_equal(ptmon_get_paging(NULL).mode, PTMON_MODE_OFF);
}

static void create_refuses_unsupported_glue_versions(void **state)
{
    struct stub *s = *state;
    ptmon_glue g = stub_glue(s);
    ptmon *pm = NULL;

    g.version = 0;
    assert_int_equal(ptmon_create(&g, NULL, &pm), PTMON_EVERSION);
    g.version = PTMON_GLUE_VERSION + 1;
    assert_int_equal(ptmon_create(&g, NULL, &pm), PTMON_EVERSION);
    g.version = 1; /* every version up to the current one is accepted */
    assert_int_equal(ptmon_create(&g, NULL, &pm), 0);
    ptmon_destroy(pm);
}

static void create_refuses_missing_required_callbacks(void **state)
{
    struct stub *s = *state;
    ptmon *pm = NULL;

    for (int which = 0; which < 3; which++) {
        ptmon_glue g = stub_glue(s);
        if (which == 0)
            g.read_gpa = NULL;
        else if (which == 1)
            g.get_access = NULL;
        else
            g.set_access = NULL;
        assert_int_equal(ptmon_create(&g, NULL, &pm), PTMON_ENOCALLBACK);
        assert_null(pm);
    }
}

static int stub_pause(void *be)
{
    (void)be;
    return 0;
}

static void create_refuses_pause_without_resume(void **state)
{
    struct stub *s = *state;
    ptmon_glue g = stub_glue(s);
    ptmon *pm = NULL;

    g.pause = stub_pause;
    assert_int_equal(ptmon_create(&g, NULL, &pm), PTMON_ENOCALLBACK);
    assert_null(pm);
}

static void create_works_without_any_optional_callback(void **state)
{
    struct stub *s = *state;
    ptmon_glue g = PTMON_GLUE_INIT;
    ptmon_config c = config_with_mode(PTMON_MODE_32BIT);
    ptmon *pm = NULL;

    g.backend = s;
    g.read_gpa = stub_read;
    g.get_access = stub_get_access;
    g.set_access = stub_set_access;
    c.paging.flags = PTMON_PAGING_PSE;
    assert_int_equal(ptmon_create(&g, &c, &pm), 0); /* libc allocator, no log */
    assert_int_equal(ptmon_get_paging(pm).flags, PTMON_PAGING_PSE);
    ptmon_destroy(pm);
}

static void create_refuses_bad_configs(void **state)
{
    struct stub *s = *state;
    ptmon_glue g = stub_glue(s);
    ptmon *pm = NULL;
    ptmon_config c = PTMON_CONFIG_INIT;

    c.version = 0;
    assert_int_equal(ptmon_create(&g, &c, &pm), PTMON_EVERSION);
    c.version = PTMON_CONFIG_VERSION + 1;
    assert_int_equal(ptmon_create(&g, &c, &pm), PTMON_EVERSION);

    c = config_with_mode(PTMON_MODE_OFF);
    assert_int_equal(ptmon_create(&g, &c, &pm), PTMON_ENOTSUP);
    c = config_with_mode((enum ptmon_paging_mode)42);
    assert_int_equal(ptmon_create(&g, &c, &pm), PTMON_EINVAL);
    c = config_with_mode(PTMON_MODE_4LEVEL);
    c.paging.maxphyaddr = 60;
    assert_int_equal(ptmon_create(&g, &c, &pm), PTMON_EINVAL);
    c.paging.maxphyaddr = 20;
    assert_int_equal(ptmon_create(&g, &c, &pm), PTMON_EINVAL);
    c.paging.maxphyaddr = 46;
    c.paging.flags = 0x80;
    assert_int_equal(ptmon_create(&g, &c, &pm), PTMON_EINVAL);
    assert_null(pm);
}

static void create_reports_allocation_failure_and_leaks_nothing(void **state)
{
    struct stub *s = *state;
    ptmon_glue g = stub_glue(s);
    ptmon *pm = (ptmon *)&g;

    s->fail_alloc = 1;
    assert_int_equal(ptmon_create(&g, NULL, &pm), PTMON_ENOMEM);
    assert_null(pm);
    assert_int_equal(s->live_blocks, 0);
}

static void two_instances_are_independent(void **state)
{
    struct stub *s = *state;
    struct stub *other = calloc(1, sizeof(*other));
    assert_non_null(other);
    ptmon_glue g1 = stub_glue(s), g2 = stub_glue(other);
    ptmon_config c1 = config_with_mode(PTMON_MODE_PAE), c2 = config_with_mode(PTMON_MODE_5LEVEL);
    ptmon *a = NULL, *b = NULL;

    assert_int_equal(ptmon_create(&g1, &c1, &a), 0);
    assert_int_equal(ptmon_create(&g2, &c2, &b), 0);
    assert_int_equal(s->live_blocks, 1);
    assert_int_equal(other->live_blocks, 1);
    assert_int_equal(ptmon_get_paging(a).mode, PTMON_MODE_PAE);
    assert_int_equal(ptmon_get_paging(b).mode, PTMON_MODE_5LEVEL);
    /* the glue was copied: changing the caller's struct afterwards changes nothing */
    g1.read_gpa = NULL;
    ptmon_walk w;
    assert_int_equal(ptmon_translate(a, 0, 0, &w), 0);
    ptmon_destroy(a);
    ptmon_destroy(b);
    assert_int_equal(other->live_blocks, 0);
    free(other);
}

static void translate_refuses_null_arguments(void **state)
{
    struct stub *s = *state;
    ptmon_glue g = stub_glue(s);
    ptmon *pm = NULL;
    ptmon_walk w;

    assert_int_equal(ptmon_create(&g, NULL, &pm), 0);
    assert_int_equal(ptmon_translate(NULL, 0, 0, &w), PTMON_EINVAL);
    assert_int_equal(ptmon_translate(pm, 0, 0, NULL), PTMON_EINVAL);
    ptmon_destroy(pm);
}

static void translate_reads_through_the_backend(void **state)
{
    struct stub *s = *state;
    ptmon_glue g = stub_glue(s);
    ptmon *pm = NULL;
    ptmon_walk w;

    /* PML4 at frame 1, PDPT at frame 2 with a 1 GiB page at GPA 0x40000000 for VA 0 */
    uint64_t pml4e = 0x2000 | PTMON_PTE_P | PTMON_PTE_RW | PTMON_PTE_US;
    uint64_t pdpte = 0x40000000 | PTMON_PTE_P | PTMON_PTE_PS | PTMON_PTE_US;
    memcpy(s->ram + 0x1000, &pml4e, 8);
    memcpy(s->ram + 0x2000, &pdpte, 8);
    assert_int_equal(ptmon_create(&g, NULL, &pm), 0);
    assert_int_equal(ptmon_translate(pm, 0x1000 | 0x5 /* PCID */, 0x1234, &w), 0);
    assert_int_equal(w.status, PTMON_WALK_OK);
    assert_int_equal(w.page_size, 1ull << 30);
    assert_int_equal(w.gpa, 0x40001234);
    assert_int_equal(w.rights, PTMON_RIGHT_U);

    /* CR3 outside RAM */
    assert_int_equal(ptmon_translate(pm, 0x100000, 0, &w), PTMON_ERANGE);
    ptmon_destroy(pm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_number_matches_the_header),
        cmocka_unit_test(every_error_code_has_a_distinct_message_and_name),
        cmocka_unit_test(names_of_modes_statuses_and_actions),
        cmocka_unit_test(paging_mode_follows_cr0_cr4_efer),
        cmocka_unit_test(paging_mode_refuses_what_the_cpu_refuses),
#define STUB_TEST(f) cmocka_unit_test_setup_teardown(f, stub_setup, stub_teardown)
        STUB_TEST(create_with_explicit_mode_and_destroy),
        STUB_TEST(create_with_auto_mode_reads_vcpu0_registers),
        STUB_TEST(create_with_auto_mode_reports_register_errors),
        STUB_TEST(create_refuses_null_arguments),
        STUB_TEST(create_refuses_unsupported_glue_versions),
        STUB_TEST(create_refuses_missing_required_callbacks),
        STUB_TEST(create_refuses_pause_without_resume),
        STUB_TEST(create_works_without_any_optional_callback),
        STUB_TEST(create_refuses_bad_configs),
        STUB_TEST(create_reports_allocation_failure_and_leaks_nothing),
        STUB_TEST(two_instances_are_independent),
        STUB_TEST(translate_refuses_null_arguments),
        STUB_TEST(translate_reads_through_the_backend),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
