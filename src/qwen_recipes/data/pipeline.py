"""Training data: sources → canonical rows → mixture → token ids and loss masks, with every skip counted.

SFT rows are tokenized here, with the training chat template's `{% generation %}` markers giving the assistant
mask, so TRL receives `input_ids` + `assistant_masks` and only builds labels, packs and collates. CPT rows become
`input_ids` ending in `<|endoftext|>`. Preference and GRPO rows stay conversational for TRL to tokenize.
The tokenized result is cached under a fingerprint of recipe + data + tokenizer, so a second run skips it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qwen_recipes.data.formats import SkipRow, detect_format, get_preprocessor, to_canonical
from qwen_recipes.data.sources import DataError, is_local, iter_rows, local_files
from qwen_recipes.recipe import Recipe
from qwen_recipes.recipe.schema import DatasetSpec

CACHE_VERSION = "1"
TOKENIZE_BATCH = 256


@dataclass
class DataReport:
    """What happened to the rows: read, used, skipped by reason (with a first example of each)."""

    rows_read: int = 0
    rows_used: int = 0
    skipped: Counter = field(default_factory=Counter)
    first_skip: dict[str, str] = field(default_factory=dict)
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)
    tokens: int = 0
    trained_tokens: int = 0
    cache: str | None = None

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        """Count one skipped row."""
        self.skipped[reason] += 1
        self.first_skip.setdefault(reason, f"{where}: {detail}" if detail else where)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the run report."""
        d = asdict(self)
        d["skipped"] = dict(self.skipped)
        return d

    def summary(self) -> str:
        """One console line."""
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{k}: {v}" for k, v in self.skipped.most_common())
        line = f"data: {self.rows_used}/{self.rows_read} rows used, {skipped} skipped" + (
            f" ({reasons})" if reasons else ""
        )
        if self.tokens:  # only SFT/CPT are tokenized here; TRL tokenizes preference and GRPO rows itself
            line += f", {self.tokens:,} tokens ({self.trained_tokens:,} trained)"
        return line


def _map_columns(row: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    if not columns:
        return row
    out = {k: v for k, v in row.items() if k not in columns.values()}
    for ours, theirs in columns.items():
        if theirs in row:
            out[ours] = row[theirs]
    return out


def read_source(
    spec: DatasetSpec, task: str, report: DataReport, strict: bool, canonical: Callable[..., dict] | None = None
) -> list[dict[str, Any]]:
    """Canonical rows of one source; bad rows are counted (or, under `strict`, collected into one error).

    `canonical(row, fmt, spec, where)` replaces `to_canonical` (vision-language rows: data/vision.py).
    """
    convert = get_preprocessor(spec.preprocess) if spec.preprocess else None
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    fmt = None if spec.format == "auto" else spec.format
    stats = report.by_source.setdefault(spec.path, {"read": 0, "used": 0, "skipped": 0})
    for where, raw in iter_rows(spec):
        stats["read"] += 1
        report.rows_read += 1
        try:
            if isinstance(raw, SkipRow):
                raise raw
            row = convert(raw, **spec.preprocess_args) if convert else raw
            row = _map_columns(row, spec.columns)
            fmt = fmt or detect_format(set(row), task)
            rows.append(canonical(row, fmt, spec, where) if canonical else to_canonical(row, fmt, spec.system_prompt))
        except SkipRow as e:
            stats["skipped"] += 1
            report.skip(e.reason, where, e.detail)
            errors.append(f"{where}: {e}")
    if strict and errors:
        raise DataError(_strict_message(errors))
    return rows


def _strict_message(errors: list[str]) -> str:
    shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
    return "\n".join(
        [*shown, "strict: every bad row is an error; fix the rows or drop --strict to skip and count them"]
    )


def resample(rows: list[dict[str, Any]], spec: DatasetSpec, rng: random.Random) -> list[dict[str, Any]]:
    """Apply a source's `samples`/`weight`: shuffle-subsample, or repeat whole copies plus a remainder."""
    if spec.samples is None and spec.weight is None:
        return rows
    n = spec.samples if spec.samples is not None else round(len(rows) * float(spec.weight))
    if not rows or n <= 0:
        return []
    out = rows * (n // len(rows))
    return out + rng.sample(rows, n % len(rows))


def canonical_rows(
    recipe: Recipe,
    key: str = "datasets",
    report: DataReport | None = None,
    canonical: Callable[..., dict] | None = None,
) -> list[dict[str, Any]]:
    """All canonical rows of a recipe's mixture (`datasets` or `eval_datasets`)."""
    report = report if report is not None else DataReport()
    rng = random.Random(recipe.get("seed"))
    rows: list[dict[str, Any]] = []
    for spec in recipe.datasets_specs(key):
        source_rows = resample(read_source(spec, recipe.task, report, recipe.strict, canonical), spec, rng)
        report.by_source[spec.path]["used"] = len(source_rows)
        rows.extend(source_rows)
    return rows


def _progress(batches: range, rows: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(batches, desc=desc, unit="batch", disable=rows < 2 * TOKENIZE_BATCH)


def tokenize_chat(rows: list[dict[str, Any]], tokenizer: Any, chat_template: str) -> list[tuple[list[int], list[int]]]:
    """(input_ids, assistant_mask) per conversation, rendered with the training template."""
    out = []
    for start in _progress(range(0, len(rows), TOKENIZE_BATCH), len(rows), "Tokenizing chats"):
        batch = [r["messages"] for r in rows[start : start + TOKENIZE_BATCH]]
        enc = tokenizer.apply_chat_template(
            batch, chat_template=chat_template, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        out.extend(zip(enc["input_ids"], enc["assistant_masks"], strict=True))
    return out


def tokenize_text(rows: list[dict[str, Any]], tokenizer: Any, eos_id: int) -> list[list[int]]:
    """Token ids of plain-text rows, each ending in the end-of-document token."""
    out = []
    for start in _progress(range(0, len(rows), TOKENIZE_BATCH), len(rows), "Tokenizing text"):
        texts = [r["text"] for r in rows[start : start + TOKENIZE_BATCH]]
        out.extend([*ids, eos_id] for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return out


def tokenize_rows(
    recipe: Recipe, rows: list[dict[str, Any]], tokenizer: Any, chat_template: str | None, report: DataReport
):
    """A `datasets.Dataset` of input_ids (+ assistant_masks for SFT); over-long rows dropped if the recipe says so."""
    from datasets import Dataset

    max_length = recipe.get("max_length")
    drop = recipe.overlong == "drop"
    columns: dict[str, list] = {"input_ids": []}
    errors = []
    if recipe.task == "sft":
        columns["assistant_masks"] = []
        pairs = tokenize_chat(rows, tokenizer, chat_template)
    else:
        pairs = [
            # the end-of-document token is the pad token by our convention (<|endoftext|>, training.model)
            (ids, None)
            for ids in tokenize_text(rows, tokenizer, tokenizer.pad_token_id)
        ]
    for i, (ids, mask) in enumerate(pairs):
        if mask is not None and not any(mask):
            report.skip("no trained tokens", f"row {i + 1}", "the template left no assistant token to train")
            errors.append(f"row {i + 1}: no trained tokens")
            continue
        if drop and max_length and len(ids) > max_length:
            report.skip("longer than max_length", f"row {i + 1}", f"{len(ids)} > {max_length} tokens")
            errors.append(f"row {i + 1}: {len(ids)} tokens > max_length={max_length} (overlong: drop)")
            continue
        columns["input_ids"].append(ids)
        report.tokens += len(ids)
        if mask is not None:
            columns["assistant_masks"].append(mask)
            report.trained_tokens += sum(mask)
        else:
            report.trained_tokens += len(ids)
    if recipe.strict and errors:
        raise DataError(_strict_message(errors))
    report.rows_used = len(columns["input_ids"])
    return Dataset.from_dict(columns)


def fingerprint(recipe: Recipe, tokenizer: Any, chat_template: str | None, key: str) -> str:
    """Hash of everything that changes the prepared data: data keys, source files, tokenizer and template."""
    sources = []
    for spec in recipe.datasets_specs(key):
        files = (
            [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in local_files(Path(spec.path))]
            if is_local(spec)
            else []
        )
        sources.append([asdict(spec), files])
    keys = ("task", "max_length", "overlong", "seed", "strict")
    state = {
        "v": CACHE_VERSION,
        "sources": sources,
        "recipe": {k: recipe.get(k) for k in keys},
        "tokenizer": [len(tokenizer), tokenizer.eos_token, getattr(tokenizer, "name_or_path", "")],
        "vocab": hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())[:5000]).encode()).hexdigest(),
        "template": hashlib.sha256((chat_template or "").encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_root() -> Path:
    """Where prepared datasets are cached (`QWEN_RECIPES_CACHE`, default ~/.cache/qwen_recipes)."""
    return cache_home() / "data"


def cache_home() -> Path:
    """The qwen-recipes cache folder (`QWEN_RECIPES_CACHE`, default ~/.cache/qwen_recipes)."""
    return Path(os.environ.get("QWEN_RECIPES_CACHE") or Path.home() / ".cache" / "qwen_recipes")


def build_dataset(recipe: Recipe, tokenizer: Any, chat_template: str | None, key: str = "datasets"):
    """The training (or eval) dataset of a recipe and its `DataReport`; cached for SFT/CPT."""
    from datasets import Dataset, load_from_disk

    if getattr(tokenizer, "image_processor", None) is not None:  # a vision-language processor: image rows
        from qwen_recipes.data.vision_dataset import build_vision_dataset

        return build_vision_dataset(recipe, tokenizer, chat_template, key)
    tokenized = recipe.task in ("sft", "cpt")
    use_cache = tokenized and os.environ.get("QWEN_RECIPES_NO_CACHE") != "1"
    cache_dir = cache_root() / fingerprint(recipe, tokenizer, chat_template, key) if use_cache else None
    if cache_dir and (cache_dir / "report.json").exists():
        saved = json.loads((cache_dir / "report.json").read_text())
        report = DataReport(**{**saved, "skipped": Counter(saved["skipped"]), "cache": f"hit {cache_dir}"})
        return load_from_disk(str(cache_dir / "dataset")), report
    report = DataReport()
    rows = canonical_rows(recipe, key, report)
    if not rows:
        raise DataError(f"no usable rows in {key}: {report.summary()}; first problems: {report.first_skip}")
    if tokenized:
        dataset = tokenize_rows(recipe, rows, tokenizer, chat_template, report)
    else:
        report.rows_used = len(rows)
        dataset = Dataset.from_list(rows)
    if cache_dir:
        tmp = cache_dir.with_name(f"{cache_dir.name}.{os.getpid()}.tmp")
        dataset.save_to_disk(str(tmp / "dataset"))
        (tmp / "report.json").write_text(json.dumps(report.to_dict()))
        if cache_dir.exists():  # another rank or run got there first; theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.rename(cache_dir)
        report.cache = f"written {cache_dir}"
        dataset = load_from_disk(str(cache_dir / "dataset"))
    return dataset, report
