"""Which precision a run trains in: one rule for the trainer, the model loader and the estimate.

The recipe decides when it says (`dtype`, `bf16`, `fp16`); otherwise bf16 where the GPU supports it and fp32
elsewhere (a CPU run, or a GPU without bf16 tensor cores). The device is passed in, so the estimate can ask the
question of the GPU it plans for and the trainer of the GPU it runs on. Torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwen_recipes.recipe import Recipe


def compute_dtype(recipe: Recipe, cuda: bool, bf16_supported: bool) -> str:
    """The dtype the weights load in: the recipe's `dtype`, or bfloat16 on bf16 GPUs and float32 elsewhere."""
    dtype = recipe.get("dtype")
    if dtype not in (None, "auto"):
        return str(dtype)
    return "bfloat16" if cuda and bf16_supported else "float32"


def mixed_precision(recipe: Recipe, cuda: bool, bf16_supported: bool) -> str | None:
    """'bf16' / 'fp16' autocast, or None: the recipe's bf16/fp16 when it sets one, else bf16 on bf16 GPUs."""
    if recipe.is_set("bf16") or recipe.is_set("fp16"):
        return "bf16" if recipe.get("bf16") else "fp16" if recipe.get("fp16") else None
    return "bf16" if cuda and bf16_supported else None
