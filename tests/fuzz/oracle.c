/*
 * oracle.c — the reference MMU (see oracle.h). Written from the Intel SDM tables, one function
 * per paging mode, with no attempt at sharing or speed: it must be obviously right.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include "oracle.h"

#include <string.h>

#define P_BIT  (1ull << 0)
#define RW_BIT (1ull << 1)
#define US_BIT (1ull << 2)
#define PS_BIT (1ull << 7)
#define XD_BIT (1ull << 63)

/* A mask of bits lo..hi inclusive (empty if lo > hi). */
static uint64_t span_mask(unsigned lo, unsigned hi)
{
    uint64_t m = 0;
    for (unsigned b = lo; b <= hi && b < 64; b++)
        m |= 1ull << b;
    return m;
}

unsigned oracle_levels(const struct oracle_mmu *mmu)
{
    switch (mmu->mode) {
    case PTMON_MODE_32BIT:
        return 2;
    case PTMON_MODE_PAE:
        return 3;
    case PTMON_MODE_4LEVEL:
        return 4;
    case PTMON_MODE_5LEVEL:
        return 5;
    default:
        return 0;
    }
}

uint64_t oracle_level_size(const struct oracle_mmu *mmu, unsigned level)
{
    if (mmu->mode == PTMON_MODE_32BIT)
        return level == 1 ? 4096ull : 4ull << 20;
    /* 4K, 2M, 1G, 512G, 256T */
    uint64_t size = 4096;
    for (unsigned l = 1; l < level; l++)
        size *= 512;
    return size;
}

/* What one entry means; filled by the per-mode decoders. */
enum kind { K_NOT_PRESENT, K_RESERVED, K_TABLE, K_PAGE };

struct meaning {
    enum kind kind;
    uint64_t addr; /* next table or page base */
    uint64_t size; /* page size for K_PAGE */
    int w, u, nx;  /* what the entry allows / forbids */
};

static void decode_32bit(const struct oracle_mmu *mmu, unsigned level, uint64_t e,
                         struct meaning *m)
{
    m->w = (e & RW_BIT) != 0;
    m->u = (e & US_BIT) != 0;
    m->nx = 0;
    if (!(e & P_BIT)) {
        m->kind = K_NOT_PRESENT;
        return;
    }
    if (level == 1) {
        m->kind = K_PAGE;
        m->addr = e & 0xfffff000ull;
        m->size = 4096;
        return;
    }
    if (!mmu->pse || !(e & PS_BIT)) { /* PS ignored without CR4.PSE */
        m->kind = K_TABLE;
        m->addr = e & 0xfffff000ull;
        return;
    }
    /* 4 MiB page: bits 31:22 are address bits 31:22; bits 20:13 are address bits 39:32, as
     * many of them as MAXPHYADDR allows (at most 8); bit 21 and the rest are reserved. */
    unsigned high = mmu->maxphyaddr > 40 ? 8 : mmu->maxphyaddr - 32;
    uint64_t reserved = (1ull << 21) | span_mask(13 + high, 20);
    if (e & reserved) {
        m->kind = K_RESERVED;
        return;
    }
    uint64_t hi_bits = (e >> 13) & 0xff;
    m->kind = K_PAGE;
    m->addr = (e & 0xffc00000ull) | (hi_bits << 32);
    m->size = 4ull << 20;
}

static void decode_pae(const struct oracle_mmu *mmu, unsigned level, uint64_t e, struct meaning *m)
{
    uint64_t above_phys = span_mask(mmu->maxphyaddr, 63);
    uint64_t addr_bits = span_mask(12, mmu->maxphyaddr - 1);

    if (!(e & P_BIT)) {
        m->kind = K_NOT_PRESENT;
        m->w = (e & RW_BIT) != 0;
        m->u = (e & US_BIT) != 0;
        return;
    }
    if (level == 3) {
        /* PDPTE: no R/W, U/S, XD; bits 2:1, 8:5 and 63:MAXPHYADDR reserved */
        m->w = 1;
        m->u = 1;
        m->nx = 0;
        if (e & ((1ull << 1) | (1ull << 2) | span_mask(5, 8) | above_phys)) {
            m->kind = K_RESERVED;
            return;
        }
        m->kind = K_TABLE;
        m->addr = e & addr_bits;
        return;
    }
    m->w = (e & RW_BIT) != 0;
    m->u = (e & US_BIT) != 0;
    m->nx = mmu->nxe && (e & XD_BIT);
    uint64_t reserved = span_mask(mmu->maxphyaddr, 62) | (mmu->nxe ? 0 : XD_BIT);
    if (level == 2 && (e & PS_BIT))
        reserved |= span_mask(13, 20);
    if (e & reserved) {
        m->kind = K_RESERVED;
        return;
    }
    if (level == 2 && (e & PS_BIT)) {
        m->kind = K_PAGE;
        m->addr = e & span_mask(21, mmu->maxphyaddr - 1);
        m->size = 2ull << 20;
    } else if (level == 1) {
        m->kind = K_PAGE;
        m->addr = e & addr_bits;
        m->size = 4096;
    } else {
        m->kind = K_TABLE;
        m->addr = e & addr_bits;
    }
}

static void decode_ia32e(const struct oracle_mmu *mmu, unsigned level, uint64_t e,
                         struct meaning *m)
{
    m->w = (e & RW_BIT) != 0;
    m->u = (e & US_BIT) != 0;
    m->nx = mmu->nxe && (e & XD_BIT);
    if (!(e & P_BIT)) {
        m->kind = K_NOT_PRESENT;
        return;
    }
    /* bits 62:52 are ignored (software); 51:MAXPHYADDR reserved */
    uint64_t reserved = span_mask(mmu->maxphyaddr, 51) | (mmu->nxe ? 0 : XD_BIT);
    int ps = (e & PS_BIT) != 0;
    if (level >= 4 && ps) {
        m->kind = K_RESERVED; /* no pages at PML4/PML5 */
        return;
    }
    if (level == 3 && ps)
        reserved |= span_mask(13, 29);
    if (level == 2 && ps)
        reserved |= span_mask(13, 20);
    if (e & reserved) {
        m->kind = K_RESERVED;
        return;
    }
    if (level == 1) {
        m->kind = K_PAGE;
        m->addr = e & span_mask(12, mmu->maxphyaddr - 1);
        m->size = 4096;
    } else if (ps) {
        m->kind = K_PAGE;
        m->size = level == 3 ? 1ull << 30 : 2ull << 20;
        m->addr = e & span_mask(level == 3 ? 30 : 21, mmu->maxphyaddr - 1);
    } else {
        m->kind = K_TABLE;
        m->addr = e & span_mask(12, mmu->maxphyaddr - 1);
    }
}

static unsigned va_index(const struct oracle_mmu *mmu, unsigned level, uint64_t va)
{
    switch (mmu->mode) {
    case PTMON_MODE_32BIT:
        return level == 2 ? (unsigned)(va >> 22) & 1023u : (unsigned)(va >> 12) & 1023u;
    case PTMON_MODE_PAE:
        if (level == 3)
            return (unsigned)(va >> 30) & 3u;
        return (unsigned)(va >> (level == 2 ? 21 : 12)) & 511u;
    default:
        return (unsigned)(va >> (12 + 9 * (level - 1))) & 511u;
    }
}

static int va_ok(const struct oracle_mmu *mmu, uint64_t va)
{
    int64_t s;
    switch (mmu->mode) {
    case PTMON_MODE_32BIT:
    case PTMON_MODE_PAE:
        return va < (1ull << 32);
    case PTMON_MODE_4LEVEL:
        s = (int64_t)(va << 16) >> 16;
        return (uint64_t)s == va;
    case PTMON_MODE_5LEVEL:
        s = (int64_t)(va << 7) >> 7;
        return (uint64_t)s == va;
    default:
        return 0;
    }
}

static uint64_t root_of(const struct oracle_mmu *mmu, uint64_t cr3)
{
    switch (mmu->mode) {
    case PTMON_MODE_32BIT:
        return cr3 & 0xfffff000ull;
    case PTMON_MODE_PAE:
        return cr3 & 0xffffffe0ull;
    default:
        return cr3 & span_mask(12, mmu->maxphyaddr - 1);
    }
}

void oracle_walk(const struct oracle_mmu *mmu, oracle_read_fn read, void *ctx, uint64_t cr3,
                 uint64_t va, struct oracle_walk *out)
{
    unsigned esize = mmu->mode == PTMON_MODE_32BIT ? 4 : 8;
    uint64_t table = root_of(mmu, cr3);
    int w = 1, u = 1, nx = 0, passed = 0;
    uint64_t pointer = 0;      /* the last table pointer read */
    unsigned rights_above = 0; /* the rights before it */

    memset(out, 0, sizeof(*out));
    out->top = oracle_levels(mmu);
    out->valid = va_ok(mmu, va);
    if (!out->valid)
        return;
    for (unsigned level = out->top; level >= 1; level--) {
        uint64_t gpa = table + (uint64_t)va_index(mmu, level, va) * esize;
        uint64_t e = 0;
        struct meaning m;
        ptmon_translation *tr = &out->tr;

        memset(&m, 0, sizeof(m));
        out->entry_gpa[level] = gpa;
        tr->level = level;
        tr->page_size = oracle_level_size(mmu, level);
        tr->rights = passed ? (w ? PTMON_RIGHT_W : 0u) | (u ? PTMON_RIGHT_U : 0u) |
                                  (nx ? PTMON_RIGHT_NX : 0u)
                            : 0u;
        if (read(ctx, gpa, esize, &e) != 0) {
            /* The table is not in RAM: the walk stops at the pointer one level up, which keeps
             * its value and adds no rights (the root outside RAM has no such entry). */
            tr->status = PTMON_WALK_OUTSIDE_RAM;
            tr->entry = 0;
            if (level < out->top) {
                out->entry_gpa[level] = 0;
                tr->level = level + 1;
                tr->page_size = oracle_level_size(mmu, level + 1);
                tr->entry = pointer;
                tr->rights = rights_above;
            }
            return;
        }
        out->in_ram[level] = 1;
        tr->entry = e;
        if (mmu->mode == PTMON_MODE_32BIT)
            decode_32bit(mmu, level, e, &m);
        else if (mmu->mode == PTMON_MODE_PAE)
            decode_pae(mmu, level, e, &m);
        else
            decode_ia32e(mmu, level, e, &m);
        if (m.kind == K_NOT_PRESENT) {
            tr->status = PTMON_WALK_NOT_PRESENT;
            return;
        }
        if (m.kind == K_RESERVED) {
            tr->status = PTMON_WALK_RESERVED;
            return;
        }
        rights_above = passed ? (w ? PTMON_RIGHT_W : 0u) | (u ? PTMON_RIGHT_U : 0u) |
                                    (nx ? PTMON_RIGHT_NX : 0u)
                              : 0u;
        pointer = e;
        w = w && m.w;
        u = u && m.u;
        nx = nx || m.nx;
        passed = 1;
        tr->rights =
            (w ? PTMON_RIGHT_W : 0u) | (u ? PTMON_RIGHT_U : 0u) | (nx ? PTMON_RIGHT_NX : 0u);
        if (m.kind == K_PAGE) {
            tr->status = PTMON_WALK_OK;
            tr->frame = m.addr;
            tr->page_size = m.size;
            return;
        }
        table = m.addr;
    }
}

int oracle_must_tell(const struct oracle_mmu *mmu, uint64_t monitored, const ptmon_translation *a,
                     const ptmon_translation *b)
{
    int pa = a->status == PTMON_WALK_OK, pb = b->status == PTMON_WALK_OK;
    /* the flag bits of the mask (address bits are compared through the frame) */
    uint64_t bits = monitored & (0xfffull | XD_BIT);

    (void)mmu;
    if (!pa && !pb)
        return 0;
    if (pa != pb)
        return 1;
    if (a->level != b->level || a->frame != b->frame || a->page_size != b->page_size ||
        a->rights != b->rights)
        return 1;
    if (a->level == 1)
        bits &= ~PS_BIT; /* PAT in a PTE */
    return ((a->entry ^ b->entry) & bits) != 0;
}
