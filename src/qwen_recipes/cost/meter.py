"""`CostMeter`: the one meter of a run (a Trainer callback), and `cost_block` for `run_report.json`.

Measured per training segment: start and end time, wall time, device type, GPUs of the launch (the launch
description's world size), real tokens (the Trainer's non-padding count), steps, peak memory per device, and on
GPU the achieved TFLOP/s and MFU (model FLOPs from `flops.py`, recomputation excluded, over peak dense bf16).
GPU-hours and dollars use the shipped price table. On resume, earlier segments are read from the previous run
report's `cost.segments` and the totals add up across segments instead of restarting: that list is the report's
only segment list. Beside the measurement, `cost.predicted` holds what `qwen-recipes estimate` predicts for the
same recipe, hardware and tokens, with the ratio measured / predicted: every GPU run is a calibration point.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from transformers import TrainerCallback

from qwen_recipes.cost.flops import training_flops
from qwen_recipes.cost.hardware import gpu_from_device_name, price
from qwen_recipes.cost.models import Arch, arch_from_config
from qwen_recipes.recipe import Recipe


class CostMeter(TrainerCallback):
    """Measures one training segment: time, tokens, device, peak memory, and the model FLOPs of those tokens."""

    def __init__(self, recipe: Recipe | None = None, price_per_gpu_hour: float | None = None) -> None:
        self.recipe = recipe
        self.price_override = price_per_gpu_hour
        if price_per_gpu_hour is None and recipe is not None:
            self.price_override = recipe.get("price_per_gpu_hour")
        self.arch: Arch | None = None
        self.started_at: str | None = None
        self.ended_at: str | None = None
        self.t0 = 0.0
        self.wall_seconds = 0.0
        self.start_tokens = 0
        self.start_step = 0
        self.tokens = 0
        self.steps = 0
        self.device: dict[str, Any] = {}
        self.peak_memory_bytes: list[int] | None = None
        self.seq_len = 1024
        self.method = "full"
        self.gradient_checkpointing = False
        self.lora_r, self.lora_modules, self.train_lm_head = 16, "all-linear", False
        self.lora_parameters: list[str] | None = None  # fused expert weights under LoRA (MoE)
        self.micro_batch = 1

    # ------------------------------------------------------------------ callback hooks
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        """Remember where this segment starts and what is being trained."""
        import torch

        self.start_tokens = int(state.num_input_tokens_seen or 0)
        self.start_step = int(state.global_step)
        self.started_at = _now()
        self.device = device_info(self.recipe)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._describe_model(model, args)
        self.t0 = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        """Close the segment: wall time, tokens, steps and peak memory."""
        self.wall_seconds = time.perf_counter() - self.t0
        self.ended_at = _now()
        self.tokens = int(state.num_input_tokens_seen or 0) - self.start_tokens
        self.steps = int(state.global_step) - self.start_step
        self.peak_memory_bytes = peak_memory_per_device()

    def running_segment(self, state: Any) -> dict[str, Any]:
        """This segment so far (time, tokens, steps up to `state`), priced; persisted at each checkpoint save so a
        killed segment is still counted up to its last checkpoint (training/run_dir.py)."""
        closed = (self.wall_seconds, self.ended_at, self.tokens, self.steps)
        self.wall_seconds = time.perf_counter() - self.t0
        self.ended_at = _now()
        self.tokens = int(state.num_input_tokens_seen or 0) - self.start_tokens
        self.steps = int(state.global_step) - self.start_step
        try:
            return self.segment() | {"interrupted": f"counted to checkpoint-{state.global_step}"}
        finally:
            self.wall_seconds, self.ended_at, self.tokens, self.steps = closed

    def _describe_model(self, model: Any, args: Any) -> None:
        if model is None:
            return
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        try:
            self.arch = arch_from_config(base.config.to_dict())
        except Exception:  # not a decoder we can describe: report no FLOPs rather than wrong ones
            self.arch = None
        peft_cfg = getattr(model, "peft_config", None)
        if peft_cfg:
            cfg = next(iter(peft_cfg.values()))
            quantized = bool(getattr(base, "is_loaded_in_4bit", False))
            self.method = "qlora" if quantized else "lora"
            self.lora_r = int(getattr(cfg, "r", 16))
            targets = getattr(cfg, "target_modules", None)
            self.lora_modules = sorted(targets) if isinstance(targets, (set, list)) else targets
            self.train_lm_head = "lm_head" in (getattr(cfg, "modules_to_save", None) or [])
            self.lora_parameters = sorted(getattr(cfg, "target_parameters", None) or [])
        self.gradient_checkpointing = bool(getattr(args, "gradient_checkpointing", False))
        self.seq_len = int(getattr(args, "max_length", None) or self.seq_len)
        self.micro_batch = int(getattr(args, "per_device_train_batch_size", 1) or 1)

    # ------------------------------------------------------------------ results
    def model_flops(self) -> float | None:
        """Model FLOPs (forward + backward, recomputation excluded) of this segment's tokens."""
        if self.arch is None or not self.tokens:
            return None
        return training_flops(
            self.arch,
            self.tokens,
            self.seq_len,
            self.method,
            lora_r=self.lora_r,
            lora_modules=self.lora_modules,
            gradient_checkpointing=self.gradient_checkpointing,
            train_lm_head=self.train_lm_head,
            lora_parameters=self.lora_parameters,
            micro_batch=self.micro_batch,
        ).model

    def segment(self) -> dict[str, Any]:
        """This segment's measurements, priced."""
        gpus = self.device.get("gpus", 0)
        hours = self.wall_seconds / 3600
        gpu = gpu_from_device_name(self.device.get("device_name")) if gpus else None
        rate, source = price(gpu.name, self.price_override) if gpu else (self.price_override, "given")
        if not gpus:
            rate, source = None, "cpu run: no GPU-hours"
        mf = self.model_flops()
        achieved = mf / (self.wall_seconds * gpus) / 1e12 if (mf and gpus and self.wall_seconds) else None
        return {
            "started_at": self.started_at,
            "ended_at": self.ended_at or _now(),
            "device": self.device.get("device", "cpu"),
            "device_name": self.device.get("device_name"),
            "gpu_type": gpu.name if gpu else None,
            "gpus": gpus,
            "wall_seconds": round(self.wall_seconds, 3),
            "tokens": self.tokens,
            "steps": self.steps,
            "model_flops": mf,
            "achieved_tflops_per_gpu": round(achieved, 2) if achieved else None,
            "mfu": round(achieved / gpu.peak_tflops, 4) if (achieved and gpu) else None,
            "peak_memory_bytes": self.peak_memory_bytes,
            "gpu_hours": round(hours * gpus, 6),
            "usd_per_gpu_hour": rate,
            "price_source": source,
            "usd": round(hours * gpus * rate, 4) if (rate is not None and gpus) else None,
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def device_info(recipe: Recipe | None = None) -> dict[str, Any]:
    """'cuda' with the GPU name and the launch's GPU count (world size), or 'cpu' (with its model name), no GPUs."""
    import torch

    from qwen_recipes.recipe.launch import describe_launch

    world = describe_launch(recipe).world_size
    if torch.cuda.is_available():
        return {"device": "cuda", "device_name": torch.cuda.get_device_name(0), "gpus": world, "world_size": world}
    return {"device": "cpu", "device_name": cpu_name(), "gpus": 0, "world_size": world}


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else the machine type."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory_per_device() -> list[int] | None:
    """Peak allocated bytes of each visible GPU (this process), or None on CPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    return [int(torch.cuda.max_memory_allocated(i)) for i in range(torch.cuda.device_count())]


def cost_block(meter: CostMeter, previous: dict[str, Any] | None = None) -> dict:
    """The `cost` block of `run_report.json`: earlier segments (from `previous`'s cost block) + this one, totalled."""
    seg = meter.segment()
    segments = [*((previous or {}).get("cost") or {}).get("segments", []), seg]
    total = lambda key: sum(s.get(key) or 0 for s in segments)  # noqa: E731 - local shorthand
    priced = [s for s in segments if s.get("usd") is not None]
    gpu_seconds = sum(s["wall_seconds"] * s["gpus"] for s in segments if s.get("gpus"))
    flops = total("model_flops")
    achieved = flops / gpu_seconds / 1e12 if (gpu_seconds and flops) else None
    peaks = [max(s["peak_memory_bytes"]) for s in segments if s.get("peak_memory_bytes")]
    block = {
        "started_at": segments[0].get("started_at"),
        "ended_at": seg["ended_at"],
        "device": seg["device"],
        "device_name": seg["device_name"],
        "gpu_type": seg["gpu_type"],
        "gpus": seg["gpus"],
        "wall_seconds": round(total("wall_seconds"), 3),
        "tokens": int(total("tokens")),
        "steps": int(total("steps")),
        "tokens_per_second": round(total("tokens") / total("wall_seconds"), 2) if total("wall_seconds") else None,
        "model_flops": flops or None,
        "achieved_tflops_per_gpu": round(achieved, 2) if achieved else None,
        "mfu": _mfu(segments),
        "peak_memory_bytes": max(peaks) if peaks else None,
        "gpu_hours": round(total("gpu_hours"), 6),
        "usd_per_gpu_hour": seg["usd_per_gpu_hour"],
        "price_source": seg["price_source"],
        "usd": round(sum(s["usd"] for s in priced), 4) if priced else None,
        "segments": segments,
    }
    from qwen_recipes.cost.versus import predicted_block

    block["predicted"] = predicted_block(meter.recipe, block)
    return block


def _mfu(segments: list[dict[str, Any]]) -> float | None:
    # Time-weighted over the GPU segments that have one.
    rows = [(s["mfu"], s["wall_seconds"]) for s in segments if s.get("mfu") is not None]
    seconds = sum(w for _, w in rows)
    return round(sum(m * w for m, w in rows) / seconds, 4) if seconds else None


def summary_line(cost: dict[str, Any]) -> str:
    """One line for the end-of-run summary."""
    parts = [f"{cost['wall_seconds']:.1f} s", f"{cost['tokens']:,} tokens"]
    if cost.get("gpus"):
        parts.append(
            f"{cost['gpu_hours']:.3f} GPU-hours on {cost['gpus']}x {cost.get('gpu_type') or cost['device_name']}"
        )
    if cost.get("mfu") is not None:
        parts.append(f"MFU {cost['mfu']:.1%} ({cost['achieved_tflops_per_gpu']} TFLOP/s per GPU)")
    parts.append(f"${cost['usd']:.2f}" if cost.get("usd") is not None else "no GPU cost (CPU run)")
    if len(cost.get("segments", [])) > 1:
        parts.append(f"over {len(cost['segments'])} segments")
    p = cost.get("predicted") or {}
    if p.get("available"):
        parts.append(
            f"predicted {p['hours'] * 3600:,.0f} s (measured / predicted {p['measured_over_predicted']['time']:.2f})"
        )
    return "cost: " + ", ".join(parts)
