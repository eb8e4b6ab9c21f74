/*
 * event.c — the event entry point: one guest access reported by the backend, routed to the
 * frame's hooks and (for page-table frames) to the watch engine, then the commit.
 *
 * Owns: event validation and the event's bracket (event_depth). Calls frame.c and watch.c.
 */
#include "core/frame.h"
#include "core/watch.h"

static int event_valid(const ptmon_mem_event *ev)
{
    if (ev->size == 0 || ev->size > 4096 - (ev->gpa & 0xfff))
        return 0;
    if (ev->access != PTMON_ACCESS_R && ev->access != PTMON_ACCESS_W &&
        ev->access != PTMON_ACCESS_X)
        return 0;
    return ev->delivery == PTMON_DELIVERY_PRE || ev->delivery == PTMON_DELIVERY_POST;
}

int ptmon_handle_event(ptmon *pm, const ptmon_mem_event *ev)
{
    struct frame *f;
    int action, rc;

    if (!pm || !ev || !event_valid(ev))
        return PTMON_EINVAL;
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
    rc = instance_commit_if_idle(pm);
    if (pm->resync_later) {
        /* The backend performs the write after we return: the next commit re-reads. */
        pm->resync = 1;
        pm->resync_later = 0;
    }
    if (rc < 0)
        glue_log(&pm->glue, PTMON_LOG_WARN, "commit after event failed: %s", ptmon_strerror(rc));
    return action;
}
