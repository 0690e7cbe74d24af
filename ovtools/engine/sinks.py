"""Streamed batch outputs: JSON Lines or Parquet, one row per input, resumable.

Rows are appended, one JSON line each and flushed, to ``<output>.partial`` while
the job runs; when it ends the finished file replaces ``<output>`` in one
``os.replace`` (a reader never sees half a file).  A job that is killed leaves
the ``.partial`` file: ``resume=True`` reads the keys (``image`` or ``scene``) of
the rows already there (dropping a half-written last line) and of a finished
``<output>``, and the run only processes the other inputs.

Formats, chosen by the suffix:

* ``.jsonl`` / ``.ndjson``: each line is a row exactly as the ``results`` /
  ``errors`` entries of ``--output`` (:mod:`ovtools.io.writers`), same field order.
* ``.parquet``: one column per row field (fixed schema per task, :func:`parquet_schema`;
  nested detections as list<struct>, masks as RLE structs), plus an ``error`` column
  (null for inputs that worked).  For segment3d, ``points_per_class``, ``instances``
  and ``seconds`` are JSON strings.  Needs pyarrow (``ovtools[ray]``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..io.writers import OutputPathError, atomic_output, check_output_path
from .records import batched, key_field

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_SCENE_JSON_FIELDS = ("points_per_class", "instances", "seconds")
_CHUNK = 10_000


def output_format(path: str | Path) -> str:
    """``"jsonl"`` or ``"parquet"`` from the output's suffix.

    Raises:
        OutputPathError: another suffix (the accepted ones are listed).
    """
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise OutputPathError(f"output {path}: give a {', '.join(FORMATS)} file for a streamed batch output")
    return fmt


def parquet_schema(task: str):
    """The Parquet schema of ``task``'s rows (a ``pyarrow.Schema``)."""
    import pyarrow as pa  # optional: Parquet output needs ovtools[ray] (pyarrow)

    size = pa.list_(pa.int64())
    if task == "segment3d":
        fields = [("scene", pa.string()), ("n_points", pa.int64()), ("n_points_processed", pa.int64()),
                  ("model", pa.string()), ("pretrained", pa.string()), ("class_names", pa.list_(pa.string())),
                  ("mode", pa.string()), ("points_per_class", pa.string()), ("n_views", pa.int64()),
                  ("seen_fraction", pa.float64()), ("instances", pa.string()), ("seconds", pa.string())]
    elif task == "classify":
        entry = pa.struct([("label", pa.string()), ("class_id", pa.int64()), ("confidence", pa.float64())])
        fields = [("image", pa.string()), ("image_size", size), ("rejected", pa.bool_()),
                  ("top_k", pa.list_(entry))]
    else:
        rle = pa.struct([("size", size), ("counts", pa.string())])
        det = pa.struct([("label", pa.string()), ("class_id", pa.int64()), ("confidence", pa.float64()),
                         ("xyxy", pa.list_(pa.float64())), ("segmentation", rle), ("area", pa.int64())])
        fields = [("image", pa.string()), ("image_size", size), ("detections", pa.list_(det))]
    return pa.schema(fields + [("error", pa.string())])


def _parquet_row(task: str, row: dict) -> dict:
    if task != "segment3d":
        return row
    return {k: json.dumps(v) if k in _SCENE_JSON_FIELDS and v is not None else v for k, v in row.items()}


def read_jsonl_keys(path: Path, key: str, repair: bool = False, result_field: str | None = None) -> set[str]:
    """Keys of the rows of a JSON Lines file; with ``repair`` a half-written *last* line is cut off.

    Args:
        path: the file.
        key: the field naming a row's input (``"image"`` or ``"scene"``).
        repair: cut a last line that is not a complete row (a run stopped while writing it).
        result_field: a field every result row (one without ``"error"``) of this task has
            (``"detections"``, ``"top_k"``, ``"points_per_class"``): rows of another task are refused.

    Raises:
        ValueError: a line other than the last is not a row of this output, or a row belongs to another
            task (the file and line are named; nothing is changed).
    """
    keys: set[str] = set()
    good_end = 0
    lines = path.read_bytes().splitlines(keepends=True)
    for n, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or key not in row:
                raise ValueError(f"not an ovtools row (no {key!r} field)")
        except ValueError as e:
            if n == len(lines) and not line.endswith(b"\n"):
                break  # a line cut by a crash: dropped
            raise ValueError(f"{path} line {n}: {e}; cannot resume into this file") from None
        if result_field is not None and "error" not in row and result_field not in row:
            raise ValueError(f"{path} line {n}: a row of another task (no {result_field!r}); cannot resume into "
                             "this file")
        keys.add(str(row[key]))
        good_end += len(line)
    if repair and good_end != path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good_end)
    if good_end and repair:
        with open(path, "rb+") as f:  # the last kept line must end with a newline
            f.seek(good_end - 1)
            if f.read(1) != b"\n":
                f.write(b"\n")
    return keys


class RowSink:
    """Append rows to ``<output>.partial``; :meth:`close` moves the finished file into place.

    Args:
        path: ``.jsonl`` / ``.ndjson`` / ``.parquet`` output.
        task: the batch task (selects the key field and the Parquet schema).
        resume: keep the rows of an earlier (finished or interrupted) run; :attr:`done` holds their keys.
        inputs: input files that must not be overwritten.

    Raises:
        OutputPathError: unknown suffix, the output (or its ``.partial``) is an input or a folder.
        ValueError: ``resume`` with a Parquet output written for another task.
    """

    def __init__(self, path: str | Path, task: str, resume: bool = False, inputs: Iterable[str | Path] = ()) -> None:
        inputs = list(inputs)
        self.path = check_output_path(path, inputs)
        self.format = output_format(self.path)
        self.task = task
        self.key = key_field(task)
        self.partial = check_output_path(self.path.with_name(self.path.name + ".partial"), inputs)
        self.done: set[str] = set()
        self.resume = resume
        self.path.parent.mkdir(parents=True, exist_ok=True)
        field = "points_per_class" if self.key == "scene" else "top_k" if batched(task) else "detections"
        if resume and self.partial.exists():
            self.done = read_jsonl_keys(self.partial, self.key, repair=True, result_field=field)
        elif resume and self.path.exists() and self.format == "jsonl":
            read_jsonl_keys(self.path, self.key, result_field=field)  # refused before anything is copied
            shutil.copyfile(self.path, self.partial)
            self.done = read_jsonl_keys(self.partial, self.key, repair=True, result_field=field)
        else:
            self.partial.write_bytes(b"")
        if resume and self.format == "parquet" and self.path.exists():
            import pyarrow.parquet as pq  # optional: Parquet output needs ovtools[ray]

            old = pq.read_schema(self.path)
            if old.names != parquet_schema(task).names:
                raise ValueError(f"{self.path}: written for another task (columns {old.names}); cannot resume "
                                 f"a {task} run into it")
            self.done |= {str(k) for k in pq.read_table(self.path, columns=[self.key]).column(self.key).to_pylist()}
        self._f = open(self.partial, "a", encoding="utf-8")
        self.written = 0

    def write(self, rows: Iterable[dict]) -> None:
        """Append rows (JSON-ready dicts) and flush them to disk."""
        for row in rows:
            self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
            self.written += 1
        self._f.flush()

    def close(self) -> Path:
        """Finish: the complete output replaces ``path`` atomically; the ``.partial`` file is removed.

        Returns:
            The output path.
        """
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        if self.format == "jsonl":
            os.replace(self.partial, self.path)
            return self.path
        self._write_parquet()
        self.partial.unlink()
        return self.path

    def abort(self) -> None:
        """Stop without finishing: the ``.partial`` file stays for a ``resume`` run."""
        if not self._f.closed:
            self._f.flush()
            self._f.close()

    def _write_parquet(self) -> None:
        import pyarrow as pa  # optional: Parquet output needs ovtools[ray]
        import pyarrow.parquet as pq

        schema = parquet_schema(self.task)
        with atomic_output(self.path) as tmp:
            with pq.ParquetWriter(tmp, schema) as writer:
                if self.resume and self.path.exists():
                    for batch in pq.ParquetFile(self.path).iter_batches():
                        writer.write_batch(batch)
                chunk: list[dict] = []
                with open(self.partial, encoding="utf-8") as f:
                    for line in f:
                        chunk.append(_parquet_row(self.task, json.loads(line)))
                        if len(chunk) >= _CHUNK:
                            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                            chunk = []
                if chunk:
                    writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
