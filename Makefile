# Convenience targets over CMake. The README's commands go through tools/run.sh, which first
# installs what is missing; these targets assume the tools are there.
BUILD      ?= build
ASAN_BUILD ?= build-asan
BENCH_BUILD ?= build-bench
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all demo walks bench bench-instructions test test-normal test-asan test-coverage test-xen-lab test-install format format-check clean fuzz-long libfuzzer coverage xen-lab

all:
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

demo:
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS) --target ptmon_demo
	$(BUILD)/examples/ptmon_demo

walks:
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS) --target ptmon_walks
	$(BUILD)/examples/ptmon_walks

# Benchmarks (optimised build); JSON in $(BENCH_BUILD)/bench.json. bench-instructions adds
# callgrind's instruction counts per operation (needs valgrind).
bench:
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target ptmon_bench
	$(BENCH_BUILD)/bench/ptmon_bench --json $(BENCH_BUILD)/bench.json

bench-instructions: bench
	sh bench/callgrind.sh $(BENCH_BUILD)

# The whole suite: a normal gcc build, a clang ASan+UBSan build, a coverage build that prints
# the line and branch coverage of src/ (unit tests + a short fuzzer run), then the Xen lab
# (Xen 4.17 under Bochs with ptmond from the gcc build; root; tests/xen-lab/README.md).
test: test-normal test-asan test-coverage test-xen-lab

test-normal:
	cmake -S . -B $(BUILD) -DCMAKE_C_COMPILER=gcc $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -LE xen-lab

test-xen-lab:
	cmake -S . -B $(BUILD) -DCMAKE_C_COMPILER=gcc $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)
	ctest --test-dir $(BUILD) -V -L xen-lab

test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_C_COMPILER=clang -DPTMON_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -LE 'install|xen-lab'

# Differential fuzzer (tests/fuzz/README.md). The smoke run is part of `make test` (ctest -L fuzz).
FUZZ_STEPS ?= 10000000
FUZZ_TIME  ?= 600
fuzz-long:
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=gcc $(CMAKE_ARGS)
	cmake --build build-fuzz -j $(JOBS) --target ptmon_fuzz
	build-fuzz/tests/fuzz/ptmon_fuzz --steps $(FUZZ_STEPS) --seed $$(date +%s)
	build-fuzz/tests/fuzz/ptmon_fuzz --faults all --run-steps 300 --runs 10 --seed $$(date +%s)

libfuzzer:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_C_COMPILER=clang -DPTMON_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target ptmon_fuzz_libfuzzer
	mkdir -p $(ASAN_BUILD)/fuzz-corpus && cp tests/fuzz/corpus/* $(ASAN_BUILD)/fuzz-corpus/
	$(ASAN_BUILD)/tests/fuzz/ptmon_fuzz_libfuzzer $(ASAN_BUILD)/fuzz-corpus -max_total_time=$(FUZZ_TIME) -max_len=8192

coverage:
	sh tests/fuzz/coverage.sh build-coverage

COVERAGE_STEPS ?= 50000
test-coverage:
	PTMON_COVERAGE_UNIT=1 sh tests/fuzz/coverage.sh build-coverage $(COVERAGE_STEPS)

# The Xen lab on its own (root, network; see tests/xen-lab): builds ptmond in build-xen-lab.
xen-lab:
	bash tests/xen-lab/run-lab.sh

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(BENCH_BUILD) build-fuzz build-coverage
