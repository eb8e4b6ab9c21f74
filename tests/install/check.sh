#!/bin/sh
# Install the build tree into a scratch prefix, then build and run a consumer twice: with
# CMake's find_package(ptmon) and with pkg-config. Also checks that the shared libraries
# export nothing but the ptmon_ API.
#   check.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
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

echo "== find_package(ptmon)"
cmake -S "$src/tests/install" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
LD_LIBRARY_PATH=$libdir "$work/cmake-build/consumer"

echo "== pkg-config ptmon ptmon-fake"
export PKG_CONFIG_PATH=$libdir/pkgconfig
pkg-config --exists --print-errors 'ptmon >= 0.1' ptmon-fake
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "$src/tests/install/consumer.c" -o "$work/pc-consumer" \
    $(pkg-config --cflags --libs ptmon-fake ptmon)
LD_LIBRARY_PATH=$libdir "$work/pc-consumer"
echo "install check: ok"
