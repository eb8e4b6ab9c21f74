#!/bin/bash
# The Xen lab: ptmond on a real Xen 4.17 host. Xen runs on an emulated Intel CPU with VMX + EPT
# (Bochs), dom0 runs ptmond on a PVH domU's workload, check.py compares ptmond's view with the
# guest's after every step. See tests/xen-lab/README.md.
#
#   tests/xen-lab/run-lab.sh [--out DIR] [--build DIR] [--vcpus N] [--qemu] [--standin]
#                            [--watcher-args "ARGS"]
#
# --out DIR     logs, the per-step table, the verdict and the trace (default build-xen-lab/out)
# --build DIR   take ptmond and ptmon-replay from this (built) CMake tree instead of building
#               them in build-xen-lab/cmake
# --vcpus N     vCPUs of the domU and CPUs of the emulated machine (default 1)
# --qemu        boot under QEMU TCG instead (an AMD CPU: Xen has no mem_access there, ptmond
#               refuses to arm; kept to show that finding, see the README)
# --standin     harness development only: a naive watcher instead of ptmond
# --watcher-args "ARGS"  extra watcher options ('+' is not allowed in them)
# Environment: XEN_LAB_CACHE (downloads and images, default ~/.cache/ptmon-xen-lab),
#              XEN_LAB_TIMEOUT (seconds for one emulator run, default 2400),
#              XEN_LAB_BOOT_TIMEOUT (seconds until the guest workload must be up, default 600).
# Exit: 0 when check.py passes, 1 when it fails or the lab could not run.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=$REPO/build-xen-lab/out
WATCHER=ptmond
WARGS=""
EMU=bochs
VCPUS=1
BUILD=""
usage() { echo "usage: $0 [--out DIR] [--build DIR] [--vcpus N] [--qemu] [--standin] [--watcher-args \"ARGS\"]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
        --build) [ $# -ge 2 ] || usage; BUILD=$(cd "$2" && pwd); shift 2 ;;
        --vcpus) [ $# -ge 2 ] || usage; VCPUS=$2; shift 2 ;;
        --qemu) EMU=qemu; shift ;;
        --standin) WATCHER=standin; shift ;;
        --watcher-args) [ $# -ge 2 ] || usage; WARGS=$2; shift 2 ;;
        *) usage ;;
    esac
done
case $VCPUS in 1 | 2) ;; *) echo "run-lab: --vcpus is 1 or 2" >&2; exit 2 ;; esac
export XEN_LAB_CACHE=${XEN_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ptmon-xen-lab}
export XEN_LAB_WATCHER=$WATCHER
TIMEOUT=${XEN_LAB_TIMEOUT:-2400}
BOOT_TIMEOUT=${XEN_LAB_BOOT_TIMEOUT:-600}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -rf "$OUT"/*.log "$OUT"/*.txt "$OUT"/*.md "$OUT"/files "$OUT"/run 2>/dev/null || true
T0=$(date +%s)
phase() { echo "[run-lab $(date -u +%H:%M:%S) +$(($(date +%s) - T0))s] $*" | tee -a "$OUT/phases.txt"; }

# ---- host tools (Debian packages only) -------------------------------------------------------
need=""
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
if [ $EMU = bochs ]; then
    for p in bochs bochsbios vgabios bochs-term grub-pc-bin grub-common xorriso mtools; do have $p || need="$need $p"; done
    command -v script >/dev/null || need="$need bsdutils"
else
    command -v qemu-system-x86_64 >/dev/null || need="$need qemu-system-x86"
fi
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx insmod || need="$need busybox-static"
command -v cpio >/dev/null || need="$need cpio"
command -v strings >/dev/null || need="$need binutils"
command -v python3 >/dev/null || need="$need python3"
[ -e /usr/include/xenctrl.h ] || need="$need libxen-dev"
command -v cmake >/dev/null || need="$need cmake"
if [ -n "$need" ]; then
    phase "installing host packages:$need"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >"$OUT/apt.log" 2>&1 ||
        { tail -20 "$OUT/apt.log"; phase "FAIL: apt-get install"; exit 1; }
fi

phase "build"
if [ -n "$BUILD" ]; then
    export PTMOND=$BUILD/src/backends/xen/ptmond XEN_LAB_BUILD=$BUILD
    [ -x "$PTMOND" ] || { echo "run-lab: no ptmond in $BUILD (is libxen-dev installed?)" >&2; exit 1; }
fi
"$HERE/build-lab.sh" >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; phase "FAIL: build"; exit 1; }
C=$XEN_LAB_CACHE
R=$OUT/run
mkdir -p "$R"

# What dom0 is told (its kernel command line; dom0-init.sh reads lab.* from /proc/cmdline).
DOM0_ARGS="console=hvc0 earlyprintk=xen rdinit=/init lab.watcher=$WATCHER lab.vcpus=$VCPUS lab.ptmond_args=$(echo "$WARGS" | tr ' ' +)"
# serial_tx_buffer: the log dump at the end is large and Xen drops console output when its serial
# buffer is full. dom0 gets one vCPU: the domU's vCPUs are the ones under test.
XEN_BASE="console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all serial_tx_buffer=4M dom0_max_vcpus=1"

# ---- Bochs: an Intel CPU with VMX, EPT, VPID and unrestricted guest ---------------------------
# Xen options, from the runs in shared/design/xen-lab-bochs: apicv=0 (Bochs 2.7 re-injects a
# stale #PF when an EPT violation hits while it delivers a virtual interrupt: the guest oopses
# after the first mem_access event), vga=text-80x25 (Bochs's VGA has no 32 bpp mode),
# bootscrub=0 (scrubbing 2 GB under emulation takes minutes), and with two CPUs
# x2apic-mode=physical (Bochs gives the second CPU x2APIC logical ID 0: Xen BUGs in cluster mode).
bochs_iso() {
    local xa="$XEN_BASE dom0_mem=512M,max:512M bootscrub=0 vga=text-80x25 apicv=0"
    [ "$VCPUS" -gt 1 ] && xa="$xa x2apic-mode=physical"
    rm -rf "$R/iso"; mkdir -p "$R/iso/boot/grub"
    for f in xen.gz:xen.gz vmlinux:vmlinux dom0-initrd.cpio:dom0.cpio; do
        cp -l "$C/${f%%:*}" "$R/iso/boot/${f#*:}" 2>/dev/null || cp "$C/${f%%:*}" "$R/iso/boot/${f#*:}"
    done
    # gfxpayload=text: Xen must not find a graphics mode Bochs cannot give it.
    cat >"$R/iso/boot/grub/grub.cfg" <<EOF
set timeout=0
set default=0
set gfxpayload=text
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
menuentry 'ptmon Xen lab' {
    multiboot2 /boot/xen.gz $xa
    module2 /boot/vmlinux $DOM0_ARGS
    module2 /boot/dom0.cpio
}
EOF
    grub-mkrescue -o "$R/xen.iso" "$R/iso" >"$R/grub-mkrescue.log" 2>&1 ||
        { tail -5 "$R/grub-mkrescue.log"; return 1; }
}

bochs_rc() {
    # 100 M instructions per emulated second; clock sync=none: guest time follows the instruction
    # count, so a busy host slows the guest down instead of making it miss its timers.
    cat >"$R/bochsrc" <<EOF
plugin_ctrl: unmapped=1, biosdev=1, speaker=0, extfpuirq=1, parallel=0, serial=1, iodebug=0
config_interface: textconfig
display_library: term
memory: guest=2048, host=2048
romimage: file=/usr/share/bochs/BIOS-bochs-latest, options=fastboot
vgaromimage: file=/usr/share/vgabios/vgabios.bin
vga: extension=none, update_freq=1
cpu: model=corei7_haswell_4770, count=$VCPUS, ips=100000000, quantum=16, reset_on_triple_fault=0, ignore_bad_msrs=1
pci: enabled=1, chipset=i440fx
ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14
ata0-master: type=cdrom, path=$R/xen.iso, status=inserted
ata1: enabled=0
boot: cdrom
floppy_bootsig_check: disabled=0
clock: sync=none, time0=local
com1: enabled=1, mode=file, dev=$R/serial.raw
mouse: enabled=0
private_colormap: enabled=0
log: $R/bochs.log
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
EOF
    echo c >"$R/bochs-debugger.rc" # Debian's Bochs has its debugger built in: continue at once
}

# Start the emulator in the background, its serial output going to $R/serial.raw; sets EMU_PID
# (a process group leader: kill -- -$EMU_PID stops all of it).
start_bochs() {
    : >"$R/serial.raw"
    # The term display needs a terminal: script(1) gives it one.
    TERM=xterm setsid timeout "$TIMEOUT" script -qfec \
        "bochs-bin -q -rc $R/bochs-debugger.rc -f $R/bochsrc" /dev/null >"$R/bochs.stdout" 2>&1 </dev/null &
    EMU_PID=$!
    # The term display draws on a pty of its own that nobody reads; once its buffer is full
    # (after ~15 min) Bochs blocks in write(). Read it away.
    setsid bash -c 'for _ in $(seq 120); do
        p=$(grep -ao "connected to screen \"[^\"]*\"" "$1" | head -1 | sed "s/.*\"\(.*\)\"/\1/")
        [ -n "$p" ] && exec cat "$p"; sleep 0.5; done' drain "$R/bochs.stdout" >/dev/null 2>&1 </dev/null &
    DRAIN_PID=$!
}

start_qemu() {
    # CPU model fixes of the issue-7 spike (shared/design/xen-lab/REPORT.md): no MWAIT, no SMAP
    # (breaks Xen's PV dom0 stack accesses under TCG), no RDTSCP.
    : >"$R/serial.raw"
    setsid timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi -machine q35 -cpu EPYC,-monitor,-rdtscp,-smap \
        -smp $((VCPUS + 1)) -m 2048 -display none -monitor none -serial "file:$R/serial.raw" -no-reboot -kernel "$C/xen.elf" \
        -append "$XEN_BASE dom0_mem=768M,max:768M" \
        -initrd "$C/vmlinux $DOM0_ARGS,$C/dom0-initrd.cpio" </dev/null >"$R/qemu.stdout" 2>&1 &
    EMU_PID=$!
    DRAIN_PID=
}

# One boot: the serial log, each line prefixed with wall seconds since the start, goes to $1.
# @return 0 (dom0 said ALLDONE), 2 (the workload was not up within BOOT_TIMEOUT: a hung boot),
#         3 (ended without ALLDONE).
boot() {
    local log=$1 i=0
    if [ $EMU = bochs ]; then start_bochs; else start_qemu; fi
    python3 -u "$HERE/serial-stamp.py" "$R/serial.raw" "$EMU_PID" >"$log" 2>/dev/null </dev/null &
    local stamp=$!
    while kill -0 "$EMU_PID" 2>/dev/null; do
        if [ $i -ge "$BOOT_TIMEOUT" ] && ! grep -q 'PHASE guest-ready' "$log"; then
            phase "the workload was not up after ${BOOT_TIMEOUT}s: stopping the emulator"
            kill -- -"$EMU_PID" 2>/dev/null || true
            break
        fi
        sleep 1
        i=$((i + 1))
    done
    wait "$EMU_PID" 2>/dev/null || true
    wait "$stamp" 2>/dev/null || true
    [ -n "${DRAIN_PID:-}" ] && kill -- -"$DRAIN_PID" 2>/dev/null
    grep -q 'DOM0LAB .*ALLDONE' "$log" && return 0
    grep -q 'PHASE guest-ready' "$log" || return 2
    return 3
}

if [ $EMU = bochs ]; then
    phase "iso"
    bochs_iso || { phase "FAIL: grub-mkrescue"; exit 1; }
    bochs_rc
fi
rc=0
for attempt in 1 2; do
    phase "boot attempt $attempt ($EMU, $VCPUS vCPU)"
    boot "$OUT/serial.log" && { rc=0; break; } || rc=$?
    phase "attempt $attempt ended rc=$rc ($([ $rc = 2 ] && echo boot hang || echo no ALLDONE))"
    cp "$OUT/serial.log" "$OUT/serial-attempt$attempt.log"
    [ $rc = 2 ] || break # only a hung boot is retried; a failure after boot is a result
done
phase "emulator finished rc=$rc"
grep -E 'DOM0LAB .*PHASE|DOM0LAB .*FAIL' "$OUT/serial.log" | tee -a "$OUT/phases.txt" || true

REPLAY=${XEN_LAB_BUILD:-$REPO/build-xen-lab/cmake}/examples/ptmon-replay
if [ $WATCHER = ptmond ] && [ ! -x "$REPLAY" ]; then
    phase "FAIL: no ptmon-replay at $REPLAY: the trace cannot be checked"
    exit 1
fi
python3 "$HERE/check.py" --serial "$OUT/serial.log" --out "$OUT" --vcpus "$VCPUS" \
    $([ $WATCHER = ptmond ] && echo --replay "$REPLAY") && ok=1 || ok=0
phase "check $([ $ok = 1 ] && echo PASSED || echo FAILED); results in $OUT/result.md"
[ $ok = 1 ] && [ $rc = 0 ]
