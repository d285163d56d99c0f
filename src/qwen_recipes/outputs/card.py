"""Model cards (README.md) for training outputs: Hub-valid metadata and an honest body.

`base_model` is always a hub id, never a local path (a local path makes the Hub reject the card: transformers
#33922, peft PR #2124). It comes from, in order: `--base-model-id`, the recipe's `base_model_id`,
`model_name_or_path` when it is a hub id, the adapter's `base_model_name_or_path`, then the chain of local
folders (a Hugging Face cache snapshot, our own run files, `adapter_config.json`, `config.json`).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qwen_recipes import families
from qwen_recipes.errors import UserError
from qwen_recipes.outputs.card_body import is_hub_id, render_body

CACHE_SNAPSHOT = re.compile(r"models--([^/\\]+)--([^/\\]+)[/\\]snapshots[/\\]")
# The Qwen and Qwen Research licences ask derivatives to display this line.
QWEN_LICENCE_NOTICE = "Improved using Qwen."


class CardError(UserError):
    """A card that cannot be written; the message says what is missing and how to fix it."""


@dataclass
class Run:
    """What an output folder says about itself."""

    output_dir: Path
    recipe: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    adapter: dict[str, Any] | None = None
    kind: str = "adapter"  # adapter | merged | full
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """full | lora | qlora (from the run report, else the recipe)."""
        return str(self.report.get("method") or self.recipe.get("method") or "lora")

    @property
    def task(self) -> str:
        """sft | cpt | dpo | orpo | simpo | grpo."""
        return str(self.report.get("task") or self.recipe.get("task") or "sft")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CardError(f"{path}: cannot read it as JSON ({e}); fix or delete the file") from e
    return data if isinstance(data, dict) else {}


def load_run(output_dir: str | Path) -> Run:
    """Read the run files of an output folder (recipe, report, adapter config, eval summaries)."""
    out = Path(output_dir)
    if not out.is_dir():
        raise CardError(f"{out}: no such folder; pass a training output folder")
    run = Run(out)
    if (out / "recipe.resolved.yaml").exists():
        run.recipe = yaml.safe_load((out / "recipe.resolved.yaml").read_text()) or {}
    if (out / "run_report.json").exists():
        run.report = _read_json(out / "run_report.json")
    if (out / "adapter_config.json").exists():
        run.adapter = _read_json(out / "adapter_config.json")
    elif (out / "config.json").exists():
        recorded = run.report.get("method") or run.recipe.get("method")
        run.kind = "merged" if recorded in ("lora", "qlora") else "full"  # unknown method: say no more than "full"
    else:
        raise CardError(f"{out}: neither adapter_config.json nor config.json; this is not a model output folder")
    evals = [out / "eval_results.json", *sorted(out.glob("eval/*summary*.json"))]
    run.evals = {p.relative_to(out).as_posix(): _read_json(p) for p in evals if p.exists()}
    return run


def _ids_in_folder(path: Path) -> list[str]:
    """Candidate base ids (or further paths) recorded by a local model folder."""
    found = [m.group(1) + "/" + m.group(2) for m in [CACHE_SNAPSHOT.search(str(path.resolve()) + "/")] if m]
    for name, keys in (("run_report.json", ("base_model_id", "model_name_or_path")),
                       ("adapter_config.json", ("base_model_name_or_path",)),
                       ("config.json", ("_name_or_path",))):  # fmt: skip
        if (path / name).exists():
            data = _read_json(path / name)
            found += [str(data[k]) for k in keys if data.get(k)]
    if (path / "recipe.resolved.yaml").exists():
        data = yaml.safe_load((path / "recipe.resolved.yaml").read_text()) or {}
        found += [str(data[k]) for k in ("base_model_id", "model_name_or_path") if data.get(k)]
    return found


def resolve_base_model_id(run: Run, override: str | None = None) -> tuple[str, str]:
    """The base model's hub id and where it was found; raises CardError when only local paths are known."""
    if override:
        if not is_hub_id(override):
            raise CardError(f"--base-model-id {override!r} is not a hub id like 'Qwen/Qwen3-0.6B'")
        return override, "--base-model-id"
    candidates = [
        (run.recipe.get("base_model_id"), "the recipe's base_model_id"),
        (run.report.get("base_model_id"), "the run report's base_model_id"),
        (run.recipe.get("model_name_or_path"), "the recipe's model_name_or_path"),
        (run.report.get("model_name_or_path"), "the run report's model_name_or_path"),
        ((run.adapter or {}).get("base_model_name_or_path"), "adapter_config.json base_model_name_or_path"),
    ]
    for value, source in candidates:
        if value and is_hub_id(value):
            return str(value), source
    seen: set[str] = set()
    queue = [str(v) for v, _ in candidates if v]
    while queue:  # follow local folders: base of the base, as recorded on disk
        value = queue.pop(0)
        if value in seen:
            continue
        seen.add(value)
        if is_hub_id(value):
            return value, "the local base model's own files"
        if Path(value).is_dir():
            queue += _ids_in_folder(Path(value))
    raise CardError(
        f"{run.output_dir}: cannot find the hub id of the base model; only local paths are recorded "
        f"({', '.join(sorted(seen)) or 'none'}). The Hub rejects a local path as base_model: set `base_model_id:` "
        "in the recipe to the Hub id of the checkpoint the run started from, or pass --base-model-id ORG/NAME. A "
        "tiny random test model has no such id and cannot be pushed as a real model"
    )


PEFT_PLACEHOLDER = "[More Information Needed]"  # PEFT's save_pretrained writes a model-card template full of these


def remove_foreign_cards(output_dir: str | Path) -> int:
    """Delete README.md files PEFT wrote (its placeholder card) in an output folder and its checkpoints; the count."""
    out = Path(output_dir)
    removed = 0
    for path in [out / "README.md", *sorted(out.glob("checkpoint-*/README.md"))]:
        if path.is_file() and PEFT_PLACEHOLDER in path.read_text(encoding="utf-8", errors="ignore"):
            path.unlink()
            removed += 1
    return removed


def license_for(base_id: str, override: str | None = None) -> dict[str, str]:
    """Licence metadata inherited from the base model (exact hub-id lookup), or the --license override."""
    if override:
        return {"license": override}
    return families.licence(base_id)


def dataset_ids(recipe: dict[str, Any]) -> list[str]:
    """Hub ids of the recipe's training datasets (local files are described in the body only)."""
    ids = [str(d.get("path")) for d in recipe.get("datasets") or [] if isinstance(d, dict)]
    return sorted({i for i in ids if is_hub_id(i)})


def card_metadata(run: Run, base_id: str, license_override: str | None = None) -> dict[str, Any]:
    """The card's YAML metadata as a plain dict."""
    method = run.method
    tags = ["qwen-recipes", method, run.task, "trl"]
    if method == "qlora":
        tags.insert(2, "lora")
    if run.kind == "merged":
        tags.append("merged-adapter")
    recipe_name = Path(str(run.report.get("recipe") or "")).parent.name
    if recipe_name and recipe_name not in ("recipes", ""):
        tags.append(recipe_name)  # the recipe's folder, e.g. `s1`
    meta: dict[str, Any] = {"base_model": base_id}
    meta["library_name"] = "peft" if run.kind == "adapter" else "transformers"
    meta.update(license_for(base_id, license_override))
    if ids := dataset_ids(run.recipe):
        meta["datasets"] = ids
    meta["pipeline_tag"] = "image-text-to-text" if is_vision_output(run.output_dir) else "text-generation"
    meta["tags"] = list(dict.fromkeys(tags))
    return meta


def is_vision_output(output_dir: Path) -> bool:
    """Whether an output folder holds a vision-language model (it saved its image processor with the tokenizer)."""
    from qwen_recipes.outputs.merge import PROCESSOR_FILES

    return any((Path(output_dir) / name).is_file() for name in PROCESSOR_FILES)


def check_metadata(meta: dict[str, Any]) -> list[str]:
    """Offline checks of what the Hub's YAML validator rejects or we promise; returns the problems."""
    from huggingface_hub import ModelCard, ModelCardData

    problems = []
    base = meta.get("base_model")
    if not (isinstance(base, str) and is_hub_id(base)):
        problems.append(f"base_model {base!r} must be a hub id like 'Qwen/Qwen3-0.6B', never a local path")
    if meta.get("license") == "other" and not (meta.get("license_name") and meta.get("license_link")):
        problems.append("license 'other' needs license_name and license_link")
    if meta.get("library_name") not in ("peft", "transformers"):
        problems.append(f"library_name {meta.get('library_name')!r} must be peft or transformers")
    problems += [f"datasets entry {d!r} is not a hub dataset id" for d in meta.get("datasets", []) if not is_hub_id(d)]
    if not all(isinstance(t, str) and t and " " not in t for t in meta.get("tags", [])):
        problems.append(f"tags {meta.get('tags')!r} must be non-empty strings without spaces")
    card = ModelCard.from_template(ModelCardData(**meta), template_str="---\n{{ card_data }}\n---\n")
    if ModelCard(str(card)).data.to_dict() != meta:
        problems.append("metadata does not survive a YAML round trip through huggingface_hub.ModelCard")
    return problems


def count_parameters(run: Run) -> int | None:
    """Parameters of the (base) model from safetensors headers, when its weights are on this machine."""
    from safetensors import safe_open

    folder = run.output_dir
    if run.kind == "adapter":
        local = [(run.adapter or {}).get("base_model_name_or_path"), run.recipe.get("model_name_or_path")]
        folder = next((Path(p) for p in local if p and Path(str(p)).is_dir()), None)
    files = sorted(folder.glob("*.safetensors")) if folder else []
    if not files:
        return None
    total = 0
    for path in files:
        with safe_open(str(path), "pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                shape = f.get_slice(key).get_shape()
                total += math.prod(shape)
    return total


def build_card(
    output_dir: str | Path,
    base_model_id: str | None = None,
    license: str | None = None,
    repo_id: str | None = None,
    parameters: int | None = None,
) -> Any:
    """A `huggingface_hub.ModelCard` for an output folder (metadata checked offline); `parameters` of the base
    when the caller counted them (a staged folder names its base by Hub id only)."""
    from huggingface_hub import ModelCard, ModelCardData

    run = load_run(output_dir)
    base_id, source = resolve_base_model_id(run, base_model_id)
    meta = card_metadata(run, base_id, license)
    if problems := check_metadata(meta):
        raise CardError(f"{run.output_dir}: invalid card metadata: " + "; ".join(problems))
    params = parameters if parameters is not None else count_parameters(run)
    notice = QWEN_LICENCE_NOTICE if meta.get("license_name") in ("qwen", "qwen-research") else None
    body = render_body(run, meta, base_source=source, repo_id=repo_id, parameters=params, notice=notice)
    return ModelCard(f"---\n{ModelCardData(**meta).to_yaml()}\n---\n\n{body}")


def write_model_card(
    output_dir: str | Path,
    dest: str | Path | None = None,
    base_model_id: str | None = None,
    license: str | None = None,
    repo_id: str | None = None,
    parameters: int | None = None,
) -> Path:
    """Write README.md (to `dest`, default `output_dir/README.md`) and return its path."""
    card = build_card(output_dir, base_model_id, license, repo_id, parameters)
    path = Path(dest) if dest else Path(output_dir) / "README.md"
    card.save(path)
    return path


def card_main(argv: list[str]) -> int:
    """`qwen-recipes card OUTPUT_DIR [--base-model-id ID] [--license L] [--repo-id R] [--out FILE]`."""
    parser = argparse.ArgumentParser(prog="qwen-recipes card", description="write the model card of an output folder")
    parser.add_argument("output_dir", help="training output folder (adapter, merged or full model)")
    parser.add_argument("--base-model-id", help="hub id of the base model when the run only recorded a local path")
    parser.add_argument("--license", help="licence id, when the base model is not in the known-licence table")
    parser.add_argument("--repo-id", help="hub repo the card's usage snippets load from (default: a placeholder)")
    parser.add_argument("--out", help="where to write the card (default: OUTPUT_DIR/README.md)")
    args = parser.parse_args(argv)
    try:
        path = write_model_card(args.output_dir, args.out, args.base_model_id, args.license, args.repo_id)
    except CardError as e:
        print(f"qwen-recipes card: {e}", file=sys.stderr)
        return 2
    print(f"model card written to {path}")
    return 0
