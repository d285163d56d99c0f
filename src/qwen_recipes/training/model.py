"""Tokenizer, model and PEFT config from a recipe, through TRL's `ModelConfig` helpers.

`model_name_or_path: tiny:<family>` builds the offline tiny random model of the test bed (`testbed.py`), so the
quickstart runs without a GPU or the Hub; any other value is a Hub id or local path.
"""

from __future__ import annotations

import os
from typing import Any

from qwen_recipes import families
from qwen_recipes.errors import UserError
from qwen_recipes.recipe import Recipe
from qwen_recipes.training import precision


def resolve_model_path(name: str, revision: str | None = None) -> str:
    """A loadable path or Hub id; `tiny:<family>` is materialised once in the cache. Unreachable: one clean error."""
    from qwen_recipes.data.pipeline import cache_home
    from qwen_recipes.testbed import resolve_tiny

    require_model(name, revision)
    return resolve_tiny(name, cache_home())


class ModelNotFound(UserError):
    """A model that is neither a local folder, nor in the Hugging Face cache, nor reachable on the Hub."""

    label = "model not found"


def require_model(name: str, revision: str | None = None, probe: bool = False) -> str:
    """Where `name` will load from ('tiny', 'local', 'cache' or 'hub'), or `ModelNotFound` naming what was tried.

    Torch-free; the Hub is contacted only with `probe` (one metadata request, no retries), which a run does before
    loading so that an unreachable Hub is one clean error instead of a minute of retries and chained tracebacks.
    """
    from pathlib import Path

    from qwen_recipes.testbed import tiny_family

    if tiny_family(name) is not None:  # an unknown tiny:<family> is a user error listing the families
        return "tiny"
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"model_name_or_path={name!r}: {path.resolve()} has no config.json; not a model folder")
        return "local"
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError

    tried = f"a local folder {path.resolve()} (none)"
    try:
        cached = try_to_load_from_cache(name, "config.json", revision=revision)
    except HFValidationError:  # not even a valid Hub id: only a local path was possible
        raise ModelNotFound(
            f"model_name_or_path={name!r}: no such local folder ({path.resolve()}) and not a Hub id (org/name); "
            "fix the path"
        ) from None
    if isinstance(cached, str):
        return "cache"
    if constants.is_offline_mode():
        raise ModelNotFound(
            f"model_name_or_path={name!r} is not available offline. Tried: {tried}; the Hugging Face cache "
            f"{constants.HF_HUB_CACHE} (not downloaded); the Hub (HF_HUB_OFFLINE is set). Fix: download it once "
            f"online (`hf download {name}`), or set model_name_or_path to a local model folder"
        )
    if probe:
        _probe_hub(name, revision, tried=f"{tried}; the Hugging Face cache {constants.HF_HUB_CACHE} (not downloaded)")
    return "hub"


def _probe_hub(name: str, revision: str | None, tried: str) -> None:
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    head = f"model_name_or_path={name!r}" + (f" (revision {revision})" if revision else "")
    try:
        HfApi().model_info(name, revision=revision, timeout=10)
    except GatedRepoError:
        raise ModelNotFound(
            f"{head} is gated on the Hub: accept its terms on https://huggingface.co/{name} and log in "
            "(`hf auth login` or HF_TOKEN)"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise ModelNotFound(
            f"{head}: no such model on the Hub (or it is private: log in with `hf auth login`). Tried: {tried}; "
            "the Hub. Fix: check the id, or set model_name_or_path to a local model folder"
        ) from None
    except Exception as e:  # network: DNS, refused, timeout
        raise ModelNotFound(
            f"{head} cannot be reached. Tried: {tried}; the Hub at {constants.ENDPOINT} ({type(e).__name__}). Fix: "
            f"check the network, or download it where there is one (`hf download {name}`) and set "
            "model_name_or_path to that folder (or HF_HUB_OFFLINE=1 to use the cache only)"
        ) from None


def compute_dtype(recipe: Recipe) -> str:
    """The recipe's `dtype`, or bf16 on GPUs that support it and fp32 elsewhere ('auto')."""
    import torch

    cuda = torch.cuda.is_available()
    return precision.compute_dtype(recipe, cuda, cuda and torch.cuda.is_bf16_supported())


def lora_target_modules(recipe: Recipe) -> Any:
    """The recipe's LoRA targets; `all-linear` means the family's own list (never a vision tower's linears)."""
    from qwen_recipes.training import vision

    targets = recipe.get("lora_target_modules")
    if (vl := vision.recipe_family(recipe)) is not None:  # a regex: the LM's linears (+ the tower's if it trains)
        return vision.lora_target_modules(vl, targets, recipe)
    family = families.find(model_type(recipe))
    if targets != "all-linear":
        return targets
    return list(family.lora_targets) if family else targets


def lora_target_parameters(recipe: Recipe) -> list[str] | None:
    """The recipe's expert-parameter LoRA targets, else the family's (fused MoE experts); None for dense families."""
    if recipe.is_set("lora_target_parameters"):
        return recipe.get("lora_target_parameters")
    family = families.find(model_type(recipe))
    return list(family.lora_target_parameters) if family and family.lora_target_parameters else None


def model_config(recipe: Recipe) -> Any:
    """TRL's `ModelConfig` for the recipe: `method` decides PEFT and 4-bit; QLoRA stores 4-bit in the compute dtype."""
    from trl import ModelConfig

    kwargs = dict(recipe.model_kwargs())
    kwargs["model_name_or_path"] = resolve_model_path(recipe.get("model_name_or_path"), recipe.get("model_revision"))
    kwargs["dtype"] = compute_dtype(recipe)
    kwargs["use_peft"] = recipe.method in ("lora", "qlora")
    kwargs["load_in_4bit"] = recipe.method == "qlora"
    kwargs["lora_target_modules"] = lora_target_modules(recipe)
    kwargs["lora_target_parameters"] = lora_target_parameters(recipe)
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

    path = resolve_model_path(recipe.get("model_name_or_path"), recipe.get("model_revision"))
    tok = AutoTokenizer.from_pretrained(path, revision=recipe.get("model_revision"))
    family = families.find(model_type(recipe))
    spec = family.tokenizer if family else families.QWEN3.tokenizer  # every Qwen shares the ChatML convention
    if chat:
        # A base model being chat-tuned must also learn to stop at <|im_end|> (QwenLM/Qwen3#1064).
        tok.eos_token = spec.chat_eos
    if tok.pad_token is None or tok.pad_token == tok.eos_token:
        tok.pad_token = spec.base_eos
    from qwen_recipes.training.vision import load_processor, recipe_family

    if recipe_family(recipe) is not None:
        return load_processor(recipe, tok)  # a vision-language model: the processor wraps this tokenizer
    return tok


def load_model(recipe: Recipe, tokenizer: Any, sharded: bool = False) -> Any:
    """The causal LM in the recipe's dtype (4-bit for QLoRA), eos/pad agreeing with the tokenizer."""
    import torch
    from trl.trainer.utils import get_quantization_config

    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a vision-language processor's own tokenizer
    mc = model_config(recipe)
    kwargs: dict[str, Any] = {"revision": mc.model_revision, "dtype": getattr(torch, mc.dtype)}
    attn = mc.attn_implementation or default_attention(recipe)
    if attn:
        kwargs["attn_implementation"] = attn
    if recipe.get("experts_implementation"):
        kwargs["experts_implementation"] = recipe.get("experts_implementation")
    quant = get_quantization_config(mc)
    if quant is not None:
        kwargs["quantization_config"] = quant
        if torch.cuda.is_available() and not sharded:
            # One process per GPU; under DeepSpeed/FSDP no device_map, the engine places the weights.
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    from qwen_recipes.training.vision import load_vision_model, recipe_family

    if recipe_family(recipe) is not None:
        model = load_vision_model(recipe, kwargs, mc.model_name_or_path, tokenizer)
    else:  # the family's published class (Qwen3.5: with its tower, so adapter names are the published model's)
        model = auto_class(model_type(recipe)).from_pretrained(mc.model_name_or_path, **kwargs)
    end_of_text = tokenizer.pad_token_id
    eos_ids = [tokenizer.eos_token_id] + [i for i in [end_of_text] if i != tokenizer.eos_token_id]
    for config in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = eos_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def auto_class(model_type: str | None) -> Any:
    """The transformers auto class a family's checkpoints load with (AutoModelForCausalLM for unknown types).

    Natively multimodal families (Qwen3.5) load in their published class even for text-only data, so that an
    adapter's module names (`model.language_model.layers.N...`) are the published checkpoint's, which PEFT and vLLM
    load by name; their LoRA targets never include the vision tower's linears.
    """
    import transformers

    family = families.find(model_type)
    return getattr(transformers, family.auto_class if family else "AutoModelForCausalLM")


def router_aux_loss_coef(recipe: Recipe) -> float | None:
    """TRL's `router_aux_loss_coef` for a recipe: 0.0 turns the MoE load-balancing loss off, None keeps the model's.

    `output_router_logits: false` turns it off; GRPO leaves it off unless the recipe sets it (0.001 hurt GRPO on
    Qwen3.5-35B-A3B, NVIDIA-NeMo/RL PR #3169); SFT/DPO keep the checkpoint's coefficient (0.001 on Qwen3-MoE).
    """
    if recipe.get("output_router_logits") is False:
        return 0.0
    if recipe.is_set("router_aux_loss_coef"):
        return recipe.get("router_aux_loss_coef")
    if recipe.task == "grpo" and recipe.get("output_router_logits") is None:
        return 0.0
    return None


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

    path = resolve_model_path(recipe.get("model_name_or_path"), recipe.get("model_revision"))
    return AutoConfig.from_pretrained(path, revision=recipe.get("model_revision")).model_type


def vision_modules_to_save(recipe: Recipe) -> list[str]:
    """Projector modules a LoRA run trains whole (`train_projector`), [] for text-only models."""
    from qwen_recipes.training import vision

    family = vision.recipe_family(recipe)
    return [] if family is None else vision.lora_modules_to_save(family, recipe, vision.meta_model(recipe))
