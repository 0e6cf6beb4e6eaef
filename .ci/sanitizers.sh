#!/usr/bin/env bash
# Sanitizer CI: builds and runs the tests under
#   asan  AddressSanitizer + UndefinedBehaviorSanitizer (clang 14, -O1, OpenMP on): every unit
#         test but test_alloc (which replaces malloc itself, as ASan does) and the `tnn`
#         program's end-to-end tests (ctest label cli: cli_errors, cli_train_resume,
#         cli_train_faults, cli_generate_eval, cli_hostile, cli_classify, so tnn-listops is
#         built too), so hostile files and flags go through sanitized code too;
#   tsan  ThreadSanitizer (clang 14, -O1) on the tests of the threaded kernels, with OpenMP on
#         (LLVM's libomp plus its Archer tool, which tells TSan about OpenMP's barriers and
#         locks; libgomp is not instrumented and would only produce false reports).
# Any sanitizer report fails the test it happens in, and the script exits non-zero.
# Not run here: the consumer projects and the PyTorch cross-check (no sanitizer value, long).
# Both builds use clang: GCC takes about three times longer to compile the tests with
# -fsanitize=address,undefined.
#   usage: .ci/sanitizers.sh [asan|tsan|all]      (default all)
#   env:   TNN_ASAN_DIR, TNN_TSAN_DIR   build directories (default build/sanitize-asan, -tsan)
#          TNN_SAN_JOBS                 parallel build jobs (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

mode=${1:-all}
case "$mode" in
  asan | tsan | all) ;;
  *) echo ".ci/sanitizers.sh: expected asan, tsan or all, got '$mode'" >&2; exit 2 ;;
esac
jobs=${TNN_SAN_JOBS:-2}
asan_dir=${TNN_ASAN_DIR:-$root/build/sanitize-asan}
tsan_dir=${TNN_TSAN_DIR:-$root/build/sanitize-tsan}

# Installs what is missing (CI runs as root; elsewhere through sudo).
need=(build-essential cmake ninja-build clang-14 libclang-rt-14-dev libomp-14-dev libeigen3-dev
      libfftw3-dev libgtest-dev googletest nlohmann-json3-dev libcli11-dev libopenblas-dev)
bash .ci/install_missing.sh "${need[@]}"

# Unit test targets, as tests/CMakeLists.txt declares them with tnn_add_test(name), and test_ops
# (declared on its own: one ctest test per check).
mapfile -t unit_targets < <(sed -n 's/^tnn_add_test(\([a-z_0-9]*\).*/test_\1/p' tests/CMakeLists.txt | grep -vx test_alloc)
unit_targets+=(test_ops)

start=$SECONDS
stamp() { echo "== [$(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s] $*"; }
status=0

# Ninja builds independent test programs in parallel (CMake's Makefiles build the targets
# named on the command line one after the other). -O1 keeps the instrumented tests fast; no
# NDEBUG, so Eigen's own bounds assertions stay on. -gline-tables-only: a report's stack still
# names every function, file and line, and the compiler skips the full debug information of
# Eigen's templates.
fresh() {  # a build directory made by another generator or compiler cannot be reused
  if [ -f "$1/CMakeCache.txt" ] && ! { grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$1/CMakeCache.txt" &&
                                       grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++-14$' "$1/CMakeCache.txt"; }; then
    rm -rf "$1"
  fi
}
common=(-G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only"
        -DTNN_BUILD_TESTS=ON -DTNN_BUILD_BENCHMARKS=OFF -DTNN_INSTALL=OFF)

if [ "$mode" != tsan ]; then
  stamp "asan+ubsan: configure and build in $asan_dir"
  fresh "$asan_dir"
  flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
  cmake -S . -B "$asan_dir" "${common[@]}" -DTNN_BUILD_EXAMPLES=ON -DTNN_BUILD_TOOLS=ON \
    -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" > /dev/null
  cmake --build "$asan_dir" -j "$jobs" --target "${unit_targets[@]}" tnn-cli tnn-listops tnn-pathfinder
  stamp "asan+ubsan: run the unit and CLI tests"
  # cli_hostile_surfaces is left to the Release ctest: it bounds time and memory (generation into a
  # closed pipe), which ASan inflates several times. cli_demos too: it checks the example scripts,
  # whose program paths cli_classify, cli_image and cli_pathfinder run here already.
  # The op harness's central-difference cases (hundreds of forward passes each, ~0.5 s apiece
  # under ASan) run the same code as its forward/backward cases: the Release ctest checks them.
  # abort_on_error: a report kills the process with SIGABRT, which every test sees as a
  # failure (the CLI scripts treat exit codes >= 128 as crashes).
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:strict_init_order=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1 OMP_NUM_THREADS=2 \
      ctest --test-dir "$asan_dir" --output-on-failure -j "$jobs" -L 'unit|cli' \
        -E 'pytorch|consumer|_NOT_BUILT|include_direction|cli_hostile_surfaces|cli_demos|^Ops/OpCheck\.GradientsMatchCentralDifferences/'; then
    status=1
  fi
fi

if [ "$mode" != asan ]; then
  stamp "tsan: configure and build in $tsan_dir"
  archer=/usr/lib/llvm-14/lib/libarcher.so
  [ -f "$archer" ] || { echo "sanitizers.sh: $archer not found (package libomp-14-dev)" >&2; exit 2; }
  # Tests whose code runs on several threads: parallel_for and the OpenMP kernels
  # (Toeplitz/circulant products, the blocked GEMM, chunked activations, decay powers,
  # incremental decoding), and the concurrent-plan test of test_toeplitz (std::thread).
  # Not test_gtu: it counts allocations with its own operator new, which clang 14's static
  # TSan runtime defines too (and its shared one crashes); the GTU's loops run in test_block.
  tsan_tests=(parallel threads gemm toeplitz linear activation glu tno block decoder)
  fresh "$tsan_dir"
  cmake -S . -B "$tsan_dir" "${common[@]}" -DTNN_BUILD_EXAMPLES=OFF -DTNN_BUILD_TOOLS=OFF \
    -DTNN_USE_OPENMP=ON -DTNN_USE_BLAS=OFF \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" > /dev/null
  cmake --build "$tsan_dir" -j "$jobs" --target "${tsan_tests[@]/#/test_}"
  stamp "tsan: run ${tsan_tests[*]} on 4 OpenMP threads"
  # 4 threads on a 2-core machine: more interleavings. Archer needs libomp's tool interface.
  for t in "${tsan_tests[@]}"; do
    if ! TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1" \
        OMP_TOOL_LIBRARIES="$archer" OMP_NUM_THREADS=4 "$tsan_dir/tests/test_$t" --gtest_brief=1; then
      echo "== tsan: test_$t FAILED" >&2
      status=1
    fi
  done
fi

stamp "done: $([ $status -eq 0 ] && echo 'no sanitizer report' || echo 'FAILED')"
exit $status
