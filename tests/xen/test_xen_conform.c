/*
 * The Xen backend's glue against ptmon_glue_check() (the glue contract of <ptmon/backend.h>), on
 * the fake hypervisor (fake_xen.c): attached with the mem_access mechanism, no ptmon instance,
 * the scratch frame an ordinary guest frame and outside_gfn the first frame above the domain's
 * RAM. Every check must pass, and the domain must be left as it was: the scratch frame's bytes,
 * every frame's access type, no pause outstanding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_xen.h" /* first: xenctrl.h sets up the Xen headers */

#include <xen/memory.h>

#define NFRAMES 64u

struct report {
    char text[16384];
    size_t len;
    unsigned lines;
};

static void collect(void *ctx, const char *text)
{
    struct report *r = ctx;
    size_t n = strlen(text);
    assert_true(r->len + n < sizeof(r->text));
    memcpy(r->text + r->len, text, n + 1);
    print_message("%s", text);
    r->len += n;
    r->lines++;
}

/* What one run left behind. */
struct outcome {
    int failed;                      /* ptmon_glue_check's result */
    int bytes_kept;                  /* the scratch frame's bytes as before */
    uint64_t protected_frames;       /* frames the backend still held after the check */
    uint64_t stale_frames;           /* frames it took for a dead monitor's leftovers */
    int detach_rc, access_unchanged; /* every frame's access type as before, after detach */
    int pause_depth;
};

/* Attach to a fake domain whose scratch frame has access @p scratch_xa, run the check, detach.
 * Everything is freed before the caller asserts, so a failure leaks nothing. */
static struct outcome check_domain(uint8_t scratch_xa)
{
    struct fake_hv *hv = fake_hv_create(NFRAMES, 2);
    ptmon_xen_config cfg = PTMON_XEN_CONFIG_INIT;
    ptmon_glue_check_config cc = PTMON_GLUE_CHECK_INIT;
    struct outcome o;
    uint8_t before[4096];
    struct report r;
    ptmon_xen_stats st;
    ptmon_xen *x = NULL;
    uint64_t gpa;

    memset(&o, 0, sizeof(o));
    fake_hv_new_root(hv); /* a guest with page tables, as a real one has */
    gpa = fake_hv_alloc(hv);
    for (size_t i = 0; i < sizeof(before); i++)
        before[i] = (uint8_t)(i * 13 + 5);
    fake_hv_poke(hv, gpa, before, sizeof(before));
    hv->access[gpa >> 12] = scratch_xa;
    fake_hv_snapshot(hv);

    cfg.domid = 5;
    assert_int_equal(xen_attach_ops(&cfg, &hv->ops, &x), 0);
    cc.scratch_gfn = gpa >> 12;
    cc.outside_gfn = hv->nframes; /* the first frame above the domain's RAM */
    cc.vcpu = 1;
    memset(&r, 0, sizeof(r));
    o.failed = ptmon_glue_check(ptmon_xen_glue(x), &cc, collect, &r);
    o.bytes_kept = memcmp(hv->ram + gpa, before, sizeof(before)) == 0;
    memset(&st, 0, sizeof(st));
    (void)ptmon_xen_get_stats(x, &st);
    o.protected_frames = st.protected_frames;
    o.stale_frames = st.stale_frames;

    o.detach_rc = ptmon_xen_detach(x);
    ptmon_xen_free(x);
    for (uint64_t g = 0; g < hv->nframes; g++)
        if (hv->access[g] != hv->initial_access[g])
            print_message("gfn 0x%llx: access %u after detach, %u before\n", (unsigned long long)g,
                          hv->access[g], hv->initial_access[g]);
    o.access_unchanged = fake_hv_access_unchanged(hv);
    o.pause_depth = hv->pause_depth;
    fake_hv_destroy(hv);
    return o;
}

static void assert_conforms_and_left_as_it_was(const struct outcome *o)
{
    assert_int_equal(o->failed, 0);
    assert_true(o->bytes_kept);
    /* the check's own restrictions are all undone, and none was taken for a dead monitor's */
    assert_int_equal(o->protected_frames, 0);
    assert_int_equal(o->stale_frames, 0);
    assert_int_equal(o->detach_rc, 0);
    assert_true(o->access_unchanged);
    assert_int_equal(o->pause_depth, 0);
}

static void the_xen_glue_conforms_on_a_frame_with_the_default_access(void **state)
{
    struct outcome o = check_domain(XENMEM_access_rwx);
    (void)state;
    assert_conforms_and_left_as_it_was(&o);
}

/* A frame that starts without X: its original type must survive every change the check makes. */
static void the_xen_glue_conforms_on_a_frame_without_execute(void **state)
{
    struct outcome o = check_domain(XENMEM_access_rw);
    (void)state;
    assert_conforms_and_left_as_it_was(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_xen_glue_conforms_on_a_frame_with_the_default_access),
        cmocka_unit_test(the_xen_glue_conforms_on_a_frame_without_execute),
    };
    return cmocka_run_group_tests_name("xen_conform", tests, NULL, NULL);
}
