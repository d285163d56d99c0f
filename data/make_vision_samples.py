"""Regenerate data/samples/vision/: tiny images and the vision-language sample rows of the tiny recipes and tests.

    python data/make_vision_samples.py

Images are 56x56 (one 84x56) PNGs of coloured shapes and of red dots, drawn with Pillow; rows are:
- shapes_sft.jsonl: Cosmos-Reason1-style multiple-choice SFT, content parts with inline image paths, answers as
  `<think>…</think>\\n\\n<answer>…</answer>`;
- shapes_mcq.jsonl: the same questions as GRPO / evaluation prompts with a gold `answer` letter and `options`;
- captions_llava.jsonl: LLaVA / LLaMA-Factory style captions (`<image>` placeholders + an `images` column);
- points_counts.jsonl: PixMo-style pointing (`<points x1=".." y1="..">`, percent coordinates) and counting.
Deterministic: the files are reproducible byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).parent / "samples" / "vision"
SHAPES = ["circle", "square", "triangle"]
COLORS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 220)}
DOTS = {1: [(28, 28)], 2: [(14, 20), (40, 36)], 3: [(12, 12), (28, 40), (44, 16)], 4: [(12, 12), (44, 12), (12, 44), (44, 44)]}  # fmt: skip
LETTERS = "ABC"
COSMOS_SUFFIX = (
    "Answer with the option's letter from the given choices directly. Please answer the question in the following "
    "format: <think> your reasoning </think> <answer> your answer </answer>."
)


def draw_shape(shape: str, color: str, size: tuple[int, int] = (56, 56)) -> object:
    """A white image with one filled shape."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    w, h = size
    box = (w // 2 - 18, h // 2 - 18, w // 2 + 18, h // 2 + 18)
    fill = COLORS[color]
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    else:
        d.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=fill)
    return img


def draw_dots(points: list[tuple[int, int]]) -> object:
    """A white 56x56 image with red dots (radius 4) at pixel positions."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (56, 56), "white")
    d = ImageDraw.Draw(img)
    for x, y in points:
        d.ellipse((x - 4, y - 4, x + 4, y + 4), fill=COLORS["red"])
    return img


def points_text(points: list[tuple[int, int]], label: str, size: int = 56) -> str:
    """Molmo's pointing format: coordinates in percent of width/height, one decimal."""
    pct = sorted((100 * x / size, 100 * y / size) for x, y in points)
    if len(pct) == 1:
        return f'<point x="{pct[0][0]:.1f}" y="{pct[0][1]:.1f}" alt="{label}">{label}</point>'
    coords = " ".join(f'x{i}="{x:.1f}" y{i}="{y:.1f}"' for i, (x, y) in enumerate(pct, start=1))
    return f'<points {coords} alt="{label}">{label}</points>'


def question(shape_first: bool = True) -> str:
    options = "\n".join(f"({letter}) {shape}" for letter, shape in zip(LETTERS, SHAPES, strict=True))
    return f"What shape is shown?\n{options}\n{COSMOS_SUFFIX}"


def main() -> None:
    images = OUT / "images"
    images.mkdir(parents=True, exist_ok=True)
    names = []
    for shape in SHAPES:
        for color in COLORS:
            name = f"{color}_{shape}.png"
            draw_shape(shape, color).save(images / name, optimize=True)
            names.append((name, shape, color))
    draw_shape("circle", "blue", (84, 56)).save(images / "wide_blue_circle.png", optimize=True)
    for n, pts in DOTS.items():
        draw_dots(pts).save(images / f"dots_{n}.png", optimize=True)

    sft, mcq, captions = [], [], []
    for name, shape, color in names:
        letter = LETTERS[SHAPES.index(shape)]
        corners = {"circle": "no corners", "square": "four equal corners", "triangle": "three corners"}[shape]
        think = f"The {color} shape has {corners}, so it is a {shape}."
        sft.append({"messages": [
            {"role": "user", "content": [{"type": "image", "image": f"images/{name}"}, {"type": "text", "text": question()}]},
            {"role": "assistant", "content": f"<think>\n{think}\n</think>\n\n<answer>\n{letter}\n</answer>"},
        ]})  # fmt: skip
        mcq.append({
            "prompt": [{"role": "user", "content": [{"type": "image", "image": f"images/{name}"}, {"type": "text", "text": question()}]}],
            "answer": letter, "options": SHAPES,
        })  # fmt: skip
        captions.append({
            "messages": [{"role": "user", "content": "<image>Describe the image."},
                         {"role": "assistant", "content": f"A {color} {shape} on a white background."}],
            "images": [f"images/{name}"],
        })  # fmt: skip
    points = []
    for n, pts in DOTS.items():
        pointed = points_text(pts, "red dots")
        points.append({"messages": [{"role": "user", "content": "<image>Point to the red dots."},
                                    {"role": "assistant", "content": pointed}],
                       "images": [f"images/dots_{n}.png"], "points": [[100 * x / 56, 100 * y / 56] for x, y in pts]})  # fmt: skip
        points.append({"messages": [{"role": "user", "content": "<image>How many red dots are there?"},
                                    {"role": "assistant", "content": f"Counting the {pointed} shows a total of {n}."}],
                       "images": [f"images/dots_{n}.png"], "count": n})  # fmt: skip
    for file, rows in (
        ("shapes_sft", sft),
        ("shapes_mcq", mcq),
        ("captions_llava", captions),
        ("points_counts", points),
    ):
        with (OUT / f"{file}.jsonl").open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
