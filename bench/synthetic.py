"""An s1K-like synthetic chat mix: a fixed-seed long-tailed length distribution and text of about that many tokens.

s1K rows (question + reasoning trace + answer) span a few hundred to ~9,000 Qwen tokens with a long tail; a
log-normal around ~2,000 tokens clipped to [300, 9,000] has that shape. Each word below is one Qwen BPE token when
preceded by a space, so a row of N words is about N tokens.
"""

from __future__ import annotations

import math
import random
from typing import Any

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "from",
    "at",
    "or",
    "an",
    "have",
    "not",
    "which",
    "but",
    "they",
    "you",
    "we",
    "all",
    "one",
    "can",
    "has",
    "more",
    "were",
    "their",
    "when",
    "there",
    "will",
    "would",
    "if",
    "so",
    "what",
    "about",
    "up",
    "out",
    "into",
    "than",
    "them",
    "some",
    "time",
    "only",
    "other",
    "new",
    "also",
    "these",
    "two",
    "may",
    "first",
    "then",
    "do",
    "any",
    "like",
    "my",
    "now",
    "over",
    "such",
    "our",
    "man",
    "me",
    "even",
    "most",
    "made",
    "after",
    "many",
    "where",
    "much",
    "your",
    "way",
    "well",
    "down",
    "should",
    "because",
    "each",
    "just",
    "those",
    "how",
    "too",
    "little",
    "state",
    "good",
    "very",
    "make",
    "world",
    "still",
    "see",
    "own",
    "work",
    "long",
    "get",
    "here",
    "both",
    "between",
    "life",
    "being",
    "under",
    "never",
    "day",
    "same",
    "another",
    "know",
    "year",
    "while",
    "last",
    "might",
    "great",
    "old",
    "off",
    "come",
    "since",
    "go",
    "against",
    "back",
    "used",
    "take",
    "three",
    "place",
    "around",
    "however",
    "small",
    "found",
    "part",
    "again",
    "number",
]
MIN_TOKENS, MAX_TOKENS, MEDIAN_TOKENS, SIGMA = 300, 9000, 2000, 0.75


def s1k_lengths(n: int, seed: int = 0, scale: float = 1.0) -> list[int]:
    """`n` row lengths in tokens with s1K's shape (optionally scaled down for CPU runs)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = math.exp(rng.gauss(math.log(MEDIAN_TOKENS), SIGMA))
        out.append(max(1, round(min(max(x, MIN_TOKENS), MAX_TOKENS) * scale)))
    return out


def _text(rng: random.Random, n_words: int) -> str:
    words = rng.choices(WORDS, k=max(1, n_words))
    # A sentence break every ~20 words, as in real traces; "." merges with the word before it in Qwen's BPE.
    return " ".join(w + ("." if i % 20 == 19 else "") for i, w in enumerate(words)).capitalize()


def s1k_rows(n: int, seed: int = 0, scale: float = 1.0) -> list[dict[str, Any]]:
    """`n` chat rows (user question, assistant reasoning + answer) of s1K-like token lengths."""
    rng = random.Random(seed + 1)
    rows = []
    for length in s1k_lengths(n, seed, scale):
        body = max(length - 20, 6)  # ~20 tokens of template: role headers, <think> tags, <|im_end|>s
        question, answer = max(body // 10, 2), max(body // 20, 2)
        reasoning = max(body - question - answer, 2)
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": _text(rng, question)},
                    {"role": "assistant", "reasoning_content": _text(rng, reasoning), "content": _text(rng, answer)},
                ]
            }
        )
    return rows


def describe(lengths: list[int]) -> str:
    """min / median / p90 / max / mean of a length list."""
    s = sorted(lengths)

    def q(p: float) -> int:
        return s[min(len(s) - 1, int(p * len(s)))]

    return f"{len(s)} rows, tokens min {s[0]}, median {q(0.5)}, p90 {q(0.9)}, max {s[-1]}, mean {sum(s) / len(s):.0f}"
