/*
 * Foreign mappings of guest frames. Owns: the gfn -> mapping hash, the LRU of unpinned mappings,
 * the batch of pinned frames still to be mapped, the map/unmap counters.
 * Restricted frames (watched page tables) are pinned: mapped once, kept until unpinned, so the
 * event path never maps. Other reads go through a small LRU. Frames to pin are collected and
 * mapped with one foreign-map call at the next lookup (batching).
 * May call: the xen ops (map/unmap) only.
 */
#include <stdlib.h>
#include <string.h>

#include "xen_internal.h"

static size_t bucket_of(const struct xen_map *m, uint64_t gfn)
{
    return (size_t)((gfn * 0x9e3779b97f4a7c15ull) >> 20) & (m->nbuckets - 1);
}

int xen_map_init(struct xen_map *m, const struct xen_ops *ops, size_t lru_max)
{
    memset(m, 0, sizeof(*m));
    m->ops = ops;
    m->nbuckets = 1024;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (!m->buckets)
        return PTMON_ENOMEM;
    m->lru_max = lru_max ? lru_max : 64;
    m->lru.next = m->lru.prev = &m->lru;
    return 0;
}

static struct xen_mapping *find(const struct xen_map *m, uint64_t gfn)
{
    struct xen_mapping *e;
    if (!m->buckets)
        return NULL; /* after detach */
    e = m->buckets[bucket_of(m, gfn)];
    while (e && e->gfn != gfn)
        e = e->hnext;
    return e;
}

static void lru_unlink(struct xen_mapping *e)
{
    if (e->next) {
        e->prev->next = e->next;
        e->next->prev = e->prev;
        e->next = e->prev = NULL;
    }
}

static void lru_push_front(struct xen_map *m, struct xen_mapping *e)
{
    e->next = m->lru.next;
    e->prev = &m->lru;
    m->lru.next->prev = e;
    m->lru.next = e;
}

static void region_put(struct xen_map *m, struct xen_region *r)
{
    if (r && --r->refs == 0) {
        m->ops->unmap(m->ops->h, r->base, r->n);
        free(r);
    }
}

/* Remove and unmap one entry. */
static void drop(struct xen_map *m, struct xen_mapping *e)
{
    struct xen_mapping **pp = &m->buckets[bucket_of(m, e->gfn)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->next) {
        lru_unlink(e);
        m->lru_count--;
    }
    region_put(m, e->region);
    m->count--;
    free(e);
}

void xen_map_fini(struct xen_map *m)
{
    if (!m->buckets)
        return;
    for (size_t b = 0; b < m->nbuckets; b++)
        while (m->buckets[b])
            drop(m, m->buckets[b]);
    free(m->buckets);
    free(m->want);
    memset(m, 0, sizeof(*m));
}

static struct xen_mapping *insert(struct xen_map *m, uint64_t gfn)
{
    struct xen_mapping *e = calloc(1, sizeof(*e));
    size_t b;
    if (!e)
        return NULL;
    e->gfn = gfn;
    b = bucket_of(m, gfn);
    e->hnext = m->buckets[b];
    m->buckets[b] = e;
    m->count++;
    return e;
}

/* Map @p n frames with one call; attach each page to its entry. */
static int map_batch(struct xen_map *m, const uint64_t *gfns, size_t n)
{
    void **pages = calloc(n, sizeof(*pages));
    struct xen_region *r = calloc(1, sizeof(*r));
    int rc;
    if (!pages || !r) {
        free(pages);
        free(r);
        return PTMON_ENOMEM;
    }
    m->calls++;
    rc = m->ops->map(m->ops->h, gfns, n, pages, &r->base);
    if (rc < 0) {
        free(pages);
        free(r);
        return PTMON_ERANGE;
    }
    r->n = n;
    r->refs = 1; /* held while attaching; dropped below */
    for (size_t i = 0; i < n; i++) {
        struct xen_mapping *e = find(m, gfns[i]);
        if (!pages[i] || !e || e->page)
            continue;
        e->page = pages[i];
        e->region = r;
        r->refs++;
    }
    free(pages);
    region_put(m, r);
    return 0;
}

static void flush_wanted(struct xen_map *m)
{
    if (m->nwant) {
        (void)map_batch(m, m->want, m->nwant);
        m->nwant = 0;
    }
}

static void evict_lru(struct xen_map *m)
{
    while (m->lru_count > m->lru_max && m->lru.prev != &m->lru)
        drop(m, m->lru.prev);
}

uint8_t *xen_map_get(struct xen_map *m, uint64_t gfn)
{
    struct xen_mapping *e = find(m, gfn);

    if (!m->buckets)
        return NULL;
    if (e && !e->page && e->pinned)
        flush_wanted(m);
    if (e && e->page) {
        m->hits++;
        if (e->next && m->lru.next != e) { /* most recent first */
            lru_unlink(e);
            lru_push_front(m, e);
        }
        return e->page;
    }
    m->misses++;
    if (!e) {
        e = insert(m, gfn);
        if (!e)
            return NULL;
    }
    if (map_batch(m, &gfn, 1) < 0 || !e->page) {
        if (!e->pinned)
            drop(m, e);
        return NULL;
    }
    if (!e->pinned) {
        lru_push_front(m, e);
        m->lru_count++;
        evict_lru(m);
    }
    return e->page;
}

struct xen_mapping *xen_map_find(const struct xen_map *m, uint64_t gfn)
{
    return find(m, gfn);
}

void xen_map_each_pinned(struct xen_map *m, void (*fn)(void *ctx, struct xen_mapping *e), void *ctx)
{
    for (size_t b = 0; b < m->nbuckets; b++)
        for (struct xen_mapping *e = m->buckets[b]; e; e = e->hnext)
            if (e->pinned)
                fn(ctx, e);
}

struct xen_mapping *xen_map_pin(struct xen_map *m, uint64_t gfn)
{
    struct xen_mapping *e = find(m, gfn);

    if (!m->buckets)
        return NULL;
    if (!e) {
        e = insert(m, gfn);
        if (!e)
            return NULL;
    }
    if (e->next) { /* was in the LRU: becomes persistent */
        lru_unlink(e);
        m->lru_count--;
    }
    e->pinned = 1;
    if (!e->page) {
        if (m->nwant == m->capwant) {
            size_t cap = m->capwant ? 2 * m->capwant : 64;
            uint64_t *w = realloc(m->want, cap * sizeof(*w));
            if (!w)
                return e; /* mapped singly at first use instead */
            m->want = w;
            m->capwant = cap;
        }
        m->want[m->nwant++] = gfn;
    }
    return e;
}

void xen_map_unpin(struct xen_map *m, uint64_t gfn)
{
    struct xen_mapping *e = find(m, gfn);

    if (!e || !e->pinned)
        return;
    e->pinned = 0;
    for (size_t i = 0; i < m->nwant; i++)
        if (m->want[i] == gfn)
            m->want[i] = m->want[--m->nwant];
    if (!e->page) {
        drop(m, e);
        return;
    }
    lru_push_front(m, e);
    m->lru_count++;
    evict_lru(m);
}

int xen_map_is_pinned(const struct xen_map *m, uint64_t gfn)
{
    const struct xen_mapping *e = find(m, gfn);
    return e && e->pinned;
}
