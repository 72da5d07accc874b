"""The Python package against the CLI on the shipped sample corpus.

Needs the vocmine binary of the same checkout: $VOCMINE_BIN, else
$CARGO_TARGET_DIR/release/vocmine, else target/release/vocmine.
"""

import csv
import json
import os
import pathlib
import subprocess
import threading
import time

import pytest

import vocmine

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "corpora" / "sample" / "comments.csv"


def _binary():
    cands = [os.environ.get("VOCMINE_BIN")]
    if os.environ.get("CARGO_TARGET_DIR"):
        cands.append(os.path.join(os.environ["CARGO_TARGET_DIR"], "release", "vocmine"))
    cands.append(str(ROOT / "target" / "release" / "vocmine"))
    for c in cands:
        if c and os.path.exists(c):
            return c
    pytest.fail("no vocmine binary: build it (cargo build --release) or set VOCMINE_BIN")


def _sample_rows():
    with open(SAMPLE, newline="", encoding="utf-8") as f:
        return [{k: r[k] for k in vocmine.FIELDS} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def scorer():
    return vocmine.Scorer(threads=2)


@pytest.fixture(scope="module")
def cli_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    subprocess.run(
        [_binary(), "score", str(SAMPLE), "--out", str(out), "--no-index", "--no-embeddings"],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    with open(out / "scored.jsonl", encoding="utf-8") as f:
        return {r["id"]: r for r in map(json.loads, f)}


def _same(py, cli):
    assert py["text"] == cli["text"]
    assert py["model"] == cli["model"]
    tasks = [k for k, v in cli.items() if isinstance(v, dict) and "label" in v]
    assert tasks, cli
    for t in tasks:
        assert py[t]["label"] == cli[t]["label"], (py["id"], t)
        assert py[t]["probs"].keys() == cli[t]["probs"].keys()
        for label, p in cli[t]["probs"].items():
            assert abs(py[t]["probs"][label] - p) <= 1e-6, (py["id"], t, label)


def test_score_gives_the_cli_labels_and_probabilities(scorer, cli_records):
    rows = _sample_rows()
    out = scorer.score(rows)
    assert len(out) == len(rows) == len(cli_records) == 300
    for row, rec in zip(rows, out):
        assert rec["id"] == row["id"]
        _same(rec, cli_records[row["id"]])


def test_bad_rows_come_back_as_rejects_in_order(scorer):
    out = scorer.score(
        [
            "物流太慢了，等了一个星期",
            {"id": "a", "text": None},
            {"id": "b", "text": "fine", "rating": "five"},
            42,
            {"id": "c", "text": "   "},
            {"id": "d", "text": "great", "rating": float("nan")},
        ]
    )
    assert len(out) == 6
    assert out[0]["sentiment"]["label"] == "negative"
    assert "reject" not in out[0]
    assert (out[1]["id"], out[1]["line"], out[1]["field"]) == ("a", 2, "text")
    assert (out[2]["id"], out[2]["field"]) == ("b", "rating")
    assert "not a number" in out[2]["reject"]
    assert out[3]["line"] == 4 and out[3]["reject"]
    assert out[4]["id"] == "c" and out[4]["reject"].startswith("empty text")
    assert out[5]["id"] == "d" and "reject" not in out[5] and "rating" not in out[5]
    assert scorer.score([]) == []


def test_score_arrow_matches_score(scorer, cli_records):
    pa = pytest.importorskip("pyarrow")
    rows = _sample_rows()[:40]
    table = pa.table(
        {
            "ticket": [r["id"] for r in rows],
            "body": [r["text"] for r in rows],
            "rating": [int(r["rating"]) if r["rating"] else None for r in rows],
        }
    )
    out = scorer.score_arrow(table, text_col="body", id_col="ticket")
    assert isinstance(out, pa.Table) and out.num_rows == 40
    assert out.schema.field("sentiment").type.num_fields >= 3
    labels = out.column("sentiment").combine_chunks().field("label").to_pylist()
    assert labels == [cli_records[r["id"]]["sentiment"]["label"] for r in rows]
    assert out.column("reject").null_count == 40
    probs = out.column("sentiment").combine_chunks().field("probs")
    for i, r in enumerate(rows):
        for label, p in cli_records[r["id"]]["sentiment"]["probs"].items():
            assert abs(probs.field(label)[i].as_py() - p) <= 1e-6
    assert out.column("rating").to_pylist() == [
        float(r["rating"]) if r["rating"] else None for r in rows
    ]
    batch = table.to_batches()[0]
    again = scorer.score_arrow(batch, text_col="body", id_col="ticket")
    assert again.column("id").to_pylist() == [r["id"] for r in rows]


def test_score_arrow_keeps_bad_rows_as_rejects(scorer):
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"id": ["x", "y", None], "text": ["退款太慢", None, "  "]})
    out = scorer.score_arrow(table)
    assert out.num_rows == 3
    assert out.column("reject").to_pylist()[0] is None
    assert out.column("reject").to_pylist()[1] is not None
    assert out.column("line").to_pylist() == [None, 2, 3]
    assert out.column("sentiment").null_count == 2
    # the schema is the model's whatever was scored: a table of rejects has the task columns
    none = scorer.score_arrow(pa.table({"text": pa.array([None], pa.string())}))
    assert none.schema.equals(out.schema)


def test_the_gil_is_released_while_scoring(scorer):
    texts = [r["text"] for r in _sample_rows()] * 2
    done = []
    t = threading.Thread(target=lambda: done.append(scorer.score(texts)))
    ticks = 0
    t.start()
    while t.is_alive():
        ticks += 1
        time.sleep(0.005)
    t.join()
    assert len(done[0]) == 600
    # with the GIL held for the whole call this loop could not run while it lasts
    assert ticks >= 20, ticks
