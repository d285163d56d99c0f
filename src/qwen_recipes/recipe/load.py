"""Load a recipe: YAML + `base:` inheritance + command-line overrides, then validation (`validate.py`).

Every problem is collected and raised once as a `RecipeError`, each naming the file (and line), the key, the
value and what to do. Nothing here imports torch, so `--dry-run` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from qwen_recipes.recipe import safe_yaml
from qwen_recipes.recipe.core import Recipe, RecipeError
from qwen_recipes.recipe.validate import COMMAND_LINE, validate

USAGE = """usage: python train.py RECIPE.yaml [--dry-run] [--strict] [--KEY VALUE ...]
       accelerate launch [accelerate args] train.py RECIPE.yaml [...]
       qwen-recipes train RECIPE.yaml [...]

  RECIPE.yaml   a recipe (or --config RECIPE.yaml)
  --dry-run     validate, print the resolved recipe and the plan, load no weights
  --strict      turn every skipped data row into an error
  --KEY VALUE   override any recipe key, e.g. --learning_rate 1e-4 --max_steps 10 --reported.cost_usd 50"""


def from_argv(argv: list[str]) -> tuple[Recipe, bool]:
    """(recipe, dry_run) from `train.py`'s arguments; `--help` prints the usage and exits."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0)
    dry_run = "--dry-run" in argv or "--dry_run" in argv
    argv = [a for a in argv if a not in ("--dry-run", "--dry_run")]
    if argv[0] == "--config" and len(argv) > 1:
        argv = argv[1:]
    elif argv[0].startswith("--config="):
        argv = [argv[0].split("=", 1)[1], *argv[1:]]
    path, rest = argv[0], argv[1:]
    if path.startswith("--"):
        raise RecipeError([f"command line: the first argument must be a recipe file, got {path!r}\n{USAGE}"])
    return load_recipe(path, parse_overrides(rest)), dry_run


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """`--key value` / `--key=value` / bare `--flag` pairs into a dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise RecipeError(
                [f"{COMMAND_LINE}: unexpected argument {arg!r}; overrides look like --learning_rate 1e-4"]
            )
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value = argv[i + 1]
                i += 1
            else:
                value = "true"
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        _set_dotted(out, key, parsed)
        i += 1
    return out


def _set_dotted(target: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Merge `top` over `base`; nested mappings merge, everything else (lists included) is replaced."""
    out = dict(base)
    for k, v in top.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: Path, referenced_by: str | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """A YAML mapping and the line of each top-level key; errors name the file, line and column.

    The file is read within bounds (size, encoding, nesting, alias expansion, string keys, no repeats): safe_yaml.py.
    """
    where = f" (referenced by {referenced_by})" if referenced_by else ""
    if not path.is_file():
        raise RecipeError([f"{path}: recipe file not found{where}"])
    try:
        data, node = safe_yaml.load(path)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        pos = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise RecipeError([f"{path}{pos}: YAML syntax error: {str(e.problem or e)[:200]}{where}"]) from None
    except yaml.YAMLError as e:  # the reader's unacceptable characters, and the like
        raise RecipeError([f"{path}: YAML error: {str(e)[:200]}{where}"]) from None
    except RecipeError as e:
        raise RecipeError([f"{p}{where}" for p in e.problems]) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise RecipeError([f"{path}: a recipe must be a YAML mapping of keys, got {type(data).__name__}{where}"])
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if isinstance(node, yaml.MappingNode) else {}
    return data, lines


def _resolve(path: Path, stack: tuple[Path, ...], referenced_by: str | None) -> tuple[dict, dict[str, str]]:
    data, lines = read_yaml(path, referenced_by)
    _anchor_data_paths(data, path.parent)
    bases = base_list(data.pop("base", None), f"{_rel(path)}:{lines.get('base', '?')}")
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for b in bases:
        bpath = (path.parent / str(b)).resolve()
        if bpath in stack:
            raise RecipeError([f"{path}: base {b!r} inherits from itself (cycle: {' -> '.join(map(str, stack))})"])
        bdata, borigin = _resolve(bpath, (*stack, bpath), f"{_rel(path)}:{lines.get('base', '?')}")
        merged = deep_merge(merged, bdata)
        origin.update(borigin)
    merged = deep_merge(merged, data)
    rel = _rel(path)
    origin.update({k: f"{rel}:{lines.get(k, '?')}" for k in data})
    return merged, origin


def base_list(value: Any, where: str) -> list[str]:
    """`base:` as a list of file names; anything else (a number, a mapping, a NUL byte) is a named error."""
    bases = [value] if isinstance(value, str) else value or []
    if not isinstance(bases, list) or not all(isinstance(b, str) and b and "\0" not in b for b in bases):
        raise RecipeError(
            [f"{where}: base={safe_yaml.short(value)} must be a recipe file name or a list of them, e.g. "
             "base: [../_base/sft.yaml, ../_base/lora.yaml]"]
        )  # fmt: skip
    return bases


def _anchor_data_paths(data: dict[str, Any], folder: Path) -> None:
    # A data path is relative to the recipe file that names it (bases included); Hub ids stay as they are.
    for key in ("datasets", "eval_datasets"):
        items = data.get(key)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            raw = item.get("path") if isinstance(item, dict) else item
            if isinstance(raw, str) and not Path(raw).is_absolute() and (folder / raw).exists():
                anchored = str((folder / raw).resolve())
                items[i] = {**item, "path": anchored} if isinstance(item, dict) else anchored


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read, merge and validate a recipe; raises `RecipeError` listing every problem."""
    path = Path(path)
    values, origin = _resolve(path.resolve(), (path.resolve(),), None)
    for k in overrides or {}:
        origin[k] = COMMAND_LINE
    values = deep_merge(values, overrides or {})
    values.setdefault("output_dir", f"outputs/{path.stem}")
    return validate(values, origin, path.resolve())
