"""Independent PyTorch reference of the TNN language model, written from
/work/shared/design/tnn-spec.md (sections 2-9) and docs/official.md (the options of the official
code), used to check `tnn grad` (section 10); and of the sequence classifier (docs/model.md §12)
and the 2-D TNN image classifier (§13: patch embedding, 2-D RPE, decay lambda^(|di|+|dj|), the
2-D Toeplitz product done densely); and of the regressor (task "regress": float features
[B, N, F] through input_proj, the 1-D backbone, causal or not, a per-position head to [B, N, Fo],
the mean squared error over every value). The Transformer baseline in the same backbone: softmax
attention as the token mixer (token_mixer "attention") and sinusoidal absolute positions added to
the input (positions "sinusoidal").

Parameters are a plain dict name -> torch tensor with the checkpoint names of spec
section 9, so autograd gives the gradient of every stored tensor by name. The Toeplitz
product is done densely (an N x N matrix per channel) so that it checks the C++ FFT
path independently; an FFT twin exists for the self-test and the `grad` command.

As a script:
  python3 tnn_reference.py selftest
  python3 tnn_reference.py grad --checkpoint M --inputs B --out O [--dtype f32|f64] [--toeplitz fft|dense]
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

# Names of the options, one table each: parsing, the error messages and the tests' "every value"
# lists come from these. docs/official.md gives each one's formula.
ACTIVATIONS = ("relu", "silu", "gelu", "none", "elu", "sigmoid", "exp", "leak", "1+elu", "2+elu")
NORMS = ("simplermsnorm", "rmsnorm", "layernorm", "scalenorm", "gatedrmsnorm")
DECAYS = ("none", "fixed", "learned")
PAR_TYPES = (1, 2, 3)
LM_HEAD_TYPES = ("linear", "roberta")
TOKEN_MIXERS = ("tno", "attention")
POSITIONS = ("none", "sinusoidal")
# The slope of the official "leak" activation (torch.nn.functional.leaky_relu's default).
LEAK_SLOPE = 0.01

# model.md §8, and the keys docs/official.md adds.
DEFAULTS = {
    "heads": 1,
    "expand_ratio": 2,
    "glu_dim": None,  # = dim
    "rpe_dim": 32,
    "rpe_layers": 1,
    "gamma": 0.99,
    "rpe_act": "relu",
    "gtu_act": "silu",
    "glu_act": "silu",
    "norm_type": "simplermsnorm",
    "prenorm": True,
    "causal": True,
    "decay": "fixed",
    "tie_embeddings": False,
    "use_norm": False,
    "normalize": False,
    "residual": False,
    "par_type": 1,
    "bias": True,
    "glu_bias": True,
    "dropout": 0.0,
    "scale_embedding": False,
    "final_norm_type": None,  # = norm_type
    "embed_norm_type": "none",
    "postnorm_residual": False,
    "lm_head_type": "linear",
    "token_mixer": "tno",
    "act_type": "none",
    "positions": "none",
}
# The keys a config had before the official options: a config using only these is written in the
# old spelling (use_decay / use_multi_decay), which every version of the program reads.
BASE_KEYS = ("heads", "expand_ratio", "glu_dim", "rpe_dim", "rpe_layers", "gamma", "rpe_act", "gtu_act",
             "glu_act", "norm_type", "prenorm", "causal", "tie_embeddings")
LEGACY_DECAY_KEYS = ("use_decay", "use_multi_decay")
# The keys of the Transformer baseline: written, when not the default, beside the old spelling (the
# program that reads them reads that spelling too); no config of the official code has them.
MIXER_KEYS = ("token_mixer", "positions")
REQUIRED = ("vocab_size", "dim", "layers")
# Sequence classification: present in a config only when task is "classify".
CLASSIFY_DEFAULTS = {"task": "lm", "num_classes": None, "pooling": "mean"}
# Image classification (model.md §13): present only when task is "image" (no vocab_size).
IMAGE_KEYS = ("image_height", "image_width", "image_channels", "patch_size")
# Regression (task "regress"): F features in and Fo values out per position; no vocab_size.
REGRESS_KEYS = ("input_features", "output_features")
# The tasks without a vocabulary: what an error calls the model, and the keys only that task has.
TASK_KEYS = {"image": ("an image model", IMAGE_KEYS), "regress": ("a regressor", REGRESS_KEYS)}
# The keys of a token embedding or a vocabulary head, which a regressor must leave at the default
# (tnn refuses a key of another task that differs from its default).
TOKEN_ONLY_KEYS = ("tie_embeddings", "scale_embedding", "embed_norm_type", "lm_head_type")


def _decay_from_legacy(cfg):
    """decay from the old pair use_decay (default true) / use_multi_decay (default false)."""
    use_decay = cfg.get("use_decay", True)
    use_multi = cfg.get("use_multi_decay", False)
    if use_decay and use_multi:
        raise ValueError("config: use_decay and use_multi_decay are exclusive")
    return "learned" if use_multi else "fixed" if use_decay else "none"


def full_config(cfg):
    """Config dict with every key, defaults filled in (glu_dim = dim, final_norm_type = norm_type when
    absent); the old use_decay / use_multi_decay become decay."""
    for k in cfg:
        if (k not in DEFAULTS and k not in REQUIRED and k not in CLASSIFY_DEFAULTS and k not in IMAGE_KEYS
                and k not in REGRESS_KEYS and k not in LEGACY_DECAY_KEYS):
            raise ValueError(f"config: unknown key '{k}'")
    out = dict(DEFAULTS)
    out.update({k: v for k, v in cfg.items() if k not in LEGACY_DECAY_KEYS})
    if any(k in cfg for k in LEGACY_DECAY_KEYS):
        if "decay" in cfg:
            raise ValueError("config: expected decay or the old use_decay/use_multi_decay, got both")
        out["decay"] = _decay_from_legacy(cfg)
    task = out.get("task", "lm")
    for name, (what, keys) in TASK_KEYS.items():  # the keys of a task without a vocabulary
        if task == name:
            if out.get("vocab_size", 0) != 0:
                raise ValueError(f"config: {what} has no vocab_size")
            out.pop("vocab_size", None)
            for k in keys:
                if not isinstance(out.get(k), int) or isinstance(out.get(k), bool) or out[k] < 1:
                    raise ValueError(f"config: {what} needs {k} >= 1, got {out.get(k)!r}")
        elif any(k in cfg for k in keys):
            raise ValueError(f"config: {', '.join(keys)} only with task {name}")
    image, regress = task == "image", task == "regress"
    if image and (out["image_height"] % out["patch_size"] or out["image_width"] % out["patch_size"]):
        raise ValueError("config: patch_size must divide image_height and image_width")
    if out.get("task", "lm") in ("classify", "image"):
        for k, v in CLASSIFY_DEFAULTS.items():
            out.setdefault(k, v)
        if not isinstance(out["num_classes"], int) or out["num_classes"] < 2:
            raise ValueError("config: a classifier needs num_classes >= 2")
    elif any(k in cfg for k in ("num_classes", "pooling")):
        raise ValueError("config: num_classes and pooling only with task classify")
    for k in REQUIRED:
        if k not in out and not ((image or regress) and k == "vocab_size"):
            raise ValueError(f"config: required key '{k}' is missing")
    if out["glu_dim"] is None:
        out["glu_dim"] = out["dim"]
    if out["final_norm_type"] is None:
        out["final_norm_type"] = out["norm_type"]

    def one_of(key, allowed):
        if out[key] not in allowed:
            raise ValueError(f"config key '{key}': expected one of {', '.join(map(str, allowed))}, got {out[key]!r}")

    for k in ("rpe_act", "gtu_act", "glu_act", "act_type"):
        one_of(k, ACTIVATIONS)
    one_of("norm_type", NORMS)
    one_of("final_norm_type", NORMS + ("none",))
    one_of("embed_norm_type", NORMS + ("none",))
    one_of("decay", DECAYS)
    if isinstance(out["par_type"], bool):
        raise ValueError(f"config key 'par_type': expected one of 1, 2, 3, got {out['par_type']!r}")
    one_of("par_type", PAR_TYPES)
    one_of("lm_head_type", LM_HEAD_TYPES)
    one_of("token_mixer", TOKEN_MIXERS)
    one_of("positions", POSITIONS)
    if out["token_mixer"] == "attention" and out["dim"] % out["heads"]:
        raise ValueError("config key 'heads': attention needs a divisor of dim (H heads of dim / H channels)")
    for k in ("prenorm", "causal", "tie_embeddings", "use_norm", "normalize", "residual", "bias", "glu_bias",
              "scale_embedding", "postnorm_residual"):
        if not isinstance(out[k], bool):
            raise ValueError(f"config key '{k}': expected true or false, got {out[k]!r}")
    if not (0.0 <= out["dropout"] < 1.0):
        raise ValueError(f"config key 'dropout': expected a value in [0, 1), got {out['dropout']!r}")
    task = out.get("task", "lm")
    if task != "lm" and out["lm_head_type"] != "linear":
        raise ValueError("config key 'lm_head_type': only a language model has a vocabulary head")
    if regress:
        # Features go through input_proj: there is no token embedding to scale, normalize or tie.
        for k in TOKEN_ONLY_KEYS:
            if out[k] != DEFAULTS[k]:
                raise ValueError(f"config key '{k}': expected the default {DEFAULTS[k]!r} for a regressor")
    if image:
        # A grid of patches has no token embedding to scale or normalize, and the 2-D RPE is fed
        # the raw offset pair (di, dj).
        for k in ("scale_embedding", "embed_norm_type", "par_type"):
            if out[k] != DEFAULTS[k]:
                raise ValueError(f"config key '{k}': expected the default {DEFAULTS[k]!r} for an image model")
    return out


def config_for_file(cfg, legacy):
    """The config as a checkpoint stores it: every key of full_config, with the decay spelled as the
    old use_decay / use_multi_decay pair and the official options left out when `legacy` (for
    configs that use none of them)."""
    full = full_config(cfg)
    if not legacy:
        return full
    out = {k: v for k, v in full.items() if k not in DEFAULTS or k in BASE_KEYS}
    out.update({k: full[k] for k in MIXER_KEYS if full[k] != DEFAULTS[k]})
    for k in DEFAULTS:
        if (k not in BASE_KEYS and k not in MIXER_KEYS and k != "decay"
                and full[k] != (full["norm_type"] if k == "final_norm_type" else DEFAULTS[k])):
            raise ValueError(f"config key '{k}' = {full[k]!r} has no old spelling")
    out["use_decay"] = full["decay"] == "fixed"
    out["use_multi_decay"] = full["decay"] == "learned"
    return out


def dims(cfg):
    """(V, D, H, E, Dh, G, R) of a full config; E = floor(expand_ratio * D) // H * H."""
    c = cfg
    H = c["heads"]
    E = int(math.floor(c["expand_ratio"] * c["dim"])) // H * H
    if E <= 0 and c.get("token_mixer", "tno") == "tno":  # (attention has no E)
        raise ValueError("config: inner width E is 0 (heads > floor(expand_ratio * dim))")
    return c.get("vocab_size", 0), c["dim"], H, E, E // H, c["glu_dim"], c["rpe_dim"]


def _norm_specs(prefix, d, norm_type):
    """Stored tensors of a norm over d channels: none for simplermsnorm and none (identity)."""
    if norm_type in ("simplermsnorm", "none"):
        return []
    if norm_type == "rmsnorm":
        return [(prefix + "scale", (d,), "scale", True)]
    if norm_type == "gatedrmsnorm":
        return [(prefix + "scale", (d,), "scale", True), (prefix + "gate", (d,), "gate", True)]
    if norm_type == "scalenorm":  # one scalar for all channels
        return [(prefix + "scala", (1,), "scale", True)]
    if norm_type == "layernorm":
        return [(prefix + "weight", (d,), "scale", True), (prefix + "bias", (d,), "shift", True)]
    raise ValueError(f"config: unknown norm type '{norm_type}'")


def _linear_specs(prefix, n_out, n_in, bias=True):
    specs = [(prefix + "weight", (n_out, n_in), ("linear", n_in), True)]
    if bias:
        specs.append((prefix + "bias", (n_out,), "bias", True))
    return specs


def tno_specs(cfg, t, image):
    """The GTU with a TNO token mixer under prefix t (model.md §4, docs/official.md)."""
    _, D, H, E, Dh, _, R = dims(cfg)
    nt, b = cfg["norm_type"], cfg["bias"]
    specs = _linear_specs(t + "u_proj.", E, D, b)
    specs += _linear_specs(t + "v_proj.", E, D, b)
    specs += _linear_specs(t + "o.", D, E, b)
    if cfg["use_norm"]:  # over the E channels of u * TNO(v), before o
        specs += _norm_specs(t + "norm.", E, nt)
    if cfg["decay"] == "fixed":
        specs.append((t + "toep.gamma", (H, 1, Dh), "fixed_gamma", False))
    elif cfg["decay"] == "learned":
        specs.append((t + "toep.gamma", (H, 1, Dh), "theta", True))
    r = t + "toep.rpe."
    specs += _linear_specs(r + "pos_proj.", R, 2 if image else 1, b)  # fed (di, dj) on a grid
    for l in range(cfg["rpe_layers"]):
        specs += _norm_specs(r + f"layers.{l}.0.", R, nt)
        specs += _linear_specs(r + f"layers.{l}.2.", R, R, b)
    specs += _norm_specs(r + "out.0.", R, nt)
    specs += _linear_specs(r + "out.2.", H * Dh, R, b)
    return specs


# token_mixer name -> (specs(cfg, prefix, image), forward(cfg, P, prefix, x, mix, valid)). The TNO's
# entry is filled below; an attention mixer registers its own pair here.
TOKEN_MIXER_IMPL = {}


def _mixer(cfg):
    impl = TOKEN_MIXER_IMPL.get(cfg["token_mixer"])
    if impl is None:
        raise NotImplementedError(f"token_mixer '{cfg['token_mixer']}': the reference has no implementation")
    return impl


def param_specs(cfg):
    """[(name, shape, kind, trainable)] for every stored tensor, model.md §9."""
    cfg = full_config(cfg)
    V, D, H, E, Dh, G, R = dims(cfg)
    nt = cfg["norm_type"]
    image = is_image(cfg)
    if image:  # each P x P x Ch patch is one token: patch_embed [D, P*P*Ch] + [D]
        specs = _linear_specs("patch_embed.", D, cfg["patch_size"] ** 2 * cfg["image_channels"])
    elif is_regressor(cfg):  # F features per position: input_proj [D, F] + [D]
        specs = _linear_specs("input_proj.", D, cfg["input_features"])
    else:
        specs = [("embed.weight", (V, D), "embed", True)]
        specs += _norm_specs("embed_norm.", D, cfg["embed_norm_type"])
    mixer_specs = _mixer(cfg)[0]
    for i in range(cfg["layers"]):
        p = f"layers.{i}."
        specs += _norm_specs(p + "token_norm.", D, nt)
        specs += mixer_specs(cfg, p + "token_mixer.", image)
        specs += _norm_specs(p + "feature_norm.", D, nt)
        f = p + "feature_mixer."
        gb = cfg["glu_bias"]
        specs += _linear_specs(f + "l1.", G, D, gb)
        specs += _linear_specs(f + "l2.", G, D, gb)
        specs += _linear_specs(f + "l3.", D, G, gb)
    specs += _norm_specs("final_norm.", D, cfg["final_norm_type"])
    if is_classifier(cfg) or image:  # head [K, D] + [K] instead of lm_head
        specs += _linear_specs("head.", cfg["num_classes"], D)
    elif is_regressor(cfg):  # a value per output feature and position: head [Fo, D] + [Fo]
        specs += _linear_specs("head.", cfg["output_features"], D)
    else:
        if cfg["lm_head_type"] == "roberta":  # dense D -> D, gelu, LayerNorm, then the vocabulary
            specs += _linear_specs("lm_head.dense.", D, D)
            specs += _norm_specs("lm_head.layer_norm.", D, "layernorm")
        if not cfg["tie_embeddings"]:
            specs.append(("lm_head.weight", (V, D), ("linear", D), True))
        if cfg["lm_head_type"] == "roberta":
            specs.append(("lm_head.bias", (V,), "bias", True))
    return specs


def is_classifier(cfg):
    return cfg.get("task", "lm") == "classify"


def is_image(cfg):
    return cfg.get("task", "lm") == "image"


def is_regressor(cfg):
    return cfg.get("task", "lm") == "regress"


def random_params(cfg, rng, weight_scale=0.8):
    """Non-trivial random weights (numpy float64) for every stored tensor."""
    cfg = full_config(cfg)
    # With normalize, every coefficient is made positive (the RPE's last Linear gets weights >= 0
    # and a bias >= 0.5; the configs that normalize use an RPE activation >= 0), so that the
    # normalizer sum_j t_{i-j} never comes near 0 and a comparison measures arithmetic, not a pole.
    positive = cfg["normalize"] and cfg["rpe_act"] in ("relu", "sigmoid", "exp", "1+elu", "2+elu")
    out = {}
    for name, shape, kind, _ in param_specs(cfg):
        if kind == "embed":
            a = rng.normal(0.0, 1.0, shape)
        elif isinstance(kind, tuple):  # ("linear", fan_in)
            a = rng.normal(0.0, weight_scale / math.sqrt(kind[1]), shape)
            if positive and name.endswith("toep.rpe.out.2.weight"):
                a = np.abs(a)
        elif kind == "bias":
            a = rng.normal(0.0, 0.2, shape)
            if positive and name.endswith("toep.rpe.out.2.bias"):
                a = 0.5 + np.abs(a)
        elif kind == "scale":
            a = 1.0 + rng.normal(0.0, 0.2, shape)
        elif kind == "gate":
            a = rng.normal(1.0, 0.5, shape)
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
    """The pointwise activations (docs/official.md): the official code's names and formulas."""
    if name == "relu":
        return torch.relu(x)
    if name == "silu":
        return x * torch.sigmoid(x)
    if name == "gelu":  # exact, erf form
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name == "none":
        return x
    if name in ("elu", "1+elu", "2+elu"):
        # expm1 of min(x, 0): the branch not taken stays finite, so its zero gradient stays zero.
        e = torch.where(x > 0, x, torch.expm1(torch.clamp(x, max=0.0)))
        return e + {"elu": 0.0, "1+elu": 1.0, "2+elu": 2.0}[name]
    if name == "sigmoid":
        return 1.0 / (1.0 + torch.exp(-x))
    if name == "exp":
        return torch.exp(x)
    if name == "leak":
        return torch.where(x > 0, x, LEAK_SLOPE * x)
    raise ValueError(f"unknown activation '{name}'")


def norm_of(norm_type, P, prefix, x):
    """The norm `norm_type` over the last dimension d of x, with its tensors under prefix."""
    d = x.shape[-1]
    if norm_type == "none":
        return x
    if norm_type in ("simplermsnorm", "rmsnorm", "gatedrmsnorm"):
        # vector_norm's gradient at x = 0 is 0 (sqrt's would be NaN), so the derivative there is I / eps:
        # an RPE without biases feeds this norm a zero vector at offset 0.
        rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) / math.sqrt(d)
        y = x / (rms + 1e-8)  # eps added to the root mean square, outside the root
        if norm_type == "simplermsnorm":
            return y
        y = y * P[prefix + "scale"]
        # the gate reads the norm's input x, not the normalized x
        return y * torch.sigmoid(P[prefix + "gate"] * x) if norm_type == "gatedrmsnorm" else y
    if norm_type == "scalenorm":  # eps inside the root, one learned scalar
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * P[prefix + "scala"]
    if norm_type == "layernorm":
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * P[prefix + "weight"] + P[prefix + "bias"]
    raise ValueError(norm_type)


def norm(cfg, P, prefix, x):
    """The model's norm (norm_type)."""
    return norm_of(cfg["norm_type"], P, prefix, x)


def linear(P, prefix, x):
    y = x @ P[prefix + "weight"].t()
    b = P.get(prefix + "bias")
    return y if b is None else y + b


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


def rpe_input(k, N, par_type):
    """The RPE's input for offsets k [K] at sequence length N (docs/official.md, par_type):
    1: k;  2: k / (N - 1);  3: exp(k / (N - 1)), on both sides of 0. With N = 1 the only offset
    is 0, whose input is 0 (par_type 1, 2) or 1 (par_type 3)."""
    if par_type == 1:
        return k
    s = k / (N - 1) if N > 1 else k * 0.0
    return s if par_type == 2 else torch.exp(s)


def rpe(cfg, P, prefix, p):
    """p: [K] RPE inputs (or [K, 2] offset pairs (di, dj) on a grid) -> [K, H*Dh] coefficients (model.md §2).
    With `residual` every hidden layer adds its input to its output."""
    h = linear(P, prefix + "pos_proj.", p.unsqueeze(-1) if p.dim() == 1 else p)
    for l in range(cfg["rpe_layers"]):
        f = linear(P, prefix + f"layers.{l}.2.", activation(cfg["rpe_act"], norm(cfg, P, prefix + f"layers.{l}.0.", h)))
        h = h + f if cfg["residual"] else f
    return linear(P, prefix + "out.2.", activation(cfg["rpe_act"], norm(cfg, P, prefix + "out.0.", h)))


def tno_coefficients(cfg, P, prefix, N, dtype):
    """t_k [K, E] = act_type(RPE(input(k)) * lambda^|k|) (model.md §3; act_type: the official Tno's
    activation of the coefficients, after the decay, docs/official.md §2.12)."""
    k = offsets(N, cfg["causal"], dtype)
    t = decayed(cfg, P, prefix, rpe(cfg, P, prefix + "rpe.", rpe_input(k, N, cfg["par_type"])), k.abs())
    return activation(cfg["act_type"], t)


def decayed(cfg, P, prefix, t, distance):
    """t [K, E] * lambda^distance (distance [K]: |k|, or |di| + |dj| on a grid), model.md §3."""
    if cfg["decay"] != "none":
        g = P[prefix + "gamma"].reshape(-1)  # [H*Dh], index h*Dh + c
        if cfg["decay"] == "learned":
            lam = cfg["gamma"] + (1.0 - cfg["gamma"]) * torch.sigmoid(g)
        else:
            lam = g
        t = t * torch.exp(distance.unsqueeze(-1) * torch.log(lam).unsqueeze(0))
    return t


def _normalized(cfg, product, v, valid):
    """TNO(v), divided by TNO(1) when `normalize`: y_i / sum_j t_{i-j} per channel, the sum over the
    valid positions j (all of them without a ragged batch)."""
    y = product(v)
    if not cfg["normalize"]:
        return y
    ones = torch.ones_like(v) if valid is None else valid.unsqueeze(-1).to(v.dtype).expand_as(v)
    return y / product(ones)


def tno_1d(toeplitz):
    """The token mixer of a sequence: v [B, N, E] -> TNO(v) (model.md §3)."""
    def mix(cfg, P, prefix, v, valid=None):
        t = tno_coefficients(cfg, P, prefix, v.shape[1], v.dtype)
        return _normalized(cfg, lambda x: toeplitz(t, x, cfg["causal"]), v, valid)
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
    def mix(cfg, P, prefix, v, valid=None):
        di, dj = torch.meshgrid(torch.arange(-(gh - 1), gh, dtype=v.dtype), torch.arange(-(gw - 1), gw, dtype=v.dtype),
                                indexing="ij")
        k = torch.stack([di.reshape(-1), dj.reshape(-1)], -1)  # [(2gh-1)(2gw-1), 2], row p*(2gw-1) + q
        t = decayed(cfg, P, prefix, rpe(cfg, P, prefix + "rpe.", k), k.abs().sum(-1))
        t = activation(cfg["act_type"], t).reshape(2 * gh - 1, 2 * gw - 1, -1)
        return _normalized(cfg, lambda x: toeplitz2d_dense(t, x, gh, gw), v, valid)
    return mix


def gtu(cfg, P, prefix, x, mix, valid=None):
    """model.md §4; with `use_norm`, the norm over the E channels of u * TNO(v) before o."""
    a = cfg["gtu_act"]
    u = activation(a, linear(P, prefix + "u_proj.", x))  # [B, N, E]
    v = activation(a, linear(P, prefix + "v_proj.", x))  # [B, N, E]
    if valid is not None:  # ragged batch: positions >= length are zeroed at the TNO input
        v = v * valid.unsqueeze(-1)
    y = u * mix(cfg, P, prefix + "toep.", v, valid)
    if cfg["use_norm"]:
        y = norm(cfg, P, prefix + "norm.", y)
    return linear(P, prefix + "o.", y)


TOKEN_MIXER_IMPL["tno"] = (tno_specs, gtu)


def attention_specs(cfg, t, image):
    """Softmax attention under prefix t: fairseq's MultiheadAttention names, q_proj, k_proj, v_proj,
    out_proj, each [D, D] + [D] (the `bias` option concerns the GTU and the RPE only)."""
    D = cfg["dim"]
    specs = []
    for n in ("q_proj.", "k_proj.", "v_proj.", "out_proj."):
        specs += _linear_specs(t + n, D, D)
    return specs


def attention(cfg, P, prefix, x, mix=None, valid=None):
    """Multi-head scaled dot-product attention, x [B, N, D] -> [B, N, D]: H heads of Dh = D / H
    channels, scores q k^T / sqrt(Dh), position i sees keys j <= i when causal, and in a ragged
    batch (valid [B, N] 0/1) only the valid keys; out_proj of the heads side by side. `mix`, the
    TNO, is not used: attention reads positions only from what the input added."""
    B, N, D = x.shape
    H = cfg["heads"]
    Dh = D // H

    def split(t):  # [B, N, D] -> [B, H, N, Dh], head h = channels h*Dh ..
        return t.reshape(B, N, H, Dh).transpose(1, 2)

    q, k, v = (split(linear(P, prefix + n, x)) for n in ("q_proj.", "k_proj.", "v_proj."))
    scores = q @ k.transpose(-1, -2) / math.sqrt(Dh)  # [B, H, N, N]
    seen = torch.ones(N, N, dtype=torch.bool)
    if cfg["causal"]:
        seen = torch.tril(seen)
    seen = seen.view(1, 1, N, N)
    if valid is not None:
        seen = seen & valid.bool().view(B, 1, 1, N)
    p = torch.softmax(scores.masked_fill(~seen, float("-inf")), dim=-1)
    z = (p @ v).transpose(1, 2).reshape(B, N, D)
    return linear(P, prefix + "out_proj.", z)


TOKEN_MIXER_IMPL["attention"] = (attention_specs, attention)


def sinusoidal_positions(N, D, dtype):
    """[N, D], row p: sin(p w_i) at channel i and cos(p w_i) at channel D/2 + i, w_i = 10000^(-i / (D/2 - 1))
    (w_0 = 1 when D/2 = 1), an odd D's last channel 0: fairseq's SinusoidalPositionalEmbedding with
    positions counted from 0. Computed in float64."""
    half = D // 2
    i = torch.arange(half, dtype=torch.float64)
    w = torch.exp(-math.log(10000.0) * i / (half - 1)) if half > 1 else torch.ones(half, dtype=torch.float64)
    a = torch.arange(N, dtype=torch.float64).view(N, 1) * w.view(1, half)
    pe = torch.cat([torch.sin(a), torch.cos(a), torch.zeros(N, D % 2, dtype=torch.float64)], 1)
    return pe.to(dtype)


def add_positions(cfg, x):
    """x [B, N, D] plus the absolute positions of `positions` (none: x itself)."""
    if cfg["positions"] == "sinusoidal":
        return x + sinusoidal_positions(x.shape[1], x.shape[2], x.dtype)
    return x


def glu(cfg, P, prefix, x):
    h = activation(cfg["glu_act"], linear(P, prefix + "l1.", x)) * linear(P, prefix + "l2.", x)
    return linear(P, prefix + "l3.", h)


def embed(cfg, P, tokens):
    """The token embedding, times sqrt(D) with `scale_embedding`, plus the positions, then the
    embedding norm (fairseq's TransformerDecoder order)."""
    x = P["embed.weight"][tokens]
    if cfg["scale_embedding"]:
        x = x * math.sqrt(cfg["dim"])
    return norm_of(cfg["embed_norm_type"], P, "embed_norm.", add_positions(cfg, x))


def backbone(cfg, P, tokens, toeplitz, valid=None):
    """Embedding, the layers and the final norm: [B, N] -> [B, N, D]. valid: [B, N] 0/1 or None."""
    return layers_and_final_norm(cfg, P, embed(cfg, P, tokens), tno_1d(toeplitz), valid)


def layers_and_final_norm(cfg, P, x, mix, valid=None):
    """The TNN layers (model.md §7) with token mixer `mix`, then the final norm: [B, N, D] -> [B, N, D].
    Pre-norm x + f(norm(x)); post-norm x + norm(f(x)), or norm(x + f(x)) with postnorm_residual."""
    token_mixer = _mixer(cfg)[1]
    for i in range(cfg["layers"]):
        p = f"layers.{i}."
        for nname, f in (("token_norm.", lambda h: token_mixer(cfg, P, p + "token_mixer.", h, mix, valid)),
                         ("feature_norm.", lambda h: glu(cfg, P, p + "feature_mixer.", h))):
            if cfg["prenorm"]:
                x = x + f(norm(cfg, P, p + nname, x))
            elif cfg["postnorm_residual"]:
                x = norm(cfg, P, p + nname, x + f(x))
            else:
                x = x + norm(cfg, P, p + nname, f(x))
    return norm_of(cfg["final_norm_type"], P, "final_norm.", x)


def lm_head(cfg, P, x):
    """[B, N, D] -> logits [B, N, V]: x Whead^T ("linear"), or RoBERTa's head ("roberta"):
    LayerNorm(gelu(dense(x))) Whead^T + bias. Whead = embed.weight when tied."""
    head = P["embed.weight"] if cfg["tie_embeddings"] else P["lm_head.weight"]
    if cfg["lm_head_type"] == "roberta":
        h = activation("gelu", linear(P, "lm_head.dense.", x))
        return norm_of("layernorm", P, "lm_head.layer_norm.", h) @ head.t() + P["lm_head.bias"]
    return x @ head.t()


def classifier_forward(cfg, P, tokens, lengths, labels=None, toeplitz=toeplitz_dense):
    """tokens [B, N], lengths [B] in 1..N, labels [B]: (mean cross-entropy or None, logits [B, K]).
    Pooling: the mean over positions < length ("mean"), position 0 ("first"), or each channel's
    maximum over positions < length ("max")."""
    cfg = full_config(cfg)
    B, N = tokens.shape
    valid = (torch.arange(N).view(1, N) < lengths.view(B, 1)).to(P["embed.weight"].dtype)  # [B, N]
    x = backbone(cfg, P, tokens, toeplitz, valid)
    if cfg["pooling"] == "first":
        pooled = x[:, 0]
    elif cfg["pooling"] == "max":
        pooled = x.masked_fill(valid.unsqueeze(-1) == 0, float("-inf")).amax(1)
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
    x = layers_and_final_norm(cfg, P, add_positions(cfg, linear(P, "patch_embed.", x)), tno_2d(gh, gw))
    pooled = x[:, 0] if cfg["pooling"] == "first" else x.amax(1) if cfg["pooling"] == "max" else x.mean(1)
    logits = linear(P, "head.", pooled)  # [B, K]
    if labels is None:
        return None, logits
    nll = torch.logsumexp(logits, -1) - logits.gather(1, labels.view(B, 1)).squeeze(1)
    return nll.mean(), logits


def regress_forward(cfg, P, features, targets=None, toeplitz=toeplitz_dense):
    """features [B, N, F], targets [B, N, Fo]: (loss or None, values [B, N, Fo]). The loss is the
    mean of (value - target)^2 over all B * N * Fo values (tnn's grad passes no lengths)."""
    cfg = full_config(cfg)
    x = add_positions(cfg, linear(P, "input_proj.", features))
    y = linear(P, "head.", layers_and_final_norm(cfg, P, x, tno_1d(toeplitz)))
    if targets is None:
        return None, y
    return ((y - targets) ** 2).sum() / targets.numel(), y


def regress_loss_and_grads(cfg, params_np, features_np, targets_np, dtype=torch.float64, toeplitz=toeplitz_dense):
    """Returns (loss float, values numpy [B, N, Fo], {name: grad numpy}) for a regressor config."""
    cfg = full_config(cfg)
    specs = param_specs(cfg)
    P = {n: torch.tensor(params_np[n], dtype=dtype, requires_grad=tr) for n, _, _, tr in specs}
    features = torch.tensor(np.asarray(features_np), dtype=dtype)
    targets = torch.tensor(np.asarray(targets_np), dtype=dtype)
    loss, values = regress_forward(cfg, P, features, targets, toeplitz)
    names = [n for n, _, _, tr in specs if tr]
    grads = torch.autograd.grad(loss, [P[n] for n in names], allow_unused=True)
    g = {n: (torch.zeros_like(P[n]) if gr is None else gr).detach().numpy() for n, gr in zip(names, grads)}
    return float(loss.detach()), values.detach().numpy(), g


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
    logits = lm_head(cfg, P, backbone(cfg, P, tokens, toeplitz))  # [B, N, V]
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

    def report_gradcheck(what, cfg, pnp, loss, data=()):
        """torch.autograd.gradcheck of loss(P, *data) over the tensors data and every trained
        parameter of cfg (values pnp); returns data."""
        specs = param_specs(cfg)
        names = [n for n, _, _, tr in specs if tr]

        def f(*ts):
            P = {n: torch.tensor(pnp[n]) for n, _, _, _ in specs}
            P.update(dict(zip(names, ts[len(data):])))
            return loss(P, *ts[:len(data)])

        inputs = tuple(data) + tuple(torch.tensor(pnp[n], requires_grad=True) for n in names)
        try:
            good = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)
        except RuntimeError as e:
            print(e)
            good = False
        report(f"gradcheck {what} (1 = pass)", float(good), 0.5, above=True)
        return data

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
    # The official options (docs/official.md): every activation, norm and option in some config.
    T = dict(vocab_size=5, dim=4, layers=1, heads=2, expand_ratio=1.5, rpe_dim=3, rpe_layers=1, gamma=0.9)
    tiny += [
        dict(T, gtu_act="elu", glu_act="sigmoid", rpe_act="leak", norm_type="scalenorm", decay="learned"),
        dict(T, gtu_act="1+elu", glu_act="2+elu", rpe_act="exp", norm_type="gatedrmsnorm", causal=False,
             prenorm=False, use_norm=True),
        dict(T, gtu_act="exp", glu_act="leak", rpe_act="1+elu", norm_type="layernorm", use_norm=True,
             normalize=True, residual=True, rpe_layers=2, decay="none", act_type="sigmoid"),
        dict(T, causal=False, normalize=True, par_type=2, bias=False, glu_bias=False, norm_type="rmsnorm",
             rpe_act="sigmoid", glu_act="1+elu"),
        dict(T, par_type=3, residual=True, rpe_layers=2, scale_embedding=True, embed_norm_type="gatedrmsnorm",
             final_norm_type="scalenorm", prenorm=False, postnorm_residual=True, act_type="elu"),
        dict(T, causal=False, par_type=3, embed_norm_type="layernorm", final_norm_type="none", prenorm=False,
             postnorm_residual=True, lm_head_type="roberta", tie_embeddings=True, dropout=0.1),
        dict(T, lm_head_type="roberta", norm_type="scalenorm", final_norm_type="layernorm", use_norm=True,
             gtu_act="2+elu", decay="fixed"),
    ]
    # The Transformer baseline: attention as the token mixer, sinusoidal positions.
    tiny += [
        dict(vocab_size=5, dim=4, layers=1, heads=2, token_mixer="attention", positions="sinusoidal"),
        dict(vocab_size=5, dim=6, layers=2, heads=3, token_mixer="attention", causal=False, prenorm=False,
             norm_type="layernorm", tie_embeddings=True, glu_dim=5),
    ]
    for ci, cfg in enumerate(tiny):
        cfg = full_config(cfg)
        pnp = random_params(cfg, rng)
        B, N = 2, 4
        tokens = torch.as_tensor(rng.integers(0, cfg["vocab_size"], (B, N)))
        targets = torch.as_tensor(rng.integers(0, cfg["vocab_size"], (B, N)))
        targets[0, 1] = -1
        report_gradcheck(f"tiny config {ci}", cfg, pnp,
                         lambda P, cfg=cfg, tokens=tokens, targets=targets: forward(cfg, P, tokens, targets)[0])

    # 2b. gradcheck of the image model (patch 2 over a 4 x 6 x 2 image: a 2 x 3 grid), parameters and pixels.
    icfg = full_config(dict(task="image", causal=False, image_height=4, image_width=6, image_channels=2, patch_size=2,
                            num_classes=3, dim=4, layers=1, heads=2, expand_ratio=1, rpe_dim=3, rpe_layers=1,
                            norm_type="layernorm", use_decay=False, use_multi_decay=True, gamma=0.8))
    labels = torch.tensor([0, 2])
    report_gradcheck("tiny image config", icfg, random_params(icfg, rng),
                     lambda P, images: image_forward(icfg, P, images, labels)[0],
                     (torch.tensor(rng.random((2, 4, 6, 2)), requires_grad=True),))

    # 2c. the regressor: gradcheck (parameters and features), causal and bidirectional, one with
    # attention and positions; its loss against F.mse_loss; a causal regressor's value at i does
    # not depend on features after i, a bidirectional one's does; its config errors.
    import torch.nn.functional as F
    R = dict(task="regress", dim=4, layers=1, heads=2, expand_ratio=1.5, rpe_dim=3, gamma=0.9)
    for rc in (dict(R, input_features=3, output_features=2, norm_type="layernorm"),
               dict(R, input_features=1, output_features=1, causal=False, prenorm=False, decay="learned"),
               dict(R, input_features=2, output_features=3, token_mixer="attention", positions="sinusoidal")):
        rcfg = full_config(rc)
        pnp = random_params(rcfg, rng)
        tgt = torch.tensor(rng.normal(size=(2, 5, rcfg["output_features"])))
        inputs = report_gradcheck(
            f"tiny regressor causal={rcfg['causal']} {rcfg['token_mixer']}", rcfg, pnp,
            lambda P, features, rcfg=rcfg, tgt=tgt: regress_forward(rcfg, P, features, tgt)[0],
            (torch.tensor(rng.normal(size=(2, 5, rcfg["input_features"])), requires_grad=True),))
        P = {n: torch.tensor(a) for n, a in pnp.items()}
        loss, values = regress_forward(rcfg, P, inputs[0].detach(), tgt)
        report(f"regressor causal={rcfg['causal']} loss vs F.mse_loss", abs(float(loss) - float(F.mse_loss(values, tgt))),
               1e-14)
        feats = inputs[0].detach()
        _, base = regress_forward(rcfg, P, feats)
        worst_past, worst_future = 0.0, 0.0
        for pos in range(5):
            f2 = feats.clone()
            f2[:, pos] += 1.0
            d = (regress_forward(rcfg, P, f2)[1] - base).abs().amax(-1).amax(0)  # [N]
            worst_past = max(worst_past, float(d[:pos].max()) if pos > 0 else 0.0)
            worst_future = max(worst_future, float(d[pos:].max()))
        if rcfg["causal"]:
            report("causal regressor: change at pos j leaves values < j unchanged", worst_past, 1e-13)
        else:
            report("bidirectional regressor: change at pos j moves values < j", worst_past, 1e-6, above=True)
        report(f"regressor causal={rcfg['causal']}: change at pos j moves values >= j", worst_future, 1e-6, above=True)
    for bad in (dict(R, input_features=2, output_features=1, vocab_size=3), dict(R, input_features=2),
                dict(R, input_features=0, output_features=1), dict(R, input_features=2, output_features=1,
                                                                   tie_embeddings=True),
                dict(R, input_features=2, output_features=1, embed_norm_type="layernorm"),
                dict(vocab_size=3, dim=2, layers=1, input_features=2)):
        try:
            full_config(bad)
            refused = False
        except ValueError:
            refused = True
        report(f"regressor config {bad} refused (1 = pass)", float(refused), 0.5, above=True)

    # 3. causal: logits at i do not depend on tokens after i; bidirectional: they do.
    attn = dict(token_mixer="attention", positions="sinusoidal")
    for causal, extra in ((True, {}), (False, {}), (True, dict(par_type=2, normalize=True, use_norm=True)),
                          (True, attn), (False, attn)):
        cfg = full_config(dict(vocab_size=7, dim=4, layers=2, heads=2, expand_ratio=2, rpe_dim=4,
                               causal=causal, gamma=0.9, **extra))
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
            report(f"causal {extra}: change at pos j leaves logits < j unchanged", worst_past, 1e-13)
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
    cfg = full_config(dict(vocab_size=9, dim=4, layers=1, heads=2, expand_ratio=1.5, rpe_dim=5, decay="learned",
                           causal=False, normalize=True, par_type=3, residual=True, use_norm=True,
                           norm_type="gatedrmsnorm"))
    pnp = random_params(cfg, rng)
    l1, lg1, g1 = loss_and_grads(cfg, pnp, tokens, targets, toeplitz=toeplitz_dense)
    l2, lg2, g2 = loss_and_grads(cfg, pnp, tokens, targets, toeplitz=toeplitz_fft)
    err = max([abs(l1 - l2)] + [float(np.abs(g1[n] - g2[n]).max() / max(np.abs(g1[n]).max(), 1e-300)) for n in g1])
    report("model with official options, dense vs fft toeplitz (rel)", err, 1e-10)

    # 4b. classifier: each row of a ragged batch equals that row alone at its length.
    for pooling, extra in (("mean", {}), ("first", {}), ("mean", attn), ("first", attn)):
        official = {} if extra else dict(normalize=pooling == "mean", use_norm=True)
        cfg = full_config(dict(vocab_size=7, dim=4, layers=2, heads=2, expand_ratio=1.5, rpe_dim=4, causal=False,
                               task="classify", num_classes=3, pooling=pooling, norm_type="layernorm",
                               **official, **extra))
        P = {n: torch.tensor(a) for n, a in random_params(cfg, rng).items()}
        tok = torch.as_tensor(rng.integers(0, 7, (3, 11)))
        lens = torch.tensor([11, 4, 1])
        _, lg = classifier_forward(cfg, P, tok, lens)
        worst = 0.0
        for b in range(3):
            n = int(lens[b])
            _, alone = classifier_forward(cfg, P, tok[b:b + 1, :n], lens[b:b + 1])
            worst = max(worst, float((alone[0] - lg[b]).abs().max()))
        report(f"classifier ({pooling}, normalize {cfg['normalize']}, {cfg['token_mixer']}): ragged rows equal each "
               "row alone", worst, 1e-12)

    # 5. building blocks against torch's own functions.
    import torch.nn.functional as F
    x = torch.randn(3, 5, 6, dtype=torch.float64)
    for a, ref in (("relu", F.relu(x)), ("silu", F.silu(x)), ("gelu", F.gelu(x)), ("none", x),
                   ("elu", F.elu(x)), ("sigmoid", torch.sigmoid(x)), ("exp", torch.exp(x)),
                   ("leak", F.leaky_relu(x)), ("1+elu", 1 + F.elu(x)), ("2+elu", 2 + F.elu(x))):
        report(f"activation {a} vs torch.nn.functional", float((activation(a, x) - ref).abs().max()), 1e-14)
    assert set(ACTIVATIONS) == {"relu", "silu", "gelu", "none", "elu", "sigmoid", "exp", "leak", "1+elu", "2+elu"}
    w, b = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    lcfg = {"norm_type": "layernorm"}
    report("layernorm vs F.layer_norm", float((norm(lcfg, {"weight": w, "bias": b}, "", x)
                                               - F.layer_norm(x, (6,), w, b, 1e-5)).abs().max()), 1e-13)
    rms = x / (x.pow(2).mean(-1, keepdim=True).sqrt() + 1e-8)
    report("rmsnorm vs x/(rms+eps)*scale", float((norm({"norm_type": "rmsnorm"}, {"scale": w}, "", x)
                                                  - rms * w).abs().max()), 1e-13)
    g = torch.randn(6, dtype=torch.float64)
    gated = x / (x.pow(2).mean(-1, keepdim=True).sqrt() + 1e-8) * w * torch.sigmoid(g * x)
    report("gatedrmsnorm vs x/(rms+eps)*scale*sigmoid(gate*x)",
           float((norm_of("gatedrmsnorm", {"scale": w, "gate": g}, "", x) - gated).abs().max()), 1e-13)
    sc = torch.tensor([1.7], dtype=torch.float64)
    report("scalenorm vs x*rsqrt(mean(x^2)+1e-5)*scala",
           float((norm_of("scalenorm", {"scala": sc}, "", x) - x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
                  * sc).abs().max()), 1e-13)
    report("norm none is the identity", float((norm_of("none", {}, "", x) - x).abs().max()), 1e-300)

    # 5a. attention against a loop over heads, queries and visible keys; the positions against
    # fairseq's formula written with numpy.
    for causal in (True, False):
        acfg = full_config(dict(vocab_size=5, dim=6, layers=1, heads=3, token_mixer="attention", causal=causal))
        P = {n: torch.tensor(a) for n, a in random_params(acfg, rng).items()}
        x = torch.randn(2, 7, 6, dtype=torch.float64)
        valid = torch.tensor([[1.0] * 7, [1.0] * 4 + [0.0] * 3], dtype=torch.float64)
        got = attention(acfg, P, "layers.0.token_mixer.", x, None, valid)
        W = {n: P["layers.0.token_mixer." + n] for n in ("q_proj.weight", "q_proj.bias", "k_proj.weight",
                                                         "k_proj.bias", "v_proj.weight", "v_proj.bias",
                                                         "out_proj.weight", "out_proj.bias")}
        q, k, v = (x @ W[n + ".weight"].t() + W[n + ".bias"] for n in ("q_proj", "k_proj", "v_proj"))
        z = torch.zeros_like(x)
        for b in range(2):
            length = int(valid[b].sum())
            for h in range(3):
                c = slice(2 * h, 2 * h + 2)
                for i in range(7):
                    js = [j for j in range(length) if not causal or j <= i]
                    s_ = torch.stack([(q[b, i, c] * k[b, j, c]).sum() / math.sqrt(2.0) for j in js])
                    w_ = torch.exp(s_ - s_.max())
                    z[b, i, c] = sum(w_[t] * v[b, j, c] for t, j in enumerate(js)) / w_.sum()
        want = z @ W["out_proj.weight"].t() + W["out_proj.bias"]
        report(f"attention causal={causal} ragged vs a loop", float((got - want).abs().max()), 1e-13)
    for D in (2, 3, 8, 9):
        half = D // 2
        want = np.zeros((6, D))
        for pos in range(6):
            for i in range(half):
                w = 10000.0 ** (-i / (half - 1)) if half > 1 else 1.0
                want[pos, i], want[pos, half + i] = math.sin(pos * w), math.cos(pos * w)
        err = float(np.abs(sinusoidal_positions(6, D, torch.float64).numpy() - want).max())
        report(f"sinusoidal positions D={D} vs the formula", err, 1e-14)

    # 5b. par_type: the RPE's input at length N = 5.
    k = torch.arange(-4, 5, dtype=torch.float64)
    want = {1: k, 2: k / 4, 3: torch.exp(k / 4)}
    for pt in PAR_TYPES:
        report(f"par_type {pt} input at N = 5", float((rpe_input(k, 5, pt) - want[pt]).abs().max()), 1e-15)
    report("par_type 3 input at N = 1 is exp(0)", abs(float(rpe_input(torch.zeros(1, dtype=torch.float64), 1, 3)) - 1), 1e-300)

    # 5c. normalize: a constant sequence comes out of TNO / TNO(1) unchanged, ragged or not.
    for causal in (True, False):
        ncfg = full_config(dict(vocab_size=5, dim=4, layers=1, heads=2, rpe_dim=3, causal=causal, normalize=True))
        P = {n: torch.tensor(a) for n, a in random_params(ncfg, rng).items()}
        v = torch.full((2, 7, dims(ncfg)[3]), 1.5, dtype=torch.float64)  # E channels, whatever the default expand_ratio
        valid = torch.tensor([[1.0] * 7, [1.0] * 3 + [0.0] * 4], dtype=torch.float64)
        y = tno_1d(toeplitz_dense)(ncfg, P, "layers.0.token_mixer.toep.", v * valid.unsqueeze(-1), valid)
        err = float((y - 1.5).abs()[valid.bool()].max())
        report(f"normalize causal={causal}: constant in, same constant out (valid positions)", err, 1e-13)

    # 5d. the two spellings of the decay, and a config written in the old one reads back the same.
    for legacy, new in (({"use_decay": True}, "fixed"), ({"use_decay": False}, "none"),
                        ({"use_decay": False, "use_multi_decay": True}, "learned"), ({}, "fixed")):
        c = full_config(dict(vocab_size=3, dim=2, layers=1, **legacy))
        back = full_config(config_for_file(c, legacy=True))
        report(f"decay {legacy} reads as '{new}' and round-trips (1 = pass)",
               float(c["decay"] == new and back == c), 0.5, above=True)
    c = full_config(dict(vocab_size=3, dim=2, layers=1, heads=2, token_mixer="attention", positions="sinusoidal"))
    written = config_for_file(c, legacy=True)
    report("an attention config in the old spelling keeps token_mixer and positions (1 = pass)",
           float(full_config(written) == c and written["token_mixer"] == "attention"), 0.5, above=True)
    for bad in (dict(decay="fixed", use_decay=True), dict(use_decay=True, use_multi_decay=True),
                dict(gtu_act="swish"), dict(norm_type="none"), dict(par_type=4), dict(final_norm_type="batchnorm"),
                dict(lm_head_type="mlp"), dict(bias=1), dict(act_type="swish"), dict(token_mixer="mamba"),
                dict(positions="rotary"), dict(token_mixer="attention", heads=3)):
        try:
            full_config(dict(vocab_size=3, dim=2, layers=1, **bad))
            refused = False
        except ValueError:
            refused = True
        report(f"config {bad} refused (1 = pass)", float(refused), 0.5, above=True)

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
    batch, _ = safetensors_io.load(args.inputs)
    tb = {"fft": toeplitz_fft, "dense": toeplitz_dense}[args.toeplitz]
    if is_image(cfg):
        loss, logits, grads = image_loss_and_grads(cfg, params, batch["images"], batch["labels"], dtype)
    elif is_regressor(cfg):
        loss, logits, grads = regress_loss_and_grads(cfg, params, batch["inputs"], batch["targets"], dtype, tb)
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
    g.add_argument("--inputs", required=True)
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
