#!/usr/bin/env bash
# End-to-end checks of sequence classification, run by ctest:
#  - tnn-listops is reproducible and its labels are the values of its expressions (checked by an
#    independent evaluator of LRA's text form, below in Python);
#  - `tnn train --task classify` learns a small task; `tnn eval` reports accuracy (text and
#    --json), and it equals the fraction of `tnn classify` answers that match the labels;
#  - `tnn classify` answers one label (as written in the training file) per stdin line; --json
#    adds probabilities that sum to 1;
#  - --stop-after + --resume is byte-identical to an uninterrupted run;
#  - refusals: a validation label the training file lacks, a line without a tab, an empty line
#    on classify's stdin, an LM checkpoint given to classify.
# Usage: classify.sh /path/to/tnn /path/to/tnn-listops WORKDIR
set -euo pipefail
TNN=$1
LISTOPS=$2
WORK=$3
. "$(dirname "$0")/lib.sh"
start_in "$WORK"

# 1. ListOps: same seed, same files; labels are the expressions' values.
"$LISTOPS" --out-dir lo1 --train 300 --valid 20 --test 20 --seed 5 > lo1.log
"$LISTOPS" --out-dir lo2 --train 300 --valid 20 --test 20 --seed 5 > lo2.log
for s in train valid test; do cmp lo1/$s.tsv lo2/$s.tsv || fail "tnn-listops --seed 5 is not reproducible ($s)"; done
"$LISTOPS" --out-dir lo3 --train 300 --valid 20 --test 20 --seed 6 > /dev/null
cmp -s lo1/train.tsv lo3/train.tsv && fail "tnn-listops: seeds 5 and 6 gave the same data"
"$LISTOPS" --out-dir lra --train 200 --valid 0 --test 0 --seed 5 --format lra > /dev/null
$PY - lo1 lra <<'EOF' || fail "ListOps labels or lengths are wrong"
import sys, statistics
def ev_lra(text):
    # LRA's text: "( ( ( [MAX 2 ) 9 ) ] )"; brackets are grouping only.
    stack = [[]]
    for tok in text.split():
        if tok in ("(", ")"):
            continue
        if tok.startswith("["):
            stack.append([tok])
        elif tok == "]":
            op, *args = stack.pop()
            v = {"[MAX": max, "[MIN": min, "[SM": lambda a: sum(a) % 10,
                 "[MED": lambda a: int(statistics.median(a))}[op](args)
            stack[-1].append(v)
        else:
            stack[-1].append(int(tok))
    assert len(stack) == 1 and len(stack[0]) == 1
    return stack[0][0]
def compact_to_lra(t):
    ops = {"X": "[MAX", "N": "[MIN", "D": "[MED", "S": "[SM"}
    return " ".join(ops.get(c, c) for c in t)
n = 0
for line in open(sys.argv[1] + "/train.tsv"):
    label, text = line.rstrip("\n").split("\t")
    assert 500 < len(text) < 2000, len(text)
    assert int(label) == ev_lra(compact_to_lra(text)), (label, text[:80])
    n += 1
for line in open(sys.argv[2] + "/train.tsv"):
    label, text = line.rstrip("\n").split("\t")
    assert int(label) == ev_lra(text)
    toks = [t for t in text.split() if t not in ("(", ")")]
    assert 500 < len(toks) < 2000
    n += 1
print(f"ok: {n} ListOps labels equal their expressions' values")
EOF

# 2. A small learnable task: the label is the kind of characters on the line.
$PY - <<'EOF'
import random
r = random.Random(3)
kinds = {"lower": "abcdefghij", "upper": "ABCDEFGHIJ", "digit": "0123456789"}
for name, n in (("train.tsv", 600), ("valid.tsv", 60), ("test.tsv", 90)):
    with open(name, "w") as f:
        for i in range(n):
            k = r.choice(sorted(kinds))
            f.write(k + "\t" + "".join(r.choice(kinds[k]) for _ in range(r.randint(3, 40))) + "\n")
EOF
ARGS=(--task classify --data train.tsv --valid valid.tsv --dim 16 --layers 1 --rpe-dim 8 --expand-ratio 2
      --seq-len 32 --batch 8 --steps 60 --warmup 5 --lr 5e-3 --eval-every 20 --log-every 10 --threads 2 --seed 4)
"$TNN" train "${ARGS[@]}" --out full.safetensors 2> full.log || { cat full.log >&2; fail "train --task classify"; }
grep -q "validation accuracy" full.log || { cat full.log >&2; fail "no validation accuracy in the training output"; }

# 3. eval: accuracy, text and JSON; classify agrees with it.
"$TNN" eval --checkpoint full.safetensors --data test.tsv > eval.txt
grep -q "^accuracy " eval.txt || fail "eval printed no accuracy: $(cat eval.txt)"
"$TNN" eval --checkpoint full.safetensors --data test.tsv --json > eval.json
cut -f2 test.tsv | "$TNN" classify --checkpoint full.safetensors > pred.txt
cut -f2 test.tsv | "$TNN" classify --checkpoint full.safetensors --json > pred.json
$PY - <<'EOF' || fail "eval / classify disagree or are wrong"
import json
ev = json.load(open("eval.json"))
labels = [l.split("\t")[0] for l in open("test.tsv").read().splitlines()]
pred = open("pred.txt").read().splitlines()
assert len(pred) == len(labels) == ev["examples"], (len(pred), len(labels), ev)
assert set(pred) <= {"lower", "upper", "digit"}, set(pred)
acc = sum(p == l for p, l in zip(pred, labels)) / len(labels)
assert abs(acc - ev["accuracy"]) < 1e-12, (acc, ev)
assert ev["accuracy"] >= 0.8, f"accuracy {ev['accuracy']} after 60 steps on an easy task"
rows = [json.loads(l) for l in open("pred.json")]
assert [r["label"] for r in rows] == pred
for r in rows:
    p = r["probabilities"]
    assert set(p) == {"lower", "upper", "digit"} and abs(sum(p.values()) - 1) < 1e-6
    assert max(p, key=p.get) == r["label"]
print(f"ok: eval accuracy {ev['accuracy']:.3f} over {ev['examples']} lines equals classify's; loss {ev['loss']:.3f}")
EOF

# 4. stop + resume is byte-identical.
stop_resume_is_identical classify 27

# 4b. eval on the training file: all of it was trained on (a separate --valid file), and it says so.
"$TNN" eval --checkpoint full.safetensors --data train.tsv > train_eval.txt
grep -q "^scoring all of 'train.tsv', which the model was trained on (nothing was held out)$" train_eval.txt \
  || fail "eval on the training file: $(cat train_eval.txt)"
grep -q "of 600)" train_eval.txt || fail "eval on the training file scored: $(cat train_eval.txt)"
"$TNN" eval --checkpoint full.safetensors --data train.tsv --json | grep -q '"scored":"training"' \
  || fail "eval --json on the training file: no scored: training"
echo "ok: eval on the training file says it was all trained on"

# 5. refusals, one line on stderr each, exit 1.
printf 'lower\tabc\nother\tzzz\n' > badvalid.tsv
expect_error "unknown validation label" "labels of the training data, got .other." \
  "$TNN" train "${ARGS[@]/valid.tsv/badvalid.tsv}" --out bad.safetensors
printf 'lower\tabc\nno tab on this line\n' > notab.tsv
expect_error "line without a tab" "line 2: expected label<TAB>text" \
  "$TNN" eval --checkpoint full.safetensors --data notab.tsv
expect_error "empty stdin line" "line 2: expected a text" \
  bash -c "printf 'abc\n\nxyz\n' | '$TNN' classify --checkpoint full.safetensors"
head -c 20000 /dev/urandom | base64 > lm.txt
"$TNN" train --data lm.txt --dim 8 --layers 1 --rpe-dim 4 --seq-len 16 --batch 2 --steps 2 --threads 1 \
  --out lm.safetensors 2> /dev/null
expect_error "LM checkpoint given to classify" "expected a classifier" \
  bash -c "echo abc | '$TNN' classify --checkpoint lm.safetensors"
printf '{"task": "lm", "dim": 8, "layers": 1}' > lmtask.json
expect_error "--config of task lm" "task is 'lm' but --task classify needs 'classify'" \
  "$TNN" train --task classify --data train.tsv --config lmtask.json --seq-len 64 --steps 1 --warmup 0 --out c2.safetensors
echo "ok: refusals"

# A --config without task, num_classes and pooling: the data gives the classes, the file's pooling wins.
printf '{"dim": 8, "layers": 1, "rpe_dim": 4, "pooling": "first"}' > nofirst.json
"$TNN" train --task classify --data train.tsv --config nofirst.json --seq-len 64 --batch 4 --steps 2 --threads 1 \
  --out first.safetensors 2> first.log || { cat first.log >&2; fail "train --config without task"; }
grep -q "first pooling" first.log || fail "the --config file's pooling was not used: $(grep model: first.log)"
echo "ok: --config without task"
echo "PASS"
