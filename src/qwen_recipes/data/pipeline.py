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
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qwen_recipes.data.mixture import canonical_rows, read_source, resample, strict_message
from qwen_recipes.data.report import DataReport, thinks
from qwen_recipes.data.sources import DataError, is_local, local_files
from qwen_recipes.recipe import Recipe

__all__ = ["DataError", "DataReport", "build_dataset", "canonical_rows", "read_source", "resample", "tokenize_rows"]
CACHE_VERSION = "3"  # 3: the report counts thinking rows
TOKENIZE_BATCH = 256


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
            where = report.drop(i, "no trained tokens", "the template left no assistant token to train")
            errors.append(f"{where}: no trained tokens")
            continue
        if drop and max_length and len(ids) > max_length:
            where = report.drop(i, "longer than max_length", f"{len(ids)} > {max_length} tokens")
            errors.append(f"{where}: {len(ids)} tokens > max_length={max_length} (overlong: drop)")
            continue
        columns["input_ids"].append(ids)
        report.tokens_per_epoch += len(ids)
        if mask is not None:
            columns["assistant_masks"].append(mask)
            report.loss_tokens_per_epoch += sum(mask)
            report.thinking_rows += thinks(rows[i])
        else:
            report.loss_tokens_per_epoch += len(ids)
    if recipe.strict and errors:
        raise DataError(strict_message(errors))
    report.finish()
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
    keys = ("task", "max_length", "overlong", "seed", "strict", "dedup")
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
    if recipe.data_problems:
        raise DataError("\n".join(recipe.data_problems))
    if cache_dir and (cache_dir / "report.json").exists():
        saved = json.loads((cache_dir / "report.json").read_text())
        report = DataReport.from_dict(saved, cache=f"hit {cache_dir}")
        return load_from_disk(str(cache_dir / "dataset")), report
    report = DataReport()
    rows = canonical_rows(recipe, key, report)
    if tokenized:
        dataset = tokenize_rows(recipe, rows, tokenizer, chat_template, report)
        if not len(dataset):
            raise DataError(f"no usable rows in {key} after tokenization: {report.summary()}")
    else:
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
