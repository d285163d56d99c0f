"""GRPO prompt rows: seeded Countdown problems (no download) and GSM8K / MATH-style rows with their gold answers.

A GRPO row is TRL's conversational prompt plus the columns the rewards read (TRL hands every column to every
reward function): `{"prompt": [{"role": "user", ...}], "target": 24, "nums": [3, 5, 3]}` for `countdown`,
`{"prompt": [...], "answer": "42"}` for `accuracy`. The row converters double as recipe `preprocess:` steps.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

from qwen_recipes.data.formats import SkipRow
from qwen_recipes.data.sources import DataError, command_line_path, write_jsonl
from qwen_recipes.evaluation.answers import last_boxed

# TinyZero's prompt for instruct models (Jiayi-Pan/TinyZero examples/data_preprocess/countdown.py, template_type
# qwen-instruct). TinyZero prefilled "Let me solve this step by step.\n<think>" as the assistant's start; TRL's
# GRPOTrainer always adds a fresh generation prompt, so the user turn asks for the <think> block instead.
COUNTDOWN_SYSTEM = (
    "You are a helpful assistant. You first thinks about the reasoning process in the mind and then provides the "
    "user with the answer."
)
COUNTDOWN_USER = (
    "Using the numbers {nums}, create an equation that equals {target}. You can use basic arithmetic operations "
    "(+, -, *, /) and each number can only be used once. Show your work in <think> </think> tags. And return the "
    "final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
)
# Qwen2.5-Math's chain-of-thought instruction; the `accuracy` reward reads the last \boxed{}.
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


# ----------------------------------------------------------------------------------------------- Countdown


def make_countdown_problem(
    rng: random.Random, min_nums: int = 3, max_nums: int = 4, max_number: int = 100, max_target: int = 100
) -> dict[str, Any]:
    """One solvable problem: numbers, a target in 1..max_target, and an equation using every number once."""
    for _ in range(10_000):
        nums = [rng.randint(1, max_number) for _ in range(rng.randint(min_nums, max_nums))]
        pool = [(Fraction(n), str(n)) for n in nums]
        while len(pool) > 1:
            i, j = rng.sample(range(len(pool)), 2)
            (a, ea), (b, eb) = pool[i], pool[j]
            op = rng.choice("+-*/")
            value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]
            if value <= 0 or value.denominator != 1:
                break  # keep every intermediate a positive integer, as a person would play
            pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [(value, f"({ea} {op} {eb})")]
        if len(pool) == 1 and 1 <= pool[0][0] <= max_target:
            equation = pool[0][1]
            return {"target": int(pool[0][0]), "nums": nums, "equation": equation[1:-1] if len(nums) > 1 else equation}
    raise RuntimeError(f"no Countdown problem found with {min_nums}-{max_nums} numbers <= {max_number}")


def countdown_row(row: dict[str, Any], system: str | None = COUNTDOWN_SYSTEM) -> dict[str, Any]:
    """A `{target, nums}` row (ours or Jiayi-Pan/Countdown-Tasks-3to4) -> a GRPO prompt row for `countdown`."""
    if row.get("target") is None or not row.get("nums"):
        raise SkipRow("missing field", "a Countdown row needs 'target' and 'nums'")
    try:
        target, nums = int(row["target"]), [int(n) for n in row["nums"]]
    except (TypeError, ValueError):
        raise SkipRow("wrong type", f"target={row['target']!r} nums={row['nums']!r} must be integers") from None
    prompt = [{"role": "user", "content": COUNTDOWN_USER.format(nums=nums, target=target)}]
    if system:
        prompt.insert(0, {"role": "system", "content": system})
    out: dict[str, Any] = {"prompt": prompt, "target": target, "nums": nums}
    if row.get("equation"):
        out["equation"] = row["equation"]
    return out


def countdown_rows(n: int, seed: int = 42, **problem_kwargs: Any) -> list[dict[str, Any]]:
    """`n` Countdown prompt rows, the same for the same seed."""
    rng = random.Random(seed)
    return [countdown_row(make_countdown_problem(rng, **problem_kwargs)) for _ in range(n)]


# ----------------------------------------------------------------------------------------------- GSM8K / MATH


def gsm8k_answer(solution: str) -> str | None:
    """The final answer of a GSM8K solution (`... #### 1,000` -> '1000'); a bare number is its own answer."""
    text = solution.rsplit("####", 1)[-1] if "####" in solution else solution
    text = text.strip().replace(",", "").rstrip(".").strip()
    if "####" in solution or _is_number(text):
        return text or None
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _user_prompt(question: Any, instruction: str | None) -> list[dict[str, str]]:
    if not isinstance(question, str) or not question.strip():
        raise SkipRow("missing field", "the row has no question text")
    content = f"{question.strip()}\n{instruction}" if instruction else question.strip()
    return [{"role": "user", "content": content}]


def gsm8k_row(row: dict[str, Any], instruction: str | None = BOXED_INSTRUCTION) -> dict[str, Any]:
    """A GSM8K row `{question, answer: '...#### 42'}` -> `{prompt, answer: '42'}` for the `accuracy` reward."""
    solution = row.get("answer")
    if not isinstance(solution, (str, int, float)) or isinstance(solution, bool):
        raise SkipRow("missing field", "a GSM8K row needs 'answer' ending in '#### <number>'")
    gold = gsm8k_answer(str(solution))
    if gold is None:
        raise SkipRow("no final answer", f"answer has no '#### <number>' line: {str(solution)[-60:]!r}")
    return {"prompt": _user_prompt(row.get("question"), instruction), "answer": gold}


def math_row(row: dict[str, Any], instruction: str | None = BOXED_INSTRUCTION) -> dict[str, Any]:
    """A MATH-style row `{problem, solution[, answer]}` -> `{prompt, answer}`; the gold is `answer` or the last box."""
    gold = row.get("answer")
    if gold is None or not str(gold).strip():
        gold = last_boxed(str(row.get("solution") or ""))
    if gold is None or not str(gold).strip():
        raise SkipRow("no final answer", "a MATH row needs 'answer' or a \\boxed{} in 'solution'")
    question = row.get("problem") if row.get("problem") is not None else row.get("question")
    return {"prompt": _user_prompt(question, instruction), "answer": str(gold).strip()}


CONVERTERS = {"gsm8k": gsm8k_row, "math": math_row}


# ----------------------------------------------------------------------------------------------- command lines


def countdown_main(argv: list[str]) -> int:
    """`qwen-recipes prepare countdown --out FILE [--n N] [--seed S]`: write seeded Countdown prompt rows."""
    p = argparse.ArgumentParser(prog="qwen-recipes prepare countdown", description=countdown_main.__doc__)
    p.add_argument("--out", required=True, type=Path, help="output JSONL file")
    p.add_argument("--n", type=int, default=10_000, help="number of problems (default 10000)")
    p.add_argument("--seed", type=int, default=42, help="random seed; the same seed gives the same file")
    p.add_argument("--min-nums", type=int, default=3, help="fewest numbers per problem (TinyZero: 3)")
    p.add_argument("--max-nums", type=int, default=4, help="most numbers per problem (TinyZero: 4)")
    p.add_argument("--max-number", type=int, default=100, help="largest given number")
    p.add_argument("--max-target", type=int, default=100, help="largest target")
    a = p.parse_args(argv)
    problems = []
    if a.n <= 0 or not 1 <= a.min_nums <= a.max_nums:
        problems.append(f"--n={a.n} must be positive and 1 <= --min-nums ({a.min_nums}) <= --max-nums ({a.max_nums})")
    if a.max_number < 1 or a.max_target < 1:
        problems.append(f"--max-number={a.max_number} and --max-target={a.max_target} must be at least 1")
    if problems:
        print("\n".join(f"error: {m}" for m in problems), file=sys.stderr)
        return 2
    kwargs = {"min_nums": a.min_nums, "max_nums": a.max_nums, "max_number": a.max_number, "max_target": a.max_target}
    rows = countdown_rows(a.n, a.seed, **kwargs)
    write_jsonl(a.out, rows)
    print(f"wrote {len(rows)} Countdown problems to {a.out} (seed {a.seed}, {a.min_nums}-{a.max_nums} numbers)")
    return 0


def gsm8k_main(argv: list[str]) -> int:
    """`qwen-recipes prepare gsm8k --out FILE [--source ID_OR_FILE]`: GSM8K/MATH rows -> GRPO prompt rows."""
    from qwen_recipes.data.sources import iter_rows
    from qwen_recipes.recipe.schema import DatasetSpec

    p = argparse.ArgumentParser(prog="qwen-recipes prepare gsm8k", description=gsm8k_main.__doc__)
    p.add_argument("--out", required=True, type=Path, help="output JSONL file")
    p.add_argument("--source", default="openai/gsm8k", help="Hub dataset id or local JSONL/Parquet file or folder")
    p.add_argument("--name", default=None, help="Hub config name (default 'main' for openai/gsm8k)")
    p.add_argument("--split", default="train")
    p.add_argument("--format", choices=sorted(CONVERTERS), default="gsm8k", help="gsm8k: question/answer with ####")
    p.add_argument("--n", type=int, default=None, help="keep this many rows (shuffled with --seed); default all")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--instruction", default=BOXED_INSTRUCTION, help="appended to each question ('' for none)")
    a = p.parse_args(argv)
    name = a.name if a.name is not None or a.source != "openai/gsm8k" else "main"
    spec = DatasetSpec(path=command_line_path(a.source), name=name, split=a.split)
    convert, rows, skipped, first = CONVERTERS[a.format], [], Counter(), {}
    try:
        for where, raw in iter_rows(spec):
            try:
                if isinstance(raw, SkipRow):
                    raise raw
                rows.append(convert(raw, instruction=a.instruction or None))
            except SkipRow as e:
                skipped[e.reason] += 1
                first.setdefault(e.reason, f"{where}: {e}")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.n is not None and a.n < len(rows):
        rows = random.Random(a.seed).sample(rows, a.n)
    if not rows:
        print(f"error: no usable rows in {a.source} ({dict(skipped)}; first: {first})", file=sys.stderr)
        return 2
    write_jsonl(a.out, rows)
    print(
        f"wrote {len(rows)} prompt rows to {a.out}; skipped {sum(skipped.values())}"
        + "".join(f"\n  {reason}: {count} (first: {first[reason]})" for reason, count in skipped.items())
    )
    return 0
