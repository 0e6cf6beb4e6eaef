#!/usr/bin/env bash
# Fuzzing CI: runs every libFuzzer target of tests/fuzz (the safetensors reader, the config
# parser, the training-state reader, the `tnn grad` batch reader, the classification TSV reader,
# the image-file reader and the class-name metadata, built with clang and
# -fsanitize=fuzzer,address,undefined) for a fixed budget each,
# starting from the seed corpus in tests/fuzz/corpus. Exits non-zero on any finding (a crash,
# a sanitizer report, an exception that is not a tnn::Error, a failed round-trip check); the
# input that triggered it is kept in $TNN_FUZZ_DIR/artifacts/ to be added to the seed corpus
# once fixed.
#   usage: .ci/fuzz.sh [SECONDS_PER_TARGET]      (default 60; 7 targets, two at a time, so 4 min of fuzzing
#                                                plus the builds)
#   env:   TNN_FUZZ_DIR   build and output directory (default build/fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
case "$seconds" in
  '' | *[!0-9]*) echo ".ci/fuzz.sh: expected a number of seconds, got '$seconds'" >&2; exit 2 ;;
esac

# clang 14 with its sanitizer and libFuzzer runtimes, and the headers the targets include.
need=(clang-14 libclang-rt-14-dev libeigen3-dev nlohmann-json3-dev)
bash .ci/install_missing.sh "${need[@]}"

start=$SECONDS
status=0
TNN_FUZZ_DIR=${TNN_FUZZ_DIR:-$(pwd)/build/fuzz} CXX_FUZZ=clang++-14 tests/fuzz/run_fuzzers.sh "$seconds" || status=$?
echo "== fuzzing took $((SECONDS - start)) s: $([ $status -eq 0 ] && echo 'no finding' || echo 'FINDING')"
exit $status
