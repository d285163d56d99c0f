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
    experts = recipe.get("lora_target_parameters") if recipe.is_set("lora_target_parameters") else None
    n = lora_params(arch, recipe.get("lora_r"), recipe.get("lora_target_modules"), experts)
    n += (
        sum(m in ("lm_head", "embed_tokens") for m in recipe.get("lora_modules_to_save") or [])
        * arch.vocab
        * arch.hidden
    )
    return f"{n:,} ({n / total:.2%} of {total:,})"


SAMPLE_ROWS = 1000  # rows of each local source the dry run reads through the training validation


def preflight(recipe: Recipe, probe: bool = False) -> str:
    """Fail fast, before any heavy import: data paths that exist nowhere, an unknown `tiny:` model, a model that
    cannot be reached offline (or, with `probe`, that the Hub does not answer for). Returns where it loads from."""
    from qwen_recipes.data.sources import DataError
    from qwen_recipes.training.model import require_model

    where = require_model(str(recipe.get("model_name_or_path")), recipe.get("model_revision"), probe=probe)
    if recipe.data_problems:
        raise DataError("\n".join(recipe.data_problems))
    return where


def data_plan(recipe: Recipe) -> tuple[dict[str, str], int | None]:
    """Per source: rows read, usable, skipped by reason and used after `samples:`/`weight:`, from the first
    `SAMPLE_ROWS` rows of each local source through the same validation as training; and the rows used when known.

    `--strict` fails on any bad row seen; an empty source, or one short of its `samples:`, is the training error.
    """
    import random

    from qwen_recipes.data.mixture import read_mixture, resample
    from qwen_recipes.data.report import DataReport
    from qwen_recipes.data.sources import DataError
    from qwen_recipes.recipe.vision import family_offline

    report = DataReport()
    canonical = None
    if family_offline(recipe) is not None:  # vision rows: content parts and media, checked as training checks them
        from qwen_recipes.data.vision import media_converter

        canonical = media_converter()
    sources, problems = read_mixture(recipe, report=report, limit=SAMPLE_ROWS, canonical=canonical)
    if problems:
        raise DataError("\n".join(problems))
    rng = random.Random(recipe.get("seed"))
    lines: dict[str, str] = {}
    counts: dict[str, int] = {}
    total: int | None = 0
    for stats, src in zip(report.by_source, sources, strict=True):
        if src is None:
            lines[stats["source"]] = f"Hub dataset: read when the run loads it ({stats['requested']})"
            total = None
            continue
        skipped = {k: v for k, v in report.skipped.items() if v} if len(sources) == 1 else None
        read = f"{stats['read']:,} rows read" if src.complete else f"first {stats['read']:,} rows read (of more)"
        reasons = f" ({', '.join(f'{k}: {v}' for k, v in skipped.items())})" if skipped else ""
        used = counts[stats["source"]] = len(resample(src.rows, src.spec, rng))
        if src.complete or src.spec.samples is not None:
            after = f"{used:,} used ({stats['requested']})"
        else:
            after = f"at least {used:,} used ({stats['requested']})"
            total = None
        lines[stats["source"]] = f"{read}, {stats['usable']:,} usable, {stats['skipped']:,} skipped{reasons}, {after}"
        if total is not None:
            total += used
    if total and len(lines) > 1:  # the realised mix, next to what each source requested
        for name, used in counts.items():
            lines[name] += f" = {used / total:.1%} of the mix"
    for i, note in enumerate(report.notes()):
        lines[f"note {i + 1}"] = note.removeprefix("data: ")
    if recipe.task in ("sft", "cpt") and recipe.overlong == "drop":
        lines["note"] = "overlong: drop also removes rows longer than max_length when they are tokenized"
    return lines, total


def plan(recipe: Recipe) -> dict[str, Any]:
    """Model, method, launch, data rows per source, steps and (when cheap) trainable parameters of a recipe."""
    model_from = preflight(recipe)
    launch = describe_launch(recipe, planned=True)
    data_lines, known_rows = data_plan(recipe)
    per_step = recipe.get("per_device_train_batch_size") * recipe.get("gradient_accumulation_steps") * launch.world_size
    steps = None
    if recipe.get("max_steps") > 0:
        steps = recipe.get("max_steps")
    elif known_rows is not None and not recipe.get("packing"):
        steps = math.ceil(known_rows / per_step) * math.ceil(recipe.get("num_train_epochs"))
    sharding = {None: "none", "deepspeed": f"DeepSpeed ZeRO-{launch.zero_stage}", "fsdp": "FSDP"}[launch.engine]
    loads = {"tiny": "tiny random test-bed model (built offline)", "local": "local folder",
             "cache": "Hugging Face cache", "hub": "the Hub (downloaded at load)"}[model_from]  # fmt: skip
    return {
        **_base_plan(recipe, launch, loads, data_lines, known_rows, per_step, steps, sharding),
        **hybrid_plan(recipe),
    }


def hybrid_plan(recipe: Recipe) -> dict[str, Any]:
    """Kernels and packing of linear-attention families, experts and router loss of MoE ones, and warnings."""
    from qwen_recipes.training import hybrid

    kernels = hybrid.kernel_plan(recipe)
    out: dict[str, Any] = {**kernels.lines, **hybrid.moe_lines(recipe, kernels.family)}
    out.update({f"warning {i + 1}": w for i, w in enumerate(kernels.warnings)})
    return out


def _base_plan(
    recipe: Recipe, launch: Any, loads: str, data_lines: Any, known_rows: Any, per_step: int, steps: Any, sharding: str
) -> dict[str, Any]:
    return {
        "model": f"{recipe.get('model_name_or_path')} ({loads})",
        "task": recipe.task,
        "method": recipe.method,
        "output_dir": recipe.get("output_dir"),
        "data": data_lines,
        "rows used": known_rows if known_rows is not None else "known after loading (Hub data or a large source)",
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
        if isinstance(value, dict):  # the data sources, one line each
            print(f"{key:>30}:")
            for name, line in value.items():
                print(f"    {name}: {line}")
        else:
            print(f"{key:>30}: {value:,}" if isinstance(value, int) else f"{key:>30}: {value}")
