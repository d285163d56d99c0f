"""Checkpoint integrity: a completion marker written last, and verification before a run resumes.

A kill during a save leaves a folder that looks like a checkpoint: an empty folder, a truncated safetensors file
or `optimizer.pt`, no `trainer_state.json`, an empty `rng_state.pth`. Resuming from it crashes in library code,
or worse, resumes garbage. Here a checkpoint counts only when its marker (every file and its size, written after
all of them) is there and matches, its safetensors headers and sizes agree and its tensors are finite, its JSON
parses, its torch archives are whole zip files, and the small pickles (RNG, scheduler, scaler) load with
`weights_only=True` (a malicious pickle is refused by name). `resume_from_checkpoint: true` takes the newest
checkpoint that passes and sets the broken newer ones aside as `incomplete-checkpoint-N`, saying so.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

from qwen_recipes.errors import UserError

MARKER = "qwen_recipes_complete.json"
NO_MARKER = "no completion marker (qwen_recipes_complete.json): the save did not finish"
STEP = re.compile(r"^checkpoint-(\d+)$")
SMALL_PICKLES = re.compile(r"^(rng_state(_\d+)?\.pth|scheduler\.pt|scaler\.pt)$")
CRC_LIMIT = 2 * 2**30  # CRC-check torch archives up to 2 GiB; larger ones (optimizer states of big runs) by structure


class CheckpointError(UserError):
    """No checkpoint to resume from, or the one named is incomplete or corrupt; lists what is wrong."""

    label = "checkpoint error"

    def __init__(self, message: str | list[str]):
        super().__init__(message if isinstance(message, str) else "\n".join(message))


def mark_complete(folder: Path, step: int, world_size: int) -> Path:
    """Write the completion marker of a checkpoint folder (every file and its size), atomically."""
    files = {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER and not p.name.endswith(".tmp")
    }
    path = folder / MARKER
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"step": step, "world_size": world_size, "files": files}, indent=1))
    os.replace(tmp, path)  # a reader sees the whole marker or none
    return path


def _marker_problems(folder: Path) -> list[str]:
    path = folder / MARKER
    if not path.is_file():
        return [NO_MARKER]
    try:
        files = json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{MARKER} is unreadable"]
    problems = []
    for rel, size in files.items():
        f = folder / rel
        if not f.is_file():
            problems.append(f"{rel} is missing")
        elif f.stat().st_size != size:
            problems.append(f"{rel} is {f.stat().st_size:,} bytes, the marker says {size:,} (truncated or rewritten)")
    return problems


def _safetensors_problems(path: Path) -> list[str]:
    import torch
    from safetensors import safe_open

    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or n > size - 8:
            return [f"{path.name}: no readable safetensors header ({size:,} bytes; truncated?)"]
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            return [f"{path.name}: the safetensors header is not JSON (truncated or overwritten)"]
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        return [f"{path.name}: {size:,} bytes, its header says {expected:,} (truncated)"]
    bad = []
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
            t = f.get_tensor(key)
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad.append(key)
    return [f"{path.name}: {len(bad)} tensor(s) hold NaN/inf, e.g. {bad[0]}"] if bad else []


def _torch_archive_problems(path: Path) -> list[str]:
    size = path.stat().st_size
    if size == 0:
        return [f"{path.name} is empty"]
    try:
        with zipfile.ZipFile(path) as z:
            broken = z.testzip() if size <= CRC_LIMIT else None
    except (zipfile.BadZipFile, OSError, EOFError):
        return [f"{path.name} is not a whole torch archive (truncated?)"]
    if broken:
        return [f"{path.name}: record {broken} fails its CRC (corrupted)"]
    if not SMALL_PICKLES.match(path.name):
        return []
    import pickle

    import torch
    from transformers.trainer_pt_utils import safe_globals

    try:
        with safe_globals():  # what the Trainer allows when it loads these (numpy arrays for the RNG state)
            torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return [f"{path.name} holds objects a weights-only load refuses (not plain tensors and numbers): refused"]
    except Exception as e:  # anything else a load would raise: the file is not what a checkpoint writes
        return [f"{path.name} cannot be loaded ({type(e).__name__})"]
    return []


def verify(folder: Path) -> list[str]:
    """What is wrong with a checkpoint folder ([] when it can be resumed from)."""
    if not any(folder.iterdir()):
        return ["the folder is empty (killed during the save)"]
    problems = _marker_problems(folder)
    state = folder / "trainer_state.json"
    if not state.is_file():
        problems.append("trainer_state.json is missing")
    else:
        try:
            if not isinstance(json.loads(state.read_text()).get("global_step"), int):
                problems.append("trainer_state.json has no global_step")
        except (OSError, ValueError, AttributeError):
            problems.append("trainer_state.json is not valid JSON (truncated?)")
    engine = [*folder.glob("global_step*"), *folder.glob("pytorch_model_fsdp_*"), *folder.glob("optimizer_*")]
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and not engine and not (folder / "pytorch_model.bin").is_file():
        problems.append("no model weights (*.safetensors)")
    if not engine and not (folder / "optimizer.pt").is_file():
        problems.append("optimizer.pt is missing")
    for w in weights:
        problems += _safetensors_problems(w)
    for t in sorted([*folder.glob("*.pt"), *folder.glob("*.pth")]):
        problems += _torch_archive_problems(t)
    return list(dict.fromkeys(problems))


def step_of(folder: Path) -> int:
    """The step in a `checkpoint-N` folder name (-1 when it is not one)."""
    m = STEP.match(folder.name)
    return int(m.group(1)) if m else -1


def checkpoints_newest_first(output_dir: Path) -> list[Path]:
    """The `checkpoint-N` folders of an output folder, newest step first."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and step_of(p) >= 0]
    return sorted(found, key=step_of, reverse=True)


def newest_complete(output_dir: Path) -> Path | None:
    """The newest checkpoint whose completion marker matches its files (cheap: no tensor is read)."""
    return next((c for c in checkpoints_newest_first(output_dir) if not _marker_problems(c)), None)


def _set_aside(folder: Path) -> Path:
    target = folder.with_name(f"incomplete-{folder.name}")
    i = 2
    while target.exists():
        target, i = folder.with_name(f"incomplete-{folder.name}-{i}"), i + 1
    folder.rename(target)
    return target


def choose(resume: str | bool | None, output_dir: Path) -> str | None:
    """The checkpoint to resume from: the one named (verified), or for `true` the newest intact one."""
    if resume in (None, False, "") or (isinstance(resume, str) and resume.lower() == "false"):
        return None
    if resume is True or (isinstance(resume, str) and resume.lower() == "true"):
        candidates = checkpoints_newest_first(output_dir)
        if not candidates:
            raise CheckpointError(
                f"resume_from_checkpoint: true, but {output_dir} holds no checkpoint-N folder; train without "
                "resuming, or name a checkpoint folder"
            )
        broken: list[tuple[Path, list[str]]] = []
        for folder in candidates:
            if not (problems := verify(folder)):
                for bad, why in broken:
                    kept = _set_aside(bad)
                    print(f"resume: {bad.name} is unusable ({'; '.join(why)}); set aside as {kept.name}")
                if broken:
                    print(f"resume: resuming from {folder.name}, the newest intact checkpoint")
                return str(folder)
            broken.append((folder, problems))
        raise CheckpointError(
            [f"{output_dir}: no intact checkpoint to resume from:"]
            + [f"{f.name}: {'; '.join(why)}" for f, why in broken]
            + ["train without resuming (set overwrite_output_dir: true to replace this folder's outputs)"]
        )
    folder = Path(resume)
    if not folder.is_dir():
        raise CheckpointError(f"resume_from_checkpoint: {folder} is not a folder; name a checkpoint-N folder or true")
    problems = verify(folder)
    if problems == [NO_MARKER]:
        print(f"resume: {folder} has no completion marker (not written by qwen-recipes); its files were verified")
    elif problems:
        raise CheckpointError([f"{folder} cannot be resumed from:", *problems])
    return str(folder)
