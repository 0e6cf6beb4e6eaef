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

printf 'not a safetensors file at all, just text' > garbage.safetensors
head -c 100 model.safetensors > truncated.safetensors
printf '{"vocab_size": 256, "dim": 8, "layers": 1, "colour": "blue"}' > unknown_key.json
printf '{"vocab_size": 256, "dim": 8, "layers": 1, "heads": 5, "expand_ratio": 0.25}' > bad_heads.json
printf '{"vocab_size": 256, "dim": 8, "layers": 1, "gamma": 1.5}' > bad_gamma.json
printf '{"vocab_size": 256, "dim": "eight", "layers": 1}' > bad_type.json
printf '{"vocab_size": 256, "dim": 8, "layers": 1,' > bad_json.json
: > empty.txt

expect_error "unknown_key\|unknown key 'colour'" "$TNN" train --data text.txt --out x.safetensors --config unknown_key.json
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
expect_error "garbage.safetensors" "$TNN" grad --checkpoint model.safetensors --batch garbage.safetensors --out g.safetensors
expect_error "required" "$TNN" grad --checkpoint model.safetensors

if [ $failures -ne 0 ]; then echo "$failures failures"; exit 1; fi
echo "all error cases handled"
