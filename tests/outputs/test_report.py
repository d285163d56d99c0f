"""The run summary and what an output folder keeps: claims that match measurements, no card we did not write."""

from __future__ import annotations

from pathlib import Path

from qwen_recipes.outputs.report import summary

PEFT_README = "---\nbase_model: /tmp/x/models/tiny-qwen3\nlibrary_name: peft\n---\n\n## Model Details\n\n[More Information Needed]\n"


def test_summary_names_the_world_size_cpu_model_and_token_counts(tmp_path: Path) -> None:
    """A 2-process CPU run says so, with the CPU's model name (issue 17 #17), and names its token counts (#7)."""
    run = {
        "steps": 30, "epochs": 1.5, "tokens_seen": 28836, "loss_tokens_estimate": 16488, "wall_seconds": 86.8,
        "hardware": {"device": "cpu", "device_name": "AMD EPYC 7B13", "device_count": 1, "world_size": 2},
        "loss": {"first": 11.7, "final": 4.1, "min": 4.0}, "rows": {"used": 400, "skipped": {}},
    }  # fmt: skip
    text = summary(run, tmp_path)
    assert text.splitlines()[0] == (
        "done: 30 steps (1.5 epochs), 28,836 tokens seen (~16,488 loss tokens) in 86.8 s on CPU (AMD EPYC 7B13), "
        "world size 2"
    )
    gpu = {**run, "hardware": {"device": "cuda", "device_name": "NVIDIA L4", "device_count": 8, "world_size": 8}}
    assert "on 8x NVIDIA L4, world size 8" in summary(gpu, tmp_path)


def test_peft_placeholder_cards_are_removed_and_ours_kept(tmp_path: Path) -> None:
    from qwen_recipes.outputs.card import remove_foreign_cards

    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "README.md").write_text(PEFT_README)
    (tmp_path / "checkpoint-2" / "README.md").write_text(PEFT_README)
    assert remove_foreign_cards(tmp_path) == 2
    assert not (tmp_path / "README.md").exists() and not (tmp_path / "checkpoint-2" / "README.md").exists()
    (tmp_path / "README.md").write_text("---\nbase_model: Qwen/Qwen3-0.6B\n---\n\nThis is a LoRA adapter for ...\n")
    assert remove_foreign_cards(tmp_path) == 0 and (tmp_path / "README.md").exists()
