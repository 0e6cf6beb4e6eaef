#!/usr/bin/env bash
# The Long-Range Arena's ListOps on this machine: generate the data with tnn-listops
# (LRA's rules, 96,000 / 2,000 / 2,000 examples of 500-2,000 tokens, 10 classes, seeded), train a
# bidirectional TNN classifier with `tnn train --task classify`, and report its test accuracy
# beside the LRA table. Budget: about 30 minutes on 2 cores (STEPS scales it).
#   examples/listops_demo.sh [BIN_DIR] [OUT_DIR]      (BIN_DIR holds tnn and tnn-listops)
#   STEPS=N THREADS=T BATCH=B LR=X SEED=S examples/listops_demo.sh ...
#   MIXER=attention: the same recipe with softmax attention as the token mixer (4 heads of 16,
#   sinusoidal positions; 5 layers, for about the TNN's parameter count), LRA's Transformer baseline
set -euo pipefail
BIN=${1:-build/release/bin}
OUT=${2:-build/listops}
STEPS=${STEPS:-1500}
THREADS=${THREADS:-2}
BATCH=${BATCH:-16}
LR=${LR:-2e-3}
SEED=${SEED:-1}
MIXER=${MIXER:-tno}
mkdir -p "$OUT"
start=$(date +%s)

if [ ! -f "$OUT/data/test.tsv" ]; then
  "$BIN/tnn-listops" --out-dir "$OUT/data" --seed 1
fi
head -n 500 "$OUT/data/valid.tsv" > "$OUT/data/valid500.tsv"  # the learning curve; test is all 2,000

case "$MIXER" in
  # Keep in step with listops_config() in benchmarks/bench_classify.cpp.
  tno) cat > "$OUT/listops_config.json" <<'JSON'
{"dim": 64, "layers": 4, "heads": 1, "expand_ratio": 2, "glu_dim": 128, "rpe_dim": 32, "rpe_layers": 1,
 "decay": "learned", "gamma": 0.9, "pooling": "first"}
JSON
  ;;
  attention) cat > "$OUT/listops_config.json" <<'JSON'
{"dim": 64, "layers": 5, "heads": 4, "glu_dim": 128, "token_mixer": "attention", "positions": "sinusoidal",
 "pooling": "first"}
JSON
  ;;
  *) echo "listops_demo.sh: MIXER: expected tno or attention, got '$MIXER'" >&2; exit 2 ;;
esac

"$BIN/tnn" train --task classify --data "$OUT/data/train.tsv" --valid "$OUT/data/valid500.tsv" \
  --config "$OUT/listops_config.json" --seq-len 2000 --batch "$BATCH" --steps "$STEPS" --warmup $(( STEPS / 10 < 50 ? STEPS / 10 : 50 )) \
  --lr "$LR" --eval-every $((STEPS / 5 > 0 ? STEPS / 5 : 1)) --log-every 10 --threads "$THREADS" --seed "$SEED" \
  --out "$OUT/listops.safetensors" --force 2>&1 | tee "$OUT/train.log"

echo
echo "learning curve (validation, first 500 examples of valid.tsv):"
grep -o "step [0-9]*: validation accuracy .*" "$OUT/train.log" | sed 's/^/  /' || true

acc=$("$BIN/tnn" eval --checkpoint "$OUT/listops.safetensors" --data "$OUT/data/test.tsv" --batch 16 \
      --threads "$THREADS" --json)
echo
echo "test (2,000 examples): $acc"
python3 - "$acc" "$([ "$MIXER" = tno ] && echo TNN || echo attention)" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print()
print("| model (LRA ListOps, test accuracy) | accuracy |")
print("|---|---:|")
print("| Transformer (LRA paper)            | 36.4% |")
print("| TNN (paper)                        | 61.0% |")
print(f"| this run, {sys.argv[2]}".ljust(37) + f"| {100 * r['accuracy']:.1f}% |")
PY
echo "total time: $(( $(date +%s) - start )) s"
