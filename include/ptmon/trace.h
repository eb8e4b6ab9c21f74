/*
 * ptmon traces: record what an instance saw and did, replay it offline.
 *
 * A trace holds everything needed to drive an instance again without the guest: the paging
 * mode, the contents of every page-table frame when ptmon first protected (or read) it, every
 * guest-memory fact ptmon read that a replay would not know (bytes that changed behind ptmon's
 * back, such as A/D bits the CPU set), every backend call that failed, and every call made on the
 * instance (watches, events with their bytes, delivery, vCPU and time, commits, checks) followed
 * by the callbacks it made and what each answered. The fake guest replays traces
 * (ptmon_fake_replay in <ptmon/fake.h>); `ptmon-replay` is its command-line front.
 *
 * Recording is asked for at creation (ptmon_config version 3, member `trace`) and works on any
 * backend: ptmon interposes on the glue itself. It costs nothing when off.
 *
 * The format (docs/TRACE.md) is a sequence of little-endian records, each an 8-byte header
 * (type, flags, payload length) and its payload; the first is a header record, the last an END
 * record. ptmon_trace_next() reads it; a trace is hostile input and every malformed record is
 * reported, never trusted.
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#ifndef PTMON_TRACE_H
#define PTMON_TRACE_H

#include <ptmon/ptmon.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The format version this library writes and reads. */
#define PTMON_TRACE_FORMAT 1

/** The version of struct ptmon_trace_sink this header defines (its `version` member). */
#define PTMON_TRACE_SINK_VERSION 1

/** Where a recording goes: ptmon calls write() with whole records, in order. */
typedef struct ptmon_trace_sink {
    unsigned version; /**< PTMON_TRACE_SINK_VERSION */
    /** Append @p len bytes. @return 0, or a negative value: the recording stops there (the
     *  instance carries on; the failure is logged once through the glue's log). */
    int (*write)(void *ctx, const void *data, size_t len);
    void *ctx;
    /** Free text kept in the trace's header (the agent's command line, say); NULL for none. At
     *  most 4095 bytes are kept. */
    const char *note;
} ptmon_trace_sink;

/** Record types. */
enum ptmon_trace_type {
    PTMON_TRACE_HEADER = 1,     /**< first record: format, paging, glue members, caps, note */
    PTMON_TRACE_FRAME = 2,      /**< a whole 4 KiB frame as first seen (fact) */
    PTMON_TRACE_MEM = 3,        /**< bytes read that differ from what a replay would hold (fact) */
    PTMON_TRACE_FAIL = 4,       /**< a backend call that failed (fact) */
    PTMON_TRACE_WATCH = 5,      /**< ptmon_watch */
    PTMON_TRACE_UNWATCH = 6,    /**< ptmon_unwatch */
    PTMON_TRACE_EVENT = 7,      /**< ptmon_handle_event */
    PTMON_TRACE_CALLBACK = 8,   /**< a watch callback of the call before it, and its answer */
    PTMON_TRACE_CHECK = 9,      /**< ptmon_check */
    PTMON_TRACE_COMMIT = 10,    /**< ptmon_commit */
    PTMON_TRACE_MONITORED = 11, /**< ptmon_set_monitored_bits */
    PTMON_TRACE_END = 12,       /**< ptmon_destroy: the trace is complete */
    PTMON_TRACE_HOOK = 13,      /**< a frame-hook call (always PTMON_TRACE_F_UNSUPPORTED) */
};

/** Record flags. */
enum ptmon_trace_flags {
    /** The call's callbacks called the instance themselves (not replayable as recorded). */
    PTMON_TRACE_F_NESTED = 1u << 0,
    /** The instance did something a trace cannot express (frame hooks, a PRE write of unknown
     *  bytes performed by emulate_write): a replay stops there. */
    PTMON_TRACE_F_UNSUPPORTED = 1u << 1,
};

/** Backend calls named in FAIL records. */
enum ptmon_trace_op {
    PTMON_TRACE_OP_READ = 1,
    PTMON_TRACE_OP_GET_ACCESS = 2,
    PTMON_TRACE_OP_SET_ACCESS = 3,
    PTMON_TRACE_OP_EMULATE_WRITE = 4,
    PTMON_TRACE_OP_FLUSH = 5,
};

/** Optional glue members the recorded backend had (HEADER glue_members). */
enum ptmon_trace_glue_member {
    PTMON_TRACE_HAS_SET_ACCESS_BATCH = 1u << 0,
    PTMON_TRACE_HAS_EMULATE_WRITE = 1u << 1,
    PTMON_TRACE_HAS_PAUSE = 1u << 2,
    PTMON_TRACE_HAS_FLUSH = 1u << 3,
    PTMON_TRACE_HAS_GET_VCPU_REGS = 1u << 4,
};

/** One record as ptmon_trace_next() parsed it. Pointers point into the trace buffer. */
typedef struct ptmon_trace_record {
    enum ptmon_trace_type type;
    unsigned flags; /**< PTMON_TRACE_F_* */
    union {
        struct {
            unsigned format;       /**< PTMON_TRACE_FORMAT */
            ptmon_paging paging;   /**< resolved (never AUTO) */
            unsigned glue_version; /**< the backend's glue version */
            unsigned glue_members; /**< PTMON_TRACE_HAS_* */
            uint64_t monitored;    /**< monitored entry bits at creation */
            uint64_t max_nodes;    /**< ptmon_config caps */
            uint64_t max_tables;
            const char *note; /**< not NUL-terminated: note_len bytes */
            size_t note_len;
        } header;
        struct {
            uint64_t gfn;
            const uint8_t *bytes; /**< 4096 bytes */
        } frame;
        struct {
            uint64_t gpa;
            uint32_t len; /**< 1..4096, within one frame */
            const uint8_t *bytes;
        } mem;
        struct {
            unsigned op;   /**< enum ptmon_trace_op */
            int rc;        /**< the negative code the backend returned */
            uint64_t addr; /**< gpa (read, emulate_write), gfn (access calls), 0 (flush) */
            uint32_t len;  /**< bytes (read, emulate_write), else 0 */
        } fail;
        struct {
            uint32_t id; /**< the watch's number in this trace (0, 1, ... in creation order) */
            int rc;      /**< what ptmon_watch returned (no id is used when it failed) */
            uint64_t cr3, va;
            unsigned flags;
        } watch;
        struct {
            uint32_t id;
            int rc;
        } unwatch;
        struct {
            ptmon_mem_event ev; /**< ev.bytes points into the trace, or is NULL */
            int action;         /**< what ptmon_handle_event returned */
            uint64_t time_ns;   /**< since the instance was created */
        } event;
        struct {
            uint32_t id;         /**< the watch called */
            int action;          /**< what the callback answered */
            ptmon_change change; /**< as passed (cr3 and va are the watch's) */
        } callback;
        struct {
            int rc; /**< what the call returned (ptmon_check: the number of findings) */
        } result;
        struct {
            uint64_t bits;
        } monitored;
    } u;
} ptmon_trace_record;

/**
 * Parse the record at byte @p *pos of the trace @p data (@p len bytes) into @p out and advance
 * @p *pos past it. Call it from *pos = 0 on; the first record must be the header.
 * @return 1 (a record), 0 (the end of the buffer, exactly at a record boundary), or
 *         PTMON_EINVAL (NULL argument, truncated or malformed record, unknown type, a header
 *         of another format version or not first).
 */
PTMON_EXTERN int ptmon_trace_next(const void *data, size_t len, size_t *pos,
                                  ptmon_trace_record *out);

/** @return a static name for a record type ("event", "callback", ...), or "?". */
PTMON_EXTERN const char *ptmon_trace_type_name(enum ptmon_trace_type type);

#ifdef __cplusplus
}
#endif

#endif /* PTMON_TRACE_H */
