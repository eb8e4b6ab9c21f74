#!/bin/busybox sh
# dom0 init of the Xen lab: start the Xen daemons, create the PVH domU running the workload,
# run ptmond on the workload's VAs (vetoing changes of the D page, recording a trace), drive
# the workload's steps one at a time through xenstore (data/ptmon-go), ask ptmond for a
# ptmon_check report after each (SIGUSR1), note where each step starts and ends in ptmond's
# log, stop ptmond (detach), check from dom0 with lab-access that every frame ptmond restricted
# has its access back, let the guest run a last step, then dump every log to the console
# between markers for the host-side checker, and power off.
# Settings come from the Xen command line's dom0 part via /proc/cmdline:
#   lab.watcher=ptmond|standin   lab.vcpus=N   lab.ptmond_args="..." (extra options, '+' = space)
/bin/busybox --install -s /bin
export PATH=/usr/lib/xen-4.17/bin:/bin:/sbin LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /run
mkdir -p /dev/pts; mount -t devpts devpts /dev/pts
mkdir -p /run/xen /run/xenstored /var/log/xen/console /out
up() { cut -d' ' -f1 /proc/uptime; }
log() { echo "DOM0LAB [$(up)s] $*"; echo "[$(up)] $*" >> /out/dom0.log; }
fail() { log "FAIL: $*"; echo "$*" >> /out/failures.txt; }
arg() { sed -n "s/.*\\<lab\\.$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline | tr '+' ' '; }
WATCHER=$(arg watcher); WATCHER=${WATCHER:-ptmond}
VCPUS=$(arg vcpus); VCPUS=${VCPUS:-1}
sed -i "s/^vcpus = .*/vcpus = $VCPUS/" /etc/xen/g1.cfg
# Two vCPUs under Debian's Bochs 2.7: it enters a guest with IF=0 keeping host interrupts masked
# (shared/design/xen-lab-bochs), which deadlocks Xen while the second vCPU calibrates its delay
# loop: give the guest the loop's value instead.
[ "$VCPUS" -gt 1 ] && sed -i 's/^extra = "\(.*\)"/extra = "\1 lpj=400000"/' /etc/xen/g1.cfg
EXTRA=$(arg ptmond_args)
LEAF=0x50544d4e
LAST_STEP=15   # steps watched by ptmond; step 16 runs after the detach

log "dom0 init reached; watcher=$WATCHER extra='$EXTRA'"
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do insmod /lib/modules/$m.ko || fail "insmod $m"; done
mount -t xenfs xenfs /proc/xen
xenstored --pid-file /run/xenstored.pid || fail "xenstored"
xen-init-dom0 >/dev/null || fail "xen-init-dom0"
# No --timestamp: the checker parses the guest's lines as they are.
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || fail "xenconsoled"
xl info | grep -E 'virt_caps|xen_version' | while read -r l; do log "xl info: $l"; done
log "PHASE dom0-ready"

GLOG=/var/log/xen/console/guest-g1.log
# Wait for a guest console line. Give up at the timeout, when the domain crashed, shut down or
# vanished, or when neither the guest's console nor ptmond printed anything for 120 s (stuck).
wait_guest() { # pattern timeout_s
    t0=$(cut -d. -f1 /proc/uptime); tlast=$t0; prev=""
    while :; do
        tr -d '\r' < $GLOG 2>/dev/null | grep -q -- "$1" && return 0
        now=$(cut -d. -f1 /proc/uptime)
        st=$(xl list 2>/dev/null | awk -v d="${D:-x}" '$2==d{print $5}')
        if [ -n "${D:-}" ] && { [ -z "$st" ] || echo "$st" | grep -q '[csd]'; }; then
            fail "domain $D is '${st:-gone}' while waiting for '$1'"; guest_state; return 1
        fi
        cur=$(cat $GLOG /out/ptmond.log /out/ptmond.err 2>/dev/null | wc -c)
        [ "$cur" != "$prev" ] && { prev=$cur; tlast=$now; }
        if [ $((now - tlast)) -ge 120 ]; then fail "no output from guest or watcher for 120 s while waiting for '$1'"; guest_state; return 1; fi
        if [ $((now - t0)) -ge "$2" ]; then fail "timeout ${2}s waiting for '$1'"; guest_state; return 1; fi
        sleep 0.2
    done
}
# Evidence for a stuck or dead guest: its vCPU registers and stack, and Xen's messages.
guest_state() {
    { echo "== xl list"; xl list; echo "== xenctx $D"; xenctx -a -S $D 0 2>&1 | head -60
      echo "== xl dmesg tail"; xl dmesg | tail -60; } > /out/guest-state.txt 2>&1
}
# Wait until ptmond's output has not grown for two seconds (it may print after the guest moved on).
quiet() {
    prev=-1; same=0; i=0
    while [ $same -lt 4 ] && [ $i -lt 300 ]; do
        cur=$(cat /out/ptmond.log /out/ptmond.err 2>/dev/null | wc -c)
        if [ "$cur" = "$prev" ]; then same=$((same + 1)); else same=0; fi
        prev=$cur; i=$((i + 1)); sleep 0.5
    done
}
lines() { wc -l < /out/ptmond.log; }
checks() { grep -c '"event":"check"' /out/ptmond.log; }
# Ask ptmond for a report (ptmon_check and the step's event statistics) and wait for its line.
ask_report() {
    before=$(checks); i=0
    kill -USR1 $PID 2>/dev/null || return 1
    while [ "$(checks)" -le "$before" ] && [ $i -lt 240 ]; do i=$((i + 1)); sleep 0.5; done
    [ "$(checks)" -gt "$before" ] || { fail "ptmond gave no report within 120 s of SIGUSR1"; return 1; }
}

# Start $CMD in the background and wait until it watches: ptmond says "watching N of M
# addresses" (the stand-in prints a cr3 event). Fails if it exits first or takes 300 s.
start_watcher() {
    echo "$CMD" >> /out/ptmond.cmd
    : > /out/ptmond.log
    $CMD > /out/ptmond.log 2> /out/ptmond.err &
    PID=$!
    log "started: $(echo "$CMD" | cut -c1-120)... ($(echo "$CMD" | grep -o -- '--va' | wc -l) VAs)"
    READY='watching [0-9]* of|"event":"cr3"'
    i=0
    while [ $i -lt 600 ]; do
        grep -qE "$READY" /out/ptmond.log /out/ptmond.err 2>/dev/null && break
        kill -0 $PID 2>/dev/null || break
        i=$((i + 1)); sleep 0.5
    done
    if ! kill -0 $PID 2>/dev/null; then
        wait $PID; rc=$?
        fail "$WATCHER exited early rc=$rc: $(tail -5 /out/ptmond.err | tr '\n' '|')"
        return 1
    fi
    grep -qE "$READY" /out/ptmond.log /out/ptmond.err || { fail "$WATCHER not watching after 300 s"; return 1; }
    grep -q 'watching 0 of' /out/ptmond.err && { fail "ptmond placed no watch"; return 1; }
    return 0
}

run_lab() {
    log "PHASE xl-create"
    xl create /etc/xen/g1.cfg > /out/xl-create.log 2>&1 || { fail "xl create: $(tail -3 /out/xl-create.log)"; return 1; }
    D=$(xl domid g1)
    log "domU created, domid $D"
    # WLREADY 1: the baseline view is printed and the workload idles in its CPUID loop. (Attaching
    # while it was still printing once coincided with the workload dying of #UD on an AVX
    # instruction; see the README.)
    wait_guest '^WLREADY 1' 600 || { fail "workload did not print its VAs and baseline"; return 1; }
    log "PHASE guest-ready"
    VAS=$(tr -d '\r' < $GLOG | awk '$1=="WLVA"{printf "--va %s ", $2}')
    DENY=$(tr -d '\r' < $GLOG | awk '$1=="WLVA" && $3=="D"{printf "--deny %s ", $2}')
    case $WATCHER in
        standin) CMD="ptmond-standin --domain $D --cr3-from-cpuid $LEAF --json $EXTRA $VAS" ;;
        *) CMD="ptmond --domain $D --cr3-from-cpuid $LEAF --json --record /tmp/trace.ptt $DENY $EXTRA $VAS" ;;
    esac
    start_watcher || {
        # ptmond's ioreq mechanism (AMD/NPT, only with --experimental-ioreq) has no monitor ring,
        # hence no CPUID events: learn the CR3 with the stand-in's CPUID monitor instead and
        # hand it over with --cr3.
        if [ "$WATCHER" = ptmond ] && echo "$EXTRA" | grep -q experimental-ioreq && grep -q 'not supported' /out/ptmond.err; then
            mv /out/ptmond.err /out/ptmond-cpuid-attempt.err
            sed -i '$d' /out/failures.txt   # that early exit is expected here, not a result
            CR3=$(ptmond-standin --domain $D --cr3-from-cpuid $LEAF --cr3-only 2>>/out/dom0.log | sed -n 's/.*"cr3":"\(0x[0-9a-f]*\)".*/\1/p')
            [ -n "$CR3" ] || { fail "could not learn the CR3 with the stand-in either (domain state: $(xl list | awk -v d=$D '$2==d{print $5}'))"; guest_state; return 1; }
            log "ptmond cannot take CPUID events here; CR3 $CR3 learned by the lab, passed with --cr3"
            CMD="ptmond --domain $D --cr3 $CR3 --json $DENY $EXTRA $VAS"
            start_watcher || return 1
        else
            return 1
        fi
    }
    quiet
    log "PHASE watching: $(grep -hE "$READY" /out/ptmond.log /out/ptmond.err | head -1)"
    n=1
    while [ $n -le $LAST_STEP ]; do
        echo "STEP $n BEGIN $(lines)" >> /out/steps.txt
        xenstore-write /local/domain/$D/data/ptmon-go $n
        if ! wait_guest "^WLSTEP $n - END" 900; then
            fail "step $n did not finish in 900 s"
            echo "STEP $n END $(lines) TIMEOUT" >> /out/steps.txt
            return 1
        fi
        quiet
        [ "$WATCHER" = ptmond ] && { ask_report || break; }
        echo "STEP $n END $(lines)" >> /out/steps.txt
        log "step $n done (ptmond log $(lines) lines)"
        kill -0 $PID 2>/dev/null || { fail "$WATCHER died during step $n"; break; }
        n=$((n + 1))
    done
    log "PHASE steps-done; stopping $WATCHER (SIGINT)"
    kill -INT $PID 2>/dev/null
    i=0
    while kill -0 $PID 2>/dev/null && [ $i -lt 240 ]; do i=$((i + 1)); sleep 0.5; done
    if kill -0 $PID 2>/dev/null; then
        fail "$WATCHER ignored SIGINT for 120 s; SIGTERM"
        kill -TERM $PID; sleep 5; kill -KILL $PID 2>/dev/null
    fi
    wait $PID; rc=$?
    echo "$rc" > /out/ptmond.rc
    log "PHASE detached; $WATCHER rc=$rc"
    # Every frame ptmond said it restricted must have its access back, as Xen itself says.
    grep '"event":"restrict"' /out/ptmond.log |
        sed -n 's/.*"gfn":"\(0x[0-9a-f]*\)","was":"\([a-z0-9]*\)".*/\1 \2/p' | sort -u > /out/frames.txt
    lab-access --domain $D /out/frames.txt > /out/access.txt 2>&1
    log "after detach: $(tail -1 /out/access.txt)"
    # The guest must go on after the detach: step 16 rebuilds page tables in frames that were
    # watched; WLALIVE says it got through.
    xenstore-write /local/domain/$D/data/ptmon-go $((LAST_STEP + 1))
    if wait_guest '^WLALIVE' 600; then log "guest alive after detach"; else fail "guest not alive after detach"; fi
    xl list > /out/xl-list.txt 2>&1
    log "PHASE after-detach-done"
    [ "$WATCHER" = ptmond ] && ! echo "$EXTRA" | grep -q experimental-ioreq && restart_phase
}

beats() { tr -d '\r' < $GLOG | grep -c '^WLBEAT'; }
# Keep the head of a big log: the serial line carries about 10 KB/s.
shrink() { n=$(wc -l < "$1"); head -n 40 "$1" > "$1.head"; echo "... ($n lines in all)" >> "$1.head"; mv "$1.head" "$1"; }
note() { log "restart: $*"; echo "$*" >> /out/restart.txt; }

# Step 17: what a crash of ptmond leaves, and the recovery (issue 16, item 2). While the guest
# maps, touches and unmaps L in a loop: (a) ptmond's reader goes away (EPIPE: it must stop and
# detach by itself); (b) ptmond is killed (SIGKILL: its ring stays, vCPUs it was answering stay
# paused, its frames stay write-protected; the next attach is refused) and ptmond --reset
# recovers the domain; (c) a new ptmond attaches and detaches. lab-access checks the frames.
restart_phase() {
    CR3=$(sed -n 's/.*in CR3 \(0x[0-9a-f]*\).*/\1/p' /out/ptmond.err | head -1)
    [ -n "$CR3" ] || { fail "restart: no CR3 in the first run's log"; return 1; }
    RUN="ptmond --domain $D --cr3 $CR3 --json $VAS"
    log "PHASE restart (step 17)"
    xenstore-write /local/domain/$D/data/ptmon-go 17
    wait_guest '^WLSTEP 17 restart-load BEGIN' 300 || return 1
    # (a) the reader of ptmond's output goes away after 40 lines
    ( $RUN --duration 600 2> /out/pipe.err; echo $? > /out/pipe.rc ) | head -n 40 > /out/pipe.txt
    if grep -q 'output closed; stopping' /out/pipe.err && [ "$(cat /out/pipe.rc)" = 0 ]; then
        note "SIGPIPE: ptmond stopped by itself when its reader went away (EPIPE), rc 0, detached"
    else
        fail "restart: ptmond did not stop cleanly on EPIPE (rc $(cat /out/pipe.rc)): $(tail -3 /out/pipe.err | tr '\n' '|')"
    fi
    # (b) killed mid-run, with its state file; then the reset
    $RUN --state /tmp/ptmond.state > /out/kill.log 2> /out/kill.err &
    KPID=$!
    i=0
    while [ $i -lt 600 ] && kill -0 $KPID 2>/dev/null && ! grep -q 'watching [0-9]* of' /out/kill.err; do i=$((i + 1)); sleep 0.5; done
    grep -q 'watching [0-9]* of' /out/kill.err || { fail "restart: second ptmond not watching: $(tail -3 /out/kill.err | tr '\n' '|')"; return 1; }
    sleep 5
    kill -KILL $KPID; wait $KPID 2>/dev/null
    b0=$(beats); sleep 15; b1=$(beats)
    sort -u /tmp/ptmond.state > /out/state.txt 2>/dev/null
    [ -s /out/state.txt ] || fail "restart: the killed ptmond left no state file"
    shrink /out/kill.log
    note "SIGKILL: ptmond killed while watching ($(wc -l < /out/state.txt 2>/dev/null) frames in its state file); guest beats in the next 15 s: $((b1 - b0))"
    if ptmond --domain $D --cr3 $CR3 --json $VAS --duration 1 > /out/busy.log 2> /out/busy.err; then
        fail "restart: an attach after the kill succeeded, where the stale ring should refuse it"
    elif grep -q -- '--reset' /out/busy.err; then
        note "an attach after the kill refused: another monitor holds the ring, with the hint to run ptmond --reset"
    else
        fail "restart: the refused attach gave no --reset hint: $(tail -2 /out/busy.err | tr '\n' '|')"
    fi
    if ptmond --domain $D --reset --state /tmp/ptmond.state --json > /out/reset.log 2> /out/reset.err; then
        note "$(grep 'reset domain' /out/reset.err | sed 's/^ptmond: //')"
    else
        fail "restart: ptmond --reset failed: $(tail -3 /out/reset.err | tr '\n' '|')"
    fi
    grep -q 'stale monitor ring freed' /out/reset.err || fail "restart: the reset found no stale ring"
    lab-access --domain $D /out/state.txt > /out/access-reset.txt 2>&1
    note "after the reset (lab-access): $(tail -1 /out/access-reset.txt)"
    tail -1 /out/access-reset.txt | grep -q ' 0 restricted, 0 errors' || fail "restart: frames still restricted after the reset"
    b2=$(beats); sleep 15; b3=$(beats)
    if [ $((b3 - b2)) -gt 0 ]; then note "guest beats in the 15 s after the reset: $((b3 - b2))"; else fail "restart: the guest did not run after the reset"; fi
    # (c) a new ptmond attaches (no EBUSY) and detaches cleanly
    if $RUN --duration 5 > /out/again.log 2> /out/again.err && grep -q 'watching [0-9]* of' /out/again.err; then
        note "a new ptmond attached after the reset, watched for 5 s ($(wc -l < /out/again.log) lines) and detached, rc 0"
    else
        fail "restart: ptmond after the reset: $(tail -3 /out/again.err | tr '\n' '|')"
    fi
    grep '"event":"restrict"' /out/again.log | sed -n 's/.*"gfn":"\(0x[0-9a-f]*\)","was":"\([a-z0-9]*\)".*/\1 \2/p' | sort -u > /out/frames-again.txt
    shrink /out/again.log
    lab-access --domain $D /out/frames-again.txt > /out/access-again.txt 2>&1
    note "after its detach (lab-access): $(tail -1 /out/access-again.txt)"
    tail -1 /out/access-again.txt | grep -q ' 0 restricted, 0 errors' || fail "restart: frames still restricted after the last detach"
    xenstore-write /local/domain/$D/data/ptmon-go 18
    if wait_guest '^WLALIVE2' 300; then note "guest finished step 17 (WLALIVE2)"; else fail "restart: guest did not finish step 17"; fi
    log "PHASE restart-done"
}

run_lab
xl dmesg > /out/xl-dmesg.txt 2>&1
tr -d '\r' < $GLOG > /out/guest.log 2>/dev/null
# The trace goes out compressed, as text.
if [ -s /tmp/trace.ptt ]; then
    gzip -9 -c /tmp/trace.ptt | base64 > /out/trace.ptt.gz.b64
    log "trace: $(wc -c < /tmp/trace.ptt) bytes, $(base64 -d < /out/trace.ptt.gz.b64 | wc -c) compressed"
fi
log "dumping logs"
# Each file goes out between markers, every line prefixed, with its line count and md5 so the
# host can tell a complete dump from one the serial path shortened. The emulated UART is slow
# (about 10 KB/s): large text files go gzip-compressed, as base64 (NAME.dump.gz.b64).
for f in /out/*; do
    b=${f##*/}
    if [ "$(wc -c < "$f")" -gt 16384 ] && [ "${b%.b64}" = "$b" ]; then
        gzip -c "$f" | base64 > "/tmp/$b.dump.gz.b64"
        f=/tmp/$b.dump.gz.b64
        b=$b.dump.gz.b64
    fi
    echo "@@BEGIN $b $(wc -l < $f) $(md5sum < $f | cut -c1-32)"
    sed "s/^/@@$b@@ /" $f
    echo "@@END $b"
done
log "ALLDONE"
sync
echo o > /proc/sysrq-trigger 2>/dev/null
poweroff -f
