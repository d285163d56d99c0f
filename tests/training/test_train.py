"""End-to-end training on the tiny offline model: every method lowers the loss and writes every output."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from helpers import ROOT, chat_rows, losses, report, train, write_jsonl, write_recipe


@pytest.fixture
def chat_data(tmp_path):
    return write_jsonl(tmp_path / "chat.jsonl", chat_rows(8))


@pytest.mark.parametrize(
    "method,extra",
    [
        ("lora", {}),
        pytest.param("lora", {"use_dora": True}, marks=pytest.mark.slow),  # the LoRA path with one PEFT flag
        pytest.param("lora", {"use_rslora": True}, marks=pytest.mark.slow),
        ("full", {"learning_rate": 1.0e-3}),
    ],
    ids=["lora", "dora", "rslora", "full"],
)
def test_sft_lowers_the_loss(tmp_path, chat_data, method, extra):
    recipe = write_recipe(tmp_path / "r.yaml", method=method, datasets=[str(chat_data)], **extra)
    assert train(recipe) == 0
    curve = losses(tmp_path / "out")
    assert len(curve) == 4
    assert curve[-1] < curve[0] - 0.05, curve


def test_qlora_trains_on_cpu(tmp_path, chat_data):
    pytest.importorskip("bitsandbytes")
    recipe = write_recipe(
        tmp_path / "r.yaml", base=[str(ROOT / "recipes/_base/sft.yaml"), str(ROOT / "recipes/_base/qlora.yaml")]
    )
    recipe.write_text(recipe.read_text() + f"datasets: [{chat_data}]\n")  # learning_rate 1e-2 from write_recipe
    assert train(recipe) == 0
    out = tmp_path / "out"
    curve = losses(out)
    assert curve[-1] < curve[0] - 0.05, curve
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA"


def test_lora_run_writes_every_output(tmp_path, chat_data, capsys, recwarn):
    recipe = write_recipe(tmp_path / "r.yaml", datasets=[str(chat_data)], lora_modules_to_save=["lm_head"])
    assert train(recipe, "--seed", "7") == 0
    out = tmp_path / "out"
    # No card we did not write: PEFT's placeholder README (a local-path base_model) is gone (issue 17 #4).
    assert not (out / "README.md").exists()
    console = capsys.readouterr().out
    assert "model card: none (the base is a tiny RANDOM test model" in console
    # One name per token count, the same in the console and the report (issue 17 #7).
    assert "tokens seen" in console and "loss tokens" in console and "tokens trained" not in console
    # No library noise a user sees (DeprecationWarnings are hidden by Python itself): the deprecated
    # gradient_checkpointing names, PEFT's tied-weights warning (explained once instead).
    noise = [str(w.message) for w in recwarn if issubclass(w.category, (FutureWarning, UserWarning))]
    assert noise == []
    assert console.count("note: this model ties its input embeddings and output head") == 1
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "recipe.resolved.yaml",
        "run_report.json",
        "loss.png",
        "generation_config.json",
    ):
        assert (out / name).is_file(), name
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"]  # never None
    linear = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert {name.rsplit(".", 1)[-1] for name in adapter["target_modules"]} == linear  # all-linear
    resolved = yaml.safe_load((out / "recipe.resolved.yaml").read_text())
    assert resolved["seed"] == 7 and resolved["method"] == "lora" and "base" not in resolved
    rep = report(out)
    assert rep["steps"] == 4 and rep["rows"]["used"] == 8 and rep["rows"]["skipped"] == {}
    assert rep["hardware"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert rep["hardware"]["device_count"] == rep["hardware"]["world_size"] == 1
    assert rep["wall_seconds"] > 0 and rep["loss"]["min"] <= rep["loss"]["first"]
    assert rep["random_init"] is True
    # Real tokens only: with padding-free packing every token the trainer saw is a data token.
    assert 0 < rep["tokens_seen"] <= 4 * rep["data"]["tokens_per_epoch"]
    assert rep["tokens_seen_per_epoch"] == rep["data"]["tokens_per_epoch"]
    assert 0 < rep["loss_tokens_per_epoch"] == rep["data"]["loss_tokens_per_epoch"] < rep["tokens_seen_per_epoch"]
    assert rep["loss_tokens_estimate"] == round(rep["loss_tokens_per_epoch"] * rep["epochs"])
    assert f"{rep['tokens_seen']:,} tokens seen" in console
    assert (
        f"per epoch {rep['tokens_seen_per_epoch']:,} tokens seen, {rep['loss_tokens_per_epoch']:,} loss tokens"
        in console
    )
    gen = json.loads((out / "generation_config.json").read_text())
    assert 151645 in gen["eos_token_id"]  # <|im_end|> stops generation
    tok = json.loads((out / "tokenizer_config.json").read_text())
    assert tok["eos_token"] == "<|im_end|>" and tok["pad_token"] == "<|endoftext|>"


def test_cpt_on_text_lowers_the_loss(tmp_path):
    text = write_jsonl(
        tmp_path / "text.jsonl",
        [{"text": f"Document {i}: the cat sat on the mat and the dog sat on the log."} for i in range(12)],
    )
    recipe = write_recipe(
        tmp_path / "r.yaml",
        base=[str(ROOT / "recipes/_base/cpt.yaml"), str(ROOT / "recipes/_base/lora.yaml")],
        datasets=[str(text)],
        logging_steps=1,
    )
    assert train(recipe) == 0
    curve = losses(tmp_path / "out")
    assert curve[-1] < curve[0] - 0.05, curve
    assert report(tmp_path / "out")["task"] == "cpt"


def test_resume_continues_the_step_count_and_accumulates_segments(tmp_path, chat_data):
    recipe = write_recipe(tmp_path / "r.yaml", datasets=[str(chat_data)], save_strategy="steps", save_steps=2)
    assert train(recipe, "--max_steps", "2") == 0
    assert (tmp_path / "out" / "checkpoint-2").is_dir()
    first = report(tmp_path / "out")
    assert train(recipe, "--max_steps", "4", "--resume_from_checkpoint", "true") == 0
    rep = report(tmp_path / "out")
    assert rep["steps"] == 4
    assert "segments" not in rep  # one segment list: the cost meter's
    segments = rep["cost"]["segments"]
    assert [s["steps"] for s in segments] == [2, 2]
    assert rep["wall_seconds"] == pytest.approx(sum(s["wall_seconds"] for s in segments), abs=1e-3)
    assert segments[0]["started_at"] == rep["started_at"] and segments[1]["ended_at"] == rep["ended_at"]
    assert rep["started_at"] == first["started_at"]
    assert [step for step, _ in rep["loss_curve"]] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "task", ["dpo", pytest.param("orpo", marks=pytest.mark.slow), "simpo"]
)  # ORPO: the Japanese ORPO run (test_preference_ja.py) covers it in the default run
def test_preference_tasks_lower_the_loss(tmp_path, task):
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Say {w}"}],
            "chosen": [{"role": "assistant", "content": f"{w}!"}],
            "rejected": [{"role": "assistant", "content": "no"}],
        }
        for w in ("hi", "yes", "cat", "dog")
    ]
    data = write_jsonl(tmp_path / "pref.jsonl", rows)
    recipe = write_recipe(
        tmp_path / "r.yaml",
        task=task,
        base=[str(ROOT / "recipes/_base/lora.yaml")],
        datasets=[str(data)],
        per_device_train_batch_size=4,
    )
    assert train(recipe) == 0
    curve = losses(tmp_path / "out")
    assert len(curve) == 4 and curve[-1] < curve[0], curve
    rep = report(tmp_path / "out")
    assert rep["task"] == task and rep["rows"]["used"] == 4
    assert rep["tokens_seen"] is None or rep["tokens_seen"] > 0  # never a made-up 0


def test_run_report_carries_the_cost_block(tmp_path, chat_data):
    recipe = write_recipe(tmp_path / "r.yaml", datasets=[str(chat_data)])
    assert train(recipe) == 0
    rep = report(tmp_path / "out")
    cost = rep["cost"]
    assert cost["tokens"] == rep["tokens_seen"] > 0  # the cost block keeps its own name for the same count
    if torch.cuda.is_available():
        assert cost["gpus"] == 1 and cost["gpu_hours"] == pytest.approx(cost["wall_seconds"] / 3600, abs=1e-6)
    else:
        assert cost["usd"] is None and cost["gpu_hours"] == 0  # a CPU run costs no GPU-hours
    assert cost["wall_seconds"] == pytest.approx(rep["wall_seconds"], rel=0.2)


def test_cpu_compact_loss_equals_trl_loss(tmp_path, chat_data):
    """Our CPU loss path (trained positions only) gives TRL's value, and its gradients."""
    import torch
    from trl import SFTConfig, SFTTrainer

    from qwen_recipes.data.pipeline import build_dataset
    from qwen_recipes.data.templates import training_template
    from qwen_recipes.recipe import load_recipe
    from qwen_recipes.testbed import build_tokenizer, tiny_model
    from qwen_recipes.training.trainer import sft_trainer_class

    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", datasets=[str(chat_data)]))
    tok = build_tokenizer("qwen3")
    ds, _ = build_dataset(recipe, tok, training_template("qwen3"))
    args = SFTConfig(output_dir=str(tmp_path / "o"), use_cpu=True, max_length=64, packing=True, report_to="none")
    results = []
    for cls in (SFTTrainer, sft_trainer_class()):
        model = tiny_model("qwen3", seed=3)
        trainer = cls(model=model, args=args, train_dataset=ds, processing_class=tok)
        batch = next(iter(trainer.get_train_dataloader()))
        loss = trainer.compute_loss(model, batch)
        loss.backward()
        results.append((loss.detach(), model.model.embed_tokens.weight.grad.clone()))
    (trl_loss, trl_grad), (our_loss, our_grad) = results
    assert torch.allclose(our_loss, trl_loss, atol=1e-5), (our_loss, trl_loss)
    assert torch.allclose(our_grad, trl_grad, atol=1e-6)
