"""Model cards: Hub-valid metadata, base_model always a hub id, honest body. Builds its own output folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import BASE_ID, make_output

from qwen_recipes.outputs.card import (
    CardError,
    build_card,
    card_main,
    check_metadata,
    license_for,
    load_run,
    resolve_base_model_id,
    write_model_card,
)


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_output(tmp_path_factory.mktemp("card"))


def _meta(path: Path) -> dict[str, Any]:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_metadata_is_hub_valid_and_names_the_hub_id(output: Path) -> None:
    path = write_model_card(output, dest=output.parent / "card.md")
    meta = _meta(path)
    assert meta["base_model"] == BASE_ID
    assert meta["library_name"] == "peft"
    assert meta["license"] == "apache-2.0"
    assert meta["pipeline_tag"] == "text-generation"
    assert meta["datasets"] == ["simplescaling/s1K-1.1"]  # the local jsonl is not a hub dataset
    assert meta["tags"] == ["qwen-recipes", "lora", "sft", "trl", "s1"]
    assert check_metadata(meta) == []
    from huggingface_hub import ModelCard

    assert ModelCard.load(path).data.to_dict() == meta
    text = path.read_text()
    assert str(output.parent) not in text  # no local path anywhere, metadata or body


def test_card_body_reports_run_cost_and_usage(output: Path) -> None:
    text = str(build_card(output, repo_id="alice/tiny-s1"))
    assert "# tiny-s1" in text
    assert "2 x NVIDIA H100 80GB HBM3" in text
    assert "| GPU-hours | 1.000 |" in text  # 1800 s x 2 GPUs
    assert "| cost | not recorded |" in text  # no cost block: said, not invented
    # Token counters named for what they count, as in the report and the console (issue 17 #7).
    assert "| tokens seen (all epochs, prompts included, no padding) | 123,456 |" in text
    assert "| loss tokens per epoch | 45,678 |" in text and "| loss tokens, all epochs (estimate) | 45,678 |" in text
    assert "tokens trained" not in text
    assert "| loss first / final / min | 2.5000 / 1.2500 / 1.2000 |" in text
    assert "Rows used: 100; skipped: overlong: 3." in text
    assert "| learning_rate | 0.0002 |" in text
    assert "[simplescaling/s1K-1.1](https://huggingface.co/datasets/simplescaling/s1K-1.1)" in text
    assert "local file `mine.jsonl`" in text
    assert 'AutoPeftModelForCausalLM.from_pretrained("alice/tiny-s1"' in text
    assert "vllm serve Qwen/Qwen3-0.6B --enable-lora --lora-modules adapter=alice/tiny-s1" in text
    assert "No evaluation results were recorded" in text
    # The tiny random base is named for what it is.
    assert "tiny test-sized model" in text


def test_card_renders_cost_block_and_eval_results(tmp_path: Path) -> None:
    out = make_output(tmp_path, report={"cost": {"gpu_hours": 1.0, "usd": 4.5, "price_per_gpu_hour": 4.5}})
    (out / "eval").mkdir()
    (out / "eval" / "aime24_summary.json").write_text(json.dumps({"aime24": {"accuracy": 0.5}, "n": 30}))
    text = str(build_card(out))
    assert "| cost: usd | 4.5 |" in text
    assert "From `eval/aime24_summary.json`:" in text
    assert "| aime24.accuracy | 0.5 |" in text and "| n | 30 |" in text
    assert "YOUR_USER/MODEL_NAME" in text  # no repo id: a placeholder, not a guess


def test_base_model_from_model_name_when_it_is_a_hub_id(tmp_path: Path) -> None:
    out = make_output(tmp_path, recipe={"base_model_id": None, "model_name_or_path": "Qwen/Qwen2.5-3B-Instruct"})
    meta = build_card(out).data.to_dict()
    assert meta["base_model"] == "Qwen/Qwen2.5-3B-Instruct"
    assert meta["license"] == "other" and meta["license_name"] == "qwen-research"
    assert meta["license_link"] == "https://huggingface.co/Qwen/Qwen2.5-3B-Instruct/blob/main/LICENSE"
    assert str(build_card(out)).split("---\n", 2)[2].lstrip().startswith("Improved using Qwen.")


def test_local_only_base_is_refused_with_the_fix(tmp_path: Path) -> None:
    out = make_output(tmp_path, recipe={"base_model_id": None}, report={"base_model_id": None})
    # peft's save_pretrained writes its own README whose base_model is the local path (peft PR #2124).
    peft_readme = (out / "README.md").read_text()
    assert f"base_model: {tmp_path / 'base'}" in peft_readme
    with pytest.raises(CardError) as err:
        build_card(out)
    msg = str(err.value)
    assert "cannot find the hub id of the base model" in msg
    assert "set `base_model_id:`" in msg and "--base-model-id" in msg
    # No real model's id is offered for a tiny base: that produced a false card (issue 17 #6).
    assert "Qwen/" not in msg and "cannot be pushed as a real model" in msg
    assert card_main([str(out)]) == 2
    assert (out / "README.md").read_text() == peft_readme  # a refused card writes nothing
    assert card_main([str(out), "--base-model-id", "Qwen/Qwen3-1.7B"]) == 0
    assert _meta(out / "README.md")["base_model"] == "Qwen/Qwen3-1.7B"
    assert card_main([str(out), "--base-model-id", str(tmp_path / "base")]) == 2  # a path is not an id


def test_base_model_followed_through_local_folders(tmp_path: Path) -> None:
    out = make_output(tmp_path, recipe={"base_model_id": None}, report={"base_model_id": None})
    # The base folder is itself one of our outputs (e.g. a merged CPT model) that recorded its hub id.
    (tmp_path / "base" / "run_report.json").write_text(json.dumps({"base_model_id": "Qwen/Qwen3-4B-Base"}))
    run = load_run(out)
    assert resolve_base_model_id(run) == ("Qwen/Qwen3-4B-Base", "the local base model's own files")
    # A Hugging Face cache snapshot path names its repo.
    snap = tmp_path / "hub" / "models--Qwen--Qwen2.5-0.5B" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    run.recipe = {"model_name_or_path": str(snap)}
    run.report, run.adapter = {}, {}
    assert resolve_base_model_id(run)[0] == "Qwen/Qwen2.5-0.5B"


def test_licences_are_an_exact_lookup() -> None:
    assert license_for("Qwen/Qwen2.5-72B-Instruct") == {
        "license": "other",
        "license_name": "qwen",
        "license_link": "https://huggingface.co/Qwen/Qwen2.5-72B-Instruct/blob/main/LICENSE",
    }
    assert license_for("Qwen/Qwen2.5-3B")["license_name"] == "qwen-research"
    assert license_for("Qwen/Qwen2.5-1.5B-Instruct") == {"license": "apache-2.0"}
    assert license_for("Qwen/Qwen3-8B") == {"license": "apache-2.0"}
    assert license_for("someone/Qwen2.5-3B-Instruct-copy") == {}  # unknown: no guess from the name
    assert license_for("someone/x", override="mit") == {"license": "mit"}


def test_check_metadata_rejects_local_paths_and_bad_licences() -> None:
    problems = check_metadata(
        {"base_model": "/home/me/models/qwen", "library_name": "peft", "license": "other", "tags": ["a b"]}
    )
    assert any("never a local path" in p for p in problems)
    assert any("license_name and license_link" in p for p in problems)
    assert any("without spaces" in p for p in problems)
    assert check_metadata({"base_model": "./out/base", "library_name": "peft"})[0].startswith("base_model './out/base'")


def test_full_and_merged_folders_are_not_peft(tmp_path: Path) -> None:
    from qwen_recipes.testbed import save_tiny_checkpoint

    out = save_tiny_checkpoint(tmp_path / "full", "qwen2_5")
    (out / "recipe.resolved.yaml").write_text(yaml.safe_dump({"method": "full", "base_model_id": "Qwen/Qwen2.5-0.5B"}))
    card = build_card(out)
    assert card.data.library_name == "transformers" and "full" in card.data.tags
    assert "This is a full fine-tune of [Qwen/Qwen2.5-0.5B]" in card.text
    assert "No run_report.json was found" in card.text
    (out / "recipe.resolved.yaml").write_text(yaml.safe_dump({"method": "lora", "base_model_id": "Qwen/Qwen2.5-0.5B"}))
    card = build_card(out)
    assert "merged-adapter" in card.data.tags and "adapter merged into it" in card.text
    assert "vllm serve YOUR_USER/MODEL_NAME\n" in card.text


def test_two_node_gpu_hours_agree_between_card_and_cost_block(tmp_path: Path, monkeypatch) -> None:
    """WORLD_SIZE=16 on nodes of 8 GPUs: the card counts the run's 16 GPUs, as the cost block does."""
    import torch

    from qwen_recipes.cost.meter import CostMeter, cost_block, device_info
    from qwen_recipes.outputs.report import hardware

    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    meter = CostMeter()
    meter.device, meter.wall_seconds, meter.started_at = device_info(), 1800.0, "2025-01-01T00:00:00+00:00"
    cost = cost_block(meter)
    hw = hardware(None)
    assert hw == {
        "device": "cuda",
        "device_name": "NVIDIA H100 80GB HBM3",
        "device_count": 16,
        "local_device_count": 8,
        "world_size": 16,
    }
    assert cost["gpus"] == 16 and cost["gpu_hours"] == 8.0  # 1800 s x 16 GPUs
    text = str(build_card(make_output(tmp_path, report={"hardware": hw, "cost": cost})))
    assert "| GPU-hours | 8.000 |" in text and "16 x NVIDIA H100 80GB HBM3 (world size 16)" in text
