#!/usr/bin/env bash
# End-to-end checks of regression in the program (`tnn train --task regress`, a TnnRegressor over
# float features), run by ctest:
#  - it learns a small causal task (the target at t is the first feature at t - 1): the test
#    error ends well below predicting the mean; `tnn eval` prints it (text and --json);
#  - eval on the training file scores only the held-out sequences; --stop-after + --resume is
#    byte-identical; `tnn grad` writes loss, logits [B, N, Fo] and every gradient;
#  - refusals (one line): a flag of another task, a file whose shapes disagree, a regressor
#    given to classify or generate.
# Usage: regress.sh /path/to/tnn WORKDIR
set -euo pipefail
TNN=$1
WORK=$2
. "$(dirname "$0")/lib.sh"
start_in "$WORK"

$PY - <<'EOF' || fail "could not write the data files"
import sys
import numpy as np
import safetensors_io as st
def make(m, seed):
    r = np.random.default_rng(seed)
    x = r.uniform(-1, 1, (m, 32, 2)).astype(np.float32)
    y = np.zeros((m, 32, 1), dtype=np.float32)
    y[:, 1:, 0] = x[:, :-1, 0]
    return x, y
x, y = make(200, 1)
st.save("train.safetensors", {"inputs": x, "targets": y})
x, y = make(40, 2)
st.save("test.safetensors", {"inputs": x, "targets": y})
st.save("batch.safetensors", {"inputs": x[:3].astype(np.float64), "targets": y[:3].astype(np.float64)})
st.save("bad.safetensors", {"inputs": x, "targets": y[:, :16]})
print(f"ok: data written; predicting the mean scores about {float(np.var(y)):.3f}")
EOF

ARGS=(--task regress --data train.safetensors --dim 16 --layers 1 --rpe-dim 8 --batch 8 --steps 200 --warmup 5
      --lr 5e-3 --eval-every 100 --log-every 10 --threads 1 --seed 2)
"$TNN" train "${ARGS[@]}" --out full.safetensors 2> full.log || { cat full.log >&2; fail "train --task regress"; }
grep -q "causal regressor, 2 -> 1 features); data: 190 train / 10 valid sequences of 32" full.log \
  || fail "model line: $(grep model: full.log)"
grep -q "^step 200: validation mean squared error" full.log || fail "no validation line at step 200"

"$TNN" eval --checkpoint full.safetensors --data test.safetensors > eval.txt
grep -q "^mean squared error [0-9.e-]* (40 sequences, 1280 values)$" eval.txt || fail "eval text: $(cat eval.txt)"
"$TNN" eval --checkpoint full.safetensors --data test.safetensors --json > eval.json
"$TNN" eval --checkpoint full.safetensors --data train.safetensors --json > held.json
$PY - <<'EOF' || fail "eval numbers"
import json
e, h = json.load(open("eval.json")), json.load(open("held.json"))
assert e["scored"] == "all" and e["sequences"] == 40 and e["values"] == 1280, e
assert h["scored"] == "held-out" and h["sequences"] == 10, h
assert e["mse"] < 0.05, f"mean squared error {e['mse']}: expected well below the mean's (about 0.33)"
print(f"ok: test mean squared error {e['mse']:.4f}; on the training file only its 10 held-out sequences")
EOF

stop_resume_is_identical regress 73

"$TNN" grad --checkpoint full.safetensors --inputs batch.safetensors --out grad.safetensors --dtype f64
check_grad_output full.safetensors grad.safetensors 3,32,1

expect_error "--seq-len for a regressor" "--seq-len: applies to tasks lm and classify only, not to --task regress" \
  "$TNN" train "${ARGS[@]}" --out x.safetensors --seq-len 16
expect_error "shapes that disagree" "expected inputs \[M, N, F\] and targets \[M, N, Fo\]" \
  "$TNN" train --task regress --data bad.safetensors --out x.safetensors
expect_error "a regressor given to classify" "expected a classifier checkpoint (task classify or image), got a regressor" \
  bash -c "echo abc | '$TNN' classify --checkpoint full.safetensors"
expect_error "a regressor given to generate" "expected a causal language model, got a regressor" \
  "$TNN" generate --checkpoint full.safetensors
echo "ok: refusals"
echo "PASS"
