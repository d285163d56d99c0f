"""The Markdown body of a model card: training, run and cost, evals, limitations, usage (`card.md.jinja`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qwen_recipes.outputs.card import Run

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


def _rows(rows: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in rows if v not in (None, "", [], {})]


HYPERPARAMETERS = (
    "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "num_train_epochs",
    "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "packing", "optim",
    "seed", "bf16", "gradient_checkpointing", "beta", "num_generations", "max_completion_length", "lora_r",
    "lora_alpha", "lora_dropout", "lora_target_modules", "lora_modules_to_save", "use_dora", "use_rslora",
)  # fmt: skip


def _training(run: Run) -> dict[str, Any]:
    rep, rec = run.report, run.recipe
    reported = rec.get("reported") or {}
    datasets = []
    for d in rec.get("datasets") or []:
        path = str(d.get("path", ""))
        name = (
            f"[{path}](https://huggingface.co/datasets/{path})"
            if is_hub_id(path)
            else f"local file `{Path(path).name}`"
        )
        extra = ", ".join(f"{k}={d[k]}" for k in ("name", "split", "samples", "weight", "preprocess") if d.get(k))
        datasets.append(name + (f" ({extra})" if extra else ""))
    rows = rep.get("rows") or {}
    skipped = ", ".join(f"{k}: {v}" for k, v in (rows.get("skipped") or {}).items()) or "none"
    return {
        "recipe": rep.get("recipe") or "unknown (no run_report.json)",
        "description": rec.get("description"),
        "reported_source": reported.get("source", "source not given"),
        "reported": _rows(
            [
                ("reported hardware", reported.get("hardware")),
                ("reported time (min)", reported.get("wall_time_minutes")),
                ("reported cost (USD)", reported.get("cost_usd")),
                ("reported tokens", reported.get("tokens")),
                ("notes", reported.get("notes")),
            ]
        ),
        "datasets": datasets,
        "rows_line": f"Rows used: {rows.get('used')}; skipped: {skipped}." if rows else None,
        "hyperparameters": _rows(
            [("task / method", f"{run.task} / {run.method}")] + [(k, rec.get(k)) for k in HYPERPARAMETERS]
        ),
    }


def gpu_hours(report: dict[str, Any]) -> float | None:
    """GPU-hours of a run: the cost block's (the meter's world-size count), else wall time x GPUs of the run."""
    cost = report.get("cost")
    if isinstance(cost, dict) and cost.get("gpu_hours") is not None:
        return float(cost["gpu_hours"])
    hw = report.get("hardware") or {}
    wall = float(report.get("wall_seconds") or 0)
    return wall * int(hw.get("device_count") or 1) / 3600 if hw.get("device") == "cuda" and wall else None


COST_ALIASES = {"tokens": "tokens seen"}


def _count(n: Any) -> str | None:
    return f"{n:,}" if isinstance(n, int) and n else None


def _run_rows(run: Run) -> list[tuple[str, Any]]:
    rep = run.report
    if not rep:
        return []
    hw = rep.get("hardware") or {}
    count = int(hw.get("device_count") or 1)
    wall = float(rep.get("wall_seconds") or 0)
    loss = rep.get("loss") or {}
    hours = gpu_hours(rep)
    cost = rep.get("cost")
    segments = (cost or {}).get("segments") if isinstance(cost, dict) else None
    rows: list[tuple[str, Any]] = [
        ("hardware", f"{count} x {hw.get('device_name', hw.get('device', '?'))} (world size {hw.get('world_size')})"),
        ("wall time", _duration(wall) if wall else None),
        ("GPU-hours", f"{hours:.3f}" if hw.get("device") == "cuda" and hours is not None else "n/a (CPU run)"),
        ("started / ended", f"{rep.get('started_at')} / {rep.get('ended_at')}"),
        ("resume segments", len(segments or rep.get("segments") or []) or None),
        (
            "tokens seen (all epochs, prompts included, no padding)",
            _count(rep.get("tokens_seen", rep.get("tokens_trained"))),
        ),
        ("tokens seen per epoch", _count(rep.get("tokens_seen_per_epoch"))),
        ("loss tokens per epoch", _count(rep.get("loss_tokens_per_epoch"))),
        ("loss tokens, all epochs (estimate)", _count(rep.get("loss_tokens_estimate"))),
        ("steps / epochs", f"{rep.get('steps')} / {rep.get('epochs')}"),
        ("loss first / final / min", " / ".join(f"{loss[k]:.4f}" for k in ("first", "final", "min") if k in loss)),
        ("peak memory", f"{rep['peak_memory_bytes'] / 2**30:.1f} GiB" if rep.get("peak_memory_bytes") else None),
    ]
    if isinstance(cost, dict) and cost:
        from qwen_recipes.cost.versus import predicted_rows

        # The cost block's `tokens` is the same count as "tokens seen"; named so here too.
        rows += [(f"cost: {COST_ALIASES.get(k, k)}", v) for k, v in cost.items() if not isinstance(v, (dict, list))]
        rows += predicted_rows(cost)  # measured beside what `qwen-recipes estimate` predicts, with the ratio
    else:
        rows.append(("cost", "not recorded"))
    return _rows(rows)


def _evals(run: Run) -> list[tuple[str, list[tuple[str, Any]]]]:
    out = []
    for name, data in run.evals.items():
        flat = {f"{k}.{k2}" if isinstance(v, dict) else k: v2 for k, v in data.items()
                for k2, v2 in (v.items() if isinstance(v, dict) else [(k, v)])}  # fmt: skip
        out.append((name, _rows([(k, v) for k, v in flat.items() if isinstance(v, (int, float, str))])))
    return out


def gguf_lora_blockers(adapter: dict[str, Any] | None) -> list[str]:
    """Why llama.cpp's convert_lora_to_gguf.py cannot convert this adapter ([] when it can, or for no adapter).

    That script keeps only lora_A/lora_B tensors: full module copies, DoRA magnitudes and trainable-token deltas
    stop it, and a LoRA on lm_head stops it when the base ties lm_head to the embeddings (llama.cpp #9065).
    """
    if not adapter:
        return []
    out = []
    if saved := adapter.get("modules_to_save"):
        out.append(f"it stores full copies of {', '.join(saved)} (modules_to_save)")
    if adapter.get("use_dora"):
        out.append("it is a DoRA adapter (magnitude vectors)")
    if adapter.get("trainable_token_indices"):
        out.append("it trains token embeddings (trainable_token_indices)")
    targets = adapter.get("target_modules") or []
    if "lm_head" in (targets if isinstance(targets, list) else [targets]):
        out.append("it has a LoRA on lm_head, which llama.cpp drops on bases with tied embeddings")
    return out


def gguf_note(adapter: dict[str, Any] | None) -> str | None:
    """One sentence on GGUF export when the adapter cannot be converted as an adapter, else None."""
    if not (blockers := gguf_lora_blockers(adapter)):
        return None
    return (
        f"llama.cpp's convert_lora_to_gguf.py cannot convert this adapter: {'; '.join(blockers)}. For GGUF, merge it "
        "(`qwen-recipes merge`) and convert the merged model with convert_hf_to_gguf.py."
    )


def _limitations(run: Run, parameters: int | None) -> list[str]:
    out = []
    if parameters is not None and parameters < 50_000_000:
        out.append(f"**This is a tiny test-sized model ({parameters:,} parameters), most likely randomly "
                   "initialised. Its outputs are meaningless; it exists to test the pipeline.**")  # fmt: skip
    steps, loss = run.report.get("steps"), run.report.get("loss") or {}
    if isinstance(steps, int) and steps < 20:
        out.append(f"Trained for only {steps} optimizer steps: a smoke test, not a finished model.")
    if loss and loss.get("final", 0) >= loss.get("first", float("inf")):
        out.append("The training loss did not go down over the run.")
    if run.adapter and run.adapter.get("modules_to_save"):
        out.append("The adapter also stores full copies of " + ", ".join(run.adapter["modules_to_save"])
                   + "; vLLM's LoRA serving cannot load that: merge it (`qwen-recipes merge`) and serve the merge.")  # fmt: skip
    if note := gguf_note(run.adapter):
        out.append(note)
    if run.adapter and run.adapter.get("target_parameters"):  # expert LoRA: say which serving paths load it
        from qwen_recipes import families

        base = run.report.get("base_model_id") or run.recipe.get("base_model_id")
        family = families.for_checkpoint(str(base)) if base else None
        out.append(
            family.adapter_serving
            if family and family.adapter_serving
            else "This adapter trains fused MoE expert weights (PEFT target_parameters), which not every serving "
            "stack loads: check yours, or merge it (`qwen-recipes merge`) and serve the merged model."
        )
    out.append("It inherits the base model's limitations and biases and was not evaluated for safety.")
    return out


def _vision_python(repo: str, base: str, adapter: bool) -> str:
    load = (f'model = AutoModelForImageTextToText.from_pretrained("{base}", dtype="auto", device_map="auto")\n'
            f'model = PeftModel.from_pretrained(model, "{repo}")' if adapter else
            f'model = AutoModelForImageTextToText.from_pretrained("{repo}", dtype="auto", device_map="auto")')  # fmt: skip
    return f"""{"from peft import PeftModel" + chr(10) if adapter else ""}from transformers import AutoModelForImageTextToText, AutoProcessor

{load}
processor = AutoProcessor.from_pretrained("{repo}")  # the training run's image processor and chat template
messages = [{{"role": "user", "content": [{{"type": "image", "image": "photo.jpg"}}, {{"type": "text", "text": "Describe it."}}]}}]
inputs = processor.apply_chat_template(
    messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
).to(model.device)
out = model.generate(**inputs, max_new_tokens=256)
print(processor.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True))"""


def _usage(run: Run, meta: dict[str, Any], repo_id: str | None) -> dict[str, Any]:
    repo = repo_id or "YOUR_USER/MODEL_NAME"
    adapter = run.kind == "adapter"
    cls = "AutoPeftModelForCausalLM" if adapter else "AutoModelForCausalLM"
    imports = "from peft import AutoPeftModelForCausalLM\n" if adapter else ""
    imports += f"from transformers import {'' if imports else 'AutoModelForCausalLM, '}AutoTokenizer"
    python = f"""{imports}

model = {cls}.from_pretrained("{repo}", dtype="auto", device_map="auto")
tokenizer = AutoTokenizer.from_pretrained("{repo}")  # carries the training chat template
messages = [{{"role": "user", "content": "Hello!"}}]
inputs = tokenizer.apply_chat_template(
    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
).to(model.device)
out = model.generate(**inputs, max_new_tokens=256)
print(tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True))"""
    if meta.get("pipeline_tag") == "image-text-to-text":
        python = _vision_python(repo, meta["base_model"], adapter)
    if adapter:
        rank = int((run.adapter or {}).get("r") or 16)
        serve = f"vllm serve {meta['base_model']} --enable-lora --lora-modules adapter={repo} --max-lora-rank {max(rank, 16)}"
        model = "adapter"
    else:
        serve, model = f"vllm serve {repo}", repo
    return {"adapter": adapter, "python": python, "serve": serve, "served_model": model}


def render_body(
    run: Run,
    meta: dict[str, Any],
    base_source: str,
    repo_id: str | None,
    parameters: int | None,
    notice: str | None = None,
) -> str:
    """The Markdown body of the card, rendered from `card.md.jinja`."""
    import jinja2

    base = meta["base_model"]
    name = {"lora": "LoRA", "qlora": "QLoRA"}.get(run.method, run.method)
    link = f"[{base}](https://huggingface.co/{base})"
    intro = {"adapter": f"This is a {name} adapter for {link}", "full": f"This is a full fine-tune of {link}",
             "merged": f"This is {link} with a {name} adapter merged into it"}[run.kind]  # fmt: skip
    lic = meta.get("license")
    lic_line = (
        f"Licence: `{lic}`" + (f" ({meta['license_name']}, {meta['license_link']})" if lic == "other" else "")
        + f", inherited from {base}." if lic else f"Licence: not known to qwen-recipes; check the card of {base}."
    )  # fmt: skip
    context = {
        "notice": notice,
        "title": repo_id.split("/")[-1] if repo_id else run.output_dir.name,
        "intro": intro,
        "task": run.task,
        "base_source": base_source,
        "licence_line": lic_line,
        **_training(run),
        "run_rows": _run_rows(run),
        "plot": (run.output_dir / "loss.png").exists(),
        "evals": _evals(run),
        "limitations": _limitations(run, parameters),
        **_usage(run, meta, repo_id),
    }
    env = jinja2.Environment(keep_trailing_newline=True, autoescape=False, undefined=jinja2.StrictUndefined)
    template = env.from_string((Path(__file__).with_name("card.md.jinja")).read_text(encoding="utf-8"))
    return template.render(**context).rstrip() + "\n"
