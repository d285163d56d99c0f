"""Cost terms of hybrid and MoE decoders: Gated-DeltaNet (Qwen3.5) token mixers and fused-expert MoE blocks.

FLOPs are matmul and convolution FLOPs as `torch.utils.flop_counter` counts them, with two corrections it lacks:
a depthwise convolution's backward costs what its forward costs per gradient (the counter ignores `groups`), and a
triangular solve costs n² FLOPs per right-hand column. Memory is what autograd saves, tensor by tensor, for
transformers 5.24's layers. tests/cost/test_validation.py checks both on tiny models of every family.

Gated-DeltaNet runs the chunked gated delta rule: sequences are cut into chunks of 64 (the torch reference and
flash-linear-attention alike), each chunk costs its intra-chunk attention (c x c), a unit-triangular solve (the UT
transform) and reads/updates a [k_dim x v_dim] recurrent state per value head. A depthwise causal conv (kernel 4)
runs on q, k and v first. MoE layers route each token to `top_k` of `experts` SwiGLU experts (plus a shared expert
in Qwen3.5-MoE): memory holds every expert, FLOPs count only the active ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CHUNK = 64  # chunk size of the chunked gated delta rule (transformers' torch path and flash-linear-attention)


@dataclass(frozen=True)
class LinearAttention:
    """The Gated-DeltaNet token mixer of a hybrid model and how many decoder layers use it."""

    layers: int
    k_heads: int
    v_heads: int
    k_dim: int
    v_dim: int
    conv_kernel: int = 4
    first_layer: bool = True  # layer 0 is a Gated-DeltaNet layer (Qwen3.5: layers 0-2 of every 4)

    @property
    def key_dim(self) -> int:
        return self.k_heads * self.k_dim

    @property
    def value_dim(self) -> int:
        return self.v_heads * self.v_dim

    @property
    def conv_dim(self) -> int:
        return 2 * self.key_dim + self.value_dim

    def linear_shapes(self, hidden: int) -> dict[str, tuple[int, int]]:
        """(in, out) of the layer's nn.Linear projections."""
        return {
            "in_proj_qkv": (hidden, self.conv_dim),
            "in_proj_z": (hidden, self.value_dim),
            "in_proj_b": (hidden, self.v_heads),
            "in_proj_a": (hidden, self.v_heads),
            "out_proj": (self.value_dim, hidden),
        }

    def small_params(self) -> int:
        """Depthwise conv weights (no bias), dt_bias, A_log and the gated output norm's weight."""
        return self.conv_dim * self.conv_kernel + 2 * self.v_heads + self.v_dim

    def _chunks(self, seq: int) -> tuple[int, int]:
        n = max(1, math.ceil(seq / CHUNK))
        return n, n * CHUNK

    def core_flops(self, seq: int) -> tuple[float, float]:
        """(forward, backward) FLOPs of the chunked delta rule on one sequence of `seq` tokens (all value heads).

        Per chunk and value head: K·βKᵀ and QKᵀ (2·c²·dk each), the two UT solves (c²·(dk + dv)), and reading and
        updating the state (6·c·dk·dv) plus applying the intra-chunk attention (2·c²·dv). Backward takes both
        gradients of each product, except where the state is the zero initial state (first chunk) or unused (the
        last chunk's update), plus the solves' backward (a solve and a c x c product each).
        """
        n, _ = self._chunks(seq)
        c, dk, dv = CHUNK, self.k_dim, self.v_dim
        solve = c * c * (dk + dv)
        fwd = n * (4 * c * c * dk + 2 * c * c * dv + 6 * c * dk * dv + solve)
        bwd = n * (8 * c * c * dk + 4 * c * dk * dv + 4 * c * c * dv + 2 * solve + solve) + (n - 1) * 8 * c * dk * dv
        return float(self.v_heads * fwd), float(self.v_heads * bwd)

    def conv_flops(self, seq: int) -> float:
        """Forward FLOPs of the depthwise conv on one sequence (padded by kernel - 1, as transformers computes it)."""
        return float(2 * self.conv_dim * self.conv_kernel * (seq + self.conv_kernel - 1))

    def _outside_core(self, batch: int, seq: int, hidden: int, peft: bool) -> tuple[float, float]:
        # Projections' shared input, β = sigmoid(b), conv input, gated RMSNorm (fp32) and out_proj input,
        # g = -exp(A_log)·softplus(a + dt_bias): what either kernel path keeps around the delta rule.
        bt, v = batch * seq, self.v_heads
        act = bt * hidden + bt * v + batch * self.conv_dim * seq
        act += (2 if peft else 3) * bt * self.value_dim  # norm output, out_proj input (+ norm input, weight trained)
        f32 = 3 * bt * self.value_dim + bt * v  # gated RMSNorm in fp32: input, gate, silu(gate); rsqrt per head
        f32 += (0 if peft else 1) * bt * v + (1 if peft else 2) * v + bt * v  # softplus out/in, exp(A_log)
        return float(act), float(f32)

    def saved(self, batch: int, seq: int, hidden: int, peft: bool) -> tuple[float, float, float]:
        """(activation-dtype elements, fp32 elements, bytes of bool masks) one layer saves, on the torch path.

        The torch chunked delta rule upcasts q/k/v/β/g to fp32 and keeps its intra-chunk matrices (5 of c x c per
        chunk and head), padded and decayed q/k/v and the per-chunk states; the conv's padded output feeds silu.
        """
        act, f32 = self._outside_core(batch, seq, hidden, peft)
        n, tp = self._chunks(seq)
        c, dk, dv, hv = CHUNK, self.k_dim, self.v_dim, batch * self.v_heads
        act += batch * self.conv_dim * (seq + self.conv_kernel - 1)  # silu input: the padded conv output
        f32 += 5 * hv * n * c * c  # decay matrix, K·βKᵀ, QKᵀ, UT system, intra-chunk attention
        f32 += (6 if n > 1 else 5) * hv * tp * dk  # padded/decayed q and k, βK, (I+A)⁻¹βK (+ decayed q, n > 1)
        f32 += 3 * hv * tp * dv + n * hv * dk * dv  # padded βV inputs, new values, per-chunk values; states
        f32 += 4 * hv * tp + hv * n  # β and three decay vectors per chunk position; chunk decays
        f32 += 2 * hv * seq * dk + 2 * hv * seq  # l2norm of q and k: inputs and inverse norms
        return act, f32, float(c * c)

    def saved_fla(self, batch: int, seq: int, hidden: int, peft: bool) -> tuple[float, float, float]:
        """The same with flash-linear-attention and causal-conv1d (from their autograd functions; no GPU here).

        fla's chunk_gated_delta_rule keeps q, k, v, β, g, the per-chunk A matrix (64 per token and head) and the
        l2norm rstd, and recomputes the states in backward; causal-conv1d fuses silu and keeps its input.
        """
        act, f32 = self._outside_core(batch, seq, hidden, peft)
        bt = batch * seq
        act += bt * (2 * self.key_dim + self.value_dim)  # q, k, v after the conv
        f32 += bt * self.v_heads * (CHUNK + 1) + 2 * bt * self.k_heads  # A, cumulated g, rstd of q and k
        return act, f32, 0.0


@dataclass(frozen=True)
class Experts:
    """The fused-expert MoE blocks of a model and how many decoder layers have one."""

    layers: int
    experts: int
    top_k: int
    intermediate: int
    shared_intermediate: int = 0  # Qwen3.5-MoE: one always-on SwiGLU expert, gated by sigmoid(Linear(H, 1))
    renormalise: bool = True  # top-k weights divided by their sum (Qwen3.5-MoE always; Qwen3-MoE: norm_topk_prob)

    def linear_shapes(self, hidden: int) -> dict[str, tuple[int, int]]:
        """(in, out) of the block's nn.Linear modules: the shared expert and its gate (LoRA/4-bit reach these)."""
        if not self.shared_intermediate:
            return {}
        i = self.shared_intermediate
        return {
            "gate_proj": (hidden, i),
            "up_proj": (hidden, i),
            "down_proj": (i, hidden),
            "shared_expert_gate": (hidden, 1),
        }

    def expert_params(self, hidden: int) -> int:
        """Fused expert weights (gate_up_proj [E, 2I, H] and down_proj [E, H, I]) and the router, one layer."""
        return self.experts * 3 * hidden * self.intermediate + self.experts * hidden

    def active_flops(self, hidden: int) -> float:
        """Forward FLOPs per token of the router and the top-k routed experts (shared expert: a linear)."""
        return float(2 * hidden * self.experts + self.top_k * 6 * hidden * self.intermediate)

    def lora_params(self, r: int, hidden: int, targets: object) -> int:
        """LoRA parameters on the fused experts (PEFT target_parameters), one layer: A [r·E, in], B [out, r·E]."""
        names = set(targets or [])
        gate_up = any(t.endswith("gate_up_proj") for t in names)
        down = any(t.endswith("down_proj") for t in names)
        i = self.intermediate
        return r * self.experts * ((hidden + 2 * i) * gate_up + (i + hidden) * down)

    def lora_weight_flops(self, r: int, hidden: int, targets: object) -> float:
        """Forward FLOPs per micro batch of folding the expert LoRA into W' = W + s·B·A (PEFT's baddbmm).

        PEFT 0.21 evaluates the fold twice per forward (once when it registers the parametrization); W' is then
        used like a trained weight, so the routed experts' backward also computes weight gradients.
        """
        names = set(targets or [])
        i = self.intermediate
        per = 2 * self.experts * r * (2 * i * hidden * any(t.endswith("gate_up_proj") for t in names))
        per += 2 * self.experts * r * (hidden * i * any(t.endswith("down_proj") for t in names))
        return float(2 * per)

    def saved(self, tokens: int, hidden: int, peft: bool, expert_lora: bool) -> tuple[float, float, float]:
        """(activation-dtype elements, fp32 elements, other bytes) one MoE block saves (eager/batched experts).

        Router: its input (when trained), the fp32 softmax, top-k values and indices (int64); per routed token
        (tokens x top_k): the gathered input, gate_up output, silu(gate), their product, the expert output and its
        routing weight, the index_add source, and the token and slot indices. Expert LoRA adds W' of every expert (the folded weight the forward
        used), which a frozen expert stack does not keep.
        """
        m, e, i = tokens * self.top_k, self.experts, self.intermediate
        # The block's input is kept by the router when it is trained, and by the shared expert (or its LoRA).
        act = tokens * hidden * (not peft or bool(self.shared_intermediate)) + m * (3 * hidden + 4 * i + 1)
        f32 = tokens * e + (tokens * (self.top_k + 1) if self.renormalise else 0)
        other = 8 * (tokens * self.top_k + 2 * m)  # int64 top-k indices; token and slot indices per routed token
        if self.shared_intermediate:
            s = self.shared_intermediate
            act += tokens * (4 * s + hidden + 1)  # shared SwiGLU, its output and sigmoid gate
        if expert_lora:
            act += 3 * e * hidden * i  # W' = W + s·B·A for gate_up_proj and down_proj
        return float(act), float(f32), float(other)


def linear_attention_from_config(text: dict, layers: int) -> LinearAttention | None:
    """The Gated-DeltaNet terms of a config.json text config (None when it has no linear-attention layers)."""
    types = text.get("layer_types")
    if types is None and "linear_num_value_heads" in text:
        interval = int(text.get("full_attention_interval") or 4)
        types = ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(layers)]
    n = sum(t == "linear_attention" for t in types or [])
    if not n:
        return None
    return LinearAttention(
        layers=n,
        k_heads=int(text.get("linear_num_key_heads") or 16),
        v_heads=int(text.get("linear_num_value_heads") or 32),
        k_dim=int(text.get("linear_key_head_dim") or 128),
        v_dim=int(text.get("linear_value_head_dim") or 128),
        conv_kernel=int(text.get("linear_conv_kernel_dim") or 4),
        first_layer=(types or [""])[0] == "linear_attention",
    )


def experts_from_config(text: dict, layers: int) -> Experts | None:
    """The MoE terms of a config.json text config (None for a dense model)."""
    n_experts = int(text.get("num_experts") or text.get("num_local_experts") or 0)
    if not n_experts:
        return None
    step = int(text.get("decoder_sparse_step") or 1)
    dense = set(text.get("mlp_only_layers") or [])
    sparse = sum(1 for i in range(layers) if i not in dense and (i + 1) % step == 0)
    shared = int(text.get("shared_expert_intermediate_size") or 0)
    return Experts(
        layers=sparse,
        experts=n_experts,
        top_k=int(text.get("num_experts_per_tok") or 8),
        intermediate=int(text["moe_intermediate_size"]),
        shared_intermediate=shared,
        renormalise=bool(text.get("norm_topk_prob", True)) or bool(shared),
    )


def vision_params(vision: dict | None) -> int:
    """Parameters of a Qwen3.5 vision tower (ViT blocks + patch/position embeddings + patch merger)."""
    if not vision:
        return 0
    h, f, depth = int(vision["hidden_size"]), int(vision["intermediate_size"]), int(vision["depth"])
    out = int(vision.get("out_hidden_size") or h)
    merge = int(vision.get("spatial_merge_size") or 2) ** 2
    patch = int(vision.get("in_channels") or 3) * int(vision.get("temporal_patch_size") or 2)
    patch *= int(vision.get("patch_size") or 16) ** 2
    block = 4 * h + (3 * h * h + 3 * h) + (h * h + h) + (2 * h * f + f + h)  # 2 LayerNorms, qkv, proj, MLP
    merger = 2 * h + (merge * h) ** 2 + merge * h + out * merge * h + out  # LayerNorm, fc1, fc2
    pos = int(vision.get("num_position_embeddings") or 2304) * h
    return depth * block + patch * h + h + pos + merger
