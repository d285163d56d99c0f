"""Library messages that fire on every run but mean nothing is wrong: silenced here, each with the reason, or
explained once in our own words. Anything not listed still prints.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from qwen_recipes.recipe import Recipe


def quiet(cuda: bool) -> None:
    """Silence the known harmless messages of a training process (call once, before the trainer is built)."""
    if not cuda:
        # DeepSpeed (imported by transformers' trainer when installed) guesses the accelerator and warns "Setting
        # accelerator to CPU" on every CPU run; telling it the answer is the documented way to skip the guess.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        # bitsandbytes' CPU backend tries an optional kernel from the Hub and logs "pip install kernels" when it is
        # absent; its built-in CPU kernel is used instead, which is what a CPU QLoRA smoke run wants.
        logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # PEFT and TRL still read transformers' deprecated `is_gradient_checkpointing` alias (transformers 5.x); our code
    # uses the new names. Removed in transformers 6, together with this filter.
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    # A copy of a tied lm_head in `lora_modules_to_save` is deliberate (explained once by `explain_tied_head`).
    warnings.filterwarnings("ignore", message=r"Model has `tie_word_embeddings=True` and a tied layer is part of")


def explain_tied_head(recipe: Recipe, model: Any) -> str | None:
    """One line on training a copy of a tied output head, instead of PEFT's generic warning; None when n/a."""
    saved = set(recipe.get("lora_modules_to_save") or []) & {"lm_head", "embed_tokens"}
    if recipe.method == "full" or not saved or not getattr(model.config, "tie_word_embeddings", False):
        return None
    return (
        f"note: this model ties its input embeddings and output head; lora_modules_to_save trains "
        f"{' and '.join(sorted(saved))} as its own copy (PEFT ensure_weight_tying: false), so the adapter unties "
        "them and `qwen-recipes merge` saves them untied (tie_word_embeddings: false)"
    )


def _every_parameter_used(recipe: Recipe) -> bool:
    # Whether each forward uses every trainable parameter: dense LoRA, or full fine-tuning of a dense text-only model
    # (a multimodal class, e.g. Qwen3.5's, holds a tower a text batch leaves unused).
    if recipe.method in ("lora", "qlora"):
        return not recipe.get("lora_target_parameters")
    from qwen_recipes import families
    from qwen_recipes.training.model import model_type

    family = families.find(model_type(recipe))
    # Every vision-language class (and Qwen3.5's) loads with AutoModelForImageTextToText, so this is text-only.
    return family is not None and family.auto_class == "AutoModelForCausalLM" and not family.lora_target_parameters


def trainer_kwargs(recipe: Recipe, kwargs: dict[str, Any]) -> dict[str, Any]:
    """TRL config arguments under transformers' current names, and DDP told what it needs to know.

    `gradient_checkpointing` (a recipe key, TRL's name) is passed as `activation_checkpointing`, so transformers does
    not warn that the old name is deprecated. Under DDP, LoRA on linear layers uses every trainable parameter in each
    forward, and so does full fine-tuning of a dense text-only model, so DDP's search for unused ones is skipped (it
    warns, and costs a graph traversal per step) unless the recipe says otherwise. Experts a batch may not route to
    (MoE) and a vision tower a text batch does not run keep transformers' choice.
    """
    out = dict(kwargs)
    for old, new in (
        ("gradient_checkpointing", "activation_checkpointing"),
        ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"),
    ):
        if old in out and out.get(new) is None:
            out[new] = out.pop(old)
        out.pop(old, None)
    if "activation_checkpointing" not in out:
        out["activation_checkpointing"] = recipe.get("gradient_checkpointing")
    if not recipe.is_set("ddp_find_unused_parameters") and _every_parameter_used(recipe):
        out["ddp_find_unused_parameters"] = False
    return out
