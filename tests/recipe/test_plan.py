"""`--dry-run` checks the data and the model without weights or heavy imports (issue 17 #3, #8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from helpers import ROOT, chat_rows, train, write_jsonl, write_recipe

from qwen_recipes.recipe import load_recipe

SHIPPED_LOCAL = ["recipes/quickstart/tiny-qwen3-cpu.yaml", "recipes/japanese/tiny-ja-cpu.yaml",
                 "recipes/grpo/tiny-grpo-cpu.yaml"]  # fmt: skip


@pytest.mark.parametrize("path", SHIPPED_LOCAL)
def test_dry_run_counts_equal_the_real_runs_on_the_shipped_samples(path, qwen3_tokenizer):
    """Per source, the plan's read/usable/skipped/used are what the run's data report says: the whole data step
    (tokenized) for the small Japanese mixture, the row step for the others (truncating recipes drop no row when
    tokenized; tokenizing the quickstart's 400 chats would cost this test 10 s)."""
    from qwen_recipes.data.mixture import canonical_rows
    from qwen_recipes.data.pipeline import build_dataset
    from qwen_recipes.data.report import DataReport
    from qwen_recipes.data.templates import training_template
    from qwen_recipes.recipe.plan import data_plan

    recipe = load_recipe(ROOT / path)
    lines, total = data_plan(recipe)
    if "tiny-ja" in path:
        dataset, report = build_dataset(recipe, qwen3_tokenizer, training_template("qwen3"))  # the run's data step
        assert total == len(dataset) == report.rows_used
    else:
        report = DataReport()
        assert total == len(canonical_rows(recipe, report=report)) == report.rows_used
    for s in report.by_source:
        assert lines[s["source"]].startswith(
            f"{s['read']:,} rows read, {s['usable']:,} usable, {s['skipped']:,} skipped"
        ), lines
        assert f"{s['used']:,} used ({s['requested']})" in lines[s["source"]]


def test_dry_run_reads_a_bounded_sample_through_the_training_checks(tmp_path, capsys):
    bad = ['{"messages": [{"role": "user", "content": "Hi"}]}', '{"messages": [', *map(json.dumps, chat_rows(6))]
    data = write_jsonl(tmp_path / "d.jsonl", bad)
    big = write_jsonl(tmp_path / "big.jsonl", chat_rows(4) * 500)  # 2,000 rows: twice what a dry run reads
    recipe = write_recipe(tmp_path / "r.yaml", datasets=[str(data), {"path": str(big), "samples": 50}])
    assert train(recipe, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "datasets[0] d.jsonl: 8 rows read, 6 usable, 2 skipped, 6 used (all)" in out
    assert "datasets[1] big.jsonl: first 1,000 rows read (of more), 1,000 usable, 0 skipped, 50 used" in out
    assert "rows used: 56" in out and "exact duplicate rows kept" in out
    assert train(recipe, "--dry-run", "--strict") == 2  # --strict fails on a bad row the sample holds
    err = capsys.readouterr().err
    assert f"{data}:1: no assistant turn" in err and f"{data}:2: invalid JSON" in err and "Traceback" not in err


def test_dry_run_catches_bad_mappings_missing_files_and_unknown_tiny_models(tmp_path, capsys):
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])
    mapped = {"path": str(qa), "format": "alpaca", "columns": {"instruction": "question", "output": "answr"}}
    recipe = write_recipe(tmp_path / "r.yaml", datasets=[mapped])
    assert train(recipe, "--dry-run") == 2
    assert "no usable rows" in (err := capsys.readouterr().err) and "(did you mean 'answer'?)" in err
    assert train(write_recipe(tmp_path / "m.yaml", datasets=["missing.jsonl"]), "--dry-run") == 2
    assert f"no such file or folder: {tmp_path}/missing.jsonl" in capsys.readouterr().err
    recipe = write_recipe(tmp_path / "t.yaml", datasets=[str(qa)], model_name_or_path="tiny:qwen9")
    assert train(recipe, "--dry-run") == 2
    assert "no such tiny test-bed model; known: tiny:qwen2_5, tiny:qwen3" in capsys.readouterr().err


def test_an_unreachable_hub_model_is_one_clean_error_at_dry_run_and_at_training(tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", chat_rows(2))
    recipe = write_recipe(tmp_path / "r.yaml", datasets=[str(data)], model_name_or_path="Qwen/Qwen3-0.6B")
    for args in (["--dry-run"], []):
        t0 = time.perf_counter()
        assert train(recipe, *args) == 2
        assert time.perf_counter() - t0 < 5  # no retries
        err = capsys.readouterr().err
        assert err.count("\n") == 2 and "Traceback" not in err, err  # a heading and one line
        assert "model_name_or_path='Qwen/Qwen3-0.6B' is not available offline" in err
        assert "a local folder" in err and "the Hugging Face cache" in err and "HF_HUB_OFFLINE is set" in err
        assert "hf download Qwen/Qwen3-0.6B" in err and "local model folder" in err


def test_dry_run_of_every_shipped_recipe_is_fast_and_imports_nothing_heavy():
    """Online mode (nothing is contacted at dry run): each shipped recipe plans in under 3 s, torch never imported;
    only recipes whose data or model an earlier step writes (or the user converts) fail, naming that file."""
    recipes = sorted(str(p) for p in (ROOT / "recipes").rglob("*.yaml") if "_base" not in p.parts)
    code = """
import json, sys, time
from qwen_recipes.errors import UserError
from qwen_recipes.recipe import load_recipe
from qwen_recipes.recipe.plan import print_plan
import io, contextlib
out = {}
for path in sys.argv[1:]:
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            print_plan(load_recipe(path))
        err = None
    except UserError as e:
        err = str(e)
    out[path] = [time.perf_counter() - t0, err]
heavy = [m for m in ("torch", "transformers", "peft", "trl", "datasets") if m in sys.modules]
print(json.dumps({"runs": out, "heavy": heavy}))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    proc = subprocess.run([sys.executable, "-c", code, *recipes], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["heavy"] == []
    slow = {p: round(s, 2) for p, (s, _) in result["runs"].items() if s > 3.0}
    assert slow == {}
    failed = {os.path.relpath(p, ROOT): e for p, (_, e) in result["runs"].items() if e}
    written = {
        "japanese/abeja-style-cpt-qwen2.5-32b-instruct-full": f"{ROOT}/outputs/ja_cpt/mix.jsonl",
        "japanese/budget-ja-cpt-qwen2.5-7b-lora-embed": f"{ROOT}/outputs/ja_cpt/mix.jsonl",
        "japanese/rinna-style-cpt-qwen2.5-32b-full": f"{ROOT}/outputs/ja_cpt/mix.jsonl",
        "cosmos/cosmos-reason1-grpo-qwen2.5-vl-7b-lora-1gpu": f"{ROOT}/data/cosmos/robovqa_rl.jsonl",
        "cosmos/cosmos-reason1-sft-qwen2.5-vl-7b-lora-1gpu": f"{ROOT}/data/cosmos/robovqa_sft.jsonl",
        "cosmos/cosmos-reason2-grpo-qwen3-vl-8b-lora-1gpu": f"{ROOT}/data/cosmos/robovqa_rl.jsonl",
        "cosmos/cosmos-reason2-sft-qwen3-vl-8b-lora-1gpu": f"{ROOT}/data/cosmos/robovqa_sft.jsonl",
        "cosmos/cosmos-reason2-sft-qwen3.5-9b-lora-1gpu": f"{ROOT}/data/cosmos/robovqa_sft.jsonl",
        "molmo/molmo-style-stage2-multitask-qwen2-7b-clip-8xh100": f"{ROOT}/outputs/molmo/stage1-qwen2-7b-clip",
        "molmo/tiny-molmo-stage2-multitask-cpu": f"{ROOT}/outputs/molmo/tiny-stage1",
    }
    assert {p.removeprefix("recipes/").removesuffix(".yaml") for p in failed} == set(written), failed
    for path, e in failed.items():
        assert written[path.removeprefix("recipes/").removesuffix(".yaml")] in e and "no such" in e, e


def test_an_unreachable_hub_online_is_one_clean_error_not_a_minute_of_retries(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", chat_rows(2))
    recipe = write_recipe(tmp_path / "r.yaml", datasets=[str(data)], model_name_or_path="Qwen/Qwen3-0.6B")
    # Online, but the Hub's address refuses connections (as with no network): one probe, no retries.
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "train.py"), str(recipe)], capture_output=True, text=True, env=env)
    assert time.perf_counter() - t0 < 30  # transformers' own retries took 83 s here
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "model_name_or_path='Qwen/Qwen3-0.6B' (revision main) cannot be reached. Tried: a local folder" in out.stderr
    assert "the Hub at http://127.0.0.1:9 (ConnectError)" in out.stderr and "hf download Qwen/Qwen3-0.6B" in out.stderr
