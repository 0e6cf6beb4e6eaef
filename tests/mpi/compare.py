#!/usr/bin/env python3
"""Compare two tnn runs (tests/mpi/train_mpi.sh), with the standard library only.

  compare.py params A.safetensors B.safetensors TOL   every tensor: max|a-b| <= TOL * max|b|
  compare.py losses A.csv B.csv TOL                   every logged training loss within TOL relative
  compare.py eval A.json B.json TOL                   tnn eval --json: every loss within TOL relative
Prints the largest relative difference; exits 1 when a check fails."""
import json
import struct
import sys


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        fmt = {"F32": "f", "F64": "d"}[info["dtype"]]
        begin, end = info["data_offsets"]
        count = (end - begin) // struct.calcsize(fmt)
        out[name] = struct.unpack("<%d%s" % (count, fmt), data[begin:end])
    return out


def losses(path):
    """(step, loss) of every training row; the columns are named by the header (step, kind, loss)."""
    rows = []
    with open(path) as f:
        header = next(f).rstrip("\n").split(",")
        step, kind, loss = header.index("step"), header.index("kind"), header.index("loss")
        for line in f:
            cols = line.rstrip("\n").split(",")
            if cols[kind] == "train":
                rows.append((int(cols[step]), float(cols[loss])))
    return rows


def main():
    kind, a, b, tol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    worst, where = 0.0, ""
    if kind == "params":
        ta, tb = read_safetensors(a), read_safetensors(b)
        if sorted(ta) != sorted(tb):
            print("different tensor names"); return 1
        for name in ta:
            scale = max(abs(v) for v in tb[name]) or 1e-30
            d = max(abs(x - y) for x, y in zip(ta[name], tb[name])) / scale
            if d > worst:
                worst, where = d, name
    elif kind == "losses":
        la, lb = losses(a), losses(b)
        if [s for s, _ in la] != [s for s, _ in lb] or not la:
            print("different logged steps: %s vs %s" % ([s for s, _ in la], [s for s, _ in lb])); return 1
        for (s, x), (_, y) in zip(la, lb):
            d = abs(x - y) / abs(y)
            if d > worst:
                worst, where = d, "step %d (%g vs %g)" % (s, x, y)
    elif kind == "eval":
        ea, eb = json.load(open(a)), json.load(open(b))
        for x, y, n in zip(ea["loss"], eb["loss"], ea["lengths"]):
            d = abs(x - y) / abs(y)
            if d > worst:
                worst, where = d, "length %d (%r vs %r)" % (n, x, y)
    else:
        print("unknown comparison " + kind); return 2
    print("%s: largest relative difference %.3g %s" % (kind, worst, where))
    return 0 if worst <= tol else 1


sys.exit(main())
