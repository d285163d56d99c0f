"""The Markdown body of a model card: training, run and cost, evals, limitations, usage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qwen_recipes.card import Run

DATA_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".txt", ".arrow", ".gz", ".zst")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(value: Any) -> bool:
    """True for `org/name` strings that are valid repo ids and not a folder on this machine."""
    if not isinstance(value, str) or not HUB_ID.match(value) or value.lower().endswith(DATA_SUFFIXES):
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return not Path(value).exists()


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{seconds:.0f} s" if minutes < 1 else f"{minutes:.1f} min" if minutes < 90 else f"{minutes / 60:.2f} h"


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows if v not in (None, "", [], {})]
    return "\n".join(lines)


HYPERPARAMETERS = (
    "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "num_train_epochs",
    "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "packing", "optim",
    "seed", "bf16", "gradient_checkpointing", "beta", "num_generations", "max_completion_length", "lora_r",
    "lora_alpha", "lora_dropout", "lora_target_modules", "lora_modules_to_save", "use_dora", "use_rslora",
)  # fmt: skip


def _training_section(run: Run) -> list[str]:
    rep, rec = run.report, run.recipe
    out = ["## Training", ""]
    recipe = rep.get("recipe") or "unknown (no run_report.json)"
    out.append(f"Recipe: `{recipe}` (resolved copy: [recipe.resolved.yaml](recipe.resolved.yaml)).")
    if rec.get("description"):
        out.append(f"{rec['description']}")
    if reported := rec.get("reported"):
        out += ["", f"It reproduces a published run: {reported.get('source', 'source not given')}.", ""]
        out.append(_table([("reported hardware", reported.get("hardware")),
                           ("reported time (min)", reported.get("wall_time_minutes")),
                           ("reported cost (USD)", reported.get("cost_usd")),
                           ("reported tokens", reported.get("tokens")), ("notes", reported.get("notes"))]))  # fmt: skip
    out += ["", "### Data", ""]
    for d in rec.get("datasets") or []:
        path = str(d.get("path", ""))
        name = (
            f"[{path}](https://huggingface.co/datasets/{path})"
            if is_hub_id(path)
            else f"local file `{Path(path).name}`"
        )
        extra = ", ".join(f"{k}={d[k]}" for k in ("name", "split", "samples", "weight", "preprocess") if d.get(k))
        out.append(f"- {name}" + (f" ({extra})" if extra else ""))
    rows = rep.get("rows") or {}
    if rows:
        skipped = ", ".join(f"{k}: {v}" for k, v in (rows.get("skipped") or {}).items()) or "none"
        out.append(f"\nRows used: {rows.get('used')}; skipped: {skipped}.")
    out += ["", "### Hyperparameters", ""]
    out.append(_table([("task / method", f"{run.task} / {run.method}")] + [(k, rec.get(k)) for k in HYPERPARAMETERS]))
    return out


def _run_section(run: Run) -> list[str]:
    rep = run.report
    if not rep:
        return ["## Run", "", "No run_report.json was found, so time, hardware and cost are unknown."]
    hw = rep.get("hardware") or {}
    count = int(hw.get("device_count") or 1)
    wall = float(rep.get("wall_seconds") or 0)
    loss = rep.get("loss") or {}
    rows: list[tuple[str, Any]] = [
        ("hardware", f"{count} x {hw.get('device_name', hw.get('device', '?'))} (world size {hw.get('world_size')})"),
        ("wall time", _duration(wall) if wall else None),
        ("GPU-hours", f"{wall * count / 3600:.3f}" if hw.get("device") == "cuda" and wall else "n/a (CPU run)"),
        ("started / ended", f"{rep.get('started_at')} / {rep.get('ended_at')}"),
        ("resume segments", len(rep.get("segments") or []) or None),
        ("tokens trained (no padding)", f"{rep['tokens_trained']:,}" if rep.get("tokens_trained") else None),
        ("steps / epochs", f"{rep.get('steps')} / {rep.get('epochs')}"),
        ("loss first / final / min", " / ".join(f"{loss[k]:.4f}" for k in ("first", "final", "min") if k in loss)),
        ("peak memory", f"{rep['peak_memory_bytes'] / 2**30:.1f} GiB" if rep.get("peak_memory_bytes") else None),
    ]
    cost = rep.get("cost")
    if isinstance(cost, dict) and cost:
        rows += [(f"cost: {k}", v) for k, v in cost.items() if not isinstance(v, (dict, list))]
    else:
        rows.append(("cost", "not recorded"))
    plot = ["", "![training loss](loss.png)"] if (run.output_dir / "loss.png").exists() else []
    return ["## Run", "", _table(rows), *plot]


def _eval_section(run: Run) -> list[str]:
    out = ["## Evaluation", ""]
    if not run.evals:
        return [*out, "No evaluation results were recorded with this run."]
    for name, data in run.evals.items():
        flat = {f"{k}.{k2}" if isinstance(v, dict) else k: v2 for k, v in data.items()
                for k2, v2 in (v.items() if isinstance(v, dict) else [(k, v)])}  # fmt: skip
        out += [
            f"From `{name}`:",
            "",
            _table([(k, v) for k, v in flat.items() if isinstance(v, (int, float, str))]),
            "",
        ]
    return out


def _limitations(run: Run, parameters: int | None) -> list[str]:
    out = ["## Limitations", ""]
    if parameters is not None and parameters < 50_000_000:
        out.append(f"- **This is a tiny test-sized model ({parameters:,} parameters), most likely randomly "
                   "initialised. Its outputs are meaningless; it exists to test the pipeline.**")  # fmt: skip
    steps, loss = run.report.get("steps"), run.report.get("loss") or {}
    if isinstance(steps, int) and steps < 20:
        out.append(f"- Trained for only {steps} optimizer steps: a smoke test, not a finished model.")
    if loss and loss.get("final", 0) >= loss.get("first", float("inf")):
        out.append("- The training loss did not go down over the run.")
    if run.adapter and run.adapter.get("modules_to_save"):
        out.append("- The adapter also stores full copies of " + ", ".join(run.adapter["modules_to_save"])
                   + "; vLLM's LoRA serving cannot load that: merge it (`qwen-recipes merge`) and serve the merge.")  # fmt: skip
    out.append("- It inherits the base model's limitations and biases and was not evaluated for safety.")
    return out


def _usage(run: Run, meta: dict[str, Any], repo_id: str | None) -> list[str]:
    repo = repo_id or "YOUR_USER/MODEL_NAME"
    cls = "AutoPeftModelForCausalLM" if run.kind == "adapter" else "AutoModelForCausalLM"
    imports = "from peft import AutoPeftModelForCausalLM\n" if run.kind == "adapter" else ""
    imports += f"from transformers import {'' if imports else 'AutoModelForCausalLM, '}AutoTokenizer"
    py = f"""```python
{imports}

model = {cls}.from_pretrained("{repo}", dtype="auto", device_map="auto")
tokenizer = AutoTokenizer.from_pretrained("{repo}")  # carries the training chat template
messages = [{{"role": "user", "content": "Hello!"}}]
inputs = tokenizer.apply_chat_template(
    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
).to(model.device)
out = model.generate(**inputs, max_new_tokens=256)
print(tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True))
```"""
    if run.kind == "adapter":
        rank = int((run.adapter or {}).get("r") or 16)
        serve = f"vllm serve {meta['base_model']} --enable-lora --lora-modules adapter={repo} --max-lora-rank {max(rank, 16)}"
        model = "adapter"
    else:
        serve, model = f"vllm serve {repo}", repo
    sh = f"""```bash
{serve}
curl http://localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\
  -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'
```"""
    return ["## Usage", "", "With transformers" + (" and peft:" if run.kind == "adapter" else ":"), "", py, "",
            "Served with vLLM" + (" (LoRA serving on the base model):" if run.kind == "adapter" else ":"), "", sh]  # fmt: skip


def render_body(run: Run, meta: dict[str, Any], base_source: str, repo_id: str | None, parameters: int | None) -> str:
    """The Markdown body of the card."""
    base = meta["base_model"]
    name = {"lora": "LoRA", "qlora": "QLoRA"}.get(run.method, run.method)
    link = f"[{base}](https://huggingface.co/{base})"
    intro = {"adapter": f"This is a {name} adapter for {link}", "full": f"This is a full fine-tune of {link}",
             "merged": f"This is {link} with a {name} adapter merged into it"}[run.kind]  # fmt: skip
    title = repo_id.split("/")[-1] if repo_id else run.output_dir.name
    lic = meta.get("license")
    lic_line = (
        f"Licence: `{lic}`" + (f" ({meta['license_name']}, {meta['license_link']})" if lic == "other" else "")
        + f", inherited from {base}." if lic else f"Licence: not known to qwen-recipes; check the card of {base}."
    )  # fmt: skip
    lines = [f"# {title}", "", f"{intro}, trained with qwen-recipes (task: {run.task}).", "",
             f"The base model id comes from {base_source}.", lic_line, ""]  # fmt: skip
    for section in (_training_section(run), _run_section(run), _eval_section(run), _limitations(run, parameters),
                    _usage(run, meta, repo_id)):  # fmt: skip
        lines += [*section, ""]
    return "\n".join(lines).rstrip() + "\n"
