"""Count a recipe's training tokens per epoch from local data, with the real tokenizer and training template."""

from __future__ import annotations

from typing import Any

from qwen_recipes.data.sources import is_local
from qwen_recipes.recipe import Recipe


def _tokenizer(name: str) -> Any | None:
    # The offline test bed's tokenizer for tiny models; a local folder's; a Hub id's only if already cached.
    from qwen_recipes.testbed import offline_tokenizer

    if name.startswith("tiny:"):
        return offline_tokenizer(name)
    from pathlib import Path

    if name.count("/") != 1 and not Path(name).exists():  # neither a Hub id nor a folder (an earlier stage's output)
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception:  # not cached / not a tokenizer folder: the caller reports "unknown"
        return None


def count_local_tokens(recipe: Recipe) -> dict[str, Any] | None:
    """Tokens per epoch, rows, longest row, attention length and source for SFT/CPT recipes on local files, else None.

    Tokens are what the trainer sees: rendered with the training chat template, truncated at max_length
    (or dropped, with `overlong: drop`), padding excluded. The attention length is sum(len^2)/sum(len): what
    unpacked rows (or flash-packed ones) cost in attention, which the mean length underestimates.
    """
    specs = recipe.datasets_specs()
    if recipe.task not in ("sft", "cpt") or not specs or not all(is_local(s) for s in specs):
        return None
    tok = _tokenizer(str(recipe.get("model_name_or_path")))
    if tok is None:
        return None
    from qwen_recipes.cost.models import recipe_arch
    from qwen_recipes.data import pipeline
    from qwen_recipes.data.templates import resolve_training_template

    arch = recipe_arch(recipe)[0]
    if arch.vision is not None:  # image tokens from the image headers (cost/vision_estimate.py)
        from qwen_recipes.cost.vision_estimate import count_vision_tokens

        return count_vision_tokens(recipe, arch, tok)
    rows = pipeline.canonical_rows(recipe)
    if recipe.task == "sft":
        model_type = arch.model_type
        template = resolve_training_template(tok, model_type, recipe.get("chat_template_path"))
        lengths = [len(ids) for ids, _ in pipeline.tokenize_chat(rows, tok, template)]
    else:
        eos = tok.convert_tokens_to_ids(tok.pad_token)  # the end-of-document token (<|endoftext|>)
        lengths = [len(ids) for ids in pipeline.tokenize_text(rows, tok, eos)]
    max_length = int(recipe.get("max_length"))
    if recipe.overlong == "drop":
        lengths = [n for n in lengths if n <= max_length]
    else:
        lengths = [min(n, max_length) for n in lengths]
    return length_summary(lengths, f"counted: {len(lengths)} local rows with the real tokenizer")


def length_summary(lengths: list[int], source: str) -> dict[str, Any]:
    """Tokens, rows, longest row and attention length (sum(len^2)/sum(len)) of the rows' lengths, and their source."""
    total = sum(lengths)
    return {
        "tokens": total,
        "rows": len(lengths),
        "longest": max(lengths, default=0),
        "attn_len": sum(n * n for n in lengths) / total if total else None,
        "source": source,
    }
