/*
 * internal.h — the ptmon instance and the core's private helpers.
 *
 * Owns: struct ptmon. Every core file may include it. The glue wrappers declared here
 * (glue.c) are the only way the core reaches the hypervisor.
 */
#ifndef PTMON_CORE_INTERNAL_H
#define PTMON_CORE_INTERNAL_H

#include <ptmon/backend.h>

#include <stdarg.h>

struct ptmon {
    ptmon_glue glue;     /* imported copy: members beyond the backend's version are NULL */
    ptmon_paging paging; /* resolved paging (never AUTO) */
};

/* ---- glue.c ------------------------------------------------------------------------------ */

/* Copy @p src into @p dst member by member up to src->version; check required members. */
int glue_import(ptmon_glue *dst, const ptmon_glue *src);

/* Allocate / free through the backend's allocator or libc. Before the instance exists the
 * imported glue is passed directly. */
void *glue_alloc(const ptmon_glue *glue, size_t size);
void glue_free(const ptmon_glue *glue, void *ptr, size_t size);

int glue_read_gpa(const ptmon_glue *glue, uint64_t gpa, void *buf, size_t len);
int glue_get_vcpu_regs(const ptmon_glue *glue, uint32_t vcpu, ptmon_vcpu_regs *regs);

#if defined(__GNUC__)
#define PTMON_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PTMON_PRINTF(a, b)
#endif

void glue_log(const ptmon_glue *glue, int level, const char *fmt, ...) PTMON_PRINTF(3, 4);

/* ---- paging.c ---------------------------------------------------------------------------- */

/* @return 0 if @p pg is a complete, usable description (mode 32BIT..5LEVEL, sane maxphyaddr). */
int paging_validate(const ptmon_paging *pg);

#endif
