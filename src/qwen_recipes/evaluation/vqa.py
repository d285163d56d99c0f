"""Offline VQA, multiple-choice, pointing and counting evaluation of a vision-language output over local data.

    qwen-recipes eval-vqa OUTPUT_DIR --data data/samples/vision/shapes_mcq.jsonl [MORE.jsonl] [--max-new-tokens 64]

Rows are the GRPO prompt rows of data/vision.py (`prompt` with image parts or `<image>` placeholders + `images`) with
a gold column: `answer` (a letter for multiple choice, else a short text answer), `points` (percent coordinates) or
`count`. Each row is answered greedily and scored by the one scorer of its gold column: `score_answer` (the final
answer of answers.py: `<answer>` tag, box or "Answer:" after the thinking; letters through scoring.extract_choice,
option texts mapped to their letter), `pointing.score_points` or `pointing.score_count`. The summary goes to
`OUTPUT_DIR/eval/vqa_summary.json` (the model card picks it up) and each answer to `eval/vqa_answers.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import re
import string
from pathlib import Path
from typing import Any

from qwen_recipes.evaluation.answers import answer_segment, final_answer
from qwen_recipes.evaluation.pointing import score_count, score_points
from qwen_recipes.evaluation.scoring import extract_choice, leading_choice

LETTERS = "ABCDEFGH"
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER_WORDS = dict(
    zip(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"],
        map(str, range(11)),
        strict=True,
    )
)


def normalize(text: str) -> str:
    """VQA-style answer normalisation: lower case, no punctuation or articles, number words as digits."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation.replace("-", "")))
    words = [_NUMBER_WORDS.get(w, w) for w in _ARTICLES.sub(" ", text).split()]
    return " ".join(words)


def _option_letter(text: str, options: Any, letters: str) -> str | None:
    """The letter of the option whose text the answer is (Cosmos-Reason1's index2ans), if any."""
    items = options.items() if isinstance(options, dict) else zip(letters, options or [], strict=False)
    wanted = normalize(text)
    return next((str(k).upper() for k, v in items if normalize(str(v)) == wanted), None)


def score_answer(response: str, gold: str, options: Any = None, letters: str = LETTERS) -> tuple[bool, str | None]:
    """(correct, prediction) of one VQA response: a letter when `gold` is one, else the normalised answer text."""
    answer = final_answer(response)
    text = answer if answer is not None else answer_segment(response).strip()
    gold = str(gold).strip()
    if len(gold) == 1 and gold.upper() in letters:
        letter = leading_choice(text, letters) or (_option_letter(text, options, letters) if options else None)
        letter = letter or extract_choice(text, letters)
        if letter is None and answer is None:
            letter = extract_choice(response, letters)
        return letter == gold.upper(), letter
    return normalize(text) == normalize(gold), normalize(text)


def score_row(response: str, row: dict[str, Any]) -> dict[str, Any]:
    """The scores of one response by its row's gold column (answer, points or count)."""
    if row.get("points") is not None:
        return {"kind": "pointing", **score_points(response, row["points"])}
    if row.get("count") is not None:
        return {"kind": "counting", **score_count(response, row["count"])}
    correct, predicted = score_answer(response, row["answer"], row.get("options"))
    return {"kind": "vqa", "correct": float(correct), "predicted": predicted}


def summarize(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of each metric per kind (vqa accuracy, pointing precision/recall/F1, counting exact/close)."""
    out: dict[str, Any] = {}
    for kind in sorted({s["kind"] for s in scores}):
        rows = [s for s in scores if s["kind"] == kind]
        metrics = [k for k, v in rows[0].items() if k != "kind" and isinstance(v, float)]
        out[kind] = {"n": len(rows), **{m: sum(r[m] for r in rows) / len(rows) for m in metrics}}
    return out


def _rows(data: list[str]) -> list[dict[str, Any]]:
    from qwen_recipes.data.mixture import canonical_rows
    from qwen_recipes.data.report import DataReport
    from qwen_recipes.data.vision import media_converter
    from qwen_recipes.recipe import Recipe

    sources = [{"path": str(Path(d).resolve())} for d in data]  # each file has its own row format
    recipe = Recipe(Path(data[0]), {"task": "grpo", "datasets": sources})
    report = DataReport()

    convert = media_converter()
    rows = canonical_rows(recipe, report=report, canonical=convert)
    if report.skipped:
        print(f"eval-vqa: {report.summary()}; first problems: {report.first_skip}")
    return rows


def prompt_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A row's prompt: its `prompt`, or its conversation up to the last assistant turn (SFT rows)."""
    if row.get("prompt"):
        return row["prompt"]
    messages = row["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last]


def reference(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its gold answer: an SFT row without `answer`/`points`/`count` is scored on its last assistant text."""
    if any(row.get(k) is not None for k in ("answer", "points", "count")):
        return row
    last = [m for m in row["messages"] if m["role"] == "assistant"][-1]
    return {**row, "answer": "".join(p["text"] or "" for p in last["content"] if p["type"] == "text")}


def generate(model: Any, processor: Any, row: dict[str, Any], max_new_tokens: int) -> str:
    """The greedy answer of the model to one prompt row (its images filled into the image parts)."""
    import torch

    from qwen_recipes.data.vision_dataset import fill_media

    prompt = fill_media(prompt_of(row), row.get("videos") or [])
    images = iter(row.get("images") or [])
    for message in prompt:
        for part in message["content"]:
            if part.get("type") == "image":
                part["image"] = next(images)
    inputs = processor.apply_chat_template(
        [prompt], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    with torch.no_grad():
        out = model.generate(**inputs.to(model.device), max_new_tokens=max_new_tokens, do_sample=False)
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def evaluate(output_dir: str, data: list[str], max_new_tokens: int = 64, limit: int | None = None) -> dict[str, Any]:
    """Answer and score every row of `data` with the model in `output_dir`; writes the summary and the answers."""
    from qwen_recipes.training.vision import load_pretrained

    model, processor = load_pretrained(output_dir)
    rows = _rows(data)[:limit]
    answers = []
    for row in rows:
        response = generate(model, processor, row, max_new_tokens)
        answers.append({"where": row["_where"], "response": response, **score_row(response, reference(row))})
    summary = {
        "data": [str(d) for d in data],
        "rows": len(rows),
        "max_new_tokens": max_new_tokens,
        **summarize(answers),
    }
    folder = Path(output_dir) / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vqa_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (folder / "vqa_answers.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(a, ensure_ascii=False) + "\n" for a in answers)
    return summary


def vqa_main(argv: list[str]) -> int:
    """`qwen-recipes eval-vqa OUTPUT_DIR --data FILE`: offline VQA / multiple-choice / pointing / counting scores."""
    p = argparse.ArgumentParser(prog="qwen-recipes eval-vqa", description=vqa_main.__doc__)
    p.add_argument("output_dir", help="a vision-language training output (adapter or full model) or model folder")
    p.add_argument("--data", required=True, nargs="+", help="local JSONL files of rows with answer / points / count")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--limit", type=int, help="score only the first N rows")
    args = p.parse_args(argv)
    summary = evaluate(args.output_dir, args.data, args.max_new_tokens, args.limit)
    print(json.dumps(summary, indent=2))
    return 0
