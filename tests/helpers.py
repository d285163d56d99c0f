"""Shared helpers for tests that run the engine: write recipes/data and call train.py in-process."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def chat_rows(n: int = 8) -> list[dict[str, Any]]:
    """Small deterministic arithmetic conversations (half of them with reasoning)."""
    rows = []
    for i in range(n):
        a, b = 11 + i, 23 + 2 * i
        assistant: dict[str, Any] = {"role": "assistant", "content": f"The answer is {a + b}."}
        if i % 2 == 0:
            assistant["reasoning_content"] = f"{a} plus {b} is {a + b}."
        rows.append({"messages": [{"role": "user", "content": f"What is {a} + {b}?"}, assistant]})
    return rows


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Write rows (dicts, or raw strings written as-is) as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def write_recipe(path: Path, **values: Any) -> Path:
    """A recipe file for the tiny offline model with fast test defaults, overridden by `values`."""
    recipe = {
        "base": [str(ROOT / "recipes/_base/sft.yaml"), str(ROOT / "recipes/_base/lora.yaml")],
        "model_name_or_path": "tiny:qwen3",
        "max_length": 64,
        "per_device_train_batch_size": 8,
        "max_steps": 4,
        "learning_rate": 1.0e-2,
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "save_strategy": "no",
        "warmup_steps": 0,
        "lr_scheduler_type": "constant",
        "output_dir": str(path.parent / "out"),
    }
    recipe.update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def train(recipe: Path, *args: str) -> int:
    """Run train.py's main in this process (shares imports; much faster than a subprocess)."""
    ns = runpy.run_path(str(ROOT / "train.py"), run_name="qwen_recipes_test")
    return ns["main"]([str(recipe), *args])


def report(output_dir: Path) -> dict[str, Any]:
    """The run report of an output folder."""
    return json.loads((output_dir / "run_report.json").read_text())


def losses(output_dir: Path) -> list[float]:
    """Logged training losses of a run, from the trainer state saved in the report's folder."""
    return [loss for _, loss in report(output_dir)["loss_curve"]]


BASE_ID = "Qwen/Qwen3-0.6B"


def make_output(
    root: Path,
    family: str = "qwen3",
    lora: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    report: dict[str, Any] | None = None,
    perturb: bool = True,
) -> Path:
    """A training output folder as the core engine writes it: adapter, tokenizer, resolved recipe, run report."""
    import torch
    from peft import LoraConfig, get_peft_model

    from qwen_recipes.testbed import build_tokenizer, save_tiny_checkpoint

    base = save_tiny_checkpoint(root / "base", family)
    out = root / "out"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    kwargs = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "task_type": "CAUSAL_LM", **(lora or {})}
    cfg = LoraConfig(**kwargs)
    peft_model = get_peft_model(model, cfg)
    if perturb:  # LoRA B starts at zero; make the adapter (and any saved modules) change the function
        torch.manual_seed(1)
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name or "modules_to_save" in name or "trainable_tokens" in name:
                    p.add_(0.05 * torch.randn_like(p))
    peft_model.save_pretrained(out)
    build_tokenizer(family).save_pretrained(out)
    values = {
        "task": "sft",
        "method": "lora",
        "model_name_or_path": str(base),
        "base_model_id": BASE_ID,
        "learning_rate": 2e-4,
        "lora_r": 4,
        "lora_alpha": 8,
        "max_length": 512,
        "description": "Tiny test recipe.",
        "datasets": [
            {"path": "simplescaling/s1K-1.1", "split": "train", "preprocess": "s1k_1.1"},
            {"path": str(root / "data" / "mine.jsonl"), "split": "train"},
        ],
    }
    values.update(recipe or {})
    (out / "recipe.resolved.yaml").write_text(yaml.safe_dump({k: v for k, v in values.items() if v is not None}))
    rep = {
        "recipe": "recipes/s1/qwen3_lora.yaml",
        "task": values["task"],
        "method": values["method"],
        "model_name_or_path": str(base),
        "base_model_id": values.get("base_model_id"),
        "started_at": "2025-01-01T00:00:00+00:00",
        "ended_at": "2025-01-01T00:30:00+00:00",
        "wall_seconds": 1800.0,
        "hardware": {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "device_count": 2, "world_size": 2},
        "tokens_seen": 123456,
        "tokens_seen_per_epoch": 123456,
        "loss_tokens_per_epoch": 45678,
        "loss_tokens_estimate": 45678,
        "steps": 40,
        "epochs": 1.0,
        "rows": {"used": 100, "skipped": {"overlong": 3}},
        "loss": {"first": 2.5, "final": 1.25, "min": 1.2},
        "peak_memory_bytes": 3 * 2**30,
        "segments": [{"started_at": "a", "ended_at": "b", "wall_seconds": 1800.0, "tokens": 1, "steps": 40}],
    }
    rep.update(report or {})
    (out / "run_report.json").write_text(json.dumps(rep))
    return out


def accelerate_env(config: str) -> dict[str, str]:
    """The environment `accelerate launch --config_file configs/accelerate/<config>.yaml` gives its workers."""
    import os

    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    argv = ["--config_file", str(ROOT / f"configs/accelerate/{config}.yaml"), "--num_processes", "2", "train.py"]
    args, defaults, mp_from_config = _validate_launch_command(launch_command_parser().parse_args(argv))
    if args.use_deepspeed:  # as accelerate's launch_command does before calling the DeepSpeed launcher
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        env = prepare_deepspeed_cmd_env(args)[1]
    else:
        env = prepare_multi_gpu_env(args)
    return {k: v for k, v in env.items() if k not in os.environ or os.environ[k] != v}


def corrupt_tensor_bytes(path: Path) -> None:
    """Overwrite the first tensor's bytes of a safetensors file with 0xFF (NaN in fp32/bf16); the size is unchanged."""
    raw = bytearray(path.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    start, end = next(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    raw[8 + n + start : 8 + n + end] = b"\xff" * (end - start)
    path.write_bytes(bytes(raw))


# The Hub id the tiny test base is published under, in a local stand-in of the Hugging Face cache: the claimed
# base's architecture is checked against the adapter's, and the pushed adapter must load by this id.
STANDIN = "qwen-recipes-test/tiny-qwen3"


def standin_cache(root: Path, base: Path, repo_id: str = STANDIN) -> Path:
    """A Hugging Face cache holding `base` as the snapshot of `repo_id` (what `hf download` would leave)."""
    import shutil

    repo = root / "hf_cache" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    shutil.copytree(base, repo / "snapshots" / ("0" * 40))
    return root / "hf_cache"


def standin_output(root: Path, **kwargs: Any) -> Path:
    """`make_output` whose base is recorded as STANDIN, with the stand-in cache beside it."""
    out = make_output(root, recipe={"base_model_id": STANDIN}, report={"base_model_id": STANDIN}, **kwargs)
    standin_cache(root, root / "base")
    return out


def copy_with_cache(out: Path, tmp_path: Path, monkeypatch: Any, name: str = "run") -> Path:
    """A private copy of an output folder made by `standin_output`, its stand-in cache made the Hub cache."""
    import shutil

    from huggingface_hub import constants

    root = Path(shutil.copytree(out.parent, tmp_path / name))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root / "hf_cache"))
    return root / "out"
