/*
 * One vm_event request -> (engine) -> one response. Owns: the response rules (version, vcpu_id,
 * VCPU_PAUSED echo, mem_access echo, SET_REGISTERS from the request's register block), the
 * mem_access write path (fetch + decode the instruction, tell the engine the new bytes, perform
 * the store atomically, advance the vCPU), the EMULATE fallback with its re-read at the vCPU's
 * next event, page-walker (FAULT_IN_GPT) events, CPUID events (answered as Xen computed them).
 * The request is the ring slot's COPY; nothing here touches the ring.
 * May call: the engine (ptmon_handle_event, ptmon_translate), xen_insn.c, xen_store.c,
 * xen_map.c, the glue's read helper.
 */
#include <string.h>

#include "xen_internal.h"

#define EFER_LMA (1ull << 10)
#define CS_AR_L  (1u << 9)
#define CS_AR_DB (1u << 10)

void xen_event_answer_plain(const vm_event_request_t *req, vm_event_response_t *rsp)
{
    memset(rsp, 0, sizeof(*rsp));
    rsp->version = VM_EVENT_INTERFACE_VERSION; /* Xen drops responses of another version */
    rsp->vcpu_id = req->vcpu_id;               /* responses are matched by vCPU */
    rsp->reason = req->reason;
    rsp->flags = req->flags & VM_EVENT_FLAG_VCPU_PAUSED;
    if (req->reason == VM_EVENT_REASON_MEM_ACCESS)
        rsp->u.mem_access = req->u.mem_access; /* Xen's emulate check reads gfn/flags */
}

/* Ask Xen to emulate: it does so only while the echoed access still conflicts. Remember the
 * frame: if Xen cannot emulate, the EMUL_UNIMPLEMENTED event that follows names no frame. */
static void answer_emulate(ptmon_xen *x, const vm_event_request_t *req, vm_event_response_t *rsp)
{
    rsp->flags |= VM_EVENT_FLAG_EMULATE;
    x->reread[req->vcpu_id].emul_valid = 1;
    x->reread[req->vcpu_id].emul_gfn = req->u.mem_access.gfn;
}

static unsigned mode_bits(const struct vm_event_regs_x86 *r)
{
    if ((r->msr_efer & EFER_LMA) && (r->cs.ar & CS_AR_L))
        return 64;
    return (r->cs.ar & CS_AR_DB) ? 32 : 16;
}

/* Read guest-virtual memory in the faulting vCPU's address space (instruction bytes, movs
 * source), through the engine's walker. */
static int read_va(void *ctx, uint64_t va, void *buf, size_t len)
{
    ptmon_xen *x = ctx;
    uint8_t *out = buf;
    ptmon_walk w;

    if (!x->pm || !x->cur)
        return PTMON_ENOTSUP;
    while (len) {
        size_t chunk = 4096 - (va & 0xfff);
        if (chunk > len)
            chunk = len;
        if (ptmon_translate(x->pm, x->cur->data.regs.x86.cr3, va, &w) < 0 ||
            w.status != PTMON_WALK_OK)
            return PTMON_ENOTPRESENT;
        if (xen_read_gpa(x, w.gpa, out, chunk) < 0)
            return PTMON_ERANGE;
        out += chunk;
        va += chunk;
        len -= chunk;
    }
    return 0;
}

static int read_xmm(void *ctx, unsigned index, uint8_t out[16])
{
    ptmon_xen *x = ctx;
    if (!x->cur || !x->ops.get_xmm)
        return PTMON_ENOTSUP;
    return x->ops.get_xmm(x->ops.h, x->cur->vcpu_id, index, out) < 0 ? PTMON_EIO : 0;
}

/* Instruction bytes at CS:RIP; as many as are readable (an instruction may end a page). */
static size_t fetch(ptmon_xen *x, const struct xen_cpu *cpu, uint8_t *buf)
{
    uint64_t lin =
        cpu->mode_bits == 64 ? cpu->r.rip : ((cpu->r.cs_base + cpu->r.rip) & 0xffffffffull);
    size_t first = 4096 - (lin & 0xfff);

    if (first >= 15)
        return read_va(x, lin, buf, 15) < 0 ? 0 : 15;
    if (read_va(x, lin, buf, first) < 0)
        return 0;
    return read_va(x, lin + first, buf + first, 15 - first) < 0 ? first : 15;
}

static unsigned entry_size(const struct xen_cpu *cpu)
{
    return (cpu->r.cr4 & (1u << 5)) ? 8 : 4; /* CR4.PAE */
}

/* Tell the engine that a range changed in memory behind its back (POST, bytes unknown): it
 * re-reads the watched entries there and reports what changed. */
static void post_reread(ptmon_xen *x, uint32_t vcpu, uint64_t gpa, uint32_t size)
{
    ptmon_mem_event ev = {vcpu, PTMON_ACCESS_W, gpa, size, PTMON_DELIVERY_POST, NULL};
    if (x->pm && xen_rights_is_restricted(x, gpa >> 12))
        (void)ptmon_handle_event(x->pm, &ev);
}

/* Before an event of @p vcpu: re-read what Xen emulated. Its own emulation is done (it ran
 * since); another vCPU's may not be yet, so that one is re-read again later (a re-read that
 * comes too early sees no change and costs nothing else). */
static void reread_emulated(ptmon_xen *x, uint32_t vcpu)
{
    for (uint32_t v = 0; v < x->nvcpus; v++) {
        struct xen_reread *rr = &x->reread[v];
        if (!rr->active)
            continue;
        if (v == vcpu)
            rr->active = 0;
        post_reread(x, v, rr->gpa, rr->size);
    }
}

void xen_event_flush_rereads(ptmon_xen *x)
{
    for (uint32_t v = 0; x->reread && v < x->nvcpus; v++)
        if (x->reread[v].active) {
            x->reread[v].active = 0;
            post_reread(x, v, x->reread[v].gpa, x->reread[v].size);
        }
}

/* Re-protect a frame relaxed for one instruction and have the engine re-read all of it: any
 * write made while it was open (by this vCPU or another) is seen as a net change. */
static void reprotect(ptmon_xen *x, uint32_t vcpu)
{
    struct xen_reread *rr = &x->reread[vcpu];
    if (!rr->relaxed)
        return;
    rr->relaxed = 0;
    if (xen_rights_reapply(x, rr->relaxed_gfn))
        post_reread(x, vcpu, rr->relaxed_gfn << 12, 4096);
}

void xen_event_reprotect_all(ptmon_xen *x)
{
    for (uint32_t v = 0; x->reread && v < x->nvcpus; v++)
        reprotect(x, v);
}

/* Xen could not emulate what we asked it to: open the frame for this vCPU's re-execution
 * (the only way forward without single-step), close it at its next event. */
static int handle_unimplemented(ptmon_xen *x, const vm_event_request_t *req)
{
    struct xen_reread *rr = &x->reread[req->vcpu_id];
    if (!rr->emul_valid || xen_rights_relax_once(x, rr->emul_gfn) < 0)
        return PTMON_XEN_EV_OTHER;
    rr->emul_valid = 0;
    rr->relaxed = 1;
    rr->relaxed_gfn = rr->emul_gfn;
    return PTMON_XEN_EV_UNIMPLEMENTED;
}

int xen_event_perform_pending(ptmon_xen *x, void *written)
{
    struct xen_pending *p = &x->pend;
    uint8_t *page = xen_map_get(&x->map, p->gpa >> 12);
    uint8_t old[4096];
    int r;

    if (!page)
        return PTMON_ERANGE;
    r = xen_store_plan(&p->plan, &p->cpu, page + (p->gpa & 0xfff), p->told_old, entry_size(&p->cpu),
                       old);
    if (r == STORE_RACE) {
        p->raced = 1;
        return PTMON_EBUSY;
    }
    p->stored = 1;
    /* registers after the instruction, computed from what memory really held */
    xen_plan_apply_regs(&p->plan, old, &p->cpu);
    if (memcmp(old, p->told_old, p->size))
        p->raced = -1; /* stored, but not on the bytes the engine saw: re-read after */
    if (written)
        xen_load_bytes(written, page + (p->gpa & 0xfff), p->size);
    return 0;
}

/* The write path of a mem_access event. @return the event kind. */
static int handle_write(ptmon_xen *x, const vm_event_request_t *req, vm_event_response_t *rsp)
{
    struct xen_pending *p = &x->pend;
    uint64_t gfn = req->u.mem_access.gfn;
    uint32_t off = (uint32_t)(req->u.mem_access.offset & 0xfff);
    uint64_t gpa = (gfn << 12) | off;
    uint8_t insn[15], *page;
    size_t ilen;
    int action = PTMON_ACTION_ALLOW;

    if (!xen_rights_is_restricted(x, gfn)) {
        /* In flight when we relaxed the frame: its rights are (or, before this batch's push,
         * will be) back. Or restricted by a monitor that died: its access is given back now.
         * EMULATE is a no-op for Xen when no restriction conflicts any more. */
        xen_rights_repair_stale(x, gfn);
        answer_emulate(x, req, rsp);
        return PTMON_XEN_EV_STALE;
    }
    page = xen_map_get(&x->map, gfn);
    memset(p, 0, offsetof(struct xen_pending, plan));
    p->cpu.r = req->data.regs.x86;
    p->cpu.mode_bits = mode_bits(&p->cpu.r);
    ilen = fetch(x, &p->cpu, insn);
    if (!page || !ilen ||
        xen_insn_plan(insn, ilen, &p->cpu, off, read_va, read_xmm, x, &p->plan) < 0 ||
        ((req->u.mem_access.flags & MEM_ACCESS_GLA_VALID) &&
         (req->u.mem_access.gla & ~0xfffull) != (p->plan.ea & ~0xfffull))) {
        /* Not an instruction we perform: Xen emulates it, before the vCPU runs again. What it
         * may write in this frame is not known (a rep string, a vector store): the engine
         * re-reads the whole frame's watched entries, before every event from then on and at
         * a quiet poll, until this vCPU's next event (by then the emulation is done). */
        struct xen_reread *rr = &x->reread[req->vcpu_id];
        rr->active = 1;
        rr->gpa = gpa & ~0xfffull;
        rr->size = 4096;
        answer_emulate(x, req, rsp);
        return PTMON_XEN_EV_EMULATE;
    }
    p->vcpu = req->vcpu_id;
    p->gpa = gpa;
    p->size = p->plan.size * p->plan.count;
    xen_load_bytes(p->told_old, page + off, p->size);
    xen_plan_new_bytes(&p->plan, &p->cpu, p->told_old, p->new_bytes);
    p->active = 1;
    if (x->pm) {
        ptmon_mem_event ev = {p->vcpu, PTMON_ACCESS_W,     gpa,
                              p->size, PTMON_DELIVERY_PRE, p->new_bytes};
        action = ptmon_handle_event(x->pm, &ev);
    }
    if (action == PTMON_ACTION_DENY) {
        /* The instruction runs against the old value and only its store is dropped: xchg
         * loads the old entry, cmpxchg compares with it, and/or/bt* set their flags from it, a
         * rep string advances over this frame's elements only (the rest re-executes, and
         * faults again if it writes another protected frame). A guest kernel that reads the
         * old entry back (ptep_get_and_clear, then a rewrite computed from it) sees the entry
         * that is still there. */
        p->active = 0;
        xen_plan_apply_regs(&p->plan, p->told_old, &p->cpu);
        rsp->data.regs.x86 = p->cpu.r;
        rsp->flags |= VM_EVENT_FLAG_SET_REGISTERS;
        return PTMON_XEN_EV_DENIED;
    }
    if (!p->stored && !p->raced)
        (void)xen_event_perform_pending(x, NULL);
    p->active = 0;
    if (p->raced > 0) { /* the entry changed for real: re-execute, the engine re-reads now */
        post_reread(x, p->vcpu, gpa, p->size);
        return PTMON_XEN_EV_RETRY;
    }
    rsp->data.regs.x86 = p->cpu.r;
    rsp->flags |= VM_EVENT_FLAG_SET_REGISTERS;
    if (p->raced < 0) /* stored on A/D-updated bytes (or a failed cmpxchg): engine re-reads */
        post_reread(x, p->vcpu, gpa, p->size);
    return PTMON_XEN_EV_WRITE;
}

static int handle_mem_access(ptmon_xen *x, const vm_event_request_t *req, vm_event_response_t *rsp)
{
    uint32_t fl = req->u.mem_access.flags;

    if (fl & MEM_ACCESS_FAULT_IN_GPT) {
        /* The page walker setting A/D bits: never a translation change. Xen walks and
         * completes the instruction; its own data access faults separately if it must. */
        answer_emulate(x, req, rsp);
        return PTMON_XEN_EV_IN_GPT;
    }
    if (!(fl & MEM_ACCESS_W)) {
        if (x->pm && xen_rights_is_restricted(x, req->u.mem_access.gfn)) {
            ptmon_mem_event ev = {req->vcpu_id,
                                  (fl & MEM_ACCESS_X) ? PTMON_ACCESS_X : PTMON_ACCESS_R,
                                  (req->u.mem_access.gfn << 12) |
                                      (req->u.mem_access.offset & 0xfff),
                                  1,
                                  PTMON_DELIVERY_PRE,
                                  NULL};
            (void)ptmon_handle_event(x->pm, &ev);
        }
        answer_emulate(x, req, rsp);
        return PTMON_XEN_EV_READ_EXEC;
    }
    return handle_write(x, req, rsp);
}

/* Xen computes the guest's own CPUID answer (guest_cpuid(), from the domain's policy, with its
 * APIC IDs and OS-controlled bits) into the registers before it sends the event
 * (hvm_vmexit_cpuid() in 4.17): the request's registers carry it. The instruction is then ours
 * to complete: the answer stays as Xen computed it, only RIP moves past the instruction. */
static int handle_cpuid(ptmon_xen *x, const vm_event_request_t *req, vm_event_response_t *rsp)
{
    struct vm_event_regs_x86 *r = &rsp->data.regs.x86;
    uint32_t leaf = req->u.cpuid.leaf;

    *r = req->data.regs.x86;
    if (x->cpuid_fn && leaf == x->cpuid_leaf) {
        ptmon_vcpu_regs v = {r->cr0, r->cr3, r->cr4, r->msr_efer};
        x->cpuid_fn(x->cpuid_ctx, req->vcpu_id, leaf, &v);
    }
    r->rip += req->u.cpuid.insn_length <= 15 ? req->u.cpuid.insn_length : 2;
    rsp->flags |= VM_EVENT_FLAG_SET_REGISTERS;
    return PTMON_XEN_EV_CPUID;
}

int xen_event_handle(ptmon_xen *x, const vm_event_request_t *req, vm_event_response_t *rsp)
{
    int kind;

    xen_event_answer_plain(req, rsp);
    if (req->version != VM_EVENT_INTERFACE_VERSION || req->vcpu_id >= x->nvcpus)
        return PTMON_XEN_EV_OTHER; /* malformed: unpause and re-execute */
    reprotect(x, req->vcpu_id);    /* its instruction has run since */
    reread_emulated(x, req->vcpu_id);
    if (req->reason != VM_EVENT_REASON_EMUL_UNIMPLEMENTED)
        x->reread[req->vcpu_id].emul_valid = 0; /* only the event right after counts */
    x->cur = req;
    switch (req->reason) {
    case VM_EVENT_REASON_MEM_ACCESS:
        kind = handle_mem_access(x, req, rsp);
        break;
    case VM_EVENT_REASON_CPUID:
        kind = (req->flags & VM_EVENT_FLAG_VCPU_PAUSED) ? handle_cpuid(x, req, rsp)
                                                        : PTMON_XEN_EV_OTHER;
        break;
    case VM_EVENT_REASON_EMUL_UNIMPLEMENTED:
        kind = handle_unimplemented(x, req);
        break;
    default:
        kind = PTMON_XEN_EV_OTHER;
        break;
    }
    x->cur = NULL;
    return kind;
}
