"""Smoke versions of the benchmarks (bench/): small sizes, no timing assertions, sane quantities."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ lives at the repo root, beside train.py

from bench import dataprep, gpu, padding, startup, throughput
from bench.gpu_archs import ARCHS, build_config, flops_per_token, parameter_count
from bench.synthetic import s1k_lengths, s1k_rows


def test_s1k_like_mix_is_fixed_and_long_tailed():
    lengths = s1k_lengths(1000, seed=0)
    assert lengths == s1k_lengths(1000, seed=0)
    assert min(lengths) == 300 and max(lengths) == 9000
    median = sorted(lengths)[500]
    assert 1500 < median < 2500 and sum(lengths) / len(lengths) > median  # long right tail
    row = s1k_rows(1, seed=0)[0]["messages"]
    assert [m["role"] for m in row] == ["user", "assistant"] and row[1]["reasoning_content"]


def test_padding_ours_under_one_percent_and_below_plain():
    r = padding.run(n=64, max_length=2048, batch_size=8, scale=0.1)
    assert r["ours"]["pad_fraction"] < 0.01
    assert r["plain"]["pad_fraction"] > r["ours"]["pad_fraction"]
    assert r["plain"]["pad_fraction"] > 0.2  # a long-tailed mix wastes a lot when padded
    # Same real tokens on both paths, and nothing lost: every row fits in max_length here.
    assert r["ours"]["real_tokens"] == r["plain"]["real_tokens"] == r["tokens"] == r["tokens_within_max_length"]
    assert r["ours"]["packed_rows"] < 64


def test_dataprep_matches_floor_ids_and_second_run_hits_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_RECIPES_CACHE", str(tmp_path / "cache"))
    r = dataprep.run(tmp_path, n=40, scale=0.1, repeats=1)
    assert r["ids_identical_to_floor"]
    assert r["ratio"] > 0 and r["floor_encode_batch_s"] > 0
    assert r["cold_cache"].startswith("written") and r["second_cache"].startswith("hit")
    assert r["second_rows"] == 40


def test_startup_dry_run_imports_no_torch():
    r = startup.run(repeats=1)
    assert r["dry_run_s"] > 0 and r["help_s"] > 0
    assert "torch" not in r["dry_run_imports"] and "transformers" not in r["dry_run_imports"]


@pytest.mark.slow  # two training subprocesses (~1 min); the bench's own check, no capability of the recipes
def test_throughput_both_runs_train_the_same_real_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_RECIPES_CACHE", str(tmp_path / "cache"))
    r = throughput.run(tmp_path, n=8, scale=0.03)
    assert r["ours"]["tokens_seen"] == r["plain"]["tokens_seen"] == r["real_tokens_in_data"]
    assert r["plain"]["packing"] is False and r["plain"]["padding_free"] is False
    assert r["plain"]["steps"] == 1  # 8 rows, TRL's default 8 per batch
    assert r["ours"]["tokens_per_s"] > 0 and r["plain"]["tokens_per_s"] > 0 and r["ratio"] > 0


def test_gpu_benchmark_cpu_smoke():
    opts = {
        "archs": ["tiny"],
        "methods": ["lora", "qlora", "full"],
        "liger": [False, True],
        "gc": [True],
        "steps": 3,
        "warmup": 1,
        "seq_len": 32,
        "batch": 2,
        "gpus": 1,
        "peak_tflops": None,
        "in_process": True,
        "timeout": 60,
    }
    cells = gpu.run(opts)["cells"]
    ok = [c for c in cells if c["status"] == "ok" and not c["liger"]]
    assert [c["method"] for c in ok] == ["lora", "qlora", "full"]
    for c in ok:
        assert c["tokens_per_s_per_gpu"] > 0 and c["peak_memory_bytes"] > 0
        assert c["predicted_peak_bytes"] > 0
        assert c["params"] == parameter_count("tiny")["total"]
    assert {c["method"]: c["quantized_linears"] for c in ok} == {"lora": 0, "qlora": 14, "full": 0}  # 7 per layer
    if gpu.liger_unavailable():  # no liger-kernel or no Triton GPU: said, not run
        skipped = [c for c in cells if c["liger"]]
        assert skipped and all(c["status"] == "skipped" and c["error"] for c in skipped)
    table = gpu.report({"cells": cells})
    assert len(table) == 2 + len(cells)


@pytest.mark.parametrize("arch", ["qwen2.5-7b", "qwen3-8b", "qwen2.5-32b"])
def test_real_architectures_parameter_counts(arch):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(build_config(arch))
    assert sum(p.numel() for p in model.parameters()) == parameter_count(arch)["total"]
    expected = {"qwen2.5-7b": 7.6e9, "qwen3-8b": 8.2e9, "qwen2.5-32b": 32.8e9}[arch]
    assert abs(parameter_count(arch)["total"] - expected) / expected < 0.01
    assert flops_per_token(arch, 4096, "full") > flops_per_token(arch, 4096, "lora") > 0
    assert ARCHS[arch]["vocab_size"] in (151936, 152064)
