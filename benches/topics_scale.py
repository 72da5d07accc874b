#!/usr/bin/env python3
"""`vocmine topics` at scale: wall time and peak memory for 50k, 200k and 1M comments.

Encoding a million comments takes hours here, so the runs are grown from one real scored run
(`--from RUN`, scored with `--embeddings`, e.g. the 6,285 comments of online_shopping's test
split): its scored lines are repeated with new ids (`ID~k`), and each copy's embedding is the
original plus seeded Gaussian noise (sigma 0.005 a dimension, cosine ~0.995 to the original),
renormalised, so no two points coincide. `embeddings.json` is written as `score` writes it,
so `topics` takes the embeddings as kept and encodes nothing. What is timed is the whole
`vocmine topics RUN` process: reading the records, the subject view, the clustering of a
seeded sample of 10,000, the assignment of every other comment, the label words (segmentation
of every comment) and writing model.json and assignments.jsonl; peak RSS from
`/usr/bin/time -v`.

  python benches/topics_scale.py --from RUN --bin target/release/vocmine [--old OTHER_BINARY] \
      [--sizes 50000,200000,1000000] [--work /tmp/topics_scale] [--out FILE.md]

With `--old`, the other binary runs on the same grown run right after (its `topics/` folder
removed first, so both cluster from scratch), side by side in one table.

Needs numpy. The grown runs take ~2.7 KB of disk a comment (removed after each size).
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spark_vs_cli import cpu_model  # noqa: E402


def grow(src, dst, n, dim):
    lines = [line for line in open(os.path.join(src, "scored.jsonl"), encoding="utf-8") if line.strip()]
    base = np.fromfile(os.path.join(src, "embeddings.f32"), dtype="<f4").reshape(len(lines), dim)
    os.makedirs(dst, exist_ok=True)
    rng = np.random.default_rng(42)
    key = hashlib.sha256()
    with open(os.path.join(dst, "scored.jsonl"), "w", encoding="utf-8") as out, open(
        os.path.join(dst, "embeddings.f32"), "wb"
    ) as emb:
        done = 0
        copy = 0
        while done < n:
            take = min(len(lines), n - done)
            e = base[:take] + rng.normal(0, 0.005, size=(take, dim)).astype("<f4")
            e /= np.linalg.norm(e, axis=1, keepdims=True)
            e.astype("<f4").tofile(emb)
            for line in lines[:take]:
                v = json.loads(line)
                v["id"] = f"{v['id']}~{copy}"
                key.update(f"{v['id']}\t{v['text_hash']}\t{v['model']}\n".encode())
                out.write(json.dumps(v, ensure_ascii=False) + "\n")
            done += take
            copy += 1
    with open(os.path.join(dst, "embeddings.json"), "w") as f:
        json.dump({"version": 1, "dim": dim, "rows": n, "key": key.hexdigest()}, f, indent=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="src", required=True)
    ap.add_argument("--bin", default="target/release/vocmine")
    ap.add_argument("--old", help="a second binary, run on the same grown runs")
    ap.add_argument("--sizes", default="50000,200000,1000000")
    ap.add_argument("--work", default="/tmp/topics_scale")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--out")
    a = ap.parse_args()
    dim = json.load(open(os.path.join(a.src, "embeddings.json")))["dim"]
    rows = []
    for n in [int(s) for s in a.sizes.split(",")]:
        dst = os.path.join(a.work, f"run{n}")
        shutil.rmtree(dst, ignore_errors=True)
        t = time.time()
        grow(a.src, dst, n, dim)
        built = time.time() - t
        for name, binary in [("new", a.bin)] + ([("old", a.old)] if a.old else []):
            shutil.rmtree(os.path.join(dst, "topics"), ignore_errors=True)
            t = time.time()
            p = subprocess.run(
                ["/usr/bin/time", "-v", binary, "topics", dst, "--threads", a.threads],
                capture_output=True,
                text=True,
            )
            wall = time.time() - t
            if p.returncode != 0:
                sys.exit(f"{binary} topics failed on {n}:\n{p.stdout}\n{p.stderr}")
            rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
            first = p.stdout.splitlines()[0]
            row = (n, name, wall, rss / 1024 / 1024, first)
            rows.append(row)
            print(f"{n} {name}: {wall:.1f} s, peak RSS {row[3]:.2f} GiB (grown in {built:.0f} s): {first}", flush=True)
        shutil.rmtree(dst, ignore_errors=True)
    lines = [
        f"# `vocmine topics` at scale ({time.strftime('%Y-%m-%d')})",
        "",
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; `--threads {a.threads}`. Command: "
        f"`python benches/topics_scale.py --from {a.src} --sizes {a.sizes}"
        + (f" --old {a.old}" if a.old else "")
        + "`.",
        "",
        "| comments | binary | wall s | peak RSS GiB | what topics printed |",
        "|---|---|---|---|---|",
    ] + [f"| {n:,} | {b} | {w:.1f} | {r:.2f} | {f} |" for n, b, w, r, f in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        open(a.out, "w", encoding="utf-8").write(text)


if __name__ == "__main__":
    main()
