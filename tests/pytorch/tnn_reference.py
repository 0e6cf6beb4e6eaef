"""Independent PyTorch reference of the TNN language model, written from
/work/shared/design/tnn-spec.md (sections 2-9), used to check `tnn grad` (section 10); and of
the sequence classifier (docs/model.md §12) and the 2-D TNN image classifier (§13: patch
embedding, 2-D RPE, decay lambda^(|di|+|dj|), the 2-D Toeplitz product done densely).

Parameters are a plain dict name -> torch tensor with the checkpoint names of spec
section 9, so autograd gives the gradient of every stored tensor by name. The Toeplitz
product is done densely (an N x N matrix per channel) so that it checks the C++ FFT
path independently; an FFT twin exists for the self-test and the `grad` command.

As a script:
  python3 tnn_reference.py selftest
  python3 tnn_reference.py grad --checkpoint M --batch B --out O [--dtype f32|f64] [--toeplitz fft|dense]
(the latter mimics `tnn grad`, used to test check_grad.py without the C++ program).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

# model.md §8.
DEFAULTS = {
    "heads": 1,
    "expand_ratio": 3,
    "glu_dim": None,  # = dim
    "rpe_dim": 64,
    "rpe_layers": 1,
    "gamma": 0.99,
    "rpe_act": "relu",
    "gtu_act": "silu",
    "glu_act": "silu",
    "norm_type": "simplermsnorm",
    "prenorm": True,
    "causal": True,
    "use_decay": True,
    "use_multi_decay": False,
    "tie_embeddings": False,
}
REQUIRED = ("vocab_size", "dim", "layers")
# Sequence classification (issue 14): present in a config only when task is "classify".
CLASSIFY_DEFAULTS = {"task": "lm", "num_classes": None, "pooling": "mean"}
# Image classification (issue 15, model.md §13): present only when task is "image" (no vocab_size).
IMAGE_KEYS = ("image_height", "image_width", "image_channels", "patch_size")


def full_config(cfg):
    """Config dict with every key, defaults filled in (glu_dim = dim when absent)."""
    out = dict(DEFAULTS)
    for k in cfg:
        if k not in DEFAULTS and k not in REQUIRED and k not in CLASSIFY_DEFAULTS and k not in IMAGE_KEYS:
            raise ValueError(f"config: unknown key '{k}'")
    out.update(cfg)
    image = out.get("task", "lm") == "image"
    if image:
        if out.get("vocab_size", 0) != 0:
            raise ValueError("config: an image model has no vocab_size")
        out.pop("vocab_size", None)
        for k in IMAGE_KEYS:
            if not isinstance(out.get(k), int) or out[k] < 1:
                raise ValueError(f"config: an image model needs {k} >= 1")
        if out["image_height"] % out["patch_size"] or out["image_width"] % out["patch_size"]:
            raise ValueError("config: patch_size must divide image_height and image_width")
    elif any(k in cfg for k in IMAGE_KEYS):
        raise ValueError("config: image keys only with task image")
    if out.get("task", "lm") in ("classify", "image"):
        for k, v in CLASSIFY_DEFAULTS.items():
            out.setdefault(k, v)
        if not isinstance(out["num_classes"], int) or out["num_classes"] < 2:
            raise ValueError("config: a classifier needs num_classes >= 2")
    elif any(k in cfg for k in ("num_classes", "pooling")):
        raise ValueError("config: num_classes and pooling only with task classify")
    for k in REQUIRED:
        if k not in out and not (image and k == "vocab_size"):
            raise ValueError(f"config: required key '{k}' is missing")
    if out["glu_dim"] is None:
        out["glu_dim"] = out["dim"]
    if out["use_decay"] and out["use_multi_decay"]:
        raise ValueError("config: use_decay and use_multi_decay are exclusive")
    return out


def dims(cfg):
    """(V, D, H, E, Dh, G, R) of a full config; E = floor(expand_ratio * D) // H * H."""
    c = cfg
    H = c["heads"]
    E = int(math.floor(c["expand_ratio"] * c["dim"])) // H * H
    if E <= 0:
        raise ValueError("config: inner width E is 0 (heads > floor(expand_ratio * dim))")
    return c.get("vocab_size", 0), c["dim"], H, E, E // H, c["glu_dim"], c["rpe_dim"]


def _norm_specs(prefix, d, norm_type):
    if norm_type == "simplermsnorm":
        return []
    if norm_type == "rmsnorm":
        return [(prefix + "scale", (d,), "scale", True)]
    if norm_type == "layernorm":
        return [(prefix + "weight", (d,), "scale", True), (prefix + "bias", (d,), "shift", True)]
    raise ValueError(f"config: unknown norm_type '{norm_type}'")


def _linear_specs(prefix, n_out, n_in):
    return [(prefix + "weight", (n_out, n_in), ("linear", n_in), True),
            (prefix + "bias", (n_out,), "bias", True)]


def param_specs(cfg):
    """[(name, shape, kind, trainable)] for every stored tensor, model.md §9."""
    cfg = full_config(cfg)
    V, D, H, E, Dh, G, R = dims(cfg)
    nt = cfg["norm_type"]
    image = is_image(cfg)
    if image:  # each P x P x Ch patch is one token: patch_embed [D, P*P*Ch] + [D]
        specs = _linear_specs("patch_embed.", D, cfg["patch_size"] ** 2 * cfg["image_channels"])
    else:
        specs = [("embed.weight", (V, D), "embed", True)]
    for i in range(cfg["layers"]):
        p = f"layers.{i}."
        specs += _norm_specs(p + "token_norm.", D, nt)
        t = p + "token_mixer."
        specs += _linear_specs(t + "u_proj.", E, D)
        specs += _linear_specs(t + "v_proj.", E, D)
        specs += _linear_specs(t + "o.", D, E)
        if cfg["use_decay"]:
            specs.append((t + "toep.gamma", (H, 1, Dh), "fixed_gamma", False))
        elif cfg["use_multi_decay"]:
            specs.append((t + "toep.gamma", (H, 1, Dh), "theta", True))
        r = t + "toep.rpe."
        specs += _linear_specs(r + "pos_proj.", R, 2 if image else 1)  # fed (di, dj) on a grid
        for l in range(cfg["rpe_layers"]):
            specs += _norm_specs(r + f"layers.{l}.0.", R, nt)
            specs += _linear_specs(r + f"layers.{l}.2.", R, R)
        specs += _norm_specs(r + "out.0.", R, nt)
        specs += _linear_specs(r + "out.2.", H * Dh, R)
        specs += _norm_specs(p + "feature_norm.", D, nt)
        f = p + "feature_mixer."
        specs += _linear_specs(f + "l1.", G, D)
        specs += _linear_specs(f + "l2.", G, D)
        specs += _linear_specs(f + "l3.", D, G)
    specs += _norm_specs("final_norm.", D, nt)
    if is_classifier(cfg) or image:  # head [K, D] + [K] instead of lm_head
        specs += _linear_specs("head.", cfg["num_classes"], D)
    elif not cfg["tie_embeddings"]:
        specs.append(("lm_head.weight", (V, D), ("linear", D), True))
    return specs


def is_classifier(cfg):
    return cfg.get("task", "lm") == "classify"


def is_image(cfg):
    return cfg.get("task", "lm") == "image"


def random_params(cfg, rng, weight_scale=0.8):
    """Non-trivial random weights (numpy float64) for every stored tensor."""
    cfg = full_config(cfg)
    out = {}
    for name, shape, kind, _ in param_specs(cfg):
        if kind == "embed":
            a = rng.normal(0.0, 1.0, shape)
        elif isinstance(kind, tuple):  # ("linear", fan_in)
            a = rng.normal(0.0, weight_scale / math.sqrt(kind[1]), shape)
        elif kind == "bias":
            a = rng.normal(0.0, 0.2, shape)
        elif kind == "scale":
            a = 1.0 + rng.normal(0.0, 0.2, shape)
        elif kind == "shift":
            a = rng.normal(0.0, 0.2, shape)
        elif kind == "fixed_gamma":
            a = np.full(shape, float(cfg["gamma"]))
        elif kind == "theta":
            a = rng.normal(0.0, 1.5, shape)
        else:
            raise AssertionError(kind)
        out[name] = np.asarray(a, dtype=np.float64)
    return out


# ---------------------------------------------------------------- building blocks

def activation(name, x):
    if name == "relu":
        return torch.relu(x)
    if name == "silu":
        return x * torch.sigmoid(x)
    if name == "gelu":  # exact, erf form
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name == "none":
        return x
    raise ValueError(f"unknown activation '{name}'")


def norm(cfg, P, prefix, x):
    nt = cfg["norm_type"]
    d = x.shape[-1]
    if nt in ("simplermsnorm", "rmsnorm"):
        rms = torch.sqrt((x * x).sum(-1, keepdim=True)) / math.sqrt(d)
        y = x / (rms + 1e-8)
        return y * P[prefix + "scale"] if nt == "rmsnorm" else y
    if nt == "layernorm":
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * P[prefix + "weight"] + P[prefix + "bias"]
    raise ValueError(nt)


def linear(P, prefix, x):
    return x @ P[prefix + "weight"].t() + P[prefix + "bias"]


def toeplitz_dense(t, x, causal):
    """y_i = sum_j t_{i-j} x_j per channel. t: [N, C] for k = 0..N-1 (causal) or
    [2N-1, C] for k = -(N-1)..N-1; x: [B, N, C]. Builds T [N, N, C] explicitly."""
    N = x.shape[1]
    i = torch.arange(N).view(N, 1)
    j = torch.arange(N).view(1, N)
    k = i - j  # [N, N]
    if causal:
        T = t[k.clamp(min=0)] * (k >= 0).to(t.dtype).unsqueeze(-1)
    else:
        T = t[k + (N - 1)]
    return torch.einsum("ijc,bjc->bic", T, x)


def toeplitz_fft(t, x, causal):
    """Same product through a circulant of size L = 2N (model.md §1)."""
    N = x.shape[1]
    L = 2 * N
    C = t.shape[1]
    if causal:
        c = torch.cat([t, t.new_zeros(L - N, C)], 0)
    else:
        c = torch.cat([t[N - 1:], t.new_zeros(1, C), t[:N - 1]], 0)  # [t_0..t_{N-1}, 0, t_{-(N-1)}..t_{-1}]
    y = torch.fft.irfft(torch.fft.rfft(c, n=L, dim=0).unsqueeze(0) * torch.fft.rfft(x, n=L, dim=1), n=L, dim=1)
    return y[:, :N]


def offsets(N, causal, dtype):
    """Relative offsets the TNO needs: 0..N-1 (causal) or -(N-1)..N-1."""
    start = 0 if causal else -(N - 1)
    return torch.arange(start, N, dtype=dtype)


def rpe(cfg, P, prefix, k):
    """k: [K] offsets (or [K, 2] offset pairs (di, dj) on a grid) -> [K, H*Dh] coefficients (model.md §2)."""
    h = linear(P, prefix + "pos_proj.", k.unsqueeze(-1) if k.dim() == 1 else k)
    for l in range(cfg["rpe_layers"]):
        h = linear(P, prefix + f"layers.{l}.2.", activation(cfg["rpe_act"], norm(cfg, P, prefix + f"layers.{l}.0.", h)))
    return linear(P, prefix + "out.2.", activation(cfg["rpe_act"], norm(cfg, P, prefix + "out.0.", h)))


def tno_coefficients(cfg, P, prefix, N, dtype):
    """t_k [K, E] = RPE(k) * lambda^|k| (model.md §3)."""
    k = offsets(N, cfg["causal"], dtype)
    return decayed(cfg, P, prefix, rpe(cfg, P, prefix + "rpe.", k), k.abs())


def decayed(cfg, P, prefix, t, distance):
    """t [K, E] * lambda^distance (distance [K]: |k|, or |di| + |dj| on a grid), model.md §3."""
    if cfg["use_decay"] or cfg["use_multi_decay"]:
        g = P[prefix + "gamma"].reshape(-1)  # [H*Dh], index h*Dh + c
        if cfg["use_multi_decay"]:
            lam = cfg["gamma"] + (1.0 - cfg["gamma"]) * torch.sigmoid(g)
        else:
            lam = g
        t = t * torch.exp(distance.unsqueeze(-1) * torch.log(lam).unsqueeze(0))
    return t


def tno_1d(toeplitz):
    """The token mixer of a sequence: v [B, N, E] -> TNO(v) (model.md §3)."""
    def mix(cfg, P, prefix, v):
        return toeplitz(tno_coefficients(cfg, P, prefix, v.shape[1], v.dtype), v, cfg["causal"])
    return mix


def toeplitz2d_dense(t, x, gh, gw):
    """y[b, i, j, c] = sum_{i', j'} t[i - i', j - j', c] x[b, i', j', c] (model.md §13), with the
    grid flattened: x [B, gh*gw, C] (position i*gw + j), t [2gh-1, 2gw-1, C] (t[di + gh-1, dj + gw-1]).
    Builds the (gh*gw) x (gh*gw) matrix per channel explicitly."""
    i = torch.arange(gh)
    j = torch.arange(gw)
    di = (i.view(gh, 1, 1, 1) - i.view(1, 1, gh, 1) + gh - 1).expand(gh, gw, gh, gw)
    dj = (j.view(1, gw, 1, 1) - j.view(1, 1, 1, gw) + gw - 1).expand(gh, gw, gh, gw)
    T = t[di, dj].reshape(gh * gw, gh * gw, t.shape[-1])  # T[n, m, c], n = i*gw + j, m = i'*gw + j'
    return torch.einsum("nmc,bmc->bnc", T, x)


def tno_2d(gh, gw):
    """The token mixer of a gh x gw grid: t[di, dj] = RPE(di, dj) * lambda^(|di| + |dj|), then the
    2-D product (model.md §13)."""
    def mix(cfg, P, prefix, v):
        di, dj = torch.meshgrid(torch.arange(-(gh - 1), gh, dtype=v.dtype), torch.arange(-(gw - 1), gw, dtype=v.dtype),
                                indexing="ij")
        k = torch.stack([di.reshape(-1), dj.reshape(-1)], -1)  # [(2gh-1)(2gw-1), 2], row p*(2gw-1) + q
        t = decayed(cfg, P, prefix, rpe(cfg, P, prefix + "rpe.", k), k.abs().sum(-1))
        return toeplitz2d_dense(t.reshape(2 * gh - 1, 2 * gw - 1, -1), v, gh, gw)
    return mix


def gtu(cfg, P, prefix, x, mix, valid=None):
    a = cfg["gtu_act"]
    u = activation(a, linear(P, prefix + "u_proj.", x))  # [B, N, E]
    v = activation(a, linear(P, prefix + "v_proj.", x))  # [B, N, E]
    if valid is not None:  # ragged batch: positions >= length are zeroed at the TNO input
        v = v * valid.unsqueeze(-1)
    y = mix(cfg, P, prefix + "toep.", v)
    return linear(P, prefix + "o.", u * y)


def glu(cfg, P, prefix, x):
    h = activation(cfg["glu_act"], linear(P, prefix + "l1.", x)) * linear(P, prefix + "l2.", x)
    return linear(P, prefix + "l3.", h)


def backbone(cfg, P, tokens, toeplitz, valid=None):
    """Embedding, the layers and the final norm: [B, N] -> [B, N, D]. valid: [B, N] 0/1 or None."""
    return layers_and_final_norm(cfg, P, P["embed.weight"][tokens], tno_1d(toeplitz), valid)


def layers_and_final_norm(cfg, P, x, mix, valid=None):
    """The TNN layers (model.md §7) with token mixer `mix`, then the final norm: [B, N, D] -> [B, N, D]."""
    for i in range(cfg["layers"]):
        p = f"layers.{i}."
        if cfg["prenorm"]:
            x = x + gtu(cfg, P, p + "token_mixer.", norm(cfg, P, p + "token_norm.", x), mix, valid)
            x = x + glu(cfg, P, p + "feature_mixer.", norm(cfg, P, p + "feature_norm.", x))
        else:
            x = x + norm(cfg, P, p + "token_norm.", gtu(cfg, P, p + "token_mixer.", x, mix, valid))
            x = x + norm(cfg, P, p + "feature_norm.", glu(cfg, P, p + "feature_mixer.", x))
    return norm(cfg, P, "final_norm.", x)


def classifier_forward(cfg, P, tokens, lengths, labels=None, toeplitz=toeplitz_dense):
    """tokens [B, N], lengths [B] in 1..N, labels [B]: (mean cross-entropy or None, logits [B, K]).
    Pooling: the mean over positions < length ("mean") or position 0 ("first")."""
    cfg = full_config(cfg)
    B, N = tokens.shape
    valid = (torch.arange(N).view(1, N) < lengths.view(B, 1)).to(P["embed.weight"].dtype)  # [B, N]
    x = backbone(cfg, P, tokens, toeplitz, valid)
    if cfg["pooling"] == "first":
        pooled = x[:, 0]
    else:
        pooled = (x * valid.unsqueeze(-1)).sum(1) / lengths.view(B, 1).to(x.dtype)
    logits = linear(P, "head.", pooled)  # [B, K]
    if labels is None:
        return None, logits
    nll = torch.logsumexp(logits, -1) - logits.gather(1, labels.view(B, 1)).squeeze(1)
    return nll.mean(), logits


def image_forward(cfg, P, images, labels=None):
    """images [B, Hi, Wi, Ch], labels [B]: (mean cross-entropy or None, logits [B, K]) (model.md §13).
    Token gi*(Wi/P) + gj is patch (gi, gj), its P*P*Ch values in (row, column, channel) order."""
    cfg = full_config(cfg)
    B, Hi, Wi, Ch = images.shape
    p = cfg["patch_size"]
    gh, gw = Hi // p, Wi // p
    x = images.reshape(B, gh, p, gw, p, Ch).permute(0, 1, 3, 2, 4, 5).reshape(B, gh * gw, p * p * Ch)
    x = layers_and_final_norm(cfg, P, linear(P, "patch_embed.", x), tno_2d(gh, gw))
    pooled = x[:, 0] if cfg["pooling"] == "first" else x.mean(1)
    logits = linear(P, "head.", pooled)  # [B, K]
    if labels is None:
        return None, logits
    nll = torch.logsumexp(logits, -1) - logits.gather(1, labels.view(B, 1)).squeeze(1)
    return nll.mean(), logits


def image_loss_and_grads(cfg, params_np, images_np, labels_np, dtype=torch.float64):
    """Returns (loss float, logits numpy [B, K], {name: grad numpy}) for an image config."""
    cfg = full_config(cfg)
    specs = param_specs(cfg)
    P = {n: torch.tensor(params_np[n], dtype=dtype, requires_grad=tr) for n, _, _, tr in specs}
    images = torch.tensor(np.asarray(images_np), dtype=dtype)
    loss, logits = image_forward(cfg, P, images, torch.as_tensor(np.asarray(labels_np, dtype=np.int64)))
    names = [n for n, _, _, tr in specs if tr]
    grads = torch.autograd.grad(loss, [P[n] for n in names], allow_unused=True)
    g = {n: (torch.zeros_like(P[n]) if gr is None else gr).detach().numpy() for n, gr in zip(names, grads)}
    return float(loss.detach()), logits.detach().numpy(), g


def classifier_loss_and_grads(cfg, params_np, tokens_np, lengths_np, labels_np, dtype=torch.float64,
                              toeplitz=toeplitz_dense):
    """Returns (loss float, logits numpy [B, K], {name: grad numpy}) for a classifier config."""
    cfg = full_config(cfg)
    specs = param_specs(cfg)
    P = {n: torch.tensor(params_np[n], dtype=dtype, requires_grad=tr) for n, _, _, tr in specs}
    as_long = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64))  # noqa: E731
    loss, logits = classifier_forward(cfg, P, as_long(tokens_np), as_long(lengths_np), as_long(labels_np), toeplitz)
    names = [n for n, _, _, tr in specs if tr]
    grads = torch.autograd.grad(loss, [P[n] for n in names], allow_unused=True)
    g = {n: (torch.zeros_like(P[n]) if gr is None else gr).detach().numpy() for n, gr in zip(names, grads)}
    return float(loss.detach()), logits.detach().numpy(), g


def forward(cfg, P, tokens, targets=None, toeplitz=toeplitz_dense):
    """tokens, targets: int64 [B, N]. Returns (loss or None, logits [B, N, V])."""
    cfg = full_config(cfg)
    x = backbone(cfg, P, tokens, toeplitz)
    head = P["embed.weight"] if cfg["tie_embeddings"] else P["lm_head.weight"]
    logits = x @ head.t()  # [B, N, V]
    if targets is None:
        return None, logits
    mask = targets != -1
    count = int(mask.sum())
    if count == 0:
        return (logits * 0).sum(), logits
    lg = logits[mask]  # [count, V]
    tg = targets[mask]
    nll = torch.logsumexp(lg, -1) - lg.gather(1, tg.unsqueeze(1)).squeeze(1)
    return nll.sum() / count, logits


def loss_and_grads(cfg, params_np, tokens_np, targets_np, dtype=torch.float64, toeplitz=toeplitz_dense):
    """Returns (loss float, logits numpy, {name: grad numpy}) for every trainable tensor."""
    cfg = full_config(cfg)
    specs = param_specs(cfg)
    P = {}
    for name, shape, _, trainable in specs:
        a = params_np[name]
        if tuple(a.shape) != tuple(shape):
            raise ValueError(f"param '{name}': expected shape {shape}, got {a.shape}")
        P[name] = torch.tensor(a, dtype=dtype, requires_grad=trainable)
    tokens = torch.as_tensor(np.asarray(tokens_np, dtype=np.int64))
    targets = torch.as_tensor(np.asarray(targets_np, dtype=np.int64))
    loss, logits = forward(cfg, P, tokens, targets, toeplitz)
    names = [n for n, _, _, tr in specs if tr]
    grads = torch.autograd.grad(loss, [P[n] for n in names], allow_unused=True)
    g = {}
    for n, gr in zip(names, grads):
        g[n] = (torch.zeros_like(P[n]) if gr is None else gr).detach().numpy()
    return float(loss.detach()), logits.detach().numpy(), g


# ---------------------------------------------------------------- self-test

def _selftest(verbose=True):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    ok = True

    def report(what, err, tol, above=False):
        """err must be < tol (or > tol when above)."""
        nonlocal ok
        good = err > tol if above else err < tol
        ok = ok and good
        if verbose:
            print(f"  {'ok  ' if good else 'FAIL'} {what}: {err:.3e} ({'>' if above else '<'} {tol:.0e})")

    # 1. dense Toeplitz == FFT Toeplitz == explicit loop, both modes, several N.
    for causal in (True, False):
        for N in (1, 2, 7, 64):
            K = N if causal else 2 * N - 1
            t = torch.randn(K, 3, dtype=torch.float64)
            x = torch.randn(2, N, 3, dtype=torch.float64)
            yd = toeplitz_dense(t, x, causal)
            yf = toeplitz_fft(t, x, causal)
            yl = torch.zeros_like(x)
            for i in range(N):
                for j in range(N):
                    k = i - j
                    if causal and k < 0:
                        continue
                    yl[:, i] += (t[k] if causal else t[k + N - 1]) * x[:, j]
            report(f"toeplitz dense vs loop causal={causal} N={N}", float((yd - yl).abs().max()), 1e-12)
            report(f"toeplitz dense vs fft  causal={causal} N={N}", float((yd - yf).abs().max()), 1e-12)

    # 1b. the 2-D product: dense == explicit loop over both offsets; a 1 x W grid == the 1-D product.
    for gh, gw in ((1, 1), (1, 5), (4, 1), (3, 4), (5, 5)):
        t = torch.randn(2 * gh - 1, 2 * gw - 1, 3, dtype=torch.float64)
        x = torch.randn(2, gh * gw, 3, dtype=torch.float64)
        yd = toeplitz2d_dense(t, x, gh, gw)
        yl = torch.zeros_like(x)
        for i in range(gh):
            for j in range(gw):
                for i2 in range(gh):
                    for j2 in range(gw):
                        yl[:, i * gw + j] += t[i - i2 + gh - 1, j - j2 + gw - 1] * x[:, i2 * gw + j2]
        report(f"toeplitz2d dense vs loop {gh}x{gw}", float((yd - yl).abs().max()), 1e-12)
        if gh == 1:
            y1 = toeplitz_dense(t[0], x, causal=False)
            report(f"toeplitz2d 1x{gw} vs 1-D bidirectional", float((yd - y1).abs().max()), 1e-12)

    # 2. gradcheck on tiny configs, every knob somewhere.
    tiny = [
        dict(vocab_size=5, dim=4, layers=1, heads=2, expand_ratio=1.5, rpe_dim=3, rpe_layers=1,
             norm_type="rmsnorm", use_decay=False, use_multi_decay=True, gamma=0.9, causal=True),
        dict(vocab_size=5, dim=3, layers=2, heads=1, expand_ratio=1, rpe_dim=3, rpe_layers=2, glu_dim=2,
             norm_type="layernorm", prenorm=False, causal=False, gtu_act="gelu", glu_act="relu",
             rpe_act="silu", tie_embeddings=True, gamma=0.8),
        dict(vocab_size=4, dim=3, layers=1, heads=3, expand_ratio=2, rpe_dim=2, rpe_layers=0,
             use_decay=False, gtu_act="none", glu_act="gelu", rpe_act="none", causal=False),
    ]
    for ci, cfg in enumerate(tiny):
        cfg = full_config(cfg)
        pnp = random_params(cfg, rng)
        specs = param_specs(cfg)
        names = [n for n, _, _, tr in specs if tr]
        B, N = 2, 4
        tokens = torch.as_tensor(rng.integers(0, cfg["vocab_size"], (B, N)))
        targets = torch.as_tensor(rng.integers(0, cfg["vocab_size"], (B, N)))
        targets[0, 1] = -1

        def f(*ts):
            P = {n: torch.tensor(pnp[n]) for n, _, _, _ in specs}
            P.update(dict(zip(names, ts)))
            return forward(cfg, P, tokens, targets)[0]

        inputs = tuple(torch.tensor(pnp[n], requires_grad=True) for n in names)
        try:
            good = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)
        except RuntimeError as e:
            print(e)
            good = False
        report(f"gradcheck tiny config {ci} (1 = pass)", float(good), 0.5, above=True)

    # 2b. gradcheck of the image model (patch 2 over a 4 x 6 x 2 image: a 2 x 3 grid), parameters and pixels.
    icfg = full_config(dict(task="image", causal=False, image_height=4, image_width=6, image_channels=2, patch_size=2,
                            num_classes=3, dim=4, layers=1, heads=2, expand_ratio=1, rpe_dim=3, rpe_layers=1,
                            norm_type="layernorm", use_decay=False, use_multi_decay=True, gamma=0.8))
    pnp = random_params(icfg, rng)
    specs = param_specs(icfg)
    names = [n for n, _, _, tr in specs if tr]
    labels = torch.tensor([0, 2])

    def fi(images, *ts):
        P = {n: torch.tensor(pnp[n]) for n, _, _, _ in specs}
        P.update(dict(zip(names, ts)))
        return image_forward(icfg, P, images, labels)[0]

    inputs = (torch.tensor(rng.random((2, 4, 6, 2)), requires_grad=True),) + tuple(
        torch.tensor(pnp[n], requires_grad=True) for n in names)
    try:
        good = torch.autograd.gradcheck(fi, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)
    except RuntimeError as e:
        print(e)
        good = False
    report("gradcheck tiny image config (1 = pass)", float(good), 0.5, above=True)

    # 3. causal: logits at i do not depend on tokens after i; bidirectional: they do.
    for causal in (True, False):
        cfg = full_config(dict(vocab_size=7, dim=4, layers=2, heads=2, expand_ratio=2, rpe_dim=4,
                               causal=causal, gamma=0.9))
        pnp = random_params(cfg, rng)
        P = {n: torch.tensor(a) for n, a in pnp.items()}
        N = 9
        tok = torch.as_tensor(rng.integers(0, 7, (1, N)))
        _, base = forward(cfg, P, tok)
        worst_past, worst_future = 0.0, 0.0
        for pos in range(N):
            tok2 = tok.clone()
            tok2[0, pos] = (tok2[0, pos] + 1) % 7
            _, l2 = forward(cfg, P, tok2)
            d = (l2 - base).abs().amax(-1)[0]  # [N]
            worst_past = max(worst_past, float(d[:pos].max()) if pos > 0 else 0.0)
            worst_future = max(worst_future, float(d[pos:].max()))
        if causal:
            report("causal: change at pos j leaves logits < j unchanged", worst_past, 1e-13)
        else:
            report("bidirectional: change at pos j moves logits < j", worst_past, 1e-6, above=True)
        report(f"causal={causal}: change at pos j moves logits >= j", worst_future, 1e-6, above=True)

    # 4. dense and FFT models agree (loss and grads) on a longer sequence.
    cfg = full_config(dict(vocab_size=9, dim=4, layers=1, heads=2, expand_ratio=1.5, rpe_dim=5,
                           use_decay=False, use_multi_decay=True, causal=False))
    pnp = random_params(cfg, rng)
    tokens = rng.integers(0, 9, (2, 50))
    targets = rng.integers(-1, 9, (2, 50))
    l1, lg1, g1 = loss_and_grads(cfg, pnp, tokens, targets, toeplitz=toeplitz_dense)
    l2, lg2, g2 = loss_and_grads(cfg, pnp, tokens, targets, toeplitz=toeplitz_fft)
    err = max([abs(l1 - l2)] + [float(np.abs(g1[n] - g2[n]).max() / max(np.abs(g1[n]).max(), 1e-300)) for n in g1])
    report("model dense vs fft toeplitz (rel)", err, 1e-10)

    # 4b. classifier: each row of a ragged batch equals that row alone at its length.
    for pooling in ("mean", "first"):
        cfg = full_config(dict(vocab_size=7, dim=4, layers=2, heads=2, expand_ratio=1.5, rpe_dim=4, causal=False,
                               task="classify", num_classes=3, pooling=pooling, norm_type="layernorm"))
        P = {n: torch.tensor(a) for n, a in random_params(cfg, rng).items()}
        tok = torch.as_tensor(rng.integers(0, 7, (3, 11)))
        lens = torch.tensor([11, 4, 1])
        _, lg = classifier_forward(cfg, P, tok, lens)
        worst = 0.0
        for b in range(3):
            n = int(lens[b])
            _, alone = classifier_forward(cfg, P, tok[b:b + 1, :n], lens[b:b + 1])
            worst = max(worst, float((alone[0] - lg[b]).abs().max()))
        report(f"classifier ({pooling}): ragged rows equal each row alone", worst, 1e-12)

    # 5. building blocks against torch's own functions.
    import torch.nn.functional as F
    x = torch.randn(3, 5, 6, dtype=torch.float64)
    for a, ref in (("relu", F.relu(x)), ("silu", F.silu(x)), ("gelu", F.gelu(x)), ("none", x)):
        report(f"activation {a} vs torch.nn.functional", float((activation(a, x) - ref).abs().max()), 1e-14)
    w, b = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    lcfg = {"norm_type": "layernorm"}
    report("layernorm vs F.layer_norm", float((norm(lcfg, {"weight": w, "bias": b}, "", x)
                                               - F.layer_norm(x, (6,), w, b, 1e-5)).abs().max()), 1e-13)
    rms = x / (x.pow(2).mean(-1, keepdim=True).sqrt() + 1e-8)
    report("rmsnorm vs x/(rms+eps)*scale", float((norm({"norm_type": "rmsnorm"}, {"scale": w}, "", x)
                                                  - rms * w).abs().max()), 1e-13)
    tg = torch.as_tensor(rng.integers(-1, 7, (10,)))
    tg[0] = 3
    cfg1 = full_config(dict(vocab_size=7, dim=7, layers=0, tie_embeddings=True))
    Pid = {"embed.weight": torch.eye(7, dtype=torch.float64)}
    # layers=0, identity embedding, simplermsnorm: logits = normalized one-hot rows.
    tok = torch.as_tensor(rng.integers(0, 7, (1, 10)))
    l_ref, lg_ref = forward(cfg1, Pid, tok, tg.view(1, 10))
    report("loss vs F.cross_entropy(ignore_index=-1)",
           abs(float(l_ref) - float(F.cross_entropy(lg_ref[0], tg, ignore_index=-1))), 1e-14)

    # 6. safetensors round trip.
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.safetensors")
        ts = {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=(4,)).astype(np.float32),
              "c": np.array(3.5), "d": rng.integers(-5, 5, (2, 2)).astype(np.int32),
              "e": rng.integers(0, 256, (3, 2)).astype(np.uint8)}
        safetensors_io.save(path, ts, {"k": "v"})
        back, meta = safetensors_io.load(path)
        same = meta == {"k": "v"} and set(back) == set(ts) and all(
            back[n].dtype == ts[n].dtype and back[n].shape == ts[n].shape and np.array_equal(back[n], ts[n]) for n in ts)
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
        report("safetensors round trip + aligned header (1 = pass)", float(same and n % 8 == 0), 0.5, above=True)
    return ok


# ---------------------------------------------------------------- `grad` command

def _grad_command(args):
    dtype = {"f32": torch.float32, "f64": torch.float64}[args.dtype]
    npdt = {"f32": np.float32, "f64": np.float64}[args.dtype]
    params, meta = safetensors_io.load(args.checkpoint)
    cfg = full_config(json.loads(meta["tnn.config"]))
    expected = {n for n, _, _, _ in param_specs(cfg)}
    if set(params) != expected:
        raise SystemExit(f"checkpoint names differ: missing {sorted(expected - set(params))}, "
                         f"extra {sorted(set(params) - expected)}")
    batch, _ = safetensors_io.load(args.batch)
    tb = {"fft": toeplitz_fft, "dense": toeplitz_dense}[args.toeplitz]
    if is_image(cfg):
        loss, logits, grads = image_loss_and_grads(cfg, params, batch["images"], batch["labels"], dtype)
    elif is_classifier(cfg):
        loss, logits, grads = classifier_loss_and_grads(cfg, params, batch["tokens"], batch["lengths"],
                                                        batch["labels"], dtype, tb)
    else:
        loss, logits, grads = loss_and_grads(cfg, params, batch["tokens"], batch["targets"], dtype, tb)
    out = {"loss": np.array(loss, dtype=np.float64), "logits": logits.astype(npdt)}
    for n, g in grads.items():
        out["grad." + n] = g.astype(npdt)
    safetensors_io.save(args.out, out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("selftest", help="check the reference against itself")
    g = sub.add_parser("grad", help="same interface as `tnn grad`")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--batch", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--dtype", default="f32", choices=["f32", "f64"])
    g.add_argument("--toeplitz", default="fft", choices=["fft", "dense"])
    args = ap.parse_args(argv)
    if args.cmd == "selftest":
        ok = _selftest()
        print("selftest:", "PASS" if ok else "FAIL")
        return 0 if ok else 1
    _grad_command(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
