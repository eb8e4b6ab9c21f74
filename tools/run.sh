#!/bin/sh
# One entry point for the README's commands on a fresh Debian bookworm machine (as root):
#   sh tools/run.sh demo    install what is missing, build, run the demo on the fake guest
#   sh tools/run.sh test    install what is missing, build and run the whole test suite
#                           (gcc build, clang ASan+UBSan build, coverage build with gcovr,
#                           the Xen lab under Bochs)
#   sh tools/run.sh bench   build and run the benchmarks
# Anything else is passed to make.
set -eu
cd "$(dirname "$0")/.."

need=""
pkgs="make gcc clang libclang-rt-14-dev cmake pkg-config libcmocka-dev libxen-dev libzydis-dev gcovr"
# the Xen lab (tests/xen-lab): the emulator, the boot ISO, the dom0 and domU images, the checker
[ "${1:-demo}" = test ] &&
    pkgs="$pkgs bochs bochsbios vgabios bochs-term grub-pc-bin grub-common xorriso mtools busybox-static cpio binutils python3"
for pkg in $pkgs; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need="$need $pkg"
done
if [ -n "$need" ]; then
    echo "tools/run.sh: installing:$need"
    if [ "$(id -u)" != 0 ]; then
        echo "tools/run.sh: these Debian packages are missing and I am not root:$need" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $need
fi

exec make "${@:-demo}"
