"""What the same training tokens would cost on a per-token hosted LoRA service (Thinking Machines' Tinker).

Prices are a dated table (`hosted.json`, each row with its source). A recipe whose model the service offers gets
that model's training price x its training tokens; otherwise the nearest offered model by size is named, clearly
as a different model. Tinker trains LoRA adapters only, so a full fine-tune is not the same training there.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any


@cache
def services() -> dict[str, Any]:
    """Service name -> {url, method, models: {Hub id: prices}}."""
    return json.loads((Path(__file__).parent / "hosted.json").read_text())["services"]


def hosted_cost(model: str, parameters: int, method: str, task: str, tokens: int | None) -> list[dict[str, Any]]:
    """One entry per service: the model priced (or the nearest offered), USD per 1M training tokens, total, notes."""
    out = []
    for name, svc in services().items():
        models = svc["models"]
        exact = next((m for m in models if m.lower() == model.lower()), None)
        chosen = exact or min(models, key=lambda m: abs(models[m]["parameters_b"] * 1e9 - parameters))
        row = models[chosen]
        notes = []
        if exact is None:
            notes.append(f"{name} does not offer {model}; nearest offered by size: {chosen} (a different model)")
        if method == "full":
            notes.append(f"{name} trains LoRA adapters only: not the same training as a full fine-tune")
        elif method == "qlora":
            notes.append(f"{name} trains LoRA on unquantised weights: close to, not the same as, QLoRA")
        if task == "grpo":
            notes.append("RL on it also pays sampling and prefill tokens (not included)")
        out.append(
            {
                "service": name,
                "model": chosen,
                "offered": exact is not None,
                "usd_per_million_train_tokens": row["train"],
                "as_of": row["as_of"],
                "source": row["source"],
                "usd": tokens * row["train"] / 1e6 if tokens else None,
                "notes": notes,
            }
        )
    return out
