"""Experiment for the quickstart: SFT loss on CPU without TRL's chunked fused LM head.

TRL 1.16 always routes the SFT loss through `add_fused_lm_head`; off Triton devices its kernel is plain torch over
[4096 x 32768] fp32 tiles, scores every position (masked ones too) and computes entropy + top-1 for the logs. On a
CPU that is several times slower than one `lm_head` matmul + cross-entropy on the trained positions only.

    python -m bench.cpu_loss recipes/quickstart/tiny-qwen3-cpu.yaml --max_steps 6   # train.py with the patch

This module patches `SFTTrainer.compute_loss` for the process it runs in; it is a measurement aid for the proposed
engine change (see docs/benchmarks.md), not part of the engine.
"""

from __future__ import annotations

import runpy
import sys
from typing import Any


def compact_loss(trainer: Any, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """Mean next-token cross-entropy over positions whose label is not -100, projecting only those through lm_head."""
    import torch
    import torch.nn.functional as F

    labels = inputs["labels"]
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    kwargs = {k: v for k, v in inputs.items() if k != "labels"}
    kwargs["use_cache"] = False
    hidden = lm.base_model(**kwargs).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    keep = targets != -100
    logits = lm.get_output_embeddings()(hidden[keep])
    denom = num_items_in_batch if num_items_in_batch is not None else keep.sum()
    loss = F.cross_entropy(logits.float(), targets[keep], reduction="sum") / torch.as_tensor(denom).clamp(min=1)
    if trainer.args.average_tokens_across_devices and num_items_in_batch is not None:
        loss = loss * trainer.accelerator.num_processes
    return loss


def patch() -> None:
    """Make SFTTrainer use `compact_loss` on CPU (no entropy / token-accuracy logs)."""
    from trl import SFTTrainer

    original = SFTTrainer.compute_loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs or self.args.device.type != "cpu":
            return original(self, model, inputs, return_outputs, num_items_in_batch)
        return compact_loss(self, model, inputs, num_items_in_batch)

    SFTTrainer.compute_loss = compute_loss


def main(argv: list[str] | None = None) -> int:
    """Run train.py with the patch applied."""
    patch()
    sys.argv = ["train.py", *(sys.argv[1:] if argv is None else argv)]
    try:
        runpy.run_path("train.py", run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
