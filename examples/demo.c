/*
 * demo.c — ptmon watching a scripted guest session on the fake backend.
 *
 * Two processes (A and B) share a kernel half, as every OS does. ptmon watches A's heap, B's
 * buffer and a kernel page in both address spaces. The "guest" then swaps pages out and in,
 * changes rights, splits and merges a 2 MiB kernel page, moves A's heap to a new page table,
 * unmaps B's pages, and an attacker tries to remap the kernel page (a callback denies it).
 * Every callback is printed as one line; a summary follows.
 *
 * Run: sh tools/run.sh demo            (build/examples/ptmon_demo [--dot FILE] writes the
 *                                       watched tree as a Graphviz graph at the end)
 */
#include <ptmon/fake.h>
#include <ptmon/ptmon.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIB 1024ull
#define MIB (1024 * KIB)
#define RW  PTMON_PTE_RW
#define US  PTMON_PTE_US
#define NX  PTMON_PTE_NX

#define A_HEAP 0x00007f0000000000ull
#define B_BUF  0x0000000000400000ull
#define KPAGE  0xffff800000200000ull /* a 2 MiB kernel page */

struct demo {
    ptmon_fake *fake;
    ptmon *pm;
    uint64_t cr3_a, cr3_b;
    unsigned denials_wanted;
};

static void check(const char *what, int rc)
{
    if (rc < 0) {
        fprintf(stderr, "demo: %s: %s\n", what, ptmon_strerror(rc));
        exit(1);
    }
}

static void describe(const ptmon_translation *t, char *buf, size_t len)
{
    static const char *const sizes[] = {"?", "4K", "2M", "1G", "512G", "256T"};
    unsigned sz = t->page_size == 4 * KIB      ? 1
                  : t->page_size == 2 * MIB    ? 2
                  : t->page_size == 1ull << 30 ? 3
                                               : 0;

    if (t->status != PTMON_WALK_OK) {
        snprintf(buf, len, "%s at L%u (entry %#llx)", ptmon_walk_status_name(t->status), t->level,
                 (unsigned long long)t->entry);
        return;
    }
    snprintf(buf, len, "%s page %#llx %s %s %s", sizes[sz], (unsigned long long)t->frame,
             (t->rights & PTMON_RIGHT_W) ? "RW" : "RO",
             (t->rights & PTMON_RIGHT_U) ? "user" : "kernel",
             (t->rights & PTMON_RIGHT_NX) ? "NX" : "X");
}

static int on_change(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    struct demo *d = ctx;
    char before[96], after[96];
    (void)pm;
    (void)w;
    describe(&c->before, before, sizeof(before));
    describe(&c->after, after, sizeof(after));
    printf("    [%c] va %#018llx  %s -> %s  (L%u write%s)\n", c->cr3 == d->cr3_a ? 'A' : 'B',
           (unsigned long long)c->va, before, after, c->level, c->reverted ? ", undone" : "");
    return 0;
}

/* The guard on the kernel page: a remap to another frame is an attack, deny it. */
static int kernel_guard(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    struct demo *d = ctx;
    int attack = c->before.status == PTMON_WALK_OK && c->after.status == PTMON_WALK_OK &&
                 c->before.page_size == c->after.page_size && c->before.frame != c->after.frame;
    on_change(pm, w, ctx, c);
    if (attack && d->denials_wanted && !c->reverted) {
        d->denials_wanted--;
        printf("    [guard] kernel page remapped to %#llx: DENIED\n",
               (unsigned long long)c->after.frame);
        return PTMON_ACTION_DENY;
    }
    return 0;
}

static int deliver(void *ctx, const ptmon_mem_event *ev)
{
    return ptmon_handle_event(ctx, ev);
}

static uint64_t frame(struct demo *d)
{
    uint64_t gpa;
    check("frame", ptmon_fake_alloc_frame(d->fake, &gpa));
    return gpa;
}

static void step(const char *text)
{
    printf("\n  %s\n", text);
}

static void build_guest(struct demo *d)
{
    uint64_t pml4e;

    check("root A", ptmon_fake_new_root(d->fake, &d->cr3_a));
    check("root B", ptmon_fake_new_root(d->fake, &d->cr3_b));
    for (unsigned i = 0; i < 8; i++)
        check("heap", ptmon_fake_map(d->fake, d->cr3_a, A_HEAP + i * 0x1000, frame(d), 4 * KIB,
                                     RW | US | NX));
    for (unsigned i = 0; i < 4; i++)
        check("buf",
              ptmon_fake_map(d->fake, d->cr3_b, B_BUF + i * 0x1000, frame(d), 4 * KIB, RW | US));
    check("kernel", ptmon_fake_map(d->fake, d->cr3_a, KPAGE, 16 * MIB, 2 * MIB, RW));
    /* B's kernel half is A's: the same PDPT behind its own PML4E */
    check("kernel", ptmon_fake_get_entry(d->fake, d->cr3_a, KPAGE, 4, &pml4e));
    check("kernel", ptmon_fake_set_entry(d->fake, d->cr3_b, KPAGE, 4, pml4e));
}

static void watch_all(struct demo *d, struct ptmon_watch **b_watches)
{
    struct ptmon_watch *w;

    for (unsigned i = 0; i < 8; i++)
        check("watch", ptmon_watch(d->pm, d->cr3_a, A_HEAP + i * 0x1000, 0, on_change, d, &w));
    for (unsigned i = 0; i < 4; i++)
        check("watch",
              ptmon_watch(d->pm, d->cr3_b, B_BUF + i * 0x1000, 0, on_change, d, &b_watches[i]));
    check("watch", ptmon_watch(d->pm, d->cr3_a, KPAGE + 0x3000, PTMON_WATCH_HIGH_PRIORITY,
                               kernel_guard, d, &w));
    check("watch", ptmon_watch(d->pm, d->cr3_b, KPAGE + 0x3000, 0, on_change, d, &w));
}

static void run_session(struct demo *d, struct ptmon_watch **b_watches)
{
    uint64_t pte, pde, newpt;
    int rc;

    step("1. the kernel swaps A's heap pages 2 and 3 out (PTE -> swap entry)");
    check("swap", ptmon_fake_set_entry(d->fake, d->cr3_a, A_HEAP + 0x2000, 1, 0x2a000));
    check("swap", ptmon_fake_set_entry(d->fake, d->cr3_a, A_HEAP + 0x3000, 1, 0x2b000));
    step(
        "2. page 2 is swapped back in, to another frame; page 3's swap slot is rewritten (silent)");
    check("swap",
          ptmon_fake_map(d->fake, d->cr3_a, A_HEAP + 0x2000, frame(d), 4 * KIB, RW | US | NX));
    check("swap", ptmon_fake_set_entry(d->fake, d->cr3_a, A_HEAP + 0x3000, 1, 0x7c000));
    step("3. mprotect(PROT_READ) on A's heap pages 0-1; the CPU sets accessed/dirty bits (silent)");
    for (unsigned i = 0; i < 2; i++) {
        check("rights", ptmon_fake_get_entry(d->fake, d->cr3_a, A_HEAP + i * 0x1000, 1, &pte));
        check("rights", ptmon_fake_set_entry(d->fake, d->cr3_a, A_HEAP + i * 0x1000, 1, pte & ~RW));
    }
    uint64_t gpa;
    check("cpu",
          ptmon_fake_cpu_access(d->fake, d->cr3_a, A_HEAP + 0x4000, PTMON_FAKE_CPU_WRITE, &gpa));
    step("4. the kernel splits its 2M page into 4K pages (seen from both address spaces)");
    check("split", ptmon_fake_split(d->fake, d->cr3_a, KPAGE, 0, NULL));
    step("5. ... and merges it back");
    check("merge", ptmon_fake_merge(d->fake, d->cr3_a, KPAGE, 2));
    step("6. A's heap moves to a new page table (one PDE write; pages 4-7 get new frames)");
    check("mremap", ptmon_fake_get_entry(d->fake, d->cr3_a, A_HEAP, 2, &pde));
    newpt = frame(d);
    for (unsigned i = 0; i < 8; i++) {
        uint64_t old, e;
        check("mremap", ptmon_fake_get_entry(d->fake, d->cr3_a, A_HEAP + i * 0x1000, 1, &old));
        e = i < 4 ? old : (frame(d) | RW | US | NX | PTMON_PTE_P);
        check("mremap", ptmon_fake_poke(d->fake, newpt + i * 8, &e, 8));
    }
    check("mremap", ptmon_fake_set_entry(d->fake, d->cr3_a, A_HEAP, 2, (pde & 0xfff) | newpt));
    step("7. an attacker remaps the kernel page to its own frame");
    d->denials_wanted = 1;
    rc = ptmon_fake_map(d->fake, d->cr3_a, KPAGE, 64 * MIB, 2 * MIB, RW);
    printf("    guest store result: %s\n",
           rc == PTMON_EDENIED ? "denied, memory unchanged" : ptmon_strerror(rc));
    step("8. B unmaps its buffer pages 1-3, then exits (ptmon stops watching B's buffer)");
    for (unsigned i = 1; i < 4; i++)
        check("unmap", ptmon_fake_unmap(d->fake, d->cr3_b, B_BUF + i * 0x1000));
    for (unsigned i = 0; i < 4; i++)
        check("unwatch", ptmon_unwatch(&b_watches[i]));
}

static void dot_to_file(void *ctx, const char *text)
{
    fputs(text, ctx);
}

static void summary(struct demo *d, const char *dot_path)
{
    ptmon_stats st;
    ptmon_finding findings[4];
    int n;

    check("stats", ptmon_get_stats(d->pm, &st));
    n = ptmon_check(d->pm, findings, 4);
    check("check", n);
    printf("\n  summary: %llu events (%llu irrelevant, %llu denied), %llu callbacks\n",
           (unsigned long long)st.events, (unsigned long long)st.events_irrelevant,
           (unsigned long long)st.events_denied, (unsigned long long)st.callbacks);
    printf("           %llu watches, %llu entry nodes, %llu table records, %llu frames protected, "
           "%llu bytes\n",
           (unsigned long long)st.watches, (unsigned long long)st.nodes,
           (unsigned long long)st.tables, (unsigned long long)st.frames,
           (unsigned long long)st.bytes);
    printf("           backend calls: %llu set_access, %llu read_gpa, %llu emulate_write\n",
           (unsigned long long)ptmon_fake_calls(d->fake, PTMON_FAKE_OP_SET_ACCESS),
           (unsigned long long)ptmon_fake_calls(d->fake, PTMON_FAKE_OP_READ_GPA),
           (unsigned long long)ptmon_fake_calls(d->fake, PTMON_FAKE_OP_EMULATE_WRITE));
    printf("           integrity check: %s\n", n == 0 ? "clean" : findings[0].text);
    if (dot_path) {
        FILE *dot = fopen(dot_path, "w");
        if (!dot) {
            perror(dot_path);
            exit(1);
        }
        check("dump", ptmon_dump(d->pm, PTMON_DUMP_DOT, dot_to_file, dot));
        fclose(dot);
        printf("           the watched tree: %s (dot -Tpng %s > tree.png)\n", dot_path, dot_path);
    }
}

int main(int argc, char **argv)
{
    const char *dot_path = argc == 3 && strcmp(argv[1], "--dot") == 0 ? argv[2] : NULL;
    ptmon_fake_config fc = PTMON_FAKE_CONFIG_INIT;
    ptmon_config pc = PTMON_CONFIG_INIT;
    struct ptmon_watch *b_watches[4];
    struct demo d;

    memset(&d, 0, sizeof(d));
    fc.ram_size = 128 * MIB;
    check("fake guest", ptmon_fake_create(&fc, &d.fake));
    pc.paging.maxphyaddr = fc.paging.maxphyaddr;
    check("ptmon", ptmon_create(ptmon_fake_glue(d.fake), &pc, &d.pm));
    ptmon_fake_set_handler(d.fake, deliver, d.pm);
    printf("ptmon %s demo: a guest session on the fake backend (%s paging, PRE-write delivery)\n",
           ptmon_version_string(), ptmon_paging_mode_name(ptmon_get_paging(d.pm).mode));
    build_guest(&d);
    watch_all(&d, b_watches);
    printf("  watching 8 heap pages of A, 4 buffer pages of B, one kernel page in A and in B\n");
    run_session(&d, b_watches);
    summary(&d, dot_path);
    ptmon_destroy(d.pm);
    printf("  after ptmon_destroy: %llu frames still write-protected\n",
           (unsigned long long)ptmon_fake_count_write_protected(d.fake));
    ptmon_fake_destroy(d.fake);
    return 0;
}
