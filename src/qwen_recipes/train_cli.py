"""`qwen-recipes train RECIPE ...`: runs the repository's `train.py`, the same script `accelerate launch` runs."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "train.py"


def main(argv: list[str]) -> int:
    """Run train.py with `argv` as its arguments."""
    if not TRAIN_SCRIPT.is_file():
        print(
            f"qwen-recipes train: {TRAIN_SCRIPT} not found; install from a clone with `pip install -e .`",
            file=sys.stderr,
        )
        return 2
    sys.argv = [str(TRAIN_SCRIPT), *argv]
    namespace = runpy.run_path(str(TRAIN_SCRIPT), run_name="qwen_recipes_train")
    return int(namespace["main"](argv) or 0)
