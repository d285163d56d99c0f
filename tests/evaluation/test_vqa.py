"""The VL scorers (multiple choice / VQA, pointing, counting), the `choice` reward, and eval-vqa end to end."""

from __future__ import annotations

import json

import pytest
from helpers import ROOT, write_jsonl

from qwen_recipes.evaluation.pointing import extract_count, extract_points, score_count, score_points
from qwen_recipes.evaluation.vqa import normalize, score_answer

COSMOS = "<think>\nThe shape has no corners.\n</think>\n\n<answer>\n{}\n</answer>"


@pytest.mark.parametrize(
    ("response", "gold", "options", "expected"),
    [
        (COSMOS.format("A"), "A", None, (True, "A")),
        (COSMOS.format("(b) square"), "B", None, (True, "B")),
        (COSMOS.format("square"), "B", ["circle", "square", "triangle"], (True, "B")),  # the option's text
        (COSMOS.format("square"), "B", {"A": "circle", "B": "Square"}, (True, "B")),  # Cosmos' index2ans
        (COSMOS.format("C"), "B", None, (False, "C")),
        ("<think>maybe (A)</think>\n\nThe answer is (E).", "E", None, (True, "E")),  # letters beyond D
        ("no idea", "A", None, (False, None)),
    ],
)
def test_multiple_choice(response, gold, options, expected):
    assert score_answer(response, gold, options) == expected


def test_free_form_vqa_is_normalised():
    assert normalize("The Two red circles!") == "2 red circles"
    assert score_answer("<answer>two</answer>", "2") == (True, "2")
    assert score_answer("Answer: A red circle.", "red circle")[0]
    assert not score_answer("Answer: a blue circle", "red circle")[0]


def test_pointing_and_counting_scores():
    two = '<points x1="10.0" y1="20.0" x2="60.5" y2="40.0" alt="dots">dots</points>'
    assert extract_points(two) == [(10.0, 20.0), (60.5, 40.0)]
    assert extract_points('<point x="150" y="20">x</point> <point x="5.5" y="7">y</point>') == [(5.5, 7.0)]
    assert score_points(two, [[11, 21], [60, 40]]) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "predicted": 2}
    # one prediction near both ground-truth points still hits only one of them (one-to-one matching)
    assert score_points('<point x="50" y="50">a</point>', [[50, 51], [51, 50]])["recall"] == 0.5
    half = score_points(two, [[11, 21], [90, 90]])
    assert (half["precision"], half["recall"], half["f1"]) == (0.5, 0.5, 0.5)
    assert score_points("There are none.", [])["f1"] == 1.0 and score_points(two, [])["f1"] == 0.0
    assert extract_count(f"Counting the {two} shows a total of 2.") == 2
    assert extract_count("I see three dots.") == 3 and extract_count("There are none.") == 0
    assert score_count("a total of 4", 3) == {"correct": 0.0, "close": 1.0, "valid": 1.0}
    assert score_count("many", 3)["valid"] == 0.0


def test_choice_reward_scores_like_the_evaluation():
    from qwen_recipes.training.rewards import REQUIRED_COLUMNS, get_reward, reward_options

    reward = get_reward("choice")
    completions = [[{"role": "assistant", "content": COSMOS.format(x)}] for x in ("A", "square", "C")]
    assert reward(completions, answer=["A", "B", "B"], options=[["circle", "square", "triangle"]] * 3) == [
        1.0,
        1.0,
        0.0,
    ]
    assert reward(completions[:1], answer=[""]) == [None]  # no gold letter: the reward does not apply
    assert "options" not in reward_options("choice") and REQUIRED_COLUMNS["choice"] == (("answer", "solution"),)
    fmt = get_reward("think_format")  # Cosmos' format reward: <think>…</think> then <answer>…</answer>, nothing else
    assert fmt([COSMOS.format("A"), "A", "<think></think><answer>A</answer>"]) == [1.0, 0.0, 0.0]


def test_eval_vqa_scores_a_model_folder_on_local_rows(tmp_path):
    from qwen_recipes.cli import main
    from qwen_recipes.testbed import save_tiny_checkpoint

    model = save_tiny_checkpoint(tmp_path / "model", "qwen2_5_vl")
    rows = [json.loads(line) for line in (ROOT / "data/samples/vision/shapes_mcq.jsonl").read_text().splitlines()[:2]]
    points = json.loads((ROOT / "data/samples/vision/points_counts.jsonl").read_text().splitlines()[2])
    for row in rows:
        row["prompt"][0]["content"][0]["image"] = str(
            ROOT / "data/samples/vision" / row["prompt"][0]["content"][0]["image"]
        )
    points["images"] = [str(ROOT / "data/samples/vision" / points["images"][0])]
    mcq, sft = write_jsonl(tmp_path / "mcq.jsonl", rows), write_jsonl(tmp_path / "points.jsonl", [points])
    assert main(["eval-vqa", str(model), "--data", str(mcq), str(sft), "--max-new-tokens", "3"]) == 0
    summary = json.loads((model / "eval" / "vqa_summary.json").read_text())
    assert summary["rows"] == 3 and summary["vqa"]["n"] == 2 and summary["pointing"]["n"] == 1
    assert summary["vqa"]["correct"] == 0.0  # a random model names no option
    answers = [json.loads(line) for line in (model / "eval" / "vqa_answers.jsonl").read_text().splitlines()]
    assert [a["kind"] for a in answers] == ["vqa", "vqa", "pointing"]
    assert [a["where"] for a in answers] == [f"{mcq}:1", f"{mcq}:2", f"{sft}:1"]
