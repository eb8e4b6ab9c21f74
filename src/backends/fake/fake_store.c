/*
 * fake_store.c — guest stores as the EPT sees them.
 *
 * Owns: the single store path every guest write takes (ptmon_fake_store, the rep string ops and
 * the page-table builder's entry stores): the per-frame rights check, event construction, PRE
 * and POST delivery, the pending PRE store that emulate_write(bytes = NULL) performs, and the
 * store statistics.
 * Calls: the registered handler, fake.c (rights, RAM), fake_counters.c (statistics).
 */
#include "fake_internal.h"

#include <stdlib.h>
#include <string.h>

static int vcpu_valid(const ptmon_fake *fake, uint32_t vcpu)
{
    return vcpu < fake->config.nr_vcpus;
}

static void write_ram(ptmon_fake *fake, uint64_t gpa, const uint8_t *bytes, uint64_t size)
{
    /* memmove: a caller may pass bytes that point into guest RAM itself. */
    memmove(fake->ram + gpa, bytes, (size_t)size);
}

static ptmon_mem_event make_event(uint32_t vcpu, uint64_t gpa, uint32_t size,
                                  enum ptmon_delivery delivery, const void *bytes)
{
    ptmon_mem_event event = {vcpu, PTMON_ACCESS_W, gpa, size, (uint32_t)delivery, bytes};
    return event;
}

/** POST: the write has happened; the handler is told and cannot undo it except through the
 *  glue. It gets a snapshot, so its own writes to guest RAM cannot change what it is reading. */
static int deliver_post(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, const uint8_t *bytes,
                        uint32_t size)
{
    uint8_t snapshot[FAKE_FRAME_SIZE];
    write_ram(fake, gpa, bytes, size);
    memcpy(snapshot, fake->ram + gpa, size);
    ptmon_mem_event event = make_event(vcpu, gpa, size, PTMON_DELIVERY_POST, snapshot);
    fake_count(fake, PTMON_FAKE_STAT_EVENTS);
    if (fake->handler(fake->handler_ctx, &event) < 0)
        fake_count(fake, PTMON_FAKE_STAT_HANDLER_ERRORS);
    return 0;
}

/** PRE: the handler decides; while it runs, the store is pending for emulate_write(NULL). */
static int deliver_pre(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, const uint8_t *bytes,
                       uint32_t size)
{
    /* Saved and restored so a handler that makes guest stores itself cannot lose ours. */
    struct fake_pending saved = fake->pending[vcpu];
    fake->pending[vcpu] = (struct fake_pending){1, gpa, size, bytes};
    ptmon_mem_event event = make_event(vcpu, gpa, size, PTMON_DELIVERY_PRE, bytes);
    fake_count(fake, PTMON_FAKE_STAT_EVENTS);
    int action = fake->handler(fake->handler_ctx, &event);
    fake->pending[vcpu] = saved;

    switch (action) {
    case PTMON_ACTION_ALLOW:
        write_ram(fake, gpa, bytes, size);
        return 0;
    case PTMON_ACTION_DENY:
        fake_count(fake, PTMON_FAKE_STAT_DENIED);
        return PTMON_EDENIED;
    case PTMON_ACTION_EMULATED:
        fake_count(fake, PTMON_FAKE_STAT_EMULATED);
        return 0;
    default:
        /* An error or an answer that is no action: fail open, as a hypervisor would. */
        fake_count(fake, PTMON_FAKE_STAT_HANDLER_ERRORS);
        write_ram(fake, gpa, bytes, size);
        return 0;
    }
}

/** Store one part that lies within a single frame. */
static int store_part(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, const uint8_t *bytes,
                      uint32_t size)
{
    if (fake_frame_rights(fake, gpa >> FAKE_FRAME_SHIFT) & PTMON_ACCESS_W) {
        write_ram(fake, gpa, bytes, size);
        return 0;
    }
    if (!fake->handler) {
        fake_count(fake, PTMON_FAKE_STAT_UNHANDLED);
        write_ram(fake, gpa, bytes, size);
        return 0;
    }
    if (fake->delivery == PTMON_DELIVERY_POST)
        return deliver_post(fake, vcpu, gpa, bytes, size);
    return deliver_pre(fake, vcpu, gpa, bytes, size);
}

static uint32_t part_size(uint64_t gpa, uint64_t remaining)
{
    uint64_t to_frame_end = FAKE_FRAME_SIZE - (gpa & (FAKE_FRAME_SIZE - 1));
    return (uint32_t)(remaining < to_frame_end ? remaining : to_frame_end);
}

int fake_guest_store(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, const uint8_t *bytes,
                     uint64_t size)
{
    /* Each frame's part is decided on its own: a denied part does not stop the later ones. */
    int denied = 0;
    while (size) {
        uint32_t part = part_size(gpa, size);
        if (store_part(fake, vcpu, gpa, bytes, part) == PTMON_EDENIED)
            denied = 1;
        gpa += part;
        bytes += part;
        size -= part;
    }
    return denied ? PTMON_EDENIED : 0;
}

int fake_perform_pending(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, uint32_t size)
{
    struct fake_pending *pending = &fake->pending[vcpu];
    if (!pending->active || pending->gpa != gpa || pending->size != size)
        return PTMON_EINVAL;
    write_ram(fake, gpa, pending->bytes, size);
    pending->active = 0; /* performed: a second request would write it twice */
    return 0;
}

/* ---- public store shapes ------------------------------------------------------------------ */

int ptmon_fake_store(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, const void *bytes,
                     uint32_t size)
{
    if (!fake || !bytes || size < 1 || size > 64 || !vcpu_valid(fake, vcpu))
        return PTMON_EINVAL;
    if (!fake_range_in_ram(fake, gpa, size))
        return PTMON_ERANGE;
    fake_count(fake, PTMON_FAKE_STAT_STORES);
    return fake_guest_store(fake, vcpu, gpa, bytes, size);
}

static int elem_size_valid(uint32_t size)
{
    return size == 1 || size == 2 || size == 4 || size == 8;
}

int ptmon_fake_store_int(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, uint64_t value,
                         uint32_t size)
{
    if (!elem_size_valid(size))
        return PTMON_EINVAL;
    uint8_t bytes[8];
    fake_put_le(bytes, value, size);
    return ptmon_fake_store(fake, vcpu, gpa, bytes, size);
}

/** Validate a rep op and compute its byte count. */
static int rep_bytes(const ptmon_fake *fake, uint32_t vcpu, uint32_t elem_size, uint64_t count,
                     uint64_t *total)
{
    if (!fake || !elem_size_valid(elem_size) || !vcpu_valid(fake, vcpu))
        return PTMON_EINVAL;
    if (count > FAKE_REP_MAX_BYTES / elem_size)
        return PTMON_EINVAL;
    *total = count * elem_size;
    return 0;
}

int ptmon_fake_rep_stos(ptmon_fake *fake, uint32_t vcpu, uint64_t gpa, uint64_t value,
                        uint32_t elem_size, uint64_t count)
{
    uint64_t total;
    int rc = rep_bytes(fake, vcpu, elem_size, count, &total);
    if (rc)
        return rc;
    if (!fake_range_in_ram(fake, gpa, total))
        return PTMON_ERANGE;
    fake_count(fake, PTMON_FAKE_STAT_STORES);

    uint8_t element[8];
    uint8_t part_bytes[FAKE_FRAME_SIZE];
    fake_put_le(element, value, elem_size);
    int denied = 0;
    for (uint64_t done = 0; done < total;) {
        uint32_t part = part_size(gpa + done, total - done);
        for (uint32_t i = 0; i < part; i++)
            part_bytes[i] = element[(done + i) % elem_size];
        if (store_part(fake, vcpu, gpa + done, part_bytes, part) == PTMON_EDENIED)
            denied = 1;
        done += part;
    }
    return denied ? PTMON_EDENIED : 0;
}

int ptmon_fake_rep_movs(ptmon_fake *fake, uint32_t vcpu, uint64_t dst, uint64_t src,
                        uint32_t elem_size, uint64_t count)
{
    uint64_t total;
    int rc = rep_bytes(fake, vcpu, elem_size, count, &total);
    if (rc)
        return rc;
    if (!fake_range_in_ram(fake, dst, total) || !fake_range_in_ram(fake, src, total))
        return PTMON_ERANGE;
    if (total == 0) {
        fake_count(fake, PTMON_FAKE_STAT_STORES);
        return 0;
    }

    /* The source is read whole before any write, so handlers see exactly the bytes moved even
     * if they change guest RAM meanwhile. */
    uint8_t *copy = malloc((size_t)total);
    if (!copy)
        return PTMON_ENOMEM;
    fake_count(fake, PTMON_FAKE_STAT_STORES);
    memcpy(copy, fake->ram + src, (size_t)total);
    rc = fake_guest_store(fake, vcpu, dst, copy, total);
    free(copy);
    return rc;
}
