/*
 * test_glue_check.c — ptmon_glue_check() (src/core/glue_check.c) against the fake guest's glue,
 * which keeps the contract, and against glues that wrap it and break one clause each: every
 * broken clause must be reported, by check name, member and value, and nothing else.
 *
 * The wrapping glues keep their state in a struct passed as `backend`; every test creates its
 * own fake guest (no global mutable state).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ptmon/fake.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RAM_FRAMES   256u /* 1 MiB of guest RAM: gfn 256 is the first frame above it */
#define FAR_GFN      (1ull << 24)
#define BACKEND_BITS 0x4200u /* private bits the fake keeps and the check must not disturb */

/* Every check the report names, in order. */
static const char *const check_names[] = {
    "import",
    "read_gpa.frame",
    "read_gpa.entry4",
    "read_gpa.entry8",
    "read_gpa.last_byte",
    "read_gpa.outside",
    "get_access.scratch",
    "get_access.outside",
    "set_access.outside",
    "rights.remove_write",
    "rights.restore",
    "set_access_batch.one",
    "set_access_batch.two",
    "set_access_batch.outside",
    "emulate_write.bytes",
    "get_vcpu_regs",
    "get_maxphyaddr",
    "scratch.restored",
    "flush",
    "error_codes",
};
#define NR_CHECKS (sizeof(check_names) / sizeof(check_names[0]))

/* ---- the report, collected ---------------------------------------------------------------- */

struct report {
    char text[16384];
    size_t len;
    unsigned lines;
};

static void collect(void *ctx, const char *text)
{
    struct report *r = ctx;
    size_t n = strlen(text);
    assert_true(n > 0 && text[n - 1] == '\n');
    assert_null(memchr(text, '\n', n - 1)); /* one line per call */
    assert_true(r->len + n < sizeof(r->text));
    memcpy(r->text + r->len, text, n + 1);
    r->len += n;
    r->lines++;
}

/* cmocka's print_message takes at most 1 KiB at a time: one line per call. */
static void print_report(const struct report *r)
{
    for (const char *l = r->text; *l; l = strchr(l, '\n') + 1)
        print_message("%.*s", (int)(strchr(l, '\n') + 1 - l), l);
}

/* @return the line of check @p name ("ok   name...", "FAIL name: ..."), or NULL. */
static const char *line_of(const struct report *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = r->text; *l; l = strchr(l, '\n') + 1) {
        const char *after = l + 5;
        if (strncmp(after, name, n) == 0 && (after[n] == '\n' || after[n] == ':'))
            return l;
    }
    return NULL;
}

static int line_says(const struct report *r, const char *name, const char *tag)
{
    const char *l = line_of(r, name);
    return l && strncmp(l, tag, strlen(tag)) == 0;
}

/* The line of @p name is a FAIL line containing each of the NULL-terminated strings. */
static void assert_fail_line(const struct report *r, const char *name, ...)
{
    const char *l = line_of(r, name);
    const char *end, *want;
    va_list ap;

    if (!l || strncmp(l, "FAIL ", 5) != 0) {
        print_report(r);
        fail_msg("no FAIL line for %s", name);
    }
    end = strchr(l, '\n');
    va_start(ap, name);
    while ((want = va_arg(ap, const char *)) != NULL) {
        const char *hit = strstr(l, want);
        if (!hit || hit > end) {
            va_end(ap);
            fail_msg("the line of %s lacks \"%s\": %.*s", name, want, (int)(end - l), l);
        }
    }
    va_end(ap);
}

/* Every check has exactly one line, in order, and the lines are ok/skip but for @p failing. */
static void assert_report_shape(const struct report *r, const char *const *failing)
{
    const char *l = r->text;
    assert_int_equal(r->lines, NR_CHECKS);
    for (size_t i = 0; i < NR_CHECKS; i++, l = strchr(l, '\n') + 1) {
        int expect_fail = 0;
        assert_ptr_equal(line_of(r, check_names[i]), l);
        for (const char *const *f = failing; f && *f; f++)
            expect_fail |= strcmp(*f, check_names[i]) == 0;
        if (expect_fail)
            assert_memory_equal(l, "FAIL ", 5);
        else if (strncmp(l, "ok   ", 5) != 0 && strncmp(l, "skip ", 5) != 0) {
            print_report(r);
            fail_msg("check %s did not pass", check_names[i]);
        }
    }
}

/* ---- the fake guest and its scratch frame ---------------------------------------------------- */

struct guest {
    ptmon_fake *fake;
    ptmon_glue_check_config cfg;
    uint8_t bytes[4096]; /* the scratch frame's contents before the check */
    uint32_t rights;
};

static void guest_init(struct guest *g)
{
    ptmon_fake_config fc = PTMON_FAKE_CONFIG_INIT;
    ptmon_glue_check_config cfg = PTMON_GLUE_CHECK_INIT;
    uint64_t gpa = 0;

    fc.ram_size = (uint64_t)RAM_FRAMES << 12;
    fc.nr_vcpus = 2;
    assert_int_equal(ptmon_fake_create(&fc, &g->fake), 0);
    assert_int_equal(ptmon_fake_alloc_frame(g->fake, &gpa), 0);
    for (size_t i = 0; i < sizeof(g->bytes); i++)
        g->bytes[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(ptmon_fake_poke(g->fake, gpa, g->bytes, sizeof(g->bytes)), 0);
    g->rights = PTMON_ACCESS_RWX | BACKEND_BITS;
    assert_int_equal(ptmon_fake_set_rights(g->fake, gpa >> 12, g->rights), 0);
    cfg.scratch_gfn = gpa >> 12;
    cfg.outside_gfn = RAM_FRAMES;
    cfg.vcpu = 1;
    g->cfg = cfg;
}

/* The scratch frame holds its bytes and rights as before, and the check never paused. */
static void guest_left_as_it_was(const struct guest *g)
{
    uint8_t now[4096];
    assert_int_equal(ptmon_fake_peek(g->fake, g->cfg.scratch_gfn << 12, now, sizeof(now)), 0);
    assert_memory_equal(now, g->bytes, sizeof(now));
    assert_int_equal(ptmon_fake_rights(g->fake, g->cfg.scratch_gfn), g->rights);
    assert_int_equal(ptmon_fake_count_write_protected(g->fake), 0);
    assert_int_equal(ptmon_fake_calls(g->fake, PTMON_FAKE_OP_PAUSE), 0);
    assert_int_equal(ptmon_fake_pause_depth(g->fake), 0);
}

/* ---- a glue that wraps the fake's and breaks one clause -------------------------------------- */

enum wrap_flaw {
    FLAW_NONE = 0,
    FLAW_MINUS_ONE_OUTSIDE = 1 << 0, /* -1 wherever the fake says PTMON_ERANGE */
    FLAW_KEEPS_W = 1 << 1,           /* set_access never takes W away */
    FLAW_ERRNO_GET_OUTSIDE = 1 << 2, /* get_access outside RAM: -22 (EINVAL as an errno) */
    FLAW_POSITIVE_FLUSH = 1 << 3,    /* flush answers +1 */
    FLAW_BATCH_DONE_ZERO = 1 << 4,   /* a failed batch says done 0 though it applied one */
};

struct wrap {
    ptmon_glue glue; /* what the check is given; its backend is this struct */
    const ptmon_glue *inner;
    unsigned flaws;
    unsigned maxphyaddr; /* what get_maxphyaddr answers */
    unsigned maxphyaddr_calls;
};

static int outside(const struct wrap *w, int rc)
{
    return (w->flaws & FLAW_MINUS_ONE_OUTSIDE) && rc == PTMON_ERANGE ? -1 : rc;
}

static int w_read_gpa(void *b, uint64_t gpa, void *buf, size_t len)
{
    struct wrap *w = b;
    return outside(w, w->inner->read_gpa(w->inner->backend, gpa, buf, len));
}

static int w_get_access(void *b, uint64_t gfn, uint32_t *access)
{
    struct wrap *w = b;
    int rc = w->inner->get_access(w->inner->backend, gfn, access);
    if ((w->flaws & FLAW_ERRNO_GET_OUTSIDE) && rc == PTMON_ERANGE)
        return -22;
    return outside(w, rc);
}

static int w_set_access(void *b, uint64_t gfn, uint32_t access)
{
    struct wrap *w = b;
    if (w->flaws & FLAW_KEEPS_W)
        access |= PTMON_ACCESS_W;
    return outside(w, w->inner->set_access(w->inner->backend, gfn, access));
}

static int w_set_access_batch(void *b, const uint64_t *gfns, const uint32_t *access, size_t n,
                              size_t *done)
{
    struct wrap *w = b;
    int rc = w->inner->set_access_batch(w->inner->backend, gfns, access, n, done);
    if (rc && (w->flaws & FLAW_BATCH_DONE_ZERO))
        *done = 0;
    return outside(w, rc);
}

static int w_emulate_write(void *b, uint32_t vcpu, uint64_t gpa, uint32_t size, const void *bytes,
                           void *written)
{
    struct wrap *w = b;
    return outside(w, w->inner->emulate_write(w->inner->backend, vcpu, gpa, size, bytes, written));
}

static int w_flush(void *b)
{
    struct wrap *w = b;
    int rc = w->inner->flush(w->inner->backend);
    return rc == 0 && (w->flaws & FLAW_POSITIVE_FLUSH) ? 1 : rc;
}

static int w_get_vcpu_regs(void *b, uint32_t vcpu, ptmon_vcpu_regs *regs)
{
    struct wrap *w = b;
    return w->inner->get_vcpu_regs(w->inner->backend, vcpu, regs);
}

static int w_get_maxphyaddr(void *b, unsigned *bits)
{
    struct wrap *w = b;
    w->maxphyaddr_calls++;
    *bits = w->maxphyaddr;
    return 0;
}

static void wrap_init(struct wrap *w, const struct guest *g, unsigned flaws)
{
    ptmon_glue glue = PTMON_GLUE_INIT;

    memset(w, 0, sizeof(*w));
    w->inner = ptmon_fake_glue(g->fake);
    w->flaws = flaws;
    w->maxphyaddr = 46;
    glue.backend = w;
    glue.read_gpa = w_read_gpa;
    glue.get_access = w_get_access;
    glue.set_access = w_set_access;
    glue.set_access_batch = w_set_access_batch;
    glue.emulate_write = w_emulate_write;
    glue.flush = w_flush;
    glue.get_vcpu_regs = w_get_vcpu_regs;
    glue.get_maxphyaddr = w_get_maxphyaddr;
    w->glue = glue;
}

/* Run the check on @p glue, collecting the report into @p r. */
static int run(const ptmon_glue *glue, const struct guest *g, struct report *r)
{
    memset(r, 0, sizeof(*r));
    return ptmon_glue_check(glue, &g->cfg, collect, r);
}

/* ---- the fake's own glue ----------------------------------------------------------------------
 */

static void the_fake_guest_conforms_and_its_scratch_frame_is_left_as_it_was(void **state)
{
    struct guest g;
    struct report r;
    (void)state;

    guest_init(&g);
    assert_int_equal(run(ptmon_fake_glue(g.fake), &g, &r), 0);
    print_report(&r);
    assert_report_shape(&r, NULL);
    /* the fake has every member and RAM ends just below outside_gfn: nothing is skipped */
    assert_null(strstr(r.text, "skip "));
    assert_non_null(strstr(line_of(&r, "get_vcpu_regs"), "vCPU 1: CR0 0x"));
    assert_non_null(strstr(line_of(&r, "get_vcpu_regs"), "EFER 0x"));
    assert_non_null(strstr(line_of(&r, "get_maxphyaddr"), "46 bits"));
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

static void an_outside_frame_far_above_ram_conforms_too(void **state)
{
    struct guest g;
    struct report r;
    (void)state;

    guest_init(&g);
    g.cfg.outside_gfn = FAR_GFN;
    assert_int_equal(run(ptmon_fake_glue(g.fake), &g, &r), 0);
    assert_report_shape(&r, NULL);
    assert_null(strstr(r.text, "skip "));
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

static void the_check_runs_without_a_report_function(void **state)
{
    struct guest g;
    struct wrap w;
    (void)state;

    guest_init(&g);
    assert_int_equal(ptmon_glue_check(ptmon_fake_glue(g.fake), &g.cfg, NULL, NULL), 0);
    wrap_init(&w, &g, FLAW_KEEPS_W);
    assert_int_equal(ptmon_glue_check(&w.glue, &g.cfg, NULL, NULL), 1);
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

/* ---- glues that break a clause ------------------------------------------------------------ */

static void a_faithful_wrapper_conforms_too(void **state)
{
    struct guest g;
    struct wrap w;
    struct report r;
    (void)state;

    guest_init(&g);
    wrap_init(&w, &g, FLAW_NONE);
    assert_int_equal(run(&w.glue, &g, &r), 0);
    assert_report_shape(&r, NULL);
    assert_true(line_says(&r, "import", "ok   ")); /* no pause/resume: fine, both absent */
    assert_int_equal(w.maxphyaddr_calls, 1);
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

static void minus_one_for_frames_outside_ram_fails_every_out_of_ram_check(void **state)
{
    static const char *const failing[] = {"read_gpa.outside", "get_access.outside",
                                          "set_access.outside", "set_access_batch.outside", NULL};
    struct guest g;
    struct wrap w;
    struct report r;
    (void)state;

    guest_init(&g);
    wrap_init(&w, &g, FLAW_MINUS_ONE_OUTSIDE);
    assert_int_equal(run(&w.glue, &g, &r), 4);
    assert_report_shape(&r, failing);
    assert_fail_line(&r, "read_gpa.outside", "read_gpa(gpa 0x100000", "returned -1", "PTMON_EINVAL",
                     "invalid argument", "must be PTMON_ERANGE: a plain -1 is PTMON_EINVAL", NULL);
    assert_fail_line(&r, "get_access.outside", "get_access(gfn 0x100)", "returned -1",
                     "a plain -1 is PTMON_EINVAL", NULL);
    assert_fail_line(&r, "set_access.outside", "set_access(gfn 0x100", "returned -1", NULL);
    assert_fail_line(&r, "set_access_batch.outside", "set_access_batch(", "returned -1", NULL);
    /* -1 is a PTMON_E* code (the wrong one): no error_codes failure on top */
    assert_true(line_says(&r, "error_codes", "ok   "));
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

static void a_set_access_that_keeps_the_write_right_fails_the_round_trip(void **state)
{
    static const char *const failing[] = {"rights.remove_write", NULL};
    struct guest g;
    struct wrap w;
    struct report r;
    (void)state;

    guest_init(&g);
    wrap_init(&w, &g, FLAW_KEEPS_W);
    assert_int_equal(run(&w.glue, &g, &r), 1);
    assert_report_shape(&r, failing);
    assert_fail_line(&r, "rights.remove_write", "get_access(gfn", "set_access(0x4205)",
                     "expected 0x4205, read back 0x4207", "R/W/X 0x7 instead of 0x5", NULL);
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

static void an_errno_from_get_access_is_reported_with_its_value(void **state)
{
    static const char *const failing[] = {"get_access.outside", "error_codes", NULL};
    struct guest g;
    struct wrap w;
    struct report r;
    (void)state;

    guest_init(&g);
    wrap_init(&w, &g, FLAW_ERRNO_GET_OUTSIDE);
    assert_int_equal(run(&w.glue, &g, &r), 2);
    assert_report_shape(&r, failing);
    assert_fail_line(&r, "get_access.outside", "must return PTMON_ERANGE", "returned -22",
                     "unknown error", "no PTMON_E* code", NULL);
    assert_fail_line(&r, "error_codes", "get_access returned -22", "1 such answers", NULL);
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

static void a_positive_answer_from_flush_is_reported_with_its_value(void **state)
{
    static const char *const failing[] = {"flush", "error_codes", NULL};
    struct guest g;
    struct wrap w;
    struct report r;
    (void)state;

    guest_init(&g);
    wrap_init(&w, &g, FLAW_POSITIVE_FLUSH);
    assert_int_equal(run(&w.glue, &g, &r), 2);
    assert_report_shape(&r, failing);
    assert_fail_line(&r, "flush", "flush() must return 0, returned 1", "a positive value", NULL);
    assert_fail_line(&r, "error_codes", "flush returned 1", NULL);
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

static void a_batch_that_under_reports_done_fails(void **state)
{
    static const char *const failing[] = {"set_access_batch.outside", NULL};
    struct guest g;
    struct wrap w;
    struct report r;
    (void)state;

    guest_init(&g);
    wrap_init(&w, &g, FLAW_BATCH_DONE_ZERO);
    assert_int_equal(run(&w.glue, &g, &r), 1);
    assert_report_shape(&r, failing);
    assert_fail_line(&r, "set_access_batch.outside", "done 0", "expected 0x4207",
                     "read back 0x4205", NULL);
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

static void a_maxphyaddr_outside_32_to_52_fails(void **state)
{
    static const char *const failing[] = {"get_maxphyaddr", NULL};
    struct guest g;
    struct wrap w;
    struct report r;
    (void)state;

    guest_init(&g);
    wrap_init(&w, &g, FLAW_NONE);
    w.maxphyaddr = 60;
    assert_int_equal(run(&w.glue, &g, &r), 1);
    assert_report_shape(&r, failing);
    assert_fail_line(&r, "get_maxphyaddr", "60 bits", "32..52", NULL);
    ptmon_fake_destroy(g.fake);
}

/* ---- versions and the import ------------------------------------------------------------- */

static void a_version_1_glue_is_checked_without_touching_get_maxphyaddr(void **state)
{
    struct guest g;
    struct wrap w;
    struct report r;
    (void)state;

    guest_init(&g);
    wrap_init(&w, &g, FLAW_NONE);
    w.glue.version = 1; /* get_maxphyaddr is set, but version 1 has no such member */
    assert_int_equal(run(&w.glue, &g, &r), 0);
    assert_report_shape(&r, NULL);
    assert_true(line_says(&r, "get_maxphyaddr", "skip "));
    assert_non_null(strstr(line_of(&r, "get_maxphyaddr"), "version 1"));
    assert_non_null(strstr(line_of(&r, "import"), "version 1"));
    assert_int_equal(w.maxphyaddr_calls, 0);
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

/* A backend built against the version-1 header owns a struct that ends at realloc: the check
 * must not read a byte past it (ASan builds catch a read there). */
static void a_version_1_glue_struct_is_not_read_past_its_end(void **state)
{
    size_t v1_size = offsetof(ptmon_glue, get_maxphyaddr);
    const unsigned one = 1;
    struct guest g;
    struct report r;
    unsigned char *short_glue;
    (void)state;

    guest_init(&g);
    short_glue = malloc(v1_size);
    assert_non_null(short_glue);
    /* byte copies: the block is shorter than the struct type, as the backend's would be */
    memcpy(short_glue, ptmon_fake_glue(g.fake), v1_size);
    memcpy(short_glue + offsetof(ptmon_glue, version), &one, sizeof(one));
    assert_int_equal(run((const ptmon_glue *)(const void *)short_glue, &g, &r), 0);
    assert_report_shape(&r, NULL);
    assert_true(line_says(&r, "get_maxphyaddr", "skip "));
    free(short_glue);
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

static void an_unknown_glue_version_fails_the_import_and_nothing_else_is_called(void **state)
{
    struct guest g;
    struct wrap w;
    struct report r;
    (void)state;

    guest_init(&g);
    wrap_init(&w, &g, FLAW_NONE);
    ptmon_fake_reset_calls(g.fake);
    w.glue.version = PTMON_GLUE_VERSION + 1;
    assert_int_equal(run(&w.glue, &g, &r), 1);
    assert_int_equal(r.lines, 1);
    assert_fail_line(&r, "import", "version must be 1..2", "PTMON_EVERSION", NULL);
    w.glue.version = 0;
    assert_int_equal(run(&w.glue, &g, &r), 1);
    assert_int_equal(r.lines, 1);
    for (int op = 0; op < PTMON_FAKE_OP_COUNT; op++)
        assert_int_equal(ptmon_fake_calls(g.fake, (enum ptmon_fake_op)op), 0);
    ptmon_fake_destroy(g.fake);
}

static void a_glue_without_read_gpa_fails_the_import_and_stops(void **state)
{
    struct guest g;
    struct wrap w;
    struct report r;
    (void)state;

    guest_init(&g);
    wrap_init(&w, &g, FLAW_NONE);
    w.glue.read_gpa = NULL;
    assert_int_equal(run(&w.glue, &g, &r), 1);
    assert_int_equal(r.lines, 1);
    assert_fail_line(&r, "import", "required member read_gpa is NULL", "PTMON_ENOCALLBACK", NULL);
    ptmon_fake_destroy(g.fake);
}

static int w_pause(void *b)
{
    (void)b;
    fail_msg("the check must never pause the guest");
    return 0;
}

static void pause_without_resume_fails_the_import_and_the_rest_still_runs(void **state)
{
    static const char *const failing[] = {"import", NULL};
    struct guest g;
    struct wrap w;
    struct report r;
    (void)state;

    guest_init(&g);
    wrap_init(&w, &g, FLAW_NONE);
    w.glue.pause = w_pause;
    assert_int_equal(run(&w.glue, &g, &r), 1);
    assert_report_shape(&r, failing);
    assert_fail_line(&r, "import", "resume is NULL", NULL);
    guest_left_as_it_was(&g);
    ptmon_fake_destroy(g.fake);
}

static void bad_configs_are_refused_with_einval_and_no_report(void **state)
{
    struct guest g;
    struct report r;
    ptmon_glue_check_config cfg;
    const ptmon_glue *glue;
    (void)state;

    guest_init(&g);
    glue = ptmon_fake_glue(g.fake);
    memset(&r, 0, sizeof(r));
    assert_int_equal(ptmon_glue_check(NULL, &g.cfg, collect, &r), PTMON_EINVAL);
    assert_int_equal(ptmon_glue_check(glue, NULL, collect, &r), PTMON_EINVAL);
    cfg = g.cfg;
    cfg.version = 0;
    assert_int_equal(ptmon_glue_check(glue, &cfg, collect, &r), PTMON_EINVAL);
    cfg.version = PTMON_GLUE_CHECK_VERSION + 1;
    assert_int_equal(ptmon_glue_check(glue, &cfg, collect, &r), PTMON_EINVAL);
    cfg = g.cfg;
    cfg.outside_gfn = cfg.scratch_gfn;
    assert_int_equal(ptmon_glue_check(glue, &cfg, collect, &r), PTMON_EINVAL);
    assert_int_equal(r.lines, 0);
    ptmon_fake_destroy(g.fake);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_fake_guest_conforms_and_its_scratch_frame_is_left_as_it_was),
        cmocka_unit_test(an_outside_frame_far_above_ram_conforms_too),
        cmocka_unit_test(the_check_runs_without_a_report_function),
        cmocka_unit_test(a_faithful_wrapper_conforms_too),
        cmocka_unit_test(minus_one_for_frames_outside_ram_fails_every_out_of_ram_check),
        cmocka_unit_test(a_set_access_that_keeps_the_write_right_fails_the_round_trip),
        cmocka_unit_test(an_errno_from_get_access_is_reported_with_its_value),
        cmocka_unit_test(a_positive_answer_from_flush_is_reported_with_its_value),
        cmocka_unit_test(a_batch_that_under_reports_done_fails),
        cmocka_unit_test(a_maxphyaddr_outside_32_to_52_fails),
        cmocka_unit_test(a_version_1_glue_is_checked_without_touching_get_maxphyaddr),
        cmocka_unit_test(a_version_1_glue_struct_is_not_read_past_its_end),
        cmocka_unit_test(an_unknown_glue_version_fails_the_import_and_nothing_else_is_called),
        cmocka_unit_test(a_glue_without_read_gpa_fails_the_import_and_stops),
        cmocka_unit_test(pause_without_resume_fails_the_import_and_the_rest_still_runs),
        cmocka_unit_test(bad_configs_are_refused_with_einval_and_no_report),
    };
    return cmocka_run_group_tests_name("glue_check", tests, NULL, NULL);
}
