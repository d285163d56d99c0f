"""Pre-flight estimate of a recipe: memory per GPU (itemised, with a verdict), FLOPs, time and dollars.

Nothing here imports torch or loads weights: the architecture comes from a config.json or the built-in table.
Time = FLOPs executed / (GPUs x peak dense bf16 FLOP/s x expected utilisation), with the expected utilisation
per method calibrated on published runs (docs/costs.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from qwen_recipes.cost import flops as F
from qwen_recipes.cost.hardware import COMPARE, GPU, hardware_from_recipe, parse_hardware, price
from qwen_recipes.cost.memory import GB, Setup, largest_fitting, memory_items, total_bytes
from qwen_recipes.cost.models import Arch, recipe_arch
from qwen_recipes.recipe import Recipe
from qwen_recipes.recipe.launch import Launch, describe_launch

# Expected utilisation (FLOPs executed, recomputation included / peak), see docs/costs.md "Calibration".
# full: s1-32B (16xH100 FSDP, 26 min) implies 0.17 when s1K rows average ~4k tokens (the paper's 59K pool
# averages 3.6k thinking tokens; s1K's own total is not published). LoRA/QLoRA: no published run to calibrate on;
# QLoRA pays for dequantising every weight on every pass (bitsandbytes), so it is set lower.
EXPECTED_MFU = {"full": 0.17, "lora": 0.15, "qlora": 0.10}
# GRPO is dominated by generating rollouts (memory-bound decoding); TinyZero publishes no wall time or tokens.
EXPECTED_MFU_GRPO = 0.05
# TRL 1.16's GRPOConfig has no max_prompt_length (prompts are not truncated): memory assumes prompts this long.
GRPO_PROMPT_TOKENS = 512


@dataclass
class Tokens:
    """Training tokens per epoch and where the number came from."""

    per_epoch: int | None
    source: str
    rows: int | None = None
    longest: int | None = None  # longest row after truncation/drops: sets peak memory without packing


@dataclass
class Estimate:
    """One estimate for one hardware option."""

    hardware: str
    gpus: int
    gpu: str
    gpu_memory_gb: float
    memory_items_gb: dict[str, float]
    memory_total_gb: float
    fits: bool
    largest_fitting: dict[str, int | None]
    tokens: int | None
    flops: dict[str, float] | None
    expected_mfu: float
    hours: float | None
    gpu_hours: float | None
    usd_per_gpu_hour: float | None
    price_source: str
    usd: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for --json)."""
        return asdict(self)


def _dtype_bytes(dtype: Any) -> int:
    return 4 if str(dtype) in ("float32", "fp32", "torch.float32") else 2


def setup_for(recipe: Recipe, gpus: int, gpu: GPU | None = None) -> Setup:
    """The memory `Setup` a recipe describes, on `gpus` GPUs (of type `gpu`; bf16 capability decides precision)."""
    from qwen_recipes.training.precision import compute_dtype, mixed_precision

    method = recipe.method
    seq = int(recipe.get("max_length") or 0)
    if recipe.task == "grpo":
        seq = GRPO_PROMPT_TOKENS + int(recipe.get("max_completion_length"))
    mb = int(recipe.get("per_device_train_batch_size"))
    if recipe.task in ("dpo", "orpo", "simpo"):
        mb *= 2  # chosen and rejected go through the model together
    bf16_ok = gpu.bf16 if gpu is not None else True
    w = _dtype_bytes(compute_dtype(recipe, cuda=True, bf16_supported=bf16_ok))
    act = 2 if (mixed_precision(recipe, cuda=True, bf16_supported=bf16_ok) or w == 2) else 4
    launch = describe_launch(recipe, planned=True) if gpus > 1 else Launch()
    return Setup(
        method=method,
        weight_bytes=w,
        act_bytes=act,
        optimizer=recipe.get("optim"),
        lora_r=int(recipe.get("lora_r")),
        lora_modules=recipe.get("lora_target_modules"),
        lora_dropout=float(recipe.get("lora_dropout") or 0.0),
        modules_to_save=list(recipe.get("lora_modules_to_save") or []),
        nested_quant=bool(recipe.get("use_bnb_nested_quant")),
        micro_batch=mb,
        seq_len=seq,
        gradient_checkpointing=bool(recipe.get("gradient_checkpointing")),
        attn_implementation=str(recipe.get("attn_implementation") or "sdpa"),
        gpus=gpus,
        # TRL 1.16's SFT/DPO/GRPO losses go through its chunked fused LM head; ORPO/CPO still build full logits.
        fused_lm_head=recipe.task in ("sft", "cpt", "dpo", "grpo"),
        zero_stage=launch.shard_stage,
        engine=launch.engine or "none",
        offload_optimizer=launch.offloads_optimizer,
        offload_params=launch.offloads_params,
    )


def dataset_tokens(recipe: Recipe, tokens: int | None = None, count: bool = True) -> Tokens:
    """Tokens per epoch: --tokens, else the recipe's `dataset_tokens`, else counted from local data, else unknown."""
    if tokens is not None:
        return Tokens(int(tokens), "--tokens")
    if recipe.get("dataset_tokens"):
        return Tokens(int(recipe.get("dataset_tokens")), "recipe dataset_tokens")
    if count:
        from qwen_recipes.cost.tokens import count_local_tokens

        counted = count_local_tokens(recipe)
        if counted is not None:
            return Tokens(counted[0], counted[3], rows=counted[1], longest=counted[2])
    return Tokens(None, "unknown: the data is not local (or no tokenizer is cached); pass --tokens N")


def _train_tokens(recipe: Recipe, tok: Tokens, gpus: int, seq: int) -> tuple[int | None, list[str]]:
    notes: list[str] = []
    epochs = float(recipe.get("num_train_epochs"))
    steps = int(recipe.get("max_steps"))
    per_step_seqs = int(recipe.get("per_device_train_batch_size")) * int(recipe.get("gradient_accumulation_steps"))
    if steps > 0:
        cap = steps * per_step_seqs * gpus * seq
        if tok.per_epoch is None:
            notes.append(f"max_steps={steps}: at most {cap:,} tokens (full {seq}-token sequences assumed)")
            return cap, notes
        total = min(cap, math.ceil(tok.per_epoch * epochs)) if not recipe.get("packing") else cap
        return min(total, cap), notes
    if tok.per_epoch is None:
        return None, notes
    return int(tok.per_epoch * epochs), notes


def estimate_one(recipe: Recipe, arch: Arch, gpus: int, gpu: GPU, tok: Tokens, usd: float | None) -> Estimate:
    """Memory, FLOPs, time and dollars of a recipe on `gpus` x `gpu`."""
    s = setup_for(recipe, gpus, gpu)
    notes: list[str] = []
    if arch.vision is not None:  # the vision tower's load, memory and FLOPs (cost/vision_estimate.py)
        from qwen_recipes.cost.vision_estimate import add_vision_flops, vision_load

        s.vision = vision_load(recipe, arch)
        notes += s.vision.notes
    if not recipe.get("packing") and recipe.task in ("sft", "cpt"):
        if tok.longest:
            s.seq_len = min(s.seq_len, tok.longest)  # unpacked: the longest row sets the peak
        else:
            notes.append("memory at max_length: without packing the longest row sets the peak (often shorter)")
    items = memory_items(arch, s)
    total = total_bytes(items)
    budget = gpu.memory_gb * GB
    tokens, more = _train_tokens(recipe, tok, gpus, s.seq_len)
    notes += more
    seq_attn = s.seq_len
    if not recipe.get("packing") and tok.per_epoch and tok.rows:
        seq_attn = max(1, min(s.seq_len, tok.per_epoch // tok.rows))  # unpacked rows: their mean length
    elif not recipe.get("packing"):
        notes.append("attention term at max_length (rows are shorter without packing: an upper bound)")
    fl = None
    mfu = EXPECTED_MFU[recipe.method]
    hours = gpu_hours = cost = None
    if tokens is not None:
        fl = F.training_flops(
            arch,
            tokens,
            seq_attn,
            recipe.method,
            lora_r=s.lora_r,
            lora_modules=s.lora_modules,
            gradient_checkpointing=s.gradient_checkpointing,
            train_lm_head="lm_head" in s.modules_to_save,
        ).to_dict()
        if arch.vision is not None:
            fl = add_vision_flops(fl, arch, s, tokens, seq_attn)
        executed = fl["total"]
        if recipe.task == "dpo":
            executed += F.dpo_reference_flops(arch, tokens, seq_attn)
        if recipe.task == "grpo":
            gens = int(recipe.get("num_generations"))
            executed += F.generation_flops(arch, tokens, seq_attn // 2)
            mfu = EXPECTED_MFU_GRPO
            notes.append(f"GRPO: tokens counted as trained prompt+completion tokens ({gens} generations per prompt)")
        fl["executed"] = executed
        hours = executed / (gpus * gpu.peak_tflops * 1e12 * mfu) / 3600
        gpu_hours = hours * gpus
        cost = gpu_hours * usd if usd is not None else None
    usd_rate, source = (usd, "given") if usd is not None else price(gpu.name)
    if usd is None and usd_rate is not None and gpu_hours is not None:
        cost = gpu_hours * usd_rate
    return Estimate(
        hardware=f"{gpus}x{gpu.name}",
        gpus=gpus,
        gpu=gpu.name,
        gpu_memory_gb=gpu.memory_gb,
        memory_items_gb={k: round(b / GB, 3) for k, b in items.items()},
        memory_total_gb=round(total / GB, 2),
        fits=total <= budget,
        largest_fitting=largest_fitting(arch, s, budget),
        tokens=tokens,
        flops=fl,
        expected_mfu=mfu,
        hours=hours,
        gpu_hours=gpu_hours,
        usd_per_gpu_hour=usd_rate,
        price_source=source,
        usd=cost,
        notes=notes,
    )


def requested_hardware(recipe: Recipe, spec: str | None) -> tuple[int, GPU]:
    """--hardware, else the recipe's own `hardware:`, else 1xH100."""
    if spec:
        return parse_hardware(spec)
    return hardware_from_recipe(recipe.get("hardware")) or parse_hardware("1xH100")


def estimate(
    recipe: Recipe,
    hardware: str | None = None,
    tokens: int | None = None,
    usd: float | None = None,
    compare: bool = True,
) -> dict[str, Any]:
    """The full estimate of a recipe: requested hardware plus the common comparison options."""
    arch, arch_source = recipe_arch(recipe)
    gpus, gpu = requested_hardware(recipe, hardware)
    tok = dataset_tokens(recipe, tokens)
    usd = usd if usd is not None else recipe.get("price_per_gpu_hour")
    main = estimate_one(recipe, arch, gpus, gpu, tok, usd)
    options = []
    if compare:
        for spec in COMPARE:
            n, g = parse_hardware(spec)
            if (n, g.name) != (gpus, gpu.name):
                options.append(estimate_one(recipe, arch, n, g, tok, None))
    return {
        "recipe": str(recipe.path),
        "model": str(recipe.get("model_name_or_path")),
        "architecture_source": arch_source,
        "parameters": arch.total_params(),
        "task": recipe.task,
        "method": recipe.method,
        "tokens_per_epoch": tok.per_epoch,
        "tokens_source": tok.source,
        "estimate": main.to_dict(),
        "compare": [o.to_dict() for o in options],
    }
