"""GRPO through TRL's GRPOTrainer on a tiny Qwen on CPU: rewards are logged, LoRA weights move; recipe errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qwen_recipes.data.prepare.grpo import gsm8k_row
from qwen_recipes.recipe import RecipeError, load_recipe
from qwen_recipes.testbed import build_tokenizer, tiny_model
from qwen_recipes.training.grpo import make_grpo_trainer, reward_functions
from qwen_recipes.training.rewards import REWARDS, completion_text

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "recipes/grpo/tiny-grpo-cpu.yaml"
GRPO_RECIPES = sorted((ROOT / "recipes/grpo").glob("*.yaml"))


def distinct_chars(completions, **kwargs):
    """Test-only reward that differs between random completions, so GRPO advantages (and gradients) are non-zero."""
    return [float(len(set(completion_text(c)))) for c in completions]


def test_two_grpo_steps_log_rewards_and_update_only_lora(tmp_path, monkeypatch):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig

    # A random model earns identical real rewards on every completion (zero advantage, zero gradient), so one
    # reward that varies is registered for the test; the real ones are checked for their exact values.
    monkeypatch.setitem(REWARDS, "distinct_chars", distinct_chars)
    recipe = load_recipe(
        TINY,
        {
            "rewards": ["accuracy", "length", "distinct_chars"],
            "reward_kwargs": {"length": {"max_tokens": 8, "buffer_tokens": 4}},
        },
    )
    rows = [gsm8k_row(json.loads(line)) for line in (ROOT / "data/samples/gsm8k_tiny.jsonl").read_text().splitlines()]
    dataset = Dataset.from_list(rows[:4])
    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,  # completions: 1 prompt x 2 generations per step
        num_generations=2,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        report_to="none",
        optim="adamw_torch",
        bf16=False,
        seed=0,
        eval_strategy="steps",  # GRPO honours eval_datasets: scored at step 2
        eval_steps=2,
        per_device_eval_batch_size=2,
    )
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    eval_dataset = Dataset.from_list(rows[4:5])
    trainer = make_grpo_trainer(
        recipe, tiny_model("qwen3"), build_tokenizer("qwen3"), dataset, lora, args, eval_dataset=eval_dataset
    )
    params = dict(trainer.model.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    assert any("lora_B" in n for n in before) and all(p.abs().sum() == 0 for n, p in before.items() if "lora_B" in n)

    trainer.train()

    logs = [h for h in trainer.state.log_history if "rewards/accuracy/mean" in h]
    assert len(logs) == 2
    evals = [h for h in trainer.state.log_history if "eval_rewards/length/mean" in h]
    assert [h["step"] for h in evals] == [2] and evals[0]["eval_rewards/length/mean"] == -1.0
    for h in logs:
        assert h["rewards/accuracy/mean"] == 0.0  # random tokens never box the gold answer
        assert h["rewards/length/mean"] == -1.0  # every completion hits the 8-token cap: (4 - 8) / 4
        assert h["rewards/distinct_chars/std"] > 0
        assert h["completions/mean_length"] == 8.0
    after = dict(trainer.model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    lora_b = {n for n in before if "lora_B" in n}
    assert lora_b and lora_b <= changed  # every LoRA B matrix moved off its zero init
    assert all("lora_" in n for n in changed)  # the base weights stayed frozen


def test_reward_problems_are_collected_into_one_recipe_error():
    """Names and options fail when the recipe loads (before any weight); dataset columns when the data is known."""
    bad = {"rewards": ["acuracy", "countdown"], "reward_kwargs": {"countdown": {"targets": 1}, "length": {}}}
    with pytest.raises(RecipeError) as e:
        load_recipe(TINY, bad)
    text = "\n".join(e.value.problems)
    assert "reward_kwargs.length names a reward that is not in rewards" in text
    assert (
        "unknown reward 'acuracy' (did you mean 'accuracy'?); known rewards: accuracy, choice, countdown, length, "
        "s1_format, think_format" in text
    )
    assert "reward 'countdown' has no option 'targets' (did you mean 'target'?)" not in text  # a column, not an option
    assert "reward 'countdown' has no option 'targets'; its options: format_score, use_all, max_chars" in text
    assert len(e.value.problems) == 3
    with pytest.raises(RecipeError, match="reads the dataset column 'nums'"):
        reward_functions(load_recipe(TINY, {"rewards": ["countdown", "length"]}), ["prompt", "target"])
    with pytest.raises(RecipeError, match="task grpo needs 'rewards'"):
        load_recipe(TINY, {"rewards": [], "reward_kwargs": {}})
    funcs = reward_functions(recipe_ok := load_recipe(TINY), ["prompt", "answer"])
    assert [f.__name__ for f in funcs] == recipe_ok.rewards == ["accuracy", "think_format", "length"]
    assert funcs[2].kwargs == {"max_tokens": 16, "buffer_tokens": 8}


@pytest.mark.parametrize("path", GRPO_RECIPES, ids=lambda p: p.name)
def test_grpo_recipes_validate_with_dry_run(path):
    # Online mode: a dry run contacts nothing, and offline it refuses a Hub model that is not cached (test_plan.py).
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), str(path), "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    recipe = load_recipe(path)
    assert recipe.task == "grpo" and recipe.rewards
    assert all(name in REWARDS for name in recipe.rewards)
    assert set(recipe.reward_kwargs) <= set(recipe.rewards)
    reward_functions(recipe)  # every option is known to its reward
    generations = recipe.values.get("num_generations", 8)
    assert recipe.values["per_device_train_batch_size"] % generations == 0  # TRL's requirement


@pytest.mark.slow
def test_tiny_grpo_recipe_trains_end_to_end(tmp_path):
    env = {**os.environ, "QWEN_RECIPES_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "train.py", str(TINY), "--output_dir", str(tmp_path / "run")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "run_report.json").read_text())
    assert report["task"] == "grpo" and report["steps"] == 2 and report["rows"]["used"] == 8
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()
    assert "data: 8/8 rows used, 0 skipped" in out.stdout
