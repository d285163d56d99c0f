"""Count a recipe's training tokens per epoch from local data, with the real tokenizer and training template."""

from __future__ import annotations

from typing import Any

from qwen_recipes.sources import is_local


def _tokenizer(name: str) -> Any | None:
    # The offline test bed's tokenizer for tiny models; a local folder's; a Hub id's only if already cached.
    if name.startswith("tiny:"):
        from qwen_recipes.testing import build_tokenizer

        return build_tokenizer(name.split(":", 1)[1])  # type: ignore[arg-type]
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception:  # not cached / not a tokenizer folder: the caller reports "unknown"
        return None


def count_local_tokens(recipe: Any) -> tuple[int, int, int, str] | None:
    """(tokens per epoch, rows, longest row, source) for SFT/CPT recipes whose data are all local files; None otherwise.

    Tokens are what the trainer sees: rendered with the training chat template, truncated at max_length
    (or dropped, with `overlong: drop`), padding excluded.
    """
    specs = recipe.datasets_specs()
    if recipe.task not in ("sft", "cpt") or not specs or not all(is_local(s) for s in specs):
        return None
    tok = _tokenizer(str(recipe.values["model_name_or_path"]))
    if tok is None:
        return None
    from qwen_recipes import data, templates
    from qwen_recipes.cost.models import recipe_arch

    rows = data.canonical_rows(recipe)
    if recipe.task == "sft":
        model_type = recipe_arch(recipe.values)[0].model_type
        template = templates.resolve_training_template(tok, model_type, recipe.values.get("chat_template_path"))
        lengths = [len(ids) for ids, _ in data.tokenize_chat(rows, tok, template)]
    else:
        lengths = [len(ids) for ids in data.tokenize_text(rows, tok, tok.convert_tokens_to_ids("<|endoftext|>"))]
    max_length = int(recipe.values.get("max_length") or 1024)
    if recipe.overlong == "drop":
        lengths = [n for n in lengths if n <= max_length]
    else:
        lengths = [min(n, max_length) for n in lengths]
    return (
        sum(lengths),
        len(lengths),
        max(lengths, default=0),
        f"counted: {len(lengths)} local rows with the real tokenizer",
    )
