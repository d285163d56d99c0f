"""Command-line handling of `train.py`: recipe path, `--dry-run`, overrides, and user errors without tracebacks."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from qwen_recipes.recipe import Recipe, RecipeError, load_recipe, parse_overrides

USAGE = """usage: python train.py RECIPE.yaml [--dry-run] [--strict] [--KEY VALUE ...]
       accelerate launch [accelerate args] train.py RECIPE.yaml [...]
       qwen-recipes train RECIPE.yaml [...]

  RECIPE.yaml   a recipe (or --config RECIPE.yaml)
  --dry-run     validate, print the resolved recipe and the plan, load no weights
  --strict      turn every skipped data row into an error
  --KEY VALUE   override any recipe key, e.g. --learning_rate 1e-4 --max_steps 10 --reported.cost_usd 50"""


def parse_train_args(argv: list[str]) -> tuple[Recipe, bool]:
    """(recipe, dry_run) from `train.py`'s arguments."""
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


def user_errors(func: Callable[..., int]) -> Callable[..., int]:
    """Print recipe/data errors as messages (no traceback) and exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        from qwen_recipes.data import DataError

        try:
            return func(*args, **kwargs)
        except RecipeError as e:
            print("recipe error:\n" + "\n".join(f"  {p}" for p in e.problems), file=sys.stderr)
        except DataError as e:
            print(f"data error:\n  {e}".replace("\n", "\n  ").replace("  data error:", "data error:"), file=sys.stderr)
        except (FileNotFoundError, ValueError) as e:
            if not _is_user_error(e):
                raise
            print(f"error: {e}", file=sys.stderr)
        return 2

    return wrapper


def _is_user_error(e: Exception) -> bool:
    # Our own messages name a key or file; library internals should keep their traceback.
    return any(frame.f_globals.get("__name__", "").startswith("qwen_recipes") for frame in _frames(e))


def _frames(e: Exception):
    tb = e.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame
        tb = tb.tb_next
    return [last] if last is not None else []
