"""(d) Start-up: wall time of `train.py RECIPE --dry-run` and `qwen-recipes --help`, and whether torch got imported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any

from bench.workdir import ROOT

DEFAULT_RECIPE = "recipes/quickstart/tiny-qwen3-cpu.yaml"
# Runs the dry run in-process, then says which heavy libraries it pulled in.
PROBE = (
    "import sys, runpy; sys.argv = ['train.py', {recipe!r}, '--dry-run'];\n"
    "try:\n    runpy.run_path('train.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    "print('IMPORTED', sorted(m for m in ('torch', 'transformers', 'trl', 'datasets', 'peft') if m in sys.modules))"
)


def _wall(cmd: list[str], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy())
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return min(times), times


def run(recipe: str = DEFAULT_RECIPE, repeats: int = 3) -> dict[str, Any]:
    """Best-of-`repeats` wall times (seconds) of the two commands, plus the modules a dry run imports."""
    cli = shutil.which("qwen-recipes") or str(ROOT / ".venv/bin/qwen-recipes")
    dry, dry_all = _wall([sys.executable, "train.py", recipe, "--dry-run"], repeats)
    hlp, hlp_all = _wall([cli, "--help"], repeats)
    python, _ = _wall([sys.executable, "-c", "pass"], repeats)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE.format(recipe=recipe)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    imported = next((line for line in probe.stdout.splitlines() if line.startswith("IMPORTED")), "IMPORTED ?")
    return {
        "recipe": recipe,
        "dry_run_s": dry,
        "dry_run_all_s": dry_all,
        "help_s": hlp,
        "help_all_s": hlp_all,
        "bare_python_s": python,
        "dry_run_imports": imported.removeprefix("IMPORTED ").strip(),
    }


def report(r: dict[str, Any]) -> list[str]:
    """Human-readable lines."""
    return [
        f"python train.py {r['recipe']} --dry-run: {r['dry_run_s']:.2f} s (best of {len(r['dry_run_all_s'])}; "
        f"heavy modules imported: {r['dry_run_imports']})",
        f"qwen-recipes --help: {r['help_s']:.2f} s; bare `python -c pass`: {r['bare_python_s']:.2f} s",
    ]
