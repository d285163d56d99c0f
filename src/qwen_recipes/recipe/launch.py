"""The one description of a launch: processes, nodes, sharding and offload, read without importing torch.

Three sources, in order: the recipe's own `deepspeed:` / `fsdp:` keys (HF Trainer style); the environment that
`accelerate launch` / torchrun set for their workers (accelerate 1.15, `accelerate/utils/launch.py`:
WORLD_SIZE, LOCAL_WORLD_SIZE, ACCELERATE_USE_DEEPSPEED, ACCELERATE_DEEPSPEED_CONFIG_FILE,
ACCELERATE_DEEPSPEED_ZERO_STAGE, ACCELERATE_DEEPSPEED_OFFLOAD_{OPTIMIZER,PARAM}_DEVICE, ACCELERATE_USE_FSDP,
FSDP_VERSION, FSDP_OFFLOAD_PARAMS, FSDP_RESHARD_AFTER_FORWARD, FSDP_ACTIVATION_CHECKPOINTING,
ACCELERATE_USE_PARALLELISM_CONFIG, PARALLELISM_CONFIG_CP_SIZE); and, when planning a run that has not started
(`--dry-run`, `estimate`), the accelerate config file the recipe names in `accelerate_config`. Launch checks,
the estimate, `train.py`, the run report and the card all read this one description.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from qwen_recipes.recipe.core import Recipe


@dataclass
class Launch:
    """What the run is (or will be) launched with, as far as can be known before loading anything."""

    world_size: int = 1  # processes in the whole run (GPUs on a GPU run)
    local_world_size: int = 1  # processes on this node
    num_machines: int = 1
    zero_stage: int | None = None  # DeepSpeed ZeRO stage, None without DeepSpeed
    ds_source: str = ""  # where the DeepSpeed setting came from (recipe key, env var, config file)
    ds_config: dict[str, Any] | None = None
    offload_optimizer: str | None = None  # "cpu"/"nvme" when ZeRO offloads the optimizer
    offload_param: str | None = None
    ds_has_optimizer: bool = False  # the JSON names its own optimizer: the recipe's `optim` is ignored
    fsdp: bool = False
    fsdp_source: str = ""
    fsdp_version: int | None = None
    fsdp_offload: bool = False
    fsdp_reshard: bool = True  # FULL_SHARD (weights sharded); False is SHARD_GRAD_OP
    fsdp_activation_checkpointing: bool = False
    cp_size: int = 1  # context-parallel degree (accelerate parallelism_config)
    source: str = "single process"  # what the description was read from

    @property
    def engine(self) -> str | None:
        """'deepspeed', 'fsdp' or None (plain DDP / one process)."""
        return "deepspeed" if self.ds_source else "fsdp" if self.fsdp else None

    @property
    def sharded_weights(self) -> bool:
        """Whether the weights themselves are split across ranks (ZeRO-3 or FSDP full shard)."""
        return self.zero_stage == 3 or (self.fsdp and self.fsdp_reshard)

    @property
    def shard_stage(self) -> int:
        """What is sharded, as a ZeRO stage: 0 nothing, 1 optimizer, 2 + gradients, 3 + weights (FSDP: 2 or 3)."""
        if self.fsdp:
            return 3 if self.fsdp_reshard else 2
        return self.zero_stage or 0

    @property
    def offloads_params(self) -> bool:
        """Whether weights live in CPU memory between uses."""
        return bool(self.offload_param or self.fsdp_offload)

    @property
    def offloads_optimizer(self) -> bool:
        """Whether optimizer states live in CPU memory."""
        return bool(self.offload_optimizer or self.fsdp_offload)


def _true(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def _find(name: str, anchors: list[Path]) -> Path | None:
    """A relative config path as launched from the repository root: try the cwd, then each anchor's ancestors."""
    path = Path(name)
    if path.is_absolute():
        return path if path.is_file() else None
    for base in [Path.cwd()] + [p for a in anchors for p in [a, *a.parents]]:
        if (base / path).is_file():
            return base / path
    return None


def _read_ds_config(value: Any, where: str, anchors: list[Path], problems: list[str]) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    path = _find(str(value), anchors)
    if path is None:
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


def accelerate_env(recipe: Recipe, anchors: list[Path], problems: list[str]) -> dict[str, str]:
    """The environment `accelerate launch --config_file <recipe's accelerate_config>` would give its workers."""
    name = recipe.get("accelerate_config")
    path = _find(str(name), anchors) if name else None
    if path is None:
        return {}
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        problems.append(f"{recipe.where('accelerate_config')}: {path} is not valid YAML ({e})")
        return {}
    env = {"WORLD_SIZE": str(cfg.get("num_processes") or 1), "ACCELERATE_CONFIG_FILE": str(path)}
    env["NUM_MACHINES"] = str(cfg.get("num_machines") or 1)
    kind = str(cfg.get("distributed_type", "")).upper()
    if kind == "DEEPSPEED":
        ds = cfg.get("deepspeed_config") or {}
        env["ACCELERATE_USE_DEEPSPEED"] = "true"
        if ds.get("deepspeed_config_file"):
            found = _find(ds["deepspeed_config_file"], [path.parent, *anchors])
            env["ACCELERATE_DEEPSPEED_CONFIG_FILE"] = str(found or ds["deepspeed_config_file"])
        else:
            env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] = str(ds.get("zero_stage", 2))
            env["ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"] = str(ds.get("offload_optimizer_device", "none"))
            env["ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE"] = str(ds.get("offload_param_device", "none"))
    elif kind == "FSDP":
        f = cfg.get("fsdp_config") or {}
        env["ACCELERATE_USE_FSDP"] = "true"
        env["FSDP_VERSION"] = str(f.get("fsdp_version", 1))
        env["FSDP_OFFLOAD_PARAMS"] = str(f.get("fsdp_offload_params", False))
        strategy = str(f.get("fsdp_sharding_strategy", "FULL_SHARD")).upper()
        env["FSDP_RESHARD_AFTER_FORWARD"] = str(
            bool(f.get("fsdp_reshard_after_forward", True)) and "GRAD_OP" not in strategy
        )
        env["FSDP_ACTIVATION_CHECKPOINTING"] = str(f.get("fsdp_activation_checkpointing", False))
    pc = cfg.get("parallelism_config") or {}
    if pc.get("parallelism_config_cp_size"):
        env["ACCELERATE_USE_PARALLELISM_CONFIG"] = "true"
        env["PARALLELISM_CONFIG_CP_SIZE"] = str(pc["parallelism_config_cp_size"])
    return env


class _NoRecipe:
    path = None

    def get(self, key: str) -> Any:
        return None

    def where(self, key: str) -> str:
        return "recipe"


def describe_launch(
    recipe: Recipe | None, env: dict[str, str] | None = None, planned: bool = False, problems: list[str] | None = None
) -> Launch:
    """The launch of a recipe: its keys, the launcher's environment, and (when `planned`) its accelerate config.

    `planned=True` describes the launch the recipe is meant for when no launcher has started this process
    (`--dry-run`, `qwen-recipes estimate`): the recipe's `accelerate_config` file stands in for the environment.
    """
    env = dict(os.environ if env is None else env)
    problems = [] if problems is None else problems
    if recipe is None:  # only the environment is known (a bare Trainer callback, a test)
        recipe = _NoRecipe()
    anchors = [Path(recipe.path).parent] if getattr(recipe, "path", None) else []
    launched = "WORLD_SIZE" in env or any(k.startswith("ACCELERATE_USE_") for k in env)
    launch = Launch(source="environment" if launched else "single process")
    if planned and not launched:
        planned_env = accelerate_env(recipe, anchors, problems)
        if planned_env:
            env = {**env, **planned_env}
            launch.source = f"accelerate config {recipe.get('accelerate_config')}"
    launch.world_size = max(1, int(env.get("WORLD_SIZE") or 1))
    launch.num_machines = max(1, int(env.get("NUM_MACHINES") or 1))
    launch.local_world_size = max(1, int(env.get("LOCAL_WORLD_SIZE") or -(-launch.world_size // launch.num_machines)))

    ds_value = recipe.get("deepspeed")
    if ds_value:
        launch.ds_source = f"deepspeed={ds_value!r}" if not isinstance(ds_value, dict) else "deepspeed: {...}"
        launch.ds_config = _read_ds_config(ds_value, recipe.where("deepspeed"), anchors, problems)
    elif _true(env.get("ACCELERATE_USE_DEEPSPEED")):
        file = env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
        launch.ds_source = f"accelerate DeepSpeed config {file}" if file else "accelerate launch --use_deepspeed"
        launch.ds_config = _read_ds_config(file, "ACCELERATE_DEEPSPEED_CONFIG_FILE", anchors, problems) if file else {}
        if not file:  # without a JSON file, accelerate passes the stage and offload devices as env vars
            launch.zero_stage = int(env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2"))
            launch.offload_optimizer = _device({"device": env.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE")})
            launch.offload_param = _device({"device": env.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE")})
    if launch.ds_config:
        zero = launch.ds_config.get("zero_optimization") or {}
        launch.zero_stage = int(zero.get("stage", 0))
        launch.offload_optimizer = _device(zero.get("offload_optimizer"))
        launch.offload_param = _device(zero.get("offload_param"))
        launch.ds_has_optimizer = "optimizer" in launch.ds_config

    fsdp_value = recipe.get("fsdp")
    fsdp_config = recipe.get("fsdp_config") if isinstance(recipe.get("fsdp_config"), dict) else {}
    if fsdp_value:
        launch.fsdp, launch.fsdp_source = True, f"fsdp={fsdp_value!r}"
        options = str(fsdp_value).split()
        launch.fsdp_offload = "offload" in options or bool(fsdp_config.get("offload_params"))
        launch.fsdp_reshard = (
            "shard_grad_op" not in options and fsdp_config.get("reshard_after_forward", True) is not False
        )
        launch.fsdp_version = int(fsdp_config.get("version", 1))
        launch.fsdp_activation_checkpointing = bool(fsdp_config.get("activation_checkpointing"))
    elif _true(env.get("ACCELERATE_USE_FSDP")):
        launch.fsdp, launch.fsdp_source = True, "accelerate FSDP config (ACCELERATE_USE_FSDP=true)"
        launch.fsdp_version = int(env.get("FSDP_VERSION", "1"))
        launch.fsdp_offload = _true(env.get("FSDP_OFFLOAD_PARAMS"))
        strategy = env.get("FSDP_SHARDING_STRATEGY", "FULL_SHARD").upper()  # FSDP1 name or number
        launch.fsdp_reshard = env.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() not in ("false", "0", "no") and (
            strategy not in ("SHARD_GRAD_OP", "2", "NO_SHARD", "3")
        )
        launch.fsdp_activation_checkpointing = _true(env.get("FSDP_ACTIVATION_CHECKPOINTING"))
    if _true(env.get("ACCELERATE_USE_PARALLELISM_CONFIG")):
        launch.cp_size = int(env.get("PARALLELISM_CONFIG_CP_SIZE", "1") or 1)
    return launch
