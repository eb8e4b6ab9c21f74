/*
 * map.c — open-addressing hash map, uint64 key → pointer (see map.h).
 *
 * Owns: the slot array. Calls glue.c for memory.
 */
#include "core/map.h"
#include "core/internal.h"

#include <string.h>

#define MAP_MIN_CAPACITY 8

/* Keys are guest frame numbers and entry addresses: sequential runs are common, so mix them
 * (a 64-bit multiplicative hash; the high bits are the best mixed). */
static size_t map_home(const struct map *m, uint64_t key)
{
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    return (size_t)h & (m->capacity - 1);
}

void map_init(struct map *m)
{
    memset(m, 0, sizeof(*m));
}

void map_fini(struct map *m, const ptmon_glue *glue)
{
    glue_free(glue, m->slots, m->capacity * sizeof(*m->slots));
    map_init(m);
}

static struct map_slot *map_find(const struct map *m, uint64_t key)
{
    if (!m->capacity)
        return NULL;
    for (size_t i = map_home(m, key);; i = (i + 1) & (m->capacity - 1)) {
        struct map_slot *s = &m->slots[i];
        if (!s->value)
            return NULL;
        if (s->key == key)
            return s;
    }
}

void *map_get(const struct map *m, uint64_t key)
{
    struct map_slot *s = map_find(m, key);
    return s ? s->value : NULL;
}

static void map_insert_new(struct map *m, uint64_t key, void *value)
{
    size_t i = map_home(m, key);
    while (m->slots[i].value)
        i = (i + 1) & (m->capacity - 1);
    m->slots[i].key = key;
    m->slots[i].value = value;
    m->count++;
}

static int map_resize(struct map *m, const ptmon_glue *glue, size_t capacity)
{
    struct map old = *m;
    struct map_slot *slots = glue_alloc(glue, capacity * sizeof(*slots));

    if (!slots)
        return PTMON_ENOMEM;
    memset(slots, 0, capacity * sizeof(*slots));
    m->slots = slots;
    m->capacity = capacity;
    m->count = 0;
    for (size_t i = 0; i < old.capacity; i++)
        if (old.slots[i].value)
            map_insert_new(m, old.slots[i].key, old.slots[i].value);
    glue_free(glue, old.slots, old.capacity * sizeof(*old.slots));
    return 0;
}

int map_reserve(struct map *m, const ptmon_glue *glue, size_t extra)
{
    size_t want = m->count + extra, capacity = m->capacity ? m->capacity : MAP_MIN_CAPACITY;

    while (want > capacity / 2)
        capacity *= 2;
    return capacity == m->capacity ? 0 : map_resize(m, glue, capacity);
}

int map_put(struct map *m, const ptmon_glue *glue, uint64_t key, void *value)
{
    struct map_slot *s = map_find(m, key);
    int rc;

    if (s) {
        s->value = value;
        return 0;
    }
    rc = map_reserve(m, glue, 1);
    if (rc < 0)
        return rc;
    map_insert_new(m, key, value);
    return 0;
}

/* Does @p home lie in the cyclic interval (hole, i]? Then the entry at i would become
 * unreachable if moved into the hole, so it stays. */
static int map_home_after_hole(size_t hole, size_t home, size_t i)
{
    if (hole <= i)
        return hole < home && home <= i;
    return hole < home || home <= i;
}

void *map_del(struct map *m, uint64_t key)
{
    struct map_slot *s = map_find(m, key);
    size_t mask = m->capacity - 1, hole, i;
    void *value;

    if (!s)
        return NULL;
    value = s->value;
    hole = (size_t)(s - m->slots);
    /* Backward-shift: pull later members of the probe run into the hole so that no lookup
     * ever meets an empty slot before its key. */
    for (i = (hole + 1) & mask; m->slots[i].value; i = (i + 1) & mask) {
        size_t home = map_home(m, m->slots[i].key);
        if (map_home_after_hole(hole, home, i))
            continue;
        m->slots[hole] = m->slots[i];
        hole = i;
    }
    m->slots[hole].value = NULL;
    m->slots[hole].key = 0;
    m->count--;
    return value;
}

size_t map_bytes(const struct map *m)
{
    return m->capacity * sizeof(*m->slots);
}

int map_next(const struct map *m, size_t *pos, uint64_t *key, void **value)
{
    for (; *pos < m->capacity; (*pos)++) {
        const struct map_slot *s = &m->slots[*pos];
        if (s->value) {
            *key = s->key;
            *value = s->value;
            (*pos)++;
            return 1;
        }
    }
    return 0;
}
