"""AIME/MATH scoring with math-verify and GPQA letter extraction on hand-written responses."""

from __future__ import annotations

import pytest

from qwen_recipes.evaluation.scoring import (
    answer_segment,
    extract_choice,
    extract_final,
    last_boxed,
    score_choice,
    score_math,
)

THINK = "<|im_start|>think\nLet me see. Maybe \\boxed{99}? No.\n<|im_start|>answer\n"


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        (THINK + "Answer: 0.5", "\\frac{1}{2}"),
        (THINK + "Final Answer: The final answer is $\\boxed{\\frac{1}{2}}$", "0.5"),
        (THINK + "So $x = \\boxed{\\dfrac{3}{4}}$.", "0.75"),
        (THINK + "Answer: 023", "23"),  # AIME answers are written with leading zeros
        (THINK + "Answer: $\\sqrt{2}/2$", "\\frac{\\sqrt{2}}{2}"),
        (THINK + "Answer: x = 5", "5"),
        ("<think>\nhmm\n</think>\n\nThe answer is $\\boxed{204}$.", "204"),
        (THINK + "\\boxed{(1, -2)}", "(1,-2)"),
    ],
)
def test_math_correct(response, gold):
    correct, extracted = score_math(response, gold)
    assert correct, (extracted, gold)


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        (THINK + "Answer: 0.49", "\\frac{1}{2}"),
        (THINK + "Final Answer: $\\boxed{24}$", "25"),
        # The boxed 99 inside the thinking must not count: only the answer segment is read.
        (THINK + "I could not finish.", "99"),
        (THINK + "Answer: $\\boxed{(1, 2)}$", "(1,-2)"),
        (THINK, "7"),
    ],
)
def test_math_incorrect(response, gold):
    correct, extracted = score_math(response, gold)
    assert not correct, (extracted, gold)


def test_extraction_helpers():
    assert answer_segment(THINK + "Answer: 3") == "Answer: 3"
    assert answer_segment("no markers") == "no markers"
    assert last_boxed("a \\boxed{1} b \\boxed{\\frac{2}{3}} c") == "\\frac{2}{3}"
    assert last_boxed("\\boxed 5$") == "5"
    assert last_boxed("\\boxed{unclosed") is None
    assert extract_final(THINK + "Answer: 12\n\nMore text. Final Answer: 13") == "13"


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        (THINK + "Answer: B", "B"),
        (THINK + "Nitrogen dominates.\n\nAnswer: (C) Argon", "C"),
        (THINK + "The answer is D.", "D"),
        (THINK + "$\\boxed{A}$", "A"),
        (THINK + "Answer: **b**", "B"),
        (THINK + "Answer: $\\text{(B)}$", "B"),
        ("<think>\nA or B?\n</think>\n\nC", "C"),
    ],
)
def test_choice_extraction(response, letter):
    assert extract_choice(response) == letter
    assert score_choice(response, letter) == (True, letter)
    other = "A" if letter != "A" else "B"
    assert score_choice(response, other) == (False, letter)


@pytest.mark.parametrize(
    "response",
    [
        THINK + "Answer: None of the above",
        THINK + "A nitrogen molecule has two atoms.",  # a sentence starting with "A" is not a choice
        THINK + "The answer is a prime number.",
        # "Answer: B" appears only in the thinking, the answer segment has no letter.
        "<|im_start|>think\nAnswer: B\n<|im_start|>answer\nI am not sure.",
    ],
)
def test_choice_not_found(response):
    assert extract_choice(response) is None
    assert score_choice(response, "A") == (False, None)
