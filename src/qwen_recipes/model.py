"""Tokenizer, model and PEFT config from a recipe, through TRL's `ModelConfig` helpers.

`model_name_or_path: tiny:qwen3` (or `tiny:qwen2_5`) builds the offline tiny random model of the test bed, so the
quickstart runs without a GPU or the Hub; any other value is a Hub id or local path.
"""

from __future__ import annotations

import os
from typing import Any

TINY_SCHEME = "tiny:"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"


def resolve_model_path(name: str) -> str:
    """A loadable path or Hub id; `tiny:<family>` is materialised once in the cache."""
    if not name.startswith(TINY_SCHEME):
        return name
    from qwen_recipes.data import cache_root
    from qwen_recipes.testing import save_tiny_checkpoint

    family = name[len(TINY_SCHEME) :]
    if family not in ("qwen3", "qwen2_5"):
        raise ValueError(f"model_name_or_path={name!r}: tiny models are tiny:qwen3 or tiny:qwen2_5")
    return str(save_tiny_checkpoint(cache_root().parent / "models" / f"tiny-{family}", family))


def compute_dtype(recipe: Any) -> str:
    """The recipe's `dtype`, or bf16 on GPUs that support it and fp32 elsewhere ('auto')."""
    dtype = recipe.values.get("dtype", "auto")
    if dtype not in (None, "auto"):
        return dtype
    import torch

    return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"


def model_config(recipe: Any) -> Any:
    """TRL's `ModelConfig` for the recipe: `method` decides PEFT and 4-bit; QLoRA stores 4-bit in the compute dtype."""
    from trl import ModelConfig

    kwargs = dict(recipe.model_kwargs())
    kwargs["model_name_or_path"] = resolve_model_path(recipe.model_name_or_path)
    kwargs["dtype"] = compute_dtype(recipe)
    kwargs["use_peft"] = recipe.method in ("lora", "qlora")
    kwargs["load_in_4bit"] = recipe.method == "qlora"
    kwargs.setdefault("lora_target_modules", "all-linear")
    if recipe.method == "qlora":
        kwargs.setdefault("use_bnb_nested_quant", True)
        # Same storage and compute dtype lets ZeRO-3/FSDP shard the 4-bit weights (peft#1972).
        kwargs.setdefault("bnb_4bit_quant_storage", kwargs["dtype"])
    return ModelConfig(**kwargs)


def load_tokenizer(recipe: Any, chat: bool) -> Any:
    """The tokenizer, with Qwen's eos/pad convention: eos `<|im_end|>` for chat training, pad `<|endoftext|>`."""
    from transformers import AutoTokenizer

    path = resolve_model_path(recipe.model_name_or_path)
    tok = AutoTokenizer.from_pretrained(path, revision=recipe.values.get("model_revision", "main"))
    if chat:
        # A base model being chat-tuned must also learn to stop at <|im_end|> (QwenLM/Qwen3#1064).
        tok.eos_token = IM_END
    if tok.pad_token is None or tok.pad_token == tok.eos_token:
        tok.pad_token = ENDOFTEXT
    return tok


def load_model(recipe: Any, tokenizer: Any, sharded: bool = False) -> Any:
    """The causal LM in the recipe's dtype (4-bit for QLoRA), eos/pad agreeing with the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import get_quantization_config

    mc = model_config(recipe)
    kwargs: dict[str, Any] = {"revision": mc.model_revision, "dtype": getattr(torch, mc.dtype)}
    attn = mc.attn_implementation or default_attention(recipe)
    if attn:
        kwargs["attn_implementation"] = attn
    quant = get_quantization_config(mc)
    if quant is not None:
        kwargs["quantization_config"] = quant
        if torch.cuda.is_available() and not sharded:
            # One process per GPU; under ZeRO-3/FSDP no device_map, the engine places the shards.
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    model = AutoModelForCausalLM.from_pretrained(mc.model_name_or_path, **kwargs)
    eos_ids = [tokenizer.eos_token_id] + [
        i for i in [tokenizer.convert_tokens_to_ids(ENDOFTEXT)] if i != tokenizer.eos_token_id
    ]
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = eos_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def default_attention(recipe: Any) -> str | None:
    """flash_attention_2 for padding-free batches on CUDA when flash-attn is installed; else transformers' default.

    Padding-free rows hold many sequences: SDPA computes attention over the whole row behind a block-diagonal mask,
    a varlen kernel only within each sequence (docs/benchmarks.md).
    """
    import importlib.util

    import torch

    padding_free = recipe.values.get("padding_free") or (
        recipe.values.get("packing") and recipe.values.get("packing_strategy", "bfd") in ("bfd", "bfd_split")
    )
    if padding_free and torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return None


def peft_config(recipe: Any) -> Any:
    """The LoraConfig (LoRA, QLoRA, DoRA, rsLoRA) or None for a full fine-tune."""
    from trl.trainer.utils import get_peft_config

    return get_peft_config(model_config(recipe))


def model_type(recipe: Any) -> str | None:
    """`config.model_type` of the recipe's model (reads config.json only)."""
    from transformers import AutoConfig

    path = resolve_model_path(recipe.model_name_or_path)
    return AutoConfig.from_pretrained(path, revision=recipe.values.get("model_revision", "main")).model_type
