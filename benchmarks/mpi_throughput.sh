#!/usr/bin/env bash
# Training throughput of the demo model (examples/lm_demo.sh's model and batch: 3 layers, D 192,
# 8 x 512 bytes per step) as 1 process x 1 thread, 2 processes x 1 thread (mpirun) and
# 1 process x 2 threads; each layout RUNS times (median reported), STEPS steps each. Also the
# time per step the gradient sums were not hidden behind backward, with overlap and without
# (TNN_DIST_NO_OVERLAP=1: all sums after backward, i.e. the whole communication time).
#   benchmarks/mpi_throughput.sh [TNN_BINARY] [WORK_DIR]      (env: STEPS=40 RUNS=3)
set -euo pipefail
TNN=${1:-build/release/bin/tnn}
WORK=${2:-build/mpi_throughput}
STEPS=${STEPS:-40}
RUNS=${RUNS:-3}
mkdir -p "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
DATA=$WORK/kjv.txt
if [ ! -s "$DATA" ]; then
  if command -v bible > /dev/null; then
    bible -f "Gen1:1-Rev22:21" | sed -E 's/^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ //' > "$DATA"
  else
    for i in $(seq 1 40000); do echo "Verse $i: and the word was spoken unto the people in the day $((i % 7))."; done > "$DATA"
  fi
fi
FLAGS=(train --data "$DATA" --seq-len 512 --batch 8 --steps "$STEPS" --warmup 10 --lr 3e-3 --min-lr 1e-4
       --dim 192 --layers 3 --expand-ratio 2 --rpe-dim 32 --gamma 0.99 --valid-fraction 0 --log-every 1
       --seed 1 --force)

# tokens/s of one run: 8 x 512 tokens per step over the wall time of steps 6..STEPS (the CSV's
# per-step rate of its training rows, column 6, skipping the first 5 steps: allocation and FFT
# planning).
run() {  # NAME LAUNCH... -- THREADS
  local name=$1 threads=$2; shift 2
  "$@" "$TNN" "${FLAGS[@]}" --threads "$threads" --out "$WORK/$name.safetensors" 2> "$WORK/$name.log"
  awk -F, '$2 == "train" && $1 > 5 { s += 1 / $6; n++ } END { printf "%.0f\n", n / s }' "$WORK/$name.safetensors.csv"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

declare -A result
for layout in 1x1 2x1 1x2; do
  vals=()
  for r in $(seq 1 "$RUNS"); do
    case $layout in
      1x1) v=$(run "1x1_$r" 1 env) ;;
      1x2) v=$(run "1x2_$r" 2 env) ;;
      2x1) v=$(run "2x1_$r" 1 mpirun -q --oversubscribe --bind-to core -np 2) ;;
    esac
    vals+=("$v")
  done
  result[$layout]=$(printf "%s\n" "${vals[@]}" | median)
  echo "$layout: ${vals[*]} tokens/s (median ${result[$layout]})"
done
awk -v a="${result[2x1]}" -v b="${result[1x1]}" -v c="${result[1x2]}" \
  'BEGIN { printf "2 processes x 1 thread: %.2fx of 1 x 1; 1 process x 2 threads: %.2fx of 1 x 1\n", a / b, c / b }'
grep -h "not hidden" "$WORK"/2x1_*.log | sed 's/^/overlapped: /'
TNN_DIST_NO_OVERLAP=1 run nooverlap 1 mpirun -q --oversubscribe --bind-to core -np 2 > "$WORK/nooverlap.tps"
echo "without overlap: $(grep -h 'not hidden' "$WORK/nooverlap.log") ($(cat "$WORK/nooverlap.tps") tokens/s)"
