"""Reward functions on hand-written completions: right, wrong, malformed and adversarial; the registry's errors."""

from __future__ import annotations

import pickle
import time

import pytest

from qwen_recipes.training.rewards import (
    REWARDS,
    EquationError,
    accuracy,
    completion_text,
    countdown,
    extract_answer,
    get_reward,
    length,
    parse_equation,
    s1_format,
    think_format,
)


def conv(text: str) -> list[dict[str, str]]:
    """A completion as TRL passes it for conversational prompts."""
    return [{"role": "assistant", "content": text}]


# ----------------------------------------------------------------------------------------------- completions


def test_completion_text_reads_strings_messages_and_split_off_reasoning():
    assert completion_text("plain") == "plain"
    assert completion_text(conv("hi")) == "hi"
    parsed = [{"role": "assistant", "content": "<answer>4</answer>", "reasoning_content": "2+2"}]
    assert completion_text(parsed) == "<think>\n2+2\n</think>\n\n<answer>4</answer>"
    assert think_format([parsed]) == [1.0]


# ----------------------------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        ("So the total is \\boxed{14}.", "14", 1.0),
        ("First \\boxed{3}, then correcting: \\boxed{\\frac{28}{2}}", "14", 1.0),  # the last box counts
        ("Answer: $1,000.", "1000", 1.0),
        ("Final Answer: 15,000 dollars", "15000", 1.0),
        ("<think>12+2</think><answer>14</answer>", "14", 1.0),
        ("<think>maybe \\boxed{14}</think>\n\nIt is \\boxed{15}.", "14", 0.0),  # the box after thinking counts
        ("<think>maybe \\boxed{14}, then the budget ran out", "14", 1.0),  # no </think>: the whole text
        ("<answer>The total is \\boxed{0.5}</answer>", "\\frac{1}{2}", 1.0),
        ("MATH style", "\\boxed{\\sqrt{2}}", 0.0),  # no final answer in the completion
        ("\\boxed{\\sqrt{2}}", "The side is $\\boxed{\\sqrt{2}}$.", 1.0),  # gold given as a MATH solution
        ("So the total is \\boxed{15}.", "14", 0.0),
        ("\\boxed{2x}", "2x", 1.0),
        ("\\boxed{2y}", "2x", 0.0),  # a variable is not a unit to strip
        ("I think it is 14 but I won't say", "14", 0.0),  # no \boxed, no Answer:, no tag
        ("\\boxed{14", "14", 0.0),  # truncated box
        ("Answer: \\boxed{" + "9" * 500 + "}", "14", 0.0),  # over the answer length cap
    ],
)
def test_accuracy(completion, gold, expected):
    assert accuracy([completion], answer=[gold]) == [expected]
    assert accuracy([conv(completion)], answer=[gold]) == [expected]


def test_accuracy_reads_solution_column_and_skips_rows_without_gold():
    assert accuracy(["\\boxed{6}", "\\boxed{6}"], solution=["$\\boxed{6}$", ""]) == [1.0, None]
    with pytest.raises(ValueError, match="needs an 'answer'"):
        accuracy(["\\boxed{6}"])


def test_accuracy_huge_power_is_wrong_not_hung():
    t0 = time.perf_counter()
    assert accuracy(["\\boxed{2^{99999999}}"], answer=["42"]) == [0.0]
    assert time.perf_counter() - t0 < 12  # math-verify's 5 s timeouts bound sympy


def test_extract_answer_prefers_tag_then_box_then_answer_line():
    assert extract_answer("Answer: 1\n<answer>Answer: 2</answer>") == "2"
    assert extract_answer("\\boxed{a{b}c} and Answer: 9") == "a{b}c"
    assert extract_answer("nothing here") is None


# ----------------------------------------------------------------------------------------------- Countdown


def cd(answers: list[str], target: int = 24, nums: tuple[int, ...] = (3, 5, 3), **kw) -> list[float]:
    completions = [f"<think>try</think>\n<answer>{a}</answer>" for a in answers]
    return countdown(completions, target=[target] * len(answers), nums=[list(nums)] * len(answers), **kw)


def test_countdown_right_answers():
    assert cd(["(3 + 5) * 3", "3*(5+3)", "(3 + 5) × 3", "(3 + 5) * 3 = 24", "24 = (3+5)*3"]) == [1.0] * 5
    assert cd(["(10 - 2) / 4"], target=2, nums=(10, 2, 4)) == [1.0]
    assert cd(["6 / 4 * 2"], target=3, nums=(6, 4, 2)) == [1.0]  # exact fractions: 1.5 * 2
    assert cd(["5 + 3"], target=8) == [1.0]  # 'at most once': an unused 3 is fine by default


def test_countdown_wrong_but_well_formed_scores_format_score():
    assert cd(["3 + 5 + 3"]) == [0.1]  # wrong value
    assert cd(["(3 + 5) * 3 * 3 / 3"]) == [0.1]  # a 3 used three times: only two given
    assert cd(["8 * 3"]) == [0.1]  # 8 is not one of the numbers
    assert cd(["(3 + 5) / (3 - 3)"]) == [0.1]  # division by zero: no crash, no hit
    assert cd(["5 + 3"], target=8, use_all=True) == [0.1]  # TinyZero's rule: all numbers exactly once
    assert cd(["3 + 5 + 3"], format_score=0.0) == [0.0]


@pytest.mark.parametrize(
    "answer",
    [
        "__import__('os').system('x')",
        "().__class__.__bases__[0].__subclasses__()",
        "2**99999999",
        "9**9**9**9",
        "3 // 1",
        "-3 + 27",  # unary minus is not a Countdown operation
        "3.0 * 8",
        "1+" * 5000 + "1",  # very long
        "(" * 300 + "3" + ")" * 300,  # deeper than Python's parser allows
        "lambda: 0",
        "",
        "24 = 24",  # no side is an equation
    ],
)
def test_countdown_adversarial_answers_score_zero_quickly(answer):
    t0 = time.perf_counter()
    assert cd([answer], target=24, nums=(3, 8, 24)) == [0.0]
    assert time.perf_counter() - t0 < 0.5


def test_countdown_bare_number_uses_it_once():
    assert cd(["24"], target=24, nums=(3, 8, 24)) == [1.0]  # the number itself, used once
    assert cd(["24"], target=24, nums=(3, 8)) == [0.1]  # not given


def test_countdown_never_evaluates_text(monkeypatch):
    import builtins

    def refuse(*args, **kwargs):
        raise AssertionError("eval/exec called on model output")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    assert cd(["(3 + 5) * 3", "__import__('os').system('x')"]) == [1.0, 0.0]


def test_countdown_needs_an_answer_tag_and_reads_the_last_one():
    assert countdown(["(3 + 5) * 3"], target=[24], nums=[[3, 5, 3]]) == [0.0]
    two = "<answer>3+5</answer> no wait <answer>(3+5)*3</answer>"
    assert countdown([conv(two)], target=[24], nums=[[3, 5, 3]]) == [1.0]


def test_parse_equation_refuses_names_calls_and_power():
    for text in ("x + 1", "abs(3)", "2**3", "3 if 1 else 2", "[3]"):
        with pytest.raises(EquationError):
            parse_equation(text)


# ----------------------------------------------------------------------------------------------- formats


def test_think_format():
    good = "<think>\n3 and 5 make 8, times 3.\n</think>\n\n<answer>(3+5)*3</answer>"
    assert think_format([good, conv(good)]) == [1.0, 1.0]
    assert think_format(["3 and 5 make 8</think><answer>24</answer>"]) == [1.0]  # the prompt opened <think>
    bad = [
        "<answer>24</answer>",  # no thinking
        "<think>  </think><answer>24</answer>",  # empty thinking
        "<think>x</think><answer></answer>",  # empty answer
        "<think>x</think><answer>24</answer> and more text",  # trailing text
        "<think>x</think>",  # truncated before the answer
        "<think>x<think>y</think><answer>24</answer>",  # nested opener
        "<think>x</think><think>y</think><answer>24</answer>",
        "",
    ]
    assert think_format(bad) == [0.0] * len(bad)


def test_think_format_without_answer_tag_accepts_qwen3_native_output():
    native = "<think>\nLet me add.\n</think>\n\nThe total is \\boxed{14}."
    assert think_format([native], answer_tag=False) == [1.0]
    assert think_format([native]) == [0.0]
    assert think_format(["<think>\n\n</think>\n\n14"], answer_tag=False) == [0.0]  # non-thinking mode


def test_s1_format_with_and_without_the_special_token():
    with_token = "<|im_start|>think\nadd them\n<|im_start|>answer\nAnswer: 14"
    decoded = "think\nadd them\nanswer\nAnswer: 14"  # what decode(skip_special_tokens=True) leaves
    assert s1_format([with_token, conv(decoded)]) == [1.0, 1.0]
    bad = [
        "Answer: 14",
        "<|im_start|>think\nadd them",  # never answered (budget ran out)
        "<|im_start|>think\n\n<|im_start|>answer\nAnswer: 14",  # empty thinking
        "think\nthe answer\nis 14",  # 'answer' not on its own line as a marker
        "<|im_start|>think\nx\n<|im_start|>answer\n",  # empty answer
    ]
    assert s1_format(bad) == [0.0] * len(bad)


# ----------------------------------------------------------------------------------------------- length


def test_length_is_dapo_soft_overlong_penalty():
    ids = [[0] * n for n in (100, 768, 896, 1024, 5000)]
    assert length(["x"] * 5, completion_ids=ids, max_tokens=1024) == [0.0, 0.0, -0.5, -1.0, -1.0]
    assert length(["x" * 10, "x" * 30], max_tokens=20, buffer_tokens=10) == [0.0, -1.0]  # characters without ids
    with pytest.raises(ValueError, match="buffer_tokens=0"):
        length(["x"], max_tokens=10, buffer_tokens=0)


# ----------------------------------------------------------------------------------------------- registry


def test_get_reward_binds_options_names_itself_and_pickles():
    reward = get_reward("countdown", use_all=True, format_score=0.0)
    assert reward.__name__ == "countdown"
    from trl.trainer.utils import get_callable_name

    assert get_callable_name(reward) == "countdown"  # TRL logs rewards/countdown/mean
    done = "<answer>5 + 3</answer>"
    assert reward([done], target=[8], nums=[[3, 5, 3]], trainer_state=None, log_metric=None) == [0.0]
    assert get_reward("countdown")([done], target=[8], nums=[[3, 5, 3]]) == [1.0]
    assert pickle.loads(pickle.dumps(reward))([done], target=[8], nums=[[5, 3]]) == [1.0]


def test_get_reward_errors_list_what_is_known():
    with pytest.raises(ValueError) as e:
        get_reward("acuracy")
    assert str(e.value) == (
        "unknown reward 'acuracy'; known rewards: accuracy, choice, countdown, length, s1_format, think_format"
    )
    with pytest.raises(ValueError, match=r"reward 'countdown' has no option 'target'; its options: format_score"):
        get_reward("countdown", target=3)  # a dataset column, not an option
    assert set(REWARDS) == {"accuracy", "choice", "countdown", "length", "s1_format", "think_format"}
