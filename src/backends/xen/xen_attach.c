/*
 * Public API of the Xen backend. Owns: attach (interface version check, domain checks, monitor
 * ring -> event channel -> ring init, access_required 0, page-walk and emulation monitors,
 * mem_access probe), the poll loop, the orderly and the emergency detach, statistics.
 * May call: xen_ring.c, xen_glue.c, xen_map.c, xen_event.c, the xen ops.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xen_internal.h"

static int ok_or_exists(int rc)
{
    return rc == 0 || rc == -EEXIST; /* monitor toggles say EEXIST when already in that state */
}

static void teardown(ptmon_xen *x)
{
    xen_vm_ring_close(&x->ops, &x->ring);
    x->ring_up = 0;
}

/* Checks common to both mechanisms. */
static int check_domain(ptmon_xen *x, const ptmon_xen_config *cfg)
{
    struct xen_dominfo info;
    int rc;

    memset(&info, 0, sizeof(info));
    rc = x->ops.domain_info(x->ops.h, &info);
    if (rc < 0 || info.domid != cfg->domid || info.dying || info.shutdown)
        return PTMON_ENOENT; /* a dying domain accepts the enable and never delivers */
    if (!info.hvm || !info.hap || info.nr_paged_pages)
        return PTMON_ENOTSUP; /* mapping paged-out frames would block the event loop */
    x->nvcpus = info.max_vcpu_id + 1;
    if (x->nvcpus == 0 || x->nvcpus > XEN_MAX_VCPUS)
        return PTMON_ENOTSUP;
    x->reread = calloc(x->nvcpus, sizeof(*x->reread));
    return x->reread ? 0 : PTMON_ENOMEM;
}

/* Undo a (partial) mem_access attach. */
static void mem_access_undo(ptmon_xen *x)
{
    if (!x->attached)
        return;
    (void)x->ops.monitor_emul_unimplemented(x->ops.h, 0);
    (void)x->ops.suppress_gpt_events(x->ops.h, 0);
    teardown(x);
    (void)x->ops.monitor_disable(x->ops.h);
    x->attached = 0;
}

/* The vm_event mem_access mechanism, in the order XEN-NOTES gives. */
static int mem_access_steps(ptmon_xen *x)
{
    uint8_t probe;
    int rc;

    rc = xen_vm_ring_open(&x->ops, &x->ring, &x->attached);
    if (rc < 0)
        return rc;
    x->ring_up = 1;
    if (x->ops.set_access_required(x->ops.h, 0) < 0)
        return PTMON_EIO; /* 1 would crash the guest if we ever went away */
    if (!ok_or_exists(x->ops.monitor_emul_unimplemented(x->ops.h, 1)))
        return PTMON_EIO; /* we answer EMULATE: without it Xen injects #UD */
    (void)ok_or_exists(x->ops.suppress_gpt_events(x->ops.h, 1)); /* else: IN_GPT events */
    rc = x->ops.get_mem_access(x->ops.h, 0, &probe);
    if (rc == -EINVAL || rc == -EOPNOTSUPP)
        return PTMON_ENOTSUP; /* no mem_access on this host (AMD NPT) */
    return 0;
}

static int attach_steps(ptmon_xen *x, const ptmon_xen_config *cfg)
{
    int rc = x->ops.vm_event_version(x->ops.h);

    if (rc != VM_EVENT_INTERFACE_VERSION)
        return rc < 0 ? PTMON_EIO : PTMON_EVERSION; /* its responses would be dropped */
    rc = check_domain(x, cfg);
    if (rc < 0)
        return rc;
    /* AUTO is mem_access: the ioreq server (no atomicity between vCPUs, page walks through
     * trapped tables end in Xen's MMIO emulator on AMD) is never chosen silently. */
    if (cfg->mechanism != PTMON_XEN_MECH_IOREQ) {
        x->mechanism = PTMON_XEN_MECH_MEM_ACCESS;
        return mem_access_steps(x);
    }
    x->mechanism = PTMON_XEN_MECH_IOREQ;
    rc = xen_ioreq_setup(x);
    if (rc == 0)
        x->attached = 1;
    return rc;
}

int xen_attach_ops(const ptmon_xen_config *cfg, const struct xen_ops *ops, ptmon_xen **out)
{
    ptmon_xen *x;
    int rc;

    if (!out)
        return PTMON_EINVAL;
    *out = NULL;
    if (!cfg || !ops)
        return PTMON_EINVAL;
    if (cfg->version == 0 || cfg->version > PTMON_XEN_CONFIG_VERSION)
        return PTMON_EVERSION;
    if (cfg->mechanism > PTMON_XEN_MECH_IOREQ)
        return PTMON_EINVAL;
    x = calloc(1, sizeof(*x));
    if (!x)
        return PTMON_ENOMEM;
    x->ops = *ops;
    x->domid = cfg->domid;
    x->mechanism = PTMON_XEN_MECH_MEM_ACCESS;
    xen_glue_fill(x);
    rc = xen_map_init(&x->map, &x->ops, cfg->lru_pages);
    if (rc == 0)
        rc = attach_steps(x, cfg);
    if (rc < 0) {
        if (x->mechanism == PTMON_XEN_MECH_MEM_ACCESS)
            mem_access_undo(x);
        x->attached = 0;
        ptmon_xen_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

int ptmon_xen_attach(const ptmon_xen_config *cfg, ptmon_xen **out)
{
    struct xen_ops ops;
    int rc;

    if (!out || !cfg)
        return PTMON_EINVAL;
    *out = NULL;
    rc = xen_ops_real_open(cfg->domid, &ops);
    if (rc < 0)
        return rc;
    rc = xen_attach_ops(cfg, &ops, out);
    return rc;
}

const ptmon_glue *ptmon_xen_glue(ptmon_xen *x)
{
    return x ? &x->glue : NULL;
}

unsigned ptmon_xen_mechanism(const ptmon_xen *x)
{
    return x ? x->mechanism : 0;
}

void ptmon_xen_set_instance(ptmon_xen *x, ptmon *pm)
{
    if (x)
        x->pm = pm;
}

uint32_t ptmon_xen_vcpus(const ptmon_xen *x)
{
    return x ? x->nvcpus : 0;
}

void ptmon_xen_on_event(ptmon_xen *x, ptmon_xen_event_fn fn, void *ctx)
{
    if (x) {
        x->event_fn = fn;
        x->event_ctx = ctx;
    }
}

void ptmon_xen_on_frame(ptmon_xen *x, ptmon_xen_frame_fn fn, void *ctx)
{
    if (x) {
        x->frame_fn = fn;
        x->frame_ctx = ctx;
    }
}

int ptmon_xen_watch_cpuid(ptmon_xen *x, uint32_t leaf, ptmon_xen_cpuid_fn fn, void *ctx)
{
    int on = fn != NULL, rc;

    if (!x || !x->ring_up)
        return PTMON_EINVAL;
    if (x->mechanism != PTMON_XEN_MECH_MEM_ACCESS)
        return PTMON_ENOTSUP; /* CPUID events come on the monitor ring */
    if (on != x->cpuid_on) {
        rc = x->ops.monitor_cpuid(x->ops.h, on);
        if (!ok_or_exists(rc))
            return PTMON_EIO;
        x->cpuid_on = on;
    }
    x->cpuid_fn = fn;
    x->cpuid_ctx = ctx;
    x->cpuid_leaf = leaf;
    return 0;
}

int ptmon_xen_poll(ptmon_xen *x, int timeout_ms)
{
    struct xen_dominfo info;
    int rc;

    if (!x || !x->ring_up)
        return PTMON_EINVAL;
    rc = x->ops.evtchn_wait(x->ops.h, timeout_ms);
    if (rc < 0)
        return PTMON_EIO;
    if (rc == 0) { /* quiet: is the domain still there? re-protect relaxed frames, re-read
                    * what Xen emulated (done by now: its responses went out long ago) */
        xen_event_reprotect_all(x);
        xen_event_flush_rereads(x);
        (void)xen_rights_flush(x);
        memset(&info, 0, sizeof(info));
        if (x->ops.domain_info(x->ops.h, &info) < 0 || info.domid != x->domid || info.dying ||
            info.shutdown)
            return PTMON_ENOENT;
    }
    /* Also on a timeout: a notification may have raced with the unmask. */
    if (x->mechanism == PTMON_XEN_MECH_IOREQ)
        return xen_ioreq_drain(x, 1);
    return xen_ring_drain(x, 1);
}

/* Answer whatever is on the ring (no engine) until it stays empty for @p quiet_rounds waits. */
static void drain_until_quiet(ptmon_xen *x, int quiet_rounds, int wait_ms, int max_rounds)
{
    int quiet = 0;
    for (int i = 0; i < max_rounds && quiet < quiet_rounds; i++) {
        if (xen_ring_drain(x, 0) > 0)
            quiet = 0;
        else {
            quiet++;
            (void)x->ops.evtchn_wait(x->ops.h, wait_ms);
        }
    }
}

/* ioreq: types back while the server exists, every pending ioreq completed (its write
 * performed: the guest cannot re-execute it), then the server destroyed. */
static int ioreq_detach(ptmon_xen *x)
{
    int rc = xen_rights_restore_all(x);
    (void)xen_ioreq_drain(x, 0);
    xen_ioreq_teardown(x);
    x->stats.map_hits = x->map.hits;
    x->stats.map_misses = x->map.misses;
    x->stats.map_calls = x->map.calls;
    xen_map_fini(&x->map);
    x->attached = 0;
    return rc;
}

int ptmon_xen_detach(ptmon_xen *x)
{
    int first = 0, rc, paused = 0;

    if (!x || !x->attached)
        return 0;
    if (x->mechanism == PTMON_XEN_MECH_IOREQ)
        return ioreq_detach(x);
    if (x->cpuid_on) {
        (void)x->ops.monitor_cpuid(x->ops.h, 0);
        x->cpuid_on = 0;
    }
    xen_event_flush_rereads(x);
    xen_event_reprotect_all(x);
    /* 1. Rights back while the ring exists (afterwards the calls fail with ENODEV). */
    rc = xen_rights_restore_all(x);
    if (rc < 0)
        first = rc;
    /* 2. Drain with the guest running: vCPUs waiting for ring space must get to post. */
    drain_until_quiet(x, 3, 10, 200);
    /* 3. Pause, drain again, disable; EBUSY means sleepers remain: let them run, retry. */
    (void)x->ops.suppress_gpt_events(x->ops.h, 0);
    (void)x->ops.monitor_emul_unimplemented(x->ops.h, 0);
    for (int tries = 0; tries < 20; tries++) {
        paused = x->ops.pause(x->ops.h) == 0;
        (void)xen_ring_drain(x, 0);
        rc = x->ops.monitor_disable(x->ops.h);
        if (rc != -EBUSY)
            break;
        if (paused)
            (void)x->ops.unpause(x->ops.h);
        paused = 0;
        drain_until_quiet(x, 2, 10, 50);
    }
    if (rc < 0 && !first)
        first = rc == -EBUSY ? PTMON_EBUSY : PTMON_EIO;
    teardown(x);
    x->stats.map_hits = x->map.hits;
    x->stats.map_misses = x->map.misses;
    x->stats.map_calls = x->map.calls;
    xen_map_fini(&x->map);
    if (paused) /* only what we paused */
        (void)x->ops.unpause(x->ops.h);
    for (; x->paused_by_us > 0; x->paused_by_us--) /* a glue pause left without its resume */
        (void)x->ops.unpause(x->ops.h);
    x->attached = 0;
    return first;
}

void ptmon_xen_emergency_detach(ptmon_xen *x)
{
    if (!x || !x->attached || !x->ring_up)
        return;
    x->pm = NULL; /* the engine may be what crashed: answer without it */
    if (x->mechanism == PTMON_XEN_MECH_IOREQ) {
        (void)xen_rights_restore_all(x);
        (void)xen_ioreq_drain(x, 0);
        xen_ioreq_teardown(x);
        x->attached = 0;
        return;
    }
    (void)xen_rights_restore_all(x);
    /* The request being handled when the crash came was consumed from the ring already: left
     * unanswered, its vCPU would stay paused for good (disabling the monitor does not release
     * it). Answer it, then the rest, and push in any case. */
    xen_ring_answer_current(x);
    (void)xen_ring_drain(x, 0);
    xen_ring_push(x);
    (void)x->ops.suppress_gpt_events(x->ops.h, 0);
    (void)x->ops.monitor_emul_unimplemented(x->ops.h, 0);
    if (x->cpuid_on)
        (void)x->ops.monitor_cpuid(x->ops.h, 0);
    (void)x->ops.monitor_disable(x->ops.h);
    teardown(x);
    for (; x->paused_by_us > 0; x->paused_by_us--)
        (void)x->ops.unpause(x->ops.h);
    x->attached = 0;
}

void ptmon_xen_free(ptmon_xen *x)
{
    if (!x)
        return;
    (void)ptmon_xen_detach(x);
    xen_map_fini(&x->map);
    free(x->q_gfn);
    free(x->q_acc);
    free(x->reread);
    free(x->ioports);
    if (x->ops.close)
        x->ops.close(x->ops.h);
    free(x);
}

int ptmon_xen_get_stats(const ptmon_xen *x, ptmon_xen_stats *out)
{
    if (!x || !out)
        return PTMON_EINVAL;
    *out = x->stats;
    if (x->map.buckets) {
        out->map_hits = x->map.hits;
        out->map_misses = x->map.misses;
        out->map_calls = x->map.calls;
    }
    return 0;
}

const char *ptmon_xen_event_kind_name(enum ptmon_xen_event_kind kind)
{
    static const char *const names[PTMON_XEN_EV_KINDS] = {
        "write", "denied",    "emulate", "retry",         "in_gpt",
        "stale", "read_exec", "cpuid",   "unimplemented", "other"};
    return (unsigned)kind < PTMON_XEN_EV_KINDS ? names[kind] : "?";
}
