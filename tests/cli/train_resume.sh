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

# 3. SIGINT (Ctrl-C) and SIGTERM (what a batch scheduler sends) save and exit with
#    128 + the signal's number; --resume then completes identically.
interrupt_and_resume() {  # SIGNAL EXIT_CODE NAME
  local sig=$1 code=$2 name=$3 rc
  "$TNN" train "${ARGS[@]}" --steps $STEPS --out $name.safetensors --save-every 1000 2> ${name}1.log &
  local pid=$!
  for _ in $(seq 1 2000); do grep -q "step 5/" ${name}1.log 2>/dev/null && break; sleep 0.005; done
  kill -$sig $pid
  set +e
  wait $pid
  rc=$?
  set -e
  if [ $rc -eq 0 ]; then
    echo "note: the run finished before SIG$sig arrived"
  else
    [ $rc -eq $code ] || { cat ${name}1.log >&2; fail "SIG$sig: expected exit code $code, got $rc"; }
    grep -q "interrupted (SIG$sig): saved step" ${name}1.log || fail "SIG$sig: no save message"
    "$TNN" train "${ARGS[@]}" --steps $STEPS --out $name.safetensors --save-every 1000 --resume 2> ${name}2.log
  fi
  cmp full.safetensors $name.safetensors || fail "SIG$sig + resume differs from the uninterrupted run"
  echo "ok: SIG$sig saves, exits $code and resumes byte-identically"
}
interrupt_and_resume INT 130 int
interrupt_and_resume TERM 143 term

# 4. resuming with different settings is refused with one line on stderr
set +e
"$TNN" train "${ARGS[@]}" --steps $STEPS --out stop.safetensors --resume --lr 0.01 2> bad.log
rc=$?
set -e
[ $rc -ne 0 ] || fail "resume with a different --lr was accepted"
[ "$(wc -l < bad.log)" -eq 1 ] || { cat bad.log >&2; fail "expected one error line"; }
grep -q "^tnn: error: --resume: the settings differ" bad.log || fail "unexpected message: $(cat bad.log)"
echo "ok: mismatched resume refused: $(cut -c1-100 bad.log)"
