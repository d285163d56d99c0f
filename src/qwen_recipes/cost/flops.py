"""Training FLOPs of a Qwen decoder: matmuls counted exactly per layer, the way `torch.utils.flop_counter` counts.

Per token, forward: 2 FLOPs per weight of every linear layer (decoder layers + output head, which is a matmul even
when tied), plus attention's sequence-length term 4·s·(heads·head_dim) per layer (QKᵀ and AV, counted as full
s×s like flop_counter and PaLM's MFU formula do, although causal kernels skip half), plus the LoRA adapters.
Backward: 2× forward for trained weights (input and weight gradients); 1× for frozen weights (input gradient
only, the LoRA/QLoRA saving); attention 2× forward. Gradient checkpointing recomputes the decoder layers'
forward once more. Embedding lookups, norms, activations and the loss are not matmuls and not counted (< 1%).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from qwen_recipes import families
from qwen_recipes.cost.models import Arch


def lora_targets(arch: Arch, modules: object) -> list[str]:
    """The decoder linears a `lora_target_modules` value adapts ('all-linear' or None: the family's LoRA targets)."""
    shapes = arch.linear_shapes()
    if modules in (None, "all-linear", "all"):
        family = families.find(arch.model_type)
        modules = family.lora_targets if family else list(shapes)
    if isinstance(modules, str) and not re.fullmatch(r"[\w.,\s]+", modules):  # a PEFT regex (vision models)
        return [m for m in shapes if re.search(rf"\b{m}\b", modules)]
    if isinstance(modules, str):
        modules = [m.strip() for m in modules.split(",")]
    return [m for m in modules if m in shapes]  # type: ignore[union-attr]


def lora_params(arch: Arch, r: int, modules: object) -> int:
    """Trainable LoRA parameters (A and B of every adapted linear, all layers)."""
    shapes = arch.linear_shapes()
    return arch.layers * sum(r * (shapes[n][0] + shapes[n][1]) for n in lora_targets(arch, modules))


@dataclass
class Flops:
    """FLOPs of one training run, split by pass. `model` excludes recomputation; `total` is what the GPU does."""

    forward: float
    backward: float
    recompute: float
    tokens: int
    seq_len: int

    @property
    def model(self) -> float:
        """FLOPs the method needs (MFU numerator): forward + backward."""
        return self.forward + self.backward

    @property
    def total(self) -> float:
        """FLOPs executed, recomputation under gradient checkpointing included."""
        return self.forward + self.backward + self.recompute

    def to_dict(self) -> dict[str, float]:
        """Plain dict with the totals (for --json and reports)."""
        return {**asdict(self), "model": self.model, "total": self.total}


def training_flops(
    arch: Arch,
    tokens: int,
    seq_len: int,
    method: str = "full",
    lora_r: int = 16,
    lora_modules: object = "all-linear",
    gradient_checkpointing: bool = False,
    train_lm_head: bool = False,
    embed_output_requires_grad: bool | None = None,
) -> Flops:
    """Matmul FLOPs to train `tokens` tokens in sequences of `seq_len` with a method (full, lora, qlora).

    `train_lm_head` is LoRA's `modules_to_save: [lm_head]` (the head gets weight gradients). Under LoRA without
    gradient checkpointing the embedding output needs no gradient, so layer 0's q/k/v skip their input gradient;
    `embed_output_requires_grad` overrides that (PEFT turns it on with gradient checkpointing).
    """
    shapes = arch.linear_shapes()
    d_attn = arch.heads * arch.head_dim
    layer_linear = 2 * arch.layer_linear_params()
    attention = 2 * 2 * seq_len * d_attn  # QKᵀ and AV per token
    head = 2 * arch.vocab * arch.hidden
    peft = method in ("lora", "qlora")
    targets = lora_targets(arch, lora_modules) if peft else []
    adapters = sum(2 * lora_r * (shapes[n][0] + shapes[n][1]) for n in targets)

    layer_fwd = layer_linear + attention + adapters
    forward = arch.layers * layer_fwd + head
    if not peft:
        backward = arch.layers * (2 * layer_linear + 2 * attention) + 2 * head
    else:
        # Frozen base: input gradients only. Adapters: input + weight gradients.
        backward = arch.layers * (layer_linear + 2 * attention + 2 * adapters) + head * (2 if train_lm_head else 1)
        needs_grad = gradient_checkpointing if embed_output_requires_grad is None else embed_output_requires_grad
        if not needs_grad:
            first = ("q_proj", "k_proj", "v_proj")
            backward -= sum(2 * shapes[n][0] * shapes[n][1] for n in first)
            backward -= sum(2 * lora_r * shapes[n][0] for n in first if n in targets)  # lora_A input grads
    recompute = arch.layers * layer_fwd if gradient_checkpointing else 0.0
    return Flops(
        forward=float(forward * tokens),
        backward=float(backward * tokens),
        recompute=float(recompute * tokens),
        tokens=int(tokens),
        seq_len=int(seq_len),
    )


def dpo_reference_flops(arch: Arch, tokens: int, seq_len: int) -> float:
    """Forward FLOPs of the frozen reference model in DPO (the policy with adapters disabled, or a copy)."""
    return float(
        (
            arch.layers * (2 * arch.layer_linear_params() + 4 * seq_len * arch.heads * arch.head_dim)
            + 2 * arch.vocab * arch.hidden
        )
        * tokens
    )


def generation_flops(arch: Arch, tokens: int, context: int) -> float:
    """Forward FLOPs to generate `tokens` tokens with a KV cache at an average context length (GRPO rollouts)."""
    per_token = arch.layers * (2 * arch.layer_linear_params() + 4 * context * arch.heads * arch.head_dim)
    return float((per_token + 2 * arch.vocab * arch.hidden) * tokens)
