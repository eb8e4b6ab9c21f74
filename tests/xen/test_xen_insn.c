/*
 * The instruction layer on its own (xen_insn.c, xen_store.c): decoding into write plans in
 * 64-, 32- and 16-bit code, flags, register results, refusals, the CAS loop, and a random-bytes
 * fuzz that must never crash or produce an out-of-range plan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_xen.h"

static struct xen_plan plan;

static void cpu64(struct xen_cpu *c)
{
    memset(c, 0, sizeof(*c));
    c->mode_bits = 64;
    c->r.rflags = 2;
}

static int decode(const struct xen_cpu *c, const void *insn, size_t n, uint32_t off)
{
    return xen_insn_plan(insn, n, c, off, NULL, NULL, NULL, &plan);
}

static void test_mode32_segments(void **state)
{
    struct xen_cpu c;
    static const uint8_t mov[] = {0x89, 0x07};               /* mov [edi], eax */
    static const uint8_t movfs[] = {0x64, 0x89, 0x07};       /* mov fs:[edi], eax */
    static const uint8_t mov16[] = {0x67, 0x66, 0x89, 0x05}; /* mov [di], ax (16-bit addr) */
    (void)state;
    memset(&c, 0, sizeof(c));
    c.mode_bits = 32;
    c.r.rdi = 0xc0001ff8;
    c.r.rax = 0x11223344;
    c.r.ds_base = 0x1000;
    assert_int_equal(decode(&c, mov, sizeof(mov), 0xff8), 0);
    assert_int_equal(plan.kind, PLAN_MOV);
    assert_int_equal(plan.size, 4);
    assert_int_equal(plan.ea, 0xc0002ff8);
    c.r.fs_base = 0x8;
    assert_int_equal(decode(&c, movfs, sizeof(movfs), 0x000), 0);
    assert_int_equal(plan.ea, 0xc0002000);
    /* the fault is not at this operand: refused */
    assert_int_equal(decode(&c, mov, sizeof(mov), 0x10), PTMON_ENOTSUP);
    c.r.rdi = 0x12340010;
    assert_int_equal(decode(&c, mov16, sizeof(mov16), 0x010), 0);
    assert_int_equal(plan.size, 2);
    assert_int_equal(plan.ea, 0x1010); /* DI only, plus DS base */
}

static void test_mode16(void **state)
{
    struct xen_cpu c;
    static const uint8_t mov[] = {0x89, 0x05}; /* 16-bit: mov [di], ax */
    (void)state;
    memset(&c, 0, sizeof(c));
    c.mode_bits = 16;
    c.r.rdi = 0xffff0008;
    assert_int_equal(decode(&c, mov, sizeof(mov), 0x008), 0);
    assert_int_equal(plan.size, 2);
    assert_int_equal(plan.ea, 0x0008);
}

static void test_rip_relative_and_index(void **state)
{
    struct xen_cpu c;
    static const uint8_t riprel[] = {0x48, 0x89, 0x05, 0x10, 0x00, 0x00, 0x00}; /* [rip+0x10] */
    static const uint8_t sib[] = {0x48, 0x89, 0x04, 0xcb};                      /* [rbx+rcx*8] */
    (void)state;
    cpu64(&c);
    c.r.rip = 0x401000;
    assert_int_equal(decode(&c, riprel, sizeof(riprel), 0x017), 0);
    assert_int_equal(plan.ea, 0x401017);
    assert_int_equal(plan.len, 7);
    c.r.rbx = 0xffff888000001000;
    c.r.rcx = 5;
    assert_int_equal(decode(&c, sib, sizeof(sib), 0x028), 0);
    assert_int_equal(plan.ea, 0xffff888000001028);
}

static void test_xchg_high8_and_flags(void **state)
{
    struct xen_cpu c;
    static const uint8_t xchg_ah[] = {0x86, 0x27};               /* xchg [rdi], ah */
    static const uint8_t cmpxchg_b[] = {0xf0, 0x0f, 0xb0, 0x0f}; /* lock cmpxchg [rdi], cl */
    uint8_t old[8] = {0x80}, now[8];
    (void)state;
    cpu64(&c);
    c.r.rax = 0x1234;
    assert_int_equal(decode(&c, xchg_ah, sizeof(xchg_ah), 0), 0);
    assert_int_equal(plan.kind, PLAN_XCHG);
    assert_int_equal(plan.src[0], 0x12);
    xen_plan_apply_regs(&plan, old, &c);
    assert_int_equal(c.r.rax, 0x8034);
    cpu64(&c);
    c.r.rax = 0x7f; /* 0x7f - 0x80: borrow, overflow, sign */
    c.r.rcx = 0x55;
    assert_int_equal(decode(&c, cmpxchg_b, sizeof(cmpxchg_b), 0), 0);
    xen_plan_new_bytes(&plan, &c, old, now);
    assert_int_equal(now[0], 0x80); /* unequal: memory unchanged */
    xen_plan_apply_regs(&plan, old, &c);
    assert_true(c.r.rflags & 1);     /* CF */
    assert_true(c.r.rflags & 0x800); /* OF */
    assert_true(c.r.rflags & 0x80);  /* SF */
    assert_false(c.r.rflags & 0x40); /* ZF */
    assert_int_equal(c.r.rax, 0x80); /* AL = memory */
}

static void test_refusals(void **state)
{
    struct xen_cpu c;
    static const uint8_t add[] = {0x48, 0x01, 0x07}; /* add: not ours */
    static const uint8_t lock_or_unaligned[] = {0xf0, 0x48, 0x09, 0x07};
    static const uint8_t load[] = {0x48, 0x8b, 0x07}; /* a load writes nothing */
    static const uint8_t bad[] = {0x0f, 0xff};        /* ud0 without modrm */
    static const uint8_t stos_std[] = {0x48, 0xab};
    static const uint8_t rep0[] = {0xf3, 0x48, 0xab};
    static const uint8_t ymm[] = {0xc5, 0xfe, 0x7f, 0x07};
    (void)state;
    cpu64(&c);
    assert_int_equal(decode(&c, add, sizeof(add), 0), PTMON_ENOTSUP);
    c.r.rdi = 4;
    assert_int_equal(decode(&c, lock_or_unaligned, sizeof(lock_or_unaligned), 4), PTMON_ENOTSUP);
    c.r.rdi = 0;
    assert_int_equal(decode(&c, load, sizeof(load), 0), PTMON_ENOTSUP);
    assert_int_equal(decode(&c, bad, sizeof(bad), 0), PTMON_ENOTSUP);
    assert_int_equal(decode(&c, add, 1, 0), PTMON_ENOTSUP); /* truncated */
    c.r.rflags |= 1u << 10;
    assert_int_equal(decode(&c, stos_std, sizeof(stos_std), 0), PTMON_ENOTSUP);
    c.r.rflags = 2;
    c.r.rcx = 0;
    assert_int_equal(decode(&c, rep0, sizeof(rep0), 0), PTMON_ENOTSUP);
    assert_int_equal(decode(&c, ymm, sizeof(ymm), 0), PTMON_ENOTSUP);
    c.r.rdi = 0xffc;
    static const uint8_t mov8[] = {0x48, 0x89, 0x07};
    assert_int_equal(decode(&c, mov8, sizeof(mov8), 0xffc), PTMON_ENOTSUP); /* crosses frame */
    assert_int_equal(xen_insn_plan(NULL, 3, &c, 0, NULL, NULL, NULL, &plan), PTMON_EINVAL);
    assert_int_equal(decode(&c, mov8, sizeof(mov8), 4096), PTMON_EINVAL);
}

static void test_rep_stos_addr32(void **state)
{
    struct xen_cpu c;
    static const uint8_t rep_stosd_a32[] = {0x67, 0xf3, 0xab}; /* rep stosd, ecx/edi */
    uint8_t old[4096] = {0};
    (void)state;
    cpu64(&c);
    c.r.rdi = 0xdead0000fffffff0ull; /* only EDI counts */
    c.r.rcx = 0xffff000000000010ull; /* only ECX counts: 16 */
    c.r.rax = 0xabcd;
    assert_int_equal(decode(&c, rep_stosd_a32, sizeof(rep_stosd_a32), 0xff0), 0);
    assert_int_equal(plan.count, 4); /* capped at the frame end */
    xen_plan_apply_regs(&plan, old, &c);
    assert_int_equal(c.r.rcx, 12);
    assert_int_equal(c.r.rdi, 0); /* wrapped in 32 bits, zero-extended */
    assert_int_equal(c.r.rip, 0); /* not done */
}

static void test_cas_loop(void **state)
{
    struct xen_cpu c;
    static const uint8_t lock_or[] = {0xf0, 0x48, 0x09, 0x07};
    uint64_t *page = aligned_alloc(4096, 4096);
    uint8_t told[8], old[8];
    (void)state;
    cpu64(&c);
    c.r.rax = 2;
    c.r.rdi = 0x28;
    assert_int_equal(decode(&c, lock_or, sizeof(lock_or), 0x28), 0);
    page[5] = 0x5001;
    memcpy(told, &page[5], 8);
    page[5] |= 0x60; /* A and D set by a walker since */
    assert_int_equal(xen_store_plan(&plan, &c, (uint8_t *)page + 0x28, told, 8, old), STORE_DONE);
    assert_int_equal(page[5], 0x5063);
    memcpy(told, &page[5], 8);
    page[5] ^= 0x1000; /* address bit: a real change */
    assert_int_equal(xen_store_plan(&plan, &c, (uint8_t *)page + 0x28, told, 8, old), STORE_RACE);
    assert_int_equal(page[5], 0x4063);
    /* 32-bit paging: A/D tolerated in each 4-byte entry, bit 37 is not an A/D bit in 8 */
    memcpy(told, &page[5], 8);
    page[5] |= 0x20ull << 32;
    assert_int_equal(xen_store_plan(&plan, &c, (uint8_t *)page + 0x28, told, 8, old), STORE_RACE);
    assert_int_equal(xen_store_plan(&plan, &c, (uint8_t *)page + 0x28, told, 4, old), STORE_DONE);
    free(page);
}

static int fake_read(void *ctx, uint64_t va, void *buf, size_t len)
{
    (void)ctx;
    (void)va;
    memset(buf, 0x5a, len);
    return 0;
}

static int fake_xmm(void *ctx, unsigned i, uint8_t out[16])
{
    (void)ctx;
    memset(out, (int)i, 16);
    return 0;
}

/* Random instructions and registers: no crash, and any plan stays inside the frame. */
static void test_fuzz(void **state)
{
    struct xen_cpu c;
    uint8_t insn[15], old[4096], now[4096];
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    unsigned planned = 0;
    (void)state;
    memset(old, 0x33, sizeof(old));
    for (int i = 0; i < 200000; i++) {
        for (int b = 0; b < 15; b++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            insn[b] = (uint8_t)seed;
        }
        if (i % 3 == 0) { /* bias towards write opcodes */
            static const uint8_t ops[] = {0x89, 0x87, 0x09, 0x21, 0x31, 0xab, 0xa5, 0xc7, 0x86};
            insn[0] = 0x48;
            insn[1] = ops[seed % sizeof(ops)];
            insn[2] = 0x07; /* [rdi] (or the next bytes for the string forms) */
        }
        memset(&c, 0, sizeof(c));
        c.mode_bits = (unsigned[]){16, 32, 64}[seed % 3];
        c.r.rdi = seed >> 3;
        c.r.rcx = seed >> 40;
        c.r.rsi = seed;
        c.r.rax = seed * 3;
        uint32_t off = (uint32_t)(i % 3 == 0 ? c.r.rdi : seed >> 20) & 0xfff;
        if (xen_insn_plan(insn, 15, &c, off, fake_read, fake_xmm, NULL, &plan) == 0) {
            planned++;
            assert_true(plan.size >= 1 && plan.size <= 16);
            assert_true(plan.count >= 1);
            assert_true(off + (size_t)plan.size * plan.count <= 4096);
            assert_true(plan.len >= 1 && plan.len <= 15);
            xen_plan_new_bytes(&plan, &c, old, now);
            xen_plan_apply_regs(&plan, old, &c);
        }
    }
    assert_true(planned > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mode32_segments),
        cmocka_unit_test(test_mode16),
        cmocka_unit_test(test_rip_relative_and_index),
        cmocka_unit_test(test_xchg_high8_and_flags),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_rep_stos_addr32),
        cmocka_unit_test(test_cas_loop),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
