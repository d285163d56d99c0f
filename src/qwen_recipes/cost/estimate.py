"""Pre-flight estimate of a recipe: memory per GPU (itemised, with a verdict), FLOPs, time and dollars.

Nothing here imports torch or loads weights: the architecture comes from a config.json or the built-in table.
Time = FLOPs executed / (GPUs x peak dense bf16 FLOP/s x expected utilisation), with the expected utilisation
per method calibrated on published runs (docs/costs.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qwen_recipes.cost import flops as F
from qwen_recipes.cost.hardware import COMPARE, GPU, hardware_from_recipe, parse_hardware, price
from qwen_recipes.cost.memory import GB, Setup, largest_fitting, memory_items, total_bytes
from qwen_recipes.cost.models import Arch, recipe_arch

# Expected utilisation (FLOPs executed, recomputation included / peak), see docs/costs.md "Calibration".
# full: s1-32B (16xH100 FSDP, 26 min) implies 0.17 when s1K rows average ~4k tokens (the paper's 59K pool
# averages 3.6k thinking tokens; s1K's own total is not published). LoRA/QLoRA: no published run to calibrate on;
# QLoRA pays for dequantising every weight on every pass (bitsandbytes), so it is set lower.
EXPECTED_MFU = {"full": 0.17, "lora": 0.15, "qlora": 0.10}
# GRPO is dominated by generating rollouts (memory-bound decoding); TinyZero publishes no wall time or tokens.
EXPECTED_MFU_GRPO = 0.05
SFT_DEFAULT_LENGTH = 1024  # TRL SFTConfig.max_length default
DEFAULT_BATCH = 8  # transformers per_device_train_batch_size default


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


def sharding(recipe_values: dict[str, Any], recipe_dir: Path | None = None) -> dict[str, Any]:
    """ZeRO stage / FSDP and offload from the recipe's accelerate config (file content, else its name)."""
    out = {"engine": "none", "zero_stage": 0, "offload_optimizer": False, "offload_params": False}
    ds, fsdp = recipe_values.get("deepspeed"), recipe_values.get("fsdp")
    name = str(recipe_values.get("accelerate_config") or "")
    cfg: dict[str, Any] = {}
    for base in [Path.cwd(), *([recipe_dir] if recipe_dir else []), *(list(recipe_dir.parents) if recipe_dir else [])]:
        if name and (base / name).is_file():
            cfg = yaml.safe_load((base / name).read_text()) or {}
            break
    kind = str(cfg.get("distributed_type", "")).upper()
    if kind == "DEEPSPEED" or ds or re.search(r"zero|deepspeed", name, re.I):
        d = cfg.get("deepspeed_config") or {}
        stage = d.get("zero_stage")
        if stage is None:
            m = re.search(r"zero[_-]?(\d)", name, re.I)
            stage = int(m.group(1)) if m else 3
        out.update(engine="deepspeed", zero_stage=int(stage))
        out["offload_optimizer"] = str(d.get("offload_optimizer_device", "none")) != "none" or "offload" in name
        out["offload_params"] = str(d.get("offload_param_device", "none")) != "none"
    elif kind == "FSDP" or fsdp or "fsdp" in name.lower():
        f = cfg.get("fsdp_config") or {}
        strategy = str(f.get("fsdp_sharding_strategy", "FULL_SHARD")).upper()
        reshard = f.get("fsdp_reshard_after_forward", True)
        stage = 2 if "GRAD_OP" in strategy or reshard is False or "SHARD_GRAD_OP" in str(fsdp).upper() else 3
        out.update(engine="fsdp", zero_stage=stage)
        out["offload_params"] = out["offload_optimizer"] = bool(f.get("fsdp_offload_params", False))
    return out


def setup_for(recipe: Any, gpus: int) -> Setup:
    """The memory `Setup` a recipe describes, on `gpus` GPUs."""
    v = recipe.values
    method = recipe.method
    seq = int(v.get("max_length") or SFT_DEFAULT_LENGTH)
    if recipe.task == "grpo":
        seq = int(v.get("max_prompt_length") or 512) + int(v.get("max_completion_length") or 256)
    mb = int(v.get("per_device_train_batch_size") or DEFAULT_BATCH)
    if recipe.task in ("dpo", "orpo", "simpo"):
        mb *= 2  # chosen and rejected go through the model together
    w = _dtype_bytes(v.get("dtype"))
    act = 2 if (v.get("bf16", True) or v.get("fp16") or w == 2) else 4
    shard = sharding(v, Path(recipe.path).parent) if gpus > 1 else {}
    return Setup(
        method=method,
        weight_bytes=w,
        act_bytes=act,
        optimizer=v.get("optim") or "adamw_torch",
        lora_r=int(v.get("lora_r") or 16),
        lora_modules=v.get("lora_target_modules") or "all-linear",
        lora_dropout=float(v.get("lora_dropout") or 0.0),
        modules_to_save=list(v.get("lora_modules_to_save") or []),
        nested_quant=bool(v.get("use_bnb_nested_quant", True)),
        micro_batch=mb,
        seq_len=seq,
        gradient_checkpointing=bool(v.get("gradient_checkpointing", False)),
        attn_implementation=str(v.get("attn_implementation") or "sdpa"),
        gpus=gpus,
        # TRL 1.16's SFT/DPO/GRPO losses go through its chunked fused LM head; ORPO/CPO still build full logits.
        fused_lm_head=recipe.task in ("sft", "cpt", "dpo", "grpo"),
        **shard,
    )


def dataset_tokens(recipe: Any, tokens: int | None = None, count: bool = True) -> Tokens:
    """Tokens per epoch: --tokens, else the recipe's `dataset_tokens`, else counted from local data, else unknown."""
    if tokens is not None:
        return Tokens(int(tokens), "--tokens")
    if recipe.values.get("dataset_tokens"):
        return Tokens(int(recipe.values["dataset_tokens"]), "recipe dataset_tokens")
    if count:
        from qwen_recipes.cost.tokens import count_local_tokens

        counted = count_local_tokens(recipe)
        if counted is not None:
            return Tokens(counted[0], counted[3], rows=counted[1], longest=counted[2])
    return Tokens(None, "unknown: the data is not local (or no tokenizer is cached); pass --tokens N")


def _train_tokens(recipe: Any, tok: Tokens, gpus: int, seq: int) -> tuple[int | None, list[str]]:
    v, notes = recipe.values, []
    epochs = float(v.get("num_train_epochs", 3.0))
    steps = int(v.get("max_steps") or -1)
    per_step_seqs = int(v.get("per_device_train_batch_size") or DEFAULT_BATCH) * int(
        v.get("gradient_accumulation_steps") or 1
    )
    if steps > 0:
        cap = steps * per_step_seqs * gpus * seq
        if tok.per_epoch is None:
            notes.append(f"max_steps={steps}: at most {cap:,} tokens (full {seq}-token sequences assumed)")
            return cap, notes
        total = min(cap, math.ceil(tok.per_epoch * epochs)) if not v.get("packing") else cap
        return min(total, cap), notes
    if tok.per_epoch is None:
        return None, notes
    return int(tok.per_epoch * epochs), notes


def estimate_one(recipe: Any, arch: Arch, gpus: int, gpu: GPU, tok: Tokens, usd: float | None) -> Estimate:
    """Memory, FLOPs, time and dollars of a recipe on `gpus` x `gpu`."""
    s = setup_for(recipe, gpus)
    notes: list[str] = []
    if not recipe.values.get("packing") and recipe.task in ("sft", "cpt"):
        if tok.longest:
            s.seq_len = min(s.seq_len, tok.longest)  # unpacked: the longest row sets the peak
        else:
            notes.append("memory at max_length: without packing the longest row sets the peak (often shorter)")
    items = memory_items(arch, s)
    total = total_bytes(items)
    budget = gpu.memory_gb * GB
    tokens, more = _train_tokens(recipe, tok, gpus, s.seq_len)
    notes += more
    v = recipe.values
    seq_attn = s.seq_len
    if not v.get("packing") and tok.per_epoch and tok.rows:
        seq_attn = max(1, min(s.seq_len, tok.per_epoch // tok.rows))  # unpacked rows: their mean length
    elif not v.get("packing"):
        notes.append("attention term at max_length (rows are shorter without packing: an upper bound)")
    fl = None
    mfu = EXPECTED_MFU.get(recipe.method, 0.15)
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
        executed = fl["total"]
        if recipe.task == "dpo":
            executed += F.dpo_reference_flops(arch, tokens, seq_attn)
        if recipe.task == "grpo":
            gens = int(v.get("num_generations") or 8)
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


def requested_hardware(recipe: Any, spec: str | None) -> tuple[int, GPU]:
    """--hardware, else the recipe's own `hardware:`, else 1xH100."""
    if spec:
        return parse_hardware(spec)
    return hardware_from_recipe(recipe.values.get("hardware")) or parse_hardware("1xH100")


def estimate(
    recipe: Any, hardware: str | None = None, tokens: int | None = None, usd: float | None = None, compare: bool = True
) -> dict[str, Any]:
    """The full estimate of a recipe: requested hardware plus the common comparison options."""
    arch, arch_source = recipe_arch(recipe.values)
    gpus, gpu = requested_hardware(recipe, hardware)
    tok = dataset_tokens(recipe, tokens)
    usd = usd if usd is not None else recipe.values.get("price_per_gpu_hour")
    main = estimate_one(recipe, arch, gpus, gpu, tok, usd)
    options = []
    if compare:
        for spec in COMPARE:
            n, g = parse_hardware(spec)
            if (n, g.name) != (gpus, gpu.name):
                options.append(estimate_one(recipe, arch, n, g, tok, None))
    return {
        "recipe": str(recipe.path),
        "model": str(recipe.values["model_name_or_path"]),
        "architecture_source": arch_source,
        "parameters": arch.total_params(),
        "task": recipe.task,
        "method": recipe.method,
        "tokens_per_epoch": tok.per_epoch,
        "tokens_source": tok.source,
        "estimate": main.to_dict(),
        "compare": [o.to_dict() for o in options],
    }
