"""`qwen-recipes prepare NAME ...`: dataset preparation commands, each owned by its module."""

from __future__ import annotations

import importlib
import sys

PREPARERS: dict[str, tuple[str, str]] = {
    "s1k": ("qwen_recipes.s1_data:s1k_main", "s1K / s1K-1.1 → messages JSONL, with token-length statistics"),
    "countdown": ("qwen_recipes.grpo_data:countdown_main", "generate Countdown problems (seeded) for GRPO"),
    "gsm8k": ("qwen_recipes.grpo_data:gsm8k_main", "GSM8K/MATH-style rows → GRPO prompt rows"),
    "cpt": ("qwen_recipes.cpt_data:cpt_main", "mix CPT text sources to a token ratio, dedupe, report tokens"),
}


def prepare_main(argv: list[str]) -> int:
    """Dispatch to a preparer; lists them on --help or an unknown name."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: qwen-recipes prepare NAME [ARGS...]\n\npreparers:")
        for name, (_, help_) in PREPARERS.items():
            print(f"  {name:<10} {help_}")
        return 0
    name = argv[0]
    if name not in PREPARERS:
        print(f"unknown preparer {name!r}; known: {', '.join(PREPARERS)}", file=sys.stderr)
        return 2
    module, func = PREPARERS[name][0].split(":")
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)
