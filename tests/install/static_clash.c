/* An out-of-tree program linked statically against the installed archives that has functions of
 * its own named like ptmon's internal ones (tests/install/check.sh). While the archives defined
 * those names globally, such a program failed to link (multiple definition) or, worse, the
 * library called the program's functions instead of its own. Built with PTMON_CLASH_XEN it also
 * links libptmon_xen.a and clashes with names of the Xen backend.
 *
 * Exits 0 when the library works (a watched page that is remapped is reported once, with the
 * right frames, and ptmon_check finds nothing), the library called none of the functions below,
 * and they still answer for the program itself. */
#include <ptmon/fake.h>
#include <ptmon/ptmon.h>
#ifdef PTMON_CLASH_XEN
#include <ptmon/xen.h>
#endif

#include <stdint.h>
#include <stdio.h>

#define VA 0x400000ull

/* Calls of the functions below. Their signatures are deliberately not the library's: a call
 * from inside the library would be counted here (and would go wrong). */
static unsigned clash_calls;

#define CLASH(name, n)    \
    int name(int key);    \
    int name(int key)     \
    {                     \
        clash_calls++;    \
        return key + (n); \
    }

/* Names the core (map_get ... trace_start) and the fake (fake_*) define internally. */
CLASH(map_get, 1)
CLASH(map_put, 2)
CLASH(entry_find, 3)
CLASH(frame_find, 4)
CLASH(pt_walk, 5)
CLASH(watch_commit, 6)
CLASH(glue_read_gpa, 7)
CLASH(trace_start, 8)
CLASH(fake_decode, 9)
CLASH(fake_guest_store, 10)
#ifdef PTMON_CLASH_XEN
/* ... and the Xen backend (xen_internal.h). */
CLASH(xen_map_get, 11)
CLASH(xen_now_ns, 12)
CLASH(xen_ring_drain, 13)
CLASH(xen_attach_ops, 14)
#endif

struct seen {
    unsigned changes;
    uint64_t before, after;
};

static int on_change(ptmon *pm, struct ptmon_watch *w, void *ctx, const ptmon_change *c)
{
    struct seen *s = ctx;
    (void)pm;
    (void)w;
    s->changes++;
    s->before = c->before.frame;
    s->after = c->after.frame;
    return PTMON_ACTION_ALLOW;
}

static int deliver(void *ctx, const ptmon_mem_event *ev)
{
    return ptmon_handle_event(ctx, ev);
}

/* The library at work: a watched 4K page remapped by a guest store (decoded, walked,
 * committed). @return 0 when it was reported as it happened. */
static int use_the_library(void)
{
    ptmon_fake_config fc = PTMON_FAKE_CONFIG_INIT;
    ptmon_fake *fake = NULL;
    ptmon *pm = NULL;
    struct ptmon_watch *watch = NULL;
    struct seen seen = {0, 0, 0};
    ptmon_finding finding;
    ptmon_walk w;
    uint64_t cr3 = 0, f1 = 0, f2 = 0;
    int rc, bad;

    rc = ptmon_fake_create(&fc, &fake);
    if (rc == 0)
        rc = ptmon_fake_new_root(fake, &cr3);
    if (rc == 0)
        rc = ptmon_fake_alloc_frame(fake, &f1);
    if (rc == 0)
        rc = ptmon_fake_alloc_frame(fake, &f2);
    if (rc == 0)
        rc = ptmon_fake_map(fake, cr3, VA, f1, 4096, PTMON_PTE_RW | PTMON_PTE_US);
    if (rc == 0)
        rc = ptmon_create(ptmon_fake_glue(fake), NULL, &pm);
    if (rc == 0) {
        ptmon_fake_set_handler(fake, deliver, pm);
        rc = ptmon_watch(pm, cr3, VA, 0, on_change, &seen, &watch);
    }
    if (rc == 0)
        rc = ptmon_fake_map(fake, cr3, VA, f2, 4096, PTMON_PTE_RW | PTMON_PTE_US);
    if (rc == 0)
        rc = ptmon_translate(pm, cr3, VA + 0x123, &w);
    if (rc != 0) {
        fprintf(stderr, "static_clash: %s\n", ptmon_strerror(rc));
        return 1;
    }
    bad = ptmon_check(pm, &finding, 1);
    printf("static_clash: remap of 0x%llx reported %u time(s), 0x%llx -> 0x%llx; translation "
           "0x%llx; ptmon_check %d\n",
           (unsigned long long)VA, seen.changes, (unsigned long long)seen.before,
           (unsigned long long)seen.after, (unsigned long long)w.gpa, bad);
    rc = seen.changes == 1 && seen.before == f1 && seen.after == f2 && w.gpa == f2 + 0x123 &&
                 bad == 0
             ? 0
             : 1;
    ptmon_destroy(pm); /* and the watch with it */
    ptmon_fake_destroy(fake);
    return rc;
}

int main(void)
{
    unsigned by_library;
    int rc = use_the_library(), mine;

#ifdef PTMON_CLASH_XEN
    /* Pulls libptmon_xen.a in (its whole single object: the Xen libraries must resolve). */
    if (ptmon_xen_event_kind_name(PTMON_XEN_EV_WRITE) == NULL)
        rc = 1;
#endif
    by_library = clash_calls;
    mine = map_get(0) + map_put(0) + entry_find(0) + frame_find(0) + pt_walk(0) + watch_commit(0) +
           glue_read_gpa(0) + trace_start(0) + fake_decode(0) + fake_guest_store(0);
#ifdef PTMON_CLASH_XEN
    mine += xen_map_get(0) + xen_now_ns(0) + xen_ring_drain(0) + xen_attach_ops(0);
#endif
    printf("static_clash: the library called %u of the program's functions; theirs answer %d\n",
           by_library, mine);
    if (by_library != 0 || mine != (int)(clash_calls * (clash_calls + 1) / 2))
        rc = 1;
    return rc;
}
