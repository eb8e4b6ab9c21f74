/*
 * fuzz_main.c — the seeded differential fuzzer driver.
 *
 *   ptmon_fuzz [--mode 32|pae|4|5|all] [--steps N] [--run-steps N] [--seed S] [--fixed LIST]
 *              [--faults OPS] [--bursts PCT] [--verbose] [--write-corpus DIR --inputs N]
 *
 * --steps N       steps per paging mode (default 20000), in runs of --run-steps (default 2000)
 *                 each with its own seed (S, S+1, ...); a divergence prints the mode, seed and
 *                 step, and aborts. Reproduce one run: --mode M --seed S --steps R --run-steps R.
 * --faults OPS    fault sweep instead: for runs of --run-steps steps (default here 40) and seeds
 *                 S..S+runs-1 (--runs, default 2), fail the 1st, 2nd, ... call of each glue
 *                 operation in OPS ("all", or a comma list of read_gpa, get_access, set_access,
 *                 set_access_batch, emulate_write, flush, log, alloc), one run per call;
 *                 --nth K reruns only the run failing the K-th call (with --verbose: a trace).
 * --bursts PCT    each step starts, with this chance in percent, a burst of failing reads and
 *                 emulated writes lasting several steps (checks: see burst_arm in fuzz.c).
 * --fixed LIST    known bugs whose full checks run (default all; B1,...,N4; also FZ_FIXED).
 * --write-corpus  write N libFuzzer inputs (random bytes, --run-steps worth) to DIR.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const enum ptmon_paging_mode all_modes[] = {PTMON_MODE_32BIT, PTMON_MODE_PAE,
                                                   PTMON_MODE_4LEVEL, PTMON_MODE_5LEVEL};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_mode(const char *s, enum ptmon_paging_mode *out)
{
    for (unsigned i = 0; i < 4; i++)
        if (strcmp(s, fz_mode_name(all_modes[i])) == 0) {
            *out = all_modes[i];
            return 0;
        }
    return -1;
}

static void run_modes(const enum ptmon_paging_mode *modes, unsigned nmodes, uint64_t steps,
                      uint64_t run_steps, uint64_t seed, unsigned fixed, unsigned bursts,
                      int verbose)
{
    for (unsigned m = 0; m < nmodes; m++) {
        struct fz_result tot;
        double t0 = now();
        uint64_t runs = 0;
        memset(&tot, 0, sizeof(tot));
        for (uint64_t done = 0; done < steps; runs++) {
            struct fz_options opt;
            struct fz_result res;
            struct fz_src src;
            memset(&opt, 0, sizeof(opt));
            opt.mode = modes[m];
            opt.max_steps = steps - done < run_steps ? steps - done : run_steps;
            opt.fixed = fixed;
            opt.verbose = verbose;
            opt.seed = seed + runs;
            opt.fault_op = -1;
            opt.burst_pct = bursts;
            fz_src_seed(&src, opt.seed);
            fz_run(&opt, &src, &res);
            done += res.steps;
            tot.steps += res.steps;
            tot.events += res.events;
            tot.callbacks += res.callbacks;
            tot.reverted += res.reverted;
            tot.denies += res.denies;
            tot.placed += res.placed;
            tot.stores += res.stores;
            tot.present_checks += res.present_checks;
            tot.waiting_checks += res.waiting_checks;
            tot.burst_steps += res.burst_steps;
        }
        printf("mode %-3s: %llu steps in %llu runs (seeds %llu..%llu), %llu stores, %llu events, "
               "%llu watches placed, %llu callbacks (%llu reverted), %llu denies, %llu present "
               "checks, %llu waiting under caps, %llu in failure bursts, %.1f s: no divergence\n",
               fz_mode_name(modes[m]), (unsigned long long)tot.steps, (unsigned long long)runs,
               (unsigned long long)seed, (unsigned long long)(seed + runs - 1),
               (unsigned long long)tot.stores, (unsigned long long)tot.events,
               (unsigned long long)tot.placed, (unsigned long long)tot.callbacks,
               (unsigned long long)tot.reverted, (unsigned long long)tot.denies,
               (unsigned long long)tot.present_checks, (unsigned long long)tot.waiting_checks,
               (unsigned long long)tot.burst_steps, now() - t0);
        fflush(stdout);
    }
}

static const struct {
    const char *name;
    enum ptmon_fake_op op;
} fault_ops[] = {
    {"read_gpa", PTMON_FAKE_OP_READ_GPA},
    {"get_access", PTMON_FAKE_OP_GET_ACCESS},
    {"set_access", PTMON_FAKE_OP_SET_ACCESS},
    {"set_access_batch", PTMON_FAKE_OP_SET_ACCESS_BATCH},
    {"emulate_write", PTMON_FAKE_OP_EMULATE_WRITE},
    {"flush", PTMON_FAKE_OP_FLUSH},
    {"log", PTMON_FAKE_OP_LOG},
    {"alloc", PTMON_FAKE_OP_ALLOC},
};
#define NFAULT_OPS (sizeof(fault_ops) / sizeof(fault_ops[0]))

static void run_faults(const enum ptmon_paging_mode *modes, unsigned nmodes, const char *ops,
                       uint64_t run_steps, uint64_t seed, uint64_t nruns, unsigned fixed,
                       int verbose, uint64_t only_nth)
{
    for (unsigned m = 0; m < nmodes; m++) {
        for (unsigned k = 0; k < NFAULT_OPS; k++) {
            uint64_t runs = 0, unreported = 0, steps = 0, fired = 0;
            double t0 = now();
            if (strcmp(ops, "all") != 0 && !strstr(ops, fault_ops[k].name))
                continue;
            for (uint64_t s = seed; s < seed + nruns; s++) {
                struct fz_options opt;
                struct fz_result res;
                struct fz_src src;
                memset(&opt, 0, sizeof(opt));
                opt.mode = modes[m];
                opt.max_steps = run_steps;
                opt.fixed = fixed;
                opt.verbose = verbose;
                opt.seed = s;
                opt.fault_op = (int)fault_ops[k].op;
                opt.fault_count = 1;
                fz_src_seed(&src, s);
                fz_run(&opt, &src, &res);
                uint64_t total = res.fault_calls, first = 1;
                opt.fault_count = 0;
                if (only_nth) /* reproduce one run */
                    first = total = only_nth;
                for (uint64_t nth = first; nth <= total; nth++) {
                    opt.fault_nth = nth;
                    fz_src_seed(&src, s);
                    fz_run(&opt, &src, &res);
                    runs++;
                    steps += res.steps;
                    unreported += res.unreported;
                    fired += res.fault_fired != 0;
                }
            }
            printf("faults mode %-3s %-16s: %llu runs (%llu steps), each failing one call (%llu "
                   "fired); %llu failures left inconsistent state unreported; %.1f s: no "
                   "divergence\n",
                   fz_mode_name(modes[m]), fault_ops[k].name, (unsigned long long)runs,
                   (unsigned long long)steps, (unsigned long long)fired,
                   (unsigned long long)unreported, now() - t0);
            fflush(stdout);
        }
    }
}

/* Corpus inputs are random bytes: the fuzzer reads decisions from them as from its PRNG. */
static int write_corpus(const char *dir, unsigned n, uint64_t bytes, uint64_t seed)
{
    for (unsigned i = 0; i < n; i++) {
        char path[4096];
        uint64_t x = seed * 0x9e3779b97f4a7c15ull + i + 1;
        snprintf(path, sizeof(path), "%s/seed-%03u-%s", dir, i, fz_mode_name(all_modes[i % 4]));
        FILE *f = fopen(path, "wb");
        if (!f) {
            perror(path);
            return 1;
        }
        fputc((int)(i % 4), f); /* the mode byte */
        for (uint64_t b = 0; b < bytes; b++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            fputc((int)((x >> 56) & 0xff), f);
        }
        fclose(f);
    }
    return 0;
}

int main(int argc, char **argv)
{
    enum ptmon_paging_mode modes[4];
    unsigned nmodes = 4, fixed = fz_parse_fixed(getenv("FZ_FIXED"));
    uint64_t steps = 20000, run_steps = 0, seed = 1, nruns = 2, inputs = 16, only_nth = 0;
    unsigned bursts = 0;
    const char *faults = NULL, *corpus = NULL;
    int verbose = 0;

    memcpy(modes, all_modes, sizeof(modes));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--verbose") == 0) {
            verbose = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "%s: missing value\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--mode") == 0) {
            if (strcmp(v, "all") == 0) {
                nmodes = 4;
            } else if (parse_mode(v, &modes[0]) == 0) {
                nmodes = 1;
            } else {
                fprintf(stderr, "unknown mode %s\n", v);
                return 2;
            }
        } else if (strcmp(a, "--steps") == 0) {
            steps = strtoull(v, NULL, 0);
        } else if (strcmp(a, "--run-steps") == 0) {
            run_steps = strtoull(v, NULL, 0);
        } else if (strcmp(a, "--seed") == 0) {
            seed = strtoull(v, NULL, 0);
        } else if (strcmp(a, "--runs") == 0) {
            nruns = strtoull(v, NULL, 0);
        } else if (strcmp(a, "--nth") == 0) {
            only_nth = strtoull(v, NULL, 0);
        } else if (strcmp(a, "--inputs") == 0) {
            inputs = strtoull(v, NULL, 0);
        } else if (strcmp(a, "--bursts") == 0) {
            bursts = (unsigned)strtoul(v, NULL, 0);
        } else if (strcmp(a, "--fixed") == 0) {
            fixed = fz_parse_fixed(v);
        } else if (strcmp(a, "--faults") == 0) {
            faults = v;
        } else if (strcmp(a, "--write-corpus") == 0) {
            corpus = v;
        } else {
            fprintf(stderr, "unknown option %s (see the comment at the top of fuzz_main.c)\n", a);
            return 2;
        }
    }
    if (corpus)
        return write_corpus(corpus, (unsigned)inputs, run_steps ? run_steps * 8 : 2048, seed);
    if (faults)
        run_faults(modes, nmodes, faults, run_steps ? run_steps : 40, seed, nruns, fixed, verbose,
                   only_nth);
    else
        run_modes(modes, nmodes, steps, run_steps ? run_steps : 2000, seed, fixed, bursts, verbose);
    return 0;
}
