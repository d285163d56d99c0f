"""Recipes: base: merge order, command-line overrides, validation messages, dry run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qwen_recipes.recipe import RecipeError, load_recipe, parse_overrides

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def recipes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path / "data.jsonl",
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n',
    )
    write(tmp_path / "r/_base/a.yaml", "learning_rate: 1.0e-5\nlora_r: 8\nmax_length: 100\nnum_train_epochs: 1\n")
    write(tmp_path / "r/_base/b.yaml", "learning_rate: 2.0e-5\nlora_r: 32\n")
    write(
        tmp_path / "r/x/leaf.yaml",
        """
        base: [../_base/a.yaml, ../_base/b.yaml]
        model_name_or_path: tiny:qwen3
        datasets: [../../data.jsonl]
        lora_r: 64
        """,
    )
    return tmp_path


def test_bases_merge_left_to_right_recipe_wins_cli_wins_over_all(recipes):
    r = load_recipe("r/x/leaf.yaml")
    assert r.learning_rate == 2e-5  # b over a
    assert r.lora_r == 64  # the recipe over its bases
    assert r.max_length == 100 and r.num_train_epochs == 1  # inherited from a
    r = load_recipe("r/x/leaf.yaml", parse_overrides(["--lora_r", "4", "--learning_rate=3e-4", "--strict"]))
    assert (r.lora_r, r.learning_rate, r.strict) == (4, 3e-4, True)
    assert r.origin["lora_r"] == "command line"
    assert r.origin["max_length"].endswith("a.yaml:3")


def test_yaml_string_floats_are_coerced(recipes):
    write(recipes / "r/f.yaml", "base: x/leaf.yaml\nlearning_rate: 1e-5\n")  # PyYAML reads 1e-5 as a string
    assert load_recipe("r/f.yaml").learning_rate == 1e-5


def test_datasets_paths_resolve_relative_to_the_recipe(recipes):
    spec = load_recipe("r/x/leaf.yaml").datasets_specs()[0]
    assert Path(spec.path) == recipes / "data.jsonl"


def test_every_problem_is_reported_once_with_file_line_and_suggestion(recipes):
    write(
        recipes / "r/bad.yaml",
        """
        base: x/leaf.yaml
        learning_rat: 1.0e-4
        max_length: -1
        per_device_train_batch_size: two
        method: qlora2
        warmup_ratio: 0.1
        load_in_4bit: true
        """,
    )
    with pytest.raises(RecipeError) as e:
        load_recipe("r/bad.yaml")
    problems = e.value.problems
    assert "r/bad.yaml:2: unknown key 'learning_rat' (did you mean 'learning_rate'?)" in problems
    assert "r/bad.yaml:3: max_length=-1 must be a positive integer" in problems
    assert any(
        p.startswith("r/bad.yaml:4: per_device_train_batch_size='two'") and "expected int" in p for p in problems
    )
    assert "r/bad.yaml:5: method='qlora2' must be one of full, lora, qlora" in problems
    assert any("warmup_ratio" in p and "warmup_steps" in p for p in problems)
    assert any("'load_in_4bit' is set by method" in p and "method: qlora" in p for p in problems)
    assert len(problems) == 6


def test_unknown_dataset_keys_and_formats(recipes):
    write(recipes / "r/d.yaml", "base: x/leaf.yaml\ndatasets: [{path: a.jsonl, splitt: train, format: weird}]\n")
    with pytest.raises(RecipeError) as e:
        load_recipe("r/d.yaml")
    assert any("unknown key datasets[0].splitt (did you mean 'split'?)" in p for p in e.value.problems)
    assert any("datasets[0].format='weird' must be one of" in p for p in e.value.problems)


def test_yaml_syntax_error_names_file_line_column(recipes):
    write(recipes / "r/syntax.yaml", "model_name_or_path: x\ndatasets: [a, b\nlora_r: 8\n")
    with pytest.raises(RecipeError, match=r"r/syntax.yaml:3:\d+: YAML syntax error"):
        load_recipe("r/syntax.yaml")


def test_missing_base_names_the_recipe_that_referenced_it(recipes):
    write(recipes / "r/m.yaml", "model_name_or_path: x\nbase: nowhere.yaml\n")
    with pytest.raises(RecipeError, match=r"nowhere.yaml: recipe file not found \(referenced by r/m.yaml:2\)"):
        load_recipe("r/m.yaml")


def test_base_cycle_is_an_error(recipes):
    write(recipes / "r/c1.yaml", "base: c2.yaml\n")
    write(recipes / "r/c2.yaml", "base: c1.yaml\n")
    with pytest.raises(RecipeError, match="inherits from itself"):
        load_recipe("r/c1.yaml")


def test_liger_with_assistant_only_loss_is_refused(recipes):
    with pytest.raises(RecipeError, match="trl#3781"):
        load_recipe("r/x/leaf.yaml", {"use_liger_kernel": True, "assistant_only_loss": True})


def test_every_shipped_recipe_validates():
    recipes = [p for p in (ROOT / "recipes").rglob("*.yaml") if "_base" not in p.parts]
    assert recipes, "no recipes shipped"
    problems = {}
    for path in recipes:
        try:
            load_recipe(path)
        except RecipeError as e:
            problems[str(path.relative_to(ROOT))] = e.problems
    assert problems == {}


def run_train(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, capture_output=True, text=True)


def test_cli_user_error_exits_nonzero_without_traceback(recipes):
    write(recipes / "r/typo.yaml", "base: x/leaf.yaml\nlearning_rat: 1\n")
    out = run_train("r/typo.yaml", "--dry-run", cwd=recipes)
    assert out.returncode == 2
    assert "unknown key 'learning_rat'" in out.stderr and "did you mean 'learning_rate'" in out.stderr
    assert "Traceback" not in out.stderr


def test_dry_run_is_fast_loads_no_weights_and_prints_the_plan(recipes):
    code = (
        "import sys, runpy; sys.argv=['train.py','r/x/leaf.yaml','--dry-run','--max_steps','7'];"
        f"ns = runpy.run_path({str(ROOT / 'train.py')!r}, run_name='x'); rc = ns['main']();"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'trl', 'datasets') if m in sys.modules];"
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=recipes, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout  # nothing heavy imported, so no weights can have been loaded
    assert "max_steps: 7" in out.stdout and "optimizer steps: 7" in out.stdout
    assert "rows used: 1" in out.stdout and "datasets[0] data.jsonl: 1 rows read, 1 usable, 0 skipped" in out.stdout
    assert elapsed < 3.0


def test_qwen_recipes_train_is_train_py(recipes):
    out = subprocess.run(
        [sys.executable, "-m", "qwen_recipes.cli", "train", "r/x/leaf.yaml", "--dry-run"],
        cwd=recipes,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "# plan (dry run: no weights loaded)" in out.stdout
    out = subprocess.run([sys.executable, "-m", "qwen_recipes.cli", "trian"], capture_output=True, text=True)
    assert out.returncode == 2 and "did you mean 'train'" in out.stderr


def test_key_reference_doc_is_up_to_date():
    from keyref import DOC, render

    assert DOC.read_text(encoding="utf-8") == render(), "run: python tools/keyref.py"


def test_trl_snapshot_matches_the_installed_trl():
    pytest.importorskip("trl")
    from trl_snapshot import generate

    from qwen_recipes.recipe.trl_fields import trl_fields

    live = generate()["classes"]
    assert {c: sorted(f) for c, f in live.items()} == {c: sorted(f) for c, f in trl_fields().items()}
    assert {c: {k: v["type"] for k, v in f.items()} for c, f in live.items()} == {
        c: {k: v["type"] for k, v in f.items()} for c, f in trl_fields().items()
    }


def test_a_hub_token_is_refused_and_never_echoed(recipes):
    secret = "hf_abcdefghijklmnopqrstuvwxyz0123"
    with pytest.raises(RecipeError) as e:
        load_recipe("r/x/leaf.yaml", parse_overrides(["--hub_token", secret]))
    assert "HF_TOKEN" in str(e.value) and secret not in str(e.value)
