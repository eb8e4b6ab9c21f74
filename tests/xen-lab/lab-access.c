/*
 * lab-access: dom0's independent check that a detach gave every frame its access back.
 *
 *   lab-access --domain ID [FILE]
 *
 Reads lines "GFN [WAS]" (GFN "0x..." or decimal, WAS an access name such as rwx) from FILE or
 * stdin: the frames ptmond said it restricted, with the access each had before. For each it asks
 * Xen itself (xc_get_mem_access, the host p2m) for the access the frame has now and prints
 *   gfn 0x... access rwx|rx|...|default|error:<errno> [was WAS]
 * then a summary line
 *   lab-access: N frames, R restricted, E errors
 * A frame counts as restricted when its access differs from WAS (rwx, Xen's default for a domain
 * nobody restricted, when WAS is not given). It uses libxenctrl only, none of ptmon's code: it
 * does not trust ptmond. Xen answers access queries only while a monitor ring exists (ENODEV
 * otherwise), so it pauses the domain, enables a ring of its own for the queries, disables it
 * and unpauses: the guest runs no instruction meanwhile, so nothing can fault on a frame left
 * restricted while nobody answers.
 * Exit: 0 when nothing is restricted and every query worked, 1 otherwise, 2 on usage errors.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenctrl.h>

static const char *access_name(xenmem_access_t a)
{
    static const char *const names[] = {
        [XENMEM_access_n] = "n",
        [XENMEM_access_r] = "r",
        [XENMEM_access_w] = "w",
        [XENMEM_access_rw] = "rw",
        [XENMEM_access_x] = "x",
        [XENMEM_access_rx] = "rx",
        [XENMEM_access_wx] = "wx",
        [XENMEM_access_rwx] = "rwx",
        [XENMEM_access_rx2rw] = "rx2rw",
        [XENMEM_access_n2rwx] = "n2rwx",
        [XENMEM_access_default] = "default",
    };
    return (unsigned)a < sizeof(names) / sizeof(names[0]) && names[a] ? names[a] : "?";
}

int main(int argc, char **argv)
{
    unsigned long domid = ~0ul;
    const char *path = NULL;
    FILE *in = stdin;
    xc_interface *xch;
    char line[256];
    unsigned long n = 0, restricted = 0, errors = 0;
    uint32_t port;
    void *ring;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--domain") && i + 1 < argc)
            domid = strtoul(argv[++i], NULL, 0);
        else if (!path && argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "usage: lab-access --domain ID [FILE]\n");
            return 2;
        }
    }
    if (domid == ~0ul) {
        fprintf(stderr, "usage: lab-access --domain ID [FILE]\n");
        return 2;
    }
    if (path && !(in = fopen(path, "r"))) {
        fprintf(stderr, "lab-access: %s: %s\n", path, strerror(errno));
        return 2;
    }
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) {
        fprintf(stderr, "lab-access: xc_interface_open: %s\n", strerror(errno));
        return 1;
    }
    if (xc_domain_pause(xch, (uint32_t)domid) < 0) {
        fprintf(stderr, "lab-access: pause domain %lu: %s\n", domid, strerror(errno));
        return 1;
    }
    ring = xc_monitor_enable(xch, (uint32_t)domid, &port);
    if (!ring) {
        fprintf(stderr, "lab-access: monitor ring: %s (another monitor attached?)\n",
                strerror(errno));
        xc_domain_unpause(xch, (uint32_t)domid);
        return 1;
    }
    while (fgets(line, sizeof(line), in)) {
        char *end, was[16] = "rwx";
        uint64_t gfn = strtoull(line, &end, 0);
        xenmem_access_t a;
        if (end == line)
            continue;
        (void)sscanf(end, " %15s", was);
        n++;
        if (xc_get_mem_access(xch, (uint32_t)domid, gfn, &a) < 0) {
            printf("gfn 0x%" PRIx64 " access error:%d was %s\n", gfn, errno, was);
            errors++;
            continue;
        }
        printf("gfn 0x%" PRIx64 " access %s was %s\n", gfn, access_name(a), was);
        if (strcmp(access_name(a), was) != 0)
            restricted++;
    }
    if (xc_monitor_disable(xch, (uint32_t)domid) < 0) {
        fprintf(stderr, "lab-access: monitor disable: %s\n", strerror(errno));
        errors++;
    }
    munmap(ring, XC_PAGE_SIZE);
    if (xc_domain_unpause(xch, (uint32_t)domid) < 0) {
        fprintf(stderr, "lab-access: unpause: %s\n", strerror(errno));
        errors++;
    }
    printf("lab-access: %lu frames, %lu restricted, %lu errors\n", n, restricted, errors);
    xc_interface_close(xch);
    if (in != stdin)
        fclose(in);
    return restricted || errors ? 1 : 0;
}
