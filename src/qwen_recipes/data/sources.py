"""Read raw rows from local files/folders or the Hugging Face Hub, keeping where each row came from.

JSONL is read line by line here (not through `datasets`) so that a bad line is skipped and counted with its
file and line number instead of failing the whole load, and so that `--strict` can name it.
"""

from __future__ import annotations

import json
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
    """Whether a data source is a local file or folder (else a Hub id)."""
    return Path(spec.path).exists()


def local_files(path: Path) -> list[Path]:
    """The data files of a local file or folder, sorted for determinism."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix in LOCAL_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{path}: folder has no {'/'.join(LOCAL_SUFFIXES)} files")
    return files


def iter_rows(spec: DatasetSpec, streaming: bool = False) -> Iterator[tuple[str, dict[str, Any] | SkipRow]]:
    """Yield (where, row) for every row of a source; unreadable rows come as `SkipRow`, in place.

    `streaming` reads a Hub dataset lazily (only as far as the caller iterates) instead of downloading it whole.
    """
    if not is_local(spec):
        yield from _iter_hub(spec, streaming)
        return
    for f in local_files(Path(spec.path)):
        if f.suffix == ".jsonl" or (f.suffix == ".json" and _looks_jsonl(f)):
            yield from _iter_jsonl(f)
        else:
            yield from _iter_with_datasets(f)


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


def _iter_with_datasets(path: Path) -> Iterator[tuple[str, dict[str, Any] | SkipRow]]:
    from datasets import load_dataset

    kind = LOCAL_SUFFIXES[path.suffix]
    ds = load_dataset(kind, data_files=str(path), split="train")
    for i, row in enumerate(ds):
        yield f"{path}:row {i + 1}", row


def _iter_hub(spec: DatasetSpec, streaming: bool = False) -> Iterator[tuple[str, dict[str, Any] | SkipRow]]:
    from datasets import load_dataset

    try:
        ds = load_dataset(spec.path, spec.name, split=spec.split, revision=spec.revision, streaming=streaming)
    except Exception as e:  # offline, typo, gated: say which source and what to do
        raise DataError(
            f"dataset {spec.path!r} is neither a local file/folder nor loadable from the Hub ({type(e).__name__}: "
            f"{e}); check the path (relative to the recipe) or the Hub id, and HF_HUB_OFFLINE"
        ) from None
    for i, row in enumerate(ds):
        yield f"{spec.path}[{spec.split}]:row {i + 1}", row


def count_rows_fast(spec: DatasetSpec) -> int | None:
    """Row count without parsing (for --dry-run): non-empty lines of local JSONL, else None."""
    if not is_local(spec):
        return None
    total = 0
    for f in local_files(Path(spec.path)):
        if f.suffix != ".jsonl":
            return None
        with f.open("rb") as fh:
            total += sum(1 for line in fh if line.strip())
    return total


def write_jsonl(path: str | Path, rows: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> Path:
    """Write rows as UTF-8 JSON lines (non-ASCII kept readable), creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
