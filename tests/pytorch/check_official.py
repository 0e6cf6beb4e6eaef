"""Prove that the reference (tnn_reference.py) and the converter (tools/convert_checkpoint.py)
compute what the official code computes.

For each option: build the official modules (tnn-pytorch's TnnLayer / Gtu / GLU / norms, and
fairseq-evo's TnnV2DecoderLayer / TnnV2EncoderLayer) in float64 with random weights, wired into the
language models the converter reads, save their state_dict in the official form, convert it, run the
reference on the converted file and compare the logits (max |diff| / max |official|). With the
tnn program (--tnn, built by default), every case also compares gradients: the official model's
loss and parameter gradients from PyTorch autograd, put through the converter as if they were a
checkpoint, against `tnn grad` on the converted model (tolerance 1e-10). Each case also converts
back (--to tnn-pytorch, where that form can hold the model) and reloads the result into the
official modules. Options tnn refuses are checked to be refused.

The official code is not part of this repository: point --official at a directory with
  tnn-pytorch/   a checkout of Doraemonzzz/tnn-pytorch (the package tnn_pytorch)
  einops/        a checkout of arogozhnikov/einops (tnn-pytorch imports it)
  fairseq-evo/   a checkout of OpenNLPLab/fairseq-evo (optional: only its fairseq/modules files are
                 loaded, beside small stand-ins for the fairseq core they import)
Without tnn_pytorch the script prints why and exits 77 (skipped).

  /usr/bin/python3 tests/pytorch/check_official.py [--official DIR] [--tnn PROGRAM] [--only SUBSTR] [-v]
"""
import argparse
import io
import math
import os
import shutil
import subprocess
import sys
import tempfile
from argparse import Namespace
from contextlib import redirect_stderr

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
os.environ.setdefault("LOGLEVEL", "WARNING")  # the official modules log every constructor argument

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import convert_checkpoint  # noqa: E402
import safetensors_io  # noqa: E402
import tnn_reference as ref  # noqa: E402

TOL = 1e-12
GRAD_TOL = 1e-10  # gradients: tnn's FFT products against the official code's, both in f64
SKIP = 77
TNN = None  # the tnn program for the gradient checks (main sets it; None: logits only)


# ------------------------------------------------------------------ random official weights

def randomize(module, rng, normalize=False):
    """Every parameter random and significant (norm scales near 1, gates near 1, biases small),
    the fixed decay left as the official constructor set it."""
    with torch.no_grad():
        seen = set()
        for name, p in module.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            shape = tuple(p.shape)
            leaf = name.rsplit(".", 1)[-1]
            if "embed" in name and p.dim() == 2:
                a = rng.normal(0.0, 1.0, shape)
            elif name.endswith("toep.gamma"):
                if not p.requires_grad:
                    continue
                a = rng.normal(0.0, 1.5, shape)  # learned decay's theta
            elif p.dim() == 2:
                a = rng.normal(0.0, 0.8 / math.sqrt(shape[1]), shape)
            elif leaf in ("scale", "scala") or (leaf == "weight" and p.dim() == 1):
                a = 1.0 + rng.normal(0.0, 0.2, shape)
            elif leaf == "gate":
                a = rng.normal(1.0, 0.5, shape)
            else:
                a = rng.normal(0.0, 0.2, shape)
                if normalize and name.endswith("toep.rpe.out.2.bias"):
                    a = a + 3.0  # coefficients mostly positive: the normalizer stays away from 0
            p.copy_(torch.as_tensor(a, dtype=p.dtype))


def rel_err(got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-300))


def reference_logits(path, tokens):
    params, meta = safetensors_io.load(path)
    cfg = ref.full_config(__import__("json").loads(meta["tnn.config"]))
    expected = {n for n, _, _, _ in ref.param_specs(cfg)}
    if set(params) != expected:
        raise AssertionError(f"converted names differ from the reference's: missing {sorted(expected - set(params))}"
                             f", extra {sorted(set(params) - expected)}")
    P = {n: torch.tensor(a, dtype=torch.float64) for n, a in params.items()}
    _, logits = ref.forward(cfg, P, torch.as_tensor(tokens))
    return logits.numpy(), cfg


def grad_check(model, tokens, converted, convert_state, work):
    """The official model's cross-entropy loss (next-token targets, some positions ignored as tnn
    ignores -1) and parameter gradients by autograd, against `tnn grad` on the converted model.
    `converted` is the model's converted file. The gradients reach tnn's names through the
    converter itself: convert_state(state, src, out) saves them in the official checkpoint form
    (buffers such as a fixed decay keep their values) and converts them like weights, which is
    exact because the converter only renames.
    Returns (worst relative difference over the loss and every gradient, note)."""
    if TNN is None:
        return 0.0, "gradients not checked (no tnn program)"
    targets = np.roll(tokens, -1, axis=1)
    targets[:, -1] = -1
    targets[0, 1] = -1
    model.zero_grad()
    logits = model(torch.as_tensor(tokens))
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.as_tensor(targets).reshape(-1),
                           ignore_index=-1)
    loss.backward()
    state = {}
    for k, v in model.state_dict(keep_vars=True).items():
        trained = isinstance(v, nn.Parameter) and v.requires_grad
        state[k] = (v.grad if v.grad is not None else torch.zeros_like(v)).detach() if trained else v.detach()
    gout = os.path.join(work, "grads.safetensors")
    rc, err = convert_state(state, os.path.join(work, "grads.pt"), gout)
    if rc != 0:
        return float("inf"), f"converting the gradients: {err}"
    want, _ = safetensors_io.load(gout)
    batch, out = os.path.join(work, "batch.safetensors"), os.path.join(work, "tnn_grad.safetensors")
    safetensors_io.save(batch, {"tokens": tokens.astype(np.int32), "targets": targets.astype(np.int32)})
    p = subprocess.run([TNN, "grad", "--checkpoint", converted, "--inputs", batch, "--out", out,
                        "--dtype", "f64"], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        return float("inf"), f"tnn grad: {p.stderr.strip()[-300:]}"
    got, _ = safetensors_io.load(out)
    worst, where = rel_err(got["loss"], float(loss)), "loss"
    names = [n[len("grad."):] for n in got if n.startswith("grad.")]
    missing = [n for n in names if n not in want]
    if missing:
        return float("inf"), f"tnn grad has gradients the official model lacks: {missing[:4]}"
    # Relative to each tensor's own gradient, but at least a thousandth of the model's largest: a
    # gradient that is zero but for rounding (an RPE whose ReLUs are all off for these weights) is
    # then measured against a meaningful scale rather than against its own rounding noise.
    floor = 1e-3 * max(float(np.abs(want[n]).max()) for n in names if want[n].size)
    for n in names:
        g, w = np.asarray(got["grad." + n], np.float64), np.asarray(want[n], np.float64)
        e = float(np.abs(g - w).max()) / max(float(np.abs(w).max()), floor) if w.size else 0.0
        if e > worst:
            worst, where = e, n
    return worst, f"loss and the gradients of {len(names)} tensors, worst {where}"


def convert(argv):
    """(exit status, stderr) of the converter."""
    err = io.StringIO()
    with redirect_stderr(err):
        rc = convert_checkpoint.main(argv)
    return rc, err.getvalue().strip()


# ------------------------------------------------------------------ tnn-pytorch

def tnn_pytorch_lm(tp, A):
    """The language model the converter's tnn-pytorch form describes, from the official modules."""
    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            V, D = A["vocab_size"], A["layer"]["dim"]
            self.embed = nn.Embedding(V, D)
            self.layers = nn.ModuleList([tp.TnnLayer(**A["layer"]) for _ in range(A["num_layers"])])
            if A.get("gtu") is not None:
                for layer in self.layers:
                    layer.token_mixer = tp.Gtu(**A["gtu"])
            fn = A.get("final_norm_type", A["layer"].get("norm_type", "simplermsnorm"))
            self.final_norm = nn.Identity() if fn == "none" else tp_helpers(tp).get_norm_fn(fn)(D)
            self.tied = A.get("tie_embeddings", False)
            if not self.tied:
                self.lm_head = nn.Linear(D, V, bias=False)

        def forward(self, tokens):
            x = self.embed(tokens)
            for layer in self.layers:
                x = layer(x)
            x = self.final_norm(x)
            return x @ self.embed.weight.t() if self.tied else self.lm_head(x)
    return LM()


def tp_helpers(tp):
    import tnn_pytorch.helpers as h
    return h


BASE_LAYER = dict(dim=8, num_heads=1, rpe_embedding=6, glu_dim=8)
BASE_GTU = dict(embed_dim=8, num_heads=1, rpe_embedding=6, rpe_layers=2)


def tp_cases():
    """(name, A) for the tnn-pytorch form; every option of TnnLayer and Gtu somewhere."""
    def lm(layer=None, gtu=None, **top):
        A = dict(vocab_size=13, num_layers=2, tie_embeddings=False, final_norm_type="simplermsnorm",
                 layer=dict(BASE_LAYER, **(layer or {})))
        if gtu is not None:
            A["gtu"] = dict(BASE_GTU, **gtu)
        A.update(top)
        return A

    cases = [("TnnLayer defaults (bidirectional, no decay)", lm()),
             ("TnnLayer causal use_decay", lm(dict(causal=True, use_decay=True))),
             ("TnnLayer use_decay gamma 0.9 bidirectional", lm(dict(use_decay=True, gamma=0.9))),
             ("TnnLayer prenorm False", lm(dict(prenorm=False, causal=True))),
             ("TnnLayer heads 2 expand 2.5", lm(dict(num_heads=2, expand_ratio=2.5, causal=True))),
             ("TnnLayer rpe_layers 0", lm(dict(rpe_layers=0))),
             ("tied embeddings", lm(tie_embeddings=True)),
             ("final_norm_type none", lm(final_norm_type="none"))]
    for n in ref.NORMS:
        cases.append((f"norm_type {n}", lm(dict(norm_type=n, causal=True), final_norm_type=n)))
        cases.append((f"norm_type {n} post-norm", lm(dict(norm_type=n, prenorm=False), final_norm_type=n)))
        cases.append((f"final_norm_type {n}", lm(final_norm_type=n)))
    for a in ref.ACTIVATIONS:
        cases.append((f"gtu_act {a}", lm(dict(gtu_act=a, causal=True))))
        cases.append((f"glu_act {a}", lm(dict(glu_act=a))))
        cases.append((f"rpe_act {a}", lm(dict(rpe_act=a, causal=True))))
    g = dict
    cases += [
        ("Gtu defaults", lm(gtu=g())),
        ("Gtu use_multi_decay gamma 0.9 causal", lm(gtu=g(use_multi_decay=True, gamma=0.9, causal=True))),
        ("Gtu use_multi_decay bidirectional", lm(gtu=g(use_multi_decay=True))),
        ("Gtu use_decay gamma 0.99 (Gtu default)", lm(gtu=g(use_decay=True, causal=True))),
        ("Gtu normalize causal", lm(gtu=g(normalize=True, causal=True))),
        ("Gtu normalize bidirectional decay", lm(gtu=g(normalize=True, use_decay=True))),
        ("Gtu residual", lm(gtu=g(residual=True, rpe_layers=3))),
        ("Gtu par_type 2 causal", lm(gtu=g(par_type=2, causal=True))),
        ("Gtu par_type 2 bidirectional", lm(gtu=g(par_type=2))),
        ("Gtu par_type 3 causal", lm(gtu=g(par_type=3, causal=True, use_decay=True))),
        ("Gtu bias False", lm(gtu=g(bias=False))),
        ("Gtu bias False causal par_type 3", lm(gtu=g(bias=False, causal=True, par_type=3))),
        ("Gtu heads 3 expand 1.5", lm(gtu=g(num_heads=3, expand_ratio=1.5, causal=True))),
        ("Gtu act_fun elu rpe_act exp", lm(gtu=g(act_fun="elu", rpe_act="exp"))),
        ("Gtu act_type exp causal", lm(gtu=g(act_type="exp", causal=True, use_decay=True))),
        ("Gtu act_type sigmoid normalize bidirectional", lm(gtu=g(act_type="sigmoid", normalize=True))),
        ("Gtu act_type relu use_multi_decay", lm(gtu=g(act_type="relu", use_multi_decay=True, causal=True))),
        ("Gtu act_type 1+elu par_type 2", lm(gtu=g(act_type="1+elu", par_type=2))),
        ("everything (tnn-pytorch)", lm(dict(norm_type="gatedrmsnorm", prenorm=False, glu_act="leak"),
                                        g(num_heads=2, bias=False, act_fun="1+elu", causal=True,
                                          use_norm=True, norm_type="gatedrmsnorm", use_multi_decay=True,
                                          rpe_act="sigmoid", normalize=True, par_type=2, residual=True,
                                          gamma=0.95, rpe_layers=3),
                                        final_norm_type="scalenorm", tie_embeddings=True)),
    ]
    for n in ref.NORMS:
        cases.append((f"Gtu use_norm {n}", lm(dict(norm_type=n), g(use_norm=True, norm_type=n, causal=True),
                                              final_norm_type=n)))
    return cases


TP_REFUSALS = [
    ("resi_param True", dict(resi_param=True)),
    ("act_type 'swish' (the official code runs it as the identity)", dict(act_type="swish")),
    ("par_type 3 bidirectional", dict(par_type=3)),
    ("use_decay and use_multi_decay", dict(use_decay=True, use_multi_decay=True)),
    ("unknown activation 'swish'", dict(act_fun="swish")),
]


def run_tnn_pytorch(tp, rng, work, only, verbose):
    results = []
    for name, A in tp_cases():
        if only and only not in name:
            continue
        torch.manual_seed(0)
        model = tnn_pytorch_lm(tp, A)
        normalize = bool(A.get("gtu", {}).get("normalize"))
        randomize(model, rng, normalize)
        model = model.double().eval()
        src, out, back = (os.path.join(work, f) for f in ("in.pt", "out.safetensors", "back.pt"))
        def convert_state(state, src, out):
            torch.save({"args": A, "state_dict": state}, src)
            return convert(["--from", "tnn-pytorch", src, out])
        rc, err = convert_state(model.state_dict(), src, out)
        if rc != 0:
            results.append((name, float("inf"), f"converter refused: {err}"))
            continue
        worst = 0.0
        for N in (2, 9, 16):
            tokens = rng.integers(0, A["vocab_size"], (2, N))
            with torch.no_grad():
                official = model(torch.as_tensor(tokens)).numpy()
            mine, _ = reference_logits(out, tokens)
            worst = max(worst, rel_err(mine, official))
        g_err, g_note = grad_check(model, rng.integers(0, A["vocab_size"], (2, 9)), out, convert_state, work)
        results.append((name + " (gradients)", g_err, g_note, GRAD_TOL))
        # back to the official form: the same model, loaded strictly
        rc, err = convert(["--to", "tnn-pytorch", out, back])
        note = ""
        if rc != 0:
            note = f"--to refused: {err}"
        else:
            ck = torch.load(back)
            again = tnn_pytorch_lm(tp, ck["args"]).double().eval()
            again.load_state_dict(ck["state_dict"], strict=True)
            tokens = rng.integers(0, A["vocab_size"], (2, 9))
            with torch.no_grad():
                d = rel_err(again(torch.as_tensor(tokens)).numpy(), model(torch.as_tensor(tokens)).numpy())
            note = f"round trip {d:.1e}"
            worst = max(worst, d)
        results.append((name, worst, note))
    for name, gtu in TP_REFUSALS:
        if only and only not in name:
            continue
        A = dict(vocab_size=13, num_layers=1, layer=dict(BASE_LAYER), gtu=dict(BASE_GTU, **gtu))
        src = os.path.join(work, "refuse.pt")
        torch.save({"args": A, "state_dict": {}}, src)
        rc, err = convert(["--from", "tnn-pytorch", src, os.path.join(work, "refuse.safetensors")])
        ok = rc == 1 and err.count("\n") == 0 and err.startswith("convert_checkpoint: ")
        results.append((f"refuses {name}", 0.0 if ok else float("inf"), err))
    return results


# ------------------------------------------------------------------ fairseq-evo

# The fairseq-evo files that hold the TNN layers; copied into a scratch package beside stand-ins for
# the parts of fairseq's core they import (dropout, quant-noise, LayerNorm, a CLI helper).
FS_FILES = [
    "fairseq/incremental_decoding_utils.py",
    "fairseq/modules/helpers/__init__.py", "fairseq/modules/helpers/helpers.py",
    "fairseq/modules/norm/__init__.py", "fairseq/modules/norm/offset_scale.py",
    "fairseq/modules/norm/rms_norm.py", "fairseq/modules/norm/scale_norm.py",
    "fairseq/modules/others/__init__.py", "fairseq/modules/others/act_layer.py", "fairseq/modules/others/se.py",
    "fairseq/modules/ffn/__init__.py", "fairseq/modules/ffn/glu.py",
    "fairseq/modules/tnn/gtu_v2.py", "fairseq/modules/tnn/gtu_v3.py", "fairseq/modules/tnn/gtu_module_v2.py",
    "fairseq/modules/tnn/gtu_module_v3.py", "fairseq/modules/tnn/tno.py", "fairseq/modules/tnn/rpe.py",
    "fairseq/modules/tnn/tnn_layer_v2.py",
]
FS_STANDINS = {
    "fairseq/__init__.py": "",
    "fairseq/modules/tnn/__init__.py": "",
    "fairseq/utils.py": (
        "import torch, torch.nn.functional as F\n"
        "def get_activation_fn(activation):\n"
        "    return {'relu': F.relu, 'gelu': F.gelu, 'tanh': torch.tanh, 'silu': F.silu,\n"
        "            'linear': lambda x: x}[activation]\n"),
    "fairseq/modules/__init__.py": (
        "import torch.nn as nn\n"
        "def LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, export=False):\n"
        "    return nn.LayerNorm(normalized_shape, eps=eps, elementwise_affine=elementwise_affine)\n"
        "class TransformerDecoderLayer: pass\n"
        "class TransformerEncoderLayer: pass\n"),
    "fairseq/modules/fairseq_dropout.py": (
        "import torch.nn as nn, torch.nn.functional as F\n"
        "class FairseqDropout(nn.Module):\n"
        "    def __init__(self, p, module_name=None):\n"
        "        super().__init__(); self.p = p\n"
        "    def forward(self, x, inplace=False):\n"
        "        return F.dropout(x, p=self.p, training=True) if self.p > 0 and self.training else x\n"),
    "fairseq/modules/quant_noise.py": "def quant_noise(module, p, block_size):\n    return module\n",
}


def load_fairseq_evo(repo, scratch):
    """Imports fairseq.modules.tnn.tnn_layer_v2 and fairseq.modules.norm from a fairseq-evo checkout
    (a work tree or a bare git directory)."""
    import subprocess
    for rel in FS_FILES:
        dst = os.path.join(scratch, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        src = os.path.join(repo, rel)
        if os.path.exists(src):
            shutil.copyfile(src, dst)
        else:  # a bare repository, as fetched
            text = subprocess.run(["git", "-C", repo, "show", f"HEAD:{rel}"], capture_output=True, check=True).stdout
            with open(dst, "wb") as f:
                f.write(text)
    for rel, text in FS_STANDINS.items():
        dst = os.path.join(scratch, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)
    sys.path.insert(0, scratch)
    import fairseq.modules.norm as fs_norm
    import fairseq.modules.tnn.tnn_layer_v2 as fs_layers
    import fairseq.modules.helpers.helpers as fs_helpers
    return fs_layers, fs_norm, fs_helpers


def fs_args(**kw):
    """A model namespace as fairseq-evo's arch functions leave it (tnn_v2_decay_99_pre, small); the
    arguments read with getattr defaults (rpe_act, par_type, normalize, act_type, use_multi_decay,
    final_layernorm, glu_type, gtu_type, bias, causal) are absent unless a case sets them."""
    a = dict(_name="tnn_v2_decay_99_pre", decoder_embed_dim=16, decoder_input_dim=16, decoder_output_dim=16,
             decoder_layers=2, decoder_attention_heads=1, decoder_normalize_before=True, no_decoder_final_norm=False,
             share_decoder_input_output_embed=False, no_scale_embedding=False, layernorm_embedding=False,
             no_token_positional_embeddings=True, adaptive_input=False, adaptive_softmax_cutoff=None,
             character_embeddings=False, tie_adaptive_weights=False, quant_noise_pq=0, quant_noise_pq_block_size=8,
             dropout=0.1, attention_dropout=0.0, activation_fn="relu", decoder_layerdrop=0.0,
             act_fun="silu", expand_ratio=3, use_norm=False, norm_type="simplermsnorm", use_decay=True, gamma=0.99,
             rpe_embedding=8, rpe_layers=6, residual=False, glu_act="silu", glu_dim=16)
    a.update(kw)
    return a


def roberta_args(**kw):
    """roberta_tnn_v2_decay_99 after RoBERTa's base_architecture, small."""
    a = dict(_name="roberta_tnn_v2_decay_99", encoder_embed_dim=16, encoder_layers=2, encoder_attention_heads=1,
             encoder_normalize_before=False, layernorm_embedding=True, no_scale_embedding=True,
             untie_weights_roberta=False, activation_fn="gelu", no_token_positional_embeddings=True,
             adaptive_input=False, quant_noise_pq=0, quant_noise_pq_block_size=8, dropout=0.1, attention_dropout=0.1,
             encoder_layerdrop=0.0, toep_type=1, expand_ratio=3, use_decay=True, gamma=0.99, use_norm=False,
             norm_type="simplermsnorm", rpe_embedding=8, rpe_layers=6, residual=False, glu_act="silu", glu_dim=16)
    a.update(kw)
    return a


def fairseq_lm(fs, a, V):
    """tnn_v2_lm's decoder as fairseq-evo's TransformerDecoder wires it (names as its state_dict's)."""
    fs_layers, fs_norm, _ = fs
    args = Namespace(**a)

    def small_norm(kind, D):
        return fs_norm.SimpleRMSNorm(D) if kind == "simplermsnorm" else nn.LayerNorm(D)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            D = a["decoder_embed_dim"]
            self.register_buffer("version", torch.Tensor([3]))
            self.embed_tokens = nn.Embedding(V, D, padding_idx=1)
            self.embed_scale = 1.0 if a["no_scale_embedding"] else math.sqrt(D)
            self.layernorm_embedding = small_norm(a.get("embdding_layernorm", "layernorm"), D) \
                if a.get("layernorm_embedding") else None
            self.layers = nn.ModuleList([fs_layers.TnnV2DecoderLayer(args, no_encoder_attn=True)
                                         for _ in range(a["decoder_layers"])])
            final = a["decoder_normalize_before"] and not a.get("no_decoder_final_norm", False)
            self.layer_norm = small_norm(a.get("final_layernorm", "layernorm"), D) if final else None
            self.output_projection = nn.Linear(D, V, bias=False)
            if a["share_decoder_input_output_embed"]:
                self.output_projection.weight = self.embed_tokens.weight

        def forward(self, tokens):
            x = self.embed_scale * self.embed_tokens(tokens)
            if self.layernorm_embedding is not None:
                x = self.layernorm_embedding(x)
            x = x.transpose(0, 1)  # T x B x C
            for layer in self.layers:
                x, _, _ = layer(x, None, None, None, self_attn_mask=None, self_attn_padding_mask=None)
            if self.layer_norm is not None:
                x = self.layer_norm(x)
            return self.output_projection(x.transpose(0, 1))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.decoder = Decoder()

        def forward(self, tokens):
            return self.decoder(tokens)
    return Model()


def fairseq_roberta(fs, a, V):
    """roberta_tnn_v2: RobertaEncoder(sentence_encoder = TransformerEncoder of TnnV2EncoderLayers,
    lm_head = RobertaLMHead), as fairseq-evo wires them."""
    fs_layers, fs_norm, _ = fs
    args = Namespace(**a)

    class SentenceEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            D = a["encoder_embed_dim"]
            self.register_buffer("version", torch.Tensor([3]))
            self.embed_tokens = nn.Embedding(V, D, padding_idx=1)
            self.embed_scale = 1.0 if a["no_scale_embedding"] else math.sqrt(D)
            kind = a.get("embdding_layernorm", "layernorm")
            self.layernorm_embedding = (fs_norm.SimpleRMSNorm(D) if kind == "simplermsnorm" else nn.LayerNorm(D)) \
                if a["layernorm_embedding"] else None
            self.layers = nn.ModuleList([fs_layers.TnnV2EncoderLayer(args) for _ in range(a["encoder_layers"])])
            fk = a.get("final_layernorm", "layernorm")
            self.layer_norm = (fs_norm.SimpleRMSNorm(D) if fk == "simplermsnorm" else nn.LayerNorm(D)) \
                if a["encoder_normalize_before"] else None

        def forward(self, tokens):
            x = self.embed_scale * self.embed_tokens(tokens)
            if self.layernorm_embedding is not None:
                x = self.layernorm_embedding(x)
            pad = tokens.eq(1)
            x = x * (1 - pad.unsqueeze(-1).type_as(x))  # fairseq zeroes the padding positions here
            x = x.transpose(0, 1)
            for layer in self.layers:
                x = layer(x, encoder_padding_mask=pad if pad.any() else None)
            if self.layer_norm is not None:
                x = self.layer_norm(x)
            return x.transpose(0, 1)

    class LMHead(nn.Module):  # RobertaLMHead
        def __init__(self, D, weight):
            super().__init__()
            self.dense = nn.Linear(D, D)
            self.layer_norm = nn.LayerNorm(D)
            self.weight = weight if weight is not None else nn.Linear(D, V, bias=False).weight
            self.bias = nn.Parameter(torch.zeros(V))

        def forward(self, x):
            x = self.layer_norm(torch.nn.functional.gelu(self.dense(x)))
            return torch.nn.functional.linear(x, self.weight) + self.bias

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.sentence_encoder = SentenceEncoder()
            self.lm_head = LMHead(a["encoder_embed_dim"], None if a["untie_weights_roberta"]
                                  else self.sentence_encoder.embed_tokens.weight)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder()

        def forward(self, tokens):
            return self.encoder.lm_head(self.encoder.sentence_encoder(tokens))
    return Model()


def fs_cases():
    L, R = fs_args, roberta_args
    cases = [
        ("tnn_v2_decay_99_pre", "lm", L()),
        ("tnn_v2_decay_99_post (no final norm)", "lm", L(_name="tnn_v2_decay_99_post",
                                                          decoder_normalize_before=False)),
        ("tnn_v2_decay_99_pre_usenorm", "lm", L(_name="tnn_v2_decay_99_pre_usenorm", use_norm=True)),
        ("tnn_v2_decay_99_post_usenorm", "lm", L(_name="tnn_v2_decay_99_post_usenorm", use_norm=True,
                                                  decoder_normalize_before=False)),
        ("tnn_v2_no_decay", "lm", L(_name="tnn_v2_no_decay", use_decay=False)),
        ("final_layernorm simplermsnorm", "lm", L(final_layernorm="simplermsnorm")),
        ("no_decoder_final_norm", "lm", L(no_decoder_final_norm=True)),
        ("no_scale_embedding", "lm", L(no_scale_embedding=True)),
        ("layernorm_embedding layernorm", "lm", L(layernorm_embedding=True)),
        ("layernorm_embedding simplermsnorm", "lm", L(layernorm_embedding=True, embdding_layernorm="simplermsnorm")),
        ("share_decoder_input_output_embed", "lm", L(share_decoder_input_output_embed=True)),
        ("bias False (GLU only)", "lm", L(bias=False)),
        ("use_multi_decay gamma 0.9", "lm", L(use_decay=False, use_multi_decay=True, gamma=0.9)),
        ("normalize", "lm", L(normalize=True)),
        ("par_type 2", "lm", L(par_type=2)),
        ("par_type 3", "lm", L(par_type=3)),
        ("residual", "lm", L(residual=True)),
        ("heads 2 expand 2", "lm", L(decoder_attention_heads=2, expand_ratio=2)),
        ("rpe_act gelu act_fun elu glu_act 1+elu", "lm", L(rpe_act="gelu", act_fun="elu", glu_act="1+elu")),
        ("causal False in the LM", "lm", L(causal=False)),
        ("act_type 1+elu", "lm", L(act_type="1+elu")),
        ("roberta act_type sigmoid normalize", "roberta", R(act_type="sigmoid", normalize=True)),
        ("roberta_tnn_v2_decay_99", "roberta", R()),
        ("roberta untied", "roberta", R(untie_weights_roberta=True)),
        ("roberta prenorm + final simplermsnorm", "roberta", R(encoder_normalize_before=True,
                                                               final_layernorm="simplermsnorm")),
        ("roberta scaled, simplermsnorm embedding norm", "roberta", R(no_scale_embedding=False,
                                                                     embdding_layernorm="simplermsnorm")),
        ("roberta no embedding norm, use_norm, par_type 2", "roberta", R(layernorm_embedding=False, use_norm=True,
                                                                         par_type=2)),
    ]
    for n in ("rmsnorm", "layernorm", "scalenorm", "gatedrmsnorm"):
        cases.append((f"norm_type {n}", "lm", L(norm_type=n)))
        cases.append((f"norm_type {n} post", "lm", L(norm_type=n, decoder_normalize_before=False)))
        cases.append((f"roberta norm_type {n}", "roberta", R(norm_type=n)))
    return cases


FS_REFUSALS = [
    ("act_fun exp (row-max shift)", dict(act_fun="exp")),
    ("glu_type 2", dict(glu_type=2)),
    ("gtu_type 3", dict(gtu_type=3)),
    ("act_type exp (row-max shift)", dict(act_type="exp")),
    ("positional embeddings", dict(no_token_positional_embeddings=False)),
    ("adaptive_input", dict(adaptive_input=True)),
    ("fina_act gelu", dict(fina_act="gelu")),
]


def run_fairseq(fs, rng, work, only, verbose):
    results = []
    V = 17
    for name, kind, a in fs_cases():
        if only and only not in name:
            continue
        torch.manual_seed(0)
        model = (fairseq_lm if kind == "lm" else fairseq_roberta)(fs, a, V)
        randomize(model, rng, bool(a.get("normalize")))
        model = model.double().eval()
        src, out = os.path.join(work, "fs.pt"), os.path.join(work, "fs.safetensors")
        def convert_state(state, src, out):
            torch.save({"args": None, "cfg": {"model": a}, "model": state}, src)
            return convert(["--from", "fairseq", src, out])
        rc, err = convert_state(model.state_dict(), src, out)
        if rc != 0:
            results.append((f"fairseq {name}", float("inf"), f"converter refused: {err}"))
            continue
        worst = 0.0
        for N in (2, 9, 16):
            tokens = rng.integers(2, V, (2, N))  # no padding index (1): tnn has no padding token
            with torch.no_grad():
                official = model(torch.as_tensor(tokens)).numpy()
            mine, _ = reference_logits(out, tokens)
            worst = max(worst, rel_err(mine, official))
        g_err, g_note = grad_check(model, rng.integers(2, V, (2, 9)), out, convert_state, work)
        results.append((f"fairseq {name} (gradients)", g_err, g_note, GRAD_TOL))
        results.append((f"fairseq {name}", worst, ""))
    for name, kw in FS_REFUSALS:
        if only and only not in name:
            continue
        a = fs_args(**kw)
        model = fairseq_lm(fs, dict(a, glu_type=1, gtu_type=2, act_fun="silu", act_type="none",
                                    fina_act="None"), V)  # names as the accepted model's
        src = os.path.join(work, "fs_refuse.pt")
        torch.save({"args": None, "cfg": {"model": a}, "model": model.state_dict()}, src)
        rc, err = convert(["--from", "fairseq", src, os.path.join(work, "fs_refuse.safetensors")])
        ok = rc == 1 and err.count("\n") == 0 and err.startswith("convert_checkpoint: ")
        results.append((f"fairseq refuses {name}", 0.0 if ok else float("inf"), err))
    # Why fairseq-evo's exp is refused: it is not the pointwise exp.
    if not only or "exp" in only:
        x = torch.randn(4, 6, dtype=torch.float64)
        d = float((fs[2].get_activation_fn("exp")(x) - torch.exp(x)).abs().max())
        results.append(("fairseq-evo exp differs from exp (expected > 0)", 0.0 if d > 1e-3 else float("inf"),
                        f"max |diff| {d:.2f}"))
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", default=os.environ.get("TNN_OFFICIAL_DIR", "/tmp/official"),
                    help="directory with tnn-pytorch/, einops/ and optionally fairseq-evo/ (default "
                         "$TNN_OFFICIAL_DIR or /tmp/official)")
    ap.add_argument("--tnn", default=os.path.join(HERE, "..", "..", "build", "release", "bin", "tnn"),
                    help="the tnn program for the gradient checks (default: the release preset's); "
                         "without it only logits are compared")
    ap.add_argument("--only", metavar="SUBSTR", help="only the cases whose name contains SUBSTR")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    for sub in ("tnn-pytorch", "einops"):
        path = os.path.join(args.official, sub)
        if os.path.isdir(path):
            sys.path.insert(0, path)
    try:
        import tnn_pytorch as tp
    except ImportError as e:
        print(f"check_official: skipped: the official tnn_pytorch package is not importable ({e}); "
              f"see --help for the directory layout")
        return SKIP
    global TNN
    if os.access(args.tnn, os.X_OK):
        TNN = args.tnn
    else:
        print(f"check_official: {args.tnn} is not a program: logits only, gradients not checked")
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(args.seed)
    work = tempfile.mkdtemp(prefix="tnn_check_official_")
    try:
        results = run_tnn_pytorch(tp, rng, work, args.only, args.verbose)
        fs_repo = os.path.join(args.official, "fairseq-evo")
        if os.path.isdir(fs_repo):
            fs = load_fairseq_evo(fs_repo, os.path.join(work, "fairseq_evo_pkg"))
            results += run_fairseq(fs, rng, work, args.only, args.verbose)
        else:
            print(f"check_official: fairseq-evo part skipped: {fs_repo} does not exist")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    failed = 0
    print(f"{'case':66} {'worst rel err':>13}  result")
    for name, err, note, *tol in results:  # tol: GRAD_TOL for gradients, else TOL
        ok = err < (tol[0] if tol else TOL)
        failed += not ok
        print(f"{name:66} {err:13.2e}  {'ok' if ok else 'FAIL'}  {note}")
    print(f"\n{len(results) - failed} passed, {failed} failed (tolerance {TOL:.0e} for logits, {GRAD_TOL:.0e} for "
          f"gradients, f64)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
