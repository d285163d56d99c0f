"""Itemised GPU memory of a training run, per GPU: weights, adapters, gradients, optimizer, activations, logits.

Activations are what autograd saves for the backward pass, counted tensor by tensor for the Qwen2/Qwen3 decoder
layer of transformers (SDPA/flash attention: no s×s matrix). tests/cost/test_validation.py checks this count against
the bytes autograd really saves (`torch.autograd.graph.saved_tensors_hooks`) on tiny models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qwen_recipes.cost import layer_memory
from qwen_recipes.cost.flops import lora_params, lora_targets
from qwen_recipes.cost.models import Arch

GB = 1e9
NF4_BYTES = 0.5  # 4 bits per weight
NF4_BLOCK = 64  # bitsandbytes blocksize: one absmax per 64 weights
CUDA_CONTEXT_BYTES = 1.0e9  # CUDA context, cuBLAS workspace, NCCL buffers
FRAGMENTATION = 0.10  # allocator slack on top of live tensors

OPTIMIZER_STATES = {  # states per trainable parameter: (count, bytes each or None = parameter dtype)
    "adamw": (2, None),
    "adamw_8bit": (2, 1),
    "adafactor": (0, None),  # factored second moments: rows + columns, negligible per parameter
    "sgd": (0, None),
}


def optimizer_kind(optim: str | None) -> str:
    """Map a transformers `optim` name onto our optimizer memory classes."""
    name = (optim or "adamw_torch").lower()
    if "8bit" in name:
        return "adamw_8bit"
    if "adafactor" in name:
        return "adafactor"
    if name.startswith("sgd"):
        return "sgd"
    return "adamw"


def nf4_bytes_per_param(nested: bool) -> float:
    """Bytes per 4-bit weight including quantisation constants (fp32 absmax, or 8-bit with double quantisation)."""
    if nested:
        # 8-bit absmax per 64 weights + one fp32 scale per 256 absmax values.
        return NF4_BYTES + 1 / NF4_BLOCK + 4 / (NF4_BLOCK * 256)
    return NF4_BYTES + 4 / NF4_BLOCK


@dataclass
class Setup:
    """Everything memory depends on besides the architecture."""

    method: str = "lora"  # full | lora | qlora
    weight_bytes: int = 2  # dtype the weights are loaded in (fp32 = 4: s1 loaded fp32 under bf16 autocast)
    act_bytes: int = 2  # dtype of activations (2 under bf16/fp16 autocast or 16-bit weights)
    optimizer: str = "adamw"
    lora_r: int = 16
    lora_modules: object = "all-linear"
    lora_dropout: float = 0.0
    modules_to_save: list[str] = field(default_factory=list)
    nested_quant: bool = True
    micro_batch: int = 1
    seq_len: int = 2048
    gradient_checkpointing: bool = False
    attn_implementation: str = "sdpa"
    gpus: int = 1
    zero_stage: int = 0  # 0 none, 1 optimizer, 2 + gradients, 3 + weights (FSDP full shard = 3)
    engine: str = "none"  # none | deepspeed | fsdp
    offload_optimizer: bool = False
    offload_params: bool = False
    fused_lm_head: bool = False  # TRL >= 1.16 SFT/DPO/GRPO: the loss is computed in tiles, never full logits
    lora_parameters: object = None  # fused expert weights LoRA adapts (None: the family's)
    linear_attention_kernel: str = "fla"  # Gated-DeltaNet kernels: fla (flash-linear-attention) or torch
    vision: Any = None  # vision-language: what the tower processes (cost/vision_estimate.py `VisionLoad`)


def _per_token_layer_elements(arch: Arch, s: Setup) -> tuple[float, float]:
    """(elements in the activation dtype, fp32 elements) saved per token by one decoder layer."""
    h, i, hq, hkv = arch.hidden, arch.intermediate, arch.heads * arch.head_dim, arch.kv_heads * arch.head_dim
    peft = s.method in ("lora", "qlora")
    # RMSNorm saves its input and output, plus the normalised value when its weight is trained (full only).
    norm = 2 if peft else 3
    # 2 norms; attention q, k, v and output (SDPA/flash: no s x s matrix; o_proj reads the output as a view);
    # MLP gate, silu(gate), up and their product.
    elems = 2 * norm * h + 2 * hq + 2 * hkv + 4 * i
    fp32 = 2 + arch.heads  # rsqrt of each norm, the attention log-sum-exp per head
    if arch.qk_norm:
        elems += (norm - 1) * (hq + hkv)  # q_norm / k_norm (their output feeds RoPE, which saves only cos/sin)
        fp32 += arch.heads + arch.kv_heads
    if s.attn_implementation == "eager":
        elems += 2 * arch.heads * s.seq_len  # softmax scores and probabilities: s per head per token
    if peft:
        targets = lora_targets(arch, s.lora_modules)
        elems += s.lora_r * len(targets)  # A·x, the input of B
        if s.lora_dropout > 0:
            ins = {n: arch.linear_shapes()[n][0] for n in targets}
            elems += sum(ins.values()) * (1 + 1 / s.act_bytes)  # dropped input + its bool mask, per adapter
    return elems, fp32


def saved_activation_bytes(arch: Arch, s: Setup) -> float:
    """Bytes autograd holds for backward at the end of the forward pass (logits/loss excluded)."""
    if layer_memory.layered(arch):  # hybrid / MoE / gated attention: counted part by part
        return layer_memory.saved_bytes(arch, s)
    tokens = s.micro_batch * s.seq_len
    peft = s.method in ("lora", "qlora")
    # After the layers: the final norm (input, + normalised and output when the head is trained).
    head_trained = not peft or "lm_head" in s.modules_to_save
    tail = tokens * arch.hidden * s.act_bytes * (3 if head_trained else 1)
    if s.gradient_checkpointing:
        return arch.layers * tokens * arch.hidden * s.act_bytes + tail  # each layer's input only
    elems, fp32 = _per_token_layer_elements(arch, s)
    if peft:
        # Layer 0's input norm keeps no input: the frozen embedding output needs no gradient.
        return tokens * ((arch.layers * elems - arch.hidden) * s.act_bytes + arch.layers * fp32 * 4) + tail
    return tokens * arch.layers * (elems * s.act_bytes + fp32 * 4) + tail


def recompute_bytes(arch: Arch, s: Setup) -> float:
    """Under gradient checkpointing, one layer's activations live again while it is recomputed for backward."""
    if not s.gradient_checkpointing:
        return 0.0
    if layer_memory.layered(arch):
        return layer_memory.recompute_bytes(arch, s)
    elems, fp32 = _per_token_layer_elements(arch, s)
    return s.micro_batch * s.seq_len * (elems * s.act_bytes + fp32 * 4)


def activation_bytes(arch: Arch, s: Setup) -> float:
    """Peak activation bytes for one micro batch: saved tensors plus the recomputation buffer."""
    return saved_activation_bytes(arch, s) + recompute_bytes(arch, s)


FUSED_TOKEN_TILE, FUSED_VOCAB_TILE = 4096, 32768  # trl.kernels.chunked_logprob TOKEN_CHUNK_SIZE / trl utils


def logits_bytes(arch: Arch, s: Setup) -> float:
    """Logits and loss: the logits (activation dtype), the fp32 log-softmax the loss saves, and its fp32 gradient.

    transformers upcasts logits to fp32 for the loss; with 152k vocabulary entries this term dominates long
    sequences (32k tokens: ~20 GB per fp32 copy).
    """
    tokens = s.micro_batch * s.seq_len
    if s.fused_lm_head:
        # trl.kernels.chunked_logprob: [4096 tokens x 32768 vocab] fp32 tiles, one in the forward and one (plus the
        # weight-gradient tile) in the backward, and a few fp32 numbers per token; independent of the vocabulary size.
        tile = min(tokens, FUSED_TOKEN_TILE) * min(arch.vocab, FUSED_VOCAB_TILE) * 4
        return float(2 * tile + tokens * 5 * 4)
    per_token = arch.vocab * (s.act_bytes + 4 + 4) if s.act_bytes < 4 else arch.vocab * (4 + 4)
    return float(tokens * per_token)


def memory_items(arch: Arch, s: Setup) -> dict[str, float]:
    """Bytes per GPU, item by item (names are the printed labels)."""
    if arch.vision is not None and s.vision is not None:  # + the vision tower's items (cost/vision_estimate.py)
        from qwen_recipes.cost.vision_estimate import with_vision_items

        return with_vision_items(arch, s, memory_items)
    n = max(1, s.gpus)
    shard_w = n if s.zero_stage >= 3 else 1
    shard_g = n if s.zero_stage >= 2 else 1
    shard_o = n if s.zero_stage >= 1 else 1
    items: dict[str, float] = {}
    embed_params = arch.embedding_params()
    small = arch.layers * arch.layer_small_params() + arch.hidden
    linear = arch.layers * arch.layer_linear_params()
    if layer_memory.layered(arch):
        # bitsandbytes quantises nn.Linear only: fused experts, routers and a vision tower stay 16-bit.
        small = arch.decoder_small_params() + arch.expert_params() + arch.vision_params
        linear = arch.decoder_linear_params()

    # Weights.
    if s.method == "qlora":
        q = linear * nf4_bytes_per_param(s.nested_quant)
        items["weights: 4-bit nf4 linears (+ constants)"] = q / shard_w
        items["weights: embeddings, head, norms (16-bit)"] = (embed_params + small) * 2 / shard_w
    else:
        items[f"weights ({8 * s.weight_bytes}-bit)"] = arch.total_params() * s.weight_bytes / shard_w
    if s.offload_params:
        for k in [k for k in items if k.startswith("weights")]:
            items[k] = 0.0
    if s.zero_stage >= 3 and n > 1:
        # The engine gathers full layers to compute: the current one and a prefetched one.
        per_layer = arch.layer_linear_params() + arch.layer_small_params()
        if layer_memory.layered(arch):
            per_layer = (arch.total_params() - embed_params - arch.vision_params) / max(1, arch.layers)
        largest = max(per_layer, arch.vocab * arch.hidden)
        items["gathered layers (ZeRO-3/FSDP)"] = 2 * largest * max(2, s.weight_bytes)

    # Trainable parameters, gradients, optimizer states.
    if s.method == "full":
        trainable, p_bytes = arch.total_params(), s.weight_bytes
    else:
        trainable, p_bytes = lora_params(arch, s.lora_r, s.lora_modules, s.lora_parameters), 4  # PEFT: fp32
        items["LoRA adapters (fp32)"] = trainable * 4.0
        if s.modules_to_save:
            saved = arch.vocab * arch.hidden * sum(m in ("lm_head", "embed_tokens") for m in s.modules_to_save)
            items["modules_to_save copies"] = saved * float(s.weight_bytes)
            trainable += saved
    items["gradients"] = trainable * p_bytes / shard_g
    count, each = OPTIMIZER_STATES[optimizer_kind(s.optimizer)]
    opt = trainable * count * (each or p_bytes)
    if s.engine == "deepspeed" and p_bytes < 4 and optimizer_kind(s.optimizer) == "adamw":
        opt = trainable * (4 + 2 * 4)  # fp32 master weights + fp32 Adam moments
    items["optimizer states"] = 0.0 if s.offload_optimizer else opt / shard_o

    items["activations (saved for backward)"] = saved_activation_bytes(arch, s)
    if s.gradient_checkpointing:
        items["activations (one layer recomputed)"] = recompute_bytes(arch, s)
    items["logits + loss (fp32)"] = logits_bytes(arch, s)
    live = sum(items.values())
    items["CUDA context + allocator slack"] = CUDA_CONTEXT_BYTES + FRAGMENTATION * live
    return items


def total_bytes(items: dict[str, float]) -> float:
    """Sum of the items."""
    return float(sum(items.values()))


def largest_fitting(arch: Arch, s: Setup, budget_bytes: float) -> dict[str, int | None]:
    """Largest micro batch (at the recipe's length) and largest sequence length (at micro batch 1) that fit."""
    from dataclasses import replace

    def fits(mb: int, seq: int) -> bool:
        return total_bytes(memory_items(arch, replace(s, micro_batch=mb, seq_len=seq))) <= budget_bytes

    best_mb = None
    mb = 1
    while mb <= 1024 and fits(mb, s.seq_len):
        best_mb, mb = mb, mb * 2
    if best_mb is not None:  # refine between best_mb and 2*best_mb
        lo, hi = best_mb, min(best_mb * 2, 1025)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid, s.seq_len) else (lo, mid)
        best_mb = lo
    best_seq = None
    lo, hi = 0, 1 << 20
    while hi - lo > 256:
        mid = (lo + hi) // 2 // 256 * 256 or 256
        if fits(1, mid):
            lo = mid
        else:
            hi = mid
    if lo >= 256:
        best_seq = lo
    return {"micro_batch": best_mb, "seq_len": best_seq}
