#!/usr/bin/env bash
# End-to-end checks of `tnn train` fault tolerance, run by ctest:
#  - --stop-after + --resume gives a model byte-identical to an uninterrupted run;
#  - SIGKILL at an arbitrary moment (possibly mid-save), then --resume: identical too;
#  - SIGINT (SIGTERM) saves and exits with 130 (143), and --resume completes identically.
# Usage: train_resume.sh /path/to/tnn WORKDIR
set -euo pipefail
TNN=$1
WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"

# A deterministic little corpus.
for i in $(seq 1 3000); do
  echo "Verse $i: and the word was spoken unto the people, and they heard it in the day $((i % 7))."
done > corpus.txt

ARGS=(--data corpus.txt --dim 16 --layers 1 --rpe-dim 8 --expand-ratio 2 --seq-len 64 --batch 2
      --warmup 2 --eval-every 5 --eval-tokens 4000 --log-every 5 --threads 2 --seed 9)
STEPS=30

"$TNN" train "${ARGS[@]}" --steps $STEPS --out full.safetensors 2> full.log

fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. stop and resume
"$TNN" train "${ARGS[@]}" --steps $STEPS --out stop.safetensors --stop-after 13 2> stop1.log
grep -q "stopped after step 13" stop1.log || fail "--stop-after did not stop at 13"
"$TNN" train "${ARGS[@]}" --steps $STEPS --out stop.safetensors --resume 2> stop2.log
cmp full.safetensors stop.safetensors || fail "stop + resume differs from the uninterrupted run"
cmp full.optim.safetensors stop.optim.safetensors || fail "stop + resume: training state differs"
echo "ok: stop + resume is byte-identical"

# 2. SIGKILL while saving every step, then resume
"$TNN" train "${ARGS[@]}" --steps $STEPS --save-every 1 --out kill.safetensors 2> kill1.log &
pid=$!
for _ in $(seq 1 2000); do [ -f kill.optim.safetensors ] && break; sleep 0.005; done
sleep 0.0$((RANDOM % 9 + 1))
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
ls kill.optim.safetensors > /dev/null || fail "no training state was saved before the kill"
"$TNN" train "${ARGS[@]}" --steps $STEPS --save-every 1 --out kill.safetensors --resume 2> kill2.log \
  || { cat kill2.log >&2; fail "resume after SIGKILL failed"; }
cmp full.safetensors kill.safetensors || fail "SIGKILL + resume differs from the uninterrupted run"
echo "ok: SIGKILL + resume is byte-identical ($(grep -o 'resuming.*' kill2.log))"

# 3. SIGINT saves and exits cleanly
"$TNN" train "${ARGS[@]}" --steps $STEPS --out int.safetensors --save-every 1000 2> int1.log &
pid=$!
for _ in $(seq 1 2000); do grep -q "step 5/" int1.log 2>/dev/null && break; sleep 0.005; done
kill -INT $pid
set +e
wait $pid
rc=$?
set -e
if [ $rc -eq 0 ]; then
  echo "note: the run finished before SIGINT arrived"
else
  [ $rc -eq 130 ] || { cat int1.log >&2; fail "SIGINT: expected exit code 130, got $rc"; }
  grep -q "interrupted (SIGINT): saved step" int1.log || fail "SIGINT: no save message"
  "$TNN" train "${ARGS[@]}" --steps $STEPS --out int.safetensors --save-every 1000 --resume 2> int2.log
fi
cmp full.safetensors int.safetensors || fail "SIGINT + resume differs from the uninterrupted run"
echo "ok: SIGINT saves, exits 130 and resumes byte-identically"

# 3b. SIGTERM (what a batch scheduler sends) does the same, with exit code 143
"$TNN" train "${ARGS[@]}" --steps $STEPS --out term.safetensors --save-every 1000 2> term1.log &
pid=$!
for _ in $(seq 1 2000); do grep -q "step 5/" term1.log 2>/dev/null && break; sleep 0.005; done
kill -TERM $pid
set +e
wait $pid
rc=$?
set -e
if [ $rc -eq 0 ]; then
  echo "note: the run finished before SIGTERM arrived"
else
  [ $rc -eq 143 ] || { cat term1.log >&2; fail "SIGTERM: expected exit code 143, got $rc"; }
  grep -q "interrupted (SIGTERM): saved step" term1.log || fail "SIGTERM: no save message"
  "$TNN" train "${ARGS[@]}" --steps $STEPS --out term.safetensors --save-every 1000 --resume 2> term2.log
fi
cmp full.safetensors term.safetensors || fail "SIGTERM + resume differs from the uninterrupted run"
echo "ok: SIGTERM saves, exits 143 and resumes byte-identically"

# 4. resuming with different settings is refused with one line on stderr
set +e
"$TNN" train "${ARGS[@]}" --steps $STEPS --out stop.safetensors --resume --lr 0.01 2> bad.log
rc=$?
set -e
[ $rc -ne 0 ] || fail "resume with a different --lr was accepted"
[ "$(wc -l < bad.log)" -eq 1 ] || { cat bad.log >&2; fail "expected one error line"; }
grep -q "^tnn: error: --resume: the settings differ" bad.log || fail "unexpected message: $(cat bad.log)"
echo "ok: mismatched resume refused: $(cut -c1-100 bad.log)"
