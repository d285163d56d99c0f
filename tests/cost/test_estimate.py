"""Cost estimates: every shipped recipe offline without weights, itemised memory, sharding, bad input, `costs`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from qwen_recipes.cost import memory as M
from qwen_recipes.cost.cli import costs_main, estimate_main, reproduction_recipes, write_block
from qwen_recipes.cost.hardware import HardwareError, parse_hardware
from qwen_recipes.cost.models import arch_from_config, builtin

ROOT = Path(__file__).resolve().parents[2]


def shipped_recipes() -> list[Path]:
    return sorted(p for p in (ROOT / "recipes").glob("**/*.yaml") if "_base" not in p.parts)


def test_every_shipped_recipe_estimates_offline_without_torch():
    recipes = [str(p) for p in shipped_recipes()]
    assert recipes
    code = (
        "import json, sys\n"
        "from qwen_recipes.recipe import load_recipe\n"
        "from qwen_recipes.cost.estimate import estimate\n"
        "out = {}\n"
        "for path in sys.argv[1:]:\n"
        "    r = estimate(load_recipe(path))\n"
        "    out[path] = [r['estimate']['memory_total_gb'], r['tokens_source']]\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'safetensors_read': 'safetensors.torch' in sys.modules,"
        " 'results': out}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *recipes],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(data["results"]) == set(recipes)  # none skipped
    assert all(total > 0 for total, _ in data["results"].values())
    assert data["torch"] is False and data["safetensors_read"] is False  # no torch, so no weights were loaded


def qwen32() -> M.Setup:
    return M.Setup(method="full", weight_bytes=2, micro_batch=1, seq_len=4096, gradient_checkpointing=True)


def test_memory_items_add_up_in_the_json(capsys):
    rc = estimate_main([str(ROOT / "recipes/s1/s1.1-32b-qlora-1xh100.yaml"), "--json", "--tokens", "1000000"])
    assert rc == 0
    e = json.loads(capsys.readouterr().out)["estimate"]
    assert e["memory_total_gb"] == pytest.approx(sum(e["memory_items_gb"].values()), abs=0.02)
    assert e["fits"] == (e["memory_total_gb"] <= e["gpu_memory_gb"])
    assert e["gpu_hours"] == pytest.approx(e["hours"] * e["gpus"])
    assert e["usd"] == pytest.approx(e["gpu_hours"] * e["usd_per_gpu_hour"])


def test_zero3_on_16_gpus_shards_weights_gradients_and_optimizer_16_ways():
    arch = builtin()["Qwen/Qwen2.5-32B-Instruct"]
    one = M.memory_items(arch, qwen32())
    z3 = M.memory_items(arch, replace(qwen32(), gpus=16, zero_stage=3, engine="fsdp"))
    for key in ("weights (16-bit)", "gradients", "optimizer states"):
        assert z3[key] == pytest.approx(one[key] / 16)
    assert z3["activations (saved for backward)"] == one["activations (saved for backward)"]  # per GPU, unsharded
    z1 = M.memory_items(arch, replace(qwen32(), gpus=16, zero_stage=1, engine="deepspeed"))
    assert z1["gradients"] == one["gradients"] and z1["weights (16-bit)"] == one["weights (16-bit)"]


def test_gradient_checkpointing_lowers_activations():
    arch = builtin()["Qwen/Qwen3-8B"]
    off = M.memory_items(arch, replace(qwen32(), gradient_checkpointing=False))
    on = M.memory_items(arch, qwen32())
    act_off = off["activations (saved for backward)"]
    act_on = on["activations (saved for backward)"] + on["activations (one layer recomputed)"]
    assert act_on < act_off / 10  # 36 layers: inputs only + one layer recomputed


def test_qlora_weights_are_half_a_byte_per_param_plus_constants():
    arch = builtin()["Qwen/Qwen2.5-7B-Instruct"]
    items = M.memory_items(arch, replace(qwen32(), method="qlora"))
    linear = arch.layers * arch.layer_linear_params()
    per_param = items["weights: 4-bit nf4 linears (+ constants)"] / linear
    assert 0.5 < per_param < 0.6
    assert M.nf4_bytes_per_param(nested=False) == pytest.approx(0.5625)  # fp32 absmax per 64 weights
    assert M.nf4_bytes_per_param(nested=True) < M.nf4_bytes_per_param(nested=False)


def test_logits_of_32k_tokens_are_about_20_gb_per_fp32_copy():
    arch = builtin()["Qwen/Qwen3-8B"]
    s = replace(qwen32(), seq_len=32768)
    assert M.logits_bytes(arch, s) / 10 * 4 / 1e9 == pytest.approx(19.9, abs=0.1)


@pytest.mark.parametrize(
    ("name", "billions"),
    [
        ("Qwen/Qwen2.5-0.5B", 0.494),
        ("Qwen/Qwen2.5-1.5B", 1.544),
        ("Qwen/Qwen2.5-3B", 3.086),
        ("Qwen/Qwen2.5-7B", 7.616),
        ("Qwen/Qwen2.5-14B", 14.770),
        ("Qwen/Qwen2.5-32B", 32.764),
        ("Qwen/Qwen2.5-72B", 72.706),
        ("Qwen/Qwen3-0.6B", 0.596),
        ("Qwen/Qwen3-1.7B", 1.721),
        ("Qwen/Qwen3-4B", 4.022),
        ("Qwen/Qwen3-8B", 8.191),
        ("Qwen/Qwen3-14B", 14.768),
        ("Qwen/Qwen3-32B", 32.762),
    ],
)
def test_builtin_table_matches_published_parameter_counts(name, billions):
    # Published sizes (model cards / safetensors metadata), to 0.5%.
    assert builtin()[name].total_params() / 1e9 == pytest.approx(billions, rel=5e-3)


@pytest.mark.parametrize("family", ["qwen3", "qwen2_5"])
def test_tiny_table_entries_match_the_test_bed(family):
    from qwen_recipes.testbed import tiny_config

    assert builtin()[f"tiny:{family}"] == arch_from_config(tiny_config(family).to_dict())


def test_unknown_gpu_lists_known_ones_and_malformed_hardware_shows_the_form(capsys):
    with pytest.raises(HardwareError, match=r"unknown GPU type 'H1000'; known GPU types: H100 \(80 GB\)"):
        parse_hardware("8xH1000")
    recipe = str(ROOT / "recipes/quickstart/tiny-qwen3-cpu.yaml")
    assert estimate_main([recipe, "--hardware", "eight H100"]) == 2
    err = capsys.readouterr().err
    assert "not of the form COUNTxGPU, e.g. 8xH100" in err and "Traceback" not in err
    assert estimate_main([recipe, "--hardware", "2xB9000"]) == 2
    assert "known GPU types:" in capsys.readouterr().err
    assert parse_hardware("16xh100")[0] == 16 and parse_hardware("1x4090")[1].name == "RTX4090"


def test_local_data_is_counted_with_the_real_tokenizer(tmp_path, capsys):
    rc = estimate_main([str(ROOT / "recipes/quickstart/tiny-qwen3-cpu.yaml"), "--json"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["tokens_source"].startswith("counted: 400 local rows")
    # max_steps 30 x 4 packed rows x 256 tokens caps the trained tokens.
    assert r["estimate"]["tokens"] == 30 * 4 * 256


def test_costs_lists_every_reproduction_recipe_and_updates_the_readme_block(tmp_path, capsys):
    expected = reproduction_recipes(ROOT / "recipes")
    assert expected, "no recipe with a reported: block"
    assert costs_main(["--recipes", str(ROOT / "recipes"), "--markdown"]) == 0
    table = capsys.readouterr().out
    for path in expected:
        assert f"`{path}`" in table
    assert "not published" in table  # s1.1 has no published time or cost
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- costs:start -->\nold\n<!-- costs:end -->\n\ntail\n")
    write_block(readme, "| new |")
    assert readme.read_text() == "# Title\n\n<!-- costs:start -->\n| new |\n<!-- costs:end -->\n\ntail\n"


def test_fused_lm_head_bounds_the_logits_term():
    """TRL 1.16's SFT/DPO/GRPO loss works in [4096 x 32768] tiles: no term grows with seq_len x vocabulary."""
    from qwen_recipes.cost.memory import Setup, logits_bytes
    from qwen_recipes.cost.models import builtin

    arch = builtin()["Qwen/Qwen2.5-32B"]
    fused = [logits_bytes(arch, Setup(seq_len=n, fused_lm_head=True)) for n in (8192, 32768)]
    full = [logits_bytes(arch, Setup(seq_len=n, fused_lm_head=False)) for n in (8192, 32768)]
    assert fused[1] < 1.1e9 and fused[1] - fused[0] < 1e6  # ~1 GB of tiles, a few bytes per token
    assert full[1] == 4 * full[0] and full[1] > 40e9  # ORPO/CPO still build full fp32 logits (~50 GB at 32k)
