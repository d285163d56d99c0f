"""Wall time of a training run: executed FLOPs over calibrated throughput, plus the costs that FLOPs do not explain.

Per micro-batch, on each GPU (all constants below are fitted by `calibration.fit` on the published measurements in
`calibration.json`; docs/costs.md lists every point with its residual):

    compute = (linear FLOPs / U_GEMM + attention FLOPs / U_ATTN) / (peak x GENERATION[gpu generation])
    fixed   = T_MICRO                              framework time per micro-batch: launches, Python, data
    dequant = QLoRA: passes x 4-bit weights x C_DEQUANT x (A100 bandwidth / this GPU's bandwidth)
    comm    = sharded weights on >1 GPU: (2 all-gathers of the weights + 1 reduce-scatter of the gradients) / link;
              overlapped with compute (prefetch), so only max(compute, comm) counts
    offload = weights offloaded to the CPU (ZeRO-3 offload): the rank's shard over the host link once per pass, at
              the effective bandwidth HOST_GBS (not overlapped; it also stands for the CPU optimizer step)
    time    = micro-batches per GPU x (max(compute, comm) + fixed + dequant + offload)

Attention is counted as executed: causal kernels (SDPA/flash) skip the tiles above the diagonal, flash's backward
recomputes QK^T, eager computes the full s x s. Without packing each row attends over its own length, so the
attention length is sum(len^2)/sum(len) of the rows. `flops.training_flops` stays the model-FLOPs count (what
torch's flop counter sees, full s x s), used for MFU; this module adds the executed view beside it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from qwen_recipes.cost.flops import lora_params, training_flops
from qwen_recipes.cost.hardware import GPU, GPUS, GPUS_PER_NODE
from qwen_recipes.cost.models import Arch

# --- calibrated constants (calibration.fit reproduces them; tests/cost/test_calibration.py checks) -------------------
U_GEMM = 0.60  # fraction of peak the linear layers reach (A100, HF Trainer + PEFT, flash-attention 2)
U_ATTN = 0.46  # fraction of peak of the executed causal attention FLOPs
T_MICRO = 0.10  # seconds per micro-batch that do not scale with FLOPs
C_DEQUANT = {"bnb": 5.7e-12, "gptq": 11.6e-12}  # seconds per 4-bit weight per pass on an A100-80GB (2.039 TB/s)
NET_GBS = 37.5  # effective inter-node bandwidth per GPU (GB/s) of sharded training across nodes (fitted on s1)
HOST_GBS = 2.2  # effective host-link bandwidth per GPU (GB/s) under ZeRO-3 CPU offload (fitted, tokens assumed)
# Utilisation relative to Ampere. hopper: fitted on H100 points; the others have no published point: the nearest
# calibrated generation's value, and a wider band (bands.py).
GENERATION = {"ampere": 1.0, "hopper": 0.75, "ada": 1.0, "blackwell": 0.75, "turing": 1.0}
CALIBRATED_GENERATIONS = ("ampere", "hopper")
# Decoding GRPO rollouts is memory-bound; no published GRPO run gives its generated token count: an assumption.
U_GENERATE = 0.05
A100_TBS = GPUS["A100-80GB"].bandwidth_tbs
FLASH_TILE = 128  # flash/SDPA kernels skip whole 128-wide tiles above the causal diagonal


@dataclass
class Work:
    """What a run makes each GPU do, besides the architecture."""

    method: str = "lora"  # full | lora | qlora
    tokens: int = 0  # trained tokens, all GPUs, all epochs (prompts included)
    micro_tokens: float = 1024  # tokens in one micro-batch on one GPU
    attn_len: float = 1024  # attention length: sum(len^2)/sum(len) of the attention segments
    gpus: int = 1
    lora_r: int = 16
    lora_modules: object = "all-linear"
    train_lm_head: bool = False
    gradient_checkpointing: bool = False
    attn_kernel: str = "sdpa"  # sdpa | flash_attention_2 | eager ...
    dequant: str = "bnb"  # 4-bit kernel family of QLoRA (bitsandbytes; gptq for the Qwen-v1 points)
    sharded_weights: bool = False  # ZeRO-3 / FSDP full shard
    weight_bytes: int = 2  # bytes per weight as gathered (fp32 master weights gather 4)
    offload_params: bool = False
    extra_forward_flops: float = 0.0  # DPO's reference forward (executed at the same rate)
    generated_tokens: int = 0  # GRPO rollouts
    generation_flops: float = 0.0
    lora_parameters: object = None  # fused expert weights LoRA adapts (MoE; None: the family's)
    micro_batch: int = 1  # sequences per forward call (the expert-LoRA fold costs per call)
    vision_flops: float = 0.0  # a vision tower's executed FLOPs over the whole run (recomputation included)
    vision_model_flops: float = 0.0  # the same without recomputation (MFU numerator)


@dataclass
class Timing:
    """Predicted time of one run and its parts (seconds, whole run, per GPU)."""

    seconds: float
    compute: float
    comm: float
    fixed: float
    dequant: float
    offload: float
    generation: float
    micro_batches: float
    executed_flops: float
    model_flops: float
    utilisation: float  # executed FLOPs / (GPUs x peak x seconds): what the calibration implies
    mfu: float  # model FLOPs (torch flop-counter convention) / (GPUs x peak x seconds)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for --json and the run report)."""
        return asdict(self)


def causal_fraction(attn_len: float, kernel: str) -> float:
    """Share of the s x s score tiles a kernel computes: about half for causal SDPA/flash, all for eager."""
    if "eager" in kernel:
        return 1.0
    blocks = max(1, math.ceil(attn_len / FLASH_TILE))
    return (blocks + 1) / (2 * blocks)


def attention_flops(arch: Arch, tokens: float, attn_len: float, kernel: str, gradient_checkpointing: bool) -> float:
    """Executed attention FLOPs (QK^T and AV) of `tokens` tokens: forward, backward, recomputation."""
    layers = arch.full_attention_layers  # a Gated-DeltaNet hybrid has softmax attention in a quarter of its layers
    forward = 4 * arch.heads * arch.head_dim * attn_len * layers * causal_fraction(attn_len, kernel)
    backward = (2.0 if "eager" in kernel else 2.5) * forward  # flash recomputes QK^T in its backward
    return float(tokens * (forward + backward + (forward if gradient_checkpointing else 0.0)))


def work_flops(arch: Arch, w: Work, tokens: int, seq: int) -> Any:
    """`training_flops` of `tokens` tokens in rows of attention length `seq`, with the work's method and options."""
    return training_flops(
        arch,
        tokens,
        seq,
        w.method,
        lora_r=w.lora_r,
        lora_modules=w.lora_modules,
        gradient_checkpointing=w.gradient_checkpointing,
        train_lm_head=w.train_lm_head,
        lora_parameters=w.lora_parameters,
        micro_batch=w.micro_batch,
    )


def linear_flops(arch: Arch, w: Work, tokens: float) -> float:
    """Executed FLOPs of everything but softmax attention (recomputation included): linears, experts, DeltaNet."""
    seq = max(1, round(w.attn_len))  # Gated-DeltaNet's chunked core and the expert fold depend on the length
    total = work_flops(arch, w, int(tokens), seq).total
    # training_flops counts softmax attention full (s x s) once forward, twice backward, once more when recomputed.
    softmax = arch.full_attention_layers * 4 * seq * arch.heads * arch.head_dim * (4 if w.gradient_checkpointing else 3)
    return total - tokens * softmax


def _per_micro(arch: Arch, w: Work, gpu: GPU, consts: dict[str, Any]) -> dict[str, float]:
    n = w.micro_tokens
    rate = gpu.peak_tflops * 1e12 * consts["GENERATION"].get(gpu.generation, 1.0)
    lin = linear_flops(arch, w, n) + (w.extra_forward_flops + w.vision_flops) * n / max(w.tokens, 1)
    att = attention_flops(arch, n, w.attn_len, w.attn_kernel, w.gradient_checkpointing)
    compute = (lin / consts["U_GEMM"] + att / consts["U_ATTN"]) / rate
    weights = arch.total_params()
    passes = 3 if w.gradient_checkpointing else 2
    dequant = 0.0
    if w.method == "qlora":
        dequant = passes * arch.layers * arch.layer_linear_params() * consts["C_DEQUANT"][w.dequant]
        dequant *= A100_TBS / gpu.bandwidth_tbs
    comm = offload = 0.0
    if w.sharded_weights and w.gpus > 1:
        trained = weights if w.method == "full" else lora_params(arch, w.lora_r, w.lora_modules)
        link = gpu.link_gbs if w.gpus <= GPUS_PER_NODE else consts["NET_GBS"]
        volume = (2 * weights * w.weight_bytes + trained * w.weight_bytes) * (w.gpus - 1) / w.gpus
        comm = volume / (link * 1e9)
    if w.offload_params:
        offload = passes * weights * w.weight_bytes / max(w.gpus, 1) / (consts["HOST_GBS"] * 1e9)
    return {"lin": lin, "att": att, "compute": compute, "comm": comm, "dequant": dequant, "offload": offload}


def constants() -> dict[str, Any]:
    """The shipped calibrated constants (calibration.fit may pass others)."""
    return {
        "U_GEMM": U_GEMM,
        "U_ATTN": U_ATTN,
        "T_MICRO": T_MICRO,
        "C_DEQUANT": dict(C_DEQUANT),
        "NET_GBS": NET_GBS,
        "HOST_GBS": HOST_GBS,
        "GENERATION": dict(GENERATION),
    }


def predict(arch: Arch, w: Work, gpu: GPU, consts: dict[str, Any] | None = None) -> Timing:
    """Predicted wall time of `w` on `w.gpus` x `gpu`."""
    c = consts or constants()
    m = _per_micro(arch, w, gpu, c)
    micro = w.tokens / max(w.gpus, 1) / max(w.micro_tokens, 1.0)
    busy = max(m["compute"], m["comm"])
    gen_rate = gpu.peak_tflops * 1e12 * c["GENERATION"].get(gpu.generation, 1.0) * U_GENERATE
    generation = w.generation_flops / (w.gpus * gen_rate) if w.generation_flops else 0.0
    seconds = micro * (busy + c["T_MICRO"] + m["dequant"] + m["offload"]) + generation
    executed = micro * w.gpus * (m["lin"] + m["att"]) + w.generation_flops
    model = work_flops(arch, w, int(w.tokens), round(w.attn_len)).model + w.vision_model_flops
    peak = w.gpus * gpu.peak_tflops * 1e12 * seconds
    notes = []
    if gpu.generation not in CALIBRATED_GENERATIONS:
        notes.append(f"{gpu.name} ({gpu.generation}): no published point of this generation; uses the nearest one's")
    if m["comm"] > m["compute"]:
        notes.append(
            f"communication-bound: gathering sharded weights takes {m['comm'] / m['compute']:.1f}x the compute"
        )
    return Timing(
        seconds=seconds,
        compute=micro * m["compute"],
        comm=micro * max(0.0, m["comm"] - m["compute"]),
        fixed=micro * c["T_MICRO"],
        dequant=micro * m["dequant"],
        offload=micro * m["offload"],
        generation=generation,
        micro_batches=micro,
        executed_flops=executed,
        model_flops=model,
        utilisation=executed / peak if peak else 0.0,
        mfu=model / peak if peak else 0.0,
        notes=notes,
    )
