/*
 * bench.c — ptmon's speed and memory on the fake guest, workloads W1–W10 of the benchmark issue,
 * W11–W12 of the correctness issue (one waiting watch).
 *
 * Every event workload runs twice on identical guests: once with ptmon handling the events and
 * once with an empty handler (the fake guest's own delivery cost); ptmon's share is the
 * difference. Times are medians over repetitions; memory is what ptmon allocated through the
 * glue allocator (the fake counts every byte); glue calls come from the fake's counters.
 * Instruction counts: bench/callgrind.sh runs each workload under callgrind, collecting only
 * inside ptmon's entry points.
 *
 *   ptmon_bench [--smoke] [--reps N] [--only Wn] [--json FILE]
 */
#define _POSIX_C_SOURCE 200809L
#include <ptmon/fake.h>
#include <ptmon/ptmon.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KIB      1024ull
#define MIB      (1024 * KIB)
#define RWU      (PTMON_PTE_RW | PTMON_PTE_US)
#define BASE_VA  0x0000100000000000ull
#define MAX_REPS 15

struct opts {
    int smoke;
    int reps;
    const char *only;
    const char *json;
};

struct result {
    const char *id, *mode, *what, *unit;
    double value;  /* ptmon's share, in unit */
    double fake;   /* the fake guest's own cost for the same operations, in unit (or -1) */
    double target; /* from the issue; 0 = none */
    double extra;  /* workload-specific second number (bytes per VA, allocations, ...) */
    const char *extra_unit;
    double extra_target;
    double ops; /* operations the ptmon figure is divided by (for callgrind.sh) */
};

struct bench {
    struct opts o;
    struct result results[64];
    size_t nresults;
};

/* ---- helpers ----------------------------------------------------------------------------- */

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench: %s: %s\n", what, ptmon_strerror(rc));
    exit(1);
}

static void ok(const char *what, int rc)
{
    if (rc < 0)
        die(what, rc);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* xorshift64*: reproducible random numbers, per caller */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static int record(struct bench *b, struct result r)
{
    if (b->nresults < sizeof(b->results) / sizeof(b->results[0]))
        b->results[b->nresults++] = r;
    return 0;
}

/* ---- a guest ------------------------------------------------------------------------------- */

struct guest {
    ptmon_fake *fake;
    ptmon *pm;
    uint64_t cr3;
    uint64_t callbacks;
    enum ptmon_paging_mode mode;
};

static int deliver(void *ctx, const ptmon_mem_event *ev)
{
    return ptmon_handle_event(ctx, ev);
}

/* The baseline: the fake's own delivery, with nothing behind it. */
static int empty_handler(void *ctx, const ptmon_mem_event *ev)
{
    (void)ctx;
    (void)ev;
    return PTMON_ACTION_ALLOW;
}

static int count_cb(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    (void)pm;
    (void)w;
    (void)c;
    ((struct guest *)ctx)->callbacks++;
    return 0;
}

static void guest_init(struct guest *g, enum ptmon_paging_mode mode, uint64_t ram)
{
    ptmon_fake_config fc = PTMON_FAKE_CONFIG_INIT;
    ptmon_config pc = PTMON_CONFIG_INIT;

    memset(g, 0, sizeof(*g));
    g->mode = mode;
    fc.ram_size = ram;
    fc.paging.mode = mode;
    fc.paging.flags = mode == PTMON_MODE_32BIT ? PTMON_PAGING_PSE : PTMON_PAGING_NXE;
    fc.paging.maxphyaddr = mode == PTMON_MODE_32BIT ? 40 : 46;
    ok("fake", ptmon_fake_create(&fc, &g->fake));
    pc.paging = fc.paging;
    ok("ptmon", ptmon_create(ptmon_fake_glue(g->fake), &pc, &g->pm));
    ptmon_fake_set_handler(g->fake, deliver, g->pm);
    ok("root", ptmon_fake_new_root(g->fake, &g->cr3));
}

static void guest_fini(struct guest *g)
{
    ptmon_destroy(g->pm);
    ptmon_fake_destroy(g->fake);
}

static uint64_t guest_frame(struct guest *g)
{
    uint64_t gpa;
    ok("frame", ptmon_fake_alloc_frame(g->fake, &gpa));
    return gpa;
}

static uint64_t base_va(enum ptmon_paging_mode mode)
{
    return mode == PTMON_MODE_4LEVEL || mode == PTMON_MODE_5LEVEL ? BASE_VA : 0x40000000ull;
}

static unsigned entry_size(enum ptmon_paging_mode mode)
{
    return mode == PTMON_MODE_32BIT ? 4 : 8;
}

/* Map n contiguous 4K pages from va, all to one data frame (the frame does not matter). */
static void map_range(struct guest *g, uint64_t cr3, uint64_t va, uint64_t n)
{
    uint64_t f = guest_frame(g);
    for (uint64_t i = 0; i < n; i++)
        ok("map", ptmon_fake_map(g->fake, cr3, va + i * 4096, f, 4096, RWU));
}

static struct ptmon_watch **watch_range(struct guest *g, uint64_t cr3, uint64_t va, uint64_t n)
{
    struct ptmon_watch **w = malloc(n * sizeof(*w));
    if (!w)
        die("malloc", PTMON_ENOMEM);
    for (uint64_t i = 0; i < n; i++)
        ok("watch", ptmon_watch(g->pm, cr3, va + i * 4096, 0, count_cb, g, &w[i]));
    return w;
}

static uint64_t pte_gpa(struct guest *g, uint64_t va)
{
    uint64_t gpa;
    ok("entry", ptmon_fake_entry_gpa(g->fake, g->cr3, va, 1, &gpa));
    return gpa;
}

static void check_clean(struct guest *g, const char *where)
{
    ptmon_finding f;
    int n = ptmon_check(g->pm, &f, 1);
    if (n != 0) {
        fprintf(stderr, "bench: %s: ptmon_check: %d findings (%s)\n", where, n,
                n > 0 ? f.text : ptmon_strerror(n));
        exit(1);
    }
}

/* ---- W1, W7, W9: placement, memory, teardown ------------------------------------------------ */

static void w1_w7(struct bench *b)
{
    uint64_t n = b->o.smoke ? 2000 : 100000;
    double t_watch[MAX_REPS], t_unwatch[MAX_REPS];
    double bytes = 0, sets = 0, reads = 0, left = 0;

    for (int r = 0; r < b->o.reps; r++) {
        struct guest g;
        guest_init(&g, PTMON_MODE_4LEVEL, 256 * MIB);
        map_range(&g, g.cr3, BASE_VA, n);
        ptmon_fake_reset_calls(g.fake);
        uint64_t before = ptmon_fake_stat(g.fake, PTMON_FAKE_STAT_BYTES_ALLOCATED);
        double t0 = now_ns();
        struct ptmon_watch **w = watch_range(&g, g.cr3, BASE_VA, n);
        t_watch[r] = (now_ns() - t0) / (double)n;
        bytes =
            (double)(ptmon_fake_stat(g.fake, PTMON_FAKE_STAT_BYTES_ALLOCATED) - before) / (double)n;
        sets = (double)ptmon_fake_calls(g.fake, PTMON_FAKE_OP_SET_ACCESS) / (double)n;
        reads = (double)ptmon_fake_calls(g.fake, PTMON_FAKE_OP_READ_GPA) / (double)n;
        if (r == 0)
            check_clean(&g, "W1");
        t0 = now_ns();
        for (uint64_t i = 0; i < n; i++)
            ok("unwatch", ptmon_unwatch(&w[i]));
        ok("commit", ptmon_commit(g.pm));
        t_unwatch[r] = (now_ns() - t0) / (double)n;
        left = (double)ptmon_fake_count_write_protected(g.fake);
        free(w);
        guest_fini(&g);
    }
    record(b, (struct result){"W1", "4-level", "watch 100k contiguous 4K VAs", "ns/watch",
                              median(t_watch, b->o.reps), -1, 150, bytes, "B/VA", 48, (double)n});
    record(b, (struct result){"W1", "4-level", "  glue calls per watch: set_access", "calls", sets,
                              -1, 0, reads, "read_gpa", 0, 0});
    record(b, (struct result){"W7", "4-level", "unwatch + commit all 100k watches", "ns/watch",
                              median(t_unwatch, b->o.reps), -1, 40, left, "frames left", 0,
                              (double)n});
}

static void w9(struct bench *b)
{
    enum ptmon_paging_mode modes[2] = {PTMON_MODE_4LEVEL, PTMON_MODE_5LEVEL};
    for (int m = 0; m < 2; m++) {
        struct guest g;
        guest_init(&g, modes[m], 64 * MIB);
        map_range(&g, g.cr3, BASE_VA, 1);
        ptmon_fake_reset_calls(g.fake);
        uint64_t before = ptmon_fake_stat(g.fake, PTMON_FAKE_STAT_BYTES_ALLOCATED);
        struct ptmon_watch **w = watch_range(&g, g.cr3, BASE_VA, 1);
        double bytes = (double)(ptmon_fake_stat(g.fake, PTMON_FAKE_STAT_BYTES_ALLOCATED) - before);
        uint64_t calls = 0;
        for (int op = 0; op < PTMON_FAKE_OP_COUNT; op++)
            calls += ptmon_fake_calls(g.fake, (enum ptmon_fake_op)op);
        record(b, (struct result){"W9", m ? "5-level" : "4-level", "one isolated VA", "bytes",
                                  bytes, -1, 1024, (double)calls, "glue calls", 0, 0});
        free(w);
        guest_fini(&g);
    }
}

/* ---- W8: a million VAs over 64 address spaces ---------------------------------------------- */

static void w8(struct bench *b)
{
    uint64_t spaces = 64, per = b->o.smoke ? 200 : 1000000 / 64;
    struct guest g;
    uint64_t *cr3 = malloc(spaces * sizeof(*cr3));
    struct ptmon_watch ***w = malloc(spaces * sizeof(*w));

    if (!cr3 || !w)
        die("malloc", PTMON_ENOMEM);
    guest_init(&g, PTMON_MODE_4LEVEL, 1024 * MIB);
    for (uint64_t s = 0; s < spaces; s++) {
        ok("root", ptmon_fake_new_root(g.fake, &cr3[s]));
        map_range(&g, cr3[s], BASE_VA, per);
    }
    uint64_t before = ptmon_fake_stat(g.fake, PTMON_FAKE_STAT_BYTES_ALLOCATED);
    double t0 = now_ns();
    for (uint64_t s = 0; s < spaces; s++)
        w[s] = watch_range(&g, cr3[s], BASE_VA, per);
    double secs = (now_ns() - t0) / 1e9;
    double mib = (double)(ptmon_fake_stat(g.fake, PTMON_FAKE_STAT_BYTES_ALLOCATED) - before) / MIB;
    check_clean(&g, "W8");
    record(b, (struct result){"W8", "4-level", "place 1M VAs over 64 address spaces", "s", secs, -1,
                              1, mib, "MiB", 64, 0});
    for (uint64_t s = 0; s < spaces; s++)
        free(w[s]);
    free(w);
    free(cr3);
    guest_fini(&g);
}

/* ---- event workloads: W2, W3, W4 (and W10's W3) ---------------------------------------------- */

enum event_kind { IRRELEVANT, REMAP, SWAP };

/* Run the same store sequence against ptmon and against the empty handler; ns per event. */
static void events(struct bench *b, const char *id, enum ptmon_paging_mode mode, enum event_kind k,
                   const char *what, double target)
{
    uint64_t nva = b->o.smoke ? 1024 : (k == IRRELEVANT ? 512 : 100000);
    uint64_t nev = b->o.smoke ? 20000 : 1000000;
    double t[2][MAX_REPS];
    double cb_per_event = 0;
    unsigned es = entry_size(mode);

    for (int with_ptmon = 0; with_ptmon < 2; with_ptmon++) {
        for (int r = 0; r < b->o.reps; r++) {
            struct guest g;
            uint64_t seed = 0x9e3779b97f4a7c15ull, va0 = base_va(mode);
            guest_init(&g, mode, 256 * MIB);
            map_range(&g, g.cr3, va0, nva);
            uint64_t f1 = guest_frame(&g), f2 = guest_frame(&g);
            struct ptmon_watch **w = watch_range(&g, g.cr3, va0, k == IRRELEVANT ? 1 : nva);
            uint64_t *gpas = malloc(nva * sizeof(*gpas));
            if (!gpas)
                die("malloc", PTMON_ENOMEM);
            for (uint64_t i = 0; i < nva; i++)
                gpas[i] = pte_gpa(&g, va0 + i * 4096);
            if (!with_ptmon) /* frames stay protected: the fake still delivers every store */
                ptmon_fake_set_handler(g.fake, empty_handler, NULL);
            /* every entry alternates between two frames, so that each store changes it */
            uint8_t *flip = calloc(nva, 1);
            if (!flip)
                die("malloc", PTMON_ENOMEM);
            g.callbacks = 0;
            uint64_t i = 0;
            double t0 = now_ns();
            for (uint64_t e = 0; e < nev; e++) {
                uint64_t value = 0;
                if (k == IRRELEVANT || k == REMAP) {
                    i = k == REMAP ? rnd(&seed) % nva : 1 + rnd(&seed) % (nva - 1);
                    flip[i] ^= 1; /* (IRRELEVANT: slot 0 is the watched one) */
                    value = (flip[i] ? f1 : f2) | RWU | PTMON_PTE_P;
                } else if (!(e & 1)) {
                    i = rnd(&seed) % nva; /* swap out: P clear, a swap slot in the address bits */
                    value = (e << 12) & 0xffffff000ull;
                } else {
                    value = f1 | RWU | PTMON_PTE_P; /* swap the same entry back in */
                }
                ok("store", ptmon_fake_store_int(g.fake, 0, gpas[i], value, es));
            }
            t[with_ptmon][r] = (now_ns() - t0) / (double)nev;
            if (with_ptmon) {
                cb_per_event = (double)g.callbacks / (double)nev;
                if (r == 0)
                    check_clean(&g, id);
            }
            free(flip);
            free(gpas);
            free(w);
            guest_fini(&g);
        }
    }
    double fake = median(t[0], b->o.reps), total = median(t[1], b->o.reps);
    record(b, (struct result){id, ptmon_paging_mode_name(mode), what, "ns/event", total - fake,
                              fake, target, cb_per_event, "callbacks/event", 0, (double)nev});
}

/* ---- W11, W12: irrelevant writes while one watch waits ----------------------------------- */

/*
 * One watch whose placement stays incomplete must not make every event cost O(watches) (issue
 * 13, V4). Layout: @p nw watches on contiguous VAs of address space A, and a watch X in
 * address space B whose PDE points at A's first page table. B's PDE is then re-pointed at a new
 * table while the table cap (max_tables, exactly what the layout needs) is reached: X cannot be
 * placed and waits, for good. Measured: writes to unwatched PTEs of a watched table, as in W2.
 */
static void waiting(struct bench *b, const char *id, uint64_t nw, const char *what)
{
    const uint64_t extra = 64, va0 = BASE_VA;
    uint64_t nev = b->o.smoke ? 20000 : 1000000;
    double t[2][MAX_REPS];

    for (int with_ptmon = 0; with_ptmon < 2; with_ptmon++) {
        for (int r = 0; r < b->o.reps; r++) {
            struct guest g;
            ptmon_config pc = PTMON_CONFIG_INIT;
            ptmon_stats st;
            ptmon_finding f;
            struct ptmon_watch *x = NULL, *x0 = NULL;
            uint64_t cr3_b, pt0, seed = 0x9e3779b97f4a7c15ull, table2;
            guest_init(&g, PTMON_MODE_4LEVEL, 512 * MIB);
            map_range(&g, g.cr3, va0, nw + extra);
            ok("root B", ptmon_fake_new_root(g.fake, &cr3_b));
            map_range(&g, cr3_b, va0 + 2 * MIB, 1); /* B's upper tables */
            pt0 = pte_gpa(&g, va0) & ~0xfffull;
            ok("link", ptmon_fake_link(g.fake, cr3_b, va0, 2, pt0, RWU));
            /* a dry run counts the tables the layout needs; the real instance gets that cap */
            struct ptmon_watch **w = watch_range(&g, g.cr3, va0, nw);
            ok("watch X", ptmon_watch(g.pm, cr3_b, va0 + 5 * 4096, 0, count_cb, &g, &x0));
            ok("stats", ptmon_get_stats(g.pm, &st));
            free(w);
            ptmon_destroy(g.pm);
            pc.paging = ptmon_fake_get_config(g.fake)->paging;
            pc.max_tables = st.tables;
            ok("ptmon", ptmon_create(ptmon_fake_glue(g.fake), &pc, &g.pm));
            ptmon_fake_set_handler(g.fake, deliver, g.pm);
            w = watch_range(&g, g.cr3, va0, nw);
            ok("watch X", ptmon_watch(g.pm, cr3_b, va0 + 5 * 4096, 0, count_cb, &g, &x));
            table2 = guest_frame(&g);
            ok("repoint", ptmon_fake_set_entry(g.fake, cr3_b, va0, 2, table2 | RWU | PTMON_PTE_P));
            if (ptmon_check(g.pm, &f, 1) != 1 || f.kind != PTMON_FINDING_STALE_RECORD)
                die("W11: the watch in B does not wait", PTMON_EIO);
            uint64_t *gpas = malloc(extra * sizeof(*gpas));
            if (!gpas)
                die("malloc", PTMON_ENOMEM);
            for (uint64_t i = 0; i < extra; i++)
                gpas[i] = pte_gpa(&g, va0 + (nw + i) * 4096);
            if (!with_ptmon)
                ptmon_fake_set_handler(g.fake, empty_handler, NULL);
            uint64_t f1 = guest_frame(&g);
            double t0 = now_ns();
            for (uint64_t e = 0; e < nev; e++) {
                uint64_t i = rnd(&seed) % extra;
                uint64_t value = (e & 1 ? f1 : f1 + 4096) | RWU | PTMON_PTE_P;
                ok("store", ptmon_fake_store_int(g.fake, 0, gpas[i], value, 8));
            }
            t[with_ptmon][r] = (now_ns() - t0) / (double)nev;
            free(gpas);
            free(w);
            guest_fini(&g);
        }
    }
    double fake = median(t[0], b->o.reps), total = median(t[1], b->o.reps);
    record(b, (struct result){id, "4-level", what, "ns/event", total - fake, fake, 0, -1, NULL, 0,
                              (double)nev});
}

/* ---- W5 (and W10's W5), W6: upper-level changes ------------------------------------------- */

/* A PDE switched between two page tables, 512 watched VAs under it. */
static void w5(struct bench *b, const char *id, enum ptmon_paging_mode mode)
{
    uint64_t nev = b->o.smoke ? 200 : 20000;
    unsigned es = entry_size(mode), per_table = 4096 / es;
    double t[2][MAX_REPS], allocs = 0, cbs = 0;

    for (int with_ptmon = 0; with_ptmon < 2; with_ptmon++) {
        for (int r = 0; r < b->o.reps; r++) {
            struct guest g;
            uint64_t va0 = base_va(mode), pde_gpa, pde_a, pt_b = 0, fb;
            guest_init(&g, mode, 256 * MIB);
            map_range(&g, g.cr3, va0, 512);
            ok("pde", ptmon_fake_entry_gpa(g.fake, g.cr3, va0, 2, &pde_gpa));
            ok("pde", ptmon_fake_get_entry(g.fake, g.cr3, va0, 2, &pde_a));
            /* table B: the same 512 (or 1024) slots mapping another frame */
            pt_b = guest_frame(&g);
            fb = guest_frame(&g);
            for (unsigned i = 0; i < per_table; i++) {
                uint64_t e = fb | RWU | PTMON_PTE_P;
                ok("poke", ptmon_fake_poke(g.fake, pt_b + i * es, &e, es));
            }
            uint64_t pde_b = (pde_a & 0xfff) | pt_b;
            struct ptmon_watch **w = watch_range(&g, g.cr3, va0, 512);
            if (!with_ptmon)
                ptmon_fake_set_handler(g.fake, empty_handler, NULL);
            uint64_t a0 = ptmon_fake_calls(g.fake, PTMON_FAKE_OP_ALLOC);
            g.callbacks = 0;
            double t0 = now_ns();
            for (uint64_t e = 0; e < nev; e++)
                ok("store", ptmon_fake_store_int(g.fake, 0, pde_gpa, (e & 1) ? pde_a : pde_b, es));
            t[with_ptmon][r] = (now_ns() - t0) / (double)nev;
            if (with_ptmon) {
                allocs = (double)(ptmon_fake_calls(g.fake, PTMON_FAKE_OP_ALLOC) - a0) / (double)nev;
                cbs = (double)g.callbacks / (double)nev;
                if (r == 0)
                    check_clean(&g, id);
            }
            free(w);
            guest_fini(&g);
        }
    }
    double fake = median(t[0], b->o.reps), total = median(t[1], b->o.reps);
    (void)cbs;
    record(b, (struct result){id, ptmon_paging_mode_name(mode),
                              "remap a PDE to a new table, 512 VAs watched below", "us/event",
                              (total - fake) / 1000, fake / 1000, 15, allocs, "allocs/event", 2,
                              (double)nev});
}

/* Split a 2M page into a table of 512 4K pages and merge it back, 512 watches. */
static void w6(struct bench *b)
{
    uint64_t ncycles = b->o.smoke ? 100 : 10000;
    double t[2][MAX_REPS];

    for (int with_ptmon = 0; with_ptmon < 2; with_ptmon++) {
        for (int r = 0; r < b->o.reps; r++) {
            struct guest g;
            uint64_t va0 = BASE_VA, pde_gpa, large, table;
            guest_init(&g, PTMON_MODE_4LEVEL, 256 * MIB);
            ok("map", ptmon_fake_map(g.fake, g.cr3, va0, 16 * MIB, 2 * MIB, RWU));
            ok("pde", ptmon_fake_entry_gpa(g.fake, g.cr3, va0, 2, &pde_gpa));
            ok("pde", ptmon_fake_get_entry(g.fake, g.cr3, va0, 2, &large));
            ok("split", ptmon_fake_split(g.fake, g.cr3, va0, 0, &table));
            uint64_t split = table | RWU | PTMON_PTE_P | PTMON_PTE_A;
            ok("merge", ptmon_fake_set_entry(g.fake, g.cr3, va0, 2, large));
            struct ptmon_watch **w = watch_range(&g, g.cr3, va0, 512);
            if (!with_ptmon)
                ptmon_fake_set_handler(g.fake, empty_handler, NULL);
            double t0 = now_ns();
            for (uint64_t c = 0; c < ncycles; c++) {
                ok("split", ptmon_fake_store_int(g.fake, 0, pde_gpa, split, 8));
                ok("merge", ptmon_fake_store_int(g.fake, 0, pde_gpa, large, 8));
            }
            t[with_ptmon][r] = (now_ns() - t0) / (double)ncycles;
            if (with_ptmon && r == 0)
                check_clean(&g, "W6");
            free(w);
            guest_fini(&g);
        }
    }
    double fake = median(t[0], b->o.reps), total = median(t[1], b->o.reps);
    record(b, (struct result){"W6", "4-level", "split 2M into 512 x 4K and merge back, 512 watches",
                              "us/cycle", (total - fake) / 1000, fake / 1000, 40, 0, NULL, 0,
                              (double)ncycles});
}

/* ---- output ---------------------------------------------------------------------------------- */

static void print_table(const struct bench *b)
{
    printf("\n%-4s %-8s %-52s %12s %12s %10s   %s\n", "id", "mode", "workload", "ptmon",
           "fake guest", "target", "also");
    for (size_t i = 0; i < b->nresults; i++) {
        const struct result *r = &b->results[i];
        char fake[32] = "-", target[32] = "-", also[64] = "";
        if (r->fake >= 0)
            snprintf(fake, sizeof(fake), "%.3g", r->fake);
        if (r->target > 0)
            snprintf(target, sizeof(target), "%s%.3g", r->value <= r->target ? "ok " : "MISS ",
                     r->target);
        if (r->extra_unit)
            snprintf(also, sizeof(also), "%.4g %s%s", r->extra, r->extra_unit,
                     r->extra_target > 0 ? (r->extra <= r->extra_target ? " (ok)" : " (MISS)")
                                         : "");
        printf("%-4s %-8s %-52s %8.4g %-3s %12s %10s   %s\n", r->id, r->mode, r->what, r->value,
               r->unit, fake, target, also);
    }
}

static void write_json(const struct bench *b, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fprintf(f, "{\n  \"ptmon\": \"%s\",\n  \"smoke\": %d,\n  \"reps\": %d,\n  \"results\": [\n",
            ptmon_version_string(), b->o.smoke, b->o.reps);
    for (size_t i = 0; i < b->nresults; i++) {
        const struct result *r = &b->results[i];
        fprintf(f,
                "    {\"id\": \"%s\", \"mode\": \"%s\", \"workload\": \"%s\", \"unit\": \"%s\", "
                "\"ptmon\": %.6g, \"fake\": %.6g, \"target\": %.6g, \"extra\": %.6g, "
                "\"extra_unit\": \"%s\", \"extra_target\": %.6g, \"ops\": %.0f}%s\n",
                r->id, r->mode, r->what, r->unit, r->value, r->fake, r->target, r->extra,
                r->extra_unit ? r->extra_unit : "", r->extra_target, r->ops,
                i + 1 < b->nresults ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
}

static int wanted(const struct bench *b, const char *id)
{
    return !b->o.only || strcmp(b->o.only, id) == 0;
}

int main(int argc, char **argv)
{
    static struct bench b;

    b.o.reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke"))
            b.o.smoke = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            b.o.reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            b.o.only = argv[++i];
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            b.o.json = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--smoke] [--reps N] [--only Wn] [--json FILE]\n", argv[0]);
            return 2;
        }
    }
    if (b.o.reps < 1 || b.o.reps > MAX_REPS)
        b.o.reps = 5;
    if (b.o.smoke)
        b.o.reps = 1;
    printf("ptmon %s benchmarks on the fake guest (PRE-write delivery, %s, median of %d)\n",
           ptmon_version_string(), b.o.smoke ? "smoke sizes" : "full sizes", b.o.reps);
    if (wanted(&b, "W1") || wanted(&b, "W7"))
        w1_w7(&b);
    if (wanted(&b, "W2"))
        events(&b, "W2", PTMON_MODE_4LEVEL, IRRELEVANT, "1M irrelevant writes (watched page)", 20);
    if (wanted(&b, "W3"))
        events(&b, "W3", PTMON_MODE_4LEVEL, REMAP, "1M leaf remaps of random watched PTEs", 100);
    if (wanted(&b, "W4"))
        events(&b, "W4", PTMON_MODE_4LEVEL, SWAP, "1M swap-out/in of random watched PTEs", 100);
    if (wanted(&b, "W5"))
        w5(&b, "W5", PTMON_MODE_4LEVEL);
    if (wanted(&b, "W6"))
        w6(&b);
    if (wanted(&b, "W8"))
        w8(&b);
    if (wanted(&b, "W9"))
        w9(&b);
    if (wanted(&b, "W10")) {
        events(&b, "W10", PTMON_MODE_PAE, REMAP, "W3 in PAE", 100);
        events(&b, "W10", PTMON_MODE_32BIT, REMAP, "W3 in 32-bit", 100);
        w5(&b, "W10", PTMON_MODE_PAE);
        w5(&b, "W10", PTMON_MODE_32BIT);
    }
    if (wanted(&b, "W11"))
        waiting(&b, "W11", 10000, "irrelevant write, 10k watches, one waiting");
    if (wanted(&b, "W12"))
        waiting(&b, "W12", 100000, "irrelevant write, 100k watches, one waiting");
    print_table(&b);
    if (b.o.json)
        write_json(&b, b.o.json);
    return 0;
}
