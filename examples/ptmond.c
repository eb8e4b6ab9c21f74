/*
 * ptmond — watch the translations of guest virtual addresses of a Xen domain and print every
 * change, one line each (JSON lines with --json); statistics on stderr at exit.
 *
 *   ptmond --domain ID [--cr3 HEX | --cr3-from-cpuid LEAF] --va ADDR [--va ...]
 *          [--range ADDR:LEN] [--json] [--duration S]
 *
 * Signals: SIGINT/SIGTERM/SIGHUP set a flag (a sig_atomic_t: the only state a handler may
 * touch safely); the loop then detaches in order: every frame's rights restored, the ring
 * drained, the monitor disabled, the guest never left paused. A fatal signal (SIGSEGV, SIGBUS,
 * SIGILL, SIGFPE, SIGABRT) makes a best-effort emergency detach through a file-scope pointer
 * (libxc is not async-signal-safe, but a hung guest is the worse outcome) and re-raises.
 * These two file-scope variables are this program's, not the library's (which has none).
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ptmon/ptmon.h>
#include <ptmon/xen.h>

#define MAX_WATCHES 65536

static volatile sig_atomic_t stop_requested;
static ptmon_xen *volatile emergency_target;

struct opts {
    uint32_t domid;
    int have_domid, have_cr3, json;
    uint64_t cr3;
    long cpuid_leaf; /* -1: none */
    double duration;
    uint64_t *vas;
    size_t nvas, capvas;
};

struct app {
    struct opts o;
    int cr3_seen;
    uint64_t cr3_found;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ptmond --domain ID [--cr3 HEX | --cr3-from-cpuid LEAF] --va ADDR [--va ...]\n"
            "              [--range ADDR:LEN] [--json] [--duration S]\n"
            "Watch the translations of guest virtual addresses of Xen domain ID and print one\n"
            "line per change (JSON lines with --json). Statistics go to stderr at exit.\n"
            "  --domain ID           the guest (HVM/PVH, Intel EPT host)\n"
            "  --cr3 HEX             address space to watch (default: vCPU 0's CR3)\n"
            "  --cr3-from-cpuid LEAF wait until the guest executes CPUID with EAX=LEAF and take\n"
            "                        that vCPU's CR3\n"
            "  --va ADDR             a virtual address to watch (repeatable)\n"
            "  --range ADDR:LEN      every 4 KiB page of [ADDR, ADDR+LEN)\n"
            "  --json                JSON lines output\n"
            "  --duration S          stop after S seconds (default: until SIGINT/SIGTERM/SIGHUP)\n"
            "  --help                this text\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 0);
    return errno || end == s || *end ? -1 : 0;
}

static int add_va(struct opts *o, uint64_t va)
{
    if (o->nvas == MAX_WATCHES)
        return -1;
    if (o->nvas == o->capvas) {
        size_t cap = o->capvas ? 2 * o->capvas : 16;
        uint64_t *v = realloc(o->vas, cap * sizeof(*v));
        if (!v)
            return -1;
        o->vas = v;
        o->capvas = cap;
    }
    o->vas[o->nvas++] = va;
    return 0;
}

/* @return 0, 1 (--help printed), or -1 (usage error, message printed). */
static int parse(int argc, char **argv, struct opts *o)
{
    o->cpuid_leaf = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n, len;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "ptmond: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (!strcmp(a, "--domain") && parse_u64(v, &n) == 0 && n < UINT32_MAX) {
            o->domid = (uint32_t)n;
            o->have_domid = 1;
        } else if (!strcmp(a, "--cr3") && parse_u64(v, &o->cr3) == 0)
            o->have_cr3 = 1;
        else if (!strcmp(a, "--cr3-from-cpuid") && parse_u64(v, &n) == 0 && n <= UINT32_MAX)
            o->cpuid_leaf = (long)n;
        else if (!strcmp(a, "--va") && parse_u64(v, &n) == 0) {
            if (add_va(o, n) < 0)
                return fprintf(stderr, "ptmond: too many addresses\n"), -1;
        } else if (!strcmp(a, "--range")) {
            char buf[64], *colon;
            snprintf(buf, sizeof(buf), "%s", v);
            colon = strchr(buf, ':');
            if (!colon)
                return fprintf(stderr, "ptmond: --range wants ADDR:LEN\n"), -1;
            *colon = 0;
            if (parse_u64(buf, &n) || parse_u64(colon + 1, &len) || len == 0)
                return fprintf(stderr, "ptmond: bad --range %s\n", v), -1;
            for (uint64_t p = n & ~0xfffull; p < n + len; p += 4096)
                if (add_va(o, p) < 0)
                    return fprintf(stderr, "ptmond: range too large (max %d pages)\n", MAX_WATCHES),
                           -1;
        } else if (!strcmp(a, "--duration")) {
            char *end;
            o->duration = strtod(v, &end);
            if (*end || o->duration < 0)
                return fprintf(stderr, "ptmond: bad --duration %s\n", v), -1;
        } else {
            fprintf(stderr, "ptmond: unknown or malformed option %s %s\n", a, v);
            return -1;
        }
    }
    if (!o->have_domid || !o->nvas) {
        fprintf(stderr, "ptmond: --domain and at least one --va or --range are required\n");
        return -1;
    }
    if (o->have_cr3 && o->cpuid_leaf >= 0) {
        fprintf(stderr, "ptmond: --cr3 and --cr3-from-cpuid exclude each other\n");
        return -1;
    }
    return 0;
}

static void rights_str(unsigned r, char out[4])
{
    out[0] = (r & PTMON_RIGHT_W) ? 'w' : '-';
    out[1] = (r & PTMON_RIGHT_U) ? 'u' : '-';
    out[2] = (r & PTMON_RIGHT_NX) ? '-' : 'x';
    out[3] = 0;
}

static void print_tr(FILE *f, int json, const ptmon_translation *t)
{
    char r[4];
    rights_str(t->rights, r);
    if (json)
        fprintf(f,
                "{\"status\":\"%s\",\"level\":%u,\"entry\":\"0x%" PRIx64 "\",\"frame\":\"0x%" PRIx64
                "\",\"page_size\":%" PRIu64 ",\"rights\":\"%s\"}",
                ptmon_walk_status_name(t->status), t->level, t->entry, t->frame, t->page_size, r);
    else if (t->status == PTMON_WALK_OK)
        fprintf(f, "0x%" PRIx64 "/%" PRIu64 "K %s", t->frame, t->page_size >> 10, r);
    else
        fprintf(f, "%s(L%u entry 0x%" PRIx64 ")", ptmon_walk_status_name(t->status), t->level,
                t->entry);
}

static int on_change(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    struct app *app = ctx;
    struct timespec ts;
    (void)pm;
    (void)w;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (app->o.json) {
        printf("{\"time\":%lld.%06ld,\"cr3\":\"0x%" PRIx64 "\",\"va\":\"0x%" PRIx64
               "\",\"vcpu\":%ld,\"level\":%u,\"reverted\":%u,\"before\":",
               (long long)ts.tv_sec, ts.tv_nsec / 1000, c->cr3, c->va,
               c->vcpu == PTMON_VCPU_NONE ? -1L : (long)c->vcpu, c->level, c->reverted);
        print_tr(stdout, 1, &c->before);
        printf(",\"after\":");
        print_tr(stdout, 1, &c->after);
        printf("}\n");
    } else {
        printf(
            "%lld.%06ld va 0x%" PRIx64 " cr3 0x%" PRIx64 " vcpu %ld L%u%s: ", (long long)ts.tv_sec,
            ts.tv_nsec / 1000, c->va, c->cr3, c->vcpu == PTMON_VCPU_NONE ? -1L : (long)c->vcpu,
            c->level, c->reverted ? " (reverted)" : "");
        print_tr(stdout, 0, &c->before);
        printf(" -> ");
        print_tr(stdout, 0, &c->after);
        printf("\n");
    }
    fflush(stdout);
    return PTMON_ACTION_ALLOW;
}

static void on_cpuid(void *ctx, uint32_t vcpu, uint32_t leaf, const ptmon_vcpu_regs *regs)
{
    struct app *app = ctx;
    (void)leaf;
    if (!app->cr3_seen) {
        app->cr3_seen = 1;
        app->cr3_found = regs->cr3;
        fprintf(stderr, "ptmond: CPUID 0x%x on vCPU %u: CR3 0x%" PRIx64 "\n", leaf, vcpu,
                regs->cr3);
    }
}

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_fatal(int sig)
{
    ptmon_xen *x = emergency_target;
    emergency_target = NULL;
    if (x)
        ptmon_xen_emergency_detach(x);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(void)
{
    struct sigaction sa;
    static const int stops[] = {SIGINT, SIGTERM, SIGHUP};
    static const int fatals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++)
        sigaction(stops[i], &sa, NULL);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND;
    for (size_t i = 0; i < sizeof(fatals) / sizeof(fatals[0]); i++)
        sigaction(fatals[i], &sa, NULL);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void print_stats(ptmon_xen *x, ptmon *pm)
{
    ptmon_xen_stats s;
    ptmon_stats ps;
    uint64_t total = 0;
    if (ptmon_xen_get_stats(x, &s) < 0)
        return;
    fprintf(stderr, "ptmond: events by kind:");
    for (int k = 0; k < PTMON_XEN_EV_KINDS; k++) {
        fprintf(stderr, " %s=%" PRIu64, ptmon_xen_event_kind_name((enum ptmon_xen_event_kind)k),
                s.events[k]);
        total += s.events[k];
    }
    fprintf(stderr, " (total %" PRIu64 ", %" PRIu64 " batches)\n", total, s.batches);
    fprintf(stderr, "ptmond: per-event handling time:\n");
    for (int b = 0; b < PTMON_XEN_LATENCY_BUCKETS; b++)
        if (s.latency[b]) {
            double lo = 0.25 * (double)(1u << b);
            if (b == PTMON_XEN_LATENCY_BUCKETS - 1)
                fprintf(stderr, "  >= %9.2f us: %" PRIu64 "\n", lo, s.latency[b]);
            else
                fprintf(stderr, "  %9.2f - %9.2f us: %" PRIu64 "\n", b ? lo : 0.0, 2 * lo,
                        s.latency[b]);
        }
    fprintf(stderr,
            "ptmond: mapping cache: %" PRIu64 " hits, %" PRIu64 " misses (%.2f%% hit), %" PRIu64
            " map calls; %" PRIu64 " rights batches\n",
            s.map_hits, s.map_misses,
            s.map_hits + s.map_misses
                ? 100.0 * (double)s.map_hits / (double)(s.map_hits + s.map_misses)
                : 100.0,
            s.map_calls, s.protect_calls);
    if (pm && ptmon_get_stats(pm, &ps) == 0)
        fprintf(stderr,
                "ptmond: engine: %" PRIu64 " watches, %" PRIu64 " tables, %" PRIu64
                " events (%" PRIu64 " irrelevant), %" PRIu64 " callbacks\n",
                ps.watches, ps.tables, ps.events, ps.events_irrelevant, ps.callbacks);
}

/* Wait for the CPUID leaf (or a stop). @return 0 when the CR3 is known. */
static int wait_cpuid(struct app *app, ptmon_xen *x, double deadline)
{
    int rc = ptmon_xen_watch_cpuid(x, (uint32_t)app->o.cpuid_leaf, on_cpuid, app);
    if (rc < 0)
        return rc;
    fprintf(stderr, "ptmond: waiting for CPUID 0x%lx in the guest\n", app->o.cpuid_leaf);
    while (!app->cr3_seen && !stop_requested && (deadline == 0 || now_s() < deadline)) {
        rc = ptmon_xen_poll(x, 100);
        if (rc < 0)
            break;
    }
    (void)ptmon_xen_watch_cpuid(x, 0, NULL, NULL);
    if (!app->cr3_seen)
        return rc < 0 ? rc : PTMON_ENOENT;
    app->o.cr3 = app->cr3_found;
    return 0;
}

static int place(struct app *app, ptmon_xen *x, ptmon *pm)
{
    const ptmon_glue *g = ptmon_xen_glue(x);
    size_t ok = 0;
    /* Paused while placing: one consistent view, protection batched per watch call. */
    int paused = g->pause(g->backend) == 0;
    for (size_t i = 0; i < app->o.nvas; i++) {
        struct ptmon_watch *w;
        int rc = ptmon_watch(pm, app->o.cr3, app->o.vas[i], 0, on_change, app, &w);
        if (rc < 0)
            fprintf(stderr, "ptmond: watch 0x%" PRIx64 ": %s\n", app->o.vas[i], ptmon_strerror(rc));
        else
            ok++;
    }
    if (paused)
        (void)g->resume(g->backend);
    fprintf(stderr, "ptmond: watching %zu of %zu addresses in CR3 0x%" PRIx64 "\n", ok, app->o.nvas,
            app->o.cr3);
    return ok ? 0 : PTMON_ENOENT;
}

static int run(struct app *app)
{
    ptmon_xen_config cfg = PTMON_XEN_CONFIG_INIT;
    ptmon_xen *x = NULL;
    ptmon *pm = NULL;
    double start = now_s(), deadline = app->o.duration > 0 ? start + app->o.duration : 0;
    int rc;

    cfg.domid = app->o.domid;
    rc = ptmon_xen_attach(&cfg, &x);
    if (rc < 0) {
        fprintf(stderr, "ptmond: attach to domain %u: %s\n", app->o.domid, ptmon_strerror(rc));
        return 1;
    }
    emergency_target = x;
    rc = ptmon_create(ptmon_xen_glue(x), NULL, &pm);
    if (rc == 0) {
        ptmon_xen_set_instance(x, pm);
        if (!app->o.have_cr3 && app->o.cpuid_leaf < 0) {
            ptmon_vcpu_regs r;
            const ptmon_glue *g = ptmon_xen_glue(x);
            rc = g->get_vcpu_regs(g->backend, 0, &r);
            app->o.cr3 = r.cr3;
        } else if (app->o.cpuid_leaf >= 0)
            rc = wait_cpuid(app, x, deadline);
    }
    if (rc == 0 && !stop_requested)
        rc = place(app, x, pm);
    while (rc == 0 && !stop_requested && (deadline == 0 || now_s() < deadline)) {
        int n = ptmon_xen_poll(x, 100);
        if (n < 0) {
            fprintf(stderr, "ptmond: %s\n", n == PTMON_ENOENT ? "domain gone" : ptmon_strerror(n));
            break;
        }
    }
    if (rc < 0)
        fprintf(stderr, "ptmond: %s\n", ptmon_strerror(rc));
    {
        int drc = ptmon_xen_detach(x);
        if (drc < 0)
            fprintf(stderr, "ptmond: detach: %s\n", ptmon_strerror(drc));
    }
    emergency_target = NULL;
    print_stats(x, pm);
    ptmon_destroy(pm);
    ptmon_xen_free(x);
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct app app;
    int rc;
    memset(&app, 0, sizeof(app));
    rc = parse(argc, argv, &app.o);
    if (rc != 0) {
        if (rc < 0)
            usage(stderr);
        free(app.o.vas);
        return rc > 0 ? 0 : 2;
    }
    install_signals();
    rc = run(&app);
    free(app.o.vas);
    return rc;
}
