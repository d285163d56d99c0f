"""`qwen-recipes prepare NAME ...`: dataset preparation commands, one module per dataset, and their shared tokenizer.

Every preparer takes `--tokenizer` the same way (`load_tokenizer`): a family name (`qwen2_5`, `qwen3`, ...) for the
offline tokenizer of the test bed, or a local tokenizer folder / Hub id.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from qwen_recipes.errors import UserError

PREPARERS: dict[str, tuple[str, str]] = {
    "s1k": ("qwen_recipes.data.prepare.s1k:s1k_main", "s1K / s1K-1.1 → messages JSONL, with token-length statistics"),
    "countdown": ("qwen_recipes.data.prepare.grpo:countdown_main", "generate Countdown problems (seeded) for GRPO"),
    "gsm8k": ("qwen_recipes.data.prepare.grpo:gsm8k_main", "GSM8K/MATH-style rows → GRPO prompt rows"),
    "cpt": ("qwen_recipes.data.prepare.cpt:cpt_main", "mix CPT text sources to a token ratio, dedupe, report tokens"),
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


# One `--tokenizer` convention for every preparer (what `load_tokenizer` accepts).
TOKENIZER_HELP = (
    "a model family (qwen2_5, qwen3, ...: the offline tokenizer, token ids identical to the published checkpoints'), "
    "a local tokenizer folder, or a Hub id"
)


def load_tokenizer(name: str) -> Any:
    """A family name -> the offline tokenizer; anything else -> AutoTokenizer (a local folder or Hub id)."""
    from qwen_recipes.testbed import offline_tokenizer

    tok = offline_tokenizer(name)
    if tok is not None:
        return tok
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as e:  # offline, typo, gated: say what works offline
        from qwen_recipes import families

        raise UserError(
            f"--tokenizer {name!r} could not be loaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"pass a local tokenizer folder, or an offline family tokenizer: {', '.join(families.names())}"
        ) from None
