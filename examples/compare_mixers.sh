#!/usr/bin/env bash
# TNN against softmax attention in the same backbone, one thing changed: the token mixer. Both
# train on the KJV demo recipe (examples/lm_demo.sh: 512 bytes, batches of 8, the same schedule,
# data, seed and held-out text) at equal parameter count (within 5%) and for equal wall time,
# then both are evaluated at lengths up to 28x the training length, one table each and one figure.
#   examples/compare_mixers.sh [TNN_BINARY] [OUT_DIR]
# Environment:
#   STEPS         the TNN's training steps (default 1500, the demo's); attention gets the steps that
#                 take the same wall time, from a short timing run of each model
#   TIMING_STEPS  steps of each timing run (default 20; the difference of a run of 5 steps and one
#                 of 5 + TIMING_STEPS is the time per step, start-up and final validation cancelled)
#   THREADS       threads of every run (default 0: all cores)
#   ATTN_FLAGS    extra `tnn train` flags of the attention model
#   MAX_BYTES     held-out bytes evaluated (default 100000, as the demo)
# The models:
#   TNN        dim 192, 3 layers, GTU expand 2, RPE 32 wide, decay 0.99 (the demo's): 1,139,616 parameters
#   attention  dim 192, 4 layers, 3 heads of 64, sinusoidal positions, the same GLU: 1,135,872
#              (an attention layer, 4 D^2 + 4 D, is smaller than a GTU layer, 3 D E + 2 E + D plus
#              the RPE, so the same parameters buy one more layer)
set -euo pipefail
TNN=${1:-build/release/bin/tnn}
OUT=${2:-build/compare}
ATTN_FLAGS=${ATTN_FLAGS:-}
# shellcheck source=examples/kjv_lib.sh
source "$(dirname "$0")/kjv_lib.sh"

# 1. Data: examples/lm_demo.sh's, the KJV with verse references stripped; every 20th block of
#    64 KiB held out for validation and evaluation.
kjv_data

# shellcheck disable=SC2206  # ATTN_FLAGS is split into flags on purpose
ATTN_MODEL=(--token-mixer attention --positions sinusoidal --dim 192 --layers 4 --heads 3 $ATTN_FLAGS)

# 2. Seconds per step of each model, and the attention model's steps at equal time.
echo "== timing ($TIMING_STEPS steps of each model)"
tnn_sps=$(seconds_per_step tnn "${KJV_MODEL[@]}")
attn_sps=$(seconds_per_step attention "${ATTN_MODEL[@]}")
ATTN_STEPS=$(equal_time_steps "$STEPS" "$tnn_sps" "$attn_sps")
echo "TNN $tnn_sps s/step, attention $attn_sps s/step: $STEPS TNN steps take as long as $ATTN_STEPS attention steps"

# 3. Train both (the warm-up of the demo, or a tenth of a shorter run).
echo "== train the TNN ($STEPS steps)"
kjv_train tnn "$STEPS" "$(warmup_of "$STEPS")" 500 "${KJV_MODEL[@]}"
echo "== train attention ($ATTN_STEPS steps)"
kjv_train attention "$ATTN_STEPS" "$(warmup_of "$ATTN_STEPS")" 500 "${ATTN_MODEL[@]}"
p_tnn=$(params tnn)
p_attn=$(params attention)
python3 - "$p_tnn" "$p_attn" <<'EOF'
import sys
a, b = map(int, sys.argv[1:])
d = abs(a - b) / a
print(f"parameters: TNN {a:,}, attention {b:,} ({100 * d:.1f}% apart)")
if d > 0.05:
    sys.exit("compare_mixers: the models' parameter counts differ by more than 5%; change ATTN_MODEL")
EOF

# 4. Both on the held-out text at lengths up to 28x the training length: a table each, one figure.
echo "== evaluate both on the held-out 5% at several lengths"
"$TNN" eval --checkpoint "$OUT/tnn.safetensors" --label "TNN ($STEPS steps)" \
  --checkpoint "$OUT/attention.safetensors" --label "attention ($ATTN_STEPS steps)" \
  --title "Trained at 512 tokens for equal time: TNN vs attention" \
  "${KJV_HELDOUT[@]}" --lengths "$KJV_LENGTHS" --plot "$OUT/tnn-vs-attention.svg" --threads "$THREADS"
rm -f "$OUT"/timing-*
