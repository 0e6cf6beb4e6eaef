#!/usr/bin/env bash
# The TNN text classifier against TF-IDF + logistic regression on held-out tasks built from
# Debian's texts (benchmarks/text_tasks.py: KJV books, licenses, man-page sections): the
# baselines (benchmarks/text_baseline.py, tuned on valid), then for each task
# `tnn train --task classify` on train.tsv (validating on valid.tsv) and `tnn eval` on test.tsv,
# printed as one markdown table.
#   benchmarks/text_classify_compare.sh [BIN_DIR] [OUT_DIR]     (BIN_DIR holds tnn)
# Environment:
#   TASKS            tasks for the baselines (default kjv_book,license,man_section)
#   TNN_TASKS        tasks tnn trains on (default: TASKS)
#   TNN_TRAIN_FLAGS  extra `tnn train` flags (default none: the program's default recipe),
#                    e.g. "--steps 300 --dim 64 --layers 2"
#   THREADS          threads for tnn (default 2)
#   LENGTH           snippet length in bytes for text_tasks.py (default 256)
#   BASELINE=1       run the baselines again instead of reusing OUT/baseline.json
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-build/release/bin}
OUT=${2:-build/text_classify}
TASKS=${TASKS:-kjv_book,license,man_section}
TNN_TASKS=${TNN_TASKS:-$TASKS}
TNN_TRAIN_FLAGS=${TNN_TRAIN_FLAGS:-}
THREADS=${THREADS:-2}
LENGTH=${LENGTH:-256}
PY=/usr/bin/python3  # Debian's python3-sklearn
mkdir -p "$OUT"
start=$(date +%s)

missing=()
for t in ${TASKS//,/ } ${TNN_TASKS//,/ }; do [ -f "$OUT/data/$t/test.tsv" ] || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  tasks=$(printf '%s\n' "${missing[@]}" | sort -u | paste -sd, -)
  "$PY" "$here/text_tasks.py" "$OUT/data" --length "$LENGTH" --tasks "$tasks"
fi

# The baselines take minutes (CPU-bound scikit-learn fits): kept in baseline.json and reused
# while it covers TASKS; BASELINE=1 runs them again.
if [ "${BASELINE:-0}" = 1 ] || ! "$PY" -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if all(t in r for t in sys.argv[2].split(",")) else 1)' \
     "$OUT/baseline.json" "$TASKS" 2>/dev/null; then
  echo "== baselines (TF-IDF + logistic regression, tuned on valid)"
  "$PY" "$here/text_baseline.py" "$OUT/data" --tasks "$TASKS" --json "$OUT/baseline.json"
else
  echo "== baselines: reusing $OUT/baseline.json (BASELINE=1 runs them again)"
fi

read -r -a extra <<< "$TNN_TRAIN_FLAGS"
for t in ${TNN_TASKS//,/ }; do
  echo "== tnn on $t: tnn train --task classify ${extra[*]}"
  t0=$(date +%s)
  "$BIN/tnn" train --task classify --data "$OUT/data/$t/train.tsv" --valid "$OUT/data/$t/valid.tsv" \
    --threads "$THREADS" --out "$OUT/$t.safetensors" --force "${extra[@]}" 2>&1 | tee "$OUT/$t.train.log" | grep -E "^model:|validation accuracy|^done"
  "$BIN/tnn" eval --checkpoint "$OUT/$t.safetensors" --data "$OUT/data/$t/test.tsv" --threads "$THREADS" --json \
    > "$OUT/$t.tnn.json"
  echo "{\"seconds\": $(( $(date +%s) - t0 ))}" > "$OUT/$t.time.json"
done

"$PY" - "$OUT" "$TASKS" "$TNN_TASKS" "$TNN_TRAIN_FLAGS" <<'PY'
import json, os, sys
out, tasks, tnn_tasks, flags = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(","), sys.argv[4]
base = json.load(open(os.path.join(out, "baseline.json")))
print()
print(f"| task | classes | test | majority | word TF-IDF + LR | char 3-5 TF-IDF + LR | tnn ({flags or 'default recipe'}) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for t in dict.fromkeys(tasks + tnn_tasks):
    b = base.get(t)
    cells = [t]
    if b:
        cells += [str(b["classes"]), str(b["sizes"][2]), f"{100 * b['majority']:.1f}%", f"{100 * b['word']['test']:.1f}%",
                  f"{100 * b['char']['test']:.1f}%"]
    else:
        cells += ["", "", "", "", ""]
    p = os.path.join(out, f"{t}.tnn.json")
    if t in tnn_tasks and os.path.exists(p):
        r = json.load(open(p))
        secs = json.load(open(os.path.join(out, f"{t}.time.json")))["seconds"]
        cells.append(f"{100 * r['accuracy']:.1f}% ({secs} s)")
    else:
        cells.append("not run")
    print("| " + " | ".join(cells) + " |")
PY
echo "total time: $(( $(date +%s) - start )) s"
