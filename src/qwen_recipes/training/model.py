"""Tokenizer, model and PEFT config from a recipe, through TRL's `ModelConfig` helpers.

`model_name_or_path: tiny:<family>` builds the offline tiny random model of the test bed (`testbed.py`), so the
quickstart runs without a GPU or the Hub; any other value is a Hub id or local path.
"""

from __future__ import annotations

import os
from typing import Any

from qwen_recipes import families
from qwen_recipes.recipe import Recipe
from qwen_recipes.training import precision


def resolve_model_path(name: str) -> str:
    """A loadable path or Hub id; `tiny:<family>` is materialised once in the cache."""
    from qwen_recipes.data.pipeline import cache_home
    from qwen_recipes.testbed import resolve_tiny

    return resolve_tiny(name, cache_home())


def compute_dtype(recipe: Recipe) -> str:
    """The recipe's `dtype`, or bf16 on GPUs that support it and fp32 elsewhere ('auto')."""
    import torch

    cuda = torch.cuda.is_available()
    return precision.compute_dtype(recipe, cuda, cuda and torch.cuda.is_bf16_supported())


def lora_target_modules(recipe: Recipe) -> Any:
    """The recipe's LoRA targets; `all-linear` means the family's own list (never a vision tower's linears)."""
    targets = recipe.get("lora_target_modules")
    family = families.find(model_type(recipe))
    if family is not None and family.vision is not None:  # a regex: the LM's linears (+ the tower's if it trains)
        from qwen_recipes.training import vision

        return vision.lora_target_modules(family, targets, recipe)
    if targets != "all-linear":
        return targets
    return list(family.lora_targets) if family else targets


def model_config(recipe: Recipe) -> Any:
    """TRL's `ModelConfig` for the recipe: `method` decides PEFT and 4-bit; QLoRA stores 4-bit in the compute dtype."""
    from trl import ModelConfig

    kwargs = dict(recipe.model_kwargs())
    kwargs["model_name_or_path"] = resolve_model_path(recipe.get("model_name_or_path"))
    kwargs["dtype"] = compute_dtype(recipe)
    kwargs["use_peft"] = recipe.method in ("lora", "qlora")
    kwargs["load_in_4bit"] = recipe.method == "qlora"
    kwargs["lora_target_modules"] = lora_target_modules(recipe)
    if kwargs["use_peft"] and (extra := vision_modules_to_save(recipe)):
        kwargs["lora_modules_to_save"] = [*(kwargs.get("lora_modules_to_save") or []), *extra]
    if recipe.method == "qlora":
        kwargs["use_bnb_nested_quant"] = recipe.get("use_bnb_nested_quant")
        # Same storage and compute dtype lets ZeRO-3/FSDP shard the 4-bit weights (peft#1972).
        kwargs["bnb_4bit_quant_storage"] = recipe.get("bnb_4bit_quant_storage") or kwargs["dtype"]
    return ModelConfig(**kwargs)


def load_tokenizer(recipe: Recipe, chat: bool) -> Any:
    """The tokenizer, with the family's eos/pad convention: eos `<|im_end|>` for chat training, pad `<|endoftext|>`."""
    from transformers import AutoTokenizer

    path = resolve_model_path(recipe.get("model_name_or_path"))
    tok = AutoTokenizer.from_pretrained(path, revision=recipe.get("model_revision"))
    family = families.find(model_type(recipe))
    spec = family.tokenizer if family else families.QWEN3.tokenizer  # every Qwen shares the ChatML convention
    if chat:
        # A base model being chat-tuned must also learn to stop at <|im_end|> (QwenLM/Qwen3#1064).
        tok.eos_token = spec.chat_eos
    if tok.pad_token is None or tok.pad_token == tok.eos_token:
        tok.pad_token = spec.base_eos
    if (family is not None and family.vision is not None) or recipe.get("vision_encoder"):
        from qwen_recipes.training.vision import load_processor

        return load_processor(recipe, tok)  # a vision-language model: the processor wraps this tokenizer
    return tok


def load_model(recipe: Recipe, tokenizer: Any, sharded: bool = False) -> Any:
    """The causal LM in the recipe's dtype (4-bit for QLoRA), eos/pad agreeing with the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import get_quantization_config

    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a vision-language processor's own tokenizer
    mc = model_config(recipe)
    kwargs: dict[str, Any] = {"revision": mc.model_revision, "dtype": getattr(torch, mc.dtype)}
    attn = mc.attn_implementation or default_attention(recipe)
    if attn:
        kwargs["attn_implementation"] = attn
    quant = get_quantization_config(mc)
    if quant is not None:
        kwargs["quantization_config"] = quant
        if torch.cuda.is_available() and not sharded:
            # One process per GPU; under DeepSpeed/FSDP no device_map, the engine places the weights.
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    family = families.find(model_type(recipe))
    if family is not None and family.vision is not None:
        from qwen_recipes.training.vision import load_vision_model

        model = load_vision_model(recipe, kwargs, mc.model_name_or_path, tokenizer)
    else:
        model = AutoModelForCausalLM.from_pretrained(mc.model_name_or_path, **kwargs)
    end_of_text = tokenizer.pad_token_id
    eos_ids = [tokenizer.eos_token_id] + [i for i in [end_of_text] if i != tokenizer.eos_token_id]
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = eos_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def default_attention(recipe: Recipe) -> str | None:
    """flash_attention_2 for padding-free batches on CUDA when flash-attn is installed; else transformers' default.

    Padding-free rows hold many sequences: SDPA computes attention over the whole row behind a block-diagonal mask,
    a varlen kernel only within each sequence (docs/benchmarks.md).
    """
    import importlib.util

    import torch

    padding_free = recipe.get("padding_free") or (
        recipe.get("packing") and recipe.get("packing_strategy") in ("bfd", "bfd_split")
    )
    if padding_free and torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return None


def peft_config(recipe: Recipe) -> Any:
    """The LoraConfig (LoRA, QLoRA, DoRA, rsLoRA) or None for a full fine-tune."""
    from trl.trainer.utils import get_peft_config

    return get_peft_config(model_config(recipe))


def model_type(recipe: Recipe) -> str | None:
    """`config.model_type` of the recipe's model (reads config.json only; a tiny model's from its family)."""
    from qwen_recipes.testbed import tiny_family

    if recipe.get("vision_encoder"):  # an LLM composed with a vision encoder (training/vision_compose.py)
        from qwen_recipes.training.vision import composer_family

        return composer_family().model_type
    family = tiny_family(recipe.get("model_name_or_path"))
    if family is not None:
        return family.model_type
    from transformers import AutoConfig

    path = resolve_model_path(recipe.get("model_name_or_path"))
    return AutoConfig.from_pretrained(path, revision=recipe.get("model_revision")).model_type


def vision_modules_to_save(recipe: Recipe) -> list[str]:
    """Projector modules a LoRA run trains whole (`train_projector`), [] for text-only models."""
    family = families.find(model_type(recipe))
    if family is None or family.vision is None:
        return []
    from qwen_recipes.training import vision

    return vision.lora_modules_to_save(family, recipe, vision.meta_model(recipe))
