#!/usr/bin/env python3
"""Spark local[2] (vocmine.spark.score) against `vocmine score --threads 2`, side by side.

    python benches/spark_vs_cli.py [--n 20000] [--rounds 1] [--out benches/results/X.md]

Takes the first N texts of online_shopping_10_cats/train.jsonl (../shared/corpora, texts and
ids only), writes them as one Parquet file, then, in each round: the CLI on that file (2
threads, no index, no embeddings, scored.parquet written), and Spark local[2] reading the same
file in 2 partitions, scoring on mapInArrow with one single-threaded model per Python worker
and writing Parquet. Both times are wall clock from start to the output on disk, model loading
included; the SparkSession (JVM) is started once before the first round and not timed. Peak
RSS is sampled every 0.2 s from /proc (psutil) for the CLI process, each Spark Python worker
and the JVM. The labels of both outputs are compared row by row. Needs the release binary
($VOCMINE_BIN or target/release/vocmine), pyspark, psutil and the vocmine package.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "online_shopping_10_cats" / "train.jsonl"


def first_texts(n):
    """The ids and texts of the first ``n`` non-empty comments of the corpus."""
    ids, texts = [], []
    with open(CORPUS, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get("text"):
                ids.append(r["id"])
                texts.append(r["text"])
            if len(ids) == n:
                break
    return ids, texts


def cpu_model():
    """The CPU's model name as lscpu gives it."""
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")


def binary():
    for c in (
        os.environ.get("VOCMINE_BIN"),
        os.environ.get("CARGO_TARGET_DIR") and os.path.join(os.environ["CARGO_TARGET_DIR"], "release", "vocmine"),
        str(ROOT / "target" / "release" / "vocmine"),
    ):
        if c and os.path.exists(c):
            return c
    sys.exit("no vocmine binary: cargo build --release, or set VOCMINE_BIN")


class Peak:
    """Samples RSS of a set of processes (a callable giving them) until stopped."""

    def __init__(self, procs):
        self.procs = procs
        self.peak = {}  # pid -> (label, max rss bytes)
        self.total = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            tot = 0
            for label, p in self.procs():
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                tot += rss
                old = self.peak.get(p.pid, (label, 0))[1]
                self.peak[p.pid] = (label, max(old, rss))
            self.total = max(self.total, tot)
            self._stop.wait(0.2)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()


def spark_procs():
    """The JVM and the Python workers under this driver."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "java" in p.name() or "java" in cmd.split(" ")[0]:
            out.append(("jvm", p))
        elif "pyspark.daemon" in cmd or "pyspark/daemon" in cmd or "pyspark.worker" in cmd:
            out.append(("python worker", p))
    return out


def mib(b):
    return b / (1 << 20)


def labels_of(rows):
    return {r["id"]: (r["sentiment"] or {}).get("label") for r in rows}


def run_cli(bin_, src, out):
    cmd = [bin_, "score", str(src), "--out", str(out), "--threads", "2", "--no-index",
           "--no-embeddings", "--output-format", "parquet"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pp = psutil.Process(p.pid)
    with Peak(lambda: [("cli", pp)]) as peak:
        _, err = p.communicate()
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("vocmine score failed: " + err.decode(errors="replace")[-2000:])
    rows = pq.read_table(out / "scored.parquet", columns=["id", "sentiment"]).to_pylist()
    return dt, peak.total, labels_of(rows)


def run_spark(session, src, out):
    from vocmine import spark as vspark

    t0 = time.perf_counter()
    with Peak(spark_procs) as peak:
        df = session.read.parquet(str(src)).repartition(2)
        vspark.score(df, threads=1).write.mode("overwrite").parquet(str(out))
    dt = time.perf_counter() - t0
    workers = [v for v in peak.peak.values() if v[0] == "python worker"]
    jvm = [v for v in peak.peak.values() if v[0] == "jvm"]
    rows = pq.read_table(str(out), columns=["id", "sentiment", "reject"]).to_pylist()
    rejects = sum(1 for r in rows if r["reject"] is not None)
    return dt, workers, jvm, labels_of(rows), rejects


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    bin_ = binary()

    ids, texts = first_texts(args.n)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="vocmine-spark-bench-"))
    src = tmp / "comments.parquet"
    pq.write_table(pa.table({"id": ids, "text": texts}), src)
    chars = sum(len(t) for t in texts)

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("vocmine-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")

    results = []
    for i in range(args.rounds):
        cli_t, cli_rss, cli_labels = run_cli(bin_, src, tmp / ("cli%d" % i))
        sp_t, workers, jvm, sp_labels, rejects = run_spark(session, src, tmp / ("spark%d" % i))
        same = sum(1 for k, v in cli_labels.items() if sp_labels.get(k) == v)
        results.append((cli_t, cli_rss, sp_t, workers, jvm, same, len(cli_labels), rejects))
        print("round %d: cli %.1fs (%.1f/s), spark %.1fs (%.1f/s), overhead %+.1f%%, same labels %d/%d"
              % (i + 1, cli_t, args.n / cli_t, sp_t, args.n / sp_t, (sp_t / cli_t - 1) * 100,
                 same, len(cli_labels)), flush=True)
    session.stop()

    model = cpu_model()
    load = os.getloadavg()
    import pyspark

    day = datetime.date.today().strftime("%Y%m%d")
    out = pathlib.Path(args.out or ROOT / "benches" / "results" / ("spark_vs_cli_%s.md" % day))
    lines = [
        "# Spark local[2] against the CLI (`benches/spark_vs_cli.py`)",
        "",
        "%d comments (online_shopping_10_cats train.jsonl, first %d texts, %d characters), one "
        "Parquet file. CLI: `vocmine score X.parquet --threads 2 --no-index --no-embeddings "
        "--output-format parquet`. Spark: `local[2]`, 2 partitions, `vocmine.spark.score(df, "
        "threads=1)` (one single-threaded model per Python worker), written as Parquet. Wall "
        "clock to the output on disk, model loading included; the JVM was started before and "
        "is not timed." % (args.n, args.n, chars),
        "",
        "CPU: %s, %d cores (`nproc`); Python %s, pyspark %s, Java from PATH. Load average at "
        "the end: %.2f %.2f %.2f (the benchmark's own processes count about 2 on 2 cores; more "
        "means something else ran beside it); the ratio within a round is the figure."
        % (model, os.cpu_count(), platform.python_version(), pyspark.__version__, *load),
        "",
        "| round | CLI s | CLI comments/s | Spark s | Spark comments/s | Spark overhead | CLI peak RSS MiB | Spark worker peak RSS MiB (each) | JVM peak RSS MiB | same sentiment labels | Spark rejects |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, (cli_t, cli_rss, sp_t, workers, jvm, same, n, rejects) in enumerate(results):
        lines.append(
            "| %d | %.1f | %.1f | %.1f | %.1f | %+.1f%% | %.0f | %s | %s | %d/%d | %d |"
            % (i + 1, cli_t, args.n / cli_t, sp_t, args.n / sp_t, (sp_t / cli_t - 1) * 100,
               mib(cli_rss), ", ".join("%.0f" % mib(w[1]) for w in workers) or "-",
               ", ".join("%.0f" % mib(j[1]) for j in jvm) or "-", same, n, rejects)
        )
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("wrote", out)


if __name__ == "__main__":
    main()
