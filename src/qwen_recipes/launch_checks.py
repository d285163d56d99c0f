"""Refuse recipe x launcher combinations that cannot work, before any weight or row is loaded.

The launcher is read from two places: the recipe's own `deepspeed:` / `fsdp:` keys (HF Trainer style) and the
environment `accelerate launch` sets for its workers (accelerate 1.15, `accelerate/utils/launch.py`):
ACCELERATE_USE_DEEPSPEED, ACCELERATE_DEEPSPEED_CONFIG_FILE, ACCELERATE_DEEPSPEED_ZERO_STAGE,
ACCELERATE_DEEPSPEED_OFFLOAD_{OPTIMIZER,PARAM}_DEVICE, ACCELERATE_USE_FSDP, FSDP_VERSION, FSDP_OFFLOAD_PARAMS,
FSDP_ACTIVATION_CHECKPOINTING, ACCELERATE_USE_PARALLELISM_CONFIG and PARALLELISM_CONFIG_CP_SIZE.
Each problem names the key, its value and the fix; the caller raises them once as a RecipeError.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# 8-bit/paged optimizers (bitsandbytes, torchao) of transformers' `OptimizerNames`: they need their own GPU kernels.
BNB_OPTIMIZER_MARKERS = ("8bit", "paged_", "bnb", "lion_32bit", "ademamix")


@dataclass
class Launch:
    """What the run will be sharded with, as far as can be known before loading anything."""

    zero_stage: int | None = None  # DeepSpeed ZeRO stage, None without DeepSpeed
    ds_source: str = ""  # where the DeepSpeed setting came from (recipe key or env var + file)
    ds_config: dict[str, Any] | None = None
    offload_optimizer: str | None = None  # "cpu"/"nvme" when ZeRO offloads the optimizer
    offload_param: str | None = None
    ds_has_optimizer: bool = False  # the JSON names its own optimizer: the recipe's `optim` is ignored
    fsdp: bool = False
    fsdp_source: str = ""
    fsdp_version: int | None = None
    fsdp_offload: bool = False
    fsdp_activation_checkpointing: bool = False
    cp_size: int = 1  # context-parallel degree (accelerate parallelism_config)

    @property
    def sharded_weights(self) -> bool:
        """Whether the weights themselves are split across ranks (ZeRO-3 or FSDP)."""
        return self.zero_stage == 3 or self.fsdp


def _true(value: str | None) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def _read_ds_config(value: Any, where: str, problems: list[str]) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    path = Path(str(value))
    if not path.is_file():
        problems.append(
            f"{where}: DeepSpeed config file {str(value)!r} not found; run from the repository root or fix the path"
        )
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        problems.append(f"{where}: {path} is not valid JSON ({e.msg} at line {e.lineno})")
        return None


def _device(section: Any) -> str | None:
    device = section.get("device") if isinstance(section, dict) else None
    return None if device in (None, "none") else str(device)


def detect_launch(recipe: Any, env: dict[str, str] | None = None, problems: list[str] | None = None) -> Launch:
    """The sharding the run will get, from the recipe's `deepspeed`/`fsdp` keys and accelerate's env vars."""
    env = dict(os.environ if env is None else env)
    problems = [] if problems is None else problems
    values = recipe.values
    launch = Launch()

    ds_value = values.get("deepspeed")
    if ds_value:
        launch.ds_source = f"deepspeed={ds_value!r}" if not isinstance(ds_value, dict) else "deepspeed: {...}"
        launch.ds_config = _read_ds_config(ds_value, f"{recipe.origin.get('deepspeed', 'recipe')}", problems)
    elif _true(env.get("ACCELERATE_USE_DEEPSPEED")):
        file = env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
        launch.ds_source = f"accelerate DeepSpeed config {file}" if file else "accelerate launch --use_deepspeed"
        launch.ds_config = _read_ds_config(file, "ACCELERATE_DEEPSPEED_CONFIG_FILE", problems) if file else {}
        # Without a JSON file, accelerate passes the stage and offload devices as env vars.
        if not file:
            launch.zero_stage = int(env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2"))
            launch.offload_optimizer = _device({"device": env.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE")})
            launch.offload_param = _device({"device": env.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE")})
    if launch.ds_config:
        zero = launch.ds_config.get("zero_optimization") or {}
        launch.zero_stage = int(zero.get("stage", 0))
        launch.offload_optimizer = _device(zero.get("offload_optimizer"))
        launch.offload_param = _device(zero.get("offload_param"))
        launch.ds_has_optimizer = "optimizer" in launch.ds_config

    fsdp_value = values.get("fsdp")
    fsdp_config = values.get("fsdp_config") if isinstance(values.get("fsdp_config"), dict) else {}
    if fsdp_value:
        launch.fsdp, launch.fsdp_source = True, f"fsdp={fsdp_value!r}"
        launch.fsdp_offload = "offload" in str(fsdp_value).split() or bool(fsdp_config.get("offload_params"))
        launch.fsdp_version = int(fsdp_config.get("version", 1))
        launch.fsdp_activation_checkpointing = bool(fsdp_config.get("activation_checkpointing"))
    elif _true(env.get("ACCELERATE_USE_FSDP")):
        launch.fsdp, launch.fsdp_source = True, "accelerate FSDP config (ACCELERATE_USE_FSDP=true)"
        launch.fsdp_version = int(env.get("FSDP_VERSION", "1"))
        launch.fsdp_offload = _true(env.get("FSDP_OFFLOAD_PARAMS"))
        launch.fsdp_activation_checkpointing = _true(env.get("FSDP_ACTIVATION_CHECKPOINTING"))
    if _true(env.get("ACCELERATE_USE_PARALLELISM_CONFIG")):
        launch.cp_size = int(env.get("PARALLELISM_CONFIG_CP_SIZE", "1") or 1)
    return launch


def _is_bnb_optimizer(optim: str) -> bool:
    return any(marker in optim for marker in BNB_OPTIMIZER_MARKERS)


def check_launch(recipe: Any, env: dict[str, str] | None = None) -> list[str]:
    """Every reason this recipe cannot run under the launcher it was started with (empty when it can)."""
    problems: list[str] = []
    launch = detect_launch(recipe, env, problems)
    values = recipe.values
    where = recipe.origin.get
    method = values.get("method", "lora")
    sharding = launch.ds_source if launch.zero_stage == 3 else launch.fsdp_source
    engine = "ZeRO-3" if launch.zero_stage == 3 else "FSDP"

    if launch.ds_source and launch.fsdp:
        problems.append(
            f"{launch.ds_source} and {launch.fsdp_source}: DeepSpeed and FSDP are both on; "
            "pick one accelerate config (configs/accelerate/zero3.yaml or fsdp2.yaml) and drop the other"
        )

    # Sharded 4-bit weights: every rank must hold flat tensors of one dtype (peft#1972, alignment-handbook#42).
    if method == "qlora" and launch.sharded_weights:
        dtype = values.get("dtype")
        storage = values.get("bnb_4bit_quant_storage")
        if storage and dtype in (None, "auto"):
            problems.append(
                f"{where('bnb_4bit_quant_storage', 'recipe')}: bnb_4bit_quant_storage={storage!r} under {engine} "
                f"({sharding}) needs an explicit matching compute dtype; set dtype: {storage}"
            )
        elif storage and storage != dtype:
            problems.append(
                f"{where('bnb_4bit_quant_storage', 'recipe')}: bnb_4bit_quant_storage={storage!r} differs from "
                f"dtype={dtype!r}; {engine} ({sharding}) shards the 4-bit weights only when they are stored in the "
                f"compute dtype: set bnb_4bit_quant_storage: {dtype} (or remove it, it defaults to dtype)"
            )
        if launch.offload_param or launch.fsdp_offload:
            problems.append(
                f"method=qlora with parameter offload ({sharding}): 4-bit bitsandbytes weights cannot be offloaded "
                "to CPU; use configs/accelerate/zero3.yaml (no offload) or method: lora"
            )

    # A device_map pins whole weights to one GPU, which contradicts ZeRO-3/FSDP placing the shards.
    init_kwargs = values.get("model_init_kwargs")
    if launch.sharded_weights and isinstance(init_kwargs, dict) and init_kwargs.get("device_map") is not None:
        problems.append(
            f"{where('model_init_kwargs', 'recipe')}: model_init_kwargs.device_map={init_kwargs['device_map']!r} "
            f"under {engine} ({sharding}); remove device_map, the sharding engine places the weights"
        )

    optim = str(values.get("optim") or "")
    offloaded = launch.offload_optimizer or (launch.fsdp_offload and "FSDP offload")
    if optim and _is_bnb_optimizer(optim) and offloaded:
        problems.append(
            f"{where('optim', 'recipe')}: optim={optim!r} (an 8-bit/paged optimizer) with optimizer "
            f"offload to {offloaded} ({launch.ds_source or launch.fsdp_source}): the offloaded step runs on the CPU "
            "(DeepSpeedCPUAdam); use optim: adamw_torch, or drop offload (configs/accelerate/zero3.yaml)"
        )
    elif optim and _is_bnb_optimizer(optim) and launch.ds_has_optimizer:
        problems.append(
            f"{where('optim', 'recipe')}: optim={optim!r} is ignored: the DeepSpeed config ({launch.ds_source}) "
            "defines its own `optimizer`; remove optim from the recipe or the optimizer block from the JSON"
        )

    if launch.fsdp and launch.fsdp_activation_checkpointing and values.get("gradient_checkpointing"):
        problems.append(
            f"{where('gradient_checkpointing', 'recipe')}: gradient_checkpointing=true and FSDP's own "
            f"activation_checkpointing ({launch.fsdp_source}) are both on; the Trainer refuses both: "
            "set gradient_checkpointing: false or fsdp_activation_checkpointing: false"
        )

    if launch.cp_size > 1:
        if values.get("packing"):
            problems.append(
                f"{where('packing', 'recipe')}: packing=true with context parallelism (cp_size={launch.cp_size}): "
                "CP drops the block-diagonal mask, so packed documents would see each other; set packing: false"
            )
        attn = values.get("attn_implementation")
        if attn not in (None, "sdpa"):
            problems.append(
                f"{where('attn_implementation', 'recipe')}: attn_implementation={attn!r} with context parallelism "
                f"(cp_size={launch.cp_size}): torch CP supports only sdpa; set attn_implementation: sdpa"
            )
    return problems
