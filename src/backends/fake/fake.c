/*
 * fake.c — the fake guest's lifetime and its raw resources.
 *
 * Owns: creation and configuration checks, guest RAM and its hypervisor-side access (peek/poke),
 * the frame allocator, per-frame EPT rights, per-vCPU CR3 and the handler registration.
 * Calls: the C library, mmap, fake_glue_init (fake_glue.c). Never raises events.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include "fake_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

/* Guest RAM: zero pages mapped on first touch and no swap reserved, so a large guest (a replay
 * of a host with tens of GiB) costs only the frames it touches, and asking for it cannot fail
 * for want of memory that will never be used. */
static uint8_t *ram_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

#define BITS_PER_WORD 64u

/* ---- configuration ------------------------------------------------------------------------ */

static int paging_mode_supported(enum ptmon_paging_mode mode)
{
    return mode == PTMON_MODE_32BIT || mode == PTMON_MODE_PAE || mode == PTMON_MODE_4LEVEL ||
           mode == PTMON_MODE_5LEVEL;
}

static int check_config(const ptmon_fake_config *config)
{
    if (config->version != PTMON_FAKE_CONFIG_VERSION)
        return PTMON_EVERSION;
    if (config->paging.mode == PTMON_MODE_OFF || config->paging.mode == PTMON_MODE_AUTO)
        return PTMON_ENOTSUP;
    if (!paging_mode_supported(config->paging.mode))
        return PTMON_EINVAL;
    if (config->paging.flags & ~(unsigned)(PTMON_PAGING_PSE | PTMON_PAGING_NXE))
        return PTMON_EINVAL;
    unsigned maxphyaddr = config->paging.maxphyaddr ? config->paging.maxphyaddr : 52;
    /* Every x86 CPU addresses at least 32 bits; below that 32-bit paging would be ill-defined. */
    if (maxphyaddr < 32 || maxphyaddr > 52)
        return PTMON_EINVAL;
    if (config->ram_size == 0 || config->ram_size % FAKE_FRAME_SIZE != 0 ||
        config->ram_size > (64ull << 30) || config->ram_size >= (1ull << maxphyaddr))
        return PTMON_EINVAL;
    if (config->nr_vcpus < 1 || config->nr_vcpus > FAKE_MAX_VCPUS)
        return PTMON_EINVAL;
    if (config->delivery != PTMON_DELIVERY_PRE && config->delivery != PTMON_DELIVERY_POST)
        return PTMON_EINVAL;
    return 0;
}

static void free_resources(ptmon_fake *fake)
{
    if (fake->ram)
        munmap(fake->ram, (size_t)fake->config.ram_size);
    free(fake->rights_xor);
    free(fake->frame_used);
    free(fake);
}

/* ---- lifetime ----------------------------------------------------------------------------- */

int ptmon_fake_create(const ptmon_fake_config *config, ptmon_fake **out)
{
    if (out)
        *out = NULL;
    if (!config || !out)
        return PTMON_EINVAL;
    int rc = check_config(config);
    if (rc)
        return rc;
    if (config->ram_size > SIZE_MAX)
        return PTMON_ENOMEM;

    ptmon_fake *fake = calloc(1, sizeof(*fake));
    if (!fake)
        return PTMON_ENOMEM;
    fake->config = *config;
    fake->maxphyaddr = config->paging.maxphyaddr ? config->paging.maxphyaddr : 52;
    fake->nr_frames = config->ram_size >> FAKE_FRAME_SHIFT;
    fake->delivery = config->delivery;
    fake->alloc_hint = 1;

    fake->ram = ram_alloc((size_t)config->ram_size);
    fake->rights_xor = calloc((size_t)fake->nr_frames, sizeof(*fake->rights_xor));
    fake->frame_used =
        calloc((size_t)((fake->nr_frames + BITS_PER_WORD - 1) / BITS_PER_WORD), sizeof(uint64_t));
    if (!fake->ram || !fake->rights_xor || !fake->frame_used) {
        free_resources(fake);
        return PTMON_ENOMEM;
    }
    fake_glue_init(fake);
    *out = fake;
    return 0;
}

void ptmon_fake_destroy(ptmon_fake *fake)
{
    if (fake)
        free_resources(fake);
}

const ptmon_glue *ptmon_fake_glue(ptmon_fake *fake)
{
    return fake ? &fake->glue : NULL;
}

const ptmon_fake_config *ptmon_fake_get_config(const ptmon_fake *fake)
{
    return fake ? &fake->config : NULL;
}

void ptmon_fake_set_handler(ptmon_fake *fake, ptmon_fake_handler handler, void *ctx)
{
    if (!fake)
        return;
    fake->handler = handler;
    fake->handler_ctx = handler ? ctx : NULL;
}

void ptmon_fake_set_delivery(ptmon_fake *fake, enum ptmon_delivery delivery)
{
    if (fake && (delivery == PTMON_DELIVERY_PRE || delivery == PTMON_DELIVERY_POST))
        fake->delivery = delivery;
}

/* ---- RAM ---------------------------------------------------------------------------------- */

int fake_range_in_ram(const ptmon_fake *fake, uint64_t gpa, uint64_t len)
{
    uint64_t size = fake->config.ram_size;
    return len <= size && gpa <= size - len;
}

uint64_t fake_load_le(const uint8_t *p, unsigned size)
{
    uint64_t value = 0;
    for (unsigned i = size; i-- > 0;)
        value = (value << 8) | p[i];
    return value;
}

void fake_put_le(uint8_t *p, uint64_t value, unsigned size)
{
    for (unsigned i = 0; i < size; i++, value >>= 8)
        p[i] = (uint8_t)value;
}

int ptmon_fake_peek(const ptmon_fake *fake, uint64_t gpa, void *buf, size_t len)
{
    if (!fake || (!buf && len))
        return PTMON_EINVAL;
    if (!fake_range_in_ram(fake, gpa, len))
        return PTMON_ERANGE;
    if (len)
        memcpy(buf, fake->ram + gpa, len);
    return 0;
}

int ptmon_fake_poke(ptmon_fake *fake, uint64_t gpa, const void *buf, size_t len)
{
    if (!fake || (!buf && len))
        return PTMON_EINVAL;
    if (!fake_range_in_ram(fake, gpa, len))
        return PTMON_ERANGE;
    if (len)
        memmove(fake->ram + gpa, buf, len);
    return 0;
}

uint64_t ptmon_fake_peek64(const ptmon_fake *fake, uint64_t gpa)
{
    if (!fake || !fake_range_in_ram(fake, gpa, 8))
        return 0;
    return fake_load_le(fake->ram + gpa, 8);
}

/* ---- frame allocator ---------------------------------------------------------------------- */

static int frame_is_used(const ptmon_fake *fake, uint64_t gfn)
{
    return (int)((fake->frame_used[gfn / BITS_PER_WORD] >> (gfn % BITS_PER_WORD)) & 1);
}

static void mark_frame(ptmon_fake *fake, uint64_t gfn, int used)
{
    uint64_t bit = 1ull << (gfn % BITS_PER_WORD);
    if (used)
        fake->frame_used[gfn / BITS_PER_WORD] |= bit;
    else
        fake->frame_used[gfn / BITS_PER_WORD] &= ~bit;
}

/** @return the lowest free frame number >= 1, or nr_frames if there is none. */
static uint64_t lowest_free_frame(ptmon_fake *fake)
{
    uint64_t gfn = fake->alloc_hint;
    while (gfn < fake->nr_frames) {
        if (gfn % BITS_PER_WORD == 0 && fake->frame_used[gfn / BITS_PER_WORD] == ~0ull) {
            gfn += BITS_PER_WORD;
            continue;
        }
        if (!frame_is_used(fake, gfn))
            break;
        gfn++;
    }
    /* Nothing below gfn is free: later searches may start there. */
    fake->alloc_hint = gfn < fake->nr_frames ? gfn : fake->nr_frames;
    return fake->alloc_hint;
}

int fake_alloc_frame_below(ptmon_fake *fake, uint64_t limit, uint64_t *gpa)
{
    uint64_t gfn = lowest_free_frame(fake);
    if (gfn >= fake->nr_frames || (gfn << FAKE_FRAME_SHIFT) >= limit)
        return PTMON_ENOMEM;
    mark_frame(fake, gfn, 1);
    memset(fake->ram + (gfn << FAKE_FRAME_SHIFT), 0, FAKE_FRAME_SIZE);
    *gpa = gfn << FAKE_FRAME_SHIFT;
    return 0;
}

void fake_release_frame(ptmon_fake *fake, uint64_t gpa)
{
    uint64_t gfn = gpa >> FAKE_FRAME_SHIFT;
    mark_frame(fake, gfn, 0);
    if (gfn >= 1 && gfn < fake->alloc_hint)
        fake->alloc_hint = gfn;
}

int ptmon_fake_alloc_frame(ptmon_fake *fake, uint64_t *gpa)
{
    if (!fake || !gpa)
        return PTMON_EINVAL;
    return fake_alloc_frame_below(fake, UINT64_MAX, gpa);
}

int ptmon_fake_claim_frame(ptmon_fake *fake, uint64_t gpa)
{
    if (!fake)
        return PTMON_EINVAL;
    uint64_t gfn = gpa >> FAKE_FRAME_SHIFT;
    if (gfn >= fake->nr_frames)
        return PTMON_ERANGE;
    if (frame_is_used(fake, gfn))
        return PTMON_EEXIST;
    mark_frame(fake, gfn, 1);
    memset(fake->ram + (gfn << FAKE_FRAME_SHIFT), 0, FAKE_FRAME_SIZE);
    return 0;
}

int ptmon_fake_free_frame(ptmon_fake *fake, uint64_t gpa)
{
    if (!fake)
        return PTMON_EINVAL;
    uint64_t gfn = gpa >> FAKE_FRAME_SHIFT;
    if (gfn >= fake->nr_frames)
        return PTMON_ERANGE;
    if (!frame_is_used(fake, gfn))
        return PTMON_ENOENT;
    fake_release_frame(fake, gpa);
    return 0;
}

/* ---- frame rights ------------------------------------------------------------------------- */

uint32_t fake_frame_rights(const ptmon_fake *fake, uint64_t gfn)
{
    return fake->rights_xor[gfn] ^ PTMON_ACCESS_RWX;
}

void fake_put_frame_rights(ptmon_fake *fake, uint64_t gfn, uint32_t access)
{
    uint32_t old = fake_frame_rights(fake, gfn);
    if ((old & PTMON_ACCESS_W) && !(access & PTMON_ACCESS_W))
        fake->nr_write_protected++;
    else if (!(old & PTMON_ACCESS_W) && (access & PTMON_ACCESS_W))
        fake->nr_write_protected--;
    fake->rights_xor[gfn] = access ^ PTMON_ACCESS_RWX;
}

uint32_t ptmon_fake_rights(const ptmon_fake *fake, uint64_t gfn)
{
    if (!fake || gfn >= fake->nr_frames)
        return 0;
    return fake_frame_rights(fake, gfn);
}

int ptmon_fake_set_rights(ptmon_fake *fake, uint64_t gfn, uint32_t access)
{
    if (!fake)
        return PTMON_EINVAL;
    if (gfn >= fake->nr_frames)
        return PTMON_ERANGE;
    fake_put_frame_rights(fake, gfn, access);
    return 0;
}

uint64_t ptmon_fake_count_write_protected(const ptmon_fake *fake)
{
    return fake ? fake->nr_write_protected : 0;
}

/* ---- vCPUs -------------------------------------------------------------------------------- */

int ptmon_fake_set_cr3(ptmon_fake *fake, uint32_t vcpu, uint64_t cr3)
{
    if (!fake || vcpu >= fake->config.nr_vcpus)
        return PTMON_EINVAL;
    fake->cr3[vcpu] = cr3;
    return 0;
}

uint64_t ptmon_fake_get_cr3(const ptmon_fake *fake, uint32_t vcpu)
{
    if (!fake || vcpu >= fake->config.nr_vcpus)
        return 0;
    return fake->cr3[vcpu];
}

unsigned ptmon_fake_pause_depth(const ptmon_fake *fake)
{
    return fake ? fake->pause_depth : 0;
}
