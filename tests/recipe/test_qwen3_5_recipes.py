"""The Qwen3.5-line and Qwen3-MoE recipes: each passes --dry-run with its kernel / expert plan, its cost comment
agrees with `qwen-recipes estimate`, and its LoRA choices cite LoRA Without Regret."""

from __future__ import annotations

import re

import pytest
from helpers import ROOT, train

from qwen_recipes.recipe import load_recipe

RECIPES = [*sorted((ROOT / "recipes/qwen3_5").glob("*.yaml")), ROOT / "recipes/qwen3/30b-a3b-lora.yaml"]


def test_the_issue_s_seven_recipes_are_shipped():
    names = {p.stem for p in RECIPES}
    assert names == {
        "9b-lora-24gb",  # Qwen3.5-9B LoRA SFT on one 24 GB GPU
        "27b-lora-80gb",  # Qwen3.5-27B LoRA on one 80 GB GPU
        "35b-a3b-lora-experts",  # Qwen3.5-35B-A3B LoRA with experts
        "30b-a3b-lora",  # Qwen3-30B-A3B LoRA
        "s1.1-qwen3.6-27b-lora",  # s1.1 on a 27B Qwen3.5-line model
        "ja-sft-9b-lora",  # Japanese SFT on Qwen3.5-9B
        "grpo-gsm8k-4b-lora",  # GRPO on Qwen3.5-4B
    }


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_passes_dry_run_and_plans_its_kernels_and_experts(path, capsys, monkeypatch, hub_online):
    monkeypatch.chdir(ROOT)
    assert train(path, "--dry-run") == 0
    out = capsys.readouterr().out
    recipe = load_recipe(path)
    if recipe.get("model_name_or_path").startswith("Qwen/Qwen3."):  # the hybrid line
        assert "linear attention: Gated-DeltaNet on" in out
        if recipe.task == "sft" and recipe.get("packing"):
            assert re.search(r"packing: (padding-free|off: .* not installed)", out)
    if "A3B" in path.stem:
        assert "expert LoRA (target_parameters): mlp.experts.gate_up_proj, mlp.experts.down_proj" in out
        assert "router load-balancing loss: on" in out and "expert kernels: grouped_mm" in out
        assert recipe.get("lora_dropout") == 0.0


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_cost_comment_agrees_with_the_estimate(path):
    from qwen_recipes.cost.estimate import estimate

    text = path.read_text()
    claim = re.search(r"qwen-recipes estimate: ~(\d+(?:\.\d+)?) GB", text)
    assert claim, f"{path.name}: no '# qwen-recipes estimate: ~N GB' comment"
    est = estimate(load_recipe(path), compare=False)["estimate"]
    assert est["fits"], path.name
    assert float(claim.group(1)) == pytest.approx(est["memory_total_gb"], rel=0.03), path.name
    assert "thinkingmachines.ai/blog/lora" in text  # LoRA Without Regret, where its defaults are used
    if "qwen3_5" in path.parts:
        assert "QLoRA" in text or "GRPO" in text  # why bf16 LoRA, not 4-bit (unsloth), where it applies
