"""Every shipped Qwen3.5 / 3.6 / 3.8 / Qwen3-MoE size estimates offline, and its parameter count is transformers'."""

from __future__ import annotations

import json

import pytest
from helpers import chat_rows, write_jsonl, write_recipe

from qwen_recipes import families

NEW = ("qwen3_5", "qwen3_5_moe", "qwen3_moe")
SIZES = {hub_id: fam for fam in NEW for hub_id in families.get(fam).checkpoints}
SIZES |= {f"Qwen/Qwen3-4B-{v}-2507": "qwen3" for v in ("Instruct", "Thinking")}


@pytest.mark.parametrize("method", ["lora", "full"])
def test_estimate_works_for_every_shipped_size(tmp_path, method):
    from qwen_recipes.cost.estimate import estimate
    from qwen_recipes.recipe import load_recipe

    data = write_jsonl(tmp_path / "d.jsonl", chat_rows(2))
    path = write_recipe(tmp_path / "r.yaml", datasets=[str(data)], method=method, max_length=4096, lora_dropout=0.0)
    results = {}
    for hub_id in SIZES:
        recipe = load_recipe(path, {"model_name_or_path": hub_id, "per_device_train_batch_size": 1})
        est = estimate(recipe, hardware="8xH100", tokens=10_000_000, compare=False)
        assert est["architecture_source"] == "built-in table", hub_id
        e = est["estimate"]
        assert e["memory_total_gb"] > 0 and e["flops"]["model"] > 0, hub_id
        assert (e["hours"] > 0) if e["fits"] else (e["hours"] is None and e["usd"] is None), hub_id  # misfit: no time
        results[hub_id] = (est["parameters"], e["memory_total_gb"])
    assert len(results) == len(SIZES) == 23
    # MoE: memory holds all 35B parameters, compute only the ~3B active ones.
    moe = estimate(load_recipe(path, {"model_name_or_path": "Qwen/Qwen3.5-35B-A3B"}), "8xH100", 10**7, compare=False)
    dense = estimate(load_recipe(path, {"model_name_or_path": "Qwen/Qwen3.5-27B"}), "8xH100", 10**7, compare=False)
    assert moe["parameters"] > dense["parameters"]
    assert moe["estimate"]["flops"]["model"] < dense["estimate"]["flops"]["model"] / 4


def _meta_params(fam: families.Family, cfg: dict) -> int:
    import torch

    from qwen_recipes.training.model import auto_class

    values = {k: v for k, v in cfg.items() if k != "model_type"}
    with torch.device("meta"):  # no memory: only the shapes
        model = auto_class(fam.model_type).from_config(fam.config_cls()(**values))
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_equal_transformers_models_built_from_the_table():

    from qwen_recipes.cost.models import arch_from_config

    seen = set()
    for fam_name in NEW:
        fam = families.get(fam_name)
        configs = [*fam.checkpoints.values(), {k: v for k, v in families.tiny_config_values(fam).items()}]
        for cfg in configs:
            key = json.dumps(cfg, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            expected = _meta_params(fam, cfg)
            assert arch_from_config({"model_type": fam.model_type, **cfg}).total_params() == expected, cfg
    assert len(seen) == 11  # 0.8B, 2B, 4B, 9B, 27B, 35B-A3B, 30B-A3B, 235B-A22B and three tiny test beds


def test_published_sizes_and_licences_by_exact_hub_id():
    from qwen_recipes.cost.models import builtin
    from qwen_recipes.outputs.card import license_for

    table = builtin()
    billions = {k: round(table[k].total_params() / 1e9, 2) for k in SIZES}
    assert billions["Qwen/Qwen3-30B-A3B"] == 30.53 and billions["Qwen/Qwen3-235B-A22B"] == 235.09  # 30.5B / 235B
    assert billions["Qwen/Qwen3.5-35B-A3B"] == billions["Qwen/Qwen3.6-35B-A3B"] == 35.11
    assert billions["Qwen/Qwen3-4B-Instruct-2507"] == 4.02
    hybrid = table["Qwen/Qwen3.5-27B"]
    assert (hybrid.layers, hybrid.linear_attention.layers, hybrid.full_attention_layers) == (64, 48, 16)
    assert hybrid.vision_params > 0 and not table["Qwen/Qwen3-30B-A3B"].vision_params
    for hub_id in ("Qwen/Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B-Instruct-2507", "Qwen/Qwen3-235B-A22B", "Qwen/Qwen3.5-9B"):
        assert license_for(hub_id) == {"license": "apache-2.0"}, hub_id
    assert families.for_checkpoint("Qwen/Qwen3-30B-A3B").name == "qwen3_moe"
    assert license_for("Qwen/Qwen3.8-27B") == {}  # not published where we could read it: the card says so
