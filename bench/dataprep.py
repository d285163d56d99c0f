"""(c) Data preparation: our template + tokenize + mask path vs the raw `tokenizers` batch encode (the floor).

Our path is `qwen_recipes.data.build_dataset` on a JSONL of s1K-like chats: read and canonicalise rows, render them
with the training chat template, tokenize, build the assistant mask (`tokenize_chat`), and write the cache. The floor
is `tokenizers.Tokenizer.encode_batch` of the very same rendered text: no template, no mask, no Python lists. A second
`build_dataset` of the same recipe must hit the cache.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.synthetic import describe, s1k_rows
from bench.workdir import ROOT, write_recipe


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def run(workdir: Path, n: int = 1000, seed: int = 0, scale: float = 1.0, repeats: int = 3) -> dict[str, Any]:
    """Timings of each stage and the ratios, on `n` s1K-like rows (cache under `workdir`).

    Ours and the floor run alternately `repeats` times and the best of each is kept: the machine is shared, and the
    minimum is the least disturbed measurement of the same work.
    """
    from qwen_recipes.data import pipeline as data
    from qwen_recipes.data import templates
    from qwen_recipes.recipe import load_recipe
    from qwen_recipes.training import model

    rows = s1k_rows(n, seed, scale)
    path = workdir / "s1k_like.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = load_recipe(
        write_recipe(
            workdir / "dataprep.yaml",
            base=[str(ROOT / "recipes/_base/sft.yaml"), str(ROOT / "recipes/_base/lora.yaml")],
            model_name_or_path="tiny:qwen3",
            datasets=[{"path": str(path)}],
            max_length=16384,
            output_dir=str(workdir / "out"),
        )
    )
    tokenizer = model.load_tokenizer(recipe, chat=True)
    template = templates.resolve_training_template(tokenizer, "qwen3", None)

    canonical, t_read = _timed(data.canonical_rows, recipe)
    texts = tokenizer.apply_chat_template([r["messages"] for r in canonical], chat_template=template, tokenize=False)
    ours_s, floor_s = [], []
    for _ in range(repeats):
        pairs, t = _timed(data.tokenize_chat, canonical, tokenizer, template)
        ours_s.append(t)
        encodings, t = _timed(tokenizer.backend_tokenizer.encode_batch, texts, add_special_tokens=False)
        floor_s.append(t)
    t_ours, t_floor = min(ours_s), min(floor_s)
    same = all(e.ids == ids for e, (ids, _) in zip(encodings, pairs, strict=True))

    (_, cold_report), t_cold = _timed(data.build_dataset, recipe, tokenizer, template)
    (dataset, warm_report), t_warm = _timed(data.build_dataset, recipe, tokenizer, template)
    return {
        "mix": describe([len(ids) for ids, _ in pairs]),
        "tokens": sum(len(ids) for ids, _ in pairs),
        "ids_identical_to_floor": same,
        "read_canonical_s": t_read,
        "template_tokenize_mask_s": t_ours,
        "floor_encode_batch_s": t_floor,
        "ratio": t_ours / t_floor,
        "repeats": {"ours_s": ours_s, "floor_s": floor_s},
        "build_dataset_cold_s": t_cold,
        "build_dataset_cold_ratio": t_cold / t_floor,
        "cold_cache": cold_report.cache,
        "build_dataset_second_s": t_warm,
        "second_cache": warm_report.cache,
        "second_rows": len(dataset),
    }


def report(r: dict[str, Any]) -> list[str]:
    """Human-readable lines."""
    return [
        f"mix: {r['mix']}, {r['tokens']:,} tokens (ids identical to the floor's: {r['ids_identical_to_floor']})",
        f"floor: tokenizers encode_batch of the rendered text: {r['floor_encode_batch_s']:.2f} s",
        f"ours: template + tokenize + mask (data.tokenize_chat): {r['template_tokenize_mask_s']:.2f} s "
        f"= {r['ratio']:.2f}x the floor (best of {len(r['repeats']['ours_s'])} alternating runs each)",
        f"ours: whole build_dataset, cold (read + tokenize + cache write): {r['build_dataset_cold_s']:.2f} s "
        f"= {r['build_dataset_cold_ratio']:.2f}x the floor ({r['cold_cache']})",
        f"second run of the same recipe: {r['build_dataset_second_s']:.2f} s ({r['second_cache']}, "
        f"{r['second_rows']} rows)",
    ]
