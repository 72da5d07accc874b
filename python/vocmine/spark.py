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

import array
import json
import os
import sys

from . import FIELDS, Scorer

__all__ = ["score", "assign_topics", "write_run", "output_schema", "worker_scorer"]

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


def output_schema(model=None, threads=None, mask=True, embeddings=False):
    """The output columns of :func:`score` for ``model``: ``(pyarrow.Schema, StructType)``.

    Loads the model in this process (once: the cache of :func:`worker_scorer`).
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    scorer = worker_scorer(model, threads, mask)
    arrow = scorer.score_arrow(_empty_input(), embeddings=embeddings).schema
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


def _score_batch(scorer, batch, text_col, id_col, target, embeddings=False):
    """One Arrow batch scored into a Table of schema ``target``; a batch that raises is
    scored row by row so that only the row at fault is lost, as a reject."""
    import pyarrow as pa

    def one(b):
        return scorer.score_arrow(b, text_col=text_col, id_col=id_col, embeddings=embeddings)

    try:
        return one(batch).cast(target)
    except Exception:  # noqa: BLE001 - any failure must end as rejects, not a failed job
        pass
    parts = []
    for i in range(batch.num_rows):
        row = batch.slice(i, 1)
        try:
            t = one(row).cast(target)
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


def score(df, text_col="text", id_col="id", model=None, threads=None, mask=True, embeddings=False):
    """Scores the comments of a Spark DataFrame; one output row per input row.

    ``text_col`` and ``id_col`` name the text and id columns; ``time``, ``channel``,
    ``rating``, ``tier`` and ``product`` are passed on where ``df`` has them. ``threads`` is
    each worker's encoder threads (default ``spark.task.cpus``); ``mask=False`` keeps
    personal data in the text; ``embeddings=True`` adds an ``embedding`` column (array of
    float, 1.5 KB a row), which :func:`assign_topics` then uses instead of encoding every
    comment a second time. The model is loaded once per Python worker and once on the driver
    (for the schema).
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
    target, spark_schema = output_schema(model, threads, mask, embeddings)

    def fn(batches):
        scorer = worker_scorer(model, threads, mask)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            yield from _score_batch(
                scorer, batch, text_col, id_col, target, embeddings
            ).to_batches()

    return df.select(*keep).mapInArrow(fn, spark_schema)


def _write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _le_bytes(floats):
    """An ``array('f')`` as little-endian float32 bytes."""
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tobytes()


def _f32_bytes(arr):
    """A pyarrow float32 array without nulls as little-endian bytes (its data buffer)."""
    import pyarrow as pa

    arr = arr.cast(pa.float32())
    if arr.null_count:
        raise ValueError("an embedding holds nulls")
    data = arr.buffers()[1]
    raw = data.to_pybytes()[arr.offset * 4 : (arr.offset + len(arr)) * 4]
    if sys.byteorder == "big":
        a = array.array("f")
        a.frombytes(raw)
        return _le_bytes(a)
    return raw


def assign_topics(
    df,
    run_dir,
    text_col="text",
    id_col="id",
    sample=10000,
    seed=42,
    min_cluster_size=0,
    model=None,
    threads=None,
):
    """Topics for the comments of a scored DataFrame (the output of :func:`score`).

    The topics are fitted on the driver, on a seeded sample: the ``sample`` scored rows with
    the smallest ``xxhash64(id, seed)`` (all of them when there are fewer), clustered in id
    order as ``vocmine topics`` clusters a run, so the model depends on the seed and the data,
    not on the partitioning. The model is written to ``RUN/topics/model.json`` (the file
    ``vocmine topics`` writes; its sizes, terms and labels are the sample's) and broadcast; the
    workers then give every row its topic: a sampled row the one the clustering gave it, any
    other row the nearest topic whose radius holds it (-1: none). On a DataFrame of at most
    ``sample`` rows the topics and assignments are those of ``vocmine topics`` on a run of the
    same comments in id order.

    Returns ``df`` with two more columns: ``topic`` (long; -1 for no topic, null for a row
    with a ``reject`` reason) and ``topic_label``. ``text_col`` must hold the scored (masked)
    text, as ``score`` returns it. Where ``df`` has the ``embedding`` column of
    ``score(..., embeddings=True)`` the comments are not encoded again (the sample's and every
    worker's embeddings are read from it); otherwise each one is encoded once more, which
    costs about as much as scoring it.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    cols = df.columns
    for c in (text_col, id_col):
        if c not in cols:
            raise ValueError("no column %r (columns: %s)" % (c, ", ".join(cols)))
    for c in ("topic", "topic_label"):
        if c in cols:
            raise ValueError("the DataFrame already has a %r column" % c)
    if threads is None:
        threads = _default_threads(df)
    if model is not None:
        model = os.path.abspath(str(model))
    ok = df.where(F.col(text_col).isNotNull())
    if "reject" in cols:
        ok = ok.where(F.col("reject").isNull())
    key = F.col(id_col).cast("string")
    has_emb = "embedding" in cols
    has_sent = "sentiment" in cols
    wanted = [key.alias("id"), F.col(text_col).alias("text")]
    if has_emb:
        wanted.append(F.col("embedding"))
    if has_sent:
        # The subject view removes the predicted sentiment's directions (as `vocmine topics`).
        wanted.append(F.col("sentiment.label").alias("sentiment_label"))
    picked = (
        ok.select(*wanted)
        .orderBy(F.xxhash64(F.col("id"), F.lit(int(seed))), F.col("id"))
        .limit(int(sample))
        .collect()
    )
    picked.sort(key=lambda r: r["id"])
    ids = [r["id"] for r in picked]
    texts = [r["text"] for r in picked]
    if len(set(ids)) != len(ids):
        raise ValueError("ids are not unique in column %r: give each row its own id" % id_col)
    embs = None
    if has_emb:
        flat = array.array("f")
        for r in picked:
            flat.extend(r["embedding"])
        embs = _le_bytes(flat)
    scorer = worker_scorer(model, threads, True)
    sentiment = [r["sentiment_label"] or "" for r in picked] if has_sent else None
    model_json, labels = scorer._native.fit_topics(
        ids, texts, int(seed), int(min_cluster_size), embs, sentiment
    )
    topics_dir = os.path.join(str(run_dir), "topics")
    os.makedirs(topics_dir, exist_ok=True)
    _write_atomic(os.path.join(topics_dir, "model.json"), model_json)
    names = {t["id"]: t["label"] for t in json.loads(model_json)["topics"]}
    fitted = dict(zip(ids, labels))
    try:
        shared = df.sparkSession.sparkContext.broadcast((model_json, fitted, names))
        value = lambda: shared.value  # noqa: E731
    except Exception:  # noqa: BLE001 - Spark Connect: the closure carries it
        carried = (model_json, fitted, names)
        value = lambda: carried  # noqa: E731
    has_reject = "reject" in cols
    out_schema = StructType(
        df.schema.fields
        + [StructField("topic", LongType(), True), StructField("topic_label", StringType(), True)]
    )

    def fn(batches):
        import pyarrow as pa

        mj, known, nm = value()
        scorer = worker_scorer(model, threads, True)
        for batch in batches:
            n = batch.num_rows
            if n == 0:
                continue
            bids = batch.column(id_col).to_pylist()
            btexts = batch.column(text_col).to_pylist()
            rejected = batch.column("reject").to_pylist() if has_reject else [None] * n
            topic = [None] * n
            todo = []
            for i in range(n):
                if rejected[i] is not None or btexts[i] is None:
                    continue
                t = known.get(str(bids[i]))
                if t is None:
                    todo.append(i)
                else:
                    topic[i] = t
            if todo:
                e = None
                if has_emb:
                    flat = batch.column("embedding").take(pa.array(todo, pa.int64())).flatten()
                    e = _f32_bytes(flat)
                got = scorer._native.assign_topics(mj, [btexts[i] for i in todo], e)
                for i, t in zip(todo, got):
                    topic[i] = t
            label = [None if t is None else nm.get(t, "") for t in topic]
            yield pa.RecordBatch.from_arrays(
                list(batch.columns) + [pa.array(topic, pa.int64()), pa.array(label, pa.string())],
                names=list(batch.schema.names) + ["topic", "topic_label"],
            )

    return df.mapInArrow(fn, out_schema)


def write_run(df, run_dir, mode="overwrite", keep_embeddings=False):
    """Writes the scored rows of ``df`` (from :func:`score`, with or without the columns of
    :func:`assign_topics`) as ``RUN/scored.parquet``, a folder of part files, and the rejected
    rows as ``RUN/rejects.parquet``, so that the command line works on the run:
    ``vocmine index RUN``, ``vocmine search RUN ...`` and ``vocmine report RUN`` read the
    records (and their ``topic`` columns) from it. The ``embedding`` column is dropped unless
    ``keep_embeddings`` (1.5 KB a row). Returns the paths written.
    """
    from pyspark.sql import functions as F

    run_dir = str(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    scored_path = os.path.join(run_dir, "scored.parquet")
    rejects_path = os.path.join(run_dir, "rejects.parquet")
    if "embedding" in df.columns and not keep_embeddings:
        df = df.drop("embedding")
    extra = [c for c in ("line", "field", "reject") if c in df.columns]
    if "reject" in df.columns:
        # two outputs from one computation: kept (memory, then disk) so nothing is scored twice
        from pyspark import StorageLevel

        kept = df.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            kept.where(F.col("reject").isNull()).drop(*extra).write.mode(mode).parquet(
                scored_path
            )
            rejects = [c for c in ("id", "line", "field", "reject") if c in df.columns]
            kept.where(F.col("reject").isNotNull()).select(*rejects).write.mode(mode).parquet(
                rejects_path
            )
        finally:
            kept.unpersist()
    else:
        df.write.mode(mode).parquet(scored_path)
    return scored_path, rejects_path
