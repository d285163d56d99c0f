"""rinna-style preference tuning on Japanese pairs: ORPO and SimPO (CPO loss_type=simpo) with TRL on a tiny Qwen3.

Trains with the TRL trainers directly (trl.experimental.orpo / trl.experimental.cpo, TRL 1.x), LoRA, CPU, on the
bundled Japanese preference fixture converted by the core's row converter; asserts the loss falls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen_recipes.formats import to_canonical
from qwen_recipes.testing import build_tokenizer, tiny_model

ROOT = Path(__file__).resolve().parents[1]
PREFS = ROOT / "data/samples/ja_preferences.jsonl"


def preference_dataset():
    """The Japanese fixture as conversational prompt/chosen/rejected rows (what the engine hands TRL)."""
    from datasets import Dataset

    rows = [json.loads(line) for line in PREFS.read_text(encoding="utf-8").splitlines()]
    return Dataset.from_list([to_canonical(r, "preference") for r in rows])


def train_losses(task: str, tmp_path: Path) -> list[float]:
    from peft import LoraConfig

    common = {
        "output_dir": str(tmp_path / task),
        "per_device_train_batch_size": 4,  # half the fixture per step (8 rows): 5 steps = 2.5 epochs
        "max_steps": 5,
        "learning_rate": 1e-2,  # a random tiny model needs a large rate to move in 5 steps
        "lr_scheduler_type": "constant",
        "logging_steps": 1,
        "max_length": 64,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "optim": "adamw_torch",
        "seed": 0,
    }
    lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    model, tok = tiny_model("qwen3"), build_tokenizer("qwen3")
    if task == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args = ORPOConfig(**common, beta=0.1)
        trainer = ORPOTrainer(
            model=model, args=args, train_dataset=preference_dataset(), processing_class=tok, peft_config=lora
        )
    else:
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = CPOConfig(**common, loss_type="simpo", cpo_alpha=0.0, beta=2.0, simpo_gamma=0.5)
        trainer = CPOTrainer(
            model=model, args=args, train_dataset=preference_dataset(), processing_class=tok, peft_config=lora
        )
    trainer.train()
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def test_fixture_rows_have_the_columns_of_their_formats():
    """dolly-ja style rows need instruction/input/output; llm-jp oasst style rows need conversations from/value."""
    data = ROOT / "data/samples"
    dolly = [json.loads(x) for x in (data / "ja_instructions_dolly.jsonl").read_text().splitlines()]
    assert len(dolly) >= 10 and all({"instruction", "input", "output"} <= set(r) for r in dolly)
    assert all(r["instruction"].strip() and r["output"].strip() for r in dolly)
    assert any(r["input"] for r in dolly) and any(not r["input"] for r in dolly)  # both shapes of alpaca rows
    convs = [json.loads(x) for x in (data / "ja_conversations.jsonl").read_text().splitlines()]
    assert len(convs) >= 8
    for r in convs:
        speakers = [t["from"] for t in r["conversations"]]
        assert set(speakers) <= {"system", "human", "gpt"} and speakers[-1] == "gpt"
        assert all(isinstance(t["value"], str) and t["value"].strip() for t in r["conversations"])
    prefs = [json.loads(x) for x in PREFS.read_text().splitlines()]
    assert all(set(r) == {"prompt", "chosen", "rejected"} and r["chosen"] != r["rejected"] for r in prefs)


@pytest.mark.parametrize("task", ["orpo", "simpo"])
def test_japanese_preference_training_lowers_the_loss(task, tmp_path):
    losses = train_losses(task, tmp_path)
    assert len(losses) == 5
    # Measured on CPU: ORPO 11.97 -> 11.62 (NLL + beta*odds-ratio term), SimPO 0.94 -> 0.64.
    assert losses[-1] < losses[0] - 0.1, losses
