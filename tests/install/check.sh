#!/bin/sh
# Install the build tree into a scratch prefix, then build and run a consumer twice: with
# CMake's find_package(ptmon) and with pkg-config. Also checks that the shared libraries
# export, and the static archives define globally, nothing but the ptmon_ API, and that a
# program with functions named like ptmon's internal ones (static_clash.c) links statically
# against the archives (CMake targets, pkg-config --static, the Xen archive when installed).
#   check.sh BUILD_DIR SOURCE_DIR [XEN_LIBS...]
# XEN_LIBS: what libptmon_xen.a is linked with (ctest passes the libraries CMake found; by
# default the -l names of src/backends/xen/CMakeLists.txt).
set -eu
build=$1
src=$2
shift 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib*/ | head -n 1)
libdir=${libdir%/}

echo "== exported symbols"
bad=$(nm -D --defined-only "$libdir/libptmon.so" "$libdir/libptmon_fake.so" |
    awk 'NF == 3 && $2 ~ /[TDBR]/ {print $3}' | grep -v '^ptmon_' || true)
if [ -n "$bad" ]; then
    echo "symbols outside the ptmon_ namespace are exported:"; echo "$bad"; exit 1
fi
nm -D --defined-only "$libdir/libptmon.so" | grep -q ' T ptmon_create$'
readelf -d "$libdir/libptmon.so" | grep -q 'SONAME.*libptmon.so.0'

echo "== global symbols of the static archives"
archives="$libdir/libptmon.a $libdir/libptmon_fake.a"
xen=0
if [ -f "$libdir/libptmon_xen.a" ]; then
    archives="$archives $libdir/libptmon_xen.a"
    xen=1
fi
# shellcheck disable=SC2086
bad=$(nm -g --defined-only $archives | awk 'NF == 3 {print $3}' | grep -v '^ptmon_' || true)
if [ -n "$bad" ]; then
    echo "the static archives define names outside the ptmon_ namespace:"; echo "$bad"; exit 1
fi
nm -g --defined-only "$libdir/libptmon.a" | grep -q ' T ptmon_create$'
nm -g --defined-only "$libdir/libptmon_fake.a" | grep -q ' T ptmon_fake_create$'

echo "== find_package(ptmon)"
cmake -S "$src/tests/install" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
LD_LIBRARY_PATH=$libdir "$work/cmake-build/consumer"
# linked with ptmon::fake_static and ptmon::ptmon_static; no LD_LIBRARY_PATH: nothing of ptmon
# may come from the shared libraries
if readelf -d "$work/cmake-build/static_clash" | grep -q 'NEEDED.*libptmon'; then
    echo "static_clash is linked against a shared ptmon library"; exit 1
fi
"$work/cmake-build/static_clash"

echo "== pkg-config ptmon ptmon-fake"
export PKG_CONFIG_PATH=$libdir/pkgconfig
pkg-config --exists --print-errors 'ptmon >= 0.1' ptmon-fake
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "$src/tests/install/consumer.c" -o "$work/pc-consumer" \
    $(pkg-config --cflags --libs ptmon-fake ptmon)
LD_LIBRARY_PATH=$libdir "$work/pc-consumer"

echo "== pkg-config --static: static_clash"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "$src/tests/install/static_clash.c" -o "$work/pc-static-clash" \
    $(pkg-config --static --cflags --libs-only-L ptmon-fake ptmon) \
    -Wl,-Bstatic $(pkg-config --static --libs-only-l ptmon-fake ptmon) -Wl,-Bdynamic
"$work/pc-static-clash"

if [ "$xen" = 1 ]; then
    echo "== static_clash with libptmon_xen.a"
    # The Xen backend has no pkg-config file or CMake target of its own: the archive by path,
    # then the libraries it needs.
    [ $# -gt 0 ] || set -- -lxenctrl -lxenforeignmemory -lxenevtchn -lxendevicemodel -lxenguest -lZydis
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror -DPTMON_CLASH_XEN $(pkg-config --cflags ptmon) \
        "$src/tests/install/static_clash.c" -o "$work/xen-static-clash" \
        "$libdir/libptmon_xen.a" "$libdir/libptmon_fake.a" "$libdir/libptmon.a" "$@"
    "$work/xen-static-clash"
fi
echo "install check: ok"
