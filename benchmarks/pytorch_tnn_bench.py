"""Times a PyTorch TNN of the bench model of benchmarks/bench_lm.cpp, the comparison
for BM_LM_TrainStep / BM_LM_Forward: vocab 256, dim 512, 1 layer, 1 head, expand 3,
GLU 512, RPE width 64 with 6 layers, causal, fixed decay 0.99, batch 1, float32.
Written like tnn-pytorch (nn.Linear layers, SimpleRMSNorm, SiLU/ReLU, the Toeplitz
product by torch.fft.rfft / irfft of length 2N over the sequence dimension), with
autograd for the backward pass.

  /usr/bin/python3 benchmarks/pytorch_tnn_bench.py [--n 2048] [--threads 1 2] [--reps 5]

Prints, per thread count, the median wall time of one training step (forward with
cross-entropy + backward, no optimizer step, as BM_LM_TrainStep) and of one forward
under no_grad (as BM_LM_Forward), each with its median process CPU time (all
threads): on a shared machine the CPU time at one thread is the steadier figure.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class SimpleRMSNorm(nn.Module):
    def __init__(self, eps=1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        d = x.shape[-1]
        rms = x.norm(2, dim=-1, keepdim=True) * d ** -0.5
        return x / (rms + self.eps)


class Rpe(nn.Module):
    """Offset k -> E coefficients: pos_proj, then rpe_layers x (norm, relu, linear), out."""

    def __init__(self, width, out, layers):
        super().__init__()
        self.pos_proj = nn.Linear(1, width)
        self.layers = nn.ModuleList(
            [nn.Sequential(SimpleRMSNorm(), nn.ReLU(), nn.Linear(width, width)) for _ in range(layers)])
        self.out = nn.Sequential(SimpleRMSNorm(), nn.ReLU(), nn.Linear(width, out))

    def forward(self, pos):
        h = self.pos_proj(pos)
        for layer in self.layers:
            h = layer(h)
        return self.out(h)


class Tno(nn.Module):
    def __init__(self, channels, rpe_dim, rpe_layers, gamma):
        super().__init__()
        self.rpe = Rpe(rpe_dim, channels, rpe_layers)
        self.gamma = gamma

    def forward(self, v):  # v [B, N, E], causal
        n = v.shape[1]
        k = torch.arange(n, dtype=v.dtype).unsqueeze(-1)  # [N, 1]
        t = self.rpe(k) * (self.gamma ** k)  # [N, E] t_k, k = 0..N-1
        L = 2 * n
        spec = torch.fft.rfft(t, n=L, dim=0)  # [L/2+1, E]
        vf = torch.fft.rfft(v, n=L, dim=1)  # [B, L/2+1, E]
        return torch.fft.irfft(vf * spec.unsqueeze(0), n=L, dim=1)[:, :n]


class Gtu(nn.Module):
    def __init__(self, d, e, rpe_dim, rpe_layers, gamma):
        super().__init__()
        self.u_proj = nn.Linear(d, e)
        self.v_proj = nn.Linear(d, e)
        self.o = nn.Linear(e, d)
        self.toep = Tno(e, rpe_dim, rpe_layers, gamma)

    def forward(self, x):
        u = F.silu(self.u_proj(x))
        v = F.silu(self.v_proj(x))
        return self.o(u * self.toep(v))


class Glu(nn.Module):
    def __init__(self, d, g):
        super().__init__()
        self.l1 = nn.Linear(d, g)
        self.l2 = nn.Linear(d, g)
        self.l3 = nn.Linear(g, d)

    def forward(self, x):
        return self.l3(F.silu(self.l1(x)) * self.l2(x))


class TnnLM(nn.Module):
    def __init__(self, vocab=256, dim=512, layers=1, expand=3, glu_dim=512, rpe_dim=64, rpe_layers=6, gamma=0.99):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict({
                "token_norm": SimpleRMSNorm(),
                "token_mixer": Gtu(dim, expand * dim, rpe_dim, rpe_layers, gamma),
                "feature_norm": SimpleRMSNorm(),
                "feature_mixer": Glu(dim, glu_dim),
            }))
        self.final_norm = SimpleRMSNorm()
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens):
        x = self.embed(tokens)
        for b in self.blocks:
            x = x + b["token_mixer"](b["token_norm"](x))
            x = x + b["feature_mixer"](b["feature_norm"](x))
        return self.lm_head(self.final_norm(x))


def median_time(fn, reps):
    """Median wall time and median process CPU time (all threads) of fn."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = TnnLM()
    n = args.n
    tokens = torch.randint(0, 256, (1, n))
    targets = torch.roll(tokens, -1, dims=1)

    def train_step():
        model.zero_grad(set_to_none=False)
        logits = model(tokens)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, 256), targets[:, :-1].reshape(-1))
        loss.backward()

    def forward():
        with torch.no_grad():
            model(tokens)

    print(f"torch {torch.__version__}, N={n}, float32, batch 1")
    for th in args.threads:
        torch.set_num_threads(th)
        ts, cs = median_time(train_step, args.reps)
        tf, cf = median_time(forward, args.reps)
        print(f"threads={th}  train_step_ms={ts * 1e3:.1f} (cpu {cs * 1e3:.1f})  "
              f"forward_ms={tf * 1e3:.1f} (cpu {cf * 1e3:.1f})  "
              f"train_tokens_per_s={n / ts:.0f}  forward_tokens_per_s={n / tf:.0f}")


if __name__ == "__main__":
    main()
