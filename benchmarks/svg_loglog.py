"""The log-log line chart of plot_decode.py and plot_speed.py, as SVG text. Standard library only."""
import math


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


def loglog_svg(series, families, size, title, x_label, y_label, y_fmt=lambda v: f"{v:g}", notes=()):
    """series {family: {x: y}} drawn as one line per family of `families` [(name, label, colour,
    dash)] with a legend, then `notes` (lines of small text) under it. size: the picture's W, H and
    its left, right, top, bottom margins. None when there is no x or no positive y to plot."""
    W, H, left, right, top, bottom = size
    xs = [x for s in series.values() for x in s]
    ys = [y for s in series.values() for y in s.values() if y > 0]
    if not xs or not ys:
        return None
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
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y_fmt(y)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{H - 10}" text-anchor="middle">{x_label}</text>')
    out.append(f'<text transform="translate(16,{top + ph / 2}) rotate(-90)" text-anchor="middle">{y_label}</text>')
    ly = top + 10
    for name, label, color, dash in families:
        s = series.get(name)
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
    for i, note in enumerate(notes):
        out.append(f'<text x="{W - right + 15}" y="{ly + 10 + 14 * i}" font-size="11">{note}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
