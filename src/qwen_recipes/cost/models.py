"""Model architectures for cost estimates: the families' published configs, or a local config.json.

The family registry holds the published config.json values of each Hub checkpoint, so estimates work offline.
Parameter counts derived from them match the published sizes (tests/cost/test_estimate.py: e.g. Qwen2.5-32B
32.76B, Qwen3-8B 8.19B). A local model folder's own config.json always wins over the table.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwen_recipes import families
from qwen_recipes.cost.layers import (
    Experts,
    LinearAttention,
    experts_from_config,
    linear_attention_from_config,
    vision_params,
)
from qwen_recipes.errors import UserError

if TYPE_CHECKING:
    from qwen_recipes.recipe import Recipe


@dataclass(frozen=True)
class Arch:
    """The numbers of a decoder-only Qwen model that memory and FLOPs depend on."""

    model_type: str  # config.model_type (a registered family)
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tie_word_embeddings: bool
    qkv_bias: bool = False  # biases on q/k/v (the family says)
    qk_norm: bool = False  # RMSNorm on q and k per head (the family says)
    attn_output_gate: bool = False  # q_proj also yields a sigmoid output gate (Qwen3.5: 2x wide)
    linear_attention: LinearAttention | None = None  # Gated-DeltaNet layers of a hybrid (cost/layers.py)
    moe: Experts | None = None  # fused-expert MoE blocks (cost/layers.py)
    vision_params: int = 0  # a vision tower loaded with the checkpoint (frozen by text-only training)

    @property
    def full_attention_layers(self) -> int:
        """Decoder layers with softmax attention (all of them unless the model is a linear-attention hybrid)."""
        return self.layers - (self.linear_attention.layers if self.linear_attention else 0)

    @property
    def dense_mlp_layers(self) -> int:
        """Decoder layers with a dense SwiGLU MLP (all of them unless the model has MoE blocks)."""
        return self.layers - (self.moe.layers if self.moe else 0)

    def linear_groups(self) -> list[tuple[int, dict[str, tuple[int, int]]]]:
        """(number of layers, {name: (in, out)}) of the decoder's nn.Linear modules, grouped by layer part."""
        full = self.linear_shapes()
        attn = {k: full[k] for k in ("q_proj", "k_proj", "v_proj", "o_proj")}
        mlp = {k: full[k] for k in ("gate_proj", "up_proj", "down_proj")}
        groups = [(self.full_attention_layers, attn), (self.dense_mlp_layers, mlp)]
        if self.linear_attention:
            groups.append((self.linear_attention.layers, self.linear_attention.linear_shapes(self.hidden)))
        if self.moe and self.moe.shared_intermediate:
            groups.append((self.moe.layers, self.moe.linear_shapes(self.hidden)))
        return [(n, shapes) for n, shapes in groups if n and shapes]

    def decoder_linear_params(self) -> int:
        """Weights of every nn.Linear of the decoder layers (the routed experts are fused parameters, not counted)."""
        return sum(n * sum(i * o for i, o in shapes.values()) for n, shapes in self.linear_groups())

    def decoder_small_params(self) -> int:
        """Norms, biases, Gated-DeltaNet conv/gates and the final norm (never quantised)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        attn = (q + 2 * kv if self.qkv_bias else 0) + (2 * self.head_dim if self.qk_norm else 0)
        small = self.layers * 2 * self.hidden + self.full_attention_layers * attn + self.hidden
        if self.linear_attention:
            small += self.linear_attention.layers * self.linear_attention.small_params()
        return small

    def expert_params(self) -> int:
        """Fused routed-expert weights and routers of every MoE layer (bitsandbytes leaves them 16-bit)."""
        return self.moe.layers * self.moe.expert_params(self.hidden) if self.moe else 0

    vision: Any = None  # a vision-language model's tower and projector (cost/vision.py `VisionArch`)

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of every linear layer of one full-attention decoder layer with a dense MLP."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {
            "q_proj": (self.hidden, q * (2 if self.attn_output_gate else 1)),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (q, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }

    def layer_linear_params(self) -> int:
        """Weights of the linear layers of one decoder layer (biases excluded)."""
        return sum(i * o for i, o in self.linear_shapes().values())

    def layer_small_params(self) -> int:
        """Biases and norm weights of one decoder layer (never quantised)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        bias = q + 2 * kv if self.qkv_bias else 0
        qk_norm = 2 * self.head_dim if self.qk_norm else 0
        return bias + 2 * self.hidden + qk_norm

    def embedding_params(self) -> int:
        """Input embeddings plus the output head when it is not tied to them."""
        return self.vocab * self.hidden * (1 if self.tie_word_embeddings else 2)

    def total_params(self) -> int:
        """All parameters, counting tied embeddings once (as `model.num_parameters()` does)."""
        vision = self.vision.params() if self.vision is not None else self.vision_params
        if self.linear_attention or self.moe or self.attn_output_gate:
            decoder = self.decoder_linear_params() + self.decoder_small_params() + self.expert_params()
            return decoder + self.embedding_params() + vision
        per_layer = self.layer_linear_params() + self.layer_small_params()
        return self.layers * per_layer + self.embedding_params() + self.hidden + vision  # + final norm


def builtin() -> dict[str, Arch]:
    """Hub id -> architecture of every published checkpoint a registered family lists, plus the tiny test beds."""
    table = {}
    for family in families.families():
        for hub_id, cfg in family.checkpoints.items():
            table[hub_id] = arch_from_config({"model_type": family.model_type, **cfg})
        table[f"tiny:{family.name}"] = arch_from_config(families.tiny_config_values(family))
    return table


class UnknownModel(UserError):
    """A model whose architecture we cannot find offline."""


def arch_from_config(cfg: dict[str, Any], recipe: Recipe | None = None) -> Arch:
    """An `Arch` from config.json values (a dict); the family of its `model_type` supplies the per-family terms.

    A multimodal config keeps the language model's numbers in `text_config`. A vision tower is costed as trained
    with (`vision`) when the recipe takes the vision path (recipe/vision.py `takes_vision_path`), else only its
    weights are counted (a text recipe of a natively multimodal family); without a recipe, the family's own path.
    """
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    model_type = str(cfg.get("model_type") or text.get("model_type") or "")
    family = families.find(model_type)
    if family is None:
        raise UnknownModel(
            f"config.json has model_type {model_type!r}, which no registered family covers; known: "
            f"{', '.join(f.model_type for f in families.families())}"
        )
    # A composed VLM (LLaVA-OneVision + a Qwen LM) takes its decoder terms from its text model's own family.
    lm_family = families.find(text.get("model_type")) if text is not cfg else None
    lm_family = lm_family or family
    from qwen_recipes.recipe.vision import takes_vision_path

    trains_vision = (
        takes_vision_path(family, recipe) if recipe is not None else bool(family.vision and not family.vision.native)
    )
    if trains_vision and isinstance(cfg.get("vision_config"), dict):
        from qwen_recipes.cost.vision import vision_arch

        vision = vision_arch(cfg, family.vision.cost)
    else:
        vision = None
    try:
        heads = int(text["num_attention_heads"])
        hidden = int(text["hidden_size"])
        layers = int(text["num_hidden_layers"])
        moe = experts_from_config(text, layers)
        return Arch(
            model_type=model_type,
            hidden=hidden,
            # MoE configs without dense layers may carry no intermediate_size (Qwen3.5-MoE)
            intermediate=int(text["intermediate_size"] if not moe or "intermediate_size" in text else 0),
            layers=layers,
            heads=heads,
            kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=int(text.get("head_dim") or hidden // heads),
            vocab=int(text["vocab_size"]),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
            qkv_bias=lm_family.qkv_bias,
            qk_norm=lm_family.qk_norm,
            attn_output_gate=lm_family.attn_output_gate,
            linear_attention=linear_attention_from_config(text, layers),
            moe=moe,
            vision=vision,
            # A tower the text-only path loads but never trains (Qwen3.5); a VL family costs its own (`vision`).
            vision_params=vision_params(cfg["vision_config"])
            if vision is None and isinstance(cfg.get("vision_config"), dict)
            else 0,
        )
    except KeyError as e:
        raise UnknownModel(f"config.json lacks {e.args[0]!r}; is this a decoder-only causal LM?") from None


def _hub_config(name: str) -> dict[str, Any] | None:
    # Online only, and only config.json (a few KB): never weights.
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        return None
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(name, "config.json")).read_text())
    except Exception:  # any failure means "not found online"; the caller reports it
        return None


def resolve_arch(model_name_or_path: str, offline: bool = False, recipe: Recipe | None = None) -> tuple[Arch, str]:
    """The architecture of a model and where it came from (local config.json, built-in table, or the Hub).

    With a recipe, its vision tower is costed as the recipe uses it (`arch_from_config`).
    """
    name = str(model_name_or_path)
    local = Path(name) / "config.json"
    if local.is_file():
        return arch_from_config(json.loads(local.read_text()), recipe), str(local)
    table = builtin()
    if name in table:
        family = families.find(table[name].model_type)
        if recipe is None or not (family and family.vision and family.vision.native):
            return table[name], "built-in table"
        # A natively multimodal checkpoint: the table holds its text path; a vision recipe costs the tower too.
        cfg = families.tiny_config_values(family) if name.startswith("tiny:") else families.checkpoint_config(name)
        return arch_from_config(cfg, recipe), "built-in table"
    cfg = _hub_config(name) if "/" in name and not offline else None
    if cfg is not None:
        return arch_from_config(cfg, recipe), f"hub:{name}/config.json"
    known = ", ".join(sorted(k for k in table if not k.endswith(("-Instruct", "-Base"))))
    raise UnknownModel(
        f"model {name!r}: no local config.json and not in the built-in table; known: {known} "
        "(Instruct/-Base variants too). Pass a local model folder, or go online so its config.json can be read."
    )


def recipe_arch(recipe: Recipe, offline: bool = False) -> tuple[Arch, str]:
    """A recipe's architecture; a model produced by an earlier step (not on disk yet) has its `base_model_id`'s."""
    name = str(recipe.get("model_name_or_path"))
    if recipe.get("vision_encoder"):  # an LLM composed with a vision encoder (cost/vision_estimate.py)
        from qwen_recipes.cost.vision_estimate import composed_arch

        return composed_arch(recipe, offline)
    base = recipe.get("base_model_id")
    if base and not (Path(name) / "config.json").is_file() and name not in builtin():
        try:
            arch, source = resolve_arch(str(base), offline, recipe)
            return arch, f"{source} (base_model_id {base}; {name} is not on disk yet)"
        except UnknownModel:
            pass
    return resolve_arch(name, offline, recipe)


def arch_dict(arch: Arch) -> dict[str, Any]:
    """The architecture as a plain dict (for --json)."""
    return {**asdict(arch), "parameters": arch.total_params()}
