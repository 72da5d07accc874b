"""Scoring a Spark DataFrame with vocmine, one model per Python worker.

``score(df, text_col="text", id_col="id", model=None, threads=None)`` returns a DataFrame with
one row per input row: the columns ``Scorer.score_arrow`` gives (those of ``scored.parquet``:
``id``, ``text`` (masked), ``lang``, ..., one struct per task such as ``sentiment.label`` and
``sentiment.probs.negative``) and ``line``, ``field``, ``reject`` for a row that was not
scored. It runs on ``DataFrame.mapInArrow``: each Python worker loads the model once (a
module-level cache keyed by model, threads and masking, kept across tasks while Spark reuses
the worker, its default) and scores every Arrow batch of its partitions with it.

A bad row is a row with a reject reason, never an exception that fails the job: a missing or
non-string text, an unreadable rating, an empty text after normalisation, or, if scoring a
whole batch ever raised, each of the batch's rows scored on its own and the one that raises
rejected with the error. ``line`` in a reject is the row's 1-based position in its Arrow batch
(Spark does not tell a worker where its batch lies in the DataFrame); ``id`` names the row.

Ids: each row needs its own id (``id_col``, a string or integer column). Duplicates are only
caught within one Arrow batch, as the CLI catches them within a run; give Spark unique ids
(``F.monotonically_increasing_id()`` where the data has none).

The output schema is fixed before the job runs: the driver loads the model once to read it
(every head's task and labels are columns whatever rows a batch holds). Unsigned integers
(``n_tokens``, ``line``) become Spark's ``long``. ``model`` must be a path the workers can
read (the shipped model of the installed package by default).
"""

import os

from . import FIELDS, Scorer

__all__ = ["score", "output_schema", "worker_scorer"]

# One Scorer per (model, threads, mask) in this Python process: a Spark Python worker keeps it
# across batches and, with spark.python.worker.reuse (the default), across tasks.
_SCORERS = {}


def worker_scorer(model=None, threads=None, mask=True):
    """The Scorer of this process for (model, threads, mask), loaded on first use."""
    key = (model, threads, mask)
    s = _SCORERS.get(key)
    if s is None:
        s = Scorer(model=model, threads=threads, mask=mask)
        _SCORERS[key] = s
    return s


def _sparkable_type(t):
    """The Arrow type Spark can hold for ``t``: unsigned integers as int64, nested types
    converted field by field."""
    import pyarrow as pa

    if pa.types.is_unsigned_integer(t):
        return pa.int64()
    if pa.types.is_struct(t):
        return pa.struct(
            [pa.field(f.name, _sparkable_type(f.type), True) for f in t]
        )
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(pa.field("element", _sparkable_type(t.value_type), True))
    if pa.types.is_large_string(t):
        return pa.string()
    return t


def _sparkable_schema(schema):
    import pyarrow as pa

    return pa.schema([pa.field(f.name, _sparkable_type(f.type), True) for f in schema])


def _empty_input():
    import pyarrow as pa

    return pa.table({"text": pa.array([], pa.string()), "id": pa.array([], pa.string())})


def output_schema(model=None, threads=None, mask=True):
    """The output columns of :func:`score` for ``model``: ``(pyarrow.Schema, StructType)``.

    Loads the model in this process (once: the cache of :func:`worker_scorer`).
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    arrow = worker_scorer(model, threads, mask).score_arrow(_empty_input()).schema
    arrow = _sparkable_schema(arrow)
    return arrow, from_arrow_schema(arrow)


def _reject_rows(batch, text_col, id_col, reason, target):
    """Every row of ``batch`` as a reject carrying ``reason`` (only when scoring even one row
    raised: a failure of the scorer, not of the data)."""
    import pyarrow as pa

    n = batch.num_rows
    ids = batch.column(id_col).to_pylist() if id_col in batch.schema.names else [None] * n
    cols = {}
    for f in target:
        if f.name == "id":
            cols["id"] = pa.array([None if i is None else str(i) for i in ids], f.type)
        elif f.name == "line":
            cols["line"] = pa.array(range(1, n + 1), f.type)
        elif f.name == "field":
            cols["field"] = pa.array([text_col] * n, f.type)
        elif f.name == "reject":
            cols["reject"] = pa.array([reason] * n, f.type)
        else:
            cols[f.name] = pa.nulls(n, f.type)
    return pa.table(cols, schema=target)


def _score_batch(scorer, batch, text_col, id_col, target):
    """One Arrow batch scored into a Table of schema ``target``; a batch that raises is
    scored row by row so that only the row at fault is lost, as a reject."""
    import pyarrow as pa

    try:
        return scorer.score_arrow(batch, text_col=text_col, id_col=id_col).cast(target)
    except Exception:  # noqa: BLE001 - any failure must end as rejects, not a failed job
        pass
    parts = []
    for i in range(batch.num_rows):
        row = batch.slice(i, 1)
        try:
            t = scorer.score_arrow(row, text_col=text_col, id_col=id_col).cast(target)
            if "line" in t.column_names:
                line = pa.array([None if t["reject"][0].as_py() is None else i + 1], pa.int64())
                t = t.set_column(t.schema.get_field_index("line"), target.field("line"), line)
        except Exception as e:  # noqa: BLE001
            reason = "could not be scored: %s" % str(e).replace("\n", " ")
            t = _reject_rows(row, text_col, id_col, reason, target)
            t = t.set_column(
                t.schema.get_field_index("line"), target.field("line"), pa.array([i + 1], pa.int64())
            )
        parts.append(t)
    return pa.concat_tables(parts)


def _default_threads(df):
    """Threads per worker: ``spark.task.cpus`` (each task owns that many cores), else 1."""
    try:
        return max(1, int(df.sparkSession.sparkContext.getConf().get("spark.task.cpus", "1")))
    except Exception:  # noqa: BLE001 - Spark Connect has no SparkContext
        return 1


def score(df, text_col="text", id_col="id", model=None, threads=None, mask=True):
    """Scores the comments of a Spark DataFrame; one output row per input row.

    ``text_col`` and ``id_col`` name the text and id columns; ``time``, ``channel``,
    ``rating``, ``tier`` and ``product`` are passed on where ``df`` has them. ``threads`` is
    each worker's encoder threads (default ``spark.task.cpus``); ``mask=False`` keeps
    personal data in the text. The model is loaded once per Python worker and once on the
    driver (for the schema).
    """
    cols = df.columns
    if text_col not in cols:
        raise ValueError("no text column %r (columns: %s)" % (text_col, ", ".join(cols)))
    if id_col not in cols:
        raise ValueError(
            "no id column %r (columns: %s): give each row an id, e.g. "
            "df.withColumn(%r, F.monotonically_increasing_id().cast('string'))"
            % (id_col, ", ".join(cols), id_col)
        )
    if threads is None:
        threads = _default_threads(df)
    if model is not None:
        model = os.path.abspath(str(model))
    keep = [text_col, id_col] + [f for f in FIELDS[2:] if f in cols and f not in (text_col, id_col)]
    target, spark_schema = output_schema(model, threads, mask)

    def fn(batches):
        scorer = worker_scorer(model, threads, mask)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            yield from _score_batch(scorer, batch, text_col, id_col, target).to_batches()

    return df.select(*keep).mapInArrow(fn, spark_schema)
