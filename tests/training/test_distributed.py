"""Scale-out on CPU: 2-process DDP / DeepSpeed ZeRO-2/3 (+offload) runs give the losses of one process with the
same global batch and save loadable weights; every shipped accelerate/DeepSpeed config parses and fits its recipes.

Multi-process runs use `accelerate launch --multi_gpu` (MULTI_CPU over gloo; `--cpu` would start one process) or
torchrun, the tiny model, max_length 64 and 3 steps. FSDP silently falls back to DDP on CPU, so FSDP2 is checked
for validity and wrap-class resolution only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, chat_rows, report, train, write_jsonl, write_recipe

BIN = Path(sys.executable).parent
STEPS = 3
# Same global batch: 1 process x 2 rows vs 2 processes x 1 row. No LoRA dropout, no packing: the only
# difference left between the runs is how the batch is split, so the losses agree to float rounding.
COMMON = {
    "per_device_train_batch_size": 1,
    "max_steps": STEPS,
    "packing": False,
    "lora_dropout": 0.0,
    "seed": 7,
}
FULL = {"method": "full", "learning_rate": 1.0e-3}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("data") / "chat.jsonl", chat_rows(16))


def make_recipe(tmp_path: Path, data: Path, **values) -> Path:
    return write_recipe(tmp_path / "r.yaml", datasets=[str(data)], **{**COMMON, **values})


def single_process_losses(tmp_path: Path, data: Path, **values) -> list[list[float]]:
    """The reference: one process, per-device batch 2 (= the global batch of 2 ranks x 1)."""
    recipe = make_recipe(tmp_path / "single", data, **values)
    assert train(recipe, "--per_device_train_batch_size", "2") == 0
    return report(tmp_path / "single" / "out")["loss_curve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(recipe: Path, config: str | None = None, torchrun: bool = False) -> Path:
    """Run train.py on 2 CPU processes; returns the output folder (fails with the log tail on error)."""
    port = str(free_port())
    if torchrun:
        cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", port]
    else:
        cmd = [str(BIN / "accelerate"), "launch", "--num_processes", "2", "--main_process_port", port]
        cmd += ["--config_file", str(ROOT / f"configs/accelerate/{config}.yaml")] if config else ["--multi_gpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [*cmd, str(ROOT / "train.py"), str(recipe)],
        cwd=ROOT,  # the accelerate configs name configs/deepspeed/*.json relative to the repository root
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    (recipe.parent / "launch.log").write_text(proc.stdout + proc.stderr)
    return recipe.parent / "out"


def assert_same_losses(run: Path, reference: list[list[float]], tol: float) -> None:
    rep = report(run)
    assert rep["hardware"]["world_size"] == 2
    assert [step for step, _ in rep["loss_curve"]] == [step for step, _ in reference] == list(range(1, STEPS + 1))
    for (step, got), (_, want) in zip(rep["loss_curve"], reference, strict=True):
        assert got == pytest.approx(want, abs=tol), (step, rep["loss_curve"], reference)
    assert rep["loss_curve"][-1][1] < rep["loss_curve"][0][1] - 0.05  # and it learned something


def load_adapter(out: Path):
    """The saved adapter on a fresh tiny base; returns (peft model, adapter state dict)."""
    from peft import PeftModel
    from safetensors.torch import load_file

    from qwen_recipes.testbed import tiny_model

    state = load_file(out / "adapter_model.safetensors")
    model = PeftModel.from_pretrained(tiny_model("qwen3"), str(out))
    return model, state


# --------------------------------------------------------------------------- DDP


def assert_one_quiet_log(run_dir):
    """One data line for the run, not one per rank; no library noise (issue 17 #16)."""
    log = (run_dir / "launch.log").read_text()
    assert sum(line.startswith("data: ") for line in log.splitlines()) == 1, log[-3000:]
    assert "world size 2" in log
    for noise in ("find_unused_parameters", "Setting accelerator to CPU", "is deprecated", "ensure_weight_tying"):
        assert noise not in log, noise


# Slow: DDP is covered by the torchrun run below and LoRA across processes by the ZeRO-3 run.
@pytest.mark.slow
@pytest.mark.distributed
def test_ddp_lora_matches_one_process(tmp_path, data):
    reference = single_process_losses(tmp_path, data)
    out = launch(make_recipe(tmp_path / "ddp", data))
    assert_same_losses(out, reference, tol=1e-4)
    assert report(out)["tokens_seen"] == report(tmp_path / "single" / "out")["tokens_seen"]
    assert_one_quiet_log(tmp_path / "ddp")


@pytest.mark.distributed
def test_ddp_full_through_torchrun_matches_one_process(tmp_path, data):
    reference = single_process_losses(tmp_path, data, **FULL)
    out = launch(make_recipe(tmp_path / "ddp", data, **FULL), torchrun=True)
    assert_same_losses(out, reference, tol=1e-4)
    assert report(out)["tokens_seen"] == report(tmp_path / "single" / "out")["tokens_seen"]
    assert (out / "model.safetensors").exists()
    assert_one_quiet_log(tmp_path / "ddp")


# --------------------------------------------------------------------------- DeepSpeed ZeRO


# Slow: DeepSpeed with LoRA is covered by the ZeRO-3 run (stage 3 partitions more than stage 2).
@pytest.mark.slow
@pytest.mark.distributed
def test_zero2_lora_matches_one_process_and_saves_adapter(tmp_path, data):
    pytest.importorskip("deepspeed")
    reference = single_process_losses(tmp_path, data)
    out = launch(make_recipe(tmp_path / "z2", data), config="zero2")
    assert_same_losses(out, reference, tol=1e-4)
    _, state = load_adapter(out)
    lora_b = [v for k, v in state.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # trained (B starts at zero)


@pytest.mark.distributed
def test_zero3_lora_with_modules_to_save_matches_and_saves_whole_tensors(tmp_path, data):
    pytest.importorskip("deepspeed")
    extra = {"lora_modules_to_save": ["lm_head"]}
    reference = single_process_losses(tmp_path, data, **extra)
    out = launch(make_recipe(tmp_path / "z3", data, **extra), config="zero3")
    assert_same_losses(out, reference, tol=1e-4)
    _, state = load_adapter(out)
    # ZeRO-3 partitions every weight: a save that forgot to gather would write empty (0-element) tensors.
    assert state["base_model.model.lm_head.weight"].shape == (151936, 64)
    assert all(v.numel() > 0 for v in state.values())
    _, single = load_adapter(tmp_path / "single" / "out")
    for key, value in single.items():
        assert state[key].allclose(value, atol=1e-4), key


# Slow: ZeRO-3 is covered by the LoRA run above; this one also builds DeepSpeed's CPU Adam (a minute, once).
@pytest.mark.slow
@pytest.mark.distributed
def test_zero3_offload_full_matches_one_process_and_saves_loadable_model(tmp_path, data):
    pytest.importorskip("deepspeed")
    from transformers import AutoModelForCausalLM

    reference = single_process_losses(tmp_path, data, **FULL)
    out = launch(make_recipe(tmp_path / "z3o", data, **FULL), config="zero3_offload")
    # DeepSpeedCPUAdam (offloaded step) vs torch AdamW: same maths, different kernels.
    assert_same_losses(out, reference, tol=2e-3)
    model = AutoModelForCausalLM.from_pretrained(out)
    ref = AutoModelForCausalLM.from_pretrained(tmp_path / "single" / "out")
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        assert p.shape == q.shape and p.numel() > 0, name
        assert p.allclose(q, atol=2e-3), name


# Slow: QLoRA is covered by tests/training/test_train.py and ZeRO-3 by the runs above.
@pytest.mark.slow
@pytest.mark.distributed
def test_qlora_under_zero3_trains(tmp_path, data):
    pytest.importorskip("deepspeed")
    pytest.importorskip("bitsandbytes")
    recipe = make_recipe(
        tmp_path / "q3",
        data,
        base=[str(ROOT / "recipes/_base/sft.yaml"), str(ROOT / "recipes/_base/qlora.yaml")],
        lora_dropout=0.0,
    )
    out = launch(recipe, config="zero3")  # CPU bitsandbytes + ZeRO-3 over gloo trains: storage dtype = compute dtype
    curve = report(out)["loss_curve"]
    assert len(curve) == STEPS and curve[-1][1] < curve[0][1] - 0.05, curve
    assert json.loads((out / "adapter_config.json").read_text())["peft_type"] == "LORA"


# --------------------------------------------------------------------------- shipped configs (fast)

ACCELERATE_CONFIGS = sorted((ROOT / "configs/accelerate").glob("*.yaml"))
REQUIRED = {"single_gpu", "ddp", "fsdp2", "zero2", "zero3", "zero3_offload"}


def test_every_accelerate_config_parses_and_points_at_an_existing_deepspeed_json():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    assert {p.stem for p in ACCELERATE_CONFIGS} >= REQUIRED
    for path in ACCELERATE_CONFIGS:
        cfg = load_config_from_file(str(path))  # accelerate's own parser (raises on unknown keys)
        if path.stem.startswith("zero"):
            assert cfg.distributed_type == DistributedType.DEEPSPEED, path
            ds_file = ROOT / cfg.deepspeed_config["deepspeed_config_file"]
            ds = json.loads(ds_file.read_text())
            assert ds_file.stem == path.stem
            assert ds["zero_optimization"]["stage"] == (2 if path.stem == "zero2" else 3)
            assert ("offload_optimizer" in ds["zero_optimization"]) == path.stem.endswith("offload")
            # Batch sizes, clipping and precision come from the recipe through the HF Trainer.
            for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
                assert ds[key] == "auto", (ds_file, key)
            assert ds["bf16"]["enabled"] == "auto"
        elif path.stem.startswith("fsdp2"):
            assert cfg.distributed_type == DistributedType.FSDP
            assert cfg.fsdp_config["fsdp_version"] == 2
            assert cfg.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
            assert "fsdp_transformer_layer_cls_to_wrap" not in cfg.fsdp_config  # read from the model
            assert cfg.fsdp_config["fsdp_cpu_ram_efficient_loading"] and cfg.fsdp_config["fsdp_sync_module_states"]
        elif path.stem == "ddp":
            assert cfg.distributed_type == DistributedType.MULTI_GPU
        elif path.stem == "single_gpu":
            assert cfg.distributed_type == DistributedType.NO and cfg.num_processes == 1


def test_every_deepspeed_json_is_used_by_an_accelerate_config():
    named = {
        yaml.safe_load(p.read_text()).get("deepspeed_config", {}).get("deepspeed_config_file")
        for p in ACCELERATE_CONFIGS
    }
    for path in (ROOT / "configs/deepspeed").glob("*.json"):
        json.loads(path.read_text())
        assert f"configs/deepspeed/{path.name}" in named, path


def test_every_recipe_names_an_existing_accelerate_config_that_fits_it():
    from helpers import accelerate_env

    from qwen_recipes.recipe import load_recipe
    from qwen_recipes.recipe.checks import check_launch

    # Globbed now: other engineers add recipes concurrently.
    recipes = [p for p in sorted((ROOT / "recipes").rglob("*.yaml")) if "_base" not in p.parts]
    checked = 0
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        for path in recipes:
            raw = yaml.safe_load(path.read_text()) or {}
            name = raw.get("accelerate_config")
            if not name:
                continue
            config = ROOT / name
            assert config.is_file(), f"{path}: accelerate_config {name!r} does not exist"
            assert config.parent == ROOT / "configs/accelerate", f"{path}: {name!r} is not under configs/accelerate/"
            problems = check_launch(load_recipe(path), env=accelerate_env(config.stem))
            assert problems == [], f"{path} under {name}: {problems}"
            checked += 1
    finally:
        os.chdir(cwd)
    assert checked >= 1


@pytest.mark.parametrize(("family", "layer"), [("qwen3", "Qwen3DecoderLayer"), ("qwen2_5", "Qwen2DecoderLayer")])
def test_fsdp2_wraps_the_decoder_layer_class_read_from_the_model(family, layer):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from peft import LoraConfig, get_peft_model

    from qwen_recipes.testbed import tiny_model

    cfg = yaml.safe_load((ROOT / "configs/accelerate/fsdp2.yaml").read_text())["fsdp_config"]
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=cfg["fsdp_version"], auto_wrap_policy=cfg["fsdp_auto_wrap_policy"].lower()
    )
    model = tiny_model(family)
    assert set(model._no_split_modules) == {layer}
    for candidate in (model, get_peft_model(tiny_model(family), LoraConfig(target_modules="all-linear"))):
        policy = fsdp2_prepare_auto_wrap_policy(plugin, candidate)
        wrapped = [type(m).__name__ for m in candidate.modules() if policy(m)]
        assert wrapped == [layer] * model.config.num_hidden_layers


def test_slurm_script_starts_one_launcher_per_node_with_its_rank(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "launches.log"
    # srun runs the task once per node with its SLURM_NODEID; accelerate records its arguments.
    (fake / "srun").write_text(
        '#!/bin/bash\nshift\nfor i in $(seq 0 $((SLURM_NNODES - 1))); do SLURM_NODEID=$i "$@"; done\n'
    )
    (fake / "scontrol").write_text("#!/bin/bash\necho node-a\necho node-b\n")
    (fake / "accelerate").write_text(f'#!/bin/bash\necho "$*" >> {log}\n')
    for f in fake.iterdir():
        f.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fake}:{BIN}:{os.environ['PATH']}",
        "SLURM_NNODES": "2",
        "SLURM_GPUS_ON_NODE": "8",
        "SLURM_JOB_NODELIST": "node-[a-b]",
        "SLURM_SUBMIT_DIR": str(ROOT),
    }
    recipe = "recipes/s1/s1.1-32b-full-16xh100.yaml"
    proc = subprocess.run(
        ["bash", str(ROOT / "configs/slurm/train.slurm"), recipe, "--max_steps", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    for rank, line in enumerate(lines):
        assert line == (
            "launch --config_file configs/accelerate/fsdp2.yaml --num_machines 2 --num_processes 16 "
            f"--machine_rank {rank} --main_process_ip node-a --main_process_port 29500 train.py {recipe} --max_steps 5"
        )
