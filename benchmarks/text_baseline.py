#!/usr/bin/env python3
"""The yardstick for `tnn train --task classify`: TF-IDF + logistic regression on the held-out
text tasks of text_tasks.py (DIR/<task>/{train,valid,test}.tsv, `label<TAB>text` lines).

For each task, two baselines, each with its hyperparameters chosen on valid only (fit on
train, scored on valid, the best one scored once on test):
  word  word unigrams (and bigrams, if valid prefers them), sublinear TF-IDF, L2 logistic
        regression, C in {1, 10, 100, 1000}
  char  character 3-5-grams (at most 300,000, by frequency), sublinear TF-IDF, the same C grid
and the majority class of train, scored on test. Prints a markdown table; --json FILE writes the
numbers for benchmarks/text_classify_compare.sh.
  /usr/bin/python3 benchmarks/text_baseline.py DIR [--tasks kjv_book,license,man_section] [--json FILE]
(Debian: apt-get install python3-sklearn)
"""
import argparse
import collections
import json
import os
import sys
import time
import warnings


def die(msg):
    print(f"text_baseline.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


try:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
except ImportError as e:
    die(f"expected scikit-learn (Debian: apt-get install python3-sklearn; run with /usr/bin/python3), got: {e}")

C_GRID = (1.0, 10.0, 100.0, 1000.0)
FEATURES = {
    "word": [dict(analyzer="word", token_pattern=r"(?u)\b\w+\b", ngram_range=n, sublinear_tf=True)
             for n in ((1, 1), (1, 2))],
    "char": [dict(analyzer="char", ngram_range=(3, 5), sublinear_tf=True, max_features=300_000)],
}


def read_tsv(path):
    labels, texts = [], []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if "\t" not in line:
                    die(f"{path}:{n}: expected 'label<TAB>text', got a line without a tab")
                label, text = line.split("\t", 1)
                labels.append(label)
                texts.append(text)
    except OSError as e:
        die(f"expected the file {path} (made by benchmarks/text_tasks.py), got: {e}")
    if not labels:
        die(f"{path}: expected at least one example, got an empty file")
    return labels, texts


def accuracy(pred, gold):
    return sum(p == g for p, g in zip(pred, gold)) / len(gold)


def tune(kind, train, valid, test):
    """The (features, C) with the best valid accuracy (the first of equals), and its test accuracy."""
    best = None
    for params in FEATURES[kind]:
        vec = TfidfVectorizer(**params)
        xtr = vec.fit_transform(train[1])
        xva, xte = vec.transform(valid[1]), vec.transform(test[1])
        for c in C_GRID:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                lr = LogisticRegression(C=c, max_iter=3000).fit(xtr, train[0])
            va = accuracy(lr.predict(xva), valid[0])
            if best is None or va > best["valid"]:
                best = {"valid": va, "test": accuracy(lr.predict(xte), test[0]), "C": c,
                        "ngrams": list(params["ngram_range"]), "features": xtr.shape[1]}
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data_dir")
    p.add_argument("--tasks", default="kjv_book,license,man_section")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    results = {}
    for task in [t for t in a.tasks.split(",") if t]:
        d = os.path.join(a.data_dir, task)
        train, valid, test = (read_tsv(os.path.join(d, f"{s}.tsv")) for s in ("train", "valid", "test"))
        t0 = time.time()
        majority = collections.Counter(train[0]).most_common(1)[0][0]
        r = {"classes": len(set(train[0])), "sizes": [len(train[0]), len(valid[0]), len(test[0])],
             "majority": accuracy([majority] * len(test[0]), test[0]), "majority_label": majority}
        for kind in FEATURES:
            r[kind] = tune(kind, train, valid, test)
        r["seconds"] = round(time.time() - t0, 1)
        results[task] = r
        print(f"{task}: done in {r['seconds']} s", file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    print("| task | classes | train / valid / test | majority | word TF-IDF + LR | char 3-5 TF-IDF + LR |")
    print("|---|---:|---|---:|---:|---:|")
    for task, r in results.items():
        w, c = r["word"], r["char"]
        words = "unigrams" if w["ngrams"] == [1, 1] else "1-2-grams"
        print(f"| {task} | {r['classes']} | {' / '.join(map(str, r['sizes']))} | {100 * r['majority']:.1f}% "
              f"| {100 * w['test']:.1f}% ({words}, C {w['C']:g}) | {100 * c['test']:.1f}% (C {c['C']:g}) |")


if __name__ == "__main__":
    main()
