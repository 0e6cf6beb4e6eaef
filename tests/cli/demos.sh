#!/usr/bin/env bash
# The example scripts a newcomer runs first, each at a few steps on tiny data, run by ctest: they
# must run to their result table with any step count (warm-ups follow the steps), and their
# flags must be ones the program accepts.
#  - examples/listops_demo.sh (tnn-listops, tnn train --task classify, tnn eval)
#  - examples/pathfinder_demo.sh (tnn-pathfinder, the 2-D and the 1-D image models)
#  - examples/digits_demo.sh, where the examples were built (bin/train_images) and Debian's
#    python3-sklearn (its digits) is installed
# Usage: demos.sh /path/to/tnn [/path/to/tnn-listops /path/to/tnn-pathfinder] WORKDIR (all three in one folder)
set -euo pipefail
TNN=$1
WORK=${*: -1}  # the last argument (tnn-listops and tnn-pathfinder come between)
EXAMPLES=$(cd "$(dirname "$0")/../../examples" && pwd)
BIN=$(cd "$(dirname "$TNN")" && pwd)
. "$(dirname "$0")/lib.sh"
start_in "$WORK"

STEPS=3 BATCH=4 THREADS=2 "$EXAMPLES/listops_demo.sh" "$BIN" listops > listops.log 2>&1 ||
  fail "listops_demo.sh: $(tail -n 3 listops.log)"
grep -q "| this run, TNN" listops.log || fail "listops_demo.sh printed no result: $(tail -n 3 listops.log)"
echo "ok: listops_demo.sh at 3 steps"

TRAIN=300 VALID=50 TEST=60 STEPS=5 BATCH=8 THREADS=2 "$EXAMPLES/pathfinder_demo.sh" "$BIN" pathfinder > pathfinder.log 2>&1 ||
  fail "pathfinder_demo.sh: $(tail -n 3 pathfinder.log)"
grep -q "| 1-D TNN over 1,024 pixels, this run" pathfinder.log || fail "pathfinder_demo.sh printed no result"
echo "ok: pathfinder_demo.sh at 5 steps"

if [ -x "$BIN/train_images" ] && python3 -c "import sklearn" 2> /dev/null; then  # the python3 digits_demo.sh runs
  "$EXAMPLES/digits_demo.sh" "$(dirname "$BIN")" digits 3 > digits.log 2>&1 || fail "digits_demo.sh: $(tail -n 3 digits.log)"
  grep -q "1-D TNN: test accuracy" digits.log || fail "digits_demo.sh printed no result"
  echo "ok: digits_demo.sh at 3 steps"
else
  echo "digits_demo.sh not run: needs bin/train_images (the examples) and python3-sklearn"
fi
