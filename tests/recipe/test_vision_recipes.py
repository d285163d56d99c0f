"""The Cosmos- and Molmo-style recipes pass --dry-run; vision keys are validated against the model before it loads."""

from __future__ import annotations

import pytest
from helpers import ROOT, train, write_recipe

from qwen_recipes.recipe import RecipeError, load_recipe

NEW_RECIPES = sorted((ROOT / "recipes/cosmos").glob("*.yaml")) + sorted((ROOT / "recipes/molmo").glob("*.yaml"))
SFT = [str(ROOT / f"recipes/_base/{b}.yaml") for b in ("sft", "lora", "vision_sft")]
DATA = [str(ROOT / "data/samples/vision/shapes_sft.jsonl")]


UNSHIPPED = {"cosmos": "datasets[0].path='../../data/cosmos/robovqa_", "stage2": "model_name_or_path='outputs/molmo/"}


@pytest.mark.parametrize("recipe", NEW_RECIPES, ids=lambda p: p.name)
def test_new_recipes_pass_dry_run(recipe, capsys, hub_online):
    """Recipes on shipped data plan fully; the others stop on exactly what is not shipped (the converted Cosmos
    rows, stage 1's output), and plan fully once it is given (here: a shipped sample in its place)."""
    missing = next(
        (text for key, text in UNSHIPPED.items() if key in recipe.name and "tiny-cosmos" not in recipe.name), None
    )
    if missing is None:
        assert train(recipe, "--dry-run") == 0
    else:
        assert train(recipe, "--dry-run") == 2
        err = capsys.readouterr().err
        assert missing in err and "no such" in err
        if "stage2" in recipe.name:
            return
        sample = "shapes_mcq" if "grpo" in recipe.name else "shapes_sft"
        assert train(recipe, "--dry-run", "--datasets.0.path", str(ROOT / f"data/samples/vision/{sample}.jsonl")) == 0
    plan = capsys.readouterr().out
    assert "# plan (dry run: no weights loaded)" in plan
    assert (
        "Hub dataset: read when the run loads it" if "molmo-style" in recipe.name else "9 rows read, 9 usable"
    ) in plan
    if "tiny" in recipe.name:
        assert "vision tokens per image" in plan and "trainable parameters" in plan


def test_published_recipes_state_the_split_of_trainable_parameters(capsys, hub_online):
    recipe = ROOT / "recipes/cosmos/cosmos-reason1-sft-qwen2.5-vl-7b-lora-1gpu.yaml"
    assert train(recipe, "--dry-run", "--datasets.0.path", str(DATA[0])) == 0
    plan = capsys.readouterr().out
    assert "of 8,292,166,656): language model 40,370,176, projector frozen, vision tower frozen" in plan
    assert "vision tokens per image: 4 to at most 104 (3,136 to 81,920 pixels, 28x28 pixels per token" in plan


def _problems(tmp_path, **values) -> str:
    values = {"base": SFT, "model_name_or_path": "tiny:qwen2_5_vl", "datasets": DATA, **values}
    with pytest.raises(RecipeError) as err:
        load_recipe(write_recipe(tmp_path / "r.yaml", **values))
    return str(err.value)


def test_vision_keys_are_checked_against_the_model_and_the_method(tmp_path):
    text = _problems(tmp_path, model_name_or_path="tiny:qwen3", image_max_pixels=1000)
    assert "image_max_pixels applies to vision-language models; qwen3 is text-only" in text
    text = _problems(tmp_path, image_min_pixels=5000, image_max_pixels=1000, video_fps=-1)
    assert "image_min_pixels=5000 is above image_max_pixels=1000" in text and "video_fps=-1.0 must be positive" in text
    text = _problems(tmp_path, train_language_model=False)
    assert "train_language_model=false with method: lora" in text and "use method: full with train_projector" in text
    text = _problems(tmp_path, projector_learning_rate=1e-4, vision_tower_learning_rate=1e-6)
    assert "projector_learning_rate has no effect unless train_projector: true" in text
    assert "vision_tower_learning_rate has no effect unless train_vision_tower: true" in text
    text = _problems(tmp_path, base=SFT[:2])  # the text SFT base packs rows and truncates them
    assert "packing=true: packing is not supported for vision-language data" in text
    assert "overlong=truncate would cut rows inside their vision tokens" in text
    text = _problems(tmp_path, task="dpo", base=[], datasets=DATA)
    assert "task='dpo' is not supported for vision-language models" in text
    text = _problems(tmp_path, model_name_or_path="tiny:qwen3", vision_encoder="tiny:llava_onevision",
                     image_max_pixels=1000)  # fmt: skip
    assert "image_max_pixels does not apply to llava_onevision: it tiles images" in text
