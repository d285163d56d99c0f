"""Outputs of vision-language runs: the merge keeps the processor and the adapter's function, the card says
image-text-to-text, the push stages the processor files."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from helpers import standin_cache

from qwen_recipes import families

BASE_ID = "Qwen/Qwen2.5-VL-7B-Instruct"


@pytest.fixture(scope="module")
def vl_output(tmp_path_factory):
    """A LoRA adapter (LM-only regex targets, perturbed) on the tiny Qwen2.5-VL, saved as training saves it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from qwen_recipes.testbed import build_tokenizer, save_tiny_checkpoint
    from qwen_recipes.training.vision import tiny_processor

    root = tmp_path_factory.mktemp("vl")
    base = save_tiny_checkpoint(root / "base", "qwen2_5_vl")
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    targets = r"(?:model\.language_model)\..*\.(?:q_proj|v_proj)"
    peft = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, modules_to_save=["model.visual.merger"])
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.add_(0.05 * torch.randn_like(p))
    out = root / "out"
    peft.save_pretrained(out)
    tiny_processor(families.get("qwen2_5_vl"), build_tokenizer("qwen2_5_vl")).save_pretrained(out)
    recipe = {"task": "sft", "method": "lora", "model_name_or_path": str(base), "base_model_id": BASE_ID}
    (out / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    (out / "run_report.json").write_text(json.dumps({**recipe, "steps": 40, "loss": {"first": 2.0, "final": 1.0}}))
    return out


def _batch(processor):
    from PIL import Image

    text = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What?<|im_end|>\n<|im_start|>assistant\n"
    return processor(text=[text], images=[Image.new("RGB", (56, 84), (10, 200, 30))], return_tensors="pt")


def test_merge_keeps_the_processor_and_the_adapters_function(vl_output, tmp_path):
    from transformers import AutoModelForImageTextToText

    from qwen_recipes.outputs.merge import merge_adapter
    from qwen_recipes.training.vision import load_pretrained

    adapter, processor = load_pretrained(str(vl_output))
    batch = _batch(processor)
    with torch.no_grad():
        ref = adapter(**batch).logits
    merged = merge_adapter(vl_output, tmp_path / "merged", dtype="fp32")
    for name in ("processor_config.json", "chat_template.jinja", "tokenizer.json"):
        assert (merged / name).is_file(), name
    again, reloaded = load_pretrained(str(merged))
    assert isinstance(again, AutoModelForImageTextToText._model_mapping[type(again.config)])
    with torch.no_grad():
        got = again(**_batch(reloaded)).logits
    assert (got - ref).abs().max().item() < 1e-5
    base, _ = load_pretrained(str(vl_output.parent / "base"))
    with torch.no_grad():
        assert (base(**batch).logits - ref).abs().max().item() > 1e-3  # the adapter (and merger copy) change it
    card = (merged / "README.md").read_text()
    assert "pipeline_tag: image-text-to-text" in card and "AutoModelForImageTextToText" in card


def test_card_of_a_vl_adapter_is_image_text_to_text(vl_output):
    from qwen_recipes.outputs.card import build_card

    card = build_card(vl_output)
    assert card.data.pipeline_tag == "image-text-to-text" and card.data.base_model == BASE_ID
    assert card.data.library_name == "peft"
    assert f'AutoModelForImageTextToText.from_pretrained("{BASE_ID}"' in card.text
    assert "AutoProcessor.from_pretrained(" in card.text


def test_push_stages_the_processor_files(vl_output, tmp_path, monkeypatch):
    """Staged against a stand-in Hub repo holding the tiny base (the real 7B id is refused: it does not fit)."""
    from huggingface_hub import constants

    from qwen_recipes.outputs.hub import PushError, stage

    with pytest.raises(PushError, match=r"does not fit the claimed base 'Qwen/Qwen2\.5-VL-7B-Instruct'"):
        stage(vl_output, tmp_path / "refused", repo_id="alice/vl")
    standin = "qwen-recipes-test/tiny-qwen2.5-vl"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(standin_cache(tmp_path, vl_output.parent / "base", standin)))
    files = {p.name for p in stage(vl_output, tmp_path / "staging", repo_id="alice/vl", base_model_id=standin)}
    assert {"processor_config.json", "chat_template.jinja", "adapter_model.safetensors", "README.md"} <= files
    readme = (tmp_path / "staging" / "README.md").read_text()
    assert "pipeline_tag: image-text-to-text" in readme and f"base_model: {standin}" in readme
