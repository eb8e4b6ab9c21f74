/*
 * The ioreq-server mechanism against the fake hypervisor: frames retyped while watched, each
 * write size, deny, rep writes through a guest pointer (both directions), stray reads, stale
 * frames, detach with an ioreq pending, and types restored afterwards.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_xen.h" /* first: xenctrl.h sets up the Xen headers */

#include <xen/hvm/ioreq.h>

#define WATCH_VA 0x205000ull
#define PTE_OFF  0x28u
#define IRR_OFF  0x100u

struct fx {
    struct fake_hv *hv;
    ptmon_xen *x;
    ptmon *pm;
    struct ptmon_watch *w;
    uint64_t cr3, pt_gpa, frame_a, frame_b;
    int calls, deny;
    ptmon_change last;
};

static int on_change(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    struct fx *f = ctx;
    (void)pm;
    (void)w;
    f->calls++;
    f->last = *c;
    return f->deny ? PTMON_ACTION_DENY : PTMON_ACTION_ALLOW;
}

static int no_hook(ptmon *pm, ptmon_hook *h, void *ctx, const ptmon_mem_event *ev)
{
    (void)pm;
    (void)h;
    (void)ctx;
    (void)ev;
    return PTMON_ACTION_ALLOW;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    ptmon_xen_config cfg = PTMON_XEN_CONFIG_INIT;
    assert_non_null(f);
    f->hv = fake_hv_create(64, 2);
    f->cr3 = fake_hv_new_root(f->hv);
    f->frame_a = fake_hv_alloc(f->hv);
    f->frame_b = fake_hv_alloc(f->hv);
    f->pt_gpa = fake_hv_map(f->hv, f->cr3, WATCH_VA, f->frame_a) & ~0xfffull;
    fake_hv_snapshot(f->hv);
    cfg.domid = 5;
    cfg.mechanism = PTMON_XEN_MECH_IOREQ;
    assert_int_equal(xen_attach_ops(&cfg, &f->hv->ops, &f->x), 0);
    assert_int_equal(ptmon_xen_mechanism(f->x), PTMON_XEN_MECH_IOREQ);
    assert_int_equal(f->hv->monitor_on, 0); /* no vm_event ring in this mode */
    assert_int_equal(f->hv->bound, 2);      /* one event channel per vCPU */
    assert_int_equal(ptmon_create(ptmon_xen_glue(f->x), NULL, &f->pm), 0);
    ptmon_xen_set_instance(f->x, f->pm);
    assert_int_equal(ptmon_watch(f->pm, f->cr3, WATCH_VA, 0, on_change, f, &f->w), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    assert_int_equal(ptmon_xen_detach(f->x), 0);
    ptmon_destroy(f->pm);
    ptmon_xen_free(f->x);
    assert_true(fake_hv_access_unchanged(f->hv)); /* every type back to ram_rw */
    assert_false(f->hv->ioreq_on);
    assert_int_equal(f->hv->bound, 0);
    assert_int_equal(f->hv->regions_out, 0);
    fake_hv_destroy(f->hv);
    free(f);
    return 0;
}

static uint64_t pte(struct fx *f)
{
    return fake_hv_get64(f->hv, f->pt_gpa + PTE_OFF);
}

static void complete(struct fx *f, uint32_t vcpu)
{
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_ioreq_state(f->hv, vcpu), STATE_IORESP_READY);
    assert_int_equal(f->hv->last_notify_port, 1100 + vcpu);
}

static void test_types_follow_watches(void **state)
{
    struct fx *f = *state;
    unsigned typed = 0;
    for (uint64_t g = 0; g < f->hv->nframes; g++)
        typed += f->hv->mtype[g];
    assert_int_equal(typed, 4);
    assert_int_equal(f->hv->mtype[f->pt_gpa >> 12], 1);
    assert_int_equal(ptmon_unwatch(&f->w), 0);
    for (uint64_t g = 0; g < f->hv->nframes; g++)
        assert_int_equal(f->hv->mtype[g], 0);
    /* read or execute hooks cannot be expressed with the ioreq type */
    ptmon_hook *h;
    assert_int_equal(ptmon_hook_gpa(f->pm, f->pt_gpa, 8, PTMON_ACCESS_R, no_hook, NULL, &h),
                     PTMON_ENOTSUP);
}

static void test_every_size(void **state)
{
    struct fx *f = *state;
    uint64_t nv = f->frame_b | 3;
    /* 8 bytes: a remap */
    fake_hv_ioreq(f->hv, 0, f->pt_gpa + PTE_OFF, 8, nv, 1, 0, IOREQ_WRITE, 0);
    complete(f, 0);
    assert_int_equal(pte(f), nv);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->last.after.frame, f->frame_b);
    /* 4 bytes: the low half back to frame_a */
    fake_hv_ioreq(f->hv, 1, f->pt_gpa + PTE_OFF, 4, (f->frame_a | 3) & 0xffffffff, 1, 0,
                  IOREQ_WRITE, 0);
    complete(f, 1);
    assert_int_equal(pte(f), f->frame_a | 3);
    assert_int_equal(f->calls, 2);
    /* 2 bytes: clear R/W (bits 0..15) */
    fake_hv_ioreq(f->hv, 0, f->pt_gpa + PTE_OFF, 2, (f->frame_a | 1) & 0xffff, 1, 0, IOREQ_WRITE,
                  0);
    complete(f, 0);
    assert_int_equal(pte(f), f->frame_a | 1);
    assert_int_equal(f->calls, 3);
    /* 1 byte: not present */
    fake_hv_ioreq(f->hv, 0, f->pt_gpa + PTE_OFF, 1, 0, 1, 0, IOREQ_WRITE, 0);
    complete(f, 0);
    assert_int_equal(pte(f), f->frame_a);
    assert_int_equal(f->last.after.status, PTMON_WALK_NOT_PRESENT);
    assert_int_equal(f->calls, 4);
    /* irrelevant slot */
    fake_hv_ioreq(f->hv, 0, f->pt_gpa + IRR_OFF, 8, 0x5003, 1, 0, IOREQ_WRITE, 0);
    complete(f, 0);
    assert_int_equal(fake_hv_get64(f->hv, f->pt_gpa + IRR_OFF), 0x5003);
    assert_int_equal(f->calls, 4);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

static void test_deny(void **state)
{
    struct fx *f = *state;
    uint64_t old = pte(f);
    f->deny = 1;
    fake_hv_ioreq(f->hv, 0, f->pt_gpa + PTE_OFF, 8, 0, 1, 0, IOREQ_WRITE, 0);
    complete(f, 0);
    assert_int_equal(pte(f), old);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

static void test_rep_through_pointer(void **state)
{
    struct fx *f = *state;
    uint64_t src = fake_hv_alloc(f->hv);
    uint64_t vals[3] = {0x11003, f->frame_b | 3, 0x33003};
    fake_hv_poke(f->hv, src, vals, sizeof(vals));
    /* rep movsq of 3 entries onto slots 4..6 */
    fake_hv_ioreq(f->hv, 1, f->pt_gpa + 0x20, 8, src, 3, 1, IOREQ_WRITE, 0);
    complete(f, 1);
    assert_int_equal(fake_hv_get64(f->hv, f->pt_gpa + 0x20), 0x11003);
    assert_int_equal(pte(f), f->frame_b | 3);
    assert_int_equal(fake_hv_get64(f->hv, f->pt_gpa + 0x30), 0x33003);
    assert_int_equal(f->calls, 1);
    /* backwards (DF=1): slots 6..4 from vals[2..0] read backwards */
    memset(vals, 0, sizeof(vals));
    vals[1] = f->frame_a | 3;
    fake_hv_poke(f->hv, src, vals, sizeof(vals));
    fake_hv_ioreq(f->hv, 0, f->pt_gpa + 0x30, 8, src + 16, 3, 1, IOREQ_WRITE, 1);
    complete(f, 0);
    assert_int_equal(pte(f), f->frame_a | 3);
    assert_int_equal(fake_hv_get64(f->hv, f->pt_gpa + 0x20), 0);
    assert_int_equal(f->calls, 2);
    /* hostile: a count that would run past the frame is refused, still completed */
    fake_hv_ioreq(f->hv, 0, f->pt_gpa + 0xff8, 8, src, 4, 1, IOREQ_WRITE, 0);
    complete(f, 0);
    fake_hv_ioreq(f->hv, 0, f->pt_gpa, 8, 0, 100000, 0, IOREQ_WRITE, 0);
    complete(f, 0);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

static void test_read_and_stale(void **state)
{
    struct fx *f = *state;
    fake_hv_ioreq(f->hv, 0, f->pt_gpa + PTE_OFF, 8, 0, 1, 0, IOREQ_READ, 0);
    complete(f, 0);
    assert_int_equal(fake_hv_ioreq_data(f->hv, 0), pte(f));
    /* a write in flight when the frame was released: still performed */
    assert_int_equal(ptmon_unwatch(&f->w), 0);
    fake_hv_ioreq(f->hv, 1, f->pt_gpa + PTE_OFF, 8, f->frame_b | 3, 1, 0, IOREQ_WRITE, 0);
    complete(f, 1);
    assert_int_equal(pte(f), f->frame_b | 3);
    assert_int_equal(f->calls, 0);
}

static void test_detach_completes_pending(void **state)
{
    struct fx *f = *state;
    fake_hv_ioreq(f->hv, 1, f->pt_gpa + PTE_OFF, 8, f->frame_b | 3, 1, 0, IOREQ_WRITE, 0);
    assert_int_equal(ptmon_xen_detach(f->x), 0);
    assert_int_equal(fake_hv_ioreq_state(f->hv, 1), STATE_IORESP_READY);
    assert_int_equal(pte(f), f->frame_b | 3); /* the guest's write happened */
    assert_true(fake_hv_access_unchanged(f->hv));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
        T(test_types_follow_watches), T(test_every_size),     T(test_deny),
        T(test_rep_through_pointer),  T(test_read_and_stale), T(test_detach_completes_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
