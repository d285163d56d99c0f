"""Regenerate src/qwen_recipes/recipe/trl_fields.json from the installed TRL (`python tools/trl_snapshot.py`)."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

from qwen_recipes.recipe.trl_fields import CONFIG_CLASSES, SNAPSHOT, import_config_class


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


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(generate(), indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
