"""Scoring for the s1 benchmarks without a paid judge: AIME24 / MATH500 with math-verify, GPQA by answer letter.

The answer is read from the answer segment (after `<|im_start|>answer` or `</think>`, as s1's lm-evaluation-harness
tasks split on `<|im_start|>answer\\n`), then: the last `\\boxed{...}`, else the last `Answer: ...` line, else the
whole segment. s1 asks gpt-4o-mini to map unparsable answers to an option; here such answers simply score 0 and are
reported, so scores can be slightly below s1's on free-form answers.
"""

from __future__ import annotations

import re

ANSWER_SPLITS = ("<|im_start|>answer\n", "<|im_start|>answer", "</think>")
# s1 (after openai/simple-evals): "Answer:" then anything; the text after the last one is the answer.
ANSWER_PATTERN = re.compile(r"(?i)answer\s*:\s*")


def answer_segment(response: str) -> str:
    """The part of a response after the end-of-thinking marker (the whole response if there is none)."""
    for marker in ANSWER_SPLITS:
        if marker in response:
            return response.split(marker)[-1]
    return response


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` (balanced braces), or None."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    brace = text.find("{", idx)
    if brace < 0 or text[idx:brace].strip() not in ("\\boxed", "\\fbox"):
        m = re.match(r"\\boxed ([^\s$]+)", text[idx:])  # "\boxed 5" without braces
        return m.group(1) if m else None
    depth = 0
    for i in range(brace, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[brace + 1 : i]
    return None


def after_last_answer(text: str) -> str | None:
    """The text after the last 'Answer:' (any case), or None when there is none."""
    last = None
    for last in ANSWER_PATTERN.finditer(text):  # noqa: B007 - we want the final match
        pass
    return text[last.end() :].strip() if last else None


def extract_final(response: str) -> str:
    """The final answer text: last boxed, else after the last 'Answer:', else the answer segment."""
    seg = answer_segment(response)
    boxed = last_boxed(seg)
    if boxed is not None:
        return boxed.strip()
    after = after_last_answer(seg)
    return after if after else seg.strip()


def _parse(text: str) -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    return parse(text, extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()])


def math_equal(prediction: str, gold: str) -> bool:
    """Whether two final answers are mathematically equal (math-verify; '\\frac{1}{2}' == '0.5', '023' == '23')."""
    from math_verify import verify

    prediction, gold = prediction.strip(), str(gold).strip()
    if not prediction:
        return False
    ref = _parse("\\boxed{" + gold + "}")  # the reference is a bare final answer, often LaTeX
    if not ref:
        return prediction == gold
    # The prediction is read both as LaTeX ("(1, -2)" is a tuple) and as text ("x = 5" gives 5).
    return any(p and verify(ref, p) for p in (_parse("\\boxed{" + prediction + "}"), _parse(prediction)))


def score_math(response: str, gold: str) -> tuple[bool, str]:
    """(correct, extracted answer) for an AIME/MATH response against the reference answer."""
    extracted = extract_final(response)
    return math_equal(extracted, gold), extracted


# A candidate that *is* a letter choice: "B", "(B)", "B)", "B. Nitrogen", "**B**", "\text{B}".
_LEADING_LETTER = re.compile(r"^\(?([A-Da-d])\)?(?:[\s.:)]|$)")
# A letter named in running text: "the answer is (B)", "correct option: C".
_NAMED_LETTER = re.compile(r"\b(?i:answer|option|choice)\s*(?i:is|:)?\s*\(?([A-D])\)?(?![A-Za-z])")
# A whole answer segment that is only a letter.
_ONLY_LETTER = re.compile(r"\(?([A-Da-d])\)?\.?")


def _clean(text: str) -> str:
    text = re.sub(r"\\(?:text|textbf|mathrm)\{([^}]*)\}", r"\1", text)
    return text.replace("**", "").strip().strip("$").strip()


def extract_choice(response: str) -> str | None:
    """The chosen letter A-D of a multiple-choice response, or None when no letter can be found."""
    seg = answer_segment(response)
    boxed = last_boxed(seg)
    after = after_last_answer(seg)
    for candidate in ([boxed] if boxed is not None else []) + ([after] if after else []):
        m = _LEADING_LETTER.match(_clean(candidate))
        if m:
            return m.group(1).upper()
    m = _ONLY_LETTER.fullmatch(_clean(seg))
    if m:
        return m.group(1).upper()
    named = _NAMED_LETTER.findall(seg)
    return named[-1].upper() if named else None


def score_choice(response: str, gold: str) -> tuple[bool, str | None]:
    """(correct, extracted letter) for a GPQA-style multiple-choice response."""
    letter = extract_choice(response)
    return letter is not None and letter == gold.strip().upper(), letter
