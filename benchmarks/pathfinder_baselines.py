#!/usr/bin/env python3
"""Reference models for the Pathfinder files of tnn-pathfinder, in PyTorch, reading the same
safetensors files as `tnn train --task image` (images U8 [M, H, W, 1] scaled to [0, 1], labels
I32 [M]). They separate two questions when the TNN stays at chance: are the files learnable
(a small convolutional network), and does a sequence model over patches of the same shape as
tnn's 2-D image classifier learn them in the same budget (a ViT: patch embedding, learned
positions, pre-norm Transformer layers, mean pooling)?

  cnn   six 3 x 3 convolutions of C channels with BatchNorm and ReLU, global max pooling
        (--pool mean: average pooling), a linear head
  vit   P x P patches -> linear to D, learned positions, L pre-norm Transformer layers of H heads
        (MLP 2D, no dropout), a LayerNorm, mean pooling (--pool max: max pooling), a linear head;
        --stem S puts S 3 x 3 convolutions of C channels with ReLU before the patches (0: none)

Adam, constant learning rate, batches of B drawn as seeded permutations of the training images;
validation accuracy every --eval-every steps, test accuracy at the end (the last model).
  /usr/bin/python3 benchmarks/pathfinder_baselines.py MODEL DATA_DIR [--epochs E] [--batch B]
      [--lr X] [--threads T] [--max-train M] [--patch P] [--dim D] [--layers L] [--heads H]
      [--channels C] [--stem S] [--pool max|mean] [--seed S]
DATA_DIR holds train/valid/test.safetensors (tnn-pathfinder --out-dir DATA_DIR; the 2-D files,
not --flat). Debian: apt-get install python3-torch.
"""
import argparse
import os
import sys
import time


def die(msg):
    print(f"pathfinder_baselines.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError as e:
    die(f"expected numpy and PyTorch (Debian: apt-get install python3-torch), got: {e}")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import tnn_safetensors  # noqa: E402  (the project's one safetensors reader/writer in Python)


def read_safetensors(path):
    """{name: numpy array} of a safetensors file."""
    try:
        return tnn_safetensors.load(path)[0]
    except OSError as e:
        die(f"cannot read {path}: {e.strerror}")
    except ValueError as e:
        die(f"{path}: {e}")


def load_split(path, limit=None):
    t = read_safetensors(path)
    if "images" not in t or "labels" not in t:
        die(f"{path}: expected tensors 'images' and 'labels'")
    images, labels = t["images"][:limit], t["labels"][:limit]
    if images.ndim != 4 or images.shape[3] != 1 or images.shape[1] == 1:
        die(f"{path}: expected images [M, H, W, 1] (the 2-D files, not --flat), got {list(images.shape)}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()  # [M, 1, H, W]
    return x, torch.from_numpy(labels.astype(np.int64))


class Cnn(nn.Module):
    def __init__(self, channels, pool):
        super().__init__()
        layers, c = [], 1
        for _ in range(6):
            layers += [nn.Conv2d(c, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
            c = channels
        self.body = nn.Sequential(*layers)
        self.pool = pool
        self.head = nn.Linear(channels, 2)

    def forward(self, x):
        h = self.body(x).flatten(2)  # [B, C, H W]
        return self.head(h.amax(2) if self.pool == "max" else h.mean(2))


class Vit(nn.Module):
    def __init__(self, side, patch, dim, layers, heads, pool, stem=0, channels=1):
        super().__init__()
        if side % patch:
            die(f"--patch: expected a divisor of the image side {side}, got {patch}")
        self.patch, self.grid, self.pool = patch, side // patch, pool
        convs, c = [], 1
        for _ in range(stem):
            convs += [nn.Conv2d(c, channels, 3, padding=1), nn.ReLU()]
            c = channels
        self.stem = nn.Sequential(*convs)
        self.embed = nn.Linear(patch * patch * c, dim)
        self.positions = nn.Parameter(torch.randn(1, self.grid * self.grid, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 2)

    def forward(self, x):
        x = self.stem(x)
        b, c, g, p = x.shape[0], x.shape[1], self.grid, self.patch
        # token gi * grid + gj holds patch (gi, gj): its pixels row by row (tnn's image_to_patches),
        # each pixel's channels together
        patches = x.reshape(b, c, g, p, g, p).permute(0, 2, 4, 3, 5, 1).reshape(b, g * g, p * p * c)
        h = self.norm(self.layers(self.embed(patches) + self.positions))
        return self.head(h.mean(1) if self.pool == "mean" else h.amax(1))


def accuracy(model, x, y, batch=500):
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    model.train()
    return hits / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", choices=["cnn", "vit"])
    ap.add_argument("data")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-train", type=int, default=None, help="use the first M training images")
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--stem", type=int, default=0, help="vit: 3 x 3 convolutions before the patches")
    ap.add_argument("--pool", choices=["max", "mean"], default=None, help="default: max for cnn, mean for vit")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.epochs <= 0 or a.batch < 1 or a.lr <= 0 or a.threads < 1 or a.stem < 0:
        die("expected --epochs > 0, --batch >= 1, --lr > 0, --threads >= 1, --stem >= 0")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x_train, y_train = load_split(f"{a.data}/train.safetensors", a.max_train)
    x_valid, y_valid = load_split(f"{a.data}/valid.safetensors")
    x_test, y_test = load_split(f"{a.data}/test.safetensors")
    if len(x_train) < a.batch:
        die(f"expected at least --batch = {a.batch} training images, got {len(x_train)}")
    pool = a.pool or ("max" if a.model == "cnn" else "mean")
    model = (Cnn(a.channels, pool) if a.model == "cnn" else
             Vit(x_train.shape[2], a.patch, a.dim, a.layers, a.heads, pool, a.stem, a.channels))
    params = sum(p.numel() for p in model.parameters())
    per_epoch = len(x_train) // a.batch
    steps = max(1, int(a.epochs * per_epoch))
    print(f"{a.model} ({pool} pooling), {params} parameters; {len(x_train)} training images, "
          f"{steps} steps of {a.batch}, lr {a.lr}, {a.threads} threads", flush=True)
    opt = torch.optim.Adam(model.parameters(), a.lr)
    gen = torch.Generator().manual_seed(a.seed)
    start = time.time()
    for step in range(steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(x_train), generator=gen)
        idx = order[(step % per_epoch) * a.batch:][:a.batch]
        loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % a.eval_every == 0 or step + 1 == steps:
            print(f"step {step + 1}: loss {loss.item():.4f}, validation accuracy "
                  f"{100 * accuracy(model, x_valid, y_valid):.2f}%, {time.time() - start:.0f} s", flush=True)
    print(f"test accuracy {100 * accuracy(model, x_test, y_test):.2f}% ({len(x_test)} images), "
          f"{steps * a.batch / len(x_train):.2f} epochs in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
