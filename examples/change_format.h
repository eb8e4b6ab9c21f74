/*
 * change_format.h — one translation change as ptmond prints it (a text line, or a JSON line of
 * format version 1). Shared by ptmond and ptmon-replay, so that a replay's log can be compared
 * with ptmond's line by line. Header-only: both programs include it once.
 *
 * JSON line: {"v":1,"time":T,"cr3":"0x..","va":"0x..","vcpu":N,"level":L,"reverted":0|1,
 *             "action":"allow"|"deny","before":TR,"after":TR}
 * TR:        {"status":"ok"|"not present"|..,"level":L,"entry":"0x..","frame":"0x..",
 *             "page_size":N,"rights":"wux"}   (rights: w or -, u or -, x or - for NX)
 * T is seconds (ptmond: the wall clock at the callback; ptmon-replay: the recorded event's
 * time since the instance was created). vcpu is -1 for changes found at a commit.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef PTMON_EXAMPLES_CHANGE_FORMAT_H
#define PTMON_EXAMPLES_CHANGE_FORMAT_H

#include <inttypes.h>
#include <stdio.h>

#include <ptmon/ptmon.h>

#define CHANGE_FORMAT_VERSION 1

static void change_rights(unsigned r, char out[4])
{
    out[0] = (r & PTMON_RIGHT_W) ? 'w' : '-';
    out[1] = (r & PTMON_RIGHT_U) ? 'u' : '-';
    out[2] = (r & PTMON_RIGHT_NX) ? '-' : 'x';
    out[3] = 0;
}

static void change_print_translation(FILE *f, int json, const ptmon_translation *t)
{
    char r[4];
    change_rights(t->rights, r);
    if (json)
        fprintf(f,
                "{\"status\":\"%s\",\"level\":%u,\"entry\":\"0x%" PRIx64 "\",\"frame\":\"0x%" PRIx64
                "\",\"page_size\":%" PRIu64 ",\"rights\":\"%s\"}",
                ptmon_walk_status_name(t->status), t->level, t->entry, t->frame, t->page_size, r);
    else if (t->status == PTMON_WALK_OK)
        fprintf(f, "0x%" PRIx64 "/%" PRIu64 "K %s", t->frame, t->page_size >> 10, r);
    else
        fprintf(f, "%s(L%u entry 0x%" PRIx64 ")", ptmon_walk_status_name(t->status), t->level,
                t->entry);
}

/* One line for @p c, answered @p action, at @p sec.usec. */
static void change_print(FILE *f, int json, const ptmon_change *c, int action, long long sec,
                         long usec)
{
    long vcpu = c->vcpu == PTMON_VCPU_NONE ? -1L : (long)c->vcpu;
    const char *act = action == PTMON_ACTION_DENY ? "deny" : "allow";

    if (json) {
        fprintf(f,
                "{\"v\":%d,\"time\":%lld.%06ld,\"cr3\":\"0x%" PRIx64 "\",\"va\":\"0x%" PRIx64
                "\",\"vcpu\":%ld,\"level\":%u,\"reverted\":%u,\"action\":\"%s\",\"before\":",
                CHANGE_FORMAT_VERSION, sec, usec, c->cr3, c->va, vcpu, c->level, c->reverted, act);
        change_print_translation(f, 1, &c->before);
        fprintf(f, ",\"after\":");
        change_print_translation(f, 1, &c->after);
        fprintf(f, "}\n");
        return;
    }
    fprintf(f, "%lld.%06ld va 0x%" PRIx64 " cr3 0x%" PRIx64 " vcpu %ld L%u%s%s: ", sec, usec, c->va,
            c->cr3, vcpu, c->level, c->reverted ? " (reverted)" : "",
            action == PTMON_ACTION_DENY ? " DENIED" : "");
    change_print_translation(f, 0, &c->before);
    fprintf(f, " -> ");
    change_print_translation(f, 0, &c->after);
    fprintf(f, "\n");
}

#endif
