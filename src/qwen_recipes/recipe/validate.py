"""Validate a merged recipe against the schema: keys, types, values, and every registry name, all at once."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from qwen_recipes.recipe import values as value_checks
from qwen_recipes.recipe.core import SECRET_KEYS, Recipe, RecipeError, default
from qwen_recipes.recipe.safe_yaml import short
from qwen_recipes.recipe.schema import DATA_FORMATS, TASK_CONFIG, DatasetSpec, Reported, nested_fields, our_fields
from qwen_recipes.recipe.trl_fields import trl_fields

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
# Unknown keys that get a did-you-mean; past this many they are counted, so 10 MB of junk keys costs no time.
SUGGESTED_UNKNOWN = 20


def validate(values: dict[str, Any], origin: dict[str, str], path: Path) -> Recipe:
    """Check every key, value and registry name; returns the recipe with types coerced (e.g. '1e-5' -> 1e-05)."""
    problems: list[str] = []
    ours = our_fields()
    task = values.get("task", default("task"))
    if not isinstance(task, str) or task not in TASK_CONFIG:
        problems.append(f"{origin.get('task', '?')}: task={short(task)} is not one of {', '.join(TASK_CONFIG)}")
        task = "sft"
        values = {**values, "task": task} if "task" in values else values
    trl = {**trl_fields()["ModelConfig"], **trl_fields()[TASK_CONFIG[task]]}
    known = sorted(set(ours) | set(trl))
    out: dict[str, Any] = {}
    unknown: list[str] = []
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
            out[key] = _check_ours(key, value, where, problems, origin)
        elif key in trl:
            expected = TYPE_OVERRIDES.get(key, trl[key]["type"])
            out[key] = check_type(key, value, expected, where, problems)
        elif len(unknown) < SUGGESTED_UNKNOWN:
            unknown.append(key)
            problems.append(f"{where}: unknown key {short(key)}{did_you_mean(key, known)}")
        else:
            unknown.append(key)
    if len(unknown) > SUGGESTED_UNKNOWN:
        problems.append(f"recipe: ... and {len(unknown) - SUGGESTED_UNKNOWN:,} more unknown keys")
    value_checks.check_secrets(values, origin, problems)
    recipe = Recipe(path=path, values=out, origin=origin)
    _check_values(recipe, problems)
    value_checks.check_all(recipe, problems)
    check_registries(recipe, problems)
    if problems:
        raise RecipeError(problems)
    return recipe


def did_you_mean(key: str, known: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest known key, or ''."""
    close = difflib.get_close_matches(key[:100], known, n=1, cutoff=0.7)
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
            problems.append(f"{where}: {key}={short(value)} must be one of {', '.join(options)}")
            return value
    elif isinstance(value, list):
        if "list" in alts or "tuple" in alts:
            return value
    elif isinstance(value, dict) and "dict" in alts:
        return value
    problems.append(f"{where}: {key}={short(value)} has type {type(value).__name__}; expected {expected}")
    return value


def _field_type(f: Any) -> str:
    t = f.type if isinstance(f.type, str) else str(f.type)
    t = t.replace("typing.", "")
    t = re.sub(r"list\[[^\]]*\]", "list", t)
    t = re.sub(r"dict\[[^\]]*\]", "dict", t)
    return t


def _check_ours(key: str, value: Any, where: str, problems: list[str], origin: dict[str, str] | None = None) -> Any:
    if key in ("datasets", "eval_datasets"):
        return _check_datasets(key, value, where, problems, origin or {})
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
        problems.append(f"{where}: {key} must be a mapping of {', '.join(nested_fields(cls))}; got {short(value)}")
        return value
    known = nested_fields(cls)
    out = {}
    for k, v in value.items():
        if k not in known:
            problems.append(f"{where}: unknown key {key}.{str(k)[:60]}{did_you_mean(str(k), sorted(known))}")
            continue
        out[k] = check_type(f"{key}.{k}", v, _field_type(known[k]), where, problems)
    return out


def _check_datasets(
    key: str, value: Any, where: str, problems: list[str], origin: dict[str, str]
) -> list[dict[str, Any]]:
    """Each data source entry, its problems at the entry's own line (`origin` holds `datasets[0].format` lines)."""
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list):
        problems.append(f"{where}: {key} must be a list of data sources (each a path or a mapping with 'path')")
        return []
    known = nested_fields(DatasetSpec)
    out = []
    for i, item in enumerate(value):
        name = f"{key}[{i}]"
        at = origin.get(name) or where

        def line(field: str, at: str = at, name: str = name) -> str:
            return origin.get(f"{name}.{field}") or at

        if item is None or item == "" or item == {}:
            problems.append(
                f"{at}: {name} is empty; each entry is a path or a mapping with 'path', e.g. '- path: data/train.jsonl'"
            )
            continue
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict):
            problems.append(f"{at}: {name} must be a path or a mapping with 'path', got {type(item).__name__}")
            continue
        checked: dict[str, Any] = {}
        for k, v in item.items():
            if k not in known:
                problems.append(f"{line(k)}: unknown key {name}.{k}{did_you_mean(str(k), sorted(known))}")
                continue
            checked[k] = check_type(f"{name}.{k}", v, _field_type(known[k]), line(k), problems)
        if not checked.get("path"):
            problems.append(f"{at}: {name} needs a 'path' (a local file/folder or a Hub dataset id)")
        fmt = checked.get("format", "auto")
        if fmt not in DATA_FORMATS:
            problems.append(
                f"{line('format')}: {name}.format={fmt!r}{did_you_mean(str(fmt), list(DATA_FORMATS))} must be one "
                f"of {', '.join(DATA_FORMATS)}"
            )
        samples, weight = checked.get("samples"), checked.get("weight")
        if isinstance(samples, int) and not isinstance(samples, bool) and samples < 1:
            problems.append(f"{line('samples')}: {name}.samples={samples} must be a positive number of rows")
        if isinstance(weight, (int, float)) and not isinstance(weight, bool) and not 0 < weight < float("inf"):
            problems.append(
                f"{line('weight')}: {name}.weight={weight} must be a positive finite number (0.5 keeps half the rows, 2.0 repeats "
                "them twice); remove the entry to leave the source out"
            )
        if samples is not None and weight is not None:
            problems.append(f"{at}: {name} sets both samples and weight; set one (samples: rows, weight: a factor)")
        out.append(checked)
    return out


def _check_values(r: Recipe, problems: list[str]) -> None:
    def bad(key: str, msg: str) -> None:
        problems.append(f"{r.where(key)}: {key}={short(r.get(key))} {msg}")

    for key in ("max_length", "per_device_train_batch_size", "gradient_accumulation_steps", "lora_r"):
        if r.is_set(key) and isinstance(r.get(key), int) and r.get(key) <= 0:
            bad(key, "must be a positive integer")
    if not r.get("model_name_or_path"):
        problems.append("recipe: 'model_name_or_path' is required (a Hub id such as Qwen/Qwen3-8B, or a local path)")
    entry_problems = any(re.search(r"(?<!eval_)datasets\[", p) for p in problems)  # entries given, all refused
    if r.task != "grpo" and not r.get("datasets") and not entry_problems:
        problems.append("recipe: 'datasets' is required: a list of data sources, e.g. [{path: data/train.jsonl}]")
    if r.method == "full" and any(k.startswith("lora_") for k in r.values if r.origin.get(k) == COMMAND_LINE):
        problems.append(f"{COMMAND_LINE}: lora_* keys have no effect with method: full")
    if r.get("bf16") and r.get("fp16"):
        problems.append(f"{r.where('fp16')}: bf16 and fp16 are both true; choose one")
    if r.get("use_liger_kernel") and r.task == "sft" and r.get("assistant_only_loss"):
        problems.append(
            f"{r.where('use_liger_kernel')}: use_liger_kernel with assistant-only loss is refused: some TRL "
            "versions ignore the loss mask under Liger (trl#3781); set assistant_only_loss: false or drop Liger"
        )
    if r.get("eval_strategy") not in (None, "no") and not r.get("eval_datasets"):
        problems.append(
            f"{r.where('eval_strategy')}: eval_strategy={r.get('eval_strategy')!r} needs eval_datasets; add "
            "eval_datasets: [...] or set eval_strategy: 'no'"
        )
    if r.task == "grpo":
        _check_grpo_batch(r, problems)
    from qwen_recipes.recipe.vision import check_vision

    check_vision(r, problems)  # vision-language keys vs the model, the method and the data path


def _check_grpo_batch(r: Recipe, problems: list[str]) -> None:
    # TRL's GRPOConfig refuses a generation batch that is not a whole number of groups, after the weights load.
    from qwen_recipes.recipe.launch import describe_launch

    steps = r.get("steps_per_generation") or r.get("gradient_accumulation_steps")
    generations, per_device = r.get("num_generations"), r.get("per_device_train_batch_size")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (steps, generations, per_device)):
        return  # a wrong type is already reported
    world = describe_launch(r, planned=True).world_size
    batch = per_device * world * steps
    if generations < 2 or batch % generations:
        problems.append(
            f"{r.where('num_generations')}: num_generations={generations} must be at least 2 and divide the "
            f"generation batch per_device_train_batch_size x processes x steps_per_generation = "
            f"{r.get('per_device_train_batch_size')} x {world} x {steps} = {batch}; each prompt is sampled "
            "num_generations times in one batch"
        )


def _signature_options(func: Any, skip: set[str]) -> dict[str, Any]:
    """Keyword options of a registered function (name -> resolved type hint), minus the ones filled in for it."""
    import inspect
    import typing

    hints = typing.get_type_hints(func)
    params = inspect.signature(func).parameters.values()
    return {
        p.name: hints.get(p.name)
        for p in params
        if p.name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _check_options(what: str, options: dict[str, Any], given: Any, where: str, problems: list[str]) -> None:
    import typing

    if not isinstance(given, dict):
        problems.append(f"{where}: {what} options must be a mapping of option: value, got {given!r}")
        return
    for key, value in given.items():
        if key not in options:
            known = ", ".join(options) or "(none)"
            problems.append(
                f"{where}: {what} has no option {key!r}{did_you_mean(key, list(options))}; its options: {known}"
            )
            continue
        choices = typing.get_args(options[key]) if typing.get_origin(options[key]) is typing.Literal else ()
        if choices and value not in choices:
            problems.append(
                f"{where}: {what} option {key}={value!r}{did_you_mean(str(value), list(map(str, choices)))} "
                f"must be one of {', '.join(map(str, choices))}"
            )


def check_registries(r: Recipe, problems: list[str]) -> None:
    """Every registry name in the recipe (rewards, preprocessors) and its options, checked before anything loads."""
    from qwen_recipes.data.formats import PREPROCESSORS, get_preprocessor

    for key in ("datasets", "eval_datasets"):
        for i, spec in enumerate(r.datasets_specs(key)):
            if spec.preprocess is None:
                if spec.preprocess_args:
                    problems.append(f"{r.where(key)}: {key}[{i}].preprocess_args is set but preprocess is not")
                continue
            if spec.preprocess not in PREPROCESSORS:
                problems.append(
                    f"{r.where(key)}: {key}[{i}].preprocess={spec.preprocess!r}"
                    f"{did_you_mean(spec.preprocess, sorted(PREPROCESSORS))} is not a registered preprocessor; "
                    f"known: {', '.join(sorted(PREPROCESSORS))}"
                )
                continue
            options = _signature_options(get_preprocessor(spec.preprocess), skip={"row"})
            what = f"{key}[{i}].preprocess {spec.preprocess!r}"
            _check_options(what, options, spec.preprocess_args, r.where(key), problems)
    _check_rewards(r, problems)


def _check_rewards(r: Recipe, problems: list[str]) -> None:
    from qwen_recipes.training.rewards import REWARDS, reward_options

    names, options = r.get("rewards") or [], r.get("reward_kwargs") or {}
    names = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
    where = r.where("rewards") if r.is_set("rewards") else r.where("task")
    if r.task != "grpo":
        if r.is_set("rewards") and names:
            problems.append(f"{where}: rewards are only used by task: grpo (this recipe is task: {r.task})")
        return
    if not names:
        problems.append(f"{where}: task grpo needs 'rewards', e.g. rewards: [accuracy]; known: {', '.join(REWARDS)}")
    for name in names:
        if name not in REWARDS:
            problems.append(
                f"{where}: unknown reward {name!r}{did_you_mean(name, sorted(REWARDS))}; known rewards: "
                f"{', '.join(sorted(REWARDS))}"
            )
    if not isinstance(options, dict):
        problems.append(f"{r.where('reward_kwargs')}: reward_kwargs must map reward names to options, got {options!r}")
        return
    for name, given in options.items():
        if name not in names:
            problems.append(
                f"{r.where('reward_kwargs')}: reward_kwargs.{name} names a reward that is not in rewards: {names}"
            )
        elif name in REWARDS:
            _check_options(f"reward {name!r}", reward_options(name), given or {}, r.where("reward_kwargs"), problems)
