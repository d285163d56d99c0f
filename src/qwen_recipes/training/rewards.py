"""GRPO reward functions: small pure functions over completions, and a registry that binds recipe kwargs.

Each reward has TRL's reward-function signature (trl 1.16 `GRPOTrainer._calculate_rewards`): it is called as
`f(prompts=..., completions=..., completion_ids=..., **columns, trainer_state=..., log_extra=..., log_metric=...)`
where `completions` are strings (plain prompts) or one-message lists `[{"role": "assistant", "content": ...}]`
(conversational prompts) and every other dataset column arrives as a list with one value per completion. Each
returns one float per completion (or None where it does not apply; TRL then ignores that entry).

Untrusted model output is never `eval`-ed: Countdown equations go through a whitelist of characters and AST nodes
and are computed with exact fractions; math answers go through math-verify with a length cap and its timeout.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from qwen_recipes.evaluation.answers import ANSWER_TAG, final_answer, math_equal

# Dataset columns each reward reads (checked before training, so a wrong dataset fails with a message).
REQUIRED_COLUMNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "accuracy": (("answer", "solution"),),  # one of these
    "countdown": (("target",), ("nums",)),
    "choice": (("answer", "solution"),),
}
# Dataset columns a reward reads when present (never recipe options).
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {"choice": ("options",)}
MAX_ANSWER_CHARS = 200  # a final answer longer than this is not an answer; it also bounds sympy's work
THINK_ANSWER = re.compile(r"^\s*(?:<think>)?(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*$", re.S)
THINK_ONLY = re.compile(r"^\s*(?:<think>)?(?P<think>.*?)</think>(?P<answer>.*)$", re.S)
# s1 markers reuse <|im_start|>, a special token that TRL's decode (skip_special_tokens=True) removes, so each
# marker is accepted with the token or, without it, at the start of a line.
S1_FORMAT = re.compile(
    r"^\s*(?:<\|im_start\|>)?think\n(?P<think>.*?)(?:<\|im_start\|>|\n)answer\n(?P<answer>.*)$",
    re.S,
)


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as is, a message list's assistant text (reasoning re-wrapped)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list):
        parts = []
        for message in completion:
            if not isinstance(message, dict) or message.get("role", "assistant") != "assistant":
                continue
            # A tokenizer with a response parser splits the think block off into `reasoning_content`.
            reasoning = message.get("reasoning_content") or message.get("thinking")
            content = message.get("content") or ""
            if isinstance(content, list):  # multimodal-style content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            parts.append(f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else str(content))
        return "".join(parts)
    return "" if completion is None else str(completion)


def extract_answer(text: str) -> str | None:
    """The final answer of a completion (`evaluation.answers.final_answer`): tag, box or `Answer:` after thinking."""
    return final_answer(text)


def accuracy(
    completions: list[Any], answer: list[Any] | None = None, solution: list[Any] | None = None, **kwargs: Any
) -> list[float | None]:
    """1.0 when the final answer (`\\boxed{}`, `Answer:` or `<answer>`) equals the gold `answer`/`solution`."""
    golds = answer if answer is not None else solution
    if golds is None:
        raise ValueError("reward 'accuracy' needs an 'answer' (or 'solution') column in the dataset")
    out: list[float | None] = []
    for completion, gold in zip(completions, golds, strict=True):
        if gold is None or not str(gold).strip():
            out.append(None)  # no gold: this reward does not apply to the row
            continue
        predicted = extract_answer(completion_text(completion))
        if predicted is None or len(predicted) > MAX_ANSWER_CHARS:
            out.append(0.0)
            continue
        ok = math_equal(predicted, str(gold))
        out.append(None if ok is None else float(ok))
    return out


def choice(
    completions: list[Any],
    answer: list[Any] | None = None,
    solution: list[Any] | None = None,
    options: list[Any] | None = None,
    letters: str = "ABCDEFGH",
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when the chosen option (its letter, or its text, in `<answer>`) is the gold letter (Cosmos-Reason1's
    single-choice reward), scored by evaluation.vqa.score_answer, the offline VQA evaluation's scorer."""
    from qwen_recipes.evaluation.vqa import score_answer

    golds = answer if answer is not None else solution
    if golds is None:
        raise ValueError("reward 'choice' needs an 'answer' (or 'solution') column holding the gold letter")
    options = options if options is not None else [None] * len(golds)
    out: list[float | None] = []
    for completion, gold, opts in zip(completions, golds, options, strict=True):
        if gold is None or not str(gold).strip():
            out.append(None)
            continue
        out.append(float(score_answer(completion_text(completion), str(gold), opts, letters)[0]))
    return out


# ----------------------------------------------------------------------------------------------- Countdown

_EQUATION_CHARS = re.compile(r"^[\d\s+\-*/().]+$")
_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b}


class EquationError(ValueError):
    """An equation that is not plain arithmetic on integers (rejected before any evaluation)."""


def parse_equation(text: str, max_chars: int = 200) -> ast.expr:
    """The AST of an arithmetic expression of integers, + - * / and parentheses; anything else is refused."""
    text = text.replace("×", "*").replace("÷", "/").replace("−", "-").strip()
    if not text or len(text) > max_chars:
        raise EquationError(f"equation is empty or longer than {max_chars} characters")
    if not _EQUATION_CHARS.match(text):
        raise EquationError("only digits, + - * / and parentheses are allowed")
    if "**" in text or "//" in text:
        raise EquationError("only + - * / are allowed")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise EquationError(f"not an arithmetic expression: {type(e).__name__}") from None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Expression, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div)):
            continue
        if isinstance(node, ast.Constant) and type(node.value) is int:
            continue
        raise EquationError(f"{type(node).__name__} is not allowed in a Countdown equation")
    return tree.body


def equation_numbers(node: ast.expr) -> list[int]:
    """The integer literals of a parsed equation, left to right."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)]


def evaluate_equation(node: ast.expr) -> Fraction:
    """Exact value of a parsed equation; ZeroDivisionError on division by zero."""
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    if isinstance(node, ast.BinOp):
        left, right = evaluate_equation(node.left), evaluate_equation(node.right)
        if isinstance(node.op, ast.Div):
            if right == 0:
                raise ZeroDivisionError("division by zero")
            return left / right
        return _BINOPS[type(node.op)](left, right)
    raise EquationError(f"{type(node).__name__} is not allowed")  # parse_equation already refused it


def _equation_side(answer: str) -> str:
    """'55 + 36 - 26 = 65' -> '55 + 36 - 26': drop sides of '=' that are a bare number."""
    sides = [s.strip() for s in answer.split("=")]
    exprs = [s for s in sides if not re.fullmatch(r"\d+", s)]
    return exprs[0] if len(exprs) == 1 else answer


def countdown(
    completions: list[Any],
    target: list[Any],
    nums: list[Any],
    format_score: float = 0.1,
    use_all: bool = False,
    max_chars: int = 200,
    **kwargs: Any,
) -> list[float]:
    """1.0 for an equation in `<answer>` that hits `target` using each of `nums` at most once (all, if `use_all`).

    A well-formed equation that misses (wrong value, a number not given or used twice, division by zero) scores
    `format_score` (TinyZero's 0.1); no answer or text that is not arithmetic scores 0.
    """
    out = []
    for completion, goal, given in zip(completions, target, nums, strict=True):
        text = completion_text(completion)
        tags = ANSWER_TAG.findall(text)
        if not tags:
            out.append(0.0)
            continue
        try:
            node = parse_equation(_equation_side(tags[-1]), max_chars=max_chars)
        except EquationError:
            out.append(0.0)
            continue
        used, available = Counter(equation_numbers(node)), Counter(int(n) for n in given)
        numbers_ok = used == available if use_all else not (used - available)
        try:
            hit = numbers_ok and evaluate_equation(node) == Fraction(int(goal))
        except ZeroDivisionError:
            hit = False
        out.append(1.0 if hit else float(format_score))
    return out


# ----------------------------------------------------------------------------------------------- format and length


def think_format(completions: list[Any], answer_tag: bool = True, **kwargs: Any) -> list[float]:
    """1.0 for a non-empty `<think>…</think>` then `<answer>…</answer>` and nothing else (Qwen3 / R1 format).

    The opening `<think>` may be missing because the prompt can open the block (a chat template's generation prompt
    or a prefilled assistant turn). With `answer_tag=False`, any non-empty text after `</think>` counts.
    """
    pattern = THINK_ANSWER if answer_tag else THINK_ONLY
    out = []
    for completion in completions:
        m = pattern.match(completion_text(completion))
        ok = bool(m) and m["think"].strip() != "" and m["answer"].strip() != ""
        ok = ok and "<think>" not in m["think"] and "<think>" not in m["answer"] and "</think>" not in m["answer"]
        out.append(1.0 if ok else 0.0)
    return out


def s1_format(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 for s1's `<|im_start|>think\\n…<|im_start|>answer\\n…` with non-empty thinking and answer."""
    out = []
    for completion in completions:
        m = S1_FORMAT.match(completion_text(completion))
        ok = bool(m) and m["think"].strip() != "" and m["answer"].strip() != ""
        out.append(1.0 if ok and "<|im_start|>" not in m["answer"] else 0.0)
    return out


def length(
    completions: list[Any],
    completion_ids: list[list[int]] | None = None,
    max_tokens: int = 1024,
    buffer_tokens: int | None = None,
    **kwargs: Any,
) -> list[float]:
    """DAPO's soft overlong penalty (TRL's `get_soft_overlong_punishment`): 0 up to `max_tokens - buffer_tokens`,
    then linear down to -1 at `max_tokens`.

    Lengths are tokens from `completion_ids` (TRL passes them), else characters when called without ids.
    """
    from trl.rewards import get_soft_overlong_punishment

    buffer = max_tokens // 4 if buffer_tokens is None else buffer_tokens
    if not 0 < buffer <= max_tokens:
        raise ValueError(f"length: buffer_tokens={buffer} must be in 1..max_tokens ({max_tokens})")
    sizes = completion_ids if completion_ids is not None else [completion_text(c) for c in completions]
    return get_soft_overlong_punishment(max_tokens, buffer)(completion_ids=sizes)


# ----------------------------------------------------------------------------------------------- registry

REWARDS: dict[str, Callable[..., list[float | None]]] = {
    "accuracy": accuracy,
    "choice": choice,
    "countdown": countdown,
    "think_format": think_format,
    "s1_format": s1_format,
    "length": length,
}
# Arguments TRL fills in itself; a recipe cannot bind them.
TRL_ARGS = {"completions", "prompts", "completion_ids", "trainer_state", "log_extra", "log_metric", "kwargs"}


class BoundReward:
    """A registered reward with recipe kwargs bound; picklable, and named so TRL logs `rewards/<name>/mean`."""

    def __init__(self, name: str, func: Callable[..., list[float | None]], kwargs: dict[str, Any]):
        self.__name__ = name
        self.func = func
        self.kwargs = dict(kwargs)

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        """Score completions; the recipe's kwargs win over same-named dataset columns."""
        return self.func(completions, **{**kwargs, **self.kwargs})

    def __repr__(self) -> str:
        return f"BoundReward({self.__name__!r}, {self.kwargs!r})"


def reward_options(name: str) -> dict[str, Any]:
    """The keyword arguments a recipe may set for reward `name` (not the ones TRL or the dataset fill in), with types."""
    import typing

    columns = {c for group in REQUIRED_COLUMNS.get(name, ()) for c in group} | set(OPTIONAL_COLUMNS.get(name, ()))
    hints = typing.get_type_hints(REWARDS[name])
    params = inspect.signature(REWARDS[name]).parameters
    return {p: hints.get(p) for p in params if p not in TRL_ARGS and p not in columns}


def get_reward(name: str, **kwargs: Any) -> BoundReward:
    """The reward function `name` with `kwargs` bound; unknown names or options raise ValueError listing the known."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; known rewards: {', '.join(sorted(REWARDS))}")
    options = reward_options(name)
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise ValueError(
            f"reward {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(options) or '(none)'}"
        )
    return BoundReward(name, REWARDS[name], kwargs)
