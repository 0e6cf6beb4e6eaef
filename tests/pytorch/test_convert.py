"""Tests of tools/convert_checkpoint.py without the official code: the state_dicts are built here
by name and shape in both official naming schemes (tnn-pytorch's language-model form and
fairseq-evo's tnn_v2_lm / roberta_tnn_v2), converted, converted back, and run through the
reference model (tnn_reference.py) in float64. check_official.py is the test against the official
code itself.

  /usr/bin/python3 tests/pytorch/test_convert.py [-v]
"""
import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback
import types
from argparse import Namespace
from contextlib import redirect_stderr

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "..", "tools")
sys.path.insert(0, HERE)
sys.path.insert(0, TOOLS)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import convert_checkpoint  # noqa: E402
import safetensors_io  # noqa: E402
import tnn_reference as ref  # noqa: E402

RNG = np.random.default_rng(11)


# ------------------------------------------------------------------ official names, written out here

NORM_TENSORS = {"simplermsnorm": [], "none": [], "rmsnorm": ["scale"], "gatedrmsnorm": ["scale", "gate"],
                "scalenorm": ["scala"], "layernorm": ["weight", "bias"]}


def norm_tensors(prefix, kind, d):
    """The official norms' parameters: ScaleNorm's one scalar, the others [d] each."""
    return [(prefix + n, (1,) if n == "scala" else (d,)) for n in NORM_TENSORS[kind]]


def lin(prefix, o, i, bias=True):
    return [(prefix + "weight", (o, i))] + ([(prefix + "bias", (o,))] if bias else [])


def gtu_tensors(p, D, H, expand, R, rpe_layers, norm, bias=True, decay=True, use_norm=False):
    """Gtu's state_dict names (tnn-pytorch gtu.py, fairseq-evo gtu_v2.py) under p."""
    E = int(expand * D) // H * H
    t = lin(p + "v_proj.", E, D, bias) + lin(p + "u_proj.", E, D, bias) + lin(p + "o.", D, E, bias)
    if use_norm:
        t += norm_tensors(p + "norm.", norm, E)
    if decay:
        t.append((p + "toep.gamma", (H, 1, E // H)))
    t += lin(p + "toep.rpe.pos_proj.", R, 1, bias)
    for l in range(rpe_layers):
        t += norm_tensors(p + f"toep.rpe.layers.{l}.0.", norm, R) + lin(p + f"toep.rpe.layers.{l}.2.", R, R, bias)
    t += norm_tensors(p + "toep.rpe.out.0.", norm, R) + lin(p + "toep.rpe.out.2.", E, R, bias)
    return t


def glu_tensors(p, D, G, bias=True):
    return lin(p + "l1.", G, D, bias) + lin(p + "l2.", G, D, bias) + lin(p + "l3.", D, G, bias)


def random_state(names, dtype=torch.float64, gamma=None):
    out = {}
    for n, shape in names:
        if n.endswith("toep.gamma") and gamma is not None:
            a = np.full(shape, gamma)
        elif n.endswith(("scale", "scala", "gate")) or (n.endswith("weight") and len(shape) == 1):
            a = 1.0 + RNG.normal(0, 0.2, shape)
        elif len(shape) == 2:
            a = RNG.normal(0, 0.8 / math.sqrt(shape[1]), shape)
        else:
            a = RNG.normal(0, 0.3, shape)
        out[n] = torch.tensor(a, dtype=dtype)
    return out


def tp_checkpoint(layer, gtu=None, vocab=11, num_layers=2, tie=False, final="simplermsnorm", dtype=torch.float64):
    """{"args", "state_dict"} of the tnn-pytorch language-model form, official defaults applied by hand."""
    L = dict(prenorm=True, norm_type="simplermsnorm", causal=False, gtu_act="silu", expand_ratio=3,
             use_decay=False, gamma=0.999, rpe_act="relu", rpe_layers=3, glu_act="silu")
    L.update(layer)
    D = L["dim"]
    if gtu is not None:
        G = dict(bias=True, use_norm=False, norm_type="simplermsnorm", use_decay=False, use_multi_decay=False,
                 rpe_layers=3, rpe_embedding=512, expand_ratio=3, gamma=0.99)
        G.update(gtu)
        mixer = dict(H=G["num_heads"], expand=G["expand_ratio"], R=G["rpe_embedding"], rpe_layers=G["rpe_layers"],
                     norm=G["norm_type"], bias=G["bias"], decay=G["use_decay"] or G["use_multi_decay"],
                     use_norm=G["use_norm"])
        fixed = G["gamma"] if G["use_decay"] else None
    else:
        mixer = dict(H=L["num_heads"], expand=L["expand_ratio"], R=L["rpe_embedding"], rpe_layers=L["rpe_layers"],
                     norm=L["norm_type"], decay=L["use_decay"])
        fixed = L["gamma"] if L["use_decay"] else None
    names = [("embed.weight", (vocab, D))]
    for i in range(num_layers):
        p = f"layers.{i}."
        names += norm_tensors(p + "token_norm.", L["norm_type"], D)
        names += gtu_tensors(p + "token_mixer.", D, **mixer)
        names += norm_tensors(p + "feature_norm.", L["norm_type"], D)
        names += glu_tensors(p + "feature_mixer.", D, L["glu_dim"])
    names += norm_tensors("final_norm.", final, D)
    if not tie:
        names.append(("lm_head.weight", (vocab, D)))
    A = {"vocab_size": vocab, "num_layers": num_layers, "tie_embeddings": tie, "final_norm_type": final,
         "layer": dict(layer)}
    if gtu is not None:
        A["gtu"] = dict(gtu)
    return {"args": A, "state_dict": random_state(names, dtype, fixed)}


def fs_lm_checkpoint(model_args, vocab=13, legacy_args=False, dtype=torch.float64):
    """A fairseq-evo tnn_v2_lm checkpoint (tnn_v2_decay_99_pre by default), tensors named as
    TransformerDecoder + TnnV2DecoderLayer + GtuV2Module name them."""
    m = dict(_name="tnn_v2_decay_99_pre", decoder_embed_dim=8, decoder_layers=2, decoder_attention_heads=1,
             decoder_normalize_before=True, no_scale_embedding=False, share_decoder_input_output_embed=False,
             no_token_positional_embeddings=True, act_fun="silu", expand_ratio=3, use_norm=False,
             norm_type="simplermsnorm", use_decay=True, gamma=0.99, rpe_embedding=6, rpe_layers=6, residual=False,
             glu_act="silu", glu_dim=8, dropout=0.1)
    m.update(model_args)
    D, nt = m["decoder_embed_dim"], m["norm_type"]
    names = [("decoder.embed_tokens.weight", (vocab, D))]
    if m.get("layernorm_embedding"):
        kind = "simplermsnorm" if m.get("embdding_layernorm") == "simplermsnorm" else "layernorm"
        names += norm_tensors("decoder.layernorm_embedding.", kind, D)
    for i in range(m["decoder_layers"]):
        p = f"decoder.layers.{i}."
        names += gtu_tensors(p + "self_attn.gtu.", D, m["decoder_attention_heads"], m["expand_ratio"],
                             m["rpe_embedding"], m["rpe_layers"], nt, True,
                             m["use_decay"] or m.get("use_multi_decay", False), m["use_norm"])
        names += norm_tensors(p + "self_attn_layer_norm.", nt, D)
        names += glu_tensors(p + "glu.", D, m["glu_dim"], m.get("bias", True))
        names += norm_tensors(p + "final_layer_norm.", nt, D)
    if m["decoder_normalize_before"] and not m.get("no_decoder_final_norm"):
        kind = "simplermsnorm" if m.get("final_layernorm") == "simplermsnorm" else "layernorm"
        names += norm_tensors("decoder.layer_norm.", kind, D)
    names.append(("decoder.output_projection.weight", (vocab, D)))
    state = random_state(names, dtype, m["gamma"] if m["use_decay"] else None)
    if m["share_decoder_input_output_embed"]:
        state["decoder.output_projection.weight"] = state["decoder.embed_tokens.weight"]
    state["decoder.version"] = torch.tensor([3.0])
    if legacy_args:
        return {"args": Namespace(arch=m.pop("_name"), **m), "model": state}
    return {"args": None, "cfg": {"model": m, "task": {"_name": "language_modeling"}}, "model": state}


def fs_roberta_checkpoint(model_args, vocab=13, old_names=False):
    """A roberta_tnn_v2 checkpoint (roberta_tnn_v2_decay_99 after RoBERTa's base_architecture)."""
    m = dict(_name="roberta_tnn_v2_decay_99", encoder_embed_dim=8, encoder_layers=2, encoder_attention_heads=1,
             encoder_normalize_before=False, layernorm_embedding=True, no_scale_embedding=True,
             untie_weights_roberta=False, activation_fn="gelu", no_token_positional_embeddings=True, expand_ratio=3,
             use_decay=True, gamma=0.99, use_norm=False, norm_type="simplermsnorm", rpe_embedding=6, rpe_layers=6,
             residual=False, glu_act="silu", glu_dim=8, dropout=0.1)
    m.update(model_args)
    D, nt, se = m["encoder_embed_dim"], m["norm_type"], "encoder.sentence_encoder."
    names = [(se + "embed_tokens.weight", (vocab, D))]
    if m["layernorm_embedding"]:
        names += norm_tensors(se + "layernorm_embedding.", "layernorm", D)
    for i in range(m["encoder_layers"]):
        p = f"{se}layers.{i}."
        names += gtu_tensors(p + "self_attn.gtu.", D, m["encoder_attention_heads"], m["expand_ratio"],
                             m["rpe_embedding"], m["rpe_layers"], nt, True, m["use_decay"], m["use_norm"])
        names += norm_tensors(p + "self_attn_layer_norm.", nt, D)
        names += glu_tensors(p + "glu.", D, m["glu_dim"])
        names += norm_tensors(p + "final_layer_norm.", nt, D)
    if m["encoder_normalize_before"]:
        names += norm_tensors(se + "layer_norm.", "layernorm", D)
    names += lin("encoder.lm_head.dense.", D, D) + norm_tensors("encoder.lm_head.layer_norm.", "layernorm", D)
    names += [("encoder.lm_head.weight", (vocab, D)), ("encoder.lm_head.bias", (vocab,))]
    state = random_state(names, torch.float64, m["gamma"] if m["use_decay"] else None)
    if not m["untie_weights_roberta"]:
        state["encoder.lm_head.weight"] = state[se + "embed_tokens.weight"]
    state[se + "version"] = torch.tensor([3.0])
    if old_names:  # as RobertaModel.upgrade_state_dict_named finds older files
        state = {("decoder." + k[len("encoder."):] if k.startswith("encoder.") else k)
                 .replace(".layernorm_embedding.", ".emb_layer_norm."): v for k, v in state.items()}
    return {"args": None, "cfg": {"model": m}, "model": state}


# ------------------------------------------------------------------ helpers

class Checks:
    def __init__(self, verbose):
        self.passed = self.failed = 0
        self.verbose = verbose

    def check(self, what, cond, detail=""):
        if cond:
            self.passed += 1
            if self.verbose:
                print(f"  ok   {what}")
        else:
            self.failed += 1
            print(f"  FAIL {what} {detail}")


def run(argv):
    """(exit status, stderr) of the converter, in this process."""
    err = io.StringIO()
    with redirect_stderr(err):
        rc = convert_checkpoint.main(argv)
    return rc, err.getvalue()


def load_tnn(path):
    params, meta = safetensors_io.load(path)
    return params, json.loads(meta["tnn.config"])


def check_converted(c, label, argv, out, want):
    """Runs the converter on argv (writing out) and checks that it succeeds, that the config is
    `want` and that the tensors have the reference's names and shapes. (params, config) of out,
    or None when the conversion failed."""
    rc, err = run(argv)
    c.check(f"{label}: converts", rc == 0, err)
    if rc:
        return None
    params, cfg = load_tnn(out)
    c.check(f"{label}: config", cfg == want, f"\n    got  {cfg}\n    want {want}")
    specs = {n: s for n, s, _, _ in ref.param_specs(cfg)}
    c.check(f"{label}: names and shapes are the reference's",
            {n: tuple(a.shape) for n, a in params.items()} == specs, f"{sorted(set(params) ^ set(specs))}")
    return params, cfg


def logits_of(path, tokens):
    params, cfg = load_tnn(path)
    P = {n: torch.tensor(a, dtype=torch.float64) for n, a in params.items()}
    return ref.forward(cfg, P, torch.as_tensor(tokens))[1].numpy()


def max_rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


# ------------------------------------------------------------------ the tests

def test_tnn_pytorch(c, work):
    cases = [
        ("TnnLayer defaults", dict(layer=dict(dim=6, num_heads=1, rpe_embedding=5, glu_dim=7)),
         dict(vocab_size=11, dim=6, layers=2, heads=1, expand_ratio=3, glu_dim=7, rpe_dim=5, rpe_layers=3,
              rpe_act="relu", gtu_act="silu", glu_act="silu", norm_type="simplermsnorm", prenorm=True, causal=False,
              decay="none", tie_embeddings=False)),
        ("TnnLayer causal decay post-norm layernorm tied",
         dict(layer=dict(dim=6, num_heads=2, rpe_embedding=5, glu_dim=6, causal=True, use_decay=True, prenorm=False,
                         norm_type="layernorm", gtu_act="elu", glu_act="leak", rpe_act="2+elu", expand_ratio=2.5),
              tie=True, final="layernorm"),
         dict(vocab_size=11, dim=6, layers=2, heads=2, expand_ratio=2.5, glu_dim=6, rpe_dim=5, rpe_layers=3,
              rpe_act="2+elu", gtu_act="elu", glu_act="leak", norm_type="layernorm", prenorm=False, causal=True,
              decay="fixed", gamma=0.999, tie_embeddings=True)),
        ("Gtu with every option",
         dict(layer=dict(dim=6, num_heads=1, rpe_embedding=5, glu_dim=6, norm_type="gatedrmsnorm"),
              gtu=dict(embed_dim=6, num_heads=3, bias=False, act_fun="sigmoid", causal=True, expand_ratio=2,
                       use_norm=True, norm_type="gatedrmsnorm", use_multi_decay=True, rpe_layers=2, rpe_embedding=4,
                       rpe_act="exp", normalize=True, par_type=3, residual=True, gamma=0.9),
              final="none"),
         dict(vocab_size=11, dim=6, layers=2, heads=3, expand_ratio=2, glu_dim=6, rpe_dim=4, rpe_layers=2,
              rpe_act="exp", gtu_act="sigmoid", glu_act="silu", norm_type="gatedrmsnorm", prenorm=True, causal=True,
              decay="learned", gamma=0.9, tie_embeddings=False, use_norm=True, normalize=True, residual=True,
              par_type=3, bias=False, final_norm_type="none")),
        ("Gtu scalenorm par_type 2 bidirectional, f32",
         dict(layer=dict(dim=4, num_heads=1, rpe_embedding=3, glu_dim=5, norm_type="scalenorm"),
              gtu=dict(embed_dim=4, num_heads=2, norm_type="scalenorm", par_type=2, use_decay=True),
              final="rmsnorm", dtype=torch.float32),
         dict(vocab_size=11, dim=4, layers=2, heads=2, expand_ratio=3, glu_dim=5, rpe_dim=512, rpe_layers=3,
              rpe_act="relu", gtu_act="silu", glu_act="silu", norm_type="scalenorm", prenorm=True, causal=False,
              decay="fixed", gamma=0.99, tie_embeddings=False, par_type=2, final_norm_type="rmsnorm")),
    ]
    for name, kw, want in cases:
        ck = tp_checkpoint(**kw)
        src, out, back, out2 = (os.path.join(work, f) for f in ("tp.pt", "tp.safetensors", "back.pt", "tp2.safetensors"))
        torch.save(ck, src)
        converted = check_converted(c, f"tnn-pytorch {name}", ["--from", "tnn-pytorch", src, out], out, want)
        if converted is None:
            continue
        params, cfg = converted
        S = ck["state_dict"]
        same = all(np.array_equal(params[n], S[n].numpy()) for n in params)
        c.check(f"tnn-pytorch {name}: tensors carried unchanged ({'F32' if kw.get('dtype') else 'F64'})",
                same and all(a.dtype == S[n].numpy().dtype for n, a in params.items()))
        rc, err = run(["--to", "tnn-pytorch", out, back])
        c.check(f"tnn-pytorch {name}: converts back", rc == 0, err)
        if rc:
            continue
        bk = torch.load(back)
        c.check(f"tnn-pytorch {name}: back: same state_dict",
                set(bk["state_dict"]) == set(S) and all(torch.equal(bk["state_dict"][n], S[n]) for n in S))
        rc, err = run(["--from", "tnn-pytorch", back, out2])
        tokens = RNG.integers(0, 11, (2, 9))
        if rc == 0:
            d = max_rel(logits_of(out2, tokens), logits_of(out, tokens))
            c.check(f"tnn-pytorch {name}: there and back: same config, logits within 1e-12 ({d:.1e})",
                    load_tnn(out2)[1] == cfg and d <= 1e-12)
        else:
            c.check(f"tnn-pytorch {name}: back converts again", False, err)


def test_fairseq(c, work):
    cases = [
        ("tnn_v2_decay_99_pre", fs_lm_checkpoint({}),
         dict(vocab_size=13, dim=8, layers=2, heads=1, expand_ratio=3, glu_dim=8, rpe_dim=6, rpe_layers=6,
              rpe_act="relu", gtu_act="silu", glu_act="silu", norm_type="simplermsnorm", prenorm=True, causal=True,
              decay="fixed", gamma=0.99, tie_embeddings=False, dropout=0.1, scale_embedding=True,
              final_norm_type="layernorm")),
        ("tnn_v2_decay_99_post_usenorm, tied, GLU without bias",
         fs_lm_checkpoint(dict(_name="tnn_v2_decay_99_post_usenorm", decoder_normalize_before=False, use_norm=True,
                               share_decoder_input_output_embed=True, bias=False)),
         dict(vocab_size=13, dim=8, layers=2, heads=1, expand_ratio=3, glu_dim=8, rpe_dim=6, rpe_layers=6,
              rpe_act="relu", gtu_act="silu", glu_act="silu", norm_type="simplermsnorm", prenorm=False, causal=True,
              decay="fixed", gamma=0.99, tie_embeddings=True, use_norm=True, glu_bias=False, dropout=0.1,
              scale_embedding=True, final_norm_type="none", postnorm_residual=True)),
        ("getattr options, embedding norm, simplermsnorm final, Namespace args",
         fs_lm_checkpoint(dict(use_decay=False, use_multi_decay=True, gamma=0.9, normalize=True, par_type=2,
                               residual=True, rpe_act="gelu", layernorm_embedding=True, final_layernorm="simplermsnorm",
                               no_scale_embedding=True, decoder_attention_heads=2, norm_type="scalenorm"),
                          legacy_args=True),
         dict(vocab_size=13, dim=8, layers=2, heads=2, expand_ratio=3, glu_dim=8, rpe_dim=6, rpe_layers=6,
              rpe_act="gelu", gtu_act="silu", glu_act="silu", norm_type="scalenorm", prenorm=True, causal=True,
              decay="learned", gamma=0.9, tie_embeddings=False, normalize=True, residual=True, par_type=2,
              dropout=0.1, final_norm_type="simplermsnorm", embed_norm_type="layernorm")),
        ("roberta_tnn_v2_decay_99", fs_roberta_checkpoint({}),
         dict(vocab_size=13, dim=8, layers=2, heads=1, expand_ratio=3, glu_dim=8, rpe_dim=6, rpe_layers=6,
              rpe_act="relu", gtu_act="silu", glu_act="silu", norm_type="simplermsnorm", prenorm=False, causal=False,
              decay="fixed", gamma=0.99, tie_embeddings=True, dropout=0.1, final_norm_type="none",
              embed_norm_type="layernorm", postnorm_residual=True, lm_head_type="roberta")),
        ("roberta untied prenorm, older names",
         fs_roberta_checkpoint(dict(untie_weights_roberta=True, encoder_normalize_before=True), old_names=True),
         dict(vocab_size=13, dim=8, layers=2, heads=1, expand_ratio=3, glu_dim=8, rpe_dim=6, rpe_layers=6,
              rpe_act="relu", gtu_act="silu", glu_act="silu", norm_type="simplermsnorm", prenorm=True, causal=False,
              decay="fixed", gamma=0.99, tie_embeddings=False, dropout=0.1, final_norm_type="layernorm",
              embed_norm_type="layernorm", lm_head_type="roberta")),
    ]
    for name, ck, want in cases:
        src, out = os.path.join(work, "fs.pt"), os.path.join(work, "fs.safetensors")
        torch.save(ck, src)
        converted = check_converted(c, f"fairseq {name}", ["--from", "fairseq", src, out], out, want)
        if converted is None:
            continue
        params, cfg = converted
        # every tnn tensor is the fairseq tensor of the documented name (docs/official.md)
        old = any(k.startswith("decoder.sentence_encoder.") for k in ck["model"])
        S = {(("encoder." + k[len("decoder."):]) if old and k.startswith("decoder.") else k)
             .replace(".emb_layer_norm.", ".layernorm_embedding."): v for k, v in ck["model"].items()}
        fs_of = []
        for n in params:
            f = n
            for a, b in (("embed.weight", "embed_tokens.weight"), ("embed_norm.", "layernorm_embedding."),
                         ("token_mixer.", "self_attn.gtu."), ("token_norm.", "self_attn_layer_norm."),
                         ("feature_mixer.", "glu."), ("feature_norm.", "final_layer_norm."),
                         ("final_norm.", "layer_norm.")):
                f = f.replace(a, b) if f.startswith(a) or ("layers." in f and a in f) else f
            if n.startswith("lm_head."):
                f = ("encoder." + n) if cfg.get("lm_head_type") == "roberta" else \
                    "decoder.output_projection." + n[len("lm_head."):]
            else:
                f = ("encoder.sentence_encoder." if cfg.get("lm_head_type") == "roberta" else "decoder.") + f
            fs_of.append((n, f))
        c.check(f"fairseq {name}: each tensor is its fairseq tensor",
                all(f in S and np.array_equal(params[n], S[f].numpy()) for n, f in fs_of),
                [n for n, f in fs_of if f not in S or not np.array_equal(params[n], S[f].numpy())][:3])
        tokens = RNG.integers(0, 13, (2, 7))
        lg = logits_of(out, tokens)
        c.check(f"fairseq {name}: the reference runs it (finite logits)", np.isfinite(lg).all())
        # A model tnn-pytorch's form can hold goes there and back to the same logits.
        rc, err = run(["--to", "tnn-pytorch", out, os.path.join(work, "fs_back.pt")])
        if rc == 0:
            rc2, err2 = run(["--from", "tnn-pytorch", os.path.join(work, "fs_back.pt"), os.path.join(work, "fs2.st")])
            d = max_rel(logits_of(os.path.join(work, "fs2.st"), tokens), lg) if rc2 == 0 else float("inf")
            c.check(f"fairseq {name}: through tnn-pytorch's form and back, logits within 1e-12 ({d:.1e})",
                    d <= 1e-12, err2)
        else:
            c.check(f"fairseq {name}: --to tnn-pytorch refuses in one line what that form lacks",
                    rc == 1 and err.count("\n") == 1 and "tnn-pytorch has no such option" in err, err)

    # A plain pre-norm fairseq LM (no embedding scale) is the same model as the tnn-pytorch form.
    ck = fs_lm_checkpoint(dict(no_scale_embedding=True, dropout=0.0))
    torch.save(ck, os.path.join(work, "fs.pt"))
    rc, err = run(["--from", "fairseq", os.path.join(work, "fs.pt"), os.path.join(work, "fs.st")])
    rc2, err2 = run(["--to", "tnn-pytorch", os.path.join(work, "fs.st"), os.path.join(work, "tp.pt")])
    if rc == 0 and rc2 == 0:
        A = torch.load(os.path.join(work, "tp.pt"))["args"]
        c.check("fairseq pre-norm LM as tnn-pytorch args", A == {
            "vocab_size": 13, "num_layers": 2, "tie_embeddings": False, "final_norm_type": "layernorm",
            "layer": {"dim": 8, "num_heads": 1, "rpe_embedding": 6, "glu_dim": 8, "prenorm": True,
                      "norm_type": "simplermsnorm", "causal": True, "gtu_act": "silu", "expand_ratio": 3,
                      "use_decay": True, "gamma": 0.99, "rpe_act": "relu", "rpe_layers": 6, "glu_act": "silu"}}, A)
    else:
        c.check("fairseq pre-norm LM converts to tnn-pytorch", False, err + err2)


def test_refusals(c, work):
    """Each argument tnn cannot represent: exit 1, one line naming it."""
    L = dict(dim=6, num_heads=1, rpe_embedding=5, glu_dim=6)
    G = dict(embed_dim=6, num_heads=1, rpe_embedding=5, rpe_layers=1)
    tp = [
        ("resi_param", dict(layer=L, gtu=dict(G, resi_param=True))),
        ("act_type", dict(layer=L, gtu=dict(G, act_type="swish"))),
        ("act_fun", dict(layer=L, gtu=dict(G, act_fun="swish"))),
        ("glu_act", dict(layer=dict(L, glu_act="tanh"))),
        ("par_type 3 with causal false", dict(layer=L, gtu=dict(G, par_type=3))),
        ("use_decay and use_multi_decay", dict(layer=L, gtu=dict(G, use_decay=True, use_multi_decay=True))),
        ("gamma", dict(layer=L, gtu=dict(G, use_multi_decay=True, gamma=1.5))),
        ("norm_type", dict(layer=dict(L, norm_type="rmsnorm"), gtu=dict(G, norm_type="scalenorm"))),
        ("embed_dim", dict(layer=L, gtu=dict(G, embed_dim=4))),
        ("unknown argument 'dropout'", dict(layer=dict(L, dropout=0.1))),
        ("required argument 'glu_dim'", dict(layer={k: v for k, v in L.items() if k != "glu_dim"})),
    ]
    for what, kw in tp:
        ck = {"args": {"vocab_size": 11, "num_layers": 1, **kw}, "state_dict": {}}
        torch.save(ck, os.path.join(work, "r.pt"))
        rc, err = run(["--from", "tnn-pytorch", os.path.join(work, "r.pt"), os.path.join(work, "r.st")])
        c.check(f"refuses tnn-pytorch {what}", rc == 1 and err.count("\n") == 1 and what.split()[0] in err, err)
    # the state_dict must be exactly what the arguments build
    ck = tp_checkpoint(dict(dim=6, num_heads=1, rpe_embedding=5, glu_dim=6))
    del ck["state_dict"]["layers.1.feature_mixer.l3.bias"]
    ck["state_dict"]["layers.0.token_mixer.toep.gamma"] = torch.ones(1, 1, 18)
    torch.save(ck, os.path.join(work, "r.pt"))
    rc, err = run(["--from", "tnn-pytorch", os.path.join(work, "r.pt"), os.path.join(work, "r.st")])
    c.check("refuses a state_dict with a missing and an unexpected tensor",
            rc == 1 and "l3.bias" in err and "toep.gamma" in err and err.count("\n") == 1, err)
    ck = tp_checkpoint(dict(dim=6, num_heads=1, rpe_embedding=5, glu_dim=6), tie=True)
    ck["state_dict"]["lm_head.weight"] = torch.zeros(11, 6, dtype=torch.float64)
    torch.save(ck, os.path.join(work, "r.pt"))
    rc, err = run(["--from", "tnn-pytorch", os.path.join(work, "r.pt"), os.path.join(work, "r.st")])
    c.check("refuses tied embeddings whose head differs from the embedding", rc == 1 and "tied" in err, err)

    fs = [
        ("act_fun 'exp'", dict(act_fun="exp")),
        ("glu_act 'exp'", dict(glu_act="exp")),
        ("glu_type", dict(glu_type=2)),
        ("gtu_type", dict(gtu_type=3)),
        ("fina_act", dict(fina_act="relu")),
        ("resi_param", dict(resi_param=True)),
        ("act_type", dict(act_type="exp")),
        ("adaptive_input", dict(adaptive_input=True)),
        ("adaptive_softmax_cutoff", dict(adaptive_softmax_cutoff="100,200")),
        ("no_token_positional_embeddings", dict(no_token_positional_embeddings=False)),
        ("quant_noise_pq", dict(quant_noise_pq=0.1)),
        ("decoder_input_dim", dict(decoder_input_dim=4)),
        ("arch", dict(_name="transformer_lm")),
    ]
    base = fs_lm_checkpoint({})
    for what, kw in fs:
        ck = dict(base, cfg={"model": dict(base["cfg"]["model"], **kw)})
        torch.save(ck, os.path.join(work, "r.pt"))
        rc, err = run(["--from", "fairseq", os.path.join(work, "r.pt"), os.path.join(work, "r.st")])
        c.check(f"refuses fairseq {what}", rc == 1 and err.count("\n") == 1 and what.split()[0] in err, err)
    m = dict(base["cfg"]["model"])
    del m["norm_type"]
    torch.save(dict(base, cfg={"model": m}), os.path.join(work, "r.pt"))
    rc, err = run(["--from", "fairseq", os.path.join(work, "r.pt"), os.path.join(work, "r.st")])
    c.check("refuses fairseq without norm_type (layer norms and RPE norms would differ)",
            rc == 1 and "norm_type" in err, err)
    ck = fs_roberta_checkpoint({})
    ck["model"]["encoder.classification_heads.mnli.dense.weight"] = torch.zeros(8, 8)
    torch.save(ck, os.path.join(work, "r.pt"))
    rc, err = run(["--from", "fairseq", os.path.join(work, "r.pt"), os.path.join(work, "r.st")])
    c.check("refuses a RoBERTa checkpoint with classification heads", rc == 1 and "classification_heads" in err, err)
    rc, err = run(["--from", "fairseq", os.path.join(work, "absent.pt"), os.path.join(work, "r.st")])
    c.check("refuses a missing file in one line", rc == 1 and err.count("\n") == 1 and "no such file" in err, err)

    # --to: what the tnn-pytorch form cannot hold
    for key, value in (("scale_embedding", True), ("embed_norm_type", "layernorm"), ("lm_head_type", "roberta"),
                       ("glu_bias", False), ("postnorm_residual", True)):
        cfg = dict(vocab_size=5, dim=4, layers=1, rpe_dim=3, prenorm=False, **{key: value})
        P = {n: np.zeros(s) for n, s, _, _ in ref.param_specs(cfg)}
        safetensors_io.save(os.path.join(work, "t.st"), P, {"tnn.config": json.dumps(cfg)})
        rc, err = run(["--to", "tnn-pytorch", os.path.join(work, "t.st"), os.path.join(work, "t.pt")])
        c.check(f"--to tnn-pytorch refuses {key}", rc == 1 and key in err and err.count("\n") == 1, err)


def test_files(c, work):
    """Reading real-world files: classes of modules that are not installed (fairseq's meters, an
    OmegaConf node) unpickle as stand-ins; half precision becomes F32; the program's exit status."""
    mod = types.ModuleType("fairseq_not_installed.logging.meters")

    class Meter:
        def __init__(self):
            self.sum = 3.0
    Meter.__module__ = mod.__name__
    Meter.__qualname__ = "Meter"
    mod.Meter = Meter
    parents = ["fairseq_not_installed", "fairseq_not_installed.logging"]
    for name in parents:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[mod.__name__] = mod
    ck = fs_lm_checkpoint({}, dtype=torch.float16)
    ck["extra_state"] = {"metrics": {"train": Meter()}}
    src = os.path.join(work, "meters.pt")
    torch.save(ck, src)
    for name in parents + [mod.__name__]:
        del sys.modules[name]
    rc, err = run(["--from", "fairseq", src, os.path.join(work, "m.st")])
    c.check("a checkpoint holding objects of uninstalled modules converts", rc == 0, err)
    if rc == 0:
        params, _ = load_tnn(os.path.join(work, "m.st"))
        c.check("half precision is written as F32", all(a.dtype == np.float32 for a in params.values()))
    rc, err = run(["--from", "fairseq", "--dtype", "f64", src, os.path.join(work, "m64.st")])
    c.check("--dtype f64 writes F64", rc == 0 and all(a.dtype == np.float64
                                                       for a in load_tnn(os.path.join(work, "m64.st"))[0].values()))
    # the program itself: exit statuses and one line on stderr
    bad = os.path.join(work, "bad.pt")
    torch.save({"args": {"vocab_size": 3}, "state_dict": {}}, bad)
    p = subprocess.run([sys.executable, os.path.join(TOOLS, "convert_checkpoint.py"), "--from", "tnn-pytorch", bad,
                        os.path.join(work, "bad.st")], capture_output=True, text=True, timeout=300)
    c.check("the program refuses with exit 1 and one line on stderr",
            p.returncode == 1 and p.stderr.count("\n") == 1 and p.stderr.startswith("convert_checkpoint: "), p.stderr)
    src = os.path.join(work, "ok.pt")
    torch.save(tp_checkpoint(dict(dim=4, num_heads=1, rpe_embedding=3, glu_dim=4)), src)
    p = subprocess.run([sys.executable, os.path.join(TOOLS, "convert_checkpoint.py"), "--from", "tnn-pytorch", src,
                        os.path.join(work, "ok.st")], capture_output=True, text=True, timeout=300)
    c.check("the program converts with exit 0 and nothing on stderr", p.returncode == 0 and p.stderr == "", p.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    c = Checks(args.verbose)
    with tempfile.TemporaryDirectory(prefix="tnn_test_convert_") as work:
        for test in (test_tnn_pytorch, test_fairseq, test_refusals, test_files):
            try:
                test(c, work)
            except Exception:  # noqa: BLE001 - a crash is a failure of that test, the others still run
                c.failed += 1
                print(f"  FAIL {test.__name__} raised:\n{traceback.format_exc()}")
    print(f"test_convert: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
