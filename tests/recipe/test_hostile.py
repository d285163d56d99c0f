"""Malformed and hostile recipes: each is refused at load (so at --dry-run) with a named error, quickly, no traceback."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from qwen_recipes.recipe import RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[2]
HEAD = "model_name_or_path: tiny:qwen3\ndatasets: [data.jsonl]\n"
TOKEN = "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3f"  # the shape of a Hub token (fake)
BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    + "model_name_or_path: *i\n"
)

# (id, file contents, text the single named error must contain)
CASES = [
    ("key-yes", HEAD + "yes: 1\n", "key 'yes' is read by YAML as bool, not a string"),
    ("key-int", HEAD + "1: x\n", "key '1' is read by YAML as int"),
    ("key-null", HEAD + "null: x\n", "is read by YAML as null"),
    ("task-list", HEAD + "task: [sft]\n", "task=['sft'] is not one of sft, cpt"),
    ("base-int", HEAD + "base: 123\n", "base=123 must be a recipe file name or a list of them"),
    ("base-nul", HEAD + 'base: "a\\0b.yaml"\n', ":3: a value holds a NUL byte"),
    ("latin-1", (HEAD + "description: café\n").encode("latin-1"), "line 3: byte 0xe9 is not valid UTF-8"),
    ("utf-16", (HEAD + "lora_r: 8\n").encode("utf-16"), "the file is UTF-16-encoded; save it as UTF-8"),
    ("utf-16-no-bom", (HEAD + "lora_r: 8\n").encode("utf-16-le"), "holds a NUL byte (is the file UTF-16"),
    (
        "nest-5000",
        HEAD + "model_init_kwargs: " + "[" * 5000 + "]" * 5000 + "\n",
        "nesting",
    ),  # libyaml's own limit or ours
    ("nest-block", HEAD + "".join(" " * i + "k:\n" for i in range(200)), "nesting deeper than 64 levels"),
    ("anchor-bomb", BOMB, "YAML aliases expand this value to more than 100,000 nodes"),
    ("alias-loop", HEAD + "model_init_kwargs: &x [*x]\n", "a YAML alias refers to itself"),
    ("10mb-unknown-keys", HEAD + "".join(f"k{i}: {i}\n" for i in range(1_000_000)), "a recipe is at most 262,144"),
    ("10mb-list", HEAD + "lora_target_modules: [" + "q, " * 3_500_000 + "]\n", "a recipe is at most 262,144"),
    ("200kb-unknown-keys", HEAD + "".join(f"key_{i}: {i}\n" for i in range(15_000)), "more unknown keys"),
    ("optim", HEAD + "optim: adamw_torch_fusd\n", "optim='adamw_torch_fusd' (did you mean 'adamw_torch_fused'?)"),
    ("scheduler", HEAD + "lr_scheduler_type: cosin\n", "lr_scheduler_type='cosin' (did you mean 'cosine'?)"),
    ("save-strategy", HEAD + "save_strategy: step\n", "save_strategy='step' (did you mean 'steps'?)"),
    ("report-to", HEAD + "report_to: [wandbb]\n", "report_to='wandbb' (did you mean 'wandb'?)"),
    ("packing", HEAD + "packing_strategy: bfd_splitt\n", "packing_strategy='bfd_splitt' (did you mean 'bfd_split'?)"),
    ("dtype", HEAD + "dtype: bf16\n", "dtype='bf16' (did you mean 'bfloat16'?)"),
    ("attention", HEAD + "attn_implementation: sdpaa\n", "attn_implementation='sdpaa' (did you mean 'sdpa'?)"),
    ("lr-nan", HEAD + "learning_rate: .nan\n", "learning_rate=nan is not a finite number"),
    ("lr-inf", HEAD + "learning_rate: .inf\n", "learning_rate=inf is not a finite number"),
    ("warmup", HEAD + "warmup_steps: -3\n", "warmup_steps=-3.0 must be 0 or more"),
    ("epochs", HEAD + "num_train_epochs: -1\n", "num_train_epochs=-1.0 must be positive (or set max_steps)"),
    ("save-steps", HEAD + "save_steps: 0\n", "save_steps=0.0 must be positive with save_strategy: steps"),
    ("output-file", HEAD + "output_dir: data.jsonl\n", "output_dir='data.jsonl' is a file; name a folder"),
    ("nested-modules", HEAD + "lora_target_modules: [[q_proj], v_proj]\n", "must be a module name or a flat list"),
    ("duplicate-key", HEAD + "lora_r: 8\nlora_r: 16\n", "key 'lora_r' appears twice in one mapping (lines 3 and 4)"),
    ("nested-token", HEAD + f"model_init_kwargs: {{token: {TOKEN}}}\n", "model_init_kwargs.token is refused"),
    ("token-value", HEAD + f"description: see {TOKEN}\n", "description holds what looks like a Hugging Face token"),
    ("deep-token", HEAD + f"reward_kwargs: {{a: [{{x: {TOKEN}}}]}}\n", "reward_kwargs.a[0].x holds what looks like"),
    ("remote-code", HEAD + "trust_remote_code: true\n", "trust_remote_code: true is refused"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    (root / "data.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    )
    return root


@pytest.mark.parametrize("name,contents,expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_recipe_is_refused_quickly_with_a_named_bounded_error(folder, monkeypatch, name, contents, expected):
    monkeypatch.chdir(folder)
    path = folder / f"{name}.yaml"
    path.write_bytes(contents if isinstance(contents, bytes) else contents.encode("utf-8"))
    t0 = time.perf_counter()
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    elapsed = time.perf_counter() - t0
    message = str(e.value)
    assert expected in message, message[:2000]
    assert f"{name}.yaml" in message  # every problem names the file (and line where there is one)
    assert TOKEN not in message  # a secret is never echoed
    assert len(message) < 30_000 and all(len(p) <= 500 for p in e.value.problems)
    assert elapsed < 2.0, f"{name}: {elapsed:.2f} s"


def test_a_valid_recipe_next_to_them_still_loads(folder, monkeypatch):
    monkeypatch.chdir(folder)
    ok = folder / "ok.yaml"
    ok.write_text(
        HEAD + "optim: adamw_torch\nreport_to: [none]\ndtype: bfloat16\nattn_implementation: kernels-community/x\n"
        "model_init_kwargs: {token: true, revision: main}\nwarmup_steps: 0.1\nsave_steps: 0.5\n"
        "reward_kwargs: &opts {}\nlr_scheduler_kwargs: *opts\n"
    )
    recipe = load_recipe(ok)
    assert recipe.get("optim") == "adamw_torch" and recipe.get("attn_implementation") == "kernels-community/x"
    assert recipe.get("trust_remote_code") is False  # off unless set, and `true` is refused (remote-code case)


@pytest.mark.parametrize("name", ["anchor-bomb", "nest-5000"])
def test_train_dry_run_refuses_without_traceback(folder, name):
    contents = dict((c[0], c[1]) for c in CASES)[name]
    path = folder / f"cli-{name}.yaml"
    path.write_text(contents)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), str(path), "--dry-run"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "recipe error:" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr) < 5_000  # the expanded value is never printed
    assert time.perf_counter() - t0 < 20


def test_known_value_sets_match_the_installed_trl_and_transformers():
    pytest.importorskip("trl")
    from trl_snapshot import generate_choices

    from qwen_recipes.recipe.trl_fields import trl_choices

    assert generate_choices() == trl_choices(), "run: python tools/trl_snapshot.py"
    assert {"optim", "lr_scheduler_type", "save_strategy", "report_to", "packing_strategy", "dtype"} <= set(
        trl_choices()
    )
