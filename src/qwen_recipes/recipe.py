"""Load a recipe: YAML + `base:` inheritance + command-line overrides, validated against the schema.

Every problem is collected and raised once as a `RecipeError`, each naming the file (and line), the key, the
value and what to do. Nothing here imports torch, so `--dry-run` stays fast.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qwen_recipes.config import DATA_FORMATS, TASK_CONFIG, DatasetSpec, Reported, nested_fields, our_fields
from qwen_recipes.schema import trl_fields

COMMAND_LINE = "command line"
# Keys whose TRL type is narrower than what TRL/PEFT really accept.
TYPE_OVERRIDES = {"lora_target_modules": "list | str | None", "resume_from_checkpoint": "str | bool | None"}
# Keys people carry over from older transformers/TRL, with what to write now.
RENAMED = {
    "warmup_ratio": "warmup_steps (a float below 1 is a ratio of the total steps in transformers 5)",
    "max_seq_length": "max_length",
    "torch_dtype": "dtype",
    "evaluation_strategy": "eval_strategy",
}
# TRL keys that `method:` decides; setting them directly would contradict it.
METHOD_KEYS = {"use_peft": "lora or qlora", "load_in_4bit": "qlora", "load_in_8bit": "qlora"}


# Never written to any output, whatever the recipe says.
SECRET_KEYS = {"hub_token", "token", "hf_token", "wandb_api_key"}


def scrub_values(values: dict[str, Any]) -> dict[str, Any]:
    """A copy of recipe values without secrets (Hub tokens and the like)."""
    return {k: v for k, v in values.items() if k.lower() not in SECRET_KEYS}


class RecipeError(Exception):
    """A recipe that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Recipe:
    """A resolved recipe: merged values, where each key came from, and our typed keys."""

    path: Path
    values: dict[str, Any]
    origin: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        if name in our_fields():
            f = our_fields()[name]
            return f.default_factory() if f.default is MISSING else f.default
        raise AttributeError(name)

    @property
    def config_class(self) -> str:
        """Name of the TRL config class for this recipe's task."""
        return TASK_CONFIG[self.task]

    def datasets_specs(self, key: str = "datasets") -> list[DatasetSpec]:
        """The recipe's data sources as `DatasetSpec`s (paths resolved against the recipe's folder)."""
        specs = []
        for raw in self.values.get(key) or []:
            specs.append(DatasetSpec(**raw))
        return specs

    def reported_block(self) -> Reported | None:
        """The `reported:` block, if any."""
        raw = self.values.get("reported")
        return Reported(**raw) if raw else None

    def trl_kwargs(self) -> dict[str, Any]:
        """The keys that belong to the task's TRL config class."""
        known = trl_fields()[self.config_class]
        return {k: v for k, v in self.values.items() if k in known and k not in our_fields()}

    def model_kwargs(self) -> dict[str, Any]:
        """The keys that belong to TRL's `ModelConfig`."""
        known = trl_fields()["ModelConfig"]
        return {k: v for k, v in self.values.items() if k in known}


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
    """A YAML mapping and the line of each top-level key; errors name the file, line and column."""
    where = f" (referenced by {referenced_by})" if referenced_by else ""
    if not path.is_file():
        raise RecipeError([f"{path}: recipe file not found{where}"])
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        pos = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise RecipeError([f"{path}{pos}: YAML syntax error: {e.problem or e}{where}"]) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise RecipeError([f"{path}: a recipe must be a YAML mapping of keys, got {type(data).__name__}{where}"])
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if isinstance(node, yaml.MappingNode) else {}
    return data, lines


def _resolve(path: Path, stack: tuple[Path, ...], referenced_by: str | None) -> tuple[dict, dict[str, str]]:
    data, lines = read_yaml(path, referenced_by)
    _anchor_data_paths(data, path.parent)
    bases = data.pop("base", None) or []
    if isinstance(bases, str):
        bases = [bases]
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
    origin.update({k: f"{_rel(path)}:{lines.get(k, '?')}" for k in data})
    return merged, origin


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
    values = validate(values, origin)
    return Recipe(path=path.resolve(), values=values, origin=origin)


def validate(values: dict[str, Any], origin: dict[str, str]) -> dict[str, Any]:
    """Check every key and value; returns the values with types coerced (e.g. '1e-5' -> 1e-05)."""
    problems: list[str] = []
    ours = our_fields()
    task = values.get("task", "sft")
    if task not in TASK_CONFIG:
        problems.append(f"{origin.get('task', '?')}: task={task!r} is not one of {', '.join(TASK_CONFIG)}")
        task = "sft"
    trl = {**trl_fields()["ModelConfig"], **trl_fields()[TASK_CONFIG[task]]}
    known = sorted(set(ours) | set(trl))
    out: dict[str, Any] = {}
    for key, value in values.items():
        where = origin.get(key, "?")
        if key in RENAMED and key not in trl:
            problems.append(f"{where}: unknown key {key!r}: write {RENAMED[key]} instead")
            continue
        if key.lower() in SECRET_KEYS:
            problems.append(
                f"{where}: {key!r} is refused: a token in a recipe ends up in saved configs and logs; set the HF_TOKEN "
                "environment variable or run `hf auth login` instead"
            )
            continue
        if key in METHOD_KEYS:
            problems.append(f"{where}: key {key!r} is set by method; write 'method: {METHOD_KEYS[key]}' instead")
            continue
        if key in ours:
            out[key] = _check_ours(key, value, where, problems)
        elif key in trl:
            expected = TYPE_OVERRIDES.get(key, trl[key]["type"])
            out[key] = check_type(key, value, expected, where, problems)
        else:
            problems.append(f"{where}: unknown key {key!r}{did_you_mean(key, known)}")
    _check_values(out, origin, problems)
    if problems:
        raise RecipeError(problems)
    return out


def did_you_mean(key: str, known: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest known key, or ''."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def check_type(key: str, value: Any, expected: str, where: str, problems: list[str]) -> Any:
    """Check `value` against a type string from the schema; coerce YAML's string floats like '1e-5'."""
    alts = [a.strip() for a in expected.split("|")]
    if "any" in alts:
        return value
    if value is None:
        if "None" in alts:
            return None
    elif isinstance(value, bool):
        if "bool" in alts:
            return value
    elif isinstance(value, int):
        if "int" in alts:
            return value
        if "float" in alts:
            return float(value)
    elif isinstance(value, float):
        if "float" in alts:
            return value
        if "int" in alts and value.is_integer():
            return int(value)
    elif isinstance(value, str):
        if "float" in alts and _FLOAT.match(value):
            return float(value)
        if "int" in alts and re.fullmatch(r"[+-]?\d+", value):
            return int(value)
        literals = [a for a in alts if a.startswith("Literal[")]
        if "str" in alts:
            return value
        for lit in literals:
            options = [o.strip().strip("'\"") for o in lit[len("Literal[") : -1].split(",")]
            if value in options:
                return value
            problems.append(f"{where}: {key}={value!r} must be one of {', '.join(options)}")
            return value
    elif isinstance(value, list):
        if "list" in alts or "tuple" in alts:
            return value
    elif isinstance(value, dict) and "dict" in alts:
        return value
    problems.append(f"{where}: {key}={value!r} has type {type(value).__name__}; expected {expected}")
    return value


def _field_type(f: Any) -> str:
    t = f.type if isinstance(f.type, str) else str(f.type)
    t = t.replace("typing.", "")
    t = re.sub(r"list\[[^\]]*\]", "list", t)
    t = re.sub(r"dict\[[^\]]*\]", "dict", t)
    return t


def _check_ours(key: str, value: Any, where: str, problems: list[str]) -> Any:
    if key in ("datasets", "eval_datasets"):
        return _check_datasets(key, value, where, problems)
    if key == "reported":
        return _check_block(key, value, Reported, where, problems)
    if key == "base":
        return value
    if key in ("rewards",) and isinstance(value, str):
        value = [value]
    return check_type(key, value, _field_type(our_fields()[key]), where, problems)


def _check_block(key: str, value: Any, cls: type, where: str, problems: list[str]) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(f"{where}: {key} must be a mapping of {', '.join(nested_fields(cls))}; got {value!r}")
        return value
    known = nested_fields(cls)
    out = {}
    for k, v in value.items():
        if k not in known:
            problems.append(f"{where}: unknown key {key}.{k}{did_you_mean(k, sorted(known))}")
            continue
        out[k] = check_type(f"{key}.{k}", v, _field_type(known[k]), where, problems)
    return out


def _check_datasets(key: str, value: Any, where: str, problems: list[str]) -> list[dict[str, Any]]:
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list):
        problems.append(f"{where}: {key} must be a list of data sources (each a path or a mapping with 'path')")
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"path": item}
        checked = _check_block(f"{key}[{i}]", item, DatasetSpec, where, problems)
        if isinstance(checked, dict):
            if not checked.get("path"):
                problems.append(f"{where}: {key}[{i}] needs a 'path' (a local file/folder or a Hub dataset id)")
            fmt = checked.get("format", "auto")
            if fmt not in DATA_FORMATS:
                problems.append(f"{where}: {key}[{i}].format={fmt!r} must be one of {', '.join(DATA_FORMATS)}")
            out.append(checked)
    return out


def _check_values(v: dict[str, Any], origin: dict[str, str], problems: list[str]) -> None:
    def bad(key: str, msg: str) -> None:
        problems.append(f"{origin.get(key, '?')}: {key}={v.get(key)!r} {msg}")

    for key in ("max_length", "per_device_train_batch_size", "gradient_accumulation_steps", "lora_r"):
        if key in v and v[key] is not None and isinstance(v[key], int) and v[key] <= 0:
            bad(key, "must be a positive integer")
    if isinstance(v.get("learning_rate"), float) and v["learning_rate"] <= 0:
        bad("learning_rate", "must be positive")
    if not v.get("model_name_or_path"):
        problems.append("recipe: 'model_name_or_path' is required (a Hub id such as Qwen/Qwen3-8B, or a local path)")
    if v.get("task") != "grpo" and not v.get("datasets"):
        problems.append("recipe: 'datasets' is required: a list of data sources, e.g. [{path: data/train.jsonl}]")
    if v.get("method", "lora") == "full" and any(k.startswith("lora_") for k in v if origin.get(k) == COMMAND_LINE):
        problems.append(f"{COMMAND_LINE}: lora_* keys have no effect with method: full")
    bf16, fp16 = v.get("bf16"), v.get("fp16")
    if bf16 and fp16:
        problems.append(f"{origin.get('fp16', '?')}: bf16 and fp16 are both true; choose one")
    if v.get("use_liger_kernel") and v.get("task", "sft") == "sft" and v.get("assistant_only_loss", True):
        problems.append(
            f"{origin.get('use_liger_kernel', '?')}: use_liger_kernel with assistant-only loss is refused: some TRL "
            "versions ignore the loss mask under Liger (trl#3781); set assistant_only_loss: false or drop Liger"
        )
