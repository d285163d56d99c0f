"""Model loading decisions that do not need weights: attention kernel, dtype, PEFT config from `method`."""

from __future__ import annotations

import importlib.util

import torch
from helpers import ROOT, write_recipe

from qwen_recipes import families
from qwen_recipes.recipe import load_recipe
from qwen_recipes.training.model import compute_dtype, default_attention, model_config, peft_config


def test_padding_free_picks_flash_attention_on_cuda_when_installed(tmp_path, monkeypatch):
    data = ROOT / "data/samples/arithmetic_sft.jsonl"
    packed = load_recipe(write_recipe(tmp_path / "a.yaml", datasets=[str(data)]))
    padded = load_recipe(write_recipe(tmp_path / "b.yaml", datasets=[str(data)], packing=False))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_attention(packed) is None  # CPU: transformers' default
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: object() if name == "flash_attn" else real_find_spec(name)
    )
    assert default_attention(packed) == "flash_attention_2"
    assert default_attention(padded) is None
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert default_attention(packed) is None


def test_method_decides_peft_and_4bit(tmp_path):
    data = ROOT / "data/samples/arithmetic_sft.jsonl"
    base = [str(ROOT / "recipes/_base/sft.yaml")]
    qlora = load_recipe(
        write_recipe(tmp_path / "q.yaml", base=[*base, str(ROOT / "recipes/_base/qlora.yaml")], datasets=[str(data)])
    )
    mc = model_config(qlora)
    assert mc.use_peft and mc.load_in_4bit and mc.use_bnb_nested_quant and mc.bnb_4bit_quant_type == "nf4"
    expected = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    assert mc.bnb_4bit_quant_storage == mc.dtype == compute_dtype(qlora) == expected  # storage = compute: shardable
    full = load_recipe(write_recipe(tmp_path / "f.yaml", method="full", datasets=[str(data)]))
    assert not model_config(full).use_peft and peft_config(full) is None
    lora = peft_config(load_recipe(write_recipe(tmp_path / "l.yaml", datasets=[str(data)], use_dora=True)))
    # all-linear is the family's own list of decoder linears (never a vision tower's)
    assert lora.use_dora and lora.r == 16 and lora.target_modules == set(families.QWEN3.lora_targets)


def test_dry_run_trainable_parameters_match_peft(tmp_path):
    """The plan's count (from the architecture table, no weights) equals PEFT's count on the real model."""
    from peft import get_peft_model

    from qwen_recipes.recipe.plan import trainable_parameters
    from qwen_recipes.testbed import tiny_model

    recipe = load_recipe(ROOT / "recipes/quickstart/tiny-qwen3-cpu.yaml")  # LoRA r=16 + lm_head copy
    model = get_peft_model(tiny_model("qwen3"), peft_config(recipe))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable_parameters(recipe).startswith(f"{trainable:,} (")


def test_ddp_skips_the_unused_parameter_search_only_where_every_parameter_is_used(tmp_path):
    """Dense LoRA and full fine-tuning of a dense text model use every trainable parameter in each forward; experts a
    batch may skip, and Qwen3.5's multimodal class (a tower a text batch leaves unused), keep transformers' choice."""
    from qwen_recipes.training.noise import trainer_kwargs

    def choice(model: str, method: str, **values) -> bool | None:
        values = {"datasets": [str(ROOT / "data/samples/arithmetic_sft.jsonl")], **values}
        recipe = load_recipe(write_recipe(tmp_path / "r.yaml", model_name_or_path=model, method=method, **values))
        return trainer_kwargs(recipe, {}).get("ddp_find_unused_parameters")

    assert choice("tiny:qwen3", "lora") is False and choice("tiny:qwen3", "full") is False
    assert choice("tiny:qwen3_moe", "full") is None and choice("tiny:qwen3_5", "full") is None
    assert choice("tiny:qwen3_moe", "lora", lora_target_parameters=["mlp.experts.gate_up_proj"]) is None
    assert choice("tiny:qwen3", "full", ddp_find_unused_parameters=True) is None  # the recipe's own value is passed on
