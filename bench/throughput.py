"""(b) Real-token throughput on CPU: our `train.py` (default SFT + LoRA recipe) vs plain TRL `SFTTrainer` defaults.

Both train the same tiny random Qwen3 (real 151,936-token vocabulary) with the same LoRA adapter for one epoch of
the same s1K-shaped rows, scaled down in length so a CPU finishes (lengths x `scale`), so both see the same real
tokens. Ours runs `python train.py` with only the data, model and run-length keys set: BFD packing into 4,096-token
rows, padding-free batches, gradient checkpointing, all from `recipes/_base/{sft,lora}.yaml`. The baseline runs
`python -m bench.plain_trl` (TRL defaults: one row per sequence, 8 per batch, padded). Each runs in its own process,
one after the other; tokens/s is real (non-padding) tokens over the training loop's wall time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.synthetic import describe, s1k_rows
from bench.workdir import ROOT, write_recipe


def prepare(workdir: Path, n: int, seed: int, scale: float, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the JSONL, our recipe, and the identical pre-tokenized dataset for the baseline."""
    from datasets import Dataset

    from qwen_recipes.data import pipeline as data
    from qwen_recipes.data import templates
    from qwen_recipes.recipe import load_recipe
    from qwen_recipes.training import model

    rows = s1k_rows(n, seed, scale)
    jsonl = workdir / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe_path = write_recipe(
        workdir / "ours.yaml",
        base=[str(ROOT / "recipes/_base/sft.yaml"), str(ROOT / "recipes/_base/lora.yaml")],
        model_name_or_path="tiny:qwen3",
        datasets=[{"path": str(jsonl)}],
        num_train_epochs=1,
        save_strategy="no",
        output_dir=str(workdir / "ours"),
        **(extra or {}),
    )
    recipe = load_recipe(recipe_path)
    tokenizer = model.load_tokenizer(recipe, chat=True)
    template = templates.resolve_training_template(tokenizer, "qwen3", None)
    pairs = data.tokenize_chat(data.canonical_rows(recipe), tokenizer, template)
    tokenized = workdir / "tokenized"
    Dataset.from_dict({"input_ids": [i for i, _ in pairs], "assistant_masks": [m for _, m in pairs]}).save_to_disk(
        str(tokenized)
    )
    return {
        "recipe": recipe_path,
        "tokenized": tokenized,
        "model": Path(model.resolve_model_path("tiny:qwen3")),
        "lengths": [len(i) for i, _ in pairs],
    }


def _run(cmd: list[str], what: str) -> None:
    env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")


def run(workdir: Path, n: int = 96, seed: int = 0, scale: float = 0.1, overrides: list[str] | None = None) -> dict:
    """Train both ways, one after the other; real tokens, seconds and tokens/s of each, and the ratio."""
    paths = prepare(workdir, n, seed, scale)
    _run([sys.executable, "train.py", str(paths["recipe"]), *(overrides or [])], "our train.py")
    ours = json.loads((workdir / "ours" / "run_report.json").read_text())
    out = workdir / "plain.json"
    _run(
        [
            sys.executable,
            "-m",
            "bench.plain_trl",
            "--model",
            str(paths["model"]),
            "--dataset",
            str(paths["tokenized"]),
            "--recipe",
            str(paths["recipe"]),
            "--out",
            str(out),
            "--output_dir",
            str(workdir / "plain"),
        ],
        "plain TRL",
    )
    plain = json.loads(out.read_text())
    result = {
        "mix": describe(paths["lengths"]),
        "real_tokens_in_data": sum(paths["lengths"]),
        "overrides": overrides or [],
        "ours": {
            "tokens_seen": ours["tokens_seen"],
            "wall_seconds": ours["wall_seconds"],
            "steps": ours["steps"],
        },
        "plain": plain,
    }
    for side in ("ours", "plain"):
        r = result[side]
        r["tokens_per_s"] = r["tokens_seen"] / r["wall_seconds"]
    result["ratio"] = result["ours"]["tokens_per_s"] / result["plain"]["tokens_per_s"]
    return result


def report(r: dict[str, Any]) -> list[str]:
    """Human-readable lines."""
    o, p = r["ours"], r["plain"]
    extra = f" with {' '.join(r['overrides'])}" if r["overrides"] else ""
    return [
        f"data: {r['mix']}; {r['real_tokens_in_data']:,} real tokens",
        f"ours (train.py, default sft+lora recipe{extra}): {o['tokens_seen']:,} tokens in {o['wall_seconds']:.1f} s "
        f"= {o['tokens_per_s']:,.0f} tokens/s ({o['steps']} steps)",
        f"plain TRL SFTTrainer defaults: {p['tokens_seen']:,} tokens in {p['wall_seconds']:.1f} s "
        f"= {p['tokens_per_s']:,.0f} tokens/s ({p['steps']} steps)",
        f"ratio ours / plain: {r['ratio']:.2f}x",
    ]
