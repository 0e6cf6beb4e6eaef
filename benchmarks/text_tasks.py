#!/usr/bin/env python3
"""Held-out text classification tasks built from texts Debian installs on this machine.

Each task labels fixed-length snippets by the source they come from:
  kjv_book     which of 12 books of the King James Bible (package bible-kjv-text, read through
               the `bible` program of bible-kjv)
  license      which of 11 licenses in /usr/share/common-licenses (near-duplicate versions left
               out: GFDL-1.2 beside GFDL-1.3, LGPL-2 beside LGPL-2.1; BSD is too short)
  man_section  which manual section (1, 2, 3, 5, 7, 8) a man page of /usr/share/man comes from
               (roff markup stripped, the .TH/.Dt lines that name the section dropped)

Held out by position: every source text is cut into train (the first 70%), valid (the next
10%) and test (the last 20%), and snippets never cross a cut, so no test byte was seen in
training. A man section's text is its pages concatenated in the order of a hash of their
names, cut between pages, so its test part is whole pages no training snippet comes from.

Snippets are --length bytes (ASCII: other characters dropped, whitespace runs made one space),
taken every --length / 2 bytes (licenses: every --length / 8, as they are short) and, where a
source gives more, thinned evenly to at most --train-cap (train) or --eval-cap (valid, test)
per class; the class frequencies that result (unbalanced where sources are short) are printed
and written to DIR/<task>/classes.json. Deterministic: no randomness but a fixed shuffle of each
file's lines; the man_section task depends on the manual pages installed, so
it is the same only on machines with the same packages.

Writes DIR/<task>/{train,valid,test}.tsv, one `label<TAB>text` per line.
  /usr/bin/python3 benchmarks/text_tasks.py DIR [--length 256] [--tasks kjv_book,license,man_section]
"""
import argparse
import collections
import gzip
import hashlib
import itertools
import json
import os
import random
import re
import subprocess
import sys

KJV_BOOKS = [  # (label, the `bible` program's abbreviation as it prints it)
    ("Genesis", "Ge"), ("Exodus", "Exo"), ("Job", "Job"), ("Psalms", "Psa"), ("Proverbs", "Prv"),
    ("Isaiah", "Isa"), ("Jeremiah", "Jer"), ("Matthew", "Mat"), ("John", "John"), ("Acts", "Acts"),
    ("Romans", "Rom"), ("Revelation", "Rev"),
]
LICENSES = ["Apache-2.0", "Artistic", "CC0-1.0", "GFDL-1.3", "GPL-1", "GPL-2", "GPL-3", "LGPL-2.1", "LGPL-3",
            "MPL-1.1", "MPL-2.0"]
MAN_SECTIONS = ["1", "2", "3", "5", "7", "8"]
MAN_CAP_BYTES = 1_000_000  # text per section: man1 alone holds 27 MB of compressed pages
MAN_PAGE_CAP = 16_000      # text per page, so that no page (bash(1): 300 kB) fills a split
SPLITS = (("train", 0.0, 0.7), ("valid", 0.7, 0.8), ("test", 0.8, 1.0))


def die(msg):
    print(f"text_tasks.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def normalize(text):
    """ASCII only, whitespace runs (tabs and newlines included) as one space."""
    text = text.encode("ascii", "ignore").decode("ascii")
    return re.sub(r"\s+", " ", text).strip()


# --- sources: label -> text ------------------------------------------------------------------

def kjv_sources():
    try:
        out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], capture_output=True, check=True,
                             text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        die(f"kjv_book: expected the `bible` program of Debian's bible-kjv, got: {e}")
    verses = collections.defaultdict(list)
    ref = re.compile(r"^(\d?[A-Za-z]+)\d+:\d+ (.*)$")
    for line in out.splitlines():
        m = ref.match(line)
        if m:
            verses[m.group(1)].append(m.group(2))
    texts = {}
    for label, abbr in KJV_BOOKS:
        if not verses.get(abbr):
            die(f"kjv_book: expected verses of {label} ('{abbr}') from `bible`, got none")
        texts[label] = " ".join(verses[abbr])
    return texts


def license_sources():
    texts = {}
    for name in LICENSES:
        path = os.path.join("/usr/share/common-licenses", name)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                texts[name] = f.read()
        except OSError as e:
            die(f"license: expected {path} (Debian's base-files), got: {e}")
    return texts


ROFF_TEXT_MACROS = {  # macros whose arguments are running text (man and mdoc)
    "B", "I", "BR", "BI", "IB", "IR", "RB", "RI", "SM", "SB", "SH", "SS", "IP", "TP", "UR", "MT",
    "Nm", "Nd", "Fl", "Ar", "Op", "Pa", "Xr", "Cm", "Ic", "Em", "Sy", "Va", "Fn", "Fa", "Ft", "Fd",
    "Sh", "Ss", "It", "Dv", "Er", "Ev", "Li", "Ql", "Dq", "Sq", "Pq", "Aq", "Ns", "Tn", "Lk",
}
ROFF_NAMED = {"em": "-", "en": "-", "bu": "*", "aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'",
              "cq": "'", "co": "(c)", "mu": "x", "<=": "<=", ">=": ">=", "ti": "~", "ha": "^", "rs": "\\"}


def strip_roff(src):
    """Running text of a man page: comments and layout requests dropped, the arguments of text
    macros kept, inline escapes resolved or removed."""
    out = []
    for line in src.splitlines():
        if line.startswith(('.\\"', "'\\\"", '\\"')):
            continue
        if line.startswith((".", "'")):
            parts = line[1:].strip().split(None, 1)
            if not parts or parts[0] not in ROFF_TEXT_MACROS:
                continue  # .TH/.Dt (which name the section), .PP, .sp, .nf, .de, .if, ...
            line = parts[1] if len(parts) > 1 else ""
            line = line.replace('"', "")
        line = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", line)            # font changes
        line = re.sub(r"\\s[+-]?\d+", "", line)                      # size changes
        line = re.sub(r"\\\((..)", lambda m: ROFF_NAMED.get(m.group(1), ""), line)
        line = re.sub(r"\\\[([^\]]*)\]", lambda m: ROFF_NAMED.get(m.group(1), ""), line)
        line = re.sub(r"\\\*(\(..|\[[^\]]*\]|.)", "", line)           # strings
        line = re.sub(r"\\[&c%:|^]", "", line)
        line = line.replace("\\-", "-").replace("\\e", "\\").replace("\\ ", " ")
        line = re.sub(r"\\(.)", r"\1", line)
        out.append(line)
    return "\n".join(out)


def man_sources():
    texts = {}
    for sec in MAN_SECTIONS:
        d = f"/usr/share/man/man{sec}"
        try:
            names = [n for n in os.listdir(d) if n.endswith(".gz") and not os.path.islink(os.path.join(d, n))]
        except OSError as e:
            die(f"man_section: expected the directory {d}, got: {e}")
        names.sort(key=lambda n: hashlib.sha1(n.encode()).hexdigest())
        # Pages in the order of a hash of their names (a sample across every kind of page) until
        # the section has MAN_CAP_BYTES of text.
        pages, total = [], 0
        for n in names:
            if total >= MAN_CAP_BYTES:
                break
            try:
                with gzip.open(os.path.join(d, n), "rt", encoding="utf-8", errors="replace") as f:
                    raw = f.read()
            except (OSError, EOFError):
                continue  # an unreadable page is simply not used
            if raw.lstrip().startswith(".so "):
                continue  # a redirect to another page
            text = normalize(strip_roff(raw))[:MAN_PAGE_CAP]
            if len(text) >= 200:
                pages.append(text)
                total += len(text) + 1
        if total == 0:
            die(f"man_section: no readable pages in {d}")
        # The cuts fall between pages: a page belongs to the split in which it starts.
        texts[f"man{sec}"] = (" ".join(pages), [0] + list(itertools.accumulate(len(p) + 1 for p in pages)))
    return texts


TASKS = {"kjv_book": kjv_sources, "license": license_sources, "man_section": man_sources}
# Snippets start every length / STRIDE_DIVISOR[task] bytes: the licenses are short (6-35 kB), so
# theirs overlap more to give each class more than a handful of test snippets.
STRIDE_DIVISOR = {"kjv_book": 2, "license": 8, "man_section": 2}


# --- snippets --------------------------------------------------------------------------------

def windows(text, lo, hi, length, stride, cap):
    """Snippets of `length` bytes inside text[lo:hi], every `stride` bytes, thinned evenly to
    at most `cap`."""
    stride = max(1, stride)
    starts = list(range(lo, hi - length + 1, stride))
    if len(starts) > cap:
        starts = [starts[round(i * (len(starts) - 1) / (cap - 1))] for i in range(cap)] if cap > 1 else starts[:1]
    return [text[s:s + length] for s in starts]


def cut(text, starts, frac):
    """Position `frac` of the way through `text`, moved on to the next document start when the
    text is a concatenation of documents starting at `starts`."""
    pos = int(len(text) * frac)
    if starts is None or frac in (0.0, 1.0):
        return pos
    return min(min((s for s in starts if s >= pos), default=len(text)), len(text))


def build(task, out_dir, length, train_cap, eval_cap):
    sources = TASKS[task]()
    counts = {}
    os.makedirs(os.path.join(out_dir, task), exist_ok=True)
    for split, a, b in SPLITS:
        lines = []
        for label, src in sources.items():
            raw, starts = src if isinstance(src, tuple) else (src, None)
            text = normalize(raw)
            lo, hi = cut(text, starts, a), cut(text, starts, b)
            cap = train_cap if split == "train" else eval_cap
            snippets = windows(text, lo, hi, length, length // STRIDE_DIVISOR[task], cap)
            counts.setdefault(label, {})[split] = len(snippets)
            lines += [f"{label}\t{s}" for s in snippets]
        random.Random(f"{task}/{split}").shuffle(lines)
        path = os.path.join(out_dir, task, f"{split}.tsv")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write("".join(line + "\n" for line in lines))
        os.replace(tmp, path)
    with open(os.path.join(out_dir, task, "classes.json"), "w") as f:
        json.dump({"length": length, "counts": counts}, f, indent=1)
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--length", type=int, default=256, help="snippet length in bytes (default 256)")
    p.add_argument("--train-cap", type=int, default=1000, help="at most this many training snippets per class")
    p.add_argument("--eval-cap", type=int, default=200, help="at most this many valid (and test) snippets per class")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: " + ", ".join(TASKS))
    a = p.parse_args()
    if a.length < 8:
        die(f"--length: expected at least 8 bytes, got {a.length}")
    if a.train_cap < 1 or a.eval_cap < 1:
        die(f"--train-cap, --eval-cap: expected at least 1, got {a.train_cap} and {a.eval_cap}")
    tasks = [t for t in a.tasks.split(",") if t]
    for t in tasks:
        if t not in TASKS:
            die(f"--tasks: expected names from {', '.join(TASKS)}, got '{t}'")
    for t in tasks:
        counts = build(t, a.out_dir, a.length, a.train_cap, a.eval_cap)
        tot = {s: sum(c.get(s, 0) for c in counts.values()) for s, _, _ in SPLITS}
        print(f"{t}: {len(counts)} classes, {a.length}-byte snippets, train {tot['train']} / valid {tot['valid']} "
              f"/ test {tot['test']}")
        for label, c in counts.items():
            print(f"  {label:12s} train {c['train']:5d}  valid {c['valid']:4d}  test {c['test']:4d}")


if __name__ == "__main__":
    main()
