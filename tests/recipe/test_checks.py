"""check_launch: incompatible recipe x launcher combinations are refused before anything loads."""

from __future__ import annotations

import json

import pytest
from helpers import ROOT, accelerate_env, write_recipe

from qwen_recipes.recipe import load_recipe
from qwen_recipes.recipe.checks import check_launch
from qwen_recipes.recipe.launch import describe_launch

QLORA_BASE = [str(ROOT / "recipes/_base/sft.yaml"), str(ROOT / "recipes/_base/qlora.yaml")]


def recipe(tmp_path, **values):
    values.setdefault("datasets", ["unused.jsonl"])
    return load_recipe(write_recipe(tmp_path / "r.yaml", **values))


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    # The accelerate configs name configs/deepspeed/*.json relative to the repository root, as users launch.
    monkeypatch.chdir(ROOT)


def test_plain_run_and_default_qlora_under_zero3_pass(tmp_path):
    assert check_launch(recipe(tmp_path), env={}) == []
    qlora = recipe(tmp_path, base=QLORA_BASE)
    assert check_launch(qlora, env=accelerate_env("zero3")) == []
    assert check_launch(qlora, env=accelerate_env("fsdp2")) == []


def test_accelerate_configs_are_detected_from_the_real_launch_env():
    r = load_recipe(ROOT / "recipes/quickstart/tiny-qwen3-cpu.yaml")
    z3 = describe_launch(r, accelerate_env("zero3"))
    assert (z3.zero_stage, z3.offload_optimizer, z3.offload_param, z3.fsdp) == (3, None, None, False)
    off = describe_launch(r, accelerate_env("zero3_offload"))
    assert (off.zero_stage, off.offload_optimizer, off.offload_param, off.ds_has_optimizer) == (3, "cpu", "cpu", True)
    assert describe_launch(r, accelerate_env("zero2")).zero_stage == 2
    fsdp = describe_launch(r, accelerate_env("fsdp2"))
    assert (fsdp.fsdp, fsdp.fsdp_version, fsdp.fsdp_offload, fsdp.zero_stage) == (True, 2, False, None)
    ddp = describe_launch(r, accelerate_env("ddp"))
    assert (ddp.fsdp, ddp.zero_stage, ddp.sharded_weights) == (False, None, False)


def test_qlora_storage_dtype_must_match_compute_dtype_when_sharded(tmp_path):
    r = recipe(tmp_path, base=QLORA_BASE, dtype="bfloat16", bnb_4bit_quant_storage="float16")
    problems = check_launch(r, env=accelerate_env("zero3"))
    assert len(problems) == 1
    assert "bnb_4bit_quant_storage='float16' differs from dtype='bfloat16'" in problems[0]
    assert "set bnb_4bit_quant_storage: bfloat16" in problems[0]
    assert "r.yaml" in problems[0]  # names the file the key came from
    assert "differs from dtype" in check_launch(r, env=accelerate_env("fsdp2"))[0]
    # ZeRO-2 and DDP keep whole weights on every rank: any storage dtype works.
    assert check_launch(r, env=accelerate_env("zero2")) == []
    assert check_launch(r, env={}) == []


def test_qlora_storage_without_explicit_dtype_is_refused_under_sharding(tmp_path):
    r = recipe(tmp_path, base=QLORA_BASE, bnb_4bit_quant_storage="bfloat16")
    (problem,) = check_launch(r, env=accelerate_env("fsdp2"))
    assert "needs an explicit matching compute dtype; set dtype: bfloat16" in problem


def test_qlora_cannot_offload_4bit_parameters(tmp_path):
    problems = check_launch(recipe(tmp_path, base=QLORA_BASE), env=accelerate_env("zero3_offload"))
    assert any("4-bit bitsandbytes weights cannot be offloaded" in p for p in problems), problems


def test_device_map_under_zero3_or_fsdp(tmp_path):
    r = recipe(tmp_path, model_init_kwargs={"device_map": "auto"})
    (problem,) = check_launch(r, env=accelerate_env("zero3"))
    assert "model_init_kwargs.device_map='auto' under ZeRO-3" in problem and "remove device_map" in problem
    assert "under FSDP" in check_launch(r, env=accelerate_env("fsdp2"))[0]
    assert check_launch(r, env=accelerate_env("ddp")) == []


@pytest.mark.parametrize("optim", ["adamw_bnb_8bit", "paged_adamw_32bit", "paged_adamw_8bit", "adamw_8bit"])
def test_8bit_and_paged_optimizers_with_offload(tmp_path, optim):
    r = recipe(tmp_path, optim=optim)
    (problem,) = check_launch(r, env=accelerate_env("zero3_offload"))
    assert f"optim={optim!r}" in problem and "offload to cpu" in problem and "optim: adamw_torch" in problem
    assert check_launch(r, env=accelerate_env("zero3")) == []
    assert check_launch(recipe(tmp_path, optim="adamw_torch"), env=accelerate_env("zero3_offload")) == []


def test_offload_from_env_vars_without_a_json_file(tmp_path):
    env = {
        "ACCELERATE_USE_DEEPSPEED": "true",
        "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2",
        "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "cpu",
    }
    (problem,) = check_launch(recipe(tmp_path, optim="adamw_bnb_8bit"), env=env)
    assert "offload to cpu" in problem


def test_recipe_deepspeed_key_is_read(tmp_path):
    r = recipe(tmp_path, optim="paged_adamw_8bit", deepspeed=str(ROOT / "configs/deepspeed/zero3_offload.json"))
    assert "offload to cpu" in check_launch(r, env={})[0]
    missing = recipe(tmp_path, deepspeed="configs/deepspeed/nope.json")
    (problem,) = check_launch(missing, env={})
    assert "DeepSpeed config file 'configs/deepspeed/nope.json' not found" in problem


def test_deepspeed_and_fsdp_together(tmp_path):
    r = recipe(tmp_path, fsdp="full_shard auto_wrap")
    problems = check_launch(r, env=accelerate_env("zero2"))
    assert any("DeepSpeed and FSDP are both on" in p for p in problems), problems


def test_fsdp_activation_checkpointing_and_gradient_checkpointing(tmp_path):
    env = {**accelerate_env("fsdp2"), "FSDP_ACTIVATION_CHECKPOINTING": "true"}
    (problem,) = check_launch(recipe(tmp_path, gradient_checkpointing=True), env=env)
    assert "gradient_checkpointing=true and FSDP's own activation_checkpointing" in problem
    assert check_launch(recipe(tmp_path, gradient_checkpointing=False), env=env) == []
    # The shipped fsdp2.yaml leaves checkpointing to the recipe, so recipes with it on pass.
    assert check_launch(recipe(tmp_path, gradient_checkpointing=True), env=accelerate_env("fsdp2")) == []


def test_context_parallel_needs_no_packing_and_sdpa(tmp_path):
    env = accelerate_env("fsdp2_context_parallel")
    assert describe_launch(recipe(tmp_path), env).cp_size == 2
    problems = check_launch(recipe(tmp_path, packing=True, attn_implementation="flash_attention_2"), env=env)
    assert len(problems) == 2
    assert "packing=true with context parallelism (cp_size=2)" in problems[0]
    assert "attn_implementation='flash_attention_2'" in problems[1] and "sdpa" in problems[1]
    assert check_launch(recipe(tmp_path, packing=False, attn_implementation="sdpa"), env=env) == []


def test_every_shipped_deepspeed_json_is_read(tmp_path):
    r = recipe(tmp_path)
    for path in sorted((ROOT / "configs/deepspeed").glob("*.json")):
        launch = describe_launch(load_recipe(r.path, {"deepspeed": str(path)}), env={})
        assert launch.zero_stage == json.loads(path.read_text())["zero_optimization"]["stage"], path


@pytest.mark.parametrize("config", ["ddp", "zero2", "zero3", "zero3_offload", "fsdp2", "fsdp2_context_parallel"])
def test_planned_launch_from_the_config_file_equals_what_accelerate_launches(tmp_path, config):
    """--dry-run and `estimate` read the recipe's accelerate config; workers read accelerate's env: same launch."""
    r = recipe(tmp_path, accelerate_config=f"configs/accelerate/{config}.yaml")
    planned = describe_launch(r, env={}, planned=True)
    launched = describe_launch(r, env={**accelerate_env(config), "WORLD_SIZE": "8"})
    fields = ("world_size", "engine", "zero_stage", "shard_stage", "sharded_weights", "offloads_params",
              "offloads_optimizer", "fsdp_version", "cp_size")  # fmt: skip
    assert {f: getattr(planned, f) for f in fields} == {f: getattr(launched, f) for f in fields}
    assert planned.source == f"accelerate config configs/accelerate/{config}.yaml"
    assert describe_launch(r, env={}).world_size == 1  # not launched, not planning: one process
