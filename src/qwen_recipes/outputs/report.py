"""What a run leaves next to its weights: `recipe.resolved.yaml`, `run_report.json` and `loss.png`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwen_recipes.recipe import Recipe, scrub_values
from qwen_recipes.testbed import tiny_family

if TYPE_CHECKING:
    from qwen_recipes.cost.meter import CostMeter


def hardware(recipe: Recipe) -> dict[str, Any]:
    """Device type and name, GPUs of the launch and the world size (from the cost meter's launch-aware view)."""
    import torch

    from qwen_recipes.cost.meter import device_info

    info = device_info(recipe)
    local = torch.cuda.device_count() if info["device"] == "cuda" else 0
    return {
        "device": info["device"],
        "device_name": info["device_name"],
        "device_count": info["gpus"] if info["device"] == "cuda" else 1,  # devices in the whole run
        "local_device_count": local if info["device"] == "cuda" else 1,
        "world_size": info["world_size"],
    }


def peak_memory_bytes() -> int | None:
    """Peak GPU memory allocated on this process's GPUs, or the process's peak RSS on CPU."""
    from qwen_recipes.cost.meter import peak_memory_per_device

    per_device = peak_memory_per_device()
    if per_device is not None:
        return max(per_device)
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def loss_history(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, loss) of every training log entry."""
    return [(e["step"], float(e["loss"])) for e in log_history if "loss" in e and math.isfinite(float(e["loss"]))]


def build_report(
    recipe: Recipe, trainer: Any, data_report: Any, previous: dict | None, meter: CostMeter
) -> dict[str, Any]:
    """The run report dict; `previous` is the report of an earlier segment when resuming.

    Time and segments come from the cost meter alone: `cost.segments` is the report's one segment list.
    """
    from qwen_recipes.cost.meter import cost_block

    state = trainer.state
    curve = loss_history(state.log_history)
    losses = [loss for _, loss in curve]
    cost = cost_block(meter, previous=previous)
    epochs = round(float(state.epoch or 0.0), 4)
    loss_per_epoch = getattr(data_report, "loss_tokens_per_epoch", 0) or None
    return {
        "recipe": str(recipe.path),
        "task": recipe.task,
        "method": recipe.method,
        "model_name_or_path": recipe.get("model_name_or_path"),
        "base_model_id": recipe.get("base_model_id"),
        "started_at": cost["started_at"],
        "ended_at": cost["ended_at"],
        "wall_seconds": cost["wall_seconds"],
        "hardware": hardware(recipe),
        # Every token the model was fed (prompts included, padding not), all epochs: the Trainer's count. ORPO/CPO
        # batches have no `input_ids`, so the Trainer cannot count them: say unknown rather than 0.
        "tokens_seen": int(state.num_input_tokens_seen)
        if state.num_input_tokens_seen or not state.global_step
        else None,
        "tokens_seen_per_epoch": getattr(data_report, "tokens_per_epoch", 0) or None,
        # Tokens that carry loss (assistant turns for SFT; every token for CPT): counted per epoch of the data; the
        # total is that times the epochs run (a partial epoch is assumed to hold its share).
        "loss_tokens_per_epoch": loss_per_epoch,
        "loss_tokens_estimate": round(loss_per_epoch * epochs) if loss_per_epoch else None,
        "steps": int(state.global_step),
        "epochs": epochs,
        "rows": {"used": data_report.rows_used, "read": data_report.rows_read, "skipped": dict(data_report.skipped)},
        "data": data_report.to_dict(),
        "loss": {"first": losses[0], "final": losses[-1], "min": min(losses)} if losses else None,
        "loss_curve": [[step, round(loss, 6)] for step, loss in curve],
        # MoE router load-balancing loss (TRL logs it as aux_loss when router_aux_loss_coef is on); None otherwise.
        "aux_loss": _aux_loss(state.log_history),
        "peak_memory_bytes": peak_memory_bytes(),
        "random_init": tiny_family(recipe.get("model_name_or_path")) is not None,
        "cost": cost,
    }


def _aux_loss(log_history: list[dict[str, Any]]) -> dict[str, Any] | None:
    points = [(e["step"], float(e["aux_loss"])) for e in log_history if "aux_loss" in e and "loss" in e]
    if not points:
        return None
    return {"first": points[0][1], "final": points[-1][1], "curve": [[s, round(v, 6)] for s, v in points]}


def write_resolved_recipe(recipe: Recipe, output_dir: Path) -> Path:
    """Save the recipe as resolved (bases merged, overrides applied), minus secrets."""
    import yaml

    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "recipe.resolved.yaml"
    header = f"# resolved from {recipe.path} (bases merged, command-line overrides applied)\n"
    path.write_text(header + yaml.safe_dump(scrub_values(recipe.values), sort_keys=False, allow_unicode=True))
    return path


def plot_loss(log_history: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Write the training loss curve as a PNG; None when nothing was logged."""
    points = loss_history(log_history)
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([s for s, _ in points], [v for _, v in points], marker="." if len(points) < 50 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def read_previous_report(output_dir: Path) -> dict[str, Any] | None:
    """The run report of an earlier segment in this output folder, if any."""
    path = output_dir / "run_report.json"
    return json.loads(path.read_text()) if path.exists() else None


def write_report(report: dict[str, Any], output_dir: Path) -> Path:
    """Save `run_report.json`."""
    path = output_dir / "run_report.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def _tokens(report: dict[str, Any]) -> str:
    seen = report.get("tokens_seen")
    text = f"{seen:,} tokens seen" if seen is not None else "tokens seen: untracked"
    if report.get("loss_tokens_estimate"):
        text += f" (~{report['loss_tokens_estimate']:,} loss tokens)"
    return text


def summary(report: dict[str, Any], output_dir: Path) -> str:
    """The end-of-run console summary."""
    loss = report.get("loss") or {}
    hw = report["hardware"]
    where = (
        f"{hw['device_count']}x {hw['device_name'] or 'GPU'}"
        if hw["device"] == "cuda"
        else f"CPU ({hw['device_name']})"
    ) + f", world size {hw['world_size']}"
    lines = [
        f"done: {report['steps']} steps ({report['epochs']:g} epochs), {_tokens(report)} in "
        f"{report['wall_seconds']:.1f} s on {where}"
    ]
    if loss:
        lines.append(f"loss: {loss['first']:.4f} -> {loss['final']:.4f} (min {loss['min']:.4f})")
    skipped = report["rows"]["skipped"]
    lines.append(f"rows: {report['rows']['used']} used, {sum(skipped.values())} skipped {skipped or ''}".rstrip())
    if report.get("cost"):
        from qwen_recipes.cost.meter import summary_line

        lines.append(summary_line(report["cost"]))
    if report.get("random_init"):
        lines.append("note: the base model is a tiny RANDOM model; this run shows the pipeline, not a useful model")
    lines.append(f"outputs: {output_dir}")
    return "\n".join(lines)


def write_card(output_dir: Path, random_init: bool = False) -> None:
    """Write our model card (README.md). When none can be honest (a random base, no Hub id for the base), say why,
    and leave no card at all: PEFT's boilerplate README (a local-path `base_model`) is removed, here and in
    checkpoints."""
    from qwen_recipes.outputs.card import CardError, remove_foreign_cards, write_model_card

    removed = remove_foreign_cards(output_dir)
    if random_init:  # a tiny random base has no Hub id to name; real runs get a card
        print(
            "model card: none (the base is a tiny RANDOM test model, not a published one: there is nothing true to "
            "name as base_model, and it cannot be pushed as a real model)"
            + ("; PEFT's placeholder README.md removed" if removed else "")
        )
        return
    try:
        write_model_card(output_dir)
    except CardError as e:
        print(f"warning: no model card written: {e}" + (" (PEFT's placeholder README.md removed)" if removed else ""))
