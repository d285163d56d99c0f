"""Estimates and `costs` as a user sees them: bands, prices, hosted prices, misfits, published tokens, the README."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import write_jsonl, write_recipe

from qwen_recipes.cost.cli import costs_main, estimate_main
from qwen_recipes.cost.costs import cost_rows, markdown_table, reproduction_recipes
from qwen_recipes.cost.hardware import offers, price_table

ROOT = Path(__file__).resolve().parents[2]
S1 = str(ROOT / "recipes/s1/s1-32b-full-16xh100.yaml")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return cost_rows(ROOT / "recipes")


def test_every_reproduction_recipe_has_an_estimate_and_a_band(rows):
    repro = {str(p) for p in (ROOT / "recipes/reproductions").glob("*.yaml")}
    assert len(repro) >= 9 and repro <= {r["recipe"] for r in rows}
    for r in rows:
        assert "error" not in r, r
        assert r["tokens"] is not None, r["recipe"]  # never "tokens unknown" in the shipped table
        assert r["estimate_hours_low"] <= r["estimate_hours"] <= r["estimate_hours_high"], r["recipe"]
        assert r["band_reasons"], r["recipe"]
    for path in repro:  # each states its source, hardware, rows, and a time or a cost
        row = next(r for r in rows if r["recipe"] == path)
        assert row["source"].startswith("https://") and row["reported_hardware"] != "not published"


def test_s1_uses_the_published_token_count_and_lands_on_26_minutes(rows):
    s1 = next(r for r in rows if r["recipe"].endswith("s1/s1-32b-full-16xh100.yaml"))
    assert s1["tokens"] == 4_700_000 * 5 and s1["tokens_kind"] == "exact"
    assert "Token count measured by the Qwen-2.5 tokenizer" in s1["tokens_source"]
    assert s1["estimate_hours"] * 60 == pytest.approx(26, rel=0.3)
    assert any("#125" in reason and "#111" in reason for reason in s1["band_reasons"])  # replications: the width
    assert s1["estimate_hours_high"] * 60 > 120  # the band reaches the ~3 h replication


def test_costs_output_has_no_none_and_no_missing_minutes(capsys):
    assert costs_main(["--recipes", str(ROOT / "recipes")]) == 0
    text = capsys.readouterr().out
    assert costs_main(["--recipes", str(ROOT / "recipes"), "--markdown"]) == 0
    text += capsys.readouterr().out
    assert "None" not in text and "no min" not in text and "tokens unknown" not in text


def test_readme_costs_table_equals_costs_markdown(rows):
    table = markdown_table(rows)
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- costs:start -->", 1)[1].split("<!-- costs:end -->", 1)[0].strip()
    # The README is written from the repository root (`qwen-recipes costs --write README.md`): relative paths.
    assert block == table.replace(str(ROOT) + "/", "")


def test_a_misfit_gets_no_time_and_no_price(capsys):
    assert estimate_main([S1, "--hardware", "1xL4"]) == 0
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out and "time and cost: none: the set-up does not fit" in out
    main = [line for line in out.split("other hardware:")[0].splitlines() if not line.startswith(("hosted:", "  "))]
    assert not re.search(r"\$\d", "\n".join(main))  # no rental dollar figure for the set-up that cannot run
    assert re.search(r"1xL4 .* no  does not fit: no time or price", out)
    assert estimate_main([S1, "--hardware", "1xL4", "--json"]) == 0
    e = json.loads(capsys.readouterr().out)["estimate"]
    assert e["fits"] is False and e["hours"] is None and e["usd"] is None and e["usd_high"] is None


def test_estimate_names_the_provider_and_price_or_provider_override_it(capsys):
    assert estimate_main([S1, "--json"]) == 0
    e = json.loads(capsys.readouterr().out)["estimate"]
    assert (
        e["provider"] == "RunPod Secure Cloud" and e["usd_per_gpu_hour"] == 3.49 and "2026-09-25" in e["price_source"]
    )
    assert e["usd"] == pytest.approx(e["gpu_hours"] * 3.49)
    assert {o["provider"] for o in e["other_offers"]} >= {"Lambda", "Nebius", "RunPod Community Cloud"}
    assert estimate_main([S1, "--json", "--price", "2.0"]) == 0
    e = json.loads(capsys.readouterr().out)["estimate"]
    assert e["usd"] == pytest.approx(e["gpu_hours"] * 2.0) and e["price_source"] == "given"
    assert estimate_main([S1, "--json", "--provider", "nebius"]) == 0
    e = json.loads(capsys.readouterr().out)["estimate"]
    assert e["provider"] == "Nebius" and e["usd_per_gpu_hour"] == 3.85
    assert estimate_main([S1, "--provider", "Acme"]) == 2
    assert "has no H100 offer in the price table; known:" in capsys.readouterr().err


def test_price_table_has_dated_2026_sources_for_every_gpu_the_issue_names():
    for name in ("H100", "H200", "B200", "A100-80GB", "L40S", "A40", "RTX4090"):
        assert len(offers(name)) >= 2, name
        for o in offers(name):
            assert o["source"] and o["provider"] and o["as_of"], o
    for name in ("H100", "H200", "A100-80GB"):  # at least two dated 2026 sources (providers), on-demand
        dated = {o["provider"] for o in offers(name) if o["as_of"].startswith("2026") and o["kind"] == "on-demand"}
        assert len(dated) >= 2, name
    assert all(row["default"] in {o["provider"] for o in row["offers"]} for row in price_table().values())


def test_hosted_price_is_shown_beside_rental(tmp_path, capsys):
    qwen3 = write_recipe(tmp_path / "r.yaml", model_name_or_path="Qwen/Qwen3-8B", dataset_tokens=10_000_000,
                         datasets=["org/data"], max_steps=0, num_train_epochs=2)  # fmt: skip
    assert estimate_main([str(qwen3), "--json"]) == 0
    tinker = json.loads(capsys.readouterr().out)["hosted"][0]
    assert tinker["service"] == "Tinker" and tinker["offered"] and tinker["as_of"] == "2026-10-07"
    assert tinker["usd"] == pytest.approx(20_000_000 * 0.44 / 1e6)  # training tokens x $/1M
    assert estimate_main([S1]) == 0
    out = capsys.readouterr().out
    assert "hosted: Tinker Qwen/Qwen3-32B at $1.47/1M training tokens" in out
    assert "does not offer Qwen/Qwen2.5-32B-Instruct" in out and "LoRA adapters only" in out


def test_unpacked_rows_cost_their_own_length_not_max_length(tmp_path, capsys):
    # 40 short rows, max_length 4096, no packing: time follows the rows' lengths (counted), not 4096 per row.
    data = write_jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": "hi " * (5 + i)},
                       {"role": "assistant", "content": "ok " * (10 + 3 * i)}]} for i in range(40)])  # fmt: skip
    short = write_recipe(tmp_path / "a.yaml", datasets=[str(data)], packing=False, max_length=4096,
                         max_steps=0, num_train_epochs=1, per_device_train_batch_size=1)  # fmt: skip
    assert estimate_main([str(short), "--json", "--hardware", "1xH100"]) == 0
    r = json.loads(capsys.readouterr().out)
    e = r["estimate"]
    assert r["tokens_source"].startswith("counted: 40 local rows")
    micro = e["timing"]["micro_batches"]
    assert micro == pytest.approx(40)  # one row per micro-batch, each its own length
    assert e["tokens"] < 40 * 200


def test_unknown_token_count_is_said_not_invented(tmp_path, capsys):
    hub = write_recipe(tmp_path / "h.yaml", datasets=["org/not-local"], max_steps=0)
    assert estimate_main([str(hub)]) == 0
    assert "token count is unknown; pass --tokens N" in capsys.readouterr().out


def test_costs_puts_measured_beside_estimated_once_a_run_report_exists(tmp_path):
    recipe = tmp_path / "s1.yaml"
    shutil.copy(S1, recipe)
    text = recipe.read_text().replace("output_dir: outputs/s1-32b", f"output_dir: {tmp_path / 'out'}")
    text = text.replace("base: [../_base/sft.yaml, ../_base/full.yaml]",
                        f"base: [{ROOT}/recipes/_base/sft.yaml, {ROOT}/recipes/_base/full.yaml]")  # fmt: skip
    recipe.write_text(text)
    assert cost_rows(tmp_path)[0]["measured_hours"] is None
    (tmp_path / "out").mkdir()
    cost = {"wall_seconds": 1800.0, "usd": 27.9, "predicted": {"available": True, "hours": 0.4}}
    (tmp_path / "out/run_report.json").write_text(json.dumps({"cost": cost}))
    row = cost_rows(tmp_path)[0]
    assert row["measured_hours"] == 0.5 and row["measured_over_estimate"] == pytest.approx(0.5 / 0.4)
    assert "30 min, $27.90 (1.25x the estimate)" in markdown_table([row])


def test_reproduction_recipes_are_found_by_their_reported_block():
    found = reproduction_recipes(ROOT / "recipes")
    assert ROOT / "recipes/reproductions/sky-t1-32b-preview-8xh100.yaml" in found
    assert not any("_base" in p.parts for p in found)


def test_the_card_puts_measured_beside_predicted():
    from types import SimpleNamespace

    from qwen_recipes.cost.versus import predicted_block
    from qwen_recipes.outputs.card_body import _run_rows
    from qwen_recipes.recipe import load_recipe

    cost = {"device_name": "NVIDIA H100 80GB HBM3", "gpus": 16, "tokens": 23_500_000, "steps": 315,
            "wall_seconds": 1800.0, "tokens_per_second": 23_500_000 / 1800, "model_flops": 4.9e18, "mfu": 0.17,
            "peak_memory_bytes": 50e9, "usd": 27.9}  # fmt: skip
    cost["predicted"] = predicted_block(load_recipe(S1), cost)
    report = {"hardware": {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "device_count": 16}, "cost": cost}
    rows = dict(_run_rows(SimpleNamespace(report=report)))  # the rows the card's Run table renders
    ratio = cost["predicted"]["measured_over_predicted"]["time"]
    assert rows["predicted time"].startswith(f"{cost['predicted']['hours'] * 3600:,.0f} s")
    assert rows["predicted time"].endswith(f"on 16xH100 (measured / predicted {ratio:.2f})")
    assert "predicted MFU" in rows and "predicted peak memory per GPU" in rows and rows["cost: usd"] == 27.9


def test_prepare_counts_tokens_and_says_how_for_the_reported_block(tmp_path, capsys):
    from qwen_recipes.data.prepare.s1k import s1k_main

    stats_path = tmp_path / "stats.json"
    fixture = ROOT / "data/samples/s1k_1_1_fixture.jsonl"
    args = ["--dataset", str(fixture), "--out", str(tmp_path / "o.jsonl"), "--stats", str(stats_path)]
    assert s1k_main([*args, "--tokenizer", "qwen2_5"]) == 0
    stats = json.loads(stats_path.read_text())
    assert stats["tokens_how"].startswith("counted: qwen-recipes prepare s1k --dataset s1k_1_1_fixture.jsonl")
    assert str(tmp_path) not in stats["tokens_how"]  # no local path to paste into a shared recipe
    assert stats["attention_length"] >= stats["mean"]  # sum(len^2)/sum(len) >= the mean length
    assert f"reported.tokens: {stats['total_tokens']}" in capsys.readouterr().out
