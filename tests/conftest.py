"""Offline, deterministic test environment shared by every test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Before anything imports huggingface_hub/transformers: no network, ever, in the default suite.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / "build" / "torch_extensions"))
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tools"))  # dev generators (key reference, TRL snapshot)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def qwen3_tokenizer():
    """The real Qwen3 tokenizer, rebuilt offline (cached on disk after the first build)."""
    from qwen_recipes.testbed import build_tokenizer

    return build_tokenizer("qwen3")


@pytest.fixture(scope="session")
def qwen2_5_tokenizer():
    """The real Qwen2.5 tokenizer, rebuilt offline."""
    from qwen_recipes.testbed import build_tokenizer

    return build_tokenizer("qwen2_5")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session caches prepared data in its own folder, never in ~/.cache."""
    monkeypatch.setenv("QWEN_RECIPES_CACHE", str(tmp_path_factory.getbasetemp() / "qwen_recipes_cache"))


@pytest.fixture
def hub_online(monkeypatch):
    """Dry-run a recipe whose model is a Hub id: offline mode would refuse it (nothing is cached here), as it should.

    With offline mode off, `--dry-run` only checks the id's form; it sends nothing (a real run probes the Hub).
    """
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
