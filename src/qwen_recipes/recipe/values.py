"""Value checks of a typed recipe: known sets (TRL's/transformers' own enums), ranges, secrets at any depth.

Each check appends problems naming `file:line`, the key, a bounded view of the value and the fix; validation
raises them together. Values with a known set are checked against the installed libraries' sets, snapshotted in
`trl_choices.json` (`tools/trl_snapshot.py`), so a typo is refused at `--dry-run` with a suggestion instead of
failing after the weights load.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qwen_recipes.recipe.core import SECRET_KEYS, Recipe
from qwen_recipes.recipe.safe_yaml import short
from qwen_recipes.recipe.trl_fields import trl_choices

# A Hugging Face access token: "hf_" and ~34 letters/digits. Never echoed, wherever it appears.
HUB_TOKEN = re.compile(r"hf_[A-Za-z0-9]{30,}")
SECRET_NAME = re.compile(
    r"^(hub_|hf_|api_|access_|auth_|bearer_)?token$|(^|_)(api_?key|password|passwd|secret|secret_key)$", re.IGNORECASE
)  # `pad_token`, `eos_token` and `max_new_tokens` are not credentials
# What people write for the dtype, and TRL's name for it.
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
# Positive when set; None means "use the default".
STEP_KEYS = {"save_steps": "save_strategy", "eval_steps": "eval_strategy", "logging_steps": "logging_strategy"}


def is_secret_key(name: str) -> bool:
    """Whether a key (at any depth) names a credential: token, hub_token, api_key, password, ..."""
    return name.lower() in SECRET_KEYS or bool(SECRET_NAME.search(name))


def walk(value: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """(dotted path, key or index, value) of every nested item; shared (aliased) containers are walked once."""
    seen: set[int] = set()
    stack = [(path, value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, (dict, list)):
            if id(v) in seen:
                continue
            seen.add(id(v))
            items = v.items() if isinstance(v, dict) else enumerate(v)
            for k, item in items:
                sub = f"{where}.{k}" if isinstance(v, dict) else f"{where}[{k}]"
                yield sub, k, item
                stack.append((sub, item))


def check_secrets(values: dict[str, Any], origin: dict[str, str], problems: list[str]) -> None:
    """Refuse token-like keys at any depth and values that look like Hub tokens (the value is never shown)."""
    fix = "set the HF_TOKEN environment variable or run `hf auth login` instead; never put a token in a recipe"
    for top, value in values.items():
        where = origin.get(top, "?")
        if is_secret_key(top):
            continue  # refused by name in validate(), the value never shown
        if isinstance(value, str) and HUB_TOKEN.search(value):
            problems.append(f"{where}: {top} holds what looks like a Hugging Face token: {fix}")
        for path, key, item in walk(value, top):
            if isinstance(key, str) and is_secret_key(key) and not isinstance(item, (bool, type(None))) and item != "":
                problems.append(f"{where}: {path} is refused: a credential in a recipe lands in saved configs; {fix}")
            elif isinstance(item, str) and HUB_TOKEN.search(item):
                problems.append(f"{where}: {path} holds what looks like a Hugging Face token: {fix}")


def did_you_mean(value: str, known: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest known value, or ''."""
    close = difflib.get_close_matches(value[:100], known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listing(options: list[str], limit: int = 300) -> str:
    text = ", ".join(options)
    return text if len(text) <= limit else text[:limit].rsplit(", ", 1)[0] + ", ..."


def check_choices(r: Recipe, problems: list[str]) -> None:
    """Values with a known set (optim, lr_scheduler_type, *_strategy, report_to, dtype, attn_implementation)."""
    for key, options in trl_choices().items():
        if not r.is_set(key) or r.values[key] is None:
            continue
        given = r.values[key]
        items = given if key == "report_to" and isinstance(given, list) else [given]
        for item in items:
            if not isinstance(item, str):
                if key == "report_to":
                    problems.append(f"{r.where(key)}: report_to={short(given)} must be a name or a list of names")
                continue  # a wrong type is reported by the type check
            if item in options or (key == "attn_implementation" and "/" in item):  # a Hub kernel repo id
                continue
            hint = f" (did you mean {DTYPE_ALIASES[item]!r}?)" if key == "dtype" and item in DTYPE_ALIASES else ""
            problems.append(
                f"{r.where(key)}: {key}={short(item)}{hint or did_you_mean(item, options)} is not a value TRL or "
                f"transformers accept; one of: {_listing(options)}"
            )


def check_ranges(r: Recipe, problems: list[str]) -> None:
    """Numbers that would train nonsense or nothing: non-finite floats, negative counts, zero intervals."""

    def bad(key: str, msg: str) -> None:
        problems.append(f"{r.where(key)}: {key}={short(r.values.get(key, r.get(key)))} {msg}")

    for key, value in r.values.items():
        if isinstance(value, float) and not math.isfinite(value):
            bad(key, "is not a finite number" + ("; use 0 to turn clipping off" if key == "max_grad_norm" else ""))

    def number(key: str) -> float | None:
        value = r.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    if (lr := number("learning_rate")) is not None and math.isfinite(lr) and lr <= 0:
        bad("learning_rate", "must be positive")
    if (warmup := number("warmup_steps")) is not None and warmup < 0:
        bad("warmup_steps", "must be 0 or more (a count of steps, or a ratio below 1)")
    epochs, max_steps = number("num_train_epochs"), number("max_steps")
    if epochs is not None and (epochs < 0 or (epochs == 0 and (max_steps or 0) <= 0)):
        bad("num_train_epochs", "must be positive (or set max_steps); it would train 0 steps")
    for key, strategy in STEP_KEYS.items():
        steps = number(key)
        if r.is_set(key) and steps is not None and steps <= 0 and r.get(strategy) == "steps":
            bad(key, f"must be positive with {strategy}: steps (an interval in steps, or a ratio below 1)")
    if (alpha := number("lora_alpha")) is not None and alpha <= 0:
        bad("lora_alpha", "must be positive")
    if (dropout := number("lora_dropout")) is not None and not 0 <= dropout < 1:
        bad("lora_dropout", "must be in [0, 1)")
    if (norm := number("max_grad_norm")) is not None and norm < 0:
        bad("max_grad_norm", "must be 0 (no clipping) or positive")


def check_modules(r: Recipe, problems: list[str]) -> None:
    """LoRA target / saved modules are a name or a flat list of names."""
    for key in ("lora_target_modules", "lora_modules_to_save"):
        value = r.values.get(key)
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
            problems.append(
                f"{r.where(key)}: {key}={short(value)} must be a module name or a flat list of names, "
                "e.g. [q_proj, v_proj]"
            )


def check_output_dir(r: Recipe, problems: list[str]) -> None:
    """`output_dir` must be a folder (or not exist yet), not a file or under one."""
    value = r.get("output_dir")
    if not isinstance(value, str) or not value:
        problems.append(f"{r.where('output_dir')}: output_dir={short(value)} must be a folder path")
        return
    path = Path(value)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"is under {p}, which is a file"
                problems.append(f"{r.where('output_dir')}: output_dir={short(value)} {what}; name a folder")
            return


def check_remote_code(r: Recipe, problems: list[str]) -> None:
    """`trust_remote_code: true` is refused: every supported family is native to transformers."""
    if r.values.get("trust_remote_code") is True:
        problems.append(
            f"{r.where('trust_remote_code')}: trust_remote_code: true is refused: it runs Python code from the model "
            "repository, and every model family qwen-recipes supports is built into transformers (no remote code "
            "needed); remove the key, or use a model whose architecture transformers ships"
        )


def check_all(r: Recipe, problems: list[str]) -> None:
    """Every value check of this module."""
    check_choices(r, problems)
    check_ranges(r, problems)
    check_modules(r, problems)
    check_output_dir(r, problems)
    check_remote_code(r, problems)
