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
import re
import statistics
import sys

from svg_loglog import loglog_svg

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


def svg(med, skipped, title, which):
    notes = ("attention beyond its last point:", "skipped (minutes per iteration)") if any(skipped.values()) else ()
    text = loglog_svg(med, FAMILIES, (760, 460, 70, 220, 40, 50), title, "sequence length N (tokens, batch 1)",
                      f'{"CPU" if which == "cpu" else "wall"} ms (median, log)', notes=notes)
    if text is None:
        sys.exit("plot_speed: no BM_LM_* or BM_Attention_* timing in the input")
    return text


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
