"""The vision tower's cost terms against the tiny models: parameters, FLOPs (FlopCounterMode), saved activations,
tokens per image (the processors), and `estimate` for the published Qwen2.5-VL-7B / Qwen3-VL-8B LoRA recipes."""

from __future__ import annotations

import functools
import re

import pytest
import torch
from helpers import ROOT
from torch.utils.flop_counter import FlopCounterMode

from qwen_recipes import families
from qwen_recipes.cost.vision import smart_resize, vision_arch
from qwen_recipes.testbed import tiny_model
from qwen_recipes.training.vision import role

FAMILIES = ("qwen2_5_vl", "qwen3_vl", "llava_onevision", "qwen3_5")  # qwen3_5: its native vision (vision path)
# (trained parts, LoRA rank on the tower): frozen, projector only, whole tower, tower + projector, LoRA tower
SCENARIOS = [
    (set(), 0),
    ({"projector"}, 0),
    ({"vision"}, 0),
    ({"vision", "projector"}, 0),
    ({"vision", "projector"}, 4),
]
WIDER = {"depth": 4, "hidden_size": 48, "intermediate_size": 80, "num_heads": 3}  # not the registry's tiny shape


def _tower(name: str, trained: set[str], lora_r: int, **vision):
    """A tiny model (eager attention: its matmuls are visible to the counter) with only `trained` requiring grad."""
    family = families.get(name)
    config = dict(families.tiny_config_values(family)["vision_config"], **vision)
    model = tiny_model(name, attn_implementation="eager", vision_config=config)
    arch = vision_arch(model.config.to_dict(), family.vision.cost)
    for n, p in model.named_parameters():
        p.requires_grad_(role(n, family) in trained and not (lora_r and role(n, family) == "vision"))
    if lora_r:
        from peft import LoraConfig, get_peft_model

        v = family.vision
        regex = rf"(?:{'|'.join(map(re.escape, v.vision_prefixes))})\..*\.(?:{'|'.join(v.vision_lora_targets)})"
        model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=8, target_modules=regex, lora_dropout=0.0))
        for n, p in model.named_parameters():
            p.requires_grad_(p.requires_grad or role(n, family) in trained - {"vision"})
        model = model.base_model.model
    return model, arch


@functools.cache
def _llava_tiles():
    from PIL import Image

    from qwen_recipes.testbed import build_tokenizer
    from qwen_recipes.training.vision import tiny_processor

    processor = tiny_processor(families.get("llava_onevision"), build_tokenizer("llava_onevision"))
    return processor.image_processor([Image.new("RGB", (84, 56))], return_tensors="pt")  # a base view + 2x2 crops


def _run(name: str, model, arch):
    """A closure running the tower + projector on one image; returns (closure, images or tiles, grid)."""
    if name == "llava_onevision":
        batch = _llava_tiles()

        def run():
            out = model.model.get_image_features(
                batch["pixel_values"],
                batch["image_sizes"],
                vision_feature_layer=-1,
                vision_feature_select_strategy="full",
            )
            return sum(x.sum() for x in getattr(out, "pooler_output", out))

        return run, batch["pixel_values"].shape[1], (1, 1, 1)
    p = arch.patch
    gh, gw = (280 // p, 168 // p) if p == 14 else (320 // p, 192 // p)  # several attention windows on Qwen2.5-VL
    pixels, grid = torch.randn(gh * gw, 3 * 2 * p * p), torch.tensor([[1, gh, gw]])

    def run():
        out = model.model.visual(pixels, grid_thw=grid)
        return out.pooler_output.sum() + sum(d.sum() for d in getattr(out, "deepstack_features", None) or [])

    return run, 1, (1, gh, gw)


@pytest.mark.parametrize("name", FAMILIES)
def test_parameters_match_the_tiny_models_by_part(name):
    family = families.get(name)
    model = tiny_model(name)
    arch = vision_arch(model.config.to_dict(), family.vision.cost)
    count = {}
    for n, p in model.named_parameters():
        count[role(n, family)] = count.get(role(n, family), 0) + p.numel()
    assert (count["vision"], count["projector"]) == (arch.tower_params(), arch.projector_params())


def test_parameters_match_the_published_sizes():
    from qwen_recipes.cost.models import builtin

    table = builtin()
    # Hub cards: Qwen2.5-VL-7B-Instruct 8.29B, Qwen3-VL-8B-Instruct 8.77B parameters (LM + vision tower + merger)
    assert round(table["Qwen/Qwen2.5-VL-7B-Instruct"].total_params() / 1e9, 2) == 8.29
    assert round(table["Qwen/Qwen3-VL-8B-Instruct"].total_params() / 1e9, 2) == 8.77
    assert table["Qwen/Qwen2.5-VL-7B-Instruct"].vision.params() == 676_550_144


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize(("trained", "lora_r"), SCENARIOS)
def test_flops_equal_torch_flop_counter(name, trained, lora_r):
    model, arch = _tower(name, trained, lora_r)
    run, tiles, grid = _run(name, model, arch)
    with FlopCounterMode(display=False) as counter:
        loss = run()
        if loss.requires_grad:
            loss.backward()
    est = arch.training_flops(grid, trained, lora_r)
    assert tiles * (est["forward"] + est["backward"]) == counter.get_total_flops()


def _saved_bytes(model, run) -> int:
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(seen.values())


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize(("trained", "lora_r"), SCENARIOS)
def test_activation_model_matches_what_autograd_saves(name, trained, lora_r):
    wider = (
        {}
        if name == "llava_onevision"
        else WIDER | ({"deepstack_visual_indexes": [0, 2]} if name == "qwen3_vl" else {})
    )
    model, arch = _tower(name, trained, lora_r, **wider)
    model.config.vision_config._attn_implementation = "sdpa"  # what training uses: no s x s matrix saved
    for m in model.modules():
        if hasattr(m, "config") and hasattr(m.config, "_attn_implementation"):
            m.config._attn_implementation = "sdpa"
    run, tiles, grid = _run(name, model, arch)
    measured = _saved_bytes(model, run)
    est = 4 * tiles * arch.saved_elements(grid, trained, lora_r)
    assert est == pytest.approx(measured, rel=0.001, abs=1)


@pytest.mark.parametrize("name", ["qwen2_5_vl", "qwen3_vl"])  # Qwen3.5: the same image processor as Qwen3-VL
def test_tokens_per_image_follow_the_processor(name):
    from qwen_recipes.testbed import build_tokenizer
    from qwen_recipes.training.vision import tiny_processor

    processor = tiny_processor(families.get(name), build_tokenizer(name))
    arch = vision_arch(tiny_model(name).config.to_dict(), families.get(name).vision.cost)
    for low, high in ((28 * 28, 16 * 28 * 28), (3136, 81920), (65536, 16777216)):
        processor.image_processor.size = {"shortest_edge": low, "longest_edge": high}
        for h, w in ((56, 56), (480, 640), (1080, 1920), (17, 3000), (333, 77)):
            expected = processor._get_num_multimodal_tokens(image_sizes=[[h, w]])["num_image_tokens"][0]
            assert arch.tokens(arch.grid(h, w, low, high)) == expected, (low, high, h, w)
    assert smart_resize(1080, 1920, 28, 3136, 256 * 28 * 28) == (336, 588)  # 12 x 21 = 252 tokens of 28x28
    assert arch.grid(56, 56, 784, 12544, frames=5)[0] == 3  # a video's frames pair up into temporal patches


@pytest.mark.parametrize(
    "recipe", ["cosmos-reason1-sft-qwen2.5-vl-7b-lora-1gpu.yaml", "cosmos-reason2-sft-qwen3-vl-8b-lora-1gpu.yaml"]
)
def test_estimate_works_for_the_7b_and_8b_lora_recipes(recipe):
    from qwen_recipes.cost.estimate import estimate
    from qwen_recipes.recipe import load_recipe

    result = estimate(load_recipe(ROOT / "recipes" / "cosmos" / recipe), tokens=2_000_000, compare=False)
    e = result["estimate"]
    assert result["architecture_source"] == "built-in table" and e["fits"]
    items = e["memory_items_gb"]
    vision = 676_550_144 if "qwen2.5" in recipe else 576_388_336
    assert items["vision tower + projector weights (16-bit)"] == round(vision * 2 / 1e9, 3)
    assert items["vision activations (saved for backward)"] == 0.0  # frozen tower and merger: nothing saved
    assert 0 < e["flops"]["vision"] < 0.05 * e["flops"]["executed"]  # one 104- or 80-token image per 4k-token row
    assert any(n.startswith("vision: one 286x286 image") for n in e["notes"])


def test_estimate_of_the_qwen3_5_9b_vision_recipe_counts_the_tower_and_its_text_twin_does_not(tmp_path):
    """The natively multimodal Qwen3.5-9B: its vision recipe costs the tower's FLOPs and weights as a part; the same
    recipe without the vision keys is a text recipe, the tower's weights inside the 16-bit weights, no vision FLOPs."""
    from qwen_recipes.cost.estimate import estimate
    from qwen_recipes.recipe import load_recipe

    path = ROOT / "recipes/cosmos/cosmos-reason2-sft-qwen3.5-9b-lora-1gpu.yaml"
    e = estimate(load_recipe(path), tokens=2_000_000, compare=False)["estimate"]
    tower = 27 * (4 * 1152 + 3 * 1152**2 + 3 * 1152 + 1152**2 + 1152 + 2 * 1152 * 4304 + 4304 + 1152)
    tower += 3 * 2 * 16**2 * 1152 + 1152 + 2304 * 1152  # patch embedding (+ bias) and learned positions
    merger = 2 * 1152 + (4 * 1152) ** 2 + 4 * 1152 + 4096 * 4 * 1152 + 4096
    assert e["memory_items_gb"]["vision tower + projector weights (16-bit)"] == round((tower + merger) * 2 / 1e9, 3)
    assert 0 < e["flops"]["vision"] < 0.05 * e["flops"]["executed"]
    assert any(n.startswith("vision: one 286x286 image (64 tokens") for n in e["notes"])

    import yaml

    values = yaml.safe_load(path.read_text())  # the same recipe without the vision base and keys: a text recipe
    values.update(base=[str(ROOT / f"recipes/_base/{b}.yaml") for b in ("sft", "lora")], datasets=["org/chat"])
    for key in ("image_max_pixels", "video_max_pixels", "video_fps", "accelerate_config"):
        values.pop(key)
    (tmp_path / "text.yaml").write_text(yaml.safe_dump(values))
    t = estimate(load_recipe(tmp_path / "text.yaml"), tokens=2_000_000, compare=False)["estimate"]
    assert "vision" not in t["flops"] and "vision tower + projector weights (16-bit)" not in t["memory_items_gb"]
    lm_and_tower = (
        e["memory_items_gb"]["weights (16-bit)"] + e["memory_items_gb"]["vision tower + projector weights (16-bit)"]
    )
    assert t["memory_items_gb"]["weights (16-bit)"] == pytest.approx(lm_and_tower, abs=0.002)


def test_estimate_counts_the_tokens_training_measures():
    """`estimate` counts local image rows offline (text + image tokens from the headers, no processor); the data step
    measures them with the processor: the same number."""
    from qwen_recipes.cost.estimate import dataset_tokens
    from qwen_recipes.data.templates import resolve_training_template
    from qwen_recipes.data.vision_dataset import build_vision_dataset
    from qwen_recipes.recipe import load_recipe
    from qwen_recipes.testbed import build_tokenizer
    from qwen_recipes.training.vision import apply_resolution, tiny_processor

    recipe = load_recipe(ROOT / "recipes/cosmos/tiny-cosmos-sft-cpu.yaml", {"image_max_pixels": 4 * 784})
    counted = dataset_tokens(recipe)
    processor = tiny_processor(families.get("qwen2_5_vl"), build_tokenizer("qwen2_5_vl"))
    apply_resolution(processor, recipe)
    _, report = build_vision_dataset(recipe, processor, resolve_training_template(processor, "qwen2_5_vl"))
    assert counted.per_epoch == report.tokens_per_epoch and counted.rows == report.rows_used == 9
