/*
 * ptmond — watch the translations of guest virtual addresses of a Xen domain and print every
 * change, one line each (JSON lines with --json); statistics on stderr at exit.
 *
 *   ptmond --domain ID [--cr3 HEX | --cr3-from-cpuid LEAF] --va ADDR [--va ...]
 *          [--range ADDR:LEN] [--deny ADDR ...] [--record FILE] [--json] [--duration S]
 *          [--experimental-ioreq]
 *
 * Signals: SIGINT/SIGTERM/SIGHUP (and SIGQUIT, SIGUSR2, SIGALRM, SIGXFSZ) set a flag (a
 * sig_atomic_t: the only state a handler may touch safely); the loop then detaches in order:
 * every frame's rights restored, the ring drained, the monitor disabled, the guest never left
 * paused. SIGUSR1 asks for a report: ptmon_check's finding count and the handling times of the
 * events since the last report (a "check" line). SIGPIPE is ignored: a closed output is a stop
 * request. A fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) makes a best-effort
 * emergency detach through a file-scope pointer (libxc is not async-signal-safe, but a hung
 * guest is the worse outcome: it answers the request being handled too) and re-raises; it runs
 * on a stack of its own, so that a stack overflow still gets there.
 * These file-scope variables are this program's, not the library's (which has none).
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#define _XOPEN_SOURCE 700 /* sigaltstack, SA_ONSTACK */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ptmon/ptmon.h>
#include <ptmon/trace.h>
#include <ptmon/xen.h>

#include "change_format.h"

#define MAX_WATCHES 65536
#define MAX_DENY    64

static volatile sig_atomic_t stop_requested, report_requested;
static ptmon_xen *volatile emergency_target;

struct opts {
    uint32_t domid;
    int have_domid, have_cr3, json, experimental_ioreq;
    uint64_t cr3;
    long cpuid_leaf; /* -1: none */
    double duration;
    uint64_t *vas;
    size_t nvas, capvas;
    uint64_t deny[MAX_DENY];
    size_t ndeny;
    const char *record;
    const char *state; /* --state: the frames restricted so far, for a --reset after a crash */
    int reset;
};

/* Handling times of the events since the last report, for its percentiles. */
struct window {
    uint32_t *ns;
    size_t n, cap;
    uint64_t total, denied_changes;
    double start;
};

struct app {
    struct opts o;
    int cr3_seen;
    uint64_t cr3_found;
    struct window win, all;
    FILE *trace;
    int trace_failed;
    uint64_t trace_bytes;
    uint64_t restricted_frames;
    FILE *state;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ptmond --domain ID [--cr3 HEX | --cr3-from-cpuid LEAF] --va ADDR [--va ...]\n"
            "              [--range ADDR:LEN] [--deny ADDR ...] [--record FILE] [--json]\n"
            "              [--duration S] [--state FILE] [--experimental-ioreq]\n"
            "       ptmond --domain ID --reset [--state FILE]\n"
            "Watch the translations of guest virtual addresses of Xen domain ID and print one\n"
            "line per change (JSON lines with --json). Statistics go to stderr at exit.\n"
            "  --domain ID           the guest (HVM/PVH with HAP, Intel EPT host: mem_access)\n"
            "  --cr3 HEX             address space to watch (default: vCPU 0's CR3)\n"
            "  --cr3-from-cpuid LEAF wait until the guest executes CPUID with EAX=LEAF and take\n"
            "                        that vCPU's CR3\n"
            "  --va ADDR             a virtual address to watch (repeatable)\n"
            "  --range ADDR:LEN      every 4 KiB page of [ADDR, ADDR+LEN)\n"
            "  --deny ADDR           watch ADDR and veto, before the write, every change that\n"
            "                        would take its present writable mapping away (remap, unmap,\n"
            "                        rights); only for pages the guest does not free meanwhile\n"
            "  --record FILE         write a trace of the run (ptmon-replay replays it)\n"
            "  --state FILE          keep there the frames write-protected and their rights, so\n"
            "                        that --reset can give them back if ptmond dies\n"
            "  --reset               recover the domain from a monitor that died (killed ptmond):\n"
            "                        unpause the vCPUs it left waiting, free its ring, give the\n"
            "                        frames (of --state FILE, else all low RAM) their rights\n"
            "  --json                JSON lines output\n"
            "  --duration S          stop after S seconds (default: until SIGINT/SIGTERM/SIGHUP)\n"
            "  --experimental-ioreq  without mem_access (AMD), trap writes with an ioreq server:\n"
            "                        experimental, 1-vCPU guests only (see tests/xen-lab)\n"
            "  --help                this text\n"
            "SIGUSR1 prints a report: ptmon_check's findings and the event handling times.\n");
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
        } else if (!strcmp(a, "--experimental-ioreq")) {
            o->experimental_ioreq = 1;
            continue;
        } else if (!strcmp(a, "--reset")) {
            o->reset = 1;
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
        } else if (!strcmp(a, "--deny") && parse_u64(v, &n) == 0) {
            if (o->ndeny == MAX_DENY)
                return fprintf(stderr, "ptmond: at most %d --deny addresses\n", MAX_DENY), -1;
            o->deny[o->ndeny++] = n & ~0xfffull;
        } else if (!strcmp(a, "--record"))
            o->record = v;
        else if (!strcmp(a, "--state"))
            o->state = v;
        else if (!strcmp(a, "--range")) {
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
    if (o->reset && o->have_domid)
        return 0; /* (the other options do not apply) */
    if (!o->have_domid || !o->nvas) {
        fprintf(stderr, "ptmond: --domain and at least one --va or --range are required\n");
        return -1;
    }
    if (o->have_cr3 && o->cpuid_leaf >= 0) {
        fprintf(stderr, "ptmond: --cr3 and --cr3-from-cpuid exclude each other\n");
        return -1;
    }
    /* a vetoed address must be watched: only its own callbacks can veto */
    for (size_t d = 0; d < o->ndeny; d++) {
        size_t i = 0;
        while (i < o->nvas && (o->vas[i] & ~0xfffull) != o->deny[d])
            i++;
        if (i == o->nvas && add_va(o, o->deny[d]) < 0)
            return fprintf(stderr, "ptmond: too many addresses\n"), -1;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- callbacks ---------------------------------------------------------------------------- */

static int is_denied_va(const struct opts *o, uint64_t va)
{
    for (size_t i = 0; i < o->ndeny; i++)
        if (o->deny[i] == (va & ~0xfffull))
            return 1;
    return 0;
}

/* --deny: a present writable mapping of the page must stay as it is. Mapping it in the first
 * place is allowed (the guest could never fault it in otherwise), and so is anything once it
 * is not writable. */
static int decide(const struct opts *o, const ptmon_change *c)
{
    /* (a change found at a commit, vCPU none, has happened: ptmon would ignore a veto) */
    if (c->reverted || c->vcpu == PTMON_VCPU_NONE || !is_denied_va(o, c->va))
        return PTMON_ACTION_ALLOW;
    if (c->before.status == PTMON_WALK_OK && (c->before.rights & PTMON_RIGHT_W))
        return PTMON_ACTION_DENY;
    return PTMON_ACTION_ALLOW;
}

static int on_change(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    struct app *app = ctx;
    struct timespec ts;
    int action = decide(&app->o, c);
    (void)pm;
    (void)w;
    clock_gettime(CLOCK_REALTIME, &ts);
    change_print(stdout, app->o.json, c, action, (long long)ts.tv_sec, ts.tv_nsec / 1000);
    if (action == PTMON_ACTION_DENY) {
        app->win.denied_changes++;
        app->all.denied_changes++;
    }
    fflush(stdout);
    return action;
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

static void window_add(struct window *w, uint64_t ns)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 1024;
        uint32_t *p = realloc(w->ns, cap * sizeof(*p));
        if (!p)
            return; /* the percentiles then cover fewer events; the count stays exact */
        w->ns = p;
        w->cap = cap;
    }
    w->ns[w->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* Every request answered: its handling time (writes and denies only: the events ptmon's engine
 * works on). */
static void on_event(void *ctx, enum ptmon_xen_event_kind kind, uint32_t vcpu, uint64_t gfn,
                     uint64_t ns)
{
    struct app *app = ctx;
    (void)vcpu;
    (void)gfn;
    if (kind != PTMON_XEN_EV_WRITE && kind != PTMON_XEN_EV_DENIED && kind != PTMON_XEN_EV_RETRY)
        return;
    app->win.total++;
    app->all.total++;
    window_add(&app->win, ns);
    window_add(&app->all, ns);
}

static void on_frame(void *ctx, uint64_t gfn, int restricted, const char *was)
{
    struct app *app = ctx;
    if (restricted)
        app->restricted_frames++;
    if (restricted && app->state) { /* flushed at once: a kill leaves it up to date */
        fprintf(app->state, "0x%" PRIx64 " %s\n", gfn, was);
        fflush(app->state);
    }
    if (app->o.json)
        printf("{\"v\":%d,\"event\":\"%s\",\"gfn\":\"0x%" PRIx64 "\",\"was\":\"%s\"}\n",
               CHANGE_FORMAT_VERSION, restricted ? "restrict" : "release", gfn, was);
    else
        printf("frame 0x%" PRIx64 " %s (was %s)\n", gfn, restricted ? "restricted" : "released",
               was);
    fflush(stdout);
}

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_report(int sig)
{
    (void)sig;
    report_requested = 1;
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
    stack_t alt;
    static const int stops[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2, SIGALRM, SIGXFSZ};
    static const int fatals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++)
        sigaction(stops[i], &sa, NULL);
    sa.sa_handler = on_report;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    alt.ss_size = 256 * 1024;
    alt.ss_sp = malloc(alt.ss_size); /* lives as long as the process */
    alt.ss_flags = 0;
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND;
    if (alt.ss_sp && sigaltstack(&alt, NULL) == 0)
        sa.sa_flags |= SA_ONSTACK;
    for (size_t i = 0; i < sizeof(fatals) / sizeof(fatals[0]); i++)
        sigaction(fatals[i], &sa, NULL);
}

/* ---- reports ------------------------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank percentile @p p (0..100) of the sorted @p v, in microseconds. */
static double percentile_us(const uint32_t *v, size_t n, double p)
{
    size_t rank;
    if (!n)
        return 0;
    rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    return v[rank > n ? n - 1 : rank - 1] / 1000.0;
}

/* ptmon_check's finding count and the event statistics of @p w, as one line on stdout (JSON:
 * {"v":1,"event":"check","when":..,"findings":N,...}) and one on stderr. */
static void report(struct app *app, ptmon *pm, struct window *w, const char *when)
{
    ptmon_finding f[4];
    ptmon_stats st = {0};
    int n = ptmon_check(pm, f, 4);
    double secs = now_s() - w->start;
    double p50, p99, max;

    (void)ptmon_get_stats(pm, &st);
    if (w->n)
        qsort(w->ns, w->n, sizeof(*w->ns), cmp_u32);
    p50 = percentile_us(w->ns, w->n, 50);
    p99 = percentile_us(w->ns, w->n, 99);
    max = w->n ? w->ns[w->n - 1] / 1000.0 : 0;
    if (app->o.json)
        printf("{\"v\":%d,\"event\":\"check\",\"when\":\"%s\",\"findings\":%d,\"watches\":%" PRIu64
               ",\"tables\":%" PRIu64 ",\"frames\":%" PRIu64 ",\"events\":%" PRIu64
               ",\"denied_changes\":%" PRIu64 ",\"seconds\":%.3f,\"events_per_s\":%.1f,"
               "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
               CHANGE_FORMAT_VERSION, when, n, st.watches, st.tables, st.frames, w->total,
               w->denied_changes, secs, secs > 0 ? (double)w->total / secs : 0.0, p50, p99, max);
    else
        printf("check (%s): %d findings; %" PRIu64 " events in %.3f s, p50 %.1f us, p99 %.1f us\n",
               when, n, w->total, secs, p50, p99);
    fflush(stdout);
    fprintf(stderr,
            "ptmond: ptmon_check (%s): %d findings; %" PRIu64 " events, p50 %.1f us, p99 %.1f "
            "us, max %.1f us\n",
            when, n, w->total, p50, p99, max);
    for (int i = 0; i < n && i < 4; i++)
        fprintf(stderr, "ptmond:   %s\n", f[i].text);
    w->n = 0;
    w->total = 0;
    w->denied_changes = 0;
    w->start = now_s();
}

static void print_stats(struct app *app, ptmon_xen *x, ptmon *pm)
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
                " events (%" PRIu64 " irrelevant, %" PRIu64 " denied), %" PRIu64 " callbacks\n",
                ps.watches, ps.tables, ps.events, ps.events_irrelevant, ps.events_denied,
                ps.callbacks);
    fprintf(stderr, "ptmond: %" PRIu64 " frames restricted in all, %" PRIu64 " changes denied\n",
            app->restricted_frames, app->all.denied_changes);
}

/* ---- the run ------------------------------------------------------------------------------ */

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

static int trace_write(void *ctx, const void *data, size_t len)
{
    struct app *app = ctx;
    if (fwrite(data, 1, len, app->trace) != len) {
        app->trace_failed = 1;
        return -1;
    }
    app->trace_bytes += len;
    return 0;
}

/* The mechanism: mem_access, or the ioreq server only when asked for (and never silently). */
static int attach(struct app *app, ptmon_xen **x)
{
    ptmon_xen_config cfg = PTMON_XEN_CONFIG_INIT;
    int rc;

    cfg.domid = app->o.domid;
    cfg.mechanism = app->o.experimental_ioreq ? PTMON_XEN_MECH_IOREQ : PTMON_XEN_MECH_MEM_ACCESS;
    rc = ptmon_xen_attach(&cfg, x);
    if (rc == PTMON_ENOTSUP && !app->o.experimental_ioreq) {
        fprintf(stderr,
                "ptmond: domain %u: this host has no mem_access (operation not supported): Xen\n"
                "        offers it with Intel VMX and EPT only. The ioreq-server mechanism that\n"
                "        remains is experimental and not used unless asked for: on AMD NPT the\n"
                "        CPU's own page walks through a trapped table go to Xen's MMIO emulator\n"
                "        and can crash the guest, and Xen 4.17 performs locked read-modify-writes\n"
                "        on such frames non-atomically (tests/xen-lab/README.md). Pass\n"
                "        --experimental-ioreq to use it anyway (1-vCPU guests only).\n",
                app->o.domid);
        return rc;
    }
    if (rc == PTMON_EBUSY) {
        fprintf(stderr,
                "ptmond: attach to domain %u: another monitor holds its vm_event ring. If no\n"
                "        agent is running (an earlier ptmond that was killed), recover with\n"
                "        ptmond --domain %u --reset [--state FILE]\n",
                app->o.domid, app->o.domid);
        return rc;
    }
    if (rc < 0) {
        fprintf(stderr, "ptmond: attach to domain %u: %s\n", app->o.domid, ptmon_strerror(rc));
        return rc;
    }
    if (ptmon_xen_mechanism(*x) == PTMON_XEN_MECH_IOREQ && ptmon_xen_vcpus(*x) > 1) {
        fprintf(stderr,
                "ptmond: domain %u has %u vCPUs: the ioreq mechanism loses the atomicity of\n"
                "        locked page-table updates between vCPUs; refused\n",
                app->o.domid, ptmon_xen_vcpus(*x));
        ptmon_xen_free(*x);
        *x = NULL;
        return PTMON_ENOTSUP;
    }
    fprintf(stderr, "ptmond: domain %u, %u vCPUs, mechanism %s\n", app->o.domid,
            ptmon_xen_vcpus(*x),
            ptmon_xen_mechanism(*x) == PTMON_XEN_MECH_MEM_ACCESS ? "mem_access"
                                                                 : "ioreq (experimental)");
    return 0;
}

/* The paging ptmon uses, and where the width came from: it decides which entries are
 * reserved-bit faults rather than translations. */
static void say_paging(ptmon_xen *x, const ptmon *pm)
{
    const ptmon_glue *g = ptmon_xen_glue(x);
    ptmon_paging pg = ptmon_get_paging(pm);
    unsigned bits;
    int rc = g->get_maxphyaddr(g->backend, &bits);

    if (rc == 0)
        fprintf(stderr, "ptmond: guest paging %s, MAXPHYADDR %u (the domain's CPUID policy)\n",
                ptmon_paging_mode_name(pg.mode), pg.maxphyaddr);
    else
        fprintf(stderr,
                "ptmond: guest paging %s, MAXPHYADDR %u assumed: the domain's CPUID policy cannot "
                "be read (%s); entries with address bits above the real width are taken as "
                "present\n",
                ptmon_paging_mode_name(pg.mode), pg.maxphyaddr, ptmon_strerror(rc));
}

static int create_instance(struct app *app, ptmon_xen *x, ptmon **pm, const char *note)
{
    ptmon_config cfg = PTMON_CONFIG_INIT;
    ptmon_trace_sink sink = {PTMON_TRACE_SINK_VERSION, trace_write, app, note};

    if (app->o.record) {
        app->trace = fopen(app->o.record, "wb");
        if (!app->trace) {
            fprintf(stderr, "ptmond: --record %s: %s\n", app->o.record, strerror(errno));
            return PTMON_EIO;
        }
        cfg.trace = &sink;
    }
    return ptmon_create(ptmon_xen_glue(x), &cfg, pm);
}

static int run(struct app *app, const char *note)
{
    ptmon_xen *x = NULL;
    ptmon *pm = NULL;
    double start = now_s(), deadline = app->o.duration > 0 ? start + app->o.duration : 0;
    int rc;

    if (attach(app, &x) < 0)
        return 1;
    if (app->o.state && !(app->state = fopen(app->o.state, "w"))) {
        fprintf(stderr, "ptmond: --state %s: %s\n", app->o.state, strerror(errno));
        ptmon_xen_free(x);
        return 1;
    }
    emergency_target = x;
    ptmon_xen_on_event(x, on_event, app);
    ptmon_xen_on_frame(x, on_frame, app);
    rc = create_instance(app, x, &pm, note);
    if (rc == 0) {
        say_paging(x, pm);
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
    app->win.start = app->all.start = now_s();
    while (rc == 0 && !stop_requested && (deadline == 0 || now_s() < deadline)) {
        int n = ptmon_xen_poll(x, 100);
        if (n < 0) {
            fprintf(stderr, "ptmond: %s\n", n == PTMON_ENOENT ? "domain gone" : ptmon_strerror(n));
            break;
        }
        if (report_requested) {
            report_requested = 0;
            report(app, pm, &app->win, "signal");
        }
        if (ferror(stdout)) { /* the reader went away (EPIPE): stop cleanly */
            fprintf(stderr, "ptmond: output closed; stopping\n");
            break;
        }
    }
    if (rc < 0)
        fprintf(stderr, "ptmond: %s\n", ptmon_strerror(rc));
    if (pm && rc == 0)
        report(app, pm, &app->all, "detach");
    {
        int drc = ptmon_xen_detach(x);
        if (drc < 0)
            fprintf(stderr, "ptmond: detach: %s\n", ptmon_strerror(drc));
        if (app->state) { /* every frame has its rights back: nothing left for a --reset */
            fclose(app->state);
            app->state = NULL;
            if (drc == 0)
                remove(app->o.state);
        }
    }
    emergency_target = NULL;
    print_stats(app, x, pm);
    ptmon_destroy(pm);
    ptmon_xen_free(x);
    if (app->trace) {
        if (fclose(app->trace) != 0)
            app->trace_failed = 1;
        fprintf(stderr, "ptmond: trace %s: %" PRIu64 " bytes%s\n", app->o.record, app->trace_bytes,
                app->trace_failed ? " (WRITE FAILED: incomplete)" : "");
    }
    return rc < 0 || app->trace_failed ? 1 : 0;
}

/* A Xen access name as ptmond writes it ("was" of a restrict line) -> the rights to give back. */
static uint32_t rights_of_name(const char *name)
{
    static const char *const names[] = {"n", "r", "w", "rw", "x", "rx", "wx", "rwx"};
    for (uint32_t a = 0; a < 8; a++)
        if (!strcmp(name, names[a]))
            return a;        /* XENMEM_access_* order: the bits are R, W, X */
    return PTMON_ACCESS_RWX; /* rx2rw, n2rwx, default: full rights */
}

/* The frames of a --state file, the first rights recorded for each (its original). A line that
 * does not parse is an error: restoring part of the list and then deleting the file would lose
 * the rest. @return 0, or -1 with errno set. */
static int read_state(const char *path, uint64_t **gfns, uint32_t **rights, size_t *n)
{
    FILE *f = fopen(path, "r");
    char line[128], name[16];
    uint64_t gfn;
    size_t cap = 0;
    int rc = 0;

    *gfns = NULL;
    *rights = NULL;
    *n = 0;
    if (!f)
        return -1;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        size_t i = 0;
        if (sscanf(line, "%" SCNx64 " %15s", &gfn, name) != 2) {
            errno = EINVAL;
            rc = -1;
            break;
        }
        while (i < *n && (*gfns)[i] != gfn)
            i++;
        if (i < *n)
            continue;
        if (*n == cap) {
            size_t c = cap ? 2 * cap : 64;
            uint64_t *g = realloc(*gfns, c * sizeof(*g));
            uint32_t *r = g ? realloc(*rights, c * sizeof(*r)) : NULL;
            if (g)
                *gfns = g;
            if (!r) {
                errno = ENOMEM;
                rc = -1;
                break;
            }
            *rights = r;
            cap = c;
        }
        (*gfns)[*n] = gfn;
        (*rights)[(*n)++] = rights_of_name(name);
    }
    if (rc == 0 && ferror(f)) {
        errno = EIO;
        rc = -1;
    }
    fclose(f);
    if (rc < 0) {
        free(*gfns);
        free(*rights);
        *gfns = NULL;
        *rights = NULL;
        *n = 0;
    }
    return rc;
}

/* ptmond --reset: recover the domain from a monitor that died. */
static int run_reset(struct app *app)
{
    ptmon_xen_reset_result res;
    uint64_t *gfns = NULL, none = 0;
    uint32_t *rights = NULL, no_rights = 0;
    size_t n = 0;
    int rc;

    if (app->o.state && read_state(app->o.state, &gfns, &rights, &n) < 0) {
        fprintf(stderr, "ptmond: --state %s: %s\n", app->o.state, strerror(errno));
        return 1;
    }
    /* an empty state file: the run died before restricting anything, there is nothing to scan */
    rc = ptmon_xen_reset(app->o.domid,
                         gfns           ? gfns
                         : app->o.state ? &none
                                        : NULL,
                         rights ? rights : &no_rights, n, &res);
    free(gfns);
    free(rights);
    if (rc < 0) {
        fprintf(stderr, "ptmond: reset of domain %u: %s\n", app->o.domid, ptmon_strerror(rc));
        return 1;
    }
    fprintf(stderr,
            "ptmond: reset domain %u: %s; %u vCPUs answered; %" PRIu64 " of %" PRIu64
            " frames checked given their rights back (%s), %" PRIu64 " failed\n",
            app->o.domid, res.stale_monitor ? "a stale monitor ring freed" : "no monitor ring",
            res.vcpus, res.frames_restored, res.frames_checked,
            app->o.state ? "those of the state file" : "low RAM scanned", res.frames_failed);
    if (app->o.json)
        printf("{\"v\":%d,\"event\":\"reset\",\"stale_monitor\":%d,\"vcpus\":%u,"
               "\"frames_checked\":%" PRIu64 ",\"frames_restored\":%" PRIu64
               ",\"frames_failed\":%" PRIu64 "}\n",
               CHANGE_FORMAT_VERSION, res.stale_monitor, res.vcpus, res.frames_checked,
               res.frames_restored, res.frames_failed);
    if (res.domain_paused)
        fprintf(stderr,
                "ptmond: domain %u is paused besides (a ptmond killed while placing its "
                "watches pauses it): xl unpause %u if that is not wanted\n",
                app->o.domid, app->o.domid);
    if (app->o.state && !res.frames_failed)
        remove(app->o.state);
    return res.frames_failed ? 1 : 0;
}

/* The command line, for the trace's header. */
static char *join_args(int argc, char **argv)
{
    size_t len = 1;
    char *s;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    s = malloc(len);
    if (!s)
        return NULL;
    s[0] = 0;
    for (int i = 0; i < argc; i++) {
        strcat(s, argv[i]);
        if (i + 1 < argc)
            strcat(s, " ");
    }
    return s;
}

int main(int argc, char **argv)
{
    struct app app;
    char *note;
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
    if (app.o.reset) {
        rc = run_reset(&app);
        free(app.o.vas);
        return rc;
    }
    note = join_args(argc, argv);
    rc = run(&app, note);
    free(note);
    free(app.o.vas);
    free(app.win.ns);
    free(app.all.ns);
    return rc;
}
