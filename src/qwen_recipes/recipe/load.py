"""Load a recipe: YAML + `base:` inheritance + command-line overrides, then validation (`validate.py`).

Every problem is collected and raised once as a `RecipeError`, each naming the file (and line), the key, the
value and what to do. Nothing here imports torch, so `--dry-run` stays fast.
"""

from __future__ import annotations

import os
import re
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
    """`--key value` / `--key=value` / bare `--flag` pairs into a dict; values are parsed as YAML scalars.

    A numeric part indexes a list: `--datasets.1.samples 5` (or `--datasets[1].samples 5`) edits the second
    `datasets:` entry in place instead of replacing the list.
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise RecipeError(
                [f"{COMMAND_LINE}: unexpected argument {arg!r}; overrides look like --learning_rate 1e-4"]
            )
        key, eq, value = arg[2:].partition("=")
        key = re.sub(r"\[(\d+)\]", r".\1", key.replace("-", "_"))
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


def _set_dotted(target: dict[Any, Any], key: str, value: Any) -> None:
    parts: list[Any] = [int(p) if p.isdigit() else p for p in key.split(".")]
    if isinstance(parts[0], int):
        raise RecipeError([f"{COMMAND_LINE}: --{key}: a key cannot start with a number"])
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def _apply_indexed(values: dict[str, Any], overrides: dict[str, Any], origin: dict[str, str]) -> list[str]:
    """Apply `--key.N.field value` overrides to list entries in place (removed from `overrides`); returns problems."""
    problems = []
    for key in [k for k, v in overrides.items() if isinstance(v, dict) and any(isinstance(i, int) for i in v)]:
        edits = overrides.pop(key)
        items = values.get(key)
        if not isinstance(items, list):
            problems.append(f"{COMMAND_LINE}: --{key}.N...: {key} is not a list in this recipe, so it has no entry N")
            continue
        items = list(items)
        for index, patch in edits.items():
            if not isinstance(index, int) or not 0 <= index < len(items):
                problems.append(
                    f"{COMMAND_LINE}: --{key}.{index}...: {key} has {len(items)} entries, numbered 0 to "
                    f"{len(items) - 1} (e.g. --{key}.0.samples 100)"
                )
                continue
            entry = items[index]
            if isinstance(patch, dict):
                entry = {"path": entry} if isinstance(entry, str) else entry
                entry = deep_merge(entry, patch) if isinstance(entry, dict) else patch
                for field in patch:
                    origin[f"{key}[{index}].{field}"] = COMMAND_LINE
            else:
                entry = patch
                origin[f"{key}[{index}]"] = COMMAND_LINE
            items[index] = entry
        values[key] = items
    return problems


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
    return data, key_lines(node)


def key_lines(node: Any, prefix: str = "", depth: int = 0) -> dict[str, int]:
    """Line of every key of a composed YAML mapping: top-level keys, and nested ones as `datasets[0].format`."""
    lines: dict[str, int] = {}
    if depth > 3:  # entries of datasets: and their own small mappings; nothing deeper needs a line
        return lines
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                continue
            name = f"{prefix}.{k.value}" if prefix else str(k.value)
            lines.setdefault(name, k.start_mark.line + 1)
            if depth < 3:
                lines.update({n: line for n, line in key_lines(v, name, depth + 1).items() if n not in lines})
    elif isinstance(node, yaml.SequenceNode) and prefix:
        for i, item in enumerate(node.value):
            lines[f"{prefix}[{i}]"] = item.start_mark.line + 1
            lines.update(key_lines(item, f"{prefix}[{i}]", depth + 1))
    return lines


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
    for k in data:  # this file's value wins: forget where an earlier file's entries of it were
        for stale in [o for o in origin if o.startswith((f"{k}[", f"{k}."))]:
            del origin[stale]
    rel = _rel(path)
    origin.update({k: f"{rel}:{n}" for k, n in lines.items() if k.split(".")[0].split("[")[0] in data})
    return merged, origin


DATA_KEYS = ("datasets", "eval_datasets")
# A relative data path that names a file (has one of these suffixes) is local, never a Hub id.
DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".txt", ".gz", ".zst", ".arrow")
_HUB_LIKE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_like_hub_id(raw: str) -> bool:
    """Whether a data path that is not on disk can be a Hub dataset id (`org/name`, no file suffix)."""
    return bool(_HUB_LIKE.match(raw)) and not raw.lower().endswith(DATA_SUFFIXES) and not raw.startswith(".")


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
    """Make each relative data path that exists under `folder` (the recipe's; the cwd for the command line) absolute.

    Only `folder` is looked in, never the current directory: what is left relative is a Hub id, or a missing path
    that `missing_data_paths` reports.
    """
    for key in DATA_KEYS:
        items = data.get(key)
        if isinstance(items, (str, dict)):
            items = data[key] = [items]
        for i in range(len(items) if isinstance(items, list) else 0):
            _anchor_entry(items, i, folder)


def _anchor_entry(items: list[Any], i: int, folder: Path) -> None:
    item = items[i]
    raw = item.get("path") if isinstance(item, dict) else item
    if isinstance(raw, str) and raw:
        path = Path(raw).expanduser()
        candidate = path if path.is_absolute() else folder / path
        if candidate.exists():
            anchored = str(candidate.resolve())
            items[i] = {**item, "path": anchored} if isinstance(item, dict) else anchored


def missing_data_paths(values: dict[str, Any], origin: dict[str, str]) -> list[str]:
    """Every data path that is neither on disk nor a Hub id, each with its resolved path, file and line."""
    problems = []
    for key in DATA_KEYS:
        items = values.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            raw = item.get("path") if isinstance(item, dict) else item
            if not isinstance(raw, str) or not raw or (Path(raw).expanduser().is_absolute() and Path(raw).exists()):
                continue
            where = origin.get(f"{key}[{i}].path") or origin.get(f"{key}[{i}]") or origin.get(key) or COMMAND_LINE
            folder = Path.cwd() if where == COMMAND_LINE else Path(where.rsplit(":", 1)[0]).resolve().parent
            path = Path(raw).expanduser()
            resolved = (path if path.is_absolute() else folder / path).resolve()
            what = f"{key}[{i}].path={raw!r}"
            if not path.is_absolute() and looks_like_hub_id(raw):
                in_cwd = Path.cwd() / raw
                if where != COMMAND_LINE and in_cwd.exists() and folder != Path.cwd().resolve():
                    problems.append(
                        f"{where}: {what} is not next to the recipe ({resolved}) but exists in the current directory "
                        f"({in_cwd.resolve()}); data paths in a recipe are read relative to the recipe's folder: "
                        f"write {os.path.relpath(in_cwd.resolve(), folder)!r} or an absolute path"
                    )
                continue  # a Hub dataset id
            relative = "" if path.is_absolute() else (
                "relative paths on the command line are read from the current directory, "
                if where == COMMAND_LINE else "relative paths in a recipe are read from the recipe's folder, "
            )  # fmt: skip
            problems.append(
                f"{where}: {what}: no such file or folder: {resolved} ({relative}fix the path, or give a Hub "
                "dataset id as org/name)"
            )
    return problems


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def sort_problems(problems: list[str]) -> list[str]:
    """Problems ordered by file and line (`file:line: ...` first, in file order), then the rest as found."""

    def key(problem: str) -> tuple[int, str, int]:
        m = re.match(r"^(.+?):(\d+): ", problem)
        return (0, m.group(1), int(m.group(2))) if m else (1, "", 0)

    return sorted(dict.fromkeys(problems), key=key)


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read, merge and validate a recipe; raises `RecipeError` listing every problem, sorted by file and line."""
    path = Path(path)
    values, origin = _resolve(path.resolve(), (path.resolve(),), None)
    overrides = dict(overrides or {})
    problems = _apply_indexed(values, overrides, origin)
    # Paths typed on the command line are relative to where it was typed.
    _anchor_data_paths(overrides, Path.cwd())
    for key in DATA_KEYS:
        items = values.get(key)
        for i in range(len(items) if isinstance(items, list) else 0):
            if COMMAND_LINE in (origin.get(f"{key}[{i}].path"), origin.get(f"{key}[{i}]")):
                _anchor_entry(items, i, Path.cwd())
    for k in overrides:
        origin[k] = COMMAND_LINE
        for stale in [o for o in origin if o.startswith((f"{k}[", f"{k}."))]:
            del origin[stale]
    values = deep_merge(values, overrides)
    values.setdefault("output_dir", f"outputs/{path.stem}")
    try:
        recipe = validate(values, origin, path.resolve())
    except RecipeError as e:
        raise RecipeError(sort_problems(problems + e.problems)) from None
    if problems:
        raise RecipeError(sort_problems(problems))
    # Data an earlier step writes may be missing now: reported by --dry-run and before data loads, not here.
    recipe.data_problems = missing_data_paths(values, origin)
    return recipe
