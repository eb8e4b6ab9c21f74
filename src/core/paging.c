/*
 * paging.c — paging-mode derivation from control registers and validation of a
 * ptmon_paging description.
 *
 * Owns: nothing mutable. Calls nothing.
 */
#include "core/internal.h"

#define CR0_PG   (1ull << 31)
#define CR4_PSE  (1ull << 4)
#define CR4_PAE  (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

int ptmon_paging_from_regs(uint64_t cr0, uint64_t cr4, uint64_t efer, unsigned maxphyaddr,
                           ptmon_paging *out)
{
    ptmon_paging pg = {PTMON_MODE_OFF, 0, maxphyaddr ? maxphyaddr : 52};

    if (!out || maxphyaddr > 52 || (maxphyaddr != 0 && maxphyaddr < 32))
        return PTMON_EINVAL;
    /* IA-32e mode is only ever active with paging and PAE on; the CPU refuses anything else. */
    if ((efer & EFER_LMA) && (!(cr0 & CR0_PG) || !(cr4 & CR4_PAE)))
        return PTMON_EINVAL;
    if (cr0 & CR0_PG) {
        if (!(cr4 & CR4_PAE))
            pg.mode = PTMON_MODE_32BIT;
        else if (!(efer & EFER_LMA))
            pg.mode = PTMON_MODE_PAE;
        else
            pg.mode = (cr4 & CR4_LA57) ? PTMON_MODE_5LEVEL : PTMON_MODE_4LEVEL;
    }
    /* CR4.PSE matters only to 32-bit paging; EFER.NXE only to 64-bit entries. */
    if (pg.mode == PTMON_MODE_32BIT && (cr4 & CR4_PSE))
        pg.flags |= PTMON_PAGING_PSE;
    if (pg.mode >= PTMON_MODE_PAE && (efer & EFER_NXE))
        pg.flags |= PTMON_PAGING_NXE;
    *out = pg;
    return 0;
}

unsigned ptmon_paging_levels(enum ptmon_paging_mode mode)
{
    switch (mode) {
    case PTMON_MODE_32BIT:
        return 2;
    case PTMON_MODE_PAE:
        return 3;
    case PTMON_MODE_4LEVEL:
        return 4;
    case PTMON_MODE_5LEVEL:
        return 5;
    case PTMON_MODE_OFF:
    case PTMON_MODE_AUTO:
        break;
    }
    return 0;
}

const char *ptmon_paging_mode_name(enum ptmon_paging_mode mode)
{
    switch (mode) {
    case PTMON_MODE_OFF:
        return "off";
    case PTMON_MODE_32BIT:
        return "32-bit";
    case PTMON_MODE_PAE:
        return "PAE";
    case PTMON_MODE_4LEVEL:
        return "4-level";
    case PTMON_MODE_5LEVEL:
        return "5-level";
    case PTMON_MODE_AUTO:
        return "auto";
    }
    return "?";
}

int paging_validate(const ptmon_paging *pg, const char **why)
{
    static const char *const unused_pse = "PTMON_PAGING_PSE means nothing outside 32-bit paging";
    static const char *const unused_nxe = "PTMON_PAGING_NXE means nothing in 32-bit paging";

    *why = NULL;
    if (pg->mode == PTMON_MODE_OFF) {
        *why = "paging is off: no translation to watch";
        return PTMON_ENOTSUP;
    }
    if (!ptmon_paging_levels(pg->mode))
        *why = "paging.mode is not a paging mode";
    else if (pg->maxphyaddr > 52 || (pg->maxphyaddr != 0 && pg->maxphyaddr < 32))
        *why = "paging.maxphyaddr must be 0 or 32..52";
    else if (pg->flags & ~(unsigned)(PTMON_PAGING_PSE | PTMON_PAGING_NXE))
        *why = "paging.flags has unknown bits";
    /* Refused rather than ignored: a caller who sets them believes they change something. */
    else if ((pg->flags & PTMON_PAGING_PSE) && pg->mode != PTMON_MODE_32BIT)
        *why = unused_pse;
    else if ((pg->flags & PTMON_PAGING_NXE) && pg->mode == PTMON_MODE_32BIT)
        *why = unused_nxe;
    return *why ? PTMON_EINVAL : 0;
}
