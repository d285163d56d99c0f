"""Shared helpers for tests that run the engine: write recipes/data and call train.py in-process."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def chat_rows(n: int = 8) -> list[dict[str, Any]]:
    """Small deterministic arithmetic conversations (half of them with reasoning)."""
    rows = []
    for i in range(n):
        a, b = 11 + i, 23 + 2 * i
        assistant: dict[str, Any] = {"role": "assistant", "content": f"The answer is {a + b}."}
        if i % 2 == 0:
            assistant["reasoning_content"] = f"{a} plus {b} is {a + b}."
        rows.append({"messages": [{"role": "user", "content": f"What is {a} + {b}?"}, assistant]})
    return rows


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Write rows (dicts, or raw strings written as-is) as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def write_recipe(path: Path, **values: Any) -> Path:
    """A recipe file for the tiny offline model with fast test defaults, overridden by `values`."""
    recipe = {
        "base": [str(ROOT / "recipes/_base/sft.yaml"), str(ROOT / "recipes/_base/lora.yaml")],
        "model_name_or_path": "tiny:qwen3",
        "max_length": 64,
        "per_device_train_batch_size": 8,
        "max_steps": 4,
        "learning_rate": 1.0e-2,
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "save_strategy": "no",
        "warmup_steps": 0,
        "lr_scheduler_type": "constant",
        "output_dir": str(path.parent / "out"),
    }
    recipe.update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def train(recipe: Path, *args: str) -> int:
    """Run train.py's main in this process (shares imports; much faster than a subprocess)."""
    ns = runpy.run_path(str(ROOT / "train.py"), run_name="qwen_recipes_test")
    return ns["main"]([str(recipe), *args])


def report(output_dir: Path) -> dict[str, Any]:
    """The run report of an output folder."""
    return json.loads((output_dir / "run_report.json").read_text())


def losses(output_dir: Path) -> list[float]:
    """Logged training losses of a run, from the trainer state saved in the report's folder."""
    return [loss for _, loss in report(output_dir)["loss_curve"]]
