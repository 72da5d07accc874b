"""vocmine.ray against the CLI: a local Ray instance (2 CPUs), two actors, small batches.

The first 120 comments of the sample corpus as a Ray Dataset, scored through
``map_batches(batch_format="pyarrow")`` with one model per actor: the CLI's labels,
probabilities within 1e-6. Needs ``ray[data]``; without it the test skips, saying why, unless
$CI is set (then it fails).
"""

import csv
import os
import sys

import pytest

from test_scorer import SAMPLE, _same, cli_records  # noqa: F401 (fixture)

import vocmine

try:
    import ray
    import ray.data  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise
    print("SKIP test_ray.py: ray[data] is not installed", file=sys.stderr)
    pytest.skip("ray[data] is not installed (pip install 'ray[data]')", allow_module_level=True)

pa = pytest.importorskip("pyarrow")

from vocmine import ray as vray  # noqa: E402


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_gives_the_cli_labels(ray_local, cli_records):  # noqa: F811
    with open(SAMPLE, newline="", encoding="utf-8") as f:
        rows = [{k: r[k] for k in vocmine.FIELDS} for r in csv.DictReader(f)][:120]
    rows.append({"id": "bad", "text": "   "})
    table = pa.table(
        {
            "ticket": [r["id"] for r in rows],
            "body": [r["text"] for r in rows],
            "rating": [int(r["rating"]) if r.get("rating") else None for r in rows],
        }
    )
    # three blocks, so both actors get work (a repartition's tasks would wait for the CPUs
    # the two actors hold on a 2-CPU instance)
    ds = ray.data.from_arrow([table.slice(0, 40), table.slice(40, 40), table.slice(80)])
    out = vray.score(ds, text_col="body", id_col="ticket", concurrency=2, batch_size=25)
    got = {r["id"]: r for r in out.take_all()}
    assert len(got) == 121
    assert got["bad"]["reject"].startswith("empty text")
    for r in rows[:-1]:
        rec = got[r["id"]]
        assert rec["reject"] is None, rec
        _same(rec, cli_records[r["id"]])
