"""Validation finishes at --dry-run: registry names, their options and trainer combinations, in one error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT, write_jsonl, write_recipe

from qwen_recipes.errors import UserError, user_errors
from qwen_recipes.recipe import RecipeError, load_recipe

GRPO_TINY = ROOT / "recipes/grpo/tiny-grpo-cpu.yaml"


def dry_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args, "--dry-run"], cwd=ROOT, capture_output=True, text=True
    )


def test_dry_run_rejects_a_misspelt_reward_with_a_suggestion():
    out = dry_run(str(GRPO_TINY), "--rewards", "[acuracy]")
    assert out.returncode == 2
    assert "unknown reward 'acuracy' (did you mean 'accuracy'?)" in out.stderr
    assert "Traceback" not in out.stderr
    # its options are checked by name too (and the misspelt reward's own options are reported once)
    out = dry_run(str(GRPO_TINY), "--reward_kwargs.length.max_tokenz", "8")
    assert out.returncode == 2
    assert "reward 'length' has no option 'max_tokenz' (did you mean 'max_tokens'?)" in out.stderr


def test_dry_run_rejects_a_misspelt_preprocessor_and_its_arguments(tmp_path):
    data = write_jsonl(tmp_path / "s1k.jsonl", [{"question": "q", "thinking_trajectories": ["t"], "attempt": "a"}])
    recipe = write_recipe(tmp_path / "r.yaml", datasets=[{"path": str(data), "preprocess": "s1kk"}])
    out = dry_run(str(recipe))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "datasets[0].preprocess='s1kk' (did you mean 's1k'?) is not a registered preprocessor" in out.stderr
    bad_args = {"path": str(data), "preprocess": "s1k", "preprocess_args": {"stlye": "s1", "trace": "x"}}
    with pytest.raises(RecipeError) as e:
        load_recipe(write_recipe(tmp_path / "a.yaml", datasets=[bad_args]))
    assert e.value.problems == [  # 'trace' is the trajectory column's name: any string is allowed
        f"{tmp_path / 'a.yaml'}:15: datasets[0].preprocess 's1k' has no option 'stlye' (did you mean 'style'?); "
        "its options: trace, style"
    ]
    with pytest.raises(RecipeError, match=r"option style='qwen4' \(did you mean 'qwen3'\?\) must be one of s1, qwen3"):
        load_recipe(
            write_recipe(
                tmp_path / "b.yaml",
                datasets=[{"path": str(data), "preprocess": "s1k", "preprocess_args": {"style": "qwen4"}}],
            )
        )


def test_grpo_generation_batch_must_hold_whole_groups():
    with pytest.raises(RecipeError, match=r"num_generations=3 must be at least 2 and divide the generation batch"):
        load_recipe(GRPO_TINY, {"num_generations": 3})
    assert load_recipe(GRPO_TINY, {"num_generations": 4}).get("num_generations") == 4  # 4 completions per step


def test_eval_strategy_without_eval_data_is_refused(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "user", "content": "a"}]}])
    with pytest.raises(RecipeError, match="eval_strategy='steps' needs eval_datasets"):
        load_recipe(write_recipe(tmp_path / "r.yaml", datasets=[str(data)], eval_strategy="steps"))


def test_typed_lookup_gives_recipe_value_then_our_default_then_trls(tmp_path):
    recipe = load_recipe(ROOT / "recipes/quickstart/tiny-qwen3-cpu.yaml")
    assert recipe.get("max_length") == recipe.max_length == 256  # the recipe
    assert recipe.get("dtype") == "auto" and recipe.get("lora_target_modules") == "all-linear"  # ours
    assert recipe.max_grad_norm == recipe.get("max_grad_norm") == 1.0  # TRL's SFTConfig default
    assert load_recipe(GRPO_TINY).get("packing") is None  # an SFT-only key does not apply to GRPO
    with pytest.raises(AttributeError):
        _ = recipe.no_such_key


def test_user_errors_print_without_traceback_and_bugs_keep_theirs(capsys):
    @user_errors
    def refuses() -> int:
        raise UserError("recipe.yaml:3: bad value\nfix: do this")

    @user_errors
    def crashes() -> int:
        raise ValueError("a bug inside our own code")

    assert refuses() == 2
    assert capsys.readouterr().err == "error:\n  recipe.yaml:3: bad value\n  fix: do this\n"
    with pytest.raises(ValueError, match="a bug inside our own code"):
        crashes()
