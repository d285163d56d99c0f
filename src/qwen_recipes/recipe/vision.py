"""Vision-language recipe checks, before anything loads (no torch): which family, and keys that contradict it."""

from __future__ import annotations

import json
from pathlib import Path

from qwen_recipes import families
from qwen_recipes.errors import UserError
from qwen_recipes.recipe.core import Recipe

PIXEL_KEYS = ("image_min_pixels", "image_max_pixels", "video_min_pixels", "video_max_pixels")
VIDEO_KEYS = ("video_fps", "video_max_frames")
PART_KEYS = ("train_language_model", "train_projector", "train_vision_tower")
LR_KEYS = {"projector_learning_rate": "train_projector", "vision_tower_learning_rate": "train_vision_tower"}
VISION_KEYS = (*PIXEL_KEYS, *VIDEO_KEYS, *PART_KEYS, *LR_KEYS, "vision_encoder")
VISION_TASKS = ("sft", "grpo")


def takes_vision_path(family: families.Family | None, recipe: Recipe) -> bool:
    """Whether a recipe trains its model as a vision-language model: THE routing rule, torch-free.

    Every VL family does. A natively multimodal text family (Qwen3.5, `Vision.native`) keeps its text path (packing,
    padding-free batches, the text data pipeline) unless the recipe sets a vision key (`VISION_KEYS`; a recipe based
    on recipes/_base/vision_sft.yaml sets `train_language_model` and friends).
    """
    if family is None or family.vision is None:
        return False
    return not family.vision.native or any(recipe.is_set(k) for k in VISION_KEYS)


def family_offline(recipe: Recipe) -> families.Family | None:
    """The vision-language family a recipe trains, from the registry or a local config.json, else None.

    None for a text recipe of a natively multimodal family (`takes_vision_path`), and when the model is not known
    offline (a Hub id we do not list, an earlier stage's output not written yet): the checks below then wait for the
    model to load.
    """
    if recipe.get("vision_encoder"):
        return next((f for f in families.families() if f.vision and not f.vision.dynamic_resolution), None)
    family = model_family_offline(recipe)
    return family if takes_vision_path(family, recipe) else None


def model_family_offline(recipe: Recipe) -> families.Family | None:
    """The family of a recipe's model (text or vision) from the registry or a local config.json, else None."""
    from qwen_recipes.testbed import tiny_family

    name = str(recipe.get("model_name_or_path") or "")
    try:
        family = tiny_family(name)
    except UserError:  # an unknown tiny: name is reported when the model loads
        return None
    config = Path(name) / "config.json"
    if family is None and config.is_file():
        family = families.find(json.loads(config.read_text()).get("model_type"))
    if family is None:
        family = families.for_checkpoint(name) or families.for_checkpoint(str(recipe.get("base_model_id") or ""))
    return family


def media_fix(recipe: Recipe) -> str:
    """The fix for image/video rows in a text recipe: the model's vision path, or a vision-language model."""
    base = "recipes/_base/vision_sft.yaml" if recipe.task == "sft" else "recipes/_base/vision.yaml"
    family = model_family_offline(recipe)
    model = recipe.get("model_name_or_path")
    if family is not None and family.vision is not None and family.vision.native:
        return (
            f"{model} ({family.name}) is natively multimodal, but the recipe sets no vision key, so it trains as a "
            f"text model and the images would be dropped: add {base} to `base:` (it sets train_language_model and "
            "the other vision keys) to train on the images, or remove the image parts from the data"
        )
    if family is not None and family.vision is None:
        return (
            f"{model} ({family.name}) is a text-only model: use a vision-language model (Qwen2.5-VL, Qwen3-VL or "
            f"Qwen3.5) with {base} in `base:`, or remove the image parts from the data"
        )
    return f"to train on images, add {base} to `base:` with a vision-language model, or remove the image parts"


def check_vision(r: Recipe, problems: list[str]) -> None:
    """Problems of the vision keys: set on a text-only model, out of range, or contradicting the method/data path."""
    family = family_offline(r)
    set_keys = [k for k in VISION_KEYS if r.is_set(k)]
    if family is None:
        known_text_only = _known_text_only(r)
        for key in set_keys if known_text_only else []:
            problems.append(f"{r.where(key)}: {key} applies to vision-language models; {known_text_only} is text-only")
        return
    for key in PIXEL_KEYS + VIDEO_KEYS:
        value = r.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            problems.append(f"{r.where(key)}: {key}={value!r} must be positive")
    for kind in ("image", "video"):
        low, high = r.get(f"{kind}_min_pixels"), r.get(f"{kind}_max_pixels")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            problems.append(
                f"{r.where(f'{kind}_min_pixels')}: {kind}_min_pixels={low} is above {kind}_max_pixels={high}"
            )
    if not family.vision.dynamic_resolution:
        for key in [k for k in PIXEL_KEYS if r.is_set(k)]:
            problems.append(
                f"{r.where(key)}: {key} does not apply to {family.name}: it tiles images at the vision tower's fixed "
                "input size (anyres crops); remove the key"
            )
    if r.task not in VISION_TASKS:
        problems.append(
            f"{r.where('task')}: task={r.task!r} is not supported for vision-language models; use sft or grpo"
        )
    if r.method in ("lora", "qlora") and not r.get("train_language_model"):
        problems.append(
            f"{r.where('train_language_model')}: train_language_model=false with method: {r.method}: the adapters "
            "go on the language model; to train the connector alone use method: full with train_projector: true"
        )
    if not any(r.get(k) for k in PART_KEYS):
        problems.append(f"{r.where('train_language_model')}: nothing trains: set one of {', '.join(PART_KEYS)}")
    for key, switch in LR_KEYS.items():
        if r.is_set(key) and r.get(key) is not None and not r.get(switch):
            problems.append(f"{r.where(key)}: {key} has no effect unless {switch}: true")
    for key, why in (("packing", "packing"), ("padding_free", "padding-free batches")):
        if r.get(key):
            problems.append(
                f"{r.where(key)}: {key}=true: {why} is not supported for vision-language data (TRL refuses it); "
                f"set {key}: false (recipes/_base/vision_sft.yaml does)"
            )
    if r.task == "sft" and r.overlong == "truncate":
        problems.append(
            f'{r.where("overlong")}: overlong=truncate would cut rows inside their vision tokens ("Image features and '
            'image tokens do not match"); vision rows are dropped whole and counted: set overlong: drop '
            "(recipes/_base/vision.yaml does)"
        )


def _known_text_only(r: Recipe) -> str | None:
    """The family name when the model is a registered text-only family (so vision keys are certainly wrong)."""
    from qwen_recipes.testbed import tiny_family

    name = str(r.get("model_name_or_path") or "")
    try:
        family = tiny_family(name) or families.for_checkpoint(name)
    except UserError:
        return None
    return family.name if family is not None and family.vision is None else None
