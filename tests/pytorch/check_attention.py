"""Cross-check tnn's attention layer and sinusoidal positions against PyTorch (float64).

For each configuration: random weights, x, dy (and ragged lengths) -> IN.safetensors (F64, and
F32 for the f32 run); tests/pytorch/attention_probe.cpp runs one forward and backward of
tnn::Attention, a decoding pass through its KV cache, and add_sinusoidal_positions; this script
computes the same with the attention written out in torch (scores, masks, softmax, weighted sum;
autograd for the gradients) and fairseq's SinusoidalPositionalEmbedding.get_embedding, and
compares: error per tensor = max |diff| / max |reference| (k_proj.bias, whose gradient is 0 up
to rounding because the softmax cancels a shift of every score in a row, over the scale of
k_proj.weight's gradient). Fails when an f64 error >= 1e-12 or an f32 error >= 1e-4, or on a
missing tensor.

  /usr/bin/python3 tests/pytorch/check_attention.py --probe build/release/tests/attention_probe
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402

TOL = {"f64": 1e-12, "f32": 1e-4}
PARAMS = ["q_proj", "k_proj", "v_proj", "out_proj"]

# name, B, N, D, H, causal, method, (tile_q, tile_k), lengths or None, position offset
CONFIGS = [
    ("n1-causal-direct", 2, 1, 6, 1, True, "direct", (128, 128), None, 0),
    ("n2-bidir-h2-direct", 2, 2, 6, 2, False, "direct", (128, 128), None, 2),
    ("n17-causal-h3-tiled4x3", 2, 17, 6, 3, True, "tiled", (4, 3), None, 5),
    ("n17-bidir-h2-tiled5x7-ragged", 3, 17, 8, 2, False, "tiled", (5, 7), [17, 6, 1], 0),
    ("n33-causal-h3-odd-dim-auto", 2, 33, 9, 3, True, "auto", (128, 128), None, 2),
    ("n40-causal-h3-direct-ragged", 3, 40, 12, 3, True, "direct", (128, 128), [40, 13, 1], 0),
    ("n200-causal-h1-tiled64x32-ragged", 3, 200, 8, 1, True, "tiled", (64, 32), [200, 65, 1], 0),
    ("n129-causal-h8-tiled", 1, 129, 64, 8, True, "tiled", (128, 128), None, 1000),
    ("n300-causal-h4-tiled", 2, 300, 16, 4, True, "tiled", (128, 128), None, 0),
    ("n300-bidir-h4-auto", 2, 300, 16, 4, False, "auto", (128, 128), None, 2),
]


def attention(x, w, heads, causal, lengths):
    """y = out_proj(softmax(q k^T / sqrt(Dh) + mask) v), heads side by side."""
    B, N, D = x.shape
    Dh = D // heads

    def proj(name, t):
        return t @ w[name + ".weight"].T + w[name + ".bias"]

    def split(t):  # [B, N, D] -> [B, H, N, Dh]
        return t.view(B, N, heads, Dh).transpose(1, 2)

    q, k, v = split(proj("q_proj", x)), split(proj("k_proj", x)), split(proj("v_proj", x))
    s = q @ k.transpose(-1, -2) / math.sqrt(Dh)  # [B, H, N, N]
    masked = torch.zeros(B, 1, N, N, dtype=torch.bool)
    if causal:
        masked |= torch.triu(torch.ones(N, N, dtype=torch.bool), diagonal=1)
    if lengths is not None:
        for b, n in enumerate(lengths):
            masked[b, :, :, n:] = True
    p = torch.softmax(s.masked_fill(masked, float("-inf")), dim=-1)
    z = (p @ v).transpose(1, 2).reshape(B, N, D)
    return proj("out_proj", z)


def fairseq_positions(n_tokens, dim, padding_idx=1, dtype=torch.float):
    """fairseq's SinusoidalPositionalEmbedding for a sequence without padding: get_embedding's
    table (as fairseq writes it, in `dtype`) indexed by make_positions, which counts from
    padding_idx + 1."""
    num_embeddings = n_tokens + padding_idx + 1
    half_dim = dim // 2
    emb = math.log(10000) / (half_dim - 1)
    emb = torch.exp(torch.arange(half_dim, dtype=dtype) * -emb)
    emb = torch.arange(num_embeddings, dtype=dtype).unsqueeze(1) * emb.unsqueeze(0)
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1).view(num_embeddings, -1)
    if dim % 2 == 1:
        emb = torch.cat([emb, torch.zeros(num_embeddings, 1, dtype=dtype)], dim=1)
    emb[padding_idx, :] = 0
    positions = torch.arange(n_tokens) + padding_idx + 1
    return emb[positions]


def tnn_formula_positions(n, dim, offset):
    """The table tnn computes, in float64: fairseq's formula at positions offset .. offset+n-1."""
    half = dim // 2
    step = math.log(10000.0) / (half - 1) if half > 1 else 0.0
    freq = torch.exp(torch.arange(half, dtype=torch.float64) * -step)
    ang = (torch.arange(n, dtype=torch.float64) + offset).unsqueeze(1) * freq.unsqueeze(0)
    out = torch.zeros(n, dim, dtype=torch.float64)
    out[:, :half] = torch.sin(ang)
    out[:, half:2 * half] = torch.cos(ang)
    return out


def rel_error(got, ref, scale=None):
    d = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
    s = scale if scale is not None else float(np.max(np.abs(ref))) if ref.size else 0.0
    return d / s if s > 0 else d


def run_config(cfg, dtype, probe, workdir, rng):
    name, B, N, D, H, causal, method, (tq, tk), lengths, offset = cfg
    bound = 1.0 / math.sqrt(D)
    w = {}
    for p in PARAMS:
        w[p + ".weight"] = rng.uniform(-bound, bound, (D, D))
        w[p + ".bias"] = rng.uniform(-bound, bound, (D,))
    for p in ("q_proj", "k_proj"):  # scores of order 1: a peaked softmax, masking errors show
        w[p + ".weight"] *= 3
    x = rng.standard_normal((B, N, D))
    dy = rng.standard_normal((B, N, D))
    npdt = np.float64 if dtype == "f64" else np.float32
    tensors = {k: v.astype(npdt) for k, v in w.items()}
    tensors["x"] = x.astype(npdt)
    tensors["dy"] = dy.astype(npdt)
    if lengths is not None:
        tensors["lengths"] = np.array(lengths, dtype=np.int32)
    meta = dict(heads=H, causal="true" if causal else "false", method=method, tile_q=tq, tile_k=tk,
                position_offset=offset)
    inp = os.path.join(workdir, f"{name}-{dtype}-in.safetensors")
    out = os.path.join(workdir, f"{name}-{dtype}-out.safetensors")
    safetensors_io.save(inp, tensors, meta)
    r = subprocess.run([probe, inp, out], capture_output=True, text=True)
    if r.returncode != 0:
        return [f"{name} {dtype}: attention_probe failed ({r.returncode}): {r.stderr.strip()}"], {}
    got, _ = safetensors_io.load(out)

    # the reference from the values tnn saw (the f32 run's inputs rounded to float)
    wt = {k: torch.tensor(tensors[k].astype(np.float64), requires_grad=True) for k in w}
    xt = torch.tensor(tensors["x"].astype(np.float64), requires_grad=True)
    y = attention(xt, wt, H, causal, lengths)
    y.backward(torch.tensor(tensors["dy"].astype(np.float64)))
    ref = {"y": y.detach().numpy(), "grad.x": xt.grad.numpy()}
    for k, t in wt.items():
        ref["grad." + k] = t.grad.numpy()
    if causal and lengths is None:
        ref["y_step"] = ref["y"]
    ref["positions"] = tnn_formula_positions(N, D, offset).numpy()[None]

    errors, worst = [], {}
    for k, r_val in ref.items():
        if k not in got:
            errors.append(f"{name} {dtype}: {k} missing from the probe's output")
            continue
        if got[k].shape != r_val.shape:
            errors.append(f"{name} {dtype}: {k} has shape {got[k].shape}, expected {r_val.shape}")
            continue
        scale = float(np.max(np.abs(ref["grad.k_proj.weight"]))) if k == "grad.k_proj.bias" else None
        e = rel_error(got[k], r_val, scale)
        worst[k] = e
        if not e < TOL[dtype]:
            errors.append(f"{name} {dtype}: {k} error {e:.3e} >= {TOL[dtype]:.0e}")
    # fairseq's own table (float32, positions from padding_idx + 1 = 2): equal to tnn's at offset 2
    # up to float32's rounding of the angles
    if offset == 2:
        fs = fairseq_positions(N, D).numpy()
        worst["positions vs fairseq float32"] = float(np.max(np.abs(got["positions"][0] - fs)))
        if not worst["positions vs fairseq float32"] < 1e-4:
            errors.append(f"{name} {dtype}: positions differ from fairseq's by {worst['positions vs fairseq float32']:.3e}")
        fs64 = fairseq_positions(N, D, dtype=torch.float64).numpy() if D >= 4 else None
        if fs64 is not None:
            e = rel_error(got["positions"][0], fs64)
            worst["positions vs fairseq float64"] = e
            if not e < TOL[dtype]:
                errors.append(f"{name} {dtype}: positions differ from fairseq's float64 table by {e:.3e}")
    return errors, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe", required=True, help="the attention_probe program")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)

    # the comparison can fail: a relative error of 1e-9 in one entry is reported
    a = np.ones((3, 4))
    b = a.copy()
    b[1, 2] *= 1 + 1e-9
    assert not rel_error(b, a) < TOL["f64"], "rel_error cannot see a 1e-9 error"

    rng = np.random.default_rng(args.seed)
    failures, worst_all = [], {"f64": 0.0, "f32": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for cfg in CONFIGS:
            for dtype in ("f64", "f32"):
                errors, worst = run_config(cfg, dtype, args.probe, tmp, rng)
                failures += errors
                attn = {k: v for k, v in worst.items() if not k.startswith("positions vs fairseq")}
                w = max(attn.values()) if attn else float("nan")
                worst_all[dtype] = max(worst_all[dtype], w)
                extra = "".join(f", {k} {v:.1e}" for k, v in worst.items() if k.startswith("positions vs"))
                print(f"{'FAIL' if errors else 'ok  '} {cfg[0]:34s} {dtype}: worst {w:.2e} "
                      f"({max(attn, key=attn.get) if attn else '-'}){extra}")
    print(f"worst over all configurations: f64 {worst_all['f64']:.2e}, f32 {worst_all['f32']:.2e}")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
