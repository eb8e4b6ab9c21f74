#!/bin/bash
# Build the Xen lab's boot images from Debian packages only.
#
#   tests/xen-lab/build-lab.sh [--ptmond PATH]
#
# Produces, under $XEN_LAB_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/ptmon-xen-lab):
#   xen.gz             Xen 4.17 hypervisor as Debian ships it (GRUB's multiboot2 loads it; Bochs)
#   xen.elf            the same, uncompressed (QEMU's multiboot loader needs the ELF32; --qemu)
#   vmlinux            Debian's 6.1 kernel as a raw ELF, for dom0 (PV) and the domU (PVH)
#   dom0-initrd.cpio   busybox + Xen tools + their libs + xen modules + ptmond + lab-access +
#                      guest images, uncompressed
# Nothing under emulation decompresses anything: an emulated CPU takes over a minute to unxz a
# bzImage or gunzip an initramfs (shared/design/xen-lab-bochs), so the kernel is unpacked here
# and the cpio archives stay uncompressed.
# Nothing is installed on the host by this script (run-lab.sh installs the host tools); the Xen
# and kernel .debs are only downloaded and extracted (apt-get download + dpkg-deb -x).
#
# Caching: the .debs and their extraction are kept until the package list or the apt candidate
# versions change (stamp file); the initramfs images are rebuilt only when the sha256 of their
# inputs (scripts, workload source, ptmond binary, package stamp) changes.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${XEN_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ptmon-xen-lab}
PTMOND=${PTMOND:-}
while [ $# -gt 0 ]; do
    case $1 in
        --ptmond) PTMOND=$2; shift 2 ;;
        *) echo "usage: $0 [--ptmond PATH]" >&2; exit 2 ;;
    esac
done
mkdir -p "$CACHE"
cd "$CACHE"
log() { echo "[build-lab $(date -u +%H:%M:%S)] $*"; }

# Debian's bzImage carries the kernel as an xz stream after the real-mode setup code; both Xen's
# PV dom0 builder and libxl's PVH loader take the ELF inside as it is.
unpack_vmlinux() { # bzImage out
    python3 - "$1" "$2" <<'EOP'
import lzma, sys
data = open(sys.argv[1], "rb").read()
at = data.find(b"\xfd7zXZ\x00")
if at < 0:
    sys.exit("no xz stream in " + sys.argv[1])
elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[at:])
if elf[:4] != b"\x7fELF":
    sys.exit("the xz stream of %s is not an ELF" % sys.argv[1])
open(sys.argv[2], "wb").write(elf)
EOP
}

# ---- 1. packages --------------------------------------------------------------------------
# The kernel is whatever linux-image-amd64 currently depends on, so the lab follows Debian's
# security updates instead of pinning an ABI that disappears from the mirror.
if ! KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}') || [ -z "$KPKG" ]; then
    apt-get update -qq
    KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
KV=${KPKG#linux-image-}
XPKGS="xen-hypervisor-4.17-amd64 xen-utils-4.17 xenstore-utils xen-utils-common libxenmisc4.17 libxencall1
 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenstore4 libxentoolcore1 libxendevicemodel1 libxenhypfs1
 libxentoollog1 libyajl2"
# The stamp names every package with its candidate version: a new Debian point release changes it.
PKGSTAMP=$(for p in $XPKGS $KPKG; do printf '%s=%s\n' "$p" "$(apt-cache policy "$p" | awk '/Candidate:/{print $2}')"; done)
if [ "$(cat pkgs.stamp 2>/dev/null)" != "$PKGSTAMP" ]; then
    log "downloading and extracting packages ($KPKG, Xen 4.17)"
    rm -rf debs xroot kroot; mkdir -p debs xroot kroot
    # shellcheck disable=SC2086
    (cd debs && apt-get download -q -o APT::Sandbox::User=root $XPKGS $KPKG >/dev/null)
    for d in debs/*.deb; do
        case $d in debs/linux-image-*) dpkg-deb -x "$d" kroot ;; *) dpkg-deb -x "$d" xroot ;; esac
    done
    cp xroot/boot/xen-4.17-amd64.gz xen.gz
    zcat xen.gz > xen.elf
    cp "kroot/boot/vmlinuz-$KV" vmlinuz
    unpack_vmlinux vmlinuz vmlinux
    echo "$PKGSTAMP" > pkgs.stamp
else
    log "packages cached ($KPKG)"
fi
echo "$KV" > kernel.version

# ---- 2. the watcher: ptmond from the tree, or the harness-only stand-in ----------------------
WATCHER=${XEN_LAB_WATCHER:-ptmond}
# The stand-in is always built: dom0 also uses it (--cr3-only) to learn the workload's CR3 when
# ptmond cannot take CPUID events (its ioreq mechanism has no monitor ring). Xen's headers need gnu11.
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$CACHE/xroot/usr/include" -o ptmond-standin "$HERE/standin/ptmond-standin.c" \
    -L"$CACHE/xroot/usr/lib/x86_64-linux-gnu" -lxenctrl -lxenevtchn -lxenforeignmemory -lxendevicemodel
if [ "$WATCHER" = standin ]; then
    PTMOND=$CACHE/ptmond-standin
elif [ -z "$PTMOND" ]; then
    B=${XEN_LAB_BUILD:-$REPO/build-xen-lab/cmake}
    log "building ptmond in $B"
    cmake -S "$REPO" -B "$B" -DCMAKE_BUILD_TYPE=Release >"$CACHE/cmake.log" 2>&1 || { tail -30 "$CACHE/cmake.log"; exit 1; }
    cmake --build "$B" --target ptmond ptmon_replay -j2 >>"$CACHE/cmake.log" 2>&1 || { tail -40 "$CACHE/cmake.log"; exit 1; }
    PTMOND=$(find "$B" -type f -name ptmond -perm -u+x | head -1)
    [ -n "$PTMOND" ] || { echo "ptmond binary not found under $B" >&2; exit 1; }
fi
log "watcher: $PTMOND"

# ---- 3. the domU workload (static, so the guest needs no libc) and dom0's access checker ----
gcc -std=c11 -O2 -Wall -Wextra -Werror -static -pthread -o workload.new "$HERE/workload.c"
cmp -s workload.new workload 2>/dev/null && rm workload.new || mv workload.new workload
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$CACHE/xroot/usr/include" -o lab-access "$HERE/lab-access.c" \
    -L"$CACHE/xroot/usr/lib/x86_64-linux-gnu" -lxenctrl

# ---- 4. initramfs images, rebuilt when an input changes -------------------------------------
INPUTS="$HERE/build-lab.sh $HERE/dom0-init.sh $HERE/domU-init.sh $HERE/g1.cfg workload lab-access $PTMOND ptmond-standin pkgs.stamp"
# shellcheck disable=SC2086
HASH=$( (sha256sum $INPUTS | awk '{print $1}'; ldd "$PTMOND" 2>/dev/null | awk '{print $1}') | sha256sum | cut -c1-16)
if [ "$(cat initrd.stamp 2>/dev/null)" = "$HASH" ] && [ -s dom0-initrd.cpio ]; then
    log "initramfs images up to date ($HASH)"
    exit 0
fi
log "building initramfs images ($HASH)"
M=kroot/lib/modules/$KV

# Copy a module and, first, what its .modinfo "depends=" names (the .deb ships no modules.dep
# and the host need not have kmod); modules.load lists them dependencies first, for insmod.
add_mod() { # root name
    local p dep
    grep -qx "$2" "$1/modules.load" 2>/dev/null && return 0
    p=$(awk -v n="/$2.ko" 'substr($0,length($0)-length(n)+1)==n{print; exit}' "$M/modules.order")
    [ -n "$p" ] || { log "module $2 not in this kernel (built in?)"; return 0; }
    p=${p#kernel/}
    for dep in $(strings -a "$M/kernel/$p" | sed -n 's/^depends=//p' | tr ',' ' '); do add_mod "$1" "$dep"; done
    cp "$M/kernel/$p" "$1/lib/modules/$2.ko"
    echo "$2" >> "$1/modules.load"
}

# domU: busybox, the workload, zram (+ zsmalloc) for the swap steps.
U=domU_root; rm -rf $U; mkdir -p $U/bin $U/proc $U/sys $U/dev $U/tmp $U/lib/modules
cp /bin/busybox $U/bin/; cp workload $U/; cp "$HERE/domU-init.sh" $U/init; chmod +x $U/init
add_mod $U zram
(cd $U && find . | cpio -o -H newc 2>/dev/null > ../domU-initrd.cpio)

# dom0: the recipe of shared/design/xen-lab (xl, xenstored, xenconsoled, libs, ld.so, libgcc_s).
R=dom0_root; rm -rf $R
mkdir -p $R/bin $R/proc $R/sys $R/dev $R/tmp $R/run $R/etc/xen $R/var/lib/xen $R/var/lib/xenstored \
    $R/var/log/xen/console $R/lib/modules $R/guest $R/usr/lib/x86_64-linux-gnu $R/usr/lib/xen-4.17/bin $R/lib64 $R/root
ln -s ../run $R/var/run
cp /bin/busybox $R/bin/
for b in xl xenstored xenconsoled xen-init-dom0 xenstore-control xenctx; do cp xroot/usr/lib/xen-4.17/bin/$b $R/usr/lib/xen-4.17/bin/; done
for b in read write ls rm exists; do cp -L xroot/usr/bin/xenstore-$b $R/usr/lib/xen-4.17/bin/; done
cp "$PTMOND" $R/usr/lib/xen-4.17/bin/"$(basename "$PTMOND")"
cp ptmond-standin lab-access $R/usr/lib/xen-4.17/bin/
# Resolve libraries against the extracted Xen libs first (same versions the hypervisor expects).
for f in $R/usr/lib/xen-4.17/bin/*; do
    LD_LIBRARY_PATH=$CACHE/xroot/usr/lib/x86_64-linux-gnu ldd "$f" 2>/dev/null | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do cp -L "$lib" $R/usr/lib/x86_64-linux-gnu/; done
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 $R/usr/lib/x86_64-linux-gnu/   # pthread_cancel in xl
cp -L /lib64/ld-linux-x86-64.so.2 $R/lib64/
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs/xenfs; do cp "$M/kernel/drivers/xen/$m.ko" $R/lib/modules/; done
cp xroot/etc/xen/xl.conf $R/etc/xen/; cp "$HERE/g1.cfg" $R/etc/xen/g1.cfg
cp "$HERE/dom0-init.sh" $R/init; chmod +x $R/init
cp vmlinux $R/guest/vmlinux; cp domU-initrd.cpio $R/guest/initrd.cpio
(cd $R && find . | cpio -o -H newc 2>/dev/null > ../dom0-initrd.cpio)
echo "$HASH" > initrd.stamp
ls -la "$CACHE/dom0-initrd.cpio" "$CACHE/domU-initrd.cpio"
