"""Cross-check `tnn grad` (model.md §10) against the PyTorch reference in tnn_reference.py.

For each configuration: random weights -> MODEL.safetensors (F64, and F32 for the f32 run),
random batch -> BATCH.safetensors, run `tnn grad`, read OUT and compare loss, logits and every
grad.<name> with torch autograd in float64. Error per tensor = max |diff| / max |reference|
(the plain max |diff| when the reference is all zeros; for attention's key bias, whose gradient is
0 up to rounding, over the scale of the same layer's key weight gradient). Fails when an f64 error
>= 1e-7, an f32 error >= 1e-3, or any tensor is missing, extra, or of the wrong shape/dtype.

  /usr/bin/python3 tests/pytorch/check_grad.py [--tnn PATH] [--quick] [--keep DIR] [--seed S]
  /usr/bin/python3 tests/pytorch/check_grad.py --self-test   (reference checks, no C++ needed)

--tnn may also name a .py file with the same command-line interface (run with this Python),
e.g. tests/pytorch/tnn_reference.py, which tests this harness without the C++ program.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import tnn_reference as ref  # noqa: E402

TOL = {"f64": 1e-7, "f32": 1e-3}

# Small dims so the dense O(N^2) reference stays fast; every knob is varied somewhere.
BASE = dict(vocab_size=11, dim=8, layers=2, heads=1, expand_ratio=1.5, rpe_dim=6, rpe_layers=1)


def C(name, B, N, targets="mixed", **kw):
    cfg = dict(BASE)
    cfg.update(kw)
    return dict(name=name, cfg=cfg, B=B, N=N, targets=targets)


CONFIGS = [
    # name                      B  N     config
    C("default-causal", 2, 17),  # simplermsnorm, prenorm, use_decay 0.99, silu/silu/relu
    C("bidir-h2-rms-post-multi", 3, 17, causal=False, heads=2, norm_type="rmsnorm", prenorm=False,
      use_decay=False, use_multi_decay=True, gamma=0.9, rpe_layers=2,
      gtu_act="gelu", glu_act="relu", rpe_act="silu"),
    C("causal-h3-ln-nodecay-tied", 1, 2, heads=3, norm_type="layernorm", use_decay=False,
      rpe_layers=0, gtu_act="none", glu_act="none", rpe_act="none", tie_embeddings=True),
    C("n1-causal-h2-rms-multi", 3, 1, heads=2, norm_type="rmsnorm", use_decay=False,
      use_multi_decay=True, gamma=0.5),
    C("n1-bidir-ln-post", 2, 1, causal=False, norm_type="layernorm", prenorm=False, rpe_layers=3),
    C("n2-bidir-h3-decay", 2, 2, causal=False, heads=3, gamma=0.8, glu_act="gelu"),
    C("causal-h3-ln-post-rpe3-gelu", 2, 129, heads=3, norm_type="layernorm", prenorm=False,
      gamma=0.9, rpe_layers=3, gtu_act="gelu", glu_act="gelu", rpe_act="gelu"),
    C("bidir-h1-simple-multi-tied", 2, 129, causal=False, use_decay=False, use_multi_decay=True,
      gamma=0.95, tie_embeddings=True, rpe_act="gelu", glu_act="relu"),
    C("causal-E-rounding-glu-dim", 2, 17, dim=6, expand_ratio=2.5, heads=2, glu_dim=5, layers=3,
      norm_type="rmsnorm", gtu_act="relu", rpe_act="silu"),  # E = floor(15)//2*2 = 14
    C("bidir-gamma1-relu", 1, 17, causal=False, gamma=1.0, gtu_act="relu", glu_act="none",
      norm_type="rmsnorm", rpe_layers=0),
    C("all-targets-ignored", 2, 5, targets="none", heads=2, use_decay=False, use_multi_decay=True),
    C("causal-n1000-h2", 2, 1000, dim=4, layers=1, heads=2, rpe_dim=4, gamma=0.99),
    C("bidir-n1000-multi-ln", 1, 1000, dim=4, layers=1, heads=1, rpe_dim=4, causal=False,
      use_decay=False, use_multi_decay=True, gamma=0.9, norm_type="layernorm", rpe_layers=2),
    C("causal-n1000-nodecay-post", 1, 1000, dim=4, layers=1, heads=1, rpe_dim=4, use_decay=False,
      prenorm=False, tie_embeddings=True),
]
# Classifiers: bidirectional backbone, pooling, head [K, D] + [K], ragged lengths
# (every batch mixes full-length rows with short ones, down to length 1).
CL = dict(causal=False, task="classify")
CONFIGS += [
    C("cls-mean-simple-decay", 3, 17, targets="ragged", num_classes=4, **CL),
    C("cls-first-ln-h2-multi", 3, 17, targets="ragged", num_classes=3, pooling="first", heads=2,
      norm_type="layernorm", use_decay=False, use_multi_decay=True, gamma=0.9, **CL),
    C("cls-mean-rms-post-nodecay", 4, 33, targets="ragged", num_classes=10, norm_type="rmsnorm",
      prenorm=False, use_decay=False, rpe_layers=2, gtu_act="gelu", glu_act="relu", **CL),
    C("cls-first-rms-h3-n1", 2, 1, targets="ragged", num_classes=2, pooling="first", heads=3,
      norm_type="rmsnorm", rpe_layers=0, **CL),
    C("cls-mean-ln-n300", 3, 300, targets="ragged", num_classes=5, dim=4, layers=1, rpe_dim=4,
      norm_type="layernorm", gamma=0.95, **CL),
    C("cls-max-rms-learned", 3, 17, targets="ragged", num_classes=3, pooling="max", norm_type="rmsnorm",
      use_decay=False, use_multi_decay=True, gamma=0.5, **CL),
]
# Image classifiers (model.md §13): patch embedding, the 2-D TNO on a grid of patches
# (odd and even grid sides, 1 x W and H x 1 grids, up to 17 x 16 where tnn's 2-D product takes
# the FFT path: above 196 positions), every norm, decays, pooling; N shows the grid's tokens.
def IMG(name, B, H, W, Ch, patch, **kw):
    cfg = {k: v for k, v in BASE.items() if k != "vocab_size"}
    cfg.update(task="image", causal=False, image_height=H, image_width=W, image_channels=Ch, patch_size=patch)
    cfg.update(kw)
    return dict(name=name, cfg=cfg, B=B, N=(H // patch) * (W // patch), targets="image")  # N: tokens


CONFIGS += [
    IMG("img-p1-5x4-simple-decay", 3, 5, 4, 1, 1, num_classes=4, layers=1),
    IMG("img-p2-6x4x3-ln-h2-multi", 2, 6, 4, 3, 2, num_classes=3, heads=2, norm_type="layernorm",
        use_decay=False, use_multi_decay=True, gamma=0.9),
    IMG("img-p3-9x6-rms-post-nodecay", 2, 9, 6, 2, 3, num_classes=5, norm_type="rmsnorm", prenorm=False,
        use_decay=False, rpe_layers=2, gtu_act="gelu", glu_act="relu"),
    IMG("img-p1-1x7-first-gelu", 2, 1, 7, 2, 1, num_classes=2, pooling="first", rpe_act="gelu", gamma=0.8),
    IMG("img-p2-8x8-max-learned", 3, 8, 8, 1, 2, num_classes=2, pooling="max", use_decay=False,
        use_multi_decay=True, gamma=0.5),
    IMG("img-p2-8x2-h3-rpe0", 3, 8, 2, 1, 2, num_classes=3, heads=3, rpe_layers=0, norm_type="rmsnorm",
        gtu_act="none", glu_act="none", rpe_act="none"),
    IMG("img-p1-17x16-fft-multi-ln", 2, 17, 16, 1, 1, num_classes=3, dim=4, layers=1, rpe_dim=4,
        norm_type="layernorm", use_decay=False, use_multi_decay=True, gamma=0.95),
    IMG("img-p2-34x30x2-fft-decay", 1, 34, 30, 2, 2, num_classes=4, dim=4, layers=1, heads=2, rpe_dim=4,
        gamma=0.9, prenorm=False),
]

# The Transformer baseline in the same backbone (token_mixer "attention", positions "sinusoidal"):
# causal LMs and bidirectional masked LMs, heads 1-4, every norm, pre/post-norm, tied, N from 1 to
# 300 (beyond tnn's attention tiles of 128 queries and keys), ragged classifiers, an image model.
A = dict(token_mixer="attention", positions="sinusoidal")
CONFIGS += [
    C("attn-causal-h1", 2, 17, heads=1, **A),
    C("attn-causal-h2-nopos", 2, 17, heads=2, token_mixer="attention"),
    C("attn-causal-h3-ln-post-tied", 2, 33, dim=6, heads=3, norm_type="layernorm", prenorm=False,
      tie_embeddings=True, **A),
    C("attn-causal-h4-rms-n1", 3, 1, heads=4, norm_type="rmsnorm", **A),
    C("attn-mlm-bidir-h2", 2, 17, causal=False, heads=2, **A),
    C("attn-mlm-bidir-h3-ln-post", 2, 33, dim=9, heads=3, causal=False, norm_type="layernorm", prenorm=False,
      glu_act="gelu", **A),
    C("attn-causal-n300-h2", 1, 300, dim=4, layers=1, heads=2, **A),
    C("attn-mlm-bidir-n257-h1", 2, 257, dim=4, layers=1, heads=1, causal=False, **A),
    C("attn-causal-n129-h3-3layers", 1, 129, dim=6, layers=3, heads=3, **A),
    C("attn-cls-mean-h2", 3, 17, targets="ragged", num_classes=4, heads=2, **A, **CL),
    C("attn-cls-first-h3-ln-post", 3, 17, targets="ragged", num_classes=3, pooling="first", dim=6, heads=3,
      norm_type="layernorm", prenorm=False, **A, **CL),
    C("attn-cls-mean-rms-n200-h1", 3, 200, targets="ragged", num_classes=5, dim=4, layers=1, heads=1,
      norm_type="rmsnorm", **A, **CL),
    IMG("attn-img-p2-6x4x3-h2", 2, 6, 4, 3, 2, num_classes=3, heads=2, **A),
]

# Regressors (task regress): float features [B, N, F] through input_proj, the 1-D backbone causal
# or bidirectional, head [Fo, D] + [Fo] at every position, the mean squared error over all
# B * N * Fo values (`tnn grad` takes no lengths). F and Fo of 1 and more, every norm, pre/post-norm,
# the three decays, N = 1, 2, 17 and 300, attention with and without positions.
def REG(name, B, N, F, Fo, **kw):
    cfg = {k: v for k, v in BASE.items() if k != "vocab_size"}
    cfg.update(task="regress", input_features=F, output_features=Fo)
    cfg.update(kw)
    return dict(name=name, cfg=cfg, B=B, N=N, targets="regress")


CONFIGS += [
    REG("reg-causal-F3-Fo2-simple-decay", 3, 17, 3, 2),
    REG("reg-bidir-F1-Fo1-ln-h2-multi", 2, 17, 1, 1, causal=False, heads=2, norm_type="layernorm",
        use_decay=False, use_multi_decay=True, gamma=0.9, gtu_act="gelu"),
    REG("reg-causal-F1-Fo3-rms-post-n1", 3, 1, 1, 3, norm_type="rmsnorm", prenorm=False, rpe_layers=2,
        glu_act="relu"),
    REG("reg-bidir-F5-Fo2-nodecay-rpe0-n2", 2, 2, 5, 2, causal=False, heads=3, use_decay=False, rpe_layers=0,
        rpe_act="none"),
    REG("reg-causal-F2-Fo1-ln-n300", 2, 300, 2, 1, dim=4, layers=1, rpe_dim=4, heads=2, norm_type="layernorm",
        gamma=0.95),
    REG("reg-bidir-F4-Fo3-rms-multi-n300", 1, 300, 4, 3, dim=4, layers=1, rpe_dim=4, causal=False,
        norm_type="rmsnorm", use_decay=False, use_multi_decay=True, gamma=0.9),
    REG("attn-reg-causal-h2-F3-Fo2", 2, 33, 3, 2, heads=2, layers=2, token_mixer="attention", positions="sinusoidal"),
    REG("attn-reg-bidir-h4-F1-Fo1-ln-post-nopos", 2, 17, 1, 1, heads=4, causal=False, norm_type="layernorm",
        prenorm=False, token_mixer="attention"),
]

# The official options (docs/official.md): run by default now that the program implements them
# (False would leave them to --with-official, or to --only naming them).
OFFICIAL_BY_DEFAULT = True


def O(name, B, N, targets="mixed", **kw):
    c = C("off-" + name, B, N, targets, **kw)
    c["official"] = True
    return c


def O_REG(name, B, N, F, Fo, **kw):
    c = REG("off-" + name, B, N, F, Fo, **kw)
    c["official"] = True
    return c


def O_IMG(name, B, H, W, Ch, patch, **kw):
    c = IMG("off-" + name, B, H, W, Ch, patch, **kw)
    c["official"] = True
    return c


# Each new activation once in each of the three roles (GTU, GLU, RPE).
NEW_ACTS = [a for a in ref.ACTIVATIONS if a not in ("relu", "silu", "gelu", "none")]
CONFIGS += [O(f"act-{NEW_ACTS[j]}-{NEW_ACTS[(j + 2) % 6]}-{NEW_ACTS[(j + 4) % 6]}", 2, 17, causal=j % 2 == 0,
              heads=1 + j % 2, gtu_act=NEW_ACTS[j], glu_act=NEW_ACTS[(j + 2) % 6], rpe_act=NEW_ACTS[(j + 4) % 6],
              norm_type=("simplermsnorm", "layernorm", "rmsnorm")[j % 3], rpe_layers=1 + j % 2)
            for j in range(6)]
CONFIGS += [
    # norms (layers, RPE, final), pre and both post-norm forms
    O("norm-scalenorm-pre", 2, 17, norm_type="scalenorm"),
    O("norm-gatedrms-post-bidir", 2, 17, norm_type="gatedrmsnorm", prenorm=False, causal=False, rpe_layers=2),
    # (no final norm after norm(x + f(x)) here: a final ScaleNorm would make the last ScaleNorm's
    # scalar irrelevant up to eps, its gradient pure cancellation, meaningless in f32)
    O("norm-scalenorm-postres-bidir", 2, 17, norm_type="scalenorm", prenorm=False, postnorm_residual=True,
      causal=False, heads=2, final_norm_type="none"),
    O("norm-gatedrms-pre-h2-learned", 3, 9, norm_type="gatedrmsnorm", heads=2, decay="learned", gamma=0.9),
    # use_norm: the norm over E before the GTU's output projection
    O("usenorm-simplerms", 2, 17, use_norm=True),
    O("usenorm-ln-bidir", 2, 17, use_norm=True, norm_type="layernorm", causal=False),
    O("usenorm-scalenorm-post", 2, 17, use_norm=True, norm_type="scalenorm", prenorm=False),
    O("usenorm-gatedrms-h3", 2, 17, use_norm=True, norm_type="gatedrmsnorm", heads=3, dim=6, expand_ratio=2),
    # normalize: TNO(v) / TNO(1)
    O("normalize-causal", 2, 17, normalize=True),
    O("normalize-bidir-h2-learned", 2, 17, normalize=True, causal=False, heads=2, decay="learned", gamma=0.9),
    # (not N = 1: there y = t_0 v / t_0 = v, every RPE gradient is 0 and only rounding is compared;
    # and a decay at N = 300: a uniform shift of all coefficients barely moves the ratio, so without
    # one the gradient of out.2.bias is a cancellation over 300 terms, out of reach of f32)
    O("normalize-n2-bidir", 3, 2, normalize=True, causal=False),
    O("normalize-causal-nodecay", 2, 17, normalize=True, decay="none", heads=2),
    O("normalize-n300-decay", 1, 300, dim=4, layers=1, rpe_dim=4, normalize=True, gamma=0.9),
    # residual RPE layers
    O("residual-rpe3", 2, 17, residual=True, rpe_layers=3, rpe_act="gelu"),
    O("residual-rpe2-bidir-ln", 2, 17, residual=True, rpe_layers=2, causal=False, norm_type="layernorm"),
    O("residual-rpe0", 2, 5, residual=True, rpe_layers=0),
    # par_type: the RPE fed k, k / (N - 1), exp(k / (N - 1))
    O("par2-causal", 2, 17, par_type=2),
    O("par2-bidir", 2, 17, par_type=2, causal=False),
    O("par3-causal", 2, 17, par_type=3),
    O("par3-bidir", 2, 17, par_type=3, causal=False, heads=2),
    O("par2-n1", 2, 1, par_type=2),
    O("par3-n1-bidir", 2, 1, par_type=3, causal=False),
    O("par2-n2-bidir", 2, 2, par_type=2, causal=False),
    O("par3-n200-learned", 1, 200, dim=4, layers=1, rpe_dim=4, par_type=3, decay="learned", gamma=0.95),
    # bias (GTU projections and every RPE Linear), glu_bias
    O("nobias-par1", 2, 17, bias=False),  # RPE input 0 at k = 0: the norm sees a zero vector
    O("nobias-gatedrms-bidir", 2, 17, bias=False, norm_type="gatedrmsnorm", causal=False, rpe_act="1+elu"),
    O("noglubias", 2, 17, glu_bias=False),
    O("nobias-noglubias-ln-par3", 2, 17, bias=False, glu_bias=False, norm_type="layernorm", par_type=3),
    # the decay key's three values
    O("decay-fixed-key", 2, 17, decay="fixed", gamma=0.9),
    O("decay-learned-key", 2, 17, decay="learned", gamma=0.8, causal=False),
    O("decay-none-key", 2, 17, decay="none"),
    # embedding scale and norm, final norm type
    O("scale-embedding", 2, 17, scale_embedding=True),
    O("embed-norm-ln", 2, 17, embed_norm_type="layernorm"),
    O("embed-norm-simplerms-scaled", 2, 17, embed_norm_type="simplermsnorm", scale_embedding=True),
    O("embed-norm-gatedrms-bidir", 2, 17, embed_norm_type="gatedrmsnorm", causal=False),
    O("final-none", 2, 17, final_norm_type="none"),
    O("final-ln-layers-simple", 2, 17, final_norm_type="layernorm"),
    O("final-scalenorm-layers-rms", 2, 17, final_norm_type="scalenorm", norm_type="rmsnorm"),
    # post-norm as norm(x + f(x))
    O("postres-ln", 2, 17, prenorm=False, postnorm_residual=True, norm_type="layernorm"),
    O("postres-simple-h2-final-none", 2, 17, prenorm=False, postnorm_residual=True, heads=2,
      final_norm_type="none"),
    # RoBERTa's LM head
    O("roberta-head-untied", 2, 17, lm_head_type="roberta"),
    O("roberta-head-tied-bidir", 2, 17, lm_head_type="roberta", tie_embeddings=True, causal=False),
    # dropout is for training: `tnn grad` computes the deterministic (evaluation) function
    O("dropout-ignored", 2, 17, dropout=0.1),
    # combinations: the paper's LM (tnn_v2_decay_99_pre) and RoBERTa shapes, small; everything at once
    O("paper-lm-small", 2, 64, dim=16, layers=7, heads=1, expand_ratio=3, glu_dim=16, rpe_dim=8, rpe_layers=6,
      decay="fixed", gamma=0.99, scale_embedding=True, final_norm_type="layernorm", dropout=0.1),
    O("paper-lm-post-usenorm", 2, 33, dim=16, layers=3, expand_ratio=3, rpe_dim=8, rpe_layers=6, gamma=0.99,
      scale_embedding=True, prenorm=False, postnorm_residual=True, use_norm=True, final_norm_type="none"),
    O("roberta-small", 2, 33, dim=16, layers=3, causal=False, expand_ratio=3, rpe_dim=8, rpe_layers=6, gamma=0.99,
      prenorm=False, postnorm_residual=True, embed_norm_type="layernorm", final_norm_type="none",
      lm_head_type="roberta", tie_embeddings=True, dropout=0.1),
    O("everything-bidir", 2, 17, causal=False, heads=2, norm_type="gatedrmsnorm", use_norm=True, normalize=True,
      residual=True, rpe_layers=2, par_type=3, bias=False, glu_bias=False, scale_embedding=True,
      embed_norm_type="scalenorm", final_norm_type="layernorm", prenorm=False, decay="learned", gamma=0.9,
      lm_head_type="roberta", gtu_act="elu", glu_act="leak", rpe_act="sigmoid"),
    # (rpe_act 1+elu and gamma 0.99, not relu and 0.9: normalize cancels any part of the coefficients
    # that is bias * lambda^k, so the RPE's gradients measure how much the coefficients vary over the
    # decay's window. Fed k / 999, a 0.9 window (~50 offsets) sees inputs in [0, 0.05], nearly one
    # coefficient, and some draws turn every relu of the last block off: gradients of pure rounding.)
    O("everything-causal-n1000", 1, 1000, dim=4, layers=1, heads=2, rpe_dim=4, normalize=True, par_type=2, gamma=0.99,
      use_norm=True, norm_type="gatedrmsnorm", residual=True, rpe_layers=2, scale_embedding=True,
      embed_norm_type="layernorm", prenorm=False, postnorm_residual=True, final_norm_type="none",
      rpe_act="1+elu"),
    # classifiers: ragged batches with normalize (its sum runs over each row's valid positions)
    O("cls-mean-normalize-usenorm", 3, 17, targets="ragged", num_classes=3, normalize=True, use_norm=True,
      norm_type="layernorm", **CL),
    O("cls-first-gatedrms-par3-nobias", 3, 17, targets="ragged", num_classes=4, pooling="first",
      norm_type="gatedrmsnorm", par_type=3, bias=False, glu_bias=False, embed_norm_type="layernorm", **CL),
    # act_type: an activation of every Toeplitz coefficient, after the decay
    O("acttype-sigmoid-normalize-bidir-h2", 2, 17, act_type="sigmoid", normalize=True, causal=False, heads=2),
    O("acttype-relu-learned", 2, 17, act_type="relu", decay="learned", gamma=0.9),
    O("acttype-exp-normalize-n300", 1, 300, dim=4, layers=1, rpe_dim=4, act_type="exp", normalize=True, gamma=0.9),
    O("acttype-2+elu-par2-bidir", 2, 17, act_type="2+elu", par_type=2, causal=False, decay="none"),
    # image classifiers: the options that do not concern a token embedding or the RPE's input
    O_IMG("img-scalenorm-usenorm-nobias", 2, 6, 4, 2, 2, num_classes=3, norm_type="scalenorm", use_norm=True,
          bias=False, glu_bias=False, gtu_act="elu", rpe_act="1+elu", final_norm_type="none"),
    O_IMG("img-normalize-residual-gated", 2, 5, 4, 1, 1, num_classes=3, norm_type="gatedrmsnorm", normalize=True,
          residual=True, rpe_layers=2, prenorm=False, postnorm_residual=True, decay="learned", gamma=0.9),
    O_IMG("img-acttype-1+elu-normalize", 2, 6, 4, 1, 2, num_classes=3, act_type="1+elu", normalize=True,
          use_norm=True, norm_type="layernorm"),
    # regressors: the options that do not concern a token embedding or a vocabulary head
    O_REG("reg-normalize-par2-usenorm-bidir", 2, 17, 3, 2, causal=False, normalize=True, par_type=2, use_norm=True,
          norm_type="gatedrmsnorm", decay="learned", gamma=0.9),
    # (final norm none: a final norm after the last norm(x + f(x)) would leave its ScaleNorm's scalar a
    # gradient of pure cancellation, as for the LM above)
    O_REG("reg-postres-scalenorm-residual-act", 2, 17, 2, 1, prenorm=False, postnorm_residual=True,
          norm_type="scalenorm", final_norm_type="none", residual=True, rpe_layers=2, act_type="elu",
          bias=False, gtu_act="1+elu", rpe_act="sigmoid"),
]
QUICK = ["default-causal", "bidir-h2-rms-post-multi", "causal-h3-ln-nodecay-tied", "n1-causal-h2-rms-multi"]


def uses_official_options(cfg):
    """True when the config sets a key beyond those every version of the program reads."""
    old = set(ref.BASE_KEYS) | set(ref.REQUIRED) | set(ref.CLASSIFY_DEFAULTS) | set(ref.IMAGE_KEYS) | set(
        ref.REGRESS_KEYS) | set(ref.LEGACY_DECAY_KEYS) | set(ref.MIXER_KEYS)
    return any(k not in old for k in cfg)


def config_json(cfg, minimal):
    """The tnn.config JSON: every key, or (minimal) only keys differing from the defaults. A config
    that uses none of the official options is written in the old spelling (use_decay,
    use_multi_decay), which the program keeps reading."""
    full = ref.config_for_file(cfg, legacy=not uses_official_options(cfg))
    if not minimal:
        return json.dumps(full)
    defaults = dict(ref.DEFAULTS, glu_dim=full["dim"], final_norm_type=full["norm_type"], use_decay=True,
                    use_multi_decay=False)
    out = {}
    for k, v in full.items():
        d = defaults.get(k, "required")
        if (d == "required" or v != d) and not (k == "vocab_size" and v == 0):
            out[k] = v
    return json.dumps(out)


def make_batch(rng, V, B, N, mode):
    tokens = rng.integers(0, V, (B, N)).astype(np.int32)
    if mode == "none":
        targets = np.full((B, N), -1, dtype=np.int32)
    else:
        targets = rng.integers(0, V, (B, N)).astype(np.int32)
        targets[rng.random((B, N)) < 0.3] = -1
        targets[0, 0] = rng.integers(0, V)  # at least one counted position
    return tokens, targets


def make_classify_batch(rng, V, K, B, N):
    """tokens [B, N], lengths [B] in 1..N (row 0 full, the last row 1 when B > 1), labels [B]."""
    tokens = rng.integers(0, V, (B, N)).astype(np.int32)
    lengths = rng.integers(1, N + 1, (B,)).astype(np.int32)
    lengths[0] = N
    if B > 1:
        lengths[-1] = 1
    labels = rng.integers(0, K, (B,)).astype(np.int32)
    return tokens, lengths, labels


def rel_err(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    diff = float(np.abs(got - want).max()) if want.size else 0.0
    if not np.isfinite(diff):
        return float("inf")
    scale = float(np.abs(want).max()) if want.size else 0.0
    return diff / scale if scale > 0 else diff


def run_tnn(tnn, model, batch, out, dtype):
    cmd = [sys.executable, tnn] if tnn.endswith(".py") else [tnn]
    cmd += ["grad", "--checkpoint", model, "--inputs", batch, "--out", out, "--dtype", dtype]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        return f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[-400:]}"
    return None


def compare(out_path, dtype, loss, logits, grads):
    """Returns (worst error, tensor name, list of problems)."""
    got, _ = safetensors_io.load(out_path)
    want = {"loss": np.array(loss), "logits": logits}
    want.update({"grad." + n: g for n, g in grads.items()})
    npdt = {"f64": np.float64, "f32": np.float32}[dtype]
    problems = []
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing:
        problems.append("missing " + ",".join(missing))
    if extra:
        problems.append("extra " + ",".join(extra))
    worst, worst_name = 0.0, "-"
    for n in sorted(set(want) & set(got)):
        g, w = got[n], want[n]
        if tuple(g.shape) != tuple(w.shape):
            problems.append(f"{n} shape {list(g.shape)} != {list(w.shape)}")
            continue
        expect_dt = np.float64 if n == "loss" else npdt
        if g.dtype != expect_dt:
            problems.append(f"{n} dtype {g.dtype} != {np.dtype(expect_dt)}")
        if n.endswith("k_proj.bias"):
            # The key bias adds q . b_k to a whole row of scores, which the softmax cancels: its
            # gradient is 0 up to rounding on both sides, so the difference is measured against the
            # gradient scale of the same layer's key weight.
            e = rel_err(g, w)
            kw = want.get(n[: -len("bias")] + "weight")
            scale = max(float(np.abs(w).max()), float(np.abs(kw).max()) if kw is not None else 0.0)
            e = float(np.abs(np.asarray(g, np.float64) - w).max()) / scale if scale > 0 else e
        else:
            e = rel_err(g, w)
        if e > worst or not np.isfinite(e):
            worst, worst_name = e, n
    return worst, worst_name, problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tnn", default=os.path.join(HERE, "..", "..", "build", "release", "bin", "tnn"),
                    help="the tnn program (default: build/release/bin/tnn of this repo, the release preset's)")
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--keep", metavar="DIR", help="write the files to DIR and keep them")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--only", metavar="SUBSTR",
                    help="only configs whose name contains SUBSTR (official ones included: 'off-' names them all)")
    ap.add_argument("--with-official", action="store_true",
                    help="also the configs of the official options (docs/official.md)")
    ap.add_argument("--dtypes", default="f64,f32", help="comma-separated subset of f64,f32")
    ap.add_argument("--self-test", action="store_true", help="check the reference itself and exit")
    args = ap.parse_args(argv)

    if args.self_test:
        ok = ref._selftest()
        print("self-test:", "PASS" if ok else "FAIL")
        return 0 if ok else 1

    tnn = os.path.abspath(args.tnn)
    if not os.path.exists(tnn):
        print(f"check_grad: --tnn '{tnn}' does not exist (build it first or pass --tnn PATH)")
        return 2
    dtypes = [d for d in args.dtypes.split(",") if d]
    for d in dtypes:
        if d not in TOL:
            ap.error(f"--dtypes: expected f64 and/or f32, got '{d}'")
    with_official = args.with_official or OFFICIAL_BY_DEFAULT or bool(args.only)
    configs = [c for c in CONFIGS if (not args.quick or c["name"] in QUICK)
               and (not args.only or args.only in c["name"]) and (with_official or not c.get("official"))]
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        work = args.keep
    else:
        work = tempfile.mkdtemp(prefix="tnn_check_grad_")
    rng = np.random.default_rng(args.seed)

    print(f"tnn: {tnn}\nfiles: {work}\n")
    print(f"{'config':40} {'B':>2} {'N':>5} {'dtype':5} {'worst rel err':>13}  {'tensor':44} result")
    failed = 0
    for ci, c in enumerate(configs):
        cfg = ref.full_config(c["cfg"])
        params = ref.random_params(cfg, rng)
        classifier = ref.is_classifier(cfg)
        image = ref.is_image(cfg)
        regress = ref.is_regressor(cfg)
        if regress:  # features and targets exact in f32, so both runs see the same batch
            features = rng.normal(size=(c["B"], c["N"], cfg["input_features"])).astype(np.float32).astype(np.float64)
            values = rng.normal(size=(c["B"], c["N"], cfg["output_features"])).astype(np.float32).astype(np.float64)
            batch = {"inputs": features, "targets": values}
        elif image:  # pixel values as the model sees them, exact in f32 so both runs see the same input
            images = rng.random((c["B"], cfg["image_height"], cfg["image_width"], cfg["image_channels"]))
            images = images.astype(np.float32).astype(np.float64)
            labels = rng.integers(0, cfg["num_classes"], (c["B"],)).astype(np.int32)
            batch = {"images": images, "labels": labels}
        elif classifier:
            tokens, lengths, labels = make_classify_batch(rng, cfg["vocab_size"], cfg["num_classes"], c["B"], c["N"])
            batch = {"tokens": tokens, "lengths": lengths, "labels": labels}
        else:
            tokens, targets = make_batch(rng, cfg["vocab_size"], c["B"], c["N"], c["targets"])
            batch = {"tokens": tokens, "targets": targets}
        meta = {"tnn.config": config_json(c["cfg"], minimal=(ci % 2 == 1))}  # in the case's own spelling
        stem = os.path.join(work, c["name"])
        batch_path = stem + ".batch.safetensors"
        safetensors_io.save(batch_path, batch)
        for dtype in dtypes:
            if dtype == "f64":
                p = params
            else:  # the reference runs in f64 on the f32-rounded weights
                p = {n: a.astype(np.float32).astype(np.float64) for n, a in params.items()}
            model_path = f"{stem}.model.{dtype}.safetensors"
            out_path = f"{stem}.out.{dtype}.safetensors"
            npdt = np.float64 if dtype == "f64" else np.float32
            safetensors_io.save(model_path, {n: a.astype(npdt) for n, a in p.items()}, meta)
            if regress:
                loss, logits, grads = ref.regress_loss_and_grads(cfg, p, features, values)
            elif image:
                loss, logits, grads = ref.image_loss_and_grads(cfg, p, images, labels)
            elif classifier:
                loss, logits, grads = ref.classifier_loss_and_grads(cfg, p, tokens, lengths, labels)
            else:
                loss, logits, grads = ref.loss_and_grads(cfg, p, tokens, targets)
            t0 = time.time()
            err = run_tnn(tnn, model_path, batch_path, out_path, dtype)
            dt = time.time() - t0
            if err is not None:
                worst, name, problems = float("inf"), "-", [err]
            else:
                worst, name, problems = compare(out_path, dtype, loss, logits, grads)
            ok = not problems and worst < TOL[dtype]
            failed += not ok
            print(f"{c['name']:40} {c['B']:>2} {c['N']:>5} {dtype:5} {worst:13.3e}  {name:44} "
                  f"{'ok' if ok else 'FAIL'} ({dt:.1f}s)")
            for pr in problems:
                print(f"    {pr}")
            sys.stdout.flush()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{len(configs) * len(dtypes) - failed} passed, {failed} failed "
          f"(tolerance f64 {TOL['f64']:.0e}, f32 {TOL['f32']:.0e})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
