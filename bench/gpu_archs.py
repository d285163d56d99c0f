"""The GPU benchmark's architectures: published Qwen checkpoints from the family registry (no download), built with
the cost module's tables, so the benchmark's MFU is the quantity `run_report.json` reports.

Model FLOPs come from `qwen_recipes.cost.flops.training_flops` (recomputation excluded, frozen weights without
weight gradients), parameters from `cost.models.Arch`, and peak throughput from `cost.hardware`.
"""

from __future__ import annotations

from typing import Any

from qwen_recipes import families
from qwen_recipes.cost.flops import training_flops
from qwen_recipes.cost.hardware import gpu_from_device_name
from qwen_recipes.cost.models import Arch, arch_from_config

# Benchmark name -> published Hub id (weights are random, so speed and memory are real and the loss is not).
CHECKPOINTS = {
    "qwen2.5-7b": "Qwen/Qwen2.5-7B-Instruct",
    "qwen3-8b": "Qwen/Qwen3-8B",
    "qwen2.5-32b": "Qwen/Qwen2.5-32B-Instruct",
}
# CPU smoke test only: the qwen3 test-bed shape with a small vocabulary so a step takes milliseconds.
TINY_VOCAB = 2048


def config_values(arch: str) -> dict[str, Any]:
    """config.json values of a benchmark architecture (with its model_type)."""
    if arch == "tiny":
        values = families.tiny_config_values(families.QWEN3, vocab_size=TINY_VOCAB)
        return {**values, "bos_token_id": None, "eos_token_id": None, "pad_token_id": None}
    if arch not in CHECKPOINTS:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    values = families.checkpoint_config(CHECKPOINTS[arch])
    if values is None:
        raise ValueError(f"{CHECKPOINTS[arch]} is not in the family registry")
    return values


ARCHS: dict[str, dict[str, Any]] = {name: config_values(name) for name in [*CHECKPOINTS, "tiny"]}


def build_config(arch: str) -> Any:
    """A transformers config object for one of ARCHS."""
    values = dict(config_values(arch))
    family = families.get(values.pop("model_type"))
    return family.config_cls()(**values)


def cost_arch(arch: str) -> Arch:
    """The cost model's architecture of a benchmark architecture."""
    return arch_from_config(config_values(arch))


def parameter_count(arch: str) -> dict[str, int]:
    """Total parameters of an architecture (the cost model's count, as `model.num_parameters()`)."""
    return {"total": cost_arch(arch).total_params()}


def flops_per_token(arch: str, seq_len: int, method: str) -> float:
    """Model FLOPs per trained token: the cost meter's formula (recompute excluded), at this sequence length."""
    return training_flops(cost_arch(arch), 1, seq_len, method).model


def peak_tflops(device_name: str) -> float | None:
    """Datasheet bf16 peak of a GPU name (the cost module's table), None when unknown (pass --peak-tflops)."""
    gpu = gpu_from_device_name(device_name)
    return gpu.peak_tflops if gpu else None
