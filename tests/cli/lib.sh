# What the end-to-end scripts of tests/cli share, sourced before they change directory:
#   . "$(dirname "$0")/lib.sh"
#   PY                    the Python they run, with tests/pytorch on its path (import safetensors_io:
#                         safetensors files from numpy, no torch)
#   fail MESSAGE          FAIL: MESSAGE on stderr, exit 1
#   start_in DIR          DIR emptied and made the current directory
#   expect_error WHAT PATTERN COMMAND...
#                         COMMAND exits non-zero with one line on stderr, matching PATTERN (grep)
#   stop_resume_is_identical WHAT STEP
#                         `$TNN train "${ARGS[@]}"` stopped after STEP and resumed gives the files
#                         of the uninterrupted run full.safetensors (model and training state)
#   check_grad_output CHECKPOINT GRAD LOGITS_SHAPE
#                         `tnn grad`'s output GRAD: loss [], logits of LOGITS_SHAPE ("3,32,1"),
#                         a gradient for every tensor of CHECKPOINT but the fixed decay's gamma
PY=/usr/bin/python3
PYTHONPATH=$(cd "$(dirname "${BASH_SOURCE[0]}")/../pytorch" && pwd)${PYTHONPATH:+:$PYTHONPATH}
export PYTHONPATH

fail() { echo "FAIL: $*" >&2; exit 1; }

start_in() { rm -rf "$1" && mkdir -p "$1" && cd "$1"; }

expect_error() {  # WHAT PATTERN COMMAND...
  local what=$1 needle=$2
  shift 2
  set +e
  "$@" > err.out 2> err.txt
  local rc=$?
  set -e
  [ $rc -ne 0 ] || fail "$what: expected a non-zero exit"
  grep -q -- "$needle" err.txt || fail "$what: expected '$needle' in: $(cat err.txt)"
  [ "$(wc -l < err.txt)" -eq 1 ] || fail "$what: expected one line on stderr, got: $(cat err.txt)"
}

stop_resume_is_identical() {  # WHAT STEP
  "$TNN" train "${ARGS[@]}" --out stop.safetensors --stop-after "$2" 2> stop1.log
  grep -q "stopped after step $2" stop1.log || fail "--stop-after did not stop at $2"
  "$TNN" train "${ARGS[@]}" --out stop.safetensors --resume 2> stop2.log
  cmp full.safetensors stop.safetensors || fail "$1: stop + resume differs from the uninterrupted run"
  cmp full.optim.safetensors stop.optim.safetensors || fail "$1: stop + resume: training state differs"
  echo "ok: $1 stop + resume is byte-identical"
}

check_grad_output() {  # CHECKPOINT GRAD LOGITS_SHAPE
  $PY - "$1" "$2" "$3" <<'PYEOF' || fail "tnn grad output"
import sys
import safetensors_io as st
m, _ = st.load(sys.argv[1])
g, _ = st.load(sys.argv[2])
shape = tuple(int(d) for d in sys.argv[3].split(","))
assert g["loss"].shape == () and g["logits"].shape == shape, (g["loss"].shape, g["logits"].shape)
want = {"grad." + n for n in m} - {"grad.layers.0.token_mixer.toep.gamma"}  # fixed decay: not trained
assert set(g) - {"loss", "logits"} == want, sorted(set(g) ^ want)
print(f"ok: tnn grad: loss {float(g['loss']):.4f}, logits {list(shape)}, {len(want)} gradients")
PYEOF
}
