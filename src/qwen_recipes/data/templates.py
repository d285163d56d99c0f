"""Which chat template SFT trains with: the recipe's file, else the family's training template, else the tokenizer's.

Training templates render exactly the official text and add `{% generation %}` markers, so that
`apply_chat_template(..., return_assistant_tokens_mask=True)` gives the loss mask. The family is found from the
tokenizer's own template or `config.model_type` (`families.detect`), never from the model's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qwen_recipes import families
from qwen_recipes.errors import UserError


class TemplateError(UserError):
    """A chat template that cannot train (missing file, no generation markers, unknown family)."""


def has_generation_markers(template: str | None) -> bool:
    """Whether a Jinja chat template marks assistant output with `{% generation %}`."""
    return bool(template) and "generation %}" in template.replace("{%-", "{%").replace(" -%}", " %}")


def resolve_training_template(tokenizer: Any, model_type: str | None, chat_template_path: str | None = None) -> str:
    """Pick the chat template SFT trains with.

    Order: the recipe's `chat_template_path` (must carry generation markers); the training template of the family
    detected from the tokenizer's template or `model_type`; the tokenizer's own template if it already has markers.
    """
    if chat_template_path:
        path = Path(chat_template_path)
        if not path.is_file():
            raise TemplateError(f"chat_template_path={chat_template_path!r}: no such file")
        text = path.read_text(encoding="utf-8")
        if not has_generation_markers(text):
            raise TemplateError(
                f"chat_template_path={chat_template_path!r} has no {{% generation %}} markers, so assistant-only "
                "loss cannot find the assistant tokens; wrap each assistant turn's content and <|im_end|> in "
                "{% generation %}...{% endgeneration %} (see src/qwen_recipes/templates/qwen3_training.jinja)"
            )
        return text
    own = getattr(tokenizer, "chat_template", None)
    family = families.detect(own, model_type)
    if family is not None:  # the variant the tokenizer ships (e.g. Qwen3.6's), else the family's default
        return family.training_template(family.stem_of(own))
    if has_generation_markers(own):
        return own
    raise TemplateError(
        f"no training chat template for model_type={model_type!r}: the tokenizer's template is not one of a known "
        f"family ({', '.join(families.names())}) and has no {{% generation %}} markers; set chat_template_path in "
        "the recipe"
    )


def official_template(family: str) -> str:
    """The official chat template of a family (by name or model_type)."""
    return families.get(family).official_template()


def training_template(family: str) -> str:
    """The training template (with generation markers) of a family (by name or model_type)."""
    return families.get(family).training_template()


def detect_family(chat_template: str | None, model_type: str | None) -> str | None:
    """The name of a tokenizer's family (`families.detect`), or None."""
    family = families.detect(chat_template, model_type)
    return family.name if family else None
