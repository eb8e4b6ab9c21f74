/*
 * trace.h — the recorder: what an instance saw and did, as a trace (include/ptmon/trace.h).
 *
 * The recorder sits between the core and the backend: the instance runs on a "tap" glue whose
 * callbacks forward to the backend's and note what a replay needs (frames when first protected
 * or read, bytes that differ from what a replay would hold, failures). The public entry points
 * bracket their work with trace_begin() and one of the trace_*_end() calls, which write the
 * call's record after the facts it produced and before the callbacks it made.
 *
 * Owns: struct trace (its shadow of guest memory, its output buffers). Calls map.c, glue.c
 * (allocation only) and the backend's callbacks; never the engine.
 */
#ifndef PTMON_CORE_TRACE_H
#define PTMON_CORE_TRACE_H

#include <ptmon/trace.h>

#include "core/internal.h"

struct trace;

/* Start recording: @p backend is the imported backend glue, @p tap receives the glue the
 * instance must use instead (same members present, each forwarding through the recorder).
 * @return 0, PTMON_EINVAL (bad sink), PTMON_EVERSION or PTMON_ENOMEM. */
int trace_start(struct trace **out, const ptmon_glue *backend, const ptmon_trace_sink *sink,
                ptmon_glue *tap);
/* The header record, once the instance knows its paging. */
void trace_header(struct trace *t, const ptmon_paging *paging, uint64_t monitored,
                  uint64_t max_nodes, uint64_t max_tables);
/* The END record, then free everything (through the backend's allocator); @p glue gets the
 * backend's glue back (the instance's glue was the tap, which dies here). */
void trace_stop(struct trace *t, ptmon_glue *glue);

/* Bracket of a public call: facts until the matching *_end precede its record. */
void trace_begin(struct trace *t);
void trace_event_begin(struct trace *t, const ptmon_mem_event *ev);
void trace_event_end(struct trace *t, const ptmon_mem_event *ev, int action);
void trace_watch_end(struct trace *t, uint64_t cr3, uint64_t va, unsigned flags, int rc,
                     const struct ptmon_watch *w);
void trace_unwatch_end(struct trace *t, const struct ptmon_watch *w, int rc);
/* CHECK and COMMIT. */
void trace_result_end(struct trace *t, enum ptmon_trace_type type, int rc);

/* A callback @p w was called with @p ch and answered @p action. */
void trace_callback(struct trace *t, const struct ptmon_watch *w, const ptmon_change *ch,
                    int action);
void trace_monitored(struct trace *t, uint64_t bits);
/* Reads made between trace_quiet(t, 1) and trace_quiet(t, 0) are someone else's (a
 * ptmon_translate from a callback): they leave no facts. */
void trace_quiet(struct trace *t, int on);
/* A frame-hook call: a trace cannot express hooks, it says so (a HOOK record). */
void trace_hook(struct trace *t);

#endif
