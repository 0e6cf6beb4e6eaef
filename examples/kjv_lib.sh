# shellcheck shell=bash disable=SC2034  # sourced: its variables are used by the sourcing script
# The KJV recipe, shared by lm_demo.sh and the comparisons built on it (compare_mixers.sh,
# compare_tokenizers.sh): the text, the demo's model and training flags (512 positions, batches of
# 8, the same schedule, seed and held-out text), and a timing of seconds per step. Source it with
# TNN and OUT set.

# Settings from the environment, the demo's by default:
#   STEPS         training steps (1500; in a comparison, the first model's)
#   THREADS       threads of every run (0: all cores)
#   TIMING_STEPS  steps of each timing run of seconds_per_step (20)
#   MAX_BYTES     held-out bytes evaluated (100000)
STEPS=${STEPS:-1500}
THREADS=${THREADS:-0}
TIMING_STEPS=${TIMING_STEPS:-20}
MAX_BYTES=${MAX_BYTES:-100000}

# The demo's model: dim 192, 3 layers, GTU expand 2, RPE 32 wide, decay 0.99.
KJV_MODEL=(--dim 192 --layers 3 --expand-ratio 2 --rpe-dim 32 --gamma 0.99)
# The demo's training: 512 positions, batches of 8, cosine schedule 3e-3 -> 1e-4, seed 1, every 20th
# block of 64 KiB held out, validation on its first 65,536 tokens.
KJV_RECIPE=(--seq-len 512 --batch 8 --lr 3e-3 --min-lr 1e-4 --eval-tokens 65536 --valid-block 65536 --seed 1)
# `tnn eval` on the same held-out blocks, at the training length and up to 28 times it.
KJV_HELDOUT=(--data "$OUT/kjv.txt" --valid-fraction 0.05 --valid-block 65536 --max-bytes "$MAX_BYTES")
KJV_LENGTHS=512,1024,2048,4096,8192,14336

kjv_data() {  # writes $OUT/kjv.txt (the KJV, verse references stripped) once
  mkdir -p "$OUT"
  if [ ! -s "$OUT/kjv.txt" ]; then
    bible -f "Gen1:1-Rev22:21" | sed -E 's/^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ //' > "$OUT/kjv.txt"
  fi
  echo "== data: $OUT/kjv.txt, $(wc -c < "$OUT/kjv.txt") bytes"
}

kjv_train() {  # NAME STEPS WARMUP EVAL_EVERY [flags]: writes $OUT/NAME.safetensors and NAME.log
  local name=$1 steps=$2 warmup=$3 eval_every=$4
  shift 4
  "$TNN" train --data "$OUT/kjv.txt" --out "$OUT/$name.safetensors" --force --steps "$steps" --warmup "$warmup" \
    --eval-every "$eval_every" --threads "$THREADS" "${KJV_RECIPE[@]}" "$@" 2>&1 | tee "$OUT/$name.log"
}
now() { date +%s.%N; }
params() { sed -nE 's/^model: ([0-9]+) parameters.*/\1/p' "$OUT/$1.log" | head -1; }
warmup_of() { python3 -c "import sys; s = int(sys.argv[1]); print(min(60, s // 10))" "$1"; }

# Seconds per step of a model: the difference of a run of 5 steps and one of 5 + TIMING_STEPS, so
# start-up and the final validation cancel.
seconds_per_step() {  # NAME [flags]
  local name=$1
  shift
  local t0 t1 t2
  t0=$(now)
  kjv_train "timing-$name-a" 5 1 0 "$@" > /dev/null
  t1=$(now)
  kjv_train "timing-$name-b" $((5 + TIMING_STEPS)) 1 0 "$@" > /dev/null
  t2=$(now)
  rm -f "$OUT/timing-$name"-*
  python3 -c "import sys; a, b, c, n = map(float, sys.argv[1:]); print(max((c - b) - (b - a), 1e-3) / n)" \
    "$t0" "$t1" "$t2" "$TIMING_STEPS"
}
# The steps of model B that take as long as STEPS of model A.
equal_time_steps() {  # STEPS SECONDS_PER_STEP_A SECONDS_PER_STEP_B
  python3 -c "import sys; s, a, b = map(float, sys.argv[1:]); print(max(1, round(s * a / b)))" "$@"
}
