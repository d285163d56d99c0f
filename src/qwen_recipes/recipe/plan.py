"""`--dry-run`: the resolved recipe and what a run would do, without importing torch or loading weights."""

from __future__ import annotations

import math
from typing import Any

import yaml

from qwen_recipes.recipe.core import Recipe, scrub_values
from qwen_recipes.recipe.launch import describe_launch


def trainable_parameters(recipe: Recipe) -> str:
    """Trainable parameters from a local config.json or the built-in table; never the network, no weights."""
    from qwen_recipes.cost.flops import lora_params
    from qwen_recipes.cost.models import UnknownModel, recipe_arch

    try:
        arch, _ = recipe_arch(recipe, offline=True)
    except UnknownModel:
        return "known after loading"
    if arch.vision is not None:  # by part: language model, projector, vision tower (cost/vision_estimate.py)
        from qwen_recipes.cost.vision_estimate import plan_lines

        return plan_lines(recipe, arch)["trainable parameters"]
    total = arch.total_params()
    if recipe.method == "full":
        return f"{total:,} (all)"
    n = lora_params(arch, recipe.get("lora_r"), recipe.get("lora_target_modules"))
    n += (
        sum(m in ("lm_head", "embed_tokens") for m in recipe.get("lora_modules_to_save") or [])
        * arch.vocab
        * arch.hidden
    )
    return f"{n:,} ({n / total:.2%} of {total:,})"


def plan(recipe: Recipe) -> dict[str, Any]:
    """Model, method, launch, data rows, steps and (when cheap) trainable parameters of a recipe."""
    from qwen_recipes.data.sources import count_rows_fast

    launch = describe_launch(recipe, planned=True)
    rows = [count_rows_fast(spec) for spec in recipe.datasets_specs()]
    known_rows = None if any(r is None for r in rows) else sum(rows)
    per_step = recipe.get("per_device_train_batch_size") * recipe.get("gradient_accumulation_steps") * launch.world_size
    steps = None
    if recipe.get("max_steps") > 0:
        steps = recipe.get("max_steps")
    elif known_rows is not None and not recipe.get("packing"):
        steps = math.ceil(known_rows / per_step) * math.ceil(recipe.get("num_train_epochs"))
    sharding = {None: "none", "deepspeed": f"DeepSpeed ZeRO-{launch.zero_stage}", "fsdp": "FSDP"}[launch.engine]
    return {
        "model": recipe.get("model_name_or_path"),
        "task": recipe.task,
        "method": recipe.method,
        "output_dir": recipe.get("output_dir"),
        "rows (before skips)": known_rows if known_rows is not None else "unknown until loaded (Hub or non-JSONL data)",
        "sequences per optimizer step": per_step,
        "optimizer steps": steps if steps is not None else "decided after packing",
        "trainable parameters": trainable_parameters(recipe),
        "accelerate config": recipe.get("accelerate_config") or "none (single process)",
        "processes": f"{launch.world_size} ({launch.source})",
        "sharding": sharding + (" + offload" if launch.offloads_params or launch.offloads_optimizer else ""),
        "hardware": recipe.get("hardware") or "unspecified",
        **vision_lines(recipe),
    }


def vision_lines(recipe: Recipe) -> dict[str, str]:
    """Vision-language plan lines (tokens per image), {} for text-only or unknown models."""
    from qwen_recipes.cost.models import UnknownModel, recipe_arch

    try:
        arch, _ = recipe_arch(recipe, offline=True)
    except UnknownModel:
        return {}
    if arch.vision is None:
        return {}
    from qwen_recipes.cost.vision_estimate import plan_lines

    return {k: v for k, v in plan_lines(recipe, arch).items() if k != "trainable parameters"}


def print_plan(recipe: Recipe) -> None:
    """Print the resolved recipe and the plan."""
    print(f"# resolved recipe: {recipe.path}")
    print(yaml.safe_dump(scrub_values(recipe.values), sort_keys=False, allow_unicode=True).rstrip())
    print("\n# plan (dry run: no weights loaded)")
    for key, value in plan(recipe).items():
        print(f"{key:>30}: {value:,}" if isinstance(value, int) else f"{key:>30}: {value}")
