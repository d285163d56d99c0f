"""The family registry: every family is one entry; a family registered inside a test trains and estimates."""

from __future__ import annotations

import json

import pytest
from helpers import chat_rows, losses, report, train, write_jsonl, write_recipe

from qwen_recipes import families
from qwen_recipes.errors import UserError


def test_every_family_has_its_templates_tokenizer_and_tiny_model():
    from qwen_recipes.data.templates import has_generation_markers
    from qwen_recipes.testbed import tiktoken_ranks_path, tiny_config

    assert [f.name for f in families.families()][:2] == ["qwen2_5", "qwen3"]
    for f in families.families():
        assert families.get(f.model_type) is families.get(f.name) is f
        for stem in f.template_stems():  # every official template of the family, with its training variant
            assert not has_generation_markers(f.official_template(stem))
            assert has_generation_markers(f.training_template(stem))
            assert families.detect(f.official_template(stem), None).template_stems() == f.template_stems()
        assert tiktoken_ranks_path(f.name).is_file()
        assert tiny_config(f.name).model_type == f.model_type
        assert set(f.lora_targets) and all(isinstance(t, str) for t in f.lora_targets)
        for hub_id in f.checkpoints:
            assert families.for_checkpoint(hub_id) is f


def test_unknown_family_and_tiny_name_list_the_known_ones():
    from qwen_recipes.testbed import tiny_family

    with pytest.raises(families.UnknownFamily, match=r"unknown model family 'qwen33' \(did you mean 'qwen3'\?\)"):
        families.get("qwen33")
    with pytest.raises(UserError, match="no such tiny test-bed model; known: tiny:qwen2_5, tiny:qwen3"):
        tiny_family("tiny:llama")
    assert tiny_family("Qwen/Qwen3-8B") is None


@pytest.fixture
def fake_family():
    """A new family, registered here only: its own config class and model_type, Qwen3's tokenizer and templates."""
    from transformers import AutoConfig, AutoModelForCausalLM, Qwen3Config, Qwen3ForCausalLM

    class FakeQwenConfig(Qwen3Config):
        model_type = "fakeqwen"

    class FakeQwenForCausalLM(Qwen3ForCausalLM):
        config_class = FakeQwenConfig

    AutoConfig.register("fakeqwen", FakeQwenConfig, exist_ok=True)
    AutoModelForCausalLM.register(FakeQwenConfig, FakeQwenForCausalLM, exist_ok=True)
    family = families.register(
        families.Family(
            name="fake",
            model_type="fakeqwen",
            config_class=FakeQwenConfig,
            template="qwen3",
            tokenizer=families.QWEN3.tokenizer,
            tiny={**families.TINY_DENSE, "hidden_size": 32, "num_hidden_layers": 1, "head_dim": 8},
            qk_norm=True,
            checkpoints={"someone/Fake-1B": {**families.checkpoint_config("Qwen/Qwen3-0.6B"), "num_hidden_layers": 4}},
            licences={"someone/Fake-1B": {"license": "mit"}},
        )
    )
    yield family
    families.unregister("fakeqwen")


def test_a_family_registered_in_a_test_trains_and_estimates(tmp_path, fake_family):
    from qwen_recipes.cost.estimate import estimate
    from qwen_recipes.outputs.card import license_for
    from qwen_recipes.recipe import load_recipe

    data = write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    recipe = write_recipe(tmp_path / "r.yaml", model_name_or_path="tiny:fake", datasets=[str(data)])
    assert train(recipe) == 0
    out = tmp_path / "out"
    curve = losses(out)
    assert curve[-1] < curve[0] - 0.05, curve
    rep = report(out)
    assert rep["random_init"] and rep["rows"]["used"] == 8
    assert rep["cost"]["segments"][0]["tokens"] == rep["tokens_seen"] > 0
    targets = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert set(targets) == set(fake_family.lora_targets)

    est = estimate(load_recipe(recipe), hardware="1xH100")
    assert est["architecture_source"] == "built-in table" and est["parameters"] > 0
    assert est["estimate"]["memory_total_gb"] > 0
    est = estimate(load_recipe(recipe, {"model_name_or_path": "someone/Fake-1B"}), hardware="1xH100")
    assert est["parameters"] > 0 and est["estimate"]["fits"]
    assert license_for("someone/Fake-1B") == {"license": "mit"}
