"""Checkpoint verification: every partial or corrupt checkpoint is named, the newest intact one is chosen."""

from __future__ import annotations

import json
import os
import random
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import corrupt_tensor_bytes
from safetensors.torch import save_file

from qwen_recipes.training import checkpoints
from qwen_recipes.training.checkpoints import NO_MARKER, CheckpointError, choose, mark_complete, verify


def make_checkpoint(folder: Path, step: int = 2) -> Path:
    """A checkpoint folder laid out as the Trainer writes one (adapter, optimizer, scheduler, RNG, state), marked."""
    folder.mkdir(parents=True)
    save_file(
        {"a.lora_A.weight": torch.randn(4, 8), "a.lora_B.weight": torch.zeros(8, 4)},
        folder / "adapter_model.safetensors",
    )
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4}))
    torch.save({"state": {0: {"exp_avg": torch.ones(8)}}, "param_groups": [{"lr": 0.1}]}, folder / "optimizer.pt")
    torch.save({"last_epoch": step, "_last_lr": [0.1]}, folder / "scheduler.pt")
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()}
    torch.save(rng, folder / "rng_state.pth")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    mark_complete(folder, step, 1)
    return folder


class Payload:
    """A pickle that would run a command when loaded without weights_only."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def malicious_rng(folder: Path) -> None:
    torch.save({"python": Payload(folder.parent / "pwned")}, folder / "rng_state.pth")
    mark_complete(folder, 2, 1)  # a complete-looking checkpoint: only the pickle is wrong


CASES = {
    "empty-folder": (lambda f: [p.unlink() for p in f.iterdir()], "the folder is empty (killed during the save)"),
    "no-marker": (lambda f: (f / checkpoints.MARKER).unlink(), NO_MARKER),
    "truncated-safetensors": (lambda f: truncate(f / "adapter_model.safetensors"), "adapter_model.safetensors: "),
    "nan-tensor-bytes": (
        lambda f: corrupt_tensor_bytes(f / "adapter_model.safetensors"),
        "adapter_model.safetensors: 1 tensor(s) hold NaN/inf, e.g. a.lora_A.weight",
    ),
    "truncated-optimizer": (
        lambda f: truncate(f / "optimizer.pt"),
        "optimizer.pt is not a whole torch archive (truncated?)",
    ),
    "missing-trainer-state": (lambda f: (f / "trainer_state.json").unlink(), "trainer_state.json is missing"),
    "truncated-trainer-state": (
        lambda f: truncate(f / "trainer_state.json"),
        "trainer_state.json is not valid JSON (truncated?)",
    ),
    "empty-rng": (lambda f: (f / "rng_state.pth").write_bytes(b""), "rng_state.pth is empty"),
    "empty-scheduler": (lambda f: (f / "scheduler.pt").write_bytes(b""), "scheduler.pt is empty"),
    "malicious-rng-pickle": (malicious_rng, "rng_state.pth holds objects a weights-only load refuses"),
}


def test_an_intact_checkpoint_passes(tmp_path):
    assert verify(make_checkpoint(tmp_path / "checkpoint-2")) == []


@pytest.mark.parametrize("case", list(CASES))
def test_each_broken_checkpoint_is_named(tmp_path, case):
    folder = make_checkpoint(tmp_path / "checkpoint-2")
    damage, expected = CASES[case]
    damage(folder)
    problems = verify(folder)
    assert any(expected in p for p in problems), problems
    assert not (tmp_path / "pwned").exists()  # verifying never runs a pickle's code


def test_the_trainer_refuses_a_malicious_rng_pickle_too(tmp_path):
    from transformers import Trainer

    folder = make_checkpoint(tmp_path / "checkpoint-2")
    malicious_rng(folder)
    fake = SimpleNamespace(args=SimpleNamespace(world_size=1))
    with pytest.raises(Exception, match="Weights only load failed"):
        Trainer._load_rng_state(fake, str(folder))
    assert not (tmp_path / "pwned").exists()


def test_resume_true_takes_the_newest_intact_checkpoint_and_sets_the_broken_ones_aside(tmp_path, capsys):
    make_checkpoint(tmp_path / "checkpoint-2", 2)
    broken = make_checkpoint(tmp_path / "checkpoint-4", 4)
    (broken / checkpoints.MARKER).unlink()
    (tmp_path / "checkpoint-6").mkdir()  # killed right after mkdir
    assert choose(True, tmp_path) == str(tmp_path / "checkpoint-2")
    printed = capsys.readouterr().out
    assert (
        "checkpoint-6 is unusable (the folder is empty (killed during the save)); set aside as incomplete-checkpoint-6"
        in printed
    )
    assert "set aside as incomplete-checkpoint-4" in printed and "resuming from checkpoint-2" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-2",
        "incomplete-checkpoint-4",
        "incomplete-checkpoint-6",
    ]


def test_no_intact_checkpoint_is_a_named_error_listing_each(tmp_path):
    with pytest.raises(CheckpointError, match="holds no checkpoint-N folder"):
        choose(True, tmp_path)
    (tmp_path / "checkpoint-2").mkdir()
    truncate(make_checkpoint(tmp_path / "checkpoint-4", 4) / "optimizer.pt")
    with pytest.raises(CheckpointError) as e:
        choose("true", tmp_path)
    lines = e.value.lines()
    assert lines[0] == f"{tmp_path}: no intact checkpoint to resume from:"
    assert lines[1].startswith("checkpoint-4: optimizer.pt is ") and lines[2].startswith(
        "checkpoint-2: the folder is empty"
    )
    assert (tmp_path / "checkpoint-4").is_dir()  # nothing is moved when there is nothing to resume from


def test_an_explicit_checkpoint_without_marker_is_verified_and_accepted(tmp_path, capsys):
    folder = make_checkpoint(tmp_path / "elsewhere" / "checkpoint-9", 9)
    (folder / checkpoints.MARKER).unlink()
    assert choose(str(folder), tmp_path) == str(folder)
    assert "has no completion marker (not written by qwen-recipes); its files were verified" in capsys.readouterr().out
    with zipfile.ZipFile(folder / "optimizer.pt") as z:
        assert z.testzip() is None  # torch archives carry CRCs, so corruption inside them is caught too
