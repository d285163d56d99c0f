"""Japanese evaluation: the offline generation check on the tiny model, harness summaries and the install message."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from qwen_recipes.data.prepare.cpt import japanese_chars
from qwen_recipes.testbed import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def load_ja_eval():
    spec = importlib.util.spec_from_file_location("ja_eval", ROOT / "eval/ja_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ja_eval = load_ja_eval()


def test_answer_stats_are_character_exact():
    s = ja_eval.answer_stats("東京です。 OK", tokens=4)
    # visible chars: 東 京 で す 。 O K = 7; Japanese: 東 京 で す = 4
    assert (s["chars"], s["japanese_chars"], s["tokens"]) == (7, 4, 4)
    assert s["japanese_share"] == pytest.approx(4 / 7) and s["chars_per_token"] == pytest.approx(7 / 4)
    assert s["in_japanese"] is True
    assert ja_eval.answer_stats("Tokyo.", tokens=2)["in_japanese"] is False
    assert ja_eval.answer_stats("", tokens=0)["chars_per_token"] == 0.0


def test_generation_check_on_the_tiny_model(tmp_path, qwen3_tokenizer):
    model = save_tiny_checkpoint(tmp_path / "tiny", "qwen3")
    out = tmp_path / "eval"
    argv = ["generate", "--model", str(model), "--out", str(out), "--limit", "3", "--max-new-tokens", "6"]
    assert ja_eval.main(argv) == 0
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    prompts = [json.loads(line) for line in (ROOT / "data/samples/ja_prompts.jsonl").read_text().splitlines()][:3]
    assert [r["prompt"] for r in rows] == [p["prompt"] for p in prompts]
    for r in rows:
        # Each row's statistics recomputed from its stored answer; a random model emits 1-6 tokens.
        assert r == r | ja_eval.answer_stats(r["answer"], r["tokens"])
        assert 0 < r["tokens"] + r["stopped"] <= 6
        assert r["prompt_tokens"] == len(qwen3_tokenizer(r["prompt"], add_special_tokens=False)["input_ids"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["answers"] == 3 and summary["in_japanese"] == sum(r["in_japanese"] for r in rows)
    tokens = sum(r["tokens"] for r in rows)
    assert summary["chars_per_token"] == pytest.approx(sum(r["chars"] for r in rows) / tokens)
    # The real tokenizer on the bundled Japanese prompts: about 1-2 Japanese characters per token.
    ratio = sum(japanese_chars(p["prompt"]) for p in prompts) / sum(r["prompt_tokens"] for r in rows)
    assert summary["prompt_japanese_chars_per_token"] == pytest.approx(ratio) and 1.0 < ratio < 2.2


def test_bundled_prompts_are_japanese():
    prompts = ja_eval.load_prompts(ja_eval.DEFAULT_PROMPTS, None)
    assert len(prompts) >= 8 and all(ja_eval.answer_stats(p["prompt"], 1)["japanese_share"] > 0.8 for p in prompts)


def test_harness_without_lm_eval_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval -> ImportError, installed or not
    assert ja_eval.main(["harness", "--model", "Qwen/Qwen2.5-7B"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "lm_eval[japanese_leaderboard]"' in err and "Traceback" not in err


def test_harness_model_args_and_adapter_base(tmp_path):
    assert (
        ja_eval.harness_model_args("Qwen/Qwen2.5-7B", None, "bfloat16") == "pretrained=Qwen/Qwen2.5-7B,dtype=bfloat16"
    )
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen3-8B"}))
    base = ja_eval.resolve_model(None, str(adapter))
    assert base == "Qwen/Qwen3-8B"
    assert ja_eval.harness_model_args(base, str(adapter), "bfloat16").endswith(f",peft={adapter}")
    assert ja_eval.default_out(base, str(adapter)) == adapter / "eval_ja"
    assert ja_eval.default_out("Qwen/Qwen3-8B", None) == Path("eval_results/Qwen/Qwen3-8B/eval_ja")


def test_harness_summary_picks_each_tasks_metric():
    results = {
        "results": {
            "ja_leaderboard_jcommonsenseqa": {"alias": "jcqa", "acc,none": 0.8, "acc_stderr,none": 0.01},
            "ja_leaderboard_jsquad": {"exact_match,whitespaces": 0.6, "exact_match_stderr,whitespaces": 0.02},
            "ja_leaderboard_xlsum": {"rouge2,whitespaces": 0.1, "rouge2_stderr,whitespaces": "N/A"},
        }
    }
    s = ja_eval.summarise_harness(results)
    assert s["tasks"]["ja_leaderboard_jsquad"] == {"metric": "exact_match,whitespaces", "value": 0.6, "stderr": 0.02}
    assert s["tasks"]["ja_leaderboard_xlsum"]["stderr"] is None
    assert s["average"] == pytest.approx((0.8 + 0.6 + 0.1) / 3)
