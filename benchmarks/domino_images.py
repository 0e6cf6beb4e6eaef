#!/usr/bin/env python3
"""A probe of what an image model learns from a few pixels among many: 32 x 32 black images
with 12 single white pixels at random and 3 white dominoes (two adjacent pixels), all
horizontal (label 0) or all vertical (label 1). One 3 x 3 convolution tells the classes apart;
a model over 2 x 2 patches sees half the dominoes inside one patch; a model over single pixels
must find the orientation through its token mixer. Writes OUT_DIR/{train,valid,test}.safetensors
in the image file format of `tnn train --task image` (images U8 [M, 32, 32, 1], labels I32 [M]).
  /usr/bin/python3 benchmarks/domino_images.py OUT_DIR [--train 20000] [--valid 2000]
      [--test 2000] [--seed 0]
"""
import argparse
import os
import sys

try:
    import numpy as np
except ImportError as e:
    print(f"domino_images.py: error: expected numpy (Debian: apt-get install python3-numpy), got: {e}", file=sys.stderr)
    sys.exit(1)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import tnn_safetensors  # noqa: E402  (the project's one safetensors reader/writer in Python)


def make_split(rng, m, side=32, dots=12, dominoes=3):
    images = np.zeros((m, side, side, 1), np.uint8)
    labels = rng.integers(0, 2, m).astype(np.int32)
    for i in range(m):
        for _ in range(dots):
            images[i, rng.integers(side), rng.integers(side), 0] = 255
        for _ in range(dominoes):
            r, c = rng.integers(1, side - 2, 2)
            if labels[i]:
                images[i, r:r + 2, c, 0] = 255  # vertical
            else:
                images[i, r, c:c + 2, 0] = 255  # horizontal
    return images, labels


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--valid", type=int, default=2000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if min(a.train, a.valid, a.test) < 1:
        print("domino_images.py: error: expected --train, --valid and --test >= 1", file=sys.stderr)
        sys.exit(1)
    os.makedirs(a.out_dir, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    for name, m in (("train", a.train), ("valid", a.valid), ("test", a.test)):
        images, labels = make_split(rng, m)
        tnn_safetensors.save(os.path.join(a.out_dir, f"{name}.safetensors"), {"images": images, "labels": labels})
        print(f"{a.out_dir}/{name}.safetensors: {m} images ({int(labels.sum())} vertical)")


if __name__ == "__main__":
    main()
