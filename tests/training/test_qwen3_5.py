"""Qwen3.5 (hybrid Gated-DeltaNet, multimodal checkpoint), Qwen3.5-MoE and Qwen3-MoE train end to end from a user
recipe; expert LoRA, router loss, adapter names that apply to the published class, and the packing guard."""

from __future__ import annotations

import itertools
import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from helpers import ROOT, chat_rows, losses, report, train, write_jsonl, write_recipe

from qwen_recipes.recipe import RecipeError, load_recipe


def adapter_keys(out) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        return {k: tuple(f.get_tensor(k).shape) for k in list(f.keys())}


# The 248,320-row output head dominates CPU time: few rows per step, short rows.
SHORT = {"max_length": 40, "per_device_train_batch_size": 4}


@pytest.fixture
def chat_data(tmp_path):
    return write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))


def test_tiny_qwen3_5_lora_trains_and_its_adapter_applies_to_the_published_multimodal_class(tmp_path, chat_data):
    recipe = write_recipe(
        tmp_path / "r.yaml", model_name_or_path="tiny:qwen3_5", datasets=[str(chat_data)], max_length=48
    )
    assert train(recipe) == 0
    out = tmp_path / "out"
    curve = losses(out)
    assert curve[-1] < curve[0] - 0.05, curve
    rep = report(out)
    assert rep["data"]["thinking_rows"] == 4 and rep["rows"]["used"] == 8  # chat_rows: every other row reasons
    keys = adapter_keys(out)
    # Module names of Qwen3_5ForConditionalGeneration (what PEFT and vLLM load the published checkpoint as).
    assert keys and all(k.startswith("base_model.model.model.language_model.layers.") for k in keys)
    leaves = {k.split(".")[-3] for k in keys}
    assert leaves == {"in_proj_qkv", "in_proj_z", "in_proj_a", "in_proj_b", "out_proj", "q_proj", "k_proj"} | {
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert keys["base_model.model.model.language_model.layers.3.self_attn.q_proj.lora_B.weight"] == (256, 16)  # + gate

    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base_dir = Path(os.environ["QWEN_RECIPES_CACHE"]) / "models" / "tiny-qwen3_5"  # the checkpoint it trained on
    base = AutoModelForImageTextToText.from_pretrained(base_dir, dtype=torch.float32)
    ids = torch.tensor([[248045, 846, 198, 12675, 248046, 198, 248045, 74455, 198]])
    with torch.no_grad():
        before = base(input_ids=ids).logits
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuned = PeftModel.from_pretrained(base, str(out))
    assert not [w for w in caught if "missing adapter keys" in str(w.message)]
    with torch.no_grad():
        after = tuned(input_ids=ids).logits
    assert (after - before).abs().max() > 1e-3  # the adapter is applied, not silently dropped

    from qwen_recipes.outputs.merge import merge_adapter

    merged_dir = merge_adapter(out, tmp_path / "merged", dtype="fp32", base=str(base_dir))
    merged = AutoModelForImageTextToText.from_pretrained(merged_dir, dtype=torch.float32)
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, after, atol=1e-4)  # merged in the published class


def _expert_run(tmp_path, chat_data, family: str, **extra):
    recipe = write_recipe(
        tmp_path / "r.yaml",
        model_name_or_path=f"tiny:{family}",
        datasets=[str(chat_data)],
        lora_dropout=0.0,  # PEFT's expert wrapper refuses dropout (checked at --dry-run, see below)
        **SHORT,
        **extra,
    )
    assert train(recipe) == 0
    out = tmp_path / "out"
    curve = losses(out)
    assert curve[-1] < curve[0] - 0.05, curve
    return out


def test_tiny_qwen3_5_moe_lora_adapts_every_expert_and_logs_the_router_loss(tmp_path, chat_data):
    out = _expert_run(tmp_path, chat_data, "qwen3_5_moe")
    keys = adapter_keys(out)
    layer = "base_model.model.model.language_model.layers.0.mlp"
    # Fused experts [E=4, 2I=64, H=64] / [4, 64, 32] at r=16: A [r·E, in], B [out, r·E] (PEFT target_parameters).
    assert keys[f"{layer}.experts.base_layer.lora_A.weight"] == (64, 64)
    assert keys[f"{layer}.experts.base_layer.lora_B.weight"] == (64, 64)
    assert keys[f"{layer}.experts.lora_A.weight"] == (64, 32)
    assert keys[f"{layer}.experts.lora_B.weight"] == (64, 64)
    assert f"{layer}.shared_expert.up_proj.lora_A.weight" in keys
    assert not [k for k in keys if ".mlp.gate." in k or "shared_expert_gate" in k]  # routers stay frozen
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["target_parameters"] == ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
    aux = report(out)["aux_loss"]
    assert aux and len(aux["curve"]) == 4 and 1.0 < aux["first"] < 4.0  # E x sum(f·P): 2 = top-k when balanced


def test_tiny_qwen3_moe_lora_adapts_experts_not_the_router(tmp_path, chat_data):
    out = _expert_run(tmp_path, chat_data, "qwen3_moe", experts_implementation="batched_mm")
    keys = adapter_keys(out)
    assert keys["base_model.model.model.layers.1.mlp.experts.base_layer.lora_A.weight"] == (64, 64)  # no rank x2
    assert keys["base_model.model.model.layers.1.mlp.experts.lora_A.weight"] == (64, 32)
    # all-linear is the family's list: PEFT's own all-linear on Qwen3-MoE would also adapt the router mlp.gate.
    assert not [k for k in keys if ".mlp.gate." in k]
    assert report(out)["aux_loss"]["final"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen3_5", "qwen3_5_moe", "qwen3_moe"])
def test_tiny_full_fine_tune_lowers_the_loss_and_saves_the_published_layout(tmp_path, chat_data, family):
    recipe = write_recipe(
        tmp_path / "r.yaml",
        method="full",
        model_name_or_path=f"tiny:{family}",
        datasets=[str(chat_data)],
        learning_rate=1.0e-3,
        **SHORT,
        base=[str(ROOT / "recipes/_base/sft.yaml"), str(ROOT / "recipes/_base/full.yaml")],
        gradient_checkpointing=False,
    )
    assert train(recipe) == 0
    curve = losses(tmp_path / "out")
    assert curve[-1] < curve[0] - 0.05, curve
    from safetensors import safe_open

    config = json.loads((tmp_path / "out" / "config.json").read_text())
    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    if family.startswith("qwen3_5"):  # the whole published checkpoint, vision tower included
        assert config["architectures"][0].endswith("ForConditionalGeneration")
        assert any(n.startswith("model.language_model.layers.") for n in names)
        assert any(n.startswith("model.visual.") for n in names)
    if family.endswith("moe"):  # experts saved per expert, as the Hub checkpoints are
        assert any(".mlp.experts.0.gate_proj.weight" in n for n in names)


def test_experts_implementation_reaches_the_model(tmp_path, chat_data):
    from qwen_recipes.training import model

    recipe = load_recipe(
        write_recipe(
            tmp_path / "r.yaml", model_name_or_path="tiny:qwen3_moe", datasets=[str(chat_data)], lora_dropout=0.0
        ),
        {"experts_implementation": "eager"},
    )
    tok = model.load_tokenizer(recipe, chat=True)
    lm = model.load_model(recipe, tok)
    assert set(lm.get_experts_implementation().values()) == {"eager"}
    assert model.peft_config(recipe).target_parameters == ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]


def test_expert_lora_with_dropout_and_router_keys_on_dense_models_are_refused_at_dry_run(tmp_path, chat_data, capsys):
    bad = write_recipe(tmp_path / "m.yaml", model_name_or_path="tiny:qwen3_moe", datasets=[str(chat_data)])
    assert train(bad, "--dry-run") == 2  # _base/lora.yaml has lora_dropout 0.05
    err = capsys.readouterr().err
    assert "lora_dropout=0.05 with expert LoRA" in err and "set lora_dropout: 0.0" in err
    dense = write_recipe(
        tmp_path / "d.yaml", model_name_or_path="tiny:qwen3_5", datasets=[str(chat_data)], output_router_logits=True
    )
    assert train(dense, "--dry-run") == 2
    assert "output_router_logits=True but qwen3_5 has no experts" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ packing guard


def test_packed_loss_equals_the_sum_of_each_rows_loss_on_the_cpu_path(tmp_path, chat_data, capsys):
    """No leak: on this machine's path (no fla/causal-conv1d: rows are padded), batch loss = sum of rows alone."""
    import torch.nn.functional as F

    from qwen_recipes.data import pipeline, templates
    from qwen_recipes.testbed import build_tokenizer, tiny_model
    from qwen_recipes.training import hybrid
    from qwen_recipes.training.trainer import make_trainer, training_args

    recipe = load_recipe(
        write_recipe(
            tmp_path / "r.yaml",
            model_name_or_path="tiny:qwen3_5",
            datasets=[str(chat_data)],
            packing=True,  # as _base/sft.yaml: BFD packing, padding-free
            per_device_train_batch_size=4,
            max_length=48,
        )
    )
    assert hybrid.kernel_plan(recipe).unpack == (not (hybrid.installed("fla") and hybrid.installed("causal_conv1d")))
    tok = build_tokenizer("qwen3_5")
    data, _ = pipeline.build_dataset(recipe, tok, templates.resolve_training_template(tok, "qwen3_5"))
    args = training_args(recipe)
    model = tiny_model("qwen3_5", seed=1)
    trainer = make_trainer(recipe, args, model, tok, data)
    batch = next(iter(trainer.get_train_dataloader()))
    model.eval()

    def summed(ids, labels, **kw):
        logits = model(input_ids=ids, use_cache=False, **kw).logits[:, :-1].float()
        return F.cross_entropy(logits.flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="sum")

    kwargs = {k: batch[k] for k in ("attention_mask", "position_ids", "cu_seq_lens_q", "seq_idx") if k in batch}
    with torch.no_grad():
        together = summed(batch["input_ids"], batch["labels"], **kwargs)
        rows = []
        if "attention_mask" in batch:  # padded rows
            for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
                keep = mask.bool()
                rows.append(summed(ids[keep][None], labels[keep][None]))
        else:  # padding-free on the varlen kernels: one packed row, sequences restart their positions
            starts = [*(batch["position_ids"][0] == 0).nonzero().flatten().tolist(), batch["input_ids"].shape[1]]
            for a, b in itertools.pairwise(starts):
                rows.append(summed(batch["input_ids"][:, a:b], batch["labels"][:, a:b]))
    assert len(rows) == 4
    assert torch.allclose(together, torch.stack(rows).sum(), rtol=1e-5, atol=1e-4), (together, rows)


def test_without_the_guard_packed_rows_leak_or_are_refused_on_the_torch_fallback():
    """What the guard prevents: the Gated-DeltaNet torch path mixes packed rows, or refuses TRL's varlen batch."""
    from qwen_recipes.testbed import tiny_model
    from qwen_recipes.training import hybrid

    if hybrid.installed("fla") and hybrid.installed("causal_conv1d"):
        pytest.skip("varlen kernels installed: packing is exact here")
    model = tiny_model("qwen3_5", seed=1).eval()
    a, b = torch.arange(10, 17)[None], torch.arange(30, 39)[None]
    with torch.no_grad():
        alone = model(input_ids=b, use_cache=False).logits
        packed = torch.cat([a, b], dim=1)
        positions = torch.cat([torch.arange(7), torch.arange(9)])[None]
        mixed = model(input_ids=packed, position_ids=positions, use_cache=False).logits[:, 7:]
        assert (mixed - alone).abs().max() > 1e-3  # b saw a through the conv and the recurrent state
        cu = torch.tensor([0, 7, 16], dtype=torch.int32)
        with pytest.raises(ValueError, match="flash-linear-attention"):
            model(
                input_ids=packed, position_ids=positions, use_cache=False, cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                max_length_q=9, max_length_k=9,
            )  # fmt: skip


def test_plan_keeps_packing_with_varlen_kernels_and_warns_on_cuda_without_them(tmp_path, chat_data, monkeypatch):
    from qwen_recipes.training import hybrid

    recipe = load_recipe(
        write_recipe(tmp_path / "r.yaml", model_name_or_path="tiny:qwen3_5", datasets=[str(chat_data)])
    )
    monkeypatch.setattr(hybrid, "installed", lambda module: True)
    plan = hybrid.kernel_plan(recipe, cuda=True)
    assert not plan.unpack and plan.lines["packing"].startswith("padding-free") and not plan.warnings
    assert plan.lines["linear attention"] == "Gated-DeltaNet on flash-linear-attention, short conv on causal-conv1d"
    monkeypatch.setattr(hybrid, "installed", lambda module: module != "causal_conv1d")
    plan = hybrid.kernel_plan(recipe, cuda=True)
    assert (
        plan.unpack
        and "causal-conv1d not installed" in plan.lines["packing"]
        and "pip install causal-conv1d" in plan.lines["packing"]
    )
    assert "several times slower (transformers#48718)" in plan.warnings[0]
    assert hybrid.kernel_plan(recipe, cuda=False).warnings == []  # the CPU fallback is expected on CPU
    dense = load_recipe(write_recipe(tmp_path / "q.yaml", model_name_or_path="tiny:qwen3", datasets=[str(chat_data)]))
    assert hybrid.kernel_plan(dense).lines == {}
    with pytest.raises(RecipeError, match="must be one of eager, grouped_mm, batched_mm"):
        load_recipe(tmp_path / "r.yaml", {"experts_implementation": "fast"})


def test_card_of_an_expert_adapter_says_which_serving_paths_load_it(tmp_path):
    from helpers import make_output

    from qwen_recipes.outputs.card import build_card

    experts = {"target_modules": ["q_proj"], "target_parameters": ["mlp.experts.gate_up_proj"], "lora_dropout": 0.0}
    out = make_output(
        tmp_path,
        family="qwen3_moe",
        lora=experts,
        recipe={"base_model_id": "Qwen/Qwen3.5-35B-A3B"},
        report={"base_model_id": "Qwen/Qwen3.5-35B-A3B"},
    )
    card = str(build_card(out))
    assert "vLLM does not load expert LoRA for Qwen3.5-MoE yet (vllm-project/vllm#40005)" in card
    assert "license: apache-2.0" in card


@pytest.mark.parametrize("family", ["qwen3_5_moe", "qwen3_moe"])
def test_dry_run_trainable_parameters_count_the_expert_lora_as_peft_does(tmp_path, chat_data, family):
    from peft import get_peft_model

    from qwen_recipes.recipe.plan import trainable_parameters
    from qwen_recipes.testbed import tiny_model
    from qwen_recipes.training.model import peft_config

    path = write_recipe(tmp_path / "r.yaml", model_name_or_path=f"tiny:{family}", datasets=[str(chat_data)])
    recipe = load_recipe(path, {"lora_dropout": 0.0})
    model = get_peft_model(tiny_model(family), peft_config(recipe))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable_parameters(recipe).startswith(f"{trainable:,} (")
    experts = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and ".experts." in n)
    assert experts > trainable / 3  # the experts hold most of the adapter


def test_data_report_states_the_thinking_mix():
    from qwen_recipes.data.pipeline import DataReport

    line = DataReport(
        rows_read=4, rows_used=4, tokens_per_epoch=100, loss_tokens_per_epoch=40, thinking_rows=1
    ).summary()
    assert "thinking mix: 1 reasoning / 3 non-thinking rows (25% reasoning; unsloth advises >= 75%" in line
