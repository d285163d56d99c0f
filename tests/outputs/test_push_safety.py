"""Push safety without a network: the token check on --dry-run, nested secrets, and the GGUF note for adapters."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import copy_with_cache, standin_output

from qwen_recipes.outputs import hub
from qwen_recipes.outputs.card import build_card
from qwen_recipes.outputs.card_body import gguf_lora_blockers

TOKEN = "hf_" + "Zy9xW8vU7tS6rQ5pO4nM3lK2jI1hG0fEdC"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return standin_output(tmp_path_factory.mktemp("push"), lora={"modules_to_save": ["lm_head"]})


def test_dry_run_runs_the_token_check_and_names_the_file(built, tmp_path, monkeypatch, capsys):
    out = copy_with_cache(built, tmp_path, monkeypatch)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    report = json.loads((out / "run_report.json").read_text())
    (out / "run_report.json").write_text(json.dumps({**report, "note": TOKEN}))
    assert hub.push_main([str(out), "--repo-id", "alice/x", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "run_report.json contain(s) your Hugging Face token" in err and TOKEN not in err
    # Someone else's token (not ours, so only its shape gives it away) stops it too.
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))
    assert hub.push_main([str(out), "--repo-id", "alice/x", "--dry-run"]) == 1
    assert "contain(s) what looks like a Hugging Face token" in capsys.readouterr().err


def test_nested_secrets_are_dropped_from_the_staged_recipe(built, tmp_path, monkeypatch):
    out = copy_with_cache(built, tmp_path, monkeypatch)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))
    recipe = yaml.safe_load((out / "recipe.resolved.yaml").read_text())
    recipe["model_init_kwargs"] = {"token": "secret-value", "revision": "main"}
    (out / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    assert hub.push_main([str(out), "--repo-id", "alice/x", "--dry-run", "--staging", str(tmp_path / "s")]) == 0
    staged = yaml.safe_load((tmp_path / "s" / "recipe.resolved.yaml").read_text())
    assert staged["model_init_kwargs"] == {"revision": "main"}


def test_push_and_card_say_when_llama_cpp_cannot_convert_the_adapter(built, tmp_path, monkeypatch, capsys):
    saved, plain = built, copy_with_cache(built, tmp_path, monkeypatch, "plain")
    config = json.loads((plain / "adapter_config.json").read_text())
    (plain / "adapter_config.json").write_text(json.dumps({**config, "modules_to_save": None}))
    assert gguf_lora_blockers(json.loads((plain / "adapter_config.json").read_text())) == []
    assert gguf_lora_blockers({"use_dora": True, "target_modules": ["q_proj", "lm_head"]}) == [
        "it is a DoRA adapter (magnitude vectors)",
        "it has a LoRA on lm_head, which llama.cpp drops on bases with tied embeddings",
    ]
    note = "llama.cpp's convert_lora_to_gguf.py cannot convert this adapter: it stores full copies of lm_head"
    assert note in str(build_card(saved)) and "convert_lora_to_gguf" not in str(build_card(plain))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out = copy_with_cache(saved, tmp_path, monkeypatch)
    assert hub.push_main([str(out), "--repo-id", "alice/x", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert f"note: {note} (modules_to_save). For GGUF, merge it" in printed
