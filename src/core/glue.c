/*
 * glue.c — the core's only door to the hypervisor: import of the backend's versioned glue
 * struct and thin wrappers with the fallbacks for absent optional members.
 *
 * Owns: the version → size table. Calls only the backend's callbacks and libc.
 */
#include "core/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GLUE_END_OF(member) (offsetof(ptmon_glue, member) + sizeof(((ptmon_glue *)0)->member))

/* Bytes of struct ptmon_glue that each version defines. A backend built against an older
 * header owns a shorter struct: reading past its version's end would read past its object. */
static const size_t glue_size_by_version[PTMON_GLUE_VERSION + 1] = {
    0, GLUE_END_OF(realloc),     /* version 1 */
    GLUE_END_OF(get_maxphyaddr), /* version 2 */
};

int glue_import(ptmon_glue *dst, const ptmon_glue *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src->version < 1 || src->version > PTMON_GLUE_VERSION)
        return PTMON_EVERSION;
    memcpy(dst, src, glue_size_by_version[src->version]);
    if (!dst->read_gpa || !dst->get_access || !dst->set_access)
        return PTMON_ENOCALLBACK;
    /* Pausing without resuming would leave the guest stuck: take both or neither. */
    if (!dst->pause != !dst->resume)
        return PTMON_ENOCALLBACK;
    return 0;
}

void *glue_alloc(const ptmon_glue *glue, size_t size)
{
    if (glue->realloc)
        return glue->realloc(glue->backend, NULL, 0, size);
    return malloc(size);
}

void glue_free(const ptmon_glue *glue, void *ptr, size_t size)
{
    if (!ptr)
        return;
    if (glue->realloc)
        glue->realloc(glue->backend, ptr, size, 0);
    else
        free(ptr);
}

/* A backend returning a positive value or a code ptmon does not know (an errno, say) would
 * confuse callers that test for < 0 or print the code: fold anything odd into EIO. */
static int glue_result(int rc)
{
    switch (rc) {
    case PTMON_OK:
#define GLUE_KNOWN_(name, value, msg) case PTMON_##name:
        PTMON_ERRNO_MAP(GLUE_KNOWN_)
#undef GLUE_KNOWN_
        return rc;
    default:
        return PTMON_EIO;
    }
}

/* The members the engine calls on every event, and what each may return besides 0. */
enum glue_member {
    M_READ_GPA,
    M_GET_ACCESS,
    M_SET_ACCESS,
    M_SET_ACCESS_BATCH,
    M_FLUSH,
    M_EMULATE,
};

static const char *const member_names[] = {
    "read_gpa", "get_access", "set_access", "set_access_batch", "flush", "emulate_write",
};

/* backend.h's "Errors" paragraph, in code. Outside RAM is only ever PTMON_ERANGE; everything else
 * that may go wrong in a backend is a failure the engine retries (EIO, ENOMEM, EBUSY), and a change
 * of rights or an emulated write may also be one the backend cannot make (ENOTSUP: e.g. read hooks
 * on an ioreq server). A plain -1 is PTMON_EINVAL: ptmon never passes invalid arguments, so it
 * means the backend got the contract wrong (typically for "outside RAM"). */
static int allowed(enum glue_member m, int rc)
{
    switch (rc) {
    case PTMON_ERANGE: /* (flush: a queued frame that turned out not to be RAM) */
        return 1;
    case PTMON_EIO:
    case PTMON_ENOMEM:
    case PTMON_EBUSY:
        return 1;
    case PTMON_ENOTSUP:
        return m == M_SET_ACCESS || m == M_SET_ACCESS_BATCH || m == M_EMULATE;
    default:
        return 0;
    }
}

/* Check what member @p m returned: a breach of the contract is logged (once per member and
 * instance: it would repeat on every event) and becomes PTMON_EIO. */
static int checked(ptmon *pm, enum glue_member m, int rc)
{
    if (rc == 0 || allowed(m, rc))
        return rc;
    if (!(pm->glue_misuse_logged & (1u << m))) {
        pm->glue_misuse_logged |= 1u << m;
        glue_log(&pm->glue, PTMON_LOG_ERROR,
                 "backend: %s returned %d (%s), which the glue contract does not allow%s; taken "
                 "as PTMON_EIO, a failure retried later (check the backend with "
                 "ptmon_glue_check)",
                 member_names[m], rc, glue_result(rc) == rc ? ptmon_strerror(rc) : "no ptmon code",
                 rc == PTMON_EINVAL ? "; outside guest RAM must be PTMON_ERANGE" : "");
    }
    return PTMON_EIO;
}

int glue_read_gpa(ptmon *pm, uint64_t gpa, void *buf, size_t len)
{
    return checked(pm, M_READ_GPA, pm->glue.read_gpa(pm->glue.backend, gpa, buf, len));
}

int glue_get_vcpu_regs(const ptmon_glue *glue, uint32_t vcpu, ptmon_vcpu_regs *regs)
{
    if (!glue->get_vcpu_regs)
        return PTMON_ENOCALLBACK;
    return glue_result(glue->get_vcpu_regs(glue->backend, vcpu, regs));
}

int glue_get_maxphyaddr(const ptmon_glue *glue, unsigned *bits)
{
    if (!glue->get_maxphyaddr)
        return PTMON_ENOCALLBACK;
    return glue_result(glue->get_maxphyaddr(glue->backend, bits));
}

void glue_log(const ptmon_glue *glue, int level, const char *fmt, ...)
{
    char line[256];
    va_list ap;

    if (!glue->log)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    glue->log(glue->backend, level, line);
}

int glue_misuse(const ptmon_glue *glue, const char *call, const char *why)
{
    glue_log(glue, PTMON_LOG_DEBUG, "%s: %s (PTMON_EINVAL)", call, why);
    return PTMON_EINVAL;
}

int glue_get_access(ptmon *pm, uint64_t gfn, uint32_t *access)
{
    return checked(pm, M_GET_ACCESS, pm->glue.get_access(pm->glue.backend, gfn, access));
}

int glue_set_access(ptmon *pm, uint64_t gfn, uint32_t access)
{
    return checked(pm, M_SET_ACCESS, pm->glue.set_access(pm->glue.backend, gfn, access));
}

int glue_set_access_many(ptmon *pm, const uint64_t *gfns, const uint32_t *access, size_t n,
                         size_t *done)
{
    const ptmon_glue *glue = &pm->glue;
    int rc = 0;

    *done = 0;
    if (glue->set_access_batch && n > 1) {
        rc = checked(pm, M_SET_ACCESS_BATCH,
                     glue->set_access_batch(glue->backend, gfns, access, n, done));
        if (rc == 0)
            *done = n;
        else if (*done > n)
            *done = 0; /* a backend that reports nonsense gets no benefit of the doubt */
        return rc;
    }
    for (; *done < n; (*done)++) {
        rc = glue_set_access(pm, gfns[*done], access[*done]);
        if (rc < 0)
            break;
    }
    return rc;
}

int glue_emulate_write(ptmon *pm, uint32_t vcpu, uint64_t gpa, uint32_t size, const void *bytes,
                       void *written)
{
    if (!pm->glue.emulate_write)
        return PTMON_ENOCALLBACK;
    return checked(pm, M_EMULATE,
                   pm->glue.emulate_write(pm->glue.backend, vcpu, gpa, size, bytes, written));
}

int glue_flush(ptmon *pm)
{
    return pm->glue.flush ? checked(pm, M_FLUSH, pm->glue.flush(pm->glue.backend)) : 0;
}
