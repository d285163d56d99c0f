"""Recipes: the typed schema (ours + TRL's snapshot), loading with `base:` and overrides, validation, the launch
description, launcher checks and the `--dry-run` plan."""

from qwen_recipes.recipe.core import Recipe, RecipeError, scrub_values
from qwen_recipes.recipe.load import from_argv, load_recipe, parse_overrides

__all__ = ["Recipe", "RecipeError", "from_argv", "load_recipe", "parse_overrides", "scrub_values"]
