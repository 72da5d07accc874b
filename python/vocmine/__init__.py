"""vocmine: score customer comments (Chinese + English) from Python.

``Scorer(model=None, threads=None)`` loads a model folder (the one shipped in the checkout the
package was built from by default). ``Scorer.score(texts or dicts)`` returns one dict per
comment, in input order: the ``scored.jsonl`` record of ``vocmine score``, or, for a comment
that cannot be scored, ``{"id", "line", "field", "reject"}`` with the reason (never an
exception for a bad row). ``Scorer.score_arrow(table)`` does the same for a pyarrow Table or
RecordBatch and returns a pyarrow Table. The GIL is released while the model runs.
"""

import json
import math

from ._native import NativeScorer

__all__ = ["Scorer", "FIELDS"]

#: The input fields a comment may have (only ``text`` is required).
FIELDS = ("id", "text", "time", "channel", "rating", "tier", "product")


def _clean(v):
    """A value as JSON can carry it: NaN (a missing number in pandas) is null."""
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _line(c):
    if isinstance(c, str):
        obj = {"text": c}
    elif isinstance(c, dict):
        obj = {str(k): _clean(v) for k, v in c.items()}
    else:
        obj = c
    # default=str: dates, decimals and the like as text, as a CSV export shows them
    return json.dumps(obj, ensure_ascii=False, default=str, allow_nan=False)


class Scorer:
    """A loaded model that scores comments."""

    def __init__(self, model=None, threads=None, mask=True):
        self._native = NativeScorer(None if model is None else str(model), threads, mask)

    @property
    def model(self):
        """The model version written into each record."""
        return self._native.model

    @staticmethod
    def _jsonl(comments):
        lines = []
        for c in comments:
            try:
                lines.append(_line(c))
            except (TypeError, ValueError) as e:
                # not JSON at all: the native reader rejects the line with its reason
                lines.append("<unreadable: %s>" % str(e).replace("\n", " "))
        return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""

    def score(self, comments):
        """Scores texts (str) or dicts with the fields of ``FIELDS``; one dict per comment."""
        return json.loads(self._native.score_jsonl(self._jsonl(comments)))

    def score_arrow(self, table, text_col="text", id_col="id", embeddings=False):
        """Scores a pyarrow Table or RecordBatch; returns a pyarrow Table, one row per input row.

        ``text_col`` and ``id_col`` name the text and id columns; ``time``, ``channel``,
        ``rating``, ``tier`` and ``product`` are read where the table has them. Task results
        are struct columns (``sentiment.label``, ``sentiment.probs.negative``, ...), the
        columns and types of ``scored.parquet``; a row that was not scored has its id, ``line``,
        ``field`` and ``reject`` (the reason) and nulls elsewhere. With ``embeddings=True`` an
        ``embedding`` column (list of float32) holds each comment's pooled embedding, which
        topics can use without encoding the comments again. The batch comes from the native
        side through Arrow's C data interface.
        """
        import pyarrow as pa

        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        names = {text_col: "text"}
        if id_col in table.column_names:
            names[id_col] = "id"
        for f in FIELDS[2:]:
            if f in table.column_names and f not in names:
                names[f] = f
        if text_col not in table.column_names:
            raise ValueError(
                "no text column %r (columns: %s)" % (text_col, ", ".join(table.column_names))
            )
        rows = table.select(list(names)).to_pylist()
        rows = [{names[k]: v for k, v in r.items()} for r in rows]
        exported = self._native.score_jsonl_arrow(self._jsonl(rows), bool(embeddings))
        # Arrow's C data interface: pyarrow moves the batch out of the exported structs
        batch = pa.RecordBatch._import_from_c(exported.array_ptr, exported.schema_ptr)
        del exported
        return pa.Table.from_batches([batch])
