/*
 * fake_glue.c — the fake guest seen through struct ptmon_glue.
 *
 * Owns: every glue callback. Each one counts its call first, then fails if an injected failure
 * fires (fake_glue_enter), and only then does its work, so tests can fail any call.
 * Calls: fake.c (RAM, rights), fake_store.c (the pending PRE store), fake_counters.c, the C
 * library's allocator.
 */
#include "fake_internal.h"

#include <stdlib.h>
#include <string.h>

#define CR0_PE   (1ull << 0)
#define CR0_WP   (1ull << 16)
#define CR0_PG   (1ull << 31)
#define CR4_PSE  (1ull << 4)
#define CR4_PAE  (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

static int glue_read_gpa(void *backend, uint64_t gpa, void *buf, size_t len)
{
    ptmon_fake *fake = backend;
    int rc = fake_glue_enter(fake, PTMON_FAKE_OP_READ_GPA);
    if (rc)
        return rc;
    if (!buf && len)
        return PTMON_EINVAL;
    if (!fake_range_in_ram(fake, gpa, len))
        return PTMON_ERANGE;
    if (len)
        memcpy(buf, fake->ram + gpa, len);
    return 0;
}

static int glue_get_access(void *backend, uint64_t gfn, uint32_t *access)
{
    ptmon_fake *fake = backend;
    int rc = fake_glue_enter(fake, PTMON_FAKE_OP_GET_ACCESS);
    if (rc)
        return rc;
    if (!access)
        return PTMON_EINVAL;
    if (gfn >= fake->nr_frames)
        return PTMON_ERANGE;
    *access = fake_frame_rights(fake, gfn);
    return 0;
}

static int glue_set_access(void *backend, uint64_t gfn, uint32_t access)
{
    ptmon_fake *fake = backend;
    int rc = fake_glue_enter(fake, PTMON_FAKE_OP_SET_ACCESS);
    if (rc)
        return rc;
    if (gfn >= fake->nr_frames)
        return PTMON_ERANGE;
    fake_put_frame_rights(fake, gfn, access);
    return 0;
}

static int glue_set_access_batch(void *backend, const uint64_t *gfns, const uint32_t *access,
                                 size_t n, size_t *done)
{
    ptmon_fake *fake = backend;
    size_t applied = 0;
    int rc = fake_glue_enter(fake, PTMON_FAKE_OP_SET_ACCESS_BATCH);
    if (!rc && n && (!gfns || !access))
        rc = PTMON_EINVAL;
    for (; !rc && applied < n; applied++) {
        if (gfns[applied] >= fake->nr_frames) {
            rc = PTMON_ERANGE;
            break;
        }
        fake_put_frame_rights(fake, gfns[applied], access[applied]);
    }
    if (done)
        *done = applied;
    return rc;
}

static int glue_emulate_write(void *backend, uint32_t vcpu, uint64_t gpa, uint32_t size,
                              const void *bytes, void *written)
{
    ptmon_fake *fake = backend;
    int rc = fake_glue_enter(fake, PTMON_FAKE_OP_EMULATE_WRITE);
    if (rc)
        return rc;
    if (vcpu >= fake->config.nr_vcpus || size == 0)
        return PTMON_EINVAL;
    if (!fake_range_in_ram(fake, gpa, size))
        return PTMON_ERANGE;
    if (bytes)
        memmove(fake->ram + gpa, bytes, size);
    else if ((rc = fake_perform_pending(fake, vcpu, gpa, size)) != 0)
        return rc;
    if (written)
        memcpy(written, fake->ram + gpa, size);
    return 0;
}

static int glue_pause(void *backend)
{
    ptmon_fake *fake = backend;
    int rc = fake_glue_enter(fake, PTMON_FAKE_OP_PAUSE);
    if (rc)
        return rc;
    fake->pause_depth++;
    return 0;
}

static int glue_resume(void *backend)
{
    ptmon_fake *fake = backend;
    int rc = fake_glue_enter(fake, PTMON_FAKE_OP_RESUME);
    if (rc)
        return rc;
    if (fake->pause_depth == 0)
        return PTMON_EINVAL;
    fake->pause_depth--;
    return 0;
}

static int glue_flush(void *backend)
{
    return fake_glue_enter(backend, PTMON_FAKE_OP_FLUSH);
}

static int glue_get_vcpu_regs(void *backend, uint32_t vcpu, ptmon_vcpu_regs *regs)
{
    ptmon_fake *fake = backend;
    int rc = fake_glue_enter(fake, PTMON_FAKE_OP_GET_VCPU_REGS);
    if (rc)
        return rc;
    if (vcpu >= fake->config.nr_vcpus || !regs)
        return PTMON_EINVAL;
    const ptmon_paging *pg = &fake->config.paging;
    regs->cr0 = CR0_PE | CR0_WP | CR0_PG;
    regs->cr3 = fake->cr3[vcpu];
    regs->cr4 = (pg->flags & PTMON_PAGING_PSE) ? CR4_PSE : 0;
    regs->efer = (pg->flags & PTMON_PAGING_NXE) ? EFER_NXE : 0;
    if (pg->mode != PTMON_MODE_32BIT)
        regs->cr4 |= CR4_PAE;
    if (pg->mode == PTMON_MODE_5LEVEL)
        regs->cr4 |= CR4_LA57;
    if (pg->mode == PTMON_MODE_4LEVEL || pg->mode == PTMON_MODE_5LEVEL)
        regs->efer |= EFER_LME | EFER_LMA;
    return 0;
}

/* The fake CPU's width: what its configuration says (0 there meaning 52). */
static int glue_get_maxphyaddr(void *backend, unsigned *bits)
{
    ptmon_fake *fake = backend;
    int rc = fake_glue_enter(fake, PTMON_FAKE_OP_GET_MAXPHYADDR);
    if (rc)
        return rc;
    if (!bits)
        return PTMON_EINVAL;
    *bits = (unsigned)fake->maxphyaddr;
    return 0;
}

static void glue_log(void *backend, int level, const char *message)
{
    ptmon_fake *fake = backend;
    (void)level;
    if (fake_glue_enter(fake, PTMON_FAKE_OP_LOG))
        return; /* an injected failure drops the line */
    fake_keep_log(fake, message);
}

static void *glue_realloc(void *backend, void *ptr, size_t old_size, size_t new_size)
{
    ptmon_fake *fake = backend;
    uint64_t *bytes = &fake->stats[PTMON_FAKE_STAT_BYTES_ALLOCATED];
    if (new_size == 0) {
        if (ptr)
            *bytes -= old_size;
        free(ptr);
        return NULL;
    }
    if (ptr && new_size <= old_size) {
        /* Shrinking cannot fail (lua_Alloc's rule); keep the block if libc will not move it. */
        void *smaller = realloc(ptr, new_size);
        *bytes -= old_size - new_size;
        return smaller ? smaller : ptr;
    }
    if (fake_glue_enter(fake, PTMON_FAKE_OP_ALLOC))
        return NULL;
    void *block = realloc(ptr, new_size);
    if (!block)
        return NULL;
    *bytes += ptr ? new_size - old_size : new_size;
    return block;
}

void fake_glue_init(ptmon_fake *fake)
{
    ptmon_glue *glue = &fake->glue;
    glue->version = PTMON_GLUE_VERSION;
    glue->backend = fake;
    glue->read_gpa = glue_read_gpa;
    glue->get_access = glue_get_access;
    glue->set_access = glue_set_access;
    glue->set_access_batch = glue_set_access_batch;
    glue->emulate_write = glue_emulate_write;
    glue->pause = glue_pause;
    glue->resume = glue_resume;
    glue->flush = glue_flush;
    glue->get_vcpu_regs = glue_get_vcpu_regs;
    glue->log = glue_log;
    glue->realloc = glue_realloc;
    glue->get_maxphyaddr = glue_get_maxphyaddr;
}
