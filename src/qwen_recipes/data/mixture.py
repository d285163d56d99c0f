"""Sources → canonical rows → the mixture, with every row accounted for. Torch-free: `--dry-run` runs it too.

Each source is read and validated row by row (`formats.to_canonical`); a source with no usable row, or fewer than
its `samples:`, is an error naming the source, its column mapping and the columns it really has. `samples:` takes
exactly that many rows, `weight:` scales the usable rows (2.0 repeats each twice); exact duplicates are counted,
and removed with `dedup: true`.
"""

from __future__ import annotations

import difflib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qwen_recipes.data.formats import (
    CONVERSIONS,
    SkipRow,
    detect_format,
    get_preprocessor,
    media_in_row,
    to_canonical,
)
from qwen_recipes.data.report import DataReport
from qwen_recipes.data.sources import DataError, is_local, iter_rows
from qwen_recipes.recipe import Recipe
from qwen_recipes.recipe.schema import DatasetSpec

COLUMN_SAMPLE = 200  # raw rows whose column names are remembered for the error of an empty source


class MediaInTextRow(DataError):
    """An image/video row read by a text recipe: an error, never a skip (its images would be dropped)."""


class Source:
    """One source's canonical rows, their `file:line`, and what the reader saw."""

    def __init__(self, index: int, label: str, spec: DatasetSpec) -> None:
        self.index, self.label, self.spec = index, label, spec
        self.rows: list[dict[str, Any]] = []
        self.where: list[str] = []
        self.columns: set[str] = set()  # raw column names (after `preprocess`, before `columns:`)
        self.first_problem: str | None = None
        self.complete = True  # False when only the first `limit` rows were read (dry run)


def label(key: str, i: int, spec: DatasetSpec) -> str:
    """`datasets[0] name.jsonl` (a file's name, or the Hub id)."""
    return f"{key}[{i}] {Path(spec.path).name if is_local(spec) else spec.path}"


def requested(spec: DatasetSpec) -> str:
    """What the recipe asked of a source: `samples: N`, `weight: W` or all rows."""
    if spec.samples is not None:
        return f"samples: {spec.samples}"
    return f"weight: {spec.weight}" if spec.weight is not None else "all"


def _map_columns(row: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    if not columns:
        return row
    out = {k: v for k, v in row.items() if k not in columns.values()}
    for ours, theirs in columns.items():
        if theirs in row:
            out[ours] = row[theirs]
    return out


def read_source(
    spec: DatasetSpec,
    task: str,
    report: DataReport,
    strict: bool,
    index: int = 0,
    name: str | None = None,
    limit: int | None = None,
    canonical: Callable[..., dict[str, Any]] | None = None,
) -> Source:
    """Canonical rows of one source (its first `limit` rows only, when given); bad rows are counted, or under
    `strict` collected into one error. `canonical(row, fmt, spec, where)` replaces `to_canonical` (vision rows)."""
    convert = get_preprocessor(spec.preprocess) if spec.preprocess else None
    src = Source(index, name or label("datasets", index, spec), spec)
    stats = report.source(src.label, spec.path, requested(spec))
    errors: list[str] = []
    fmt = None if spec.format == "auto" else spec.format
    token = CONVERSIONS.set(report.converted)
    try:
        for where, raw in iter_rows(spec, limit=None if limit is None else limit + 1):
            if limit is not None and stats["read"] == limit:
                src.complete = False  # there is a row past the sample
                break
            stats["read"] += 1
            report.rows_read += 1
            try:
                if isinstance(raw, SkipRow):
                    raise raw
                row = convert(raw, **spec.preprocess_args) if convert else raw
                if stats["read"] <= COLUMN_SAMPLE:
                    src.columns.update(str(k) for k in list(row)[:100])
                row = _map_columns(row, spec.columns)
                fmt = fmt or detect_format(set(row), task)
                if canonical is None and (media := media_in_row(row)):
                    raise MediaInTextRow(f"{where}: the row has {media}, but this recipe reads text rows")
                src.rows.append(
                    canonical(row, fmt, spec, where) if canonical else to_canonical(row, fmt, spec.system_prompt)
                )
                src.where.append(where)
            except SkipRow as e:
                report.skip(e.reason, where, e.detail, index)
                errors.append(f"{where}: {e}")
                src.first_problem = src.first_problem or errors[-1]
    finally:
        CONVERSIONS.reset(token)
    stats["usable"] = len(src.rows)
    if strict and errors:
        raise DataError(strict_message(errors))
    return src


def strict_message(errors: list[str]) -> str:
    """The `--strict` error: the first 20 bad rows (file:line: reason) and the fix."""
    shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
    return "\n".join(
        [*shown, "strict: every bad row is an error; fix the rows or drop --strict to skip and count them"]
    )


def source_problems(src: Source, report: DataReport) -> list[str]:
    """Why a source cannot deliver what the recipe asks: no usable row, or fewer rows than `samples:`."""
    spec, stats = src.spec, report.by_source[src.index]
    usable = len(src.rows)
    if usable == 0:
        seen = sorted(src.columns)
        msg = f"{src.label}: no usable rows ({stats['read']} read, {stats['skipped']} skipped"
        msg += f"; first: {src.first_problem})" if src.first_problem else ")"
        if spec.columns:
            missing = [theirs for theirs in spec.columns.values() if theirs not in src.columns]
            hints = [f"{m!r}{_close(m, seen)}" for m in missing]
            msg += f"; columns: {spec.columns}" + (f" names {', '.join(hints)}, not in the source" if hints else "")
        msg += f"; the source's columns are {seen}" if seen else ""
        if not spec.columns and seen:
            msg += "; map them with columns: {ours: theirs} (e.g. {instruction: question, output: answer})"
        return [msg]
    if spec.samples is not None and usable < spec.samples and src.complete:
        return [
            f"{src.label}: samples: {spec.samples} but the source has only {usable} usable rows ({stats['read']} "
            f"read, {stats['skipped']} skipped); lower samples to at most {usable}, or repeat rows with "
            f"weight: {spec.samples / usable:.2f} instead"
        ]
    if spec.weight is not None and round(usable * float(spec.weight)) == 0:
        return [f"{src.label}: weight: {spec.weight} of {usable} usable rows rounds to 0 rows; raise the weight"]
    return []


def _close(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resample(rows: list[Any], spec: DatasetSpec, rng: random.Random) -> list[Any]:
    """Apply a source's `samples`/`weight`: shuffle-subsample, or repeat whole copies plus a remainder."""
    if spec.samples is None and spec.weight is None:
        return rows
    n = spec.samples if spec.samples is not None else round(len(rows) * float(spec.weight))
    if not rows or n <= 0:
        return []
    out = rows * (n // len(rows))
    return out + rng.sample(rows, n % len(rows))


def _deduplicate(sources: list[Source], report: DataReport, remove: bool) -> None:
    seen: set[str] = set()
    for src in sources:
        keep = []
        for row, where in zip(src.rows, src.where, strict=True):
            key = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
            duplicate = key in seen
            seen.add(key)
            report.duplicates += duplicate
            if duplicate and remove:
                report.skip("duplicate (dedup: true)", where, "an exact copy of an earlier row", src.index)
            else:
                keep.append((row, where))
        src.rows, src.where = [r for r, _ in keep], [w for _, w in keep]
        report.by_source[src.index]["usable"] = len(src.rows)


def read_mixture(
    recipe: Recipe,
    key: str = "datasets",
    report: DataReport | None = None,
    limit: int | None = None,
    canonical: Callable[..., dict[str, Any]] | None = None,
) -> tuple[list[Source], list[str]]:
    """Every source of `datasets` (or `eval_datasets`) read and deduplicated, and the problems of each."""
    report = report if report is not None else DataReport()
    report.dedup = bool(recipe.get("dedup"))
    sources = []
    for i, spec in enumerate(recipe.datasets_specs(key)):
        if limit is not None and not is_local(spec):
            report.source(label(key, i, spec), spec.path, requested(spec))
            sources.append(None)  # a Hub source: not read before the run
            continue
        try:
            sources.append(
                read_source(spec, recipe.task, report, recipe.strict, i, label(key, i, spec), limit, canonical)
            )
        except MediaInTextRow as e:
            from qwen_recipes.recipe.vision import media_fix

            raise DataError(f"{e}; {media_fix(recipe)}") from None
    read = [s for s in sources if s is not None]
    _deduplicate(read, report, remove=report.dedup)
    problems = [p for s in read for p in source_problems(s, report)]
    return sources, problems


def canonical_rows(
    recipe: Recipe,
    key: str = "datasets",
    report: DataReport | None = None,
    canonical: Callable[..., dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """All canonical rows of a recipe's mixture (`datasets` or `eval_datasets`), in source order.

    Raises `DataError` naming each source that has no usable row or fewer than its `samples:`.
    """
    report = report if report is not None else DataReport()
    if recipe.data_problems:
        raise DataError("\n".join(recipe.data_problems))
    sources, problems = read_mixture(recipe, key, report, canonical=canonical)
    if problems:
        raise DataError("\n".join(problems))
    rng = random.Random(recipe.get("seed"))
    rows: list[dict[str, Any]] = []
    for src in sources:
        picked = resample(list(range(len(src.rows))), src.spec, rng)
        rows.extend(src.rows[j] for j in picked)
        report.origins.extend((src.index, src.where[j]) for j in picked)
        report.by_source[src.index]["used"] = len(picked)
    report.finish()
    if not rows:
        raise DataError(f"no rows in {key}: the recipe lists no data source")
    return rows
