"""Shared helpers: the repo root, scratch folders with their own data cache, and recipe files for benchmarks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def scratch(name: str) -> Path:
    """A fresh temporary folder; also points the data cache there so no benchmark reuses another's cache."""
    path = Path(tempfile.mkdtemp(prefix=f"qwen-bench-{name}-"))
    os.environ["QWEN_RECIPES_CACHE"] = str(path / "cache")
    return path


def write_recipe(path: Path, **values: Any) -> Path:
    """Write a recipe YAML (bases given as absolute paths) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path
