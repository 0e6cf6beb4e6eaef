#!/usr/bin/env bash
# End-to-end checks of `tnn train`'s handling of numerical faults, with its testing hooks
# --inject-nan-steps (NaN loss and gradient after the backward pass of the listed steps) and
# --inject-nan-grad-steps (NaN gradient only):
#  - a poisoned step is skipped (the weights come out byte-identical to before it), reported
#    on stderr, and the run completes;
#  - more poisoned steps than --max-bad-steps stop the run with exit 1 and one error line,
#    the checkpoint on disk is the last good one (byte-identical to a clean run stopped
#    there), no temporary file is left, and --resume from it finishes the run exactly as an
#    uninterrupted one would.
# Usage: train_faults.sh /path/to/tnn WORKDIR
set -euo pipefail
TNN=$1
WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"

for i in $(seq 1 1500); do
  echo "Line $i: a small corpus for the fault-handling checks, with some variety $((i * 7 % 13))."
done > corpus.txt

ARGS=(--data corpus.txt --dim 16 --layers 1 --rpe-dim 8 --seq-len 32 --batch 2 --steps 12 --warmup 2
      --eval-every 4 --eval-tokens 2000 --save-every 2 --log-every 1 --threads 1 --seed 5)

fail() { echo "FAIL: $*" >&2; exit 1; }
# The weights of a model file: every byte after its header (the header holds the step).
weights() { local n; n=$(od -An -tu8 -N8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1"; }
same_weights() { cmp -s <(weights "$1") <(weights "$2"); }

# Clean references: stopped after steps 2 and 4, and a full run.
"$TNN" train "${ARGS[@]}" --out clean2.safetensors --stop-after 2 2> clean2.log
"$TNN" train "${ARGS[@]}" --out clean4.safetensors --stop-after 4 2> clean4.log

# 1. Steps 3 and 4 poisoned: skipped and reported, the run completes.
"$TNN" train "${ARGS[@]}" --out skip.safetensors --inject-nan-steps 3,4 2> skip.log \
  || { cat skip.log >&2; fail "a run with two poisoned steps did not complete"; }
grep -q "^step 3: non-finite loss, update skipped (1 of at most 20)$" skip.log || fail "step 3 not reported: $(cat skip.log)"
grep -q "^step 4: non-finite loss, update skipped (2 of at most 20)$" skip.log || fail "step 4 not reported"
[ "$(grep -c 'non-finite' skip.log)" -eq 2 ] || fail "expected exactly 2 skipped steps: $(grep non-finite skip.log)"
grep -q "^done: 12 steps" skip.log || fail "the run did not finish"
echo "ok: poisoned steps 3 and 4 skipped and reported, the run completed"

# The skipped steps changed nothing: the weights after step 4 are those after step 2.
"$TNN" train "${ARGS[@]}" --out skip4.safetensors --inject-nan-steps 3,4 --stop-after 4 2> skip4.log
same_weights skip4.safetensors clean2.safetensors || fail "skipped steps changed the weights"
same_weights skip4.safetensors clean4.safetensors && fail "the reference runs do not differ: the check proves nothing"
echo "ok: the weights after two skipped steps are byte-identical to those before them"

# A non-finite gradient with a finite loss is skipped the same way.
"$TNN" train "${ARGS[@]}" --out grad4.safetensors --inject-nan-grad-steps 3,4 --stop-after 4 2> grad4.log
grep -q "^step 3: non-finite gradient, update skipped (1 of at most 20)$" grad4.log || fail "gradient fault not reported"
same_weights grad4.safetensors clean2.safetensors || fail "a skipped gradient fault changed the weights"
echo "ok: a non-finite gradient alone is skipped and reported as such"

# 2. Three poisoned steps against --max-bad-steps 2: stop with one error line.
set +e
"$TNN" train "${ARGS[@]}" --out div.safetensors --max-bad-steps 2 --inject-nan-steps 5,6,7 2> div.log
rc=$?
set -e
[ $rc -eq 1 ] || { cat div.log >&2; fail "expected exit code 1 after too many bad steps, got $rc"; }
[ "$(grep -c '^tnn: error:' div.log)" -eq 1 ] || fail "expected one error line: $(cat div.log)"
tail -n 1 div.log | grep -q "^tnn: error: training diverged: 3 steps with a non-finite loss or gradient (limit 2, see --max-bad-steps); the last good checkpoint is 'div.safetensors'$" \
  || fail "unexpected last line: $(tail -n 1 div.log)"
grep -q "^step 7: non-finite loss" div.log || fail "step 7 not reported"
ls ./*.tmp.* > /dev/null 2>&1 && fail "a temporary file was left behind: $(ls ./*.tmp.*)"
# The checkpoint is the last good state (saved at step 6; steps 5 and 6 skipped = step 4).
same_weights div.safetensors clean4.safetensors || fail "the checkpoint left on disk is not the last good state"
"$TNN" eval --checkpoint div.safetensors --data corpus.txt --seq-len 32 --max-bytes 2000 > /dev/null \
  || fail "the last good checkpoint does not load"
echo "ok: too many bad steps stop the run with one error line; the last good checkpoint is intact: $(tail -n 1 div.log | cut -c1-80)..."

# 3. Resuming from it (without the fault) ends exactly where an uninterrupted run with only
#    the two tolerated faults ends.
"$TNN" train "${ARGS[@]}" --out div.safetensors --max-bad-steps 2 --resume 2> resume.log \
  || { cat resume.log >&2; fail "resume after the stop failed"; }
grep -q "resuming '.*' at step 6 of 12" resume.log || fail "did not resume at step 6: $(head -n 2 resume.log)"
"$TNN" train "${ARGS[@]}" --out ref.safetensors --max-bad-steps 2 --inject-nan-steps 5,6 2> ref.log
cmp -s div.safetensors ref.safetensors || fail "resume after the stop differs from the uninterrupted run"
echo "ok: --resume after the stop completes, byte-identical to an uninterrupted run"
