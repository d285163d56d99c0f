"""Measured beside predicted: what `qwen-recipes estimate` predicts for a finished run, and measured / predicted.

Torch-free (the card and `costs` read it without the trainer). The prediction uses the run's own recipe, GPU type and
count and its measured tokens, so the ratio isolates the time model: every GPU run is a calibration point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qwen_recipes.cost.hardware import GPUS_PER_NODE, gpu_from_device_name

if TYPE_CHECKING:
    from qwen_recipes.recipe import Recipe


def predicted_block(recipe: Recipe | None, cost: dict[str, Any]) -> dict[str, Any]:
    """What the estimate predicts for this run's recipe, GPUs and measured tokens, and measured / predicted."""
    from qwen_recipes.cost.bands import time_band
    from qwen_recipes.cost.estimate import Tokens, plan, work_for
    from qwen_recipes.cost.memory import GB, memory_items, total_bytes
    from qwen_recipes.cost.models import UnknownModel, recipe_arch
    from qwen_recipes.cost.timing import predict

    gpus, gpu = cost.get("gpus") or 0, gpu_from_device_name(cost.get("device_name"))
    if recipe is None or not gpus or gpu is None or not cost.get("tokens") or not cost.get("steps"):
        return {"available": False, "reason": "the time model predicts GPU runs of a known GPU type with tokens"}
    try:
        arch = recipe_arch(recipe)[0]
    except UnknownModel as e:
        return {"available": False, "reason": str(e).splitlines()[0]}
    tokens = int(cost["tokens"])
    per_step = int(recipe.get("per_device_train_batch_size")) * int(recipe.get("gradient_accumulation_steps"))
    sequences = max(1, cost["steps"] * per_step * gpus)  # sequences seen: their mean length is the rows' length
    p = plan(recipe, arch, gpus, gpu, Tokens(tokens, "measured", rows=sequences))
    w = work_for(recipe, arch, p.setup, Tokens(tokens, "measured", rows=sequences), tokens, [])
    t = predict(arch, w, gpu)
    launch = p.setup
    band = time_band(gpu.generation, gpus, gpus > GPUS_PER_NODE, launch.zero_stage == 3,
                     launch.offload_params or launch.offload_optimizer, "exact", recipe.task)  # fmt: skip
    items = memory_items(arch, p.setup)
    allocated = (total_bytes(items) - items.get("CUDA context + allocator slack", 0.0)) / GB
    pred = {
        "available": True,
        "hardware": f"{gpus}x{gpu.name}",
        "tokens": tokens,
        "hours": t.seconds / 3600,
        "hours_low": t.seconds * band.low / 3600,
        "hours_high": t.seconds * band.high / 3600,
        "tokens_per_second": tokens / t.seconds,
        "mfu": (cost["model_flops"] / (gpus * gpu.peak_tflops * 1e12 * t.seconds)) if cost.get("model_flops") else None,
        "peak_memory_allocated_gb": round(allocated, 3),  # per GPU, without the CUDA context and allocator slack
    }
    measured = {
        "time": cost["wall_seconds"] / t.seconds,
        "tokens_per_second": (cost.get("tokens_per_second") or 0) / pred["tokens_per_second"],
        "mfu": cost["mfu"] / pred["mfu"] if (cost.get("mfu") and pred["mfu"]) else None,
        "peak_memory": cost["peak_memory_bytes"] / GB / allocated
        if (cost.get("peak_memory_bytes") and allocated)
        else None,
    }
    pred["measured_over_predicted"] = {k: round(v, 4) if v else None for k, v in measured.items()}
    return pred


def predicted_rows(cost: dict[str, Any]) -> list[tuple[str, Any]]:
    """Card rows: measured beside predicted (time, tokens/s, MFU, peak memory) with the ratio."""
    p = (cost or {}).get("predicted") or {}
    if not p.get("available"):
        return [("predicted (qwen-recipes estimate)", p.get("reason", "not recorded"))] if p else []
    r = p["measured_over_predicted"]
    ratio = lambda k: f" (measured / predicted {r[k]:.2f})" if r.get(k) else ""  # noqa: E731 - local shorthand
    rows = [
        ("predicted time", f"{p['hours'] * 3600:,.0f} s (band {p['hours_low'] * 3600:,.0f}-{p['hours_high'] * 3600:,.0f} s)"
         f" on {p['hardware']}{ratio('time')}"),
        ("predicted tokens/s", f"{p['tokens_per_second']:,.0f}{ratio('tokens_per_second')}"),
        ("predicted peak memory per GPU", f"{p['peak_memory_allocated_gb']:.1f} GB{ratio('peak_memory')}"),
    ]  # fmt: skip
    if p.get("mfu"):
        rows.append(("predicted MFU", f"{p['mfu']:.1%}{ratio('mfu')}"))
    return rows
