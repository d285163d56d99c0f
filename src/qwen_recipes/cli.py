"""The `qwen-recipes` command. Subcommands import their module only when run, so `--help` is instant."""

from __future__ import annotations

import importlib
import sys

# name -> ("module:function", one-line help). Each function takes argv (list[str]) and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("qwen_recipes.train:main", "train a recipe (same as: python train.py RECIPE)"),
    "estimate": ("qwen_recipes.cost.cli:estimate_main", "estimate memory, time and dollars of a recipe before a run"),
    "costs": ("qwen_recipes.cost.cli:costs_main", "list reproduction recipes: reported vs estimated vs measured cost"),
    "push": (
        "qwen_recipes.outputs.hub:push_main",
        "push an output folder (adapter or merged model) to the Hugging Face Hub",
    ),
    "card": ("qwen_recipes.outputs.card:card_main", "write the model card (README.md) of an output folder"),
    "merge": ("qwen_recipes.outputs.merge:merge_main", "merge a LoRA/DoRA/QLoRA adapter into its base model"),
    "chat-vector": (
        "qwen_recipes.outputs.chat_vector:chat_vector_main",
        "add chat vectors (chat - base) to a target model",
    ),
    "eval-vqa": (
        "qwen_recipes.evaluation.vqa:vqa_main",
        "score a vision-language output on local VQA / multiple-choice / pointing / counting rows",
    ),
    "prepare": ("qwen_recipes.data.prepare:prepare_main", "prepare datasets (s1K, countdown, Japanese CPT mixtures)"),
}


def usage() -> str:
    """The top-level help text."""
    width = max(map(len, COMMANDS))
    lines = ["usage: qwen-recipes COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'qwen-recipes COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"qwen-recipes: unknown command {name!r}{hint}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, func = COMMANDS[name][0].split(":")
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
