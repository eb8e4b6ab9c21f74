/*
 * glue_check.c — ptmon_glue_check(): the conformance check a backend author runs against their
 * glue, as SQLite's test VFS lets VFS authors test theirs.
 *
 * Owns: the list of named checks, one per clause of the contract in <ptmon/backend.h>, and the
 * wording of their report lines. Calls: glue_import() (glue.c) for a copy that holds only the
 * members the backend's version defines, the backend's raw callbacks, ptmon_strerror() and
 * ptmon_err_name() (errors.c) to name what came back, and libc. Never the engine: the check is
 * about the backend alone, and an engine in the way would hide what the backend answered.
 *
 * Why raw callbacks and not glue.c's wrappers: the wrappers fold an unknown answer (an errno, a
 * positive value) into PTMON_EIO and supply defaults for absent members. The check must see the
 * backend's own return codes to tell a backend author which member said what.
 *
 * Everything the check changes (the scratch frame's bytes and rights) is put back before it
 * returns, whatever failed. All state lives in one struct on the caller's stack.
 */
#include "core/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define FRAME_SIZE 4096u

/* Offsets in the scratch frame of the single-entry reads and of the emulated write. */
#define ENTRY4_OFF 0x010u
#define ENTRY8_OFF 0x018u
#define WRITE_OFF  0x020u

/* Batch `done` before the call: no answer a backend may give for n <= 2. */
#define DONE_UNSET 99u

/* Access bits that are neither R/W/X nor the backend's (PTMON_ACCESS_BACKEND_MASK). */
#define ACCESS_UNDEFINED (~(uint32_t)PTMON_ACCESS_RWX & ~(uint32_t)PTMON_ACCESS_BACKEND_MASK)

struct check {
    ptmon_glue g; /* imported: members beyond the backend's version are NULL */
    const ptmon_glue_check_config *cfg;
    ptmon_write_fn report;
    void *ctx;
    int failed;

    uint64_t scratch_gpa;
    uint8_t orig[FRAME_SIZE]; /* the scratch frame's bytes before the check */
    int have_orig;
    uint32_t saved; /* the scratch frame's rights before the check */
    int have_saved;
    int rights_touched, bytes_touched; /* what put_back must restore */

    unsigned flushes;   /* flush calls made */
    int flush_rc;       /* the first failing one's answer, else 0 */
    unsigned bad_codes; /* answers that are neither 0 nor a PTMON_E* code */
    const char *bad_member;
    int bad_rc;
};

/* ---- report lines ------------------------------------------------------------------------- */

static void line(struct check *c, const char *tag, const char *name, const char *fmt, va_list ap)
    PTMON_PRINTF(4, 0);
static void line(struct check *c, const char *tag, const char *name, const char *fmt, va_list ap)
{
    char text[640];
    int n;

    if (!c->report)
        return;
    n = snprintf(text, sizeof(text), "%s %s", tag, name);
    if (fmt && n >= 0 && (size_t)n < sizeof(text) - 2) {
        text[n++] = ':';
        text[n++] = ' ';
        n += vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
    }
    if (n < 0 || (size_t)n >= sizeof(text) - 1) /* truncated: the newline still ends it */
        n = (int)sizeof(text) - 2;
    text[n] = '\n';
    text[n + 1] = '\0';
    c->report(c->ctx, text);
}

static void pass(struct check *c, const char *name, const char *fmt, ...) PTMON_PRINTF(3, 4);
static void pass(struct check *c, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    line(c, "ok  ", name, fmt, ap);
    va_end(ap);
}

static void fail(struct check *c, const char *name, const char *fmt, ...) PTMON_PRINTF(3, 4);
static void fail(struct check *c, const char *name, const char *fmt, ...)
{
    va_list ap;
    c->failed++;
    va_start(ap, fmt);
    line(c, "FAIL", name, fmt, ap);
    va_end(ap);
}

static void skip(struct check *c, const char *name, const char *fmt, ...) PTMON_PRINTF(3, 4);
static void skip(struct check *c, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    line(c, "skip", name, fmt, ap);
    va_end(ap);
}

/* ---- return codes ------------------------------------------------------------------------- */

static int is_ptmon_code(int rc)
{
    switch (rc) {
    case PTMON_OK:
#define CHECK_KNOWN_(name, value, msg) case PTMON_##name:
        PTMON_ERRNO_MAP(CHECK_KNOWN_)
#undef CHECK_KNOWN_
        return 1;
    default:
        return 0;
    }
}

/* "-5 (PTMON_ERANGE, guest-physical address outside guest RAM)", or what is wrong with @p rc. */
static const char *rc_text(char *buf, size_t size, int rc)
{
    if (rc == 0)
        snprintf(buf, size, "0 (success)");
    else if (is_ptmon_code(rc))
        snprintf(buf, size, "%d (%s, %s)", rc, ptmon_err_name(rc), ptmon_strerror(rc));
    else if (rc > 0)
        snprintf(buf, size, "%d (%s: a positive value is no PTMON_E* code)", rc,
                 ptmon_strerror(rc));
    else
        snprintf(buf, size, "%d (%s: no PTMON_E* code, an errno?)", rc, ptmon_strerror(rc));
    return buf;
}

/* Every raw answer passes here: the error_codes check reports the first one that is no code. */
static int note(struct check *c, const char *member, int rc)
{
    if (!is_ptmon_code(rc)) {
        if (!c->bad_codes++) {
            c->bad_member = member;
            c->bad_rc = rc;
        }
    }
    return rc;
}

/* @return 1 if @p call answered @p want; else reports FAIL for @p name, saying what came back. */
static int expect(struct check *c, const char *name, const char *call, int rc, int want)
{
    char got[128];

    if (rc == want)
        return 1;
    fail(c, name, "%s must return %s, returned %s%s", call, want ? ptmon_err_name(want) : "0",
         rc_text(got, sizeof(got), rc),
         want == PTMON_ERANGE && rc == PTMON_EINVAL
             ? ": must be PTMON_ERANGE: a plain -1 is PTMON_EINVAL"
             : "");
    return 0;
}

/* ---- the backend's callbacks, raw (every answer noted) ------------------------------------ */

static int b_read(struct check *c, uint64_t gpa, void *buf, size_t len)
{
    return note(c, "read_gpa", c->g.read_gpa(c->g.backend, gpa, buf, len));
}

static int b_get(struct check *c, uint64_t gfn, uint32_t *access)
{
    return note(c, "get_access", c->g.get_access(c->g.backend, gfn, access));
}

static int b_set(struct check *c, uint64_t gfn, uint32_t access)
{
    return note(c, "set_access", c->g.set_access(c->g.backend, gfn, access));
}

static int b_batch(struct check *c, const uint64_t *gfns, const uint32_t *access, size_t n,
                   size_t *done)
{
    return note(c, "set_access_batch", c->g.set_access_batch(c->g.backend, gfns, access, n, done));
}

static int b_emulate(struct check *c, uint64_t gpa, uint32_t size, const void *bytes, void *written)
{
    return note(c, "emulate_write",
                c->g.emulate_write(c->g.backend, c->cfg->vcpu, gpa, size, bytes, written));
}

/* Flush if the backend has it. Its answers are judged once, by the flush check. */
static void b_flush(struct check *c)
{
    int rc;

    if (!c->g.flush)
        return;
    rc = note(c, "flush", c->g.flush(c->g.backend));
    c->flushes++;
    if (rc && !c->flush_rc)
        c->flush_rc = rc;
}

/* ---- import ------------------------------------------------------------------------------- */

/* @return 0 if the other checks can run (the version is known, the required members exist). */
static int check_import(struct check *c, const ptmon_glue *glue)
{
    char got[128], opt[160];
    int rc = glue_import(&c->g, glue);
    const ptmon_glue *g = &c->g;

    if (glue->version < 1 || glue->version > PTMON_GLUE_VERSION) {
        fail(c, "import", "version must be 1..%u, the glue says %u: glue_import returned %s",
             PTMON_GLUE_VERSION, glue->version, rc_text(got, sizeof(got), rc));
        return -1;
    }
    if (!g->read_gpa || !g->get_access || !g->set_access) {
        fail(c, "import", "required member %s is NULL: glue_import returned %s",
             !g->read_gpa     ? "read_gpa"
             : !g->get_access ? "get_access"
                              : "set_access",
             rc_text(got, sizeof(got), rc));
        return -1;
    }
    if (!g->pause != !g->resume) {
        /* The rest never pauses: it can still run. */
        fail(c, "import",
             "pause and resume must be both set or both NULL, %s is NULL: "
             "glue_import returned %s",
             g->pause ? "resume" : "pause", rc_text(got, sizeof(got), rc));
        return 0;
    }
    if (rc != 0) { /* a reason this file does not know of: say so rather than guess */
        fail(c, "import", "glue_import returned %s", rc_text(got, sizeof(got), rc));
        return -1;
    }
    snprintf(opt, sizeof(opt), "%s%s%s%s%s%s%s%s", g->set_access_batch ? " set_access_batch" : "",
             g->emulate_write ? " emulate_write" : "", g->pause ? " pause/resume" : "",
             g->flush ? " flush" : "", g->get_vcpu_regs ? " get_vcpu_regs" : "",
             g->log ? " log" : "", g->realloc ? " realloc" : "",
             g->get_maxphyaddr ? " get_maxphyaddr" : "");
    pass(c, "import", "version %u, optional members:%s", g->version, opt[0] ? opt : " none");
    return 0;
}

/* ---- read_gpa ----------------------------------------------------------------------------- */

static void check_read_frame(struct check *c)
{
    char call[80];
    int rc = b_read(c, c->scratch_gpa, c->orig, FRAME_SIZE);

    snprintf(call, sizeof(call), "read_gpa(gpa 0x%" PRIx64 ", %u bytes)", c->scratch_gpa,
             FRAME_SIZE);
    if (!expect(c, "read_gpa.frame", call, rc, 0))
        return;
    c->have_orig = 1;
    pass(c, "read_gpa.frame", NULL);
}

/* One read inside the scratch frame; it must agree with the whole-frame read (the frame is one
 * nothing else writes, or the guest is paused). */
static void check_read_part(struct check *c, const char *name, uint32_t off, uint32_t len)
{
    uint8_t buf[8];
    char call[80];
    int rc;

    memset(buf, 0, sizeof(buf));
    rc = b_read(c, c->scratch_gpa + off, buf, len);
    snprintf(call, sizeof(call), "read_gpa(gpa 0x%" PRIx64 ", %u bytes)", c->scratch_gpa + off,
             len);
    if (!expect(c, name, call, rc, 0))
        return;
    if (c->have_orig && memcmp(buf, c->orig + off, len) != 0) {
        fail(c, name, "%s returned bytes that differ from the whole-frame read at offset 0x%x",
             call, off);
        return;
    }
    pass(c, name, NULL);
}

static void check_read_outside(struct check *c)
{
    uint8_t buf[8];
    char call[80];
    uint64_t gpa = c->cfg->outside_gfn << 12;
    int rc = b_read(c, gpa, buf, sizeof(buf));

    snprintf(call, sizeof(call), "read_gpa(gpa 0x%" PRIx64 ", 8 bytes) outside RAM", gpa);
    if (expect(c, "read_gpa.outside", call, rc, PTMON_ERANGE))
        pass(c, "read_gpa.outside", NULL);
}

/* ---- rights ------------------------------------------------------------------------------- */

static void check_get_scratch(struct check *c)
{
    const char *name = "get_access.scratch";
    uint64_t gfn = c->cfg->scratch_gfn;
    uint32_t a = 0;
    char call[64];
    int rc = b_get(c, gfn, &a);

    snprintf(call, sizeof(call), "get_access(gfn 0x%" PRIx64 ")", gfn);
    if (!expect(c, name, call, rc, 0))
        return;
    if (!(a & PTMON_ACCESS_R) || (a & ACCESS_UNDEFINED)) {
        fail(c, name,
             "%s gave 0x%" PRIx32 ": a RAM frame the check may read has R, and bits "
             "0x%" PRIx32 " are neither R/W/X nor PTMON_ACCESS_BACKEND_MASK",
             call, a, ACCESS_UNDEFINED);
        return;
    }
    c->saved = a;
    c->have_saved = 1;
    pass(c, name, "access 0x%" PRIx32, a);
}

static void check_get_outside(struct check *c)
{
    uint32_t a = 0;
    char call[80];
    int rc = b_get(c, c->cfg->outside_gfn, &a);

    snprintf(call, sizeof(call), "get_access(gfn 0x%" PRIx64 ") outside RAM", c->cfg->outside_gfn);
    if (expect(c, "get_access.outside", call, rc, PTMON_ERANGE))
        pass(c, "get_access.outside", NULL);
}

static void check_set_outside(struct check *c)
{
    /* A value of the kind ptmon passes: one get_access gave, with W cleared. */
    uint32_t a = (c->have_saved ? c->saved : PTMON_ACCESS_RWX) & ~(uint32_t)PTMON_ACCESS_W;
    char call[96];
    int rc = b_set(c, c->cfg->outside_gfn, a);

    snprintf(call, sizeof(call), "set_access(gfn 0x%" PRIx64 ", 0x%" PRIx32 ") outside RAM",
             c->cfg->outside_gfn, a);
    if (expect(c, "set_access.outside", call, rc, PTMON_ERANGE))
        pass(c, "set_access.outside", NULL);
}

/* What is wrong with rights @p got where @p want was expected, for a FAIL line. */
static const char *rights_diff(char *buf, size_t size, uint32_t want, uint32_t got)
{
    uint32_t rwx = (want ^ got) & PTMON_ACCESS_RWX;
    uint32_t other = (want ^ got) & ~(uint32_t)PTMON_ACCESS_RWX;
    int n = snprintf(buf, size, "expected 0x%" PRIx32 ", read back 0x%" PRIx32, want, got);

    if (n >= 0 && (size_t)n < size && rwx)
        n += snprintf(buf + n, size - (size_t)n, "; R/W/X 0x%" PRIx32 " instead of 0x%" PRIx32,
                      got & PTMON_ACCESS_RWX, want & PTMON_ACCESS_RWX);
    if (n >= 0 && (size_t)n < size && other)
        snprintf(buf + n, size - (size_t)n,
                 "; other bits (backend bits included) 0x%" PRIx32 " instead of 0x%" PRIx32,
                 got & ~(uint32_t)PTMON_ACCESS_RWX, want & ~(uint32_t)PTMON_ACCESS_RWX);
    return buf;
}

/* Set the scratch frame's rights to @p a, flush, read them back: they must be exactly @p a. */
/* Which bits of what get_access reads back must equal what was set: all of them for the rights
 * the frame had (backend.h: restored exactly, backend bits included), only R/W/X for any other
 * value: a backend's own bits may encode its state (Xen's access type) and follow the change. */
static uint32_t compared_bits(const struct check *c, uint32_t a)
{
    return a == c->saved ? ~0u : (uint32_t)PTMON_ACCESS_RWX;
}

static void round_trip(struct check *c, const char *name, uint32_t a)
{
    uint64_t gfn = c->cfg->scratch_gfn;
    uint32_t back = 0;
    char call[96], diff[200];
    int rc;

    c->rights_touched = 1;
    rc = b_set(c, gfn, a);
    snprintf(call, sizeof(call), "set_access(gfn 0x%" PRIx64 ", 0x%" PRIx32 ")", gfn, a);
    if (!expect(c, name, call, rc, 0))
        return;
    b_flush(c);
    rc = b_get(c, gfn, &back);
    snprintf(call, sizeof(call), "get_access(gfn 0x%" PRIx64 ") after set_access(0x%" PRIx32 ")",
             gfn, a);
    if (!expect(c, name, call, rc, 0))
        return;
    if ((back ^ a) & compared_bits(c, a)) {
        fail(c, name, "%s%s: %s", call, c->g.flush ? " and flush" : "",
             rights_diff(diff, sizeof(diff), a, back));
        return;
    }
    pass(c, name, "0x%" PRIx32 " reads back 0x%" PRIx32, a, back);
}

static void check_rights(struct check *c)
{
    if (!c->have_saved) {
        skip(c, "rights.remove_write", "needs the scratch frame's rights (get_access.scratch)");
        skip(c, "rights.restore", "needs the scratch frame's rights (get_access.scratch)");
        return;
    }
    if (!(c->saved & PTMON_ACCESS_W))
        skip(c, "rights.remove_write",
             "the scratch frame has no W to remove (access 0x%" PRIx32 "): pick a writable frame",
             c->saved);
    else
        round_trip(c, "rights.remove_write", c->saved & ~(uint32_t)PTMON_ACCESS_W);
    round_trip(c, "rights.restore", c->saved);
}

/* ---- set_access_batch --------------------------------------------------------------------- */

/* After a batch: flush, then the scratch frame must read back @p want. */
static int batch_reads_back(struct check *c, const char *name, const char *what, uint32_t want)
{
    uint32_t back = 0;
    char call[96], diff[200];
    int rc;

    b_flush(c);
    rc = b_get(c, c->cfg->scratch_gfn, &back);
    snprintf(call, sizeof(call), "get_access(gfn 0x%" PRIx64 ") after %s", c->cfg->scratch_gfn,
             what);
    if (!expect(c, name, call, rc, 0))
        return 0;
    if ((back ^ want) & compared_bits(c, want)) {
        fail(c, name, "%s: %s", call, rights_diff(diff, sizeof(diff), want, back));
        return 0;
    }
    return 1;
}

/* A successful batch of @p n entries, all for the scratch frame: rc 0, `done` n (or left as it
 * was: the contract asks for it only on failure), the last right in force. */
static void batch_ok(struct check *c, const char *name, const uint32_t *access, size_t n)
{
    uint64_t gfns[2] = {c->cfg->scratch_gfn, c->cfg->scratch_gfn};
    size_t done = DONE_UNSET;
    char call[96];
    int rc;

    c->rights_touched = 1;
    rc = b_batch(c, gfns, access, n, &done);
    snprintf(call, sizeof(call), "set_access_batch({gfn 0x%" PRIx64 " x %zu}, n %zu)", gfns[0], n,
             n);
    if (!expect(c, name, call, rc, 0))
        return;
    if (done != n && done != DONE_UNSET) {
        fail(c, name, "%s returned 0 with done %zu: done must be %zu", call, done, n);
        return;
    }
    if (!batch_reads_back(c, name, "the batch", access[n - 1]))
        return;
    if (done == n)
        pass(c, name, "done %zu", done);
    else
        pass(c, name, "done left unset (the contract asks for it only on failure)");
}

/* {scratch, outside}: PTMON_ERANGE, and `done` says whether the leading scratch entry went in
 * (1: applied; 0: the backend refused the whole batch): the frame's rights must agree. */
static void batch_outside(struct check *c, const char *name)
{
    uint64_t gfns[2] = {c->cfg->scratch_gfn, c->cfg->outside_gfn};
    uint32_t off_w = c->saved & ~(uint32_t)PTMON_ACCESS_W;
    uint32_t access[2] = {off_w, off_w};
    size_t done = DONE_UNSET;
    char call[112];
    int rc;

    c->rights_touched = 1;
    rc = b_batch(c, gfns, access, 2, &done);
    snprintf(call, sizeof(call),
             "set_access_batch({gfn 0x%" PRIx64 ", gfn 0x%" PRIx64 " outside RAM}, n 2)", gfns[0],
             gfns[1]);
    if (expect(c, name, call, rc, PTMON_ERANGE)) {
        if (done > 1)
            fail(c, name,
                 "%s failed with done %s: done must be the leading entries applied (0 or 1)", call,
                 done == DONE_UNSET ? "not set"
                 : done == 2        ? "2"
                                    : "> 2");
        else if (batch_reads_back(
                     c, name, done ? "a failed batch with done 1" : "a failed batch with done 0",
                     done ? off_w : c->saved))
            pass(c, name, "PTMON_ERANGE, done %zu", done);
    }
    /* back to the saved rights for what follows (put_back does it again in the end) */
    (void)b_set(c, c->cfg->scratch_gfn, c->saved);
    b_flush(c);
}

static void check_batch(struct check *c)
{
    static const char *const names[3] = {"set_access_batch.one", "set_access_batch.two",
                                         "set_access_batch.outside"};
    uint32_t access[2];

    for (int i = 0; i < 3 && (!c->g.set_access_batch || !c->have_saved); i++) {
        if (!c->g.set_access_batch)
            skip(c, names[i], "set_access_batch is absent (ptmon calls set_access per frame)");
        else
            skip(c, names[i], "needs the scratch frame's rights (get_access.scratch)");
    }
    if (!c->g.set_access_batch || !c->have_saved)
        return;
    access[0] = c->saved & ~(uint32_t)PTMON_ACCESS_W;
    batch_ok(c, names[0], access, 1);
    access[0] = access[1] = c->saved; /* the same frame twice: ends where it began */
    batch_ok(c, names[1], access, 2);
    batch_outside(c, names[2]);
}

/* ---- emulate_write ------------------------------------------------------------------------ */

/* Write 8 changed bytes at the scratch frame and put the original ones back, both through
 * emulate_write. The write is made with the frame write-protected when its rights allow,
 * because that is when the engine calls it (a PRE write it allows, a POST write it undoes): a
 * backend that does not bypass its own protection fails here or raises an event. The event
 * itself reaches the backend's own event source, which the check cannot see. */
static void check_emulate(struct check *c)
{
    const char *name = "emulate_write.bytes";
    uint64_t gpa = c->scratch_gpa + WRITE_OFF;
    uint8_t pattern[8], written[8], mem[8];
    char call[96];
    int rc, prot = 0;

    if (!c->g.emulate_write) {
        skip(c, name, "emulate_write is absent");
        return;
    }
    if (!c->have_orig) {
        skip(c, name, "needs the scratch frame's bytes to put back (read_gpa.frame)");
        return;
    }
    for (unsigned i = 0; i < 8; i++)
        pattern[i] = (uint8_t)~c->orig[WRITE_OFF + i];
    if (c->have_saved && (c->saved & PTMON_ACCESS_W)) {
        c->rights_touched = 1;
        prot = b_set(c, c->cfg->scratch_gfn, c->saved & ~(uint32_t)PTMON_ACCESS_W) == 0;
        b_flush(c);
    }

    memcpy(written, c->orig + WRITE_OFF, 8); /* what a backend that leaves it alone leaves */
    c->bytes_touched = 1;
    rc = b_emulate(c, gpa, 8, pattern, written);
    snprintf(call, sizeof(call), "emulate_write(vcpu %" PRIu32 ", gpa 0x%" PRIx64 ", 8 bytes)",
             c->cfg->vcpu, gpa);
    if (!expect(c, name, call, rc, 0))
        goto out;
    rc = b_read(c, gpa, mem, 8);
    if (!expect(c, name, "read_gpa of the bytes emulate_write wrote", rc, 0))
        goto out;
    if (memcmp(mem, pattern, 8) != 0) {
        fail(c, name, "%s: memory does not hold the bytes written", call);
        goto out;
    }
    if (memcmp(written, mem, 8) != 0) {
        fail(c, name, "%s: `written` does not hold what memory holds afterwards", call);
        goto out;
    }
    rc = b_emulate(c, gpa, 8, c->orig + WRITE_OFF, written);
    if (!expect(c, name, "emulate_write of the original bytes back", rc, 0))
        goto out;
    rc = b_read(c, gpa, mem, 8);
    if (!expect(c, name, "read_gpa of the original bytes put back", rc, 0))
        goto out;
    if (memcmp(mem, c->orig + WRITE_OFF, 8) != 0) {
        fail(c, name, "emulate_write of the original bytes back: memory does not hold them");
        goto out;
    }
    c->bytes_touched = 0;
    pass(c, name, "8 bytes at 0x%" PRIx64 "%s, written and put back", gpa,
         prot ? " with the frame write-protected" : "");
out:
    if (prot) {
        (void)b_set(c, c->cfg->scratch_gfn, c->saved);
        b_flush(c);
    }
}

/* ---- vCPU registers and MAXPHYADDR -------------------------------------------------------- */

static void check_regs(struct check *c)
{
    const char *name = "get_vcpu_regs";
    ptmon_vcpu_regs r;
    char call[48];
    int rc;

    if (!c->g.get_vcpu_regs) {
        skip(c, name, "get_vcpu_regs is absent (PTMON_MODE_AUTO cannot be used)");
        return;
    }
    memset(&r, 0, sizeof(r));
    rc = note(c, "get_vcpu_regs", c->g.get_vcpu_regs(c->g.backend, c->cfg->vcpu, &r));
    snprintf(call, sizeof(call), "get_vcpu_regs(vcpu %" PRIu32 ")", c->cfg->vcpu);
    if (expect(c, name, call, rc, 0))
        pass(c, name,
             "vCPU %" PRIu32 ": CR0 0x%" PRIx64 " CR3 0x%" PRIx64 " CR4 0x%" PRIx64
             " EFER 0x%" PRIx64,
             c->cfg->vcpu, r.cr0, r.cr3, r.cr4, r.efer);
}

static void check_maxphyaddr(struct check *c)
{
    const char *name = "get_maxphyaddr";
    unsigned bits = 0;
    char got[128];
    int rc;

    /* The imported copy has it NULL below version 2 anyway; the version is what says so. */
    if (c->g.version < 2) {
        skip(c, name, "glue version %u has no such member", c->g.version);
        return;
    }
    if (!c->g.get_maxphyaddr) {
        skip(c, name, "get_maxphyaddr is absent (ptmon assumes 52 bits)");
        return;
    }
    rc = note(c, "get_maxphyaddr", c->g.get_maxphyaddr(c->g.backend, &bits));
    if (!expect(c, name, "get_maxphyaddr()", rc, 0))
        return;
    if (bits < 32 || bits > 52) {
        fail(c, name, "get_maxphyaddr() returned %s with %u bits: must be 32..52",
             rc_text(got, sizeof(got), rc), bits);
        return;
    }
    pass(c, name, "%u bits", bits);
}

/* ---- putting back and the summaries ------------------------------------------------------- */

/* Whatever failed: the saved rights and bytes go back (as far as the glue lets us). */
static void put_back(struct check *c)
{
    if (c->bytes_touched && c->have_orig && c->g.emulate_write)
        (void)b_emulate(c, c->scratch_gpa + WRITE_OFF, 8, c->orig + WRITE_OFF, NULL);
    if (c->rights_touched && c->have_saved) {
        (void)b_set(c, c->cfg->scratch_gfn, c->saved);
        b_flush(c);
    }
}

static void check_restored(struct check *c)
{
    const char *name = "scratch.restored";
    uint8_t now[FRAME_SIZE];
    uint32_t a = 0;
    char diff[200];
    int rc;

    if (!c->have_orig && !c->have_saved) {
        skip(c, name, "neither the scratch frame's bytes nor its rights could be read");
        return;
    }
    if (c->have_orig) {
        rc = b_read(c, c->scratch_gpa, now, FRAME_SIZE);
        if (!expect(c, name, "read_gpa of the scratch frame at the end", rc, 0))
            return;
        if (memcmp(now, c->orig, FRAME_SIZE) != 0) {
            fail(c, name, "the scratch frame's bytes differ from what they were before the check");
            return;
        }
    }
    if (c->have_saved) {
        rc = b_get(c, c->cfg->scratch_gfn, &a);
        if (!expect(c, name, "get_access of the scratch frame at the end", rc, 0))
            return;
        if (a != c->saved) {
            fail(c, name, "the scratch frame's rights were not put back: %s",
                 rights_diff(diff, sizeof(diff), c->saved, a));
            return;
        }
    }
    pass(c, name, "%s as before",
         c->have_orig && c->have_saved ? "bytes and rights"
         : c->have_orig                ? "bytes"
                                       : "rights");
}

static void check_flush(struct check *c)
{
    char got[128];

    if (!c->g.flush) {
        skip(c, "flush", "flush is absent (every change must be in force when set_access returns)");
        return;
    }
    if (!c->flushes) /* no rights check ran: flush once so that it is asked at all */
        b_flush(c);
    if (c->flush_rc)
        fail(c, "flush", "flush() must return 0, returned %s",
             rc_text(got, sizeof(got), c->flush_rc));
    else
        pass(c, "flush", "%u calls", c->flushes);
}

static void check_codes(struct check *c)
{
    char got[128];

    if (c->bad_codes)
        fail(c, "error_codes",
             "every callback answers 0 or a negative PTMON_E* code (-1..-13); %s returned %s "
             "(%u such answers in all)",
             c->bad_member, rc_text(got, sizeof(got), c->bad_rc), c->bad_codes);
    else
        pass(c, "error_codes", NULL);
}

/* ---- the entry point ---------------------------------------------------------------------- */

int ptmon_glue_check(const struct ptmon_glue *glue, const ptmon_glue_check_config *config,
                     ptmon_write_fn report, void *ctx)
{
    struct check c;

    if (!glue || !config || config->version < 1 || config->version > PTMON_GLUE_CHECK_VERSION ||
        config->scratch_gfn == config->outside_gfn)
        return PTMON_EINVAL;
    memset(&c, 0, sizeof(c));
    c.cfg = config;
    c.report = report;
    c.ctx = ctx;
    c.scratch_gpa = config->scratch_gfn << 12;

    if (check_import(&c, glue) < 0)
        return c.failed; /* nothing else can be called safely */

    check_read_frame(&c);
    check_read_part(&c, "read_gpa.entry4", ENTRY4_OFF, 4);
    check_read_part(&c, "read_gpa.entry8", ENTRY8_OFF, 8);
    check_read_part(&c, "read_gpa.last_byte", FRAME_SIZE - 1, 1);
    check_read_outside(&c);

    check_get_scratch(&c);
    check_get_outside(&c);
    check_set_outside(&c);
    check_rights(&c);
    check_batch(&c);

    check_emulate(&c);
    check_regs(&c);
    check_maxphyaddr(&c);

    put_back(&c);
    check_restored(&c);
    check_flush(&c);
    check_codes(&c);
    return c.failed;
}
