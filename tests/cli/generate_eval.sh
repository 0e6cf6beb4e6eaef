#!/usr/bin/env bash
# End-to-end checks of `tnn eval` and `tnn generate` on a small trained model:
#  - eval --json prints one JSON object with arrays lengths, loss, ppl, bpb (one entry per
#    length) whose numbers agree: ppl = exp(loss), bpb = loss / ln 2; the text table and the
#    SVG plot are written;
#  - generate writes exactly --tokens bytes and a newline to stdout (nothing else), --echo
#    puts the prompt first, the same seed gives the same text, greedy decoding (temperature 0)
#    ignores the seed, and a prompt longer than the training length works;
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
[ "$(grep -c -- '^----- sample ' s3.txt)" -eq 2 ] || fail "generate --samples 3: expected 2 separator lines"
gen --prompt "In the" --tokens 60 --seed 4 --samples 3 --json > s3.json
gen --prompt "In the" --tokens 60 --seed 5 --json > s_alone.json
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
assert isinstance(a, list) and len(a) == 3 and len(b) == 1, (a, b)
assert a[1] == b[0], (a[1], b[0])' s3.json s_alone.json \
  || fail "generate --samples 3 --json: expected 3 strings, sample 1 as --seed 5 alone; got $(cat s3.json) and $(cat s_alone.json)"
echo "ok: generate --decoder direct/fft agree; --samples K reproduces each sample alone; --json"

# 3. The Transformer baseline (--token-mixer attention --positions sinusoidal) through the same
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
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=open(sys.argv[2]).read()[:-1]
assert a[0] == a[1] == b, (a, b)' a2.json a1.txt || fail "generate (attention): greedy samples of a batch differ from one alone"
echo "ok: an attention model trains, evaluates beyond its training length and generates through its KV caches"
