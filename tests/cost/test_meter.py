"""CostMeter after tiny CPU runs: tokens equal what the trainer saw, time is consistent, resume accumulates."""

from __future__ import annotations

import time

import pytest
import torch
from transformers import Trainer, TrainingArguments

from qwen_recipes.cost.hardware import price
from qwen_recipes.cost.meter import CostMeter, cost_block, summary_line
from qwen_recipes.testbed import tiny_model


class CountingCollator:
    """Pads batches; `tokens` counts the non-padding tokens the model's forward really received (ground truth).

    Counted in a forward pre-hook, not here: the dataloader collates one batch ahead of the last step.
    """

    def __init__(self) -> None:
        self.tokens = 0

    def watch(self, model):
        def hook(module, args, kwargs):
            self.tokens += int(kwargs["attention_mask"].sum())

        model.register_forward_pre_hook(hook, with_kwargs=True)
        return model

    def __call__(self, rows):
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), 151643)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            mask[i, : len(r["input_ids"])] = 1
        labels = ids.masked_fill(mask == 0, -100)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _rows(n: int = 16) -> list[dict]:
    return [{"input_ids": list(range(100 + i, 100 + i + 8 + (i % 5) * 5))} for i in range(n)]  # 8..28 tokens


def _trainer(tmp_path, max_steps: int, meter: CostMeter, collator: CountingCollator) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=max_steps,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        use_cpu=True,
        report_to="none",
        save_strategy="steps",
        save_steps=2,
        logging_steps=1,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        seed=0,
    )
    return Trainer(
        model=collator.watch(tiny_model("qwen3")),
        args=args,
        train_dataset=_rows(),
        data_collator=collator,
        callbacks=[meter],
    )


def test_meter_after_a_tiny_cpu_run(tmp_path):
    meter, collator = CostMeter(), CountingCollator()
    trainer = _trainer(tmp_path, 3, meter, collator)
    t0 = time.perf_counter()
    trainer.train()
    outer = time.perf_counter() - t0
    block = cost_block(meter)
    assert block["tokens"] == collator.tokens == trainer.state.num_input_tokens_seen > 0
    assert block["steps"] == 3
    assert 0 < block["wall_seconds"] <= outer
    assert block["tokens_per_second"] == pytest.approx(block["tokens"] / block["wall_seconds"], rel=1e-3)
    # CPU: no GPU-hours, no dollars, no MFU, but the model FLOPs of the tokens are known.
    assert block["device"] == "cpu" and block["gpus"] == 0 and block["gpu_hours"] == 0
    assert block["usd"] is None and block["mfu"] is None
    assert block["model_flops"] > 6 * 151936 * 64 * block["tokens"] * 0.9
    assert "no GPU cost (CPU run)" in summary_line(block)
    assert block["predicted"]["available"] is False  # the time model predicts GPU runs only


def test_resume_accumulates_cost_across_segments(tmp_path):
    first, c1 = CostMeter(), CountingCollator()
    _trainer(tmp_path, 2, first, c1).train()
    report1 = {"cost": cost_block(first)}
    assert report1["cost"]["steps"] == 2

    second, c2 = CostMeter(), CountingCollator()
    trainer = _trainer(tmp_path, 4, second, c2)
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    block = cost_block(second, previous=report1)
    assert [s["steps"] for s in block["segments"]] == [2, 2]
    assert block["tokens"] == c1.tokens + c2.tokens == trainer.state.num_input_tokens_seen
    assert second.tokens == c2.tokens  # the second segment counts only its own tokens
    assert block["wall_seconds"] == pytest.approx(first.wall_seconds + second.wall_seconds, abs=2e-3)
    assert "over 2 segments" in summary_line(block)


def test_gpu_segments_are_priced_and_summed():
    gpu_seg = {
        "device": "cuda",
        "device_name": "NVIDIA H100 80GB HBM3",
        "gpu_type": "H100",
        "gpus": 8,
        "wall_seconds": 1800.0,
        "tokens": 1000,
        "steps": 1,
        "model_flops": 1e18,
        "mfu": 0.2,
        "achieved_tflops_per_gpu": 197.8,
        "peak_memory_bytes": [70e9],
        "gpu_hours": 4.0,
        "usd_per_gpu_hour": 2.99,
        "price_source": "table",
        "usd": 11.96,
    }
    meter = CostMeter()
    meter.device = {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "gpus": 8}
    meter.wall_seconds, meter.tokens, meter.steps = 3600.0, 2000, 2
    block = cost_block(meter, previous={"cost": {"segments": [gpu_seg]}})
    assert block["gpu_hours"] == pytest.approx(4.0 + 8.0)
    rate, source = price("H100")  # the price table's default H100 offer, named with its provider and date
    assert block["usd"] == pytest.approx(11.96 + 8 * rate)
    assert block["tokens"] == 3000 and block["gpu_type"] == "H100"
    assert block["price_source"] == source and source.startswith("RunPod Secure Cloud, H100 SXM 80GB, 2026-")


def test_a_gpu_run_report_puts_measured_beside_predicted_with_the_ratio():
    from pathlib import Path

    from qwen_recipes.cost.versus import predicted_block, predicted_rows
    from qwen_recipes.recipe import load_recipe

    recipe = load_recipe(str(Path(__file__).resolve().parents[2] / "recipes/s1/s1-32b-full-16xh100.yaml"))
    measured = {"device_name": "NVIDIA H100 80GB HBM3", "gpus": 16, "tokens": 23_500_000, "steps": 315,
                "wall_seconds": 1800.0, "tokens_per_second": 23_500_000 / 1800, "model_flops": 4.9e18, "mfu": 0.17,
                "peak_memory_bytes": 50e9}  # fmt: skip
    p = predicted_block(recipe, measured)
    assert p["available"] and p["hardware"] == "16xH100" and p["tokens"] == 23_500_000
    r = p["measured_over_predicted"]
    assert r["time"] == pytest.approx(1800 / (p["hours"] * 3600), rel=1e-3)
    assert r["tokens_per_second"] == pytest.approx(1 / r["time"], rel=1e-3)  # same tokens: the inverse ratio
    assert r["peak_memory"] == pytest.approx(50 / p["peak_memory_allocated_gb"], rel=1e-3)
    assert p["hours_low"] < p["hours"] < p["hours_high"]
    rows = dict(predicted_rows({"predicted": p}))
    assert f"(measured / predicted {r['time']:.2f})" in rows["predicted time"] and "predicted MFU" in rows
    assert predicted_block(recipe, {**measured, "gpus": 0})["available"] is False  # CPU run: nothing to predict
