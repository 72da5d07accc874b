"""Contrast pairs for the aspect polarity head (MODEL_CARD.md, "Aspects: contrast pairs").

A token's last hidden state carries much of its sentence's polarity, so a polarity head trained
on sentences whose aspects mostly share one polarity answers the sentence, not the aspect: in
"屏幕很清晰，电池不耐用" or "The screen is sharp but the battery dies fast" one aspect gets the
other's side. This script writes sentences made of two training sentences of opposite polarity
joined by a connective (", but", "; ", "，但是", "，", ...), each aspect keeping its own span
(offsets moved) and its gold polarity, so the head must read the aspect's clause.

Sources (train splits only; the sentences of each file's dev share, the seeded hash draw of
`vocmine train --task aspects`, seed 42 and 0.1, are left out so no dev text is seen):
- SemEval-2014 restaurants and laptops train: sentences whose aspects are all positive or all
  negative (no conflict, no neutral), at most 30 words; pairs within one domain;
- Chinese: ccf2018 train sentences whose subjects all occur in the text and are all positive
  or all negative, and the silver set of models/aspects_zh_silver.py (reviews of at most 40
  characters: a short review's label is its aspects' side more often than a long one's).

Seeded; the same inputs give the same file.

usage: python3 models/aspects_contrast.py SHARED_CORPORA ZH_SILVER.jsonl OUT.jsonl [PAIRS_PER_SET [ZH_PAIRS [NEUTRAL]]]
"""
import json
import random
import sys

MASK = (1 << 64) - 1


def draw(seed):
    """rng::Rng::new(seed).next_f64() (SplitMix64)."""
    z = ((seed ^ 0x9E3779B97F4A7C15) + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


def fnv(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def in_dev(text, seed=42, share=0.1):
    return draw(seed ^ fnv(text)) < share


def read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def placed(row):
    """The row's aspects as (from, to, term, polarity, opinion span or None), or None where one
    cannot be placed."""
    text, out = row["text"], []
    for a in row.get("aspects") or []:
        term = a.get("term") or a.get("aspect")
        if a.get("from") is not None and text[a["from"] : a["to"]] == term:
            f, t = a["from"], a["to"]
        elif a.get("from") is not None:
            # a few SemEval laptop offsets miss their words: the nearest occurrence, as the loader
            hits = [i for i in range(len(text)) if text.startswith(term, i)]
            if not hits:
                return None
            f = min(hits, key=lambda i: abs(i - a["from"]))
            t = f + len(term)
        else:
            f = text.find(term)
            if f < 0:
                return None
            t = f + len(term)
        op = None
        if a.get("opinion"):
            o = text.find(a["opinion"])
            if o >= 0:
                op = (o, o + len(a["opinion"]), a["opinion"])
        out.append((f, t, term, a["polarity"], op))
    return out or None


def polar(rows, max_len, words):
    """Rows whose aspects all share one side, positive or negative, by that side."""
    by = {"positive": [], "negative": [], "neutral": []}
    for r in rows:
        text = r["text"].strip()
        if r["text"] != text or in_dev(text):
            continue
        size = len(text.split()) if words else len(text)
        if size > max_len:
            continue
        asp = placed(r)
        if not asp:
            continue
        sides = {a[3] for a in asp}
        if len(sides) == 1 and next(iter(sides)) in by:
            by[next(iter(sides))].append((text, asp))
    return by


EN_JOIN = [", but ", ", but ", "; however, ", ". ", "; ", ", while "]
ZH_JOIN = ["，但是", "，不过", "，", "，可是", "；", "。", "，但"]
EN_END = ".!?"
ZH_END = "。！!？?~～，,"


def join(a, b, rng, zh):
    (ta, aa), (tb, ab) = a, b
    conn = rng.choice(ZH_JOIN if zh else EN_JOIN)
    left = ta.rstrip(ZH_END if zh else EN_END).rstrip()
    if not zh and not conn.startswith(". ") and len(tb) > 1 and tb[1].islower():
        tb = tb[0].lower() + tb[1:]
    text = left + conn + tb
    shift = len(left) + len(conn)
    aspects = []
    for (f, t, term, pol, op), d in [(x, 0) for x in aa] + [(x, shift) for x in ab]:
        if f + d >= len(text) or t + d > len(text) or (d == 0 and t > len(left)):
            return None
        item = {"term": text[f + d : t + d], "polarity": pol, "from": f + d, "to": t + d}
        if op and (d or op[1] <= len(left)):
            item.update(opinion=op[2], opinion_from=op[0] + d, opinion_to=op[1] + d)
        aspects.append(item)
    return text, aspects


def pairs(by, n, rng, zh, tag, neutral):
    """n pairs of sentences of two different sides: positive with negative, or (with
    `neutral`) either with a neutral one, drawn as often as the sides' sentences are."""
    sides = [k for k in by if by[k] and (neutral or k != "neutral")]
    weights = [len(by[k]) for k in sides]
    out = []
    for i in range(n * 3):
        if len(out) >= n or len(sides) < 2:
            break
        p = rng.choices(sides, weights)[0]
        q = rng.choices(sides, weights)[0]
        if p == q:
            continue
        a, b = rng.choice(by[p]), rng.choice(by[q])
        j = join(a, b, rng, zh)
        if j and not in_dev(j[0]):
            out.append({"id": f"contrast-{tag}-{len(out)}", "text": j[0], "aspects": j[1]})
    return out


def main(shared, silver, dst, n=1200, zh_n=None, neutral=1, seed=42):
    rng = random.Random(seed)
    sets = []
    for name in ["restaurants", "laptops"]:
        rows = read(f"{shared}/semeval2014_absa/{name}_train.jsonl")
        sets.append((name, polar(rows, 30, True), False))
    zh = polar(read(f"{shared}/ccf2018_car_aspect/train.jsonl"), 60, False)
    s = polar(read(silver), 40, False)
    for k in zh:
        zh[k] += s[k]
    sets.append(("zh", zh, True))
    total = 0
    with open(dst, "w", encoding="utf-8") as f:
        for name, by, is_zh in sets:
            rows = pairs(by, n if not is_zh or zh_n is None else zh_n, rng, is_zh, name, neutral)
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
            total += len(rows)
            sizes = ", ".join(f"{len(v)} {k}" for k, v in by.items())
            print(f"{name}: {sizes} sentences -> {len(rows)} pairs")
    print(f"{total} pairs -> {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(x) for x in sys.argv[4:7]))
