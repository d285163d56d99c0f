"""Saved activations of hybrid (Gated-DeltaNet) and MoE decoders, layer part by layer part.

The dense families' count lives in memory.py; this one composes a decoder layer from its parts, because Qwen3.5
layers differ (3 Gated-DeltaNet layers to 1 gated full-attention layer) and MoE blocks replace the MLP:
- norms: Qwen3.5's zero-centred RMSNorm computes in fp32 and keeps `1 + weight`; Qwen3's keeps input and rsqrt;
- token mixers: gated softmax attention (q_proj yields the sigmoid gate) or Gated-DeltaNet (cost/layers.py);
- channel mixers: SwiGLU MLP, or router + top-k experts (+ shared expert) (cost/layers.py).
Each part counts what autograd keeps for backward in transformers 5.24 (SDPA/flash attention: no s x s matrix);
a part's input is counted by the part that consumes it. tests/cost/test_validation.py checks the sum on tiny
models. Elements in the activation dtype cost `act_bytes`, fp32 internals 4 bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwen_recipes.cost.memory import Setup
    from qwen_recipes.cost.models import Arch


def layered(arch: Arch) -> bool:
    """Whether an architecture needs this part-by-part count (hybrid, MoE, or gated attention)."""
    return bool(arch.linear_attention or arch.moe or arch.attn_output_gate)


def _zero_centred(arch: Arch) -> bool:
    # Qwen3.5's layers (the families with the attention output gate) use the zero-centred, fp32 RMSNorm.
    return arch.attn_output_gate


def _norm(arch: Arch, tokens: int, s: Setup, trained: bool, width: int | None = None) -> float:
    """Bytes one RMSNorm over `width` (default hidden) keeps: input, rsqrt, + normalised value when trained."""
    w = width or arch.hidden
    if _zero_centred(arch):  # x.float(), rsqrt, x·rsqrt (for the weight's gradient), and 1 + weight
        return tokens * (4 * w * (2 if trained else 1) + 4) + 4 * w
    return tokens * (s.act_bytes * w * (2 if trained else 1) + 4)


def _adapters(arch: Arch, s: Setup, names: tuple[str, ...], tokens: int) -> float:
    """LoRA's A·x per adapted linear among `names` (x itself is the base linear's saved input)."""
    if s.method not in ("lora", "qlora"):
        return 0.0
    from qwen_recipes.cost.flops import lora_targets

    targets = set(lora_targets(arch, s.lora_modules))
    return tokens * s.lora_r * sum(n in targets for n in names) * s.act_bytes


def attention_bytes(arch: Arch, s: Setup, tokens: int) -> float:
    """Softmax attention: q/k/v input, q/k norms, SDPA q, k, v, output and log-sum-exp, the output gate, o_proj."""
    trained = s.method == "full"
    hq, hkv, a = arch.heads * arch.head_dim, arch.kv_heads * arch.head_dim, s.act_bytes
    out = tokens * a * (arch.hidden + 2 * hq + 2 * hkv) + tokens * 4 * arch.heads  # x; SDPA q, out, k, v; lse
    if arch.attn_output_gate:  # attention output (reshaped), sigmoid(gate) and their product, o_proj's input
        out += tokens * a * 3 * hq  # (without the gate, o_proj reads SDPA's output as a view)
    if arch.qk_norm:
        # q_norm's input is a view of q_proj's output, which in fp32 also holds the gate half.
        q_in = 2 * hq if (arch.attn_output_gate and a == 4) else hq
        if _zero_centred(arch):
            per = 4 * (q_in + hkv) + 4 * (arch.heads + arch.kv_heads) + (4 * (hq + hkv) if trained else 0)
            out += tokens * per + 2 * 4 * arch.head_dim
        else:
            out += tokens * (a * (hq + hkv) * (2 if trained else 1) + 4 * (arch.heads + arch.kv_heads))
    if s.attn_implementation == "eager":
        out += tokens * a * 2 * arch.heads * s.seq_len
    return out + _adapters(arch, s, ("q_proj", "k_proj", "v_proj", "o_proj"), tokens)


def mlp_bytes(arch: Arch, s: Setup, tokens: int, intermediate: int | None = None) -> float:
    """SwiGLU MLP: its input, gate, silu(gate), up and their product."""
    i = arch.intermediate if intermediate is None else intermediate
    return tokens * s.act_bytes * (arch.hidden + 4 * i) + _adapters(
        arch, s, ("gate_proj", "up_proj", "down_proj"), tokens
    )


def moe_bytes(arch: Arch, s: Setup, tokens: int) -> float:
    """Router + routed experts (+ shared expert and its gate), with the folded W' under expert LoRA."""
    from qwen_recipes.cost.flops import expert_lora_targets

    peft = s.method in ("lora", "qlora")
    experts = bool(expert_lora_targets(arch, s.lora_parameters)) and peft
    act, f32, other = arch.moe.saved(tokens, arch.hidden, peft, experts)
    out = act * s.act_bytes + f32 * 4 + other
    if arch.moe.shared_intermediate:
        out += _adapters(arch, s, ("gate_proj", "up_proj", "down_proj"), tokens)
    if experts:  # W' is kept in the weights' dtype, whatever the activations are
        out += 3 * arch.moe.experts * arch.hidden * arch.moe.intermediate * (s.weight_bytes - s.act_bytes)
    return out


def linear_attention_bytes(arch: Arch, s: Setup, tokens: int) -> float:
    """Gated-DeltaNet layer: projections, conv, the chunked delta rule and the gated output norm."""
    la = arch.linear_attention
    peft = s.method in ("lora", "qlora")
    saved = la.saved_fla if s.linear_attention_kernel == "fla" else la.saved
    act, f32, other = saved(s.micro_batch, s.seq_len, arch.hidden, peft)
    names = ("in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a", "out_proj")
    return act * s.act_bytes + f32 * 4 + other + _adapters(arch, s, names, tokens)


def layer_bytes(arch: Arch, s: Setup, linear: bool, moe: bool) -> float:
    """Bytes one decoder layer keeps for backward (its input norm counted in full)."""
    tokens = s.micro_batch * s.seq_len
    trained = s.method == "full"
    out = 2 * _norm(arch, tokens, s, trained)
    out += linear_attention_bytes(arch, s, tokens) if linear else attention_bytes(arch, s, tokens)
    out += moe_bytes(arch, s, tokens) if moe else mlp_bytes(arch, s, tokens)
    return out


def _layer_kinds(arch: Arch) -> list[tuple[int, bool, bool]]:
    """(count, is linear attention, is MoE) over the decoder layers; MoE layers are assumed among both kinds."""
    n_lin = arch.linear_attention.layers if arch.linear_attention else 0
    n_moe = arch.moe.layers if arch.moe else 0
    kinds = []
    for linear, count in ((True, n_lin), (False, arch.layers - n_lin)):
        moe = round(count * n_moe / arch.layers) if arch.layers else 0
        kinds += [(moe, linear, True), (count - moe, linear, False)]
    return [k for k in kinds if k[0]]


def saved_bytes(arch: Arch, s: Setup) -> float:
    """Bytes autograd holds at the end of the forward pass (logits/loss excluded) for a layered architecture."""
    tokens = s.micro_batch * s.seq_len
    peft = s.method in ("lora", "qlora")
    head_trained = not peft or "lm_head" in s.modules_to_save
    # Final norm, the head's input (when the head is trained), RoPE's cos/sin (shared by every layer).
    tail = _norm(arch, tokens, s, head_trained) + (tokens * arch.hidden * s.act_bytes if head_trained else 0)
    if _zero_centred(arch):  # partial rotary (0.25 of head_dim), positions per row (multimodal RoPE)
        rope = 2 * tokens * 2 * len(range(0, arch.head_dim // 4, 2)) * 4
    else:
        rope = 2 * s.seq_len * arch.head_dim * 4
    tail += tokens * 8  # the embedding's int64 indices
    if s.gradient_checkpointing:  # each layer's input; cos/sin are recomputed, the int64 positions kept
        return arch.layers * tokens * arch.hidden * s.act_bytes + tail + tokens * 8
    layers = sum(n * layer_bytes(arch, s, linear, moe) for n, linear, moe in _layer_kinds(arch))
    if peft:  # layer 0's input norm keeps nothing: the frozen embedding output needs no gradient
        layers -= _norm(arch, tokens, s, False)
    return layers + tail + rope


def recompute_bytes(arch: Arch, s: Setup) -> float:
    """Under gradient checkpointing, the largest layer's activations live again while it is recomputed."""
    if not s.gradient_checkpointing:
        return 0.0
    return max(layer_bytes(arch, s, linear, moe) for _, linear, moe in _layer_kinds(arch))
