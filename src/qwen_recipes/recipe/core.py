"""A resolved recipe and its typed lookup: the recipe's value, else our schema default, else TRL's default."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from qwen_recipes.errors import UserError
from qwen_recipes.recipe.schema import TASK_CONFIG, TRL_KEY_DEFAULTS, DatasetSpec, Reported, our_fields
from qwen_recipes.recipe.trl_fields import trl_fields

# Never written to any output, whatever the recipe says.
SECRET_KEYS = {"hub_token", "token", "hf_token", "wandb_api_key"}


def scrub_values(values: Any) -> Any:
    """A copy of recipe values without secrets (Hub tokens and the like), at any depth."""
    if isinstance(values, dict):
        return {k: scrub_values(v) for k, v in values.items() if not (isinstance(k, str) and k.lower() in SECRET_KEYS)}
    if isinstance(values, list):
        return [scrub_values(v) for v in values]
    return values


MAX_PROBLEMS, MAX_PROBLEM_CHARS = 50, 500  # a hostile recipe cannot make a message of megabytes


class RecipeError(UserError):
    """A recipe that cannot be used; `problems` lists every reason (at most MAX_PROBLEMS, each bounded)."""

    label = "recipe error"

    def __init__(self, problems: list[str]):
        cut = [p if len(p) <= MAX_PROBLEM_CHARS else p[: MAX_PROBLEM_CHARS - 3] + "..." for p in problems]
        if len(cut) > MAX_PROBLEMS:
            cut = [*cut[:MAX_PROBLEMS], f"... and {len(cut) - MAX_PROBLEMS:,} more problems"]
        self.problems = cut
        super().__init__("\n".join(self.problems))

    def lines(self) -> list[str]:
        """One line per problem."""
        return self.problems


def default(key: str, task: str = "sft") -> Any:
    """The default of a recipe key: ours (schema), else TRL's (the task's config class, then `ModelConfig`)."""
    ours = our_fields()
    if key in ours:
        f = ours[key]
        return f.default_factory() if f.default is MISSING else f.default
    if key in TRL_KEY_DEFAULTS:
        return TRL_KEY_DEFAULTS[key]
    trl = trl_fields()
    for cls in (TASK_CONFIG.get(task, "SFTConfig"), "ModelConfig"):
        if key in trl[cls]:
            return trl[cls][key]["default"]
    if any(key in fields for fields in trl.values()):
        return None  # another task's key (e.g. `packing` for DPO): it does not apply here
    raise KeyError(f"{key!r} is not a key of any recipe")


def is_key(key: str, task: str = "sft") -> bool:
    """Whether `key` is a recipe key for this task (ours or TRL's)."""
    trl = trl_fields()
    return key in our_fields() or key in trl[TASK_CONFIG.get(task, "SFTConfig")] or key in trl["ModelConfig"]


@dataclass
class Recipe:
    """A resolved recipe: merged values, where each key came from, and typed access to every key's value."""

    path: Path
    values: dict[str, Any]
    origin: dict[str, str] = field(default_factory=dict)
    data_problems: list[str] = field(default_factory=list)  # data paths neither on disk nor Hub ids (load.py)

    def get(self, key: str) -> Any:
        """The recipe's value of `key`, else its default (ours, else TRL's); KeyError for a key no schema has."""
        values = self.__dict__.get("values", {})
        if key in values:
            return values[key]
        return default(key, values.get("task", "sft"))

    def is_set(self, key: str) -> bool:
        """Whether the recipe (or the command line) sets `key`."""
        return key in self.values

    def where(self, key: str) -> str:
        """`file:line` (or 'command line') that set `key`, else the recipe file."""
        return self.origin.get(key) or str(self.path)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self.get(name)
        except KeyError:
            raise AttributeError(name) from None

    @property
    def config_class(self) -> str:
        """Name of the TRL config class for this recipe's task."""
        return TASK_CONFIG[self.task]

    def datasets_specs(self, key: str = "datasets") -> list[DatasetSpec]:
        """The recipe's data sources (`datasets` or `eval_datasets`) as `DatasetSpec`s."""
        return [DatasetSpec(**raw) for raw in self.values.get(key) or []]

    def reported_block(self) -> Reported | None:
        """The `reported:` block, if any."""
        raw = self.values.get("reported")
        return Reported(**raw) if raw else None

    def trl_kwargs(self) -> dict[str, Any]:
        """The keys the recipe sets that belong to the task's TRL config class."""
        known = trl_fields()[self.config_class]
        return {k: v for k, v in self.values.items() if k in known and k not in our_fields()}

    def model_kwargs(self) -> dict[str, Any]:
        """The keys the recipe sets that belong to TRL's `ModelConfig`."""
        known = trl_fields()["ModelConfig"]
        return {k: v for k, v in self.values.items() if k in known}
