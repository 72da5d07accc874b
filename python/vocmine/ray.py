"""Scoring a Ray Dataset with vocmine: one model per actor.

``score(ds, text_col="text", id_col="id", model=None, threads=1, concurrency=2,
batch_size=1000)`` runs ``Dataset.map_batches(ScoreActor, batch_format="pyarrow", ...)``:
each actor of the pool loads the model once, in its constructor, and scores every pyarrow
batch it is given with it. The rows that come back are those of ``Scorer.score_arrow`` (the
columns of ``scored.parquet`` plus ``line``, ``field``, ``reject``), one per input row; a bad
row is a row with a reject reason and a batch that raises is scored row by row, as in
``vocmine.spark``. ``line`` is the row's position in its batch.

The actors hold ``concurrency * threads`` CPUs for the whole job: on a small Ray instance
leave CPUs for the Dataset's other tasks (a ``repartition`` before the map waits for them).
"""

import os

from . import Scorer

__all__ = ["ScoreActor", "score"]


class ScoreActor:
    """A Ray Data actor: the model is loaded once, when Ray starts the actor."""

    def __init__(self, text_col="text", id_col="id", model=None, threads=1, mask=True):
        self.text_col = text_col
        self.id_col = id_col
        self.scorer = Scorer(model=model, threads=threads, mask=mask)
        self.target = None

    def __call__(self, batch):
        """Scores one pyarrow Table; returns a pyarrow Table, one row per input row."""
        from .spark import _empty_input, _score_batch, _sparkable_schema

        if self.target is None:
            # the same fixed schema for every batch: Ray concatenates the blocks
            self.target = _sparkable_schema(self.scorer.score_arrow(_empty_input()).schema)
        if batch.num_rows == 0:
            return self.target.empty_table()
        return _score_batch(self.scorer, batch, self.text_col, self.id_col, self.target)


def score(
    ds,
    text_col="text",
    id_col="id",
    model=None,
    threads=1,
    concurrency=2,
    batch_size=1000,
    mask=True,
):
    """Scores the comments of a Ray Dataset with ``concurrency`` actors of ``threads`` CPUs
    each; one output row per input row (see the module's docs)."""
    from ray.data import ActorPoolStrategy

    if model is not None:
        model = os.path.abspath(str(model))
    return ds.map_batches(
        ScoreActor,
        fn_constructor_kwargs={
            "text_col": text_col,
            "id_col": id_col,
            "model": model,
            "threads": threads,
            "mask": mask,
        },
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ActorPoolStrategy(size=concurrency),
        num_cpus=threads,
    )
