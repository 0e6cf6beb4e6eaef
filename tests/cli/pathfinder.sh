#!/usr/bin/env bash
# End-to-end checks of tnn-pathfinder (the LRA Pathfinder images), run by ctest:
#  - the same seed gives the same files, whatever --threads; another seed other files; the
#    largest seed (2^64 - 1) is accepted;
#  - the files are what `tnn train --task image` reads: images U8 [M, 32, 32, 1], labels I32 [M]
#    with as many 1s as 0s (+-1), metadata tnn.labels ["disconnected", "connected"]; --flat
#    holds the same pixels as [M, 1, 1024, 1]; tnn trains on both and evaluates;
#  - the labels are right: a flood fill over the --solid rendering (gaps between dashes filled)
#    from one marker reaches the other exactly for label 1, on every difficulty and on Path-X;
#    the dashed images are the solid ones with gaps; and the check fails on flipped labels and
#    on a solid file of another seed;
#  - refusals: one line on stderr, non-zero exit, no file left behind.
# Usage: pathfinder.sh /path/to/tnn /path/to/tnn-pathfinder WORKDIR
set -euo pipefail
TNN=$1
PF=$2
WORK=$3
. "$(dirname "$0")/lib.sh"
start_in "$WORK"

# 1. Reproducible; independent of --threads; the seed matters; the full 64-bit range.
SMALL=(--train 300 --valid 40 --test 41)
"$PF" --out-dir a "${SMALL[@]}" --seed 7 --threads 2 > a.log
"$PF" --out-dir b "${SMALL[@]}" --seed 7 --threads 1 > b.log
for s in train valid test; do cmp a/$s.safetensors b/$s.safetensors || fail "--seed 7: $s differs between runs (threads 2 and 1)"; done
"$PF" --out-dir c "${SMALL[@]}" --seed 8 > /dev/null
cmp -s a/train.safetensors c/train.safetensors && fail "seeds 7 and 8 gave the same images"
"$PF" --out-dir max --train 4 --valid 0 --test 0 --seed 18446744073709551615 > max.log || fail "the largest seed was refused"
[ -f max/train.safetensors ] && [ ! -e max/valid.safetensors ] || fail "--valid 0: expected no valid file"
echo "ok: reproducible for a seed, independent of --threads"

# 2. Format, balance, and the flat variant.
"$PF" --out-dir flat "${SMALL[@]}" --seed 7 --flat > /dev/null
$PY - <<'EOF' || fail "format, balance or the flat variant is wrong"
import json, sys
import numpy as np
import safetensors_io as st
for split, m in (("train", 300), ("valid", 40), ("test", 41)):
    t, meta = st.load(f"a/{split}.safetensors")
    img, lab = t["images"], t["labels"]
    assert img.dtype == np.uint8 and img.shape == (m, 32, 32, 1), (img.dtype, img.shape)
    assert lab.dtype == np.int32 and lab.shape == (m,), (lab.dtype, lab.shape)
    assert json.loads(meta["tnn.labels"]) == ["disconnected", "connected"], meta
    assert set(np.unique(lab)) == {0, 1} and abs(int((lab == 1).sum()) - int((lab == 0).sum())) <= 1, np.bincount(lab)
    assert (img > 0).mean() > 0.05 and img.max() == 255, "images look empty"
    f, fmeta = st.load(f"flat/{split}.safetensors")
    assert f["images"].shape == (m, 1, 1024, 1), f["images"].shape
    assert np.array_equal(f["images"].reshape(m, 32, 32, 1), img), "flat pixels differ from the 2-D ones"
    assert np.array_equal(f["labels"], lab) and fmeta["tnn.labels"] == meta["tnn.labels"]
print("ok: U8 [M, 32, 32, 1] images, balanced I32 labels, class names; --flat = the same pixels [M, 1, 1024, 1]")
EOF

# 3. Labels: flood fill over the solid rendering (checker below), on all difficulties and Path-X.
cat > check.py <<'EOF'
# check.py DASHED SOLID: for every image, the dashed pixels lie on the solid (gap-filled)
# strokes, the solid strokes lie within two pixels of a dashed one (the gaps are short), the
# markers are bright in the dashed image, and an 8-connected flood fill over the solid
# strokes from one marker reaches the other exactly when the label is 1.
import collections, sys
import numpy as np
import safetensors_io as st
d, _ = st.load(sys.argv[1])
s, _ = st.load(sys.argv[2])
img, sol, lab, mk = d["images"][..., 0], s["images"][..., 0], d["labels"], s["markers"]
assert np.array_equal(lab, s["labels"]), "dashed and solid files have different labels"
M, H, W = img.shape
wrong = []
for i in range(M):
    on, ink = sol[i] > 0, img[i] > 0
    assert not (ink & ~on).any(), f"image {i}: dashed pixels off the solid strokes"
    near = np.zeros_like(ink)
    p = np.pad(ink, 2)
    for dy in range(5):
        for dx in range(5):
            near |= p[dy:dy + H, dx:dx + W]
    assert not (on & ~near).any(), f"image {i}: solid strokes far from any dash"
    assert (on & ~ink).any(), f"image {i}: no gaps between dashes"
    (y0, x0), (y1, x1) = mk[i]
    assert img[i, y0, x0] == 255 and img[i, y1, x1] == 255, f"image {i}: a marker centre is not bright"
    seen = np.zeros_like(on)
    seen[y0, x0] = True
    todo = collections.deque([(y0, x0)])
    while todo:
        y, x = todo.popleft()
        for ny in (y - 1, y, y + 1):
            for nx in (x - 1, x, x + 1):
                if 0 <= ny < H and 0 <= nx < W and on[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    todo.append((ny, nx))
    if int(seen[y1, x1]) != int(lab[i]):
        wrong.append(i)
assert not wrong, f"{len(wrong)} of {M} labels disagree with the flood fill, e.g. images {wrong[:5]}"
print(f"ok: {M} labels ({int(lab.sum())} connected) agree with a flood fill over the gap-filled paths")
EOF
for d in easy intermediate hard; do
  "$PF" --out-dir $d --train 200 --valid 0 --test 0 --seed 3 --difficulty $d > /dev/null
  "$PF" --out-dir ${d}_solid --train 200 --valid 0 --test 0 --seed 3 --difficulty $d --solid > /dev/null
  $PY check.py $d/train.safetensors ${d}_solid/train.safetensors || fail "--difficulty $d: labels"
done
"$PF" --out-dir x --size 128 --train 6 --valid 0 --test 0 --seed 3 > /dev/null
"$PF" --out-dir x_solid --size 128 --train 6 --valid 0 --test 0 --seed 3 --solid > /dev/null
$PY check.py x/train.safetensors x_solid/train.safetensors || fail "--size 128: labels"
# The check can fail: flipped labels, and a solid file of another seed.
$PY - <<'EOF'
import sys
import safetensors_io as st
for src, dst in (("hard/train.safetensors", "flipped.safetensors"),
                 ("hard_solid/train.safetensors", "flipped_solid.safetensors")):
    t, meta = st.load(src)
    t["labels"] = 1 - t["labels"]
    st.save(dst, t, meta)
EOF
$PY check.py flipped.safetensors flipped_solid.safetensors > flip.log 2>&1 && fail "the label check passed flipped labels"
grep -q "200 of 200 labels disagree" flip.log || fail "flipped labels: $(tail -1 flip.log)"
"$PF" --out-dir other_solid --train 200 --valid 0 --test 0 --seed 4 --solid > /dev/null
$PY - <<'EOF'  # seed 4's paths under seed 3's labels
import sys
import safetensors_io as st
t, meta = st.load("other_solid/train.safetensors")
t["labels"] = st.load("hard/train.safetensors")[0]["labels"]
st.save("other_paths.safetensors", t, meta)
EOF
$PY check.py hard/train.safetensors other_paths.safetensors > other.log 2>&1 &&
  fail "the label check passed a solid file of another seed"
grep -q "dashed pixels off the solid strokes" other.log || fail "another seed's paths: $(tail -1 other.log)"
echo "ok: the label check fails on flipped labels and on another seed's paths"

# 4. tnn reads both layouts: the 2-D TNN over 4 x 4 patches, the 1-D TNN over 1,024 pixels.
TINY=(--task image --dim 8 --layers 1 --rpe-dim 8 --batch 8 --steps 3 --warmup 1 --eval-every 3 --threads 2 --seed 1)
"$TNN" train "${TINY[@]}" --data a/train.safetensors --valid a/valid.safetensors --patch-size 4 --out m2d.safetensors \
  2> m2d.log || { cat m2d.log >&2; fail "tnn train on the 2-D images"; }
grep -q "32x32x1 images, 4x4 patches (a 8x8 grid), 2 classes" m2d.log || fail "2-D model line: $(grep model: m2d.log)"
"$TNN" train "${TINY[@]}" --data flat/train.safetensors --valid flat/valid.safetensors --patch-size 1 --out m1d.safetensors \
  2> m1d.log || { cat m1d.log >&2; fail "tnn train on the flat images"; }
grep -q "1x1024x1 images, 1x1 patches (a 1x1024 grid), 2 classes" m1d.log || fail "1-D model line: $(grep model: m1d.log)"
"$TNN" eval --checkpoint m2d.safetensors --data a/test.safetensors | grep -q "^accuracy 0\.[0-9]* (.* of 41 images)" ||
  fail "tnn eval on the 2-D test images"
"$TNN" eval --checkpoint m1d.safetensors --data flat/test.safetensors | grep -q "^accuracy 0\.[0-9]* (.* of 41 images)" ||
  fail "tnn eval on the flat test images"
echo "ok: tnn train --task image and tnn eval take both layouts"

# 5. Refusals: one line on stderr naming the setting, a non-zero exit, and nothing written.
expect_error() {  # PATTERN ARGS...
  local pattern=$1; shift
  set +e; "$PF" "$@" > out.txt 2> err.txt; local rc=$?; set -e
  [ $rc -ne 0 ] || fail "expected an error for: $*"
  [ "$(wc -l < err.txt)" -eq 1 ] || fail "expected one line on stderr for: $* -- got: $(cat err.txt)"
  grep -q -- "$pattern" err.txt || fail "expected '$pattern' for: $* -- got: $(cat err.txt)"
}
mkdir -p refused
expect_error "--seed: expected an integer 0 to 18446744073709551615, got \"-1\"" --out-dir refused --seed -1
expect_error "--seed: expected .* got .18446744073709551616." --out-dir refused --seed 18446744073709551616
expect_error "--seed: expected .* got .1e3." --out-dir refused --seed 1e3
expect_error "--difficulty: expected one of easy, intermediate, hard, got 'extreme'" --out-dir refused --difficulty extreme
expect_error "--size: expected one of 32, 128, got 64" --out-dir refused --size 64
expect_error "--train: expected 0 to .* images, got -5" --out-dir refused --train -5
expect_error "--contour-length: expected 1 to 32 dashes" --out-dir refused --contour-length 33
expect_error "--threads: expected" --out-dir refused --threads -1
expect_error "not expected: --bogus" --out-dir refused --bogus
expect_error "--out-dir is required" --train 3
expect_error "--contour-length 28 at --size 32: could not draw two separate paths of 28 dashes in 1000 attempts" \
  --out-dir refused --train 5 --valid 0 --test 0 --contour-length 28
mkdir -p refused/test.safetensors
expect_error "got an existing directory" --out-dir refused --train 5 --valid 5 --test 5
[ -z "$(ls refused | grep -v '^test.safetensors$')" ] || fail "a refused run left files: $(ls refused)"
touch plainfile
expect_error "--out-dir 'plainfile': expected a directory" --out-dir plainfile --train 3
echo "ok: refusals are one line, and leave no files"
