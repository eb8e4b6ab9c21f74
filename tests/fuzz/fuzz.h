/*
 * fuzz.h — the differential fuzzer of the watch engine (shared by the seeded driver, the
 * replay driver and the libFuzzer target).
 *
 * One run: a fake guest with a small pool of frames used as page tables at every level (frame 0
 * included, shared, aliased and self-referencing tables, pointers outside RAM), one ptmon
 * instance, and a sequence of steps decided by a byte source (a seeded PRNG, or a fuzzer's
 * input). After every step the engine is compared with the reference MMU (oracle.c).
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef PTMON_TESTS_FUZZ_FUZZ_H
#define PTMON_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include <ptmon/fake.h>

/* Known engine bugs, all fixed now (regression scenarios in tests/test_regress.c). Each flag
 * turns on the full checks for its bug; without it the fuzzer avoids or tolerates exactly the
 * behaviour the bug caused, so that an old build can still be fuzzed for other divergences.
 * FZ_FIXED / --fixed "all" sets every one (what ctest and the long runs use). */
enum fz_fix {
    FZ_FIX_B1 = 1u << 1,   /* PAT bit 12 of a large leaf triggers a callback: tolerated */
    FZ_FIX_B2 = 1u << 2,   /* PRE deny after a callback added a watch: no deny then */
    FZ_FIX_B3 = 1u << 3,   /* ptmon_commit from a callback: not called */
    FZ_FIX_B4 = 1u << 4,   /* deny with a failing write-back: no deny in emulate_write fault
                              steps */
    FZ_FIX_B5 = 1u << 5,   /* cubic collect with aliased tables: at most 24 watches (else 40) */
    FZ_FIX_B6 = 1u << 6,   /* no gate (the fault checks cover it) */
    FZ_FIX_B7 = 1u << 7,   /* read failure on the deny path: no deny in read_gpa fault steps */
    FZ_FIX_B8 = 1u << 8,   /* no gate (read faults run regardless) */
    FZ_FIX_B9 = 1u << 9,   /* stats.bytes omits stocks: bytes compared only when set */
    FZ_FIX_B10 = 1u << 10, /* no gate (32-bit wraparound is out of the fuzzer's reach) */
    /* found by this fuzzer */
    FZ_FIX_N1 = 1u << 16, /* PRE deny of a write whose bytes the backend did not give: only the
                             watched entries of the range are put back (checked when set) */
    FZ_FIX_N2 = 1u << 17, /* a failed read during an event: a callback's after is computed from
                             a stale entry (after checked in fault steps only when set) */
    FZ_FIX_N3 = 1u << 18, /* PRE without bytes, emulate_write fails: ALLOW with the tree never
                             updated nor re-read (bytes always given in emulate_write fault
                             steps unless set) */
    FZ_FIX_N4 = 1u << 19, /* no emulate_write: a resync pending from a read failure runs at the
                             next PRE event's commit, before the backend writes, and undoes that
                             event (glue keeps emulate_write in read_gpa sweeps unless set) */
    FZ_FIX_ALL = 0x7feu | (0xfu << 16), /* B1..B10, N1..N4 */
};

/** Where the decisions of a run come from. */
struct fz_src {
    const uint8_t *data; /* fuzzer input, or NULL: the PRNG */
    size_t len, pos;
    uint64_t rng;
    int exhausted;
};

void fz_src_seed(struct fz_src *src, uint64_t seed);
void fz_src_bytes(struct fz_src *src, const uint8_t *data, size_t len);

/** What to run. */
struct fz_options {
    enum ptmon_paging_mode mode; /* PTMON_MODE_AUTO: the first input byte picks it */
    uint64_t max_steps;
    unsigned fixed; /* enum fz_fix */
    int verbose;
    uint64_t seed; /* for messages only */
    /* fault injection: fail the fault_nth call (counted over the steps' actions only) of
     * glue operation fault_op; fault_op < 0: none. fault_count: count the calls only. */
    int fault_op;
    uint64_t fault_nth;
    int fault_count;
    /* chance in percent that a step starts a burst of failing reads and emulated writes that
     * lasts several steps (0: none; not with fault_op) */
    unsigned burst_pct;
};

/** What a run did. */
struct fz_result {
    uint64_t steps, events, callbacks, reverted, denies, placed, present_checks, stores;
    uint64_t waiting_checks; /* checks of a watch waiting for room under the caps */
    uint64_t burst_steps;    /* steps run inside a burst of failures */
    uint64_t fault_calls;    /* calls of fault_op seen in the actions (fault_count) */
    int fault_fired;
    uint64_t unreported; /* injected failures neither returned nor logged */
};

/** Run one sequence. A divergence prints a report and aborts. @return 0. */
int fz_run(const struct fz_options *opt, struct fz_src *src, struct fz_result *res);

/** Run a fuzzer input (libFuzzer target and replay driver): the first byte picks the mode, the
 *  rest drives the steps (at most 4096). @p fixed: enum fz_fix. @return the steps run. */
int fz_run_input(const uint8_t *data, size_t len, unsigned fixed);

/** Parse "B1,B2" / "all" / "none" into enum fz_fix bits (unknown names are ignored). */
unsigned fz_parse_fixed(const char *text);

/** @return a static name for a mode ("32", "pae", "4", "5"). */
const char *fz_mode_name(enum ptmon_paging_mode mode);

#endif
