#!/usr/bin/env python3
"""Time per token against context, from tnn_bench's decoding benchmarks, as an SVG.

    OMP_NUM_THREADS=1 build/release/benchmarks/tnn_bench --benchmark_filter='BM_LM_Generate' \
        --benchmark_out=decode.json --benchmark_out_format=json
    python3 benchmarks/plot_decode.py decode.json -o docs/decode.svg [--counter ms_per_token]

One line per benchmark family (BM_LM_Generate = tiled FFT decoder, BM_LM_GenerateDirect =
direct history sum, and their Batch8 variants), log-log axes. Standard library only.
"""
import argparse
import json
import math
import re
import sys

FAMILIES = [
    ("BM_LM_Generate", "fft decoder, batch 1", "#1f77b4", ""),
    ("BM_LM_GenerateDirect", "direct decoder, batch 1", "#d62728", ""),
    ("BM_LM_GenerateBatch8", "fft decoder, batch 8 (per step)", "#1f77b4", "6,4"),
    ("BM_LM_GenerateDirectBatch8", "direct decoder, batch 8 (per step)", "#d62728", "6,4"),
]


def load(paths, counter):
    series = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for b in data.get("benchmarks", []):
            m = re.fullmatch(r"(BM_LM_Generate\w*)/(\d+)", b.get("name", ""))
            if not m or counter not in b:
                continue
            series.setdefault(m.group(1), {})[int(m.group(2))] = float(b[counter])
    return series


def nice_ticks(lo, hi):
    """Powers of ten and their 2x, 5x between lo and hi (log axis)."""
    ticks = []
    e = math.floor(math.log10(lo))
    while 10 ** e <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo / 1.0001 <= v <= hi * 1.0001:
                ticks.append(v)
        e += 1
    return ticks


def fmt(v):
    return f"{v:g}" if v >= 0.01 else f"{v:.0e}"


def svg(series, counter, title):
    W, H, left, right, top, bottom = 720, 440, 70, 230, 40, 50
    xs = [x for s in series.values() for x in s]
    ys = [y for s in series.values() for y in s.values() if y > 0]
    if not xs or not ys:
        sys.exit("plot_decode: no BM_LM_Generate* benchmark with counter '%s' in the input" % counter)
    x0, x1 = min(xs) / 1.3, max(xs) * 1.3
    y0, y1 = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))
    pw, ph = W - left - right, H - top - bottom

    def px(x):
        return left + pw * (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))

    def py(y):
        return top + ph * (1 - (math.log(y) - math.log(y0)) / (math.log(y1) - math.log(y0)))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{left + pw / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>']
    for x in sorted(set(xs)):
        out.append(f'<line x1="{px(x):.1f}" y1="{top + ph}" x2="{px(x):.1f}" y2="{top + ph + 5}" stroke="black"/>')
        out.append(f'<text x="{px(x):.1f}" y="{top + ph + 18}" text-anchor="middle">{x}</text>')
    for y in nice_ticks(y0, y1):
        out.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{left + pw}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{fmt(y)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{H - 10}" text-anchor="middle">context L (tokens generated after a 1-token prompt)</text>')
    out.append(f'<text transform="translate(16,{top + ph / 2}) rotate(-90)" text-anchor="middle">{counter} (log)</text>')
    ly = top + 10
    for name, label, color, dash in FAMILIES:
        s = series.get(name)
        if not s:
            continue
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(s.items()) if y > 0)
        d = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"{d}/>')
        for x, y in sorted(s.items()):
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        out.append(f'<line x1="{W - right + 15}" y1="{ly}" x2="{W - right + 45}" y2="{ly}" stroke="{color}" stroke-width="2"{d}/>')
        out.append(f'<text x="{W - right + 50}" y="{ly + 4}">{label}</text>')
        ly += 20
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="google-benchmark JSON output(s)")
    ap.add_argument("-o", "--output", required=True, help="SVG file to write")
    ap.add_argument("--counter", default="ms_per_token", help="counter to plot (ms_per_token or cpu_ms_per_token)")
    ap.add_argument("--title", default="tnn decoding: time per token against context (bench model)")
    a = ap.parse_args()
    with open(a.output, "w") as f:
        f.write(svg(load(a.json, a.counter), a.counter, a.title))


if __name__ == "__main__":
    main()
