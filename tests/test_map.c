/*
 * test_map.c — the engine's hash map (src/core/map.c) against a plain array, through long
 * seeded sequences of inserts, replacements and deletions, and under allocation failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/internal.h"
#include "core/map.h"

#include <stdlib.h>
#include <string.h>

struct alloc_state {
    long live;
    int fail_next;
};

static void *counting_realloc(void *be, void *ptr, size_t old_size, size_t new_size)
{
    struct alloc_state *a = be;
    (void)old_size;
    if (new_size == 0) {
        if (ptr)
            a->live--;
        free(ptr);
        return NULL;
    }
    if (a->fail_next) {
        a->fail_next = 0;
        return NULL;
    }
    void *p = realloc(ptr, new_size);
    if (p && !ptr)
        a->live++;
    return p;
}

static ptmon_glue glue_for(struct alloc_state *a)
{
    ptmon_glue g = PTMON_GLUE_INIT;
    g.backend = a;
    g.realloc = counting_realloc;
    return g;
}

/* xorshift64*: reproducible sequences without global state */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

#define KEYS 700

static void random_operations_agree_with_a_plain_array(void **state)
{
    (void)state;
    struct alloc_state a = {0, 0};
    ptmon_glue g = glue_for(&a);
    struct map m;
    static uintptr_t ref[KEYS]; /* 0 = absent; value = some nonzero tag */
    uint64_t seed = 0x1234567;

    memset(ref, 0, sizeof(ref));
    map_init(&m);
    for (int step = 0; step < 200000; step++) {
        uint64_t r = next_rand(&seed);
        /* keys spread as gfns do: clustered runs (k) and far-apart ones (k << 20), and 0 */
        unsigned k = (unsigned)(r % KEYS);
        uint64_t key = (k & 1) ? (uint64_t)k << 20 : k;
        if ((r >> 32) % 3) {
            uintptr_t tag = (uintptr_t)(step + 1);
            assert_int_equal(map_put(&m, &g, key, (void *)tag), 0);
            ref[k] = tag;
        } else {
            void *old = map_del(&m, key);
            assert_int_equal((uintptr_t)old, ref[k]);
            ref[k] = 0;
        }
        if (step % 997 == 0) {
            size_t count = 0;
            for (unsigned i = 0; i < KEYS; i++) {
                uint64_t ki = (i & 1) ? (uint64_t)i << 20 : i;
                assert_int_equal((uintptr_t)map_get(&m, ki), ref[i]);
                count += ref[i] != 0;
            }
            assert_int_equal(m.count, count);
        }
    }
    /* iteration visits every key once */
    size_t seen = 0;
    uint64_t key;
    void *v;
    for (size_t pos = 0; map_next(&m, &pos, &key, &v);)
        seen++;
    assert_int_equal(seen, m.count);
    assert_true(map_bytes(&m) >= m.count * 2 * sizeof(struct map_slot));
    map_fini(&m, &g);
    assert_int_equal(a.live, 0);
}

static void failed_growth_leaves_the_map_unchanged(void **state)
{
    (void)state;
    struct alloc_state a = {0, 0};
    ptmon_glue g = glue_for(&a);
    struct map m;
    uint64_t i;

    map_init(&m);
    for (i = 0; i < 8; i++) /* 8 keys fit in the first 16 slots */
        assert_int_equal(map_put(&m, &g, i, (void *)(uintptr_t)(i + 1)), 0);
    a.fail_next = 1;
    assert_int_equal(map_put(&m, &g, 100, (void *)1), PTMON_ENOMEM);
    assert_int_equal(m.count, 8);
    assert_null(map_get(&m, 100));
    for (i = 0; i < 8; i++)
        assert_int_equal((uintptr_t)map_get(&m, i), i + 1);
    /* replacing an existing key never allocates */
    a.fail_next = 1;
    assert_int_equal(map_put(&m, &g, 3, (void *)77), 0);
    assert_int_equal((uintptr_t)map_get(&m, 3), 77);
    a.fail_next = 0;
    /* reserve makes the next puts infallible */
    assert_int_equal(map_reserve(&m, &g, 100), 0);
    a.fail_next = 1;
    for (i = 200; i < 300; i++)
        assert_int_equal(map_put(&m, &g, i, (void *)1), 0);
    a.fail_next = 0;
    map_fini(&m, &g);
    assert_int_equal(a.live, 0);
}

static void empty_map_answers_without_memory(void **state)
{
    (void)state;
    struct map m;
    uint64_t key;
    void *v;
    size_t pos = 0;
    map_init(&m);
    assert_null(map_get(&m, 0));
    assert_null(map_del(&m, 0));
    assert_int_equal(map_next(&m, &pos, &key, &v), 0);
    assert_int_equal(map_bytes(&m), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_operations_agree_with_a_plain_array),
        cmocka_unit_test(failed_growth_leaves_the_map_unchanged),
        cmocka_unit_test(empty_map_answers_without_memory),
    };
    return cmocka_run_group_tests_name("map", tests, NULL, NULL);
}
