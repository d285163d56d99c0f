"""The vision tower's share of an estimate: what it processes (`VisionLoad`), its memory items and its FLOPs.

The language model's terms stay in memory.py / flops.py (its sequences already hold the vision tokens); these add
the tower and projector on top: 16-bit weights (QLoRA keeps them unquantised), the trained parts' gradients and
optimizer states, what autograd saves for them, and their FLOPs per image. Image sizes come from local data (image
headers) when the recipe's data are local, else one square image at the processor's largest size per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from qwen_recipes import families
from qwen_recipes.cost.vision import QWEN_KINDS, VisionArch

if TYPE_CHECKING:
    from qwen_recipes.cost.memory import Setup
    from qwen_recipes.cost.models import Arch
    from qwen_recipes.recipe import Recipe

VIT_TILES = 5  # LLaVA-OneVision anyres for an image larger than one tile: the base view + a 2x2 grid of crops


@dataclass(frozen=True)
class VisionLoad:
    """What the tower processes per row and per epoch, and which of its parts train."""

    images_per_row: float
    largest: tuple[int, int, int]  # (t, h, w) patch grid of the largest image (peak memory); ViT: (1, 1, 1)
    tiles: int  # ViT tiles per image (1 for Qwen)
    trained: frozenset[str] = frozenset()  # 'vision' and/or 'projector'
    lora_r: int = 0  # > 0: the tower trains through LoRA adapters
    lm_trained: bool = True  # False: the connector alone trains (Molmo-style stage 1); the LM is frozen
    grids: tuple[tuple[int, int, int], ...] = ()  # every image's grid in the local data (one epoch), if known
    rows: int | None = None
    notes: list[str] = field(default_factory=list)


def pixel_bounds(recipe: Recipe, family: families.Family) -> tuple[int, int]:
    """(min, max) pixels per image: the recipe's keys, else the checkpoint's published processor defaults."""
    from qwen_recipes.testbed import tiny_family

    tiny = tiny_family(str(recipe.get("model_name_or_path"))) is not None  # the test bed's small-image processor
    size = {**family.vision.image_processor, **(family.vision.tiny_image_processor if tiny else {})}.get("size") or {}
    low = recipe.get("image_min_pixels") or size.get("shortest_edge") or 0
    high = recipe.get("image_max_pixels") or size.get("longest_edge") or low
    return int(low), int(high)


def vision_load(recipe: Recipe, arch: Arch) -> VisionLoad:
    """The recipe's vision load: real image sizes from local data, else one largest-size image per row."""
    family = families.find(arch.model_type)
    v: VisionArch = arch.vision
    trained = {r for r, k in (("vision", "train_vision_tower"), ("projector", "train_projector")) if recipe.get(k)}
    lora_r = int(recipe.get("lora_r")) if "vision" in trained and recipe.method in ("lora", "qlora") else 0
    lm = bool(recipe.get("train_language_model"))
    if v.kind not in QWEN_KINDS:
        note = f"vision: {VIT_TILES} tiles of {v.image_size}px per image assumed (a base view + 2x2 anyres crops)"
        return VisionLoad(1.0, (1, 1, 1), VIT_TILES, frozenset(trained), lora_r, lm_trained=lm, notes=[note])
    low, high = pixel_bounds(recipe, family)
    sizes = _local_image_sizes(recipe)
    if sizes is not None and sizes[0]:
        rows, images = sizes
        grids = tuple(v.grid(h, w, low, high) for h, w in images)
        largest = max(grids, key=lambda g: g[0] * g[1] * g[2])
        note = f"vision: {len(grids)} local images in {rows} rows, up to {v.tokens(largest)} tokens each"
        return VisionLoad(len(grids) / max(1, rows), largest, 1, frozenset(trained), lora_r, lm, grids, rows, [note])
    side = int(math.sqrt(high))
    largest = v.grid(side, side, low, high)
    note = (
        f"vision: one {side}x{side} image ({v.tokens(largest)} tokens, image_max_pixels={high}) per row assumed; "
        "local data give the real sizes"
    )
    return VisionLoad(1.0, largest, 1, frozenset(trained), lora_r, lm_trained=lm, notes=[note])


def _local_image_sizes(recipe: Recipe) -> tuple[int, list[tuple[int, int]]] | None:
    """(rows, [(height, width)]) of every image in the recipe's local data (headers only), or None."""
    from qwen_recipes.data.sources import is_local

    specs = recipe.datasets_specs()
    if not specs or not all(is_local(s) for s in specs):
        return None
    from qwen_recipes.data.mixture import canonical_rows
    from qwen_recipes.data.vision import media_converter

    convert = media_converter()
    rows = canonical_rows(replace(recipe, values={**recipe.values, "strict": False}), canonical=convert)
    return len(rows), [tuple(s) for r in rows for s in r["_image_sizes"]]


def vision_trainable(arch: Arch, load: VisionLoad, method: str) -> int:
    """Trainable parameters of the tower and projector (whole parts, or the tower's LoRA adapters)."""
    v: VisionArch = arch.vision
    n = v.projector_params() if "projector" in load.trained else 0
    if "vision" in load.trained:
        per_block = sum(load.lora_r * (a + b) for a, b in v.block_linear_shapes().values())
        n += v.depth * per_block if method in ("lora", "qlora") else v.tower_params()
    return n


def with_vision_items(arch: Arch, s: Setup, lm_items: Any) -> dict[str, float]:
    """The language model's memory items (`lm_items(arch without vision, s)`) plus the tower's, slack recomputed."""
    from qwen_recipes.cost.memory import CUDA_CONTEXT_BYTES, FRAGMENTATION, OPTIMIZER_STATES, optimizer_kind

    items = lm_items(replace(arch, vision=None), s)
    items.pop("CUDA context + allocator slack")
    load: VisionLoad = s.vision
    if not load.lm_trained:  # a frozen LM (connector-only stage): no gradients or optimizer states for it
        items["gradients"] = items["optimizer states"] = 0.0
    v: VisionArch = arch.vision
    shard = max(1, s.gpus) if s.zero_stage >= 3 else 1
    items["vision tower + projector weights (16-bit)"] = v.params() * max(2, s.weight_bytes) / shard
    trainable = vision_trainable(arch, load, s.method)
    if trainable:
        peft = s.method in ("lora", "qlora")
        p_bytes = 4 if peft else s.weight_bytes  # PEFT keeps adapters and saved modules in fp32
        count, each = OPTIMIZER_STATES[optimizer_kind(s.optimizer)]
        if peft and "projector" in load.trained:
            items["projector copy (modules_to_save)"] = v.projector_params() * 4.0
        items["vision gradients + optimizer states"] = trainable * (p_bytes + count * (each or p_bytes))
    trained = set(load.trained)
    images = s.micro_batch * math.ceil(load.images_per_row) * load.tiles
    saved = v.saved_elements(load.largest, trained, load.lora_r, s.gradient_checkpointing)
    items["vision activations (saved for backward)"] = images * saved * s.act_bytes
    if s.gradient_checkpointing and "vision" in trained:
        items["vision activations (one block recomputed)"] = v.recompute_elements(load.largest, trained) * s.act_bytes
    live = sum(items.values())
    items["CUDA context + allocator slack"] = CUDA_CONTEXT_BYTES + FRAGMENTATION * live
    return items


def vision_flops(arch: Arch, load: VisionLoad, rows: float, gradient_checkpointing: bool) -> dict[str, float]:
    """Forward, backward and recompute FLOPs of the tower over `rows` rows (local images when known)."""
    v: VisionArch = arch.vision
    trained = set(load.trained)
    if load.grids and load.rows:
        per_epoch = [v.training_flops(g, trained, load.lora_r, gradient_checkpointing) for g in load.grids]
        scale = rows / load.rows
        return {k: scale * sum(f[k] for f in per_epoch) for k in ("forward", "backward", "recompute")}
    one = v.training_flops(load.largest, trained, load.lora_r, gradient_checkpointing)
    return {k: one[k] * load.tiles * load.images_per_row * rows for k in one}


def trainable_by_part(recipe: Recipe, arch: Arch) -> dict[str, int]:
    """Trainable parameters of the language model, projector and vision tower (no data read, no weights)."""
    from qwen_recipes.cost.flops import lora_params

    parts = {"language model": 0, "projector": 0, "vision tower": 0}
    text = replace(arch, vision=None)
    if recipe.get("train_language_model"):
        if recipe.method == "full":
            parts["language model"] = text.total_params()
        else:
            parts["language model"] = lora_params(text, recipe.get("lora_r"), recipe.get("lora_target_modules"))
            saved = [m for m in recipe.get("lora_modules_to_save") or [] if m in ("lm_head", "embed_tokens")]
            parts["language model"] += len(saved) * text.vocab * text.hidden
    v: VisionArch = arch.vision
    if recipe.get("train_projector"):
        parts["projector"] = v.projector_params()
    if recipe.get("train_vision_tower"):
        lora = recipe.method in ("lora", "qlora")
        per_block = sum(recipe.get("lora_r") * (a + b) for a, b in v.block_linear_shapes().values())
        parts["vision tower"] = v.depth * per_block if lora else v.tower_params()
    return parts


def plan_lines(recipe: Recipe, arch: Arch) -> dict[str, str]:
    """`--dry-run` lines of a vision-language recipe: what trains, and tokens per image at the pixel bounds."""
    family = families.find(arch.model_type)
    v: VisionArch = arch.vision
    parts = trainable_by_part(recipe, arch)
    total = sum(parts.values())
    lines = {
        "trainable parameters": f"{total:,} ({total / arch.total_params():.2%} of {arch.total_params():,}): "
        + ", ".join(f"{k} {n:,}" if n else f"{k} frozen" for k, n in parts.items())
    }
    if v.kind in QWEN_KINDS:
        low, high = pixel_bounds(recipe, family)
        per_token = (v.patch * v.merge) ** 2
        lines["vision tokens per image"] = (
            f"{math.ceil(low / per_token)} to at most {high // per_token} ({low:,} to {high:,} pixels, "
            f"{v.patch * v.merge}x{v.patch * v.merge} pixels per token; video: the same per {v.temporal_patch} frames)"
        )
    else:
        lines["vision tokens per image"] = f"{(v.image_size // v.patch) ** 2} per {v.image_size}px tile (anyres tiles)"
    return lines


def _config_values(name: str, offline: bool) -> dict[str, Any] | None:
    """config.json values of a local folder, a tiny test-bed model, a registered checkpoint or (online) the Hub."""
    import json
    from pathlib import Path

    from qwen_recipes.cost.models import _hub_config
    from qwen_recipes.testbed import tiny_family

    if (Path(name) / "config.json").is_file():
        return json.loads((Path(name) / "config.json").read_text())
    family = tiny_family(name)
    if family is not None:
        return families.tiny_config_values(family)
    from qwen_recipes.families.multimodal import VISION_ENCODERS

    known = families.checkpoint_config(name) or VISION_ENCODERS.get(name)
    return known or (None if offline else _hub_config(name))


def composed_arch(recipe: Recipe, offline: bool = False) -> tuple[Arch, str]:
    """The architecture of `model_name_or_path` composed with `vision_encoder` (LLaVA-OneVision), from configs only."""
    from qwen_recipes.cost.models import UnknownModel, arch_from_config
    from qwen_recipes.testbed import tiny_family

    llm, encoder = str(recipe.get("model_name_or_path")), str(recipe.get("vision_encoder"))
    text = _config_values(llm, offline)
    tiny = tiny_family(encoder)
    vision = tiny_config_vision(tiny) if tiny is not None else _config_values(encoder, offline)
    if text is None or vision is None:
        missing = llm if text is None else encoder
        raise UnknownModel(f"{missing!r}: no config.json offline; pass a local folder or go online")
    vision = vision.get("vision_config", vision)
    composer = next(f for f in families.families() if f.vision is not None and not f.vision.dynamic_resolution)
    cls_token = vision.get("model_type") == "clip_vision_model"
    cfg = {"model_type": composer.model_type, "text_config": text, "vision_config": vision,
           "vision_feature_layer": -2 if cls_token else -1,
           "tie_word_embeddings": text.get("tie_word_embeddings", False)}  # fmt: skip
    return arch_from_config(cfg), f"composed: {llm} + {encoder}"


def tiny_config_vision(family: families.Family) -> dict[str, Any]:
    """The test bed's tiny vision tower config of a composed family."""
    return dict(families.tiny_config_values(family)["vision_config"])


def count_vision_tokens(recipe: Recipe, arch: Arch, tokenizer: Any) -> dict[str, Any] | None:
    """Tokens, rows, longest, attention length and source of a vision recipe's local data (as count_local_tokens): the template's text plus each image's tokens
    from its header and the pixel bounds (the processor's own formula, tests/cost/test_vision_cost.py); rows over
    max_length are dropped, as training drops them. Videos are not counted here (their frames need decoding)."""
    from qwen_recipes.data.mixture import canonical_rows
    from qwen_recipes.data.templates import resolve_training_template
    from qwen_recipes.data.vision import media_converter
    from qwen_recipes.data.vision_dataset import fill_media

    v: VisionArch = arch.vision
    if v.kind not in QWEN_KINDS:
        return None  # anyres tiles depend on the processor's grid choice: count them by training (the data report)

    convert = media_converter()
    rows = canonical_rows(replace(recipe, values={**recipe.values, "strict": False}), canonical=convert)
    template = resolve_training_template(tokenizer, arch.model_type, recipe.get("chat_template_path"))
    low, high = pixel_bounds(recipe, families.find(arch.model_type))
    enc = tokenizer.apply_chat_template(
        [fill_media(r["messages"], r["videos"]) for r in rows], chat_template=template, tokenize=True, return_dict=True
    )
    lengths = []
    for row, ids in zip(rows, enc["input_ids"], strict=True):
        per_image = [v.tokens(v.grid(h, w, low, high)) for h, w in row["_image_sizes"]]
        lengths.append(len(ids) + sum(per_image) - len(per_image))
    max_length = recipe.get("max_length")
    kept = [n for n in lengths if not max_length or n <= max_length]
    source = f"counted: {len(kept)} local rows (text and image tokens; {len(lengths) - len(kept)} over max_length)"
    from qwen_recipes.cost.tokens import length_summary

    return length_summary(kept, source)
