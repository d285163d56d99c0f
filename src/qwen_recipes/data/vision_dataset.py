"""Vision-language datasets: canonical rows → length-checked rows of image paths, and the collator that trains them.

Rows are never tokenized ahead (TRL's vision path processes images batch by batch), but every row's length is
known here: the training template renders one `<|image_pad|>` per image and the processor expands it to the image's
token count, which the processor itself computes from the image size (`_get_num_multimodal_tokens`). A row longer
than `max_length` is dropped whole and counted, never cut: a cut inside the vision tokens is the "Image features and
image tokens do not match" error. The collator is TRL's `DataCollatorForVisionLanguageModeling` (assistant-only
labels from the template's generation markers, `mm_token_type_ids` kept for mRoPE) plus what it lacks: media filled
into video parts, and every vision token masked from the labels wherever it sits.
"""

from __future__ import annotations

from typing import Any

from qwen_recipes.data.mixture import canonical_rows, strict_message
from qwen_recipes.data.report import DataReport, thinks
from qwen_recipes.data.sources import DataError
from qwen_recipes.data.vision import media_converter
from qwen_recipes.recipe import Recipe

PRIVATE = ("_image_sizes", "_where")
MEASURE_BATCH = 256


class VideoBackendError(DataError):
    """Video rows without a video processor (transformers needs torchvision for it, and a decoder)."""


def video_backend_problem(processor: Any) -> str | None:
    """Why this processor cannot turn video files into frames, or None when it can."""
    import importlib.util

    if getattr(processor, "video_processor", None) is None:
        return (
            "video rows need transformers' video processor, which needs the 'torchvision' package "
            "(pip install torchvision, matching your torch), and a video decoder: 'av' (PyAV) or 'torchcodec'"
        )
    if not any(importlib.util.find_spec(m) for m in ("av", "torchcodec", "decord", "cv2")):
        return "video rows need a video decoder: pip install av (PyAV) or torchcodec"
    return None


def fill_media(messages: list[dict[str, Any]], videos: list[str]) -> list[dict[str, Any]]:
    """Messages with None-valued keys dropped and each video part given its path (TRL fills only the images)."""
    pending = iter(videos)
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            parts = []
            for part in content:
                part = {k: v for k, v in part.items() if v is not None}
                if part.get("type") == "video" and "video" not in part:
                    part["video"] = next(pending)
                parts.append(part)
            content = parts
        out.append({**{k: v for k, v in m.items() if v is not None}, "content": content})
    return out


def num_image_tokens(processor: Any, sizes: list[list[int]]) -> list[int]:
    """Tokens the processor gives each image of these (height, width) sizes."""
    if not sizes:
        return []
    return list(processor._get_num_multimodal_tokens(image_sizes=[list(s) for s in sizes])["num_image_tokens"])


def exact_length(row: dict[str, Any], processor: Any, chat_template: str) -> int:
    """A row's token count by running the processor on it (decodes its images/videos: used for videos and tests)."""
    messages = fill_media(row["messages"], row.get("videos") or [])
    images = iter(row.get("images") or [])
    for m in messages:
        for part in m["content"] if isinstance(m["content"], list) else []:
            if part.get("type") == "image" and "image" not in part:
                part["image"] = next(images)
    enc = processor.apply_chat_template(
        [messages], chat_template=chat_template, tokenize=True, return_dict=True, processor_kwargs={"padding": False}
    )
    return len(enc["input_ids"][0])


def measure(rows: list[dict[str, Any]], processor: Any, chat_template: str) -> list[tuple[int, int, int]]:
    """(tokens, trained tokens, vision tokens) per SFT row, from image headers and the training template."""
    tokenizer = processor.tokenizer
    out = []
    for start in range(0, len(rows), MEASURE_BATCH):
        batch = rows[start : start + MEASURE_BATCH]
        enc = tokenizer.apply_chat_template(
            [fill_media(r["messages"], r["videos"]) for r in batch],
            chat_template=chat_template,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        for row, ids, mask in zip(batch, enc["input_ids"], enc["assistant_masks"], strict=True):
            if row["videos"]:
                total = exact_length(row, processor, chat_template)
                out.append((total, sum(mask), total - len(ids) + len(row["videos"]) + len(row["images"])))
                continue
            per_image = num_image_tokens(processor, row["_image_sizes"])
            # the template wrote one <|image_pad|> per image; the processor expands each to its token count
            out.append((len(ids) + sum(per_image) - len(per_image), sum(mask), sum(per_image)))
    return out


def build_vision_dataset(
    recipe: Recipe, processor: Any, chat_template: str | None, key: str = "datasets"
) -> tuple[Any, DataReport]:
    """The dataset of a vision-language recipe (image paths, checked and measured) and its `DataReport`."""
    from datasets import Dataset

    report = DataReport()

    convert = media_converter()
    rows = canonical_rows(recipe, key, report, canonical=convert)
    if any(r["videos"] for r in rows) and (problem := video_backend_problem(processor)):
        first = next(r["_where"] for r in rows if r["videos"])
        raise VideoBackendError(f"{first}: {problem}")
    if recipe.task in ("sft", "cpt"):
        rows = _drop_unusable(recipe, rows, processor, chat_template, report)
    elif any(r["videos"] for r in rows):
        raise VideoBackendError(f"{rows[0]['_where']}: video rows are supported for SFT only, not task {recipe.task}")
    report.finish()
    if not rows:
        raise DataError(f"no usable rows in {key}: {report.summary()}; first problems: {report.first_skip}")
    return Dataset.from_list([{k: v for k, v in r.items() if k not in PRIVATE} for r in rows]), report


def _drop_unusable(
    recipe: Recipe, rows: list[dict[str, Any]], processor: Any, chat_template: str, report: DataReport
) -> list[dict[str, Any]]:
    max_length = recipe.get("max_length")
    assistant_only = recipe.get("assistant_only_loss")
    kept, errors = [], []
    for i, (row, (total, trained, vision)) in enumerate(
        zip(rows, measure(rows, processor, chat_template), strict=True)
    ):
        if assistant_only and not trained:
            where = report.drop(i, "no trained tokens", "the template left no assistant token to train")
            errors.append(f"{where}: no trained tokens")
            continue
        if max_length and total > max_length:
            detail = (
                f"{total} tokens ({vision} of them vision) > max_length={max_length}; vision rows are dropped whole, "
                "never cut inside their image tokens: raise max_length or lower image_max_pixels"
            )
            where = report.drop(i, "longer than max_length", detail)
            errors.append(f"{where}: {detail}")
            continue
        kept.append(row)
        report.tokens_per_epoch += total
        report.loss_tokens_per_epoch += trained if assistant_only else total - vision
        report.thinking_rows += thinks(row)
    if recipe.strict and errors:
        raise DataError(strict_message(errors))
    return kept


class VisionCollator:
    """TRL's vision-language collator with videos filled in and every vision token masked from the labels."""

    def __init__(
        self,
        processor: Any,
        chat_template: str | None,
        vision_token_ids: list[int],
        assistant_only_loss: bool = True,
        pad_to_multiple_of: int | None = None,
    ):
        from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

        # max_length=None: rows were length-checked whole (build_vision_dataset); the processor must never truncate.
        self.inner = DataCollatorForVisionLanguageModeling(
            processor=processor,
            max_length=None,
            assistant_only_loss=assistant_only_loss,
            chat_template=chat_template,
            pad_to_multiple_of=pad_to_multiple_of,
        )
        self.vision_token_ids = list(vision_token_ids)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """Pixels, ids, attention and mm-token-type masks and labels for a batch of rows."""
        import torch

        batch = [
            {"messages": fill_media(e["messages"], list(e.get("videos") or [])), "images": list(e.get("images") or [])}
            for e in examples
        ]
        out = self.inner(batch)
        ids = torch.as_tensor(self.vision_token_ids, device=out["input_ids"].device)
        out["labels"][torch.isin(out["input_ids"], ids)] = -100  # TRL masks pads and prompts, not vision spans
        return out
