"""Regenerate data/samples/arithmetic_sft.jsonl: a learnable synthetic task with short thinking traces.

    python data/make_samples.py

Two-digit additions and subtractions. Assistant turns carry the working as `reasoning_content` (trained inside
<think> on Qwen3) and the answer as content. A third of the rows are non-thinking (no reasoning), so the
quickstart also exercises Qwen3's hybrid template. Fixed seed: the file is reproducible byte for byte.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).parent / "samples" / "arithmetic_sft.jsonl"


def make_row(rng: random.Random) -> dict:
    """One conversation."""
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    op = rng.choice("+-")
    result = a + b if op == "+" else a - b
    question = f"What is {a} {op} {b}?"
    answer = f"The answer is {result}."
    assistant = {"role": "assistant", "content": answer}
    if rng.random() < 2 / 3:
        tens = (a // 10 + b // 10) * 10 if op == "+" else (a // 10 - b // 10) * 10
        units = a % 10 + b % 10 if op == "+" else a % 10 - b % 10
        assistant["reasoning_content"] = f"Tens: {tens}. Units: {units}. {tens} + {units} = {result}."
    return {"messages": [{"role": "user", "content": question}, assistant]}


def main() -> None:
    rng = random.Random(1234)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as fh:
        for _ in range(400):
            fh.write(json.dumps(make_row(rng), ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
