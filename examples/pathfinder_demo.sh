#!/usr/bin/env bash
# The Long-Range Arena's Pathfinder on this machine: generate the images with tnn-pathfinder
# (32 x 32, two dashed paths, markers, distractors; label: are the markers connected), then
#  - a 2-D TNN over the image (`tnn train --task image`, PATCH x PATCH pixels per token), and
#  - a 1-D TNN over the 1,024 pixels in a row (the --flat files: a 1 x 1024 grid with
#    --patch-size 1, where the 2-D Toeplitz product is the 1-D one), LRA's own setting,
# with the same width, depth, steps and seed; both evaluated on the held-out test images.
#   examples/pathfinder_demo.sh [BIN_DIR] [OUT_DIR]      (BIN_DIR holds tnn and tnn-pathfinder)
#   TRAIN=N VALID=N TEST=N DIFFICULTY=hard STEPS=N BATCH=B LR=X DIM=D LAYERS=L PATCH=P \
#     GAMMA=G POOLING=max|mean THREADS=T SEED=S examples/pathfinder_demo.sh ...
# Defaults: LRA's 160,000 training and 20,000 test images (validation: 2,000, to keep the
# learning curve cheap); 2 x 2 patches, 4 layers of D 32, learned decay down to 0.5 and max
# pooling (the mean dilutes a path's few pixels among the grid's 256 positions).
# A smoke run (a few minutes): TRAIN=2000 VALID=200 TEST=400 STEPS=30 examples/pathfinder_demo.sh
set -euo pipefail
BIN=${1:-build/release/bin}
OUT=${2:-build/pathfinder}
TRAIN=${TRAIN:-160000}
VALID=${VALID:-2000}
TEST=${TEST:-20000}
DIFFICULTY=${DIFFICULTY:-hard}
STEPS=${STEPS:-2000}
BATCH=${BATCH:-32}
LR=${LR:-2e-3}
DIM=${DIM:-32}
LAYERS=${LAYERS:-4}
PATCH=${PATCH:-2}
GAMMA=${GAMMA:-0.5}
POOLING=${POOLING:-max}
THREADS=${THREADS:-2}
SEED=${SEED:-1}
mkdir -p "$OUT"
start=$(date +%s)

# The same images twice: [M, 32, 32, 1] for the 2-D model, [M, 1, 1024, 1] for the 1-D one.
GEN=(--train "$TRAIN" --valid "$VALID" --test "$TEST" --difficulty "$DIFFICULTY" --seed 1 --threads "$THREADS")
[ -f "$OUT/data2d/test.safetensors" ] || "$BIN/tnn-pathfinder" --out-dir "$OUT/data2d" "${GEN[@]}"
[ -f "$OUT/data1d/test.safetensors" ] || "$BIN/tnn-pathfinder" --out-dir "$OUT/data1d" "${GEN[@]}" --flat

COMMON=(--task image --dim "$DIM" --layers "$LAYERS" --rpe-dim 16 --decay learned --gamma "$GAMMA" --pooling "$POOLING" --batch "$BATCH"
        --steps "$STEPS" --warmup $((STEPS / 20 > 0 ? STEPS / 20 : 1)) --lr "$LR"
        --eval-every $((STEPS / 5 > 0 ? STEPS / 5 : 1)) --log-every 10 --threads "$THREADS" --seed "$SEED" --force)
run() {  # NAME DATA_DIR PATCH
  local name=$1 data=$2 patch=$3
  echo "== $name: --patch-size $patch, dim $DIM, $LAYERS layers, $STEPS steps of $BATCH images"
  "$BIN/tnn" train "${COMMON[@]}" --data "$data/train.safetensors" --valid "$data/valid.safetensors" \
    --patch-size "$patch" --out "$OUT/$name.safetensors" 2>&1 | tee "$OUT/$name.log"
  "$BIN/tnn" eval --checkpoint "$OUT/$name.safetensors" --data "$data/test.safetensors" --threads "$THREADS" \
    --json > "$OUT/$name.test.json"
}
run tnn2d "$OUT/data2d" "$PATCH"
run tnn1d "$OUT/data1d" 1

echo
for name in tnn2d tnn1d; do
  echo "$name learning curve (validation):"
  grep -o "step [0-9]*: validation accuracy .*" "$OUT/$name.log" | sed 's/^/  /' || true
done
python3 - "$OUT/tnn2d.test.json" "$OUT/tnn1d.test.json" "$PATCH" "$DIFFICULTY" <<'PY'
import json, sys
r2, r1 = (json.load(open(p)) for p in sys.argv[1:3])
print()
print(f"| model (Pathfinder-32, {sys.argv[4]}, test accuracy) | accuracy |")
print("|---|---:|")
print("| Transformer (LRA paper)                 | 71.4% |")
print("| TNN (paper)                             | 93.0% |")
print(f"| 2-D TNN, {sys.argv[3]}x{sys.argv[3]} patches, this run         | {100 * r2['accuracy']:.1f}% ({r2['examples']} images) |")
print(f"| 1-D TNN over 1,024 pixels, this run     | {100 * r1['accuracy']:.1f}% ({r1['examples']} images) |")
PY
echo "total time: $(( $(date +%s) - start )) s"
