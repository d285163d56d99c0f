"""Model architectures for cost estimates: a built-in table of Qwen2.5/Qwen3 configs, or a local config.json.

The table holds the published config.json values of each Hub checkpoint, so estimates work offline. Parameter
counts derived from it match the published sizes (checked in tests/test_cost_models.py: e.g. Qwen2.5-32B
32.76B, Qwen3-8B 8.19B). A local model folder's own config.json always wins over the table.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Arch:
    """The numbers of a decoder-only Qwen model that memory and FLOPs depend on."""

    model_type: str  # "qwen2" (Qwen2.5) or "qwen3"
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tie_word_embeddings: bool

    @property
    def qkv_bias(self) -> bool:
        """Qwen2/2.5 have biases on q/k/v; Qwen3 has none (it normalises q and k instead)."""
        return self.model_type == "qwen2"

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of every linear layer of one decoder layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {
            "q_proj": (self.hidden, q),
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
        qk_norm = 2 * self.head_dim if self.model_type == "qwen3" else 0
        return bias + 2 * self.hidden + qk_norm

    def embedding_params(self) -> int:
        """Input embeddings plus the output head when it is not tied to them."""
        return self.vocab * self.hidden * (1 if self.tie_word_embeddings else 2)

    def total_params(self) -> int:
        """All parameters, counting tied embeddings once (as `model.num_parameters()` does)."""
        per_layer = self.layer_linear_params() + self.layer_small_params()
        return self.layers * per_layer + self.embedding_params() + self.hidden  # + final norm


def _qwen2(h: int, i: int, n: int, a: int, kv: int, vocab: int, tied: bool) -> Arch:
    return Arch("qwen2", h, i, n, a, kv, h // a, vocab, tied)


def _qwen3(h: int, i: int, n: int, a: int, kv: int, tied: bool) -> Arch:
    return Arch("qwen3", h, i, n, a, kv, 128, 151936, tied)


# Published config.json values (hidden, intermediate, layers, heads, kv heads, vocab, tied). Base and
# Instruct/-Base checkpoints of one size share the architecture.
_QWEN2_5 = {
    "0.5B": _qwen2(896, 4864, 24, 14, 2, 151936, True),
    "1.5B": _qwen2(1536, 8960, 28, 12, 2, 151936, True),
    "3B": _qwen2(2048, 11008, 36, 16, 2, 151936, True),
    "7B": _qwen2(3584, 18944, 28, 28, 4, 152064, False),
    "14B": _qwen2(5120, 13824, 48, 40, 8, 152064, False),
    "32B": _qwen2(5120, 27648, 64, 40, 8, 152064, False),
    "72B": _qwen2(8192, 29568, 80, 64, 8, 152064, False),
}
_QWEN3 = {
    "0.6B": _qwen3(1024, 3072, 28, 16, 8, True),
    "1.7B": _qwen3(2048, 6144, 28, 16, 8, True),
    "4B": _qwen3(2560, 9728, 36, 32, 8, True),
    "8B": _qwen3(4096, 12288, 36, 32, 8, False),
    "14B": _qwen3(5120, 17408, 40, 40, 8, False),
    "32B": _qwen3(5120, 25600, 64, 64, 8, False),
}
# The offline test bed's tiny random models (qwen_recipes.testing.tiny_config).
_TINY = {
    "tiny:qwen3": Arch("qwen3", 64, 128, 2, 4, 2, 16, 151936, True),
    "tiny:qwen2_5": Arch("qwen2", 64, 128, 2, 4, 2, 16, 151936, True),
}

BUILTIN: dict[str, Arch] = {
    **{f"Qwen/Qwen2.5-{s}{v}": a for s, a in _QWEN2_5.items() for v in ("", "-Instruct")},
    **{f"Qwen/Qwen3-{s}{v}": a for s, a in _QWEN3.items() for v in ("", "-Base")},
    **_TINY,
}


class UnknownModel(ValueError):
    """A model whose architecture we cannot find offline."""


def arch_from_config(cfg: dict[str, Any]) -> Arch:
    """An `Arch` from config.json values (a dict)."""
    try:
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        return Arch(
            model_type=str(cfg.get("model_type", "qwen2")),
            hidden=hidden,
            intermediate=int(cfg["intermediate_size"]),
            layers=int(cfg["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            vocab=int(cfg["vocab_size"]),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
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


def resolve_arch(model_name_or_path: str) -> tuple[Arch, str]:
    """The architecture of a model and where it came from (local config.json, built-in table, or the Hub)."""
    name = str(model_name_or_path)
    local = Path(name) / "config.json"
    if local.is_file():
        return arch_from_config(json.loads(local.read_text())), str(local)
    if name in BUILTIN:
        return BUILTIN[name], "built-in table"
    cfg = _hub_config(name) if "/" in name else None
    if cfg is not None:
        return arch_from_config(cfg), f"hub:{name}/config.json"
    known = ", ".join(sorted(k for k in BUILTIN if not k.endswith("-Instruct") and not k.endswith("-Base")))
    raise UnknownModel(
        f"model {name!r}: no local config.json and not in the built-in table; known: {known} "
        "(Instruct/-Base variants too). Pass a local model folder, or go online so its config.json can be read."
    )


def recipe_arch(values: dict[str, Any]) -> tuple[Arch, str]:
    """A recipe's architecture; a model produced by an earlier step (not on disk yet) has its `base_model_id`'s."""
    name = str(values["model_name_or_path"])
    base = values.get("base_model_id")
    if base and not (Path(name) / "config.json").is_file() and name not in BUILTIN:
        try:
            arch, source = resolve_arch(str(base))
            return arch, f"{source} (base_model_id {base}; {name} is not on disk yet)"
        except UnknownModel:
            pass
    return resolve_arch(name)


def arch_dict(arch: Arch) -> dict[str, Any]:
    """The architecture as a plain dict (for --json)."""
    return {**asdict(arch), "parameters": arch.total_params()}
