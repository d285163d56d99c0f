"""Training FLOPs of a Qwen decoder: matmuls counted exactly per layer, the way `torch.utils.flop_counter` counts.

Per token, forward: 2 FLOPs per weight of every linear layer (decoder layers + output head, which is a matmul even
when tied), plus attention's sequence-length term 4·s·(heads·head_dim) per full-attention layer (QKᵀ and AV,
counted as full s×s like flop_counter and PaLM's MFU formula do, although causal kernels skip half), plus the LoRA
adapters. Hybrid and MoE models add the Gated-DeltaNet chunked delta rule and conv, and the router and top-k active
experts (cost/layers.py); memory counts every expert, FLOPs only the active ones.
Backward: 2× forward for trained weights (input and weight gradients); 1× for frozen weights (input gradient
only, the LoRA/QLoRA saving); attention 2× forward. Gradient checkpointing recomputes the decoder layers'
forward once more. Embedding lookups, norms, activations and the loss are not matmuls and not counted (< 1%).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from qwen_recipes import families
from qwen_recipes.cost.models import Arch


def _all_shapes(arch: Arch) -> dict[str, tuple[int, int]]:
    return {name: shape for _, shapes in arch.linear_groups() for name, shape in shapes.items()}


def lora_targets(arch: Arch, modules: object) -> list[str]:
    """The decoder linears a `lora_target_modules` value adapts ('all-linear' or None: the family's LoRA targets)."""
    shapes = _all_shapes(arch) | arch.linear_shapes()
    if modules in (None, "all-linear", "all"):
        family = families.find(arch.model_type)
        modules = family.lora_targets if family else list(shapes)
    if isinstance(modules, str) and not re.fullmatch(r"[\w.,\s]+", modules):  # a PEFT regex (vision models)
        return [m for m in shapes if re.search(rf"\b{m}\b", modules)]
    if isinstance(modules, str):
        modules = [m.strip() for m in modules.split(",")]
    return [m for m in modules if m in shapes]  # type: ignore[union-attr]


def expert_lora_targets(arch: Arch, parameters: object = None) -> list[str]:
    """The fused expert parameters LoRA adapts: `lora_target_parameters`, or the family's when it is None."""
    if not arch.moe:
        return []
    if parameters is None:
        family = families.find(arch.model_type)
        parameters = family.lora_target_parameters if family else ()
    return [str(p) for p in parameters or []]  # type: ignore[union-attr]


def _adapter_sum(arch: Arch, targets: list[str], per: object) -> float:
    # Σ over layer groups and adapted linears of per(in, out)
    return sum(n * sum(per(*shapes[t]) for t in targets if t in shapes) for n, shapes in arch.linear_groups())


def lora_params(arch: Arch, r: int, modules: object, parameters: object = None) -> int:
    """Trainable LoRA parameters (A and B of every adapted linear and fused expert stack, all layers)."""
    n = int(_adapter_sum(arch, lora_targets(arch, modules), lambda i, o: r * (i + o)))
    experts = expert_lora_targets(arch, parameters)
    return n + (arch.moe.layers * arch.moe.lora_params(r, arch.hidden, experts) if experts else 0)


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


def _first_layer_inputs(arch: Arch) -> tuple[str, ...]:
    # The linears that read layer 0's input (the embedding output).
    if arch.linear_attention and arch.linear_attention.first_layer:
        return ("in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a")
    return ("q_proj", "k_proj", "v_proj")


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
    lora_parameters: object = None,
    micro_batch: int = 1,
) -> Flops:
    """Matmul FLOPs to train `tokens` tokens in sequences of `seq_len` with a method (full, lora, qlora).

    `train_lm_head` is LoRA's `modules_to_save: [lm_head]` (the head gets weight gradients). Under LoRA without
    gradient checkpointing the embedding output needs no gradient, so layer 0's input projections skip their input
    gradient; `embed_output_requires_grad` overrides that (PEFT turns it on with gradient checkpointing).
    `lora_parameters` are the fused expert weights LoRA adapts (None: the family's); their fold costs FLOPs per
    forward call, i.e. per `micro_batch` sequences, not per token.
    """
    shapes = _all_shapes(arch) | arch.linear_shapes()
    attention = arch.full_attention_layers * 2 * 2 * seq_len * arch.heads * arch.head_dim  # QKᵀ and AV per token
    linear = 2 * arch.decoder_linear_params()
    head = 2 * arch.vocab * arch.hidden
    peft = method in ("lora", "qlora")
    targets = lora_targets(arch, lora_modules) if peft else []
    adapters = _adapter_sum(arch, targets, lambda i, o: 2 * lora_r * (i + o))
    mixer_fwd = mixer_bwd = conv = 0.0
    if la := arch.linear_attention:
        core_f, core_b = la.core_flops(seq_len)
        mixer_fwd, mixer_bwd = la.layers * core_f / seq_len, la.layers * core_b / seq_len
        conv = la.layers * la.conv_flops(seq_len) / seq_len
    experts = expert_lora_targets(arch, lora_parameters) if peft else []
    routed = arch.moe.layers * arch.moe.active_flops(arch.hidden) if arch.moe else 0.0
    # The expert-LoRA fold, per token of a micro batch of `micro_batch` x `seq_len` tokens.
    fold = arch.moe.layers * arch.moe.lora_weight_flops(lora_r, arch.hidden, experts) if experts else 0.0
    fold /= micro_batch * seq_len

    layers_fwd = linear + attention + adapters + mixer_fwd + conv + routed + fold
    forward = layers_fwd + head
    if not peft:
        backward = 2 * (linear + attention + conv + routed + head) + mixer_bwd
    else:
        # Frozen base: input gradients only; adapters: input + weight gradients; folded experts: trained weights W'.
        router = arch.moe.layers * 2 * arch.hidden * arch.moe.experts if arch.moe else 0.0
        expert_mm = (routed - router) * (2 if experts else 1) + router
        backward = linear + 2 * attention + 2 * adapters + mixer_bwd + conv + expert_mm + fold  # fold: dA, dB
        backward += head * (2 if train_lm_head else 1)
        needs_grad = gradient_checkpointing if embed_output_requires_grad is None else embed_output_requires_grad
        if not needs_grad:
            first = [n for n in _first_layer_inputs(arch) if n in shapes]
            backward -= sum(2 * shapes[n][0] * shapes[n][1] for n in first)
            backward -= sum(2 * lora_r * shapes[n][0] for n in first if n in targets)  # lora_A input grads
    recompute = layers_fwd if gradient_checkpointing else 0.0
    return Flops(
        forward=float(forward * tokens),
        backward=float(backward * tokens),
        recompute=float(recompute * tokens),
        tokens=int(tokens),
        seq_len=int(seq_len),
    )


def _forward_per_token(arch: Arch, context: int) -> float:
    # Forward FLOPs per token without adapters: linears, attention at `context`, linear attention, active experts.
    per = 2 * arch.decoder_linear_params() + arch.full_attention_layers * 4 * context * arch.heads * arch.head_dim
    if la := arch.linear_attention:
        per += la.layers * (la.core_flops(max(1, context))[0] + la.conv_flops(max(1, context))) / max(1, context)
    if arch.moe:
        per += arch.moe.layers * arch.moe.active_flops(arch.hidden)
    return per + 2 * arch.vocab * arch.hidden


def dpo_reference_flops(arch: Arch, tokens: int, seq_len: int) -> float:
    """Forward FLOPs of the frozen reference model in DPO (the policy with adapters disabled, or a copy)."""
    return float(_forward_per_token(arch, seq_len) * tokens)


def generation_flops(arch: Arch, tokens: int, context: int) -> float:
    """Forward FLOPs to generate `tokens` tokens with a KV cache at an average context length (GRPO rollouts).

    Gated-DeltaNet layers decode with a fixed-size state (no context term): their per-token cost is the
    recurrent update, approximated by the chunked cost of one chunk.
    """
    return float(_forward_per_token(arch, context) * tokens)
