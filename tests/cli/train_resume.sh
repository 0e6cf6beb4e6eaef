#!/usr/bin/env bash
# End-to-end checks of `tnn train` fault tolerance and resume, run by ctest:
#  - --stop-after + --resume gives a model byte-identical to an uninterrupted run, also when the
#    resumed run repeats none of its flags (--resume takes the saved run's settings);
#  - SIGKILL at an arbitrary moment (possibly mid-save), then --resume: identical too;
#  - SIGINT (SIGTERM) saves and exits with 130 (143), and --resume completes identically; the
#    run waits for the signal after step 5 (the hidden --pause-at-step), so it cannot end first;
#  - --resume --steps N extends a finished run (at --min-lr) or an interrupted one (the cosine
#    schedule re-stretched from where it was, without a jump), and refuses fewer steps than done;
#  - resuming with different settings is refused with one line.
# Usage: train_resume.sh /path/to/tnn WORKDIR
set -euo pipefail
TNN=$1
WORK=$2
. "$(dirname "$0")/lib.sh"
start_in "$WORK"

# A deterministic little corpus.
for i in $(seq 1 3000); do
  echo "Verse $i: and the word was spoken unto the people, and they heard it in the day $((i % 7))."
done > corpus.txt

BASE=(--data corpus.txt --dim 16 --layers 1 --rpe-dim 8 --expand-ratio 2 --seq-len 64 --batch 2
      --warmup 2 --eval-every 5 --eval-tokens 4000 --threads 2 --seed 9)
ARGS=("${BASE[@]}" --log-every 5)
STEPS=30

"$TNN" train "${ARGS[@]}" --steps $STEPS --out full.safetensors 2> full.log


# 1. stop and resume; the second resume gives no flag but the files and the threads
"$TNN" train "${ARGS[@]}" --steps $STEPS --out stop.safetensors --stop-after 13 2> stop1.log
grep -q "stopped after step 13" stop1.log || fail "--stop-after did not stop at 13"
"$TNN" train "${ARGS[@]}" --steps $STEPS --out stop.safetensors --resume 2> stop2.log
cmp full.safetensors stop.safetensors || fail "stop + resume differs from the uninterrupted run"
cmp full.optim.safetensors stop.optim.safetensors || fail "stop + resume: training state differs"
"$TNN" train "${ARGS[@]}" --steps $STEPS --out bare.safetensors --stop-after 13 2> bare1.log
"$TNN" train --data corpus.txt --out bare.safetensors --resume --threads 2 2> bare2.log \
  || { cat bare2.log >&2; fail "--resume without the run's flags failed"; }
grep -q "resuming '.*' at step 13 of $STEPS$" bare2.log || fail "bare resume: $(grep resuming bare2.log)"
cmp full.safetensors bare.safetensors || fail "a resume that repeats no flag differs from the uninterrupted run"
echo "ok: stop + resume is byte-identical (repeating the flags or not)"

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
#    128 + the signal's number; --resume then completes identically. --pause-at-step 5 holds
#    the run after step 5 until the signal comes (60 s at most, then it fails), so the signal
#    always arrives during training.
interrupt_and_resume() {  # SIGNAL EXIT_CODE NAME
  local sig=$1 code=$2 name=$3 rc
  "$TNN" train "${ARGS[@]}" --steps $STEPS --out $name.safetensors --save-every 1000 --pause-at-step 5 \
    2> ${name}1.log &
  local pid=$!
  for _ in $(seq 1 4000); do grep -q "^step 5/" ${name}1.log 2>/dev/null && break; sleep 0.01; done
  grep -q "^step 5/" ${name}1.log || { kill -9 $pid; fail "SIG$sig: the run never reached step 5"; }
  kill -$sig $pid
  set +e
  wait $pid
  rc=$?
  set -e
  [ $rc -eq $code ] || { cat ${name}1.log >&2; fail "SIG$sig: expected exit code $code, got $rc"; }
  grep -q "interrupted (SIG$sig): saved step 5 to" ${name}1.log || fail "SIG$sig: no save message at step 5"
  cmp -s full.safetensors $name.safetensors && fail "SIG$sig: the interrupted run equals the full one already"
  "$TNN" train "${ARGS[@]}" --steps $STEPS --out $name.safetensors --save-every 1000 --resume 2> ${name}2.log
  cmp full.safetensors $name.safetensors || fail "SIG$sig + resume differs from the uninterrupted run"
  echo "ok: SIG$sig during training saves step 5, exits $code and resumes byte-identically"
}
interrupt_and_resume INT 130 int
interrupt_and_resume TERM 143 term

# The learning rate of every logged training step of a log: "step lr" lines.
lrs() { awk -F, '$2 == "train" { print $1, $5 }' "$1"; }
lr_at() { lrs "$1" | awk -v s="$2" '$1 == s { print $2 }'; }

# 3b. --resume --steps N: a finished run goes on at --min-lr; an interrupted one re-stretches its
#     cosine from the lr it had reached down to --min-lr at the new last step.
EXT=("${BASE[@]}" --log-every 1 --min-lr 1e-4 --lr 2e-3)
"$TNN" train "${EXT[@]}" --steps 20 --out done.safetensors 2> done1.log
"$TNN" train "${EXT[@]}" --steps 26 --out done.safetensors --resume 2> done2.log \
  || { cat done2.log >&2; fail "--resume --steps 26 of a finished 20-step run failed"; }
grep -q "resuming '.*' at step 20 of 26 (the run had 20 steps" done2.log || fail "extension message: $(grep resuming done2.log)"
grep -q "^done: 26 steps" done2.log || fail "the extended run did not reach step 26"
[ "$(lrs done.safetensors.csv | awk '$1 > 20' | wc -l)" -eq 6 ] || fail "expected 6 more logged steps"
lrs done.safetensors.csv | awk '$1 >= 20 && ($2 < 0.99e-4 || $2 > 1.01e-4) { bad = 1 } END { exit bad }' \
  || fail "a finished run extended should stay at --min-lr: $(lrs done.safetensors.csv | tail -7 | tr '\n' ' ')"
echo "ok: a finished run extended by --resume --steps goes on at --min-lr"

"$TNN" train "${EXT[@]}" --steps 20 --out part.safetensors --stop-after 8 2> part1.log
"$TNN" train "${EXT[@]}" --steps 40 --out part.safetensors --resume 2> part2.log \
  || { cat part2.log >&2; fail "--resume --steps 40 of an interrupted 20-step run failed"; }
grep -q "resuming '.*' at step 8 of 40 (the run had 20 steps; the cosine schedule goes on from lr" part2.log \
  || fail "extension message: $(grep resuming part2.log)"
# Up to step 9 (the first update after the stop) the lr is the 20-step run's; then it decays
# more slowly, monotonically, to --min-lr at step 40.
for s in 1 5 8 9; do
  [ "$(lr_at part.safetensors.csv $s)" = "$(lr_at done.safetensors.csv $s)" ] \
    || fail "step $s: lr $(lr_at part.safetensors.csv $s) differs from the original schedule's $(lr_at done.safetensors.csv $s)"
done
awk -v a="$(lr_at part.safetensors.csv 15)" -v b="$(lr_at done.safetensors.csv 15)" 'BEGIN { exit !(a > b) }' \
  || fail "step 15: the stretched schedule should be above the original one"
lrs part.safetensors.csv | awk '$1 >= 9 { if (seen && $2 > prev) bad = 1; prev = $2; seen = 1 } END { exit bad }' \
  || fail "the stretched schedule is not monotone: $(lrs part.safetensors.csv | tr '\n' ' ')"
awk -v a="$(lr_at part.safetensors.csv 40)" 'BEGIN { exit !(a > 0.99e-4 && a < 1.01e-4) }' \
  || fail "step 40: expected --min-lr, got $(lr_at part.safetensors.csv 40)"
echo "ok: an interrupted run extended re-stretches its cosine schedule from where it was"

set +e
"$TNN" train "${EXT[@]}" --steps 5 --out part.safetensors --resume 2> short.log
rc=$?
set -e
[ $rc -ne 0 ] && [ "$(wc -l < short.log)" -eq 1 ] && grep -q "steps: expected at least the 40 steps" short.log \
  || fail "--resume --steps below the steps done: rc $rc, $(cat short.log)"
echo "ok: $(cut -c1-110 short.log)"

# 4. resuming with different settings is refused with one line on stderr
expect_error "resume with a different --lr" "^tnn: error: --resume: the settings differ" \
  "$TNN" train "${ARGS[@]}" --steps $STEPS --out stop.safetensors --resume --lr 0.01
echo "ok: mismatched resume refused: $(cut -c1-100 err.txt)"

# 6. --recompute keeps only each layer's input and recomputes the layer in backward: the same
# model, byte for byte. --precision bf16 trains (finite losses), and a resume keeps the precision
# the run started in (a resume asking for fp32 is refused).
"$TNN" train "${ARGS[@]}" --steps $STEPS --out recompute.safetensors --recompute 2> recompute.log \
  || { cat recompute.log >&2; fail "--recompute failed"; }
cmp full.safetensors recompute.safetensors || fail "--recompute changed the trained model"
"$TNN" train "${ARGS[@]}" --steps 10 --out bf16.safetensors --precision bf16 --stop-after 5 2> bf16a.log \
  || { cat bf16a.log >&2; fail "--precision bf16 failed"; }
"$TNN" train "${ARGS[@]}" --steps 10 --out bf16.safetensors --resume 2> bf16b.log \
  || { cat bf16b.log >&2; fail "--resume of a bf16 run failed"; }
! grep -qiE "nan|inf" bf16.safetensors.csv || fail "bf16 run: non-finite values in the log"
[ "$(grep -c '^[0-9]*,train,' bf16.safetensors.csv)" -ge 2 ] || fail "bf16 run: no training rows"
set +e
"$TNN" train "${ARGS[@]}" --steps 12 --out bf16.safetensors --resume --precision fp32 2> bf16c.log
rc=$?
set -e
[ $rc -ne 0 ] && [ "$(wc -l < bf16c.log)" -eq 1 ] && grep -q "precision" bf16c.log \
  || fail "resume of a bf16 run in fp32: rc $rc, $(cat bf16c.log)"
echo "ok: --recompute gives the same model; a bf16 run trains and resumes in bf16 only"

# 7. A model flag given with --config overrides that key, with one note line on stderr.
printf '{"dim": 16, "layers": 1, "rpe_dim": 8}\n' > c16.json
"$TNN" train --data corpus.txt --config c16.json --dim 8 --steps 2 --warmup 0 --seq-len 64 --batch 2 --eval-every 0 \
  --eval-tokens 2000 --threads 1 --out override.safetensors 2> override.log || { cat override.log >&2; fail "--config + --dim"; }
grep -q '^note: --dim 8 overrides "dim": 16 of --config' override.log || fail "no override note: $(cat override.log)"
grep -q "(dim 8, layers 1," override.log || fail "--dim did not override the config: $(grep parameters override.log)"
echo "ok: a flag given with --config overrides its key, with a note"
