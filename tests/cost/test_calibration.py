"""The time model pinned on published measurements: residuals, the fit, causal attention, row lengths, size ratios."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from qwen_recipes.cost import calibration, timing
from qwen_recipes.cost.models import builtin

ROOT = Path(__file__).resolve().parents[2]


def by_id() -> dict[str, dict]:
    return {r["id"]: r for r in calibration.residuals()}


def test_every_published_point_with_known_tokens_is_predicted_within_35_percent_and_most_within_30():
    rows = [r for r in calibration.residuals() if r["kind"] == "throughput" or r["id"] == "s1-32b-16xh100"]
    assert len(rows) == 55  # 42 Qwen-v1 + 6 LLaMA-Factory + 6 NeMo/torchtitan/torchtune points + s1
    worst = {r["id"]: r["ratio"] for r in rows if abs(math.log(r["ratio"])) > math.log(1.3)}
    # The two outside +-30%: torchtitan's 500 W HBM2e H100s (slower than the SXM peak we divide by, their footnote
    # says so) and Qwen-v1's 7B Q-LoRA at 1024 (slower per token than its own 512 and 2048 neighbours).
    assert set(worst) <= {"torchtitan-llama3.1-8b-fsdp-8xh100", "qwen1-7b-qlora@1024"}
    assert all(abs(math.log(r["ratio"])) <= math.log(1.35) for r in rows)


def test_the_issue_s_lora_points_and_s1_are_now_right():
    # Issue #15: 7B LoRA on one A100 was predicted 2.8x too slow at 1,024 tokens and 3.9x at 8,192.
    r = by_id()
    assert r["qwen1-7b-lora@1024"]["ratio"] == pytest.approx(1.0, abs=0.05)
    assert r["qwen1-7b-lora@8192"]["ratio"] == pytest.approx(1.0, abs=0.06)
    assert r["qwen1-7b-lora@8192"]["published_s"] == pytest.approx(21.3)
    # s1: 4.7M published tokens x 5 epochs on 16 H100 in 26 minutes (it fixes the inter-node bandwidth).
    assert r["s1-32b-16xh100"]["published_s"] == 26 * 60
    assert r["s1-32b-16xh100"]["ratio"] == pytest.approx(1.0, abs=0.02)


def test_fit_reproduces_the_shipped_constants():
    fitted, shipped = calibration.fit(), timing.constants()
    for key in ("U_GEMM", "U_ATTN", "T_MICRO", "NET_GBS", "HOST_GBS"):
        assert fitted[key] == pytest.approx(shipped[key], rel=0.03), key
    for kind in ("bnb", "gptq"):
        assert fitted["C_DEQUANT"][kind] == pytest.approx(shipped["C_DEQUANT"][kind], rel=0.03)
    assert fitted["GENERATION"]["hopper"] == pytest.approx(shipped["GENERATION"]["hopper"], rel=0.03)


def test_docs_show_every_calibration_point_with_its_residual():
    docs = (ROOT / "docs/costs.md").read_text()
    start, end = "<!-- calibration:start -->", "<!-- calibration:end -->"
    assert docs.split(start, 1)[1].split(end, 1)[0].strip() == calibration.markdown()
    assert all(f"`{r['id']}`" in docs for r in calibration.residuals())


def test_full_finetune_size_ratio_matches_the_published_ones():
    # Same data, same hardware, 32B vs 7B: Bespoke-Stratos 27 h / 7 h, OpenThinker 90 h / 20 h.
    r = by_id()
    bespoke = r["bespoke-stratos-32b"]["predicted_s"] / r["bespoke-stratos-7b"]["predicted_s"]
    openthinker = r["openthinker-32b"]["predicted_s"] / r["openthinker-7b"]["predicted_s"]
    assert bespoke == pytest.approx(27 / 7, rel=0.15)
    assert openthinker == pytest.approx(90 / 20, rel=0.15)


def test_causal_kernels_execute_about_half_the_attention_of_eager():
    arch = builtin()["Qwen/Qwen2.5-7B"]
    eager = timing.attention_flops(arch, 1000, 8192, "eager", False)
    sdpa = timing.attention_flops(arch, 1000, 8192, "sdpa", False)
    per_token_fwd = 4 * arch.heads * arch.head_dim * 8192 * arch.layers
    assert eager == pytest.approx(1000 * per_token_fwd * 3)  # forward + 2x backward, full s x s
    assert sdpa == pytest.approx(1000 * per_token_fwd * (65 / 128) * 3.5)  # 64 tiles: 65/128 of them; flash bwd 2.5x
    assert timing.causal_fraction(100, "flash_attention_2") == 1.0  # one tile: nothing to skip
    ckpt = timing.attention_flops(arch, 1000, 8192, "sdpa", True)
    assert ckpt - sdpa == pytest.approx(1000 * per_token_fwd * 65 / 128)  # recomputation: one more forward


def test_model_flops_stay_the_flop_counter_convention_beside_the_executed_count():
    # timing.predict keeps flops.training_flops (what FlopCounterMode counts) as the MFU numerator.
    from qwen_recipes.cost.flops import training_flops

    arch = builtin()["Qwen/Qwen2.5-7B"]
    w = timing.Work(method="lora", tokens=8192 * 8, micro_tokens=8192, attn_len=8192, gradient_checkpointing=True)
    t = timing.predict(arch, w, __import__("qwen_recipes.cost.hardware", fromlist=["gpu"]).gpu("A100-80GB"))
    assert t.model_flops == training_flops(arch, 8192 * 8, 8192, "lora", gradient_checkpointing=True).model
    assert t.executed_flops < t.model_flops * 4 / 3 + 1  # causal attention executes less than full s x s
    assert t.seconds == pytest.approx(t.compute + t.fixed + t.comm + t.dequant + t.offload + t.generation)


def test_short_micro_batches_pay_the_fixed_time_so_small_models_need_long_rows():
    from qwen_recipes.cost.hardware import gpu

    a100, arch = gpu("A100-80GB"), builtin()["Qwen/Qwen2.5-1.5B"]
    util = []
    for seq in (256, 1024, 8192):
        w = timing.Work(method="lora", tokens=seq * 8, micro_tokens=seq, attn_len=seq, gradient_checkpointing=True)
        util.append(timing.predict(arch, w, a100).utilisation)
    assert util[0] < util[1] < util[2] < timing.U_GEMM


def test_qlora_dequantisation_scales_with_weights_and_bandwidth():
    from qwen_recipes.cost.hardware import gpu

    arch = builtin()["Qwen/Qwen2.5-7B"]
    w = timing.Work(method="qlora", tokens=1024 * 8, micro_tokens=1024, attn_len=1024, gradient_checkpointing=True)
    a100, l40s = timing.predict(arch, w, gpu("A100-80GB")), timing.predict(arch, w, gpu("L40S"))
    weights = arch.layers * arch.layer_linear_params()
    assert a100.dequant == pytest.approx(8 * 3 * weights * timing.C_DEQUANT["bnb"])
    assert l40s.dequant == pytest.approx(a100.dequant * 2.039 / 0.864)  # memory-bound: bandwidth ratio
