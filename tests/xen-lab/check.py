#!/usr/bin/env python3
"""Checker of the Xen lab.

Reads the emulator's serial log, extracts the files dom0 dumped between @@BEGIN/@@END markers
(and verifies their line counts and md5), then compares, step by step, the translation of every
watched VA as ptmond reported it with the guest's own view from /proc/self/pagemap:

  missed    after the step, ptmond's last report for a VA differs from the guest's view
            (present/not present, or frame), or says writable where the guest made it read-only
            (except the D page from step 14 on: ptmond vetoed that, it must stay writable)
  invented  ptmond reported a change for a VA the step did not act on (WLOP ranges)
  outside   ptmond reported a change outside every step window (nothing ran then)

and, besides: ptmon_check's finding count ptmond reported after every step and at detach (0),
the frames ptmond restricted as Xen reports them after the detach (lab-access: none left
restricted), the deny step (the guest's write after the vetoed mprotect landed, ptmond logged
the denies), the load step (every page's map and unmap seen, events/s and p50/p99 handling
time), the guest alive after the detach, and with --replay the trace replayed on the fake
guest giving ptmond's callback log line for line.

Writes <out>/files/* (the dumped logs), <out>/table.md (per-step table) and <out>/result.md,
and exits 0 only when everything is clean.
"""
import argparse
import base64
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import time

PG = 4096


def extract(serial_path, outdir):
    files, problems = {}, []
    cur, want = None, None
    with open(serial_path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = re.sub(r"^\[\s*[\d.]+\] ", "", raw.rstrip("\n")).rstrip("\r")
            m = re.match(r"^@@BEGIN (\S+) (\d+) ([0-9a-f]{32})$", line)
            if m:
                cur, want = m.group(1), (int(m.group(2)), m.group(3))
                files[cur] = []
                continue
            if line.startswith("@@END "):
                name = line.split()[1]
                if cur == name:
                    text = "".join(l + "\n" for l in files[name])
                    md5 = hashlib.md5(text.encode()).hexdigest()
                    if len(files[name]) != want[0] or md5 != want[1]:
                        problems.append("%s: dumped %d lines (md5 %s), expected %d (md5 %s)"
                                        % (name, len(files[name]), md5, want[0], want[1]))
                cur = None
                continue
            if cur is not None:
                p = "@@%s@@ " % cur
                i = line.find(p)
                if i >= 0:
                    files[cur].append(line[i + len(p):])
                elif line.strip():
                    problems.append("%s: stray console line inside the dump: %r" % (cur, line[:100]))
    # dom0 sends large text files gzip-compressed as base64 (NAME.dump.gz.b64)
    for name in [n for n in files if n.endswith(".dump.gz.b64")]:
        try:
            text = gzip.decompress(base64.b64decode("".join(files.pop(name)))).decode("utf-8", "replace")
            files[name[:-len(".dump.gz.b64")]] = text.splitlines()
        except (ValueError, OSError) as e:
            problems.append("%s: cannot decode: %s" % (name, e))
    os.makedirs(os.path.join(outdir, "files"), exist_ok=True)
    for name, lines in files.items():
        with open(os.path.join(outdir, "files", name), "w") as f:
            f.write("".join(l + "\n" for l in lines))
    if cur is not None:
        problems.append("%s: dump not terminated" % cur)
    return files, problems


def hexint(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    return int(str(v), 0)


def norm_state(d):
    """ptmond's translation object -> (present, pfn_of_page_base, page_size, writable|None)."""
    if d is None:
        return None
    present = d.get("present")
    if present is None and "status" in d:
        st = d["status"]
        present = st in ("ok", "OK", "present", 0, "PTMON_WALK_OK")
    if not present:
        return (False, None, None, None)
    frame = hexint(d.get("frame", d.get("gpa", d.get("pfn"))))
    size = hexint(d.get("page_size", d.get("size", PG))) or PG
    r = d.get("rights", d.get("w"))
    w = None
    if isinstance(r, str):
        w = "w" in r.lower()
    elif isinstance(r, bool):
        w = r
    elif isinstance(r, int):
        w = bool(r & 1)  # PTMON_RIGHT_W is bit 0 in ptmon.h
    elif isinstance(r, list):
        w = "w" in r or "write" in r
    if "writable" in d:
        w = bool(d["writable"])
    return (True, frame, size, w)


def va_pfn(va, st):
    """The 4K frame number ptmond's state implies for va."""
    present, frame, size, _ = st
    if not present:
        return None
    if frame % size == 0:  # page base: add the VA's offset inside a large page
        frame += va & (size - 1)
    return frame >> 12


def parse_ptmond(lines):
    """-> list of (index, kind, va, state) for translation lines; other lines kept apart."""
    evs, other = [], []
    for i, l in enumerate(lines):
        l = l.strip()
        if not l.startswith("{"):
            other.append((i, l))
            continue
        try:
            o = json.loads(l)
        except ValueError:
            other.append((i, l))
            continue
        kind = o.get("event", o.get("type", o.get("kind", "")))
        if o.get("action") == "deny":
            kind = "deny"
        if "va" in o and ("after" in o or "translation" in o or "present" in o):
            after = o.get("after", o.get("translation", o))
            evs.append((i, kind, hexint(o["va"]), norm_state(after), o))
        else:
            other.append((i, l))
    return evs, other


def read_guest(lines):
    """The workload's console: VAs, per-step views, the ranges each step acts on, notes."""
    g = {"vas": [], "region": {}, "view": {}, "ops": {}, "names": {0: "baseline"}, "skips": {},
         "notes": [], "alive": False, "deny": None, "load": None}
    cur = {}
    for l in lines:
        f = l.split()
        if not f:
            continue
        if f[0] == "WLVA":
            va = int(f[1], 16)
            g["vas"].append(va)
            g["region"][va] = f[2]
        elif f[0] == "WLP":
            cur[int(f[2], 16)] = (None if f[3] == "-" else int(f[3], 16), f[4], f[5])
        elif f[0] == "WLSTEP":
            s = int(f[1])
            if f[2] != "-":
                g["names"][s] = f[2]
            if len(f) > 3 and f[3] == "END":
                g["view"][s] = dict(cur)
            if len(f) > 3 and f[3] == "SKIP":
                g["skips"][s] = " ".join(f[4:])
        elif f[0] == "WLOP":
            s, lo, n = int(f[1]), int(f[2], 16), int(f[3])
            g["ops"].setdefault(s, []).append((lo, lo + n * PG))
        elif f[0] == "WLDENY":
            g["deny"] = " ".join(f[1:])
        elif f[0] == "WLLOAD":
            g["load"] = (int(f[1]), int(f[2]), int(f[3]), int(f[4]) if len(f) > 4 else 1)
            g["load_planned"] = int(f[5]) if len(f) > 5 else int(f[1])
        elif f[0] == "WLTHREAD":
            g.setdefault("threads", []).append((int(f[1]), int(f[2])))
        elif f[0] in ("WLNOTE", "DOMU"):
            g["notes"].append(l)
        elif f[0] == "WLALIVE":
            g["alive"] = True
        elif f[0] == "WLALIVE2":
            g["alive2"] = True
    return g


def initial_view(g, changes):
    """ptmond's view at attach: the "before" of the first change of each VA; the guest's
    baseline for VAs ptmond never reported (they did not change, which step 0 checks).
    @p changes: the change lines' JSON objects, in order."""
    view = {}
    for o in changes:
        va = hexint(o["va"])
        if va not in view and isinstance(o.get("before"), dict):
            view[va] = norm_state(o["before"])
    for va in g["vas"]:
        if va not in view:
            pfn = g["view"].get(0, {}).get(va, (None,))[0]
            view[va] = (False, None, None, None) if pfn is None else (True, pfn << 12, PG, None)
    return view


def view_differences(g, view, step):
    """Where the reported @p view differs from the guest's after @p step (the lab's rules): a
    present/frame mismatch; ptmond saying writable where the guest made the page read-only;
    except the D page from the deny step on, which ptmond kept writable and must say so."""
    gv, bad = g["view"].get(step, {}), []
    for va in g["vas"]:
        gpfn, prot, _ = gv.get(va, (None, "--", "."))
        st = view.get(va, (False, None, None, None))
        ppfn = va_pfn(va, st)
        where = g["region"].get(va)
        if gpfn != ppfn:
            bad.append("va 0x%x (%s): guest %s, ptmond %s" % (va, where, "-" if gpfn is None else hex(gpfn),
                                                              "-" if ppfn is None else hex(ppfn)))
        elif where == "D" and step >= 14 and g["names"].get(14) == "deny-mprotect":
            if st[0] and st[3] is not True:
                bad.append("va 0x%x (D): ptmond vetoed its loss of write access, yet reports it read-only" % va)
        elif st[0] and prot == "r-" and st[3] is True:
            bad.append("va 0x%x: guest made it read-only, ptmond says writable" % va)
    return bad


def change_objects(lines):
    """The JSON objects of the change lines (those with a "va"), the time field dropped, so that
    two logs of the same run compare equal; a line that does not parse stays as a marker."""
    out = []
    for l in lines:
        if l.startswith("{") and '"va"' in l:
            try:
                o = json.loads(l)
                o.pop("time", None)
            except ValueError:
                o = {"unparsable": l[:80]}
            out.append(o)
    return out


def check_lines(plines):
    """ptmond's report lines: (line index, the JSON object)."""
    out = []
    for i, l in enumerate(plines):
        if '"event":"check"' in l:
            try:
                out.append((i, json.loads(l)))
            except ValueError:
                pass  # a cut line: the step then has no report, which fails it
    return out


def phase_times(serial):
    """(wall seconds, text) of dom0's phase and step lines."""
    phases = []
    with open(serial, encoding="utf-8", errors="replace") as f:
        for raw in f:
            m = re.match(r"^\[\s*([\d.]+)\] DOM0LAB \[[\d.]+s\] (PHASE .*|step \d+ done.*|ALLDONE|trace: .*|after detach: .*)", raw)
            if m:
                phases.append((float(m.group(1)), m.group(2).strip()))
    return phases


def replay_trace(files, outdir, replay, plines):
    """Replay the dumped trace with ptmon-replay; compare its callback log with ptmond's.
    @return (result lines, failures)."""
    res, fails = [], []
    b64 = files.get("trace.ptt.gz.b64")
    if not b64:
        return res, ["trace: ptmond's trace was not dumped"]
    gz = base64.b64decode("".join(b64))
    raw = gzip.decompress(gz)
    with open(os.path.join(outdir, "trace.ptt.gz"), "wb") as f:
        f.write(gz)
    res.append("Trace: %d bytes, %d gzip-compressed (files in %s/trace.ptt.gz)" % (len(raw), len(gz), outdir))
    if not replay:
        return res, fails
    t0 = time.time()
    p = subprocess.run([replay, "--json", "-"], input=raw, capture_output=True)
    secs = time.time() - t0
    mine = change_objects(p.stdout.decode().splitlines())
    theirs = change_objects(plines)
    same = sum(1 for a, b in zip(mine, theirs) if a == b)
    res.append("Replay (%s): %s; %d callbacks, %d of ptmond's %d lines identical (time aside), %.2f s"
               % (os.path.basename(replay), p.stderr.decode().strip().splitlines()[0] if p.stderr else "",
                  len(mine), same, len(theirs), secs))
    if p.returncode != 0:
        fails.append("replay: ptmon-replay exit %d: %s" % (p.returncode, p.stderr.decode().strip()[-300:]))
    if same != len(theirs) or len(mine) != len(theirs):
        first = next((k for k, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
        fails.append("replay: the callback log differs from ptmond's at line %d of %d/%d" % (first, len(mine), len(theirs)))
    return res, fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serial", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vcpus", type=int, default=1)
    ap.add_argument("--replay", help="ptmon-replay binary: replay the trace and compare")
    a = ap.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)
    res, fails = [], []

    files, problems = extract(a.serial, out)
    fails += ["dump: " + p for p in problems]
    for need in ("guest.log", "steps.txt", "ptmond.log"):
        if need not in files:
            fails.append("dump: %s missing (lab did not get that far)" % need)
    fails += ["dom0: " + l for l in files.get("failures.txt", [])]

    g = read_guest(files.get("guest.log", []))
    vas, region, gview, ops = g["vas"], g["region"], g["view"], g["ops"]
    steps = {}
    for l in files.get("steps.txt", []):
        f = l.split()
        if len(f) >= 4 and f[0] == "STEP":
            steps.setdefault(int(f[1]), {})[f[2]] = int(f[3])
    last = max(steps) if steps else 0
    after = last + 1  # the step the guest runs after the detach

    plines = files.get("ptmond.log", [])
    evs, other = parse_ptmond(plines)
    reports = check_lines(plines)
    first_step_line = steps.get(1, {}).get("BEGIN", len(plines))
    pstate = initial_view(g, [o for _, _, _, _, o in evs])

    def compare(step):
        return view_differences(g, pstate, step)

    def summarize(before, after_, getp):
        c = {"np->p": 0, "p->np": 0, "frame": 0, "rights": 0}
        for va in vas:
            b, x = getp(before, va), getp(after_, va)
            if b[0] is None and x[0] is not None:
                c["np->p"] += 1
            elif b[0] is not None and x[0] is None:
                c["p->np"] += 1
            elif b[0] != x[0]:
                c["frame"] += 1
            elif b[1] != x[1]:
                c["rights"] += 1
        return ", ".join("%d %s" % (v, k) for k, v in c.items() if v) or "no change"

    def gget(view, va):
        v = view.get(va, (None, "--", "."))
        return (v[0], v[1])

    def pget(view, va):
        st = view.get(va, (False, None, None, None))
        return (va_pfn(va, st), st[3], st[2])

    table, detail = [], []
    total_missed = total_invented = outside = 0
    bad0 = compare(0) if 0 in gview else ["guest printed no baseline"]
    np0 = sum(1 for va in vas if gview.get(0, {}).get(va, (None,))[0] is not None)
    table.append(("0", "baseline (attach)", "%d present, %d not present" % (np0, len(vas) - np0), "-",
                  "initial view from ptmond", len(bad0), 0, "-"))
    total_missed += len(bad0)
    detail += ["step 0: " + b for b in bad0[:20]]
    prev_end = first_step_line
    load_info = deny_info = None
    for s in sorted(k for k in steps if k <= last):
        b0, b1 = steps[s].get("BEGIN"), steps[s].get("END")
        if b0 is None or b1 is None:
            fails.append("step %d: no window in steps.txt" % s)
            continue
        gprev = gview.get(s - 1, {})
        pprev = dict(pstate)
        nev = ndeny = 0
        inv, touched, seq = [], set(), {}
        for i, kind, va, st, o in evs:
            if prev_end <= i < b0 or (i >= b1 and s == last):
                outside += 1
            if not (b0 <= i < b1) or st is None:
                continue
            nev += 1
            touched.add(va)
            if isinstance(o.get("before"), dict) and va_pfn(va, norm_state(o["before"])) != va_pfn(va, pstate[va]):
                inv.append("va 0x%x: event's before (%s) is not the last reported state (%s)" % (
                    va, va_pfn(va, norm_state(o["before"])), va_pfn(va, pstate[va])))
            if not any(lo <= va < hi for lo, hi in ops.get(s, [])):
                inv.append("va 0x%x (%s) reported in step %d which did not act on it: %s" % (va, region.get(va), s, plines[i][:160]))
            # A vetoed change is told like any other, then told undone (reverted = 1): both
            # lines apply in order and leave the translation as it was.
            ndeny += kind == "deny"
            seq.setdefault(va, []).append(st[0])
            pstate[va] = st
        prev_end = b1
        rep = [o for i, o in reports if b0 <= i < b1 and o.get("when") == "signal"]
        chk = "%d" % rep[-1]["findings"] if rep else "none"
        if not rep:
            fails.append("step %d: ptmond made no ptmon_check report" % s)
        elif rep[-1]["findings"] != 0:
            fails.append("step %d: ptmon_check found %d problems" % (s, rep[-1]["findings"]))
        if s not in gview:
            fails.append("step %d: guest printed no view" % s)
            continue
        bad = compare(s)
        total_missed += len(bad)
        total_invented += len(inv)
        detail += ["step %d: %s" % (s, b) for b in bad[:20]] + ["step %d: %s" % (s, x) for x in inv[:20]]
        gsum = summarize(gprev, gview[s], gget) + (" (SKIPPED: %s)" % g["skips"][s] if s in g["skips"] else "")
        psum = summarize(pprev, pstate, pget)
        rsum = "%d events on %d VAs" % (nev, len(touched))
        name = g["names"].get(s, "?")
        if name == "deny-mprotect":
            rsum += ", %d denied" % ndeny
            gsum += "; write after mprotect: %s" % g["deny"]
            deny_info = (ndeny, g["deny"], rep[-1] if rep else None)
            if g["deny"] != "write ok":
                fails.append("deny: the guest's write after the vetoed mprotect did not land (%s)" % g["deny"])
            if ndeny == 0:
                fails.append("deny: ptmond logged no denied change in step %d" % s)
        if name.startswith("load") and g["load"]:
            iters, pages, us, nthreads = g["load"]
            lvas = [va for va in vas if region.get(va) == "L"]
            short = []
            prevp = {va: pprev.get(va, (False,))[0] for va in lvas}
            for va in lvas:
                up = down = 0
                p = prevp[va]
                for x in seq.get(va, []):
                    up += (not p) and x
                    down += p and (not x)
                    p = x
                if up != iters or down != iters:
                    short.append("va 0x%x: %d maps and %d unmaps seen of %d" % (va, up, down, iters))
            gsum = "%d x %d pages mapped, touched, unmapped in %.2f s (guest clock), %d thread(s) on vCPUs %s" % (
                iters, pages, us / 1e6, nthreads, ",".join(str(v) for _, v in g.get("threads", [])))
            vcpus = sorted(set(o.get("vcpu") for i, kind, va, st, o in evs if b0 <= i < b1 and o.get("vcpu", -1) >= 0))
            rsum += ", writes by vCPU %s" % ",".join(str(v) for v in vcpus)
            if a.vcpus > 1 and len(vcpus) < a.vcpus:
                fails.append("load: %d vCPUs, but ptmond saw writes from vCPU %s only" % (a.vcpus, vcpus))
            if short:
                fails.append("load: %d of %d pages not seen mapped and unmapped %d times (first: %s)"
                             % (len(short), len(lvas), iters, short[0]))
            if iters != g["load_planned"]:
                fails.append("load: the guest completed %d of its %d iterations" % (iters, g["load_planned"]))
            total_missed += len(short)
            load_info = (iters, pages, us, len(lvas) - len(short), len(lvas), rep[-1] if rep else None, nthreads)
        table.append((str(s), name, gsum, rsum, psum, len(bad), len(inv), chk))

    rc = (files.get("ptmond.rc") or ["?"])[0].strip()
    if total_missed:
        fails.append("%d VA states differ from the guest's view after a step (missed or wrong changes)" % total_missed)
    if total_invented:
        fails.append("%d changes reported for VAs the step did not act on (invented)" % total_invented)
    if outside:
        fails.append("%d changes reported outside every step window" % outside)
    if rc != "0":
        fails.append("ptmond exit status %s" % rc)
    det = [o for i, o in reports if o.get("when") == "detach"]
    if not det:
        fails.append("ptmon_check: ptmond made no report at detach")
    elif det[-1]["findings"] != 0:
        fails.append("ptmon_check at detach: %d findings" % det[-1]["findings"])
    else:
        res.append("ptmon_check at detach: 0 findings (%d watches, %d tables); %d events in all, p50 %.1f us, p99 %.1f us"
                   % (det[-1]["watches"], det[-1]["tables"], det[-1]["events"], det[-1]["p50_us"], det[-1]["p99_us"]))
    # Frames: what Xen itself says after the detach.
    acc = files.get("access.txt", [])
    summ = [l for l in acc if l.startswith("lab-access:")]
    m = re.match(r"lab-access: (\d+) frames, (\d+) restricted, (\d+) errors", summ[-1]) if summ else None
    if not m:
        fails.append("frames: no lab-access result after the detach")
        frames = None
    else:
        frames = tuple(int(x) for x in m.groups())
        res.append("Frames ptmond restricted, as Xen reports them after the detach (lab-access): %d frames, %d still restricted, %d errors"
                   % frames)
        if frames[0] == 0:
            fails.append("frames: ptmond logged no restricted frame")
        if frames[1] or frames[2]:
            fails.append("frames: %d of %d frames still restricted after the detach, %d queries failed" % (frames[1], frames[0], frames[2]))
    # The guest after the detach: it re-touched 192 pages of A and faulted in 64 MB.
    if not g["alive"]:
        fails.append("guest did not print WLALIVE after the detach")
    else:
        ga = gview.get(after, {})
        lost = [va for va in vas if region.get(va) == "A" and va < vas[0] + 192 * PG and ga.get(va, (None,))[0] is None]
        if lost:
            fails.append("after detach: %d of 192 re-touched pages of A not present in the guest's view" % len(lost))
        else:
            res.append("After detach (step %d): the guest re-touched 192 pages, unmapped C and faulted in 64 MB; WLALIVE printed." % after)
    # Step 17 (dom0-init.sh restart_phase): EPIPE, SIGKILL, --reset, a new attach.
    restart = files.get("restart.txt", [])
    if restart:
        res.append("Restart (step 17): " + "; ".join(restart) + ".")
        if not g.get("alive2"):
            fails.append("restart: the guest did not finish step 17")
    if deny_info:
        ndeny, wrote, rep = deny_info
        res.append("Deny (step 14): %d changes of the D page vetoed before they landed; the guest's write after its mprotect(PROT_READ): %s."
                   % (ndeny, wrote))
    if load_info:
        iters, pages, us, okp, nl, rep, nthreads = load_info
        if rep:
            res.append("Load (step 15): %d x %d pages mapped, touched and unmapped by %d thread(s); %d of %d pages seen mapped and unmapped every time; "
                       "%d events in %.2f s of dom0 time = %.0f events/s; handling time p50 %.1f us, p99 %.1f us, max %.1f us"
                       % (iters, pages, nthreads, okp, nl, rep["events"], rep["seconds"], rep["events_per_s"], rep["p50_us"], rep["p99_us"], rep["max_us"]))
    if not evs and "ptmond.log" in files:
        fails.append("ptmond printed no translation (change) lines")
    tres, tfails = replay_trace(files, out, a.replay, plines)
    res += tres
    fails += tfails

    phases = phase_times(a.serial)
    hdr = ("| step | what | guest saw (pagemap, per VA) | ptmond reported | ptmond's view after step | missed/wrong | invented | ptmon_check |\n"
           "|---|---|---|---|---|---|---|---|\n")
    tab = hdr + "".join("| %s | %s | %s | %s | %s | %d | %d | %s |\n" % r for r in table)
    perr = files.get("ptmond.err", [])
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(tab)
    with open(os.path.join(out, "result.md"), "w") as f:
        f.write("# Xen lab result: %s\n\n" % ("PASS" if not fails else "FAIL"))
        f.write("watched VAs: %d; ptmond lines: %d (translation lines %d); exit status %s; guest alive after detach: %s\n\n"
                % (len(vas), len(plines), len(evs), rc, g["alive"]))
        f.write(tab + "\n" + "\n".join("- " + r for r in res) + "\n\n")
        f.write("## Failures\n" + ("\n".join("- " + x for x in fails) or "none") + "\n\n")
        f.write("## Details (first 20 per step)\n" + ("\n".join("- " + x for x in detail) or "none") + "\n\n")
        f.write("## ptmond's stderr (last 40 lines)\n```\n" + "\n".join(perr[-40:]) + "\n```\n\n")
        f.write("## Guest notes\n```\n" + "\n".join(g["notes"]) + "\n```\n\n")
        f.write("## Timeline (wall seconds since the emulator started)\n```\n" + "\n".join("%7.1f %s" % p for p in phases) + "\n```\n")
    print(tab)
    for r in res:
        print(r)
    for t, p in phases:
        print("%7.1f %s" % (t, p))
    for x in fails:
        print("FAIL:", x)
    print("xen-lab: %s" % ("PASS" if not fails else "FAIL"))
    return 0 if not fails else 1


if __name__ == "__main__":
    sys.exit(main())
