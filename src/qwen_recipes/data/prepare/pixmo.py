"""PixMo rows (allenai/pixmo-cap, allenai/pixmo-points) as vision-language chat rows in Molmo's answer formats.

Columns as the dataset cards list them: pixmo-cap `image_url`, `caption` (`transcripts` unused); pixmo-points
`image_url`, `points` [{x, y}], `count`, `label`, `collection_method`. Point coordinates are taken as percentages
of the image size, the unit of Molmo's own `<point x=".." y="..">` answers (allenai/molmo data_formatter; third-party
uses of pixmo-points read x < 40 as "left" too); check it on your copy before a long run. Images stay URLs: the
data step downloads each once into the cache (data/vision.py) and counts a dead link as an unreadable image.
"""

from __future__ import annotations

from typing import Any, Literal

from qwen_recipes.data.formats import SkipRow

CAPTION_PROMPT = "Describe this image in detail."


def _field(row: dict[str, Any], key: str) -> Any:
    value = row.get(key)
    if value is None or value == "":
        raise SkipRow("missing field", f"{key} is missing")
    return value


def points_text(points: list[tuple[float, float]], label: str) -> str:
    """Molmo's pointing answer: one `<point>` or a `<points x1 y1 x2 y2 ...>` tag, percent with one decimal."""
    ordered = sorted(points)
    if len(ordered) == 1:
        x, y = ordered[0]
        return f'<point x="{x:.1f}" y="{y:.1f}" alt="{label}">{label}</point>'
    coords = " ".join(f'x{i}="{x:.1f}" y{i}="{y:.1f}"' for i, (x, y) in enumerate(ordered, start=1))
    return f'<points {coords} alt="{label}">{label}</points>'


def pixmo_cap_row(row: dict[str, Any], prompt: str = CAPTION_PROMPT) -> dict[str, Any]:
    """A PixMo-Cap row as one captioning turn: `<image>` + `prompt` -> the caption."""
    caption, url = _field(row, "caption"), _field(row, "image_url")
    return {
        "messages": [{"role": "user", "content": f"<image>{prompt}"}, {"role": "assistant", "content": caption}],
        "images": [url],
    }


def pixmo_points_row(row: dict[str, Any], task: Literal["pointing", "counting"] = "pointing") -> dict[str, Any]:
    """A PixMo-Points row as pointing ("Point to the cats." -> `<points ...>`) or counting (Molmo's point_count
    style: "Counting the <points ...> shows a total of N."); no points answers "There are none."."""
    label, url = str(_field(row, "label")), _field(row, "image_url")
    points = [(float(p["x"]), float(p["y"])) for p in row.get("points") or []]
    if any(not (0 <= x <= 100 and 0 <= y <= 100) for x, y in points):
        raise SkipRow("points out of range", f"points {points[:3]} are not percentages of the image size")
    if task == "pointing":
        question, answer = f"Point to {label}.", points_text(points, label) if points else "There are none."
    else:
        question = f"How many {label} are there?"
        answer = (
            f"Counting the {points_text(points, label)} shows a total of {len(points)}."
            if points
            else "There are none."
        )
    return {
        "messages": [{"role": "user", "content": f"<image>{question}"}, {"role": "assistant", "content": answer}],
        "images": [url],
        "points": [list(p) for p in points],
        "count": len(points),
    }
