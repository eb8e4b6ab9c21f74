/*
 * instance.c — the ptmon instance: creation (glue import, configuration, paging mode),
 * destruction, and the public page-walk entry point.
 *
 * Owns: struct ptmon's lifetime. Calls glue.c, paging.c, walk.c, the watch, entry, table and
 * frame layers (to tear them down) and the recorder (trace_write.c).
 */
#include "core/entry.h"
#include "core/frame.h"
#include "core/internal.h"
#include "core/trace.h"
#include "core/walk.h"
#include "core/watch.h"

#include <string.h>

static int config_import(ptmon_config *dst, const ptmon_config *src)
{
    const ptmon_config defaults = PTMON_CONFIG_INIT;

    *dst = defaults;
    if (!src)
        return 0;
    if (src->version < 1 || src->version > PTMON_CONFIG_VERSION)
        return PTMON_EVERSION;
    /* Only the members the caller's version has: its struct may be shorter than ours. */
    dst->paging = src->paging;
    if (src->version >= 2) {
        dst->max_nodes = src->max_nodes;
        dst->max_tables = src->max_tables;
    }
    if (src->version >= 3)
        dst->trace = src->trace;
    dst->version = PTMON_CONFIG_VERSION;
    return 0;
}

/*
 * The guest's physical-address width: the caller's, else the backend's (CPUID of the guest), else
 * the architectural maximum with a warning. An entry setting bits above the real width is a
 * reserved-bit fault for the CPU; with too wide a width ptmon would report it as present.
 */
static int maxphyaddr_resolve(const ptmon_glue *glue, unsigned wanted, unsigned *out)
{
    unsigned bits = 0;
    int rc;

    if (wanted) {
        *out = wanted;
        return 0;
    }
    /* A backend that cannot say (no member, or it fails: e.g. a monitoring domain not allowed
     * to read the guest's CPUID policy) must not keep the agent from attaching: the widest
     * width, and a warning that says what it costs. */
    rc = glue->get_maxphyaddr ? glue_get_maxphyaddr(glue, &bits) : PTMON_ENOCALLBACK;
    if (rc == 0 && (bits < 32 || bits > 52))
        rc = PTMON_EIO;
    if (rc < 0) {
        glue_log(glue, PTMON_LOG_WARN,
                 "the backend does not report the guest's physical-address width (%s%s): "
                 "assuming 52 bits, so entries with address bits above the real width are taken "
                 "as present (set ptmon_config.paging.maxphyaddr)",
                 glue->get_maxphyaddr ? "get_maxphyaddr: " : "no get_maxphyaddr",
                 glue->get_maxphyaddr ? ptmon_strerror(rc) : "");
        bits = 52;
    }
    *out = bits;
    return 0;
}

/* The configured paging with the width resolved; PTMON_MODE_AUTO: the mode read off vCPU 0, as
 * the hypervisor reports it. */
static int paging_resolve(const ptmon_glue *glue, const ptmon_paging *want, ptmon_paging *out)
{
    ptmon_vcpu_regs regs;
    unsigned width;
    int rc;

    const char *why = NULL;

    if (want->mode == PTMON_MODE_AUTO && want->flags)
        why = "paging.flags must be 0 with PTMON_MODE_AUTO (they are read off the vCPU)";
    else if (want->maxphyaddr > 52 || (want->maxphyaddr != 0 && want->maxphyaddr < 32))
        why = "paging.maxphyaddr must be 0 or 32..52";
    if (why) {
        glue_log(glue, PTMON_LOG_DEBUG, "ptmon_create: %s", why);
        return PTMON_EINVAL;
    }
    rc = maxphyaddr_resolve(glue, want->maxphyaddr, &width);
    if (rc < 0)
        return rc;
    if (want->mode != PTMON_MODE_AUTO) {
        *out = *want;
        out->maxphyaddr = width;
    } else {
        rc = glue_get_vcpu_regs(glue, 0, &regs);
        if (rc < 0)
            return rc;
        rc = ptmon_paging_from_regs(regs.cr0, regs.cr4, regs.efer, width, out);
        if (rc < 0)
            return rc;
    }
    rc = paging_validate(out, &why);
    if (rc < 0)
        glue_log(glue, PTMON_LOG_DEBUG, "ptmon_create: %s (%s paging)", why,
                 ptmon_paging_mode_name(out->mode));
    return rc;
}

int ptmon_create(const struct ptmon_glue *glue_in, const ptmon_config *config_in, ptmon **out)
{
    ptmon_glue glue;
    ptmon_config config;
    ptmon_paging paging;
    ptmon *pm;
    int rc;

    if (!out)
        return PTMON_EINVAL;
    *out = NULL;
    if (!glue_in)
        return PTMON_EINVAL;
    rc = glue_import(&glue, glue_in);
    if (rc < 0)
        return rc;
    rc = config_import(&config, config_in);
    if (rc < 0)
        return rc;
    rc = paging_resolve(&glue, &config.paging, &paging);
    if (rc < 0)
        return rc;

    pm = glue_alloc(&glue, sizeof(*pm));
    if (!pm)
        return PTMON_ENOMEM;
    memset(pm, 0, sizeof(*pm));
    pm->glue = glue;
    if (config.trace) {
        rc = trace_start(&pm->trace, &glue, config.trace, &pm->glue);
        if (rc < 0) {
            glue_free(&glue, pm, sizeof(*pm));
            return rc;
        }
    }
    pm->paging = paging;
    pm->levels = ptmon_paging_levels(paging.mode);
    pm->esize = pt_entry_size(&paging);
    /* A table pointer without reserved bits holds its table's address in exactly these bits */
    pm->table_addr = paging.mode == PTMON_MODE_32BIT ? 0xfffff000ull : 0x000ffffffffff000ull;
    for (unsigned l = 1; l <= pm->levels + 1 && l <= PTMON_MAX_LEVELS + 1; l++)
        pm->span[l] = l <= pm->levels ? pt_level_span(&paging, l) : 0;
    pm->touched_tail = &pm->touched;
    map_init(&pm->frames);
    pm->monitored = PTMON_DEFAULT_MONITORED;
    pm->max_nodes = config.max_nodes;
    pm->max_tables = config.max_tables;
    if (pm->trace)
        trace_header(pm->trace, &paging, pm->monitored, pm->max_nodes, pm->max_tables);
    glue_log(&pm->glue, PTMON_LOG_INFO, "ptmon %s: instance created, %s paging, maxphyaddr %u",
             ptmon_version_string(), ptmon_paging_mode_name(paging.mode), paging.maxphyaddr);
    *out = pm;
    return 0;
}

void ptmon_destroy(ptmon *pm)
{
    if (!pm)
        return;
    /* The trace ends here: destroying reads no guest memory and calls no callback. */
    if (pm->trace)
        trace_stop(pm->trace, &pm->glue);
    pm->trace = NULL;
    watch_destroy_all(pm);
    entry_stock_trim(pm, 0);
    table_stock_trim(pm, 0);
    frame_destroy_all(pm);
    /* Free through a copy: the glue lives inside the block being freed. */
    ptmon_glue glue = pm->glue;
    glue_free(&glue, pm, sizeof(*pm));
}

static int commit(ptmon *pm)
{
    int rc, frc;

    /* From a callback: the event (or commit) being delivered is walking the lists a commit
     * frees; its own end commits. */
    if (pm->event_depth)
        return 0;
    watch_commit(pm);
    rc = frame_commit(pm);
    /* Keep stock for the next remap (it moves as many nodes as the tree has, give or take),
     * but give back what a shrinking tree no longer needs. */
    entry_stock_trim(pm, (unsigned)(pm->stats.nodes / 2));
    table_stock_trim(pm, (unsigned)(pm->stats.tables / 2));
    frc = instance_flush(pm);
    return rc < 0 ? rc : frc;
}

int ptmon_commit(ptmon *pm)
{
    int rc;

    if (!pm)
        return PTMON_EINVAL;
    if (!pm->trace)
        return commit(pm);
    trace_begin(pm->trace);
    rc = commit(pm);
    trace_result_end(pm->trace, PTMON_TRACE_COMMIT, rc);
    return rc;
}

int instance_flush(ptmon *pm)
{
    int rc;

    if (!pm->flush_pending)
        return 0;
    rc = glue_flush(pm);
    if (rc < 0) {
        glue_log(&pm->glue, PTMON_LOG_ERROR, "flush of access changes failed: %s (retried)",
                 ptmon_strerror(rc));
        return rc;
    }
    pm->flush_pending = 0;
    return 0;
}

int instance_commit_if_idle(ptmon *pm)
{
    /* The common event leaves nothing to commit: skip the walk through the commit steps. */
    if (pm->event_depth ||
        !(pm->commit_frames || pm->dead_watches || watch_retries_due(pm) || pm->unread))
        return 0;
    return commit(pm);
}

ptmon_paging ptmon_get_paging(const ptmon *pm)
{
    ptmon_paging none = {PTMON_MODE_OFF, 0, 0};
    return pm ? pm->paging : none;
}

static int instance_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
    return glue_read_gpa(ctx, gpa, buf, len);
}

int ptmon_translate(ptmon *pm, uint64_t cr3, uint64_t va, ptmon_walk *out)
{
    int rc;

    if (!pm || !out)
        return PTMON_EINVAL;
    if (!pm->trace)
        return pt_walk(&pm->paging, instance_read, pm, cr3, va, NULL, NULL, out);
    trace_quiet(pm->trace, 1);
    rc = pt_walk(&pm->paging, instance_read, pm, cr3, va, NULL, NULL, out);
    trace_quiet(pm->trace, 0);
    return rc;
}
