"""Read raw rows from local files/folders or the Hugging Face Hub, keeping where each row came from.

Local files are read here, not through `datasets`: JSONL and CSV line by line, so a bad line is skipped and counted
with its file and line number instead of failing the whole load (and `--strict` can name it); CSV cells stay the text
the file holds (no type inference turning answers into ints); Parquet through pyarrow. No heavy import, so
`--dry-run` reads a bounded sample of every local source through the same code as training.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qwen_recipes.data.formats import SkipRow
from qwen_recipes.errors import UserError
from qwen_recipes.recipe.schema import DatasetSpec

LOCAL_SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class DataError(UserError):
    """Bad data under `strict`, or a source that cannot be read; the message says where and what to do."""

    label = "data error"


def is_local(spec: DatasetSpec) -> bool:
    """Whether a data source is a local file or folder (else a Hub id). Recipe loading made local paths absolute."""
    path = Path(spec.path)
    return path.is_absolute() and path.exists()


def command_line_path(path: str) -> str:
    """A data path typed on a command line: absolute when it exists under the current directory (where it was
    typed), else unchanged (a Hub id). Recipes anchor theirs to the recipe's folder instead (recipe/load.py)."""
    p = Path(path).expanduser()
    return str(p.resolve()) if p.exists() else path


def local_files(path: Path) -> list[Path]:
    """The data files of a local file or folder, sorted for determinism."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix in LOCAL_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{path}: folder has no {'/'.join(LOCAL_SUFFIXES)} files")
    return files


def iter_rows(
    spec: DatasetSpec, streaming: bool = False, limit: int | None = None
) -> Iterator[tuple[str, dict[str, Any] | SkipRow]]:
    """Yield (where, row) for every row of a source (the first `limit` only); unreadable rows come as `SkipRow`.

    `streaming` reads a Hub dataset lazily (only as far as the caller iterates) instead of downloading it whole.
    """
    rows = _iter_hub(spec, streaming or limit is not None) if not is_local(spec) else _iter_local(Path(spec.path))
    yield from rows if limit is None else itertools.islice(rows, limit)


def _iter_local(path: Path) -> Iterator[tuple[str, dict[str, Any] | SkipRow]]:
    for f in local_files(path):
        if f.suffix == ".jsonl" or (f.suffix == ".json" and _looks_jsonl(f)):
            yield from _iter_jsonl(f)
        elif f.suffix == ".json":
            yield from _iter_json_array(f)
        elif f.suffix == ".csv":
            yield from _iter_csv(f)
        else:
            yield from _iter_parquet(f)


def _looks_jsonl(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(1).lstrip()
    return head == b"{"


def _iter_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any] | SkipRow]]:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{path}:{lineno}"
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield where, SkipRow("non-UTF-8", f"byte {e.start}: {raw[max(0, e.start - 10) : e.start + 10]!r}")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield where, SkipRow("invalid JSON", f"{e.msg} at column {e.colno}")
                continue
            if not isinstance(row, dict):
                yield where, SkipRow("invalid JSON", f"a row must be a JSON object, got {type(row).__name__}")
                continue
            yield where, row


def _iter_json_array(path: Path) -> Iterator[tuple[str, dict[str, Any] | SkipRow]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(
            f"{path}: not valid JSON ({e}); write JSON lines (one object per line) or a JSON array"
        ) from None
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        n = len(next(iter(data.values())))  # columns -> rows, as `datasets` reads a dict of lists
        data = [{k: (v[i] if i < len(v) else None) for k, v in data.items()} for i in range(n)]
    if not isinstance(data, list):
        raise DataError(f"{path}: a JSON data file must hold an array of objects (or be JSON lines)")
    for i, row in enumerate(data, start=1):
        where = f"{path}:item {i}"
        if isinstance(row, dict):
            yield where, row
        else:
            yield where, SkipRow("invalid JSON", f"a row must be a JSON object, got {type(row).__name__}")


EXTRA = "\0extra"  # DictReader's key for the cells beyond the header


def _iter_csv(path: Path) -> Iterator[tuple[str, dict[str, Any] | SkipRow]]:
    # Undecodable bytes become U+FFFD, which the row formats count as non-UTF-8.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.DictReader(fh, restkey=EXTRA)
        start = reader.line_num + 2  # the row after the header
        for row in reader:
            where = f"{path}:{start}"
            start = reader.line_num + 1
            if EXTRA in row:
                header = len(reader.fieldnames or [])
                yield where, SkipRow("invalid CSV", f"{header + len(row[EXTRA])} fields, the header has {header}")
                continue
            yield where, row


def _iter_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any] | SkipRow]]:
    import pyarrow.parquet as pq

    i = 0
    for batch in pq.ParquetFile(str(path)).iter_batches(batch_size=1000):
        for row in batch.to_pylist():
            i += 1
            yield f"{path}:row {i}", row


def _iter_hub(spec: DatasetSpec, streaming: bool = False) -> Iterator[tuple[str, dict[str, Any] | SkipRow]]:
    from datasets import load_dataset

    try:
        ds = load_dataset(spec.path, spec.name, split=spec.split, revision=spec.revision, streaming=streaming)
    except Exception as e:  # offline, typo, gated: say which source and what to do
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DataError(
            f"dataset {spec.path!r} is neither a local file/folder nor loadable from the Hub ({type(e).__name__}: "
            f"{first}); check the path (relative to the recipe) or the Hub id, and HF_HUB_OFFLINE"
        ) from None
    for i, row in enumerate(ds):
        yield f"{spec.path}[{spec.split}]:row {i + 1}", row


def write_jsonl(path: str | Path, rows: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> Path:
    """Write rows as UTF-8 JSON lines (non-ASCII kept readable), creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
