"""vocmine.spark against the CLI: a real SparkSession in local mode (local[2]).

The sample corpus is written as Parquet, read by Spark and scored on mapInArrow; the labels
must be the CLI's on the same Parquet file (`vocmine score X.parquet`), probabilities within
1e-6, with 1 and 3 partitions and with Arrow batches of 32 and 1000 records. Needs pyspark and
Java 17; without them the tests skip, saying why, unless $CI is set (then they fail).
Needs the vocmine binary of the same checkout, as test_scorer.py does.
"""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from test_scorer import ROOT, SAMPLE, _binary, _same

import vocmine


def _spark_missing():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install pyspark)"
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        return "no java on PATH (Debian: apt-get install openjdk-17-jre-headless)"
    return None


_MISSING = _spark_missing()
if _MISSING and not os.environ.get("CI"):
    print("SKIP test_spark.py: " + _MISSING, file=sys.stderr)
    pytest.skip(_MISSING, allow_module_level=True)

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from vocmine import spark as vspark  # noqa: E402


@pytest.fixture(scope="module")
def session():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    s = (
        SparkSession.builder.master("local[2]")
        .appName("vocmine-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "3")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def sample_parquet(tmp_path_factory):
    """corpora/sample/comments.csv as Parquet: strings, the rating as an integer."""
    with open(SAMPLE, newline="", encoding="utf-8") as f:
        rows = [{k: r[k] for k in vocmine.FIELDS} for r in csv.DictReader(f)]
    cols = {k: [r[k] or None for r in rows] for k in vocmine.FIELDS}
    cols["rating"] = pa.array([int(v) if v else None for v in cols["rating"]], pa.int64())
    path = tmp_path_factory.mktemp("pq") / "comments.parquet"
    pq.write_table(pa.table(cols), path)
    return path


@pytest.fixture(scope="module")
def cli_records(sample_parquet, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    subprocess.run(
        [_binary(), "score", str(sample_parquet), "--out", str(out), "--no-index",
         "--no-embeddings"],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    with open(out / "scored.jsonl", encoding="utf-8") as f:
        return {r["id"]: r for r in map(json.loads, f)}


def _records(df):
    return {r["id"]: r.asDict(recursive=True) for r in df.collect()}


@pytest.mark.parametrize("partitions,batch", [(1, 1000), (3, 32), (1, 32), (3, 1000)])
def test_spark_gives_the_cli_labels(session, sample_parquet, cli_records, partitions, batch):
    session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch))
    df = session.read.parquet(str(sample_parquet)).repartition(partitions)
    assert df.rdd.getNumPartitions() == partitions
    out = vspark.score(df, threads=1)
    assert out.schema["sentiment"].dataType["probs"].dataType.names == sorted(
        cli_records["s0001"]["sentiment"]["probs"]
    )
    got = _records(out)
    assert len(got) == len(cli_records) == 300
    for id_, cli in cli_records.items():
        rec = got[id_]
        assert rec["reject"] is None, rec
        _same(rec, cli)


def test_bad_rows_are_rejects_and_the_job_goes_on(session):
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType(
        [
            StructField("ticket", StringType()),
            StructField("body", StringType()),
            StructField("rating", StringType()),
        ]
    )
    rows = [
        ("a", "物流太慢了，等了一个星期", "1"),
        ("b", None, None),
        ("c", "   ", None),
        ("d", "fine", "five"),
        ("e", "Refund took 3 weeks, call me at 13812345678", "2"),
    ]
    df = session.createDataFrame(rows, schema).repartition(2)
    got = _records(vspark.score(df, text_col="body", id_col="ticket"))
    assert sorted(got) == ["a", "b", "c", "d", "e"]
    assert got["a"]["reject"] is None and got["a"]["sentiment"]["label"] == "negative"
    assert got["b"]["field"] == "text" and got["b"]["reject"]
    assert got["b"]["sentiment"] is None
    assert got["c"]["reject"].startswith("empty text")
    assert got["d"]["field"] == "rating" and "not a number" in got["d"]["reject"]
    assert got["e"]["reject"] is None
    assert "13812345678" not in got["e"]["text"] and "PHONE" in got["e"]["masked"]


def test_a_missing_id_column_is_named_before_the_job_runs(session):
    df = session.createDataFrame([("x",)], ["text"])
    with pytest.raises(ValueError, match="no id column 'id'"):
        vspark.score(df)


def test_one_scorer_per_process_and_settings():
    a = vspark.worker_scorer(None, 1, True)
    assert vspark.worker_scorer(None, 1, True) is a
    assert vspark.worker_scorer(None, 1, False) is not a


@pytest.fixture(scope="module")
def cli_topics_run(sample_parquet, tmp_path_factory):
    """The CLI's run of the sample with topics, an index and a report."""
    out = tmp_path_factory.mktemp("cli_topics")
    for args in (["score", str(sample_parquet), "--out", str(out)], ["topics", str(out)],
                 ["report", str(out)]):
        subprocess.run([_binary()] + args, check=True, cwd=ROOT, capture_output=True)
    return out


def _topics(model_path):
    with open(model_path, encoding="utf-8") as f:
        return [(t["id"], t["label"], t["size"]) for t in json.load(f)["topics"]]


@pytest.mark.parametrize("partitions,embeddings", [(1, False), (3, False), (3, True)])
def test_topics_fitted_on_the_driver_are_the_cli_topics(
    session, sample_parquet, cli_topics_run, tmp_path, partitions, embeddings
):
    # 300 rows under the sample size: the driver clusters all of them, in id order (the file's
    # order), so the model and every assignment are those of `vocmine topics`; with the
    # embeddings `score` kept, nothing is encoded again and the answer is the same
    df = session.read.parquet(str(sample_parquet)).repartition(partitions)
    scored = vspark.score(df, threads=1, embeddings=embeddings).cache()
    if embeddings:
        first = scored.where("id = 's0001'").collect()[0]["embedding"]
        assert len(first) == 384 and abs(sum(x * x for x in first) - 1.0) < 1e-4
    got = _records(vspark.assign_topics(scored, tmp_path, threads=1))
    cli_model = _topics(cli_topics_run / "topics" / "model.json")
    assert len(cli_model) >= 2, cli_model
    assert _topics(tmp_path / "topics" / "model.json") == cli_model
    with open(cli_topics_run / "topics" / "assignments.jsonl", encoding="utf-8") as f:
        cli = {a["id"]: (a["topic"], a["label"]) for a in map(json.loads, f)}
    assert len(cli) == 300
    assert {i: (r["topic"], r["topic_label"]) for i, r in got.items()} == cli
    # the scored columns pass through untouched
    assert got["s0001"]["sentiment"]["label"] == "negative"


def test_a_sampled_fit_is_seeded_and_assigns_every_row(session, sample_parquet, tmp_path):
    runs = []
    for partitions in (1, 3):
        df = session.read.parquet(str(sample_parquet)).repartition(partitions)
        scored = vspark.score(df, threads=1).cache()
        run = tmp_path / ("p%d" % partitions)
        out = vspark.assign_topics(scored, run, sample=120, seed=7, min_cluster_size=5, threads=1)
        runs.append(({i: r["topic"] for i, r in _records(out).items()},
                     (run / "topics" / "model.json").read_text(encoding="utf-8")))
    (a, model_a), (b, model_b) = runs
    assert model_a == model_b and a == b
    model = json.loads(model_a)
    # the model's sizes count the sample's members only; every row has a topic or -1
    assert sum(t["size"] for t in model["topics"]) <= 120
    known = {t["id"] for t in model["topics"]} | {-1}
    assert len(a) == 300 and set(a.values()) <= known
    assert sum(1 for t in a.values() if t >= 0) > sum(t["size"] for t in model["topics"])
    other = tmp_path / "seed8"
    scored = vspark.score(session.read.parquet(str(sample_parquet)), threads=1)
    vspark.assign_topics(scored, other, sample=120, seed=8, min_cluster_size=5, threads=1)
    assert (other / "topics" / "model.json").read_text(encoding="utf-8") != model_a


def test_the_cli_indexes_and_reports_a_spark_run(
    session, sample_parquet, cli_topics_run, tmp_path
):
    from pyspark.sql import functions as F

    df = session.read.parquet(str(sample_parquet))
    bad = session.createDataFrame([("bad1", None)], "id string, text string")
    df = df.unionByName(bad, allowMissingColumns=True).repartition(3)
    scored = vspark.score(df, threads=1).cache()
    run = tmp_path / "run"
    vspark.write_run(vspark.assign_topics(scored, run, threads=1), run)
    assert session.read.parquet(str(run / "rejects.parquet")).select("id").collect()[0][0] == "bad1"
    assert session.read.parquet(str(run / "scored.parquet")).where(F.col("id") == "bad1").count() == 0
    b = _binary()
    idx = subprocess.run([b, "index", str(run)], check=True, cwd=ROOT, capture_output=True, text=True)
    assert "300 documents" in idx.stdout + idx.stderr

    def hits(r, q):
        p = subprocess.run([b, "search", str(r), q, "--json", "--limit", "50"], check=True,
                           cwd=ROOT, capture_output=True, text=True)
        return {h["id"]: (h["sentiment"], h.get("topic"), h.get("topic_label"))
                for h in json.loads(p.stdout)["hits"]}

    for q in ("退款", "delivery", "客服"):
        spark_hits = hits(run, q)
        assert spark_hits and spark_hits == hits(cli_topics_run, q), q
    subprocess.run([b, "report", str(run)], check=True, cwd=ROOT, capture_output=True)
    with open(run / "report.json", encoding="utf-8") as f:
        got = json.load(f)
    with open(cli_topics_run / "report.json", encoding="utf-8") as f:
        cli = json.load(f)
    assert got["comments"] == cli["comments"] == 300
    for key in ("sentiment", "alerts", "journey", "timeline"):
        assert got[key] == cli[key], key
    # the same pain points and topics; sums differ in the last digits (rows in another order)
    for key in ("pain_points", "topics"):
        assert len(got[key]) == len(cli[key]) > 0
        for g, c in zip(got[key], cli[key]):
            for f_, v in c.items():
                if isinstance(v, float):
                    assert g[f_] == pytest.approx(v, rel=1e-9), (key, f_)
                else:
                    assert g[f_] == v, (key, f_)
