#!/usr/bin/python3
"""Convert TNN checkpoints between the official PyTorch code and tnn's safetensors (docs/official.md).

  convert_checkpoint.py --from tnn-pytorch IN.pt OUT.safetensors
  convert_checkpoint.py --from fairseq IN.pt OUT.safetensors
  convert_checkpoint.py --to tnn-pytorch IN.safetensors OUT.pt

--from tnn-pytorch reads torch.save({"args": A, "state_dict": S}): S is a language model made of
`embed` (nn.Embedding), `layers` (tnn-pytorch TnnLayers, whose token_mixer may be a Gtu built with
its own arguments), `final_norm` and `lm_head` (nn.Linear without bias, absent when tied); A holds
vocab_size, num_layers, tie_embeddings, final_norm_type, layer (TnnLayer's keyword arguments) and,
when the token mixer was built directly, gtu (Gtu's keyword arguments). Absent arguments take the
official defaults. --from fairseq reads a fairseq-evo checkpoint of the tnn_v2 language model or of
the roberta_tnn_v2 masked LM. --to tnn-pytorch writes the first form back.

Every argument tnn cannot represent is refused by name: one line on stderr, exit status 1.
Needs torch (Debian's python3-torch) and numpy.
"""
import argparse
import inspect
import json
import os
import re
import sys
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tnn_safetensors  # noqa: E402


class Refusal(Exception):
    """What the converter cannot do, in one line: what was expected and what came."""


# ------------------------------------------------------------------ tnn's side

# tnn's config keys and defaults (docs/model.md §8 and docs/official.md). A converted config
# states every key of the first group; the others only when they differ from these defaults.
TNN_BASE_KEYS = ("vocab_size", "dim", "layers", "heads", "expand_ratio", "glu_dim", "rpe_dim", "rpe_layers",
                 "rpe_act", "gtu_act", "glu_act", "norm_type", "prenorm", "causal", "decay", "tie_embeddings")
TNN_DEFAULTS = {
    "heads": 1, "expand_ratio": 3, "glu_dim": None, "rpe_dim": 64, "rpe_layers": 1, "gamma": 0.99,
    "rpe_act": "relu", "gtu_act": "silu", "glu_act": "silu", "norm_type": "simplermsnorm", "prenorm": True,
    "causal": True, "decay": "fixed", "tie_embeddings": False, "use_norm": False, "normalize": False,
    "residual": False, "par_type": 1, "bias": True, "glu_bias": True, "dropout": 0.0, "scale_embedding": False,
    "final_norm_type": None, "embed_norm_type": "none", "postnorm_residual": False, "lm_head_type": "linear",
    "token_mixer": "tno", "act_type": "none",
}
TNN_ACTIVATIONS = ("relu", "silu", "gelu", "none", "elu", "sigmoid", "exp", "leak", "1+elu", "2+elu")
TNN_NORMS = ("simplermsnorm", "rmsnorm", "layernorm", "scalenorm", "gatedrmsnorm")


def tnn_full_config(cfg):
    """A tnn config with every key (the old use_decay / use_multi_decay read as decay)."""
    cfg = dict(cfg)
    if "use_decay" in cfg or "use_multi_decay" in cfg:
        if "decay" in cfg:
            raise Refusal("tnn.config: expected decay or use_decay/use_multi_decay, got both")
        use_decay, use_multi = cfg.pop("use_decay", True), cfg.pop("use_multi_decay", False)
        if use_decay and use_multi:
            raise Refusal("tnn.config: expected at most one of use_decay, use_multi_decay true, got both")
        cfg["decay"] = "learned" if use_multi else "fixed" if use_decay else "none"
    out = dict(TNN_DEFAULTS)
    out.update(cfg)
    for k in ("vocab_size", "dim", "layers"):
        if k not in out:
            raise Refusal(f"tnn.config: required key '{k}' is missing")
    if out["glu_dim"] is None:
        out["glu_dim"] = out["dim"]
    if out["final_norm_type"] is None:
        out["final_norm_type"] = out["norm_type"]
    return out


def tnn_config_for_file(cfg):
    """The base keys always, gamma when there is a decay, every other key only off its default."""
    full = tnn_full_config(cfg)
    out = {k: full[k] for k in TNN_BASE_KEYS}
    if full["decay"] != "none":
        out["gamma"] = full["gamma"]
    for k, d in TNN_DEFAULTS.items():
        if k in out or k == "gamma":
            continue
        if k == "final_norm_type":
            d = full["norm_type"]
        if full[k] != d:
            out[k] = full[k]
    return out


# ------------------------------------------------------------------ the official names

# The official activation names tnn has, by the same names. The official code turns any other
# string into the identity without a word; only "none"/"None" are taken to mean that on purpose,
# since nothing in a checkpoint shows what ran.
OFFICIAL_ACTIVATIONS = {a: a for a in TNN_ACTIVATIONS if a != "none"}
OFFICIAL_ACTIVATIONS.update({"none": "none", "None": "none"})


def activation_key(value, where, fairseq=False):
    if fairseq and value == "exp":
        raise Refusal(f"{where} 'exp': fairseq-evo's exp subtracts each row's maximum (exp(x - max x)), "
                      "which tnn's pointwise exp does not")
    if not isinstance(value, str) or value not in OFFICIAL_ACTIVATIONS:
        raise Refusal(f"{where}: expected one of {', '.join(OFFICIAL_ACTIVATIONS)}, got {value!r} "
                      "(the official code would run it as the identity)")
    return OFFICIAL_ACTIVATIONS[value]


def norm_key(value, where):
    """The official get_norm_fn: four names, and LayerNorm for any other string (whose weight and
    bias the state_dict then has to hold, which the name check verifies)."""
    if not isinstance(value, str):
        raise Refusal(f"{where}: expected a norm name, got {value!r}")
    return value if value in TNN_NORMS else "layernorm"


def norm_names(norm_type, d):
    """{relative name: shape} of an official norm over d channels."""
    return {"simplermsnorm": {}, "none": {}, "rmsnorm": {"scale": (d,)},
            "gatedrmsnorm": {"scale": (d,), "gate": (d,)}, "scalenorm": {"scala": (1,)},
            "layernorm": {"weight": (d,), "bias": (d,)}}[norm_type]


def linear_names(n_out, n_in, bias):
    out = {"weight": (n_out, n_in)}
    if bias:
        out["bias"] = (n_out,)
    return out


def prefixed(prefix, names):
    return {prefix + k: v for k, v in names.items()}


def gtu_names(cfg):
    """{name: shape} of the official Gtu (tnn-pytorch Gtu / fairseq-evo GtuV2) for a tnn config:
    the same names as tnn's layers.i.token_mixer.*"""
    D, H, R, b = cfg["dim"], cfg["heads"], cfg["rpe_dim"], cfg["bias"]
    E = int(cfg["expand_ratio"] * D) // H * H
    out = {}
    out.update(prefixed("v_proj.", linear_names(E, D, b)))
    out.update(prefixed("u_proj.", linear_names(E, D, b)))
    out.update(prefixed("o.", linear_names(D, E, b)))
    if cfg["use_norm"]:
        out.update(prefixed("norm.", norm_names(cfg["norm_type"], E)))
    if cfg["decay"] != "none":
        out["toep.gamma"] = (H, 1, E // H)
    out.update(prefixed("toep.rpe.pos_proj.", linear_names(R, 1, b)))
    for l in range(cfg["rpe_layers"]):
        out.update(prefixed(f"toep.rpe.layers.{l}.0.", norm_names(cfg["norm_type"], R)))
        out.update(prefixed(f"toep.rpe.layers.{l}.2.", linear_names(R, R, b)))
    out.update(prefixed("toep.rpe.out.0.", norm_names(cfg["norm_type"], R)))
    out.update(prefixed("toep.rpe.out.2.", linear_names(E, R, b)))
    return out


def glu_names(cfg):
    D, G, b = cfg["dim"], cfg["glu_dim"], cfg["glu_bias"]
    out = prefixed("l1.", linear_names(G, D, b))
    out.update(prefixed("l2.", linear_names(G, D, b)))
    out.update(prefixed("l3.", linear_names(D, G, b)))
    return out


def check_names(state, expected, what):
    """The state_dict must hold exactly the expected names with the expected shapes."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}")
        raise Refusal(f"{what}: the tensors differ from what its arguments build: {'; '.join(parts)}")
    for n, shape in expected.items():
        if tuple(state[n].shape) != tuple(shape):
            raise Refusal(f"{what}: tensor {n}: expected shape {list(shape)}, got {list(state[n].shape)}")


def check_tied(state, head_name, embed_name, what):
    if head_name in state and embed_name in state and not torch.equal(state[head_name].float(),
                                                                     state[embed_name].float()):
        raise Refusal(f"{what}: tied embeddings expected {head_name} equal to {embed_name}, and they differ")


# ------------------------------------------------------------------ tnn-pytorch

# Keyword arguments of tnn-pytorch 0.0.5, with their defaults (None: required).
TP_LAYER = {"dim": None, "num_heads": None, "rpe_embedding": None, "glu_dim": None, "prenorm": True,
            "norm_type": "simplermsnorm", "causal": False, "gtu_act": "silu", "expand_ratio": 3,
            "use_decay": False, "gamma": 0.999, "rpe_act": "relu", "rpe_layers": 3, "glu_act": "silu"}
TP_GTU = {"embed_dim": None, "num_heads": None, "bias": True, "act_fun": "silu", "causal": False,
          "expand_ratio": 3, "resi_param": False, "use_norm": False, "norm_type": "simplermsnorm",
          "use_decay": False, "use_multi_decay": False, "rpe_layers": 3, "rpe_embedding": 512, "rpe_act": "relu",
          "normalize": False, "par_type": 1, "residual": False, "gamma": 0.99, "act_type": "none"}
TP_ARGS = ("vocab_size", "num_layers", "tie_embeddings", "final_norm_type", "layer", "gtu")


def with_defaults(given, table, what):
    if not isinstance(given, dict):
        raise Refusal(f"{what}: expected a dict of keyword arguments, got {type(given).__name__}")
    unknown = sorted(set(given) - set(table))
    if unknown:
        raise Refusal(f"{what}: unknown argument {unknown[0]!r} (expected some of {', '.join(table)})")
    out = {k: given.get(k, d) for k, d in table.items()}
    for k, v in out.items():
        if v is None:
            raise Refusal(f"{what}: required argument {k!r} is missing")
    return out


def flag(value, what):
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise Refusal(f"{what}: expected true or false, got {value!r}")
    return bool(value)


def positive_int(value, what, low=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise Refusal(f"{what}: expected an integer >= {low}, got {value!r}")
    return value


def decay_key(use_decay, use_multi, gamma, what):
    if use_decay and use_multi:
        raise Refusal(f"{what} use_decay and use_multi_decay both true: the official forward then uses the raw "
                      "learned tensor as the decay, which tnn cannot represent")
    decay = "learned" if use_multi else "fixed" if use_decay else "none"
    if decay != "none" and not (isinstance(gamma, (int, float)) and 0 < gamma <= 1):
        raise Refusal(f"{what} gamma: expected a value in (0, 1], got {gamma!r}")
    return decay


def gtu_config(g, what, fairseq=False):
    """tnn keys from a Gtu's (normalized) keyword arguments; refuses what tnn cannot represent."""
    if flag(g["resi_param"], f"{what} resi_param"):
        raise Refusal(f"{what} resi_param: expected false (the official Gtu crashes with true: torch is not "
                      "imported in gtu.py)")
    par_type = g["par_type"]
    if par_type not in (1, 2, 3):
        raise Refusal(f"{what} par_type: expected 1, 2 or 3, got {par_type!r}")
    causal = flag(g["causal"], f"{what} causal")
    if par_type == 3 and not causal:
        raise Refusal(f"{what} par_type 3 with causal false: the official Tno crashes there (get_neg has no "
                      "par_type 3 case), so there are no official outputs to match")
    cfg = {
        "dim": positive_int(g["embed_dim"], f"{what} embed_dim"),
        "heads": positive_int(g["num_heads"], f"{what} num_heads"),
        "expand_ratio": g["expand_ratio"],
        "rpe_dim": positive_int(g["rpe_embedding"], f"{what} rpe_embedding"),
        "rpe_layers": positive_int(g["rpe_layers"], f"{what} rpe_layers", 0),
        "gtu_act": activation_key(g["act_fun"], f"{what} act_fun"),
        "rpe_act": activation_key(g["rpe_act"], f"{what} rpe_act"),
        "norm_type": norm_key(g["norm_type"], f"{what} norm_type"),
        "causal": causal,
        "decay": decay_key(flag(g["use_decay"], f"{what} use_decay"),
                           flag(g["use_multi_decay"], f"{what} use_multi_decay"), g["gamma"], what),
        "use_norm": flag(g["use_norm"], f"{what} use_norm"),
        "normalize": flag(g["normalize"], f"{what} normalize"),
        "residual": flag(g["residual"], f"{what} residual"),
        "par_type": par_type,
        "bias": flag(g["bias"], f"{what} bias"),
        "gamma": g["gamma"],
        # the Tno's activation of every coefficient, after the decay
        "act_type": activation_key(g["act_type"], f"{what} act_type", fairseq=fairseq),
    }
    if not isinstance(cfg["expand_ratio"], (int, float)) or int(cfg["expand_ratio"] * cfg["dim"]) < cfg["heads"]:
        raise Refusal(f"{what} expand_ratio: expected int(expand_ratio * embed_dim) >= num_heads, "
                      f"got {cfg['expand_ratio']!r}")
    return cfg


def from_tnn_pytorch(ckpt):
    """(tnn config, {tnn name: tensor}) from torch.save({"args": A, "state_dict": S})."""
    if not isinstance(ckpt, dict) or "args" not in ckpt or "state_dict" not in ckpt:
        raise Refusal("tnn-pytorch checkpoint: expected a dict with 'args' and 'state_dict', got "
                      + (f"keys {sorted(ckpt)[:6]}" if isinstance(ckpt, dict) else type(ckpt).__name__))
    A, S = ckpt["args"], dict(ckpt["state_dict"])
    if not isinstance(A, dict):
        raise Refusal(f"tnn-pytorch args: expected a dict, got {type(A).__name__}")
    unknown = sorted(set(A) - set(TP_ARGS))
    if unknown:
        raise Refusal(f"tnn-pytorch args: unknown key {unknown[0]!r} (expected some of {', '.join(TP_ARGS)})")
    for k in ("vocab_size", "num_layers", "layer"):
        if k not in A:
            raise Refusal(f"tnn-pytorch args: required key {k!r} is missing")
    layer = with_defaults(A["layer"], TP_LAYER, "TnnLayer")
    if A.get("gtu") is not None:
        g = with_defaults(A["gtu"], TP_GTU, "Gtu")
        what = "Gtu"
    else:  # the Gtu TnnLayer builds: its arguments, Gtu's defaults for the rest
        g = dict(TP_GTU, embed_dim=layer["dim"], num_heads=layer["num_heads"], act_fun=layer["gtu_act"],
                 norm_type=layer["norm_type"], causal=layer["causal"], expand_ratio=layer["expand_ratio"],
                 use_decay=layer["use_decay"], gamma=layer["gamma"], rpe_embedding=layer["rpe_embedding"],
                 rpe_act=layer["rpe_act"], rpe_layers=layer["rpe_layers"])
        what = "TnnLayer"
    cfg = gtu_config(g, what)
    if cfg["dim"] != layer["dim"]:
        raise Refusal(f"Gtu embed_dim: expected TnnLayer's dim {layer['dim']}, got {cfg['dim']}")
    layer_norm = norm_key(layer["norm_type"], "TnnLayer norm_type")
    if layer_norm != cfg["norm_type"]:
        raise Refusal(f"Gtu norm_type: expected TnnLayer's norm_type {layer_norm!r} (tnn has one norm_type for "
                      f"the layer norms and the RPE), got {cfg['norm_type']!r}")
    final = A.get("final_norm_type", layer["norm_type"])
    cfg.update(
        vocab_size=positive_int(A["vocab_size"], "args vocab_size"),
        layers=positive_int(A["num_layers"], "args num_layers"),
        glu_dim=positive_int(layer["glu_dim"], "TnnLayer glu_dim"),
        glu_act=activation_key(layer["glu_act"], "TnnLayer glu_act"),
        prenorm=flag(layer["prenorm"], "TnnLayer prenorm"),
        tie_embeddings=flag(A.get("tie_embeddings", False), "args tie_embeddings"),
        final_norm_type="none" if final in ("none", "None") else norm_key(final, "args final_norm_type"),
    )
    V, D = cfg["vocab_size"], cfg["dim"]
    if cfg["tie_embeddings"]:
        check_tied(S, "lm_head.weight", "embed.weight", "tnn-pytorch state_dict")
        S.pop("lm_head.weight", None)
    expected = {"embed.weight": (V, D)}
    for i in range(cfg["layers"]):
        p = f"layers.{i}."
        expected.update(prefixed(p + "token_norm.", norm_names(cfg["norm_type"], D)))
        expected.update(prefixed(p + "token_mixer.", gtu_names(cfg)))
        expected.update(prefixed(p + "feature_norm.", norm_names(cfg["norm_type"], D)))
        expected.update(prefixed(p + "feature_mixer.", glu_names(dict(cfg, glu_bias=True))))
    expected.update(prefixed("final_norm.", norm_names(cfg["final_norm_type"], D)))
    if not cfg["tie_embeddings"]:
        expected["lm_head.weight"] = (V, D)
    check_names(S, expected, "tnn-pytorch state_dict")
    return cfg, S  # tnn's names are the wrapper's names


def to_tnn_pytorch(cfg, tensors):
    """The inverse of from_tnn_pytorch: {"args": A, "state_dict": S}."""
    c = tnn_full_config(cfg)
    refuse = [("task", "lm"), ("token_mixer", "tno"), ("scale_embedding", False), ("embed_norm_type", "none"),
              ("postnorm_residual", False), ("lm_head_type", "linear"), ("glu_bias", True)]
    for k, want in refuse:
        if c.get(k, want) != want and not (k == "postnorm_residual" and c["prenorm"]):
            raise Refusal(f"tnn.config {k}: tnn-pytorch has no such option (expected {json.dumps(want)}, "
                          f"got {json.dumps(c[k])})")
    if c["par_type"] == 3 and not c["causal"]:
        raise Refusal("tnn.config par_type 3 with causal false: the official Tno crashes there")
    layer = {"dim": c["dim"], "num_heads": c["heads"], "rpe_embedding": c["rpe_dim"], "glu_dim": c["glu_dim"],
             "prenorm": c["prenorm"], "norm_type": c["norm_type"], "causal": c["causal"], "gtu_act": c["gtu_act"],
             "expand_ratio": c["expand_ratio"], "use_decay": c["decay"] == "fixed", "gamma": c["gamma"],
             "rpe_act": c["rpe_act"], "rpe_layers": c["rpe_layers"], "glu_act": c["glu_act"]}
    A = {"vocab_size": c["vocab_size"], "num_layers": c["layers"], "tie_embeddings": c["tie_embeddings"],
         "final_norm_type": c["final_norm_type"], "layer": layer}
    # Options TnnLayer does not pass to its Gtu need a Gtu built directly.
    if c["decay"] == "learned" or c["use_norm"] or c["normalize"] or c["residual"] or c["par_type"] != 1 \
            or not c["bias"] or c["act_type"] != "none":
        A["gtu"] = {"embed_dim": c["dim"], "num_heads": c["heads"], "bias": c["bias"], "act_fun": c["gtu_act"],
                    "causal": c["causal"], "expand_ratio": c["expand_ratio"], "use_norm": c["use_norm"],
                    "norm_type": c["norm_type"], "use_decay": c["decay"] == "fixed",
                    "use_multi_decay": c["decay"] == "learned", "rpe_layers": c["rpe_layers"],
                    "rpe_embedding": c["rpe_dim"], "rpe_act": c["rpe_act"], "normalize": c["normalize"],
                    "par_type": c["par_type"], "residual": c["residual"], "gamma": c["gamma"],
                    "act_type": c["act_type"]}
    from_tnn_pytorch({"args": A, "state_dict": tensors})  # the same checks as the way in
    return {"args": A, "state_dict": {k: tensors[k] for k in sorted(tensors)}}


# ------------------------------------------------------------------ fairseq-evo

FS_LM_PREFIX = "decoder."
FS_ROBERTA_PREFIX = "encoder.sentence_encoder."


def fairseq_model_args(ckpt):
    """The flat model namespace of a fairseq checkpoint, as a dict."""
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise Refusal("fairseq checkpoint: expected a dict with 'model' (and 'cfg' or 'args'), got "
                      + (f"keys {sorted(ckpt)[:6]}" if isinstance(ckpt, dict) else type(ckpt).__name__))
    cfg, args = ckpt.get("cfg"), ckpt.get("args")
    if cfg is not None:
        m = cfg.get("model") if isinstance(cfg, dict) else getattr(cfg, "model", None)
    elif args is not None:
        m = args
    else:
        raise Refusal("fairseq checkpoint: expected 'cfg' or 'args' with the model's configuration, got neither")
    if isinstance(m, argparse.Namespace) or hasattr(m, "__dict__") and not isinstance(m, dict):
        m = dict(vars(m))
    if not isinstance(m, dict):
        raise Refusal(f"fairseq checkpoint: expected the model configuration as a dict or Namespace, got "
                      f"{type(m).__name__}")
    return m


def fs_flag(m, key, default):
    """A boolean argument; absent or None takes the default fairseq gives it."""
    value = m.get(key)
    return flag(default if value is None else value, f"fairseq {key}")


def from_fairseq(ckpt):
    """(tnn config, {tnn name: tensor}) from a fairseq-evo tnn_v2_lm or roberta_tnn_v2 checkpoint."""
    m = fairseq_model_args(ckpt)
    S = {k: v for k, v in ckpt["model"].items()}
    # The renames fairseq's RobertaModel.upgrade_state_dict_named applies to older files.
    if any(k.startswith("decoder.sentence_encoder.") for k in S):
        S = {("encoder." + k[len("decoder."):] if k.startswith("decoder.") else k): v for k, v in S.items()}
    S = {k.replace(".emb_layer_norm.", ".layernorm_embedding."): v for k, v in S.items()}
    if FS_LM_PREFIX + "embed_tokens.weight" in S:
        roberta, prefix, side = False, FS_LM_PREFIX, "decoder"
    elif FS_ROBERTA_PREFIX + "embed_tokens.weight" in S:
        roberta, prefix, side = True, FS_ROBERTA_PREFIX, "encoder"
    else:
        raise Refusal("fairseq model: expected decoder.embed_tokens.weight (tnn_v2_lm) or "
                      "encoder.sentence_encoder.embed_tokens.weight (roberta_tnn_v2), found neither")
    arch = m.get("_name") or m.get("arch") or ""
    if not (arch.startswith("roberta_tnn_v2") if roberta else arch.startswith("tnn_v2")):
        raise Refusal(f"fairseq arch: expected {'roberta_tnn_v2' if roberta else 'tnn_v2_lm'} or one of its "
                      f"architectures, got {arch!r}")

    def refuse_if(cond, text):
        if cond:
            raise Refusal(f"fairseq {text}")

    # What tnn's model does not have: refused by the argument's name.
    refuse_if(m.get("adaptive_input"), "adaptive_input: tnn has no adaptive input embedding")
    refuse_if(m.get("adaptive_softmax_cutoff") is not None, "adaptive_softmax_cutoff: tnn has no adaptive softmax")
    refuse_if(m.get("tie_adaptive_weights"), "tie_adaptive_weights: tnn has no adaptive softmax")
    refuse_if(m.get("character_embeddings"), "character_embeddings: tnn embeds tokens by a table")
    refuse_if((m.get("quant_noise_pq") or 0) > 0, "quant_noise_pq: its extra linear map on the embedding is not in tnn")
    refuse_if(m.get(f"{side}_layers_to_keep"), f"{side}_layers_to_keep: expected every layer kept")
    refuse_if((m.get("base_layers") or 0) > 0, "base_layers: tnn has no BASE layers")
    refuse_if(m.get("cross_self_attention"), "cross_self_attention: expected false")
    refuse_if("sentence_prediction" in str(m.get("task", "")), "task sentence_prediction: expected a language model")
    refuse_if(m.get("encoder_attention_heads_list"), "encoder_attention_heads_list: tnn has one head count")
    positions = not (m.get("no_token_positional_embeddings") or m.get(f"no_{side}_token_positional_embeddings"))
    refuse_if(positions or any(".embed_positions." in k for k in S),
              "no_token_positional_embeddings false: tnn has no positional embedding (position lives in the TNO)")
    refuse_if(m.get("gtu_type", 2) != 2, f"gtu_type {m.get('gtu_type')}: expected 2 (GtuV2)")
    refuse_if(m.get("glu_type", 1) != 1, f"glu_type {m.get('glu_type')}: expected 1 (GLU; GLUV2 differs)")
    refuse_if(m.get("fina_act", "None") not in ("None", "none"),
              f"fina_act {m.get('fina_act')!r}: expected 'None' (tnn's GLU has no output activation)")
    if any(k.startswith("encoder.classification_heads.") or k.startswith("classification_heads.") for k in S):
        raise Refusal("fairseq classification_heads: tnn's classifier head is one linear layer over mean pooling; "
                      "expected a checkpoint without them")

    D = m.get(f"{side}_embed_dim")
    V, Dw = S[prefix + "embed_tokens.weight"].shape
    refuse_if(D is not None and D != Dw, f"{side}_embed_dim {D}: expected the embedding's width {Dw}")
    D = Dw
    if not roberta:
        for k in ("decoder_input_dim", "decoder_output_dim"):
            refuse_if(m.get(k, D) != D, f"{k} {m.get(k)}: expected decoder_embed_dim {D} (no projection in tnn)")
    if "norm_type" not in m:
        raise Refusal("fairseq norm_type: absent, so the layer norms are LayerNorm but the RPE norms "
                      "simplermsnorm; tnn has one norm_type")
    nt = norm_key(m["norm_type"], "fairseq norm_type")
    prenorm = fs_flag(m, f"{side}_normalize_before", False)
    layers = m.get(f"{side}_layers")
    found = {int(re.match(re.escape(prefix) + r"layers\.(\d+)\.", k).group(1)) for k in S
             if re.match(re.escape(prefix) + r"layers\.\d+\.", k)}
    layers = positive_int(layers if layers is not None else len(found), f"fairseq {side}_layers")
    heads = positive_int(m.get(f"{side}_attention_heads"), f"fairseq {side}_attention_heads")
    g = dict(TP_GTU, embed_dim=D, num_heads=heads, bias=True,
             act_fun=m.get("act_fun", "silu"), causal=m.get("causal", not roberta),
             expand_ratio=m.get("expand_ratio", 3), resi_param=m.get("resi_param", False),
             use_norm=m.get("use_norm", False), norm_type=m["norm_type"], use_decay=m.get("use_decay", False),
             use_multi_decay=m.get("use_multi_decay", False), rpe_layers=m.get("rpe_layers", 6),
             rpe_embedding=m.get("rpe_embedding", 64), rpe_act=m.get("rpe_act", "relu"),
             normalize=m.get("normalize", False), par_type=m.get("par_type", 1), residual=m.get("residual", False),
             gamma=m.get("gamma", 0.99), act_type=m.get("act_type", "none"))
    for k in ("act_fun", "rpe_act"):  # fairseq-evo's own activation table
        activation_key(g[k], f"fairseq {k}", fairseq=True)
    cfg = gtu_config(g, "fairseq", fairseq=True)
    glu_dim = m.get("glu_dim", -1)
    final = "none"
    if prenorm and (roberta or not m.get("no_decoder_final_norm", False)):
        final = "simplermsnorm" if m.get("final_layernorm", "layernorm") == "simplermsnorm" else "layernorm"
    embed_norm = "none"
    if m.get("layernorm_embedding", roberta):
        embed_norm = "simplermsnorm" if m.get("embdding_layernorm", "layernorm") == "simplermsnorm" else "layernorm"
    scale = not fs_flag(m, "no_scale_embedding", roberta)
    tied = (not fs_flag(m, "untie_weights_roberta", False)) if roberta else \
        fs_flag(m, "share_decoder_input_output_embed", False)
    cfg.update(
        vocab_size=V, layers=layers, glu_dim=D if glu_dim in (-1, None) else positive_int(glu_dim, "fairseq glu_dim"),
        glu_act=activation_key(m.get("glu_act", "silu"), "fairseq glu_act", fairseq=True),
        norm_type=nt, prenorm=prenorm, postnorm_residual=not prenorm, tie_embeddings=tied,
        glu_bias=fs_flag(m, "bias", True), final_norm_type=final, embed_norm_type=embed_norm,
        scale_embedding=scale, lm_head_type="roberta" if roberta else "linear",
    )
    dropout = m.get("dropout", 0.0) or 0.0
    if dropout:
        cfg["dropout"] = float(dropout)
    if roberta and m.get("activation_fn", "gelu") != "gelu":
        raise Refusal(f"fairseq activation_fn {m.get('activation_fn')!r}: expected 'gelu' (tnn's RoBERTa head "
                      "uses the exact gelu)")

    # fairseq names -> tnn names, after checking that the file holds exactly what the config builds.
    expected, rename = {}, {}

    def put(fs_name, shape, tnn_name):
        expected[fs_name] = shape
        rename[fs_name] = tnn_name

    put(prefix + "embed_tokens.weight", (V, D), "embed.weight")
    for n, shape in norm_names(embed_norm, D).items():
        put(prefix + "layernorm_embedding." + n, shape, "embed_norm." + n)
    for i in range(layers):
        fp, tp = f"{prefix}layers.{i}.", f"layers.{i}."
        for n, shape in gtu_names(cfg).items():
            put(fp + "self_attn.gtu." + n, shape, tp + "token_mixer." + n)
        for n, shape in norm_names(nt, D).items():
            put(fp + "self_attn_layer_norm." + n, shape, tp + "token_norm." + n)
            put(fp + "final_layer_norm." + n, shape, tp + "feature_norm." + n)
        for n, shape in glu_names(cfg).items():
            put(fp + "glu." + n, shape, tp + "feature_mixer." + n)
    for n, shape in norm_names(final, D).items():
        put(prefix + "layer_norm." + n, shape, "final_norm." + n)
    put(prefix + "version", None, None)
    if roberta:
        h = "encoder.lm_head."
        put(h + "dense.weight", (D, D), "lm_head.dense.weight")
        put(h + "dense.bias", (D,), "lm_head.dense.bias")
        put(h + "layer_norm.weight", (D,), "lm_head.layer_norm.weight")
        put(h + "layer_norm.bias", (D,), "lm_head.layer_norm.bias")
        put(h + "weight", (V, D), "lm_head.weight")
        put(h + "bias", (V,), "lm_head.bias")
        head = h + "weight"
    else:
        put(prefix + "output_projection.weight", (V, D), "lm_head.weight")
        head = prefix + "output_projection.weight"
    if prefix + "version" not in S:  # a buffer: absent from files some tools rewrite
        expected.pop(prefix + "version")
    check_names(S, {k: (tuple(S[k].shape) if v is None else v) for k, v in expected.items()}, "fairseq model")
    if tied:
        check_tied(S, head, prefix + "embed_tokens.weight", "fairseq model")
    out = {}
    for k, v in S.items():
        t = rename[k]
        if t is None or (tied and t == "lm_head.weight"):
            continue
        out[t] = v
    return cfg, out


# ------------------------------------------------------------------ files

class _Stub:
    """Stands in for a class whose module is not installed (fairseq's meters, OmegaConf's nodes)
    while a checkpoint unpickles: it keeps whatever state it is given."""

    def __init__(self, *args, **kwargs):
        self._args, self._kwargs = args, kwargs

    def __setstate__(self, state):
        self._state = state


def _stub_module(name):
    """A module whose every attribute is a stand-in class (PEP 562's module __getattr__)."""
    mod = types.ModuleType(name)
    mod.__path__ = []  # a package, so that its submodules can be stood in for as well
    mod.__getattr__ = lambda attr: type(attr, (_Stub,), {"__module__": name})
    return mod


def load_torch(path):
    """torch.load that does not need the packages whose classes the file mentions (a fairseq
    checkpoint pickles fairseq and OmegaConf objects beside the tensors): each missing module is
    stood in for and the load retried; the stand-ins leave sys.modules afterwards."""
    kwargs = {"map_location": "cpu"}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = False  # a checkpoint holds its configuration, not only tensors
    added = []
    try:
        for _ in range(64):
            try:
                return torch.load(path, **kwargs)
            except ModuleNotFoundError as e:
                if not e.name or e.name in sys.modules:
                    raise
                sys.modules[e.name] = _stub_module(e.name)
                added.append(e.name)
        raise Refusal(f"{path}: expected a torch.save file, got one that needs too many missing modules")
    except FileNotFoundError:
        raise Refusal(f"{path}: no such file")
    except Refusal:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line for the user
        raise Refusal(f"{path}: expected a torch.save file, got an error reading it: {str(e).splitlines()[0][:200]}")
    finally:
        for name in added:
            sys.modules.pop(name, None)


def to_numpy(t, name, dtype):
    if not torch.is_tensor(t):
        raise Refusal(f"tensor {name}: expected a torch tensor, got {type(t).__name__}")
    t = t.detach().cpu()
    if not t.is_floating_point():
        raise Refusal(f"tensor {name}: expected floating point, got {t.dtype}")
    if dtype == "keep":
        target = torch.float64 if t.dtype == torch.float64 else torch.float32
    else:
        target = {"f32": torch.float32, "f64": torch.float64}[dtype]
    return t.to(target).numpy()


def write_safetensors(path, cfg, tensors, dtype):
    arrays = {n: to_numpy(t, n, dtype) for n, t in tensors.items()}
    tnn_safetensors.save(path, arrays, {"tnn.config": json.dumps(tnn_config_for_file(cfg))})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--from", dest="src", choices=["tnn-pytorch", "fairseq"], help="convert an official checkpoint")
    g.add_argument("--to", dest="dst", choices=["tnn-pytorch"], help="convert a tnn checkpoint to the official form")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--dtype", choices=["keep", "f32", "f64"], default="keep",
                    help="tensor type written (keep: F64 stays F64, everything else becomes F32)")
    args = ap.parse_args(argv)
    try:
        if args.src:
            ckpt = load_torch(args.input)
            cfg, tensors = (from_tnn_pytorch if args.src == "tnn-pytorch" else from_fairseq)(ckpt)
            write_safetensors(args.output, cfg, tensors, args.dtype)
        else:
            try:
                arrays, meta = tnn_safetensors.load(args.input)
            except (OSError, ValueError) as e:
                raise Refusal(f"{args.input}: expected a safetensors file, got: {e}")
            if "tnn.config" not in meta:
                raise Refusal(f"{args.input}: expected metadata 'tnn.config', found none")
            cfg = json.loads(meta["tnn.config"])
            want = {"keep": None, "f32": torch.float32, "f64": torch.float64}[args.dtype]
            tensors = {n: torch.from_numpy(np.ascontiguousarray(a)) for n, a in arrays.items()}
            if want is not None:
                tensors = {n: t.to(want) for n, t in tensors.items()}
            torch.save(to_tnn_pytorch(cfg, tensors), args.output)
    except Refusal as e:
        print(f"convert_checkpoint: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
