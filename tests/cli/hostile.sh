#!/usr/bin/env bash
# Hostile and careless input to the `tnn` program, one case per class of defect found in review: each bad
# case exits non-zero (never on a signal) with exactly one "tnn: error:" line of at most 400
# bytes, and leaves existing files untouched; each valid edge case keeps working.
# Usage: hostile.sh /path/to/tnn WORKDIR
set -uo pipefail
TNN=$1
WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect_error "pattern" cmd args...
expect_error() {
  local pattern=$1
  shift
  "$@" > out.txt 2> err.txt
  local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then fail "($rc) $*"; return; fi
  if [ "$(grep -c '' err.txt)" -ne 1 ] || ! grep -q "^tnn: error: .*$pattern" err.txt || [ "$(wc -c < err.txt)" -gt 400 ]; then
    fail "(message) $*"; head -c 600 err.txt; echo; return
  fi
  echo "ok: $(cut -c1-160 err.txt)"
}
# st_file OUT HEADER: a safetensors file with that JSON header and no data.
st_file() {
  local n=${#2} le="" i
  for i in 0 1 2 3 4 5 6 7; do le+=$(printf '\\x%02x' $(( (n >> (8 * i)) & 255 ))); done
  { printf "$le"; printf '%s' "$2"; } > "$1"
}

for i in $(seq 1 400); do echo "line $i of a small text used to make a model"; done > text.txt
base=(--dim 8 --layers 1 --rpe-dim 4 --seq-len 16 --batch 2 --warmup 1 --eval-every 3 --threads 1)
small=("${base[@]}" --steps 3)
"$TNN" train --data text.txt --out m.safetensors "${small[@]}" 2> fixture.err || { echo "FAIL: fixture: $(tail -1 fixture.err)"; exit 1; }
cksum m.safetensors m.optim.safetensors m.safetensors.csv > sums.txt

# 1. deep nesting (1e5 levels): a --config file, a checkpoint's tnn.config
deep=$(printf '%*s' 100000 '' | tr ' ' '[')
printf '{"vocab_size": 256, "dim": 8, "layers": 1, "gamma": %s' "$deep" > deep.json
expect_error "nested at most 64" "$TNN" train --data text.txt --out d.safetensors --config deep.json
st_file deep.safetensors "{\"__metadata__\":{\"tnn.config\":\"{\\\"dim\\\":$deep\"}}"
expect_error "nested at most 64" "$TNN" eval --checkpoint deep.safetensors --data text.txt
# 2. newlines in a key, a path, a list entry stay on one line
printf '{"vocab_size": 256, "dim": 8, "layers": 1, "gam\\nma": 1}' > nlkey.json
expect_error 'unknown key "gam\\nma"' "$TNN" train --data text.txt --out d.safetensors --config nlkey.json
expect_error "a\\\\nb.safetensors" "$TNN" generate --checkpoint $'a\nb.safetensors'
expect_error "lengths.*5\\\\n12" "$TNN" eval --checkpoint m.safetensors --data text.txt --lengths $'5\n12'
# 3. strict JSON: NUL in the header and in tnn.config, duplicate keys in tnn.config
python3 - <<'PY'
import struct, json
def st(h):
    return struct.pack('<Q', len(h)) + h
open('nulhdr.safetensors','wb').write(st(b'{}\0 {"x": 1}   '))
cfg = '{"vocab_size":256,"dim":8,"layers":1}'
open('nulcfg.safetensors','wb').write(st(json.dumps({"__metadata__": {"tnn.config": cfg + "\u0000{}"}}).encode()))
open('dupcfg.safetensors','wb').write(st(json.dumps({"__metadata__": {"tnn.config": cfg[:-1] + ',"dim":16}'}}).encode()))
# 4. a few hundred bytes claiming a 2^24-word vocabulary and 65536 layers
big = json.dumps({"vocab_size": 1 << 24, "dim": 1 << 20, "layers": 1 << 16, "expand_ratio": 1})
open('huge.safetensors','wb').write(st(json.dumps({"embed.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                                    "__metadata__": {"tnn.config": big}}).encode()) + b'\0\0\0\0')
PY
expect_error "NUL byte" "$TNN" eval --checkpoint nulhdr.safetensors --data text.txt
expect_error "NUL byte" "$TNN" eval --checkpoint nulcfg.safetensors --data text.txt
expect_error '"dim" appears twice' "$TNN" eval --checkpoint dupcfg.safetensors --data text.txt
/usr/bin/time -f '%M' -o rss.txt "$TNN" eval --checkpoint huge.safetensors --data text.txt > /dev/null 2> err.txt
grep -q "^tnn: error: .*needs .* tensors, the file has 1" err.txt || fail "huge vocab: $(cat err.txt)"
[ "$(tail -1 rss.txt)" -lt 200000 ] || fail "huge vocab: peak RSS $(tail -1 rss.txt) KB"
echo "ok: huge vocabulary in $(wc -c < huge.safetensors) bytes refused, peak RSS $(tail -1 rss.txt) KB"
expect_error "regular file or a pipe, got a device" "$TNN" train --data text.txt --out d.safetensors --config /dev/zero
# 5. huge --batch: refused (not "tokens 0, loss 0")
expect_error "batch size 9223372036854775807" "$TNN" eval --checkpoint m.safetensors --data text.txt --seq-len 16 --batch 9223372036854775807
# 6. write errors: a full disk, a closed pipe
to_full() { "$@" > /dev/full; }
expect_error "standard output.*No space left" to_full "$TNN" eval --checkpoint m.safetensors --data text.txt --seq-len 16 --json
expect_error "standard output.*No space left" to_full "$TNN" generate --checkpoint m.safetensors --tokens 50
"$TNN" generate --checkpoint m.safetensors --tokens 100000 2> pipe_err.txt | true
rc=${PIPESTATUS[0]}
{ [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && grep -q "^tnn: error: .*Broken pipe" pipe_err.txt && [ "$(grep -c '' pipe_err.txt)" -eq 1 ]; } \
  && echo "ok: closed pipe: $(cat pipe_err.txt)" || fail "closed pipe: rc $rc, $(cat pipe_err.txt)"
# 7. output paths checked before any work; a 250-byte name works
expect_error "--out: expected a file path, got an empty string" "$TNN" train --data text.txt --out ''
mkdir -p adir
expect_error "existing directory" "$TNN" train --data text.txt --out adir
expect_error "its directory" "$TNN" train --data text.txt --out nodir/x.safetensors
expect_error "--out.*its directory" "$TNN" grad --checkpoint m.safetensors --inputs m.safetensors --out nodir/g.safetensors
long=$(printf 'g%.0s' $(seq 1 250))
python3 -c "
import struct, json
t = struct.pack('<4i', 1, 2, 3, 4); g = struct.pack('<4i', 2, 3, 4, 5)
h = json.dumps({'tokens': {'dtype': 'I32', 'shape': [1, 4], 'data_offsets': [0, 16]}, 'targets': {'dtype': 'I32', 'shape': [1, 4], 'data_offsets': [16, 32]}}).encode()
open('batch.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + t + g)"
"$TNN" grad --checkpoint m.safetensors --inputs batch.safetensors --out "$long" 2> err.txt && [ -f "$long" ] \
  && echo "ok: 250-byte --out written" || fail "250-byte --out: $(cat err.txt)"
# 8. empty lists refused
expect_error "--lengths: expected at least one length" "$TNN" eval --checkpoint m.safetensors --data text.txt --lengths ''
# 10. no silent overwrite; files untouched
expect_error "already exists; give --resume.*--force" "$TNN" train --data text.txt --out m.safetensors "${small[@]}"
cksum m.safetensors m.optim.safetensors m.safetensors.csv | cmp -s - sums.txt || fail "refused overwrite changed files"
# 11. the wrong kind of file
expect_error "training-state.*give the model file 'm.safetensors'" "$TNN" eval --checkpoint m.optim.safetensors --data text.txt
expect_error "not a safetensors file" "$TNN" generate --checkpoint m.safetensors.csv
# 12. flags named, near misses suggested, the command's own help
expect_error "did you mean --steps? see tnn train --help" "$TNN" train --data text.txt --out n.safetensors --step 3
expect_error "did you mean generate? see tnn generate --help" "$TNN" gen --checkpoint m.safetensors
expect_error "--warmup: expected fewer steps than --steps (10)" "$TNN" train --data text.txt --out w.safetensors --steps 10 --warmup 20
expect_error "--resume: .*seed: saved 1, now 2" "$TNN" train --data text.txt --out m.safetensors "${small[@]}" --seed 2 --resume

# Valid inputs keep working
"$TNN" train --data text.txt --out m.safetensors "${small[@]}" --force 2> err.txt || fail "--force: $(cat err.txt)"
"$TNN" train --data text.txt --out short.safetensors "${base[@]}" --steps 10 --warmup 100 2> err.txt && fail "explicit long --warmup accepted"
head -c 3000 text.txt > nul.txt; printf 'a\0b\0\0c' >> nul.txt; head -c 3000 text.txt >> nul.txt
"$TNN" train --data nul.txt --out nul.safetensors "${small[@]}" 2> err.txt && echo "ok: NUL bytes in training text" \
  || fail "NUL bytes in text: $(cat err.txt)"
"$TNN" generate --checkpoint m.safetensors --prompt $'\xff\xfe\xc3' --tokens 5 > out.txt 2> err.txt && echo "ok: invalid UTF-8 prompt" \
  || fail "invalid UTF-8 prompt: $(cat err.txt)"
python3 - <<'PY'
import struct, json
b = open('m.safetensors', 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = b[8:8 + n].rstrip(b' ')
h = h + b' ' * (100_000_000 - len(h))
open('big_header.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + b[8 + n:])
PY
"$TNN" eval --checkpoint big_header.safetensors --data text.txt --seq-len 16 > out.txt 2> err.txt \
  && echo "ok: a 100 MB header (exactly the limit)" || fail "100 MB header: $(cat err.txt)"
rm -f big_header.safetensors
"$TNN" train --steps 10 --help > /dev/null || fail "train --help"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
