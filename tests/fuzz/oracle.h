/*
 * oracle.h — a reference MMU for the differential fuzzer: a deliberately simple x86 page-walk
 * translator, written separately from src/core (it shares no code and includes no internal
 * header). It reads guest memory through a caller-given function and returns, for any VA, what
 * ptmon documents a watch's translation to be (ptmon_translation), plus the GPA of every entry
 * the walk read, so the fuzzer can compute which frames must be write-protected.
 *
 * Choices (as docs/ENGINE.md and the walker's documentation make them): a 32-bit PDE with PS set
 * is followed to a page table when CR4.PSE is clear; PAE PDPTEs are read from memory (no PDPTE
 * registers); 1 GiB pages are always allowed; bit 8 of a PML4E/PML5E (reserved on AMD) is
 * ignored; NX is reserved without EFER.NXE; address bits at or above MAXPHYADDR are reserved.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef PTMON_TESTS_FUZZ_ORACLE_H
#define PTMON_TESTS_FUZZ_ORACLE_H

#include <stdint.h>

#include <ptmon/ptmon.h>

/** Reads one little-endian entry of @p size (4 or 8) bytes. @return 0, or nonzero when the
 *  entry is not in guest RAM. */
typedef int (*oracle_read_fn)(void *ctx, uint64_t gpa, unsigned size, uint64_t *value);

/** The guest's paging as the oracle sees it. */
struct oracle_mmu {
    enum ptmon_paging_mode mode; /* 32BIT, PAE, 4LEVEL or 5LEVEL */
    int pse;                     /* CR4.PSE (32-bit paging only) */
    int nxe;                     /* EFER.NXE (PAE and IA-32e) */
    unsigned maxphyaddr;         /* 32..52 */
};

/** The outcome of one reference walk. */
struct oracle_walk {
    int valid;            /* 0: the VA cannot be translated in this mode (ptmon_watch: EINVAL) */
    ptmon_translation tr; /* as a watch's record must be */
    unsigned top;         /* number of levels */
    /* entries the walk read (levels top..tr.level): their GPA, and whether that GPA is in RAM */
    uint64_t entry_gpa[6];
    int in_ram[6];
};

/** Walk @p va from @p cr3. Never fails: every outcome is in @p out. */
void oracle_walk(const struct oracle_mmu *mmu, oracle_read_fn read, void *ctx, uint64_t cr3,
                 uint64_t va, struct oracle_walk *out);

/** @return the VA bytes one entry at @p level maps (used for not-present records too). */
uint64_t oracle_level_size(const struct oracle_mmu *mmu, unsigned level);

/** @return the number of paging levels of the mode. */
unsigned oracle_levels(const struct oracle_mmu *mmu);

/** @return nonzero if a callback from @p a to @p b is required (a monitored bit of the stopping
 *  entry, the stop level of a present translation, the frame, page size, effective rights or
 *  presence changed), for the monitored entry bits @p monitored (ptmon_set_monitored_bits; bits
 *  0-11 and 63 are compared, PS not in a PTE where bit 7 is PAT). */
int oracle_must_tell(const struct oracle_mmu *mmu, uint64_t monitored, const ptmon_translation *a,
                     const ptmon_translation *b);

#endif
