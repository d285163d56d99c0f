"""TRL's config fields, snapshotted to `trl_fields.json` so a recipe validates without importing torch.

Validation and `--dry-run` must start in well under 3 s, and importing TRL's configs pulls in torch and
transformers. The snapshot is regenerated with `python -m qwen_recipes.schema` and a test checks it against the
installed TRL, so it cannot drift silently.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from functools import cache
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("trl_fields.json")
# Our name for each TRL config class, and where it lives in the installed TRL.
CONFIG_CLASSES = {
    "ModelConfig": "trl:ModelConfig",
    "SFTConfig": "trl:SFTConfig",
    "DPOConfig": "trl:DPOConfig",
    "GRPOConfig": "trl:GRPOConfig",
    "ORPOConfig": "trl.experimental.orpo:ORPOConfig",
    "CPOConfig": "trl.experimental.cpo:CPOConfig",
}


def import_config_class(name: str) -> type:
    """Import one of TRL's config dataclasses by our name for it (e.g. `SFTConfig`)."""
    import importlib

    module, attr = CONFIG_CLASSES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def type_string(tp: Any) -> str:
    """A compact, stable string for a resolved type hint (`int | None`, `list[str]`, `Literal['a', 'b']`)."""
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "None"
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
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


@cache
def trl_fields() -> dict[str, dict[str, dict[str, Any]]]:
    """The snapshotted fields of each TRL config class."""
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))["classes"]


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(generate(), indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
