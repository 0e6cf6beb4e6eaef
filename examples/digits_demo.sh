#!/usr/bin/env bash
# The image demo: the UCI hand-written digits (1,797 8x8 grey images, shipped in Debian's
# python3-sklearn) on a fixed 80/20 split; a 2-D TNN (one token per pixel, an 8 x 8 grid mixed
# by the 2-D TNO) beside a 1-D TNN over the same pixels flattened to a row of 64 (a 1 x 64
# grid, where the 2-D TNO is exactly the bidirectional 1-D TNO). Same widths, steps and seed.
#   examples/digits_demo.sh BUILD_DIR [OUT_DIR] [STEPS]
# BUILD_DIR holds bin/train_images (built with the examples). Prints both test accuracies.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: digits_demo.sh BUILD_DIR [OUT_DIR] [STEPS]}
out=${2:-$build/digits}
steps=${3:-1000}
bin=$(cd "$build" && pwd)/bin
mkdir -p "$out/2d" "$out/1d"
out=$(cd "$out" && pwd)
python3 "$here/digits_to_safetensors.py" "$out"

echo "== 2-D TNN: 8 x 8 grid of pixels, dim 64, 2 layers, $steps steps"
(cd "$out/2d" && "$bin/train_images" "$out/digits_train.safetensors" "$out/digits_test.safetensors" "$steps" 1 64 2) |
  tee "$out/2d/log.txt"
echo "== 1-D TNN: the same pixels as a row of 64, dim 64, 2 layers, $steps steps"
(cd "$out/1d" && "$bin/train_images" "$out/digits_flat_train.safetensors" "$out/digits_flat_test.safetensors" "$steps" 1 64 2) |
  tee "$out/1d/log.txt"
echo "== digits test accuracy (360 held-out images)"
printf '2-D TNN: %s\n1-D TNN: %s\n' "$(grep 'test accuracy' "$out/2d/log.txt")" "$(grep 'test accuracy' "$out/1d/log.txt")"
