#!/usr/bin/env bash
# The main demo: a byte-level TNN language model trained on the King James Bible
# (Debian's bible-kjv package), at 512 tokens; then the validation perplexity at
# lengths up to 28x the training length (the paper's extrapolation claim), an
# SVG plot of it, and generated text.
#   examples/lm_demo.sh [TNN_BINARY] [OUT_DIR]
# Settings can be overridden from the environment, e.g. STEPS=200 for a quick look;
# NO_DECAY=1 also trains the same model without decay and draws both models in one figure,
# OUT_DIR/extrapolation-decay-vs-nodecay.svg (the comparison in docs/results.md; about 6 more minutes);
# TRAIN_FLAGS adds `tnn train` flags, e.g. TRAIN_FLAGS="--precision bf16".
set -euo pipefail
TNN=${1:-build/release/bin/tnn}
OUT=${2:-build/demo}
NO_DECAY=${NO_DECAY:-0}
read -ra EXTRA <<< "${TRAIN_FLAGS:-}"  # split into flags
# shellcheck source=examples/kjv_lib.sh
source "$(dirname "$0")/kjv_lib.sh"

# 1. Data: the whole KJV as plain text, verse references stripped. Training
#    holds out every 20th block of 64 KiB (5% of the text, from every part of
#    the Bible) for validation; eval reads the same held-out blocks.
kjv_data

# 2. Train at 512 tokens: 3 layers, width 192, exponential decay 0.99 (1.1M parameters).
#    Batches of 8 x 512 bytes: at a fixed number of tokens, more and smaller steps
#    learn faster here (at 7.4M tokens, 900 steps of 16 x 512 ended 0.03 nats above
#    1,800 steps of 8 x 512). Warm-up: 60 steps, or a tenth of a shorter run.
train() {  # NAME [extra tnn train flags]
  local name=$1; shift
  "$TNN" train --data "$OUT/kjv.txt" --out "$OUT/$name.safetensors" --steps "$STEPS" --warmup "$(warmup_of "$STEPS")" --eval-every 500 \
    --threads "$THREADS" "${KJV_RECIPE[@]}" "${KJV_MODEL[@]}" "${EXTRA[@]}" "$@"
}
# 3. Length extrapolation on the held-out text: trained at 512, evaluated up to 14336.
evaluate() {  # PLOT EVAL_FLAGS (the checkpoints, their labels, a title)
  local plot=$1; shift
  "$TNN" eval "$@" "${KJV_HELDOUT[@]}" --lengths "$KJV_LENGTHS" --plot "$OUT/$plot" --threads "$THREADS"
}

echo "== train ($STEPS steps of 8 x 512 bytes)"
train kjv
echo "== evaluate on the held-out 5% at several lengths"
evaluate extrapolation.svg --checkpoint "$OUT/kjv.safetensors"
if [ "$NO_DECAY" = 1 ]; then
  echo "== the same model without decay: train, then both evaluated the same way, in one figure"
  train kjv-nodecay --decay none
  evaluate extrapolation-decay-vs-nodecay.svg --checkpoint "$OUT/kjv.safetensors" --label "decay 0.99" \
    --checkpoint "$OUT/kjv-nodecay.safetensors" --label "no decay" --title "Trained at 512 tokens: decay vs. no decay"
fi

# 4. Generate (from the model with decay).
echo "== generate"
"$TNN" generate --checkpoint "$OUT/kjv.safetensors" --prompt "And it came to pass, when the" --tokens 400 \
  --temperature 0.7 --top-k 40 --seed 7 --echo --threads "$THREADS"
