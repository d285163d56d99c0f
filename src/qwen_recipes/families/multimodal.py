"""Registry data of vision-language families: the `Vision` record, published configs and tiny test beds.

A vision-language family is one more `families.Family` whose `vision` is a `Vision` (no code, only data): its
processor classes and published defaults, which module prefixes are the vision tower, the projector and the language
model (freezing, per-part learning rates, LoRA and QLoRA targets), its vision tokens and which cost terms apply.
data/vision.py, training/vision.py and cost/vision.py read only this; nothing there names a family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OPENAI_CLIP_MEAN, OPENAI_CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
QWEN_VL_IMAGE_PROCESSOR = "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl:Qwen2VLImageProcessorPil"
LLAVA_OV_IMAGE_PROCESSOR = (
    "transformers.models.llava_onevision.image_processing_pil_llava_onevision:LlavaOnevisionImageProcessorPil"
)
LANGUAGE_PREFIXES = ("model.language_model", "lm_head")


@dataclass(frozen=True)
class Vision:
    """What a vision-language family adds to a decoder family."""

    processor_class: str  # "module:Class" of its transformers processor
    image_processor_class: str  # "module:Class" of the PIL image processor (works without torchvision)
    image_processor: dict[str, Any]  # the published preprocessor_config.json values (offline processors start here)
    vision_prefixes: tuple[str, ...]  # module-name prefixes of the vision tower (frozen by default)
    projector_prefixes: tuple[str, ...]  # ... of the projector / merger (frozen by default)
    vision_lora_targets: tuple[str, ...]  # linears of one vision block (LoRA on the tower when it trains)
    cost: str  # vision cost terms in cost/vision.py: "qwen2_5_vl", "qwen3_vl" or "vit"
    language_prefixes: tuple[str, ...] = LANGUAGE_PREFIXES
    image_token: str = "<|image_pad|>"
    video_token: str | None = "<|video_pad|>"
    vision_start: str | None = "<|vision_start|>"
    vision_end: str | None = "<|vision_end|>"
    dynamic_resolution: bool = True  # image/video min/max pixels apply (Qwen); False: fixed-size tiles (LLaVA-OV)
    # A natively multimodal text family (Qwen3.5): its text recipes keep the text path (packing, padding-free, the
    # text data pipeline) and only a recipe that sets a vision key takes the vision path (recipe/vision.py).
    native: bool = False
    processor_kwargs: dict[str, Any] = field(default_factory=dict)  # extra processor arguments (LLaVA-OV)
    tiny_image_processor: dict[str, Any] = field(default_factory=dict)  # test bed: small images, tens of tokens

    def vision_token_names(self) -> tuple[str, ...]:
        """Every token a vision span is made of (never trained)."""
        return tuple(t for t in (self.image_token, self.video_token, self.vision_start, self.vision_end) if t)


def qwen_vl_image_processor(patch: int, mean: list[float], std: list[float], low: int, high: int) -> dict[str, Any]:
    """A Qwen VL preprocessor_config.json: patch size, 2x2 merge, 2-frame temporal patches, pixel bounds (H*W)."""
    size = {"shortest_edge": low, "longest_edge": high}
    return {"patch_size": patch, "temporal_patch_size": 2, "merge_size": 2, "image_mean": mean, "image_std": std, "size": size}  # fmt: skip


# Qwen's vision token ids (the Qwen2.5/Qwen3 tokenizers' <|image_pad|>, <|video_pad|>, <|vision_start|>, <|vision_end|>).
QWEN_VL_TOKEN_IDS = {"image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652, "vision_end_token_id": 151653}  # fmt: skip


def _text(h: int, i: int, n: int, a: int, kv: int, vocab: int, head_dim: int | None = None) -> dict[str, Any]:
    cfg = {"hidden_size": h, "intermediate_size": i, "num_hidden_layers": n, "num_attention_heads": a,
           "num_key_value_heads": kv, "vocab_size": vocab, "tie_word_embeddings": False}  # fmt: skip
    return cfg | ({"head_dim": head_dim} if head_dim else {})


# Published config.json values. Qwen2.5-VL-7B: https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json
# (8.29B parameters on its card); Cosmos-Reason1-7B is a fine-tune of it (its card: "Qwen2.5-VL architecture").
QWEN2_5_VL_7B = {
    **QWEN_VL_TOKEN_IDS, "tie_word_embeddings": False, "text_config": _text(3584, 18944, 28, 28, 4, 152064),
    "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                      "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                      "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "in_channels": 3},
}  # fmt: skip
# Qwen3-VL-8B: https://huggingface.co/Qwen/Qwen3-VL-8B-Instruct/blob/main/config.json (8.77B parameters on its card);
# Cosmos-Reason2-8B has the same architecture (its card: "Qwen3-VL architecture").
QWEN3_VL_8B = {
    **QWEN_VL_TOKEN_IDS, "tie_word_embeddings": False, "text_config": _text(4096, 12288, 36, 32, 8, 151936, 128),
    "vision_config": {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16,
                      "out_hidden_size": 4096, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
                      "num_position_embeddings": 2304, "deepstack_visual_indexes": [8, 16, 24], "in_channels": 3},
}  # fmt: skip

# Test beds: hidden 64, 2 layers, the real 151,936-token vocabulary, a 2-block vision tower of width 32.
TINY_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 4096, "tie_word_embeddings": True,
             "vocab_size": 151936, "bos_token_id": 151643, "eos_token_id": 151645, "pad_token_id": 151643}  # fmt: skip
TINY_VISION = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64}


def tiny_qwen_vl(patch_size: int, mrope_section: list[int], head_dim: int | None = None, mrope_interleaved: bool = False,
                 **vision: Any) -> dict[str, Any]:  # fmt: skip
    """A tiny Qwen VL config; the three mRoPE sections (time, height, width) must sum to head_dim / 2."""
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope_section}
    rope |= {"mrope_interleaved": True} if mrope_interleaved else {}
    text = {**TINY_TEXT, "rope_parameters": rope} | ({"head_dim": head_dim} if head_dim else {})
    return {**QWEN_VL_TOKEN_IDS, "tie_word_embeddings": True, "text_config": text,
            "vision_config": {**TINY_VISION, "patch_size": patch_size, **vision}}  # fmt: skip


TINY_LLAVA_ONEVISION = {
    "image_token_index": 151655, "video_token_index": 151656, "vision_feature_select_strategy": "full",
    "vision_feature_layer": -1, "image_grid_pinpoints": [[28, 28], [28, 56], [56, 28], [56, 56]],
    "tie_word_embeddings": True, "text_config": {**TINY_TEXT, "model_type": "qwen3", "head_dim": 16},
    "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                      "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 28, "patch_size": 14,
                      "vision_use_head": False},
}  # fmt: skip

# Published vision-tower configs of encoders a composed VLM (`vision_encoder:`) can use, so estimates work offline:
# https://huggingface.co/openai/clip-vit-large-patch14-336 (Molmo-7B-D's ViT) and
# https://huggingface.co/google/siglip-so400m-patch14-384 (LLaVA-OneVision's) config.json `vision_config`.
VISION_ENCODERS = {
    "openai/clip-vit-large-patch14-336": {"model_type": "clip_vision_model", "hidden_size": 1024,
        "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 336, "patch_size": 14},
    "google/siglip-so400m-patch14-384": {"model_type": "siglip_vision_model", "hidden_size": 1152,
        "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16, "image_size": 384, "patch_size": 14},
}  # fmt: skip
