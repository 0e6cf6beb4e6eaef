#!/usr/bin/env bash
# Hostile and careless input to the newer surfaces of the programs -- classification, images,
# generation into pipes, plots, locked outputs, tnn-listops and tnn-pathfinder -- one case per
# class (docs/errors.md states the rules): each bad case exits non-zero (never on a signal) with
# exactly one error line, in bounded time and memory, and leaves what was saved untouched; each
# valid edge case keeps working.
# Usage: hostile_surfaces.sh /path/to/tnn /path/to/tnn-listops /path/to/tnn-pathfinder WORKDIR
set -uo pipefail
TNN=$1
LISTOPS=$2
PATHFINDER=$3
WORK=$4
. "$(dirname "$0")/lib.sh"  # PY (with safetensors_io), start_in
start_in "$WORK"
# This script goes on after a failure and counts them: its fail and expect_error replace lib.sh's.
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect_error PROGRAM-PREFIX "pattern" cmd args...: non-zero, not a signal, one line matching.
expect_error_of() {
  local prefix=$1 pattern=$2
  shift 2
  timeout 120 "$@" > out.txt 2> err.txt < "${STDIN:-/dev/null}"
  local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then fail "($rc) $*"; head -c 400 err.txt; echo; return; fi
  if [ "$(grep -c '' err.txt)" -ne 1 ] || ! grep -q "^$prefix: error: .*$pattern" err.txt || [ "$(wc -c < err.txt)" -gt 600 ]; then
    fail "(message) $*"; head -c 600 err.txt; echo; return
  fi
  echo "ok: $(cut -c1-170 err.txt)"
}
expect_error() { expect_error_of tnn "$@"; }
# peak_rss_kb FILE: the peak RSS /usr/bin/time wrote.
peak_rss_kb() { tail -1 "$1"; }

# Fixtures: a text, an LM, a text classifier, an image classifier.
for i in $(seq 1 300); do echo "line $i of a small text used to make a model"; done > text.txt
base=(--dim 8 --layers 1 --rpe-dim 4 --warmup 1 --steps 2 --eval-every 2 --threads 1)  # a flag may be given once
tiny=("${base[@]}" --seq-len 16 --batch 2)
tiny_img=("${base[@]}" --batch 2)  # --seq-len is for text tasks only
"$TNN" train --data text.txt --out lm.safetensors "${tiny[@]}" 2> fixture.err || { echo "FAIL: LM fixture: $(tail -1 fixture.err)"; exit 1; }
for i in $(seq 1 40); do echo -e "pos\tgood text $i"; echo -e "neg\tbad text $i"; done > labels.tsv
"$TNN" train --task classify --data labels.tsv --out cls.safetensors "${tiny[@]}" 2> fixture.err \
  || { echo "FAIL: classifier fixture: $(tail -1 fixture.err)"; exit 1; }
$PY - <<'EOF' || { echo "FAIL: image fixtures"; exit 1; }
import json, sys
import numpy as np
import safetensors_io as st
r = np.random.default_rng(1)
img = r.integers(0, 256, (8, 4, 4, 1)).astype(np.uint8)
st.save("img.safetensors", {"images": img, "labels": np.arange(8, dtype=np.int32) % 2},
        {"tnn.labels": json.dumps(["even", "odd"])})
# 2. memory bounded by the input: one image, one label of 2^31 - 1, no names
st.save("huge_label.safetensors", {"images": img[:1], "labels": np.array([2**31 - 1], dtype=np.int32)})
st.save("label_2e24.safetensors", {"images": img[:1], "labels": np.array([2**24 - 1], dtype=np.int32)})
# 3. out-of-range pixels in a file without labels
bad = img.astype(np.int32); bad[0, 0, 0, 0] = 300
st.save("nolabel_badpixel.safetensors", {"images": bad})
st.save("nolabel_negpixel.safetensors", {"images": -bad})
# names that cannot be printed one per line, or that --json would merge
st.save("names_newline.safetensors", {"images": img, "labels": np.arange(8, dtype=np.int32) % 2},
        {"tnn.labels": json.dumps(["even", "o\ndd"])})
st.save("names_dup.safetensors", {"images": img, "labels": np.arange(8, dtype=np.int32) % 2},
        {"tnn.labels": json.dumps(["same", "same"])})
EOF
"$TNN" train --task image --data img.safetensors --valid img.safetensors --out img_model.safetensors --patch-size 2 \
  "${tiny_img[@]}" 2> fixture.err || { echo "FAIL: image fixture: $(tail -1 fixture.err)"; exit 1; }

# 1. A hang: many distinct labels are read in linear time (a list scanned per line took minutes).
$PY -c "
with open('many.tsv', 'w') as f:
    for i in range(300000): f.write(f'label{i}\ttext {i}\n')"
expect_error "expected at least --batch = 400000 examples, got 300000" \
  "$TNN" train --task classify --data many.tsv --out many.safetensors "${base[@]}" --seq-len 16 --batch 400000 --valid-fraction 0

# 2. Memory bounded by the input: a tiny image file naming class 2^31 - 1 (or 2^24 - 1).
for f in huge_label label_2e24; do
  /usr/bin/time -f '%M' -o rss.txt "$TNN" train --task image --data $f.safetensors --out huge.safetensors \
    --patch-size 2 "${base[@]}" --batch 1 --valid-fraction 0 > /dev/null 2> err.txt
  grep -q "^tnn: error: .*expected class ids below 2 (the number of images)" err.txt && [ "$(grep -c '' err.txt)" -eq 1 ] \
    && [ "$(peak_rss_kb rss.txt)" -lt 150000 ] \
    && echo "ok: $f refused at $(peak_rss_kb rss.txt) KB: $(head -1 err.txt | cut -c1-120)" \
    || { fail "$f: $(head -c 300 err.txt), RSS $(peak_rss_kb rss.txt) KB"; }
done
[ -e huge.safetensors ] && fail "huge label: files left behind"

# 3. Out-of-range pixels are refused whether or not the file has labels.
expect_error "expected pixel values 0..255, got 300" "$TNN" classify --checkpoint img_model.safetensors --images nolabel_badpixel.safetensors
expect_error "expected pixel values 0..255, got -" "$TNN" classify --checkpoint img_model.safetensors --images nolabel_negpixel.safetensors

# 4. A label of invalid UTF-8 (or with a control character) is refused while reading, before any
#    work, and leaves nothing behind: the same command then says the same, not "already exists".
printf 'pos\tgood\nne\xffg\tbad\npos\tfine\n' > badlabel.tsv
for attempt in 1 2; do
  expect_error "badlabel.tsv' line 2: label: expected a class name of printable UTF-8.*invalid UTF-8" \
    "$TNN" train --task classify --data badlabel.tsv --out bl.safetensors "${tiny[@]}"
done
ls bl.* > /dev/null 2>&1 && fail "invalid UTF-8 label: files left behind: $(ls bl.*)"
printf 'pos\tgood\n\x1b[31mneg\tbad\n' > esclabel.tsv
expect_error "control character U+001B" "$TNN" train --task classify --data esclabel.tsv --out el.safetensors "${tiny[@]}"
# Class names from an image file: one printable line each, distinct.
expect_error "expected a class name of printable UTF-8.*U+000A" \
  "$TNN" train --task image --data names_newline.safetensors --out nn.safetensors --patch-size 2 "${tiny_img[@]}"
expect_error "expected distinct class names" \
  "$TNN" train --task image --data names_dup.safetensors --out nd.safetensors --patch-size 2 "${tiny_img[@]}"
# ... and from a checkpoint's metadata (a hand-edited or hostile file).
$PY - <<'EOF'
import json, sys
import safetensors_io as st
t, meta = st.load("cls.safetensors")
for name, labels in (("cls_newline", ["po\ns", "neg"]), ("cls_dup", ["pos", "pos"]), ("cls_ctrl", ["\u0085x", "neg"])):
    m = dict(meta); m["tnn.labels"] = json.dumps(labels)
    st.save(name + ".safetensors", t, m)
EOF
echo "some text" > one_line.txt
for f in cls_newline cls_dup cls_ctrl; do
  STDIN=one_line.txt expect_error "metadata 'tnn.labels': .*expected" "$TNN" classify --checkpoint $f.safetensors --json
done

# 5. Generation into a closed pipe or a full disk: text is written as it is generated, and the
#    first failed write ends the command with one line; memory stays flat.
check_pipe() {  # NAME, then generate's extra flags
  local name=$1
  shift
  local start=$SECONDS
  ( /usr/bin/time -f '%M' -o rss.txt timeout 60 "$TNN" generate --checkpoint lm.safetensors --tokens 1000000000 "$@" \
      2> gen_err.txt; echo $? > gen_rc.txt ) | head -c 100 > head.txt
  local rc
  rc=$(cat gen_rc.txt)
  if [ "$rc" -ne 1 ] || [ "$(grep -c '' gen_err.txt)" -ne 1 ] || ! grep -q "^tnn: error: writing standard output: Broken pipe" gen_err.txt \
     || [ "$(wc -c < head.txt)" -ne 100 ] || [ $((SECONDS - start)) -gt 20 ] || [ "$(peak_rss_kb rss.txt)" -gt 150000 ]; then
    fail "generate $name | head -c 100: rc $rc after $((SECONDS - start)) s, RSS $(peak_rss_kb rss.txt) KB: $(head -c 300 gen_err.txt)"
  else
    echo "ok: generate $name | head -c 100: $((SECONDS - start)) s, peak RSS $(peak_rss_kb rss.txt) KB, $(cat gen_err.txt)"
  fi
}
check_pipe one
# ... and it ends within a second of the reader leaving: timed from head's exit to generate's.
mkfifo gen.fifo
"$TNN" generate --checkpoint lm.safetensors --tokens 1000000000 > gen.fifo 2> gen_err.txt &
gen=$!
head -c 100 < gen.fifo > head.txt
t0=$(date +%s%N)
wait $gen
gen_rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$gen_rc" -eq 1 ] && [ "$ms" -lt 1000 ] && [ "$(wc -c < head.txt)" -eq 100 ] \
  && echo "ok: generate ended ${ms} ms after head -c 100 exited" \
  || fail "generate after head -c 100 exited: rc $gen_rc after ${ms} ms: $(head -c 300 gen_err.txt)"
check_pipe json --json
check_pipe samples --samples 3
expect_error "writing standard output: No space left on device" \
  sh -c "exec \"$TNN\" generate --checkpoint lm.safetensors --tokens 1000000000 > /dev/full"
# Valid: the text of several samples reaches the output whole and in order.
"$TNN" generate --checkpoint lm.safetensors --tokens 300 --samples 3 --seed 7 > three.txt 2> err.txt || fail "3 samples: $(cat err.txt)"
"$TNN" generate --checkpoint lm.safetensors --tokens 300 --seed 9 > s2.txt 2> err.txt
[ "$(grep -c '^----- sample' three.txt)" -eq 3 ] && grep -q "^----- sample 2 (seed 9) -----" three.txt \
  && tail -c 301 three.txt | cmp -s - s2.txt && echo "ok: 3 samples, the last equal to its own seed's" \
  || fail "3 samples are not whole or in order"
"$TNN" generate --checkpoint lm.safetensors --tokens 300 --samples 2 --json --prompt $'\xff"\\' --echo > two.json 2> err.txt
$PY -c "import json; a = json.load(open('two.json')); assert len(a) == 2 and all(s.startswith('\ufffd\"\\\\') for s in a), a" \
  && echo "ok: --json samples are valid JSON" || fail "--json samples: $(head -c 300 two.json)"

# 6. A named pipe whose writer arrives late is waited for, not read as an empty file.
mkfifo late.fifo late2.fifo
( sleep 1; cat text.txt > late.fifo ) &
"$TNN" eval --checkpoint lm.safetensors --data late.fifo --seq-len 16 > late.txt 2> err.txt \
  && grep -q "^ *16 " late.txt && echo "ok: eval --data on a FIFO with a late writer" || fail "FIFO with a late writer: $(cat err.txt)"
wait
( sleep 1; cat labels.tsv > late2.fifo ) &
"$TNN" eval --checkpoint cls.safetensors --data late2.fifo --all > late.txt 2> err.txt \
  && grep -q "of 80" late.txt && echo "ok: classifier eval on a FIFO with a late writer" || fail "TSV FIFO with a late writer: $(cat err.txt) $(cat late.txt)"
wait

# 7. Standard input: a directory is refused; a 2 GiB line costs no memory (cut as it is read).
mkdir -p adir
STDIN=adir expect_error "standard input: expected text.*got a directory" "$TNN" classify --checkpoint cls.safetensors
head -c 2147483648 /dev/zero | /usr/bin/time -f '%M' -o rss.txt "$TNN" classify --checkpoint cls.safetensors > long.txt 2> err.txt
[ $? -eq 0 ] && [ "$(grep -c '' long.txt)" -eq 1 ] && [ "$(peak_rss_kb rss.txt)" -lt 150000 ] \
  && echo "ok: a 2 GiB stdin line classified at $(peak_rss_kb rss.txt) KB" || fail "2 GiB line: RSS $(peak_rss_kb rss.txt) KB: $(cat err.txt)"

# 8. Plots: well-formed XML whatever --title and --label hold; written atomically.
"$TNN" eval --checkpoint lm.safetensors --data text.txt --lengths 8,16 --plot p.svg --title $'bad\x01\xff<&>"title\nx' \
  --label $'\x1b[1m\xc3' > /dev/null 2> err.txt || fail "plot: $(cat err.txt)"
$PY -c "import xml.etree.ElementTree as E; E.parse('p.svg')" 2> err.txt && echo "ok: SVG well-formed with hostile --title/--label" \
  || fail "SVG not well-formed: $(tail -1 err.txt)"

# 9. Inputs and outputs cannot alias: an output naming an input is refused, the input untouched.
cp lm.safetensors lm_copy.safetensors
cp lm.safetensors lm_model.svg  # a checkpoint by any name; --plot takes names ending in .svg
ln -f lm_model.svg lm_link.svg
cksum lm_copy.safetensors lm_model.svg > sums.txt
expect_error "--plot 'lm_model.svg': names the input --checkpoint" \
  "$TNN" eval --checkpoint lm_model.svg --data text.txt --lengths 8 --plot lm_model.svg
expect_error "--plot 'lm_link.svg': names the input --checkpoint" \
  "$TNN" eval --checkpoint lm_model.svg --data text.txt --lengths 8 --plot lm_link.svg
$PY -c "
import struct, json
t = struct.pack('<4i', 1, 2, 3, 4); g = struct.pack('<4i', 2, 3, 4, 5)
h = json.dumps({'tokens': {'dtype': 'I32', 'shape': [1, 4], 'data_offsets': [0, 16]}, 'targets': {'dtype': 'I32', 'shape': [1, 4], 'data_offsets': [16, 32]}}).encode()
open('batch.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + t + g)"
expect_error "--out 'lm_copy.safetensors': names the input --checkpoint" \
  "$TNN" grad --checkpoint lm_copy.safetensors --inputs batch.safetensors --out lm_copy.safetensors
expect_error "--out 'batch.safetensors': names the input --inputs" \
  "$TNN" grad --checkpoint lm_copy.safetensors --inputs batch.safetensors --out batch.safetensors
cp text.txt data_copy.txt
expect_error "--out 'data_copy.txt': names the input --data" "$TNN" train --data data_copy.txt --out data_copy.txt "${tiny[@]}" --force
expect_error "--log 'data_copy.txt': names the input --data" \
  "$TNN" train --data data_copy.txt --out alias.safetensors --log data_copy.txt "${tiny[@]}" --force
cksum lm_copy.safetensors lm_model.svg | cmp -s - sums.txt && cmp -s text.txt data_copy.txt && echo "ok: the inputs are untouched" \
  || fail "an input was changed"

# 10. The log is an output like any other: /dev/full is refused before any work.
expect_error "--log '/dev/full': expected a regular file path" "$TNN" train --data text.txt --out devfull.safetensors --log /dev/full "${tiny[@]}"
ls devfull.* > /dev/null 2>&1 && fail "--log /dev/full: files left behind"

# 11. Exclusive output: a second run on an --out a live run holds is refused with one line;
#     after kill -9 of the holder, a new run proceeds (--resume from its last save).
long=(--dim 8 --layers 1 --rpe-dim 4 --seq-len 16 --batch 2 --warmup 1 --steps 100000 --eval-every 0 --save-every 1 --threads 1)
"$TNN" train --data text.txt --out held.safetensors "${long[@]}" > /dev/null 2> held.err &
holder=$!
for _ in $(seq 1 600); do [ -s held.optim.safetensors ] && break; sleep 0.05; done
[ -s held.optim.safetensors ] || fail "the holding run never saved: $(cat held.err)"
expect_error "--out 'held.safetensors' is in use by another run (process $holder)" \
  "$TNN" train --data text.txt --out held.safetensors "${long[@]}" --resume
expect_error "--out 'held.safetensors' is in use by another run" \
  "$TNN" train --data text.txt --out held.safetensors "${long[@]}" --force
expect_error "--log 'held.safetensors.csv' is in use by another run (process $holder)" \
  "$TNN" train --data text.txt --out other.safetensors --log held.safetensors.csv "${long[@]}"
kill -9 $holder
wait $holder 2> /dev/null
"$TNN" train --data text.txt --out held.safetensors "${long[@]}" --resume > /dev/null 2> resume.err &
resumer=$!
for _ in $(seq 1 600); do grep -q "resuming" resume.err && break; sleep 0.05; done
grep -q "resuming" resume.err && echo "ok: after kill -9 of the holder, --resume proceeds" || fail "resume after kill -9: $(cat resume.err)"
kill -TERM $resumer
wait $resumer 2> /dev/null
ls held.*lock > /dev/null 2>&1 && fail "the lock files of a finished run are left behind: $(ls held.*lock)"

# 12. Seeds beyond 64 bits (or signed) are refused everywhere, as --threads beyond range is.
expect_error "--seed.*expected an integer 0 to 18446744073709551615.*beyond 64 bits" \
  "$TNN" generate --checkpoint lm.safetensors --seed 18446744073709551616
expect_error "--seed.*expected an integer 0 to 18446744073709551615" "$TNN" train --data text.txt --out s.safetensors --seed -1
expect_error_of tnn-listops "--seed: expected an integer 0 to 18446744073709551615.*beyond 64 bits" \
  "$LISTOPS" --out-dir lo --seed 99999999999999999999
expect_error_of tnn-pathfinder "--seed: expected an integer 0 to 18446744073709551615.*beyond 64 bits" \
  "$PATHFINDER" --out-dir pf --seed 18446744073709551616
"$TNN" generate --checkpoint lm.safetensors --seed 18446744073709551615 --tokens 5 > /dev/null 2> err.txt \
  && echo "ok: --seed 2^64 - 1 works" || fail "--seed 2^64 - 1: $(cat err.txt)"

# 13. tnn-listops: impossible length ranges are refused in bounded time.
expect_error_of tnn-listops "trees of --max-depth 1 and --max-args 10 have at most 1 tokens" \
  "$LISTOPS" --out-dir lo --max-depth 1 --min-length 5 --max-length 100
expect_error_of tnn-listops "no new tree in 2000000 draws" "$LISTOPS" --out-dir lo --min-length 0 --max-length 2 --train 100
expect_error_of tnn-listops "expected 0 <= min, min + 1 < max" "$LISTOPS" --out-dir lo --min-length 10 --max-length 11
ls lo/*.tmp* > /dev/null 2>&1 && fail "tnn-listops left temporaries: $(ls lo)"

# 14. A full disk: tnn-listops, tnn-pathfinder and a plot leave no temporary and destroy nothing
#     (a 64 KiB tmpfs; needs root, skipped otherwise).
mkdir -p small
if mount -t tmpfs -o size=64k tmpfs small 2> /dev/null; then
  expect_error_of tnn-listops "No space left on device" "$LISTOPS" --out-dir small/lo --train 1000 --valid 0 --test 0 \
    --min-length 50 --max-length 200
  [ -z "$(ls small/lo | grep -v '\.lock$')" ] && echo "ok: no temporary left by tnn-listops" || fail "tnn-listops left: $(ls small/lo)"
  expect_error_of tnn-pathfinder "No space left on device" "$PATHFINDER" --out-dir small/pf --train 2000 --valid 0 --test 0 --threads 1
  [ -z "$(ls small/pf)" ] && echo "ok: no temporary left by tnn-pathfinder" || fail "tnn-pathfinder left: $(ls small/pf)"
  rm -rf small/lo small/pf
  cp p.svg small/plot.svg
  head -c 1000000 /dev/urandom > small/filler 2> /dev/null  # the disk is full now
  expect_error "No space left on device" "$TNN" eval --checkpoint lm.safetensors --data text.txt --lengths 8,16 \
    --plot small/plot.svg --title "$(head -c 3000 /dev/zero | tr '\0' t)"
  cmp -s p.svg small/plot.svg && [ "$(ls small)" = "$(printf 'filler\nplot.svg')" ] \
    && echo "ok: the earlier plot is whole, no temporary left" || fail "plot on a full disk: $(ls small)"
  umount small
else
  echo "skip: full-disk cases (cannot mount a tmpfs here)"
fi

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
