#!/bin/sh
# Instructions per operation, counted by callgrind inside ptmon's own entry points only (the
# fake guest's share is not counted): ptmon_watch for W1, ptmon_handle_event for the event
# workloads, ptmon_unwatch + ptmon_commit for W7. Deterministic, unlike times.
#   bench/callgrind.sh [BUILD_DIR]     (smoke sizes; set SIZE=--full for the full ones)
set -eu
build=${1:-build}
bench=$build/bench/ptmon_bench
size=${SIZE:---smoke}
[ "$size" = "--full" ] && size=""
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

count() { # id toggle-functions...
    id=$1
    shift
    toggles=""
    for f in "$@"; do toggles="$toggles --toggle-collect=$f"; done
    # shellcheck disable=SC2086
    valgrind --tool=callgrind $toggles --callgrind-out-file="$work/$id.out" \
        "$bench" $size --reps 1 --only "$id" --json "$work/$id.json" >/dev/null 2>"$work/$id.log"
    ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$work/$id.out")
    python3 - "$work/$id.json" "$ir" "$id" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
ir = int(sys.argv[2] or 0)
for r in res:
    if r["ops"] > 0 and r["id"] == sys.argv[3]:
        print(f'{r["id"]:4} {r["mode"]:8} {r["workload"]:55} {ir / r["ops"]:10.0f} instr/op')
        break
PY
}

echo "ptmon instructions per operation (callgrind, inside ptmon only)"
count W1 ptmon_watch
count W2 ptmon_handle_event
count W3 ptmon_handle_event
count W4 ptmon_handle_event
count W5 ptmon_handle_event
count W6 ptmon_handle_event
count W7 ptmon_unwatch ptmon_commit
count W11 ptmon_handle_event
count W12 ptmon_handle_event
