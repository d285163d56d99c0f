"""Regenerate src/qwen_recipes/recipe/trl_fields.json from the installed TRL (`python tools/trl_snapshot.py`)."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from typing import Any

from qwen_recipes.recipe.trl_fields import CHOICES, CONFIG_CLASSES, SNAPSHOT, import_config_class


def type_string(tp: Any) -> str:
    """A compact, stable string for a resolved type hint (`int | None`, `list[str]`, `Literal['a', 'b']`)."""
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_string(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in typing.get_args(tp)) + "]"
    if origin in (list, tuple, dict):
        return origin.__name__
    if isinstance(tp, type) and issubclass(tp, (bool, int, float, str)):
        return {bool: "bool", int: "int", float: "float", str: "str"}.get(tp, "str")  # enums subclass str
    return "any"


def describe(cls: type) -> dict[str, dict[str, Any]]:
    """Field name -> {type, default, help} for a dataclass."""
    hints = typing.get_type_hints(cls)
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        if not isinstance(default, (bool, int, float, str, list, dict, type(None))):
            default = str(default)
        out[f.name] = {"type": type_string(hints[f.name]), "default": default, "help": f.metadata.get("help", "")}
    return out


def generate() -> dict[str, Any]:
    """Describe every config class of the installed TRL."""
    import trl

    classes = {name: describe(import_config_class(name)) for name in CONFIG_CLASSES}
    return {"trl_version": trl.__version__, "classes": classes}


def _enum_values(tp: Any) -> list[str] | None:
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
    return sorted({str(e.value) for a in enums for e in a}) if enums else None


def generate_choices() -> dict[str, list[str]]:
    """Key -> accepted values, read from the installed TRL/transformers: every enum-typed field, plus the str
    fields whose set lives elsewhere (report_to, packing_strategy, dtype, attn_implementation)."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from trl import ModelConfig
    from trl.data_utils import pack_dataset

    out: dict[str, list[str]] = {}
    for name in CONFIG_CLASSES:
        cls = import_config_class(name)
        for key, tp in typing.get_type_hints(cls).items():
            if (values := _enum_values(tp)) is not None:
                out[key] = sorted(set(out.get(key, [])) | set(values))
    out["report_to"] = sorted({*INTEGRATION_TO_CALLBACK, "all", "none"})
    # TRL checks the strategy inside pack_dataset (and renames the deprecated 'bfd-requeue' in SFTConfig).
    packing = re.search(r"valid_strategies = \(([^)]*)\)", inspect.getsource(pack_dataset))
    out["packing_strategy"] = sorted({*re.findall(r"['\"]([^'\"]+)['\"]", packing.group(1)), "bfd-requeue"})
    dtype = re.search(r"dtype \(`Literal\[([^\]]*)\]`", ModelConfig.__doc__ or "")
    out["dtype"] = sorted(re.findall(r'"([^"]+)"', dtype.group(1)))
    out["attn_implementation"] = sorted({"eager", *ALL_ATTENTION_FUNCTIONS.valid_keys()})
    return dict(sorted(out.items()))


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(generate(), indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    CHOICES.write_text(json.dumps(generate_choices(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {SNAPSHOT} and {CHOICES}")
