#!/usr/bin/env bash
# Bytes against a SentencePiece subword vocabulary, one thing changed: the tokens. The demo's model
# (examples/lm_demo.sh: dim 192, 3 layers, decay 0.99) trains on the KJV once on bytes and once on
# the ids of a BPE vocabulary of VOCAB pieces, both 512 positions x 8 per step, for equal wall time;
# then both are scored on the same held-out text in bits per byte (total nats / (bytes ln 2)).
#   examples/compare_tokenizers.sh [TNN_BINARY] [OUT_DIR]
# Needs spm_train (Debian's sentencepiece package) and a tnn configured with libsentencepiece-dev.
# Environment:
#   STEPS         the byte model's training steps (default 1500, the demo's); the subword model gets
#                 the steps that take the same wall time, from a short timing run of each
#   VOCAB         pieces of the vocabulary (default 4000)
#   TIMING_STEPS  steps of each timing run (default 20)
#   THREADS       threads of every run (default 0: all cores)
#   MAX_BYTES     held-out bytes evaluated (default 100000, as the demo)
set -euo pipefail
TNN=${1:-build/release/bin/tnn}
OUT=${2:-build/subword}
VOCAB=${VOCAB:-4000}
# shellcheck source=examples/kjv_lib.sh
source "$(dirname "$0")/kjv_lib.sh"
kjv_data

# 1. The vocabulary, learned from the training side only: the held-out blocks (the last 64 KiB of
#    every 1.25 MiB, as `tnn train --valid-block 65536` holds them out) are left out. BPE with byte
#    fallback, no normalization, no added whitespace: every byte of the text encodes and decodes exactly.
SPM="$OUT/kjv-bpe$VOCAB"
if [ ! -s "$SPM.model" ]; then
  python3 - "$OUT/kjv.txt" "$OUT/kjv-train.txt" <<'PY'
import sys
data, block = open(sys.argv[1], "rb").read(), 65536
blocks = range((len(data) + block - 1) // block)
open(sys.argv[2], "wb").write(b"".join(data[i * block:(i + 1) * block] for i in blocks if i % 20 != 19))
PY
  spm_train --input="$OUT/kjv-train.txt" --model_prefix="$SPM" --vocab_size="$VOCAB" --model_type=bpe \
    --character_coverage=1.0 --byte_fallback=true --normalization_rule_name=identity \
    --remove_extra_whitespaces=false --add_dummy_prefix=false --num_threads=1 > "$SPM.log" 2>&1
fi
SUBWORD=(--tokenizer "$SPM.model")

# 2. Seconds per step of each, and the subword model's steps at equal time.
echo "== timing ($TIMING_STEPS steps of each model)"
bytes_sps=$(seconds_per_step bytes "${KJV_MODEL[@]}")
subword_sps=$(seconds_per_step subword "${KJV_MODEL[@]}" "${SUBWORD[@]}")
SUBWORD_STEPS=$(equal_time_steps "$STEPS" "$bytes_sps" "$subword_sps")
echo "bytes $bytes_sps s/step, subword $subword_sps s/step: $STEPS byte steps take as long as $SUBWORD_STEPS subword steps"

# 3. Train both.
echo "== train on bytes ($STEPS steps)"
kjv_train bytes "$STEPS" "$(warmup_of "$STEPS")" 500 "${KJV_MODEL[@]}"
echo "== train on $VOCAB subwords ($SUBWORD_STEPS steps)"
kjv_train subword "$SUBWORD_STEPS" "$(warmup_of "$SUBWORD_STEPS")" 500 "${KJV_MODEL[@]}" "${SUBWORD[@]}"

# 4. Both on the same held-out bytes, each at the length it was trained at (512 bytes; 512 pieces).
echo "== evaluate both on the held-out 5%"
"$TNN" eval --checkpoint "$OUT/bytes.safetensors" --label "bytes ($STEPS steps)" \
  --checkpoint "$OUT/subword.safetensors" --label "BPE $VOCAB ($SUBWORD_STEPS steps)" \
  "${KJV_HELDOUT[@]}" --threads "$THREADS"
