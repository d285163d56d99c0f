"""Pre-flight estimate of a recipe: memory per GPU (itemised, with a verdict), FLOPs, time and dollars, with bands.

Nothing here imports torch or loads weights: the architecture comes from a config.json or the built-in table.
Time comes from the calibrated time model (`timing.py`: executed FLOPs with causal attention over utilisation
fitted on published measurements, plus fixed, dequantisation and communication terms); the band around it from
`bands.py`; dollars from the dated price table (the provider is named); a hosted per-token price from `hosted.py`.
A set-up that does not fit in memory gets neither a time nor a price: it cannot run as configured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from qwen_recipes.cost import flops as F
from qwen_recipes.cost.bands import time_band
from qwen_recipes.cost.hardware import (
    COMPARE,
    GPU,
    GPUS_PER_NODE,
    hardware_from_recipe,
    offer,
    offer_label,
    offers,
    parse_hardware,
)
from qwen_recipes.cost.hosted import hosted_cost
from qwen_recipes.cost.memory import GB, Setup, largest_fitting, memory_items, total_bytes
from qwen_recipes.cost.models import Arch, recipe_arch
from qwen_recipes.cost.timing import Work, predict
from qwen_recipes.recipe import Recipe
from qwen_recipes.recipe.launch import Launch, describe_launch

# TRL 1.16's GRPOConfig has no max_prompt_length (prompts are not truncated): memory and time assume prompts this long.
GRPO_PROMPT_TOKENS = 512


@dataclass
class Tokens:
    """Training tokens per epoch, where the number came from, and what is known of the rows' lengths."""

    per_epoch: int | None
    source: str
    rows: int | None = None
    longest: int | None = None  # longest row after truncation/drops: sets peak memory without packing
    attn_len: float | None = None  # sum(len^2)/sum(len) of the rows: the attention length without packing
    kind: str = "exact"  # exact (given, published or counted) | assumed | upper bound | unknown


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
    tokens_kind: str
    flops: dict[str, float] | None
    timing: dict[str, Any] | None
    utilisation: float | None  # executed FLOPs / peak over the predicted time
    mfu: float | None  # model FLOPs (torch flop-counter convention) / peak over the predicted time
    hours: float | None
    hours_low: float | None
    hours_high: float | None
    band_reasons: list[str]
    gpu_hours: float | None
    usd_per_gpu_hour: float | None
    price_source: str
    provider: str | None
    usd: float | None
    usd_low: float | None
    usd_high: float | None
    other_offers: list[dict[str, Any]] = field(default_factory=list)
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
        lora_parameters=recipe.get("lora_target_parameters") if recipe.is_set("lora_target_parameters") else None,
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
    """Tokens per epoch: --tokens, the recipe's `dataset_tokens`, the published count, local data counted, an
    assumed count per row (a reproduction whose count is unpublished), a GRPO upper bound, else unknown."""
    rep = recipe.reported_block()
    rows = rep.rows if rep else None
    if tokens is not None:
        return Tokens(int(tokens), "--tokens", rows=rows)
    if recipe.get("dataset_tokens"):
        return Tokens(int(recipe.get("dataset_tokens")), "recipe dataset_tokens", rows=rows)
    if rep and rep.tokens:
        return Tokens(int(rep.tokens), rep.tokens_how or "reported tokens", rows=rows)
    if count:
        from qwen_recipes.cost.tokens import count_local_tokens

        c = count_local_tokens(recipe)
        if c is not None:
            return Tokens(c["tokens"], c["source"], rows=c["rows"], longest=c["longest"], attn_len=c["attn_len"])
    if recipe.task == "grpo" and rows:
        per_row = int(recipe.get("num_generations")) * (GRPO_PROMPT_TOKENS + int(recipe.get("max_completion_length")))
        return Tokens(
            rows * per_row,
            f"upper bound: {rows:,} prompts x {recipe.get('num_generations')} completions at the cap",
            rows=rows,
            kind="upper bound",
        )
    if rep and rep.assumed_tokens_per_row and rows:
        per_row = min(int(rep.assumed_tokens_per_row), int(recipe.get("max_length") or rep.assumed_tokens_per_row))
        return Tokens(rows * per_row, f"assumed {per_row:,} tokens/row x {rows:,} rows (not published)", rows=rows,
                      kind="assumed")  # fmt: skip
    return Tokens(None, "unknown: the data is not local (or no tokenizer is cached); pass --tokens N", kind="unknown")


def _train_tokens(recipe: Recipe, tok: Tokens, gpus: int, seq: int) -> tuple[int | None, str, list[str]]:
    """(trained tokens over the run, their kind, notes): epochs x per-epoch tokens, capped by max_steps."""
    notes: list[str] = []
    epochs = float(recipe.get("num_train_epochs"))
    steps = int(recipe.get("max_steps"))
    per_step_seqs = int(recipe.get("per_device_train_batch_size")) * int(recipe.get("gradient_accumulation_steps"))
    if steps > 0:
        cap = steps * per_step_seqs * gpus * seq
        if tok.per_epoch is None:
            notes.append(f"max_steps={steps}: at most {cap:,} tokens (full {seq}-token sequences assumed)")
            return cap, "upper bound", notes
        total = min(cap, math.ceil(tok.per_epoch * epochs)) if not recipe.get("packing") else cap
        return min(total, cap), tok.kind, notes
    if tok.per_epoch is None:
        return None, "unknown", notes
    return int(tok.per_epoch * epochs), tok.kind, notes


def work_for(recipe: Recipe, arch: Arch, s: Setup, tok: Tokens, tokens: int, notes: list[str]) -> Work:
    """The time model's view of a recipe: tokens per micro-batch, attention length, sharding."""
    packed = bool(recipe.get("packing")) and recipe.task in ("sft", "cpt")
    rows_mean = tok.per_epoch / tok.rows if (tok.per_epoch and tok.rows) else None
    row_len = min(s.seq_len, rows_mean) if (rows_mean and not packed) else s.seq_len
    if recipe.task == "grpo" or packed:
        row_len = s.seq_len
    if not packed and rows_mean is None and recipe.task in ("sft", "cpt"):
        notes.append("time at max_length per row (rows' lengths unknown without packing: an upper bound)")
    per_row_attention = not packed or ("flash" in s.attn_implementation and recipe.get("packing_strategy") == "bfd")
    attn = tok.attn_len if (tok.attn_len and per_row_attention) else row_len
    mb = s.micro_batch  # DPO/ORPO/SimPO: chosen and rejected already doubled by setup_for
    w = Work(
        method=s.method,
        tokens=tokens,
        micro_tokens=mb * row_len,
        attn_len=min(attn, s.seq_len),
        gpus=s.gpus,
        lora_r=s.lora_r,
        lora_modules=s.lora_modules,
        train_lm_head="lm_head" in s.modules_to_save,
        gradient_checkpointing=s.gradient_checkpointing,
        attn_kernel=s.attn_implementation,
        sharded_weights=s.zero_stage == 3,
        weight_bytes=s.weight_bytes,
        offload_params=s.offload_params,
        lora_parameters=s.lora_parameters,
        micro_batch=mb,
    )
    if arch.vision is not None and s.vision is not None:  # the tower's FLOPs, rows = tokens / row length
        from qwen_recipes.cost.vision_estimate import vision_flops

        v = vision_flops(arch, s.vision, tokens / max(1.0, row_len), s.gradient_checkpointing)
        w.vision_flops, w.vision_model_flops = sum(v.values()), v["forward"] + v["backward"]
    if recipe.task == "dpo":
        w.extra_forward_flops = F.dpo_reference_flops(arch, tokens, int(w.attn_len))
    if recipe.task == "grpo":
        w.generation_flops = F.generation_flops(arch, tokens, int(w.attn_len) // 2)
        notes.append(f"GRPO: tokens counted as trained prompt+completion tokens ({recipe.get('num_generations')} "
                     "generations per prompt); rollouts at 5% of peak (an assumption)")  # fmt: skip
    return w


@dataclass
class Plan:
    """A recipe on given hardware as memory and the time model see it."""

    setup: Setup
    tokens: int | None
    tokens_kind: str
    work: Work | None
    notes: list[str]


def plan(recipe: Recipe, arch: Arch, gpus: int, gpu: GPU, tok: Tokens) -> Plan:
    """The memory set-up, trained tokens and time-model work of a recipe on `gpus` x `gpu`."""
    s = setup_for(recipe, gpus, gpu)
    notes: list[str] = []
    if arch.vision is not None:  # the vision tower's load, memory and FLOPs (cost/vision_estimate.py)
        from qwen_recipes.cost.vision_estimate import vision_load

        s.vision = vision_load(recipe, arch)
        notes += s.vision.notes
    if not recipe.get("packing") and recipe.task in ("sft", "cpt"):
        if tok.longest:
            s.seq_len = min(s.seq_len, tok.longest)  # unpacked: the longest row sets the peak
        else:
            notes.append("memory at max_length: without packing the longest row sets the peak (often shorter)")
    tokens, kind, more = _train_tokens(recipe, tok, gpus, s.seq_len)
    notes += more
    work = work_for(recipe, arch, s, tok, tokens, notes) if tokens is not None else None
    return Plan(s, tokens, kind, work, notes)


def estimate_one(
    recipe: Recipe, arch: Arch, gpus: int, gpu: GPU, tok: Tokens, usd: float | None, provider: str | None = None
) -> Estimate:
    """Memory, time and dollars (expected and band) of a recipe on `gpus` x `gpu`."""
    p = plan(recipe, arch, gpus, gpu, tok)
    s, notes = p.setup, p.notes
    items = memory_items(arch, s)
    total = total_bytes(items)
    if arch.linear_attention:
        notes.append(
            "Gated-DeltaNet layers costed with flash-linear-attention + causal-conv1d (the plan warns without)"
        )
    fits = total <= gpu.memory_gb * GB
    rate, source, chosen = (float(usd), "given", None) if usd is not None else (None, "no price known", None)
    if usd is None and (o := offer(gpu.name, provider)) is not None:
        rate, source, chosen = float(o["usd_per_gpu_hour"]), offer_label(o), o["provider"]
    e = Estimate(
        hardware=f"{gpus}x{gpu.name}",
        gpus=gpus,
        gpu=gpu.name,
        gpu_memory_gb=gpu.memory_gb,
        memory_items_gb={k: round(b / GB, 3) for k, b in items.items()},
        memory_total_gb=round(total / GB, 2),
        fits=fits,
        largest_fitting=largest_fitting(arch, s, gpu.memory_gb * GB),
        tokens=p.tokens,
        tokens_kind=p.tokens_kind,
        flops=None,
        timing=None,
        utilisation=None,
        mfu=None,
        hours=None,
        hours_low=None,
        hours_high=None,
        band_reasons=[],
        gpu_hours=None,
        usd_per_gpu_hour=rate,
        price_source=source,
        provider=chosen,
        usd=None,
        usd_low=None,
        usd_high=None,
        notes=notes,
    )
    if p.work is None:
        return e
    t = predict(arch, p.work, gpu)
    e.flops = {"model": t.model_flops, "executed": t.executed_flops}
    if p.work.vision_flops:  # the vision tower's share of the executed FLOPs (recomputation included)
        e.flops["vision"] = p.work.vision_flops
    if not fits:
        notes.append("does not fit in memory: no time or price (it cannot run as configured)")
        return e
    band = time_band(gpu.generation, gpus, gpus > GPUS_PER_NODE, s.zero_stage == 3,
                     s.offload_params or s.offload_optimizer, p.tokens_kind, recipe.task)  # fmt: skip
    e.timing, e.utilisation, e.mfu = t.to_dict(), t.utilisation, t.mfu
    e.hours = t.seconds / 3600
    e.hours_low, e.hours_high, e.band_reasons = e.hours * band.low, e.hours * band.high, band.reasons
    e.gpu_hours = e.hours * gpus
    notes += t.notes
    if rate is not None:
        e.usd, e.usd_low, e.usd_high = (h * gpus * rate for h in (e.hours, e.hours_low, e.hours_high))
    e.other_offers = [
        {**{k: o[k] for k in ("provider", "sku", "usd_per_gpu_hour", "as_of", "kind")}, "usd": e.gpu_hours * o["usd_per_gpu_hour"]}
        for o in offers(gpu.name)
    ]  # fmt: skip
    return e


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
    provider: str | None = None,
) -> dict[str, Any]:
    """The full estimate of a recipe: requested hardware, the common comparison options, and a hosted price."""
    arch, arch_source = recipe_arch(recipe)
    gpus, gpu = requested_hardware(recipe, hardware)
    tok = dataset_tokens(recipe, tokens)
    usd = usd if usd is not None else recipe.get("price_per_gpu_hour")
    main = estimate_one(recipe, arch, gpus, gpu, tok, usd, provider)
    options = []
    if compare:
        for spec in COMPARE:
            n, g = parse_hardware(spec)
            if (n, g.name) != (gpus, gpu.name):
                options.append(estimate_one(recipe, arch, n, g, tok, None))
    model = str(recipe.get("model_name_or_path"))
    # A tiny random test bed has no hosted counterpart.
    hosted = (
        []
        if model.startswith("tiny:")
        else hosted_cost(model, arch.total_params(), recipe.method, recipe.task, main.tokens)
    )
    return {
        "recipe": str(recipe.path),
        "model": model,
        "architecture_source": arch_source,
        "parameters": arch.total_params(),
        "task": recipe.task,
        "method": recipe.method,
        "tokens_per_epoch": tok.per_epoch,
        "tokens_source": tok.source,
        "tokens_kind": tok.kind,
        "estimate": main.to_dict(),
        "compare": [o.to_dict() for o in options],
        "hosted": hosted,
    }
