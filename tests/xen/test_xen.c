/*
 * Xen backend tests against the fake hypervisor (fake_xen.c): attach/detach rules, every
 * response rule, each instruction kind of the in-place write path (with CAS retry and halves),
 * page-walker events, a full ring, stale frames, EMULATE fallback with re-read, EBUSY on
 * disable, a signal in the middle of an event, CPUID events, and that attach/detach leaves every
 * frame as it was.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_xen.h" /* first: xenctrl.h sets up the Xen headers */

#include <xen/memory.h>

#define WATCH_VA 0x205000ull /* PT index 5: its PTE is at offset 0x28 of the PT */
#define CODE_VA  0x400000ull
#define PTWIN_VA 0x600000ull /* where the guest maps the PT page itself (to write it) */
#define SRC_VA   0x800000ull
#define PTE_OFF  0x28u
#define IRR_OFF  0x100u /* an unwatched slot of the same table */

struct fx {
    struct fake_hv *hv;
    ptmon_xen *x;
    ptmon *pm;
    struct ptmon_watch *w;
    uint64_t cr3, code_gpa, pt_gpa, frame_a, frame_b, src_gpa;
    struct vm_event_regs_x86 regs;
    int calls, deny;
    ptmon_change last;
    void (*in_callback)(struct fx *f);
};

static int on_change(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    struct fx *f = ctx;
    (void)pm;
    (void)w;
    f->calls++;
    f->last = *c;
    if (f->in_callback)
        f->in_callback(f);
    return f->deny ? PTMON_ACTION_DENY : PTMON_ACTION_ALLOW;
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
    f->code_gpa = fake_hv_alloc(f->hv);
    f->src_gpa = fake_hv_alloc(f->hv);
    uint64_t pte = fake_hv_map(f->hv, f->cr3, WATCH_VA, f->frame_a);
    f->pt_gpa = pte & ~0xfffull;
    assert_int_equal(pte & 0xfff, PTE_OFF);
    fake_hv_map(f->hv, f->cr3, CODE_VA, f->code_gpa);
    fake_hv_map(f->hv, f->cr3, PTWIN_VA, f->pt_gpa);
    fake_hv_map(f->hv, f->cr3, SRC_VA, f->src_gpa);
    /* one table frame starts with non-default rights (no execute): restored exactly */
    f->hv->access[fake_hv_pte_gpa(f->hv, f->cr3, WATCH_VA, 2) >> 12] = XENMEM_access_rw;
    fake_hv_snapshot(f->hv);
    cfg.domid = 5;
    assert_int_equal(xen_attach_ops(&cfg, &f->hv->ops, &f->x), 0);
    assert_int_equal(ptmon_create(ptmon_xen_glue(f->x), NULL, &f->pm), 0);
    ptmon_xen_set_instance(f->x, f->pm);
    assert_int_equal(ptmon_watch(f->pm, f->cr3, WATCH_VA, 0, on_change, f, &f->w), 0);
    fake_hv_regs64(&f->regs, f->cr3, CODE_VA);
    f->regs.rdi = PTWIN_VA + PTE_OFF;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->x)
        assert_int_equal(ptmon_xen_detach(f->x), 0);
    ptmon_destroy(f->pm);
    ptmon_xen_free(f->x);
    if (f->hv->initial_access)
        assert_true(fake_hv_access_unchanged(f->hv));
    assert_int_equal(f->hv->pause_depth, 0);
    assert_int_equal(f->hv->regions_out, 0);
    assert_int_equal(f->hv->monitor_on, 0);
    fake_hv_destroy(f->hv);
    free(f);
    return 0;
}

/* Run one instruction: it sits at CODE_VA, writes at page offset @p off of the PT. */
static vm_event_response_t run(struct fx *f, const void *insn, size_t len, uint32_t off)
{
    vm_event_request_t req;
    vm_event_response_t rsp;
    fake_hv_poke(f->hv, f->code_gpa, insn, len);
    f->regs.rip = CODE_VA;
    fake_hv_write_req(&req, 0, f->pt_gpa + off, PTWIN_VA + off, &f->regs);
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(rsp.version, VM_EVENT_INTERFACE_VERSION);
    assert_int_equal(rsp.vcpu_id, 0);
    assert_true(rsp.flags & VM_EVENT_FLAG_VCPU_PAUSED);
    return rsp;
}

static uint64_t pte(struct fx *f)
{
    return fake_hv_get64(f->hv, f->pt_gpa + PTE_OFF);
}

static uint64_t stat(struct fx *f, enum ptmon_xen_event_kind k)
{
    ptmon_xen_stats s;
    assert_int_equal(ptmon_xen_get_stats(f->x, &s), 0);
    return s.events[k];
}

/* ---- attach ----------------------------------------------------------------------------- */

static void attach_expect(struct fake_hv *hv, int want)
{
    ptmon_xen_config cfg = PTMON_XEN_CONFIG_INIT;
    ptmon_xen *x = (ptmon_xen *)1;
    cfg.domid = 5;
    assert_int_equal(xen_attach_ops(&cfg, &hv->ops, &x), want);
    assert_null(x);
    assert_int_equal(hv->monitor_on, 0);
    assert_int_equal(hv->bound, 0);
    assert_int_equal(hv->pause_depth, 0);
}

static void test_attach_version_mismatch(void **state)
{
    struct fake_hv *hv = fake_hv_create(8, 1);
    (void)state;
    hv->version = 6;
    attach_expect(hv, PTMON_EVERSION);
    assert_int_equal(hv->disable_calls, 0); /* refused before anything was enabled */
    fake_hv_destroy(hv);
}

static void test_attach_refusals(void **state)
{
    struct fake_hv *hv = fake_hv_create(8, 1);
    ptmon_xen_config cfg = PTMON_XEN_CONFIG_INIT;
    ptmon_xen *x;
    (void)state;
    hv->info.dying = 1;
    attach_expect(hv, PTMON_ENOENT);
    hv->info.dying = 0;
    hv->info.domid = 6; /* getinfo returned the next domain: ours is gone */
    attach_expect(hv, PTMON_ENOENT);
    hv->info.domid = 5;
    hv->enable_rc = -EBUSY;
    attach_expect(hv, PTMON_EBUSY);
    hv->enable_rc = 0;
    hv->probe_rc = -EINVAL; /* no mem_access on this host (AMD) */
    cfg.domid = 5;
    cfg.mechanism = PTMON_XEN_MECH_MEM_ACCESS;
    assert_int_equal(xen_attach_ops(&cfg, &hv->ops, &x), PTMON_ENOTSUP);
    assert_int_equal(hv->disable_calls, 1); /* the ring was enabled, then disabled again */
    assert_int_equal(hv->monitor_on, 0);
    cfg.mechanism = PTMON_XEN_MECH_AUTO; /* AUTO never falls back to the ioreq server */
    assert_int_equal(xen_attach_ops(&cfg, &hv->ops, &x), PTMON_ENOTSUP);
    assert_int_equal(hv->monitor_on, 0);
    assert_false(hv->ioreq_on);
    cfg.mechanism = PTMON_XEN_MECH_IOREQ; /* asked for: used */
    assert_int_equal(xen_attach_ops(&cfg, &hv->ops, &x), 0);
    assert_int_equal(ptmon_xen_mechanism(x), PTMON_XEN_MECH_IOREQ);
    assert_int_equal(hv->monitor_on, 0);
    assert_true(hv->ioreq_on);
    ptmon_xen_free(x);
    assert_false(hv->ioreq_on);
    assert_int_equal(hv->bound, 0);
    hv->probe_rc = 0;
    cfg.version = 2;
    assert_int_equal(xen_attach_ops(&cfg, &hv->ops, &x), PTMON_EVERSION);
    cfg.version = 1;
    cfg.mechanism = 9;
    assert_int_equal(xen_attach_ops(&cfg, &hv->ops, &x), PTMON_EINVAL);
    fake_hv_destroy(hv);
}

static void test_attach_sequence(void **state)
{
    struct fx *f = *state;
    assert_true(f->hv->monitor_on);
    assert_true(f->hv->bound);
    assert_int_equal(f->hv->access_required, 0);
    assert_int_equal(f->hv->gpt_suppressed, 1);
    assert_int_equal(f->hv->emul_unimpl, 1);
    /* the 4 tables on the walk are write-protected rx, and nothing else */
    unsigned rx = 0;
    for (uint64_t g = 0; g < f->hv->nframes; g++)
        rx += f->hv->access[g] == XENMEM_access_rx;
    assert_int_equal(rx, 3);
    /* the rw (no-execute) frame loses only W */
    assert_int_equal(f->hv->access[fake_hv_pte_gpa(f->hv, f->cr3, WATCH_VA, 2) >> 12],
                     XENMEM_access_r);
    assert_int_equal(f->hv->access[f->pt_gpa >> 12], XENMEM_access_rx);
}

/* ---- response rules -------------------------------------------------------------------- */

static void test_response_rules_irrelevant(void **state)
{
    struct fx *f = *state;
    static const uint8_t mov[] = {0x48, 0x89, 0x07}; /* mov [rdi], rax */
    vm_event_response_t rsp;
    f->regs.rdi = PTWIN_VA + IRR_OFF;
    f->regs.rax = 0x1234000 | 3;
    unsigned notify = f->hv->notify;
    rsp = run(f, mov, sizeof(mov), IRR_OFF);
    assert_int_equal(rsp.reason, VM_EVENT_REASON_MEM_ACCESS);
    assert_int_equal(rsp.u.mem_access.gfn, f->pt_gpa >> 12); /* echoed */
    assert_int_equal(rsp.u.mem_access.offset, IRR_OFF);
    assert_true(rsp.flags & VM_EVENT_FLAG_SET_REGISTERS);
    assert_false(rsp.flags & VM_EVENT_FLAG_EMULATE); /* one round trip */
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + 3);
    assert_int_equal(rsp.data.regs.x86.rax, f->regs.rax); /* whole GPR block from the request */
    assert_int_equal(rsp.data.regs.x86.cr3, f->cr3);
    assert_int_equal(fake_hv_get64(f->hv, f->pt_gpa + IRR_OFF), 0x1234003);
    assert_int_equal(f->calls, 0);
    assert_int_equal(f->hv->notify, notify + 1);
}

static void test_response_not_paused_and_malformed(void **state)
{
    struct fx *f = *state;
    vm_event_request_t req;
    vm_event_response_t rsp;
    fake_hv_write_req(&req, 1, f->pt_gpa + IRR_OFF, PTWIN_VA + IRR_OFF, &f->regs);
    req.flags = 0; /* asynchronous: nothing to unpause */
    req.version = 5;
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    fake_hv_write_req(&req, 99, f->pt_gpa + IRR_OFF, PTWIN_VA + IRR_OFF, &f->regs);
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    fake_hv_write_req(&req, 1, f->pt_gpa + IRR_OFF, PTWIN_VA + IRR_OFF, &f->regs);
    req.reason = VM_EVENT_REASON_SINGLESTEP;
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 3);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(rsp.version, VM_EVENT_INTERFACE_VERSION);
    assert_int_equal(rsp.flags, 0);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(rsp.vcpu_id, 99);
    assert_int_equal(rsp.flags, VM_EVENT_FLAG_VCPU_PAUSED); /* unpause, re-execute */
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(rsp.reason, VM_EVENT_REASON_SINGLESTEP);
    assert_int_equal(rsp.flags, VM_EVENT_FLAG_VCPU_PAUSED);
    assert_int_equal(stat(f, PTMON_XEN_EV_OTHER), 3);
}

static void test_fault_in_gpt(void **state)
{
    struct fx *f = *state;
    vm_event_request_t req;
    vm_event_response_t rsp;
    ptmon_stats before, after;
    ptmon_get_stats(f->pm, &before);
    fake_hv_write_req(&req, 0, f->pt_gpa + PTE_OFF, WATCH_VA, &f->regs);
    req.u.mem_access.flags =
        MEM_ACCESS_R | MEM_ACCESS_W | MEM_ACCESS_GLA_VALID | MEM_ACCESS_FAULT_IN_GPT;
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_true(rsp.flags & VM_EVENT_FLAG_EMULATE);
    assert_int_equal(rsp.u.mem_access.gfn, req.u.mem_access.gfn);
    assert_int_equal(rsp.u.mem_access.flags, req.u.mem_access.flags);
    assert_false(rsp.flags & VM_EVENT_FLAG_SET_REGISTERS);
    ptmon_get_stats(f->pm, &after);
    assert_int_equal(after.events, before.events); /* engine untouched */
    assert_int_equal(stat(f, PTMON_XEN_EV_IN_GPT), 1);
}

static void test_full_ring(void **state)
{
    struct fx *f = *state;
    static const uint8_t mov[] = {0x48, 0x89, 0x07};
    vm_event_request_t req;
    vm_event_response_t rsp;
    unsigned n = 0, notify = f->hv->notify;
    fake_hv_poke(f->hv, f->code_gpa, mov, sizeof(mov));
    f->regs.rdi = PTWIN_VA + IRR_OFF;
    for (;;) {
        fake_hv_write_req(&req, n % 2, f->pt_gpa + IRR_OFF, PTWIN_VA + IRR_OFF, &f->regs);
        if (fake_hv_post(f->hv, &req) < 0)
            break;
        n++;
    }
    assert_int_equal(n, 8); /* 400-byte slots: 8 per page */
    assert_int_equal(ptmon_xen_poll(f->x, 0), 8);
    for (unsigned i = 0; i < 8; i++) {
        assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
        assert_int_equal(rsp.vcpu_id, i % 2);
    }
    assert_int_equal(fake_hv_take(f->hv, &rsp), 0);
    assert_int_equal(f->hv->notify, notify + 1); /* once per batch */
    /* the ring keeps working after wrapping */
    fake_hv_write_req(&req, 0, f->pt_gpa + IRR_OFF, PTWIN_VA + IRR_OFF, &f->regs);
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
}

static void test_stale_frame(void **state)
{
    struct fx *f = *state;
    vm_event_request_t req;
    vm_event_response_t rsp;
    assert_int_equal(ptmon_unwatch(&f->w), 0); /* every table relaxed */
    f->w = NULL;
    assert_int_equal(f->hv->access[f->pt_gpa >> 12], XENMEM_access_rwx);
    fake_hv_write_req(&req, 0, f->pt_gpa + PTE_OFF, PTWIN_VA + PTE_OFF, &f->regs);
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_true(rsp.flags & VM_EVENT_FLAG_EMULATE); /* a no-op for Xen without a conflict */
    assert_int_equal(rsp.u.mem_access.gfn, f->pt_gpa >> 12);
    assert_int_equal(stat(f, PTMON_XEN_EV_STALE), 1);
    assert_int_equal(f->calls, 0);
    /* out-of-RAM gfn: same */
    req.u.mem_access.gfn = 1ull << 40;
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(stat(f, PTMON_XEN_EV_STALE), 2);
}

/* ---- instruction kinds -------------------------------------------------------------------- */

static void test_mov_leaf_change(void **state)
{
    struct fx *f = *state;
    static const uint8_t mov[] = {0x48, 0x89, 0x07};
    vm_event_response_t rsp;
    f->regs.rax = f->frame_b | 3;
    rsp = run(f, mov, sizeof(mov), PTE_OFF);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->last.before.frame, f->frame_a);
    assert_int_equal(f->last.after.frame, f->frame_b);
    assert_int_equal(pte(f), f->frame_b | 3);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + 3);
    assert_true(rsp.flags & VM_EVENT_FLAG_SET_REGISTERS);
    assert_int_equal(stat(f, PTMON_XEN_EV_WRITE), 1);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

static void test_mov_imm_and_deny(void **state)
{
    struct fx *f = *state;
    static const uint8_t movimm[] = {0x48, 0xc7, 0x07, 0x00, 0x00, 0x00, 0x00}; /* mov [rdi],0 */
    vm_event_response_t rsp;
    uint64_t before = pte(f);
    f->deny = 1;
    f->regs.rax = 0x55;
    rsp = run(f, movimm, sizeof(movimm), PTE_OFF);
    assert_int_equal(f->calls, 2);    /* told, then told it is undone */
    assert_int_equal(pte(f), before); /* skipped */
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + sizeof(movimm));
    assert_int_equal(rsp.data.regs.x86.rax, 0x55);
    assert_int_equal(stat(f, PTMON_XEN_EV_DENIED), 1);
    f->deny = 0;
    rsp = run(f, movimm, sizeof(movimm), PTE_OFF);
    assert_int_equal(pte(f), 0);
    assert_int_equal(f->last.after.status, PTMON_WALK_NOT_PRESENT);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

/* A denied read-modify-write runs against the old entry: its registers and flags are what
 * the old value gives, memory keeps it (a kernel's ptep_get_and_clear reads the entry that
 * stays). */
static void test_deny_runs_the_instruction_against_the_old_entry(void **state)
{
    struct fx *f = *state;
    static const uint8_t xchg[] = {0x48, 0x87, 0x07};           /* xchg [rdi], rax */
    static const uint8_t cx[] = {0xf0, 0x48, 0x0f, 0xb1, 0x0f}; /* lock cmpxchg [rdi], rcx */
    static const uint8_t land[] = {0xf0, 0x48, 0x21, 0x07};     /* lock and [rdi], rax */
    static const uint8_t btr1[] = {0xf0, 0x48, 0x0f, 0xba, 0x37, 0x01}; /* lock btr [rdi], 1 */
    uint64_t old = pte(f);
    vm_event_response_t rsp;

    f->deny = 1;
    f->regs.rax = 0; /* clear the entry and fetch it, as ptep_get_and_clear does */
    rsp = run(f, xchg, sizeof(xchg), PTE_OFF);
    assert_int_equal(pte(f), old);
    assert_int_equal(rsp.data.regs.x86.rax, old);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + sizeof(xchg));
    f->regs.rax = old; /* cmpxchg that would succeed: ZF=1, nothing stored */
    f->regs.rcx = f->frame_b | 3;
    rsp = run(f, cx, sizeof(cx), PTE_OFF);
    assert_int_equal(pte(f), old);
    assert_true(rsp.data.regs.x86.rflags & 0x40);
    f->regs.rax = old + 0x1000; /* that would fail: no change, so no deny; rax gets the entry */
    rsp = run(f, cx, sizeof(cx), PTE_OFF);
    assert_false(rsp.data.regs.x86.rflags & 0x40);
    assert_int_equal(rsp.data.regs.x86.rax, old);
    f->regs.rax = 0; /* and with 0: ZF from old & 0 */
    f->regs.rflags = 0x2;
    rsp = run(f, land, sizeof(land), PTE_OFF);
    assert_int_equal(pte(f), old);
    assert_true(rsp.data.regs.x86.rflags & 0x40);
    rsp = run(f, btr1, sizeof(btr1), PTE_OFF); /* CF = the old R/W bit */
    assert_int_equal(pte(f), old);
    assert_int_equal(rsp.data.regs.x86.rflags & 1, (old >> 1) & 1);
    assert_int_equal(stat(f, PTMON_XEN_EV_DENIED), 4);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

/* A denied rep stos advances over this frame's elements only and re-executes for the rest. */
static void test_deny_rep_stos_skips_this_frame_only(void **state)
{
    struct fx *f = *state;
    static const uint8_t rep_stosq[] = {0xf3, 0x48, 0xab};
    uint64_t old = pte(f);
    vm_event_response_t rsp;

    f->deny = 1;
    f->regs.rdi = PTWIN_VA;
    f->regs.rax = 0;
    f->regs.rcx = 600;
    rsp = run(f, rep_stosq, sizeof(rep_stosq), 0);
    assert_int_equal(pte(f), old);
    assert_int_equal(rsp.data.regs.x86.rcx, 600 - 512);
    assert_int_equal(rsp.data.regs.x86.rdi, PTWIN_VA + 4096);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA); /* the next frame's part runs again */
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

static void test_xchg(void **state)
{
    struct fx *f = *state;
    static const uint8_t xchg[] = {0x48, 0x87, 0x07}; /* xchg [rdi], rax */
    uint64_t old = pte(f);
    f->regs.rax = f->frame_b | 3;
    vm_event_response_t rsp = run(f, xchg, sizeof(xchg), PTE_OFF);
    assert_int_equal(pte(f), f->frame_b | 3);
    assert_int_equal(rsp.data.regs.x86.rax, old);
    assert_int_equal(f->calls, 1);
}

static void test_cmpxchg(void **state)
{
    struct fx *f = *state;
    static const uint8_t cx[] = {0xf0, 0x48, 0x0f, 0xb1, 0x0f}; /* lock cmpxchg [rdi], rcx */
    uint64_t old = pte(f);
    vm_event_response_t rsp;
    f->regs.rax = old + 0x1000; /* mismatch: no store, rax = old, ZF = 0 */
    f->regs.rcx = f->frame_b | 3;
    rsp = run(f, cx, sizeof(cx), PTE_OFF);
    assert_int_equal(pte(f), old);
    assert_int_equal(rsp.data.regs.x86.rax, old);
    assert_false(rsp.data.regs.x86.rflags & 0x40);
    assert_int_equal(f->calls, 0);
    f->regs.rax = old; /* match */
    rsp = run(f, cx, sizeof(cx), PTE_OFF);
    assert_int_equal(pte(f), f->frame_b | 3);
    assert_true(rsp.data.regs.x86.rflags & 0x40);
    assert_int_equal(rsp.data.regs.x86.rax, old);
    assert_int_equal(f->calls, 1);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + sizeof(cx));
}

static void test_cmpxchg8b_16b(void **state)
{
    struct fx *f = *state;
    static const uint8_t c8[] = {0xf0, 0x0f, 0xc7, 0x0f};        /* lock cmpxchg8b [rdi] */
    static const uint8_t c16[] = {0xf0, 0x48, 0x0f, 0xc7, 0x0f}; /* lock cmpxchg16b [rdi] */
    uint64_t old = pte(f), nv = f->frame_b | 3;
    vm_event_response_t rsp;
    f->regs.rax = old & 0xffffffff;
    f->regs.rdx = old >> 32;
    f->regs.rbx = nv & 0xffffffff;
    f->regs.rcx = nv >> 32;
    rsp = run(f, c8, sizeof(c8), PTE_OFF);
    assert_int_equal(pte(f), nv);
    assert_true(rsp.data.regs.x86.rflags & 0x40);
    assert_int_equal(f->calls, 1);
    /* 16 bytes at offset 0x20 (aligned): entries 4 and 5; entry 5 is the watched one */
    uint64_t e4 = fake_hv_get64(f->hv, f->pt_gpa + 0x20);
    f->regs.rdi = PTWIN_VA + 0x20;
    f->regs.rax = e4;
    f->regs.rdx = nv;
    f->regs.rbx = 0x77000 | 1;
    f->regs.rcx = f->frame_a | 3;
    rsp = run(f, c16, sizeof(c16), 0x20);
    assert_int_equal(fake_hv_get64(f->hv, f->pt_gpa + 0x20), 0x77001);
    assert_int_equal(pte(f), f->frame_a | 3);
    assert_int_equal(f->calls, 2);
    assert_int_equal(f->last.after.frame, f->frame_a);
    /* mismatch: rdx:rax receive memory */
    f->regs.rax = 1;
    rsp = run(f, c16, sizeof(c16), 0x20);
    assert_false(rsp.data.regs.x86.rflags & 0x40);
    assert_int_equal(rsp.data.regs.x86.rax, 0x77001);
    assert_int_equal(rsp.data.regs.x86.rdx, f->frame_a | 3);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

static void test_lock_logic(void **state)
{
    struct fx *f = *state;
    static const uint8_t land[] = {0xf0, 0x48, 0x21, 0x07}; /* lock and [rdi], rax */
    static const uint8_t lor[] = {0xf0, 0x48, 0x09, 0x07};
    static const uint8_t lxor[] = {0xf0, 0x48, 0x31, 0x07};
    uint64_t old = pte(f);
    vm_event_response_t rsp;
    f->regs.rax = ~2ull;              /* clear R/W */
    f->regs.rflags = 0x2 | 1 | 0x800; /* CF, OF set: cleared by the logic op */
    rsp = run(f, land, sizeof(land), PTE_OFF);
    assert_int_equal(pte(f), old & ~2ull);
    assert_false(rsp.data.regs.x86.rflags & 1);
    assert_false(rsp.data.regs.x86.rflags & 0x800);
    assert_false(rsp.data.regs.x86.rflags & 0x40);
    assert_int_equal(f->calls, 1);
    f->regs.rax = 2;
    rsp = run(f, lor, sizeof(lor), PTE_OFF);
    assert_int_equal(pte(f), old);
    assert_int_equal(f->calls, 2);
    f->regs.rax = old;
    rsp = run(f, lxor, sizeof(lxor), PTE_OFF);
    assert_int_equal(pte(f), 0);
    assert_true(rsp.data.regs.x86.rflags & 0x40); /* ZF */
    assert_true(rsp.data.regs.x86.rflags & 0x4);  /* PF of 0 */
    assert_int_equal(f->calls, 3);
}

static void test_bit_ops(void **state)
{
    struct fx *f = *state;
    static const uint8_t btr0[] = {0xf0, 0x48, 0x0f, 0xba, 0x37, 0x00}; /* lock btr [rdi], 0 */
    static const uint8_t bts0[] = {0xf0, 0x48, 0x0f, 0xba, 0x2f, 0x00}; /* lock bts [rdi], 0 */
    static const uint8_t btc1[] = {0xf0, 0x48, 0x0f, 0xbb, 0x07};       /* lock btc [rdi], rax */
    uint64_t old = pte(f);
    vm_event_response_t rsp = run(f, btr0, sizeof(btr0), PTE_OFF);
    assert_int_equal(pte(f), old & ~1ull);
    assert_true(rsp.data.regs.x86.rflags & 1); /* CF = old bit */
    assert_int_equal(f->calls, 1);
    rsp = run(f, bts0, sizeof(bts0), PTE_OFF);
    assert_int_equal(pte(f), old);
    assert_false(rsp.data.regs.x86.rflags & 1);
    assert_int_equal(f->calls, 2);
    f->regs.rax = 1;
    rsp = run(f, btc1, sizeof(btc1), PTE_OFF);
    assert_int_equal(pte(f), old & ~2ull);
    assert_int_equal(f->calls, 3);
    f->regs.rax = 200; /* a bit beyond the operand: left to Xen */
    rsp = run(f, btc1, sizeof(btc1), PTE_OFF);
    assert_true(rsp.flags & VM_EVENT_FLAG_EMULATE);
}

static void test_stos(void **state)
{
    struct fx *f = *state;
    static const uint8_t stosq[] = {0x48, 0xab};
    static const uint8_t rep_stosq[] = {0xf3, 0x48, 0xab};
    vm_event_response_t rsp;
    f->regs.rax = f->frame_b | 3;
    rsp = run(f, stosq, sizeof(stosq), PTE_OFF);
    assert_int_equal(pte(f), f->frame_b | 3);
    assert_int_equal(rsp.data.regs.x86.rdi, PTWIN_VA + PTE_OFF + 8);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + 2);
    /* rep stos zeroing the whole table: 512 entries, capped at the frame end */
    f->regs.rdi = PTWIN_VA;
    f->regs.rax = 0;
    f->regs.rcx = 600;
    rsp = run(f, rep_stosq, sizeof(rep_stosq), 0);
    assert_int_equal(pte(f), 0);
    assert_int_equal(rsp.data.regs.x86.rcx, 600 - 512); /* rest left: re-executed */
    assert_int_equal(rsp.data.regs.x86.rdi, PTWIN_VA + 4096);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA); /* not finished */
    assert_int_equal(f->last.after.status, PTMON_WALK_NOT_PRESENT);
    f->regs.rdi = PTWIN_VA + PTE_OFF;
    f->regs.rcx = 1;
    f->regs.rax = f->frame_a | 3;
    rsp = run(f, rep_stosq, sizeof(rep_stosq), PTE_OFF);
    assert_int_equal(rsp.data.regs.x86.rcx, 0);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + 3);
    assert_int_equal(pte(f), f->frame_a | 3);
    f->regs.rflags |= 1u << 10; /* DF=1: left to Xen */
    rsp = run(f, stosq, sizeof(stosq), PTE_OFF);
    assert_true(rsp.flags & VM_EVENT_FLAG_EMULATE);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

static void test_movs(void **state)
{
    struct fx *f = *state;
    static const uint8_t rep_movsq[] = {0xf3, 0x48, 0xa5};
    uint64_t src[2] = {0x99000 | 3, f->frame_b | 3};
    fake_hv_poke(f->hv, f->src_gpa + 0x10, src, sizeof(src));
    f->regs.rsi = SRC_VA + 0x10;
    f->regs.rdi = PTWIN_VA + 0x20;
    f->regs.rcx = 2;
    vm_event_response_t rsp = run(f, rep_movsq, sizeof(rep_movsq), 0x20);
    assert_int_equal(pte(f), f->frame_b | 3);
    assert_int_equal(fake_hv_get64(f->hv, f->pt_gpa + 0x20), 0x99003);
    assert_int_equal(rsp.data.regs.x86.rsi, SRC_VA + 0x20);
    assert_int_equal(rsp.data.regs.x86.rcx, 0);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + 3);
    assert_int_equal(f->calls, 1);
}

static void test_vector_store(void **state)
{
    struct fx *f = *state;
    static const uint8_t movdqu[] = {0xf3, 0x0f, 0x7f, 0x07};     /* movdqu [rdi], xmm0 */
    static const uint8_t vmovdqu256[] = {0xc5, 0xfe, 0x7f, 0x07}; /* vmovdqu [rdi], ymm0 */
    uint64_t v[2] = {0x12000 | 1, f->frame_b | 3};
    memcpy(f->hv->xmm[0][0], v, 16);
    f->regs.rdi = PTWIN_VA + 0x20;
    vm_event_response_t rsp = run(f, movdqu, sizeof(movdqu), 0x20);
    assert_int_equal(pte(f), f->frame_b | 3);
    assert_int_equal(fake_hv_get64(f->hv, f->pt_gpa + 0x20), 0x12001);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + 4);
    assert_int_equal(f->calls, 1);
    rsp = run(f, vmovdqu256, sizeof(vmovdqu256), 0x20); /* YMM upper half unknown */
    assert_true(rsp.flags & VM_EVENT_FLAG_EMULATE);
}

static void test_halves(void **state)
{
    struct fx *f = *state;
    static const uint8_t mov32[] = {0x89, 0x07}; /* mov [rdi], eax */
    uint64_t nv = f->frame_b | 3 | (1ull << 32);
    f->regs.rdi = PTWIN_VA + PTE_OFF + 4;
    f->regs.rax = nv >> 32;
    run(f, mov32, sizeof(mov32), PTE_OFF + 4);
    f->regs.rdi = PTWIN_VA + PTE_OFF;
    f->regs.rax = nv & 0xffffffff;
    run(f, mov32, sizeof(mov32), PTE_OFF);
    assert_int_equal(pte(f), nv);
    assert_int_equal(f->last.after.frame, nv & ~0xfffull);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

/* The page walker of another vCPU sets A (only) between the engine's decision and the store. */
static void set_accessed(struct fx *f)
{
    fake_hv_set64(f->hv, f->pt_gpa + PTE_OFF, pte(f) | 0x20);
    f->in_callback = NULL;
}

static void remap_behind(struct fx *f)
{
    fake_hv_set64(f->hv, f->pt_gpa + PTE_OFF, f->frame_b | 3);
    f->in_callback = NULL;
}

static void test_cas_retry(void **state)
{
    struct fx *f = *state;
    static const uint8_t btr0[] = {0xf0, 0x48, 0x0f, 0xba, 0x37, 0x00};
    uint64_t old = pte(f);
    f->in_callback = set_accessed;
    vm_event_response_t rsp = run(f, btr0, sizeof(btr0), PTE_OFF);
    assert_int_equal(pte(f), (old | 0x20) & ~1ull); /* A kept, P cleared */
    assert_true(rsp.flags & VM_EVENT_FLAG_SET_REGISTERS);
    assert_int_equal(stat(f, PTMON_XEN_EV_WRITE), 1);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

static void test_cas_real_race(void **state)
{
    struct fx *f = *state;
    static const uint8_t btr0[] = {0xf0, 0x48, 0x0f, 0xba, 0x37, 0x00};
    f->in_callback = remap_behind;
    vm_event_response_t rsp = run(f, btr0, sizeof(btr0), PTE_OFF);
    assert_int_equal(pte(f), f->frame_b | 3); /* our store did not happen */
    assert_false(rsp.flags & (VM_EVENT_FLAG_SET_REGISTERS | VM_EVENT_FLAG_EMULATE));
    assert_int_equal(stat(f, PTMON_XEN_EV_RETRY), 1);
    assert_int_equal(f->last.after.frame, f->frame_b); /* re-read reported what is there */
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

static void post_irrelevant(struct fx *f, uint32_t vcpu);

/* What Xen emulates for us is seen promptly, whatever the instruction wrote in the frame: at
 * another vCPU's event, or at a quiet poll, not only at the next event of the vCPU that wrote
 * (which may come much later). */
static void test_emulated_write_is_reread_promptly(void **state)
{
    struct fx *f = *state;
    static const uint8_t add[] = {0x48, 0x01, 0x07}; /* add [rdi], rax: not ours to perform */
    vm_event_response_t rsp;

    f->regs.rax = 0x1000;
    rsp = run(f, add, sizeof(add), PTE_OFF);
    assert_true(rsp.flags & VM_EVENT_FLAG_EMULATE);
    /* Xen emulates; say it wrote 32 bytes from the watched entry on */
    fake_hv_set64(f->hv, f->pt_gpa + PTE_OFF, pte(f) + 0x1000);
    fake_hv_set64(f->hv, f->pt_gpa + PTE_OFF + 24, 0x12345003);
    post_irrelevant(f, 1); /* another vCPU's event */
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->last.after.frame, f->frame_a + 0x1000);
    /* a second emulation, then nothing but a quiet poll */
    rsp = run(f, add, sizeof(add), PTE_OFF);
    fake_hv_set64(f->hv, f->pt_gpa + PTE_OFF, pte(f) + 0x1000);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 0);
    assert_int_equal(f->calls, 2);
    assert_int_equal(f->last.after.frame, f->frame_a + 0x2000);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

static void test_unknown_insn_emulate_then_reread(void **state)
{
    struct fx *f = *state;
    static const uint8_t add[] = {0x48, 0x01, 0x07}; /* add [rdi], rax */
    static const uint8_t mov[] = {0x48, 0x89, 0x07};
    vm_event_response_t rsp;
    f->regs.rax = 0x1000;
    rsp = run(f, add, sizeof(add), PTE_OFF);
    assert_true(rsp.flags & VM_EVENT_FLAG_EMULATE);
    assert_int_equal(rsp.u.mem_access.gfn, f->pt_gpa >> 12);
    assert_false(rsp.flags & VM_EVENT_FLAG_SET_REGISTERS);
    assert_int_equal(f->calls, 0);
    /* Xen emulates when the vCPU resumes */
    fake_hv_set64(f->hv, f->pt_gpa + PTE_OFF, pte(f) + 0x1000);
    /* the vCPU's next event (an irrelevant write) makes the engine re-read first */
    f->regs.rdi = PTWIN_VA + IRR_OFF;
    run(f, mov, sizeof(mov), IRR_OFF);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->last.after.frame, f->frame_a + 0x1000);
    assert_int_equal(stat(f, PTMON_XEN_EV_EMULATE), 1);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

static void test_emul_unimplemented(void **state)
{
    struct fx *f = *state;
    static const uint8_t add[] = {0x48, 0x01, 0x07}; /* add [rdi], rax: left to Xen */
    static const uint8_t mov[] = {0x48, 0x89, 0x07};
    vm_event_request_t req;
    vm_event_response_t rsp;
    uint64_t gfn = f->pt_gpa >> 12;
    f->regs.rax = 0x1000;
    rsp = run(f, add, sizeof(add), PTE_OFF);
    assert_true(rsp.flags & VM_EVENT_FLAG_EMULATE);
    /* Xen cannot emulate it after all */
    memset(&req, 0, sizeof(req));
    req.version = VM_EVENT_INTERFACE_VERSION;
    req.vcpu_id = 0;
    req.flags = VM_EVENT_FLAG_VCPU_PAUSED;
    req.reason = VM_EVENT_REASON_EMUL_UNIMPLEMENTED;
    req.data.regs.x86 = f->regs;
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(rsp.flags, VM_EVENT_FLAG_VCPU_PAUSED);  /* re-execute... */
    assert_int_equal(f->hv->access[gfn], XENMEM_access_rwx); /* ...on the opened frame */
    assert_int_equal(stat(f, PTMON_XEN_EV_UNIMPLEMENTED), 1);
    /* the vCPU runs its instruction natively */
    fake_hv_set64(f->hv, f->pt_gpa + PTE_OFF, pte(f) + 0x1000);
    /* its next event closes the frame again and the engine sees the change */
    f->regs.rdi = PTWIN_VA + IRR_OFF;
    run(f, mov, sizeof(mov), IRR_OFF);
    assert_int_equal(f->hv->access[gfn], XENMEM_access_rx);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->last.after.frame, f->frame_a + 0x1000);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
    /* an EMUL_UNIMPLEMENTED not right after an EMULATE answer: nothing opened */
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(f->hv->access[gfn], XENMEM_access_rx);
    /* re-closing also happens at a quiet poll */
    rsp = run(f, add, sizeof(add), PTE_OFF);
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(f->hv->access[gfn], XENMEM_access_rwx);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 0); /* nothing pending: timeout path */
    assert_int_equal(f->hv->access[gfn], XENMEM_access_rx);
}

static void test_glue_pause_balance(void **state)
{
    struct fx *f = *state;
    const ptmon_glue *g = ptmon_xen_glue(f->x);
    assert_int_equal(g->resume(g->backend), PTMON_EINVAL); /* nothing of ours to resume */
    assert_int_equal(g->pause(g->backend), 0);
    assert_int_equal(g->pause(g->backend), 0);
    assert_int_equal(g->resume(g->backend), 0);
    assert_int_equal(f->hv->pause_depth, 1);
    /* the caller dies here; detach must not leave the guest paused */
    assert_int_equal(ptmon_xen_detach(f->x), 0);
    assert_int_equal(f->hv->pause_depth, 0);
}

static void test_insn_across_pages(void **state)
{
    struct fx *f = *state;
    static const uint8_t mov[] = {0x48, 0x89, 0x07};
    /* code page 2 follows the code page: the instruction straddles them */
    uint64_t code2 = fake_hv_alloc(f->hv);
    fake_hv_map(f->hv, f->cr3, CODE_VA + 0x1000, code2);
    fake_hv_poke(f->hv, f->code_gpa + 0xffe, mov, 2);
    fake_hv_poke(f->hv, code2, mov + 2, 1);
    vm_event_request_t req;
    vm_event_response_t rsp;
    f->regs.rip = CODE_VA + 0xffe;
    f->regs.rax = f->frame_b | 3;
    fake_hv_write_req(&req, 0, f->pt_gpa + PTE_OFF, PTWIN_VA + PTE_OFF, &f->regs);
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(pte(f), f->frame_b | 3);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + 0x1001);
    /* code not mapped at all: Xen emulates */
    f->regs.rip = 0x7000000;
    fake_hv_write_req(&req, 0, f->pt_gpa + PTE_OFF, PTWIN_VA + PTE_OFF, &f->regs);
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_true(rsp.flags & VM_EVENT_FLAG_EMULATE);
    /* GLA disagreeing with the decoded operand: Xen emulates */
    f->regs.rip = CODE_VA;
    fake_hv_poke(f->hv, f->code_gpa, mov, sizeof(mov));
    fake_hv_write_req(&req, 0, f->pt_gpa + PTE_OFF, 0x12345000 + PTE_OFF, &f->regs);
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_true(rsp.flags & VM_EVENT_FLAG_EMULATE);
}

/* A 32-bit PAE guest: instruction fetch through the PAE walker, 32-bit decode, the entry
 * written as two 4-byte halves, and cmpxchg8b (set_pte_atomic). */
static void test_pae_guest(void **state)
{
    struct fake_hv *hv = fake_hv_create(64, 1);
    ptmon_xen_config cfg = PTMON_XEN_CONFIG_INIT;
    struct fx f;
    static const uint8_t mov_hi[] = {0x89, 0x47, 0x04};    /* mov [edi+4], eax */
    static const uint8_t mov_lo[] = {0x89, 0x07};          /* mov [edi], eax */
    static const uint8_t cx8[] = {0xf0, 0x0f, 0xc7, 0x0f}; /* lock cmpxchg8b [edi] */
    const uint32_t watch = 0x00405000, code = 0x00800000, win = 0x00600000;
    vm_event_request_t req;
    vm_event_response_t rsp;
    (void)state;
    memset(&f, 0, sizeof(f));
    f.hv = hv;
    f.cr3 = fake_hv_alloc(hv); /* the PDPT (32 bytes) at the start of a frame */
    f.frame_a = fake_hv_alloc(hv);
    f.frame_b = fake_hv_alloc(hv) | (1ull << 32); /* above 4 GiB: needs both halves */
    f.code_gpa = fake_hv_alloc(hv);
    uint64_t pte_gpa = fake_hv_map_pae(hv, f.cr3, watch, f.frame_a);
    f.pt_gpa = pte_gpa & ~0xfffull;
    fake_hv_map_pae(hv, f.cr3, code, f.code_gpa);
    fake_hv_map_pae(hv, f.cr3, win, f.pt_gpa);
    hv->vregs[0].efer = 0; /* PAE, not long mode */
    fake_hv_snapshot(hv);
    cfg.domid = 5;
    assert_int_equal(xen_attach_ops(&cfg, &hv->ops, &f.x), 0);
    assert_int_equal(ptmon_create(ptmon_xen_glue(f.x), NULL, &f.pm), 0);
    assert_int_equal(ptmon_get_paging(f.pm).mode, PTMON_MODE_PAE);
    ptmon_xen_set_instance(f.x, f.pm);
    assert_int_equal(ptmon_watch(f.pm, f.cr3, watch, 0, on_change, &f, &f.w), 0);

    memset(&f.regs, 0, sizeof(f.regs));
    f.regs.cr0 = 0x80000011;
    f.regs.cr3 = f.cr3;
    f.regs.cr4 = 0x20;
    f.regs.cs.ar = 0xc9b; /* 32-bit code segment (D/B) */
    f.regs.rflags = 2;
    uint32_t off = (uint32_t)(pte_gpa & 0xfff);
    uint64_t nv = f.frame_b | 3;
    /* high half first, then low half */
    fake_hv_poke(hv, f.code_gpa, mov_hi, sizeof(mov_hi));
    fake_hv_poke(hv, f.code_gpa + 0x10, mov_lo, sizeof(mov_lo));
    f.regs.rip = code;
    f.regs.rdi = win + off;
    f.regs.rax = nv >> 32;
    fake_hv_write_req(&req, 0, pte_gpa + 4, win + off + 4, &f.regs);
    assert_int_equal(fake_hv_post(hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f.x, 0), 1);
    assert_int_equal(fake_hv_take(hv, &rsp), 1);
    assert_int_equal(rsp.data.regs.x86.rip, code + 3);
    f.regs.rip = code + 0x10;
    f.regs.rax = nv & 0xffffffff;
    fake_hv_write_req(&req, 0, pte_gpa, win + off, &f.regs);
    assert_int_equal(fake_hv_post(hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f.x, 0), 1);
    assert_int_equal(fake_hv_take(hv, &rsp), 1);
    assert_int_equal(rsp.data.regs.x86.rip, code + 0x12);
    assert_int_equal(fake_hv_get64(hv, pte_gpa), nv);
    assert_true(f.calls >= 1);
    assert_int_equal(f.last.after.frame, f.frame_b);
    assert_int_equal(ptmon_check(f.pm, NULL, 0), 0);
    /* set_pte_atomic: cmpxchg8b back to frame_a */
    fake_hv_poke(hv, f.code_gpa + 0x20, cx8, sizeof(cx8));
    f.regs.rip = code + 0x20;
    f.regs.rdi = win + off;
    f.regs.rax = nv & 0xffffffff;
    f.regs.rdx = nv >> 32;
    f.regs.rbx = (f.frame_a | 3) & 0xffffffff;
    f.regs.rcx = 0;
    fake_hv_write_req(&req, 0, pte_gpa, win + off, &f.regs);
    assert_int_equal(fake_hv_post(hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f.x, 0), 1);
    assert_int_equal(fake_hv_take(hv, &rsp), 1);
    assert_true(rsp.data.regs.x86.rflags & 0x40);
    assert_int_equal(fake_hv_get64(hv, pte_gpa), f.frame_a | 3);
    assert_int_equal(f.last.after.frame, f.frame_a);
    assert_int_equal(ptmon_check(f.pm, NULL, 0), 0);

    assert_int_equal(ptmon_xen_detach(f.x), 0);
    ptmon_destroy(f.pm);
    ptmon_xen_free(f.x);
    assert_true(fake_hv_access_unchanged(hv));
    fake_hv_destroy(hv);
}

static void test_cpuid(void **state);

/* ---- detach ----------------------------------------------------------------------------- */

static void post_irrelevant(struct fx *f, uint32_t vcpu)
{
    vm_event_request_t req;
    fake_hv_write_req(&req, vcpu, f->pt_gpa + IRR_OFF, PTWIN_VA + IRR_OFF, &f->regs);
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
}

static void test_detach_with_pending(void **state)
{
    struct fx *f = *state;
    vm_event_response_t rsp;
    post_irrelevant(f, 0);
    post_irrelevant(f, 1);
    assert_int_equal(ptmon_xen_detach(f->x), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
        assert_int_equal(rsp.flags, VM_EVENT_FLAG_VCPU_PAUSED); /* re-execute, no emulation */
    }
    assert_int_equal(f->hv->rights_at_disable_wrong, 0);
    assert_int_equal(f->hv->unconsumed_at_disable, 0);
    assert_int_equal(f->hv->pause_depth, 0);
    assert_true(fake_hv_access_unchanged(f->hv));
    assert_int_equal(f->hv->gpt_suppressed, 0);
    assert_int_equal(f->hv->emul_unimpl, 0);
    assert_int_equal(ptmon_xen_detach(f->x), 0); /* twice is fine */
}

static int arrivals;
static void arrive_while_draining(struct fake_hv *hv, void *ctx)
{
    struct fx *f = ctx;
    (void)hv;
    if (arrivals-- > 0) /* a vCPU that waited for ring space posts now */
        post_irrelevant(f, 1);
}

static void test_detach_ebusy(void **state)
{
    struct fx *f = *state;
    vm_event_response_t rsp;
    arrivals = 3;
    f->hv->on_wait = arrive_while_draining;
    f->hv->on_wait_ctx = f;
    f->hv->disable_ebusy = 2;
    assert_int_equal(ptmon_xen_detach(f->x), 0);
    assert_int_equal(f->hv->disable_calls, 3);
    assert_int_equal(f->hv->monitor_on, 0);
    assert_int_equal(f->hv->pause_depth, 0);
    assert_int_equal(f->hv->pause_calls, f->hv->unpause_calls);
    unsigned n = 0;
    while (fake_hv_take(f->hv, &rsp))
        n++;
    assert_int_equal(n, 3);
    assert_int_equal(f->hv->unconsumed_at_disable, 0);
    f->hv->on_wait = NULL;
}

static void test_detach_ebusy_forever(void **state)
{
    struct fx *f = *state;
    f->hv->disable_ebusy = 1000;
    assert_int_equal(ptmon_xen_detach(f->x), PTMON_EBUSY);
    assert_int_equal(f->hv->pause_depth, 0);      /* never left paused */
    assert_true(fake_hv_access_unchanged(f->hv)); /* nor write-protected */
    f->hv->disable_ebusy = 0;
    f->hv->monitor_on = 0; /* (the fake's view: give up) */
}

static volatile sig_atomic_t got_term;
static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}

static void raise_term(struct fx *f)
{
    (void)f;
    raise(SIGTERM);
}

static void test_sigterm_mid_event(void **state)
{
    struct fx *f = *state;
    static const uint8_t mov[] = {0x48, 0x89, 0x07};
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, &old);
    got_term = 0;
    f->in_callback = raise_term;
    f->regs.rax = f->frame_b | 3;
    vm_event_response_t rsp = run(f, mov, sizeof(mov), PTE_OFF); /* the event completes */
    assert_true(got_term);
    assert_true(rsp.flags & VM_EVENT_FLAG_SET_REGISTERS);
    post_irrelevant(f, 1); /* another arrives before the loop looks at the flag */
    assert_int_equal(ptmon_xen_detach(f->x), 0);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(f->hv->pause_depth, 0);
    assert_true(fake_hv_access_unchanged(f->hv));
    sigaction(SIGTERM, &old, NULL);
}

/* A crash inside the engine, as the fatal-signal handler sees it: the emergency detach runs
 * while the request is being handled. Its vCPU must get an answer (once), or it stays paused. */
static void crash_now(struct fx *f)
{
    ptmon_xen_emergency_detach(f->x);
}

static void test_emergency_detach_answers_the_request_in_progress(void **state)
{
    struct fx *f = *state;
    static const uint8_t mov[] = {0x48, 0x89, 0x07};
    vm_event_request_t req;
    vm_event_response_t rsp;

    f->in_callback = crash_now;
    f->regs.rax = f->frame_b | 3;
    fake_hv_poke(f->hv, f->code_gpa, mov, sizeof(mov));
    f->regs.rip = CODE_VA;
    fake_hv_write_req(&req, 0, f->pt_gpa + PTE_OFF, PTWIN_VA + PTE_OFF, &f->regs);
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    (void)ptmon_xen_poll(f->x, 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(rsp.vcpu_id, 0);
    assert_true(rsp.flags & VM_EVENT_FLAG_VCPU_PAUSED);
    assert_false(rsp.flags & VM_EVENT_FLAG_EMULATE);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 0); /* answered once */
    assert_int_equal(f->hv->monitor_on, 0);
    assert_true(fake_hv_access_unchanged(f->hv));
    f->in_callback = NULL;
}

/* The crash comes while the engine re-reads what Xen emulated, before the request that brought
 * it is even looked at: that request gets its answer too. */
static void test_emergency_detach_answers_a_request_not_yet_handled(void **state)
{
    struct fx *f = *state;
    static const uint8_t add[] = {0x48, 0x01, 0x07}; /* add [rdi], rax: Xen emulates it */
    vm_event_response_t rsp;

    f->regs.rax = 0x1000;
    rsp = run(f, add, sizeof(add), PTE_OFF);
    assert_true(rsp.flags & VM_EVENT_FLAG_EMULATE);
    fake_hv_set64(f->hv, f->pt_gpa + PTE_OFF, pte(f) + 0x1000); /* what Xen wrote */
    f->in_callback = crash_now; /* in the callback the re-read makes */
    post_irrelevant(f, 1);
    (void)ptmon_xen_poll(f->x, 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(rsp.vcpu_id, 1);
    assert_true(rsp.flags & VM_EVENT_FLAG_VCPU_PAUSED);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 0);
    assert_int_equal(f->hv->monitor_on, 0);
    f->in_callback = NULL;
}

static void test_emergency_detach(void **state)
{
    struct fx *f = *state;
    vm_event_response_t rsp;
    post_irrelevant(f, 0);
    ptmon_xen_emergency_detach(f->x);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(rsp.flags, VM_EVENT_FLAG_VCPU_PAUSED);
    assert_true(fake_hv_access_unchanged(f->hv));
    assert_int_equal(f->hv->monitor_on, 0);
}

/* A glue between the engine and the backend that checks, at every read, that each frame the
 * engine has asked to write-protect is write-protected in Xen already: "protect, then read"
 * must hold for every vCPU, not only once the call's flush has run. */
struct read_check {
    const ptmon_glue *inner;
    struct fake_hv *hv;
    uint64_t protected_gfns[64];
    unsigned n, reads, violations;
};

static int rc_read(void *b, uint64_t gpa, void *buf, size_t len)
{
    struct read_check *c = b;
    c->reads++;
    for (unsigned i = 0; i < c->n; i++)
        if (c->protected_gfns[i] == gpa >> 12 && (c->hv->access[gpa >> 12] & XENMEM_access_w))
            c->violations++;
    return c->inner->read_gpa(c->inner->backend, gpa, buf, len);
}

static int rc_get(void *b, uint64_t gfn, uint32_t *access)
{
    struct read_check *c = b;
    return c->inner->get_access(c->inner->backend, gfn, access);
}

static int rc_set(void *b, uint64_t gfn, uint32_t access)
{
    struct read_check *c = b;
    if (!(access & PTMON_ACCESS_W) && c->n < 64)
        c->protected_gfns[c->n++] = gfn;
    return c->inner->set_access(c->inner->backend, gfn, access);
}

static int rc_flush(void *b)
{
    struct read_check *c = b;
    return c->inner->flush(c->inner->backend);
}

static void test_protection_is_in_force_before_the_engine_reads(void **state)
{
    struct fx *f = *state;
    struct read_check c = {ptmon_xen_glue(f->x), f->hv, {0}, 0, 0, 0};
    ptmon_glue g = PTMON_GLUE_INIT;
    ptmon *pm;
    struct ptmon_watch *w2;
    uint64_t va2 = 0x40000000ull; /* PDPT[1]: a new PD and PT */

    g.backend = &c;
    g.read_gpa = rc_read;
    g.get_access = rc_get;
    g.set_access = rc_set;
    g.flush = rc_flush;
    fake_hv_map(f->hv, f->cr3, va2, f->frame_b);
    assert_int_equal(ptmon_create(&g, NULL, &pm), PTMON_ENOCALLBACK); /* AUTO needs regs */
    {
        ptmon_config cfg = PTMON_CONFIG_INIT;
        cfg.paging.mode = PTMON_MODE_4LEVEL;
        cfg.paging.flags = PTMON_PAGING_NXE;
        assert_int_equal(ptmon_create(&g, &cfg, &pm), 0);
    }
    assert_int_equal(ptmon_watch(pm, f->cr3, va2, 0, on_change, f, &w2), 0);
    assert_true(c.n >= 3 && c.reads >= 4);
    assert_int_equal(c.violations, 0);
    assert_int_equal(ptmon_check(pm, NULL, 0), 0);
    ptmon_destroy(pm);
}

/* Issue 13, V3: the width comes from the domain's CPUID policy, so an entry setting an address
 * bit the guest's CPU does not have is a reserved-bit fault, not a translation (with the 52-bit
 * default it was reported present). */
static void test_width_comes_from_the_domains_cpuid_policy(void **state)
{
    struct fx *f = *state;
    uint64_t pte_gpa = fake_hv_pte_gpa(f->hv, f->cr3, WATCH_VA, 1);
    ptmon_walk walk;

    assert_int_equal(ptmon_get_paging(f->pm).maxphyaddr, 39);
    fake_hv_set64(f->hv, pte_gpa, fake_hv_get64(f->hv, pte_gpa) | (1ull << 40));
    assert_int_equal(ptmon_translate(f->pm, f->cr3, WATCH_VA, &walk), 0);
    assert_int_equal(walk.status, PTMON_WALK_RESERVED);
    assert_int_equal(walk.reserved_bits, 1ull << 40);
}

/* A monitoring domain not allowed to read the policy still attaches: 52 bits, and the glue's
 * own answer (EIO) lets ptmond say the width is assumed. */
static void test_width_without_the_cpuid_leaf_is_36_and_an_unreadable_policy_gives_52(void **state)
{
    struct fx *f = *state;
    const ptmon_glue *g = ptmon_xen_glue(f->x);
    ptmon *pm = NULL;
    unsigned bits = 0;

    f->hv->max_ext_leaf = 0x80000004u;
    assert_int_equal(g->get_maxphyaddr(g->backend, &bits), 0);
    assert_int_equal(bits, 36);
    f->hv->cpuid_policy_rc = -EPERM;
    assert_int_equal(g->get_maxphyaddr(g->backend, &bits), PTMON_EIO);
    assert_int_equal(ptmon_create(g, NULL, &pm), 0);
    assert_int_equal(ptmon_get_paging(pm).maxphyaddr, 52);
    ptmon_destroy(pm);
}

/* Issue 16, item 2: a monitor that died (ptmond killed) left its ring enabled, vCPU 0 paused
 * waiting for an answer and three frames write-protected. The reset takes its ring, gives the
 * frames their rights back, unpauses exactly the paused vCPU, and the next attach works. */
static void test_reset_recovers_from_a_monitor_that_died(void **state)
{
    struct fake_hv *hv = fake_hv_create(256, 2);
    ptmon_xen_config cfg = PTMON_XEN_CONFIG_INIT;
    ptmon_xen_reset_result res;
    uint64_t stale[3] = {0x10, 0x11, 0x42};
    ptmon_xen *x = NULL;
    void *ring;
    uint32_t port;
    (void)state;

    assert_int_equal(hv->ops.monitor_enable(hv, &ring, &port), 0); /* the dead monitor's */
    for (int i = 0; i < 3; i++)
        hv->access[stale[i]] = XENMEM_access_rx;
    hv->vm_paused[0] = 1;
    hv->resume_on_notify = 1;
    cfg.domid = 5;
    assert_int_equal(xen_attach_ops(&cfg, &hv->ops, &x), PTMON_EBUSY);
    /* vCPUs waiting for room in the stale ring: Xen will not disable it; nothing changes */
    hv->disable_ebusy = 1;
    assert_int_equal(xen_reset_ops(5, &hv->ops, NULL, NULL, 0, &res), PTMON_EBUSY);
    assert_int_equal(hv->access[stale[0]], XENMEM_access_rx);
    assert_int_equal(hv->vm_paused[0], 1);
    assert_int_equal(hv->pause_depth, 0);
    assert_int_equal(xen_reset_ops(6, &hv->ops, NULL, NULL, 0, &res), PTMON_ENOENT);

    assert_int_equal(xen_reset_ops(5, &hv->ops, NULL, NULL, 0, &res), 0);
    assert_int_equal(res.stale_monitor, 1);
    assert_int_equal(res.domain_paused, 0);
    assert_int_equal(res.frames_restored, 3);
    assert_int_equal(res.frames_failed, 0);
    assert_int_equal(res.vcpus, 2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(hv->access[stale[i]], XENMEM_access_rwx);
    assert_int_equal(hv->vm_paused[0], 0);
    assert_int_equal(hv->unpaused, 1); /* vCPU 1 was running: its response changed nothing */
    assert_int_equal(hv->monitor_on, 0);
    assert_int_equal(hv->pause_depth, 0);

    assert_int_equal(xen_attach_ops(&cfg, &hv->ops, &x), 0);
    assert_int_equal(ptmon_xen_detach(x), 0);
    ptmon_xen_free(x);
    fake_hv_destroy(hv);
}

/* With the list of what the dead monitor restricted (ptmond --state), each frame gets back the
 * rights it had, not rwx; a reset with nothing stale changes nothing. */
static void test_reset_gives_listed_frames_their_recorded_rights(void **state)
{
    struct fake_hv *hv = fake_hv_create(256, 1);
    ptmon_xen_reset_result res;
    uint64_t gfns[2] = {0x20, 0x21};
    uint32_t rights[2] = {PTMON_ACCESS_R | PTMON_ACCESS_W, PTMON_ACCESS_RWX};
    (void)state;

    hv->resume_on_notify = 1;
    hv->access[0x20] = XENMEM_access_r; /* rw before the monitor took W */
    hv->access[0x21] = XENMEM_access_rx;
    assert_int_equal(xen_reset_ops(5, &hv->ops, gfns, rights, 2, &res), 0);
    assert_int_equal(res.stale_monitor, 0);
    assert_int_equal(res.frames_restored, 2);
    assert_int_equal(hv->access[0x20], XENMEM_access_rw);
    assert_int_equal(hv->access[0x21], XENMEM_access_rwx);
    assert_int_equal(res.vcpus, 1);
    assert_int_equal(hv->unpaused, 0);
    assert_int_equal(xen_reset_ops(5, &hv->ops, gfns, rights, 2, &res), 0);
    assert_int_equal(res.frames_restored, 0);
    assert_int_equal(hv->monitor_on, 0);
    fake_hv_destroy(hv);
}

/* Xen's HAP pool is short (ENOMEM) when the access of a frame is given back: the change stays
 * queued and the next flush applies it, instead of leaving the frame protected while ptmon
 * believes it is not. */
static void test_failed_flush_keeps_what_failed(void **state)
{
    struct fx *f = *state;
    struct ptmon_watch *w2;
    uint64_t va2 = 0x40000000ull;
    uint64_t pd2, pt2;
    int still_rx;

    fake_hv_map(f->hv, f->cr3, va2, f->frame_b);
    pd2 = fake_hv_pte_gpa(f->hv, f->cr3, va2, 2) >> 12;
    pt2 = fake_hv_pte_gpa(f->hv, f->cr3, va2, 1) >> 12;
    assert_int_equal(ptmon_watch(f->pm, f->cr3, va2, 0, on_change, f, &w2), 0);
    f->hv->set_access_fail = 2; /* the batch and the first frame alone */
    assert_int_equal(ptmon_unwatch(&w2), PTMON_EIO);
    still_rx = (f->hv->access[pd2] == XENMEM_access_rx) + (f->hv->access[pt2] == XENMEM_access_rx);
    assert_int_equal(still_rx, 1);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 0); /* a quiet poll flushes what is queued */
    assert_int_equal(f->hv->access[pd2], XENMEM_access_rwx);
    assert_int_equal(f->hv->access[pt2], XENMEM_access_rwx);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

/* Xen refuses a restriction (ENOMEM from the HAP pool): set_access fails and the frame stays as
 * it was, in Xen and in the backend; nothing applies it behind the engine's back later, and a
 * later watch through it protects and releases it normally. */
static void test_failed_restriction_leaves_the_frame_as_it_was(void **state)
{
    struct fx *f = *state;
    struct ptmon_watch *w2;
    uint64_t va2 = 0x40000000ull, pd2, pt2;
    ptmon_stats st;

    fake_hv_map(f->hv, f->cr3, va2, f->frame_b);
    pd2 = fake_hv_pte_gpa(f->hv, f->cr3, va2, 2) >> 12;
    pt2 = fake_hv_pte_gpa(f->hv, f->cr3, va2, 1) >> 12;
    f->hv->set_access_fail = 2;
    assert_true(ptmon_watch(f->pm, f->cr3, va2, 0, on_change, f, &w2) < 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 0); /* flushes whatever is queued */
    f->hv->set_access_fail = 0;                   /* the pool has room again */
    assert_int_equal(f->hv->access[pd2], XENMEM_access_rwx);
    assert_int_equal(f->hv->access[pt2], XENMEM_access_rwx);
    assert_int_equal(ptmon_get_stats(f->pm, &st), 0);
    assert_int_equal(st.frames, 4); /* the fixture watch's four tables, no more */
    assert_int_equal(ptmon_watch(f->pm, f->cr3, va2, 0, on_change, f, &w2), 0);
    assert_int_equal(f->hv->access[pd2], XENMEM_access_rx);
    assert_int_equal(ptmon_unwatch(&w2), 0);
    assert_int_equal(f->hv->access[pd2], XENMEM_access_rwx);
    assert_int_equal(f->hv->access[pt2], XENMEM_access_rwx);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
}

/* A monitor that died left frames restricted (Xen keeps p2m access when the ring goes). One on
 * a watched path is tracked all the same (its writes reach the engine, not "stale") and gets
 * Xen's default back at detach; one nobody watches is given rwx at its first write fault. */
static void test_frames_left_restricted_by_a_dead_monitor(void **state)
{
    struct fx *f = *state;
    static const uint8_t mov[] = {0x48, 0x89, 0x07};
    struct ptmon_watch *w2;
    uint64_t va2 = 0x40000000ull, pt2, lone;
    vm_event_request_t req;
    vm_event_response_t rsp;
    ptmon_xen_stats st;

    fake_hv_map(f->hv, f->cr3, va2, f->frame_b);
    pt2 = fake_hv_pte_gpa(f->hv, f->cr3, va2, 1) >> 12;
    f->hv->access[pt2] = XENMEM_access_rx; /* left so */
    assert_int_equal(ptmon_watch(f->pm, f->cr3, va2, 0, on_change, f, &w2), 0);
    f->regs.rax = f->frame_a | 3; /* a write to va2's PTE reaches the engine */
    f->regs.rdi = va2; /* (the instruction's target: any VA; the request names the frame) */
    fake_hv_poke(f->hv, f->code_gpa, mov, sizeof(mov));
    f->regs.rip = CODE_VA;
    fake_hv_write_req(&req, 0, pt2 << 12, va2, &f->regs);
    req.u.mem_access.flags &= ~MEM_ACCESS_GLA_VALID;
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(stat(f, PTMON_XEN_EV_STALE), 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(ptmon_check(f->pm, NULL, 0), 0);
    /* a frame no watch uses, left rx: its first write fault gives it back */
    lone = fake_hv_alloc(f->hv) >> 12;
    f->hv->access[lone] = XENMEM_access_rx;
    fake_hv_write_req(&req, 0, lone << 12, va2, &f->regs);
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(stat(f, PTMON_XEN_EV_STALE), 1);
    assert_int_equal(f->hv->access[lone], XENMEM_access_rwx);
    assert_int_equal(ptmon_xen_get_stats(f->x, &st), 0);
    assert_int_equal(st.stale_frames, 2);
    assert_int_equal(ptmon_unwatch(&w2), 0);
    assert_int_equal(f->hv->access[pt2], XENMEM_access_rwx);
    f->hv->initial_access[lone] = XENMEM_access_rwx; /* what both must end with */
    f->hv->initial_access[pt2] = XENMEM_access_rwx;
}

static void test_flush_failure_falls_back(void **state)
{
    struct fx *f = *state;
    /* a second watch through new tables; the batched call fails once: one at a time */
    struct ptmon_watch *w2;
    uint64_t va2 = 0x40000000ull; /* PDPT[1]: a new PD and PT */
    fake_hv_map(f->hv, f->cr3, va2, f->frame_b);
    uint64_t pd2 = fake_hv_pte_gpa(f->hv, f->cr3, va2, 2) >> 12;
    uint64_t pt2 = fake_hv_pte_gpa(f->hv, f->cr3, va2, 1) >> 12;
    assert_int_equal(ptmon_watch(f->pm, f->cr3, va2, 0, on_change, f, &w2), 0);
    assert_int_equal(f->hv->access[pd2], XENMEM_access_rx);
    assert_int_equal(f->hv->access[pt2], XENMEM_access_rx);
    unsigned calls = f->hv->set_access_calls;
    f->hv->set_access_fail = 1;
    assert_int_equal(ptmon_unwatch(&w2), 0);
    assert_int_equal(f->hv->set_access_calls, calls + 1 + 2); /* failed batch, then singly */
    assert_int_equal(f->hv->access[pd2], XENMEM_access_rwx);
    assert_int_equal(f->hv->access[pt2], XENMEM_access_rwx);
    assert_int_equal(f->hv->access[f->pt_gpa >> 12], XENMEM_access_rx); /* untouched */
}

static void cpuid_seen(void *ctx, uint32_t vcpu, uint32_t leaf, const ptmon_vcpu_regs *regs)
{
    struct fx *f = ctx;
    f->calls++;
    assert_int_equal(vcpu, 1);
    assert_int_equal(leaf, 0x4000beef);
    f->last.cr3 = regs->cr3;
}

static void test_cpuid(void **state)
{
    struct fx *f = *state;
    vm_event_request_t req;
    vm_event_response_t rsp;
    assert_int_equal(ptmon_xen_watch_cpuid(f->x, 0x4000beef, cpuid_seen, f), 0);
    assert_true(f->hv->cpuid_on);
    memset(&req, 0, sizeof(req));
    req.version = VM_EVENT_INTERFACE_VERSION;
    req.vcpu_id = 1;
    req.flags = VM_EVENT_FLAG_VCPU_PAUSED;
    req.reason = VM_EVENT_REASON_CPUID;
    req.u.cpuid.leaf = 0x4000beef;
    req.u.cpuid.insn_length = 2;
    req.data.regs.x86 = f->regs;
    req.data.regs.x86.cr3 = 0xabc000;
    req.data.regs.x86.rax = 0; /* Xen's guest_cpuid() answer for the unknown leaf */
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->last.cr3, 0xabc000);
    assert_true(rsp.flags & VM_EVENT_FLAG_SET_REGISTERS);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + 2);
    assert_int_equal(rsp.data.regs.x86.rax, 0);
    /* Another leaf while monitoring is on: the guest gets the answer Xen computed from the
     * domain's policy (in the request's registers), not dom0's CPU's. */
    req.u.cpuid.leaf = 1;
    req.data.regs.x86.rax = 0x000306c3; /* what this guest's policy says */
    req.data.regs.x86.rbx = 0x02000800; /* its APIC ID 2 (vCPU 1) */
    req.data.regs.x86.rcx = 0x80000001;
    req.data.regs.x86.rdx = 0x178bfbff;
    assert_int_equal(fake_hv_post(f->hv, &req), 0);
    assert_int_equal(ptmon_xen_poll(f->x, 0), 1);
    assert_int_equal(fake_hv_take(f->hv, &rsp), 1);
    assert_int_equal(f->calls, 1);
    assert_int_equal(rsp.data.regs.x86.rax, 0x000306c3);
    assert_int_equal(rsp.data.regs.x86.rbx, 0x02000800);
    assert_int_equal(rsp.data.regs.x86.rcx, 0x80000001);
    assert_int_equal(rsp.data.regs.x86.rdx, 0x178bfbff);
    assert_int_equal(rsp.data.regs.x86.rip, CODE_VA + 2);
    assert_int_equal(ptmon_xen_watch_cpuid(f->x, 0, NULL, NULL), 0);
    assert_false(f->hv->cpuid_on);
}

static void test_mapping_cache(void **state)
{
    struct fx *f = *state;
    static const uint8_t mov[] = {0x48, 0x89, 0x07};
    ptmon_xen_stats s;
    f->regs.rdi = PTWIN_VA + IRR_OFF;
    for (int i = 0; i < 50; i++)
        run(f, mov, sizeof(mov), IRR_OFF);
    assert_int_equal(ptmon_xen_get_stats(f->x, &s), 0);
    assert_true(s.map_hits > 20 * s.map_misses); /* the hot path never maps */
    assert_int_equal(s.protected_frames, 4);
    uint64_t sum = 0;
    for (int i = 0; i < PTMON_XEN_LATENCY_BUCKETS; i++)
        sum += s.latency[i];
    assert_int_equal(sum, 50);
    assert_string_equal(ptmon_xen_event_kind_name(PTMON_XEN_EV_IN_GPT), "in_gpt");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach_version_mismatch),
        cmocka_unit_test(test_attach_refusals),
        cmocka_unit_test(test_pae_guest),
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
        T(test_attach_sequence),
        T(test_response_rules_irrelevant),
        T(test_response_not_paused_and_malformed),
        T(test_fault_in_gpt),
        T(test_full_ring),
        T(test_stale_frame),
        T(test_mov_leaf_change),
        T(test_mov_imm_and_deny),
        T(test_deny_runs_the_instruction_against_the_old_entry),
        T(test_deny_rep_stos_skips_this_frame_only),
        T(test_xchg),
        T(test_cmpxchg),
        T(test_cmpxchg8b_16b),
        T(test_lock_logic),
        T(test_bit_ops),
        T(test_stos),
        T(test_movs),
        T(test_vector_store),
        T(test_halves),
        T(test_cas_retry),
        T(test_cas_real_race),
        T(test_unknown_insn_emulate_then_reread),
        T(test_cpuid),
        T(test_emul_unimplemented),
        T(test_glue_pause_balance),
        T(test_insn_across_pages),
        T(test_detach_with_pending),
        T(test_detach_ebusy),
        T(test_detach_ebusy_forever),
        T(test_sigterm_mid_event),
        T(test_emergency_detach),
        T(test_emergency_detach_answers_the_request_in_progress),
        T(test_emergency_detach_answers_a_request_not_yet_handled),
        T(test_flush_failure_falls_back),
        T(test_protection_is_in_force_before_the_engine_reads),
        cmocka_unit_test(test_reset_recovers_from_a_monitor_that_died),
        cmocka_unit_test(test_reset_gives_listed_frames_their_recorded_rights),
        T(test_width_comes_from_the_domains_cpuid_policy),
        T(test_width_without_the_cpuid_leaf_is_36_and_an_unreadable_policy_gives_52),
        T(test_failed_flush_keeps_what_failed),
        T(test_frames_left_restricted_by_a_dead_monitor),
        T(test_failed_restriction_leaves_the_frame_as_it_was),
        T(test_emulated_write_is_reread_promptly),
        T(test_mapping_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
