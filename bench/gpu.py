"""(e) GPU speed and memory: real Qwen2.5-7B / Qwen3-8B / Qwen2.5-32B shapes, random weights, N training steps.

    python -m bench gpu                                   # the whole matrix on one GPU
    python -m bench gpu --arch qwen3-8b --method qlora --liger off --gc on --steps 20
    python -m bench gpu --gpus 8 --method full            # full fine-tuning sharded with ZeRO-3 over 8 GPUs
    python -m bench gpu --smoke                           # CPU smoke run: tiny shape, 3 steps, in-process

Each cell (architecture x method x Liger x gradient checkpointing) runs in its own process (`bench.gpu_worker`,
under torchrun when --gpus > 1) so that peak memory is per configuration and an OOM is a result, not a crash. It needs
no network: shapes are in bench/gpu_archs.py and the data are random ids. Liger cells need the `liger-kernel` wheel
and Triton; without them they are reported as skipped. The predicted peak is `qwen_recipes.cost`'s estimate.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from bench.gpu_archs import ARCHS
from bench.workdir import ROOT

METHODS = ("lora", "qlora", "full")
TOGGLES = {"on": [True], "off": [False], "both": [False, True]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """GPU-benchmark options on the shared `python -m bench` parser."""
    g = parser.add_argument_group("gpu benchmark")
    g.add_argument("--arch", action="append", choices=sorted(ARCHS), help="repeatable; default: the three real ones")
    g.add_argument("--method", action="append", choices=METHODS, help="repeatable; default: lora, qlora, full")
    g.add_argument("--liger", choices=sorted(TOGGLES), default="both", help="Liger kernels (default: both)")
    g.add_argument("--gc", choices=sorted(TOGGLES), default="both", help="gradient checkpointing (default: both)")
    g.add_argument("--steps", type=int, default=12, help="optimizer steps per cell (default 12)")
    g.add_argument("--warmup", type=int, default=2, help="steps left out of the timing (default 2)")
    g.add_argument("--seq-len", type=int, default=4096, help="tokens per packed row (default 4096)")
    g.add_argument("--batch", type=int, default=1, help="packed rows per GPU per step (default 1)")
    g.add_argument("--gpus", type=int, default=1, help="processes for full fine-tuning (ZeRO-3 when > 1)")
    g.add_argument("--peak-tflops", type=float, help="GPU peak for MFU when the name is not known")
    g.add_argument("--timeout", type=int, default=1800, help="seconds per cell before it is called a failure")


def options_from_args(args: argparse.Namespace, smoke: bool) -> dict[str, Any]:
    """The benchmark matrix and per-cell settings from parsed arguments."""
    if smoke:
        return {
            "archs": args.arch or ["tiny"],
            "methods": args.method or list(METHODS),
            "liger": TOGGLES[args.liger],
            "gc": TOGGLES[args.gc],
            "steps": 3,
            "warmup": 1,
            "seq_len": 64,
            "batch": 2,
            "gpus": 1,
            "peak_tflops": args.peak_tflops,
            "in_process": True,
            "timeout": args.timeout,
        }
    return {
        "archs": args.arch or ["qwen2.5-7b", "qwen3-8b", "qwen2.5-32b"],
        "methods": args.method or list(METHODS),
        "liger": TOGGLES[args.liger],
        "gc": TOGGLES[args.gc],
        "steps": args.steps,
        "warmup": min(args.warmup, args.steps - 1),
        "seq_len": args.seq_len,
        "batch": args.batch,
        "gpus": args.gpus,
        "peak_tflops": args.peak_tflops,
        "in_process": False,
        "timeout": args.timeout,
    }


def liger_unavailable() -> str | None:
    """Why Liger kernels cannot run here, or None when they can."""
    import importlib.util

    import torch

    if importlib.util.find_spec("liger_kernel") is None:
        return "liger-kernel not installed (pip install liger-kernel)"
    if not torch.cuda.is_available():
        return "Liger kernels are Triton GPU kernels"
    return None


def predicted_peak_bytes(cell: dict[str, Any]) -> int | None:
    """The cost estimator's predicted peak memory per GPU for a cell (`qwen_recipes.cost.memory`), None without it.

    A small adapter: the estimator is another module's API, so a missing module or a changed signature shows as
    "n/a" in the table instead of failing the benchmark.
    """
    try:
        from qwen_recipes.cost.memory import Setup, memory_items, total_bytes
        from qwen_recipes.cost.models import arch_from_config
    except ImportError:
        return None
    import torch

    sharded = cell["method"] == "full" and cell["gpus"] > 1
    width = 2 if torch.cuda.is_available() else 4  # bf16 on GPU; the CPU smoke run is fp32
    try:
        setup = Setup(
            method=cell["method"],
            weight_bytes=width,
            act_bytes=width,
            optimizer="adamw_torch_fused",
            lora_r=16,
            lora_dropout=0.05,
            micro_batch=cell["batch"],
            seq_len=cell["seq_len"],
            gradient_checkpointing=cell["gc"],
            attn_implementation=cell.get("attn") or "sdpa",
            gpus=cell["gpus"] if sharded else 1,
            zero_stage=3 if sharded else 0,
            engine="deepspeed" if sharded else "none",
        )
        return int(total_bytes(memory_items(arch_from_config(ARCHS[cell["arch"]]), setup)))
    except (TypeError, ValueError, KeyError):
        return None


def _run_cell(cell: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    if opts["in_process"]:
        from bench.gpu_worker import measure

        return measure(cell)
    out = tempfile.mktemp(suffix=".json", prefix="qwen-bench-cell-")
    worker = ["-m", "bench.gpu_worker", json.dumps(cell), out]
    if cell["method"] == "full" and opts["gpus"] > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={opts['gpus']}", *worker]
    else:
        cmd = [sys.executable, *worker]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=opts["timeout"], capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return {**cell, "status": "timeout"}
    if os.path.exists(out):
        with open(out) as fh:
            return json.load(fh)
    return {**cell, "status": "error", "error": proc.stderr[-300:]}


def run(opts: dict[str, Any]) -> dict[str, Any]:
    """Measure every cell of the matrix, one after the other."""
    no_liger = liger_unavailable()
    cells = []
    for arch, method, liger, gc in itertools.product(opts["archs"], opts["methods"], opts["liger"], opts["gc"]):
        cell = {
            "arch": arch,
            "method": method,
            "liger": liger,
            "gc": gc,
            "seq_len": opts["seq_len"],
            "batch": opts["batch"],
            "steps": opts["steps"],
            "warmup": opts["warmup"],
            "gpus": opts["gpus"],
            "peak_tflops": opts["peak_tflops"],
        }
        skip = {**cell, "status": "skipped", "error": no_liger}
        result = skip if liger and no_liger else _run_cell(cell, opts)
        result["predicted_peak_bytes"] = predicted_peak_bytes(cell)
        cells.append(result)
        print(_row(result), flush=True)
    return {"cells": cells}


def _gib(n: int | None) -> str:
    return f"{n / 2**30:.1f}" if n else "n/a"


def _row(c: dict[str, Any]) -> str:
    head = f"| {c['arch']} | {c['method']} | {'on' if c['liger'] else 'off'} | {'on' if c['gc'] else 'off'} |"
    if c.get("status") != "ok":
        return f"{head} {c.get('status')} | | | {_gib(c.get('predicted_peak_bytes'))} | {c.get('error', '')[:120]} |"
    tps = f"{c['tokens_per_s_per_gpu']:,.0f}" if c.get("tokens_per_s_per_gpu") else "n/a"
    mfu = f"{c['mfu']:.1%}" if c.get("mfu") is not None else "n/a"
    note = f"{c['device']}, {c['attn']}" + (f", {c['sharded']} x{c['world_size']}" if c.get("sharded") else "")
    return f"{head} {tps} | {mfu} | {_gib(c['peak_memory_bytes'])} | {_gib(c.get('predicted_peak_bytes'))} | {note} |"


def report(r: dict[str, Any]) -> list[str]:
    """A Markdown table, one row per cell."""
    return [
        "| arch | method | Liger | grad ckpt | tokens/s/GPU | MFU | peak GiB/GPU | predicted GiB | notes |",
        "|---|---|---|---|---|---|---|---|---|",
        *(_row(c) for c in r["cells"]),
    ]
