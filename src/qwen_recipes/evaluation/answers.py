"""Final answers: the one extractor and math-verify wrapper behind both the GRPO rewards and eval scoring.

A response's answer segment is what follows its end of thinking (s1's `<|im_start|>answer` marker or Qwen's
`</think>`; the whole response when it has neither): a box written while thinking is never the answer. In that
segment the answer is, in order: the last `<answer>...</answer>` tag's content (R1 / TinyZero style), within it
(or the segment) the last `\\boxed{}`, else the text after the last `Answer:` on its line, else the tag's whole
content. Equivalence goes through math-verify, with SIGALRM timeouts on the main thread (its only option).
"""

from __future__ import annotations

import re
import threading

ANSWER_SPLITS = ("<|im_start|>answer\n", "<|im_start|>answer", "</think>")
ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S)
# "Answer: x", "Final Answer: x", full-width colon too; the rest of that line is the answer.
ANSWER_LINE = re.compile(r"(?:final\s+)?answer\s*[:：]\s*(.+)", re.I)
# A unit is a word of 2+ letters: '2x' must stay an expression, not become 2.
_NUMBER_WITH_UNIT = re.compile(r"^\\?\$?\s*(?P<num>[-+]?[\d,]*\.?\d+)\s*(?:\\%|%|[A-Za-z]{2,}[A-Za-z .]*)?$")


def answer_segment(response: str) -> str:
    """The part of a response after the end-of-thinking marker (the whole response if there is none)."""
    for marker in ANSWER_SPLITS:
        if marker in response:
            return response.split(marker)[-1]
    return response


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` (balanced braces, or `\\boxed 5`); None if none/unclosed."""
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
    return None  # unclosed: a truncated completion


def final_answer(response: str) -> str | None:
    """The final answer of a response (see the module docstring), or None when it states none."""
    segment = answer_segment(response)
    tags = ANSWER_TAG.findall(segment)
    region = tags[-1] if tags else segment
    boxed = last_boxed(region)
    if boxed is not None:
        return boxed.strip()
    lines = ANSWER_LINE.findall(region)
    if lines:
        return lines[-1].strip().rstrip(".").strip()
    if tags and region.strip():
        return region.strip()
    return None


def clean_answer(answer: str) -> str:
    """'$1,000' / '18 dollars' / '42.' -> the bare number; anything else unchanged."""
    answer = answer.strip().strip("$").strip()
    m = _NUMBER_WITH_UNIT.match(answer)
    return m.group("num").replace(",", "") if m else answer


def _parse(text: str, timeout: int | None) -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return parse(text, extraction_config=configs, parsing_timeout=timeout)


def math_equal(prediction: str, gold: str) -> bool | None:
    """Whether a predicted final answer equals the gold one ('\\frac{1}{2}' == '0.5', '023' == '23').

    None when the gold answer itself cannot be parsed (callers skip the row, or compare text). The prediction is
    read both as LaTeX ("(1, -2)" is a tuple) and as text ("x = 5" gives 5).
    """
    from math_verify import verify

    # math-verify's timeouts use SIGALRM, which only the main thread may set.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    gold = str(gold).strip()
    gold_parsed = _parse(gold if "\\boxed" in gold else f"\\boxed{{{clean_answer(gold)}}}", timeout)
    if not gold_parsed:
        return None
    prediction = prediction.strip()
    if not prediction:
        return False
    for text in (f"\\boxed{{{clean_answer(prediction)}}}", prediction):
        parsed = _parse(text, timeout)
        if parsed and verify(gold_parsed, parsed, timeout_seconds=timeout):
            return True
    return False
