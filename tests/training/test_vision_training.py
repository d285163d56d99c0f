"""Vision-language training: labels token by token, what trains (and at what rate), LoRA/QLoRA targets, processors."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import ROOT, losses, report, train, write_recipe

from qwen_recipes import families

BASES = [str(ROOT / f"recipes/_base/{b}.yaml") for b in ("sft", "lora", "vision_sft")]
FULL = [str(ROOT / f"recipes/_base/{b}.yaml") for b in ("sft", "full", "vision_sft")]
VL = ("qwen2_5_vl", "qwen3_vl", "qwen3_5")  # Qwen3.5: its native vision, on the vision path


def _image(path, size=(56, 56), color=(30, 60, 220)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return str(path)


@pytest.fixture(scope="module")
def processors():
    from qwen_recipes.testbed import build_tokenizer
    from qwen_recipes.training.vision import tiny_processor

    return {n: tiny_processor(families.get(n), build_tokenizer(n)) for n in (*VL, "llava_onevision")}


@pytest.mark.parametrize("family", VL)
def test_only_assistant_tokens_carry_loss_token_by_token(tmp_path, processors, family):
    """Labels equal the ids exactly on the assistant answers and their <|im_end|>; every prompt, system and vision
    token (an image inside an assistant turn included, which Qwen2.5-VL's template renders) is -100."""
    from qwen_recipes.data.templates import resolve_training_template
    from qwen_recipes.data.vision_dataset import VisionCollator

    processor = processors[family]
    tok = processor.tokenizer
    img = _image(tmp_path / "a.png")
    text = lambda t: {"type": "text", "text": t}  # noqa: E731
    image = {"type": "image", "text": None}
    rows = [
        {"messages": [{"role": "user", "content": [image, text("What colour?")]},
                      {"role": "assistant", "content": [text("Blue.")]},
                      {"role": "user", "content": [text("Sure?"), image]},
                      {"role": "assistant", "content": [text("Yes, blue."), *([image] if family == "qwen2_5_vl" else [])]}],
         "images": [img] * (3 if family == "qwen2_5_vl" else 2), "videos": []},
        {"messages": [{"role": "system", "content": [text("Be brief.")]}, {"role": "user", "content": [text("Hi")]},
                      {"role": "assistant", "content": [text("Hello.")]}], "images": [], "videos": []},
    ]  # fmt: skip
    template = resolve_training_template(processor, family)
    ids_of = [tok.convert_tokens_to_ids(t) for t in families.get(family).vision.vision_token_names()]
    batch = VisionCollator(processor, template, ids_of)(rows)
    assert {"input_ids", "attention_mask", "labels", "pixel_values", "image_grid_thw", "mm_token_type_ids"} <= set(
        batch
    )
    ids, labels = batch["input_ids"], batch["labels"]
    trained = [tok.decode(ids[i][labels[i] != -100]) for i in range(2)]
    # Qwen3.5 renders turns before the last user query as history (no think block): never trained.
    first = "" if family == "qwen3_5" else "Blue.<|im_end|>"
    assert trained == [f"{first}Yes, blue.<|im_end|>", "Hello.<|im_end|>"]
    for i in range(2):
        kept = labels[i] != -100
        assert torch.equal(labels[i][kept], ids[i][kept])  # exact token ids where trained
        assert not torch.isin(ids[i][kept], torch.tensor(ids_of)).any()  # no vision token is ever trained
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    assert int((ids[0] == image_pad).sum()) == int((batch["mm_token_type_ids"][0] == 1).sum()) > 0  # mRoPE needs them


def test_every_parameter_has_a_part_and_lora_and_qlora_stay_off_the_vision_tower(tmp_path):
    from peft import LoraConfig, get_peft_model

    from qwen_recipes.recipe import load_recipe
    from qwen_recipes.testbed import tiny_model
    from qwen_recipes.training.vision import lora_target_modules, quantization_skip_modules, role

    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", base=BASES, model_name_or_path="tiny:qwen2_5_vl",
                                      datasets=[str(ROOT / "data/samples/vision/shapes_sft.jsonl")]))  # fmt: skip
    for name in (*VL, "llava_onevision"):
        family = families.get(name)
        model = tiny_model(name)
        parts = {role(n, family) for n, _ in model.named_parameters()}
        assert parts == {"language", "projector", "vision"}, name
        peft = get_peft_model(model, LoraConfig(r=4, target_modules=lora_target_modules(family, "all-linear", recipe)))
        adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in peft.named_parameters() if ".lora_A." in n}
        assert adapted and all(role(n, family) == "language" for n in adapted), name
        # a plain name list would also adapt Qwen2.5-VL's vision MLP (it reuses the LM's gate/up/down names)
        leaves = {n.rsplit(".", 1)[-1] for n in adapted}
        assert leaves == set(family.lora_targets), name
    assert quantization_skip_modules(families.get("qwen2_5_vl")) == [
        "model.visual.patch_embed", "model.visual.blocks", "model.visual.merger", "lm_head"]  # fmt: skip


@pytest.mark.slow  # ~25 s (bitsandbytes); the skip list itself is checked in the default run above
def test_qlora_quantizes_the_language_model_only(tmp_path):
    pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForImageTextToText, BitsAndBytesConfig

    from qwen_recipes.testbed import save_tiny_checkpoint
    from qwen_recipes.training.vision import quantization_skip_modules, role

    family = families.get("qwen2_5_vl")
    path = save_tiny_checkpoint(tmp_path / "tiny", "qwen2_5_vl")
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                               llm_int8_skip_modules=quantization_skip_modules(family))  # fmt: skip
    model = AutoModelForImageTextToText.from_pretrained(path, quantization_config=quant, device_map="cpu")
    kinds = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name != "lm_head":
            kinds.setdefault(role(name, family), set()).add(type(module).__name__)
    assert kinds == {"language": {"Linear4bit"}, "vision": {"Linear"}, "projector": {"Linear"}}
    assert type(model.lm_head).__name__ == "Linear"


def test_tiny_qwen3_vl_qlora_run_trains_the_language_model_adapters(tmp_path):
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "out"
    qlora = [str(ROOT / f"recipes/_base/{b}.yaml") for b in ("sft", "qlora", "vision_sft")]
    recipe = write_recipe(tmp_path / "r.yaml", base=qlora, model_name_or_path="tiny:qwen3_vl", max_length=256,
                          max_steps=3, per_device_train_batch_size=3, learning_rate=5e-3, output_dir=str(out),
                          datasets=[str(ROOT / "data/samples/vision/shapes_sft.jsonl")])  # fmt: skip
    assert train(recipe) == 0
    curve = losses(out)
    assert curve[-1] < curve[0] - 0.1, curve
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["target_modules"].startswith("(?:model\\.language_model|lm_head)")


def test_per_part_learning_rates_and_frozen_parts(tmp_path):
    from qwen_recipes.recipe import load_recipe
    from qwen_recipes.testbed import tiny_model
    from qwen_recipes.training.vision import param_groups, role, trained_roles

    path = write_recipe(tmp_path / "r.yaml", base=FULL, model_name_or_path="tiny:qwen3_vl", learning_rate=2e-5,
                        train_projector=True, train_vision_tower=True, projector_learning_rate=2e-4,
                        vision_tower_learning_rate=6e-6, weight_decay=0.1,
                        datasets=[str(ROOT / "data/samples/vision/shapes_sft.jsonl")])  # fmt: skip
    recipe = load_recipe(path)
    family = families.get("qwen3_vl")
    model = tiny_model("qwen3_vl")
    decay = {n for n, _ in model.named_parameters() if n.endswith("weight") and "norm" not in n}
    groups = param_groups(model, recipe, decay, 0.1)
    lrs = {(g["name"], g["weight_decay"]): g["lr"] for g in groups}
    assert lrs == {("language", 0.1): 2e-5, ("language", 0.0): 2e-5, ("projector", 0.1): 2e-4,
                   ("projector", 0.0): 2e-4, ("vision", 0.1): 6e-6, ("vision", 0.0): 6e-6}  # fmt: skip
    counted = sum(p.numel() for g in groups for p in g["params"])
    assert counted == sum(p.numel() for p in model.parameters())
    assert all(role(n, family) == g["name"] for g in groups for n, p in model.named_parameters()
               if any(p is q for q in g["params"]))  # fmt: skip
    assert trained_roles(recipe) == {"language", "projector", "vision"}
    plain = write_recipe(tmp_path / "p.yaml", base=FULL, model_name_or_path="tiny:qwen3_vl",
                         datasets=[str(ROOT / "data/samples/vision/shapes_sft.jsonl")])  # fmt: skip
    assert trained_roles(load_recipe(plain)) == {"language"}  # the default: vision tower and projector frozen


def test_tiny_qwen2_5_vl_lora_run_trains_and_counts_the_tokens_it_measured(tmp_path):
    """The Cosmos-style tiny SFT recipe: loss falls, and the trainer sees exactly the tokens the data step measured."""
    out = tmp_path / "out"
    recipe = ROOT / "recipes/cosmos/tiny-cosmos-sft-cpu.yaml"
    assert train(recipe, "--output_dir", str(out), "--max_steps", "3", "--per_device_train_batch_size", "3") == 0
    curve = losses(out)
    assert curve[-1] < curve[0] - 0.1, curve
    rep = report(out)
    assert rep["rows"] == {"used": 9, "read": 9, "skipped": {}}
    assert rep["tokens_seen"] == rep["data"]["tokens_per_epoch"]  # 3 steps x 3 rows = one epoch of the measured rows
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["target_modules"].startswith("(?:model\\.language_model|lm_head)")
    processor = json.loads((out / "processor_config.json").read_text())
    assert processor["processor_class"] == "Qwen2_5_VLProcessor"
    assert processor["image_processor"]["size"]["longest_edge"] == 3136  # the recipe's image_max_pixels


def test_tiny_qwen3_vl_full_fine_tune_freezes_the_tower_and_trains_the_projector_at_its_rate(tmp_path):
    from safetensors.torch import load_file

    from qwen_recipes.testbed import save_tiny_checkpoint

    base = save_tiny_checkpoint(tmp_path / "base", "qwen3_vl")
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", base=FULL, model_name_or_path=str(base), learning_rate=5e-3,
                          train_projector=True, projector_learning_rate=1e-2, max_length=256, max_steps=3,
                          per_device_train_batch_size=3, datasets=[str(ROOT / "data/samples/vision/shapes_sft.jsonl")],
                          output_dir=str(out))  # fmt: skip
    assert train(recipe) == 0
    curve = losses(out)
    assert curve[-1] < curve[0] - 0.1, curve
    before, after = load_file(base / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    family = families.get("qwen3_vl")
    from qwen_recipes.training.vision import role

    assert {role(k, family) for k in changed} == {"language", "projector"}  # the vision tower stayed frozen
    assert any(role(k, family) == "projector" for k in changed)


def test_processor_reloads_offline_with_its_own_class_and_arguments(tmp_path, processors):
    from transformers import AutoTokenizer

    from qwen_recipes.training.vision import processor_from_pretrained

    # Qwen3.5 shares Qwen3-VL's processor class; its reload from a run's output: tests/training/test_qwen3_5_vision.py
    for name, processor in [(n, p) for n, p in processors.items() if n != "qwen3_5"]:
        processor.save_pretrained(tmp_path / name)
        saved = json.loads((tmp_path / name / "processor_config.json").read_text())
        assert saved["processor_class"] == type(processor).__mro__[1].__name__ == type(processor).__name__
        again = processor_from_pretrained(
            families.get(name), str(tmp_path / name), AutoTokenizer.from_pretrained(tmp_path / name)
        )
        assert again.chat_template == processor.chat_template == families.get(name).official_template()
        sizes = [[56, 56], [84, 56], [300, 120]]
        assert again._get_num_multimodal_tokens(image_sizes=sizes) == processor._get_num_multimodal_tokens(
            image_sizes=sizes
        )
    assert saved["num_image_tokens"] == 4 and saved["image_token"] == "<|image_pad|>"  # LLaVA-OV's own arguments


def test_image_pixel_keys_set_the_token_count(tmp_path):
    from qwen_recipes.recipe import load_recipe
    from qwen_recipes.testbed import build_tokenizer
    from qwen_recipes.training.vision import apply_resolution, tiny_processor

    path = write_recipe(tmp_path / "r.yaml", base=BASES, model_name_or_path="tiny:qwen2_5_vl", image_min_pixels=784,
                        image_max_pixels=4 * 784, datasets=[str(ROOT / "data/samples/vision/shapes_sft.jsonl")])  # fmt: skip
    processor = tiny_processor(families.get("qwen2_5_vl"), build_tokenizer("qwen2_5_vl"))
    big = [[560, 560]]
    assert processor._get_num_multimodal_tokens(image_sizes=big)["num_image_tokens"] == [16]  # tiny cap: 16 tokens
    apply_resolution(processor, load_recipe(path))
    assert processor._get_num_multimodal_tokens(image_sizes=big)["num_image_tokens"] == [4]
    batch = processor(text=["<|image_pad|>"], images=[__import__("PIL.Image").Image.new("RGB", (560, 560))])
    assert batch["image_grid_thw"].tolist() == [[1, 4, 4]]  # 4x4 patches = 2x2 tokens: the processor obeys it too
