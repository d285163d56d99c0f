"""Guards of a training run: stop on a non-finite loss or gradient, mark checkpoints complete, verify before resume.

- `DivergenceGuard` checks every micro-step's loss and, on optimizer steps, the gradient norm (before clipping,
  which would turn an inf norm into zero gradients), and the trainable weights before each checkpoint and at the
  end. The first non-finite value raises `TrainingDiverged` naming the step: no checkpoint or final output with
  non-finite weights is ever written, and earlier checkpoints are kept.
- `CheckpointMarker` writes `checkpoint-N/qwen_recipes_complete.json` (every file and its size) after all of the
  checkpoint's files are written, on every rank; a folder without it is an interrupted save.
- `checkpoint_to_resume` verifies the checkpoint a recipe resumes from (`checkpoints.py`) and falls back to the
  newest intact one, or stops with a `CheckpointError` listing what is wrong.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from qwen_recipes.errors import UserError
from qwen_recipes.recipe import Recipe
from qwen_recipes.training import checkpoints
from qwen_recipes.training.checkpoints import CheckpointError  # noqa: F401 - raised by checkpoint_to_resume
from qwen_recipes.training.run_dir import SegmentKeeper


class TrainingDiverged(UserError):
    """A non-finite loss, gradient norm or weight: the run stopped; `event` is what the run report records."""

    label = "training diverged"

    def __init__(self, event: dict[str, Any]):
        self.event = event
        good = event["last_good_checkpoint"]
        keep = (
            f"the last good checkpoint is kept: {good} (resume from it with --resume_from_checkpoint {good} after "
            "fixing the cause)"
            if good
            else "no checkpoint was saved before it"
        )
        super().__init__(
            f"step {event['step']}: non-finite {event['what']} ({event['value']}), so the run stopped; nothing was saved "
            f"as the final output, and {keep}. Lower learning_rate, check max_grad_norm and the data, or use "
            "bf16/fp32 instead of fp16"
        )


def _total_norm(tensors: list[Any]) -> Any:
    import torch

    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: fused, grouped by device
        return torch.nn.utils.get_total_norm(tensors)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t).to(tensors[0].device) for t in tensors]))


def _finite_weights(model: Any) -> bool:
    import torch

    flags = [torch.isfinite(p.detach()).all() for p in model.parameters() if p.requires_grad and p.numel()]
    return bool(torch.stack([f.to(flags[0].device) for f in flags]).all()) if flags else True


class DivergenceGuard(TrainerCallback):
    """Raises `TrainingDiverged` at the first non-finite loss, gradient norm or trainable weight."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        step = trainer.training_step

        def checked_training_step(model, inputs, num_items_in_batch=None):
            loss = step(model, inputs, num_items_in_batch)
            self._check_step(model, loss)
            return loss

        # An instance attribute, so every TRL trainer class (SFT, DPO, ORPO, CPO, GRPO) is guarded the same way.
        trainer.training_step = checked_training_step

    def _check_step(self, model: Any, loss: Any) -> None:
        import torch

        values = [loss.detach().float().reshape(())]
        if self.trainer.accelerator.sync_gradients:  # the last micro-step: gradients are complete, not yet clipped
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            grads = [g.to_local() if hasattr(g, "to_local") else g for g in grads]  # FSDP2: this rank's shard
            if grads:
                values.append(_total_norm(grads).float().to(loss.device))
        loss_value, *norm = torch.stack(values).tolist()  # one device sync, as transformers' own NaN filter does
        state = self.trainer.state
        if not math.isfinite(loss_value):
            self._stop(state, "loss", loss_value)
        if norm and not math.isfinite(norm[0]):
            self._stop(state, "gradient norm", norm[0])

    def _stop(self, state: Any, what: str, value: Any, step: int | None = None) -> None:
        good = checkpoints.newest_complete(Path(self.trainer.args.output_dir))
        raise TrainingDiverged(
            {
                "step": state.global_step + 1 if step is None else step,
                "what": what,
                "value": str(value),
                "last_good_checkpoint": str(good) if good else None,
            }
        )

    def on_step_end(self, args, state, control, model=None, **kwargs):
        """Before a checkpoint is written: its trainable weights must be finite."""
        if control.should_save and model is not None and not _finite_weights(model):
            self._stop(state, "trainable weights", "after the optimizer step, before the checkpoint", state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        """Before the final output is written: the trainable weights must be finite."""
        if model is not None and not _finite_weights(model):
            self._stop(state, "trainable weights", "at the end of training, before the final save", state.global_step)


class CheckpointMarker(TrainerCallback):
    """After every rank has written its part of a checkpoint, record its files and sizes: the completion marker."""

    def on_save(self, args, state, control, **kwargs):
        """Runs after the Trainer wrote model, optimizer, scheduler, RNG and trainer state."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every rank's files (e.g. rng_state_1.pth) are written before the marker
        if state.is_world_process_zero:
            from qwen_recipes.outputs.card import remove_foreign_cards

            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            remove_foreign_cards(folder)  # PEFT's placeholder card goes before the marker records the files
            checkpoints.mark_complete(folder, state.global_step, args.world_size)


def watch(trainer: Any, meter: Any) -> None:
    """Add the run's guards to a trainer: divergence stop, checkpoint completion markers, cost kept at each save."""
    trainer.add_callback(DivergenceGuard(trainer))
    trainer.add_callback(CheckpointMarker())
    trainer.add_callback(SegmentKeeper(meter))


def checkpoint_to_resume(recipe: Recipe, output_dir: Path, args: Any) -> str | None:
    """The verified checkpoint to resume from (or None): decided on global rank 0 (the training arguments' view of
    the launch), the same on every rank."""
    resume = recipe.get("resume_from_checkpoint")
    if resume in (None, False, ""):
        return None  # every rank reads the same recipe: no collective needed
    choice = [checkpoints.choose(resume, output_dir) if args.process_index == 0 else None]
    if args.world_size > 1:
        import torch.distributed as dist

        dist.broadcast_object_list(choice, src=0)
    return choice[0]


def divergence_report(run: dict[str, Any], error: TrainingDiverged) -> dict[str, Any]:
    """The run report of a diverged run: status and the event (step, what, value, last good checkpoint)."""
    return run | {"status": "diverged", "diverged": error.event}
