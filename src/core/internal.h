/*
 * internal.h — the ptmon instance and the core's private helpers.
 *
 * Owns: struct ptmon. Every core file may include it. The glue wrappers declared here
 * (glue.c) are the only way the core reaches the hypervisor.
 */
#ifndef PTMON_CORE_INTERNAL_H
#define PTMON_CORE_INTERNAL_H

#include <ptmon/backend.h>

#include "core/map.h"

#include <stdarg.h>

struct entry;
struct table;
struct frame;
struct ptmon_hook;
struct ptmon_watch;

/* The bytes of a PRE-delivered write the engine is acting on before they are in memory. */
struct pending_write {
    const uint8_t *bytes; /* NULL: none */
    uint64_t gpa;
    uint32_t size;
};

/* The overlay of PRE event @p ev: reads go through its bytes while pm->pending holds it. */
static inline struct pending_write pending_write_of(const ptmon_mem_event *ev)
{
    struct pending_write pw = {ev->bytes, ev->gpa, ev->size};
    return pw;
}

struct ptmon {
    ptmon_glue glue;     /* imported copy: members beyond the backend's version are NULL */
    ptmon_paging paging; /* resolved paging (never AUTO) */
    unsigned levels;     /* of the paging mode */
    unsigned esize;      /* bytes per entry */
    uint64_t table_addr; /* bits of a table-pointer entry that hold the table's address */
    uint64_t span[PTMON_MAX_LEVELS + 2]; /* bytes of VA an entry at each level maps */
    uint64_t monitored;                  /* entry bits whose change is reported */
    uint64_t max_nodes, max_tables;      /* ptmon_config caps; 0: none */

    struct map frames;           /* gfn -> struct frame (frame.c) */
    struct frame *commit_frames; /* frames whose needs dropped since the last commit */
    unsigned event_depth;        /* > 0 inside ptmon_handle_event: commits are deferred */
    int flush_pending;           /* rights changed since the backend's last flush */

    struct ptmon_watch *watches;       /* live watches placed in full (watch.c) */
    struct ptmon_watch *waiting;       /* live watches whose placement is incomplete */
    struct ptmon_watch *dead_watches;  /* removed, freed at commit */
    struct ptmon_watch *last_placed;   /* the newest live watch, while placed (watch.c) */
    struct ptmon_watch *touched;       /* watches the event in progress touched */
    struct ptmon_watch **touched_tail; /* where the next touched watch is linked */
    unsigned incomplete;               /* watches on pm->waiting */
    unsigned waiting_for_room;         /* of them, those that wait for room under the caps */
    uint64_t room_epoch;               /* counts frees of nodes and tables (room under the caps) */
    uint64_t room_epoch_tried;   /* room_epoch when the waiting placements were last retried */
    size_t unread;               /* nodes whose slot could not be read: commits read them again */
    struct table *unread_tables; /* the tables holding such nodes (entry.c) */
    size_t unread_logged;        /* pm->unread when a commit last said they are still unread */
    int reads_held; /* the commit closing this event must not read guest memory: a PRE write of
                       unknown bytes is still to land (event.c) */
    uint64_t next_seq;
    /* 64 bits: counted per event and per node change, they must never wrap in a guest's life */
    uint64_t epoch; /* the event (or commit, or revert) in progress */
    uint64_t mark;  /* the node change being collected (entry.visit) */
    struct pending_write pending;
    struct entry *node_stock; /* free nodes kept for reuse (entry.c), at most a fixed number */
    unsigned node_stock_count;
    struct trace *trace;       /* the recorder, or NULL (trace_write.c) */
    struct table *table_stock; /* free table records kept for reuse (table.c) */
    unsigned table_stock_count;
    unsigned glue_misuse_logged; /* bit per glue member whose contract breach was logged */
    struct {
        uint64_t watches, nodes, tables, events, irrelevant, denied, callbacks;
        uint64_t visits;  /* nodes visited collecting the watches of changed nodes */
        uint64_t retries; /* placements of waiting watches tried again */
    } stats;
};

/* Commit deferred work unless an event is being handled (then its end commits). */
int instance_commit_if_idle(ptmon *pm);

/* Ask the backend to make rights changed since the last flush effective everywhere. A failure
 * is logged and the flush retried at the next call. @return 0 or the backend's error. */
int instance_flush(ptmon *pm);

/* ---- glue.c ------------------------------------------------------------------------------ */

/* Copy @p src into @p dst member by member up to src->version; check required members. */
int glue_import(ptmon_glue *dst, const ptmon_glue *src);

/* Allocate / free through the backend's allocator or libc. Before the instance exists the
 * imported glue is passed directly. */
void *glue_alloc(const ptmon_glue *glue, size_t size);
void glue_free(const ptmon_glue *glue, void *ptr, size_t size);

int glue_get_vcpu_regs(const ptmon_glue *glue, uint32_t vcpu, ptmon_vcpu_regs *regs);
int glue_get_maxphyaddr(const ptmon_glue *glue, unsigned *bits);

/* The engine's calls into the backend. Each checks what the backend returns against the
 * contract of backend.h: a code the member may not return (a plain -1, an errno, a positive
 * value) is logged once per member and instance, and taken as PTMON_EIO (a failure that is
 * retried). */
int glue_read_gpa(ptmon *pm, uint64_t gpa, void *buf, size_t len);
int glue_get_access(ptmon *pm, uint64_t gfn, uint32_t *access);
int glue_set_access(ptmon *pm, uint64_t gfn, uint32_t access);
/* Batched when the backend can, one by one otherwise; *done = leading entries applied. */
int glue_set_access_many(ptmon *pm, const uint64_t *gfns, const uint32_t *access, size_t n,
                         size_t *done);
int glue_flush(ptmon *pm);
int glue_emulate_write(ptmon *pm, uint32_t vcpu, uint64_t gpa, uint32_t size, const void *bytes,
                       void *written);

#if defined(__GNUC__)
#define PTMON_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PTMON_PRINTF(a, b)
#endif

void glue_log(const ptmon_glue *glue, int level, const char *fmt, ...) PTMON_PRINTF(3, 4);

/* A caller's misuse of @p call: logged at debug level, naming what is wrong (@p why), so that
 * PTMON_EINVAL is never left unexplained. @return PTMON_EINVAL. */
int glue_misuse(const ptmon_glue *glue, const char *call, const char *why);

/* ---- paging.c ---------------------------------------------------------------------------- */

/* @return 0 if @p pg is a complete, usable description (mode 32BIT..5LEVEL, sane maxphyaddr,
 * flags the mode has); else the error, with @p why saying what is wrong (a static string). */
int paging_validate(const ptmon_paging *pg, const char **why);

#endif
