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


def lora_parameters(cfg: dict[str, Any], r: int, modules: Any) -> int | None:
    """LoRA parameter count for all-linear (or named) targets of a Qwen decoder, from config.json values."""
    try:
        h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
        heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
        head_dim = cfg.get("head_dim") or h // heads
    except KeyError:
        return None
    shapes = {
        "q_proj": (h, heads * head_dim),
        "k_proj": (h, kv * head_dim),
        "v_proj": (h, kv * head_dim),
        "o_proj": (heads * head_dim, h),
        "gate_proj": (h, inter),
        "up_proj": (h, inter),
        "down_proj": (inter, h),
    }
    names = shapes if modules in (None, "all-linear") else [m for m in modules if m in shapes]
    return layers * sum(r * (shapes[n][0] + shapes[n][1]) for n in names)


def local_config(name: str) -> dict[str, Any] | None:
    """config.json of a local model directory, if there is one."""
    path = Path(name) / "config.json"
    return json.loads(path.read_text()) if path.is_file() else None


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
    cfg = local_config(str(v["model_name_or_path"]))
    trainable = None
    if cfg and recipe.method in ("lora", "qlora"):
        trainable = lora_parameters(cfg, v.get("lora_r", 16), v.get("lora_target_modules", "all-linear"))
    return {
        "model": v["model_name_or_path"],
        "task": recipe.task,
        "method": recipe.method,
        "output_dir": v["output_dir"],
        "rows (before skips)": known_rows if known_rows is not None else "unknown until loaded (Hub or non-JSONL data)",
        "sequences per optimizer step": per_step,
        "optimizer steps": steps if steps is not None else "decided after packing",
        "trainable parameters": trainable if trainable is not None else "known after loading",
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
