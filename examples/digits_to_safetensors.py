#!/usr/bin/env python3
"""Converts the UCI hand-written digits (1,797 8x8 grey images, 10 classes), as shipped in
Debian's python3-sklearn (sklearn/datasets/data/digits.csv.gz), into tnn's image files:

  OUT/digits_train.safetensors, OUT/digits_test.safetensors           images U8 [M, 8, 8, 1]
  OUT/digits_flat_train.safetensors, OUT/digits_flat_test.safetensors images U8 [M, 1, 64, 1]

(pixels 0..16 scaled to 0..255 as round(v * 255 / 16); labels I32 [M]; metadata "tnn.labels"
= ["0", ..., "9"]). The split is fixed: a seeded shuffle (random.Random(20231)), the first 80%
for training, the rest for testing. The flat files hold the same images as one row of 64
pixels, for a 1-D TNN over the flattened image. Standard library only.

usage: digits_to_safetensors.py [--csv PATH] OUT_DIR
"""
import argparse
import gzip
import json
import os
import random
import struct
import sys

DEFAULT_CSV = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"


def write_safetensors(path, tensors, metadata):
    """tensors: name -> (dtype "U8" or "I32", shape, flat list of ints)."""
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, (dtype, shape, values) in tensors.items():
        blob = struct.pack({"U8": "<%dB", "I32": "<%di"}[dtype] % len(values), *values)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", default=DEFAULT_CSV)
    ap.add_argument("out_dir")
    a = ap.parse_args()
    if not os.path.exists(a.csv):
        sys.exit("digits_to_safetensors: %s not found (apt-get install python3-sklearn, or pass --csv)" % a.csv)
    rows = []
    with gzip.open(a.csv, "rt") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            v = [int(float(x)) for x in line.split(",")]
            if len(v) != 65 or not all(0 <= p <= 16 for p in v[:64]) or not 0 <= v[64] <= 9:
                sys.exit("digits_to_safetensors: unexpected line in %s: %r" % (a.csv, line[:80]))
            rows.append(([(p * 255 + 8) // 16 for p in v[:64]], v[64]))
    random.Random(20231).shuffle(rows)
    n_train = len(rows) * 8 // 10
    os.makedirs(a.out_dir, exist_ok=True)
    meta = {"tnn.labels": json.dumps([str(k) for k in range(10)])}
    for part, sel in (("train", rows[:n_train]), ("test", rows[n_train:])):
        pixels = [p for img, _ in sel for p in img]
        labels = [lab for _, lab in sel]
        for kind, shape in (("", (len(sel), 8, 8, 1)), ("flat_", (len(sel), 1, 64, 1))):
            path = os.path.join(a.out_dir, "digits_%s%s.safetensors" % (kind, part))
            write_safetensors(path, {"images": ("U8", shape, pixels), "labels": ("I32", (len(sel),), labels)}, meta)
    print("digits: %d images, %d train / %d test -> %s" % (len(rows), n_train, len(rows) - n_train, a.out_dir))


if __name__ == "__main__":
    main()
