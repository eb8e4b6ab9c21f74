/*
 * ptmon-replay — replay a trace (ptmond --record, or any instance created with
 * ptmon_config.trace) on the fake guest and say whether it reproduced the recording.
 *
 *   ptmon-replay [--json] [--quiet] FILE|-
 *
 * Prints every callback the replay makes, in ptmond's line format (change_format.h; the time
 * is the recorded event's, in seconds since the instance was created) and, with --json, a line
 * {"v":1,"event":"check","findings":N} where the recording called ptmon_check (ptmond does at
 * every SIGUSR1 and at detach: the Xen lab's step boundaries), then a summary on stderr. Exit
 * status: 0 when the replay reproduced the recording exactly (no divergence, the trace complete), 1
 * when it did not, 2 for usage or input errors.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ptmon/fake.h>
#include <ptmon/trace.h>

#include "change_format.h"

struct out {
    int json, quiet;
};

static void on_change(void *ctx, const ptmon_change *c, int action, uint64_t time_ns)
{
    const struct out *o = ctx;
    if (!o->quiet)
        change_print(stdout, o->json, c, action, (long long)(time_ns / 1000000000u),
                     (long)(time_ns % 1000000000u / 1000u));
}

static void on_call(void *ctx, const ptmon_trace_record *call, int result)
{
    const struct out *o = ctx;
    if (!o->quiet && o->json && call->type == PTMON_TRACE_CHECK)
        printf("{\"v\":%d,\"event\":\"check\",\"findings\":%d}\n", CHANGE_FORMAT_VERSION, result);
}

static unsigned char *read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 20, n = 0, got;
    unsigned char *p = malloc(cap), *q;
    while (p && (got = fread(p + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            q = realloc(p, cap *= 2);
            if (!q) {
                free(p);
                return NULL;
            }
            p = q;
        }
    }
    if (p && ferror(f)) {
        free(p);
        return NULL;
    }
    *len = n;
    return p;
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct out o = {0, 0};
    const char *path = NULL;
    ptmon_fake_replay_result res;
    unsigned char *data;
    size_t len = 0;
    FILE *f;
    double t0;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            o.json = 1;
        else if (!strcmp(argv[i], "--quiet"))
            o.quiet = 1;
        else if (!path && (argv[i][0] != '-' || !strcmp(argv[i], "-")))
            path = argv[i];
        else {
            fprintf(stderr, "usage: ptmon-replay [--json] [--quiet] FILE|-\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: ptmon-replay [--json] [--quiet] FILE|-\n");
        return 2;
    }
    f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "ptmon-replay: %s: %s\n", path, strerror(errno));
        return 2;
    }
    data = read_all(f, &len);
    if (f != stdin)
        fclose(f);
    if (!data) {
        fprintf(stderr, "ptmon-replay: %s: cannot read it\n", path);
        return 2;
    }
    t0 = seconds();
    {
        ptmon_fake_replay_observer obs = {on_change, on_call, &o};
        rc = ptmon_fake_replay(data, len, &obs, &res);
    }
    fflush(stdout);
    fprintf(stderr,
            "ptmon-replay: %zu bytes, %" PRIu64 " records, %" PRIu64 " calls (%" PRIu64
            " events), %" PRIu64 " facts, %" PRIu64 " failures injected, %" PRIu64
            " callbacks (%" PRIu64 " recorded), %" PRIu64 " divergences, %s, %.3f s\n",
            len, res.records, res.calls, res.events, res.facts, res.failures, res.callbacks,
            res.callbacks_recorded, res.divergences, res.complete ? "complete" : "INCOMPLETE",
            seconds() - t0);
    if (res.first_divergence[0])
        fprintf(stderr, "ptmon-replay: first: %s\n", res.first_divergence);
    free(data);
    if (rc < 0) {
        fprintf(stderr, "ptmon-replay: %s\n", ptmon_strerror(rc));
        return 2;
    }
    return res.divergences || !res.complete ? 1 : 0;
}
