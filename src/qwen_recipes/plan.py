"""`--dry-run`: the resolved recipe and what a run would do, without importing torch or loading weights."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import yaml

from qwen_recipes.recipe import scrub_values
from qwen_recipes.sources import count_rows_fast


def world_size() -> int:
    """Processes of this launch (accelerate/torchrun set WORLD_SIZE), 1 otherwise."""
    return int(os.environ.get("WORLD_SIZE", 1))


def trainable_parameters(recipe: Any) -> str:
    """Trainable parameters from a local config.json or the built-in Qwen table; never the network, no weights."""
    from qwen_recipes.cost.flops import lora_params
    from qwen_recipes.cost.models import BUILTIN, arch_from_config

    v = recipe.values
    arch = None
    for name in (str(v["model_name_or_path"]), v.get("base_model_id")):
        config = Path(str(name)) / "config.json"
        if name and config.is_file():
            arch = arch_from_config(json.loads(config.read_text()))
        elif name in BUILTIN:
            arch = BUILTIN[name]
        if arch is not None:
            break
    if arch is None:
        return "known after loading"
    total = arch.total_params()
    if recipe.method == "full":
        return f"{total:,} (all)"
    n = lora_params(arch, v.get("lora_r", 16), v.get("lora_target_modules", "all-linear"))
    n += sum(m in ("lm_head", "embed_tokens") for m in v.get("lora_modules_to_save") or []) * arch.vocab * arch.hidden
    return f"{n:,} ({n / total:.2%} of {total:,})"


def plan(recipe: Any) -> dict[str, Any]:
    """Model, method, data rows, steps and (when cheap) trainable parameters of a recipe."""
    v = recipe.values
    rows = [count_rows_fast(spec) for spec in recipe.datasets_specs()]
    known_rows = None if any(r is None for r in rows) else sum(rows)
    per_step = v.get("per_device_train_batch_size", 8) * v.get("gradient_accumulation_steps", 1) * world_size()
    steps = None
    if v.get("max_steps", -1) > 0:
        steps = v["max_steps"]
    elif known_rows is not None and not v.get("packing"):
        steps = math.ceil(known_rows / per_step) * math.ceil(v.get("num_train_epochs", 3.0))
    return {
        "model": v["model_name_or_path"],
        "task": recipe.task,
        "method": recipe.method,
        "output_dir": v["output_dir"],
        "rows (before skips)": known_rows if known_rows is not None else "unknown until loaded (Hub or non-JSONL data)",
        "sequences per optimizer step": per_step,
        "optimizer steps": steps if steps is not None else "decided after packing",
        "trainable parameters": trainable_parameters(recipe),
        "accelerate config": v.get("accelerate_config") or "none (single process)",
        "hardware": v.get("hardware") or "unspecified",
    }


def print_plan(recipe: Any) -> None:
    """Print the resolved recipe and the plan."""
    print(f"# resolved recipe: {recipe.path}")
    print(yaml.safe_dump(scrub_values(recipe.values), sort_keys=False, allow_unicode=True).rstrip())
    print("\n# plan (dry run: no weights loaded)")
    for key, value in plan(recipe).items():
        print(f"{key:>30}: {value:,}" if isinstance(value, int) else f"{key:>30}: {value}")
