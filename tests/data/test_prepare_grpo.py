"""GRPO data: seeded Countdown problems that are solvable, GSM8K/MATH rows with their gold answers, the CLIs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qwen_recipes.data.formats import SkipRow, get_preprocessor
from qwen_recipes.data.prepare.grpo import (
    BOXED_INSTRUCTION,
    countdown_main,
    countdown_row,
    countdown_rows,
    gsm8k_answer,
    gsm8k_main,
    gsm8k_row,
    make_countdown_problem,
    math_row,
)
from qwen_recipes.training.rewards import accuracy, countdown

ROOT = Path(__file__).resolve().parents[2]
GSM8K_TINY = ROOT / "data/samples/gsm8k_tiny.jsonl"


def test_countdown_rows_are_seeded_and_every_reference_equation_scores_one():
    rows = countdown_rows(200, seed=7)
    assert rows == countdown_rows(200, seed=7)
    assert rows != countdown_rows(200, seed=8)
    completions = [f"<think>x</think><answer>{r['equation']}</answer>" for r in rows]
    targets, nums = [r["target"] for r in rows], [r["nums"] for r in rows]
    assert countdown(completions, target=targets, nums=nums, use_all=True) == [1.0] * 200
    assert all(3 <= len(n) <= 4 and all(1 <= x <= 100 for x in n) for n in nums)
    assert all(1 <= t <= 100 for t in targets)
    assert {len(n) for n in nums} == {3, 4}


def test_countdown_row_is_a_conversational_prompt_with_reward_columns():
    row = countdown_row({"target": "24", "nums": [3, 5, 3]})
    assert set(row) == {"prompt", "target", "nums"} and row["target"] == 24 and row["nums"] == [3, 5, 3]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    user = row["prompt"][1]["content"]
    assert user.startswith("Using the numbers [3, 5, 3], create an equation that equals 24.")
    assert "<answer> </answer>" in user
    assert [m["role"] for m in countdown_row({"target": 1, "nums": [1]}, system=None)["prompt"]] == ["user"]
    with pytest.raises(SkipRow, match="missing field"):
        countdown_row({"target": 3})
    with pytest.raises(SkipRow, match="wrong type"):
        countdown_row({"target": "x", "nums": [1]})
    assert get_preprocessor("countdown") is countdown_row


def test_make_countdown_problem_respects_limits():
    rng = random.Random(0)
    for _ in range(50):
        p = make_countdown_problem(rng, min_nums=2, max_nums=2, max_number=10, max_target=20)
        assert len(p["nums"]) == 2 and max(p["nums"]) <= 10 and 1 <= p["target"] <= 20


@pytest.mark.parametrize(
    ("solution", "gold"),
    [("He has 3 + 4 = <<3+4=7>>7.\n#### 7", "7"), ("#### 1,250", "1250"), ("x\n#### -3.5", "-3.5"), ("42", "42")],
)
def test_gsm8k_answer(solution, gold):
    assert gsm8k_answer(solution) == gold


def test_gsm8k_row_from_the_bundled_sample_and_accuracy_on_its_gold():
    raw = [json.loads(line) for line in GSM8K_TINY.read_text().splitlines()]
    assert len(raw) == 8
    rows = [gsm8k_row(r) for r in raw]
    assert [r["answer"] for r in rows] == ["14", "8", "210", "600", "30", "360", "30", "15000"]
    first = rows[0]
    assert first["prompt"] == [{"role": "user", "content": f"{raw[0]['question']}\n{BOXED_INSTRUCTION}"}]
    boxed = [f"So it is \\boxed{{{r['answer']}}}." for r in rows]
    assert accuracy(boxed, answer=[r["answer"] for r in rows]) == [1.0] * 8
    assert gsm8k_row(raw[0], instruction=None)["prompt"][0]["content"] == raw[0]["question"]
    assert get_preprocessor("gsm8k") is gsm8k_row


def test_gsm8k_row_skips_rows_without_final_answer():
    with pytest.raises(SkipRow, match="no final answer"):
        gsm8k_row({"question": "q", "answer": "no marker here"})
    with pytest.raises(SkipRow, match="missing field"):
        gsm8k_row({"question": "q"})
    with pytest.raises(SkipRow, match="no question"):
        gsm8k_row({"question": " ", "answer": "#### 3"})


def test_math_row_takes_answer_or_last_box():
    row = math_row({"problem": "Simplify 2/4.", "solution": "It is $\\boxed{\\frac{1}{2}}$."})
    assert row["answer"] == "\\frac{1}{2}" and row["prompt"][0]["content"].startswith("Simplify 2/4.\n")
    assert math_row({"problem": "p", "solution": "\\boxed{1}", "answer": "2"})["answer"] == "2"
    with pytest.raises(SkipRow, match="no final answer"):
        math_row({"problem": "p", "solution": "no box"})


def test_countdown_cli_writes_the_same_file_for_the_same_seed(tmp_path, capsys):
    assert countdown_main(["--out", str(tmp_path / "a.jsonl"), "--n", "20", "--seed", "3"]) == 0
    assert countdown_main(["--out", str(tmp_path / "b.jsonl"), "--n", "20", "--seed", "3"]) == 0
    a = (tmp_path / "a.jsonl").read_bytes()
    assert a == (tmp_path / "b.jsonl").read_bytes()
    rows = [json.loads(line) for line in a.decode().splitlines()]
    assert len(rows) == 20 and rows == countdown_rows(20, seed=3)
    assert "wrote 20 Countdown problems" in capsys.readouterr().out
    assert countdown_main(["--out", str(tmp_path / "c.jsonl"), "--n", "0"]) == 2
    assert "--n=0 must be positive" in capsys.readouterr().err


def test_gsm8k_cli_on_a_local_file_counts_skips(tmp_path, capsys):
    src = tmp_path / "raw.jsonl"
    lines = GSM8K_TINY.read_text().splitlines()
    src.write_text("\n".join([*lines, json.dumps({"question": "q", "answer": "none"}), "{broken"]) + "\n")
    out = tmp_path / "gsm8k.jsonl"
    assert gsm8k_main(["--source", str(src), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["answer"] for r in rows][:2] == ["14", "8"] and len(rows) == 8
    printed = capsys.readouterr().out
    assert "wrote 8 prompt rows" in printed and "no final answer: 1" in printed and "invalid JSON: 1" in printed
    assert gsm8k_main(["--source", str(src), "--out", str(out), "--n", "3", "--seed", "1"]) == 0
    assert len(out.read_text().splitlines()) == 3


def test_gsm8k_cli_offline_hub_id_is_a_message_not_a_traceback(tmp_path, capsys):
    assert gsm8k_main(["--source", "no-such-org/no-such-set", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "no-such-org/no-such-set" in capsys.readouterr().err
