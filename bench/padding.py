"""(a) Padding waste: the share of pad positions in the batches our engine builds vs plain padded batches.

Our path is what `recipes/_base/sft.yaml` configures TRL to do: labels from `assistant_masks`, BFD packing into
rows of `max_length` (`pack_dataset`), and the padding-free `DataCollatorForLanguageModeling` that flattens a batch
into one row (real tokens only). The plain path is TRL's default: one conversation per row, `batch_size` rows in
random order, each batch right-padded to its longest row.
"""

from __future__ import annotations

import random
from typing import Any

from bench.synthetic import describe, s1k_lengths


def _dataset(lengths: list[int], seed: int):
    from datasets import Dataset

    rng = random.Random(seed)
    ids, labels = [], []
    for n in lengths:
        row = [rng.randrange(100, 150_000) for _ in range(n)]
        prompt = max(1, n // 10)  # the question has no loss, as with assistant-only masks
        ids.append(row)
        labels.append([-100] * prompt + row[prompt:])
    return Dataset.from_dict({"input_ids": ids, "labels": labels})


def _count(batches: list[dict[str, Any]]) -> dict[str, int]:
    positions = real = 0
    for b in batches:
        positions += b["input_ids"].numel()
        real += int(b["attention_mask"].sum()) if "attention_mask" in b else b["input_ids"].numel()
    return {"batches": len(batches), "positions": positions, "real_tokens": real, "pad_tokens": positions - real}


def ours(dataset: Any, max_length: int, batch_size: int, seed: int) -> dict[str, Any]:
    """Batches as our engine builds them: BFD packing + padding-free collation."""
    from trl.data_utils import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    packed = pack_dataset(dataset.shuffle(seed=seed), max_length, "bfd").shuffle(seed=seed)
    collate = DataCollatorForLanguageModeling(pad_token_id=151643, padding_free=True)
    rows = packed.to_list()
    batches = [collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    out = _count(batches)
    out["packed_rows"] = len(rows)
    out["row_fill"] = sum(len(r["input_ids"]) for r in rows) / (len(rows) * max_length)
    return out


def plain(dataset: Any, max_length: int, batch_size: int, seed: int) -> dict[str, Any]:
    """TRL's default batches: truncated to max_length, shuffled, padded to the longest row of each batch."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    rows = dataset.shuffle(seed=seed).to_list()
    rows = [{k: v[:max_length] for k, v in r.items()} for r in rows]
    collate = DataCollatorForLanguageModeling(pad_token_id=151643)
    return _count([collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)])


def run(n: int = 1000, max_length: int = 16384, batch_size: int = 8, seed: int = 0, scale: float = 1.0) -> dict:
    """Padding fractions of both paths on the same fixed-seed s1K-like mix."""
    lengths = s1k_lengths(n, seed, scale)
    dataset = _dataset(lengths, seed)
    result: dict[str, Any] = {
        "mix": describe(lengths),
        "max_length": max_length,
        "batch_size": batch_size,
        "tokens": sum(lengths),
        "tokens_within_max_length": sum(min(n, max_length) for n in lengths),
    }
    for name, fn in (("ours", ours), ("plain", plain)):
        r = fn(dataset, max_length, batch_size, seed)
        r["pad_fraction"] = r["pad_tokens"] / r["positions"]
        result[name] = r
    return result


def report(r: dict[str, Any]) -> list[str]:
    """Human-readable lines."""
    o, p = r["ours"], r["plain"]
    return [
        f"mix: {r['mix']} (max_length {r['max_length']}, {r['batch_size']} rows per batch)",
        f"ours  (BFD packing, padding-free): {o['pad_fraction']:.2%} padding "
        f"({o['pad_tokens']:,} of {o['positions']:,} positions; {o['packed_rows']} packed rows, "
        f"{o['row_fill']:.1%} full; {o['batches']} batches)",
        f"plain (padded batches):            {p['pad_fraction']:.2%} padding "
        f"({p['pad_tokens']:,} of {p['positions']:,} positions; {p['batches']} batches)",
        f"plain spends {p['positions'] / o['positions']:.2f}x the token positions of ours for the same "
        f"{o['real_tokens']:,} real tokens",
    ]
