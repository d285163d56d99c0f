"""The Cosmos-Reason1-style GRPO smoke run and the two-stage Molmo-style pipeline, end to end on CPU."""

from __future__ import annotations

import json

import torch
from helpers import ROOT, losses, report, train

from qwen_recipes import families


def test_cosmos_style_grpo_smoke_run_logs_both_rewards(tmp_path, monkeypatch):
    """The tiny Cosmos GRPO recipe through the engine's own steps (processor, image prompt rows, model, trainer):
    both Cosmos rewards are logged each step, and rewards see the row's image paths and gold letter."""
    from qwen_recipes.data import pipeline
    from qwen_recipes.recipe import load_recipe
    from qwen_recipes.training import model
    from qwen_recipes.training.rewards import REWARDS
    from qwen_recipes.training.trainer import make_trainer, training_args

    seen = {}

    def spy(completions, images=None, answer=None, **kwargs):
        seen.update(images=images, answer=answer)
        return [0.0] * len(completions)

    monkeypatch.setitem(REWARDS, "spy", spy)
    overrides = {"output_dir": str(tmp_path), "max_steps": 1, "per_device_train_batch_size": 2,
                 "max_completion_length": 4, "rewards": ["choice", "think_format", "spy"]}  # fmt: skip
    recipe = load_recipe(ROOT / "recipes/cosmos/tiny-cosmos-grpo-cpu.yaml", overrides)
    processor = model.load_tokenizer(recipe, chat=True)
    dataset, data_report = pipeline.build_dataset(recipe, processor, None)
    assert data_report.rows_used == data_report.rows_read == 9
    trainer = make_trainer(recipe, training_args(recipe), model.load_model(recipe, processor), processor, dataset,
                           peft_config=model.peft_config(recipe))  # fmt: skip
    trainer.train()
    step = next(h for h in trainer.state.log_history if "reward" in h)
    for name in ("choice", "think_format"):  # Cosmos-Reason1's single_choice + format rewards
        assert step[f"rewards/{name}/mean"] == 0.0  # a random model writes neither the format nor an option
    assert step["completions/mean_length"] == 4
    (letter, again), (image, same) = seen["answer"], seen["images"]  # one prompt, two generations
    assert letter == again and image == same and len(image) == 1
    shape = {"A": "circle", "B": "square", "C": "triangle"}[letter]
    assert image[0].startswith(str(ROOT / "data/samples/vision/images")) and image[0].endswith(f"_{shape}.png")


def test_composition_keeps_the_llm_and_encoder_weights(tmp_path):
    from transformers import AutoModel, AutoModelForCausalLM

    from qwen_recipes.testbed import build_tokenizer, save_tiny_checkpoint
    from qwen_recipes.training.vision import resolve_encoder
    from qwen_recipes.training.vision_compose import compose

    family = families.get("llava_onevision")
    llm = save_tiny_checkpoint(tmp_path / "llm", "qwen3")
    encoder = resolve_encoder("tiny:llava_onevision")
    tok = build_tokenizer("qwen3")
    ids = tuple(tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>"))
    model = compose(family, str(llm), encoder, {"dtype": torch.float32}, ids)
    lm, tower = AutoModelForCausalLM.from_pretrained(llm), AutoModel.from_pretrained(encoder)
    for name, p in lm.model.state_dict().items():
        assert torch.equal(model.model.language_model.state_dict()[name], p), name
    for name, p in tower.state_dict().items():
        assert torch.equal(model.model.vision_tower.state_dict()[name], p), name
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight  # tied, as the LLM
    assert (
        model.config.image_token_index == ids[0] and model.model.multi_modal_projector.linear_1.weight.abs().sum() > 0
    )


def test_molmo_style_two_stages_run_and_stage_two_starts_from_stage_one(tmp_path):
    from safetensors.torch import load_file

    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    assert (
        train(
            ROOT / "recipes/molmo/tiny-molmo-stage1-caption-cpu.yaml", "--output_dir", str(stage1), "--max_steps", "4"
        )
        == 0
    )
    curve = losses(stage1)
    assert curve[-1] < curve[0] - 0.1, curve
    saved = json.loads((stage1 / "config.json").read_text())
    assert saved["model_type"] == "llava_onevision" and saved["text_config"]["model_type"] == "qwen3"
    assert json.loads((stage1 / "processor_config.json").read_text())["num_image_tokens"] == 4

    args = ["--model_name_or_path", str(stage1), "--output_dir", str(stage2), "--max_steps", "3"]
    assert train(ROOT / "recipes/molmo/tiny-molmo-stage2-multitask-cpu.yaml", *args) == 0
    rep = report(stage2)
    assert rep["model_name_or_path"] == str(stage1)
    assert rep["rows"]["read"] == 8 + 9 and rep["rows"]["used"] == 8 + 4  # pointing/counting + 4 sampled captions
    one, two = load_file(stage1 / "model.safetensors"), load_file(stage2 / "model.safetensors")
    key = "multi_modal_projector.linear_1.weight"  # random at composition, trained in stage 1 (saved as LLaVA-OV's)
    moved = (two[key] - one[key]).abs().max().item()
    assert 0 < moved < 0.1 * one[key].abs().max().item()  # stage 2 fine-tuned stage 1's connector, not a new one
