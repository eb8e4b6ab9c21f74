/*
 * Atomic stores into guest frames through our foreign mappings. Owns: piecewise-atomic plain
 * stores and loads, and the compare-and-swap loop that performs a read-modify-write plan
 * (xchg, cmpxchg, lock and/or/xor, bt*) while the guest's page walker may set A/D bits in the
 * same entry concurrently. Our stores bypass EPT: they raise no event.
 * May call: the plan arithmetic of xen_insn.c.
 */
#include <string.h>

#include "xen_internal.h"

#define AD_BITS 0x60u /* Accessed (bit 5) and Dirty (bit 6) of an entry's first byte */

void xen_store_bytes(uint8_t *dst, const uint8_t *src, size_t len)
{
    while (len) {
        uintptr_t a = (uintptr_t)dst;
        if (len >= 8 && !(a & 7)) {
            uint64_t v;
            memcpy(&v, src, 8);
            __atomic_store_n((uint64_t *)(void *)dst, v, __ATOMIC_RELAXED);
            dst += 8, src += 8, len -= 8;
        } else if (len >= 4 && !(a & 3)) {
            uint32_t v;
            memcpy(&v, src, 4);
            __atomic_store_n((uint32_t *)(void *)dst, v, __ATOMIC_RELAXED);
            dst += 4, src += 4, len -= 4;
        } else {
            __atomic_store_n(dst, *src, __ATOMIC_RELAXED);
            dst++, src++, len--;
        }
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

void xen_load_bytes(uint8_t *dst, const uint8_t *src, size_t len)
{
    while (len) {
        uintptr_t a = (uintptr_t)src;
        if (len >= 8 && !(a & 7)) {
            uint64_t v = __atomic_load_n((const uint64_t *)(const void *)src, __ATOMIC_RELAXED);
            memcpy(dst, &v, 8);
            dst += 8, src += 8, len -= 8;
        } else if (len >= 4 && !(a & 3)) {
            uint32_t v = __atomic_load_n((const uint32_t *)(const void *)src, __ATOMIC_RELAXED);
            memcpy(dst, &v, 4);
            dst += 4, src += 4, len -= 4;
        } else {
            *dst = __atomic_load_n(src, __ATOMIC_RELAXED);
            dst++, src++, len--;
        }
    }
}

/* One naturally aligned compare-and-swap of @p size bytes. @return 1 on success; on failure
 * @p expect receives the current bytes. */
static int cas(uint8_t *dst, uint8_t *expect, const uint8_t *desired, unsigned size)
{
    switch (size) {
    case 1:
        return __atomic_compare_exchange_n(dst, expect, *desired, 0, __ATOMIC_SEQ_CST,
                                           __ATOMIC_SEQ_CST);
    case 2: {
        uint16_t e, d;
        int ok;
        memcpy(&e, expect, 2);
        memcpy(&d, desired, 2);
        ok = __atomic_compare_exchange_n((uint16_t *)(void *)dst, &e, d, 0, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST);
        memcpy(expect, &e, 2);
        return ok;
    }
    case 4: {
        uint32_t e, d;
        int ok;
        memcpy(&e, expect, 4);
        memcpy(&d, desired, 4);
        ok = __atomic_compare_exchange_n((uint32_t *)(void *)dst, &e, d, 0, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST);
        memcpy(expect, &e, 4);
        return ok;
    }
    case 8: {
        uint64_t e, d;
        int ok;
        memcpy(&e, expect, 8);
        memcpy(&d, desired, 8);
        ok = __atomic_compare_exchange_n((uint64_t *)(void *)dst, &e, d, 0, __ATOMIC_SEQ_CST,
                                         __ATOMIC_SEQ_CST);
        memcpy(expect, &e, 8);
        return ok;
    }
#if defined(__x86_64__)
    case 16: {
        uint64_t elo, ehi, dlo, dhi;
        unsigned char ok;
        memcpy(&elo, expect, 8);
        memcpy(&ehi, expect + 8, 8);
        memcpy(&dlo, desired, 8);
        memcpy(&dhi, desired + 8, 8);
        /* cmpxchg16b: no libatomic dependency, the instruction the guest itself used */
        __asm__ __volatile__("lock cmpxchg16b %1\n\tsete %0"
                             : "=q"(ok), "+m"(*(volatile uint8_t(*)[16])(void *)dst), "+a"(elo),
                               "+d"(ehi)
                             : "b"(dlo), "c"(dhi)
                             : "memory", "cc");
        memcpy(expect, &elo, 8);
        memcpy(expect + 8, &ehi, 8);
        return ok;
    }
#endif
    default:
        return 0;
    }
}

/* @return 1 if @p a and @p b (@p size bytes at page offset @p off) differ only in A/D bits of
 * entries of @p entry_size bytes. */
static int only_ad_differs(const uint8_t *a, const uint8_t *b, unsigned size, unsigned off,
                           unsigned entry_size)
{
    for (unsigned i = 0; i < size; i++) {
        unsigned diff = a[i] ^ b[i];
        if (((off + i) % entry_size) == 0)
            diff &= ~AD_BITS;
        if (diff)
            return 0;
    }
    return 1;
}

static int is_rmw(enum xen_plan_kind k)
{
    return k != PLAN_MOV && k != PLAN_STOS && k != PLAN_MOVS && k != PLAN_VEC;
}

int xen_store_plan(const struct xen_plan *p, const struct xen_cpu *cpu, uint8_t *dst,
                   const uint8_t *told_old, unsigned entry_size, uint8_t *old_out)
{
    size_t total = (size_t)p->size * p->count;
    unsigned off = (unsigned)((uintptr_t)dst & 0xfff);
    uint8_t cur[16], want[16];

    if (!is_rmw(p->kind)) { /* a plain store: the CPU would not look at the old value either */
        xen_load_bytes(old_out, dst, total);
        xen_store_bytes(dst, p->src, total);
        return STORE_DONE;
    }
    if (entry_size == 0)
        entry_size = 8;
    memcpy(cur, told_old, p->size);
    /* Bounded: each retry means the page walker changed A/D bits under us again. */
    for (int tries = 0; tries < 64; tries++) {
        if (!only_ad_differs(cur, told_old, p->size, off, entry_size))
            return STORE_RACE;
        xen_plan_new_bytes(p, cpu, cur, want);
        if (cas(dst, cur, want, p->size)) { /* cur still holds what was replaced */
            memcpy(old_out, cur, p->size);
            return STORE_DONE;
        }
    }
    return STORE_RACE;
}
