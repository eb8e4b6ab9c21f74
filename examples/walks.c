/*
 * walks.c — ptmon_translate on the fake guest: for each x86 paging mode, build a small guest
 * address space (small and large pages, a read-only page, a no-execute page, a swapped-out page, a
 * reserved-bit entry, a table outside RAM) and print ptmon's walk of each address: every level's
 * entry, then the frame, page size and effective rights, or where and why the walk stopped.
 *
 * Run: build/examples/ptmon_walks (sh tools/run.sh demo runs it after the main demo)
 */
#include <ptmon/fake.h>
#include <ptmon/ptmon.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

static const char *const level_names[PTMON_MAX_LEVELS + 1] = {"",      "PTE",   "PDE",
                                                              "PDPTE", "PML4E", "PML5E"};

static void die(const char *what, int rc)
{
    fprintf(stderr, "demo: %s: %s\n", what, ptmon_strerror(rc));
    exit(1);
}

static void check(const char *what, int rc)
{
    if (rc < 0)
        die(what, rc);
}

static void print_size(uint64_t size)
{
    if (size >= GIB)
        printf("%lluG", (unsigned long long)(size / GIB));
    else if (size >= MIB)
        printf("%lluM", (unsigned long long)(size / MIB));
    else
        printf("%lluK", (unsigned long long)(size / KIB));
}

static void print_walk(const ptmon_walk *w, const char *label)
{
    printf("  %-22s VA %016" PRIx64 "\n", label, w->va);
    if (w->status == PTMON_WALK_NONCANONICAL) {
        printf("      -> refused: %s\n", ptmon_walk_status_name(w->status));
        return;
    }
    for (unsigned l = w->top_level; l >= w->stop_level && l >= 1; l--)
        printf("      %-6s @ %09" PRIx64 " = %016" PRIx64 "\n", level_names[l], w->level[l].gpa,
               w->level[l].value);
    if (w->status == PTMON_WALK_OK) {
        printf("      -> GPA %09" PRIx64 "  page ", w->gpa);
        print_size(w->page_size);
        printf("  %s %s %s\n", (w->rights & PTMON_RIGHT_W) ? "RW" : "RO",
               (w->rights & PTMON_RIGHT_U) ? "user" : "kernel",
               (w->rights & PTMON_RIGHT_NX) ? "NX" : "X");
    } else {
        printf("      -> stopped at %s: %s", level_names[w->stop_level],
               ptmon_walk_status_name(w->status));
        if (w->status == PTMON_WALK_RESERVED)
            printf(" (bits %016" PRIx64 ")", w->reserved_bits);
        printf("\n");
    }
}

struct mode_demo {
    enum ptmon_paging_mode mode;
    unsigned flags;
    uint64_t large;  /* large page size the mode offers */
    uint64_t huge;   /* 1 GiB where available, else 0 */
    uint64_t nx;     /* the NX bit if the mode has one */
    uint64_t kernel; /* a kernel-half address */
};

static void demo_mode(const struct mode_demo *md)
{
    ptmon_fake_config fc = PTMON_FAKE_CONFIG_INIT;
    ptmon_fake *fake;
    ptmon *pm;
    ptmon_config pc = PTMON_CONFIG_INIT; /* AUTO: ptmon reads the mode off vCPU 0 */
    uint64_t cr3, f4k, fro, fnx, flarge = 16 * MIB, fhuge = 1 * GIB, entry;
    ptmon_walk w;

    fc.paging.mode = md->mode;
    fc.paging.flags = md->flags;
    fc.paging.maxphyaddr = md->mode == PTMON_MODE_32BIT ? 40 : 46;
    fc.ram_size = md->huge ? 2 * GIB : 64 * MIB;
    check("fake guest", ptmon_fake_create(&fc, &fake));
    check("root", ptmon_fake_new_root(fake, &cr3));
    check("cr3", ptmon_fake_set_cr3(fake, 0, cr3));
    check("frame", ptmon_fake_alloc_frame(fake, &f4k));
    check("frame", ptmon_fake_alloc_frame(fake, &fro));
    check("frame", ptmon_fake_alloc_frame(fake, &fnx));

    const uint64_t user = 0x00400000, RWU = PTMON_PTE_RW | PTMON_PTE_US;
    check("map", ptmon_fake_map(fake, cr3, user, f4k, 4 * KIB, RWU));
    check("map", ptmon_fake_map(fake, cr3, user + 0x1000, fro, 4 * KIB, PTMON_PTE_US));
    check("map", ptmon_fake_map(fake, cr3, user + 0x2000, fnx, 4 * KIB, RWU | md->nx));
    check("map", ptmon_fake_map(fake, cr3, user + 0x3000, f4k, 4 * KIB, RWU));
    check("swap out", ptmon_fake_set_entry(fake, cr3, user + 0x3000, 1, 0x5a5a000)); /* P=0 */
    check("map", ptmon_fake_map(fake, cr3, md->kernel, flarge, md->large, PTMON_PTE_RW));
    if (md->huge)
        check("map",
              ptmon_fake_map(fake, cr3, md->kernel + md->huge, fhuge, md->huge, PTMON_PTE_RW));
    /* a PTE with a reserved bit: an address bit above MAXPHYADDR (none exist in 32-bit PTEs,
     * where it becomes a PDE with PS and PSE-36 reserved bit 21 instead) */
    check("map", ptmon_fake_map(fake, cr3, user + 0x4000, f4k, 4 * KIB, RWU));
    if (md->mode == PTMON_MODE_32BIT) {
        check("map", ptmon_fake_map(fake, cr3, 0x00800000, flarge, md->large, RWU));
        check("poison", ptmon_fake_get_entry(fake, cr3, 0x00800000, 2, &entry));
        check("poison", ptmon_fake_set_entry(fake, cr3, 0x00800000, 2, entry | (1ull << 21)));
    } else {
        check("poison", ptmon_fake_get_entry(fake, cr3, user + 0x4000, 1, &entry));
        check("poison", ptmon_fake_set_entry(fake, cr3, user + 0x4000, 1, entry | (1ull << 50)));
    }
    /* a page table that lies outside guest RAM */
    check("link", ptmon_fake_link(fake, cr3, 0x00c00000, 2, fc.ram_size + 0x10000, RWU));

    pc.paging.maxphyaddr = fc.paging.maxphyaddr; /* CPUID's answer: not in any register */
    check("ptmon", ptmon_create(ptmon_fake_glue(fake), &pc, &pm));
    ptmon_paging pg = ptmon_get_paging(pm);
    printf("\n== %s paging (%u levels%s%s), CR3 %09" PRIx64 " ==\n",
           ptmon_paging_mode_name(pg.mode), ptmon_paging_levels(pg.mode),
           (pg.flags & PTMON_PAGING_PSE) ? ", PSE" : "",
           (pg.flags & PTMON_PAGING_NXE) ? ", NXE" : "", cr3);

    const struct {
        uint64_t va;
        const char *label;
    } probes[] = {
        {user + 0x123, "user data page"},
        {user + 0x1010, "read-only page"},
        {user + 0x2000, "no-execute page"},
        {user + 0x3000, "swapped-out page"},
        {md->mode == PTMON_MODE_32BIT ? 0x00800000 : user + 0x4000, "reserved bit"},
        {md->kernel + 0x1234, "kernel large page"},
        {md->kernel + md->huge + 0x5678, md->huge ? "kernel 1G page" : ""},
        {0x00c00000, "table outside RAM"},
        {md->mode >= PTMON_MODE_4LEVEL ? 0x0000900000000000ull : 0x100000000ull, "bad address"},
    };
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        if (!probes[i].label[0])
            continue;
        check("translate", ptmon_translate(pm, cr3 | 0x7 /* PCID: ignored */, probes[i].va, &w));
        print_walk(&w, probes[i].label);
    }
    ptmon_destroy(pm);
    ptmon_fake_destroy(fake);
}

int main(void)
{
    const struct mode_demo modes[] = {
        {PTMON_MODE_32BIT, PTMON_PAGING_PSE, 4 * MIB, 0, 0, 0xc0000000},
        {PTMON_MODE_PAE, PTMON_PAGING_NXE, 2 * MIB, 0, PTMON_PTE_NX, 0xc0000000},
        {PTMON_MODE_4LEVEL, PTMON_PAGING_NXE, 2 * MIB, 1 * GIB, PTMON_PTE_NX,
         0xffff800000000000ull},
        {PTMON_MODE_5LEVEL, PTMON_PAGING_NXE, 2 * MIB, 1 * GIB, PTMON_PTE_NX,
         0xff00000000000000ull},
    };
    printf("ptmon %s: page walks on the fake guest\n", ptmon_version_string());
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        demo_mode(&modes[i]);
    return 0;
}
