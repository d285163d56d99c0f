"""The README's first command, end to end, and the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT


def test_console_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "qwen_recipes.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train", "estimate", "costs", "push", "merge", "chat-vector", "prepare"):
        assert f"  {command}" in out.stdout


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path):
    env = {**os.environ, "QWEN_RECIPES_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "train.py", "recipes/quickstart/tiny-qwen3-cpu.yaml", "--output_dir", str(tmp_path / "qs")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "tiny RANDOM model" in out.stdout and "data: 400/400 rows used, 0 skipped" in out.stdout
    report = json.loads((tmp_path / "qs" / "run_report.json").read_text())
    assert report["steps"] == 30 and report["random_init"] is True
    assert report["loss"]["final"] < report["loss"]["first"] - 1.0  # visibly falls (11.7 -> ~7 measured)
    for name in ("adapter_model.safetensors", "recipe.resolved.yaml", "loss.png", "tokenizer.json"):
        assert (tmp_path / "qs" / name).is_file()


def test_readme_and_key_reference_list_every_tiny_family():
    """The `tiny:` scheme is documented with the registry's families (issue 17 #10)."""
    from qwen_recipes import families

    readme = (ROOT / "README.md").read_text()
    reference = (ROOT / "docs" / "recipes.md").read_text()
    assert "model_name_or_path: tiny:<family>" in readme and "model_name_or_path: tiny:<family>" in reference
    for name in families.names():
        assert f"`tiny:{name}`" in readme and f"| `tiny:{name}` |" in reference, name
