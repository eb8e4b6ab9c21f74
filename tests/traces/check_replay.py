#!/usr/bin/env python3
"""Replay a trace recorded by ptmond in the Xen lab and check the replay against the run.

    check_replay.py --replay PTMON_REPLAY --trace T.ptt.gz --ptmond-log L.gz --guest-log G.gz

1. ptmon-replay must reproduce the recording (exit 0: every callback the recording holds, with
   the same change and answer, no divergence, the trace complete);
2. its callback log must be ptmond's, line for line (the time field aside);
3. per step (the recording's ptmon_check calls are the step boundaries: ptmond made one at each
   SIGUSR1, after every step, and one at detach), the translations the replay reports must be
   what the guest saw in /proc/self/pagemap after that step, with the lab's rules (check.py).
Exit 0 when all three hold.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "xen-lab"))
from check import change_objects, initial_view, norm_state, read_guest, view_differences  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--replay", required=True)
    ap.add_argument("--trace", required=True)
    ap.add_argument("--ptmond-log", required=True)
    ap.add_argument("--guest-log", required=True)
    a = ap.parse_args()
    fails = []

    raw = gzip.open(a.trace).read()
    t0 = time.time()
    p = subprocess.run([a.replay, "--json", "-"], input=raw, capture_output=True)
    secs = time.time() - t0
    out = p.stdout.decode().splitlines()
    print(p.stderr.decode().strip())
    print("replay of %d bytes (%d compressed) in %.2f s" % (len(raw), os.path.getsize(a.trace), secs))
    if p.returncode != 0:
        fails.append("ptmon-replay exit %d" % p.returncode)

    mine = change_objects(out)
    theirs = change_objects(gzip.open(a.ptmond_log, "rt").read().splitlines())
    diff = next((i for i, (x, y) in enumerate(zip(mine, theirs)) if x != y), None)
    if diff is not None or len(mine) != len(theirs):
        at = diff if diff is not None else min(len(mine), len(theirs))
        fails.append("callback log: replay %d lines, ptmond %d; first difference at line %d" % (len(mine), len(theirs), at))
    else:
        print("callback log: %d lines, identical to ptmond's (time aside)" % len(mine))

    g = read_guest(gzip.open(a.guest_log, "rt").read().splitlines())
    state = initial_view(g, mine)
    step, bad_steps = 1, 0
    # ptmond's last report is the one at detach, right after the last step's: not a step's end
    nchecks = sum(1 for l in out if '"event":"check"' in l)
    for l in out:
        if not l.startswith("{"):
            continue
        o = json.loads(l)
        if o.get("event") == "check":
            if o.get("findings") != 0:
                fails.append("ptmon_check in the replay at step %d: %s findings" % (step, o.get("findings")))
            if step < nchecks and step in g["view"]:
                bad = view_differences(g, state, step)
                print("step %2d %-24s %s" % (step, g["names"].get(step, "?"), "ok" if not bad else "%d differ: %s" % (len(bad), bad[0])))
                bad_steps += bool(bad)
            step += 1
        elif "va" in o:  # a vetoed change is followed by its revert: apply both
            state[int(o["va"], 16)] = norm_state(o["after"])
    if step < 3:
        fails.append("the replay marked %d steps (no ptmon_check calls in the trace?)" % (step - 1))
    if bad_steps:
        fails.append("%d steps where the replay's view differs from the guest's" % bad_steps)
    for f in fails:
        print("FAIL:", f)
    print("trace replay: %s" % ("PASS" if not fails else "FAIL"))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
