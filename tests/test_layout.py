"""The package as shipped: a layout by layer, small modules, and a wheel that trains outside any checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "src" / "qwen_recipes"


def test_at_most_ten_top_level_modules_and_none_over_400_lines():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
    layers = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert {"recipe", "data", "training", "cost", "outputs", "evaluation"} <= layers


def test_train_py_is_the_spine_and_under_200_lines():
    spine = ROOT / "train.py"
    assert spine.resolve() == PACKAGE / "train.py"  # one file: the repository's train.py is the package's
    assert len(spine.read_text().splitlines()) < 200


def test_wheel_installs_and_dry_runs_outside_the_checkout(tmp_path):
    """Build the wheel, install it with --no-deps --target, run `qwen-recipes train RECIPE --dry-run` elsewhere."""
    dist, target, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    source = tmp_path / "source"  # built from a copy: setuptools writes build/ next to the sources
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)], check=True)
    wheel = next(dist.glob("qwen_recipes-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    assert (target / "qwen_recipes" / "recipe" / "trl_fields.json").is_file()
    assert (target / "qwen_recipes" / "templates" / "qwen3_training.jinja").is_file()
    # PYTHONPATH puts the wheel's copy first, ahead of the editable install (checked at the end).
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONNOUSERSITE": "1"}
    recipe = ROOT / "recipes" / "quickstart" / "tiny-qwen3-cpu.yaml"
    script = target / "bin" / "qwen-recipes"
    assert script.is_file()
    out = subprocess.run(
        [sys.executable, str(script), "train", str(recipe), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        cwd=elsewhere,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trainable parameters: 9,756,672" in out.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import qwen_recipes.train as t; print(t.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=elsewhere,
    )
    assert Path(where.stdout.strip()).is_relative_to(target), where.stdout
