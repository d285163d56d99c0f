"""Compose a VLM from a Qwen LLM and a vision encoder with transformers' LLaVA-OneVision classes (Molmo-style).

The composed model keeps the LLM's and the encoder's pretrained weights; only the 2-layer MLP projector and the
image-newline vector start random (stage 1 trains them on captions). Images are tiled "anyres" style: a base view
plus up to 3x3 crops of the tower's own size (Molmo crops similarly, up to 12 overlapping crops). The image token is
Qwen's own `<|image_pad|>`, so the tokenizer and the embedding matrix stay as they are.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from qwen_recipes import families

# Encoders whose tower emits a CLS token first: LLaVA drops it ("default" strategy) and reads the second-last layer.
CLS_ENCODERS = ("clip_vision_model",)
MAX_TILES_PER_SIDE = 6  # LLaVA-OneVision's pinpoints: 1..6 tiles per side (anyres_max_9 keeps at most 9 crops)


def _vision_config(encoder: str) -> Any:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(encoder)
    return getattr(config, "vision_config", None) or config


def pinpoints(image_size: int) -> list[list[int]]:
    """The anyres tile grids (height, width) in pixels for a tower of this input size."""
    sides = range(1, MAX_TILES_PER_SIDE + 1)
    return [[image_size * i, image_size * j] for i in sides for j in sides]


def composed_config(family: families.Family, llm: str, encoder: str, image_token_id: int, video_token_id: int) -> Any:
    """The LLaVA-OneVision config joining an LLM's config and an encoder's vision config."""
    from transformers import AutoConfig

    text, vision = AutoConfig.from_pretrained(llm), _vision_config(encoder)
    cls_token = vision.model_type in CLS_ENCODERS
    return families.get(family.model_type).config_cls()(
        text_config=text,
        vision_config=vision,
        image_token_index=image_token_id,
        video_token_index=video_token_id,
        vision_feature_select_strategy="default" if cls_token else "full",
        vision_feature_layer=-2 if cls_token else -1,
        image_grid_pinpoints=pinpoints(vision.image_size),
        vision_aspect_ratio="anyres_max_9",
        tie_word_embeddings=bool(getattr(text, "tie_word_embeddings", False)),
    )


def compose(family: families.Family, llm: str, encoder: str, kwargs: dict[str, Any], token_ids: tuple[int, int]) -> Any:
    """The composed model: the LLM (loaded with `kwargs`: dtype, quantization, device map) and the encoder's tower."""
    import torch
    from transformers import AutoModelForCausalLM

    config = composed_config(family, llm, encoder, *token_ids)
    cls = _model_class(config)
    with torch.device("meta"):  # no random init of billions of weights about to be replaced
        model = cls(config)
    lm = AutoModelForCausalLM.from_pretrained(llm, **kwargs)
    dtype, device = lm.get_input_embeddings().weight.dtype, lm.get_input_embeddings().weight.device
    tower = type(model.model.vision_tower).from_pretrained(encoder, dtype=dtype).to(device)
    model.model.language_model, model.lm_head, model.model.vision_tower = lm.model, lm.lm_head, tower
    projector = model.model.multi_modal_projector.to_empty(device=device).to(dtype)
    for module in projector.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=getattr(config.text_config, "initializer_range", 0.02))
            torch.nn.init.zeros_(module.bias)
    hidden = config.text_config.hidden_size
    model.model.image_newline = torch.nn.Parameter(torch.randn(hidden, dtype=dtype, device=device) / math.sqrt(hidden))
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.language_model.get_input_embeddings().weight
    model.generation_config = lm.generation_config
    if getattr(lm, "is_loaded_in_4bit", False):
        model.is_loaded_in_4bit, model.quantization_method = True, lm.quantization_method
        model.hf_quantizer = getattr(lm, "hf_quantizer", None)
    return model


def _model_class(config: Any) -> type:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING

    return MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING[type(config)]


def composed_processor(family: families.Family, encoder: str, tokenizer: Any) -> Any:
    """The LLaVA-OneVision processor for an encoder: its own input size and normalisation, our tokenizer."""
    from qwen_recipes.training.vision import _load, build_processor

    vision = _vision_config(encoder)
    pre_file = Path(encoder) / "preprocessor_config.json"
    pre = json.loads(pre_file.read_text()) if pre_file.is_file() else _hub_preprocessor(encoder)
    size = vision.image_size
    image_processor = _load(family.vision.image_processor_class)(
        size={"height": size, "width": size},
        image_mean=pre.get("image_mean", [0.5] * 3),
        image_std=pre.get("image_std", [0.5] * 3),
        image_grid_pinpoints=pinpoints(size),
    )
    cls_token = vision.model_type in CLS_ENCODERS
    return build_processor(
        family,
        tokenizer,
        image_processor,
        num_image_tokens=(size // vision.patch_size) ** 2 + int(cls_token),
        vision_feature_select_strategy="default" if cls_token else "full",
    )


def _hub_preprocessor(encoder: str) -> dict[str, Any]:
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(encoder, "preprocessor_config.json")).read_text())
    except Exception:  # offline or absent: SigLIP's 0.5 mean/std (CLIP checkpoints ship their file)
        return {}


def save_tiny_encoder(family: families.Family, path: Path) -> Path:
    """The test bed's tiny vision tower of a composed family, saved like a Hub encoder (weights + preprocessor)."""
    import os

    import torch
    from transformers import AutoConfig, AutoModel

    if (path / "config.json").exists():
        return path
    values = dict(families.tiny_config_values(family)["vision_config"])
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    torch.manual_seed(0)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    AutoModel.from_config(config).save_pretrained(tmp)
    pre = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "size": {"height": config.image_size}}
    (tmp / "preprocessor_config.json").write_text(json.dumps(pre))
    try:
        tmp.rename(path)
    except OSError:  # another process wrote the same files first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return path
