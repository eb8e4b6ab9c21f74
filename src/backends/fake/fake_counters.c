/*
 * fake_counters.c — the fake guest's bookkeeping for tests.
 *
 * Owns: per-glue-operation call counters, one-shot fault injection, simulation statistics,
 * operation names and the copy of the last log line.
 * Calls: nothing outside this file but the C library.
 */
#include "fake_internal.h"

#include <string.h>

static const char *const op_names[PTMON_FAKE_OP_COUNT] = {
    [PTMON_FAKE_OP_READ_GPA] = "read_gpa",
    [PTMON_FAKE_OP_GET_ACCESS] = "get_access",
    [PTMON_FAKE_OP_SET_ACCESS] = "set_access",
    [PTMON_FAKE_OP_SET_ACCESS_BATCH] = "set_access_batch",
    [PTMON_FAKE_OP_EMULATE_WRITE] = "emulate_write",
    [PTMON_FAKE_OP_PAUSE] = "pause",
    [PTMON_FAKE_OP_RESUME] = "resume",
    [PTMON_FAKE_OP_FLUSH] = "flush",
    [PTMON_FAKE_OP_GET_VCPU_REGS] = "get_vcpu_regs",
    [PTMON_FAKE_OP_LOG] = "log",
    [PTMON_FAKE_OP_ALLOC] = "alloc",
    [PTMON_FAKE_OP_GET_MAXPHYADDR] = "get_maxphyaddr",
};

static int op_valid(enum ptmon_fake_op op)
{
    return (unsigned)op < PTMON_FAKE_OP_COUNT;
}

const char *ptmon_fake_op_name(enum ptmon_fake_op op)
{
    return op_valid(op) ? op_names[op] : "?";
}

uint64_t ptmon_fake_calls(const ptmon_fake *fake, enum ptmon_fake_op op)
{
    return fake && op_valid(op) ? fake->calls[op] : 0;
}

void ptmon_fake_reset_calls(ptmon_fake *fake)
{
    if (fake)
        memset(fake->calls, 0, sizeof(fake->calls));
}

uint64_t ptmon_fake_stat(const ptmon_fake *fake, enum ptmon_fake_stat stat)
{
    return fake && (unsigned)stat < PTMON_FAKE_STAT_COUNT ? fake->stats[stat] : 0;
}

void fake_count(ptmon_fake *fake, enum ptmon_fake_stat stat)
{
    fake->stats[stat]++;
}

void ptmon_fake_fail_nth(ptmon_fake *fake, enum ptmon_fake_op op, uint64_t nth, int error)
{
    ptmon_fake_fail_calls(fake, op, nth, 1, error);
}

void ptmon_fake_fail_calls(ptmon_fake *fake, enum ptmon_fake_op op, uint64_t nth, uint64_t count,
                           int error)
{
    if (!fake || !op_valid(op))
        return;
    struct fake_fault *fault = &fake->faults[op];
    fault->countdown = count ? nth : 0;
    fault->repeat = count;
    /* A "failure" must look like one to the caller, whatever value the test passed. */
    fault->error = error < 0 ? error : PTMON_EIO;
    fault->fired = 0;
}

int ptmon_fake_failure_fired(const ptmon_fake *fake, enum ptmon_fake_op op)
{
    return fake && op_valid(op) ? fake->faults[op].fired : 0;
}

int fake_glue_enter(ptmon_fake *fake, enum ptmon_fake_op op)
{
    fake->calls[op]++;
    struct fake_fault *fault = &fake->faults[op];
    if (fault->countdown == 0)
        return 0;
    if (fault->countdown > 1) {
        fault->countdown--;
        return 0;
    }
    fault->fired = 1;
    if (--fault->repeat == 0)
        fault->countdown = 0; /* spent */
    return fault->error;
}

void fake_keep_log(ptmon_fake *fake, const char *message)
{
    size_t len = message ? strlen(message) : 0;
    if (len >= sizeof(fake->last_log))
        len = sizeof(fake->last_log) - 1;
    if (len)
        memcpy(fake->last_log, message, len);
    fake->last_log[len] = '\0';
}

const char *ptmon_fake_last_log(const ptmon_fake *fake)
{
    return fake ? fake->last_log : "";
}
