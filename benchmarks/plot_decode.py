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
import re
import sys

from svg_loglog import loglog_svg

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


def fmt(v):
    return f"{v:g}" if v >= 0.01 else f"{v:.0e}"


def svg(series, counter, title):
    text = loglog_svg(series, FAMILIES, (720, 440, 70, 230, 40, 50), title,
                      "context L (tokens generated after a 1-token prompt)", f"{counter} (log)", fmt)
    if text is None:
        sys.exit("plot_decode: no BM_LM_Generate* benchmark with counter '%s' in the input" % counter)
    return text


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
