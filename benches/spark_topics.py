#!/usr/bin/env python3
"""The cost of topics in a Spark job (vocmine.spark.assign_topics), side by side in one run.

    python benches/spark_topics.py [--n 3000] [--out benches/results/X.md]

Takes the first N texts of online_shopping_10_cats/train.jsonl (../shared/corpora), writes
them as one Parquet file and runs three jobs in Spark local[2] (2 partitions, one
single-threaded model per Python worker), each to a run folder written by `write_run`:

- `score`: score only;
- `score + topics (embeddings kept)`: `score(..., embeddings=True)`, cached, then
  `assign_topics` reads the embeddings (no second encoding);
- `score + topics (encoded again)`: `score`, cached, then `assign_topics` encodes each comment
  once more.

Wall clock from the read to the run folder on disk; the SparkSession is started before and not
timed, and a warm-up job loads the models in the workers first. The assignments of the two
topic jobs are compared row by row. Needs pyspark and the vocmine package.
"""

import argparse
import datetime
import os
import pathlib
import platform
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from spark_vs_cli import ROOT, cpu_model, first_texts  # noqa: E402  (the same corpus and CPU name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from pyspark.sql import SparkSession

    from vocmine import spark as vspark

    _, texts = first_texts(args.n)
    work = pathlib.Path(tempfile.mkdtemp(prefix="spark_topics_"))
    src = work / "comments.parquet"
    pq.write_table(pa.table({"id": ["c%06d" % i for i in range(len(texts))], "text": texts}), src)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    # warm-up: the workers load their models
    vspark.score(session.read.parquet(str(src)).limit(50).repartition(2), threads=1).count()

    def job(name, embeddings, topics):
        run = work / name
        t0 = time.perf_counter()
        df = session.read.parquet(str(src)).repartition(2)
        scored = vspark.score(df, threads=1, embeddings=embeddings)
        if topics:
            scored = scored.cache()
            scored = vspark.assign_topics(scored, run, threads=1)
        vspark.write_run(scored, run)
        dt = time.perf_counter() - t0
        assigned = None
        if topics:
            t = pq.read_table(str(run / "scored.parquet"), columns=["id", "topic"]).to_pylist()
            assigned = {r["id"]: r["topic"] for r in t}
        session.catalog.clearCache()
        return dt, assigned

    rows = [
        ("score", *job("score", False, False)),
        ("score + topics (embeddings kept)", *job("kept", True, True)),
        ("score + topics (encoded again)", *job("again", False, True)),
    ]
    session.stop()
    base = rows[0][1]
    same = sum(1 for k, v in rows[1][2].items() if rows[2][2].get(k) == v)
    model = cpu_model()
    load = os.getloadavg()
    day = datetime.date.today().strftime("%Y%m%d")
    out = pathlib.Path(args.out or ROOT / "benches" / "results" / ("spark_topics_%s.md" % day))
    lines = [
        "# Topics in a Spark job (`benches/spark_topics.py`)",
        "",
        "%d comments (online_shopping_10_cats train.jsonl, first %d), Spark `local[2]`, 2 "
        "partitions, one single-threaded model per Python worker; each job from the read to "
        "the run folder written by `write_run`; models loaded by a warm-up job first." % (args.n, args.n),
        "",
        "CPU: %s, %d cores; Python %s; load average at the end %.2f %.2f %.2f (the "
        "benchmark's own processes count about 2)." % (model, os.cpu_count(), platform.python_version(), *load),
        "",
        "| job | seconds | comments/s | vs score only |",
        "|---|---|---|---|",
    ]
    for name, dt, _ in rows:
        lines.append("| %s | %.1f | %.1f | %.2fx |" % (name, dt, args.n / dt, dt / base))
    lines += ["", "Same topic for %d of %d comments in the two topic jobs." % (same, len(rows[1][2]))]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print("wrote", out)


if __name__ == "__main__":
    main()
