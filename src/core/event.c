/*
 * event.c — the event entry point: one guest access reported by the backend, routed to the
 * frame's hooks and (for page-table frames) to the watch engine, then the commit.
 *
 * Owns: event validation and the event's bracket (event_depth, and the pending write its closing
 * commit must see). Calls frame.c, watch.c, glue.c and the recorder (trace_write.c).
 */
#include "core/frame.h"
#include "core/trace.h"
#include "core/watch.h"

/* @return what is wrong with @p ev, or NULL if nothing is. */
static const char *event_invalid(const ptmon_mem_event *ev)
{
    if (ev->size == 0)
        return "ev->size is 0";
    if (ev->size > 4096 - (ev->gpa & 0xfff))
        return "the range [ev->gpa, ev->gpa + ev->size) leaves its 4 KiB frame";
    if (ev->access != PTMON_ACCESS_R && ev->access != PTMON_ACCESS_W &&
        ev->access != PTMON_ACCESS_X)
        return "ev->access is not exactly one of PTMON_ACCESS_R, _W, _X";
    if (ev->delivery != PTMON_DELIVERY_PRE && ev->delivery != PTMON_DELIVERY_POST)
        return "ev->delivery is neither PTMON_DELIVERY_PRE nor _POST";
    return NULL;
}

/*
 * The commit closing an event may read guest memory (entries marked unread, placements to retry)
 * while the guest's PRE write, answered ALLOW, is still to be performed by the backend. Make it
 * read what memory will hold: through the pending bytes when known; else have the write performed
 * now; else hold its reads until the next commit. @return the event's action.
 */
static int settle_pending_write(ptmon *pm, const ptmon_mem_event *ev, int action)
{
    int rc;

    if (ev->access != PTMON_ACCESS_W || ev->delivery != PTMON_DELIVERY_PRE ||
        action != PTMON_ACTION_ALLOW || pm->reads_held || !(pm->unread || watch_retries_due(pm)))
        return action;
    if (ev->bytes) {
        pm->pending = pending_write_of(ev);
        return action;
    }
    if (pm->glue.emulate_write) {
        rc = glue_emulate_write(pm, ev->vcpu, ev->gpa, ev->size, NULL, NULL);
        if (rc == 0)
            return PTMON_ACTION_EMULATED;
        glue_log(&pm->glue, PTMON_LOG_WARN, "write of unknown bytes at 0x%llx: %s; commit deferred",
                 (unsigned long long)ev->gpa, ptmon_strerror(rc));
    }
    pm->reads_held = 1; /* (without emulate_write: the documented way, nothing to report) */
    return action;
}

static int handle_event(ptmon *pm, const ptmon_mem_event *ev)
{
    struct frame *f;
    int action, rc;

    const char *why = event_invalid(ev);

    if (why)
        return glue_misuse(&pm->glue, "ptmon_handle_event", why);
    if (pm->unread)
        watch_before_event(pm, ev);
    f = frame_find(pm, ev->gpa >> 12);
    if (!f)
        return PTMON_ACTION_ALLOW; /* stale: in flight while ptmon relaxed the frame */
    pm->stats.events++;
    pm->event_depth++;
    action = frame_dispatch(pm, f, ev);
    /* A hook's deny means the write will not happen: the tables have nothing to see. The frame
     * may have lost its table in a hook callback (unwatch): look again. */
    if (action == PTMON_ACTION_ALLOW && ev->access == PTMON_ACCESS_W && f->table)
        action = watch_on_write(pm, f->table, ev);
    pm->event_depth--;
    action = settle_pending_write(pm, ev, action);
    rc = instance_commit_if_idle(pm);
    pm->pending.bytes = NULL;
    pm->reads_held = 0; /* the write lands after we answer: the next commit may read */
    if (rc < 0)
        glue_log(&pm->glue, PTMON_LOG_WARN, "commit after event failed: %s", ptmon_strerror(rc));
    return action;
}

int ptmon_handle_event(ptmon *pm, const ptmon_mem_event *ev)
{
    int action;

    if (!pm || !ev)
        return PTMON_EINVAL;
    if (!pm->trace)
        return handle_event(pm, ev);
    trace_event_begin(pm->trace, ev);
    action = handle_event(pm, ev);
    trace_event_end(pm->trace, ev, action);
    return action;
}
