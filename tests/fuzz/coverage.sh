#!/bin/sh
# Line and branch coverage of src/ by the differential fuzzer (gcc --coverage + gcovr).
#
#   tests/fuzz/coverage.sh [BUILD_DIR] [STEPS_PER_MODE]
#
# BUILD_DIR defaults to build-coverage (next to the source tree's top), STEPS_PER_MODE to 200000.
# Runs the seeded fuzzer in every paging mode, a fault sweep and the corpus, then writes
# per-file reports and BUILD_DIR/coverage/index.html, and prints the line and branch totals for
# src/core and for src/core + src/backends/fake.
# PTMON_COVERAGE_UNIT=1 also runs the unit tests (ctest -L unit) for the combined figure.
# The Xen backend is left out (its own tests need the Xen headers): src/core and src/backends/fake.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build-coverage}
STEPS=${2:-200000}

cmake -S "$SRC" -B "$BUILD" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS="--coverage -O0" -DCMAKE_EXE_LINKER_FLAGS=--coverage \
    -DCMAKE_SHARED_LINKER_FLAGS=--coverage -DPTMON_BUILD_EXAMPLES=OFF -DPTMON_BUILD_BENCH=OFF \
    -DPTMON_BUILD_XEN=OFF -DPTMON_SANITIZE=OFF >/dev/null
if [ "${PTMON_COVERAGE_UNIT:-0}" = 1 ]; then
    cmake --build "$BUILD" -j "$(nproc)"
else
    cmake --build "$BUILD" -j "$(nproc)" --target ptmon_fuzz ptmon_fuzz_replay
fi
find "$BUILD" -name '*.gcda' -delete

"$BUILD/tests/fuzz/ptmon_fuzz" --steps "$STEPS" --seed 1
"$BUILD/tests/fuzz/ptmon_fuzz" --faults all --run-steps 100 --runs 2 --seed 7
"$BUILD/tests/fuzz/ptmon_fuzz_replay" "$SRC/tests/fuzz/corpus"
if [ "${PTMON_COVERAGE_UNIT:-0}" = 1 ]; then
    ctest --test-dir "$BUILD" -L unit -j "$(nproc)" --output-on-failure
fi

mkdir -p "$BUILD/coverage"
cd "$SRC"
# One gcov pass into a JSON tracefile, then the reports from it.
gcovr --root "$SRC" --object-directory "$BUILD" --filter 'src/core/' --filter 'src/backends/fake/' \
    --json "$BUILD/coverage.json" >/dev/null 2>&1
echo "== src/core (the engine)"
gcovr --root "$SRC" --add-tracefile "$BUILD/coverage.json" --filter 'src/core/' --print-summary \
    --txt "$BUILD/coverage-core.txt" | tail -n 3
gcovr --root "$SRC" --add-tracefile "$BUILD/coverage.json" --filter 'src/core/' --branches \
    --txt "$BUILD/coverage-core-branches.txt" >/dev/null
echo "== src/core + src/backends/fake"
gcovr --root "$SRC" --add-tracefile "$BUILD/coverage.json" --print-summary \
    --html-details "$BUILD/coverage/index.html" | tail -n 3
echo "per-file: $BUILD/coverage-core.txt (lines), $BUILD/coverage-core-branches.txt (branches);"
echo "HTML: $BUILD/coverage/index.html"
