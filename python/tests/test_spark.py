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
