"""Vision-language models: the processor, the model, which parts train (LM, projector, vision tower) and at what rate.

Everything family-specific comes from the registry's `Vision` entry (families/vision.py): processor classes and defaults,
the module prefixes of the vision tower, projector and language model, and the vision tokens. Defaults follow
LLaMA-Factory and ms-swift: the language model trains (LoRA, QLoRA or full), the vision tower and the projector are
frozen; `train_projector` / `train_vision_tower` unfreeze them, each with its own learning rate (Molmo trains the
connector at 2e-4, the ViT at 6e-6 and the LLM at 2e-5), and `train_language_model: false` trains the connector alone.

Processors need no torchvision: the image processors are the PIL ones, and without torchvision the processor is built
without a video processor (transformers' video processors require it; video rows then fail with the package name).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from qwen_recipes import families
from qwen_recipes.recipe import Recipe

ROLES = ("language", "projector", "vision")
LR_KEYS = {"projector": "projector_learning_rate", "vision": "vision_tower_learning_rate"}
TRAIN_KEYS = {"language": "train_language_model", "projector": "train_projector", "vision": "train_vision_tower"}


def _load(spec: str) -> Any:
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def vision_family(model_type: str | None) -> families.Family | None:
    """The registered vision-language family of a `config.model_type`, or None (a text-only model)."""
    family = families.find(model_type)
    return family if family is not None and family.vision is not None else None


def composer_family() -> families.Family:
    """The family that composes an LLM and a vision encoder (`vision_encoder:`): fixed-tile LLaVA-OneVision."""
    return next(f for f in families.families() if f.vision is not None and not f.vision.dynamic_resolution)


def recipe_family(recipe: Recipe) -> families.Family | None:
    """The vision-language family a recipe trains, or None for a text recipe (reads config.json only).

    A natively multimodal family (Qwen3.5) is None for its text recipes (recipe/vision.py `takes_vision_path`).
    """
    if recipe.get("vision_encoder"):
        return composer_family()
    from qwen_recipes.recipe.vision import takes_vision_path
    from qwen_recipes.training.model import model_type

    family = families.find(model_type(recipe))
    return family if takes_vision_path(family, recipe) else None


def role(name: str, family: families.Family) -> str:
    """'vision', 'projector' or 'language' for a parameter/module name (PEFT's prefixes and wrappers ignored)."""
    name = name.removeprefix("base_model.model.")
    v = family.vision

    def under(prefixes: tuple[str, ...]) -> bool:
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    if under(v.projector_prefixes):
        return "projector"
    if under(v.vision_prefixes):
        return "vision"
    if under(v.language_prefixes):
        return "language"
    raise ValueError(f"{name!r} is in none of {family.name}'s vision/projector/language prefixes (families/vision.py)")


def trained_roles(recipe: Recipe) -> set[str]:
    """The parts a recipe trains (`train_language_model`, `train_projector`, `train_vision_tower`)."""
    return {r for r, key in TRAIN_KEYS.items() if recipe.get(key)}


# ------------------------------------------------------------------------------------------------ processor


def processor_class(family: families.Family, with_video: bool) -> type:
    """The family's processor class; without a video processor, a subclass that does not ask for one.

    ProcessorMixin derives its sub-processors from `__init__`'s parameters and checks a `video_processor` (even None)
    against VideoProcessorMixin, which transformers leaves undefined without torchvision. The subclass keeps the
    base's name, so saved processor files name the real class for `AutoProcessor` elsewhere.
    """
    base = _load(family.vision.processor_class)
    if with_video:
        return base

    import inspect

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        kwargs.pop("video_processor", None)
        base.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    # The base's signature minus video_processor: ProcessorMixin saves exactly the __init__ parameters it names.
    signature = inspect.signature(base.__init__)
    __init__.__signature__ = signature.replace(
        parameters=[p for p in signature.parameters.values() if p.name != "video_processor"]
    )
    return type(base.__name__, (base,), {"__init__": __init__, "__module__": base.__module__})


def build_processor(
    family: families.Family,
    tokenizer: Any,
    image_processor: Any,
    video_processor: Any = None,
    chat_template: str | None = None,
    **kwargs: Any,
) -> Any:
    """The family's processor around a tokenizer and an image (and optionally video) processor."""
    cls = processor_class(family, video_processor is not None)
    own = tokenizer.chat_template
    text_only = own and (found := families.detect(own, None)) is not None and found.vision is None
    # An LLM's own text template cannot place images (a composed VLM): the family's vision template replaces it.
    template = chat_template or (family.official_template() if not own or text_only else own)
    extra = {**family.vision.processor_kwargs, **kwargs}
    if "image_token" in _init_params(cls):
        extra.setdefault("image_token", family.vision.image_token)
        extra.setdefault("video_token", family.vision.video_token)
    if video_processor is not None:
        extra["video_processor"] = video_processor
    return cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=template, **extra)


def _init_params(cls: type) -> set[str]:
    import inspect

    return {n for c in cls.__mro__ if "__init__" in vars(c) for n in inspect.signature(c.__init__).parameters}


def tiny_processor(family: families.Family, tokenizer: Any) -> Any:
    """The test bed's offline processor: the family's published defaults, small images, our tokenizer."""
    v = family.vision
    image_processor = _load(v.image_processor_class)(**{**v.image_processor, **v.tiny_image_processor})
    kwargs = {}
    if not v.dynamic_resolution:  # tiles of the tower's own size: (image_size / patch)^2 tokens each
        vision = families.tiny_config_values(family)["vision_config"]
        kwargs["num_image_tokens"] = (vision["image_size"] // vision["patch_size"]) ** 2
    return build_processor(family, tokenizer, image_processor, **kwargs)


def _video_processor(path: str, revision: str | None) -> Any:
    from transformers.utils import is_torchvision_available

    if not is_torchvision_available():
        return None
    try:
        from transformers import AutoVideoProcessor

        return AutoVideoProcessor.from_pretrained(path, revision=revision)
    except (OSError, ValueError, ImportError):  # no video config, or no decoder: video rows say what is missing
        return None


def saved_processor_kwargs(path: str, cls: type) -> dict[str, Any]:
    """The processor's own init arguments saved in `processor_config.json` (e.g. LLaVA-OV's num_image_tokens)."""
    file = Path(path) / "processor_config.json"
    if not file.is_file():
        return {}
    saved = json.loads(file.read_text())
    params = _init_params(cls) - {"self", "image_processor", "tokenizer", "video_processor", "chat_template"}
    return {k: v for k, v in saved.items() if k in params}


def load_processor(recipe: Recipe, tokenizer: Any) -> Any:
    """The model's processor (offline-capable), with the recipe's image/video resolution settings applied."""
    from qwen_recipes.training.model import resolve_model_path

    family = recipe_family(recipe)
    if recipe.get("vision_encoder"):
        from qwen_recipes.training.vision_compose import composed_processor

        processor = composed_processor(family, resolve_encoder(recipe.get("vision_encoder")), tokenizer)
    else:
        path = resolve_model_path(recipe.get("model_name_or_path"))
        processor = processor_from_pretrained(family, path, tokenizer, recipe.get("model_revision"))
    apply_resolution(processor, recipe)
    return processor


def processor_from_pretrained(family: families.Family, path: str, tokenizer: Any, revision: str | None = None) -> Any:
    """A checkpoint's processor from its saved image (and, with torchvision, video) processor files."""
    image_processor = _load(family.vision.image_processor_class).from_pretrained(path, revision=revision)
    video = _video_processor(path, revision)
    kwargs = saved_processor_kwargs(path, processor_class(family, video is not None))
    return build_processor(family, tokenizer, image_processor, video, **kwargs)


def load_pretrained(path: str) -> tuple[Any, Any]:
    """(model, processor) of a vision-language output folder (full model, or adapter over its base) for inference."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer

    adapter = Path(path) / "adapter_config.json"
    base = json.loads(adapter.read_text())["base_model_name_or_path"] if adapter.is_file() else path
    family = vision_family(AutoConfig.from_pretrained(base).model_type)
    if family is None:
        raise ValueError(f"{path}: its model ({base}) is not a registered vision-language family")
    processor = processor_from_pretrained(family, path, AutoTokenizer.from_pretrained(path))
    model = AutoModelForImageTextToText.from_pretrained(
        base, dtype=torch.float32 if not torch.cuda.is_available() else "auto"
    )
    if adapter.is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path)
    return model.eval(), processor


def resolve_encoder(name: str) -> str:
    """A vision encoder path or Hub id; `tiny:<family>` is the test bed's tower of that family, saved once."""
    from qwen_recipes.data.pipeline import cache_home
    from qwen_recipes.testbed import tiny_family

    family = tiny_family(name)
    if family is None:
        return name
    from qwen_recipes.training.vision_compose import save_tiny_encoder

    return str(save_tiny_encoder(family, cache_home() / "models" / f"tiny-{family.name}-encoder"))


def apply_resolution(processor: Any, recipe: Recipe) -> None:
    """Set the recipe's image/video pixel bounds, fps and frame cap on the processor (None keeps its own)."""
    from transformers.image_processing_utils import SizeDict

    for sub, prefix in ((getattr(processor, "image_processor", None), "image"), (getattr(processor, "video_processor", None), "video")):  # fmt: skip
        low, high = recipe.get(f"{prefix}_min_pixels"), recipe.get(f"{prefix}_max_pixels")
        if sub is None or (low is None and high is None):
            continue
        size = {k: v for k, v in dict(sub.size).items() if v is not None}
        size.update({k: v for k, v in (("shortest_edge", low), ("longest_edge", high)) if v is not None})
        sub.size = SizeDict(**size)
    video = getattr(processor, "video_processor", None)
    if video is not None:
        if recipe.get("video_fps") is not None:
            video.fps = recipe.get("video_fps")
        if recipe.get("video_max_frames") is not None:
            video.max_frames = recipe.get("video_max_frames")


# ------------------------------------------------------------------------------------------------ model


def quantization_skip_modules(family: families.Family) -> list[str]:
    """Modules QLoRA keeps in 16 bits: the vision tower, the projector and the LM head.

    transformers matches these from the start of the full module name, so "visual" alone matches nothing and a
    list replaces its default skips (the head): both are written out (research/14 §9).
    """
    v = family.vision
    return [*v.vision_prefixes, *v.projector_prefixes, *[p for p in v.language_prefixes if "." not in p]]


def load_vision_model(recipe: Recipe, kwargs: dict[str, Any], model_name_or_path: str, tokenizer: Any) -> Any:
    """The image-text-to-text model (or an LLM composed with `vision_encoder`), parts frozen as the recipe says."""
    from transformers import AutoModelForImageTextToText

    family = recipe_family(recipe)
    if kwargs.get("quantization_config") is not None:
        kwargs["quantization_config"].llm_int8_skip_modules = quantization_skip_modules(family)
    if recipe.get("vision_encoder"):
        from qwen_recipes.training.vision_compose import compose

        ids = tuple(tokenizer.convert_tokens_to_ids(t) for t in (family.vision.image_token, family.vision.video_token))
        model = compose(family, model_name_or_path, resolve_encoder(recipe.get("vision_encoder")), kwargs, ids)
    else:
        model = AutoModelForImageTextToText.from_pretrained(model_name_or_path, **kwargs)
    if recipe.method == "full":
        train = trained_roles(recipe)
        for name, param in model.named_parameters():
            param.requires_grad_(role(name, family) in train)
    return model


def lora_target_modules(family: families.Family, lm_targets: list[str] | str, recipe: Recipe) -> str:
    """A PEFT regex (full match on module names) for the LM's linears, plus the tower's when it trains.

    A plain list would also hit the vision blocks' MLP (`visual.blocks.N.mlp.gate_proj` has the LM's names).
    """
    v = family.vision
    if isinstance(lm_targets, str) and lm_targets not in ("all-linear", "all"):
        return lm_targets  # the recipe's own regex or single name: theirs to choose
    leaves = [t for t in (family.lora_targets if isinstance(lm_targets, str) else lm_targets)]

    def alternative(prefixes: tuple[str, ...], names: list[str] | tuple[str, ...]) -> str:
        return rf"(?:{'|'.join(map(re.escape, prefixes))})\..*\.(?:{'|'.join(map(re.escape, names))})"

    alternatives = [alternative(v.language_prefixes, leaves)] if recipe.get("train_language_model") else []
    if recipe.get("train_vision_tower"):
        alternatives.append(alternative(v.vision_prefixes, v.vision_lora_targets))
    return "|".join(alternatives)


def lora_modules_to_save(family: families.Family, recipe: Recipe, model: Any = None) -> list[str]:
    """Projector modules PEFT trains whole next to the adapters (`train_projector` under LoRA/QLoRA).

    A module list (Qwen3-VL's deepstack mergers) is listed by child: PEFT's wrapper cannot be indexed.
    """
    if not recipe.get("train_projector"):
        return []
    import torch

    names = []
    for prefix in family.vision.projector_prefixes:
        module = _submodule(model, prefix) if model is not None else None
        if isinstance(module, torch.nn.ModuleList):
            names += [f"{prefix}.{i}" for i in range(len(module))]
        elif module is not None or model is None:
            names.append(prefix)
    return names


def meta_model(recipe: Recipe) -> Any:
    """The recipe's model on the meta device (module names and shapes, no memory): for PEFT's module lists."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from qwen_recipes.training.model import resolve_model_path

    family = recipe_family(recipe)
    if recipe.get("vision_encoder"):
        from qwen_recipes.training.vision_compose import composed_config

        llm = resolve_model_path(recipe.get("model_name_or_path"))
        config = composed_config(family, llm, resolve_encoder(recipe.get("vision_encoder")), 0, 0)
    else:
        path = resolve_model_path(recipe.get("model_name_or_path"))
        config = AutoConfig.from_pretrained(path, revision=recipe.get("model_revision"))
    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(config)


def _submodule(model: Any, name: str) -> Any:
    try:
        return model.get_submodule(name)
    except AttributeError:  # a bare parameter (LLaVA-OV's image_newline) is not a module PEFT can save
        return None


def param_groups(model: Any, recipe: Recipe, decay: set[str], weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups by part (LM / projector / vision tower) and weight decay, each part at its learning rate."""
    family = recipe_family(recipe)
    base = recipe.get("learning_rate")
    groups: dict[tuple[str, bool], list[Any]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((role(name, family), name in decay), []).append(param)
    out = []
    for (part, decays), params in sorted(groups.items()):
        lr = recipe.get(LR_KEYS[part]) if part in LR_KEYS else None
        lr = base if lr is None else lr
        out.append({"params": params, "lr": lr, "weight_decay": weight_decay if decays else 0.0, "name": part})
    return out


def optimizer_mixin() -> type:
    """A Trainer mixin whose optimizer has one group per trained part and its learning rate (`param_groups`)."""

    class PerPartOptimizer:
        vision_recipe: Recipe | None = None

        def create_optimizer(self, model=None):
            opt_model = self.model if model is None else model
            if self.optimizer is None and self.vision_recipe is not None:
                cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
                decay = set(self.get_decay_parameter_names(opt_model))
                groups = param_groups(opt_model, self.vision_recipe, decay, self.args.weight_decay)
                self.optimizer = cls(groups, **kwargs)
            return super().create_optimizer(model)

    return PerPartOptimizer
