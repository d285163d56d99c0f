"""GRPO: TRL's `GRPOTrainer` with the recipe's named rewards bound to their options; no RL loop of our own."""

from __future__ import annotations

from typing import Any

from qwen_recipes.rewards import REQUIRED_COLUMNS, REWARDS, get_reward


def reward_functions(recipe: Any, columns: list[str] | None = None) -> list[Any]:
    """The recipe's `rewards` as bound reward functions; every problem (name, option, column) raised at once."""
    from qwen_recipes.recipe import RecipeError

    names = list(recipe.rewards or [])
    options = dict(recipe.reward_kwargs or {})
    where = (getattr(recipe, "origin", None) or {}).get("rewards") or str(getattr(recipe, "path", "recipe"))
    problems: list[str] = []
    if not names:
        problems.append(f"{where}: task grpo needs 'rewards', e.g. rewards: [accuracy]; known: {', '.join(REWARDS)}")
    for name in sorted(set(options) - set(names)):
        problems.append(f"{where}: reward_kwargs.{name} names a reward that is not in rewards: {names}")
    funcs = []
    for name in names:
        try:
            funcs.append(get_reward(name, **(options.get(name) or {})))
        except ValueError as e:
            problems.append(f"{where}: {e}")
            continue
        for group in REQUIRED_COLUMNS.get(name, ()):
            if columns is not None and not set(group) & set(columns):
                problems.append(
                    f"{where}: reward {name!r} reads the dataset column {' or '.join(map(repr, group))}, which the "
                    f"training data lacks (columns: {columns}); use a preprocess such as gsm8k or countdown"
                )
    if problems:
        raise RecipeError(problems)
    return funcs


def make_grpo_trainer(recipe: Any, model: Any, tokenizer: Any, train_dataset: Any, peft_config: Any, args: Any) -> Any:
    """A `trl.GRPOTrainer` for `recipe` around a loaded model, prompt rows and an already-built `GRPOConfig`."""
    from trl import GRPOTrainer

    columns = list(getattr(train_dataset, "column_names", None) or []) or None
    return GRPOTrainer(
        model=model,
        reward_funcs=reward_functions(recipe, columns),
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
