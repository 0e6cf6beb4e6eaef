#!/usr/bin/env bash
# End-to-end checks of image classification in the program, run by ctest:
#  - `tnn train --task image` learns a small generated task from a U8 image file, and the same
#    images stored as I32 give a byte-identical model;
#  - `tnn eval` reports accuracy (text and --json), equal to the fraction of `tnn classify
#    --images` answers that match the labels; classify answers the checkpoint's class names,
#    needs no labels, and --json adds probabilities that sum to 1;
#  - --stop-after + --resume is byte-identical to an uninterrupted run; SIGTERM saves, exits
#    143, and the run resumes; the default held-out split (--valid-fraction) trains too;
#  - `tnn grad` on an image checkpoint writes loss, logits [B, K] and every grad.<name>;
#  - refusals (one line, non-zero exit): float pixels in an image file, images of another size
#    than the checkpoint's, a label the model does not have, a missing 'labels' tensor, pixels
#    above 255, a text file as image data, a patch size that does not divide the image, an LM
#    checkpoint given where an image classifier is expected (classify, eval, resume), an image
#    checkpoint given to classify without --images or to generate.
# Usage: image.sh /path/to/tnn WORKDIR
set -euo pipefail
TNN=$1
WORK=$2
. "$(dirname "$0")/lib.sh"
start_in "$WORK"

# 1. Data: 6 x 4 images, 2 channels, 3 classes by where the bright half is (top, bottom, left);
#    the validation labels are 25% wrong, so accuracy is well below 1 and eval/classify can differ.
$PY - <<'EOF' || fail "could not write the image files"
import json, sys
import numpy as np
import safetensors_io as st
def make(n, seed):
    r = np.random.default_rng(seed)
    labels = r.integers(0, 3, n).astype(np.int32)
    img = r.integers(0, 90, (n, 6, 4, 2))
    for i, l in enumerate(labels):
        if l == 0: img[i, :3] += 120
        elif l == 1: img[i, 3:] += 120
        else: img[i, :, :2] += 120
    return img, labels
meta = {"tnn.labels": json.dumps(["top", "bottom", "left"])}
img, lab = make(240, 1)
st.save("train.safetensors", {"images": img.astype(np.uint8), "labels": lab}, meta)
st.save("train_i32.safetensors", {"images": img.astype(np.int32), "labels": lab}, meta)
img, lab = make(80, 2)
flip = np.random.default_rng(3).random(80) < 0.25
lab[flip] = (lab[flip] + 1) % 3
st.save("valid.safetensors", {"images": img.astype(np.uint8), "labels": lab}, meta)
st.save("nolabels.safetensors", {"images": img.astype(np.uint8)})
st.save("float.safetensors", {"images": img.astype(np.float32), "labels": lab})
st.save("transposed.safetensors", {"images": img.transpose(0, 2, 1, 3).copy().astype(np.uint8), "labels": lab})
st.save("nolabel_train.safetensors", {"images": img.astype(np.uint8)})
big = img.astype(np.int32); big[0, 0, 0, 0] = 300
st.save("big.safetensors", {"images": big, "labels": lab})
lab4 = lab.copy(); lab4[5] = 3
st.save("label3.safetensors", {"images": img.astype(np.uint8), "labels": lab4})
r = np.random.default_rng(4)
st.save("batch.safetensors", {"images": r.random((3, 6, 4, 2)).astype(np.float32),
                              "labels": np.array([0, 2, 1], dtype=np.int32)})
EOF

# 2. Training: U8 and I32 pixels give the same model.
COMMON=(--task image --data train.safetensors --valid valid.safetensors --dim 16 --layers 1 --rpe-dim 8
        --patch-size 2 --batch 16 --lr 1e-2 --warmup 4 --seed 3 --threads 1)
ARGS=("${COMMON[@]}" --steps 40 --eval-every 20)
"$TNN" train "${ARGS[@]}" --out full.safetensors 2> full.log || { cat full.log >&2; fail "train --task image"; }
grep -q "image classifier, 6x4x2 images, 2x2 patches (a 3x2 grid), 3 classes" full.log || fail "model line: $(grep model: full.log)"
grep -q "step 40: validation accuracy" full.log || fail "no validation line at step 40"
"$TNN" train "${ARGS[@]/train.safetensors/train_i32.safetensors}" --out i32.safetensors 2> i32.log ||
  { cat i32.log >&2; fail "train --task image on I32 pixels"; }
# The weights: every byte after the header (which records each file's own size and hash).
weights() { local n; n=$(od -An -tu8 -N8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1"; }
cmp <(weights full.safetensors) <(weights i32.safetensors) || fail "U8 and I32 pixels gave different models"
echo "ok: train --task image (U8 = I32 pixels)"

# 3. eval: accuracy, text and JSON; classify agrees with it.
"$TNN" eval --checkpoint full.safetensors --data valid.safetensors > eval.txt
grep -q "^accuracy 0\.[0-9]* ([0-9]* of 80 images), loss" eval.txt || fail "eval text: $(cat eval.txt)"
"$TNN" eval --checkpoint full.safetensors --data valid.safetensors --json > eval.json
"$TNN" classify --checkpoint full.safetensors --images valid.safetensors > pred.txt
"$TNN" classify --checkpoint full.safetensors --images valid.safetensors --json > pred.json
"$TNN" classify --checkpoint full.safetensors --images nolabels.safetensors --batch 7 > pred_nolabels.txt
cmp pred.txt pred_nolabels.txt || fail "classify: a file without labels (batch 7) gave other answers"
$PY - <<'EOF' || fail "eval / classify disagree or are wrong"
import json, sys
import safetensors_io as st
names = ["top", "bottom", "left"]
labels = [names[int(l)] for l in st.load("valid.safetensors")[0]["labels"]]
ev = json.load(open("eval.json"))
pred = open("pred.txt").read().split("\n")[:-1]
assert len(pred) == len(labels) == ev["examples"] == 80, (len(pred), ev)
correct = sum(p == l for p, l in zip(pred, labels))
assert correct == ev["correct"], (correct, ev)
assert abs(ev["accuracy"] - correct / 80) < 1e-12, ev
assert 0.5 <= ev["accuracy"] < 1.0, f"accuracy {ev['accuracy']}: expected about 0.75 (25% of the labels are wrong)"
for line, p in zip(open("pred.json"), pred):
    r = json.loads(line)
    assert r["label"] == p
    q = r["probabilities"]
    assert set(q) == set(names) and abs(sum(q.values()) - 1) < 1e-6 and max(q, key=q.get) == p
print(f"ok: eval accuracy {ev['accuracy']:.3f} over 80 images equals classify's; loss {ev['loss']:.3f}")
EOF

# 4. stop + resume is byte-identical; SIGTERM saves and the run resumes; the default split.
stop_resume_is_identical image 17
"$TNN" train "${COMMON[@]}" --steps 1000000 --eval-every 0 --log-every 1 --out term.safetensors 2> term.log &
pid=$!
for _ in $(seq 1 200); do grep -q "^step [0-9]*/" term.log 2>/dev/null && break; sleep 0.05; done
kill -TERM $pid
set +e; wait $pid; rc=$?; set -e
[ $rc -eq 143 ] || fail "SIGTERM: expected exit 143, got $rc ($(tail -1 term.log))"
grep -q "interrupted (SIGTERM): saved step" term.log || fail "SIGTERM: no 'interrupted' line"
saved=$(sed -n 's/.*interrupted (SIGTERM): saved step \([0-9]*\).*/\1/p' term.log)
"$TNN" train "${COMMON[@]}" --steps 1000000 --eval-every 0 --out term.safetensors --resume --stop-after $((saved + 2)) \
  2> term2.log || fail "SIGTERM: resume failed: $(cat term2.log)"
grep -q "resuming '.*' at step $saved of 1000000" term2.log || fail "SIGTERM: did not resume at step $saved: $(cat term2.log)"
grep -q "stopped after step $((saved + 2))" term2.log || fail "SIGTERM: the resumed run did not continue"
"$TNN" train --task image --data train.safetensors --dim 8 --layers 1 --rpe-dim 4 --steps 4 --batch 8 --eval-every 2 \
  --valid-fraction 0.1 --threads 1 --out split.safetensors 2> split.log || { cat split.log >&2; fail "default split"; }
grep -q "216 train / 24 valid images" split.log || fail "default split: $(grep model: split.log)"
"$TNN" eval --checkpoint split.safetensors --data train.safetensors > split_eval.txt
grep -q "of 24 images" split_eval.txt && grep -q "^scoring only its held-out last 10% of examples of 'train.safetensors', the model's training file: 24 examples" split_eval.txt \
  || fail "eval on the training file: $(cat split_eval.txt)"
"$TNN" eval --checkpoint split.safetensors --data train.safetensors --all 2> /dev/null | grep -q "of 240 images" \
  || fail "eval --all on the training file"
echo "ok: SIGTERM, resume after it, the held-out split (and eval of only that part of the training file)"

# 5. tnn grad on an image checkpoint.
"$TNN" grad --checkpoint full.safetensors --inputs batch.safetensors --out grad.safetensors --dtype f64
check_grad_output full.safetensors grad.safetensors 3,3

# 6. Refusals, one line on stderr each, non-zero exit.
expect_error "float pixels" "tensor 'images': expected dtype U8 (or I32), got F32" \
  "$TNN" eval --checkpoint full.safetensors --data float.safetensors
expect_error "images of another size" "expected images of 6 x 4 pixels x 2 channels" \
  "$TNN" classify --checkpoint full.safetensors --images transposed.safetensors
expect_error "images of another size (eval)" "expected images of 6 x 4 pixels" \
  "$TNN" eval --checkpoint full.safetensors --data transposed.safetensors
expect_error "label out of range" "expected class ids 0..2 (the model's num_classes 3), got 3 at 5" \
  "$TNN" eval --checkpoint full.safetensors --data label3.safetensors
expect_error "label out of range (validation)" "expected class ids 0..2" \
  "$TNN" train "${ARGS[@]/valid.safetensors/label3.safetensors}" --out bad.safetensors
expect_error "no labels for eval" "expected a tensor 'labels', it is missing" \
  "$TNN" eval --checkpoint full.safetensors --data nolabels.safetensors
expect_error "no labels for train" "expected a tensor 'labels', it is missing" \
  "$TNN" train --task image --data nolabel_train.safetensors --out bad.safetensors --steps 2 --warmup 0
expect_error "pixels above 255" "expected pixel values 0..255, got 300" \
  "$TNN" eval --checkpoint full.safetensors --data big.safetensors
printf 'not an image file\n' > text.txt
expect_error "text as image data" "not a safetensors file" \
  "$TNN" train --task image --data text.txt --out bad.safetensors --steps 2 --warmup 0
expect_error "patch size" "expected a divisor of image_height and image_width" \
  "$TNN" train --task image --data train.safetensors --patch-size 3 --out bad.safetensors --steps 2 --warmup 0
expect_error "image checkpoint without --images" "is an image classifier: expected --images FILE" \
  "$TNN" classify --checkpoint full.safetensors
expect_error "image checkpoint to generate" "expected a causal language model, got an image classifier" \
  "$TNN" generate --checkpoint full.safetensors
expect_error "u8 batch for grad" "tensor 'images': expected dtype F32 or F64" \
  "$TNN" grad --checkpoint full.safetensors --inputs valid.safetensors --out g2.safetensors
head -c 20000 /dev/urandom | base64 > lm.txt
"$TNN" train --data lm.txt --dim 8 --layers 1 --rpe-dim 4 --seq-len 16 --batch 2 --steps 2 --threads 1 \
  --out lm.safetensors 2> /dev/null
expect_error "LM checkpoint given as image classifier" "--images: applies to task image only, not to checkpoint 'lm.safetensors' (task lm)" \
  "$TNN" classify --checkpoint lm.safetensors --images valid.safetensors
cp lm.safetensors lmrun.safetensors
cp lm.optim.safetensors lmrun.optim.safetensors
expect_error "LM checkpoint resumed as image" "is not an image classifier (task 'lm')" \
  "$TNN" train --task image --data train.safetensors --out lmrun.safetensors --resume --steps 2 --warmup 0
expect_error "LM batch for an image checkpoint" "expected a tensor named 'images'" \
  "$TNN" grad --checkpoint full.safetensors --inputs lm.safetensors --out g3.safetensors
echo "ok: refusals"
echo "PASS"
