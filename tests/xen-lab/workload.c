/*
 * workload: the domU side of the Xen lab. Static, runs as the guest's only process.
 *
 * It maps a few hundred pages at fixed addresses (so the layout does not depend on ASLR), prints
 * every VA it wants watched, then executes CPUID with a magic leaf until dom0 lets it start:
 * ptmond (--cr3-from-cpuid) learns the workload's CR3 from that CPUID. Then it runs numbered
 * steps. Each step is gated by dom0 through xenstore (data/ptmon-go >= step), so dom0 knows
 * exactly which part of ptmond's log belongs to which step: it notes ptmond's log length, lets
 * the step run, waits for "WLSTEP n END" on the console and for ptmond to go quiet.
 *
 * After every step the workload prints its own view of every watched VA from /proc/self/pagemap
 * (frame number, or '-' when not present) and the rights it gave the page (mprotect), but only
 * for entries that differ from what it printed before (the console is slow under TCG).
 * Line formats (parsed by check.py):
 *   WLVA <va> <region>                   a watched VA
 *   WLSTEP <n> <name> BEGIN|END|SKIP <text>
 *   WLOP <n> <va> <npages>               pages the step acts on (changes elsewhere are unexplained)
 *   WLP <n> <va> <pfn|-> <rw|r-|--> <flags>   flags: s (swapped), z (zero page), . (none)
 *   WLNOTE <text>
 *   WLDENY <write ok|write faulted>     step 14: did the write after the vetoed mprotect land?
 *   WLLOAD <done> <pages> <microseconds> <threads> <planned>   step 15: the load loop, timed
 *                                        by the guest; one thread per online vCPU, each pinned
 *                                        to its vCPU and working on its own part of L; done:
 *                                        the iterations every thread completed, of planned
 *   WLTHREAD <index> <vcpu>              where each load thread ran
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PG         4096UL
#define MAGIC_LEAF 0x50544d4eu /* "PTMN": outside the basic, hypervisor and extended ranges */

/* Regions; fixed so the lab's expectations and ptmond's --va list do not depend on ASLR. */
#define A_BASE   0x100000000UL /* 256 pages: touch, munmap, mprotect, fork/COW, DONTNEED */
#define A_PAGES  256
#define B_BASE   0x110000000UL /* 32 pages moved by mremap to C */
#define C_BASE   0x120000000UL
#define BC_PAGES 32
#define H_BASE   0x140000000UL /* one 2 MiB-aligned huge-page candidate */
#define H_SIZE   0x200000UL
#define H_STRIDE 8             /* watch every 8th 4K page of the huge page (64 VAs) */
#define S_BASE   0x150000000UL /* 64 pages pushed to swap (zram) and back */
#define S_PAGES  64
#define D_BASE   0x160000000UL /* one page whose loss of write access ptmond vetoes (step 14) */
#define L_BASE   0x170000000UL /* mapped, touched and unmapped again and again (step 15) */
#define L_PAGES  128
#define L_ITERS  8

#define MAXW 1024
static struct w {
    uintptr_t va;
    int prot;      /* what we gave it: 0 none/unmapped, 1 read, 3 read+write */
    char last[48]; /* last printed view, to print changes only */
} ws[MAXW];
static int nw;
static int pagemap_fd = -1;
static uint64_t zero_pfn = UINT64_MAX;

static void add_watch(uintptr_t va, const char *region)
{
    ws[nw].va = va;
    ws[nw].prot = 0;
    ws[nw].last[0] = 0;
    nw++;
    printf("WLVA 0x%lx %s\n", (unsigned long)va, region);
}

static void set_prot(uintptr_t va, size_t len, int prot)
{
    for (int i = 0; i < nw; i++)
        if (ws[i].va >= va && ws[i].va < va + len)
            ws[i].prot = prot;
}

static void op(int step, uintptr_t va, size_t npages)
{
    printf("WLOP %d 0x%lx %zu\n", step, (unsigned long)va, npages);
}

static void cpuid(uint32_t leaf, uint32_t sub)
{
    uint32_t a = leaf, b, c = sub, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d)::"memory");
    (void)b;
    (void)d;
}

static uint64_t pagemap(uintptr_t va)
{
    uint64_t e = 0;
    if (pread(pagemap_fd, &e, 8, (off_t)(va / PG) * 8) != 8)
        return 0;
    return e;
}

/* Print the entries whose view changed since they were last printed. */
static void report(int step, const char *tag)
{
    int changed = 0;
    for (int i = 0; i < nw; i++) {
        uint64_t e = pagemap(ws[i].va);
        char buf[48];
        const char *rights = ws[i].prot == 3 ? "rw" : ws[i].prot == 1 ? "r-" : "--";
        if (e >> 63) {
            uint64_t pfn = e & ((1ULL << 55) - 1);
            snprintf(buf, sizeof buf, "0x%llx %s %s", (unsigned long long)pfn, rights,
                     pfn == zero_pfn ? "z" : ".");
        } else {
            snprintf(buf, sizeof buf, "- %s %s", rights, (e >> 62) & 1 ? "s" : ".");
        }
        if (strcmp(buf, ws[i].last) != 0) {
            printf("WLP %d 0x%lx %s\n", step, (unsigned long)ws[i].va, buf);
            memcpy(ws[i].last, buf, sizeof buf);
            changed++;
        }
    }
    printf("WLSTEP %d - %s changed=%d\n", step, tag, changed);
    fflush(stdout);
}

/* ---- the gate: read data/ptmon-go from xenstore through the kernel's xenbus device ----------- */
struct xsd_hdr {
    uint32_t type, req_id, tx_id, len;
};
#define XS_READ  2
#define XS_ERROR 16

static long xs_read_long(const char *path)
{
    int fd = open("/dev/xen/xenbus", O_RDWR);
    if (fd < 0)
        return -1;
    char msg[sizeof(struct xsd_hdr) + 128];
    struct xsd_hdr h = {XS_READ, 1, 0, (uint32_t)strlen(path) + 1};
    memcpy(msg, &h, sizeof h);
    memcpy(msg + sizeof h, path, h.len);
    long v = -1;
    if (write(fd, msg, sizeof h + h.len) == (ssize_t)(sizeof h + h.len)) {
        char rep[sizeof(struct xsd_hdr) + 64] = {0};
        ssize_t n = read(fd, rep, sizeof rep - 1);
        struct xsd_hdr r;
        if (n >= (ssize_t)sizeof r) {
            memcpy(&r, rep, sizeof r);
            if (r.type == XS_READ)
                v = strtol(rep + sizeof r, NULL, 10);
        }
    }
    close(fd);
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Wait until dom0 allows step n. While waiting for step 1, keep executing the magic CPUID so
 * ptmond can learn our CR3 whenever it attaches. */
static void gate(int n)
{
    printf("WLREADY %d\n", n);
    fflush(stdout);
    if (getenv("WL_NOGATE"))
        return; /* for trying the workload outside Xen */
    for (;;) {
        long go = xs_read_long("data/ptmon-go");
        if (go >= n)
            return;
        if (n == 1)
            cpuid(MAGIC_LEAF, 0);
        sleep_ms(100);
    }
}

static void touch_write(uintptr_t va, size_t npages)
{
    for (size_t i = 0; i < npages; i++)
        *(volatile char *)(va + i * PG) = (char)(i + 1);
}

static unsigned touch_read(uintptr_t va, size_t npages)
{
    unsigned s = 0;
    for (size_t i = 0; i < npages; i++)
        s += *(volatile unsigned char *)(va + i * PG);
    return s;
}

static void *map_fixed(uintptr_t va, size_t len)
{
    void *p = mmap((void *)va, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != (void *)va) {
        printf("WLNOTE FATAL mmap 0x%lx: %s\n", (unsigned long)va, strerror(errno));
        exit(1);
    }
    return p;
}

static void note_anon_huge(void)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[256];
    int in = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            in = lo <= H_BASE && H_BASE < hi;
        if (in && strncmp(line, "AnonHugePages:", 14) == 0)
            printf("WLNOTE H %s", line);
    }
    fclose(f);
}

static int swap_active(void)
{
    FILE *f = fopen("/proc/swaps", "r");
    char line[256];
    int n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        n++;
    fclose(f);
    return n > 1; /* a header plus at least one device */
}

static sigjmp_buf write_fault;

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(write_fault, 1);
}

/* Write to @p va; @return 1 if the write landed, 0 if it faulted. */
static int try_write(uintptr_t va)
{
    struct sigaction sa, old;
    int ok = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, &old);
    if (sigsetjmp(write_fault, 1) == 0) {
        *(volatile char *)va = 0x5a;
        ok = 1;
    }
    sigaction(SIGSEGV, &old, NULL);
    return ok;
}

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* One load thread: its part of L, mapped, touched and unmapped L_ITERS times, on its vCPU. */
struct load_part {
    int index, vcpu_seen, done; /* done: iterations completed */
    uintptr_t base;
    size_t pages;
};

static void *load_thread(void *arg)
{
    struct load_part *p = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(p->index, &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
    for (int it = 0; it < L_ITERS; it++) {
        void *m = mmap((void *)p->base, p->pages * PG, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (m != (void *)p->base)
            break;
        touch_write(p->base, p->pages);
        munmap(m, p->pages * PG);
        p->done++;
    }
    p->vcpu_seen = sched_getcpu();
    return NULL;
}

/* The load loop with one thread per online vCPU (at most 2), each on its own part of L.
 * @return the number of threads; *done: the fewest iterations a thread completed. */
static int load(int *done)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus >= 2 ? 2 : 1;
    struct load_part parts[2];
    pthread_t t[2];
    for (int i = 0; i < n; i++) {
        parts[i].index = i;
        parts[i].vcpu_seen = -1;
        parts[i].done = 0;
        parts[i].pages = L_PAGES / (size_t)n;
        parts[i].base = L_BASE + (uintptr_t)i * parts[i].pages * PG;
        if (pthread_create(&t[i], NULL, load_thread, &parts[i]) != 0) {
            load_thread(&parts[i]);
            t[i] = 0;
        }
    }
    for (int i = 0; i < n; i++) {
        if (t[i])
            pthread_join(t[i], NULL);
        printf("WLTHREAD %d %d\n", i, parts[i].vcpu_seen);
    }
    *done = L_ITERS;
    for (int i = 0; i < n; i++)
        if (parts[i].done < *done)
            *done = parts[i].done;
    return n;
}

#define STEP(n, name) (gate(n), printf("WLSTEP %d %s BEGIN\n", (n), (name)), fflush(stdout), (n))

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
    if (pagemap_fd < 0) {
        perror("pagemap");
        return 1;
    }
    map_fixed(A_BASE, A_PAGES * PG);
    map_fixed(B_BASE, BC_PAGES * PG);
    map_fixed(H_BASE, H_SIZE);
    map_fixed(S_BASE, S_PAGES * PG);
    map_fixed(D_BASE, PG);
    for (int i = 0; i < A_PAGES; i++)
        add_watch(A_BASE + i * PG, "A");
    for (int i = 0; i < BC_PAGES; i++)
        add_watch(B_BASE + i * PG, "B");
    for (int i = 0; i < BC_PAGES; i++)
        add_watch(C_BASE + i * PG, "C");
    for (unsigned long o = 0; o < H_SIZE; o += H_STRIDE * PG)
        add_watch(H_BASE + o, "H");
    for (int i = 0; i < S_PAGES; i++)
        add_watch(S_BASE + i * PG, "S");
    add_watch(D_BASE, "D");
    for (int i = 0; i < L_PAGES; i++)
        add_watch(L_BASE + i * PG, "L");
    set_prot(A_BASE, A_PAGES * PG, 3);
    set_prot(B_BASE, BC_PAGES * PG, 3);
    set_prot(H_BASE, H_SIZE, 3);
    set_prot(S_BASE, S_PAGES * PG, 3);
    set_prot(D_BASE, PG, 3);
    /* The shared zero page's frame, to mark read faults on anonymous memory. */
    {
        volatile char *z = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        (void)*z;
        uint64_t e = pagemap((uintptr_t)z);
        if (e >> 63)
            zero_pfn = e & ((1ULL << 55) - 1);
        munmap((void *)z, PG);
    }
    printf("WLNOTE pid=%d watched=%d magic_leaf=0x%x zero_pfn=0x%llx swap=%d\n", getpid(), nw,
           MAGIC_LEAF, (unsigned long long)zero_pfn, swap_active());
    printf("WLVA-END %d\n", nw);
    report(0, "END"); /* the baseline: nothing touched yet */

    int s;
    s = STEP(1, "touch");
    op(s, A_BASE, A_PAGES);
    op(s, B_BASE, BC_PAGES);
    op(s, S_BASE, S_PAGES);
    touch_write(A_BASE, A_PAGES);
    touch_write(B_BASE, BC_PAGES);
    touch_write(S_BASE, S_PAGES);
    report(s, "END");

    s = STEP(2, "munmap");
    op(s, A_BASE + 192 * PG, 64);
    munmap((void *)(A_BASE + 192 * PG), 64 * PG);
    set_prot(A_BASE + 192 * PG, 64 * PG, 0);
    report(s, "END");

    s = STEP(3, "mprotect-ro");
    op(s, A_BASE, 32);
    mprotect((void *)A_BASE, 32 * PG, PROT_READ);
    set_prot(A_BASE, 32 * PG, 1);
    report(s, "END");

    s = STEP(4, "mprotect-rw+write");
    op(s, A_BASE, 32);
    mprotect((void *)A_BASE, 32 * PG, PROT_READ | PROT_WRITE);
    set_prot(A_BASE, 32 * PG, 3);
    touch_write(A_BASE, 32);
    report(s, "END");

    s = STEP(5, "mremap-move");
    op(s, B_BASE, BC_PAGES);
    op(s, C_BASE, BC_PAGES);
    if (mremap((void *)B_BASE, BC_PAGES * PG, BC_PAGES * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
               (void *)C_BASE) != (void *)C_BASE)
        printf("WLNOTE mremap failed: %s\n", strerror(errno));
    set_prot(B_BASE, BC_PAGES * PG, 0);
    set_prot(C_BASE, BC_PAGES * PG, 3);
    report(s, "END");

    s = STEP(6, "fork+cow-write");
    /* fork write-protects every private anonymous PTE of the parent; the parent's write then
     * takes a copy while the child still holds the old frame. The child waits on a pipe so the
     * copy really happens (were it gone, the parent would just reuse its frame). */
    op(s, A_BASE, 192);
    op(s, C_BASE, BC_PAGES);
    op(s, H_BASE, H_SIZE / PG);
    op(s, S_BASE, S_PAGES);
    {
        int pfd[2];
        if (pipe(pfd) != 0)
            return 1;
        pid_t pid = fork();
        if (pid == 0) {
            char c;
            close(pfd[1]);
            while (read(pfd[0], &c, 1) < 0 && errno == EINTR) {
            }
            _exit(0);
        }
        close(pfd[0]);
        touch_write(A_BASE + 32 * PG, 32);
        report(s, "MID"); /* while the child lives */
        close(pfd[1]);
        waitpid(pid, NULL, 0);
    }
    report(s, "END");

    s = STEP(7, "madv-dontneed");
    op(s, A_BASE + 64 * PG, 32);
    madvise((void *)(A_BASE + 64 * PG), 32 * PG, MADV_DONTNEED);
    report(s, "END");

    s = STEP(8, "read-refault-zero-page");
    op(s, A_BASE + 64 * PG, 32);
    printf("WLNOTE sum=%u\n", touch_read(A_BASE + 64 * PG, 32));
    report(s, "END");

    s = STEP(9, "thp-fault");
    op(s, H_BASE, H_SIZE / PG);
    if (madvise((void *)H_BASE, H_SIZE, MADV_HUGEPAGE) != 0)
        printf("WLNOTE MADV_HUGEPAGE failed: %s\n", strerror(errno));
    touch_write(H_BASE, H_SIZE / PG);
    note_anon_huge();
    report(s, "END");

    s = STEP(10, "thp-split-mprotect-4k");
    op(s, H_BASE, H_SIZE / PG);
    mprotect((void *)(H_BASE + H_SIZE / 2), PG, PROT_READ);
    set_prot(H_BASE + H_SIZE / 2, PG, 1);
    note_anon_huge();
    report(s, "END");

    s = STEP(11, "thp-collapse");
    op(s, H_BASE, H_SIZE / PG);
    mprotect((void *)(H_BASE + H_SIZE / 2), PG, PROT_READ | PROT_WRITE);
    set_prot(H_BASE + H_SIZE / 2, PG, 3);
    if (madvise((void *)H_BASE, H_SIZE, MADV_COLLAPSE) != 0)
        printf("WLNOTE MADV_COLLAPSE failed: %s\n", strerror(errno));
    note_anon_huge();
    report(s, "END");

    s = STEP(12, "swap-out-madv-pageout");
    op(s, S_BASE, S_PAGES);
    if (!swap_active())
        printf("WLSTEP %d - SKIP no swap device\n", s);
    else if (madvise((void *)S_BASE, S_PAGES * PG, MADV_PAGEOUT) != 0)
        printf("WLNOTE MADV_PAGEOUT failed: %s\n", strerror(errno));
    report(s, "END");

    s = STEP(13, "swap-in-read");
    op(s, S_BASE, S_PAGES);
    printf("WLNOTE sum=%u\n", touch_read(S_BASE, S_PAGES));
    report(s, "END");

    /* ptmond vetoes every change that would take D's writable mapping away (--deny D): the
     * fault-in maps it, mprotect's clear and rewrite of the PTE are denied before they land,
     * so the write after the mprotect succeeds where the kernel thinks the page read-only. */
    s = STEP(14, "deny-mprotect");
    op(s, D_BASE, 1);
    touch_write(D_BASE, 1);
    mprotect((void *)D_BASE, PG, PROT_READ);
    set_prot(D_BASE, PG, 1);
    printf("WLDENY %s\n", try_write(D_BASE) ? "write ok" : "write faulted");
    report(s, "END");

    /* Load: page tables written as fast as the guest can, every write trapped. */
    s = STEP(15, "load-mmap-touch-munmap");
    op(s, L_BASE, L_PAGES);
    {
        uint64_t t0 = now_us();
        int done, threads = load(&done);
        printf("WLLOAD %d %d %llu %d %d\n", done, L_PAGES, (unsigned long long)(now_us() - t0),
               threads, L_ITERS);
    }
    report(s, "END");

    /* Step 16 runs after dom0 stopped ptmond: the guest must keep running normally, its page
     * tables writable again (a frame left write-trapped without a server would hang or crash). */
    s = STEP(16, "after-detach");
    touch_write(A_BASE, 192);
    munmap((void *)C_BASE, BC_PAGES * PG);
    set_prot(C_BASE, BC_PAGES * PG, 0);
    {
        char *p = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            for (size_t i = 0; i < (64u << 20); i += PG)
                p[i] = 1; /* builds fresh page tables */
            munmap(p, 64 << 20);
        }
    }
    report(s, "END");
    printf("WLALIVE\n");
    fflush(stdout);
    if (getenv("WL_NOGATE"))
        return 0;

    /* Step 17: page-table traffic while dom0 tries what a crash of ptmond does (its output
     * closed: EPIPE; killed: vCPUs left paused, frames write-protected) and ptmond --reset. The
     * beats show dom0 when the guest runs; dom0 ends the step with ptmon-go 18. */
    s = STEP(17, "restart-load");
    {
        unsigned long it = 0;
        while (xs_read_long("data/ptmon-go") < 18) {
            for (int k = 0; k < 10; k++, it++) {
                void *m = mmap((void *)L_BASE, L_PAGES * PG, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
                if (m != (void *)L_BASE)
                    break;
                touch_write(L_BASE, L_PAGES);
                munmap(m, L_PAGES * PG);
            }
            printf("WLBEAT %lu\n", it);
        }
    }
    report(s, "END");
    printf("WLALIVE2\n");
    for (;;)
        pause();
}
