"""Scoring for the s1 benchmarks without a paid judge: AIME24 / MATH500 with math-verify, GPQA by answer letter.

The answer comes from `answers.final_answer` (the answer segment after `<|im_start|>answer` or `</think>`, as s1's
lm-evaluation-harness tasks split on `<|im_start|>answer\\n`), else the whole segment. s1 asks gpt-4o-mini to map
unparsable answers to an option; here such answers simply score 0 and are reported, so scores can be slightly below
s1's on free-form answers.
"""

from __future__ import annotations

import functools
import re

from qwen_recipes.evaluation.answers import ANSWER_LINE, answer_segment, final_answer, last_boxed, math_equal


def extract_final(response: str) -> str:
    """The final answer text (`answers.final_answer`), else the whole answer segment."""
    found = final_answer(response)
    return found if found is not None else answer_segment(response).strip()


def score_math(response: str, gold: str) -> tuple[bool, str]:
    """(correct, extracted answer) for an AIME/MATH response against the reference answer."""
    extracted = extract_final(response)
    equal = math_equal(extracted, gold)
    return (extracted.strip() == str(gold).strip() if equal is None else equal), extracted


@functools.lru_cache(maxsize=8)
def _choice_patterns(letters: str) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    both = letters + letters.lower()
    return (
        # A candidate that *is* a letter choice: "B", "(B)", "B)", "B. Nitrogen", "**B**", "\text{B}".
        re.compile(rf"^\(?([{both}])\)?(?:[\s.:)]|$)"),
        # A letter named in running text: "the answer is (B)", "correct option: C".
        re.compile(rf"\b(?i:answer|option|choice)\s*(?i:is|:)?\s*\(?([{letters}])\)?(?![A-Za-z])"),
        # A whole answer segment that is only a letter.
        re.compile(rf"\(?([{both}])\)?\.?"),
    )


def _clean(text: str) -> str:
    text = re.sub(r"\\(?:text|textbf|mathrm)\{([^}]*)\}", r"\1", text)
    return text.replace("**", "").strip().strip("$").strip()


def leading_choice(answer: str, letters: str = "ABCD") -> str | None:
    """The letter an extracted answer starts with or is ("B", "(b) square", "B. Nitrogen"), or None."""
    leading, _, only_letter = _choice_patterns(letters)
    m = leading.match(_clean(answer)) or only_letter.fullmatch(_clean(answer))
    return m.group(1).upper() if m else None


def extract_choice(response: str, letters: str = "ABCD") -> str | None:
    """The chosen letter (A-D, or any of `letters`) of a multiple-choice response, or None when none is found."""
    leading, named_letter, only_letter = _choice_patterns(letters)
    seg = answer_segment(response)
    boxed = last_boxed(seg)
    lines = ANSWER_LINE.findall(seg)
    after = lines[-1].strip() if lines else None
    for candidate in ([boxed] if boxed is not None else []) + ([after] if after else []):
        m = leading.match(_clean(candidate))
        if m:
            return m.group(1).upper()
    m = only_letter.fullmatch(_clean(seg))
    if m:
        return m.group(1).upper()
    named = named_letter.findall(seg)
    return named[-1].upper() if named else None


def score_choice(response: str, gold: str) -> tuple[bool, str | None]:
    """(correct, extracted letter) for a GPQA-style multiple-choice response."""
    letter = extract_choice(response)
    return letter is not None and letter == gold.strip().upper(), letter
