/*
 * map.h — an open-addressing hash map from a 64-bit key to a non-NULL pointer.
 *
 * Owns: its slot array, allocated through the instance's glue allocator. Calls glue.c only.
 * Linear probing with backward-shift deletion (no tombstones, so lookups never degrade after
 * many removals); the load factor stays at or below 1/2.
 */
#ifndef PTMON_CORE_MAP_H
#define PTMON_CORE_MAP_H

#include <ptmon/backend.h>

struct map_slot {
    uint64_t key;
    void *value; /* NULL: slot empty */
};

struct map {
    struct map_slot *slots;
    size_t capacity; /* 0 or a power of two */
    size_t count;
};

void map_init(struct map *m);
/* Free the slot array (not the values). */
void map_fini(struct map *m, const ptmon_glue *glue);
void *map_get(const struct map *m, uint64_t key);
/* Insert or replace; @p value must not be NULL. @return 0 or PTMON_ENOMEM (map unchanged). */
int map_put(struct map *m, const ptmon_glue *glue, uint64_t key, void *value);
/* Make room for @p extra more keys so the next puts cannot fail. @return 0 or PTMON_ENOMEM. */
int map_reserve(struct map *m, const ptmon_glue *glue, size_t extra);
/* Remove @p key if present; @return its value or NULL. Never allocates. */
void *map_del(struct map *m, uint64_t key);
/* Bytes of memory the map holds. */
size_t map_bytes(const struct map *m);

/* Iteration: for (size_t i = 0; map_next(m, &i, &k, &v); ) — valid while the map is unchanged. */
int map_next(const struct map *m, size_t *pos, uint64_t *key, void **value);

#endif
