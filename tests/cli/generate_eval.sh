#!/usr/bin/env bash
# End-to-end checks of `tnn eval` and `tnn generate` on a small trained model:
#  - eval --json prints one JSON object with arrays lengths, loss, ppl, bpb (one entry per
#    length) whose numbers agree: ppl = exp(loss), bpb = loss / ln 2; the text table and the
#    SVG plot are written;
#  - generate writes exactly --tokens bytes and a newline to stdout (nothing else), --echo
#    puts the prompt first, the same seed gives the same text, greedy decoding (temperature 0)
#    ignores the seed, and a prompt longer than the training length works.
#  - eval on the model's own training file scores only the part training held out (and says so),
#    --all scores all of it, another file is scored whole; the default length is the training one;
#  - the program's habits: tnn / tnn help / tnn --help list the commands (exit 0), --version and
#    -V, short flags (-m -p -n -s -t), prompts from a file or stdin, --prompt "", plots only as
#    .svg, progress lines with the same fields as on a terminal, `tnn plot` of the training log;
#  - the same commands take an attention model (--token-mixer attention).
# Usage: generate_eval.sh /path/to/tnn WORKDIR
set -euo pipefail
TNN=$1
WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
fail() { echo "FAIL: $*" >&2; exit 1; }

for i in $(seq 1 800); do
  echo "In the beginning line $i was written, and it was good $((i * 5 % 11)) times."
done > corpus.txt
"$TNN" train --data corpus.txt --out m.safetensors --dim 16 --layers 1 --rpe-dim 8 --seq-len 32 --batch 2 \
  --steps 30 --warmup 2 --eval-every 0 --eval-tokens 2000 --threads 1 --seed 3 2> train.log \
  || { cat train.log >&2; fail "training the test model failed"; }

# 1. eval --json
"$TNN" eval --checkpoint m.safetensors --data corpus.txt --lengths 32,64,128 --json --threads 1 > eval.json 2> eval.err \
  || { cat eval.err >&2; fail "eval --json failed"; }
[ "$(wc -l < eval.json)" -eq 1 ] || fail "eval --json: expected one line on stdout, got: $(cat eval.json)"
for key in lengths loss ppl bpb; do
  grep -q "\"$key\":\[" eval.json || fail "eval --json: no array '$key' in $(cat eval.json)"
done
grep -q '"lengths":\[32,64,128\]' eval.json || fail "eval --json: lengths should be [32,64,128]: $(cat eval.json)"
array() { sed -E "s/.*\"$1\":\[([^]]*)\].*/\1/" eval.json | tr ',' '\n'; }
[ "$(array loss | wc -l)" -eq 3 ] && [ "$(array ppl | wc -l)" -eq 3 ] && [ "$(array bpb | wc -l)" -eq 3 ] \
  || fail "eval --json: expected 3 entries per array: $(cat eval.json)"
paste <(array loss) <(array ppl) <(array bpb) | awk '{
    if ($1 <= 0 || $1 > 10) bad = bad " loss " $1;
    if (($2 - exp($1)) ^ 2 > (1e-4 * $2) ^ 2) bad = bad " ppl " $2 " != exp(" $1 ")";
    if (($3 - $1 / log(2)) ^ 2 > (1e-4 * $3) ^ 2) bad = bad " bpb " $3 " != " $1 "/ln2";
  } END { if (bad != "") { print bad; exit 1 } }' || fail "eval --json numbers disagree"
echo "ok: eval --json: $(cat eval.json)"

"$TNN" eval --checkpoint m.safetensors --data corpus.txt --lengths 32,64 --plot plot.svg --threads 1 > table.txt 2> /dev/null
grep -Eq "^ +64 " table.txt || fail "eval: no row for length 64 in: $(cat table.txt)"
grep -q "<svg" plot.svg || fail "eval --plot: no SVG written"
echo "ok: eval table and SVG plot"

# 2. generate
gen() { "$TNN" generate --checkpoint m.safetensors --threads 1 "$@" 2> gen.err || { cat gen.err >&2; fail "generate $*"; }; }
gen --prompt "In the" --tokens 50 --seed 1 > a.txt
[ "$(wc -c < a.txt)" -eq 51 ] || fail "generate --tokens 50: expected 50 bytes and a newline, got $(wc -c < a.txt)"
[ ! -s gen.err ] || fail "generate wrote to stderr: $(cat gen.err)"
gen --prompt "In the" --tokens 50 --seed 1 > b.txt
cmp -s a.txt b.txt || fail "generate: the same seed gave different text"
gen --prompt "In the" --tokens 50 --seed 1 --echo > echo.txt
[ "$(head -c 6 echo.txt)" = "In the" ] || fail "generate --echo: the prompt does not come first: $(cat echo.txt)"
cmp -s <(tail -c +7 echo.txt) a.txt || fail "generate --echo: the text after the prompt differs"
gen --prompt "In the" --tokens 40 --temperature 0 --seed 1 > g1.txt
gen --prompt "In the" --tokens 40 --temperature 0 --seed 2 > g2.txt
cmp -s g1.txt g2.txt || fail "generate --temperature 0 depends on the seed"
gen --prompt "$(head -c 300 corpus.txt)" --tokens 20 --top-k 5 --top-p 0.9 > long.txt
[ "$(wc -c < long.txt)" -eq 21 ] || fail "generate after a 300-byte prompt: expected 20 bytes and a newline"
echo "ok: generate writes only the text, is reproducible, echoes, decodes greedily and takes long prompts"

# 2b. decoders and samples: the direct and the tiled (fft) decoder give the same greedy text;
# sample k of --samples K is --samples 1 --seed S+k; --json prints an array of K strings.
gen --prompt "$(head -c 77 corpus.txt)" --tokens 400 --temperature 0 --decoder direct > d_direct.txt
gen --prompt "$(head -c 77 corpus.txt)" --tokens 400 --temperature 0 --decoder fft > d_fft.txt
cmp -s d_direct.txt d_fft.txt || fail "generate --decoder fft and direct gave different greedy text"
gen --prompt "In the" --tokens 60 --seed 4 --samples 3 > s3.txt
gen --prompt "In the" --tokens 60 --seed 5 > s_alone.txt
[ "$(grep -c -- '^----- sample [0-2] (seed [4-6]) -----$' s3.txt)" -eq 3 ] || fail "generate --samples 3: expected 3 headers"
[ "$(head -1 s3.txt)" = "----- sample 0 (seed 4) -----" ] || fail "generate --samples 3: the first sample has no header"
gen --prompt "In the" --tokens 60 --seed 4 --samples 3 --json > s3.json
gen --prompt "In the" --tokens 60 --seed 5 --json > s_alone.json
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
assert isinstance(a, list) and len(a) == 3 and len(b) == 1, (a, b)
assert a[1] == b[0], (a[1], b[0])' s3.json s_alone.json \
  || fail "generate --samples 3 --json: expected 3 strings, sample 1 as --seed 5 alone; got $(cat s3.json) and $(cat s_alone.json)"
echo "ok: generate --decoder direct/fft agree; --samples K reproduces each sample alone; --json"

# 3. honest evaluation: the checkpoint records how its training file was split
for i in $(seq 1 300); do echo "Another file, line $i, says other things $((i * 3 % 7)) times."; done > other.txt
"$TNN" eval -m m.safetensors --data corpus.txt > held.txt 2> held.err || fail "eval on the training file"
[ ! -s held.err ] || fail "eval on the training file wrote to stderr: $(cat held.err)"
grep -q "^scoring only its held-out last 5% of bytes of 'corpus.txt', the model's training file: [0-9]* bytes (--all scores all of it)$" held.txt \
  || fail "eval on the training file: expected the line saying what it scores, got: $(cat held.txt)"
"$TNN" eval -m m.safetensors --data corpus.txt --json > held.json || fail "eval --json on the training file"
"$TNN" eval -m m.safetensors --data corpus.txt --json --all > all.json || fail "eval --all"
"$TNN" eval -m m.safetensors --data corpus.txt --all | grep -q "^scoring all of 'corpus.txt' (--all), which the model was trained on except" \
  || fail "eval --all: no line saying so"
"$TNN" eval -m m.safetensors --data other.txt --json > other.json || fail "eval on another file"
"$TNN" eval -m m.safetensors --data other.txt | grep -q "^scoring" && fail "eval on another file: a scope line"
python3 - "$(wc -c < corpus.txt)" "$(wc -c < other.txt)" <<'PY' || fail "eval: held-out / --all / other file: wrong counts"
import json, sys
total, other = int(sys.argv[1]), int(sys.argv[2])
h, a, o = (json.load(open(f)) for f in ("held.json", "all.json", "other.json"))
assert (h["scored"], a["scored"], o["scored"]) == ("held-out", "training", "all"), (h, a, o)
assert h["lengths"] == [32] and a["lengths"] == [32], (h, a)  # the training length, not 512
held = int(0.05 * total)
assert h["tokens"][0] == held - 1 and a["tokens"][0] == total - 1 and o["tokens"][0] == other - 1, (h, a, o, held)
print(f"ok: eval scores the {held} held-out bytes of {total} on the training file, all of them with --all")
PY

# 4. habits
for form in "" "help" "--help"; do
  "$TNN" $form > help.txt 2> help.err || fail "tnn $form: exit code $?"
  for c in train eval generate classify grad plot; do grep -q "^  $c " help.txt || fail "tnn $form: no command $c"; done
done
"$TNN" help eval | grep -q -- "--all" || fail "tnn help eval: no --all"
[ "$("$TNN" --version)" = "$("$TNN" -V)" ] && "$TNN" -V | grep -q "^tnn [0-9]" || fail "tnn -V"
"$TNN" generate -m m.safetensors -p "In the" -n 50 -s 1 -t 1 > short.txt && cmp -s short.txt a.txt \
  || fail "short flags -m -p -n -s -t: another text than the long ones"
gen --prompt "" --tokens 20 > empty.txt
[ "$(wc -c < empty.txt)" -eq 21 ] || fail "--prompt '': expected 20 bytes and a newline"
gen --tokens 20 > default_prompt.txt
cmp -s empty.txt default_prompt.txt || fail "--prompt '' is not the default"
printf 'In the' > prompt.txt
gen --prompt-file prompt.txt --tokens 50 --seed 1 > pf.txt
cmp -s pf.txt a.txt || fail "--prompt-file: another text than --prompt"
printf 'In the' | gen --prompt-file - --tokens 50 --seed 1 > stdin.txt
cmp -s stdin.txt a.txt || fail "--prompt-file -: another text than --prompt"
echo "ok: help, version, short flags, empty prompt, prompts from a file and stdin"

grep -q "^step 30/30  loss [0-9.]*  [0-9]* tok/s  lr [0-9.e+-]*  elapsed [0-9]*m[0-9]*s  ETA " train.log \
  || fail "progress line: $(grep '^step' train.log | tail -1)"
grep -q "1 threads" train.log && fail "'1 threads' in: $(grep threads train.log)"
head -1 m.safetensors.csv | grep -q "^step,kind,loss,grad_norm,lr,tokens_per_s,bpb,accuracy$" || fail "log header: $(head -1 m.safetensors.csv)"
grep -q "^30,valid," m.safetensors.csv && grep -q "^30,train," m.safetensors.csv || fail "log rows: $(tail -2 m.safetensors.csv)"
"$TNN" plot m.safetensors.csv -o curve.svg || fail "tnn plot"
grep -q "<svg" curve.svg && grep -q "validation loss" curve.svg && grep -q "training loss" curve.svg || fail "tnn plot: no curves"
set +e
"$TNN" plot m.safetensors.csv -o curve.png 2> png.err
rc=$?
set -e
[ $rc -ne 0 ] && [ "$(wc -l < png.err)" -eq 1 ] && grep -q "expected a file name ending in .svg" png.err && [ ! -e curve.png ] \
  || fail "tnn plot -o curve.png: rc $rc, $(cat png.err)"
echo "ok: progress lines, the log's kinds, tnn plot, plots only as .svg"

# 5. The Transformer baseline (--token-mixer attention --positions sinusoidal) through the same
# commands: it trains, its checkpoint says so, eval runs beyond the training length, generate
# decodes through the KV caches (greedy text the same from a long prompt in one piece or stepped).
"$TNN" train --data corpus.txt --out a.safetensors --token-mixer attention --positions sinusoidal --heads 2 \
  --dim 16 --layers 2 --seq-len 32 --batch 2 --steps 20 --warmup 2 --eval-every 0 --eval-tokens 2000 --threads 1 \
  --seed 3 2> train_a.log || { cat train_a.log >&2; fail "training the attention model failed"; }
grep -q "attention, sinusoidal positions" train_a.log || fail "train: the attention model's summary: $(cat train_a.log)"
"$TNN" eval --checkpoint a.safetensors --data corpus.txt --lengths 32,128 --threads 1 > table_a.txt 2> eval_a.err \
  || { cat eval_a.err >&2; fail "eval of the attention model failed"; }
grep -Eq "^ +128 " table_a.txt || fail "eval: no row for length 128 in: $(cat table_a.txt)"
gena() { "$TNN" generate --checkpoint a.safetensors --threads 1 "$@" 2> gen.err || { cat gen.err >&2; fail "generate $*"; }; }
gena --prompt "$(head -c 77 corpus.txt)" --tokens 100 --temperature 0 > a1.txt
[ "$(wc -c < a1.txt)" -eq 101 ] || fail "generate (attention) --tokens 100: expected 100 bytes and a newline"
gena --prompt "$(head -c 77 corpus.txt)" --tokens 100 --temperature 0 --samples 2 --json > a2.json
# (--json holds each ill-formed UTF-8 subpart of the bytes as U+FFFD, as Python's "replace" does)
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=open(sys.argv[2], "rb").read()[:-1].decode("utf-8", "replace")
assert a[0] == a[1] == b, (a, b)' a2.json a1.txt || fail "generate (attention): greedy samples of a batch differ from one alone"
echo "ok: an attention model trains, evaluates beyond its training length and generates through its KV caches"
