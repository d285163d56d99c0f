"""PixMo-style pointing and counting: parse `<point>` / `<points>` answers and score them (Molmo's metrics, no masks).

Molmo writes points as percentages of the image width and height with one decimal:
`<point x="10.5" y="20.0" alt="cat">cat</point>` or `<points x1="10.5" y1="20.0" x2="55.1" y2="60.3" alt="cats">cats</points>`,
and counts as "Counting the <points …> shows a total of 3." Its pointing eval (allenai/molmo `PointingEval`) matches
predicted points to ground-truth masks; local data here carries ground-truth points instead, so a prediction is a hit
when it is matched (one to one, as many as possible) to a ground-truth point within `radius` percent. An empty ground
truth scores 1.0 only when nothing is predicted. Counting reports exact (`correct`) and off-by-one (`close`) accuracy.
"""

from __future__ import annotations

import math
import re

from qwen_recipes.evaluation.answers import answer_segment

_POINT_TAG = re.compile(r"<points?\b([^>]*)>", re.I)
_COORD = re.compile(r'\b([xy])(\d*)\s*=\s*"([-+]?\d+(?:\.\d+)?)"', re.I)
_TOTAL = re.compile(r"a total of\s+(\d+)", re.I)
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    )
}


def extract_points(text: str) -> list[tuple[float, float]]:
    """Every (x, y) of the `<point>` / `<points>` tags in a response, in percent; values outside 0-100 dropped."""
    points = []
    for attrs in _POINT_TAG.findall(answer_segment(text)):
        coords: dict[tuple[str, str], float] = {}
        for axis, index, value in _COORD.findall(attrs):
            coords[(axis.lower(), index)] = float(value)
        for (axis, index), x in sorted(coords.items()):
            if axis != "x" or ("y", index) not in coords:
                continue
            y = coords[("y", index)]
            if 0 <= x <= 100 and 0 <= y <= 100:
                points.append((x, y))
    return points


def _max_matching(pred: list[tuple[float, float]], gold: list[tuple[float, float]], radius: float) -> int:
    """Largest one-to-one matching of predictions to ground-truth points within `radius` (Kuhn's augmenting paths)."""
    near = [[j for j, g in enumerate(gold) if math.dist(p, g) <= radius] for p in pred]
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in near[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    return sum(augment(i, set()) for i in range(len(pred)))


def score_points(response: str, gold: list[list[float]], radius: float = 5.0) -> dict[str, float]:
    """Precision, recall and F1 of a pointing response against ground-truth points (percent coordinates)."""
    pred = extract_points(response)
    truth = [(float(x), float(y)) for x, y in gold]
    if not truth:
        ok = float(not pred)
        return {"precision": ok, "recall": ok, "f1": ok, "predicted": len(pred)}
    hits = _max_matching(pred, truth, radius) if pred else 0
    precision = hits / len(pred) if pred else 0.0
    recall = hits / len(truth)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "predicted": len(pred)}


def extract_count(response: str) -> int | None:
    """The count a response states: "a total of N", else its last integer or number word, "none" as 0."""
    text = answer_segment(response)
    if m := _TOTAL.search(text):
        return int(m.group(1))
    outside = _POINT_TAG.sub(" ", text)  # coordinates inside point tags are not counts
    words = re.findall(r"[a-z]+|\d+", outside.lower())
    for word in reversed(words):
        if word.isdigit():
            return int(word)
        if word in _NUMBER_WORDS:
            return _NUMBER_WORDS[word]
        if word in ("none", "no"):
            return 0
    return None


def score_count(response: str, gold: int) -> dict[str, float]:
    """Exact and off-by-one counting accuracy of one response (and whether a count was found)."""
    count = extract_count(response)
    if count is None:
        return {"correct": 0.0, "close": 0.0, "valid": 0.0}
    return {"correct": float(count == int(gold)), "close": float(abs(count - int(gold)) <= 1), "valid": 1.0}
