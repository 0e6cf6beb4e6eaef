#!/usr/bin/env python3
"""TNN against attention in the same backbone, by sequence length: the median time of a training
step and of a forward from tnn_bench's BM_LM_* and BM_Attention_* families, as an SVG and as a
Markdown table (docs/paper.md, "Speed by length").

    OMP_NUM_THREADS=1 taskset -c 1 build/release/benchmarks/tnn_bench \\
        --benchmark_filter='BM_(LM|Attention)_(TrainStep|Forward)/' --benchmark_repetitions=3 \\
        --benchmark_out=speed.json --benchmark_out_format=json
    python3 benchmarks/plot_speed.py speed.json [more.json ...] -o docs/speed.svg --table

Every run of a (family, N) found in the inputs counts (repetitions and several files alike); the
median of their times is reported: CPU time by default (`--time cpu`), which for a 1-thread run is
the time spent computing and leaves out the time the process waited for the core on a shared
machine; `--time real` for wall time. Runs skipped with a message (attention beyond its length
bound) are listed as such. Standard library only.
"""
import argparse
import json
import math
import re
import statistics
import sys

FAMILIES = [  # name, label, colour, dash
    ("BM_LM_TrainStep", "TNN training step", "#1f77b4", ""),
    ("BM_Attention_TrainStep", "attention training step", "#d62728", ""),
    ("BM_LM_Forward", "TNN forward", "#1f77b4", "6,4"),
    ("BM_Attention_Forward", "attention forward", "#d62728", "6,4"),
]
UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def load(paths, which="cpu"):
    """{family: {N: [ms, ...]}}, {family: {N: message}} for skipped runs, and the first context."""
    times, skipped, context = {}, {}, None
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        context = context or data.get("context", {})
        for b in data.get("benchmarks", []):
            m = re.fullmatch(r"(BM_(?:LM|Attention)_(?:TrainStep|Forward))/(\d+)", b.get("run_name", b.get("name", "")))
            if not m:
                continue
            fam, n = m.group(1), int(m.group(2))
            if b.get("error_occurred"):
                skipped.setdefault(fam, {})[n] = b.get("error_message", "skipped")
                continue
            if b.get("run_type", "iteration") != "iteration":
                continue  # aggregates: the median is taken here over every run
            t = float(b["cpu_time" if which == "cpu" else "real_time"]) * UNIT_MS[b.get("time_unit", "ns")]
            times.setdefault(fam, {}).setdefault(n, []).append(t)
    return times, skipped, context


def medians(times):
    return {fam: {n: statistics.median(v) for n, v in s.items()} for fam, s in times.items()}


def crossover(tnn, attn):
    """The smallest N from which the TNN is faster at every measured length (None if never)."""
    ns = sorted(set(tnn) & set(attn))
    for i, n in enumerate(ns):
        if all(tnn[m] < attn[m] for m in ns[i:]):
            return n
    return None


def fmt_ms(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def table(med, times, skipped):
    lines = ["| N | TNN step (ms) | attention step (ms) | attention / TNN | TNN forward (ms) | attention forward (ms) "
             "| attention / TNN |", "|---:|---:|---:|---:|---:|---:|---:|"]
    ns = sorted({n for s in list(med.values()) + list(skipped.values()) for n in s})
    for n in ns:
        row = [f"{n:,}"]
        for tnn, attn in (("BM_LM_TrainStep", "BM_Attention_TrainStep"), ("BM_LM_Forward", "BM_Attention_Forward")):
            t, a = med.get(tnn, {}).get(n), med.get(attn, {}).get(n)
            row.append(fmt_ms(t) if t is not None else "-")
            row.append(fmt_ms(a) if a is not None else ("skipped" if n in skipped.get(attn, {}) else "-"))
            row.append(f"{a / t:.2f}" if t and a else "-")
        lines.append("| " + " | ".join(row) + " |")
    runs = sorted({len(v) for s in times.values() for v in s.values()})
    lines.append("")
    lines.append(f"(median of {'/'.join(map(str, runs))} runs per cell)")
    for tnn, attn, what in (("BM_LM_TrainStep", "BM_Attention_TrainStep", "training step"),
                            ("BM_LM_Forward", "BM_Attention_Forward", "forward")):
        c = crossover(med.get(tnn, {}), med.get(attn, {}))
        lines.append(f"TNN {what} faster from N = {c:,}" if c else f"TNN {what} never faster in the measured range")
    return "\n".join(lines)


def nice_ticks(lo, hi):
    ticks, e = [], math.floor(math.log10(lo))
    while 10 ** e <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo / 1.0001 <= v <= hi * 1.0001:
                ticks.append(v)
        e += 1
    return ticks


def svg(med, skipped, title, which):
    W, H, left, right, top, bottom = 760, 460, 70, 220, 40, 50
    xs = [n for s in med.values() for n in s]
    ys = [v for s in med.values() for v in s.values() if v > 0]
    if not xs or not ys:
        sys.exit("plot_speed: no BM_LM_* or BM_Attention_* timing in the input")
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
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{H - 10}" text-anchor="middle">sequence length N (tokens, batch 1)</text>')
    out.append(f'<text transform="translate(16,{top + ph / 2}) rotate(-90)" text-anchor="middle">'
               f'{"CPU" if which == "cpu" else "wall"} ms (median, log)</text>')
    ly = top + 10
    for name, label, color, dash in FAMILIES:
        s = med.get(name)
        if not s:
            continue
        d = f' stroke-dasharray="{dash}"' if dash else ""
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(s.items()) if y > 0)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"{d}/>')
        for x, y in sorted(s.items()):
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        out.append(f'<line x1="{W - right + 15}" y1="{ly}" x2="{W - right + 45}" y2="{ly}" stroke="{color}" stroke-width="2"{d}/>')
        out.append(f'<text x="{W - right + 50}" y="{ly + 4}">{label}</text>')
        ly += 20
    if any(skipped.values()):
        out.append(f'<text x="{W - right + 15}" y="{ly + 10}" font-size="11">attention beyond its last point:</text>')
        out.append(f'<text x="{W - right + 15}" y="{ly + 24}" font-size="11">skipped (minutes per iteration)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="google-benchmark JSON output(s)")
    ap.add_argument("-o", "--output", help="SVG file to write")
    ap.add_argument("--table", action="store_true", help="print the Markdown table, the ratios and the crossovers")
    ap.add_argument("--time", choices=("cpu", "real"), default="cpu", help="CPU time (default) or wall time")
    ap.add_argument("--title", default="TNN vs attention in the same backbone (D 512, 1 layer, 1 thread)")
    a = ap.parse_args()
    times, skipped, _ = load(a.json, a.time)
    med = medians(times)
    if a.output:
        with open(a.output, "w") as f:
            f.write(svg(med, skipped, a.title, a.time))
    if a.table or not a.output:
        print(table(med, times, skipped))


if __name__ == "__main__":
    main()
