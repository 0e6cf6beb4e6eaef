#!/usr/bin/env bash
# Bad input to the `tnn` program: every case must exit non-zero with exactly one
# line on stderr starting "tnn: error:" that names the problem, and never die
# from a signal. Usage: errors.sh /path/to/tnn WORKDIR
set -uo pipefail
TNN=$1
WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
failures=0

# expect_error "pattern" cmd args...
expect_error() {
  local pattern=$1
  shift
  "$@" > out.txt 2> err.txt
  local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then
    echo "FAIL ($rc): $*"; failures=$((failures + 1)); return
  fi
  if [ "$(wc -l < err.txt)" -ne 1 ] || ! grep -q "^tnn: error: .*$pattern" err.txt; then
    echo "FAIL (message): $*"; cat err.txt; failures=$((failures + 1)); return
  fi
  echo "ok: $(cut -c1-150 err.txt)"
}

for i in $(seq 1 400); do echo "line $i of a small text used to make a model"; done > text.txt
"$TNN" train --data text.txt --out model.safetensors --dim 8 --layers 1 --rpe-dim 4 --seq-len 16 --batch 2 \
  --steps 3 --warmup 1 --eval-every 3 --threads 1 2> /dev/null || { echo "FAIL: could not train the fixture"; exit 1; }

for i in $(seq 1 40); do printf 'a\tline %d of kind a\nb\tLINE %d OF KIND B\n' $i $i; done > cls.tsv
"$TNN" train --task classify --data cls.tsv --out cls.safetensors --dim 8 --layers 1 --rpe-dim 4 --seq-len 16 --batch 2 \
  --steps 2 --threads 1 2> /dev/null || { echo "FAIL: could not train the classifier fixture"; exit 1; }
printf 'not a safetensors file at all, just text' > garbage.safetensors
head -c 100 model.safetensors > truncated.safetensors
printf '{"vocab_size": 256, "dim": 8, "layers": 1, "colour": "blue"}' > unknown_key.json
printf '{"vocab_size": 256, "dim": 8, "layers": 1, "heads": 5, "expand_ratio": 0.25}' > bad_heads.json
printf '{"vocab_size": 256, "dim": 8, "layers": 1, "gamma": 1.5}' > bad_gamma.json
printf '{"vocab_size": 256, "dim": "eight", "layers": 1}' > bad_type.json
printf '{"vocab_size": 256, "dim": 8, "layers": 1,' > bad_json.json
: > empty.txt

expect_error 'unknown key "colour"' "$TNN" train --data text.txt --out x.safetensors --config unknown_key.json
expect_error "heads" "$TNN" train --data text.txt --out x.safetensors --config bad_heads.json
expect_error "gamma" "$TNN" train --data text.txt --out x.safetensors --config bad_gamma.json
expect_error "'dim': expected an integer" "$TNN" train --data text.txt --out x.safetensors --config bad_type.json
expect_error "valid JSON" "$TNN" train --data text.txt --out x.safetensors --config bad_json.json
expect_error "empty\|bytes" "$TNN" train --data empty.txt --out x.safetensors
expect_error "seq-len\|sequence length\|seq_len" "$TNN" train --data text.txt --out x.safetensors --seq-len 0
expect_error "Could not convert" "$TNN" train --data text.txt --out x.safetensors --steps many
expect_error "header" "$TNN" eval --checkpoint garbage.safetensors --data text.txt
expect_error "truncated.safetensors" "$TNN" eval --checkpoint truncated.safetensors --data text.txt
expect_error "missing.safetensors" "$TNN" generate --checkpoint missing.safetensors
expect_error "temperature" "$TNN" generate --checkpoint model.safetensors --temperature -1
expect_error "lengths" "$TNN" eval --checkpoint model.safetensors --data text.txt --lengths 512,abc
expect_error "garbage.safetensors" "$TNN" grad --checkpoint model.safetensors --inputs garbage.safetensors --out g.safetensors
expect_error "required" "$TNN" grad --checkpoint model.safetensors

# --- hostile files -----------------------------------------------------------------------
# st_file OUT HEADER [DATA]: a safetensors file from its JSON header and printf-escaped data.
st_file() {
  local n=${#2} le="" i
  for i in 0 1 2 3 4 5 6 7; do le+=$(printf '\\x%02x' $(( (n >> (8 * i)) & 255 ))); done
  { printf "$le"; printf '%s' "$2"; printf "${3:-}"; } > "$1"
}
hlen() { od -An -tu8 -N8 "$1" | tr -d ' '; }
n=$(hlen model.safetensors)
# A NaN in the first tensor in byte order (embed.weight).
cp model.safetensors nan.safetensors
printf '\x00\x00\xc0\x7f' | dd of=nan.safetensors bs=1 seek=$((8 + n)) conv=notrunc status=none
# A config whose dim (9) disagrees with the stored shapes (dim 8); the header keeps its length.
{ head -c 8 model.safetensors; head -c $((8 + n)) model.safetensors | tail -c "$n" | sed 's/\\"dim\\":8,/\\"dim\\":9,/'
  tail -c +$((9 + n)) model.safetensors; } > shape.safetensors
cmp -s model.safetensors shape.safetensors && { echo "FAIL: could not edit the config of the fixture"; exit 1; }
# A config asking for an impossible model (V * D = 2^64 elements).
st_file huge.safetensors '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"tnn.config":"{\"vocab_size\":4294967296,\"dim\":4294967296,\"layers\":1}"}}' '\x00\x00\x00\x00'
st_file noconfig.safetensors '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' '\x00\x00\x00\x00'
st_file f16.safetensors '{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}' '\x00\x00\x00\x00'
st_file overlap.safetensors '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}' '\x00\x00\x00\x00\x00\x00\x00\x00'
printf '\xff\xff\xff\xff\xff\xff\xff\x7f{}' > biglen.safetensors
mkdir -p dir.safetensors
mkfifo fifo.safetensors  # nobody ever writes to it: opening it must not wait
# Batch files for `tnn grad`: I32 tokens and targets [1, 2]; data is targets then tokens.
I32x2='{"dtype":"I32","shape":[1,2],"data_offsets":'
st_file vocab_batch.safetensors "{\"targets\":${I32x2}[0,8]},\"tokens\":${I32x2}[8,16]}}" \
  '\x02\x00\x00\x00\x03\x00\x00\x00\x01\x00\x00\x00\x2c\x01\x00\x00'
st_file target_batch.safetensors "{\"targets\":${I32x2}[0,8]},\"tokens\":${I32x2}[8,16]}}" \
  '\x02\x00\x00\x00\xfe\xff\xff\xff\x01\x00\x00\x00\x02\x00\x00\x00'
st_file dtype_batch.safetensors '{"targets":{"dtype":"I32","shape":[1,2],"data_offsets":[0,8]},"tokens":{"dtype":"F32","shape":[1,2],"data_offsets":[8,16]}}' \
  '\x02\x00\x00\x00\x03\x00\x00\x00\x00\x00\x80\x3f\x00\x00\x00\x40'
st_file notargets_batch.safetensors "{\"tokens\":${I32x2}[0,8]}}" '\x01\x00\x00\x00\x02\x00\x00\x00'
st_file shape_batch.safetensors '{"targets":{"dtype":"I32","shape":[2,1],"data_offsets":[0,8]},"tokens":{"dtype":"I32","shape":[1,2],"data_offsets":[8,16]}}' \
  '\x02\x00\x00\x00\x03\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00'
st_file empty_batch.safetensors '{"targets":{"dtype":"I32","shape":[1,0],"data_offsets":[0,0]},"tokens":{"dtype":"I32","shape":[1,0],"data_offsets":[0,0]}}'
"$TNN" train --data text.txt --out mlm.safetensors --objective mlm --dim 8 --layers 1 --rpe-dim 4 --seq-len 16 \
  --batch 2 --steps 2 --warmup 1 --eval-every 2 --threads 1 2> /dev/null || { echo "FAIL: could not train the MLM fixture"; exit 1; }

G=(grad --checkpoint model.safetensors --out g.safetensors --inputs)
expect_error 'nan.safetensors.*"embed.weight": element 0 is nan; expected finite values' "$TNN" eval --checkpoint nan.safetensors --data text.txt
expect_error '"embed.weight".*finite' "$TNN" generate --checkpoint nan.safetensors
expect_error "shape.safetensors.*embed.weight.*implies shape \[256, 9\], the file has \[256, 8\]" "$TNN" eval --checkpoint shape.safetensors --data text.txt
expect_error "'vocab_size'.*4294967296" "$TNN" generate --checkpoint huge.safetensors
expect_error "tnn.config.*missing" "$TNN" eval --checkpoint noconfig.safetensors --data text.txt
expect_error "dtype F16 is not supported" "$TNN" eval --checkpoint f16.safetensors --data text.txt
expect_error "overlap" "$TNN" generate --checkpoint overlap.safetensors
expect_error "header length: expected at most 100000000 bytes" "$TNN" eval --checkpoint biglen.safetensors --data text.txt
expect_error "regular file" "$TNN" generate --checkpoint dir.safetensors
expect_error "regular file" timeout 60 "$TNN" generate --checkpoint fifo.safetensors
expect_error "/dev/zero.*expected a regular file or a pipe, got a device" timeout 60 "$TNN" train --data /dev/zero --out x.safetensors
expect_error "tokens\[0, 1\] = 300: expected a token id in \[0, 256)" "$TNN" "${G[@]}" vocab_batch.safetensors
expect_error "targets\[0, 1\] = -2" "$TNN" "${G[@]}" target_batch.safetensors
expect_error "'tokens': expected dtype I32, got F32" "$TNN" "${G[@]}" dtype_batch.safetensors
expect_error "'targets', it is missing" "$TNN" "${G[@]}" notargets_batch.safetensors
expect_error "'targets': expected shape \[B >= 1, N >= 1\], got \[2, 1\]\|targets.*shaped like" "$TNN" "${G[@]}" shape_batch.safetensors
expect_error "expected shape \[B >= 1, N >= 1\], got \[1, 0\]" "$TNN" "${G[@]}" empty_batch.safetensors
expect_error "bidirectional" "$TNN" generate --checkpoint mlm.safetensors
# --resume takes the saved run's settings for the flags not given; one given differently is refused.
expect_error "objective: saved \"mlm\", now \"clm\"\|--objective clm needs true" "$TNN" train --data text.txt --out mlm.safetensors --resume --objective clm

# --- bad flags -----------------------------------------------------------------------------
expect_error "--tokens: expected >= 0, got -5" "$TNN" generate --checkpoint model.safetensors --tokens -5
expect_error "top_p: expected 0 < top_p <= 1, got 2" "$TNN" generate --checkpoint model.safetensors --top-p 2
expect_error "--threads: expected 1 to 1024 (or 0 for all cores), got -1" "$TNN" generate --checkpoint model.safetensors --threads -1
expect_error "--threads: expected 1 to 1024" "$TNN" train --data text.txt --out x.safetensors --threads 100000
expect_error "--lengths: expected a comma-separated list of positive integers, got \"0\"" "$TNN" eval --checkpoint model.safetensors --data text.txt --lengths 0
expect_error "--batch: expected >= 1, got 0" "$TNN" eval --checkpoint model.safetensors --data text.txt --batch 0
expect_error "--valid-fraction: expected a value in \[0, 1), got -1" "$TNN" eval --checkpoint model.safetensors --data text.txt --valid-fraction -1
expect_error "window of 16 tokens needs at least 17 bytes" "$TNN" eval --checkpoint model.safetensors --data text.txt --seq-len 16 --max-bytes 10
# Once a segmentation fault: [B, N] = [2^60, 16] wrapped to an empty buffer.
expect_error "batch \* seq_len \* vocab_size below 2^63\|batch size 1152921504606846976 x sequence length 16" \
  "$TNN" train --data text.txt --out x.safetensors --seq-len 16 --batch 1152921504606846976
# Checked before training, not at the first validation hours later.
expect_error "validation.*needs at least 17 bytes" "$TNN" train --data text.txt --out x.safetensors --seq-len 16 --valid-fraction 0.0005
expect_error "--inject-nan-steps: expected a comma-separated list" "$TNN" train --data text.txt --out x.safetensors --inject-nan-steps 0
expect_error "--clip: expected > 0" "$TNN" train --data text.txt --out x.safetensors --clip 0
expect_error "'gamma'" "$TNN" train --data text.txt --out x.safetensors --gamma 0
expect_error "'heads'" "$TNN" train --data text.txt --out x.safetensors --dim 4 --expand-ratio 1 --heads 5
expect_error "--norm-type: expected one of .*got .batchnorm." "$TNN" train --data text.txt --out x.safetensors --norm-type batchnorm
expect_error "--norm: renamed --norm-type" "$TNN" train --data text.txt --out x.safetensors --norm rmsnorm
expect_error "--postnorm: renamed --no-prenorm" "$TNN" train --data text.txt --out x.safetensors --postnorm
expect_error "--batch: renamed --inputs" "$TNN" grad --checkpoint model.safetensors --batch vocab_batch.safetensors --out g.safetensors
expect_error "--decay.*sometimes" "$TNN" train --data text.txt --out x.safetensors --decay sometimes
expect_error "--dtype.*f16" "$TNN" grad --checkpoint model.safetensors --inputs vocab_batch.safetensors --out g.safetensors --dtype f16
expect_error "unexpected\|not expected" "$TNN" eval --checkpoint model.safetensors --data text.txt --colour blue
# Flags of another task: one line naming the flag and the task.
expect_error "--objective: applies to task lm only, not to --task classify" "$TNN" train --task classify --data text.txt --out x.safetensors --objective mlm
expect_error "--patch-size: applies to task image only, not to --task lm" "$TNN" train --data text.txt --out x.safetensors --patch-size 2
expect_error "--tie-embeddings: applies to task lm only" "$TNN" train --task image --data text.txt --out x.safetensors --tie-embeddings
expect_error "--lengths: applies to task lm only, not to checkpoint" "$TNN" eval --checkpoint cls.safetensors --data cls.tsv --lengths 16
expect_error "--images: applies to task image only" "$TNN" classify --checkpoint cls.safetensors --images text.txt
expect_error "--plot: expected a file name ending in .svg" "$TNN" eval --checkpoint model.safetensors --data text.txt --plot x.png
expect_error "help: expected one of train, eval" "$TNN" help trian

# Once a SIGFPE: --eval-every 0 without --save-every made the save period 0.
"$TNN" train --data text.txt --out e0.safetensors --dim 8 --layers 1 --rpe-dim 4 --seq-len 16 --batch 2 \
  --steps 3 --warmup 1 --eval-every 0 --threads 1 2> e0.log
rc=$?
if [ $rc -ne 0 ] || [ ! -f e0.safetensors ]; then
  echo "FAIL ($rc): train --eval-every 0"; cat e0.log; failures=$((failures + 1))
else
  echo "ok: train --eval-every 0 saves at the end only"
fi

if [ $failures -ne 0 ]; then echo "$failures failures"; exit 1; fi
echo "all error cases handled"
