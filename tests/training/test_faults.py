"""Faults during a run: divergence, two runs on one folder, a kill during a checkpoint save, the cost of a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, chat_rows, corrupt_tensor_bytes, losses, report, train, write_jsonl, write_recipe
from safetensors.torch import load_file


class Killed(BaseException):
    """Stands for SIGKILL in-process: nothing after it runs, no handler catches it."""


@pytest.fixture
def chat_data(tmp_path):
    return write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))


def adapter(out: Path) -> dict:
    return load_file(out / "adapter_model.safetensors")


def test_a_diverging_run_stops_naming_the_step_keeps_the_good_checkpoint_and_saves_no_weights(
    tmp_path, chat_data, capsys
):
    # lr 1e30: step 1 is finite, its update makes the weights ~1e30, and step 2's loss is NaN.
    recipe = write_recipe(
        tmp_path / "r.yaml", datasets=[str(chat_data)], learning_rate=1e30, save_strategy="steps", save_steps=1
    )
    assert train(recipe) == 2
    err = capsys.readouterr().err
    out = tmp_path / "out"
    assert "training diverged:" in err and "step 2: non-finite loss (nan), so the run stopped" in err
    assert f"the last good checkpoint is kept: {out / 'checkpoint-1'}" in err and "Traceback" not in err
    assert not (out / "adapter_model.safetensors").exists()  # no final output
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
    assert all(t.isfinite().all() for t in adapter(out / "checkpoint-1").values())
    rep = report(out)
    assert rep["status"] == "diverged"
    assert rep["diverged"] == {
        "step": 2,
        "what": "loss",
        "value": "nan",
        "last_good_checkpoint": str(out / "checkpoint-1"),
    }
    assert rep["steps"] == 1 and rep["cost"]["segments"][0]["steps"] == 1


def test_an_infinite_gradient_norm_with_a_finite_loss_stops_before_clipping_hides_it(tmp_path):
    from types import SimpleNamespace

    import torch

    from qwen_recipes.training.guards import DivergenceGuard, TrainingDiverged

    model = torch.nn.Linear(2, 1)
    (tmp_path / "checkpoint-6").mkdir()  # not marked complete: not a good checkpoint
    trainer = SimpleNamespace(
        accelerator=SimpleNamespace(sync_gradients=True),
        state=SimpleNamespace(global_step=6),
        args=SimpleNamespace(output_dir=str(tmp_path)),
        training_step=lambda model, inputs, n=None: torch.tensor(0.5),
    )
    guard = DivergenceGuard(trainer)
    model.weight.grad = torch.tensor([[1.0, float("inf")]])
    with pytest.raises(TrainingDiverged, match=r"step 7: non-finite gradient norm \(inf\)") as e:
        trainer.training_step(model, {})
    assert e.value.event["last_good_checkpoint"] is None and "no checkpoint was saved before it" in str(e.value)
    trainer.accelerator.sync_gradients = False  # mid-accumulation: only the loss is checked
    assert float(trainer.training_step(model, {})) == 0.5
    with torch.no_grad():
        model.bias.fill_(float("nan"))
    control = SimpleNamespace(should_save=True)
    with pytest.raises(TrainingDiverged, match=r"step 6: non-finite trainable weights \(after the optimizer step"):
        guard.on_step_end(trainer.args, trainer.state, control, model=model)


def test_second_run_on_a_live_output_dir_and_a_folder_of_another_run_are_refused(
    tmp_path, chat_data, capsys, monkeypatch
):
    token = "hf_" + "Qw9Er8Ty7Ui6Op5As4Df3Gh2Jk1Lz0XcVb"
    monkeypatch.setenv("HF_TOKEN", token)  # and it must appear in no output of the run
    out = tmp_path / "out"
    out.mkdir()
    # Another run's outputs: an r=16 adapter config and its resolved recipe.
    (out / "adapter_config.json").write_text(json.dumps({"r": 16}))
    (out / "recipe.resolved.yaml").write_text("lora_r: 16\n")
    (out / "checkpoint-3").mkdir()
    recipe = write_recipe(tmp_path / "r.yaml", datasets=[str(chat_data)], lora_r=8, max_steps=1)
    assert train(recipe) == 2
    err = capsys.readouterr().err
    assert "holds another run's outputs (recipe.resolved.yaml, adapter_config.json, checkpoint-3)" in err
    assert "overwrite_output_dir: true" in err and "--resume_from_checkpoint true" in err
    # A live run holds the folder: refused, naming the lock, its pid and host.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from qwen_recipes.training.run_dir import OutputLock;"
         f"OutputLock({str(out)!r}).acquire(); print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert train(recipe, "--overwrite_output_dir", "true") == 2
        err = capsys.readouterr().err
        assert (
            f"{out} is in use by another run: pid {holder.pid} on" in err
            and f"lock {out / '.qwen-recipes.lock'}" in err
        )
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    # The holder was killed (-9): its stale lock is taken over, and overwrite replaces the old run's outputs.
    assert train(recipe, "--overwrite_output_dir", "true") == 0
    printed = capsys.readouterr().out
    assert f"taking over the stale lock {out / '.qwen-recipes.lock'} (pid {holder.pid}" in printed
    assert "removed 3 outputs of the previous run" in printed
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
    assert yaml.safe_load((out / "recipe.resolved.yaml").read_text())["lora_r"] == 8
    assert not (out / "checkpoint-3").exists() and not (out / ".qwen-recipes.lock").exists()
    assert [p for p in out.rglob("*") if p.is_file() and token.encode() in p.read_bytes()] == []


def test_kill_during_a_save_then_resume_is_bit_identical_and_counts_the_killed_segment(
    tmp_path, chat_data, monkeypatch, capsys
):
    import transformers

    def recipe_in(name: str) -> Path:
        return write_recipe(
            tmp_path / name / "r.yaml", datasets=[str(chat_data)], save_strategy="steps", save_steps=2, max_steps=4
        )

    straight = recipe_in("straight")
    assert train(straight) == 0
    killed = recipe_in("killed")
    real_save_rng = transformers.Trainer._save_rng_state

    def die_while_saving_step_4(self, output_dir):
        if self.state.global_step == 4:
            Path(output_dir, "rng_state.pth").write_bytes(b"")  # half-written, then the process is gone
            raise Killed
        return real_save_rng(self, output_dir)

    monkeypatch.setattr(transformers.Trainer, "_save_rng_state", die_while_saving_step_4)
    with pytest.raises(Killed):
        train(killed)
    monkeypatch.undo()
    out = tmp_path / "killed" / "out"
    assert (out / "checkpoint-4" / "adapter_model.safetensors").exists()  # looks like a checkpoint, is not one
    assert not (out / "checkpoint-4" / "qwen_recipes_complete.json").exists()
    capsys.readouterr()

    assert train(killed, "--resume_from_checkpoint", "true") == 0
    printed = capsys.readouterr().out
    assert "resume: checkpoint-4 is unusable (no completion marker" in printed
    assert "rng_state.pth is empty" in printed and "set aside as incomplete-checkpoint-4" in printed
    assert "resume: resuming from checkpoint-2, the newest intact checkpoint" in printed
    a, b = adapter(tmp_path / "straight" / "out"), adapter(out)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # bit-identical
    assert losses(out) == losses(tmp_path / "straight" / "out")
    segments = report(out)["cost"]["segments"]
    assert [s["steps"] for s in segments] == [2, 2]  # the killed segment, counted to its last checkpoint
    assert segments[0]["interrupted"] == "counted to checkpoint-2" and "interrupted" not in segments[1]
    assert segments[0]["tokens"] > 0 and segments[0]["wall_seconds"] > 0
    assert not (out / "cost_running.json").exists()


def test_resume_from_a_checkpoint_with_corrupted_tensor_bytes_is_refused_by_name(tmp_path, chat_data, capsys):
    recipe = write_recipe(
        tmp_path / "r.yaml", datasets=[str(chat_data)], save_strategy="steps", save_steps=2, max_steps=2
    )
    assert train(recipe) == 0
    checkpoint = tmp_path / "out" / "checkpoint-2"
    corrupt_tensor_bytes(checkpoint / "adapter_model.safetensors")
    capsys.readouterr()
    assert train(recipe, "--max_steps", "4", "--resume_from_checkpoint", str(checkpoint)) == 2
    err = capsys.readouterr().err
    assert "checkpoint error:" in err and f"{checkpoint} cannot be resumed from:" in err
    assert "adapter_model.safetensors: 1 tensor(s) hold NaN/inf" in err and "Traceback" not in err


@pytest.mark.slow
def test_kill_9_during_training_then_resume_is_bit_identical(tmp_path, chat_data):
    """A real SIGKILL (repeats the simulated kill above with a process)."""

    def recipe_in(name: str) -> Path:
        return write_recipe(
            tmp_path / name / "r.yaml",
            datasets=[str(chat_data)],
            save_strategy="steps",
            save_steps=2,
            max_steps=6,
            learning_rate=1e-3,
        )

    assert train(recipe_in("straight")) == 0
    recipe = recipe_in("killed")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), str(recipe)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    marker = tmp_path / "killed" / "out" / "checkpoint-2" / "qwen_recipes_complete.json"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert train(recipe, "--resume_from_checkpoint", "true") == 0
    a, b = adapter(tmp_path / "straight" / "out"), adapter(tmp_path / "killed" / "out")
    assert all((a[k] == b[k]).all() for k in a)
    assert losses(tmp_path / "killed" / "out") == losses(tmp_path / "straight" / "out")
