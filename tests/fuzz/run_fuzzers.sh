#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz_safetensors, fuzz_config, fuzz_training_state, fuzz_batch, fuzz_tsv,
# fuzz_images, fuzz_labels) with clang and ASan + UBSan and
# runs each for SECONDS (default 60). Exits non-zero if any target reports a finding; the
# crashing input is left in $OUT/artifacts/. New inputs go to $OUT/corpus/<target>, the seed
# corpus in tests/fuzz/corpus/<target> is only read.
#   usage: tests/fuzz/run_fuzzers.sh [SECONDS] [TARGET...]
#   env:   TNN_FUZZ_DIR (build/output directory, default <repo>/build-fuzz), CXX_FUZZ (clang++)
set -euo pipefail

seconds=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(fuzz_safetensors fuzz_config fuzz_training_state fuzz_batch fuzz_tsv fuzz_images
                                       fuzz_labels)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${TNN_FUZZ_DIR:-$root/build-fuzz}
cxx=${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++ || true)}
if [[ -z "$cxx" ]]; then
  echo "run_fuzzers.sh: no clang++ found (set CXX_FUZZ)" >&2
  exit 2
fi

# -fno-sanitize-recover: a UBSan report aborts, so libFuzzer counts it as a finding.
flags=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1 -std=c++17)
includes=(-I"$root/include" -I/usr/include/eigen3)
mkdir -p "$out/artifacts"

status=0
# Built two at a time (the budget per target is for fuzzing, not compiling).
pids=()
for t in "${targets[@]}"; do
  echo "== building $t"
  "$cxx" "${flags[@]}" "${includes[@]}" "$here/$t.cpp" -o "$out/$t" &
  pids+=($!)
  if [[ ${#pids[@]} -ge 2 ]]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
# Run two at a time too: each libFuzzer process uses one core, and each keeps its full budget.
# A target's output goes to its own log, printed when it ends, so the two do not interleave.
fuzz() {  # TARGET: fuzzes it for $seconds; its exit status is the finding
  local t=$1 extra=() dict="$here/${1#fuzz_}.dict"
  mkdir -p "$out/corpus/$t"
  [[ -f "$dict" ]] && extra+=(-dict="$dict")
  UBSAN_OPTIONS=print_stacktrace=1 "$out/$t" -max_total_time="$seconds" -timeout=25 -print_final_stats=1 -print_funcs=0 \
    -artifact_prefix="$out/artifacts/$t-" "${extra[@]}" "$out/corpus/$t" "$here/corpus/$t" > "$out/$t.log" 2>&1
}
finish() {  # TARGET PID: waits for it, prints its log, records a finding
  local rc=0
  wait "$2" || rc=$?
  cat "$out/$1.log"
  if [[ $rc -ne 0 ]]; then
    echo "== $1: FINDING (see $out/artifacts/)" >&2
    status=1
  fi
}
running=()  # "target pid" pairs
for t in "${targets[@]}"; do
  echo "== running $t for $seconds s"
  fuzz "$t" &
  running+=("$t $!")
  if [[ ${#running[@]} -ge 2 ]]; then finish ${running[0]}; running=("${running[@]:1}"); fi
done
for r in "${running[@]}"; do finish $r; done
exit $status
