#!/usr/bin/env bash
# Subword vocabularies and token files end to end:
#  - a SentencePiece model from spm_train; `tnn train --tokenizer` trains on its ids and the
#    checkpoint carries it (tnn.tokenizer): eval and generate need the checkpoint alone, eval
#    prints bits per byte of the text beside per-token loss, generate decodes to text;
#  - the same text as a byte model: both evaluated on the same held-out bytes;
#  - --resume with another tokenizer is refused; token files (uint16, two files) train and
#    evaluate (bits per byte unknown there); hostile token files are one-line errors.
# Skipped (77) when tnn was built without SentencePiece or spm_train is not installed.
# Usage: subword.sh /path/to/tnn WORKDIR
set -euo pipefail
TNN=$1
WORK=$2
. "$(dirname "$0")/lib.sh"
CONFIGS=$(cd "$(dirname "$0")/../../configs" && pwd)  # the paper's models
start_in "$WORK"
command -v spm_train > /dev/null || { echo "spm_train not installed (Debian: sentencepiece): skipped"; exit 77; }

words=(the and of light water earth said God was in unto them day night form void upon face deep moved)
for i in $(seq 1 1500); do
  n=$((4 + i % 6)); line=""
  for j in $(seq 1 $n); do line+="${words[$(((i * 7 + j * 13) % 20))]} "; done
  echo "${line% }, $((i % 13))."
done > corpus.txt
spm_train --input=corpus.txt --model_prefix=sp --vocab_size=400 --character_coverage=1.0 --byte_fallback=true \
  --normalization_rule_name=identity --remove_extra_whitespaces=false --add_dummy_prefix=false \
  --hard_vocab_limit=false --num_threads=1 --minloglevel=2 > spm.log 2>&1 || { cat spm.log >&2; fail "spm_train"; }

common=(--dim 16 --layers 1 --rpe-dim 8 --seq-len 32 --batch 2 --warmup 2 --eval-every 0 --threads 1 --seed 3
        --valid-fraction 0.1 --valid-block 2000)
if ! "$TNN" train --data corpus.txt --tokenizer sp.model --out sp.safetensors --steps 20 --eval-tokens 600 \
    "${common[@]}" 2> train.log; then
  if grep -q "libsentencepiece-dev" train.log; then
    echo "tnn built without SentencePiece: skipped ($(cat train.log))"
    exit 77
  fi
  cat train.log >&2; fail "train --tokenizer"
fi
grep -q "tokenizer sentencepiece" train.log || fail "train: the model line does not name the tokenizer: $(cat train.log)"
grep -q "bits/byte" train.log || fail "train: no bits/byte in the validation line: $(cat train.log)"
python3 - sp.safetensors <<'EOF' || fail "the checkpoint does not carry the tokenizer"
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
tok = json.loads(meta["tnn.tokenizer"])
cfg = json.loads(meta["tnn.config"])
assert tok["kind"] == "sentencepiece" and tok["vocab_size"] <= cfg["vocab_size"], (tok["kind"], cfg["vocab_size"])
assert len(tok["model"]) > 1000
EOF
echo "ok: train --tokenizer; the checkpoint carries the tokenizer"

# The paper's language model as shipped (configs/, 7 layers of D 512) on the subword vocabulary:
# the config names no vocabulary, the tokenizer gives it. One step of 16 positions.
"$TNN" train --config "$CONFIGS/wikitext103_tnn_lm.json" --data corpus.txt --tokenizer sp.model \
  --out paper.safetensors --steps 1 --seq-len 16 --batch 1 --warmup 0 --eval-every 0 --eval-tokens 64 --threads 1 \
  --valid-fraction 0.1 --valid-block 2000 2> paper.log \
  || { cat paper.log >&2; fail "train --config wikitext103_tnn_lm.json --tokenizer"; }
grep -q "dim 512, layers 7" paper.log || fail "the paper's LM: not the config's model: $(head -3 paper.log)"
grep -q "tokenizer sentencepiece" paper.log || fail "the paper's LM: not on the tokenizer's ids: $(head -3 paper.log)"
rm -f paper.*safetensors*
echo "ok: the paper's LM config trains on a subword vocabulary as it is"

# The byte model of the same text, evaluated beside the subword one on the same held-out bytes.
"$TNN" train --data corpus.txt --out bytes.safetensors --steps 20 --eval-tokens 600 "${common[@]}" 2> bytes.log \
  || { cat bytes.log >&2; fail "train (bytes)"; }
[ -z "$(python3 -c 'import json,struct,sys; f=open("bytes.safetensors","rb"); n=struct.unpack("<Q",f.read(8))[0]; print(json.loads(f.read(n))["__metadata__"].get("tnn.tokenizer",""))')" ] \
  || fail "a byte model's checkpoint has a tokenizer"
"$TNN" eval --checkpoint sp.safetensors --checkpoint bytes.safetensors --data corpus.txt --valid-fraction 0.1 \
  --valid-block 2000 --seq-len 32 --threads 1 --json > both.json 2> eval.err || { cat eval.err >&2; fail "eval of both"; }
python3 - both.json <<'EOF' || fail "eval: $(cat both.json)"
import json, math, sys
sp, by = [json.loads(l) for l in open(sys.argv[1])]
assert sp["tokenizer"].startswith("sentencepiece") and "tokenizer" not in by, (sp, by)
# per token vs per byte: the subword model scores far fewer tokens over the same bytes
assert sp["tokens"][0] * 1.3 < by["tokens"][0], (sp["tokens"], by["tokens"])
# a byte model's bpb is its loss / ln 2; a subword model's is its nats spread over the bytes
assert abs(by["bpb"][0] - by["loss"][0] / math.log(2)) < 1e-4 * by["bpb"][0]
want = sp["loss"][0] * sp["tokens"][0] / ((by["tokens"][0] + 1) * math.log(2))
assert abs(sp["bpb"][0] - want) < 0.02 * want, (sp["bpb"], want)
assert abs(sp["ppl"][0] - math.exp(sp["loss"][0])) < 1e-3 * sp["ppl"][0]
EOF
"$TNN" eval --checkpoint sp.safetensors --data corpus.txt --all --seq-len 32 --max-bytes 5000 --threads 1 > table.txt 2>&1 \
  || { cat table.txt >&2; fail "eval table"; }
grep -q "^tokenizer sentencepiece (.* pieces): [0-9]* tokens for 5000 bytes" table.txt || fail "eval table: $(cat table.txt)"
echo "ok: eval needs only the checkpoint; bits per byte on the byte model's held-out text: $(tr -d '\n' < both.json)"

# generate: the prompt encoded, the ids decoded to text.
"$TNN" generate --checkpoint sp.safetensors --prompt "the light" --tokens 30 --seed 1 --threads 1 > gen.txt 2> gen.err \
  || { cat gen.err >&2; fail "generate"; }
[ ! -s gen.err ] || fail "generate wrote to stderr: $(cat gen.err)"
[ "$(wc -c < gen.txt)" -gt 31 ] || fail "generate: 30 subword tokens should give more than 30 bytes: $(cat gen.txt)"
grep -q "<0x\|<unk>\|<s>" gen.txt && fail "generate printed piece names instead of text: $(cat gen.txt)"
"$TNN" generate --checkpoint sp.safetensors --prompt "the light" --tokens 30 --seed 1 --threads 1 --samples 2 --json \
  > gen.json 2> /dev/null || fail "generate --samples 2 --json"
python3 -c 'import json,sys; a=json.load(open("gen.json")); assert len(a)==2 and all(len(s.encode())>=10 for s in a), a' \
  || fail "generate --json: $(cat gen.json)"
echo "ok: generate decodes subword tokens to text: $(head -c 60 gen.txt | tr '\n' ' ')"

# --resume keeps the run's tokenizer (no need to repeat --tokenizer); another one is refused,
# nothing changed.
spm_train --input=corpus.txt --model_prefix=sp2 --vocab_size=380 --character_coverage=1.0 --byte_fallback=true \
  --normalization_rule_name=identity --remove_extra_whitespaces=false --add_dummy_prefix=false \
  --hard_vocab_limit=false --num_threads=1 --minloglevel=2 > spm2.log 2>&1 || { cat spm2.log >&2; fail "spm_train sp2"; }
cp sp.safetensors before.safetensors
if "$TNN" train --data corpus.txt --tokenizer sp2.model --out sp.safetensors --steps 30 --eval-tokens 600 --resume \
    "${common[@]}" 2> resume.err; then
  fail "--resume of a subword run with another tokenizer was accepted"
fi
[ "$(wc -l < resume.err)" -eq 1 ] && grep -q "tokenizer" resume.err || fail "--resume: $(cat resume.err)"
cmp -s sp.safetensors before.safetensors || fail "--resume refused but the checkpoint changed"
"$TNN" train --data corpus.txt --out sp.safetensors --steps 25 --resume "${common[@]}" 2> resume.log \
  || { cat resume.log >&2; fail "--resume without --tokenizer"; }
grep -q "tokenizer sentencepiece" resume.log || fail "--resume did not keep the tokenizer: $(cat resume.log)"
"$TNN" train --data corpus.txt --tokenizer sp.model --out sp.safetensors --steps 28 --eval-tokens 600 --resume \
  "${common[@]}" 2> resume2.log || { cat resume2.log >&2; fail "--resume with the same tokenizer"; }
echo "ok: --resume checks the tokenizer"

# Token files: uint16 ids in two files; train, eval (no bits per byte: the bytes are unknown).
python3 - <<'EOF'
import struct
ids = [(i * 7919) % 1000 for i in range(24000)]  # 12 blocks of the common --valid-block 2000
open("a.u16", "wb").write(struct.pack("<16000H", *ids[:16000]))
open("b.u16", "wb").write(struct.pack("<8000H", *ids[16000:]))
open("odd.u16", "wb").write(b"\x01\x00\x02")
open("big.u16", "wb").write(struct.pack("<3H", 1, 2, 1000))
EOF
"$TNN" train --tokens a.u16,b.u16 --token-dtype uint16 --vocab 1000 --out ids.safetensors --steps 10 \
  --eval-tokens 500 "${common[@]}" 2> ids.log || { cat ids.log >&2; fail "train --tokens"; }
grep -q "data: [0-9]* train / [0-9]* valid tokens" ids.log || fail "train --tokens: $(cat ids.log)"
"$TNN" eval --checkpoint ids.safetensors --tokens a.u16,b.u16 --token-dtype uint16 --seq-len 32 --threads 1 --json \
  > ids.json 2> ids.err || { cat ids.err >&2; fail "eval --tokens"; }
grep -q '"bpb":\[null\]' ids.json || fail "eval --tokens: bpb should be null (unknown): $(cat ids.json)"
if "$TNN" generate --checkpoint ids.safetensors --prompt x --tokens 3 2> gen_ids.err; then fail "generate from ids"; fi
grep -q "token files" gen_ids.err || fail "generate from an ids model: $(cat gen_ids.err)"
one_line_error() {  # EXPECTED_PIECE FLAGS...
  local want=$1; shift
  if "$TNN" "$@" 2> err.txt > /dev/null; then fail "accepted: $*"; fi
  [ "$(wc -l < err.txt)" -eq 1 ] || fail "not one line: $* -> $(cat err.txt)"
  grep -q -- "$want" err.txt || fail "expected '$want' from: $* -> $(cat err.txt)"
}
one_line_error "multiple of 2 bytes" train --tokens a.u16,odd.u16 --token-dtype uint16 --vocab 1000 --out x.safetensors "${common[@]}"
one_line_error "is 1000: expected an id in \[0, 1000)" train --tokens big.u16 --token-dtype uint16 --vocab 1000 --out x.safetensors "${common[@]}"
one_line_error "--vocab V" train --tokens a.u16 --token-dtype uint16 --out x.safetensors "${common[@]}"
one_line_error "--token-dtype" train --tokens a.u16 --vocab 1000 --out x.safetensors "${common[@]}"
one_line_error "either --data" train --tokens a.u16 --data corpus.txt --token-dtype uint16 --vocab 1000 --out x.safetensors
one_line_error "SentencePiece model" train --data corpus.txt --tokenizer corpus.txt --out x.safetensors "${common[@]}"
one_line_error "applies to task lm only" train --task classify --data corpus.txt --tokenizer sp.model --out x.safetensors
[ ! -e x.safetensors ] || fail "a refused run wrote x.safetensors"
echo "ok: token files train and evaluate; hostile ones are one-line errors"
