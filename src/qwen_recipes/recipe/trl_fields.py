"""TRL's config fields, snapshotted to `trl_fields.json` so a recipe validates without importing torch.

Validation and `--dry-run` must start in well under 3 s, and importing TRL's configs pulls in torch and
transformers. The snapshot is regenerated with `python tools/trl_snapshot.py`; a test checks it against the
installed TRL, so it cannot drift silently.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("trl_fields.json")
# The accepted values of TRL/transformers keys that have a known set (optim, lr_scheduler_type, report_to, ...).
CHOICES = Path(__file__).with_name("trl_choices.json")
# Our name for each TRL config class, and where it lives in the installed TRL.
CONFIG_CLASSES = {
    "ModelConfig": "trl:ModelConfig",
    "SFTConfig": "trl:SFTConfig",
    "DPOConfig": "trl:DPOConfig",
    "GRPOConfig": "trl:GRPOConfig",
    "ORPOConfig": "trl.experimental.orpo:ORPOConfig",
    "CPOConfig": "trl.experimental.cpo:CPOConfig",
}


def import_config_class(name: str) -> type:
    """Import one of TRL's config dataclasses by our name for it (e.g. `SFTConfig`)."""
    import importlib

    module, attr = CONFIG_CLASSES[name].split(":")
    return getattr(importlib.import_module(module), attr)


@cache
def trl_fields() -> dict[str, dict[str, dict[str, Any]]]:
    """The snapshotted fields ({type, default, help}) of each TRL config class."""
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))["classes"]


@cache
def trl_choices() -> dict[str, list[str]]:
    """Key -> the values TRL/transformers accept (their enums, integrations, packing strategies, dtypes)."""
    return json.loads(CHOICES.read_text(encoding="utf-8"))
