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


def family_offline(recipe: Recipe) -> families.Family | None:
    """The vision-language family of a recipe's model from the registry or a local config.json, else None.

    None also when the model is not known offline (a Hub id we do not list, an earlier stage's output not written
    yet): the checks below then wait for the model to load.
    """
    from qwen_recipes.testbed import tiny_family

    if recipe.get("vision_encoder"):
        return next((f for f in families.families() if f.vision and not f.vision.dynamic_resolution), None)
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
    return family if family is not None and family.vision is not None else None


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
