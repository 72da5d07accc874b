#!/usr/bin/env python3
"""Topics by subject, measured: two binaries side by side on labelled comments from ../shared.

Sets (all from ../shared/corpora, nothing copied into the repository):
  - online_shopping: the 6,285 comments of online_shopping_10_cats/test.jsonl against their 10
    product categories (issue 37's bar: NMI >= 0.60);
  - bilingual: 2,900 comments on four subjects, two of them in both languages: laptops
    (SemEval-2014 laptops, en; online_shopping 计算机, zh), food (SemEval-2014 restaurants, en;
    waimai, zh), hotels (online_shopping 酒店, zh) and airlines (twitter_airline, en). Besides
    NMI against the subject, for laptops and food: the share of the Chinese and of the English
    comments in the topic that holds most of the subject's comments (the same topic for both
    languages is what "by subject" means).

Each binary scores the set (`score --embeddings --no-index`) and runs `topics` with its default
settings; NMI counts unassigned comments as one more cluster. Plain Python (no numpy).

  python3 benches/topics_subject.py --new target/release/vocmine --old /path/to/old/vocmine \
      [--out benches/results/topics_subject_DATE.md]
"""

import argparse
import collections
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spark_vs_cli import cpu_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "corpora")


def read(rel):
    with open(os.path.join(SHARED, rel), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def online_shopping():
    return [
        {"id": r["id"].strip(), "text": r["text"], "gold": r["category"]}
        for r in read("online_shopping_10_cats/test.jsonl")
    ]


def bilingual():
    rng = random.Random(7)
    out = []

    def add(rows, subject, lang, n):
        rows = list(rows)
        rng.shuffle(rows)
        for r in rows[:n]:
            out.append({"id": r["id"].strip(), "text": r["text"], "gold": subject, "lang": lang})

    shop = read("online_shopping_10_cats/test.jsonl")
    add(read("semeval2014_absa/laptops_test.jsonl"), "laptop", "en", 500)
    add([r for r in shop if r["category"] == "计算机"], "laptop", "zh", 400)
    add(read("semeval2014_absa/restaurants_test.jsonl"), "food", "en", 500)
    add(read("waimai_10k/test.jsonl"), "food", "zh", 500)
    add([r for r in shop if r["category"] == "酒店"], "hotel", "zh", 500)
    add(read("twitter_airline/test.jsonl"), "airline", "en", 500)
    rng.shuffle(out)
    return out


def nmi(a, b):
    """Normalised mutual information (arithmetic mean of the entropies, as scikit-learn)."""
    n = len(a)
    ca, cb, cab = collections.Counter(a), collections.Counter(b), collections.Counter(zip(a, b))
    h = lambda c: -sum(v / n * math.log(v / n) for v in c.values())  # noqa: E731
    mi = sum(v / n * math.log(v * n / (ca[x] * cb[y])) for (x, y), v in cab.items())
    ha, hb = h(ca), h(cb)
    return 0.0 if ha + hb == 0 else 2 * mi / (ha + hb)


def run(binary, rows, work):
    path = os.path.join(work, "in.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n")
    out = os.path.join(work, "run")
    subprocess.run(
        [binary, "score", path, "--out", out, "--embeddings", "--no-index"],
        check=True,
        capture_output=True,
    )
    t = time.time()
    printed = subprocess.run(
        [binary, "topics", out], check=True, capture_output=True, text=True
    ).stdout
    seconds = time.time() - t
    with open(os.path.join(out, "topics", "assignments.jsonl"), encoding="utf-8") as f:
        got = {}
        for line in f:
            v = json.loads(line)
            got[v["id"]] = v["topic"]
    with open(os.path.join(out, "topics", "model.json"), encoding="utf-8") as f:
        model = json.load(f)
    return got, model, printed, seconds


def measure(name, binary, rows):
    with tempfile.TemporaryDirectory() as work:
        got, model, printed, seconds = run(binary, rows, work)
    topic = [got[r["id"]] for r in rows]
    gold = [r["gold"] for r in rows]
    res = {
        "binary": name,
        "topics": len(model["topics"]),
        "unassigned": sum(t < 0 for t in topic) / len(topic),
        "nmi": nmi(gold, topic),
        "labels": [t["label"] for t in sorted(model["topics"], key=lambda t: -t["size"])][:6],
        "seconds": seconds,
    }
    if "lang" in rows[0]:
        for subject in ("laptop", "food"):
            idx = [i for i, r in enumerate(rows) if r["gold"] == subject]
            top = collections.Counter(topic[i] for i in idx).most_common(1)[0][0]
            for lang in ("zh", "en"):
                li = [i for i in idx if rows[i]["lang"] == lang]
                res[f"{subject}_{lang}"] = sum(topic[i] == top for i in li) / len(li)
            res[f"{subject}_topic"] = top
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--new", required=True)
    ap.add_argument("--old")
    ap.add_argument("--out")
    a = ap.parse_args()
    bins = [("new", a.new)] + ([("old", a.old)] if a.old else [])
    lines = [
        f"# Topics by subject ({time.strftime('%Y-%m-%d')})",
        "",
        f"CPU: {cpu_model()}. Command: `python3 benches/topics_subject.py --new {a.new}"
        + (f" --old {a.old}" if a.old else "")
        + "`; each binary with its default settings.",
        "",
    ]
    for set_name, rows in (("online_shopping test (10 categories)", online_shopping()),
                           ("bilingual (4 subjects, laptops and food in zh and en)", bilingual())):
        lines += [f"## {set_name}: {len(rows)} comments", ""]
        head = "| binary | topics | unassigned | NMI |"
        bi = "lang" in rows[0]
        if bi:
            head += " laptops zh / en in one topic | food zh / en in one topic |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        labels = []
        for name, b in bins:
            r = measure(name, b, rows)
            row = f"| {name} | {r['topics']} | {100 * r['unassigned']:.1f}% | {r['nmi']:.3f} |"
            if bi:
                row += f" {r['laptop_zh']:.2f} / {r['laptop_en']:.2f} | {r['food_zh']:.2f} / {r['food_en']:.2f} |"
            lines.append(row)
            labels.append(f"- {name}: " + "; ".join(r["labels"]))
            print(row, flush=True)
        lines += ["", "Largest topics' labels:", ""] + labels + [""]
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
