"""What a push uploads must work on another machine and say nothing false about the base model.

- Local absolute paths (temporary folders, caches, the home directory) become portable names: a recipe path from its
  `recipes/` folder on, any other path its file name. A local base becomes its Hub id, in `adapter_config.json` too,
  so `AutoPeftModelForCausalLM.from_pretrained(repo)` loads elsewhere. A last scan refuses any path left.
- The base a card claims is checked against the adapter: hidden size, layers and vocabulary of the claimed id (the
  built-in table, the Hugging Face cache, or the Hub's config.json) against the adapter's own base.
- A tiny random test model is no published model: its adapters are refused, whatever id is claimed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from qwen_recipes.errors import UserError

# An absolute POSIX path (two or more parts), not a URL's `//host/...` nor part of a relative path or a word.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:\\-])(?:~|/)(?:[\w.@+-]+/)+[\w.@+-]*|(?<![\w])[A-Za-z]:\\[^\s'\"]+")


class NotPortable(UserError):
    """A staged upload that would carry a local path, or claim a base model the adapter does not fit."""


def portable_path(path: str) -> str:
    """A path's shareable form: from its `recipes/` folder on for a recipe, else just its name."""
    parts = Path(path.replace("\\", "/")).parts
    if "recipes" in parts and path.endswith((".yaml", ".yml")):
        i = len(parts) - 1 - parts[::-1].index("recipes")
        return "/".join(parts[i:])
    return parts[-1] if parts else path


def portable_text(text: str) -> str:
    """Every absolute local path in `text` replaced by its portable form."""
    return ABSOLUTE_PATH.sub(lambda m: portable_path(m.group(0)), text)


def portable(value: Any) -> Any:
    """A JSON/YAML value with every absolute path in its strings (keys included) made portable."""
    if isinstance(value, str):
        return portable_text(value)
    if isinstance(value, dict):
        return {portable(k): portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    return value


def is_random_base(recipe: dict[str, Any], report: dict[str, Any]) -> bool:
    """Whether a run trained on a tiny random test-bed model (`tiny:<family>`)."""
    from qwen_recipes.testbed import TINY_SCHEME

    return bool(report.get("random_init")) or any(
        str(d.get("model_name_or_path") or "").startswith(TINY_SCHEME) for d in (recipe, report)
    )


def local_prefixes(*extra: Path) -> list[str]:
    """Folders whose absolute paths mean "this machine": home, cwd, temp, caches and the given ones."""
    roots = [Path.home(), Path.cwd(), Path(tempfile.gettempdir()), *extra]
    for env in ("HF_HOME", "HF_HUB_CACHE", "QWEN_RECIPES_CACHE", "TMPDIR"):
        if os.environ.get(env):
            roots.append(Path(os.environ[env]))
    return sorted({str(p.resolve()) for p in roots if str(p.resolve()) != "/"}, key=len, reverse=True)


def check_portable(files: list[Path], staging: Path, suffixes: tuple[str, ...], *extra: Path) -> None:
    """Refuse a staged text file that still holds a local absolute path."""
    prefixes = local_prefixes(staging, *extra)
    for path in files:
        if path.suffix not in suffixes:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        found = next((p for p in prefixes if p + "/" in text), None) or next(iter(ABSOLUTE_PATH.findall(text)), None)
        if found:
            raise NotPortable(
                f"{path.relative_to(staging)} contains the local path {found!r}, which means nothing on the Hub; "
                "remove it from the file (or report it: staging should have made it portable)"
            )


# ---------------------------------------------------------------------------------------- architecture of a claim
def _numbers(cfg: dict[str, Any]) -> dict[str, int]:
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    keys = {"hidden size": "hidden_size", "layers": "num_hidden_layers", "vocabulary": "vocab_size"}
    return {name: int(text[k]) for name, k in keys.items() if isinstance(text.get(k), int)}


def _local_config(output_dir: Path, run: Any) -> dict[str, Any] | None:
    """config.json of the model the output was trained from (a merged/full output's own), if on this machine."""
    if (output_dir / "config.json").is_file():
        return json.loads((output_dir / "config.json").read_text())
    for p in ((run.adapter or {}).get("base_model_name_or_path"), run.recipe.get("model_name_or_path")):
        if p and (Path(str(p)) / "config.json").is_file():
            return json.loads((Path(str(p)) / "config.json").read_text())
    return None


def _adapter_numbers(output_dir: Path) -> dict[str, int]:
    """Hidden size, layers (and vocabulary, when embeddings were saved) read from adapter weight shapes."""
    from safetensors import safe_open

    path = output_dir / "adapter_model.safetensors"
    if not path.is_file():
        return {}
    out: dict[str, int] = {}
    layers = set()
    with safe_open(str(path), "pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
            shape = f.get_slice(key).get_shape()
            if m := re.search(r"\.layers\.(\d+)\.", key):
                layers.add(int(m.group(1)))
            if re.search(r"q_proj\.lora_A\.", key):
                out["hidden size"] = int(shape[1])
            if re.search(r"(embed_tokens|lm_head)\.(modules_to_save\.\w+\.)?weight$", key) and "lora_" not in key:
                out["vocabulary"], out["hidden size"] = int(shape[0]), int(shape[1])
    cfg = json.loads((output_dir / "adapter_config.json").read_text())
    if layers and not cfg.get("layers_to_transform"):
        out["layers"] = max(layers) + 1
    return out


def claimed_numbers(base_id: str) -> tuple[dict[str, int], str] | None:
    """Architecture numbers of a Hub id: built-in table, then the local Hugging Face cache, then the Hub."""
    from qwen_recipes.cost.models import _hub_config, builtin

    if base_id in (table := builtin()):
        a = table[base_id]
        return {"hidden size": a.hidden, "layers": a.layers, "vocabulary": a.vocab}, "the built-in table"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(base_id, "config.json")
    if isinstance(cached, str):
        return _numbers(json.loads(Path(cached).read_text())), "its config.json in the Hugging Face cache"
    cfg = _hub_config(base_id)
    return (_numbers(cfg), "its config.json on the Hub") if cfg else None


def check_claimed_base(output_dir: Path, run: Any, base_id: str) -> str:
    """Refuse a claimed base whose architecture differs from the adapter's; returns what was checked, for the log."""
    cfg = _local_config(output_dir, run)
    ours = _numbers(cfg) if cfg else _adapter_numbers(output_dir)
    claimed = claimed_numbers(base_id)
    if claimed is None or not ours:
        return f"architecture of {base_id} not verified (not in the built-in table, not cached, Hub not reachable)"
    numbers, source = claimed
    diff = [f"{k} {ours[k]:,} vs {numbers[k]:,}" for k in ours if k in numbers and ours[k] != numbers[k]]
    if diff:
        raise NotPortable(
            f"the adapter does not fit the claimed base {base_id!r}: {', '.join(diff)} (this output vs {base_id}, "
            f"from {source}). The card and adapter_config.json would name a model this adapter cannot load onto: "
            "pass --base-model-id with the Hub id of the checkpoint the run really started from"
        )
    return f"architecture matches {base_id} ({', '.join(f'{k} {v:,}' for k, v in numbers.items())}; {source})"
