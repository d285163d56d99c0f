"""Qwen chat templates as files: the official ones (to recognise a tokenizer) and our training variants.

The training variants render exactly the official text and add `{% generation %}` markers so that
`apply_chat_template(..., return_assistant_tokens_mask=True)` gives the loss mask. The template is chosen from
the tokenizer's own template or `config.model_type`, never from the model's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).parent
FAMILIES = ("qwen2_5", "qwen3")
# config.model_type -> template family, for tokenizers whose template we do not recognise (or have none).
MODEL_TYPE_FAMILY = {"qwen2": "qwen2_5", "qwen3": "qwen3", "qwen3_moe": "qwen3"}


def official_template(family: str) -> str:
    """Qwen's official chat template for a family (`qwen2_5` or `qwen3`)."""
    return _read(family, "")


def training_template(family: str) -> str:
    """Our training variant (with generation markers) of a family's template."""
    return _read(family, "_training")


def _read(family: str, suffix: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown chat template family {family!r}; known: {', '.join(FAMILIES)}")
    return (TEMPLATE_DIR / f"{family}{suffix}.jinja").read_text(encoding="utf-8")


def _norm(text: str | None) -> str:
    return (text or "").strip()


def detect_family(chat_template: str | None, model_type: str | None) -> str | None:
    """The Qwen template family of a tokenizer: its own template first, `config.model_type` second."""
    template = _norm(chat_template)
    for family in FAMILIES:
        if template and template in (_norm(official_template(family)), _norm(training_template(family))):
            return family
    if template and "<think>" in template and "<|im_start|>" in template:
        return "qwen3"  # a Qwen3-style template we have not seen byte for byte (e.g. a later hub revision)
    return MODEL_TYPE_FAMILY.get(model_type or "")


def has_generation_markers(template: str | None) -> bool:
    """Whether a Jinja chat template marks assistant output with `{% generation %}`."""
    return bool(template) and "generation %}" in template.replace("{%-", "{%").replace(" -%}", " %}")


def resolve_training_template(tokenizer: Any, model_type: str | None, chat_template_path: str | None = None) -> str:
    """Pick the chat template SFT trains with.

    Order: the recipe's `chat_template_path` (must carry generation markers); our training variant of the family
    detected from the tokenizer's template or `model_type`; the tokenizer's own template if it already has markers.
    """
    if chat_template_path:
        path = Path(chat_template_path)
        if not path.is_file():
            raise FileNotFoundError(f"chat_template_path={chat_template_path!r}: no such file")
        text = path.read_text(encoding="utf-8")
        if not has_generation_markers(text):
            raise ValueError(
                f"chat_template_path={chat_template_path!r} has no {{% generation %}} markers, so assistant-only "
                "loss cannot find the assistant tokens; wrap each assistant turn's content and <|im_end|> in "
                "{% generation %}...{% endgeneration %} (see src/qwen_recipes/templates/qwen3_training.jinja)"
            )
        return text
    family = detect_family(getattr(tokenizer, "chat_template", None), model_type)
    if family is not None:
        return training_template(family)
    own = getattr(tokenizer, "chat_template", None)
    if has_generation_markers(own):
        return own
    raise ValueError(
        f"no training chat template for model_type={model_type!r}: the tokenizer's template is not a known Qwen "
        "template and has no {% generation %} markers; set chat_template_path in the recipe"
    )
