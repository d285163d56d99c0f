"""Recipe data paths, nested-entry errors and indexed overrides (issue 17 #1, #12, #13; issue 16 #5)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers import ROOT, chat_rows, train, write_jsonl

from qwen_recipes.recipe import RecipeError, load_recipe, parse_overrides

BASES = f"[{ROOT / 'recipes/_base/sft.yaml'}, {ROOT / 'recipes/_base/lora.yaml'}]"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A recipe in recipes/, run from a different current directory that holds data of the same names."""
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "zzz.jsonl", chat_rows(4))  # in the cwd only
    write_jsonl(tmp_path / "recipes" / "here.jsonl", chat_rows(4))  # next to the recipe
    return tmp_path


def recipe_text(datasets: str) -> str:
    return f"base: {BASES}\nmodel_name_or_path: tiny:qwen3\nmax_steps: 1\ndatasets:\n{datasets}"


def test_a_relative_data_path_is_read_from_the_recipe_folder_never_the_cwd(workdir, capsys):
    recipe = write(workdir / "recipes" / "r.yaml", recipe_text("  - path: zzz.jsonl\n  - path: also/missing.csv\n"))
    for args in (["--dry-run"], []):  # the plan and the run both refuse, before anything trains
        assert train(recipe, *args) == 2
        err = capsys.readouterr().err
        assert "data error" in err and "Traceback" not in err
        # The resolved path, the recipe file and line, and every missing path at once.
        assert (
            f"recipes/r.yaml:5: datasets[0].path='zzz.jsonl': no such file or folder: {workdir}/recipes/zzz.jsonl"
            in err
        )
        assert "recipes/r.yaml:6: datasets[1].path='also/missing.csv': no such file or folder: " in err
        assert f"{workdir}/recipes/also/missing.csv" in err and "read from the recipe's folder" in err
    assert not (workdir / "outputs").exists()  # nothing trained on ./zzz.jsonl
    # Loading alone is fine: data an earlier step writes may not exist yet; the plan and the run check it.
    assert len(load_recipe(recipe).data_problems) == 2


def test_paths_next_to_the_recipe_and_on_the_command_line(workdir):
    recipe = write(workdir / "recipes" / "r.yaml", recipe_text("  - here.jsonl\n"))
    assert load_recipe(recipe).datasets_specs()[0].path == str(workdir / "recipes" / "here.jsonl")
    # Typed on the command line, a path is relative to where it was typed.
    cli = load_recipe(recipe, parse_overrides(["--datasets", "[zzz.jsonl]"]))
    assert cli.datasets_specs()[0].path == str(workdir / "zzz.jsonl") and not cli.data_problems


def test_a_hub_like_name_that_exists_only_in_the_cwd_is_an_error(workdir):
    write_jsonl(workdir / "org" / "corpus" / "train.jsonl", chat_rows(2))
    recipe = write(workdir / "recipes" / "r.yaml", recipe_text("  - path: org/corpus\n"))
    (problem,) = load_recipe(recipe).data_problems
    assert problem.startswith("recipes/r.yaml:5: datasets[0].path='org/corpus' is not next to the recipe")
    assert f"exists in the current directory ({workdir}/org/corpus)" in problem and "'../org/corpus'" in problem
    # Nowhere on disk, it is a Hub id, loaded from the Hub when the run starts.
    (workdir / "org" / "corpus" / "train.jsonl").unlink()
    (workdir / "org" / "corpus").rmdir()
    assert load_recipe(recipe).data_problems == []


def test_nested_errors_point_at_the_entry_line_sorted_with_did_you_mean(workdir):
    recipe = write(
        workdir / "recipes" / "bad.yaml",
        f"""
        base: {BASES}
        model_name_or_path: tiny:qwen3
        datasets:
          - path: here.jsonl
            format: alpacca
          - null
          - path: here.jsonl
            splitt: train
            samples: -5
          - path: here.jsonl
            weight: 0
        learning_rat: 1.0e-4
        """,
    )
    with pytest.raises(RecipeError) as e:
        load_recipe(recipe)
    assert e.value.problems == [
        "recipes/bad.yaml:5: datasets[0].format='alpacca' (did you mean 'alpaca'?) must be one of auto, messages, "
        "text, alpaca, sharegpt, prompt_completion, preference, prompt",
        "recipes/bad.yaml:6: datasets[1] is empty; each entry is a path or a mapping with 'path', e.g. "
        "'- path: data/train.jsonl'",
        "recipes/bad.yaml:8: unknown key datasets[2].splitt (did you mean 'split'?)",
        "recipes/bad.yaml:9: datasets[2].samples=-5 must be a positive number of rows",
        "recipes/bad.yaml:11: datasets[3].weight=0.0 must be a positive finite number (0.5 keeps half the rows, 2.0 "
        "repeats them twice); remove the entry to leave the source out",
        "recipes/bad.yaml:12: unknown key 'learning_rat' (did you mean 'learning_rate'?)",
    ]  # by line; no "'datasets' is required" for a list that has entries


def test_datasets_null_alone_is_named(workdir):
    recipe = write(workdir / "recipes" / "n.yaml", f"base: {BASES}\nmodel_name_or_path: tiny:qwen3\ndatasets: [null]\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(recipe)
    assert e.value.problems == [
        "recipes/n.yaml:3: datasets[0] is empty; each entry is a path or a mapping with 'path', e.g. "
        "'- path: data/train.jsonl'"
    ]


def test_indexed_overrides_edit_one_entry(workdir):
    recipe = write(workdir / "recipes" / "r.yaml", recipe_text("  - here.jsonl\n  - path: here.jsonl\n    weight: 2\n"))
    r = load_recipe(recipe, parse_overrides(["--datasets.1.weight", "3", "--datasets[0].format", "messages"]))
    specs = r.datasets_specs()
    assert len(specs) == 2 and specs[1].weight == 3 and specs[0].format == "messages"  # the list is kept
    assert r.origin["datasets[1].weight"] == "command line" and r.origin["datasets"] == "recipes/r.yaml:4"
    with pytest.raises(RecipeError) as e:  # a problem in an overridden field points at the command line
        load_recipe(recipe, parse_overrides(["--datasets.1.weight", "-1", "--datasets.0.samples", "2"]))
    assert e.value.problems[0].startswith("command line: datasets[1].weight=-1.0 must be a positive finite number")
    with pytest.raises(RecipeError) as e:
        load_recipe(recipe, parse_overrides(["--datasets.2.samples", "5"]))
    assert e.value.problems == [
        "command line: --datasets.2...: datasets has 2 entries, numbered 0 to 1 (e.g. --datasets.0.samples 100)"
    ]
