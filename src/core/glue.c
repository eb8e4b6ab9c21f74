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
    0, GLUE_END_OF(realloc), /* version 1 */
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

int glue_read_gpa(const ptmon_glue *glue, uint64_t gpa, void *buf, size_t len)
{
    return glue_result(glue->read_gpa(glue->backend, gpa, buf, len));
}

int glue_get_vcpu_regs(const ptmon_glue *glue, uint32_t vcpu, ptmon_vcpu_regs *regs)
{
    if (!glue->get_vcpu_regs)
        return PTMON_ENOCALLBACK;
    return glue_result(glue->get_vcpu_regs(glue->backend, vcpu, regs));
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

int glue_get_access(const ptmon_glue *glue, uint64_t gfn, uint32_t *access)
{
    return glue_result(glue->get_access(glue->backend, gfn, access));
}

int glue_set_access(const ptmon_glue *glue, uint64_t gfn, uint32_t access)
{
    return glue_result(glue->set_access(glue->backend, gfn, access));
}

int glue_set_access_many(const ptmon_glue *glue, const uint64_t *gfns, const uint32_t *access,
                         size_t n, size_t *done)
{
    int rc = 0;

    *done = 0;
    if (glue->set_access_batch && n > 1) {
        rc = glue_result(glue->set_access_batch(glue->backend, gfns, access, n, done));
        if (rc == 0)
            *done = n;
        else if (*done > n)
            *done = 0; /* a backend that reports nonsense gets no benefit of the doubt */
        return rc;
    }
    for (; *done < n; (*done)++) {
        rc = glue_set_access(glue, gfns[*done], access[*done]);
        if (rc < 0)
            break;
    }
    return rc;
}

int glue_emulate_write(const ptmon_glue *glue, uint32_t vcpu, uint64_t gpa, uint32_t size,
                       const void *bytes, void *written)
{
    if (!glue->emulate_write)
        return PTMON_ENOCALLBACK;
    return glue_result(glue->emulate_write(glue->backend, vcpu, gpa, size, bytes, written));
}

int glue_flush(const ptmon_glue *glue)
{
    return glue->flush ? glue_result(glue->flush(glue->backend)) : 0;
}
