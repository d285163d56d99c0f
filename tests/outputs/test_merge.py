"""Merging adapters: same logits as the adapter model, plain reload, tied embeddings kept or untied correctly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import make_output
from safetensors import safe_open

from qwen_recipes.outputs.merge import merge_adapter, merge_main

IDS = torch.tensor([[151644, 872, 198, 9707, 0, 151645, 198, 151644, 77091, 198]])  # short chat-like ids


def adapter_logits(out: Path) -> torch.Tensor:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), str(out))
    with torch.no_grad():
        return model(IDS).logits


def reload(merged: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)


def saved_keys(merged: Path) -> set[str]:
    keys: set[str] = set()
    for path in merged.glob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            keys |= set(f.keys())
    return keys


def check_merge(tmp_path: Path, lora: dict[str, Any]) -> tuple[Any, Path]:
    out = make_output(tmp_path, lora=lora)
    ref = adapter_logits(out)
    merged = merge_adapter(out, tmp_path / "merged", dtype="fp32")
    model = reload(merged)
    with torch.no_grad():
        got = model(IDS).logits
    assert (got - ref).abs().max().item() < 1e-5
    # The merge really changed the function (else the check above proves nothing).
    base = reload(tmp_path / "base")
    with torch.no_grad():
        assert (base(IDS).logits - ref).abs().max().item() > 1e-3
    return model, merged


def test_lora_merge_matches_adapter_and_stays_tied(tmp_path: Path) -> None:
    model, merged = check_merge(tmp_path, {})
    config = json.loads((merged / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert "lm_head.weight" not in saved_keys(merged)
    assert not (merged / "adapter_config.json").exists()
    # Tokenizer (with the training chat template), run files and a plain-transformers card come along.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(merged)
    assert tok.convert_tokens_to_ids("<|im_end|>") == 151645 and tok.chat_template
    assert (merged / "run_report.json").exists() and (merged / "recipe.resolved.yaml").exists()
    card = (merged / "README.md").read_text()
    assert "library_name: transformers" in card and "base_model: Qwen/Qwen3-0.6B" in card
    assert "adapter merged into it" in card


def test_trained_embedding_unties_head(tmp_path: Path) -> None:
    # embed_tokens trained as a full copy while lm_head keeps the original: the two must come apart.
    model, merged = check_merge(tmp_path, {"modules_to_save": ["embed_tokens"]})
    assert json.loads((merged / "config.json").read_text())["tie_word_embeddings"] is False
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    assert {"lm_head.weight", "model.embed_tokens.weight"} <= saved_keys(merged)


def test_lora_on_tied_head_does_not_leak_into_input_embeddings(tmp_path: Path) -> None:
    model, merged = check_merge(tmp_path, {"target_modules": ["q_proj", "v_proj", "lm_head"]})
    assert json.loads((merged / "config.json").read_text())["tie_word_embeddings"] is False
    base = reload(tmp_path / "base")
    assert torch.equal(model.model.embed_tokens.weight, base.model.embed_tokens.weight)


def test_merge_cli_bf16_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = make_output(tmp_path)
    assert merge_main([str(out), "--out", str(tmp_path / "m16"), "--dtype", "bf16"]) == 0
    with safe_open(str(tmp_path / "m16" / "model.safetensors"), "pt") as f:
        assert f.get_tensor("model.embed_tokens.weight").dtype == torch.bfloat16
    assert merge_main([str(tmp_path / "m16"), "--out", str(tmp_path / "again")]) == 2
    assert "no adapter_config.json" in capsys.readouterr().err
    assert merge_main([str(out), "--out", str(out)]) == 2
    assert "choose a new folder" in capsys.readouterr().err
    assert (out / "adapter_model.safetensors").exists()


def test_resized_vocabulary_is_matched_before_loading(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = make_output(tmp_path)  # a normal output, then retrain it on a resized vocabulary
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype=torch.float32)
    model.resize_token_embeddings(151936 + 8)
    cfg = LoraConfig(r=4, target_modules=["q_proj"], modules_to_save=["embed_tokens"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "modules_to_save" in name:
                p.add_(0.05 * torch.randn_like(p))
    peft_model.save_pretrained(out)
    merged = merge_adapter(out, tmp_path / "merged", dtype="fp32")
    reloaded = reload(merged)
    assert reloaded.model.embed_tokens.weight.shape[0] == 151944 == reloaded.lm_head.weight.shape[0]
    assert json.loads((merged / "config.json").read_text())["tie_word_embeddings"] is False


def test_merge_defaults_to_the_bases_fp32_takes_a_base_model_id_and_says_so_in_help(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 17 #9: the error's --base-model-id exists; bf16 by default is in --help; an fp32 base stays fp32."""
    out = make_output(tmp_path, recipe={"base_model_id": None}, report={"base_model_id": None})
    assert merge_main([str(out), "--out", str(tmp_path / "m")]) == 0  # the tiny base is stored in fp32
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:
        assert f.get_tensor("model.embed_tokens.weight").dtype == torch.float32
    err = capsys.readouterr().err
    assert "model card not written" in err and "--base-model-id" in err  # what it suggests ...
    assert merge_main([str(out), "--out", str(tmp_path / "m2"), "--base-model-id", "qwen-recipes-test/tiny"]) == 0
    assert "base_model: qwen-recipes-test/tiny" in (tmp_path / "m2" / "README.md").read_text()  # ... exists
    with pytest.raises(SystemExit):
        merge_main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Saved in bf16 by default, or fp32 when the base itself is stored in fp32" in help_text
    assert "--base-model-id" in help_text
