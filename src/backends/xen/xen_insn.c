/*
 * Instruction decoding for in-place emulation of page-table writes. Owns: turning the faulting
 * instruction (Zydis 4) plus the vCPU's registers into a write plan, and the plan's arithmetic
 * (new bytes, flags, register results). Pure functions: no Xen, no mappings, no engine.
 * Anything not handled exactly returns PTMON_ENOTSUP, and the caller falls back to Xen's EMULATE.
 * May call: Zydis, and the read callbacks it is given (movs source, XMM registers).
 */
#include <string.h>

#include <Zydis/Zydis.h>

#include "xen_internal.h"

#define RF_CF (1ull << 0)
#define RF_PF (1ull << 2)
#define RF_AF (1ull << 4)
#define RF_ZF (1ull << 6)
#define RF_SF (1ull << 7)
#define RF_DF (1ull << 10)
#define RF_OF (1ull << 11)

static uint64_t *gpr(struct vm_event_regs_x86 *r, unsigned i)
{
    switch (i) {
    case 0:
        return &r->rax;
    case 1:
        return &r->rcx;
    case 2:
        return &r->rdx;
    case 3:
        return &r->rbx;
    case 4:
        return &r->rsp;
    case 5:
        return &r->rbp;
    case 6:
        return &r->rsi;
    case 7:
        return &r->rdi;
    case 8:
        return &r->r8;
    case 9:
        return &r->r9;
    case 10:
        return &r->r10;
    case 11:
        return &r->r11;
    case 12:
        return &r->r12;
    case 13:
        return &r->r13;
    case 14:
        return &r->r14;
    default:
        return &r->r15;
    }
}

static uint64_t gpr_get(const struct vm_event_regs_x86 *r, unsigned i)
{
    return *gpr((struct vm_event_regs_x86 *)r, i);
}

static uint64_t mask_of(unsigned bytes)
{
    return bytes >= 8 ? ~0ull : (1ull << (8 * bytes)) - 1;
}

/* Index (0..15) and high-byte flag of a general-purpose register; -1 if not one. */
static int gpr_index(ZydisRegister reg, unsigned *high8)
{
    ZydisRegister big;
    *high8 = reg == ZYDIS_REGISTER_AH || reg == ZYDIS_REGISTER_CH || reg == ZYDIS_REGISTER_DH ||
             reg == ZYDIS_REGISTER_BH;
    big = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, reg);
    if (big < ZYDIS_REGISTER_RAX || big > ZYDIS_REGISTER_R15)
        return -1;
    return (int)(big - ZYDIS_REGISTER_RAX);
}

static int reg_value(const struct xen_cpu *cpu, ZydisRegister reg, uint64_t *out)
{
    unsigned high8;
    int i = gpr_index(reg, &high8);
    if (i < 0)
        return PTMON_ENOTSUP;
    *out = gpr_get(&cpu->r, (unsigned)i) >> (high8 ? 8 : 0);
    return 0;
}

/* Write a result of @p bytes into GPR @p i as the CPU does (32-bit writes zero-extend). */
static void reg_write(struct vm_event_regs_x86 *r, unsigned i, unsigned high8, unsigned bytes,
                      uint64_t v)
{
    uint64_t *p = gpr(r, i);
    if (high8)
        *p = (*p & ~0xff00ull) | ((v & 0xff) << 8);
    else if (bytes >= 4)
        *p = v & mask_of(bytes);
    else
        *p = (*p & ~mask_of(bytes)) | (v & mask_of(bytes));
}

static uint64_t seg_base(const struct xen_cpu *cpu, ZydisRegister seg)
{
    if (cpu->mode_bits == 64)
        return seg == ZYDIS_REGISTER_FS   ? cpu->r.fs_base
               : seg == ZYDIS_REGISTER_GS ? cpu->r.gs_base
                                          : 0;
    switch (seg) {
    case ZYDIS_REGISTER_CS:
        return cpu->r.cs_base;
    case ZYDIS_REGISTER_SS:
        return cpu->r.ss_base;
    case ZYDIS_REGISTER_ES:
        return cpu->r.es_base;
    case ZYDIS_REGISTER_FS:
        return cpu->r.fs_base;
    case ZYDIS_REGISTER_GS:
        return cpu->r.gs_base;
    default:
        return cpu->r.ds_base;
    }
}

/* Linear address of a memory operand. */
static int mem_address(const ZydisDecodedInstruction *in, const ZydisDecodedOperand *op,
                       const struct xen_cpu *cpu, uint64_t *out)
{
    uint64_t ea = 0, v;

    if (op->mem.base == ZYDIS_REGISTER_RIP || op->mem.base == ZYDIS_REGISTER_EIP)
        ea = cpu->r.rip + in->length;
    else if (op->mem.base != ZYDIS_REGISTER_NONE) {
        if (reg_value(cpu, op->mem.base, &v) < 0)
            return PTMON_ENOTSUP;
        ea = v;
    }
    if (op->mem.index != ZYDIS_REGISTER_NONE) {
        if (reg_value(cpu, op->mem.index, &v) < 0)
            return PTMON_ENOTSUP; /* vector index (scatter): not ours */
        ea += v * (op->mem.scale ? op->mem.scale : 1);
    }
    if (op->mem.disp.has_displacement)
        ea += (uint64_t)op->mem.disp.value;
    ea &= in->address_width >= 64 ? ~0ull : mask_of(in->address_width / 8);
    ea += seg_base(cpu, op->mem.segment);
    if (cpu->mode_bits != 64)
        ea &= 0xffffffffull;
    *out = ea;
    return 0;
}

static void put_le(uint8_t *dst, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes && i < 8; i++)
        dst[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *src, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && i < 8; i++)
        v |= (uint64_t)src[i] << (8 * i);
    return v;
}

/* The source operand value (register or immediate) truncated to the operand size. */
static int source_value(const struct xen_cpu *cpu, const ZydisDecodedOperand *op, unsigned size,
                        uint64_t *out)
{
    if (op->type == ZYDIS_OPERAND_TYPE_IMMEDIATE)
        *out = op->imm.value.u & mask_of(size);
    else if (op->type == ZYDIS_OPERAND_TYPE_REGISTER) {
        if (reg_value(cpu, op->reg.value, out) < 0)
            return PTMON_ENOTSUP;
        *out &= mask_of(size);
    } else
        return PTMON_ENOTSUP;
    return 0;
}

static int is_vector_store(ZydisMnemonic m)
{
    switch (m) {
    case ZYDIS_MNEMONIC_MOVDQA:
    case ZYDIS_MNEMONIC_MOVDQU:
    case ZYDIS_MNEMONIC_MOVAPS:
    case ZYDIS_MNEMONIC_MOVUPS:
    case ZYDIS_MNEMONIC_MOVAPD:
    case ZYDIS_MNEMONIC_MOVUPD:
    case ZYDIS_MNEMONIC_MOVNTDQ:
    case ZYDIS_MNEMONIC_MOVNTPS:
    case ZYDIS_MNEMONIC_MOVNTPD:
    case ZYDIS_MNEMONIC_MOVLPS:
    case ZYDIS_MNEMONIC_MOVLPD:
    case ZYDIS_MNEMONIC_MOVQ:
    case ZYDIS_MNEMONIC_MOVD:
    case ZYDIS_MNEMONIC_VMOVDQA:
    case ZYDIS_MNEMONIC_VMOVDQU:
    case ZYDIS_MNEMONIC_VMOVAPS:
    case ZYDIS_MNEMONIC_VMOVUPS:
    case ZYDIS_MNEMONIC_VMOVQ:
    case ZYDIS_MNEMONIC_VMOVD:
        return 1;
    default:
        return 0;
    }
}

/* Fill a plan for a string store (stos / movs), limited to this frame. */
static int plan_string(const ZydisDecodedInstruction *in, const ZydisDecodedOperand *ops,
                       const struct xen_cpu *cpu, uint32_t offset, xen_read_va_fn read_va,
                       void *ctx, struct xen_plan *p)
{
    uint64_t count = 1, room, v;

    if (cpu->r.rflags & RF_DF)
        return PTMON_ENOTSUP; /* descending strings: rare for page tables, leave to Xen */
    p->rep = (in->attributes &
              (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE | ZYDIS_ATTRIB_HAS_REPNE)) != 0;
    if (p->rep) {
        count = cpu->r.rcx & (in->address_width >= 64 ? ~0ull : mask_of(in->address_width / 8));
        if (count == 0)
            return PTMON_ENOTSUP;
    }
    room = (4096 - offset) / p->size;
    if (room == 0)
        return PTMON_ENOTSUP; /* element crosses the frame end */
    if (count > room)
        count = room;
    if (p->kind == PLAN_STOS) {
        if (reg_value(cpu, ZYDIS_REGISTER_RAX, &v) < 0)
            return PTMON_ENOTSUP;
        for (uint64_t i = 0; i < count; i++)
            put_le(p->src + i * p->size, v, p->size);
    } else {
        uint64_t src;
        if (!read_va || mem_address(in, &ops[1], cpu, &src) < 0)
            return PTMON_ENOTSUP;
        room = (4096 - (src & 0xfff)) / p->size; /* the source stays in one page too */
        if (room == 0)
            return PTMON_ENOTSUP;
        if (count > room)
            count = room;
        if (read_va(ctx, src, p->src, (size_t)count * p->size) < 0)
            return PTMON_ENOTSUP;
    }
    p->count = (unsigned)count;
    return 0;
}

static int plan_vector(const ZydisDecodedInstruction *in, const ZydisDecodedOperand *ops,
                       xen_read_xmm_fn read_xmm, void *ctx, struct xen_plan *p)
{
    const ZydisDecodedOperand *s = &ops[1];
    uint8_t x[16];

    if (s->type != ZYDIS_OPERAND_TYPE_REGISTER)
        return PTMON_ENOTSUP;
    if (s->reg.value < ZYDIS_REGISTER_XMM0 || s->reg.value > ZYDIS_REGISTER_XMM15)
        return PTMON_ENOTSUP; /* YMM/ZMM contents are not in the HVM CPU record */
    if (p->size > 16 || !read_xmm ||
        read_xmm(ctx, (unsigned)(s->reg.value - ZYDIS_REGISTER_XMM0), x) < 0)
        return PTMON_ENOTSUP;
    (void)in;
    memcpy(p->src, x, p->size);
    return 0;
}

int xen_insn_plan(const uint8_t *insn, size_t ilen, const struct xen_cpu *cpu, uint32_t offset,
                  xen_read_va_fn read_va, xen_read_xmm_fn read_xmm, void *ctx, struct xen_plan *p)
{
    ZydisDecoder dec;
    ZydisDecodedInstruction in;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    ZydisMachineMode mode = cpu->mode_bits == 64   ? ZYDIS_MACHINE_MODE_LONG_64
                            : cpu->mode_bits == 32 ? ZYDIS_MACHINE_MODE_LEGACY_32
                                                   : ZYDIS_MACHINE_MODE_LEGACY_16;
    ZydisStackWidth sw = cpu->mode_bits == 64   ? ZYDIS_STACK_WIDTH_64
                         : cpu->mode_bits == 32 ? ZYDIS_STACK_WIDTH_32
                                                : ZYDIS_STACK_WIDTH_16;
    const ZydisDecodedOperand *m;
    uint64_t v;

    if (!insn || !cpu || !p || offset >= 4096 || ilen == 0)
        return PTMON_EINVAL;
    if (ZYAN_FAILED(ZydisDecoderInit(&dec, mode, sw)) ||
        ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, insn, ilen > 15 ? 15 : ilen, &in, ops)))
        return PTMON_ENOTSUP;
    memset(p, 0, offsetof(struct xen_plan, src));
    p->len = in.length;
    p->count = 1;
    p->addr_bytes = in.address_width / 8;
    m = &ops[0];
    /* xchg may be encoded reg, mem */
    if (in.mnemonic == ZYDIS_MNEMONIC_XCHG && ops[1].type == ZYDIS_OPERAND_TYPE_MEMORY)
        m = &ops[1];
    if (m->type != ZYDIS_OPERAND_TYPE_MEMORY || !(m->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE))
        return PTMON_ENOTSUP;
    p->size = m->size / 8;
    if (p->size == 0 || p->size > 16)
        return PTMON_ENOTSUP;
    if (mem_address(&in, m, cpu, &p->ea) < 0 || (p->ea & 0xfff) != offset)
        return PTMON_ENOTSUP; /* the fault is not at this operand's first byte */
    if (offset + p->size > 4096)
        return PTMON_ENOTSUP;

    switch (in.mnemonic) {
    case ZYDIS_MNEMONIC_MOV:
    case ZYDIS_MNEMONIC_MOVNTI:
        p->kind = PLAN_MOV;
        if (p->size > 8 || source_value(cpu, &ops[1], p->size, &v) < 0)
            return PTMON_ENOTSUP;
        put_le(p->src, v, p->size);
        return 0;
    case ZYDIS_MNEMONIC_XCHG: {
        const ZydisDecodedOperand *r = m == &ops[0] ? &ops[1] : &ops[0];
        int i;
        p->kind = PLAN_XCHG;
        if (p->size > 8 || r->type != ZYDIS_OPERAND_TYPE_REGISTER)
            return PTMON_ENOTSUP;
        i = gpr_index(r->reg.value, &p->high8);
        if (i < 0 || source_value(cpu, r, p->size, &v) < 0)
            return PTMON_ENOTSUP;
        p->reg = (unsigned)i;
        put_le(p->src, v, p->size);
        break;
    }
    case ZYDIS_MNEMONIC_CMPXCHG:
        p->kind = PLAN_CMPXCHG;
        if (p->size > 8 || source_value(cpu, &ops[1], p->size, &v) < 0)
            return PTMON_ENOTSUP;
        put_le(p->src, v, p->size);
        break;
    case ZYDIS_MNEMONIC_CMPXCHG8B:
    case ZYDIS_MNEMONIC_CMPXCHG16B: {
        unsigned half = p->size / 2;
        p->kind = PLAN_CMPXCHG_DOUBLE;
        if (half != 4 && half != 8)
            return PTMON_ENOTSUP;
        put_le(p->src, cpu->r.rbx, half);
        put_le(p->src + half, cpu->r.rcx, half);
        break;
    }
    case ZYDIS_MNEMONIC_AND:
    case ZYDIS_MNEMONIC_OR:
    case ZYDIS_MNEMONIC_XOR:
        p->kind = in.mnemonic == ZYDIS_MNEMONIC_AND  ? PLAN_AND
                  : in.mnemonic == ZYDIS_MNEMONIC_OR ? PLAN_OR
                                                     : PLAN_XOR;
        if (p->size > 8 || source_value(cpu, &ops[1], p->size, &v) < 0)
            return PTMON_ENOTSUP;
        put_le(p->src, v, p->size);
        break;
    case ZYDIS_MNEMONIC_BTS:
    case ZYDIS_MNEMONIC_BTR:
    case ZYDIS_MNEMONIC_BTC:
        p->kind = in.mnemonic == ZYDIS_MNEMONIC_BTS   ? PLAN_BTS
                  : in.mnemonic == ZYDIS_MNEMONIC_BTR ? PLAN_BTR
                                                      : PLAN_BTC;
        if (p->size > 8 || source_value(cpu, &ops[1], 8, &v) < 0)
            return PTMON_ENOTSUP;
        if (ops[1].type == ZYDIS_OPERAND_TYPE_IMMEDIATE)
            v &= p->size * 8 - 1;
        else if (v >= p->size * 8)
            return PTMON_ENOTSUP; /* register bit offsets address a bit string beyond */
        p->bit = (unsigned)v;
        break;
    case ZYDIS_MNEMONIC_STOSB:
    case ZYDIS_MNEMONIC_STOSW:
    case ZYDIS_MNEMONIC_STOSD:
    case ZYDIS_MNEMONIC_STOSQ:
        p->kind = PLAN_STOS;
        return plan_string(&in, ops, cpu, offset, read_va, ctx, p);
    case ZYDIS_MNEMONIC_MOVSB:
    case ZYDIS_MNEMONIC_MOVSW:
    case ZYDIS_MNEMONIC_MOVSD:
    case ZYDIS_MNEMONIC_MOVSQ:
        if (ops[1].type != ZYDIS_OPERAND_TYPE_MEMORY)
            return PTMON_ENOTSUP; /* SSE movsd xmm form */
        p->kind = PLAN_MOVS;
        return plan_string(&in, ops, cpu, offset, read_va, ctx, p);
    default:
        if (!is_vector_store(in.mnemonic))
            return PTMON_ENOTSUP;
        if (ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER &&
            source_value(cpu, &ops[1], p->size, &v) == 0) { /* movq/movd from a GPR */
            p->kind = PLAN_MOV;
            put_le(p->src, v, p->size);
            return 0;
        }
        p->kind = PLAN_VEC;
        return plan_vector(&in, ops, read_xmm, ctx, p);
    }
    /* read-modify-write kinds: the CAS needs natural alignment */
    if (offset % p->size)
        return PTMON_ENOTSUP;
    return 0;
}

/* ---- plan arithmetic --------------------------------------------------------------------- */

static unsigned parity8(uint64_t v)
{
    v &= 0xff;
    v ^= v >> 4;
    v ^= v >> 2;
    v ^= v >> 1;
    return !(v & 1);
}

static uint64_t logic_flags(uint64_t fl, uint64_t res, unsigned size)
{
    fl &= ~(RF_CF | RF_OF | RF_ZF | RF_SF | RF_PF);
    res &= mask_of(size);
    if (!res)
        fl |= RF_ZF;
    if (res >> (8 * size - 1) & 1)
        fl |= RF_SF;
    if (parity8(res))
        fl |= RF_PF;
    return fl;
}

static uint64_t sub_flags(uint64_t fl, uint64_t a, uint64_t b, unsigned size)
{
    uint64_t m = mask_of(size), res = (a - b) & m, sign = 1ull << (8 * size - 1);
    a &= m;
    b &= m;
    fl &= ~(RF_CF | RF_OF | RF_ZF | RF_SF | RF_PF | RF_AF);
    if (a < b)
        fl |= RF_CF;
    if (!res)
        fl |= RF_ZF;
    if (res & sign)
        fl |= RF_SF;
    if (parity8(res))
        fl |= RF_PF;
    if ((a ^ b ^ res) & 0x10)
        fl |= RF_AF;
    if ((a ^ b) & (a ^ res) & sign)
        fl |= RF_OF;
    return fl;
}

static uint64_t acc_value(const struct xen_cpu *cpu, unsigned size)
{
    return cpu->r.rax & mask_of(size);
}

int xen_plan_cmp_equal(const struct xen_plan *p, const struct xen_cpu *cpu, const uint8_t *old)
{
    if (p->kind == PLAN_CMPXCHG)
        return get_le(old, p->size) == acc_value(cpu, p->size);
    if (p->kind == PLAN_CMPXCHG_DOUBLE) {
        unsigned h = p->size / 2;
        return get_le(old, h) == (cpu->r.rax & mask_of(h)) &&
               get_le(old + h, h) == (cpu->r.rdx & mask_of(h));
    }
    return 0;
}

void xen_plan_new_bytes(const struct xen_plan *p, const struct xen_cpu *cpu, const uint8_t *old,
                        uint8_t *out)
{
    size_t total = (size_t)p->size * p->count;
    uint64_t o = get_le(old, p->size), s = get_le(p->src, p->size), bit = 1ull << p->bit;

    switch (p->kind) {
    case PLAN_CMPXCHG:
    case PLAN_CMPXCHG_DOUBLE:
        memcpy(out, xen_plan_cmp_equal(p, cpu, old) ? p->src : old, p->size);
        return;
    case PLAN_AND:
        put_le(out, o & s, p->size);
        return;
    case PLAN_OR:
        put_le(out, o | s, p->size);
        return;
    case PLAN_XOR:
        put_le(out, o ^ s, p->size);
        return;
    case PLAN_BTS:
        put_le(out, o | bit, p->size);
        return;
    case PLAN_BTR:
        put_le(out, o & ~bit, p->size);
        return;
    case PLAN_BTC:
        put_le(out, o ^ bit, p->size);
        return;
    default:
        memcpy(out, p->src, total);
        return;
    }
}

/* Advance a string register by @p delta in the instruction's address width. */
static void string_advance(uint64_t *reg, uint64_t delta, unsigned addr_bytes)
{
    uint64_t m = mask_of(addr_bytes);
    *reg = addr_bytes >= 4 ? ((*reg + delta) & m) : ((*reg & ~m) | ((*reg + delta) & m));
}

void xen_plan_apply_regs(const struct xen_plan *p, const uint8_t *old, struct xen_cpu *cpu)
{
    struct vm_event_regs_x86 *r = &cpu->r;
    uint64_t o = get_le(old, p->size), s = get_le(p->src, p->size);
    unsigned addr_bytes = p->addr_bytes ? p->addr_bytes : cpu->mode_bits / 8;
    int done = 1;

    switch (p->kind) {
    case PLAN_XCHG:
        reg_write(r, p->reg, p->high8, p->size, o);
        break;
    case PLAN_CMPXCHG: {
        int eq = xen_plan_cmp_equal(p, cpu, old);
        r->rflags = sub_flags(r->rflags, acc_value(cpu, p->size), o, p->size);
        if (!eq)
            reg_write(r, 0, 0, p->size, o);
        break;
    }
    case PLAN_CMPXCHG_DOUBLE: {
        unsigned h = p->size / 2;
        if (xen_plan_cmp_equal(p, cpu, old))
            r->rflags |= RF_ZF;
        else {
            r->rflags &= ~RF_ZF;
            reg_write(r, 0, 0, h, get_le(old, h));
            reg_write(r, 2, 0, h, get_le(old + h, h));
        }
        break;
    }
    case PLAN_AND:
        r->rflags = logic_flags(r->rflags, o & s, p->size);
        break;
    case PLAN_OR:
        r->rflags = logic_flags(r->rflags, o | s, p->size);
        break;
    case PLAN_XOR:
        r->rflags = logic_flags(r->rflags, o ^ s, p->size);
        break;
    case PLAN_BTS:
    case PLAN_BTR:
    case PLAN_BTC:
        r->rflags = (r->rflags & ~RF_CF) | ((o >> p->bit) & 1 ? RF_CF : 0);
        break;
    case PLAN_STOS:
    case PLAN_MOVS:
        string_advance(&r->rdi, (uint64_t)p->count * p->size, addr_bytes);
        if (p->kind == PLAN_MOVS)
            string_advance(&r->rsi, (uint64_t)p->count * p->size, addr_bytes);
        if (p->rep) {
            string_advance(&r->rcx, (uint64_t)0 - p->count, addr_bytes);
            done = (r->rcx & mask_of(addr_bytes)) == 0; /* else: re-execute for the rest */
        }
        break;
    default:
        break;
    }
    if (done) {
        r->rip += p->len;
        if (cpu->mode_bits != 64)
            r->rip &= 0xffffffffull;
    }
}
