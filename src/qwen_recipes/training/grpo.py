"""GRPO: TRL's `GRPOTrainer` with the recipe's named rewards bound to their options; no RL loop of our own."""

from __future__ import annotations

from typing import Any

from qwen_recipes.recipe import Recipe, RecipeError
from qwen_recipes.training.rewards import REQUIRED_COLUMNS, get_reward


def reward_functions(recipe: Recipe, columns: list[str] | None = None) -> list[Any]:
    """The recipe's `rewards` as bound reward functions; the dataset must carry the columns they read.

    Names and options were validated with the recipe (`recipe.validate.check_registries`); only the columns of the
    prepared data are new here, and every missing one is raised at once.
    """
    names, options = list(recipe.get("rewards")), dict(recipe.get("reward_kwargs"))
    where = recipe.where("rewards")
    problems: list[str] = []
    funcs = []
    for name in names:
        funcs.append(get_reward(name, **(options.get(name) or {})))
        for group in REQUIRED_COLUMNS.get(name, ()):
            if columns is not None and not set(group) & set(columns):
                problems.append(
                    f"{where}: reward {name!r} reads the dataset column {' or '.join(map(repr, group))}, which the "
                    f"training data lacks (columns: {columns}); use a preprocess such as gsm8k or countdown"
                )
    if problems:
        raise RecipeError(problems)
    return funcs


def make_grpo_trainer(
    recipe: Recipe,
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    peft_config: Any,
    args: Any,
    eval_dataset: Any = None,
    callbacks: list[Any] | None = None,
    trainer_class: type | None = None,
) -> Any:
    """A `trl.GRPOTrainer` (or `trainer_class`) for `recipe` around a loaded model, prompt rows and a `GRPOConfig`.

    `tokenizer` may be a vision-language processor: TRL then renders image prompts and generates with the images.
    """
    from trl import GRPOTrainer

    columns = list(getattr(train_dataset, "column_names", None) or []) or None
    return (trainer_class or GRPOTrainer)(
        model=model,
        reward_funcs=reward_functions(recipe, columns),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
