"""One run per output folder: a lock (pid and host), no training over another run's outputs, and cost kept on kill.

- `claim` takes `output_dir/.qwen-recipes.lock` and refuses a second live run, naming the lock, its pid and host.
  A lock left by a dead process on this host is taken over with a message (a kill -9 leaves one behind).
- A folder that holds another run's outputs (weights, run files, checkpoints) is refused unless the recipe
  resumes or sets `overwrite_output_dir`, which removes those outputs first: no r=16 adapter next to an r=8 recipe.
- `SegmentKeeper` writes the running cost segment (the cost meter's format) to `cost_running.json` at each
  checkpoint save, so a killed segment is still counted, up to its last checkpoint, when the run resumes.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from qwen_recipes.errors import UserError
from qwen_recipes.recipe import Recipe

LOCK = ".qwen-recipes.lock"
RUNNING = "cost_running.json"
# What a run writes into its output folder; these mark it as another run's outputs, and overwrite removes them.
RUN_OUTPUTS = (
    "recipe.resolved.yaml", "run_report.json", "loss.png", "README.md", "training_args.bin", RUNNING,
    "adapter_model.safetensors", "adapter_config.json", "model.safetensors", "model.safetensors.index.json",
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "chat_template.jinja", "added_tokens.json", "vocab.json", "merges.txt", "trainer_state.json",
)  # fmt: skip
OUTPUT_GLOBS = ("checkpoint-*", "incomplete-checkpoint-*", "model-*-of-*.safetensors")
# The ones that say "a run trained here" (a README or a tokenizer alone does not).
RUN_MARKS = {"recipe.resolved.yaml", "run_report.json", "training_args.bin", RUNNING, "adapter_model.safetensors",
             "adapter_config.json", "model.safetensors", "model.safetensors.index.json", "trainer_state.json"}  # fmt: skip


class OutputDirError(UserError):
    """An output folder that this run must not write into (in use, or holding another run's outputs)."""

    label = "output folder"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


class OutputLock:
    """An exclusive lock file in the output folder holding the pid and host of the run that owns it."""

    held = True

    def __init__(self, output_dir: Path) -> None:
        self.path = Path(output_dir) / LOCK
        self.me = {"pid": os.getpid(), "host": socket.gethostname()}

    def acquire(self) -> OutputLock:
        """Take the lock, taking over one left by a dead process on this host; OutputDirError if another run holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_or_refuse()
                continue
            started = datetime.now(timezone.utc).isoformat(timespec="seconds")
            with os.fdopen(fd, "w") as fh:
                json.dump({**self.me, "started_at": started, "command": " ".join(sys.argv)[:300]}, fh)
            atexit.register(self.release)
            return self
        raise OutputDirError(f"{self.path}: could not take the lock (another run keeps taking it); try again")

    def _take_over_or_refuse(self) -> None:
        try:
            holder = json.loads(self.path.read_text())
            pid, host = int(holder["pid"]), str(holder["host"])
        except (OSError, ValueError, KeyError, TypeError):
            if time.time() - self.path.stat().st_mtime < 10:  # being written right now
                time.sleep(0.5)
                return
            holder, pid, host = {}, -1, self.me["host"]  # unreadable and old: left by a crash
        if host == self.me["host"] and (pid == self.me["pid"] or not _alive(pid)):
            if pid != self.me["pid"]:
                print(f"output folder: taking over the stale lock {self.path} (pid {pid} on {host} is not running)")
            self.path.unlink(missing_ok=True)
            return
        since = holder.get("started_at", "?")
        raise OutputDirError(
            f"{self.path.parent} is in use by another run: pid {pid} on {host}, since {since} (lock {self.path}). "
            "Wait for it to finish, or choose another output_dir; if that run is gone (another host), delete the lock"
        )

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        try:
            if json.loads(self.path.read_text()).get("pid") == self.me["pid"]:
                self.path.unlink()
        except (OSError, ValueError):
            pass


def previous_outputs(output_dir: Path) -> list[Path]:
    """The files and checkpoint folders of an earlier run in `output_dir`."""
    if not output_dir.is_dir():
        return []
    found = [output_dir / n for n in RUN_OUTPUTS if (output_dir / n).exists()]
    return found + sorted(p for g in OUTPUT_GLOBS for p in output_dir.glob(g))


class _NoLock:
    held = False  # another rank (global rank 0) holds the run's lock and writes the run files

    def release(self) -> None:
        """Nothing to release: another rank holds the run's lock."""


def claim(recipe: Recipe, output_dir: Path) -> OutputLock | _NoLock:
    """Lock `output_dir` for this run and make sure it holds no other run's outputs (see the module docstring).

    Only global rank 0 claims (RANK, as torchrun and accelerate set it): at this point accelerate's state is not yet
    distributed on every launcher, so it cannot tell the ranks apart.
    """
    if int(os.environ.get("RANK", "0")) != 0:
        return _NoLock()
    lock = OutputLock(output_dir).acquire()
    found = previous_outputs(output_dir)
    marks = [p for p in found if p.name in RUN_MARKS or p.is_dir() or p.name.startswith("model-")]
    if not marks or recipe.get("resume_from_checkpoint"):
        return lock
    if not recipe.get("overwrite_output_dir"):
        lock.release()
        names = ", ".join(p.name for p in marks[:6]) + (f" and {len(marks) - 6} more" if len(marks) > 6 else "")
        raise OutputDirError(
            f"{output_dir} holds another run's outputs ({names}); training into it would mix two runs. Resume it "
            "(--resume_from_checkpoint true), set overwrite_output_dir: true to replace them, or choose another "
            "output_dir"
        )
    for p in found:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    print(f"output folder: overwrite_output_dir: removed {len(found)} outputs of the previous run from {output_dir}")
    return lock


# ------------------------------------------------------------------ cost of killed segments


def interrupted_segments(output_dir: Path) -> list[dict[str, Any]]:
    """Cost segments of killed runs, counted up to their last checkpoint (empty when every segment finished)."""
    path = Path(output_dir) / RUNNING
    try:
        segments = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        print(f"warning: {path} is unreadable; the cost of an interrupted segment is lost")
        return []
    return [s for s in segments if isinstance(s, dict)] if isinstance(segments, list) else []


def with_interrupted(previous: dict[str, Any] | None, output_dir: Path) -> dict[str, Any] | None:
    """The previous run report with the killed segments appended to its `cost.segments`."""
    lost = interrupted_segments(output_dir)
    if not lost:
        return previous
    previous = dict(previous or {})
    cost = dict(previous.get("cost") or {})
    cost["segments"] = [*(cost.get("segments") or []), *lost]
    previous["cost"] = cost
    print(f"cost: counting {len(lost)} interrupted segment(s) up to their last checkpoint")
    return previous


def clear_running(output_dir: Path) -> None:
    """The run report now holds every segment: drop the running file."""
    (Path(output_dir) / RUNNING).unlink(missing_ok=True)


class SegmentKeeper(TrainerCallback):
    """At each checkpoint save, persist the running cost segment next to the killed ones not yet in a report."""

    def __init__(self, meter: Any) -> None:
        self.meter = meter
        self.carried: list[dict[str, Any]] = []

    def on_train_begin(self, args, state, control, **kwargs):
        """Segments killed earlier (still only in the running file) are carried into every later write."""
        self.carried = interrupted_segments(Path(args.output_dir))

    def on_save(self, args, state, control, **kwargs):
        """Write [killed segments..., this segment so far] atomically."""
        if not state.is_world_process_zero:
            return
        path = Path(args.output_dir) / RUNNING
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([*self.carried, self.meter.running_segment(state)], indent=1, default=str))
        os.replace(tmp, path)
