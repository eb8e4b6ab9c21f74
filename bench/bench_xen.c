/*
 * Xen backend benchmark: per-event handling time on the fake ring (request read -> response
 * pushed, i.e. one xen_ring_drain of one request: copy, decode, engine, atomic store, rights
 * flush, push, notify) for a watched-leaf change and for an irrelevant write into a watched
 * table. Prints median and p99 per case. Targets: <= 5 us median, <= 20 us p99.
 *   ptmon_bench_xen [--smoke] [--iterations N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_xen.h"

#define WATCH_VA 0x205000ull
#define CODE_VA  0x400000ull
#define PTWIN_VA 0x600000ull
#define PTE_OFF  0x28u
#define IRR_OFF  0x100u

static int on_change(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    (void)pm;
    (void)w;
    (void)c;
    ++*(unsigned long *)ctx;
    return PTMON_ACTION_ALLOW;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct env {
    struct fake_hv *hv;
    ptmon_xen *x;
    ptmon *pm;
    uint64_t cr3, pt_gpa, fa, fb;
    unsigned long calls;
};

static int setup(struct env *e)
{
    ptmon_xen_config cfg = PTMON_XEN_CONFIG_INIT;
    struct ptmon_watch *w;
    static const uint8_t mov[] = {0x48, 0x89, 0x07}; /* mov [rdi], rax */
    uint64_t code;

    memset(e, 0, sizeof(*e));
    e->hv = fake_hv_create(64, 2);
    e->cr3 = fake_hv_new_root(e->hv);
    e->fa = fake_hv_alloc(e->hv);
    e->fb = fake_hv_alloc(e->hv);
    code = fake_hv_alloc(e->hv);
    e->pt_gpa = fake_hv_map(e->hv, e->cr3, WATCH_VA, e->fa) & ~0xfffull;
    fake_hv_map(e->hv, e->cr3, CODE_VA, code);
    fake_hv_map(e->hv, e->cr3, PTWIN_VA, e->pt_gpa);
    fake_hv_poke(e->hv, code, mov, sizeof(mov));
    cfg.domid = 5;
    if (xen_attach_ops(&cfg, &e->hv->ops, &e->x) < 0 ||
        ptmon_create(ptmon_xen_glue(e->x), NULL, &e->pm) < 0)
        return -1;
    ptmon_xen_set_instance(e->x, e->pm);
    return ptmon_watch(e->pm, e->cr3, WATCH_VA, 0, on_change, &e->calls, &w);
}

/* @return per-event nanoseconds of @p n events of one kind. */
static uint64_t *measure(struct env *e, int leaf, size_t n)
{
    uint64_t *t = malloc(n * sizeof(*t));
    struct vm_event_regs_x86 regs;
    vm_event_request_t req;
    vm_event_response_t rsp;
    uint32_t off = leaf ? PTE_OFF : IRR_OFF;

    if (!t)
        return NULL;
    fake_hv_regs64(&regs, e->cr3, CODE_VA);
    regs.rdi = PTWIN_VA + off;
    for (size_t i = 0; i < n; i++) {
        regs.rax = ((i & 1) ? e->fa : e->fb) | 3;
        fake_hv_write_req(&req, 0, e->pt_gpa + off, PTWIN_VA + off, &regs);
        fake_hv_post(e->hv, &req);
        uint64_t t0 = xen_now_ns();
        int got = xen_ring_drain(e->x, 1);
        t[i] = xen_now_ns() - t0;
        if (got != 1 || !fake_hv_take(e->hv, &rsp)) {
            free(t);
            return NULL;
        }
    }
    return t;
}

int main(int argc, char **argv)
{
    size_t n = 200000;
    struct env e;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke"))
            n = 2000;
        else if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
            n = strtoul(argv[++i], NULL, 0);
        else {
            fprintf(stderr, "usage: %s [--smoke] [--iterations N]\n", argv[0]);
            return 2;
        }
    }
    if (n < 100 || setup(&e) < 0) {
        fprintf(stderr, "bench_xen: setup failed\n");
        return 1;
    }
    printf("bench_xen: fake ring, %zu events per case (request read -> response pushed)\n", n);
    for (int leaf = 1; leaf >= 0; leaf--) {
        unsigned long before = e.calls;
        uint64_t *t = measure(&e, leaf, n);
        if (!t) {
            fprintf(stderr, "bench_xen: event loop failed\n");
            rc = 1;
            break;
        }
        qsort(t, n, sizeof(*t), cmp_u64);
        printf("%-18s median %7.3f us  p99 %7.3f us  max %8.3f us  (callbacks %lu)\n",
               leaf ? "leaf change" : "irrelevant write", (double)t[n / 2] / 1e3,
               (double)t[n * 99 / 100] / 1e3, (double)t[n - 1] / 1e3, e.calls - before);
        free(t);
    }
    ptmon_xen_detach(e.x);
    ptmon_destroy(e.pm);
    ptmon_xen_free(e.x);
    fake_hv_destroy(e.hv);
    return rc;
}
